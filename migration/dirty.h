/*
 * Dirty page tracking for live migration's pre-copy: which guest pages
 * changed since they were last sent.
 *
 * Why a module of its own, below the VM core: pre-copy (precopy.h) needs
 * "what changed since the last round" and nothing else about KVM.  The
 * kernel is reached only through `struct mig_dirty_ops` (the core fills it
 * with KVM_SET_USER_MEMORY_REGION and KVM_GET_DIRTY_LOG; tests with a
 * simulator), so this file includes nothing of vmm/ but error.h and util.h.
 *
 * Bitmap, not dirty ring.  KVM offers two logs.  The per-slot bitmap
 * (KVM_MEM_LOG_DIRTY_PAGES + KVM_GET_DIRTY_LOG) is used here because:
 *  - it works on every KVM wisp runs on, including the nested testbed,
 *    while the ring (KVM_CAP_DIRTY_LOG_RING) is newer and optional;
 *  - its cost is fixed and small: one bit per 4 KiB page (32 KiB per GiB)
 *    in the kernel and twice that here (our bitmap and a fetch buffer);
 *  - the ring is per vCPU: each vCPU's ring must be reaped (and reset with
 *    KVM_RESET_DIRTY_RINGS) while it runs, and a full ring stops the vCPU
 *    with KVM_EXIT_DIRTY_RING_FULL, a new exit path in the vCPU loop.  That
 *    couples migration to the vCPU threads, which this layer must not see.
 * The price is a scan of every slot's bitmap per round, cheap next to
 * sending the pages.
 *
 * Life of a tracker:
 *   mig_dirty_init   check the slots, allocate the bitmaps
 *   mig_dirty_start  logging on in every slot; every page dirty (round 0
 *                    sends everything)
 *   rounds of        mig_dirty_sync (fetch the kernel's log; device marks
 *                    via mig_dirty_mark at any time), then mig_dirty_take
 *                    until no run is left, reading each run's pages after
 *                    taking it
 *   mig_dirty_stop   logging off in every slot: on every exit path,
 *                    failures included, so the source VM is left as it was
 *   mig_dirty_free
 *
 * No write is lost: the kernel's log is fetch-and-clear, and a page is read
 * only after the fetch that reported it, so a write after the fetch is in
 * the kernel's next log, and the page is sent again next round.
 *
 * Not thread safe: one thread (the migration thread) owns a tracker; device
 * marks come through mig_dirty_log() on that same thread.
 */
#ifndef MIGRATION_DIRTY_H
#define MIGRATION_DIRTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"
#include "vmm/util.h"

#define MIG_DIRTY_PAGE      4096ULL
#define MIG_DIRTY_MAX_SLOTS 32U
/* Largest slot: 1 TiB (a 32 MiB bitmap); larger is refused at init. */
#define MIG_DIRTY_MAX_SLOT_SIZE (1ULL << 40)

/*
 * The kernel side, injectable.
 * set_logging: re-register `slot` with (on) or without (off) dirty logging.
 *              0 or -errno.
 * get_log:     copy the slot's log into `bitmap` (`words` 64-bit words: one
 *              bit per page, bit i of word j for page 64*j+i, the length
 *              rounded up to whole words) and clear it in the kernel, as
 *              KVM_GET_DIRTY_LOG does without manual protect.  0 or -errno.
 */
struct mig_dirty_ops {
    void *ctx;
    int (*set_logging)(void *ctx, uint32_t slot, bool on);
    int (*get_log)(void *ctx, uint32_t slot, uint64_t *bitmap, size_t words);
};

/* One memory slot: [gpa, gpa + size), both page aligned, size > 0. */
struct mig_dirty_slot {
    uint32_t slot; /* KVM slot id */
    uint64_t gpa;
    uint64_t size;
};

/* A run of dirty pages inside one slot. */
struct mig_dirty_run {
    uint32_t slot;
    uint64_t gpa;
    uint64_t npages;
};

