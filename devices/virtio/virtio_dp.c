/*
 * The generic virtio device over an external data plane (see virtio_dp.h):
 * config space cached from the data plane, DRIVER_OK starts it with the
 * transport's kick eventfds and wisp's call eventfds, reset stops it, call
 * eventfds become used-buffer interrupts through the transport.  Its
 * migration (quiesce, resume, the dirty rule) is in virtio_dp_mig.c.
 */
#include "devices/virtio/virtio_dp.h"
#include "devices/virtio/virtio_dp_internal.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/virtio/blk.h"
#include "devices/virtio/vsock.h"
#include "vmm/log.h"
#include "vmm/metrics.h"

static void virtio_dp_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
    memcpy(data, dp_of(d)->config + off, len); /* the transport checked off + len */
}

static void virtio_dp_config_write(struct virtio_dev *d, uint32_t off, const void *data,
                                   uint32_t len)
{
    struct virtio_dp_dev *v = dp_of(d);
    if (v->dead || !v->dpo->config_write)
        return;
    if (v->dpo->config_write(v->dp, off, data, len) < 0) {
        v->dead = true;
        virtio_dev_fail(d, "data plane refused a config write");
        return;
    }
    memcpy(v->config + off, data, len);
}

/* The data plane failed: no more calls into it until it is replaced. */
void virtio_dp_die(struct virtio_dp_dev *v, const char *why)
{
    if (!v->dead && v->watch >= 0) {
        evloop_del(v->dev.loop, v->watch);
        v->watch = -1;
    }
    if (!v->dead)
        METRICS_ADD(v->dev.metrics, dataplane_failures, 1);
    v->dead = true;
    virtio_dev_fail(&v->dev, why);
}

/* Take every kick fd back from the data plane (the transport polls them again). */
void virtio_dp_unhand(struct virtio_dp_dev *v)
{
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
        if (v->handed[q] && v->dev.tops && v->dev.tops->kick_fd)
            (void)v->dev.tops->kick_fd(&v->dev, (uint16_t)q, false);
        v->handed[q] = false;
    }
}

static void virtio_dp_stop(struct virtio_dp_dev *v)
{
    if (v->nstarted && !v->dead) {
        /* A guest reset or teardown: the positions are not needed. */
        if (v->dpo->stop(v->dp, v->started, v->nstarted, NULL) < 0)
            virtio_dp_die(v, "data plane failed to stop its queues");
    }
    v->nstarted = 0;
    virtio_dp_unhand(v);
}

int virtio_dp_activate(struct virtio_dev *d)
{
    struct virtio_dp_dev *v = dp_of(d);
    if (v->dead)
        return -ECONNRESET;
    unsigned n = 0;
    for (unsigned q = 0; q < d->ops->num_queues; q++) {
        const struct virtq *vq = &d->vq[q];
        if (!vq->active || (v->vmm_queues & (1u << q)))
            continue;
        int kick = v->own_kick[q];
        if (d->tops && d->tops->kick_fd) {
            kick = d->tops->kick_fd(d, (uint16_t)q, true);
            if (kick < 0)
                goto fail;
            v->handed[q] = true;
        }
        v->started[n++] = (struct virtio_dp_queue){.index = (uint16_t)q,
                                                   .size = vq->cfg.size,
                                                   .next_avail = vq->last_avail,
                                                   .desc = vq->cfg.desc_gpa,
                                                   .avail = vq->cfg.avail_gpa,
                                                   .used = vq->cfg.used_gpa,
                                                   .kick_fd = kick,
                                                   .call_fd = v->call[q].fd};
    }
    /* Bits the guest acked that only describe wisp's view (blk's profile limits
     * the data plane does not offer) are not the data plane's to know. */
    uint64_t acked = d->guest_features & ~v->vmm_features & v->dp_features;
    if (v->dpo->start(v->dp, acked, v->started, n) < 0) {
        virtio_dp_die(v, "data plane failed to start");
        goto fail;
    }
    v->nstarted = n;
    v->ran = true;
    return 0;
fail:
    virtio_dp_unhand(v);
    return -EIO;
}

void virtio_dp_queue_notify(struct virtio_dev *d, uint16_t q)
{
    struct virtio_dp_dev *v = dp_of(d);
    for (unsigned i = 0; i < v->nstarted; i++) {
        if (v->started[i].index != q)
            continue;
        uint64_t one = 1;
        /* Relay: the data plane polls this eventfd (fails only on overflow). */
        ssize_t r __unused = write(v->started[i].kick_fd, &one, sizeof(one));
    }
}

