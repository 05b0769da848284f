/*
 * vhost-user data plane (see vhost_user_dp.h): virtio_dataplane_ops over a
 * vhu_conn, with the backend-restart story: the inflight area kept for the
 * device's life and a reconnect driven by the main loop.
 */
#include "devices/vhost/vhost_user_dp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "devices/vhost/vhost_user.h"
#include "vmm/log.h"

struct vhu_dp {
    struct vhu_conn c;
    const struct gmem *mem;
    char path[108];
    int timeout_ms;
    uint32_t own_len; /* > 0: wisp serves the config space (own[]), read-only */
    uint8_t own[VHU_DP_MAX_OWN_CONFIG];

    /* What the main loop watches: the socket, or the retry tick while the backend is away. */
    int ep;
    int tick;           /* periodic timerfd, armed at creation, in `ep` only while reconnecting */
    bool can_reconnect; /* the device's requests may be taken again (blk, not fs) */
    bool away;          /* the backend went away; reconnecting */
    uint64_t away_since_ms;
    unsigned reconnects;

    /* The running rings, to start them again on a new connection. */
    bool started;
    uint64_t features;
    unsigned n;
    struct virtio_dp_queue q[VHU_MAX_QUEUES];
    int inflight_fd; /* the area for the rings' life (-1: none) */
    struct vhu_inflight inflight;
};

static uint16_t le16_read(const uint8_t *p)
{
    const volatile uint8_t *b = p;
    return (uint16_t)(b[0] | b[1] << 8);
}

