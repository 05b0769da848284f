/*
 * Split virtqueue (virtio 1.2 section 2.7), device side, for a hostile driver.
 *
 * The driver owns the descriptor table and the available ring; we own the
 * used ring.  Everything the driver wrote is read exactly once into locals
 * and validated before use:
 *   - size is a power of two <= max_size; rings are aligned (16/2/4) and each
 *     lies wholly inside one guest RAM region (checked at activation);
 *   - avail.idx may be at most `size` ahead of last_avail (else the ring is
 *     broken: -EPROTO);
 *   - head and next indices < size; a chain visits at most `size`
 *     descriptors (catches loops); an indirect table is a multiple of 16
 *     bytes, inside one region, at most `size` entries, never nested, and
 *     never combined with NEXT (it may end a chain of direct descriptors);
 *   - every buffer [addr, addr+len) lies inside one RAM region (never MMIO,
 *     never across a region edge); device-readable descriptors come before
 *     device-writable ones;
 *   - total readable + writable bytes are capped by the caller's limit.
 * Ring fields are accessed with C11 atomics (one full-width access each);
 * all ring indexing uses the size validated at activation.
 * A malformed ring makes virtq_pop() return a negative errno; the device
 * then sets DEVICE_NEEDS_RESET and stops using the queue (q->broken).
 *
 * Memory ordering: avail.idx is loaded with acquire before descriptors are
 * read; used elements are written before used.idx is stored with release;
 * a full fence separates publishing used.idx from reading the driver's
 * event index / flags (otherwise an interrupt can be lost).
 */
#ifndef DEVICES_VIRTIO_QUEUE_H
#define DEVICES_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/gmem.h"
#include "vmm/util.h"

#define VIRTQ_DESC_F_NEXT          1
#define VIRTQ_DESC_F_WRITE         2
#define VIRTQ_DESC_F_INDIRECT      4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY     1

/* Most iovecs one chain may produce (longer chains are refused with -E2BIG). */
#define VIRTQ_MAX_IOV 256

/* Configuration written by the driver through the transport. */
struct virtq_config {
    uint16_t size;   /* QueueSize */
    bool ready;      /* QueueReady */
    gpa_t desc_gpa;  /* QueueDesc */
    gpa_t avail_gpa; /* QueueDriver */
    gpa_t used_gpa;  /* QueueDevice */
};

struct virtq {
    struct virtq_config cfg;
    uint16_t max_size; /* QueueSizeMax, fixed by the device */

    /* Run-time state (valid once activated). */
    bool active;
    bool broken;             /* a malformed ring was seen; nothing more is popped */
    bool event_idx;          /* VIRTIO_F_EVENT_IDX negotiated */
    bool indirect;           /* VIRTIO_F_INDIRECT_DESC negotiated */
    uint16_t last_avail;     /* next avail ring slot to consume */
    uint16_t used_idx;       /* next used ring slot to fill (mirrors used->idx) */
    uint16_t signalled_used; /* used_idx at the last virtq_should_notify() */
    bool signalled_used_valid;
    bool notify_off; /* virtq_set_notification(q, false) is in effect */
    /* Quiesced for a snapshot or migration: virtq_pop() hands out nothing. */
    bool paused;
    /*
     * Ring size in use: cfg.size as validated by virtq_activate().  Only
     * this copy is used at run time, so a transport that let cfg.size change
     * after activation still could not make us index past the rings.
     */
    uint16_t num;
    const struct gmem *mem;
    /* Host views of the rings, validated at activation. */
    volatile uint8_t *desc;
    volatile uint8_t *avail;
    volatile uint8_t *used;
};

/* One popped descriptor chain, as host iovecs. */
struct virtq_chain {
    uint16_t head;    /* id to return with virtq_push() */
    unsigned n_out;   /* iov[0 .. n_out): device-readable */
    unsigned n_in;    /* iov[n_out .. n_out + n_in): device-writable */
    uint64_t out_len; /* total readable bytes */
    uint64_t in_len;  /* total writable bytes */
    struct iovec iov[VIRTQ_MAX_IOV];
};

/*
 * Clear everything but max_size: configuration, indices, notification state,
 * `broken` and `active`.  Call it on device reset (status 0) and once before
 * first use.  It touches no guest memory.
 */
void virtq_reset(struct virtq *q);

/*
 * Validate the driver's configuration (q->cfg) and start the queue.
 *
 * `mem` is the guest RAM the rings and buffers must lie in; it must outlive
 * the activation.  `event_idx` / `indirect`: VIRTIO_F_EVENT_IDX /
 * VIRTIO_F_INDIRECT_DESC were negotiated.  The caller decides which queues to
 * activate (those the driver set ready); cfg.ready itself is not checked.
 *
 * Checks: max_size is a power of two <= 32768; cfg.size is a power of two
 * <= max_size; the descriptor table (16 * size bytes, 16-aligned), the
 * available ring (6 + 2 * size, 2-aligned) and the used ring (6 + 8 * size,
 * 4-aligned) each lie wholly inside one RAM region (overflow-checked).
 *
 * Indices: activation keeps q->last_avail and q->used_idx as they are.
 * After virtq_reset() they are 0, which is what a fresh driver expects; a
 * migration restore calls virtq_reset(), fills in cfg, last_avail and
 * used_idx from the saved state, then activates.  signalled_used_valid is
 * cleared, so the first virtq_should_notify() with EVENT_IDX says yes (a
 * spurious interrupt is harmless, a lost one is not).  Guest memory is not
 * written.
 *
 * Returns 0, or -EINVAL if size, alignment or placement is wrong (the queue
 * then stays inactive; the caller sets DEVICE_NEEDS_RESET).  A rate-limited
 * line says which check failed.
 */