static void virtio_dp_reset(struct virtio_dev *d)
{
    virtio_dp_stop(dp_of(d));
    dp_of(d)->quiesced = false; /* a restore resets first: nothing to restart */
}

static int virtio_dp_save(struct virtio_dev *d, struct vstate_out *out)
{
    (void)d;
    (void)out;
    return -ENOTSUP; /* never reached: `unmigratable` refuses first */
}

static int virtio_dp_load(struct virtio_dev *d, struct vstate_in *in)
{
    (void)d;
    (void)in;
    return -ENOTSUP;
}

static void virtio_dp_destroy(struct virtio_dev *d)
{
    struct virtio_dp_dev *v = dp_of(d);
    pthread_mutex_lock(&d->lock);
    virtio_dp_stop(v);
    pthread_mutex_unlock(&d->lock);
    if (v->watch >= 0)
        evloop_del(d->loop, v->watch);
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
        if (v->call[q].fd >= 0) {
            evloop_del(d->loop, v->call[q].fd);
            close(v->call[q].fd);
        }
        if (v->own_kick[q] >= 0)
            close(v->own_kick[q]);
    }
    if (v->dpo && v->dpo->destroy)
        v->dpo->destroy(v->dp);
    virtio_dev_fini(d);
    free(v);
}

/* Main loop: the data plane used buffers on queue c->q. */
static void virtio_dp_call_handler(void *opaque, uint32_t events)
{
    struct virtio_dp_call *c = opaque;
    struct virtio_dev *d = &c->dev->dev;
    uint64_t n;
    (void)events;
    ssize_t r __unused = read(c->fd, &n, sizeof(n)); /* drain first: no call is lost */
    pthread_mutex_lock(&d->lock);
    /* Through the transport, so InterruptStatus bit 0 is set before the irqfd fires. */
    if (c->dev->nstarted && !c->dev->dead && d->tops) {
        METRICS_ADD(d->metrics, dataplane_calls, 1);
        d->tops->notify_used(d);
    }
    pthread_mutex_unlock(&d->lock);
}

/* Main loop: the data plane's watch fd fired (EOF, error, or an unsolicited message). */
static void virtio_dp_watch_handler(void *opaque, uint32_t events)
{
    struct virtio_dp_dev *v = opaque;
    (void)events;
    pthread_mutex_lock(&v->dev.lock);
    int r = v->dead ? 0 : v->dpo->check(v->dp);
    if (r < 0)
        virtio_dp_die(v, "data plane disconnected");
    else if (r > 0)
        METRICS_ADD(v->dev.metrics, dataplane_reconnects, 1);
    pthread_mutex_unlock(&v->dev.lock);
}

/*
 * The device ops of one type: everything but its identity goes to the
 * generic model.  `unmig` NULL: each device names its data plane's reason
 * (virtio_dp_create).
 */
#define DP_OPS_FULL(name, typ, id, nq, qmax, cfg, cw, sv, ld, unmig)                               \
    static const struct virtio_dev_ops name = {                                                    \
        .type = typ,                                                                               \
        .device_id = id,                                                                           \
        .num_queues = nq,                                                                          \
        .queue_max_size = qmax,                                                                    \
        .config_size = cfg,                                                                        \
        .config_read = virtio_dp_config_read,                                                      \
        .config_write = cw,                                                                        \
        .activate = virtio_dp_activate,                                                            \
        .queue_notify = virtio_dp_queue_notify,                                                    \
        .reset = virtio_dp_reset,                                                                  \
        .save = sv,                                                                                \
        .load = ld,                                                                                \
        .unmigratable = unmig,                                                                     \
        .destroy = virtio_dp_destroy,                                                              \
    }
/* A type whose config the driver may write and that cannot migrate. */
#define DP_OPS(name, typ, id, nq, qmax, cfg, unmig)                                                \
    DP_OPS_FULL(name, typ, id, nq, qmax, cfg, virtio_dp_config_write, virtio_dp_save,              \
                virtio_dp_load, unmig)

/*
 * blk: the guest sees wisp's virtio-blk profile (blk.h), not the data
 * plane's own config space, so the device is the same whatever serves it
 * and its state moves between data planes.  The config is then read-only
 * (no CONFIG_WCE), and the device record is the built-in device's
 * (virtio_blk_record), with the ID string unknown.
 */
