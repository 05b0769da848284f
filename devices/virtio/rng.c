/*
 * virtio-rng device model (see rng.h).
 *
 * Why: a microVM has no hardware entropy sources worth trusting early in
 * boot; Linux's virtio_rng feeds the guest's pool from the host's, so
 * guests do not stall on getrandom() or reuse predictable keys.
 *
 * Bytes go straight from getrandom() into the guest buffers (the iovecs
 * of a popped chain, checked by the queue code to lie in guest RAM).
 * GRND_NONBLOCK keeps the event loop from ever waiting on the host pool;
 * before the host pool is initialised the request completes short.
 */
#include "devices/virtio/rng.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "vmm/log.h"

#define STATE_VERSION 1
#define LIVE_BLOCKERS (VIRTIO_STATUS_FAILED | VIRTIO_STATUS_DEVICE_NEEDS_RESET)
/* virtq_pop() cap: only the first VIRTIO_RNG_REQ_MAX bytes are ever written,
 * so a larger chain is fine; this only bounds the walk's arithmetic. */
#define CHAIN_MAX (1ULL << 32)

struct virtio_rng {
    struct virtio_dev vdev; /* first: the ops get &vdev */
    int kick_efd;           /* written to reschedule ourselves on the main loop */
    bool registered;
    struct virtq_chain chain;
    struct virtio_rng_stats stats;
};

static struct virtio_rng *to_rng(struct virtio_dev *d)
{
    return (struct virtio_rng *)d;
}

/* Fill up to VIRTIO_RNG_REQ_MAX writable bytes of c; returns how many were written. */
static uint32_t fill(struct virtio_rng *r, const struct virtq_chain *c)
{
    uint32_t done = 0;
    unsigned end = MIN(c->n_out + c->n_in, (unsigned)VIRTQ_MAX_IOV);
    for (unsigned i = c->n_out; i < end && done < VIRTIO_RNG_REQ_MAX; i++) {
        uint8_t *p = c->iov[i].iov_base;
        size_t want = MIN(c->iov[i].iov_len, (size_t)(VIRTIO_RNG_REQ_MAX - done));
        size_t got = 0;
        while (got < want) {
            ssize_t k = getrandom(p + got, want - got, GRND_NONBLOCK);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                r->stats.short_reads++;
                return done + (uint32_t)got;
            }
            got += (size_t)k;
        }
        done += (uint32_t)got;
    }
    return done;
}

static void process(struct virtio_rng *r)
{
    struct virtio_dev *d = &r->vdev;
    struct virtq *q = &d->vq[0];
    unsigned n = 0;
    uint64_t bytes = 0;
    bool pushed = false;

    if (!(d->status & VIRTIO_STATUS_DRIVER_OK) || (d->status & LIVE_BLOCKERS) || !q->active ||
        q->broken)
        return;
    for (;;) {
        virtq_set_notification(q, false);
        while (n < VIRTIO_RNG_BUDGET && bytes < VIRTIO_RNG_EVENT_BYTES) {
            int ret = virtq_pop(q, &r->chain, CHAIN_MAX);
            if (ret == 0)
                break;
            uint32_t written = 0;
            if (ret > 0) {
                written = fill(r, &r->chain);
            } else if (ret != -E2BIG) {
                virtio_dev_fail(d, "malformed request queue");
                goto out;
            }
            virtq_push(q, r->chain.head, written);
            r->stats.requests++;
            METRICS_ADD(r->vdev.metrics, requests, 1);
            r->stats.bytes += written;
            METRICS_ADD(r->vdev.metrics, bytes_read, written);
            bytes += written;
            pushed = true;
            n++;
        }
        if (n >= VIRTIO_RNG_BUDGET || bytes >= VIRTIO_RNG_EVENT_BYTES) {
            uint64_t one = 1;
            ssize_t w __unused = write(r->kick_efd, &one, sizeof(one));
            break;
        }
        virtq_set_notification(q, true);
        if (!virtq_has_avail(q))
            break;
    }
out:
    if (pushed)
        virtio_dev_signal(d, 0);
}

