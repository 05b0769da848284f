/*
 * The virtio device model, independent of transport and data plane.
 *
 *   device model  (devices/virtio/<dev>.c): config space, offered features,
 *                 request parsing; implements struct virtio_dev_ops
 *   transport     (devices/virtio/mmio.c): registers, status state machine,
 *                 notifications and interrupts; implements
 *                 struct virtio_transport_ops
 *   backend       (devices/backends/): where the data goes (raw file via
 *                 io_uring, tap, ...), behind a small per-class interface
 *
 * A device never includes the transport or knows it is on MMIO; it asks for
 * interrupts and reports errors through dev->tops.
 *
 * Threads and locking: the transport's register handlers run on vCPU
 * threads; queue notifications and backend completions run on the main
 * event loop.  `dev->lock` serialises both: the transport takes it around
 * register accesses, the event-loop handlers around device callbacks.  The
 * ops below are always called with dev->lock held.
 */
#ifndef DEVICES_VIRTIO_VIRTIO_H
#define DEVICES_VIRTIO_VIRTIO_H

#include <pthread.h>
#include <stdint.h>

#include "devices/virtio/queue.h"
#include "migration/vstate.h"
#include "vmm/evloop.h"
#include "vmm/gmem.h"
#include "vmm/metrics.h"

/* Device types (virtio 1.2 section 5). */
#define VIRTIO_ID_NET     1
#define VIRTIO_ID_BLOCK   2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG     4
#define VIRTIO_ID_BALLOON 5
#define VIRTIO_ID_VSOCK   19
#define VIRTIO_ID_FS      26

/* Device status bits. */
#define VIRTIO_STATUS_ACKNOWLEDGE        1
#define VIRTIO_STATUS_DRIVER             2
#define VIRTIO_STATUS_DRIVER_OK          4
#define VIRTIO_STATUS_FEATURES_OK        8
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED             128

/* Transport-level feature bits. */
#define VIRTIO_F_INDIRECT_DESC     28
#define VIRTIO_F_EVENT_IDX         29
#define VIRTIO_F_VERSION_1         32
#define VIRTIO_F_ACCESS_PLATFORM   33
#define VIRTIO_F_RING_PACKED       34
#define VIRTIO_F_NOTIFICATION_DATA 38
#define VIRTIO_F_RING_RESET        40

#define VIRTIO_BIT(b) (1ULL << (b))

/*
 * Transport features wisp never offers, whatever a device asks for: the
 * mmio transport needs QueueNotify to carry a bare queue index (the
 * ioeventfd datamatch), only split rings are implemented, QueueReset is not
 * emulated, and there is no IOMMU behind ACCESS_PLATFORM.
 */
#define VIRTIO_F_NEVER_OFFERED                                                                     \
    (VIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA) | VIRTIO_BIT(VIRTIO_F_RING_PACKED) |                   \
     VIRTIO_BIT(VIRTIO_F_RING_RESET) | VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM))

#define VIRTIO_MAX_QUEUES 8
#define VIRTIO_MAX_CONFIG 256
#define VIRTIO_ID_LEN     32

struct virtio_dev;

struct virtio_dev_ops {
    const char *type;        /* "blk", "net", "rng", "console", "balloon" */
    uint32_t device_id;      /* VIRTIO_ID_* */
    uint16_t num_queues;     /* <= VIRTIO_MAX_QUEUES */
    uint16_t queue_max_size; /* power of two, <= 32768 */
    uint32_t config_size;    /* bytes of device config space, <= VIRTIO_MAX_CONFIG */

    /* Read `len` bytes of config space at `off` (transport checked off+len <= config_size). */
    void (*config_read)(struct virtio_dev *d, uint32_t off, void *data, uint32_t len);
    /* Driver write to config space; NULL if the config space is read-only. */
    void (*config_write)(struct virtio_dev *d, uint32_t off, const void *data, uint32_t len);

    /* DRIVER_OK: queues are validated and active.  <0 sets DEVICE_NEEDS_RESET. */
    int (*activate)(struct virtio_dev *d);
    /* The driver kicked queue `q` (or the device wants to retry it). */
    void (*queue_notify)(struct virtio_dev *d, uint16_t q);
    /* Device reset (status 0): drop in-flight work, back to pre-activation state. */
    void (*reset)(struct virtio_dev *d);

    /*
     * Device-specific state beyond what the common code saves (features,
     * status, config generation, queues).  May be NULL only if there is
     * none; `unmigratable` must then be NULL too.
     */
    int (*save)(struct virtio_dev *d, struct vstate_out *out);
    int (*load)(struct virtio_dev *d, struct vstate_in *in);
    const char *unmigratable; /* non-NULL: why this device cannot migrate now */

