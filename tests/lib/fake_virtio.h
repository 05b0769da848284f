/*
 * Test doubles for the virtio-mmio transport, so it can be tested without
 * KVM and without a real device model:
 *   - fake_virtio: a dummy device (2 queues of up to 256 entries, an 8-byte
 *     writable config space) that counts every callback and, when kicked,
 *     completes every available chain through the real devices/virtio/queue.c;
 *   - fake_host: the host services a VM gives a transport (an MMIO bus, an
 *     event loop, ioeventfd and irqfd), recording the ioeventfd calls and
 *     counting interrupt pulses;
 *   - fake_ring: the driver's side of a split ring in guest memory (one
 *     descriptor per chain), written from the virtio 1.2 layout directly;
 *   - fake_mmio_*: 32-bit register accesses and driver bring-up steps;
 *   - fake_fixture: all of the above wired together the usual way.
 * Test-only: misuse aborts.
 */
#ifndef TESTS_LIB_FAKE_VIRTIO_H
#define TESTS_LIB_FAKE_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "vmm/bus.h"
#include "vmm/evloop.h"
#include "vmm/gmem.h"

#define FAKE_VIRTIO_DEVICE_ID   42 /* not a real device type */
#define FAKE_VIRTIO_QUEUES      2
#define FAKE_VIRTIO_QUEUE_MAX   256
#define FAKE_VIRTIO_CONFIG_SIZE 8
/* Device-specific features the fake offers (bits 0 and 5). */
#define FAKE_VIRTIO_FEATURES (VIRTIO_BIT(0) | VIRTIO_BIT(5))

struct fake_virtio {
    struct virtio_dev dev; /* first: the ops cast back from it */
    uint8_t config[FAKE_VIRTIO_CONFIG_SIZE];
    int activate_result; /* what ops->activate returns (0 by default) */
    bool process;        /* queue_notify completes chains (true by default) */
    unsigned activates, resets, config_writes;
    unsigned notifies[FAKE_VIRTIO_QUEUES];
    unsigned chains[FAKE_VIRTIO_QUEUES]; /* chains completed */
    int last_pop;                        /* last virtq_pop() result */
    struct virtq_chain chain;            /* scratch for popping */
};

extern const struct virtio_dev_ops fake_virtio_ops;

/* Initialise the fake (virtio_dev_init plus counters); config bytes are 0x10..0x17. */
void fake_virtio_init(struct fake_virtio *f, const struct gmem *mem, struct evloop *loop);
void fake_virtio_fini(struct fake_virtio *f);

#define FAKE_HOST_MAX_CALLS 64

struct fake_ioeventfd_call {
    uint64_t addr;
    uint32_t datamatch;
    int fd;
    bool assign;
};

struct fake_host {
    struct virtio_mmio_host host; /* hand &h->host to virtio_mmio_create() */
    struct bus bus;
    struct evloop loop;
    struct fake_ioeventfd_call calls[FAKE_HOST_MAX_CALLS];
    unsigned ncalls;
    unsigned irqfd_calls;
    unsigned gsi;     /* GSI of the last irqfd request */
    int irq_counter;  /* our dup of the irqfd handed out, for counting pulses */
    uint64_t irqs;    /* pulses counted so far */
    int fail_assign;  /* if > 0: the fail_assign-th assign call fails with -ENOSPC */
    int fail_irqfd;   /* if non-zero: irqfd requests fail with this -errno */
    unsigned assigns; /* assign calls seen */
};

void fake_host_init(struct fake_host *h);
void fake_host_fini(struct fake_host *h);

/* Total irqfd pulses so far (drains the eventfd into h->irqs). */
uint64_t fake_host_irqs(struct fake_host *h);

/* The eventfd currently bound to `datamatch`, or -1. */
int fake_host_kick_fd(const struct fake_host *h, uint32_t datamatch);
/* Number of bindings currently in place (assigns minus matching deassigns). */
unsigned fake_host_bound(const struct fake_host *h);

/*
 * Act like KVM for a matched QueueNotify write (signal the eventfd bound to
 * `datamatch`), then run the event loop's ready handlers once.  Returns the
 * number of handlers run.
 */
unsigned fake_host_kick(struct fake_host *h, uint32_t datamatch);
/* Run every ready event-loop handler once without blocking; returns how many ran. */
unsigned fake_host_poll(struct fake_host *h);

