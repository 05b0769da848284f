/*
 * The pre-copy round driver (migration/precopy.h), end to end: a guest on
 * the KVM simulator (test_kvm_sim.h) that dirties pages while rounds run,
 * a device that DMAs into RAM and reports it, the memory transport, and the
 * real reader on the other side.  Each migration is read back and the
 * destination RAM compared byte for byte with the source's at the end.
 */
#include "migration/precopy.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/migration/test_kvm_sim.h"

#define PAGE     4096ULL
#define S1_PAGES 6144U /* slot 1 at 0: more data than one RAM section holds */
#define S2_GPA   (64ULL << 20)
#define S2_PAGES 128U /* slot 2 at 64 MiB */
#define DEV_SEC  0x420U
#define DMA_GPA  (S2_GPA + 5 * PAGE)

/* ---- The world: clock, transport, guest, device ---- */

struct world {
    struct kvm_sim k;
    struct mig_dirty t;
    struct mig_registry reg;
    struct mig_mem_transport mt;
    struct mig_stream_writer w;
    struct mig_precopy_args a;
    struct mig_precopy_stats st;
    struct errbuf err;
    atomic_bool cancel;
    /* clock */
    uint64_t ns, slept;
    uint64_t link_bps; /* transport speed the clock follows; 0 = instant */
    /* transport */
    struct mig_transport inner;
    unsigned writes;
    int fail_write_at; /* fail the write with this number (1-based), 0 = never */
    /* guest */
    unsigned hot_pages; /* pages written at each sync */
    unsigned syncs;
    unsigned cancel_at_sync;  /* set the cancel flag at this sync, 0 = never */
    unsigned cancel_at_write; /* ... or at this write (1-based), 0 = never */
    bool refuse_at_stop;      /* the transport fails from stop_vm on */
    /* core callbacks */
    unsigned stop_calls;
    size_t out_at_begin; /* stream bytes before mig_precopy_run */
    size_t out_at_stop;
    uint64_t ns_at_stop;
    struct mig_precopy_progress last;
    unsigned progress_calls;
    /* the device */
    const char *why_not;
    uint64_t pending[16];
    unsigned npending;
    bool quiesced;
};

static uint64_t fake_now(void *ctx)
{
    return ((struct world *)ctx)->ns;
}

static void fake_sleep(void *ctx, uint64_t ns)
{
    struct world *wd = ctx;
    wd->ns += ns;
    wd->slept += ns;
}

static int test_write(void *ctx, const void *buf, size_t len)
{
    struct world *wd = ctx;
    wd->writes++;
    if (wd->cancel_at_write && wd->writes == wd->cancel_at_write)
        atomic_store(&wd->cancel, true);
    if (wd->fail_write_at && wd->writes >= (unsigned)wd->fail_write_at)
        return -EPIPE;
    if (wd->link_bps)
        wd->ns += len * 1000000000ULL / wd->link_bps;
    return wd->inner.write(wd->inner.ctx, buf, len);
}

/* The guest runs between rounds: hot pages get a new value at every sync. */
static void guest_runs(struct kvm_sim *k, void *ctx)
{
    struct world *wd = ctx;
    if (k->stopped)
        return; /* vCPUs paused, device quiesced: nothing runs */
    wd->syncs++;
    if (wd->cancel_at_sync && wd->syncs == wd->cancel_at_sync)
        atomic_store(&wd->cancel, true);
    for (unsigned i = 0; i < wd->hot_pages; i++)
        ks_write(k, (uint64_t)i * PAGE + (wd->syncs % 64), (uint8_t)(wd->syncs + i));
    if (wd->hot_pages && wd->npending < 15) {
        /* the device DMAs too, without a KVM dirty bit */
        uint64_t gpa = S2_GPA + (uint64_t)(wd->syncs % 100) * PAGE;
        ks_dma(k, gpa + 1, (uint8_t)(0x80 + wd->syncs));
        wd->pending[wd->npending++] = gpa;
    }
}

static int stop_vm(void *ctx)
{
    struct world *wd = ctx;
    wd->stop_calls++;
    wd->k.stopped = true;
    wd->out_at_stop = wd->mt.out_len;
    wd->ns_at_stop = wd->ns;
    if (wd->refuse_at_stop)
        wd->fail_write_at = (int)wd->writes + 1;
    return 0;
}

