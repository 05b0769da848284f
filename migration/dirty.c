/*
 * Dirty page tracking over KVM's per-slot dirty bitmap (dirty.h).  The
 * kernel's log is folded into bitmaps of our own, so pages reported by KVM
 * and pages marked by devices wait in one place until pre-copy takes them.
 */
#include "migration/dirty.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PFX "dirty tracking: "

int mig_dirty_init(struct mig_dirty *t, const struct mig_dirty_ops *ops,
                   const struct mig_dirty_slot *slots, uint32_t n, struct errbuf *err)
{
    size_t max_words = 0;
    memset(t, 0, sizeof(*t));
    if (!ops || !ops->set_logging || !ops->get_log)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, PFX "no kernel interface");
    if (n == 0 || n > MIG_DIRTY_MAX_SLOTS)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, PFX "%u slots (1 to %u allowed)", n,
                       MIG_DIRTY_MAX_SLOTS);
    for (uint32_t i = 0; i < n; i++) {
        const struct mig_dirty_slot *s = &slots[i];
        uint64_t end;
        if (!range_end(s->gpa, s->size, &end) || !is_aligned(s->gpa, MIG_DIRTY_PAGE) ||
            !is_aligned(s->size, MIG_DIRTY_PAGE) || s->size > MIG_DIRTY_MAX_SLOT_SIZE)
            return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                           PFX "slot %u (0x%llx, 0x%llx bytes) is empty, unaligned, too large "
                               "or wraps",
                           s->slot, (unsigned long long)s->gpa, (unsigned long long)s->size);
        for (uint32_t j = 0; j < i; j++) {
            if (slots[j].slot == s->slot ||
                ranges_overlap(s->gpa, s->size, slots[j].gpa, slots[j].size))
                return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                               PFX "slots %u and %u share an id or overlap", slots[j].slot,
                               s->slot);
        }
    }
    t->ops = *ops;
    t->n = n;
    for (uint32_t i = 0; i < n; i++) {
        struct mig_dirty_tslot *ts = &t->slots[i];
        ts->s = slots[i];
        ts->npages = slots[i].size / MIG_DIRTY_PAGE;
        ts->words = (size_t)((ts->npages + 63) / 64);
        ts->bits = calloc(ts->words, sizeof(uint64_t));
        if (!ts->bits)
            goto nomem;
        max_words = MAX(max_words, ts->words);
    }
    t->fetch = calloc(max_words, sizeof(uint64_t));
    if (!t->fetch)
        goto nomem;
    return 0;
nomem:
    mig_dirty_free(t);
    return err_set(err, WISP_EXIT_FAILURE, ENOMEM, PFX "no memory for the bitmaps");
}

void mig_dirty_free(struct mig_dirty *t)
{
    for (uint32_t i = 0; i < t->n; i++) {
        free(t->slots[i].bits);
        t->slots[i].bits = NULL;
    }
    free(t->fetch);
    t->fetch = NULL;
    t->n = 0;
    t->started = false;
}

/* Bits of the last word that stand for pages of the slot. */
static uint64_t last_word_mask(const struct mig_dirty_tslot *ts)
{
    unsigned used = (unsigned)(ts->npages % 64);
    return used ? (1ULL << used) - 1 : ~0ULL;
}

int mig_dirty_start(struct mig_dirty *t, struct errbuf *err)
{
    if (t->started)
        return err_set(err, WISP_EXIT_FAILURE, EBUSY, PFX "already started");
    for (uint32_t i = 0; i < t->n; i++) {
        struct mig_dirty_tslot *ts = &t->slots[i];
        int e = t->ops.set_logging(t->ops.ctx, ts->s.slot, true);
        if (e < 0) {
            err_set(err, WISP_EXIT_FAILURE, -e, PFX "slot %u: cannot turn logging on: %s",
                    ts->s.slot, strerror(-e));
            (void)mig_dirty_stop(t, NULL);
            return e;
        }
        ts->logging = true;
    }
    for (uint32_t i = 0; i < t->n; i++) {
        struct mig_dirty_tslot *ts = &t->slots[i];
        memset(ts->bits, 0xff, ts->words * sizeof(uint64_t));
        ts->bits[ts->words - 1] &= last_word_mask(ts);
    }
    t->started = true;
    t->cur_slot = 0;
    t->cur_page = 0;
    return 0;
}

int mig_dirty_sync(struct mig_dirty *t, struct errbuf *err)
{
    if (!t->started)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, PFX "sync before start");
    for (uint32_t i = 0; i < t->n; i++) {
        struct mig_dirty_tslot *ts = &t->slots[i];
        memset(t->fetch, 0, ts->words * sizeof(uint64_t));
        int e = t->ops.get_log(t->ops.ctx, ts->s.slot, t->fetch, ts->words);
        if (e < 0)
            return err_set(err, WISP_EXIT_FAILURE, -e, PFX "slot %u: reading the dirty log: %s",
                           ts->s.slot, strerror(-e));
        /* A bit past the slot's end would name a page we cannot send: ignore it. */
        t->fetch[ts->words - 1] &= last_word_mask(ts);
        for (size_t w = 0; w < ts->words; w++)
            ts->bits[w] |= t->fetch[w];
    }
    t->cur_slot = 0;
    t->cur_page = 0;
    return 0;
}

/* The slot holding gpa, or NULL. */
static struct mig_dirty_tslot *slot_of(struct mig_dirty *t, uint64_t gpa)
{
    for (uint32_t i = 0; i < t->n; i++) {
        struct mig_dirty_tslot *ts = &t->slots[i];
        if (gpa >= ts->s.gpa && gpa - ts->s.gpa < ts->s.size)
            return ts;
    }
    return NULL;
}

