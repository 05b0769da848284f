/*
 * The transport-independent core of every virtio device (see virtio.h).
 *
 * It exists so that each device model stays small: the offered feature set,
 * queue sizing, interrupt suppression and the "device failed" path are the
 * same for blk, net, rng and console, and getting them wrong in one place is
 * easier to find than in four.
 */
#include "devices/virtio/virtio.h"

#include <stdio.h>
#include <string.h>

#include "vmm/log.h"

void virtio_dev_init(struct virtio_dev *d, const struct virtio_dev_ops *ops, const char *id,
                     const struct gmem *mem, struct evloop *loop, uint64_t features)
{
    /* The ops table is wisp code, not guest input: a bad one is a wisp bug. */
    if (!ops || ops->num_queues > VIRTIO_MAX_QUEUES || ops->config_size > VIRTIO_MAX_CONFIG ||
        (ops->num_queues && (!is_pow2(ops->queue_max_size) || ops->queue_max_size > 32768)) ||
        !ops->config_read || !ops->activate || !ops->queue_notify || !ops->reset)
        vmm_fatal("virtio %s: invalid device ops", id ? id : "?");

    memset(d, 0, sizeof(*d));
    d->ops = ops;
    snprintf(d->id, sizeof(d->id), "%s", id ? id : ops->type);
    d->mem = mem;
    d->loop = loop;
    if (pthread_mutex_init(&d->lock, NULL) != 0)
        vmm_fatal("virtio %s: cannot initialise the device lock", d->id);

    d->host_features = (features | VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX) |
                        VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC)) &
                       ~VIRTIO_F_NEVER_OFFERED;
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
        d->vq[q].max_size = q < ops->num_queues ? ops->queue_max_size : 0;
        virtq_reset(&d->vq[q]);
    }
}

void virtio_dev_fini(struct virtio_dev *d)
{
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        virtq_reset(&d->vq[q]);
    pthread_mutex_destroy(&d->lock);
    d->tops = NULL;
    d->transport = NULL;
}

void virtio_dev_signal(struct virtio_dev *d, uint16_t q)
{
    if (q >= d->ops->num_queues || !d->vq[q].active)
        return;
    /* should_notify also records what we signalled (EVENT_IDX bookkeeping),
     * so it runs even if no transport is attached. */
    if (virtq_should_notify(&d->vq[q]) && d->tops)
        d->tops->notify_used(d);
}

void virtio_dev_fail(struct virtio_dev *d, const char *why)
{
    log_ratelimited(LOG_WARN, "virtio %s: %s; device needs reset", d->id, why ? why : "error");
    /* Broken queues pop nothing more until the driver resets the device, so a
     * malformed ring cannot keep the device busy or flood the log. */
    for (unsigned q = 0; q < d->ops->num_queues; q++)
        d->vq[q].broken = true;
    if (d->tops)
        d->tops->needs_reset(d);
}
