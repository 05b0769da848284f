/*
 * virtio-blk as an asynchronous device: the in-flight limit and resuming
 * after completions without a kick, bounded work per event, interrupts per
 * batch, backend errors, reset and destroy with requests in flight.
 * Migration (quiesce, save, load) is in test_blk_migrate.c.
 */
#include "devices/virtio/blk.h"

#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/blk_fixture.h"

static struct blk_fx fx;

static void fini(void)
{
    blk_fx_fini(&fx);
}

TestSuite(virtio_blk_async, .fini = fini, .timeout = 60);

static struct virtio_blk_stats stats(void)
{
    struct virtio_blk_stats st;
    virtio_blk_get_stats(fx.dev, &st);
    return st;
}

Test(virtio_blk_async, many_requests_beyond_the_inflight_limit_all_complete)
{
    struct blk_fx_opts o = {.queue_depth = 4};
    blk_fx_init(&fx, &o);
    enum { N = 200 };
    static struct blk_fx_req w[N];

    for (unsigned i = 0; i < N; i++)
        w[i] = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, i * 8, 4096, (uint8_t)i);
    blk_fx_kick(&fx);
    /* One kick pops only up to the limit; completions pull in the rest. */
    cr_assert_eq(vqb_used_idx(&fx.vq), 0, "nothing completes inside the kick");
    blk_fx_wait_used(&fx, N);
    for (unsigned i = 0; i < N; i++) {
        cr_assert_eq(blk_fx_status(&fx, &w[i]), VIRTIO_BLK_S_OK, "write %u", i);
        cr_assert(blk_fx_img_all(&fx, i * 4096ULL, 4096, (uint8_t)i), "data of write %u", i);
    }
    struct virtio_blk_stats st = stats();
    cr_assert_eq(st.writes, N);
    cr_assert_leq(st.inflight_peak, 4, "never more than queue_depth in flight");
    cr_assert_eq(st.inflight_peak, 4);
    cr_assert_gt(st.inflight_full, 0);
    /* Idle again: the driver is asked for kicks. */
    cr_assert_eq(vqb_used_flags(&fx.vq) & VIRTQ_USED_F_NO_NOTIFY, 0);
}

Test(virtio_blk_async, requests_added_while_stalled_need_no_kick)
{
    struct blk_fx_opts o = {.queue_depth = 2};
    blk_fx_init(&fx, &o);
    for (unsigned i = 0; i < 4; i++)
        blk_fx_add(&fx, VIRTIO_BLK_T_IN, i, 512, 0);
    blk_fx_kick(&fx);
    /* Stalled at the limit: kicks are suppressed, so a driver would not kick now. */
    cr_assert(vqb_used_flags(&fx.vq) & VIRTQ_USED_F_NO_NOTIFY);
    for (unsigned i = 0; i < 4; i++)
        blk_fx_add(&fx, VIRTIO_BLK_T_IN, i, 512, 0);
    blk_fx_wait_used(&fx, 8);
    cr_assert_eq(stats().reads, 8);
    cr_assert_eq(vqb_used_flags(&fx.vq) & VIRTQ_USED_F_NO_NOTIFY, 0);
}

Test(virtio_blk_async, one_event_handles_at_most_a_ring_and_reschedules)
{
    blk_fx_init(&fx, NULL);
    /* GET_ID completes at once, so only the budget stops the loop. */
    for (unsigned i = 0; i < 256; i++)
        blk_fx_add(&fx, VIRTIO_BLK_T_GET_ID, 0, 20, 0);
    blk_fx_kick(&fx);
    cr_assert_eq(vqb_used_idx(&fx.vq), 256);
    cr_assert_eq(stats().budget_yields, 1);
    unsigned irqs = fx.irqs;
    cr_assert_geq(irqs, 1, "one interrupt for the batch");

    /* The driver refills without kicking (kicks were off); the reschedule picks them up. */
    blk_fx_reset_alloc(&fx);
    for (unsigned i = 0; i < 100; i++)
        blk_fx_add(&fx, VIRTIO_BLK_T_GET_ID, 0, 20, 0);
    blk_fx_wait_used(&fx, 356);
    cr_assert_eq(stats().get_ids, 356);
    cr_assert_gt(fx.irqs, irqs);
}