/* Private to dirty.c: one slot and its bitmap. */
struct mig_dirty_tslot {
    struct mig_dirty_slot s;
    uint64_t npages;
    size_t words;
    uint64_t *bits; /* ours: dirty and not yet taken */
    bool logging;   /* set_logging(on) succeeded and was not undone */
};

struct mig_dirty {
    struct mig_dirty_ops ops;
    uint32_t n;
    struct mig_dirty_tslot slots[MIG_DIRTY_MAX_SLOTS];
    uint64_t *fetch; /* get_log buffer, as large as the largest slot's bitmap */
    bool started;
    uint32_t cur_slot; /* mig_dirty_take resumes here */
    uint64_t cur_page;
};

/*
 * Set up `t` over `n` slots (1..MIG_DIRTY_MAX_SLOTS).  Refused with -EINVAL
 * and one line in `err`: no ops, a slot empty, unaligned, wrapping or above
 * MIG_DIRTY_MAX_SLOT_SIZE, two slots overlapping or sharing an id.
 * -ENOMEM.  Nothing is asked of the kernel yet.
 */
int mig_dirty_init(struct mig_dirty *t, const struct mig_dirty_ops *ops,
                   const struct mig_dirty_slot *slots, uint32_t n, struct errbuf *err) __must_check;

/*
 * Forget [gpa, gpa + len) (whole pages inside it; outside any slot:
 * ignored).  For pages known to read as zero on the destination and never
 * written since logging started, e.g. holes of a memfd just after
 * mig_dirty_start(): the kernel log reports a later write as usual.
 */
void mig_dirty_clear(struct mig_dirty *t, uint64_t gpa, uint64_t len);

/* Free the bitmaps.  Does not call the kernel: call mig_dirty_stop() first. */
void mig_dirty_free(struct mig_dirty *t);

/*
 * Turn logging on in every slot and mark every page dirty.  If a slot
 * refuses, the slots already switched are switched back before the error
 * (-errno, one line in `err`) is returned.  -EBUSY when already started.
 */
int mig_dirty_start(struct mig_dirty *t, struct errbuf *err) __must_check;

/*
 * Fetch every slot's log from the kernel and add it to the pages still to
 * send; the next mig_dirty_take starts again at the first slot.  -EINVAL
 * when not started; a get_log error (-errno, one line in `err`).
 */
int mig_dirty_sync(struct mig_dirty *t, struct errbuf *err) __must_check;

/*
 * Mark [gpa, gpa + len) dirty (a device's DMA); fits mig_dirty_fn, `ctx`
 * being the tracker.  The range must lie inside the slots (it may cross
 * from one slot into an adjacent one): a range touching any address outside
 * every slot, empty or wrapping, is refused with -ERANGE and marks nothing.
 * Partial pages count as whole pages.  -EINVAL when not started.
 */
int mig_dirty_mark(void *ctx, uint64_t gpa, uint64_t len) __must_check;

/*
 * Take the next run of at most `max_pages` (> 0) contiguous dirty pages of
 * one slot, in slot order then address order, and clear it (pages marked
 * behind the last run are still taken in this pass).  Returns 1 with
 * *run filled, 0 when no dirty page is left, -EINVAL (not started,
 * max_pages 0).  Read the pages only after taking them.
 */
int mig_dirty_take(struct mig_dirty *t, uint64_t max_pages, struct mig_dirty_run *run);

/* Pages dirty and not yet taken, over every slot. */
uint64_t mig_dirty_count(const struct mig_dirty *t);

/*
 * Turn logging off in every slot where it is on.  Every slot is tried even
 * when one fails; the first error is returned (and recorded in `err`, which
 * may be NULL).  Safe to call more than once and before start.
 */
int mig_dirty_stop(struct mig_dirty *t, struct errbuf *err);

#endif /* MIGRATION_DIRTY_H */
