/*
 * The pre-copy round driver (precopy.h).  Bytes are counted, and the live
 * rounds throttled, by a transport that wraps the writer's own for the
 * length of the call: every byte of the stream passes through it, RAM and
 * device sections alike, so throughput is measured on what was really
 * written, not estimated from page counts.
 */
#include "migration/precopy.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define PFX "pre-copy: "

/* The wrapping transport: counts bytes, sleeps to keep to the bandwidth. */
struct meter {
    struct mig_transport inner;
    const struct mig_precopy_clock *clock;
    uint64_t bytes;     /* written through the meter */
    uint64_t bandwidth; /* bytes/s, 0 = no limit */
    bool limit;         /* throttling on (the live rounds only) */
    uint64_t win_ns;    /* start of the throttling window */
    uint64_t win_bytes; /* bytes written in the window */
};

static uint64_t mono_now(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void mono_sleep(void *ctx, uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ULL),
                          .tv_nsec = (long)(ns % 1000000000ULL)};
    (void)ctx;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static uint64_t now(const struct mig_precopy_clock *c)
{
    return c->now_ns(c->ctx);
}

/* ns from t0 to now; 0 if the clock went backwards. */
static uint64_t since(const struct mig_precopy_clock *c, uint64_t t0)
{
    uint64_t t = now(c);
    return t > t0 ? t - t0 : 0;
}

/* ns to move `bytes` at `bw` bytes/s (bw > 0), saturating. */
static uint64_t xfer_ns(uint64_t bytes, uint64_t bw)
{
    unsigned __int128 ns = (unsigned __int128)bytes * 1000000000U / bw;
    return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

/*
 * A token bucket filled at `bandwidth` from the start of the window: after
 * each write, sleep until the window's bytes are due.  Time that seems to
 * run backwards counts as no time.
 */
static int meter_write(void *ctx, const void *buf, size_t len)
{
    struct meter *m = ctx;
    int e = m->inner.write(m->inner.ctx, buf, len);
    if (e < 0)
        return e;
    m->bytes += len;
    if (!m->limit || m->bandwidth == 0)
        return 0;
    m->win_bytes += len;
    uint64_t due = xfer_ns(m->win_bytes, m->bandwidth);
    uint64_t t = now(m->clock);
    uint64_t elapsed = t > m->win_ns ? t - m->win_ns : 0;
    if (due > elapsed)
        m->clock->sleep_ns(m->clock->ctx, due - elapsed);
    return 0;
}

static ssize_t meter_read(void *ctx, void *buf, size_t len)
{
    struct meter *m = ctx;
    return m->inner.read ? m->inner.read(m->inner.ctx, buf, len) : -EINVAL;
}

struct run {
    const struct mig_precopy_args *a;
    struct mig_precopy_stats *st;
    struct errbuf *err;
    struct meter meter;
    struct mig_ram_writer rw;
};

static bool cancelled(const struct run *r)
{
    return r->a->cancel && atomic_load_explicit(r->a->cancel, memory_order_acquire);
}

/* The RAM range holding gpa, or NULL. */
static const struct mig_precopy_ram *ram_of(const struct mig_precopy_args *a, uint64_t gpa)
{
    for (uint32_t i = 0; i < a->nram; i++)
        if (gpa >= a->ram[i].gpa && gpa - a->ram[i].gpa < a->ram[i].size)
            return &a->ram[i];
    return NULL;
}

/* Is [gpa, gpa + size) inside the RAM ranges (maybe across adjacent ones)? */
static bool ram_covers(const struct mig_precopy_args *a, uint64_t gpa, uint64_t size)
{
    uint64_t end = gpa + size; /* the tracker checked it does not wrap */
    while (gpa < end) {
        const struct mig_precopy_ram *m = ram_of(a, gpa);
        if (!m)
            return false;
        gpa = m->gpa + m->size;
    }
    return true;
}

static int check_args(const struct mig_precopy_args *a, struct errbuf *err)
{
    const struct mig_precopy_limits *l = &a->limits;
    if (!a->w || !a->reg || !a->dirty || !a->ram || !a->ops.stop_vm)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, PFX "missing argument");
    if (!a->dirty->started)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, PFX "the dirty tracker is not started");
    if (l->max_rounds == 0 || l->max_rounds > MIG_PRECOPY_MAX_ROUNDS)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, PFX "max rounds %u (1 to %u allowed)",
                       l->max_rounds, MIG_PRECOPY_MAX_ROUNDS);
    if (a->nram == 0 || a->nram > MIG_MAX_MEM_RANGES)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, PFX "%u RAM ranges", a->nram);
    for (uint32_t i = 0; i < a->nram; i++) {
        const struct mig_precopy_ram *m = &a->ram[i];
        uint64_t end;
        if (!m->host || !range_end(m->gpa, m->size, &end) || !is_aligned(m->gpa, MIG_PAGE_SIZE) ||
            !is_aligned(m->size, MIG_PAGE_SIZE) ||
            (i > 0 && m->gpa < a->ram[i - 1].gpa + a->ram[i - 1].size))
            return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                           PFX "RAM range %u is empty, unaligned, out of order or has no memory",
                           i);
    }
    for (uint32_t i = 0; i < a->dirty->n; i++) {
        const struct mig_dirty_slot *s = &a->dirty->slots[i].s;
        if (!ram_covers(a, s->gpa, s->size))
            return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                           PFX "memory slot %u (0x%llx, 0x%llx bytes) is not all RAM", s->slot,
                           (unsigned long long)s->gpa, (unsigned long long)s->size);
    }
    return 0;
}

