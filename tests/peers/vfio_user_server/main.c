/*
 * vfio-user-server: a small vfio-user 0.2 device server, the peer of wisp's
 * client tests (docs/VFIO_USER.md, "The test server").
 *
 *   vfio-user-server --socket PATH [--misbehave MODE] [--no-migration]
 *
 * It listens on PATH, serves one client until it disconnects, and exits 0.
 * MODE makes it break the protocol on the first REGION_READ, so tests can
 * check that the client fails cleanly: crash (exit without a reply),
 * garbage (bytes that are no message), fds (a reply carrying 20 fds),
 * stall (no reply, ever), badid (a reply with the wrong id), syscall (a
 * system call the seccomp filter forbids: the server dies of SIGSYS).
 *
 * Migration v2 (STOP_COPY only) is in mig.c; --no-migration answers
 * DEVICE_FEATURE with ENOTSUP, a device that cannot migrate.  The codec, socket layer and
 * migration arc table are wisp's own (devices/vfio/vfio_user_*.c);
 * only the dispatch and the device are written here.
 */
#include <errno.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/vfio/vfio_user_mig.h"
#include "devices/vfio/vfio_user_sock.h"
#include "tests/peers/vfio_user_server/server.h"

#define TIMEOUT_MS (60 * 1000)

enum misbehave { MB_NONE, MB_CRASH, MB_GARBAGE, MB_FDS, MB_STALL, MB_BADID, MB_SYSCALL };
static enum misbehave misbehave;
static uint8_t rx[VFIO_USER_MSG_MAX], tx[VFIO_USER_MSG_MAX];

/* Sends a reply to rq with len payload bytes in tx, or an error reply. */
static int reply(struct srv *s, const struct vfio_user_hdr *rq, size_t len, int err)
{
    struct vfio_user_hdr h = {.id = rq->id, .cmd = rq->cmd, .flags = VFIO_USER_F_TYPE_REPLY};
    if (err) {
        h.flags |= VFIO_USER_F_ERROR;
        h.error = (uint32_t)-err;
        len = 0;
    }
    h.size = (uint32_t)(VFIO_USER_HDR_SIZE + len);
    vfio_user_hdr_encode(tx, &h);
    return vfio_user_sock_send(s->sock, tx, h.size, NULL, 0, TIMEOUT_MS);
}

int srv_dma_msg(struct srv *s, bool is_write, uint64_t addr, uint8_t *buf, uint32_t n)
{
    static uint8_t msg[VFIO_USER_MSG_MAX];
    struct vfio_user_dma_rw d = {.addr = addr, .count = n, .data = buf};
    int len = vfio_user_dma_rw_encode(msg + VFIO_USER_HDR_SIZE, sizeof(msg) - VFIO_USER_HDR_SIZE,
                                      &d, is_write);
    if (len < 0)
        return len;
    struct vfio_user_hdr h = {.id = s->next_id++,
                              .cmd = is_write ? VFIO_USER_DMA_WRITE : VFIO_USER_DMA_READ,
                              .size = (uint32_t)(VFIO_USER_HDR_SIZE + (size_t)len)};
    vfio_user_hdr_encode(msg, &h);
    int rc = vfio_user_sock_send(s->sock, msg, h.size, NULL, 0, TIMEOUT_MS);
    if (rc < 0)
        return rc;
    struct vfio_user_hdr r;
    unsigned nfds;
    rc = vfio_user_sock_recv(s->sock, msg, sizeof(msg), NULL, 0, &nfds, &r, TIMEOUT_MS);
    if (rc < 0)
        return rc;
    rc = vfio_user_reply_check(&h, &r);
    if (rc < 0 || is_write)
        return rc;
    struct vfio_user_dma_rw a;
    if (vfio_user_dma_rw_decode(msg + VFIO_USER_HDR_SIZE, r.size - VFIO_USER_HDR_SIZE, true, &a) <
            0 ||
        a.count != n)
        return -EPROTO;
    memcpy(buf, a.data, n);
    return 0;
}

