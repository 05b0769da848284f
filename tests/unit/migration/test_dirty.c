/*
 * Dirty page tracking (migration/dirty.h) against the KVM simulator
 * (test_kvm_sim.h): the simulator's own rules, start/sync/take/stop, device
 * marks and their bounds, and that logging is off again after any failure.
 */
#include "migration/dirty.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "migration/hooks.h"
#include "tests/unit/migration/test_kvm_sim.h"

#define MB (1024ULL * 1024)

/* Two slots: id 1, 100 pages at 0; id 7, 70 pages at 1 MiB. */
static void setup(struct kvm_sim *k, struct mig_dirty *t)
{
    struct mig_dirty_slot sl[KS_MAX_SLOTS];
    struct errbuf err = {0};
    ks_init(k);
    ks_add(k, 1, 0, 100 * 4096);
    ks_add(k, 7, MB, 70 * 4096);
    struct mig_dirty_ops ops = ks_ops(k);
    cr_assert_eq(mig_dirty_init(t, &ops, sl, ks_slots(k, sl), &err), 0, "%s", err.msg);
}

static void take_all(struct mig_dirty *t)
{
    struct mig_dirty_run r;
    while (mig_dirty_take(t, 1000, &r) == 1)
        ;
}

Test(dirty, simulator_enforces_kernel_rules)
{
    struct kvm_sim k;
    uint64_t bm[2];
    ks_init(&k);
    ks_add(&k, 3, 0, 100 * 4096); /* 100 pages: 2 words */
    struct mig_dirty_ops ops = ks_ops(&k);
    cr_assert_eq(ops.get_log(ops.ctx, 3, bm, 2), -ENOENT);
    cr_assert_eq(ops.get_log(ops.ctx, 4, bm, 2), -EINVAL);
    cr_assert_eq(ops.set_logging(ops.ctx, 4, true), -EINVAL);
    cr_assert_eq(ops.set_logging(ops.ctx, 3, true), 0);
    cr_assert_eq(ops.get_log(ops.ctx, 3, bm, 1), -EINVAL);
    cr_assert_eq(ops.get_log(ops.ctx, 3, bm, 3), -EINVAL);
    ks_write(&k, 65 * 4096 + 9, 1);
    cr_assert_eq(ops.get_log(ops.ctx, 3, bm, 2), 0);
    cr_assert(bm[0] == 0 && bm[1] == 2);
    cr_assert_eq(ops.get_log(ops.ctx, 3, bm, 2), 0);
    cr_assert(bm[0] == 0 && bm[1] == 0, "fetch clears");
    ks_free(&k);
}

Test(dirty, init_refuses_bad_slots)
{
    struct kvm_sim k;
    struct mig_dirty t;
    struct errbuf err = {0};
    ks_init(&k);
    struct mig_dirty_ops ops = ks_ops(&k);
    struct mig_dirty_slot overlap[] = {{1, 0, 8192}, {2, 4096, 8192}};
    struct mig_dirty_slot same_id[] = {{1, 0, 4096}, {1, 8192, 4096}};
    struct mig_dirty_slot unaligned[] = {{1, 100, 4096}};
    struct mig_dirty_slot empty[] = {{1, 0, 0}};
    struct mig_dirty_slot wraps[] = {{1, UINT64_MAX - 4095, 8192}};
    cr_assert_eq(mig_dirty_init(&t, &ops, overlap, 2, &err), -EINVAL);
    cr_assert(strstr(err.msg, "share an id or overlap"), "%s", err.msg);
    cr_assert_eq(mig_dirty_init(&t, &ops, same_id, 2, &err), -EINVAL);
    cr_assert_eq(mig_dirty_init(&t, &ops, unaligned, 1, &err), -EINVAL);
    cr_assert_eq(mig_dirty_init(&t, &ops, empty, 1, &err), -EINVAL);
    cr_assert_eq(mig_dirty_init(&t, &ops, wraps, 1, &err), -EINVAL);
    cr_assert_eq(mig_dirty_init(&t, &ops, overlap, 0, &err), -EINVAL);
}

