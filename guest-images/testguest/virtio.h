/*
 * virtio.h - a small virtio-mmio (transport version 2) driver for the test
 * guest: device discovery from virtio_mmio.device= tokens, the status and
 * feature handshake, split virtqueues in guest RAM, and device-type
 * constants (blk, net, console, rng) the tests and benchmarks share.
 *
 * Written for exercising a VMM, not for speed or generality: one chain at
 * a time is built from a caller's buffer list, completions are polled from
 * the used ring (interrupts are suppressed with VRING_AVAIL_F_NO_INTERRUPT
 * unless a test asks for them), no EVENT_IDX, no indirect descriptors.
 * Every layout the device relies on is pinned with _Static_assert.
 */
#ifndef WISP_GUEST_VIRTIO_H
#define WISP_GUEST_VIRTIO_H

#include "guest.h"
#include "virtio_spec.h"

/* ---- driver state ---- */
#define VDEV_MAX    16  /* virtio_mmio.device= tokens we look at */
#define VQ_MAX_SIZE 256 /* largest queue we set up */

/* Error returns (the guest has no errno). */
#define VE_NODEV    (-1) /* no such device, or bad magic/version */
#define VE_FEATURES (-2) /* VERSION_1 missing or FEATURES_OK refused */
#define VE_QUEUE    (-3) /* queue absent or already ready */
#define VE_NOSPC    (-4) /* not enough free descriptors */
#define VE_TIMEOUT  (-5) /* no completion in time */
#define VE_RESET    (-6) /* the device set DEVICE_NEEDS_RESET */
#define VE_STATE    (-7) /* status did not read back as written */

struct vdev {
    u64 base, size; /* MMIO window from the command line */
    u32 irq;        /* GSI from the command line */
    u32 magic, version, id, vendor;
    u64 offered;           /* DeviceFeatures, words 0 and 1 */
    u64 acked;             /* what we wrote to DriverFeatures */
    int vector;            /* IDT vector once vq_use_irq() routed the GSI, else 0 */
    volatile u32 irqs;     /* interrupts taken */
    volatile u32 isr_seen; /* InterruptStatus bits seen by the handler */
};

/* One buffer of a chain. Addresses are guest-physical (identity map). */
struct vbuf {
    u64 addr;
    u32 len;
    bool write; /* device-writable */
};

struct vq {
    struct vdev *dev;
    u16 index, size;
    volatile struct vring_desc *desc;
    volatile struct vring_avail *avail;
    volatile struct vring_used *used;
    u16 avail_idx; /* next avail.idx we publish */
    u16 last_used; /* used entries consumed so far */
    u16 free_head, num_free;
    bool irq;              /* vq_wait sleeps for the device interrupt */
    u16 next[VQ_MAX_SIZE]; /* private chain links: the device cannot touch them */
    u16 chain_len[VQ_MAX_SIZE];
};

extern struct vdev vdevs[VDEV_MAX];
extern int nvdevs;

/* Parse every virtio_mmio.device=<size>@<base>:<irq>[:<id>] token of the
 * command line, or if there is none take the DSDT's LNRO0005 devices
 * (acpi.h), and read each window's identification registers.
 * Returns the number of tokens parsed (also in nvdevs); malformed tokens
 * are reported and skipped. Idempotent: later calls return the cache. */
int virtio_scan(void);

/* The nth (0-based) device with device id `id` (magic and version 2
 * checked), or NULL. */
struct vdev *virtio_find(u32 id, int nth);

/* Short name of a device id ("blk", "net", ...; "id<N>" otherwise, in a
 * static buffer). */
const char *virtio_name(u32 id);

static inline u32 vreg_read(const struct vdev *d, u32 off)
{
    return mmio_read32(d->base + off);
}
static inline void vreg_write(const struct vdev *d, u32 off, u32 v)
{
    mmio_write32(d->base + off, v);
}
static inline u8 virtio_status(const struct vdev *d)
{
    return (u8)vreg_read(d, VIRTIO_MMIO_STATUS);
}

/* Reset, ACKNOWLEDGE, DRIVER, feature negotiation and FEATURES_OK.
 * `want` is the set of feature bits we would like; VERSION_1 is added and
 * required. Acked = offered & want, stored in d->acked.
 * Returns 0, VE_NODEV (reset did not read back 0), VE_FEATURES. */
int virtio_begin(struct vdev *d, u64 want);

/* Set up queue `index` with at most `want` entries (rounded down to a
 * power of two and to QueueNumMax, capped at VQ_MAX_SIZE). Rings come from
 * the pool, zeroed; avail.flags gets NO_INTERRUPT. 0 or VE_QUEUE. */
int vq_setup(struct vdev *d, struct vq *q, u16 index, u16 want);

/* Status |= DRIVER_OK; 0 or VE_STATE if the device shows NEEDS_RESET or
 * FAILED, or did not keep DRIVER_OK. */
int virtio_driver_ok(struct vdev *d);

/* Device-config reads: 1, 2 or 4 bytes at `off`, or a 64-bit field read
 * as two 32-bit halves, retried until ConfigGeneration is stable. */
u32 vcfg_read(const struct vdev *d, u32 off, unsigned width);
u64 vcfg_read64(const struct vdev *d, u32 off);

/* Put a chain of n buffers on the avail ring (not yet notified).
 * Returns the head descriptor index, or VE_NOSPC. */
int vq_add(struct vq *q, const struct vbuf *b, unsigned n);

/* Notify the device about queue q (skipped while the device sets
 * VRING_USED_F_NO_NOTIFY, unless `force`). */
void vq_kick(struct vq *q, bool force);

/* Take one used element if there is one: returns the head (its chain is
 * freed) with *len = bytes written by the device, or -1 if none. A head
 * the device made up (out of range or not in flight) returns VE_STATE. */
int vq_get(struct vq *q, u32 *len);

/* vq_get, polling for up to `ms` milliseconds; also checks the device
 * status now and then. Returns a head, VE_TIMEOUT or VE_RESET. */
int vq_wait(struct vq *q, u32 *len, u64 ms);

/* Interrupt-driven waits for q: route the device's GSI through the IOAPIC
 * (once per device), clear VRING_AVAIL_F_NO_INTERRUPT, and make vq_wait
 * sleep in sti;hlt. The handler acknowledges InterruptStatus. 0, or
 * VE_NODEV if the GSI cannot be routed (>= 24, or out of vectors). */
int vq_use_irq(struct vq *q);

/* After vq_use_irq(): wait up to `ms` milliseconds (sti; hlt) until the
 * device has interrupted at least once. A VMM may publish the used ring
 * before the interrupt arrives, so a test that saw its completions can
 * still be waiting for the interrupt. Returns d->irqs. */
u32 virtio_irq_settle(struct vdev *d, u64 ms);

/* Read InterruptStatus and acknowledge whatever is set; returns it. */
u32 virtio_ack_irq(const struct vdev *d);

/* Pool of guest RAM for rings and buffers (in the image, so user mode can
 * reach it; not cleared at boot). Returns `size` bytes aligned to `align`
 * (a power of two), zeroed if `zero`, or NULL when the pool is exhausted.
 * vpool_mark/vpool_release free everything allocated after a mark. */
void *vpool_alloc(u64 size, u64 align, bool zero);
u64 vpool_mark(void);
void vpool_release(u64 mark);

/* TSC ticks per millisecond (from tsc_khz(), cached). */
u64 vticks_ms(void);

/* Dispatch the virtio tests (vtests.c): returns only if `name` is not
 * one of them. */
void virtio_tests(const char *name);

#endif