    void (*destroy)(struct virtio_dev *d);
};

/*
 * What a device may ask of its transport.  Called with dev->lock held (as
 * every device callback is); none of them blocks.
 */
struct virtio_transport_ops {
    /* Raise the used-buffer interrupt (InterruptStatus bit 0).  Devices
     * normally go through virtio_dev_signal(), which applies suppression. */
    void (*notify_used)(struct virtio_dev *d);
    /* The device changed its config space: the transport bumps
     * config_generation, then raises the configuration-change interrupt
     * (bit 1).  The device does not bump the generation itself. */
    void (*notify_config)(struct virtio_dev *d);
    /* The device hit an error it cannot recover from without a reset: set
     * DEVICE_NEEDS_RESET and raise a configuration-change interrupt, once
     * (repeats until the driver resets are ignored; ignored while status is
     * 0).  Devices normally go through virtio_dev_fail(). */
    void (*needs_reset)(struct virtio_dev *d);
    /* Queue q's notifications go to an external data plane (external
     * true): the transport stops polling the queue's kick eventfd on the
     * main loop and returns it, still owned by the transport, to be handed
     * to the data plane (vhost-user SET_VRING_KICK); false: the transport
     * polls it again and returns 0.  -errno if the queue has no kick
     * eventfd.  Optional (NULL): the device then relays kicks itself from
     * queue_notify.  See devices/virtio/virtio_dataplane.h. */
    int (*kick_fd)(struct virtio_dev *d, uint16_t q, bool external);
};

struct virtio_dev {
    const struct virtio_dev_ops *ops;
    char id[VIRTIO_ID_LEN]; /* stable instance id ("blk0", user-given) */
    const struct gmem *mem;
    struct evloop *loop; /* main event loop, for backend fds */
    pthread_mutex_t lock;

    uint64_t host_features;  /* offered to the driver */
    uint64_t guest_features; /* acked; always a subset of host_features */
    uint8_t status;
    uint32_t config_generation;
    struct virtq vq[VIRTIO_MAX_QUEUES];

    const struct virtio_transport_ops *tops;
    void *transport;
    /* Counters (vmm/metrics.h) handed over by the device manager after
     * virtio_dev_init; NULL: nothing counted (tests, fuzzers). */
    struct metrics_dev *metrics;
};

/*
 * Initialise the common part (zeroes *d first; the rest of the enclosing
 * device struct is left alone).  `features` are the device-specific
 * features offered; the common code adds VERSION_1, EVENT_IDX and
 * INDIRECT_DESC (a device that cannot honour one of the last two clears it
 * from d->host_features after this call) and removes VIRTIO_F_NEVER_OFFERED.
 * Queues 0 .. ops->num_queues-1 get ops->queue_max_size, the others 0.
 * `id` (NULL: ops->type) is copied, truncated to VIRTIO_ID_LEN - 1.  `mem`
 * and `loop` must outlive the device.  The ops table is wisp code, so an
 * invalid one (too many queues, config too big, a max size that is not a
 * power of two <= 32768, a missing mandatory callback) is a bug: vmm_fatal.
 */
void virtio_dev_init(struct virtio_dev *d, const struct virtio_dev_ops *ops, const char *id,
                     const struct gmem *mem, struct evloop *loop, uint64_t features);
/* Release the common part (queues reset, lock destroyed).  Destroy the transport first. */
void virtio_dev_fini(struct virtio_dev *d);

/* Has the driver acked feature bit `bit`? */
static inline bool virtio_has_feature(const struct virtio_dev *d, unsigned bit)
{
    return (d->guest_features >> bit) & 1;
}

/*
 * After virtq_push()es on queue q: interrupt the driver if the queue wants
 * it (virtq_should_notify: EVENT_IDX or NO_INTERRUPT).  Does nothing for a
 * queue that does not exist or is not active.  dev->lock held.
 */
void virtio_dev_signal(struct virtio_dev *d, uint16_t q);

/*
 * The device cannot go on (malformed ring, backend failure): log `why`
 * (rate-limited, with the device id), mark every queue broken (nothing more
 * is popped or delivered until the driver resets the device), and ask the
 * transport to set DEVICE_NEEDS_RESET.  The VMM keeps running.  dev->lock
 * held.
 */
void virtio_dev_fail(struct virtio_dev *d, const char *why);

#endif /* DEVICES_VIRTIO_VIRTIO_H */
