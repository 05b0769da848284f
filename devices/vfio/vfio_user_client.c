/*
 * The vfio-user client's connection (see vfio_user_client.h): connect,
 * version negotiation, the request/reply transaction with its failure rule,
 * DMA_MAP/UNMAP bookkeeping, and serving the server's DMA_READ/DMA_WRITE
 * requests against the mapped ranges.  The device commands are in
 * vfio_user_client_ops.c.
 */
#include "devices/vfio/vfio_user_client.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/vfio/vfio_user_client_internal.h"
#include "devices/vfio/vfio_user_sock.h"
#include "vmm/log.h"

#define PAGE 4096u

/*
 * Fds wisp accepts on one incoming message: only a REGION_INFO reply may
 * carry one (an mmappable region); more is a protocol violation.
 */
#define CLIENT_RX_MAX_FDS 1u

int vfio_user_client_fail(struct vfio_user_client *c, const char *why, int err)
{
    if (!c->failed) {
        c->fail_err = err;
        log_error("vfio-user: server connection failed: %s (%s)", why, strerror(-err));
    }
    __atomic_store_n(&c->failed, true, __ATOMIC_RELAXED);
    return -EIO;
}

/* Finds the recorded range holding [addr, addr + len), or NULL. */
static const struct vfio_user_dma_range *range_find(const struct vfio_user_client *c, uint64_t addr,
                                                    uint64_t len)
{
    for (unsigned i = 0; i < c->nranges; i++) {
        const struct vfio_user_dma_range *r = &c->ranges[i];
        if (addr >= r->iova && addr - r->iova <= r->size && len <= r->size - (addr - r->iova))
            return r;
    }
    return NULL;
}

/* Sends a reply (header + len payload bytes in buf) to the server's request rq. */
static int send_reply(struct vfio_user_client *c, uint8_t *buf, const struct vfio_user_hdr *rq,
                      size_t len, int err)
{
    struct vfio_user_hdr h = {.id = rq->id, .cmd = rq->cmd, .flags = VFIO_USER_F_TYPE_REPLY};
    if (err) {
        h.flags |= VFIO_USER_F_ERROR;
        h.error = (uint32_t)-err;
        len = 0;
    }
    h.size = (uint32_t)(VFIO_USER_HDR_SIZE + len);
    vfio_user_hdr_encode(buf, &h);
    int rc = vfio_user_sock_send(c->sock, buf, h.size, NULL, 0, c->timeout_ms);
    return rc < 0 ? vfio_user_client_fail(c, "sending a DMA reply", rc) : 0;
}

/*
 * Serves the server's request now in c->rx.  A malformed request fails the
 * client; a well-formed one outside the mapped table gets an EFAULT reply.
 * The reply is built in a buffer of its own: c->tx may hold the request
 * whose reply is still awaited (it has been sent, but callers re-read it).
 */
static int serve_request(struct vfio_user_client *c)
{
    const struct vfio_user_hdr *rq = &c->rx_hdr;
    const uint8_t *p = CLIENT_RX_PAYLOAD(c);
    size_t len = CLIENT_RX_LEN(c);
    struct vfio_user_dma_rw d;
    uint8_t hdr_only[VFIO_USER_HDR_SIZE + VFIO_USER_DMA_RW_SIZE];
    if (rq->cmd != VFIO_USER_DMA_READ && rq->cmd != VFIO_USER_DMA_WRITE)
        return vfio_user_client_fail(c, "server sent an unexpected command", -EPROTO);
    bool is_write = rq->cmd == VFIO_USER_DMA_WRITE;
    if (vfio_user_dma_rw_decode(p, len, is_write, &d) < 0)
        return vfio_user_client_fail(c, "malformed DMA request", -EPROTO);
    if (d.count > c->caps.max_data_xfer_size)
        return vfio_user_client_fail(c, "DMA request above max_data_xfer_size", -EPROTO);
    const struct vfio_user_dma_range *r = range_find(c, d.addr, d.count);
    bool no_reply = rq->flags & VFIO_USER_F_NO_REPLY;
    if (!r || !r->hva) {
        log_ratelimited(LOG_WARN, "vfio-user: server DMA outside mapped memory: 0x%llx+0x%llx",
                        (unsigned long long)d.addr, (unsigned long long)d.count);
        return no_reply ? 0 : send_reply(c, hdr_only, rq, 0, -EFAULT);
    }
    uint8_t *host = (uint8_t *)r->hva + (d.addr - r->iova);
    if (is_write) {
        memcpy(host, d.data, d.count);
        if (no_reply)
            return 0;
        /* The reply echoes address and count, without data. */
        struct vfio_user_dma_rw e = {.addr = d.addr, .count = d.count};
        vfio_user_dma_rw_encode(hdr_only + VFIO_USER_HDR_SIZE, VFIO_USER_DMA_RW_SIZE, &e, false);
        return send_reply(c, hdr_only, rq, VFIO_USER_DMA_RW_SIZE, 0);
    }
    uint8_t *buf = malloc(VFIO_USER_HDR_SIZE + VFIO_USER_DMA_RW_SIZE + d.count);
    if (!buf)
        return send_reply(c, hdr_only, rq, 0, -ENOMEM);
    struct vfio_user_dma_rw e = {.addr = d.addr, .count = d.count, .data = host};
    int n = vfio_user_dma_rw_encode(buf + VFIO_USER_HDR_SIZE,
                                    VFIO_USER_DMA_RW_SIZE + (size_t)d.count, &e, true);
    int rc = send_reply(c, buf, rq, (size_t)n, 0);
    free(buf);
    return rc;
}

