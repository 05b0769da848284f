/*
 * virtio-mmio transport, version 2 (virtio 1.2 section 4.2).
 *
 * Owns the register file and the driver-status state machine of one
 * device; the device model behind it sees only struct virtio_dev_ops.
 * Notifications: one KVM ioeventfd per queue on QueueNotify (datamatch =
 * queue index), polled by the main event loop.  Interrupts: one irqfd per
 * device; see mmio.c for the InterruptStatus semantics.
 *
 * The transport never issues KVM ioctls itself: the VM hands it a small set
 * of host services, which unit tests replace with fakes.
 */
#ifndef DEVICES_VIRTIO_MMIO_H
#define DEVICES_VIRTIO_MMIO_H

#include <stdint.h>

#include "devices/virtio/virtio.h"
#include "vmm/bus.h"
#include "vmm/error.h"
#include "vmm/evloop.h"

#define VIRTIO_MMIO_WINDOW 0x1000 /* bytes of MMIO space per device (page-exclusive) */

/* Services the VM provides to a transport. */
struct virtio_mmio_host {
    void *opaque;
    /* Where the per-queue kick eventfds are polled; NULL: not polled (tests
     * and fuzzers that drive virtio_mmio_write() only). */
    struct evloop *loop;
    /* Where the register window is registered; NULL: not registered. */
    struct bus *mmio_bus;
    /* Bind (assign) or unbind eventfd `fd` to 4-byte writes of `datamatch`
     * at guest address `addr` (KVM_IOEVENTFD with DATAMATCH, e.g. through
     * kvm_ioeventfd(vm, addr, 4, datamatch, fd, assign)).  0 or -errno. */
    int (*ioeventfd)(void *opaque, uint64_t addr, uint32_t datamatch, int fd, bool assign);
    /* Create an eventfd that injects GSI `gsi` when written; *fd receives
     * it and the transport owns (closes) it.  0 or -errno. */
    int (*irqfd)(void *opaque, unsigned gsi, int *fd);
};

struct virtio_mmio;

/*
 * Put `dev` (initialised with virtio_dev_init) on MMIO at [base, base +
 * VIRTIO_MMIO_WINDOW) with interrupt line `gsi`: creates the irqfd, one
 * eventfd per queue bound to QueueNotify (datamatch = queue index) and
 * watched by host->loop, sets dev->tops/dev->transport, and registers the
 * window on host->mmio_bus, last.  `host` is copied.  The transport owns
 * nothing of `dev`; destroy it before the device.
 * Errors (recorded in `err`, nothing left behind): -EINVAL (base not 4 KiB
 * aligned or the window wraps, missing host services), -EBUSY (dev already
 * has a transport), -ENOMEM, the host services' -errno, and bus_register()'s
 * -EEXIST / -ENOSPC.
 */
int virtio_mmio_create(struct virtio_dev *dev, const struct virtio_mmio_host *host, uint64_t base,
                       unsigned gsi, struct virtio_mmio **out, struct errbuf *err) __must_check;
/*
 * Unbind and close the kick eventfds, close the irqfd, detach from `dev`
 * and free.  The bus cannot unregister a range, so call this only when no
 * vCPU can reach the window any more (VM teardown).  NULL is ignored.
 */
void virtio_mmio_destroy(struct virtio_mmio *t);

/*
 * Bus callbacks (exported for tests and fuzzing).  Any `off` and `len` are
 * safe: invalid accesses read as `len` zero bytes and writes are dropped,
 * both logged (rate-limited).  See mmio_regs.c for the rules.
 */
void virtio_mmio_read(void *opaque, uint64_t off, void *data, unsigned len);
void virtio_mmio_write(void *opaque, uint64_t off, const void *data, unsigned len);

/*
 * Register-level state of the transport, for save/load (device status,
 * features, generation and queues live in struct virtio_dev).  Selectors
 * are kept saturated, since every larger value behaves the same: feature
 * selectors at most 2, queue_sel at most ops->num_queues.  SHMSel is not
 * kept (no region exists, so it has no effect): save it as 0.
 */
struct virtio_mmio_regs {
    uint32_t device_features_sel;
    uint32_t driver_features_sel;
    uint32_t queue_sel;
    uint32_t interrupt_status;
};
/* Read the registers above (takes dev->lock). */
void virtio_mmio_get_regs(const struct virtio_mmio *t, struct virtio_mmio_regs *r);
/*
 * Load them.  Validates first and changes nothing on error: -EINVAL if a
 * selector is beyond the bounds above or interrupt_status has bits other
 * than 0 and 1.  Does not pulse the interrupt: after a restore the caller
 * injects one used-buffer interrupt (virtio.md 4.3).  Takes dev->lock.
 */
int virtio_mmio_set_regs(struct virtio_mmio *t, const struct virtio_mmio_regs *r) __must_check;

/*
 * The same two for a caller that already holds dev->lock (whole-device
 * save and restore, devices/virtio/virtio_snapshot.c, which must read and
 * write the device and its transport in one critical section).
 */
void virtio_mmio_get_regs_locked(const struct virtio_mmio *t, struct virtio_mmio_regs *r);
int virtio_mmio_set_regs_locked(struct virtio_mmio *t,
                                const struct virtio_mmio_regs *r) __must_check;

/* Guest-physical base of the register window and the GSI given to virtio_mmio_create(). */
uint64_t virtio_mmio_base(const struct virtio_mmio *t);
unsigned virtio_mmio_gsi(const struct virtio_mmio *t);

/*
 * After a restore, dev->lock held.  kick: deliver a notification for queue
 * `q` exactly as a QueueNotify write would (nothing unless the device is
 * live and the queue exists, is active and not broken), so work the guest
 * queued while the device moved is seen.  repulse: pulse the interrupt line
 * again if InterruptStatus has a bit set (the edge the guest may not have
 * taken yet on the source is not replayed by anyone else); sets no bit.
 */
void virtio_mmio_kick_locked(struct virtio_mmio *t, uint16_t q);

/*
 * Any thread: make the thread that serves queue `q` look at it, as a
 * guest QueueNotify would, by signalling the queue's kick eventfd (the
 * main loop then delivers it).  Returns false when the queue has no
 * eventfd in a loop (then the caller may deliver it with the lock held).
 */
bool virtio_mmio_kick_async(struct virtio_mmio *t, uint16_t q);
void virtio_mmio_repulse_locked(struct virtio_mmio *t);

/*
 * Write the kernel command-line fragment describing a device at `base`
 * with `gsi`, "virtio_mmio.device=4K@0xd0000000:5" (Linux parses
 * size@base:irq; needs CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES), into `buf`.
 * 0, -EINVAL (gsi 0, which Linux refuses; base not 4 KiB aligned; NULL
 * buf) or -ENOSPC (does not fit `len` bytes with its NUL).
 */
int virtio_mmio_cmdline(uint64_t base, unsigned gsi, char *buf, size_t len);

#endif /* DEVICES_VIRTIO_MMIO_H */
