/*
 * Internals of the generic device over an external data plane, shared by
 * virtio_dp.c (the device model) and virtio_dp_mig.c (its migration:
 * quiesce, resume, the dirty rule).  Not for other modules: they use
 * virtio_dp.h.
 */
#ifndef DEVICES_VIRTIO_VIRTIO_DP_INTERNAL_H
#define DEVICES_VIRTIO_VIRTIO_DP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_dataplane.h"

struct virtio_dp_dev;

/* One queue's call eventfd as the main loop sees it. */
struct virtio_dp_call {
    struct virtio_dp_dev *dev;
    uint16_t q;
    int fd;
};

struct virtio_dp_dev {
    struct virtio_dev dev;     /* first: the ops get &dev */
    struct virtio_dev_ops ops; /* the type's, with this data plane's reason not to migrate */
    char unmigratable[192];
    uint64_t vmm_features; /* the type's: never sent to the data plane */
    uint64_t dp_features;  /* what the data plane offers: all it may be told was acked */
    const struct virtio_dataplane_ops *dpo;
    void *dp;
    uint32_t vmm_queues; /* the type's queues the data plane never gets */
    uint8_t config[VIRTIO_MAX_CONFIG];
    struct virtio_dp_call call[VIRTIO_MAX_QUEUES];
    int own_kick[VIRTIO_MAX_QUEUES]; /* relay eventfds when the transport has no kick_fd */
    struct virtio_dp_queue started[VIRTIO_MAX_QUEUES];
    unsigned nstarted;              /* > 0 while the data plane serves queues */
    bool handed[VIRTIO_MAX_QUEUES]; /* the transport's kick fd of q is with the data plane */
    bool dead;
    int watch; /* the data plane's watch fd in the loop, or -1 */
    /* Migration (virtio_dp_quiesce): stopped for a save, restarted by resume. */
    bool quiesced;
    bool ran;       /* the data plane served queues since the last dirty report */
    bool dirty_all; /* every guest page must be sent again (it could not log) */
};

/* The device of a virtio_dev made by virtio_dp_create (dev is the first member). */
static inline struct virtio_dp_dev *dp_of(struct virtio_dev *d)
{
    return (struct virtio_dp_dev *)d;
}

/* The data plane failed: no more calls into it until it is replaced (NEEDS_RESET). Lock held. */
void virtio_dp_die(struct virtio_dp_dev *v, const char *why);

/* Take every kick fd back from the data plane (the transport polls them again). Lock held. */
void virtio_dp_unhand(struct virtio_dp_dev *v);

/* ops->activate: start the data plane on the active queues at their last_avail. Lock held. */
int virtio_dp_activate(struct virtio_dev *d);

/* ops->queue_notify: relay a kick to the data plane's kick eventfd. Lock held. */
void virtio_dp_queue_notify(struct virtio_dev *d, uint16_t q);

#endif /* DEVICES_VIRTIO_VIRTIO_DP_INTERNAL_H */