Test(dirty, start_marks_every_page_and_take_returns_runs)
{
    struct kvm_sim k;
    struct mig_dirty t;
    struct mig_dirty_run r;
    struct errbuf err = {0};
    setup(&k, &t);
    cr_assert_eq(mig_dirty_take(&t, 8, &r), -EINVAL, "take before start");
    cr_assert_eq(mig_dirty_start(&t, &err), 0);
    cr_assert(k.s[0].logging && k.s[1].logging);
    cr_assert_eq(mig_dirty_start(&t, &err), -EBUSY);
    cr_assert_eq(mig_dirty_count(&t), 170);
    cr_assert_eq(mig_dirty_take(&t, 64, &r), 1);
    cr_assert(r.slot == 1 && r.gpa == 0 && r.npages == 64);
    cr_assert_eq(mig_dirty_take(&t, 64, &r), 1);
    cr_assert(r.slot == 1 && r.gpa == 64 * 4096 && r.npages == 36, "runs end at the slot's end");
    cr_assert_eq(mig_dirty_take(&t, 1000, &r), 1);
    cr_assert(r.slot == 7 && r.gpa == MB && r.npages == 70);
    cr_assert_eq(mig_dirty_take(&t, 1000, &r), 0);
    cr_assert_eq(mig_dirty_count(&t), 0);
    cr_assert_eq(mig_dirty_take(&t, 0, &r), -EINVAL);

    /* Two separate runs in one slot. */
    ks_write(&k, 3 * 4096, 1);
    ks_write(&k, 4 * 4096, 1);
    ks_write(&k, 9 * 4096 + 5, 1);
    cr_assert_eq(mig_dirty_sync(&t, &err), 0);
    cr_assert_eq(mig_dirty_count(&t), 3);
    cr_assert_eq(mig_dirty_take(&t, 1000, &r), 1);
    cr_assert(r.gpa == 3 * 4096 && r.npages == 2);
    cr_assert_eq(mig_dirty_take(&t, 1000, &r), 1);
    cr_assert(r.gpa == 9 * 4096 && r.npages == 1);
    cr_assert_eq(mig_dirty_take(&t, 1000, &r), 0);
    cr_assert_eq(mig_dirty_stop(&t, &err), 0);
    cr_assert(!ks_any_logging(&k));
    mig_dirty_free(&t);
    ks_free(&k);
}

Test(dirty, no_write_is_lost_between_sync_and_take)
{
    struct kvm_sim k;
    struct mig_dirty t;
    struct mig_dirty_run r;
    struct errbuf err = {0};
    setup(&k, &t);
    cr_assert_eq(mig_dirty_start(&t, &err), 0);
    take_all(&t);
    ks_write(&k, 5 * 4096, 1);
    cr_assert_eq(mig_dirty_sync(&t, &err), 0);
    ks_write(&k, MB + 7 * 4096, 1); /* after the sync: in the next one */
    cr_assert_eq(mig_dirty_take(&t, 1000, &r), 1);
    cr_assert(r.gpa == 5 * 4096 && r.npages == 1);
    cr_assert_eq(mig_dirty_take(&t, 1000, &r), 0);
    cr_assert_eq(mig_dirty_sync(&t, &err), 0);
    cr_assert_eq(mig_dirty_take(&t, 1000, &r), 1);
    cr_assert(r.gpa == MB + 7 * 4096 && r.npages == 1);

    /* Pages not yet taken survive a sync (the log is added, not copied). */
    ks_write(&k, 20 * 4096, 1);
    cr_assert_eq(mig_dirty_sync(&t, &err), 0);
    ks_write(&k, 30 * 4096, 1);
    cr_assert_eq(mig_dirty_sync(&t, &err), 0);
    cr_assert_eq(mig_dirty_count(&t), 2);
    (void)mig_dirty_stop(&t, NULL);
    mig_dirty_free(&t);
    ks_free(&k);
}