/* Main loop: our kick eventfd fired (budget exhausted earlier, or activation). */
static void rng_event(void *opaque, uint32_t events)
{
    struct virtio_rng *r = opaque;
    uint64_t v;
    (void)events;
    ssize_t k __unused = read(r->kick_efd, &v, sizeof(v));
    pthread_mutex_lock(&r->vdev.lock);
    process(r);
    pthread_mutex_unlock(&r->vdev.lock);
}

static void rng_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
    /* No config space (config_size 0): the transport never gets here. */
    (void)d;
    (void)off;
    memset(data, 0, len);
}

static int rng_activate(struct virtio_dev *d)
{
    /* Requests queued before DRIVER_OK are served from the main loop. */
    uint64_t one = 1;
    ssize_t w __unused = write(to_rng(d)->kick_efd, &one, sizeof(one));
    return 0;
}

static void rng_queue_notify(struct virtio_dev *d, uint16_t q)
{
    if (q == 0)
        process(to_rng(d));
}

static void rng_reset(struct virtio_dev *d)
{
    /* Requests are completed as soon as they are popped: nothing is in
     * flight.  A pending self-kick finds a device that is not live. */
    (void)d;
}

static int rng_save(struct virtio_dev *d, struct vstate_out *out)
{
    (void)d;
    vstate_begin(out, "virtio-rng", STATE_VERSION);
    return vstate_end(out);
}

static int rng_load(struct virtio_dev *d, struct vstate_in *in)
{
    uint16_t version;
    (void)d;
    int ret = vstate_enter(in, "virtio-rng", STATE_VERSION, STATE_VERSION, &version);
    return ret < 0 ? ret : vstate_leave(in);
}

static void rng_destroy(struct virtio_dev *d)
{
    struct virtio_rng *r = to_rng(d);
    if (!r)
        return;
    if (r->registered)
        evloop_del(d->loop, r->kick_efd);
    if (r->kick_efd >= 0)
        close(r->kick_efd);
    virtio_dev_fini(d);
    free(r);
}

static const struct virtio_dev_ops rng_ops = {
    .type = "rng",
    .device_id = VIRTIO_ID_RNG,
    .num_queues = 1,
    .queue_max_size = VIRTIO_RNG_QUEUE_SIZE,
    .config_size = 0,
    .config_read = rng_config_read,
    .config_write = NULL,
    .activate = rng_activate,
    .queue_notify = rng_queue_notify,
    .reset = rng_reset,
    .save = rng_save,
    .load = rng_load,
    .unmigratable = NULL,
    .destroy = rng_destroy,
};

int virtio_rng_create(const struct virtio_rng_config *cfg, const struct gmem *mem,
                      struct evloop *loop, struct virtio_dev **out, struct errbuf *err)
{
    const char *id = cfg && cfg->id ? cfg->id : "rng";
    if (!loop || loop->epfd < 0)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "virtio %s: event loop not initialised", id);
    struct virtio_rng *r = calloc(1, sizeof(*r));
    if (!r)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "virtio %s: out of memory", id);
    virtio_dev_init(&r->vdev, &rng_ops, id, mem, loop, 0);
    r->kick_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r->kick_efd < 0) {
        int ret =
            err_set(err, WISP_EXIT_FAILURE, errno, "virtio %s: eventfd: %s", id, strerror(errno));
        rng_destroy(&r->vdev);
        return ret;
    }
    int ret = evloop_add(loop, r->kick_efd, EPOLLIN, rng_event, r);
    if (ret < 0) {
        err_set(err, WISP_EXIT_FAILURE, -ret, "virtio %s: cannot join the event loop: %s", id,
                strerror(-ret));
        rng_destroy(&r->vdev);
        return ret;
    }
    r->registered = true;
    *out = &r->vdev;
    return 0;
}

void virtio_rng_get_stats(struct virtio_dev *d, struct virtio_rng_stats *st)
{
    pthread_mutex_lock(&d->lock);
    *st = to_rng(d)->stats;
    pthread_mutex_unlock(&d->lock);
}
