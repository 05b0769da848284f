/*
 * virtio-blk when the disk stops answering or the driver gives up: a reset
 * with requests stuck in a hung backend returns within the drain bound and
 * leaves the device out of service (never touching the rings) until those
 * requests end; after FAILED nothing more is popped or pushed.  The
 * backend is tests/lib/blk_fake_be.h, which holds requests until released.
 */
#include "devices/virtio/blk.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <time.h>

#include "tests/lib/blk_fake_be.h"
#include "tests/lib/blk_fixture.h"

#define DRAIN_MS 200

static struct blk_fx fx;
static struct fake_be *fb;

static void fini(void)
{
    blk_fx_fini(&fx);
}

TestSuite(virtio_blk_hang, .fini = fini, .timeout = 20);

static void start_on_fake(bool hang)
{
    struct errbuf err = {0};
    blk_fx_setup(&fx, NULL);
    fb = fake_be_new(BLK_FX_DEFAULT_SIZE, 16);
    fb->hang = hang;
    struct virtio_blk_config cfg = {.id = "blk0", .drain_timeout_ms = DRAIN_MS};
    cr_assert_eq(blk_fx_create_on(&fx, &cfg, &fb->be, &err), 0, "%s", err.msg);
    blk_fx_start(&fx, 0, false);
}

static struct virtio_blk_stats stats(void)
{
    struct virtio_blk_stats st;
    virtio_blk_get_stats(fx.dev, &st);
    return st;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

Test(virtio_blk_hang, reset_with_a_hung_disk_returns_within_the_bound)
{
    start_on_fake(true);
    for (unsigned i = 0; i < 4; i++)
        blk_fx_add(&fx, VIRTIO_BLK_T_IN, i, 512, 0);
    blk_fx_kick(&fx);
    cr_assert_eq(fb->submits, 4);

    double t0 = now_ms();
    blk_fx_reset(&fx); /* what a vCPU writing Status = 0 runs */
    double took = now_ms() - t0;
    cr_assert_eq(fb->last_timeout_ms, DRAIN_MS, "the device must bound the wait");
    cr_assert_lt(took, DRAIN_MS + 1000, "reset took %.0f ms", took);
    cr_assert_eq(stats().drain_timeouts, 1, "the failure is counted");

    /* The driver sets the device up again: refused (DEVICE_NEEDS_RESET) while
     * the old requests are out, so no new ring can receive their completions. */
    cr_assert_lt(blk_fx_try_start(&fx, 0, false), 0);

    /* The disk answers at last: the completions are dropped, not pushed. */
    fake_be_release(fb, -ECANCELED);
    blk_fx_pump(&fx, 100);
    cr_assert_eq(fb->be.inflight, 0);
    cr_assert_eq(vqb_used_idx(&fx.vq), 0, "a late completion reached the used ring");
    cr_assert_eq(fx.irqs, 0);

    /* Then a reset and a fresh start work again. */
    blk_fx_reset(&fx);
    cr_assert_eq(stats().drain_timeouts, 1);
    cr_assert_eq(blk_fx_try_start(&fx, 0, false), 0);
}

Test(virtio_blk_hang, nothing_popped_or_pushed_after_failed)
{
    start_on_fake(false);
    struct blk_fx_req a = blk_fx_add(&fx, VIRTIO_BLK_T_IN, 0, 512, 0);
    struct blk_fx_req b = blk_fx_add(&fx, VIRTIO_BLK_T_IN, 1, 512, 0);
    blk_fx_kick(&fx);
    cr_assert_eq(fb->submits, 2);

    /* The driver gives up with both in flight and one more queued. */
    pthread_mutex_lock(&fx.dev->lock);
    fx.dev->status |= VIRTIO_STATUS_FAILED;
    pthread_mutex_unlock(&fx.dev->lock);
    struct blk_fx_req c = blk_fx_add(&fx, VIRTIO_BLK_T_IN, 2, 512, 0);

    /* The completions come through the event loop, not the transport. */
    fake_be_release(fb, 0);
    blk_fx_pump(&fx, 100);
    blk_fx_pump(&fx, 10);
    cr_assert_eq(vqb_used_idx(&fx.vq), 0, "used ring written after FAILED");
    cr_assert_eq(blk_fx_status(&fx, &a), 0xee);
    cr_assert_eq(blk_fx_status(&fx, &b), 0xee);
    cr_assert_eq(blk_fx_status(&fx, &c), 0xee);
    cr_assert_eq(fb->submits, 2, "request popped after FAILED");
    cr_assert_eq(fb->be.inflight, 0);
    cr_assert_eq(fx.irqs, 0);
}
