/*
 * virtio-blk device lifecycle: creation, config space, activation, reset,
 * quiesce, save/load and destruction (see blk.h for the behaviour; the
 * request path is in blk_req.c).
 *
 * This file exists so that a disk image becomes a virtio device with a fixed
 * guest-visible contract: the config space is computed once at creation
 * from the backend's size and capabilities and never changes, which is also
 * what save/load compare to refuse a different disk on the other side.
 *
 * Reset and destroy drain the backend with completions dropped (see
 * blk_req.c, on_io_done): requests still in flight finish writing into
 * guest memory before we return, but their chains are not pushed, so a
 * queue the transport resets next (or already reset) is never touched.
 * The wait is bounded (drain_timeout_ms): a disk that does not answer in
 * time has its requests cancelled and abandoned (drain_dropping).
 */
#include "devices/virtio/blk_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/backends/blk_raw.h"
#include "vmm/log.h"

#define SNAP_NAME    "virtio-blk"
#define SNAP_VERSION 1

#define CFG_OFF(f) offsetof(struct virtio_blk_config_space, f)

static struct virtio_blk *to_blk(struct virtio_dev *d)
{
    return (struct virtio_blk *)d; /* dev is the first member */
}

/* ---- struct virtio_dev_ops (called with dev->lock held) ------------------- */

static void blk_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
    struct virtio_blk *b = to_blk(d);
    /* The transport bounds off + len by config_size; do not rely on it. */
    memset(data, 0, len);
    if (off < VIRTIO_BLK_CONFIG_SIZE)
        memcpy(data, b->config + off, MIN(len, VIRTIO_BLK_CONFIG_SIZE - off));
}

static int blk_activate(struct virtio_dev *d)
{
    /* Requests of an earlier life are still out: the disk hung (drain_dropping). */
    if (to_blk(d)->abandoned) {
        log_ratelimited(LOG_WARN, "virtio %s: DRIVER_OK while abandoned requests are in flight",
                        d->id);
        return -EBUSY;
    }
    /* A block device without its request queue is of no use: refuse early. */
    if (!d->vq[0].active) {
        log_ratelimited(LOG_WARN, "virtio %s: DRIVER_OK without the request queue", d->id);
        return -EINVAL;
    }
    return 0;
}

static void blk_queue_notify(struct virtio_dev *d, uint16_t q)
{
    struct virtio_blk *b = to_blk(d);
    if (q != 0)
        return;
    blk_req_process(b);
    blk_req_flush(b);
}

/*
 * Wait (for at most drain_timeout_ms) for every request in flight and forget
 * it without touching the rings.  Returns 0, or <0 when the disk did not
 * finish in time: the device is then `abandoned` and keeps dropping the
 * late completions, whatever queue the driver sets up meanwhile, and refuses
 * activation until they have all come back (blk_activate).
 */
static int drain_dropping(struct virtio_blk *b)
{
    b->drop_completions = true;
    int rc = b->be->ops->drain(b->be, b->drain_timeout_ms);
    b->need_signal = false;
    b->need_unplug = false;
    if (rc < 0 || b->inflight) {
        b->stats.drain_timeouts++;
        b->abandoned = true;
        log_ratelimited(LOG_ERROR,
                        "virtio %s: %u requests did not finish within %u ms; the device is "
                        "out of service until they do",
                        b->dev.id, b->inflight, b->drain_timeout_ms);
        return rc < 0 ? rc : -ETIMEDOUT;
    }
    b->drop_completions = false;
    return 0;
}

static void blk_reset(struct virtio_dev *d)
{
    /* Holds the caller (a vCPU writing Status = 0) for at most drain_timeout_ms. */
    (void)drain_dropping(to_blk(d));
}

int virtio_blk_record_save(const struct virtio_blk_record *r, struct vstate_out *out)
{
    vstate_begin(out, SNAP_NAME, SNAP_VERSION);
    vstate_put_u64(out, r->capacity);
    vstate_put_u8(out, r->read_only);
    vstate_put_bytes(out, r->config, sizeof(r->config));
    vstate_put_bytes(out, r->serial, sizeof(r->serial));
    return vstate_end(out);
}

static bool serial_known(const char *serial)
{
    for (unsigned i = 0; i < VIRTIO_BLK_ID_BYTES; i++)
        if (serial[i])
            return true;
    return false;
}