static void blk_record(const struct virtio_dev *d, struct virtio_blk_record *r)
{
    const struct virtio_dp_dev *v = (const struct virtio_dp_dev *)d;
    memset(r, 0, sizeof(*r)); /* serial unknown: the data plane answers GET_ID */
    r->capacity = le64_get(v->config);
    r->read_only = d->host_features & VIRTIO_BIT(VIRTIO_BLK_F_RO);
    memcpy(r->config, v->config, sizeof(r->config));
}

static int virtio_dp_blk_save(struct virtio_dev *d, struct vstate_out *out)
{
    struct virtio_blk_record r;
    blk_record(d, &r);
    return virtio_blk_record_save(&r, out);
}

static int virtio_dp_blk_load(struct virtio_dev *d, struct vstate_in *in)
{
    struct virtio_blk_record r;
    blk_record(d, &r);
    return virtio_blk_record_check(d->id, &r, in);
}

DP_OPS_FULL(virtio_dp_blk_ops, "blk", VIRTIO_ID_BLOCK, 1, 256, VIRTIO_BLK_CONFIG_SIZE, NULL,
            virtio_dp_blk_save, virtio_dp_blk_load, NULL);

#define BLK_CFG(f) offsetof(struct virtio_blk_config_space, f)

/* The data plane's limits must not be below the profile's: the guest goes by the profile. */
static int blk_guest_view(uint64_t f, uint8_t *cfg, uint64_t *offer, char *why, size_t whylen)
{
    uint32_t blk_size = le32_get(cfg + BLK_CFG(blk_size));
    uint32_t seg_max = le32_get(cfg + BLK_CFG(seg_max));
    uint32_t size_max = le32_get(cfg + BLK_CFG(size_max));
    if ((f & VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE)) && blk_size != BLK_SECTOR_SIZE) {
        snprintf(why, whylen, "its logical block size is %u bytes; wisp's blk presents %u",
                 blk_size, BLK_SECTOR_SIZE);
        return -EOPNOTSUPP;
    }
    if ((f & VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX)) && seg_max < VIRTIO_BLK_SEG_MAX) {
        snprintf(why, whylen, "it takes %u segments per request; wisp's blk presents %u", seg_max,
                 VIRTIO_BLK_SEG_MAX);
        return -EOPNOTSUPP;
    }
    /* qemu-storage-daemon offers SIZE_MAX with 0: no limit. */
    if ((f & VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX)) && size_max && size_max < VIRTIO_BLK_SIZE_MAX) {
        snprintf(why, whylen, "its segments hold %u bytes; wisp's blk presents %u", size_max,
                 VIRTIO_BLK_SIZE_MAX);
        return -EOPNOTSUPP;
    }
    struct virtio_blk_caps caps = {
        .capacity = le64_get(cfg + BLK_CFG(capacity)),
        .read_only = f & VIRTIO_BIT(VIRTIO_BLK_F_RO),
        .flush = f & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH),
        /* Offered only when one segment of the profile's size is allowed. */
        .discard = (f & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD)) &&
                   le32_get(cfg + BLK_CFG(max_discard_sectors)) >= VIRTIO_BLK_MAX_DWZ_SECTORS &&
                   le32_get(cfg + BLK_CFG(max_discard_seg)) != 0,
        .write_zeroes =
            (f & VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES)) &&
            le32_get(cfg + BLK_CFG(max_write_zeroes_sectors)) >= VIRTIO_BLK_MAX_DWZ_SECTORS &&
            le32_get(cfg + BLK_CFG(max_write_zeroes_seg)) != 0,
    };
    *offer = virtio_blk_profile(&caps, cfg);
    return 0;
}

const struct virtio_dp_type virtio_dp_blk = {
    .ops = &virtio_dp_blk_ops,
    /* The ring features wisp's transport supports; the device bits come from the profile. */
    .offer_mask = VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX) |
                  VIRTIO_BIT(VIRTIO_F_VERSION_1),
    .guest_view = blk_guest_view,
    .migratable = true,
};

#define VSOCK_CONFIG_SIZE      8U /* le64 guest_cid */
#define VSOCK_F_STREAM         0
#define VSOCK_F_SEQPACKET      1
#define VSOCK_F_NO_IMPL_STREAM 2
#define VSOCK_EVENT_QUEUE      2

