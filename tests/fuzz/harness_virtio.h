/*
 * Shared driver harness for the virtio fuzz targets (virtio_mmio, virtio_rng,
 * virtio_blk, ...): a real device model behind the real virtio-mmio
 * transport, guest RAM with a hole, and a hostile "driver" interpreting the
 * fuzz input.
 *
 * Why shared: every virtio device is reached the same way (registers, then
 * rings), so one driver program format (fuzz.h operations) drives them all,
 * and a seed written for one device works for the others.
 *
 * Host services are fakes: no KVM.  ioeventfd binding is recorded only; the
 * irqfd is an eventfd; kicks take the transport's MMIO fallback path
 * (a QueueNotify write).  The device's own fds (reschedule eventfds, backend
 * completion fds) live in a real event loop that the program polls.
 *
 * Guest RAM: [0, 256 KiB) and [512 KiB, 768 KiB).  Queue q's rings sit at
 * FZV_DESC(q), FZV_AVAIL(q), FZV_USED(q) in region 0 (room for 256
 * entries); data buffers go to FZV_DATA0 (region 0) and FZV_DATA1
 * (region 1).
 *
 * Program (fuzz.h operations; `sel` picks the queue, sel + 4 * (arg & 1)
 * for devices with more than 4 queues where noted):
 *   FZ_OP_READ/WRITE  any MMIO access in the 4 KiB window
 *   FZ_OP_DEV arg 0   bring-up: status ACK, DRIVER, features = offered &
 *                     le64 mask, FEATURES_OK, every queue at its fixed
 *                     rings with size 1 << (off16 % 9), ready, DRIVER_OK
 *             arg 1   driver adds a chain to queue sel: off16 % 4 + 1
 *                     descriptors, each u8 kind | le16 len, readable data
 *                     from the input; publishes it (see harness_virtio.c)
 *             arg 2   kick queue sel (QueueNotify write)
 *             arg 3   poll the event loop (completions, rescheduled work)
 *             arg 4   read InterruptStatus and acknowledge it
 *             arg 5   raw guest RAM write: gpa off16 * 16, len bytes
 *             arg 6   config space sweep: read every byte, 1/2/4 wide
 *             arg 7   add a chain, kick, poll (the common fast path)
 *   FZ_OP_STATE       arg 0: reset (status 0); arg 1: set FAILED;
 *                     arg 2-7: the target's hook (host-side events such as
 *                     an incoming frame), or reset if it has none
 */
#ifndef TESTS_FUZZ_HARNESS_VIRTIO_H
#define TESTS_FUZZ_HARNESS_VIRTIO_H

#include "tests/fuzz/fuzz.h"

#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "vmm/bus.h"
#include "vmm/evloop.h"
#include "vmm/gmem.h"

#define FZV_REGION      (256 * KiB)
#define FZV_REGION1_GPA (512 * KiB)
#define FZV_DESC(q)     (0x10000ULL + 0x2000ULL * (q))
#define FZV_AVAIL(q)    (FZV_DESC(q) + 0x1000)
#define FZV_USED(q)     (FZV_DESC(q) + 0x1400)
#define FZV_DATA0       0x20000ULL
#define FZV_DATA1       FZV_REGION1_GPA
#define FZV_MMIO_BASE   0xd0000000ULL
#define FZV_GSI         5
#define FZV_MAX_STEPS   1024

/* Descriptor kinds in an "add chain" step (low bits of the kind byte). */
enum {
    FZV_D_OUT0,  /* readable, in region 0, data from the input */
    FZV_D_OUT1,  /* readable, in region 1 */
    FZV_D_IN0,   /* device-writable, region 0 */
    FZV_D_IN1,   /* device-writable, region 1 */
    FZV_D_WILD,  /* le64 address from the input, flags from the kind byte's bit 4 */
    FZV_D_INDIR, /* an indirect table of the remaining descriptors (if any) */
    FZV_D_NKINDS
};

struct fzv {
    struct gmem mem;
    struct evloop loop;
    struct bus bus;
    struct virtio_dev *dev;
    struct virtio_mmio *t;
    struct virtio_mmio_host host;
    /* Driver shadow state per queue. */
    uint16_t size[VIRTIO_MAX_QUEUES];
    uint16_t avail_idx[VIRTIO_MAX_QUEUES];
    uint16_t next_desc[VIRTIO_MAX_QUEUES];
    uint64_t data_next; /* bump allocator inside the data areas */
    /* Target-specific host events (FZ_OP_STATE arg >= 2); may be NULL. */
    void (*hook)(const struct fz_op *op, struct fz_in *in);
};

extern struct fzv fzv;

/* Create guest RAM and the event loop (once per process; aborts on failure). */
void fzv_init_once(void);

/* Zero RAM and the driver state, put `dev` on a fresh transport; aborts on failure. */
void fzv_attach(struct virtio_dev *dev);

/* Destroy the transport, then the device (ops->destroy). */
void fzv_detach(void);

/* Run one operation of the driver program; false at the end of the input. */
bool fzv_step(struct fz_in *in);

/* Run the driver program in `in` (at most FZV_MAX_STEPS operations), then drain the loop. */
void fzv_run(struct fz_in *in);

/* Run every ready event-loop handler once; returns how many ran. */
unsigned fzv_poll(void);

/* Does [p, p + len) lie inside one guest RAM mapping? */
bool fzv_in_ram(const void *p, size_t len);

/* 32-bit register access as a driver does it. */
uint32_t fzv_rd(uint64_t off);
void fzv_wr(uint64_t off, uint32_t v);

#endif /* TESTS_FUZZ_HARNESS_VIRTIO_H */