/* Breaks the protocol as asked; returns only for MB_NONE. */
static void misbehave_now(struct srv *s, const struct vfio_user_hdr *rq)
{
    struct vfio_user_hdr h = {.id = rq->id,
                              .cmd = rq->cmd,
                              .flags = VFIO_USER_F_TYPE_REPLY,
                              .size = VFIO_USER_HDR_SIZE + VFIO_USER_REGION_RW_SIZE + 4};
    switch (misbehave) {
    case MB_NONE:
        return;
    case MB_CRASH:
        _exit(3);
    case MB_GARBAGE:
        memset(tx, 0xa5, 64);
        (void)!write(s->sock, tx, 64);
        break;
    case MB_FDS: {
        int fds[20];
        for (int i = 0; i < 20; i++)
            fds[i] = dup(2);
        union {
            char b[CMSG_SPACE(sizeof(fds))];
            struct cmsghdr a;
        } ctl;
        memset(&ctl, 0, sizeof(ctl));
        memset(tx, 0, sizeof(tx));
        vfio_user_hdr_encode(tx, &h);
        struct iovec iov = {.iov_base = tx, .iov_len = h.size};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = ctl.b,
                            .msg_controllen = sizeof(ctl.b)};
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(fds));
        memcpy(CMSG_DATA(c), fds, sizeof(fds));
        (void)!sendmsg(s->sock, &mh, MSG_NOSIGNAL);
        break;
    }
    case MB_STALL:
        break;
    case MB_SYSCALL:
        (void)!getppid(); /* not on the allow-list: the filter kills the server */
        break;
    case MB_BADID:
        h.id++;
        memset(tx, 0, sizeof(tx));
        vfio_user_hdr_encode(tx, &h);
        (void)!write(s->sock, tx, h.size);
        break;
    }
    /* Wait for the client to give up and hang up. */
    for (;;)
        if (read(s->sock, rx, sizeof(rx)) <= 0)
            _exit(0);
}

static int do_version(struct srv *s, const struct vfio_user_hdr *rq)
{
    struct vfio_user_version v;
    int rc = vfio_user_version_decode(rx + VFIO_USER_HDR_SIZE, rq->size - VFIO_USER_HDR_SIZE, &v);
    if (rc < 0 || v.major != 0)
        return reply(s, rq, 0, -EINVAL);
    struct vfio_user_version ours = {.major = 0,
                                     .minor = v.minor < 2 ? v.minor : 2,
                                     .caps = {.max_msg_fds = 8,
                                              .max_data_xfer_size = VFIO_USER_DATA_MAX,
                                              .max_dma_maps = SRV_MAX_MAPS,
                                              .pgsizes = 4096}};
    int n =
        vfio_user_version_encode(tx + VFIO_USER_HDR_SIZE, sizeof(tx) - VFIO_USER_HDR_SIZE, &ours);
    return n < 0 ? reply(s, rq, 0, n) : reply(s, rq, (size_t)n, 0);
}

static int do_dma_map(struct srv *s, const struct vfio_user_hdr *rq, int *fds, unsigned nfds)
{
    struct vfio_user_dma_map m;
    int rc = vfio_user_dma_map_decode(rx + VFIO_USER_HDR_SIZE, rq->size - VFIO_USER_HDR_SIZE, &m);
    if (rc < 0 || nfds > 1 || m.size == 0 || m.addr + m.size < m.addr)
        return reply(s, rq, 0, -EINVAL);
    if (s->nmaps >= SRV_MAX_MAPS)
        return reply(s, rq, 0, -ENOSPC);
    for (unsigned i = 0; i < s->nmaps; i++)
        if (m.addr < s->maps[i].iova + s->maps[i].size && s->maps[i].iova < m.addr + m.size)
            return reply(s, rq, 0, -EEXIST);
    uint8_t *host = NULL;
    if (nfds == 1) {
        void *p = mmap(NULL, m.size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], (off_t)m.offset);
        if (p == MAP_FAILED)
            return reply(s, rq, 0, -errno);
        host = p;
    }
    s->maps[s->nmaps++] = (struct srv_map){.iova = m.addr, .size = m.size, .host = host};
    return reply(s, rq, 0, 0);
}

static int do_dma_unmap(struct srv *s, const struct vfio_user_hdr *rq)
{
    struct vfio_user_dma_unmap u;
    if (vfio_user_dma_unmap_decode(rx + VFIO_USER_HDR_SIZE, rq->size - VFIO_USER_HDR_SIZE, &u) < 0)
        return reply(s, rq, 0, -EINVAL);
    for (unsigned i = 0; i < s->nmaps; i++) {
        if (s->maps[i].iova == u.addr && s->maps[i].size == u.size) {
            if (s->maps[i].host)
                munmap(s->maps[i].host, s->maps[i].size);
            s->maps[i] = s->maps[--s->nmaps];
            return reply(s, rq, 0, 0);
        }
    }
    return reply(s, rq, 0, -ENOENT);
}

