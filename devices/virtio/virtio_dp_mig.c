/*
 * Migration of a device over an external data plane (virtio_dp.h,
 * docs/VHOST.md "Migration across data planes"): the drained quiesce that
 * stops the data plane at the ring's position, the resume that starts it
 * there again, and the conservative dirty rule.
 *
 * Why apart from virtio_dp.c: the device model serves the guest; this is
 * the one place that decides when an external data plane's rings are
 * quiet enough to save, and what of guest memory must be sent again.
 */
#include "devices/virtio/virtio_dp.h"
#include "devices/virtio/virtio_dp_internal.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vmm/log.h"

/* Read a ring's idx field (avail or used) from guest memory. */
static int ring_idx(const struct gmem *mem, gpa_t ring, uint16_t *idx)
{
    uint8_t b[2];
    int r = gmem_read(mem, ring + 2, b, sizeof(b));
    *idx = le16_get(b);
    return r;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000U + (uint64_t)ts.tv_nsec / 1000000U;
}

/*
 * Wait until the data plane has used every buffer the driver made
 * available on the started queues: with the vCPUs stopped, avail->idx no
 * longer moves, so used->idx == avail->idx means nothing is in flight and
 * the data plane has nothing left to read.  pos[i] gets queue i's index.
 */
static int drain(struct virtio_dp_dev *v, const struct virtio_dp_queue *q, unsigned n,
                 uint16_t *pos, unsigned timeout_ms)
{
    uint64_t end = mono_ms() + timeout_ms;
    for (unsigned i = 0; i < n; i++) {
        uint64_t one = 1; /* in case a kick was lost: spurious ones are harmless */
        ssize_t w __unused = write(q[i].kick_fd, &one, sizeof(one));
    }
    for (;;) {
        unsigned done = 0;
        for (unsigned i = 0; i < n; i++) {
            uint16_t avail, used;
            if (ring_idx(v->dev.mem, q[i].avail, &avail) < 0 ||
                ring_idx(v->dev.mem, q[i].used, &used) < 0)
                return -EFAULT;
            pos[i] = avail;
            done += avail == used;
            if (avail != used && mono_ms() >= end) {
                log_error("virtio %s: the %s data plane did not finish queue %u within %u ms "
                          "(avail %u, used %u)",
                          v->dev.id, v->dpo->kind, q[i].index, timeout_ms, avail, used);
                return -ETIMEDOUT;
            }
        }
        if (done == n)
            return 0;
        struct timespec ts = {0, 1000000}; /* 1 ms */
        nanosleep(&ts, NULL);
    }
}

int virtio_dp_quiesce(struct virtio_dev *d, unsigned timeout_ms)
{
    struct virtio_dp_dev *v = dp_of(d);
    struct virtio_dp_queue q[VIRTIO_MAX_QUEUES];
    uint16_t pos[VIRTIO_MAX_QUEUES], got[VIRTIO_MAX_QUEUES];

    pthread_mutex_lock(&d->lock);
    unsigned n = v->dead ? 0 : v->nstarted;
    memcpy(q, v->started, n * sizeof(q[0]));
    if (n == 0) {
        /* Not serving: nothing moves, the queues keep their indices.  But it
         * may have served (and written memory) before a guest reset. */
        v->dirty_all |= v->ran;
        v->ran = false;
    }
    pthread_mutex_unlock(&d->lock);
    if (n == 0)
        return 0;

    int r = drain(v, q, n, pos, timeout_ms);
    if (r < 0)
        return r;
    pthread_mutex_lock(&d->lock);
    if (v->dead || v->nstarted != n) { /* died or reset meanwhile: nothing to stop */
        r = v->dead ? -ECONNRESET : -EAGAIN;
        pthread_mutex_unlock(&d->lock);
        return r;
    }
    memcpy(got, pos, sizeof(got));
    r = v->dpo->stop(v->dp, v->started, n, got);
    v->nstarted = 0;
    virtio_dp_unhand(v);
    for (unsigned i = 0; r == 0 && i < n; i++)
        if (got[i] != pos[i]) {
            log_error("virtio %s: the %s data plane stopped queue %u at %u, the ring says %u",
                      d->id, v->dpo->kind, q[i].index, got[i], pos[i]);
            r = -EPROTO;
        }
    if (r < 0) {
        virtio_dp_die(v, "data plane failed to stop for a save");
    } else {
        for (unsigned i = 0; i < n; i++) {
            d->vq[q[i].index].last_avail = pos[i];
            d->vq[q[i].index].used_idx = pos[i];
        }
        v->quiesced = true;
        v->dirty_all = v->ran;
        v->ran = false;
    }
    pthread_mutex_unlock(&d->lock);
    return r;
}

void virtio_dp_resume(struct virtio_dev *d)
{
    struct virtio_dp_dev *v = dp_of(d);
    pthread_mutex_lock(&d->lock);
    if (v->quiesced && !v->dead) {
        v->quiesced = false;
        if (virtio_dp_activate(d) == 0)
            for (unsigned i = 0; i < v->nstarted; i++)
                virtio_dp_queue_notify(d, v->started[i].index);
    }
    v->quiesced = false;
    pthread_mutex_unlock(&d->lock);
}

bool virtio_dp_take_dirty_all(struct virtio_dev *d)
{
    struct virtio_dp_dev *v = dp_of(d);
    pthread_mutex_lock(&d->lock);
    bool all = v->dirty_all;
    v->dirty_all = false;
    pthread_mutex_unlock(&d->lock);
    return all;
}