static void progress(void *ctx, const struct mig_precopy_progress *p)
{
    struct world *wd = ctx;
    wd->last = *p;
    wd->progress_calls++;
    /* A vCPU write after the sync: the next sync must see it. */
    if (wd->hot_pages)
        ks_write(&wd->k, S2_GPA + 100 * PAGE + wd->progress_calls, (uint8_t)wd->progress_calls);
}

static const char *dev_why(void *dev)
{
    return ((struct world *)dev)->why_not;
}

static int dev_save(void *dev, struct vstate_out *out)
{
    (void)dev;
    vstate_put_u32(out, 0xd00d);
    return 0;
}

static int dev_load(void *dev, uint16_t version, const uint8_t *buf, size_t len, struct errbuf *err)
{
    (void)dev, (void)version, (void)err;
    return len == 4 && le32_get(buf) == 0xd00d ? 0 : -EINVAL;
}

static int dev_pre_save(void *dev, struct vstate_out *out, bool *converged)
{
    (void)dev;
    vstate_put_u32(out, 1);
    *converged = true;
    return 0;
}

static int dev_pre_load(void *dev, uint16_t version, const uint8_t *buf, size_t len,
                        struct errbuf *err)
{
    (void)dev, (void)version, (void)buf, (void)err;
    return len == 4 ? 0 : -EINVAL;
}

/* The last DMA before the device stops: reported by the final dirty log. */
static int dev_quiesce(void *dev)
{
    struct world *wd = dev;
    ks_dma(&wd->k, DMA_GPA + 7, 0xee);
    wd->pending[wd->npending++] = DMA_GPA;
    wd->quiesced = true;
    return 0;
}

static int dev_dirty_log(void *dev, mig_dirty_fn mark, void *ctx)
{
    struct world *wd = dev;
    for (unsigned i = 0; i < wd->npending; i++) {
        int e = mark(ctx, wd->pending[i] + 1, 10);
        if (e < 0)
            return e;
    }
    wd->npending = 0;
    return 0;
}

static const struct mig_device_ops dev_ops = {
    .type = "dma-dev",
    .section_id = DEV_SEC,
    .version = 1,
    .min_version = 1,
    .cannot_migrate = dev_why,
    .save = dev_save,
    .load = dev_load,
    .precopy_save = dev_pre_save,
    .precopy_load = dev_pre_load,
    .quiesce = dev_quiesce,
    .dirty_log = dev_dirty_log,
};

static void machine(struct mig_machine *m)
{
    memset(m, 0, sizeof(*m));
    m->arch = MIG_ARCH_X86_64;
    m->vcpus = 1;
    m->mem.n = 2;
    m->mem.r[0] = (struct mig_mem_range){0, S1_PAGES * PAGE};
    m->mem.r[1] = (struct mig_mem_range){S2_GPA, S2_PAGES * PAGE};
}

static struct mig_precopy_ram ram[2];

/* Everything up to mig_save_begin, with a guest whose RAM holds a pattern. */
static void world_init(struct world *wd)
{
    struct mig_dirty_slot sl[KS_MAX_SLOTS];
    struct mig_machine m;
    memset(wd, 0, sizeof(*wd));
    ks_init(&wd->k);
    ks_add(&wd->k, 1, 0, S1_PAGES * PAGE);
    ks_add(&wd->k, 2, S2_GPA, S2_PAGES * PAGE);
    for (uint64_t p = 0; p < S1_PAGES; p++)
        if (p % 8) /* every eighth page stays zero */
            memset(ks_host(&wd->k, p * PAGE), (int)(p & 0xff) | 1, 64);
    for (uint64_t p = 0; p < S2_PAGES; p++)
        *ks_host(&wd->k, S2_GPA + p * PAGE + 100) = (uint8_t)(p + 1);
    wd->k.before_log = guest_runs;
    wd->k.before_ctx = wd;
    struct mig_dirty_ops ops = ks_ops(&wd->k);
    cr_assert_eq(mig_dirty_init(&wd->t, &ops, sl, ks_slots(&wd->k, sl), &wd->err), 0);
    mig_registry_init(&wd->reg);
    cr_assert_eq(mig_registry_add(&wd->reg, &dev_ops, wd, 0, MIG_PLANE_BUILTIN, 0, &wd->err), 0);

    mig_mem_transport_init(&wd->mt, &wd->inner, NULL, 0, 64 << 20);
    struct mig_transport t = {.write = test_write, .ctx = wd};
    mig_stream_writer_init(&wd->w, &t);
    machine(&m);
    cr_assert_eq(mig_save_begin(&wd->reg, &wd->w, &m, 0, &wd->err), 0, "%s", wd->err.msg);
    cr_assert_eq(mig_dirty_start(&wd->t, &wd->err), 0);
    wd->out_at_begin = wd->mt.out_len;

    ram[0] = (struct mig_precopy_ram){0, S1_PAGES * PAGE, wd->k.s[0].ram};
    ram[1] = (struct mig_precopy_ram){S2_GPA, S2_PAGES * PAGE, wd->k.s[1].ram};
    wd->link_bps = 100 * 1000 * 1000; /* 100 MB/s */
    wd->a = (struct mig_precopy_args){
        .w = &wd->w,
        .reg = &wd->reg,
        .dirty = &wd->t,
        .ram = ram,
        .nram = 2,
        .limits = {.downtime_ms = 10, .max_rounds = 30},
        .ops = {.ctx = wd, .stop_vm = stop_vm, .progress = progress},
        .clock = {.ctx = wd, .now_ns = fake_now, .sleep_ns = fake_sleep},
        .cancel = &wd->cancel,
    };
}