Test(virtio_blk_async, interrupts_come_per_batch_and_honour_event_idx)
{
    struct blk_fx_opts o = {.event_idx = true};
    blk_fx_init(&fx, &o);
    /* The driver asks for an interrupt only once used.idx passes 9. */
    vqb_set_used_event(&fx.vq, 9);
    for (unsigned i = 0; i < 5; i++)
        blk_fx_add(&fx, VIRTIO_BLK_T_GET_ID, 0, 20, 0);
    blk_fx_kick(&fx);
    cr_assert_eq(vqb_used_idx(&fx.vq), 5);
    cr_assert_eq(fx.irqs, 1, "first signal after activation always interrupts");
    for (unsigned i = 0; i < 4; i++)
        blk_fx_add(&fx, VIRTIO_BLK_T_GET_ID, 0, 20, 0);
    blk_fx_kick(&fx);
    cr_assert_eq(fx.irqs, 1, "used.idx 9 has not passed used_event 9");
    blk_fx_add(&fx, VIRTIO_BLK_T_GET_ID, 0, 20, 0);
    blk_fx_kick(&fx);
    cr_assert_eq(fx.irqs, 2);
    /* avail_event tells the driver where to kick next. */
    cr_assert_eq(vqb_avail_event(&fx.vq), 10);
}

Test(virtio_blk_async, backend_errors_become_ioerr)
{
    blk_fx_init(&fx, NULL);
    /* Someone shrinks the image under the running device. */
    cr_assert_eq(ftruncate(fx.img_fd, 64 * 1024), 0);
    struct blk_fx_req ok = blk_fx_add(&fx, VIRTIO_BLK_T_IN, 0, 4096, 0xcc);
    struct blk_fx_req eof = blk_fx_add(&fx, VIRTIO_BLK_T_IN, 256, 4096, 0xcc);
    struct blk_fx_req part = blk_fx_add(&fx, VIRTIO_BLK_T_IN, 120, 8192, 0xcc);
    blk_fx_run(&fx, 3);
    cr_assert_eq(blk_fx_status(&fx, &ok), VIRTIO_BLK_S_OK);
    cr_assert_eq(blk_fx_status(&fx, &eof), VIRTIO_BLK_S_IOERR, "read at end of file");
    cr_assert_eq(blk_fx_status(&fx, &part), VIRTIO_BLK_S_IOERR, "short read, then end of file");
    uint32_t len;
    cr_assert(blk_fx_used_len(&fx, eof.head, &len));
    cr_assert_eq(len, 4097, "the whole writable area is reported, as its content is undefined");
    cr_assert_eq(stats().ioerr, 2);
    cr_assert_eq(fx.needs_reset, 0);
}

Test(virtio_blk_async, reset_with_requests_in_flight_drops_them)
{
    blk_fx_init(&fx, NULL);
    for (unsigned i = 0; i < 64; i++) {
        blk_fx_add(&fx, VIRTIO_BLK_T_IN, i * 128, 64 * 1024, 0xcc);
        blk_fx_add(&fx, VIRTIO_BLK_T_OUT, 8192 - 128 + (i % 16), 512, 0x11);
    }
    blk_fx_kick(&fx);
    cr_assert_eq(stats().inflight_peak, 128, "everything went to the backend");

    /* Status = 0 while the backend still holds every request. */
    blk_fx_reset(&fx);
    cr_assert_eq(vqb_used_idx(&fx.vq), 0, "no chain was returned to the reset queue");
    struct virtio_blk_stats st = stats();
    cr_assert_eq(st.reads + st.writes + st.ioerr, 0, "completions were dropped");
    cr_assert_eq(fx.irqs, 0);
    /* Whatever the loop still has pending does nothing now. */
    while (blk_fx_pump(&fx, 50))
        ;
    cr_assert_eq(vqb_used_idx(&fx.vq), 0);

    /* The driver brings the device up again and it works. */
    blk_fx_start(&fx, 0, false);
    struct blk_fx_req w = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, 5, 512, 0x66);
    blk_fx_run(&fx, 1); /* requests in one batch are not ordered: read after */
    struct blk_fx_req r = blk_fx_add(&fx, VIRTIO_BLK_T_IN, 5, 512, 0);
    blk_fx_run(&fx, 2);
    cr_assert_eq(blk_fx_status(&fx, &w), VIRTIO_BLK_S_OK);
    cr_assert_eq(blk_fx_status(&fx, &r), VIRTIO_BLK_S_OK);
    cr_assert_eq(*blk_fx_host(&fx, r.data, 1), 0x66);
}

Test(virtio_blk_async, reset_of_an_idle_device_and_kicks_after_reset)
{
    blk_fx_init(&fx, NULL);
    blk_fx_reset(&fx);
    blk_fx_add(&fx, VIRTIO_BLK_T_GET_ID, 0, 20, 0);
    blk_fx_kick(&fx); /* not DRIVER_OK: ignored */
    blk_fx_pump(&fx, 10);
    cr_assert_eq(vqb_used_idx(&fx.vq), 0);
}