DP_OPS(virtio_dp_vsock_ops, "vsock", VIRTIO_ID_VSOCK, 3, 256, VSOCK_CONFIG_SIZE,
       "its queues are served by the host kernel (vhost-vsock), whose connections "
       "cannot move; migrating or snapshotting it is not supported");

const struct virtio_dp_type virtio_dp_vsock = {
    .ops = &virtio_dp_vsock_ops,
    .offer_mask = VIRTIO_BIT(VSOCK_F_STREAM) | VIRTIO_BIT(VSOCK_F_SEQPACKET) |
                  VIRTIO_BIT(VSOCK_F_NO_IMPL_STREAM) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
                  VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | VIRTIO_BIT(VIRTIO_F_VERSION_1),
    .vmm_queues = 1u << VSOCK_EVENT_QUEUE,
};

/* virtio-net (virtio 1.2 §5.1) over a data plane: rx and tx, no control queue. */
#define NET_F_CSUM       0
#define NET_F_GUEST_CSUM 1
#define NET_F_GUEST_TSO4 7
#define NET_F_GUEST_TSO6 8
#define NET_F_GUEST_UFO  10
#define NET_F_HOST_TSO4  11
#define NET_F_HOST_TSO6  12
#define NET_F_HOST_UFO   14
#define NET_F_MAC        5
#define NET_F_MRG_RXBUF  15
#define NET_F_STATUS     16
#define NET_S_LINK_UP    1

DP_OPS(virtio_dp_net_ops, "net", VIRTIO_ID_NET, 2, 256, VIRTIO_NET_DP_CONFIG_SIZE, NULL);

const struct virtio_dp_type virtio_dp_net = {
    .ops = &virtio_dp_net_ops,
    .offer_mask = VIRTIO_BIT(NET_F_CSUM) | VIRTIO_BIT(NET_F_GUEST_CSUM) |
                  VIRTIO_BIT(NET_F_GUEST_TSO4) | VIRTIO_BIT(NET_F_GUEST_TSO6) |
                  VIRTIO_BIT(NET_F_GUEST_UFO) | VIRTIO_BIT(NET_F_HOST_TSO4) |
                  VIRTIO_BIT(NET_F_HOST_TSO6) | VIRTIO_BIT(NET_F_HOST_UFO) |
                  VIRTIO_BIT(NET_F_MRG_RXBUF) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
                  VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | VIRTIO_BIT(VIRTIO_F_VERSION_1),
    .vmm_features = VIRTIO_BIT(NET_F_MAC) | VIRTIO_BIT(NET_F_STATUS),
};

void virtio_dp_net_config(const uint8_t mac[6], uint8_t out[VIRTIO_NET_DP_CONFIG_SIZE])
{
    memset(out, 0, VIRTIO_NET_DP_CONFIG_SIZE);
    memcpy(out, mac, 6);
    out[6] = NET_S_LINK_UP; /* status, le16 */
    out[8] = 1;             /* max_virtqueue_pairs (without MQ: informational) */
}

/* virtio-fs (virtio 1.2 §5.11): hiprio (0) and one request queue (1); tag[36] + le32. */
/* 128 entries per queue: QEMU's vhost-user-fs default. */
DP_OPS(virtio_dp_fs_ops, "fs", VIRTIO_ID_FS, 2, 128, VIRTIO_FS_CONFIG_SIZE, NULL);

const struct virtio_dp_type virtio_dp_fs = {
    .ops = &virtio_dp_fs_ops,
    /* No device features (NOTIFICATION is not offered): the ring features only. */
    .offer_mask = VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX) |
                  VIRTIO_BIT(VIRTIO_F_VERSION_1),
};

int virtio_dp_fs_config(const char *tag, uint8_t out[VIRTIO_FS_CONFIG_SIZE])
{
    size_t n = tag ? strlen(tag) : 0;
    if (n == 0 || n > VIRTIO_FS_TAG_MAX)
        return -EINVAL;
    memset(out, 0, VIRTIO_FS_CONFIG_SIZE);
    memcpy(out, tag, n); /* not NUL-terminated when it takes all 36 bytes (the spec's rule) */
    out[VIRTIO_FS_TAG_MAX] = 1; /* num_request_queues, le32 */
    return 0;
}