static int do_info(struct srv *s, const struct vfio_user_hdr *rq)
{
    const uint8_t *p = rx + VFIO_USER_HDR_SIZE;
    size_t len = rq->size - VFIO_USER_HDR_SIZE;
    uint8_t *out = tx + VFIO_USER_HDR_SIZE;
    if (rq->cmd == VFIO_USER_DEVICE_GET_INFO) {
        struct vfio_user_device_info d = {16, VFIO_USER_DEV_F_RESET | VFIO_USER_DEV_F_PCI,
                                          VFIO_USER_PCI_NUM_REGIONS, VFIO_USER_PCI_NUM_IRQS};
        vfio_user_device_info_encode(out, &d);
        return reply(s, rq, VFIO_USER_DEVICE_INFO_SIZE, 0);
    }
    if (rq->cmd == VFIO_USER_DEVICE_GET_IRQ_INFO) {
        struct vfio_user_irq_info i;
        if (vfio_user_irq_info_decode(p, len, &i) < 0 || i.index >= VFIO_USER_PCI_NUM_IRQS)
            return reply(s, rq, 0, -EINVAL);
        i.flags = VFIO_USER_IRQ_INFO_EVENTFD;
        i.count = i.index == VFIO_USER_IRQ_INTX ? 1 : i.index == VFIO_USER_IRQ_MSIX ? 4 : 0;
        i.flags |= i.index == VFIO_USER_IRQ_INTX ? VFIO_USER_IRQ_INFO_MASKABLE
                                                 : VFIO_USER_IRQ_INFO_NORESIZE;
        vfio_user_irq_info_encode(out, &i);
        return reply(s, rq, VFIO_USER_IRQ_INFO_SIZE, 0);
    }
    /* Region info: BAR0 and config space; the other PCI regions are absent. */
    struct vfio_user_region_info q, r = {0};
    if (len < VFIO_USER_REGION_INFO_SIZE)
        return reply(s, rq, 0, -EINVAL);
    int rc = vfio_user_region_info_decode(p, len, &q);
    if ((rc < 0 && rc != -E2BIG) || q.index >= VFIO_USER_PCI_NUM_REGIONS)
        return reply(s, rq, 0, -EINVAL);
    r.index = q.index;
    if (q.index == VFIO_USER_PCI_BAR0 || q.index == VFIO_USER_PCI_CONFIG) {
        r.flags = VFIO_USER_REGION_F_READ | VFIO_USER_REGION_F_WRITE;
        r.size = q.index == VFIO_USER_PCI_BAR0 ? SRV_BAR0_SIZE : SRV_CONFIG_SIZE;
    }
    int n = vfio_user_region_info_encode(out, sizeof(tx) - VFIO_USER_HDR_SIZE, &r);
    return reply(s, rq, (size_t)n, 0);
}

static int do_set_irqs(struct srv *s, const struct vfio_user_hdr *rq, int *fds, unsigned nfds)
{
    struct vfio_user_irq_set q;
    if (vfio_user_irq_set_decode(rx + VFIO_USER_HDR_SIZE, rq->size - VFIO_USER_HDR_SIZE, &q) < 0)
        return reply(s, rq, 0, -EINVAL);
    int *slots = q.index == VFIO_USER_IRQ_INTX   ? &s->intx_fd
                 : q.index == VFIO_USER_IRQ_MSIX ? s->msix_fd
                                                 : NULL;
    uint32_t max = q.index == VFIO_USER_IRQ_INTX ? 1 : SRV_MSIX_VECTORS;
    if (!slots)
        return reply(s, rq, 0, -EINVAL);
    if (q.flags & VFIO_USER_IRQ_DATA_NONE) {
        if (q.count != 0 || nfds)
            return reply(s, rq, 0, -EINVAL);
        for (uint32_t i = 0; i < max; i++)
            if (slots[i] >= 0)
                close(slots[i]), slots[i] = -1;
        return reply(s, rq, 0, 0);
    }
    if (!(q.flags & VFIO_USER_IRQ_DATA_EVENTFD) || q.start + q.count > max ||
        (nfds != q.count && !(nfds == 0 && q.count == 1)))
        return reply(s, rq, 0, -EINVAL);
    for (uint32_t i = 0; i < q.count; i++) {
        if (slots[q.start + i] >= 0)
            close(slots[q.start + i]);
        slots[q.start + i] = nfds ? fds[i] : -1;
        if (nfds)
            fds[i] = -1; /* kept */
    }
    return reply(s, rq, 0, 0);
}

