/*
 * vhu_dp_resume_check (devices/vhost/vhost_user_dp.c): whether a restarted
 * vhost-user backend without an inflight area may resume a ring at its used
 * index.  Rings are built by hand in a buffer, as a driver and a dead
 * backend would have left them: completions in avail order are resumable,
 * one completed out of order is not, and hostile indices are refused.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "devices/vhost/vhost_user_dp.h"

#define QS 8

static uint8_t avail[4 + 2 * QS], used[4 + 8 * QS];

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)v);
    put16(p + 2, (uint16_t)(v >> 16));
}

/* The driver makes position `pos` available with `head`. */
static void offer(uint16_t pos, uint16_t head)
{
    put16(avail + 4 + 2 * (pos % QS), head);
    put16(avail + 2, (uint16_t)(pos + 1));
}

/* The backend completes head `head` as completion number `n`. */
static void complete(uint16_t n, uint16_t head)
{
    put32(used + 4 + 8 * (n % QS), head);
    put16(used + 2, (uint16_t)(n + 1));
}

static void init(void)
{
    memset(avail, 0, sizeof(avail));
    memset(used, 0, sizeof(used));
}

TestSuite(vhu_resume, .init = init);

Test(vhu_resume, in_order_completions_resume_at_the_used_index)
{
    /* 20 requests, 3 heads in rotation, completed in order; 2 still outstanding. */
    for (uint16_t p = 0; p < 20; p++)
        offer(p, p % 3);
    for (uint16_t n = 0; n < 18; n++)
        complete(n, n % 3);
    uint16_t base = 0, bad = 0;
    cr_assert_eq(vhu_dp_resume_check(avail, used, QS, 0, &base, &bad), 0);
    cr_assert_eq(base, 18, "positions 18 and 19 go to the new backend");
}

Test(vhu_resume, nothing_outstanding)
{
    for (uint16_t p = 0; p < 5; p++) {
        offer(p, 4);
        complete(p, 4);
    }
    uint16_t base, bad;
    cr_assert_eq(vhu_dp_resume_check(avail, used, QS, 0, &base, &bad), 0);
    cr_assert_eq(base, 5);
}

Test(vhu_resume, an_out_of_order_completion_is_refused)
{
    /* Positions 0..3 with heads 0..3; the backend completed 0, 2, 1 (not 3). */
    for (uint16_t p = 0; p < 4; p++)
        offer(p, p);
    complete(0, 0);
    complete(1, 2);
    complete(2, 1);
    uint16_t base, bad = 0;
    cr_assert_eq(vhu_dp_resume_check(avail, used, QS, 0, &base, &bad), -EPROTONOSUPPORT);
    cr_assert_eq(bad, 1, "position 1's head is 1, the second completion was head 2");
}

Test(vhu_resume, a_completion_ahead_of_an_outstanding_one_is_refused)
{
    /* 0 and 1 outstanding, 1 completes first: resuming at used = 1 would redo 1 and lose 0. */
    offer(0, 0);
    offer(1, 1);
    complete(0, 1);
    uint16_t base, bad;
    cr_assert_eq(vhu_dp_resume_check(avail, used, QS, 0, &base, &bad), -EPROTONOSUPPORT);
}

Test(vhu_resume, across_the_16_bit_wrap)
{
    /* The ring started at 65530: positions wrap past 65535. */
    uint16_t start = 65530;
    for (uint16_t k = 0; k < 12; k++)
        offer((uint16_t)(start + k), (uint16_t)(k % 5));
    for (uint16_t k = 0; k < 11; k++)
        complete((uint16_t)(start + k), (uint16_t)(k % 5));
    uint16_t base, bad;
    cr_assert_eq(vhu_dp_resume_check(avail, used, QS, start, &base, &bad), 0);
    cr_assert_eq(base, (uint16_t)(start + 11));
}

Test(vhu_resume, hostile_indices)
{
    uint16_t base, bad;
    put16(avail + 2, 100); /* 100 outstanding in a ring of 8 */
    put16(used + 2, 0);
    cr_assert_eq(vhu_dp_resume_check(avail, used, QS, 0, &base, &bad), -ERANGE);
    put16(avail + 2, 0); /* used ahead of avail: 65535 "outstanding" */
    put16(used + 2, 1);
    cr_assert_eq(vhu_dp_resume_check(avail, used, QS, 0, &base, &bad), -ERANGE);
    cr_assert_eq(vhu_dp_resume_check(avail, used, 0, 0, &base, &bad), -EINVAL);
}
