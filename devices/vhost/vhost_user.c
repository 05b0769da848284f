/*
 * vhost-user frontend conversation (see vhost_user.h): handshake, memory
 * table, ring start and stop over a deadline-bounded socket, every reply
 * checked by the codec, the first failure fatal to the connection.
 */
#include "devices/vhost/vhost_user.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "devices/vhost/vhost_user_sock.h"
#include "devices/virtio/virtio.h"
#include "vmm/log.h"

/* Marks the connection dead with its first error; returns rc for tail calls. */
static int vhu_fail(struct vhu_conn *c, uint32_t req, int rc)
{
    if (!c->dead) {
        char nb[24];
        log_warn("vhost-user: %s failed: %s; backend connection dropped",
                 vhu_req_name(req, nb, sizeof(nb)), strerror(-rc));
        c->dead = true;
        c->err = rc;
        if (c->sock >= 0)
            shutdown(c->sock, SHUT_RDWR);
    }
    return rc;
}

static int vhu_check_alive(const struct vhu_conn *c)
{
    return (c->dead || c->sock < 0) ? -ECONNRESET : 0;
}

/* NEED_REPLY when REPLY_ACK was negotiated, else nothing. */
static uint32_t vhu_ack_flag(const struct vhu_conn *c)
{
    return vhu_has_protocol(c, VHU_PF_REPLY_ACK) ? VHU_F_NEED_REPLY : 0;
}

/*
 * Sends the message in c->buf[0..len) with fds; if it asked for an ack
 * (NEED_REPLY in its header), waits for it: a non-zero ack is -EIO.
 */
static int vhu_send(struct vhu_conn *c, int len, const int *fds, unsigned nfds)
{
    struct vhu_hdr h;
    vhu_hdr_decode(c->buf, VHU_HDR_SIZE, &h);
    if (len < 0)
        return len; /* a builder's error is wisp's bug, not the backend's */
    int rc = vhu_check_alive(c);
    if (rc < 0)
        return rc;
    rc = vhu_sock_send(c->sock, c->buf, (size_t)len, fds, nfds, c->timeout_ms);
    if (rc < 0)
        return vhu_fail(c, h.request, rc);
    if (!(h.flags & VHU_F_NEED_REPLY))
        return 0;
    struct vhu_reply r;
    int fdsin[VHU_MAX_FDS];
    unsigned nin = 0;
    int n = vhu_sock_recv(c->sock, c->buf, sizeof(c->buf), fdsin, 0, &nin, c->timeout_ms);
    if (n < 0)
        return vhu_fail(c, h.request, n);
    rc = vhu_reply_parse(c->buf, (size_t)n, nin, h.request, VHU_REPLY_U64, 0, 0, &r);
    fdsock_close_fds(fdsin, nin); /* never expected; the parse refused them already */
    if (rc < 0)
        return vhu_fail(c, h.request, rc);
    if (r.u64 != 0)
        return vhu_fail(c, h.request, -EIO);
    return 0;
}

/* Sends c->buf[0..len) (no fds, no NEED_REPLY) and receives its reply of `kind` into *r. */
static int vhu_call(struct vhu_conn *c, int len, enum vhu_reply_kind kind, uint32_t cfg_off,
                    uint32_t cfg_size, struct vhu_reply *r)
{
    struct vhu_hdr h;
    vhu_hdr_decode(c->buf, VHU_HDR_SIZE, &h);
    int rc = vhu_send(c, len, NULL, 0);
    if (rc < 0)
        return rc;
    int fdsin[VHU_MAX_FDS];
    unsigned nin = 0;
    int n = vhu_sock_recv(c->sock, c->buf, sizeof(c->buf), fdsin, 0, &nin, c->timeout_ms);
    if (n < 0)
        return vhu_fail(c, h.request, n);
    rc = vhu_reply_parse(c->buf, (size_t)n, nin, h.request, kind, cfg_off, cfg_size, r);
    fdsock_close_fds(fdsin, nin);
    if (rc < 0)
        return vhu_fail(c, h.request, rc);
    return 0;
}

static int vhu_get_u64(struct vhu_conn *c, uint32_t req, uint64_t *v)
{
    struct vhu_reply r;
    int rc = vhu_call(c, vhu_build_bare(c->buf, sizeof(c->buf), req, 0), VHU_REPLY_U64, 0, 0, &r);
    if (rc == 0)
        *v = r.u64;
    return rc;
}

void vhu_adopt(struct vhu_conn *c, int sock, int timeout_ms)
{
    memset(c, 0, sizeof(*c));
    c->sock = sock;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : VHU_DEFAULT_TIMEOUT_MS;
    c->queue_num = 1;
}