static int do_region(struct srv *s, const struct vfio_user_hdr *rq)
{
    bool is_write = rq->cmd == VFIO_USER_REGION_WRITE;
    struct vfio_user_region_rw q;
    if (vfio_user_region_rw_decode(rx + VFIO_USER_HDR_SIZE, rq->size - VFIO_USER_HDR_SIZE, is_write,
                                   &q) < 0)
        return reply(s, rq, 0, -EINVAL);
    if (!is_write)
        misbehave_now(s, rq);
    struct vfio_user_region_rw a = {.offset = q.offset, .region = q.region, .count = q.count};
    static uint8_t data[VFIO_USER_DATA_MAX];
    int rc = is_write ? srv_region_write(s, q.region, q.offset, q.data, q.count)
                      : srv_region_read(s, q.region, q.offset, data, q.count);
    if (rc < 0)
        return reply(s, rq, 0, rc);
    a.data = data;
    int n = vfio_user_region_rw_encode(tx + VFIO_USER_HDR_SIZE, sizeof(tx) - VFIO_USER_HDR_SIZE, &a,
                                       !is_write);
    return reply(s, rq, (size_t)n, 0);
}

static int do_mig(struct srv *s, const struct vfio_user_hdr *rq)
{
    const uint8_t *p = rx + VFIO_USER_HDR_SIZE;
    size_t len = rq->size - VFIO_USER_HDR_SIZE;
    uint8_t *out = tx + VFIO_USER_HDR_SIZE;
    int rc;
    if (rq->cmd == VFIO_USER_DEVICE_FEATURE) {
        struct vfio_user_feature f;
        uint8_t data[8];
        uint32_t n = 0;
        if (vfio_user_feature_decode(p, len, &f) < 0)
            return reply(s, rq, 0, -EINVAL);
        rc = srv_feature(s, &f, data, &n);
        if (rc < 0)
            return reply(s, rq, 0, rc);
        struct vfio_user_feature a = {
            .argsz = VFIO_USER_FEATURE_SIZE + n, .flags = f.flags, .data_len = n, .data = data};
        int m = vfio_user_feature_encode(out, sizeof(tx) - VFIO_USER_HDR_SIZE, &a);
        return reply(s, rq, (size_t)m, 0);
    }
    struct vfio_user_mig_data m;
    bool is_write = rq->cmd == VFIO_USER_MIG_DATA_WRITE;
    if (vfio_user_mig_data_decode(p, len, is_write, &m) < 0)
        return reply(s, rq, 0, -EINVAL);
    if (is_write) {
        rc = srv_mig_write(s, m.data, m.size);
        return reply(s, rq, 0, rc);
    }
    static uint8_t data[VFIO_USER_DATA_MAX];
    uint32_t got = 0;
    rc = srv_mig_read(s, m.size, data, &got);
    if (rc < 0)
        return reply(s, rq, 0, rc);
    struct vfio_user_mig_data a = {
        .argsz = VFIO_USER_MIG_DATA_SIZE + got, .size = got, .data = data};
    int n = vfio_user_mig_data_encode(out, sizeof(tx) - VFIO_USER_HDR_SIZE, &a, true);
    return reply(s, rq, (size_t)n, 0);
}