/*
 * Destroy with reads in flight on the real io_uring backend: destroy drains
 * them (so no read lands in freed memory: ASan in the sanitizer build) and
 * drops their completions: no status byte, used entry or interrupt reaches
 * the driver, whose rings and RAM outlive the device here.
 */
Test(virtio_blk_async, destroy_with_requests_in_flight)
{
    blk_fx_init(&fx, NULL);
    struct blk_fx_req r[32];
    for (unsigned i = 0; i < 32; i++)
        r[i] = blk_fx_add(&fx, VIRTIO_BLK_T_IN, i * 128, 64 * 1024, 0xcc);
    blk_fx_kick(&fx);
    struct virtio_blk_stats st = stats();
    cr_assert_gt(st.inflight_peak, 0, "nothing was in flight: the test proves nothing");
    cr_assert_eq(st.reads + st.ioerr, 0, "completed before destroy: nothing in flight");

    fx.dev->ops->destroy(fx.dev);
    fx.dev = NULL;
    cr_assert_eq(vqb_used_idx(&fx.vq), 0, "a completion was pushed during destroy");
    cr_assert_eq(fx.irqs, 0);
    for (unsigned i = 0; i < 32; i++)
        cr_assert_eq(blk_fx_status(&fx, &r[i]), 0xee, "status %u written", i);
}

Test(virtio_blk_async, flush_waits_in_line_with_writes)
{
    blk_fx_init(&fx, NULL);
    struct blk_fx_req w[16], f;
    for (unsigned i = 0; i < 16; i++)
        w[i] = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, i * 8, 4096, (uint8_t)(0x40 + i));
    blk_fx_run(&fx, 16);
    f = blk_fx_add(&fx, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
    blk_fx_run(&fx, 17);
    cr_assert_eq(blk_fx_status(&fx, &f), VIRTIO_BLK_S_OK);
    for (unsigned i = 0; i < 16; i++)
        cr_assert_eq(blk_fx_status(&fx, &w[i]), VIRTIO_BLK_S_OK);
    cr_assert_eq(stats().flushes, 1);
}

/* ---- O_DIRECT, and a reset on another thread than the submitter ---------- */

static void *reset_thread(void *arg)
{
    (void)arg;
    blk_fx_reset(&fx);
    return NULL;
}

/* An aligned 4 KiB read or write of `sector` (O_DIRECT needs aligned buffers). */
static struct blk_fx_req add_aligned(uint32_t type, uint64_t sector, uint8_t fill)
{
    gpa_t data = blk_fx_alloc_aligned(&fx, 4096, 4096, fill);
    struct vqb_buf bufs[] = {{blk_fx_hdr(&fx, type, sector), 16, false},
                             {data, 4096, type == VIRTIO_BLK_T_IN},
                             {vqb_alloc(&fx.vq, 1, 0xee), 1, true}};
    struct blk_fx_req r = blk_fx_add_bufs(&fx, bufs, 3);
    r.data = data;
    r.len = 4096;
    return r;
}

Test(virtio_blk_async, direct_io_and_a_reset_from_another_thread)
{
    struct blk_fx_opts o = {.direct = true};
    blk_fx_setup(&fx, &o);
    struct errbuf err = {0};
    struct virtio_blk_config cfg = {.id = "blk0", .direct = true};
    if (blk_fx_create(&fx, &cfg, &err) < 0)
        cr_skip_test("O_DIRECT unsupported here: %s", err.msg);
    blk_fx_start(&fx, 0, false);

    struct blk_fx_req w = add_aligned(VIRTIO_BLK_T_OUT, 16, 0x3c);
    blk_fx_run(&fx, 1);
    cr_assert_eq(blk_fx_status(&fx, &w), VIRTIO_BLK_S_OK);
    cr_assert(blk_fx_img_all(&fx, 16 * 512, 4096, 0x3c));

    /*
     * Submit from this thread, then reset from another while this one runs
     * the loop: the drain on the other thread must not depend on this one.
     */
    for (unsigned i = 0; i < 64; i++)
        add_aligned(VIRTIO_BLK_T_IN, i * 8, 0);
    blk_fx_kick(&fx);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, reset_thread, NULL), 0);
    for (unsigned i = 0; i < 5; i++)
        blk_fx_pump(&fx, 2);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(vqb_used_idx(&fx.vq), 0, "nothing pushed after the reset");
}
