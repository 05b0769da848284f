/*
 * A virtio device whose queues an external data plane serves
 * (virtio_dataplane.h), e.g. blk over a vhost-user backend, vsock over
 * the kernel's vhost-vsock.
 *
 * Why one generic model: the transport must not change per data plane, and
 * the per-type knowledge such a device needs is small (device id, queue
 * count, config size, which features may be offered), so one model with a
 * per-type table covers every type instead of one copy per device.
 *
 * Interrupts (docs/VHOST.md, "InterruptStatus"): the data plane signals a
 * call eventfd per queue that wisp creates and polls on the main loop; the
 * handler raises the used-buffer interrupt through the transport's
 * notify_used, which sets InterruptStatus bit 0 before pulsing the irqfd,
 * so a driver reading InterruptStatus always finds the bit (virtio-mmio's
 * Linux driver ignores an interrupt without it).
 *
 * Kicks: at DRIVER_OK the transport's kick eventfd (the KVM ioeventfd) of
 * each queue is handed to the data plane (virtio_transport_ops.kick_fd),
 * so a guest notification reaches the backend without wisp.  A kick that
 * arrives through another path (an MMIO exit, or one the main loop had
 * already read during the hand-over) reaches queue_notify and is relayed
 * by writing the same eventfd.  A transport without kick_fd gets a device
 * eventfd per queue and every kick relayed.
 *
 * Failure: a data plane that dies (its watch fd reports EOF or an
 * unsolicited message) or fails a request marks the device
 * DEVICE_NEEDS_RESET (virtio_dev_fail); the VMM keeps running, and a
 * reset's re-activation fails again while the data plane stays dead.
 */
#ifndef DEVICES_VIRTIO_VIRTIO_DP_H
#define DEVICES_VIRTIO_VIRTIO_DP_H

#include <stddef.h>

#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_dataplane.h"
#include "vmm/error.h"

/* Per-type description of a device over a data plane. */
struct virtio_dp_type {
    /* Its unmigratable NULL: each device says why from its data plane's kind and reason. */
    const struct virtio_dev_ops *ops;
    uint64_t offer_mask; /* features that may be offered to the driver */
    /*
     * Queues the VMM keeps (bit per queue): never handed to the data plane,
     * their kicks stay on the main loop and are ignored (vsock's event queue:
     * wisp has no event to send, since the device cannot be restored).
     */
    uint32_t vmm_queues;
    /*
     * Features wisp itself implements for this type (they describe config
     * fields wisp serves, e.g. net's MAC and STATUS): offered to the driver
     * whatever the data plane offers, never passed to it at start.
     */
    uint64_t vmm_features;
    /*
     * Optional: the guest's view from the data plane's.  Gets the data
     * plane's features and config space (rewritten in place), sets *offer
     * to the device features the guest is offered; 0, or -errno with a
     * reason when the data plane cannot serve what the guest would see.
     */
    int (*guest_view)(uint64_t dp_features, uint8_t *config, uint64_t *offer, char *why,
                      size_t whylen);
    /* The device's state is portable across data planes (virtio_dp_quiesce). */
    bool migratable;
};

/* blk: one queue of up to 256, 60 bytes of config, no MQ. */
extern const struct virtio_dp_type virtio_dp_blk;

/* vsock: rx (0) and tx (1) on the data plane, the event queue (2) kept; 8 bytes of config. */
extern const struct virtio_dp_type virtio_dp_vsock;

/*
 * net: rx (0) and tx (1), no control queue or multiqueue; MAC and STATUS
 * are wisp's (its config space: virtio_dp_net_config), the offloads and
 * MRG_RXBUF the data plane's.
 */
extern const struct virtio_dp_type virtio_dp_net;

#define VIRTIO_NET_DP_CONFIG_SIZE 12 /* mac[6], le16 status, max_virtqueue_pairs, mtu */

/* Build a net config space: `mac`, link up, one queue pair. */
void virtio_dp_net_config(const uint8_t mac[6], uint8_t out[VIRTIO_NET_DP_CONFIG_SIZE]);

/* fs: hiprio and one request queue of up to 128; the config wisp builds (virtio_dp_fs_config). */
extern const struct virtio_dp_type virtio_dp_fs;

#define VIRTIO_FS_TAG_MAX     36 /* the config's tag field */
#define VIRTIO_FS_CONFIG_SIZE 40 /* tag[36], le32 num_request_queues */

/*
 * Build a virtio-fs config space: `tag` (1..36 bytes, the name the guest
 * mounts) and one request queue.  For backends without a config space of
 * their own (virtiofsd).  0, or -EINVAL for a bad tag.
 */
int virtio_dp_fs_config(const char *tag, uint8_t out[VIRTIO_FS_CONFIG_SIZE]) __must_check;

/*
 * Create a device of `type` over data plane (dpo, dp), of which it takes
 * ownership (destroyed on failure too).  Reads the config space once from
 * the data plane and registers its fds in `loop`.  The features offered are
 * the data plane's & type->offer_mask, minus VIRTIO_F_NEVER_OFFERED; the
 * data plane must offer VERSION_1.  Errors: WISP_EXIT_HOST with one line
 * naming the device (config read, missing VERSION_1, eventfd, loop full),
 * WISP_EXIT_FAILURE for out of memory.  Destroy with
 * (*out)->ops->destroy(*out).  Returns 0 or -errno.
 */
int virtio_dp_create(const struct virtio_dp_type *type, const char *id,
                     const struct virtio_dataplane_ops *dpo, void *dp, const struct gmem *mem,
                     struct evloop *loop, struct virtio_dev **out, struct errbuf *err) __must_check;

/* Has the data plane been declared dead (tests)?  Takes dev->lock. */
bool virtio_dp_dead(struct virtio_dev *d);

/* Is `d` a device over an external data plane (made by virtio_dp_create)? */
bool virtio_dp_is(const struct virtio_dev *d);

/* Its data plane's kind ("vhost-user", "vDPA", ...). */
const char *virtio_dp_kind(const struct virtio_dev *d);

/*
 * Migration, with the vCPUs stopped: wait (at most timeout_ms) until the
 * data plane has used every available buffer, then stop it and record each
 * queue's position in the device's queues (last_avail = used_idx), so the
 * common save (virtio_snapshot_save) writes a drained state that any data
 * plane, built in or external, can resume.  A data plane that reports a
 * different position, or fails to stop, kills the device (NEEDS_RESET).
 * 0, -ETIMEDOUT (the data plane keeps running), or -errno.
 */
int virtio_dp_quiesce(struct virtio_dev *d, unsigned timeout_ms) __must_check;

/* Undo virtio_dp_quiesce (the source carries on): restart where it stopped. */
void virtio_dp_resume(struct virtio_dev *d);

/*
 * The conservative dirty rule for data planes that cannot log their
 * writes: true once after a quiesce of a device whose data plane ran since
 * the previous report, and then every guest page must be sent again.
 */
bool virtio_dp_take_dirty_all(struct virtio_dev *d);

#endif /* DEVICES_VIRTIO_VIRTIO_DP_H */