int virtio_blk_record_check(const char *id, const struct virtio_blk_record *mine,
                            struct vstate_in *in)
{
    struct virtio_blk_record r;
    uint16_t version;

    int rc = vstate_enter(in, SNAP_NAME, SNAP_VERSION, SNAP_VERSION, &version);
    if (rc < 0)
        return rc;
    r.capacity = vstate_get_u64(in);
    uint8_t ro = vstate_get_u8(in);
    vstate_get_bytes(in, r.config, sizeof(r.config));
    vstate_get_bytes(in, r.serial, sizeof(r.serial));
    rc = vstate_leave(in);
    if (rc < 0)
        return rc;
    if (in->err)
        return in->err;

    /* The guest keeps what it read (capacity, limits, RO): the disk must be the same. */
    if (r.capacity != mine->capacity) {
        log_error("virtio %s: saved disk has %" PRIu64 " sectors, this one %" PRIu64, id,
                  r.capacity, mine->capacity);
        return -EINVAL;
    }
    if (ro > 1) {
        log_error("virtio %s: saved read-only flag %u is invalid", id, ro);
        return -EINVAL;
    }
    if ((bool)ro != mine->read_only) {
        log_error("virtio %s: saved disk was %s, this one is %s", id, ro ? "read-only" : "writable",
                  mine->read_only ? "read-only" : "writable");
        return -EINVAL;
    }
    if (memcmp(r.config, mine->config, sizeof(r.config)) != 0) {
        log_error("virtio %s: saved config space differs (disk limits or features changed)", id);
        return -EINVAL;
    }
    /* All zero: an external data plane answers GET_ID, wisp does not know its string. */
    if (serial_known(r.serial) && serial_known(mine->serial) &&
        memcmp(r.serial, mine->serial, sizeof(r.serial)) != 0) {
        log_error("virtio %s: saved disk ID string differs", id);
        return -EINVAL;
    }
    return 0;
}

static void blk_record(const struct virtio_blk *b, struct virtio_blk_record *r)
{
    r->capacity = b->capacity;
    r->read_only = b->read_only;
    memcpy(r->config, b->config, sizeof(r->config));
    memcpy(r->serial, b->serial, sizeof(r->serial));
}

static int blk_save(struct virtio_dev *d, struct vstate_out *out)
{
    struct virtio_blk *b = to_blk(d);
    struct virtio_blk_record r;

    if (b->inflight) {
        log_error("virtio %s: cannot save with %u requests in flight (quiesce the device first)",
                  d->id, b->inflight);
        return -EBUSY;
    }
    blk_record(b, &r);
    return virtio_blk_record_save(&r, out);
}

static int blk_load(struct virtio_dev *d, struct vstate_in *in)
{
    struct virtio_blk *b = to_blk(d);
    struct virtio_blk_record r;

    blk_record(b, &r);
    int rc = virtio_blk_record_check(d->id, &r, in);
    if (rc < 0)
        return rc;
    if (b->inflight)
        return -EBUSY;
    return 0;
}

static void blk_destroy(struct virtio_dev *d)
{
    struct virtio_blk *b = to_blk(d);

    /* No more handler calls after this: then nothing else can reach the device. */
    if (b->be_fd_watched)
        evloop_del(d->loop, b->be->event_fd);
    if (b->resched_watched)
        evloop_del(d->loop, b->resched_fd);
    pthread_mutex_lock(&d->lock);
    int rc = drain_dropping(b);
    pthread_mutex_unlock(&d->lock);
    if (rc < 0) {
        /* The kernel may still write to the slots' iovecs' targets and post
         * completions naming the slots: leave the backend and the slots
         * allocated rather than let it write into reused memory. */
        log_error("virtio %s: leaving the disk backend allocated: %u requests never finished",
                  d->id, b->inflight);
    } else {
        b->be->ops->destroy(b->be);
        free(b->reqs);
    }
    if (b->resched_fd >= 0)
        close(b->resched_fd);
    virtio_dev_fini(d);
    free(b);
}