/* Serves one message; returns < 0 when the connection is over. */
static int serve_one(struct srv *s)
{
    int fds[VFIO_USER_MAX_FDS];
    unsigned nfds = 0;
    struct vfio_user_hdr h;
    /* No deadline while idle: the client decides when to talk. */
    int rc = vfio_user_sock_recv(s->sock, rx, sizeof(rx), fds, 8, &nfds, &h, 24 * 3600 * 1000);
    if (rc == -ENOTSUP)
        return reply(s, &h, 0, -ENOTSUP);
    if (rc < 0)
        return rc;
    if ((h.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_CMD) {
        rc = -EPROTO;
        goto out;
    }
    switch (h.cmd) {
    case VFIO_USER_VERSION:
        rc = do_version(s, &h);
        break;
    case VFIO_USER_DMA_MAP:
        rc = do_dma_map(s, &h, fds, nfds);
        break;
    case VFIO_USER_DMA_UNMAP:
        rc = do_dma_unmap(s, &h);
        break;
    case VFIO_USER_DEVICE_GET_INFO:
    case VFIO_USER_DEVICE_GET_REGION_INFO:
    case VFIO_USER_DEVICE_GET_IRQ_INFO:
        rc = do_info(s, &h);
        break;
    case VFIO_USER_DEVICE_SET_IRQS:
        rc = do_set_irqs(s, &h, fds, nfds);
        break;
    case VFIO_USER_REGION_READ:
    case VFIO_USER_REGION_WRITE:
        rc = do_region(s, &h);
        break;
    case VFIO_USER_DEVICE_FEATURE:
    case VFIO_USER_MIG_DATA_READ:
    case VFIO_USER_MIG_DATA_WRITE:
        rc = do_mig(s, &h);
        break;
    case VFIO_USER_DEVICE_RESET:
        srv_device_reset(s);
        s->mig_state = VFIO_USER_MIG_RUNNING; /* reset ends any migration */
        rc = reply(s, &h, 0, 0);
        break;
    default:
        rc = reply(s, &h, 0, -ENOTSUP);
        break;
    }
out:
    fdsock_close_fds(fds, nfds);
    return rc;
}

/*
 * Confines the server once connected: no new privileges, and a seccomp
 * allow-list of what serving needs.  Skipped under ASan, whose runtime
 * needs far more (LeakSanitizer's tracer thread among it).
 */
static int confine(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return 0;
#else
    static const int allowed[] = {
        SCMP_SYS(read),       SCMP_SYS(write),        SCMP_SYS(recvmsg),       SCMP_SYS(sendmsg),
        SCMP_SYS(poll),       SCMP_SYS(ppoll),        SCMP_SYS(mmap),          SCMP_SYS(munmap),
        SCMP_SYS(close),      SCMP_SYS(dup),          SCMP_SYS(exit),          SCMP_SYS(exit_group),
        SCMP_SYS(brk),        SCMP_SYS(rt_sigreturn), SCMP_SYS(clock_gettime), SCMP_SYS(fstat),
        SCMP_SYS(newfstatat), SCMP_SYS(madvise),      SCMP_SYS(getrandom), /* json-c hash seed */
    };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (!ctx)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]) && rc == 0; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
    if (rc == 0)
        rc = seccomp_load(ctx);
    seccomp_release(ctx);
    return rc;
#endif
}

static int usage(void)
{
    fprintf(stderr, "usage: vfio-user-server --socket PATH "
                    "[--misbehave crash|garbage|fds|stall|badid|syscall] [--no-migration]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    bool no_migration = false;
    static const char *const modes[] = {"none",  "crash", "garbage", "fds",
                                        "stall", "badid", "syscall"};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--socket") && i + 1 < argc) {
            path = argv[++i];
        } else if (!strcmp(argv[i], "--no-migration")) {
            no_migration = true;
        } else if (!strcmp(argv[i], "--misbehave") && i + 1 < argc) {
            const char *m = argv[++i];
            size_t k = 0;
            while (k < sizeof(modes) / sizeof(modes[0]) && strcmp(modes[k], m))
                k++;
            if (k == sizeof(modes) / sizeof(modes[0]))
                return usage();
            misbehave = (enum misbehave)k;
        } else {
            return usage();
        }
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!path || strlen(path) >= sizeof(sa.sun_path))
        return usage();
    memcpy(sa.sun_path, path, strlen(path) + 1);
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    unlink(path);
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 1) < 0) {
        perror("vfio-user-server: listen");
        return 1;
    }
    static struct srv s = {.intx_fd = -1, .next_id = 1, .mig_state = VFIO_USER_MIG_RUNNING};
    s.no_migration = no_migration;
    for (unsigned i = 0; i < SRV_MSIX_VECTORS; i++)
        s.msix_fd[i] = -1;
    srv_device_reset(&s);
    s.sock = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (s.sock < 0) {
        perror("vfio-user-server: accept");
        return 1;
    }
    close(ls);
    unlink(path);
    int rc = confine();
    if (rc < 0) {
        fprintf(stderr, "vfio-user-server: seccomp: %s\n", strerror(-rc));
        return 1;
    }
    while ((rc = serve_one(&s)) >= 0)
        ;
    return rc == -ECONNRESET ? 0 : 1;
}