int vhu_connect(struct vhu_conn *c, const char *path, int timeout_ms)
{
    vhu_adopt(c, -1, timeout_ms);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0)
        return -errno;
    int rc = 0;
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = -errno;
        if (rc == -EINPROGRESS || rc == -EAGAIN) {
            /* A full backlog: wait (bounded) for the backend to accept. */
            struct pollfd pfd = {.fd = s, .events = POLLOUT};
            int n = poll(&pfd, 1, c->timeout_ms);
            int err = 0;
            socklen_t el = sizeof(err);
            if (n == 0)
                rc = -ETIMEDOUT;
            else if (n < 0)
                rc = -errno;
            else if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
                rc = -errno;
            else
                rc = -err;
        }
    }
    if (rc < 0) {
        close(s);
        return rc;
    }
    c->sock = s;
    return 0;
}

int vhu_handshake(struct vhu_conn *c)
{
    uint64_t f = 0, pf = 0;
    int rc = vhu_get_u64(c, VHU_GET_FEATURES, &f);
    if (rc < 0)
        return rc;
    c->backend_features = f;
    if (!(f & (1ull << VHU_F_PROTOCOL_FEATURES)) || !(f & VIRTIO_BIT(VIRTIO_F_VERSION_1)))
        return vhu_fail(c, VHU_GET_FEATURES, -EPROTONOSUPPORT);
    rc = vhu_get_u64(c, VHU_GET_PROTOCOL_FEATURES, &pf);
    if (rc < 0)
        return rc;
    c->protocol_features = pf & VHU_WANTED_PROTOCOL;
    /* Not acked: REPLY_ACK applies only once the backend knows it is negotiated. */
    rc = vhu_send(
        c,
        vhu_build_u64(c->buf, sizeof(c->buf), VHU_SET_PROTOCOL_FEATURES, 0, c->protocol_features),
        NULL, 0);
    if (rc < 0)
        return rc;
    c->queue_num = 1;
    if (vhu_has_protocol(c, VHU_PF_MQ)) {
        uint64_t q = 0;
        rc = vhu_get_u64(c, VHU_GET_QUEUE_NUM, &q);
        if (rc < 0)
            return rc;
        if (q == 0)
            return vhu_fail(c, VHU_GET_QUEUE_NUM, -EPROTO);
        c->queue_num = q > VHU_MAX_QUEUES ? VHU_MAX_QUEUES : (uint32_t)q;
    }
    return vhu_send(c, vhu_build_bare(c->buf, sizeof(c->buf), VHU_SET_OWNER, vhu_ack_flag(c)), NULL,
                    0);
}

int vhu_get_config(struct vhu_conn *c, uint32_t offset, uint32_t size, void *out)
{
    if (!vhu_has_protocol(c, VHU_PF_CONFIG))
        return -ENOTSUP;
    if (size > VHU_MAX_CONFIG || offset > VHU_MAX_CONFIG - size)
        return -EINVAL;
    struct vhu_reply r;
    int rc =
        vhu_call(c, vhu_build_config(c->buf, sizeof(c->buf), VHU_GET_CONFIG, 0, offset, size, NULL),
                 VHU_REPLY_CONFIG, offset, size, &r);
    if (rc == 0)
        memcpy(out, r.cfg, size);
    return rc;
}

int vhu_set_config(struct vhu_conn *c, uint32_t offset, uint32_t size, const void *data)
{
    if (!vhu_has_protocol(c, VHU_PF_CONFIG))
        return -ENOTSUP;
    if (size > VHU_MAX_CONFIG || offset > VHU_MAX_CONFIG - size)
        return -EINVAL;
    return vhu_send(c,
                    vhu_build_config(c->buf, sizeof(c->buf), VHU_SET_CONFIG, vhu_ack_flag(c),
                                     offset, size, data),
                    NULL, 0);
}

int vhu_set_features(struct vhu_conn *c, uint64_t features)
{
    features |= 1ull << VHU_F_PROTOCOL_FEATURES;
    if (features & ~c->backend_features)
        return -EINVAL;
    return vhu_send(
        c, vhu_build_u64(c->buf, sizeof(c->buf), VHU_SET_FEATURES, vhu_ack_flag(c), features), NULL,
        0);
}

int vhu_set_mem_table(struct vhu_conn *c, const struct gmem *gm)
{
    if (gm->fd < 0 || gm->nregions == 0 || gm->nregions > VHU_MAX_REGIONS)
        return -EINVAL;
    struct vhu_mem_region r[VHU_MAX_REGIONS];
    int fds[VHU_MAX_REGIONS];
    for (unsigned i = 0; i < gm->nregions; i++) {
        const struct gmem_region *g = &gm->regions[i];
        r[i] = (struct vhu_mem_region){.gpa = g->gpa,
                                       .size = g->size,
                                       .uaddr = (uint64_t)(uintptr_t)g->hva,
                                       .mmap_offset = g->fd_offset};
        fds[i] = gm->fd; /* one fd per region, all the same memfd */
    }
    return vhu_send(c,
                    vhu_build_mem_table(c->buf, sizeof(c->buf), vhu_ack_flag(c), r, gm->nregions),
                    fds, gm->nregions);
}