static uint32_t le32_read(const uint8_t *p)
{
    const volatile uint8_t *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static uint64_t vhu_dp_features(void *dp)
{
    struct vhu_dp *v = dp;
    return v->c.backend_features & ~(1ull << VHU_F_PROTOCOL_FEATURES);
}

static int vhu_dp_config_read(void *dp, uint32_t off, void *buf, uint32_t len)
{
    struct vhu_dp *v = dp;
    if (!v->own_len)
        return vhu_get_config(&v->c, off, len, buf);
    /* Bytes past what wisp built read as zero (the transport bounds off + len). */
    memset(buf, 0, len);
    if (off < v->own_len)
        memcpy(buf, v->own + off, len < v->own_len - off ? len : v->own_len - off);
    return 0;
}

static int vhu_dp_config_write(void *dp, uint32_t off, const void *buf, uint32_t len)
{
    struct vhu_dp *v = dp;
    if (v->own_len)
        return 0; /* read-only (virtio-fs has no writable field): ignored, as by QEMU */
    return vhu_set_config(&v->c, off, len, buf);
}

/* wisp's host address of a ring of `len` bytes at `gpa`, or 0 if not in RAM. */
static uint64_t vhu_dp_hva(const struct gmem *mem, gpa_t gpa, uint64_t len)
{
    return (uint64_t)(uintptr_t)gmem_ptr(mem, gpa, len);
}

static void vhu_dp_drop_inflight(struct vhu_dp *v)
{
    if (v->inflight_fd >= 0)
        close(v->inflight_fd);
    v->inflight_fd = -1;
}

/*
 * Where a new backend resumes ring `q`: the used index in guest memory.
 * With the inflight area the backend itself takes back what was in flight.
 * Without it (qemu-storage-daemon 7.2 offers none), resuming there repeats
 * nothing and loses nothing only if the old backend completed the requests
 * in the order they were made available: then positions [used, avail) are
 * exactly the ones not completed.  That is checked in guest memory: every
 * completion still visible in the used ring must name the head of the same
 * position in the avail ring (two requests outstanding at once have
 * different heads, so an out-of-order completion shows as a mismatch).
 * -EPROTONOSUPPORT if it cannot be shown; the device then fails.
 */
int vhu_dp_resume_check(const uint8_t *avail, const uint8_t *used, uint16_t size, uint16_t start,
                        uint16_t *base, uint16_t *bad)
{
    if (size == 0)
        return -EINVAL;
    uint16_t a = le16_read(avail + 2), u = le16_read(used + 2); /* each read once */
    *base = u;
    uint16_t out = (uint16_t)(a - u);
    if (out > size)
        return -ERANGE; /* more outstanding than the ring holds: the rings are bad */
    /*
     * The last `n` completed positions, all still in the avail ring (they are
     * at or after a - size) and all made available since the ring started.
     */
    uint16_t done = (uint16_t)(u - start), n = (uint16_t)(size - out);
    n = done < n ? done : n;
    for (uint16_t j = (uint16_t)(u - n); j != u; j++) {
        uint16_t head = le16_read(avail + 4 + 2 * (j % size));
        uint32_t id = le32_read(used + 4 + 8 * (j % size));
        if (id != head) {
            *bad = j;
            return -EPROTONOSUPPORT;
        }
    }
    return 0;
}

static int vhu_dp_resume_point(struct vhu_dp *v, const struct virtio_dp_queue *q, uint16_t *base)
{
    uint32_t size = q->size;
    const uint8_t *avail = gmem_ptr(v->mem, q->avail, 4 + 2ull * size);
    const uint8_t *used = gmem_ptr(v->mem, q->used, 4 + 8ull * size);
    if (!avail || !used)
        return -EFAULT;
    uint16_t bad = 0;
    int rc = vhu_dp_resume_check(avail, used, q->size, q->next_avail, base, &bad);
    if (v->inflight_fd >= 0)
        return 0; /* the backend takes back what was in flight itself */
    if (rc == -EPROTONOSUPPORT)
        log_warn("vhost-user %s: queue %u: requests completed out of order (position %u); "
                 "without an inflight area they cannot be resumed",
                 v->path, q->index, bad);
    else if (rc < 0)
        log_warn("vhost-user %s: queue %u: the rings show more requests outstanding than fit",
                 v->path, q->index);
    return rc < 0 ? -EPROTONOSUPPORT : 0;
}

/*
 * Everything from SET_FEATURES to the rings, on the current connection.
 * `restart`: a new backend takes over running rings; each starts at the
 * used index in guest memory and the inflight area tells the backend
 * which requests to take again (vhost-user.rst, "Inflight I/O tracking").
 */
static int vhu_dp_program(struct vhu_dp *v, bool restart)
{
    int rc = vhu_set_features(&v->c, v->features);
    if (rc < 0)
        return rc;
    rc = vhu_set_mem_table(&v->c, v->mem);
    if (rc < 0)
        return rc;
    if (vhu_has_protocol(&v->c, VHU_PF_INFLIGHT_SHMFD)) {
        if (v->inflight_fd < 0) {
            uint16_t nq = 0, qs = 0;
            for (unsigned i = 0; i < v->n; i++) {
                nq = v->q[i].index + 1 > nq ? (uint16_t)(v->q[i].index + 1) : nq;
                qs = v->q[i].size > qs ? v->q[i].size : qs;
            }
            rc = vhu_get_inflight(&v->c, nq, qs, &v->inflight_fd, &v->inflight);
            if (rc < 0)
                return rc;
        }
        rc = vhu_set_inflight(&v->c, v->inflight_fd, &v->inflight);
        if (rc < 0)
            return rc;
    }
    for (unsigned i = 0; i < v->n; i++) {
        /* The transport validated the rings (virtq_activate); translate them again anyway. */
        const struct virtio_dp_queue *q = &v->q[i];
        uint64_t sz = q->size;
        struct vhu_vring r = {.size = q->size,
                              .base = q->next_avail,
                              .desc = vhu_dp_hva(v->mem, q->desc, 16 * sz),
                              .avail = vhu_dp_hva(v->mem, q->avail, 6 + 2 * sz),
                              .used = vhu_dp_hva(v->mem, q->used, 6 + 8 * sz),
                              .kick_fd = q->kick_fd,
                              .call_fd = q->call_fd};
        if (!r.desc || !r.avail || !r.used)
            return -EFAULT;
        if (restart) {
            rc = vhu_dp_resume_point(v, q, &r.base);
            if (rc < 0)
                return rc;
        }
        rc = vhu_vring_start(&v->c, q->index, &r);
        if (rc < 0)
            return rc;
        if (restart) { /* kicks that came while no backend was there are in the eventfd */
            uint64_t one = 1;
            ssize_t w __unused = write(q->kick_fd, &one, sizeof(one));
        }
    }
    return 0;
}

static int vhu_dp_lost(struct vhu_dp *v);

static int vhu_dp_start(void *dp, uint64_t features, const struct virtio_dp_queue *q, unsigned n)
{
    struct vhu_dp *v = dp;
    if (n > VHU_MAX_QUEUES)
        return -EINVAL;
    v->features = features;
    v->n = n;
    memcpy(v->q, q, n * sizeof(*q));
    v->started = true;
    if (v->away)
        return 0; /* the reconnect programs them */
    int rc = vhu_dp_program(v, false);
    if (rc == -ECONNRESET || rc == -EPIPE)
        return vhu_dp_lost(v); /* it died just now: the reconnect programs them */
    return rc;
}

static int vhu_dp_stop(void *dp, const struct virtio_dp_queue *q, unsigned n, uint16_t *next)
{
    struct vhu_dp *v = dp;
    v->started = false;
    vhu_dp_drop_inflight(v); /* a reset starts the rings afresh: nothing is in flight */
    if (v->away)
        return next ? -ECONNRESET : 0; /* no backend to ask; a guest reset needs nothing */
    for (unsigned i = 0; i < n; i++) {
        uint16_t pos;
        int rc = vhu_vring_stop(&v->c, q[i].index, &pos);
        if (rc < 0 && !next && (rc == -ECONNRESET || rc == -EPIPE))
            return vhu_dp_lost(v); /* a guest reset of rings no backend serves now */
        if (rc < 0)
            return rc;
        if (next)
            next[i] = pos;
    }
    return 0;
}

static int vhu_dp_watch_fd(void *dp)
{
    return ((struct vhu_dp *)dp)->ep;
}

/* Watch `fd` alone in the data plane's epoll set (the socket, or the tick). */
static int vhu_dp_watch(struct vhu_dp *v, int old, int fd)
{
    if (old >= 0)
        epoll_ctl(v->ep, EPOLL_CTL_DEL, old, NULL);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
    return epoll_ctl(v->ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* The backend is gone: stop watching its socket and start the retry tick. */
static int vhu_dp_lost(struct vhu_dp *v)
{
    if (!v->can_reconnect)
        return -ECONNRESET;
    int sock = v->c.sock;
    if (vhu_dp_watch(v, sock, v->tick) < 0)
        return -ECONNRESET;
    vhu_disconnect(&v->c);
    v->away = true;
    v->away_since_ms = now_ms();
    log_warn("vhost-user %s: the backend went away; reconnecting for up to %d s", v->path,
             VHU_DP_RECONNECT_MS / 1000);
    return 0;
}

/* A retry tick while the backend is away: 1 (back), 0 (still waiting), or -errno (give up). */
static int vhu_dp_retry(struct vhu_dp *v)
{
    uint64_t n;
    ssize_t r __unused = read(v->tick, &n, sizeof(n));
    uint64_t waited = now_ms() - v->away_since_ms;
    if (waited > VHU_DP_RECONNECT_MS) {
        log_warn("vhost-user %s: the backend did not come back within %d s", v->path,
                 VHU_DP_RECONNECT_MS / 1000);
        return -ECONNRESET;
    }
    uint64_t acked = v->features;
    if (vhu_connect(&v->c, v->path, v->timeout_ms) < 0)
        return 0; /* not listening yet */
    int rc = vhu_handshake(&v->c);
    if (rc == 0 && v->inflight_fd >= 0 && !vhu_has_protocol(&v->c, VHU_PF_INFLIGHT_SHMFD))
        rc = -EPROTONOSUPPORT; /* the new backend could not take the requests back */
    if (rc == 0 && v->started &&
        ((acked | (1ull << VHU_F_PROTOCOL_FEATURES)) & ~v->c.backend_features))
        rc = -EPROTONOSUPPORT; /* it lacks a feature the guest uses */
    if (rc == 0 && v->started)
        rc = vhu_dp_program(v, true);
    if (rc == -EPROTONOSUPPORT) {
        log_warn("vhost-user %s: the new backend cannot take over the device", v->path);
        return rc;
    }
    if (rc < 0) {
        vhu_disconnect(&v->c); /* a backend still starting: try again on the next tick */
        return 0;
    }
    if (vhu_dp_watch(v, v->tick, v->c.sock) < 0)
        return -ECONNRESET;
    v->away = false;
    v->reconnects++;
    log_warn("vhost-user %s: the backend is back after %llu ms; the rings go on", v->path,
             (unsigned long long)waited);
    return 1;
}

/*
 * Called by the main loop with the device lock held, so no request is in
 * progress.  Connected: the backend has no reason to send anything on this
 * channel (wisp negotiates no backend requests), so readable means EOF or
 * a protocol violation, and the backend is treated as gone.
 */
static int vhu_dp_check(void *dp)
{
    struct vhu_dp *v = dp;
    if (v->away)
        return vhu_dp_retry(v);
    if (v->c.dead || v->c.sock < 0)
        return vhu_dp_lost(v);
    char b;
    ssize_t n = recv(v->c.sock, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0; /* a reply a request already consumed */
    if (n > 0)
        return -EPROTO; /* an unsolicited message: hostile, no second chance */
    return vhu_dp_lost(v);
}

static void vhu_dp_destroy(void *dp)
{
    struct vhu_dp *v = dp;
    if (!v)
        return;
    vhu_disconnect(&v->c);
    vhu_dp_drop_inflight(v);
    if (v->ep >= 0)
        close(v->ep);
    if (v->tick >= 0)
        close(v->tick);
    free(v);
}

const struct virtio_dataplane_ops vhu_dp_ops = {
    .kind = "vhost-user",
    .features = vhu_dp_features,
    .config_read = vhu_dp_config_read,
    .config_write = vhu_dp_config_write,
    .start = vhu_dp_start,
    .stop = vhu_dp_stop,
    .watch_fd = vhu_dp_watch_fd,
    .check = vhu_dp_check,
    .destroy = vhu_dp_destroy,
};

unsigned vhu_dp_reconnects(void *dp)
{
    return ((struct vhu_dp *)dp)->reconnects;
}

int vhu_dp_create(const char *path, const struct gmem *mem, int timeout_ms, const void *config,
                  uint32_t config_len, bool reconnect, void **out, struct errbuf *err)
{
    if (config && (config_len == 0 || config_len > VHU_DP_MAX_OWN_CONFIG))
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "internal: vhost-user config of %u bytes",
                       config_len);
    if (mem->fd < 0)
        return err_set(err, WISP_EXIT_HOST, EINVAL,
                       "vhost-user %s: guest RAM is not shareable (no memfd)", path);
    struct vhu_dp *v = calloc(1, sizeof(*v));
    if (!v)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    v->mem = mem;
    v->ep = v->tick = v->inflight_fd = -1;
    v->c.sock = -1;
    v->timeout_ms = timeout_ms;
    snprintf(v->path, sizeof(v->path), "%s", path);
    if (config) {
        memcpy(v->own, config, config_len);
        v->own_len = config_len;
    }
    int rc = vhu_connect(&v->c, path, timeout_ms);
    if (rc < 0) {
        err_set(err, WISP_EXIT_HOST, -rc, "vhost-user %s: cannot connect: %s", path, strerror(-rc));
        goto fail;
    }
    rc = vhu_handshake(&v->c);
    if (rc < 0) {
        err_set(err, WISP_EXIT_HOST, -rc, "vhost-user %s: handshake failed: %s", path,
                strerror(-rc));
        goto fail;
    }
    if (!config && !vhu_has_protocol(&v->c, VHU_PF_CONFIG)) {
        rc = -ENOTSUP;
        err_set(err, WISP_EXIT_HOST, ENOTSUP,
                "vhost-user %s: the backend does not offer its config space (CONFIG)", path);
        goto fail;
    }
    v->can_reconnect = reconnect;
    /* A fixed tick: no timerfd_settime is needed once the sandbox is on. */
    struct itimerspec its = {.it_interval = {0, VHU_DP_RETRY_MS * 1000000L},
                             .it_value = {0, VHU_DP_RETRY_MS * 1000000L}};
    v->ep = epoll_create1(EPOLL_CLOEXEC);
    v->tick = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (v->ep < 0 || v->tick < 0 || timerfd_settime(v->tick, 0, &its, NULL) < 0 ||
        vhu_dp_watch(v, -1, v->c.sock) < 0) {
        rc = -errno;
        err_set(err, WISP_EXIT_HOST, errno, "vhost-user %s: cannot watch the backend: %s", path,
                strerror(errno));
        goto fail;
    }
    *out = v;
    return 0;
fail:
    vhu_dp_destroy(v);
    return rc;
}