/* What the caller does after every run: logging off, then free. */
static void world_free(struct world *wd)
{
    cr_assert_eq(mig_dirty_stop(&wd->t, NULL), 0);
    cr_assert(!ks_any_logging(&wd->k));
    mig_dirty_free(&wd->t);
    mig_mem_transport_free(&wd->mt);
    ks_free(&wd->k);
}

/* ---- The destination ---- */

struct dst {
    uint8_t *s1, *s2;
};

static int sink(void *ctx, uint64_t gpa, const void *data, uint64_t len)
{
    struct dst *d = ctx;
    uint8_t *to;
    if (gpa + len <= S1_PAGES * PAGE)
        to = d->s1 + gpa;
    else if (gpa >= S2_GPA && gpa + len <= S2_GPA + S2_PAGES * PAGE)
        to = d->s2 + (gpa - S2_GPA);
    else
        return -ERANGE;
    if (data)
        memcpy(to, data, len);
    else
        memset(to, 0, len);
    return 0;
}

/* Read the stream with the real reader; 0 or its error.  Fills the dest RAM. */
static int read_back(const struct world *wd, struct dst *d, struct errbuf *err)
{
    struct mig_registry reg;
    struct mig_machine local, streamed;
    struct mig_mem_transport mt;
    struct mig_transport t;
    struct mig_stream_reader r;
    static struct world dev; /* the destination's device instance */
    memset(&dev, 0, sizeof(dev));
    mig_registry_init(&reg);
    cr_assert_eq(mig_registry_add(&reg, &dev_ops, &dev, 0, MIG_PLANE_BUILTIN, 0, err), 0);
    machine(&local);
    mig_registry_describe(&reg, &local);
    d->s1 = calloc(S1_PAGES, PAGE);
    d->s2 = calloc(S2_PAGES, PAGE);
    /* Garbage, so a page the stream forgot shows up. */
    memset(d->s1, 0x5a, S1_PAGES * PAGE);
    memset(d->s2, 0x5a, S2_PAGES * PAGE);
    mig_mem_transport_init(&mt, &t, wd->mt.out, wd->mt.out_len, 0);
    mig_registry_reader_init(&reg, &r, &t, MIG_ARCH_X86_64, err);
    int e = mig_load_begin(&reg, &r, &local, &streamed, err);
    if (e == 0)
        e = mig_load_rest(&reg, &r, &local, sink, d, err);
    mig_stream_reader_free(&r);
    return e;
}

static void assert_same_ram(struct world *wd)
{
    struct dst d;
    struct errbuf err = {0};
    cr_assert_eq(read_back(wd, &d, &err), 0, "%s", err.msg);
    cr_assert(memcmp(d.s1, wd->k.s[0].ram, S1_PAGES * PAGE) == 0, "slot 1 differs");
    cr_assert(memcmp(d.s2, wd->k.s[1].ram, S2_PAGES * PAGE) == 0, "slot 2 differs");
    free(d.s1);
    free(d.s2);
}

