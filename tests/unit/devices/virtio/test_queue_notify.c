/*
 * Split virtqueue notifications: interrupt suppression (NO_INTERRUPT and
 * used_event with VIRTIO_F_EVENT_IDX, including the 16-bit wrap) and kick
 * suppression (used.flags, avail_event).
 */
#include "devices/virtio/queue.h"

#include <criterion/criterion.h>
#include <errno.h>

#include "tests/lib/virtq_builder.h"

#define SIZE 8

static struct vqb b;
static struct virtq_chain c;
static gpa_t buf;

/* Activate with indices pre-set (as a restore does) so tests can start near the wrap. */
static void start(bool event_idx, uint16_t idx)
{
    vqb_init(&b, VQB_ONE_REGION, SIZE, SIZE);
    b.q.last_avail = idx;
    b.q.used_idx = idx;
    vqb_set_avail_idx(&b, idx);
    cr_assert_eq(vqb_activate(&b, event_idx, false), 0);
    buf = vqb_alloc(&b, 64, 0);
}

static void fini(void)
{
    vqb_fini(&b);
}

/* The driver makes `n` one-buffer chains available; the device pops and completes them. */
static void round_trip(unsigned n)
{
    struct vqb_buf bufs[] = {{buf, 64, true}};

    for (unsigned i = 0; i < n; i++) {
        vqb_add_chain(&b, bufs, 1);
        cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
        virtq_push(&b.q, c.head, 64);
    }
}

TestSuite(virtq_notify, .fini = fini);

Test(virtq_notify, no_interrupt_flag_without_event_idx)
{
    start(false, 0);
    round_trip(1);
    cr_assert(virtq_should_notify(&b.q));
    vqb_set_avail_flags(&b, VIRTQ_AVAIL_F_NO_INTERRUPT);
    round_trip(1);
    cr_assert_not(virtq_should_notify(&b.q));
    vqb_set_avail_flags(&b, 0);
    cr_assert(virtq_should_notify(&b.q));
    vqb_set_used_event(&b, 1000); /* meaningless without EVENT_IDX */
    cr_assert(virtq_should_notify(&b.q));
}

Test(virtq_notify, first_notification_after_activation_always_fires)
{
    start(true, 0);
    vqb_set_used_event(&b, 500); /* far away */
    round_trip(1);
    cr_assert(virtq_should_notify(&b.q));
    round_trip(1);
    cr_assert_not(virtq_should_notify(&b.q), "now used_event decides");
    cr_assert_eq(b.q.signalled_used, 2);
}

Test(virtq_notify, used_event_decides)
{
    start(true, 0);
    round_trip(1);
    cr_assert(virtq_should_notify(&b.q)); /* first; signalled_used = 1 */

    vqb_set_used_event(&b, 1); /* interrupt me once entry 1 is used */
    round_trip(1);             /* used_idx 2 */
    cr_assert(virtq_should_notify(&b.q));
    round_trip(1); /* used_idx 3: used_event 1 already passed */
    cr_assert_not(virtq_should_notify(&b.q));
    cr_assert_not(virtq_should_notify(&b.q), "nothing new");

    vqb_set_used_event(&b, 5);
    round_trip(2); /* used_idx 5: entry 5 not used yet */
    cr_assert_not(virtq_should_notify(&b.q));
    round_trip(3); /* used_idx 8: batch [5, 8) covers 5 */
    cr_assert(virtq_should_notify(&b.q));
    vqb_set_used_event(&b, 7); /* behind us: no interrupt */
    round_trip(1);
    cr_assert_not(virtq_should_notify(&b.q));
}

Test(virtq_notify, event_idx_ignores_no_interrupt_flag)
{
    start(true, 0);
    vqb_set_avail_flags(&b, VIRTQ_AVAIL_F_NO_INTERRUPT);
    round_trip(1);
    cr_assert(virtq_should_notify(&b.q));
    vqb_set_used_event(&b, 1);
    round_trip(1);
    cr_assert(virtq_should_notify(&b.q));
}