/* Send one run of pages, split at RAM range boundaries. */
static int send_run(struct run *r, uint64_t gpa, uint64_t npages)
{
    while (npages) {
        const struct mig_precopy_ram *m = ram_of(r->a, gpa);
        if (!m) /* cannot happen: slots were checked against the ranges */
            return -EFAULT;
        uint64_t off = gpa - m->gpa;
        uint64_t n = MIN(npages, (m->size - off) / MIG_PAGE_SIZE);
        int e = mig_ram_put(&r->rw, gpa, (const uint8_t *)m->host + off, n);
        if (e < 0)
            return e;
        gpa += n * MIG_PAGE_SIZE;
        npages -= n;
    }
    return 0;
}

/* Send every dirty page, a chunk at a time, as pass `pass`. */
static int send_dirty(struct run *r, uint32_t pass)
{
    struct mig_dirty_run d;
    int got;
    while ((got = mig_dirty_take(r->a->dirty, MIG_PRECOPY_CHUNK_PAGES, &d)) == 1) {
        if (cancelled(r))
            return err_set(r->err, WISP_EXIT_FAILURE, ECANCELED, PFX "cancelled");
        int e = send_run(r, d.gpa, d.npages);
        if (e < 0)
            return err_set(r->err, WISP_EXIT_FAILURE, -e, PFX "sending RAM: %s", strerror(-e));
        r->st->pages[pass] += d.npages;
    }
    if (got < 0)
        return err_set(r->err, WISP_EXIT_FAILURE, -got, PFX "taking dirty pages: %s",
                       strerror(-got));
    int e = mig_ram_flush(&r->rw);
    if (e < 0)
        return err_set(r->err, WISP_EXIT_FAILURE, -e, PFX "sending RAM: %s", strerror(-e));
    return 0;
}

/* The kernel's dirty log, then the devices'. */
static int sync_all(struct run *r)
{
    int e = mig_dirty_sync(r->a->dirty, r->err);
    if (e == 0)
        e = mig_dirty_log(r->a->reg, mig_dirty_mark, r->a->dirty, r->err);
    return e;
}

/* Estimated ms to send `pages` at `bps` bytes/s (UINT64_MAX when unknown). */
static uint64_t estimate_ms(uint64_t pages, uint64_t bps)
{
    if (pages == 0)
        return 0;
    if (bps == 0)
        return UINT64_MAX;
    unsigned __int128 ms = (unsigned __int128)pages * MIG_PAGE_SIZE * 1000U / bps;
    return ms > UINT64_MAX ? UINT64_MAX : (uint64_t)ms;
}

/* One live round: pages, then device pre-copy data; measures throughput. */
static int live_round(struct run *r, uint32_t pass, bool *dev_converged, uint64_t *bps)
{
    const struct mig_precopy_clock *c = &r->a->clock;
    uint64_t t0 = now(c), b0 = r->meter.bytes;
    r->meter.limit = true;
    r->meter.win_ns = t0;
    r->meter.win_bytes = 0;
    int e = send_dirty(r, pass);
    if (e == 0)
        e = mig_save_precopy(r->a->reg, r->a->w, dev_converged, r->err);
    r->meter.limit = false;
    if (e < 0)
        return e;
    r->st->rounds = pass + 1;
    uint64_t t1 = now(c), bytes = r->meter.bytes - b0;
    if (t1 > t0)
        *bps = (uint64_t)MIN((unsigned __int128)bytes * 1000000000U / (t1 - t0),
                             (unsigned __int128)UINT64_MAX);
    else if (bytes)
        *bps = UINT64_MAX; /* faster than the clock can tell */
    return 0;
}