int virtio_dp_create(const struct virtio_dp_type *type, const char *id,
                     const struct virtio_dataplane_ops *dpo, void *dp, const struct gmem *mem,
                     struct evloop *loop, struct virtio_dev **out, struct errbuf *err)
{
    const char *name = id ? id : type->ops->type;
    uint64_t f = dpo->features(dp);
    if (!(f & VIRTIO_BIT(VIRTIO_F_VERSION_1))) {
        dpo->destroy(dp);
        return err_set(err, WISP_EXIT_HOST, EPROTONOSUPPORT,
                       "virtio %s: the %s data plane does not offer VERSION_1", name, dpo->kind);
    }
    struct virtio_dp_dev *v = calloc(1, sizeof(*v));
    if (!v) {
        dpo->destroy(dp);
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    }
    v->ops = *type->ops;
    if (!v->ops.unmigratable && (!type->migratable || dpo->unmigratable)) {
        snprintf(v->unmigratable, sizeof(v->unmigratable),
                 "its queues are served by an external data plane (%s): %s", dpo->kind,
                 dpo->unmigratable ? dpo->unmigratable
                                   : "the state of this device type over it is not portable yet");
        v->ops.unmigratable = v->unmigratable;
    }
    virtio_dev_init(&v->dev, &v->ops, id, mem, loop, 0);
    v->dev.host_features = ((f & type->offer_mask) | type->vmm_features) & ~VIRTIO_F_NEVER_OFFERED;
    v->vmm_features = type->vmm_features;
    v->dp_features = f;
    v->dpo = dpo;
    v->dp = dp;
    v->vmm_queues = type->vmm_queues;
    v->watch = -1;
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
        v->call[q] = (struct virtio_dp_call){.dev = v, .q = (uint16_t)q, .fd = -1};
        v->own_kick[q] = -1;
    }
    int r = dpo->config_read(dp, 0, v->config, type->ops->config_size);
    if (r < 0) {
        err_set(err, WISP_EXIT_HOST, -r, "virtio %s: cannot read config space from %s: %s", name,
                dpo->kind, strerror(-r));
        goto fail;
    }
    if (type->guest_view) {
        char why[160] = "";
        uint64_t offer = 0;
        r = type->guest_view(f, v->config, &offer, why, sizeof(why));
        if (r < 0) {
            err_set(err, WISP_EXIT_HOST, -r, "virtio %s: the %s data plane cannot serve it: %s",
                    name, dpo->kind, why);
            goto fail;
        }
        v->dev.host_features = (v->dev.host_features | offer) & ~VIRTIO_F_NEVER_OFFERED;
    }
    for (unsigned q = 0; q < type->ops->num_queues; q++) {
        v->call[q].fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        v->own_kick[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (v->call[q].fd < 0 || v->own_kick[q] < 0) {
            r = -errno;
            err_set(err, WISP_EXIT_HOST, errno, "virtio %s: eventfd: %s", name, strerror(errno));
            goto fail;
        }
        r = evloop_add(loop, v->call[q].fd, EPOLLIN, virtio_dp_call_handler, &v->call[q]);
        if (r < 0) {
            close(v->call[q].fd); /* not in the loop: destroy must not evloop_del it */
            v->call[q].fd = -1;
            err_set(err, WISP_EXIT_HOST, -r, "virtio %s: cannot watch queue %u calls: %s", name, q,
                    strerror(-r));
            goto fail;
        }
    }
    int w = dpo->watch_fd ? dpo->watch_fd(dp) : -1;
    if (w >= 0) {
        r = evloop_add(loop, w, EPOLLIN | EPOLLRDHUP, virtio_dp_watch_handler, v);
        if (r < 0) {
            err_set(err, WISP_EXIT_HOST, -r, "virtio %s: cannot watch the %s connection: %s", name,
                    dpo->kind, strerror(-r));
            goto fail;
        }
        v->watch = w;
    }
    *out = &v->dev;
    return 0;
fail:
    virtio_dp_destroy(&v->dev);
    return r < 0 ? r : -EIO;
}

bool virtio_dp_is(const struct virtio_dev *d)
{
    return d && d->ops && d->ops->activate == virtio_dp_activate;
}

const char *virtio_dp_kind(const struct virtio_dev *d)
{
    return ((const struct virtio_dp_dev *)d)->dpo->kind; /* dev is the first member */
}

bool virtio_dp_dead(struct virtio_dev *d)
{
    pthread_mutex_lock(&d->lock);
    bool dead = dp_of(d)->dead;
    pthread_mutex_unlock(&d->lock);
    return dead;
}