Test(dirty, device_marks_are_bounded)
{
    struct kvm_sim k;
    struct mig_dirty t;
    struct mig_dirty_run r;
    struct errbuf err = {0};
    setup(&k, &t);
    mig_dirty_fn fn = mig_dirty_mark; /* the registry's callback type */
    cr_assert_eq(fn(&t, 0, 4096), -EINVAL, "mark before start");
    cr_assert_eq(mig_dirty_start(&t, &err), 0);
    take_all(&t);

    cr_assert_eq(fn(&t, 200 * 4096, 4096), -ERANGE, "in the gap between slots");
    cr_assert_eq(fn(&t, 99 * 4096, 2 * 4096), -ERANGE, "runs off the end of slot 1");
    cr_assert_eq(fn(&t, MB - 4096, 2 * 4096), -ERANGE, "starts in the gap");
    cr_assert_eq(fn(&t, MB + 69 * 4096, 4097), -ERANGE, "one byte past slot 7");
    cr_assert_eq(fn(&t, UINT64_MAX - 10, 100), -ERANGE, "wraps");
    cr_assert_eq(fn(&t, 0, 0), -ERANGE, "empty");
    cr_assert_eq(mig_dirty_count(&t), 0, "a refused range marks nothing");

    cr_assert_eq(fn(&t, 98 * 4096 + 100, 4096), 0, "partial pages count whole");
    cr_assert_eq(mig_dirty_count(&t), 2);
    cr_assert_eq(mig_dirty_take(&t, 1000, &r), 1);
    cr_assert(r.gpa == 98 * 4096 && r.npages == 2);
    /* Marked behind where take had got to: still taken in this pass. */
    cr_assert_eq(fn(&t, 4096, 10), 0);
    cr_assert_eq(mig_dirty_take(&t, 1000, &r), 1);
    cr_assert(r.gpa == 4096 && r.npages == 1);
    (void)mig_dirty_stop(&t, NULL);
    mig_dirty_free(&t);
    ks_free(&k);
}

Test(dirty, marks_may_cross_adjacent_slots)
{
    struct kvm_sim k;
    struct mig_dirty t;
    struct mig_dirty_slot sl[KS_MAX_SLOTS];
    struct errbuf err = {0};
    ks_init(&k);
    ks_add(&k, 1, 0, 4 * 4096);
    ks_add(&k, 2, 4 * 4096, 4 * 4096);
    struct mig_dirty_ops ops = ks_ops(&k);
    cr_assert_eq(mig_dirty_init(&t, &ops, sl, ks_slots(&k, sl), &err), 0);
    cr_assert_eq(mig_dirty_start(&t, &err), 0);
    take_all(&t);
    cr_assert_eq(mig_dirty_mark(&t, 3 * 4096, 2 * 4096), 0);
    cr_assert_eq(mig_dirty_count(&t), 2);
    (void)mig_dirty_stop(&t, NULL);
    mig_dirty_free(&t);
    ks_free(&k);
}

Test(dirty, failed_start_leaves_no_slot_logging)
{
    struct kvm_sim k;
    struct mig_dirty t;
    struct errbuf err = {0};
    setup(&k, &t);
    k.fail_set_on = -ENOMEM;
    k.fail_on_slot = 7;
    cr_assert_eq(mig_dirty_start(&t, &err), -ENOMEM);
    cr_assert(strstr(err.msg, "slot 7"), "%s", err.msg);
    cr_assert(!ks_any_logging(&k));
    mig_dirty_free(&t);
    ks_free(&k);
}

Test(dirty, stop_turns_logging_off_after_a_failure)
{
    struct kvm_sim k;
    struct mig_dirty t;
    struct errbuf err = {0};
    setup(&k, &t);
    cr_assert_eq(mig_dirty_start(&t, &err), 0);
    k.fail_get_log = -EIO;
    cr_assert_eq(mig_dirty_sync(&t, &err), -EIO);
    cr_assert(ks_any_logging(&k));
    cr_assert_eq(mig_dirty_stop(&t, NULL), 0);
    cr_assert(!ks_any_logging(&k));

    /* One slot refuses to switch off: the others still do, and a retry finishes. */
    k.fail_get_log = 0;
    cr_assert_eq(mig_dirty_start(&t, &err), 0);
    k.fail_set_off = -EBUSY;
    memset(&err, 0, sizeof(err));
    cr_assert_eq(mig_dirty_stop(&t, &err), -EBUSY);
    cr_assert(strstr(err.msg, "slot 1"), "%s", err.msg);
    cr_assert(k.s[0].logging && !k.s[1].logging);
    cr_assert_eq(mig_dirty_stop(&t, NULL), 0);
    cr_assert(!ks_any_logging(&k));
    mig_dirty_free(&t);
    ks_free(&k);
}

Test(dirty, sync_before_start_is_refused)
{
    struct kvm_sim k;
    struct mig_dirty t;
    struct errbuf err = {0};
    setup(&k, &t);
    cr_assert_eq(mig_dirty_sync(&t, &err), -EINVAL);
    cr_assert_eq(k.get_logs, 0);
    mig_dirty_free(&t);
    ks_free(&k);
}