Test(virtq_notify, used_event_wraps_at_65535)
{
    start(true, 65534);
    round_trip(1); /* used_idx 65535 */
    cr_assert(virtq_should_notify(&b.q), "first");
    vqb_set_used_event(&b, 65535);
    cr_assert_not(virtq_should_notify(&b.q), "nothing pushed since");
    round_trip(1); /* used_idx 0: entry 65535 used */
    cr_assert_eq(b.q.used_idx, 0);
    cr_assert(virtq_should_notify(&b.q));
    vqb_set_used_event(&b, 0);
    round_trip(1); /* used_idx 1 */
    cr_assert(virtq_should_notify(&b.q));
    cr_assert_eq(vqb_used_idx(&b), 1);
}

Test(virtq_notify, batch_across_the_wrap)
{
    start(true, 65530);
    round_trip(1); /* 65531 */
    cr_assert(virtq_should_notify(&b.q));
    vqb_set_used_event(&b, 2);
    round_trip(SIZE); /* 65531 -> 3: [65531, 3) contains 2 */
    cr_assert(virtq_should_notify(&b.q));
    vqb_set_used_event(&b, 65535); /* behind 3 by 4 */
    round_trip(SIZE);              /* [3, 11) */
    cr_assert_not(virtq_should_notify(&b.q));
}

Test(virtq_notify, reactivation_forgets_signalled_used)
{
    start(true, 0);
    round_trip(1);
    cr_assert(virtq_should_notify(&b.q));
    vqb_set_used_event(&b, 100);
    cr_assert_eq(vqb_activate(&b, true, false), 0);
    round_trip(1);
    cr_assert(virtq_should_notify(&b.q), "first after activation");
}

Test(virtq_notify, pop_moves_avail_event)
{
    struct vqb_buf bufs[] = {{buf, 64, true}};

    start(true, 100);
    vqb_add_chain(&b, bufs, 1);
    vqb_add_chain(&b, bufs, 1);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    cr_assert_eq(vqb_avail_event(&b), 101, "kick me when entry 101 is published");
    cr_assert_eq(virtq_pop(&b.q, &c, 1), -E2BIG);
    cr_assert_eq(vqb_avail_event(&b), 102, "a refused chain is consumed too");
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 0);
    cr_assert_eq(vqb_used_flags(&b), 0, "used.flags untouched with EVENT_IDX");
}

Test(virtq_notify, disabled_notifications_leave_avail_event)
{
    struct vqb_buf bufs[] = {{buf, 64, true}};

    start(true, 0);
    virtq_set_notification(&b.q, false);
    vqb_add_chain(&b, bufs, 1);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    cr_assert_eq(vqb_avail_event(&b), 0);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 0);

    /* Re-enable, then re-check as the header asks. */
    vqb_add_chain(&b, bufs, 1);
    virtq_set_notification(&b.q, true);
    cr_assert_eq(vqb_avail_event(&b), 1);
    cr_assert(virtq_has_avail(&b.q), "entry published while disabled is seen");
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    cr_assert_eq(vqb_avail_event(&b), 2);
    cr_assert_not(virtq_has_avail(&b.q));
}

Test(virtq_notify, used_flags_without_event_idx)
{
    struct vqb_buf bufs[] = {{buf, 64, true}};

    start(false, 0);
    virtq_set_notification(&b.q, false);
    cr_assert_eq(vqb_used_flags(&b), VIRTQ_USED_F_NO_NOTIFY);
    vqb_add_chain(&b, bufs, 1);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    cr_assert_eq(vqb_avail_event(&b), 0, "avail_event unused without EVENT_IDX");
    virtq_set_notification(&b.q, true);
    cr_assert_eq(vqb_used_flags(&b), 0);
    cr_assert_not(virtq_has_avail(&b.q));
}

Test(virtq_notify, has_avail_is_false_on_broken_queue)
{
    start(false, 0);
    vqb_set_avail_idx(&b, SIZE + 1);
    cr_assert(virtq_has_avail(&b.q));
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), -EPROTO);
    cr_assert_not(virtq_has_avail(&b.q));
}