static const struct virtio_dev_ops blk_ops = {
    .type = "blk",
    .device_id = VIRTIO_ID_BLOCK,
    .num_queues = 1,
    .queue_max_size = VIRTIO_BLK_QUEUE_SIZE,
    .config_size = VIRTIO_BLK_CONFIG_SIZE,
    .config_read = blk_config_read,
    .config_write = NULL, /* no CONFIG_WCE: nothing is writable */
    .activate = blk_activate,
    .queue_notify = blk_queue_notify,
    .reset = blk_reset,
    .save = blk_save,
    .load = blk_load,
    .unmigratable = NULL,
    .destroy = blk_destroy,
};

/* ---- creation ------------------------------------------------------------ */

uint64_t virtio_blk_profile(const struct virtio_blk_caps *caps,
                            uint8_t config[VIRTIO_BLK_CONFIG_SIZE])
{
    uint64_t f = VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
                 VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE);
    uint8_t *c = config;

    if (caps->flush)
        f |= VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);
    if (caps->read_only) {
        f |= VIRTIO_BIT(VIRTIO_BLK_F_RO);
    } else {
        /* Both write: offered on writable disks only. */
        if (caps->discard)
            f |= VIRTIO_BIT(VIRTIO_BLK_F_DISCARD);
        if (caps->write_zeroes)
            f |= VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
    }

    memset(c, 0, VIRTIO_BLK_CONFIG_SIZE);
    le64_put(c + CFG_OFF(capacity), caps->capacity);
    le32_put(c + CFG_OFF(size_max), VIRTIO_BLK_SIZE_MAX);
    le32_put(c + CFG_OFF(seg_max), VIRTIO_BLK_SEG_MAX);
    le32_put(c + CFG_OFF(blk_size), BLK_SECTOR_SIZE);
    if (f & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD)) {
        le32_put(c + CFG_OFF(max_discard_sectors), VIRTIO_BLK_MAX_DWZ_SECTORS);
        le32_put(c + CFG_OFF(max_discard_seg), 1);
        le32_put(c + CFG_OFF(discard_sector_alignment), VIRTIO_BLK_DISCARD_ALIGN);
    }
    if (f & VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES)) {
        le32_put(c + CFG_OFF(max_write_zeroes_sectors), VIRTIO_BLK_MAX_DWZ_SECTORS);
        le32_put(c + CFG_OFF(max_write_zeroes_seg), 1);
        /* may_unmap stays 0: not every backend unmaps (the driver then sends
         * no UNMAP flag; the built-in device would honour one). */
    }
    return f;
}

/* Features and config space from the backend; both fixed for the device's life. */
static uint64_t setup_config(struct virtio_blk *b)
{
    struct virtio_blk_caps caps = {
        .capacity = b->capacity,
        .read_only = b->read_only,
        .flush = b->be->caps & BLK_CAP_FLUSH,
        .discard = b->be->caps & BLK_CAP_DISCARD,
        .write_zeroes = b->be->caps & BLK_CAP_WRITE_ZEROES,
    };
    return virtio_blk_profile(&caps, b->config);
}

int virtio_blk_create_with_backend(const struct virtio_blk_config *cfg, struct blk_backend *be,
                                   const struct gmem *mem, struct evloop *loop,
                                   struct virtio_dev **out, struct errbuf *err)
{
    const char *id = cfg->id ? cfg->id : "blk";
    unsigned depth = cfg->queue_depth ? cfg->queue_depth : VIRTIO_BLK_QUEUE_SIZE;
    struct virtio_blk *b = NULL;
    int rc;

    *out = NULL;
    if (cfg->serial && strlen(cfg->serial) > VIRTIO_BLK_ID_BYTES) {
        rc = err_set(err, WISP_EXIT_USAGE, EINVAL, "disk %s: serial '%s' is longer than %d bytes",
                     id, cfg->serial, VIRTIO_BLK_ID_BYTES);
        goto err_be;
    }
    if (depth > VIRTIO_BLK_QUEUE_SIZE) {
        rc = err_set(err, WISP_EXIT_USAGE, EINVAL, "disk %s: queue depth %u is over %d", id, depth,
                     VIRTIO_BLK_QUEUE_SIZE);
        goto err_be;
    }
    if (be->size < BLK_SECTOR_SIZE || be->max_inflight == 0) {
        rc = err_set(err, WISP_EXIT_FAILURE, EINVAL, "disk %s: backend reports no usable size", id);
        goto err_be;
    }
    depth = MIN(depth, be->max_inflight);