/* ---- Tests ---- */

Test(precopy, idle_guest_converges_in_two_rounds)
{
    static struct world wd;
    world_init(&wd);
    cr_assert_eq(mig_precopy_run(&wd.a, &wd.st, &wd.err), 0, "%s", wd.err.msg);
    cr_assert_eq(wd.st.end, MIG_PRECOPY_CONVERGED);
    cr_assert_eq(wd.st.rounds, 2);
    cr_assert_eq(wd.st.pages[0], S1_PAGES + S2_PAGES, "round 0 sends every page");
    cr_assert_eq(wd.st.pages[1], 1, "the page the device wrote while quiescing");
    cr_assert(!wd.st.downtime_exceeded);
    cr_assert_eq(wd.stop_calls, 1);
    cr_assert(wd.quiesced && wd.st.vm_stopped);
    cr_assert_eq(wd.st.bytes, wd.mt.out_len - wd.out_at_begin, "every byte is counted");
    cr_assert_eq(wd.st.total_ns, wd.ns);
    cr_assert_eq(wd.st.downtime_ns, wd.ns - wd.ns_at_stop);
    cr_assert_gt(wd.st.downtime_ns, 0);
    cr_assert_eq(wd.slept, 0, "no bandwidth limit, no sleep");
    cr_assert_eq(wd.progress_calls, 1);
    cr_assert_eq(wd.last.dirty_pages, 0);
    cr_assert_eq(wd.last.pages_sent, S1_PAGES + S2_PAGES);
    cr_assert(wd.last.bytes_per_s > 99000000 && wd.last.bytes_per_s <= 100000000, "%llu",
              (unsigned long long)wd.last.bytes_per_s);
    assert_same_ram(&wd);
    world_free(&wd);
}

Test(precopy, hot_writer_hits_max_rounds_and_still_completes)
{
    static struct world wd;
    world_init(&wd);
    wd.hot_pages = 400; /* 1.6 MB per round: 16 ms at 100 MB/s, over the 10 ms target */
    wd.a.limits.max_rounds = 4;
    wd.a.limits.stall_rounds = 100;
    cr_assert_eq(mig_precopy_run(&wd.a, &wd.st, &wd.err), 0, "%s", wd.err.msg);
    cr_assert_eq(wd.st.end, MIG_PRECOPY_MAX_ROUNDS_HIT);
    cr_assert(wd.st.downtime_exceeded);
    cr_assert_gt(wd.st.expected_downtime_ms, 10);
    cr_assert_eq(wd.st.rounds, 5, "4 live rounds and stop-and-copy");
    for (unsigned i = 1; i < 5; i++)
        cr_assert_geq(wd.st.pages[i], 400, "round %u sent %llu", i,
                      (unsigned long long)wd.st.pages[i]);
    cr_assert_eq(wd.stop_calls, 1);
    assert_same_ram(&wd);
    world_free(&wd);
}

Test(precopy, dirty_set_that_stops_shrinking_ends_iteration)
{
    static struct world wd;
    world_init(&wd);
    wd.hot_pages = 400;
    wd.a.limits.stall_rounds = 2;
    cr_assert_eq(mig_precopy_run(&wd.a, &wd.st, &wd.err), 0, "%s", wd.err.msg);
    cr_assert_eq(wd.st.end, MIG_PRECOPY_STALLED);
    cr_assert_lt(wd.st.rounds, 30);
    assert_same_ram(&wd);
    world_free(&wd);
}

Test(precopy, cancel_mid_round_stops_at_the_next_chunk)
{
    static struct world wd;
    world_init(&wd);
    wd.cancel_at_write = wd.writes + 1; /* round 0's first RAM section, written mid-round */
    cr_assert_eq(mig_precopy_run(&wd.a, &wd.st, &wd.err), -ECANCELED);
    cr_assert_eq(wd.stop_calls, 0);
    cr_assert(!wd.st.vm_stopped);
    cr_assert_gt(wd.st.pages[0], 0);
    cr_assert_lt(wd.st.pages[0], S1_PAGES + S2_PAGES, "round 0 did not run to its end");
    world_free(&wd);
}

