/*
 * Private to the virtio-mmio transport: the transport object and the helpers
 * shared by mmio.c (lifetime, notifications, interrupts, state) and
 * mmio_regs.c (the register file and the status state machine).  Nothing
 * outside devices/virtio/mmio*.c includes this.
 */
#ifndef DEVICES_VIRTIO_MMIO_INTERNAL_H
#define DEVICES_VIRTIO_MMIO_INTERNAL_H

#include <stdint.h>

#include "devices/virtio/mmio.h"

/* InterruptStatus bits (virtio 1.2 section 4.2.2). */
#define VIRTIO_MMIO_INT_VRING  1u
#define VIRTIO_MMIO_INT_CONFIG 2u

/* Feature words: 64 feature bits, DeviceFeaturesSel/DriverFeaturesSel 0 and 1. */
#define VIRTIO_MMIO_FEATURE_WORDS 2u

/* Register offsets (virtio 1.2 section 4.2.2, transport version 2). */
enum {
    VIRTIO_MMIO_MAGIC_VALUE = 0x000,
    VIRTIO_MMIO_VERSION = 0x004,
    VIRTIO_MMIO_DEVICE_ID = 0x008,
    VIRTIO_MMIO_VENDOR_ID = 0x00c,
    VIRTIO_MMIO_DEVICE_FEATURES = 0x010,
    VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014,
    VIRTIO_MMIO_DRIVER_FEATURES = 0x020,
    VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024,
    VIRTIO_MMIO_QUEUE_SEL = 0x030,
    VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034,
    VIRTIO_MMIO_QUEUE_NUM = 0x038,
    VIRTIO_MMIO_QUEUE_READY = 0x044,
    VIRTIO_MMIO_QUEUE_NOTIFY = 0x050,
    VIRTIO_MMIO_INTERRUPT_STATUS = 0x060,
    VIRTIO_MMIO_INTERRUPT_ACK = 0x064,
    VIRTIO_MMIO_STATUS = 0x070,
    VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080,
    VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084,
    VIRTIO_MMIO_QUEUE_DRIVER_LOW = 0x090,
    VIRTIO_MMIO_QUEUE_DRIVER_HIGH = 0x094,
    VIRTIO_MMIO_QUEUE_DEVICE_LOW = 0x0a0,
    VIRTIO_MMIO_QUEUE_DEVICE_HIGH = 0x0a4,
    VIRTIO_MMIO_SHM_SEL = 0x0ac,
    VIRTIO_MMIO_SHM_LEN_LOW = 0x0b0,
    VIRTIO_MMIO_SHM_LEN_HIGH = 0x0b4,
    VIRTIO_MMIO_SHM_BASE_LOW = 0x0b8,
    VIRTIO_MMIO_SHM_BASE_HIGH = 0x0bc,
    VIRTIO_MMIO_QUEUE_RESET = 0x0c0,
    VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc,
    VIRTIO_MMIO_CONFIG = 0x100,
};

#define VIRTIO_MMIO_MAGIC  0x74726976u /* "virt" */
#define VIRTIO_MMIO_VENDOR 0x50534957u /* "WISP" */

struct virtio_mmio;

/* Per-queue notification context: the eventfd handler's opaque. */
struct virtio_mmio_kick {
    struct virtio_mmio *t;
    uint16_t q;
    int fd; /* eventfd bound to QueueNotify == q, or -1 */
    bool ioeventfd_bound;
    bool in_loop;
};

struct virtio_mmio {
    struct virtio_dev *dev;
    struct virtio_mmio_host host;
    uint64_t base;
    unsigned gsi;
    int irqfd;
    struct virtio_mmio_kick kick[VIRTIO_MAX_QUEUES];

    /*
     * Register state not kept in struct virtio_dev, guarded by dev->lock.
     * Selectors are stored saturated (features: at most
     * VIRTIO_MMIO_FEATURE_WORDS, queue: at most num_queues) because every
     * larger value behaves identically; this keeps save/load bounded.
     */
    uint32_t device_features_sel;
    uint32_t driver_features_sel;
    uint32_t queue_sel;
    uint32_t interrupt_status;
};

/*
 * Set `bits` in InterruptStatus and pulse the interrupt line.  Called with
 * dev->lock held; never blocks.
 */
void virtio_mmio_raise(struct virtio_mmio *t, uint32_t bits);

/*
 * Deliver a driver notification for queue `q` to the device if the device
 * is live (DRIVER_OK, neither FAILED nor NEEDS_RESET) and the queue is
 * active and not broken.  Called with dev->lock held.
 */
void virtio_mmio_deliver_notify(struct virtio_mmio *t, uint32_t q);

/* Set DEVICE_NEEDS_RESET (once) and raise a config interrupt; dev->lock held. */
void virtio_mmio_set_needs_reset(struct virtio_mmio *t);

#endif /* DEVICES_VIRTIO_MMIO_INTERNAL_H */