    b = calloc(1, sizeof(*b));
    if (!b || !(b->reqs = calloc(depth, sizeof(*b->reqs)))) {
        rc = err_set(err, WISP_EXIT_FAILURE, ENOMEM, "disk %s: out of memory", id);
        goto err_free;
    }
    b->be = be;
    b->resched_fd = -1;
    b->capacity = be->size / BLK_SECTOR_SIZE;
    b->read_only = cfg->read_only || be->read_only;
    b->depth = depth;
    b->drain_timeout_ms =
        cfg->drain_timeout_ms ? cfg->drain_timeout_ms : VIRTIO_BLK_DRAIN_TIMEOUT_MS;
    blk_req_init_slots(b);
    virtio_dev_init(&b->dev, &blk_ops, id, mem, loop, setup_config(b));
    /* NUL-padded; exactly 20 bytes means no terminator (section 5.2.6). */
    const char *serial = cfg->serial ? cfg->serial : b->dev.id;
    memcpy(b->serial, serial, MIN(strlen(serial), sizeof(b->serial)));

    b->resched_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (b->resched_fd < 0) {
        rc = err_set(err, WISP_EXIT_FAILURE, errno, "disk %s: eventfd: %s", id, strerror(errno));
        goto err_dev;
    }
    rc = evloop_add(loop, be->event_fd, EPOLLIN, blk_req_backend_event, b);
    if (rc < 0) {
        rc = err_set(err, WISP_EXIT_FAILURE, -rc, "disk %s: cannot watch backend completions: %s",
                     id, strerror(-rc));
        goto err_dev;
    }
    b->be_fd_watched = true;
    rc = evloop_add(loop, b->resched_fd, EPOLLIN, blk_req_resched_event, b);
    if (rc < 0) {
        rc = err_set(err, WISP_EXIT_FAILURE, -rc, "disk %s: cannot watch reschedule eventfd: %s",
                     id, strerror(-rc));
        goto err_dev;
    }
    b->resched_watched = true;
    *out = &b->dev;
    return 0;

err_dev:
    blk_destroy(&b->dev); /* also destroys the backend */
    return rc;
err_free:
    if (b)
        free(b->reqs);
    free(b);
err_be:
    be->ops->destroy(be);
    return rc;
}

int virtio_blk_create(const struct virtio_blk_config *cfg, const struct gmem *mem,
                      struct evloop *loop, struct virtio_dev **out, struct errbuf *err)
{
    struct blk_raw_config raw = {
        .path = cfg->path,
        .read_only = cfg->read_only,
        .direct = cfg->direct,
        .max_inflight = cfg->queue_depth ? cfg->queue_depth : VIRTIO_BLK_QUEUE_SIZE,
    };
    struct blk_backend *be;

    *out = NULL;
    if (raw.max_inflight > VIRTIO_BLK_QUEUE_SIZE)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "disk %s: queue depth %u is over %d",
                       cfg->id ? cfg->id : "blk", raw.max_inflight, VIRTIO_BLK_QUEUE_SIZE);
    int r = blk_raw_open(&raw, &be, err);
    if (r < 0)
        return r;
    return virtio_blk_create_with_backend(cfg, be, mem, loop, out, err);
}

/* ---- host-side controls --------------------------------------------------- */

int virtio_blk_quiesce(struct virtio_dev *d)
{
    struct virtio_blk *b = to_blk(d);

    pthread_mutex_lock(&d->lock);
    b->quiesced = true;
    /* Completions go to the guest as usual; nothing new is popped meanwhile. */
    int rc = b->be->ops->drain(b->be, b->drain_timeout_ms);
    if (rc < 0)
        log_error("virtio %s: %u requests did not finish within %u ms", d->id, b->inflight,
                  b->drain_timeout_ms);
    blk_req_flush(b);
    pthread_mutex_unlock(&d->lock);
    return rc;
}

void virtio_blk_resume(struct virtio_dev *d)
{
    struct virtio_blk *b = to_blk(d);

    pthread_mutex_lock(&d->lock);
    b->quiesced = false;
    blk_req_process(b);
    blk_req_flush(b);
    pthread_mutex_unlock(&d->lock);
}

void virtio_blk_get_stats(struct virtio_dev *d, struct virtio_blk_stats *st)
{
    pthread_mutex_lock(&d->lock);
    *st = to_blk(d)->stats;
    pthread_mutex_unlock(&d->lock);
}