static void set_bits(uint64_t *bits, uint64_t first, uint64_t n)
{
    for (uint64_t p = first; p < first + n; p++)
        bits[p / 64] |= 1ULL << (p % 64);
}

int mig_dirty_mark(void *ctx, uint64_t gpa, uint64_t len)
{
    struct mig_dirty *t = ctx;
    uint64_t end, first = align_down(gpa, MIG_DIRTY_PAGE);
    if (!t->started)
        return -EINVAL;
    if (!range_end(gpa, len, &end))
        return -ERANGE;
    /* Check the whole range first, so a refused range marks nothing. */
    for (uint64_t a = first; a < end;) {
        struct mig_dirty_tslot *ts = slot_of(t, a);
        if (!ts)
            return -ERANGE;
        uint64_t slot_end = ts->s.gpa + ts->s.size; /* no overflow: checked at init */
        if (slot_end >= end)
            break;
        a = slot_end;
    }
    for (uint64_t a = first; a < end;) {
        struct mig_dirty_tslot *ts = slot_of(t, a);
        uint64_t slot_end = ts->s.gpa + ts->s.size;
        uint64_t stop = MIN(end, slot_end);
        uint64_t p0 = (a - ts->s.gpa) / MIG_DIRTY_PAGE;
        uint64_t p1 = (stop - ts->s.gpa + MIG_DIRTY_PAGE - 1) / MIG_DIRTY_PAGE;
        set_bits(ts->bits, p0, p1 - p0);
        /* Marked behind the take cursor: move it back so this pass sees the pages. */
        uint32_t si = (uint32_t)(ts - t->slots);
        if (si < t->cur_slot || (si == t->cur_slot && p0 < t->cur_page)) {
            t->cur_slot = si;
            t->cur_page = p0;
        }
        a = stop;
    }
    return 0;
}

void mig_dirty_clear(struct mig_dirty *t, uint64_t gpa, uint64_t len)
{
    uint64_t end;
    if (!t->started || !range_end(gpa, len, &end))
        return;
    /* Whole pages only: a page partly outside the range keeps its bit. */
    uint64_t a, b = align_down(end, MIG_DIRTY_PAGE);
    if (!align_up_checked(gpa, MIG_DIRTY_PAGE, &a))
        return;
    for (uint32_t i = 0; i < t->n && a < b; i++) {
        struct mig_dirty_tslot *ts = &t->slots[i];
        uint64_t lo = MAX(a, ts->s.gpa), hi = MIN(b, ts->s.gpa + ts->s.size);
        for (uint64_t p = (lo - ts->s.gpa) / MIG_DIRTY_PAGE;
             lo < hi && p < (hi - ts->s.gpa) / MIG_DIRTY_PAGE; p++)
            ts->bits[p / 64] &= ~(1ULL << (p % 64));
    }
}

/* First set bit at or after page `from` in ts, or ts->npages. */
static uint64_t next_set(const struct mig_dirty_tslot *ts, uint64_t from)
{
    for (uint64_t w = from / 64; w < ts->words; w++) {
        uint64_t v = ts->bits[w];
        if (w == from / 64)
            v &= ~0ULL << (from % 64);
        if (v)
            return w * 64 + (uint64_t)__builtin_ctzll(v);
    }
    return ts->npages;
}

int mig_dirty_take(struct mig_dirty *t, uint64_t max_pages, struct mig_dirty_run *run)
{
    if (!t->started || max_pages == 0)
        return -EINVAL;
    for (; t->cur_slot < t->n; t->cur_slot++, t->cur_page = 0) {
        struct mig_dirty_tslot *ts = &t->slots[t->cur_slot];
        uint64_t p = next_set(ts, t->cur_page);
        if (p >= ts->npages)
            continue;
        uint64_t n = 0;
        while (p + n < ts->npages && n < max_pages &&
               (ts->bits[(p + n) / 64] >> ((p + n) % 64) & 1)) {
            ts->bits[(p + n) / 64] &= ~(1ULL << ((p + n) % 64));
            n++;
        }
        run->slot = ts->s.slot;
        run->gpa = ts->s.gpa + p * MIG_DIRTY_PAGE;
        run->npages = n;
        t->cur_page = p + n;
        return 1;
    }
    return 0;
}

uint64_t mig_dirty_count(const struct mig_dirty *t)
{
    uint64_t c = 0;
    for (uint32_t i = 0; i < t->n; i++)
        for (size_t w = 0; w < t->slots[i].words; w++)
            c += (uint64_t)__builtin_popcountll(t->slots[i].bits[w]);
    return c;
}

int mig_dirty_stop(struct mig_dirty *t, struct errbuf *err)
{
    int first = 0;
    for (uint32_t i = 0; i < t->n; i++) {
        struct mig_dirty_tslot *ts = &t->slots[i];
        if (!ts->logging)
            continue;
        int e = t->ops.set_logging(t->ops.ctx, ts->s.slot, false);
        if (e < 0) {
            if (first == 0) {
                first = e;
                if (err)
                    err_set(err, WISP_EXIT_FAILURE, -e, PFX "slot %u: cannot turn logging off: %s",
                            ts->s.slot, strerror(-e));
            }
            continue; /* still logging: a later stop may retry it */
        }
        ts->logging = false;
    }
    t->started = false;
    return first;
}