/* SET_VRING_KICK/CALL: the ring index with the fd attached. */
static int vhu_vring_fd(struct vhu_conn *c, uint32_t req, uint32_t idx, int fd)
{
    uint64_t v = idx & VHU_VRING_IDX_MASK;
    if (fd < 0)
        v |= VHU_VRING_NOFD;
    return vhu_send(c, vhu_build_u64(c->buf, sizeof(c->buf), req, vhu_ack_flag(c), v),
                    fd < 0 ? NULL : &fd, fd < 0 ? 0 : 1);
}

int vhu_vring_start(struct vhu_conn *c, uint32_t idx, const struct vhu_vring *v)
{
    if (idx >= c->queue_num || v->size == 0 || (v->size & (v->size - 1)) || v->kick_fd < 0 ||
        v->call_fd < 0)
        return -EINVAL;
    uint32_t ack = vhu_ack_flag(c);
    int rc = vhu_send(
        c, vhu_build_state(c->buf, sizeof(c->buf), VHU_SET_VRING_NUM, ack, idx, v->size), NULL, 0);
    if (rc < 0)
        return rc;
    struct vhu_vring_addr a = {.index = idx, .desc = v->desc, .used = v->used, .avail = v->avail};
    rc = vhu_send(c, vhu_build_vring_addr(c->buf, sizeof(c->buf), ack, &a), NULL, 0);
    if (rc < 0)
        return rc;
    rc = vhu_send(c, vhu_build_state(c->buf, sizeof(c->buf), VHU_SET_VRING_BASE, ack, idx, v->base),
                  NULL, 0);
    if (rc < 0)
        return rc;
    /* The call fd first: the kick starts the ring, which may complete at once. */
    rc = vhu_vring_fd(c, VHU_SET_VRING_CALL, idx, v->call_fd);
    if (rc < 0)
        return rc;
    rc = vhu_vring_fd(c, VHU_SET_VRING_KICK, idx, v->kick_fd);
    if (rc < 0)
        return rc;
    return vhu_send(c, vhu_build_state(c->buf, sizeof(c->buf), VHU_SET_VRING_ENABLE, ack, idx, 1),
                    NULL, 0);
}

int vhu_vring_stop(struct vhu_conn *c, uint32_t idx, uint16_t *base)
{
    if (idx >= c->queue_num)
        return -EINVAL;
    int rc = vhu_send(
        c, vhu_build_state(c->buf, sizeof(c->buf), VHU_SET_VRING_ENABLE, vhu_ack_flag(c), idx, 0),
        NULL, 0);
    if (rc < 0)
        return rc;
    struct vhu_reply r;
    rc = vhu_call(c, vhu_build_state(c->buf, sizeof(c->buf), VHU_GET_VRING_BASE, 0, idx, 0),
                  VHU_REPLY_STATE, 0, 0, &r);
    if (rc < 0)
        return rc;
    if (r.index != idx || r.num > UINT16_MAX)
        return vhu_fail(c, VHU_GET_VRING_BASE, -EPROTO);
    *base = (uint16_t)r.num;
    return 0;
}

int vhu_get_inflight(struct vhu_conn *c, uint16_t num_queues, uint16_t queue_size, int *fd,
                     struct vhu_inflight *out)
{
    if (!vhu_has_protocol(c, VHU_PF_INFLIGHT_SHMFD))
        return -ENOTSUP;
    struct vhu_inflight ask = {.num_queues = num_queues, .queue_size = queue_size};
    int rc = vhu_send(c, vhu_build_inflight(c->buf, sizeof(c->buf), VHU_GET_INFLIGHT_FD, 0, &ask),
                      NULL, 0);
    if (rc < 0)
        return rc;
    int fdsin[VHU_MAX_FDS];
    unsigned nin = 0;
    int n = vhu_sock_recv(c->sock, c->buf, sizeof(c->buf), fdsin, 1, &nin, c->timeout_ms);
    if (n < 0)
        return vhu_fail(c, VHU_GET_INFLIGHT_FD, n);
    struct vhu_reply r;
    rc = vhu_reply_parse(c->buf, (size_t)n, nin, VHU_GET_INFLIGHT_FD, VHU_REPLY_INFLIGHT, 0, 0, &r);
    if (rc == 0 && (r.inflight.num_queues != num_queues || r.inflight.queue_size != queue_size))
        rc = -EPROTO;
    if (rc < 0) {
        fdsock_close_fds(fdsin, nin);
        return vhu_fail(c, VHU_GET_INFLIGHT_FD, rc);
    }
    *fd = fdsin[0];
    *out = r.inflight;
    return 0;
}

int vhu_set_inflight(struct vhu_conn *c, int fd, const struct vhu_inflight *in)
{
    if (!vhu_has_protocol(c, VHU_PF_INFLIGHT_SHMFD) || fd < 0)
        return -EINVAL;
    return vhu_send(
        c, vhu_build_inflight(c->buf, sizeof(c->buf), VHU_SET_INFLIGHT_FD, vhu_ack_flag(c), in),
        &fd, 1);
}

void vhu_disconnect(struct vhu_conn *c)
{
    if (c->sock >= 0)
        close(c->sock);
    c->sock = -1;
    c->dead = false;
    c->err = 0;
}