/* Receives one message into c->rx within the client's deadline. */
static int recv_one(struct vfio_user_client *c, int timeout_ms)
{
    int fds[CLIENT_RX_MAX_FDS];
    unsigned nfds = 0;
    int rc = vfio_user_sock_recv(c->sock, c->rx, VFIO_USER_MSG_MAX, fds, CLIENT_RX_MAX_FDS, &nfds,
                                 &c->rx_hdr, timeout_ms);
    if (rc < 0)
        return rc;
    /* No reply or request wisp handles carries fds it keeps. */
    fdsock_close_fds(fds, nfds);
    return 0;
}

int vfio_user_client_transact(struct vfio_user_client *c, uint16_t cmd, size_t len, const int *fds,
                              unsigned nfds)
{
    if (c->failed)
        return -EIO;
    struct vfio_user_hdr req = {
        .id = c->next_id++, .cmd = cmd, .size = (uint32_t)(VFIO_USER_HDR_SIZE + len)};
    vfio_user_hdr_encode(c->tx, &req);
    int rc = vfio_user_sock_send(c->sock, c->tx, req.size, fds, nfds, c->timeout_ms);
    if (rc < 0)
        return vfio_user_client_fail(c, "sending a request", rc);
    for (;;) {
        rc = recv_one(c, c->timeout_ms);
        if (rc < 0)
            return vfio_user_client_fail(c, "waiting for a reply", rc);
        if ((c->rx_hdr.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_CMD) {
            rc = serve_request(c);
            if (rc < 0)
                return rc;
            continue;
        }
        rc = vfio_user_reply_check(&req, &c->rx_hdr);
        if (rc == -EPROTO)
            return vfio_user_client_fail(c, "reply does not match the request", rc);
        if (rc < 0 && c->rx_hdr.size != VFIO_USER_HDR_SIZE)
            return vfio_user_client_fail(c, "error reply with a payload", -EPROTO);
        return rc;
    }
}

int vfio_user_client_service(struct vfio_user_client *c, int timeout_ms)
{
    pthread_mutex_lock(&c->lock);
    int served = 0, rc = 0;
    if (c->failed) {
        rc = -EIO;
        goto out;
    }
    for (;;) {
        struct pollfd pfd = {.fd = c->sock, .events = POLLIN};
        int n = poll(&pfd, 1, served ? 0 : timeout_ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        rc = recv_one(c, c->timeout_ms);
        if (rc < 0) {
            rc = vfio_user_client_fail(c, "reading a server request", rc);
            goto out;
        }
        if ((c->rx_hdr.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_CMD) {
            rc = vfio_user_client_fail(c, "unsolicited reply", -EPROTO);
            goto out;
        }
        rc = serve_request(c);
        if (rc < 0)
            goto out;
        served++;
    }
    rc = served;
out:
    pthread_mutex_unlock(&c->lock);
    return rc;
}

/* VERSION: propose 0.2 with wisp's limits, accept what the server answers within them. */
static int negotiate(struct vfio_user_client *c)
{
    struct vfio_user_version ours = {.major = 0,
                                     .minor = 2,
                                     .caps = {.max_msg_fds = VFIO_USER_MAX_FDS,
                                              .max_data_xfer_size = VFIO_USER_DATA_MAX,
                                              .max_dma_maps = VFIO_USER_MAX_DMA_RANGES,
                                              .pgsizes = PAGE}};
    int n = vfio_user_version_encode(CLIENT_TX_PAYLOAD(c), VFIO_USER_MSG_MAX - VFIO_USER_HDR_SIZE,
                                     &ours);
    if (n < 0)
        return n;
    int rc = vfio_user_client_transact(c, VFIO_USER_VERSION, (size_t)n, NULL, 0);
    if (rc < 0)
        return rc == -EIO ? rc : vfio_user_client_fail(c, "version refused", rc);
    struct vfio_user_version theirs;
    rc = vfio_user_version_decode(CLIENT_RX_PAYLOAD(c), CLIENT_RX_LEN(c), &theirs);
    if (rc < 0)
        return vfio_user_client_fail(c, "malformed version reply", rc);
    if (theirs.major != 0 || theirs.minor > 2)
        return vfio_user_client_fail(c, "unsupported protocol version", -EPROTO);
    if (theirs.caps.max_msg_fds == 0)
        theirs.caps.max_msg_fds = 1; /* fd-less servers still get one fd per map */
    c->caps = theirs.caps;
    return 0;
}

int vfio_user_client_attach(int sock, int timeout_ms, struct vfio_user_client **out)
{
    struct vfio_user_client *c = calloc(1, sizeof(*c));
    int rc = -ENOMEM;
    if (!c)
        goto err_sock;
    c->sock = sock;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    c->next_id = 1;
    c->tx = malloc(VFIO_USER_MSG_MAX);
    c->rx = malloc(VFIO_USER_MSG_MAX);
    if (!c->tx || !c->rx)
        goto err_free;
    if ((rc = -pthread_mutex_init(&c->lock, NULL)) < 0)
        goto err_free;
    rc = negotiate(c);
    if (rc < 0) {
        rc = c->fail_err < 0 ? c->fail_err : rc;
        goto err_lock;
    }
    *out = c;
    return 0;
err_lock:
    pthread_mutex_destroy(&c->lock);
err_free:
    free(c->rx);
    free(c->tx);
    free(c);
err_sock:
    close(sock);
    return rc;
}

int vfio_user_client_connect(const char *path, int timeout_ms, struct vfio_user_client **out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    /* A UNIX-socket connect does not wait for the server to accept. */
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = -errno;
        close(s);
        return e;
    }
    return vfio_user_client_attach(s, timeout_ms, out);
}

void vfio_user_client_destroy(struct vfio_user_client *c)
{
    if (!c)
        return;
    close(c->sock);
    pthread_mutex_destroy(&c->lock);
    free(c->rx);
    free(c->tx);
    free(c);
}

int vfio_user_client_fd(const struct vfio_user_client *c)
{
    return c->sock;
}

bool vfio_user_client_failed(const struct vfio_user_client *c)
{
    return __atomic_load_n(&c->failed, __ATOMIC_RELAXED);
}

const struct vfio_user_caps *vfio_user_client_caps(const struct vfio_user_client *c)
{
    return &c->caps;
}

/* A range is acceptable: aligned, non-empty, no wrap, no overlap with the table. */
static bool range_ok(const struct vfio_user_client *c, const struct vfio_user_dma_range *r)
{
    if (r->size == 0 || (r->iova | r->size | r->fd_offset) % PAGE || r->iova + r->size < r->iova)
        return false;
    for (unsigned i = 0; i < c->nranges; i++) {
        const struct vfio_user_dma_range *o = &c->ranges[i];
        if (r->iova < o->iova + o->size && o->iova < r->iova + r->size)
            return false;
    }
    return true;
}

int vfio_user_client_dma_map(struct vfio_user_client *c, const struct vfio_user_dma_range *r,
                             unsigned n)
{
    pthread_mutex_lock(&c->lock);
    int rc = 0;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        if (c->nranges >= VFIO_USER_MAX_DMA_RANGES || c->nranges >= c->caps.max_dma_maps ||
            !range_ok(c, &r[i])) {
            rc = -EINVAL;
            break;
        }
        struct vfio_user_dma_map m = {
            .argsz = VFIO_USER_DMA_MAP_SIZE,
            .flags = VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE,
            .offset = r[i].fd >= 0 ? r[i].fd_offset : 0,
            .addr = r[i].iova,
            .size = r[i].size,
        };
        vfio_user_dma_map_encode(CLIENT_TX_PAYLOAD(c), &m);
        rc = vfio_user_client_transact(c, VFIO_USER_DMA_MAP, VFIO_USER_DMA_MAP_SIZE, &r[i].fd,
                                       r[i].fd >= 0 ? 1 : 0);
        if (rc == 0)
            c->ranges[c->nranges++] = r[i];
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int vfio_user_client_dma_unmap_all(struct vfio_user_client *c)
{
    pthread_mutex_lock(&c->lock);
    int first = 0;
    while (c->nranges > 0) {
        const struct vfio_user_dma_range *r = &c->ranges[c->nranges - 1];
        struct vfio_user_dma_unmap u = {
            .argsz = VFIO_USER_DMA_UNMAP_SIZE, .addr = r->iova, .size = r->size};
        vfio_user_dma_unmap_encode(CLIENT_TX_PAYLOAD(c), &u);
        int rc =
            vfio_user_client_transact(c, VFIO_USER_DMA_UNMAP, VFIO_USER_DMA_UNMAP_SIZE, NULL, 0);
        if (rc < 0 && first == 0)
            first = rc;
        /* Forget it either way: wisp must not serve DMA to memory it withdrew. */
        c->nranges--;
    }
    pthread_mutex_unlock(&c->lock);
    return first;
}