int virtq_activate(struct virtq *q, const struct gmem *mem, bool event_idx,
                   bool indirect) __must_check;

/*
 * Pop the next available chain into *c (no allocation; *c is large, keep it
 * off small stacks or reuse one per device).
 *
 * Returns 1 with *c filled, 0 if the ring is empty (or the queue is not
 * active), or a negative errno:
 *   -EIO     the queue is already broken; nothing is popped until reset.
 *   -EPROTO  avail.idx is more than `size` ahead of last_avail.
 *   -EINVAL  head or next index >= size, a readable descriptor after a
 *            writable one, INDIRECT not negotiated, nested, combined with
 *            NEXT, or with a table length that is 0, not a multiple of 16
 *            or over 16 * size.
 *   -ELOOP   the chain (or the indirect table's chain) has more
 *            descriptors than the ring (or table) has entries: a loop.
 *   -EFAULT  a buffer or indirect table is not wholly inside one RAM region
 *            (hole, MMIO, region edge, wrapping addr + len).
 *   -E2BIG   the chain is well formed but out_len + in_len > max_len, or it
 *            has more than VIRTQ_MAX_IOV non-empty buffers (a ring may
 *            legally hold longer chains than we map).
 * Every error but -E2BIG sets q->broken and leaves last_avail alone; the
 * device then calls virtio_dev_fail().  -E2BIG does not break the queue: the
 * chain is consumed, c->head is valid, n_out = n_in = 0 (no iovecs), and the
 * device must complete it, e.g. virtq_push(q, c->head, 0) plus an error
 * status where it can.  Pass UINT64_MAX as `max_len` for no byte cap.
 *
 * Zero-length descriptors are accepted and counted against the chain length
 * but produce no iovec; their WRITE flag still counts for the ordering rule.
 *
 * With EVENT_IDX and notifications enabled, each consumed chain sets
 * avail_event = last_avail: "kick me when you publish the entry I have not
 * seen yet".  Finding the ring empty then costs one full fence and a re-read
 * of avail.idx, so a driver that published just after our first read either
 * sees the new avail_event and kicks, or we see its entry.  A device that
 * pops until 0 therefore never misses a kick.
 */
int virtq_pop(struct virtq *q, struct virtq_chain *c, uint64_t max_len);

/*
 * Return a chain: write the used element {head, written} at
 * used_idx % size, then publish used.idx = ++used_idx with release order.
 * `head` is not checked against the size: it only becomes guest-visible data,
 * and a completion that races with a reset must not crash us.  No-op if the
 * queue is not active; allowed on a broken queue (in-flight completions).
 */
void virtq_push(struct virtq *q, uint16_t head, uint32_t written);

/*
 * Should the device interrupt the driver now?  Call after one or more
 * pushes.  A full fence first orders our used.idx store before the read of
 * the driver's used_event / flags (otherwise an interrupt can be lost).
 * With EVENT_IDX: yes if used_event lies in [signalled_used, used_idx) in
 * 16-bit modular arithmetic, or if nothing was signalled since activation;
 * signalled_used is then set to used_idx.  Without: yes unless the driver set
 * VIRTQ_AVAIL_F_NO_INTERRUPT.  False if the queue is not active.
 */
bool virtq_should_notify(struct virtq *q);

/*
 * Tell the driver whether we want kicks.  Without EVENT_IDX this writes
 * used.flags (0 or VIRTQ_USED_F_NO_NOTIFY).  With EVENT_IDX, enabling writes
 * avail_event = last_avail; disabling only stops virtq_pop() from moving
 * avail_event, so at most one more kick arrives.  Enabling ends with a full
 * fence: call virtq_has_avail() next, and if it says yes, disable again and
 * keep popping (otherwise an entry published meanwhile is never seen).
 * No-op if the queue is not active.
 */
void virtq_set_notification(struct virtq *q, bool enable);

/*
 * Is anything available (avail.idx != last_avail, acquire load)?  Also true
 * when avail.idx is bogus, so that the next virtq_pop() reports it.  False if
 * the queue is inactive or broken.
 */
bool virtq_has_avail(struct virtq *q);

/*
 * Copy out of the readable part of a chain (iov[0 .. n_out)) starting at
 * byte `off` of that part.  Returns the bytes copied: less than `len` when
 * the part ends first, 0 if `off` is past its end.
 */
size_t virtq_chain_read(const struct virtq_chain *c, uint64_t off, void *dst, size_t len);
/*
 * Copy into the writable part (iov[n_out .. n_out + n_in)) starting at byte
 * `off` of that part.  Returns the bytes copied, bounded like
 * virtq_chain_read().
 */
size_t virtq_chain_write(const struct virtq_chain *c, uint64_t off, const void *src, size_t len);

/*
 * Read avail.idx / used.idx as the guest sees them now (for state save and
 * checks); 0 if the queue is not active.
 */
uint16_t virtq_avail_idx(const struct virtq *q);
uint16_t virtq_used_idx_guest(const struct virtq *q);

#endif /* DEVICES_VIRTIO_QUEUE_H */
