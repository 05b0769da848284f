/*
 * vhost-user data plane (see vhost_user_dp.h): virtio_dataplane_ops over a
 * vhu_conn.
 */
#include "devices/vhost/vhost_user_dp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "devices/vhost/vhost_user.h"

struct vhu_dp {
    struct vhu_conn c;
    const struct gmem *mem;
    uint32_t own_len; /* > 0: wisp serves the config space (own[]), read-only */
    uint8_t own[VHU_DP_MAX_OWN_CONFIG];
};

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

static int vhu_dp_start(void *dp, uint64_t features, const struct virtio_dp_queue *q, unsigned n)
{
    struct vhu_dp *v = dp;
    int rc = vhu_set_features(&v->c, features);
    if (rc < 0)
        return rc;
    rc = vhu_set_mem_table(&v->c, v->mem);
    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < n; i++) {
        /* The transport validated the rings (virtq_activate); translate them again anyway. */
        uint64_t sz = q[i].size;
        struct vhu_vring r = {.size = q[i].size,
                              .base = q[i].next_avail,
                              .desc = vhu_dp_hva(v->mem, q[i].desc, 16 * sz),
                              .avail = vhu_dp_hva(v->mem, q[i].avail, 6 + 2 * sz),
                              .used = vhu_dp_hva(v->mem, q[i].used, 6 + 8 * sz),
                              .kick_fd = q[i].kick_fd,
                              .call_fd = q[i].call_fd};
        if (!r.desc || !r.avail || !r.used)
            return -EFAULT;
        rc = vhu_vring_start(&v->c, q[i].index, &r);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int vhu_dp_stop(void *dp, const struct virtio_dp_queue *q, unsigned n, uint16_t *next)
{
    struct vhu_dp *v = dp;
    for (unsigned i = 0; i < n; i++) {
        uint16_t pos;
        int rc = vhu_vring_stop(&v->c, q[i].index, &pos);
        if (rc == 0 && next)
            next[i] = pos;
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int vhu_dp_watch_fd(void *dp)
{
    return ((struct vhu_dp *)dp)->c.sock;
}

/*
 * Called by the main loop with the device lock held, so no request is in
 * progress: the backend has no reason to send anything on this channel
 * (wisp negotiates no backend requests), so readable means EOF or a
 * protocol violation.
 */
static int vhu_dp_check(void *dp)
{
    struct vhu_dp *v = dp;
    if (v->c.dead || v->c.sock < 0)
        return -ECONNRESET;
    char b;
    ssize_t n = recv(v->c.sock, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0; /* a reply a request already consumed */
    return n == 0 ? -ECONNRESET : n > 0 ? -EPROTO : -errno;
}

static void vhu_dp_destroy(void *dp)
{
    struct vhu_dp *v = dp;
    if (!v)
        return;
    vhu_disconnect(&v->c);
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
    .unmigratable = "vhost-user device state transfer is not implemented",
    .destroy = vhu_dp_destroy,
};

int vhu_dp_create(const char *path, const struct gmem *mem, int timeout_ms, const void *config,
                  uint32_t config_len, void **out, struct errbuf *err)
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
    *out = v;
    return 0;
fail:
    vhu_dp_destroy(v);
    return rc;
}