static void report(struct run *r, uint32_t pass, uint64_t dirty, uint64_t bps, uint64_t est)
{
    if (!r->a->ops.progress)
        return;
    struct mig_precopy_progress p = {
        .round = pass,
        .dirty_pages = dirty,
        .pages_sent = pass ? r->st->pages[pass - 1] : 0,
        .bytes_sent = r->meter.bytes,
        .bytes_per_s = bps,
        .mb_per_s = (double)bps / 1e6,
        .remaining_ms = est,
    };
    r->a->ops.progress(r->a->ops.ctx, &p);
}

/* The live rounds; returns with the pages still dirty in the tracker. */
static int iterate(struct run *r)
{
    const struct mig_precopy_limits *l = &r->a->limits;
    uint32_t stall_max = l->stall_rounds ? l->stall_rounds : MIG_PRECOPY_STALL_ROUNDS;
    uint64_t bps = 0, best = UINT64_MAX;
    uint32_t stalled = 0;
    bool dev_converged = false;

    for (uint32_t pass = 0;; pass++) {
        if (cancelled(r))
            return err_set(r->err, WISP_EXIT_FAILURE, ECANCELED, PFX "cancelled");
        int e = live_round(r, pass, &dev_converged, &bps);
        if (e < 0)
            return e;
        e = sync_all(r);
        if (e < 0)
            return e;
        uint64_t dirty = mig_dirty_count(r->a->dirty);
        uint64_t est = estimate_ms(dirty, bps);
        report(r, pass + 1, dirty, bps, est);
        r->st->expected_downtime_ms = est;
        if (dirty < best) {
            best = dirty;
            stalled = 0;
        } else {
            stalled++;
        }
        r->st->downtime_exceeded = est > l->downtime_ms;
        if (est <= l->downtime_ms && dev_converged)
            r->st->end = MIG_PRECOPY_CONVERGED;
        else if (pass + 1 >= l->max_rounds)
            r->st->end = MIG_PRECOPY_MAX_ROUNDS_HIT;
        else if (stalled >= stall_max)
            r->st->end = MIG_PRECOPY_STALLED;
        if (r->st->end)
            return 0;
    }
}

/* Pause the guest and send everything left, device states and END. */
static int stop_and_copy(struct run *r)
{
    const struct mig_precopy_args *a = r->a;
    if (cancelled(r))
        return err_set(r->err, WISP_EXIT_FAILURE, ECANCELED, PFX "cancelled");
    uint64_t t_stop = now(&a->clock);
    r->st->vm_stopped = true;
    int e = a->ops.stop_vm(a->ops.ctx);
    if (e < 0)
        return err_set(r->err, WISP_EXIT_FAILURE, -e, PFX "stopping the VM: %s", strerror(-e));
    /* Devices stop their DMA before the last look at the logs. */
    e = mig_quiesce(a->reg, r->err);
    if (e == 0)
        e = sync_all(r);
    if (e == 0)
        e = send_dirty(r, r->st->rounds);
    if (e < 0)
        return e;
    r->st->rounds++;
    e = mig_save_finish(a->reg, a->w, r->err);
    if (e < 0)
        return e;
    r->st->downtime_ns = since(&a->clock, t_stop);
    return 0;
}

int mig_precopy_run(const struct mig_precopy_args *a, struct mig_precopy_stats *stats,
                    struct errbuf *err)
{
    struct mig_precopy_args args = *a;
    struct run r = {.a = &args, .st = stats, .err = err};
    memset(stats, 0, sizeof(*stats));
    if (!args.clock.now_ns || !args.clock.sleep_ns) {
        args.clock = (struct mig_precopy_clock){.now_ns = mono_now, .sleep_ns = mono_sleep};
    }
    int e = check_args(&args, err);
    if (e < 0)
        return e;
    /* A device may have become unmigratable since mig_save_begin: refuse before any RAM. */
    e = mig_registry_check(args.reg, err);
    if (e < 0)
        return e;

    uint64_t t_start = now(&args.clock);
    r.meter = (struct meter){
        .inner = args.w->t, .clock = &args.clock, .bandwidth = args.limits.bandwidth};
    args.w->t = (struct mig_transport){.read = meter_read, .write = meter_write, .ctx = &r.meter};
    mig_ram_writer_init(&r.rw, args.w);

    e = iterate(&r);
    if (e == 0)
        e = stop_and_copy(&r);

    mig_ram_writer_free(&r.rw);
    args.w->t = r.meter.inner;
    stats->bytes = r.meter.bytes;
    stats->total_ns = since(&args.clock, t_start);
    return e;
}