/* Driver side of one split ring. */
struct fake_ring {
    const struct gmem *mem;
    gpa_t desc, avail, used;
    uint16_t size;
    uint16_t avail_idx;
};

/* Place a ring (zeroing its three parts, which must be valid RAM). */
void fake_ring_init(struct fake_ring *r, const struct gmem *mem, gpa_t desc, gpa_t avail,
                    gpa_t used, uint16_t size);
/* Add a one-buffer chain and publish it; returns the head. */
uint16_t fake_ring_add(struct fake_ring *r, gpa_t buf, uint32_t len, bool device_writable);
/* Publish a raw avail.idx (for malformed-ring tests). */
void fake_ring_set_avail_idx(struct fake_ring *r, uint16_t idx);
/* used.idx as the device left it. */
uint16_t fake_ring_used_idx(const struct fake_ring *r);

/* Register offsets, from virtio 1.2 section 4.2.2 (independent of the transport's own). */
enum {
    FAKE_MMIO_MAGIC = 0x000,
    FAKE_MMIO_VERSION = 0x004,
    FAKE_MMIO_DEVICE_ID = 0x008,
    FAKE_MMIO_VENDOR_ID = 0x00c,
    FAKE_MMIO_DEV_FEATURES = 0x010,
    FAKE_MMIO_DEV_FEATURES_SEL = 0x014,
    FAKE_MMIO_DRV_FEATURES = 0x020,
    FAKE_MMIO_DRV_FEATURES_SEL = 0x024,
    FAKE_MMIO_QUEUE_SEL = 0x030,
    FAKE_MMIO_QUEUE_NUM_MAX = 0x034,
    FAKE_MMIO_QUEUE_NUM = 0x038,
    FAKE_MMIO_QUEUE_READY = 0x044,
    FAKE_MMIO_QUEUE_NOTIFY = 0x050,
    FAKE_MMIO_INT_STATUS = 0x060,
    FAKE_MMIO_INT_ACK = 0x064,
    FAKE_MMIO_STATUS = 0x070,
    FAKE_MMIO_DESC_LO = 0x080,
    FAKE_MMIO_DESC_HI = 0x084,
    FAKE_MMIO_DRIVER_LO = 0x090,
    FAKE_MMIO_DRIVER_HI = 0x094,
    FAKE_MMIO_DEVICE_LO = 0x0a0,
    FAKE_MMIO_DEVICE_HI = 0x0a4,
    FAKE_MMIO_SHM_SEL = 0x0ac,
    FAKE_MMIO_SHM_LEN_LO = 0x0b0,
    FAKE_MMIO_SHM_LEN_HI = 0x0b4,
    FAKE_MMIO_SHM_BASE_LO = 0x0b8,
    FAKE_MMIO_SHM_BASE_HI = 0x0bc,
    FAKE_MMIO_QUEUE_RESET = 0x0c0,
    FAKE_MMIO_CONFIG_GEN = 0x0fc,
    FAKE_MMIO_CONFIG = 0x100,
};

/* 32-bit register access, as a driver does it. */
uint32_t fake_mmio_rd(struct virtio_mmio *t, uint64_t off);
void fake_mmio_wr(struct virtio_mmio *t, uint64_t off, uint32_t v);

/*
 * Driver bring-up: reset, ACKNOWLEDGE, DRIVER, ack `features` (both words),
 * FEATURES_OK.  Returns the status read back.
 */
uint32_t fake_mmio_negotiate(struct virtio_mmio *t, uint64_t features);
/* Configure queue q (QueueSel, QueueNum, addresses, QueueReady 1). */
void fake_mmio_setup_queue(struct virtio_mmio *t, uint32_t q, const struct fake_ring *r);

/* The usual setup: guest RAM with a hole, a fake host, the fake device on MMIO. */
#define FAKE_MMIO_BASE  0xd0000000ULL
#define FAKE_MMIO_GSI   5
#define FAKE_HOLE_START (1 * MiB) /* RAM [0, 1 MiB) and [4 MiB, 6 MiB) */
#define FAKE_HOLE_END   (4 * MiB)
#define FAKE_RAM_END    (6 * MiB)

struct fake_fixture {
    struct gmem mem;
    struct fake_host host;
    struct fake_virtio dev;
    struct virtio_mmio *t;
};

void fake_fixture_init(struct fake_fixture *fx);
void fake_fixture_fini(struct fake_fixture *fx);

#endif /* TESTS_LIB_FAKE_VIRTIO_H */