Test(precopy, cancel_returns_ecanceled_without_stopping_the_vm)
{
    static struct world wd;
    world_init(&wd);
    wd.hot_pages = 400;
    wd.cancel_at_sync = 2; /* during round 2's sync */
    cr_assert_eq(mig_precopy_run(&wd.a, &wd.st, &wd.err), -ECANCELED);
    cr_assert_eq(wd.stop_calls, 0);
    cr_assert(!wd.st.vm_stopped);
    cr_assert_eq(wd.st.pages[2], 0, "nothing of the cancelled round was sent");
    cr_assert(strstr(wd.err.msg, "cancelled"), "%s", wd.err.msg);
    cr_assert(wd.w.t.write == test_write, "the writer's transport is given back");
    struct dst d;
    struct errbuf err = {0};
    cr_assert_neq(read_back(&wd, &d, &err), 0, "a cancelled stream has no END");
    free(d.s1);
    free(d.s2);
    world_free(&wd);
}

Test(precopy, transport_error_propagates)
{
    static struct world wd;
    world_init(&wd);
    wd.fail_write_at = (int)wd.writes + 1; /* the first write of round 0 */
    cr_assert_eq(mig_precopy_run(&wd.a, &wd.st, &wd.err), -EPIPE);
    cr_assert(strstr(wd.err.msg, "sending RAM"), "%s", wd.err.msg);
    cr_assert_eq(wd.stop_calls, 0);
    cr_assert_lt(wd.st.pages[0], S1_PAGES + S2_PAGES, "stops at the first failed write");
    world_free(&wd);

    /* Failing during stop-and-copy: the caller learns the VM is stopped. */
    world_init(&wd);
    wd.refuse_at_stop = true;
    cr_assert_eq(mig_precopy_run(&wd.a, &wd.st, &wd.err), -EPIPE);
    cr_assert(wd.st.vm_stopped);
    cr_assert_eq(wd.stop_calls, 1);
    world_free(&wd);
}

Test(precopy, bandwidth_limit_advances_the_clock)
{
    static struct world wd;
    world_init(&wd);
    wd.link_bps = 0; /* an instant link: only the limit takes time */
    wd.a.limits.bandwidth = 1000 * 1000;
    cr_assert_eq(mig_precopy_run(&wd.a, &wd.st, &wd.err), 0, "%s", wd.err.msg);
    /* The live rounds' bytes at 1 MB/s, and nothing slept after the stop. */
    uint64_t live = wd.out_at_stop - wd.out_at_begin;
    uint64_t expect = live * 1000;
    cr_assert(wd.slept <= expect && wd.slept + 1 >= expect, "slept %llu ns for %llu bytes",
              (unsigned long long)wd.slept, (unsigned long long)live);
    cr_assert_eq(wd.ns, wd.ns_at_stop, "stop-and-copy is not throttled");
    cr_assert(wd.last.bytes_per_s >= 999000 && wd.last.bytes_per_s <= 1001000, "%llu",
              (unsigned long long)wd.last.bytes_per_s);
    assert_same_ram(&wd);
    world_free(&wd);
}

Test(precopy, refusing_device_refuses_before_any_ram)
{
    static struct world wd;
    world_init(&wd);
    wd.why_not = "lost its migration region";
    cr_assert_eq(mig_precopy_run(&wd.a, &wd.st, &wd.err), -EOPNOTSUPP);
    cr_assert(strstr(wd.err.msg, "lost its migration region"), "%s", wd.err.msg);
    cr_assert_eq(wd.mt.out_len, wd.out_at_begin, "no RAM written");
    cr_assert_eq(wd.k.get_logs, 0);
    cr_assert_eq(wd.stop_calls, 0);
    world_free(&wd);
}

Test(precopy, bad_arguments_are_refused)
{
    static struct world wd;
    world_init(&wd);
    wd.a.limits.max_rounds = 0;
    cr_assert_eq(mig_precopy_run(&wd.a, &wd.st, &wd.err), -EINVAL);
    wd.a.limits.max_rounds = 3;
    wd.a.nram = 1; /* slot 2 is not covered */
    memset(&wd.err, 0, sizeof(wd.err));
    cr_assert_eq(mig_precopy_run(&wd.a, &wd.st, &wd.err), -EINVAL);
    cr_assert(strstr(wd.err.msg, "slot 2"), "%s", wd.err.msg);
    cr_assert_eq(wd.k.get_logs, 0);
    world_free(&wd);
}
