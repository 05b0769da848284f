/*
 * virtio-blk behind the real virtio-mmio transport (with the fake host
 * services of tests/lib/fake_virtio.h instead of KVM): the driver's view
 * of the device id and config space, requests kicked through the queue's
 * ioeventfd with interrupts on the irqfd, and a reset (Status = 0 written
 * by a "vCPU") while requests are in flight.
 */
#include "devices/virtio/blk.h"

#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include "devices/virtio/mmio.h"
#include "tests/lib/blk_fixture.h"
#include "tests/lib/fake_virtio.h"

static struct blk_fx fx;
static struct fake_host host;
static struct virtio_mmio *t;

static void setup(void)
{
    struct errbuf err = {0};
    blk_fx_setup(&fx, NULL);
    fake_host_init(&host);
    struct virtio_blk_config cfg = {.id = "blk-root", .path = fx.path};
    cr_assert_eq(virtio_blk_create(&cfg, &fx.vq.mem, &host.loop, &fx.dev, &err), 0, "%s", err.msg);
    cr_assert_eq(virtio_mmio_create(fx.dev, &host.host, FAKE_MMIO_BASE, FAKE_MMIO_GSI, &t, &err), 0,
                 "%s", err.msg);
}

static void teardown(void)
{
    virtio_mmio_destroy(t);
    blk_fx_fini(&fx); /* the device's fds are in host.loop: destroy it first */
    fake_host_fini(&host);
}

TestSuite(virtio_blk_mmio, .init = setup, .fini = teardown, .timeout = 30);

/* Bring the device up as Linux would, acking every offered feature but EVENT_IDX. */
static void driver_ok(void)
{
    uint64_t offered = 0;
    for (uint32_t w = 0; w < 2; w++) {
        fake_mmio_wr(t, FAKE_MMIO_DEV_FEATURES_SEL, w);
        offered |= (uint64_t)fake_mmio_rd(t, FAKE_MMIO_DEV_FEATURES) << (32 * w);
    }
    uint32_t st = fake_mmio_negotiate(t, offered & ~VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
    cr_assert(st & VIRTIO_STATUS_FEATURES_OK);
    struct fake_ring ring;
    fake_ring_init(&ring, &fx.vq.mem, VQB_DESC_GPA, VQB_AVAIL_GPA, VQB_USED_GPA, 256);
    fake_mmio_setup_queue(t, 0, &ring);
    fake_mmio_wr(t, FAKE_MMIO_STATUS, st | VIRTIO_STATUS_DRIVER_OK);
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_STATUS), st | VIRTIO_STATUS_DRIVER_OK);
}

/* Run the event loop until used.idx reaches n (10 s at most). */
static void wait_used(uint16_t n)
{
    for (int i = 0; i < 10000 && vqb_used_idx(&fx.vq) != n; i++) {
        if (!fake_host_poll(&host)) {
            struct timespec ms = {.tv_nsec = 1000000};
            nanosleep(&ms, NULL);
        }
    }
    cr_assert_eq(vqb_used_idx(&fx.vq), n);
}

Test(virtio_blk_mmio, driver_sees_a_block_device)
{
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
    fake_mmio_wr(t, FAKE_MMIO_QUEUE_SEL, 0);
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_QUEUE_NUM_MAX), 256);
    fake_mmio_wr(t, FAKE_MMIO_QUEUE_SEL, 1);
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_QUEUE_NUM_MAX), 0, "one queue only (no MQ)");
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_CONFIG + 0), BLK_FX_DEFAULT_SIZE / 512);
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_CONFIG + 4), 0);
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_CONFIG + 12), VIRTIO_BLK_SEG_MAX);
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_CONFIG + 20), 512);
}

Test(virtio_blk_mmio, requests_through_ioeventfd_and_irqfd)
{
    driver_ok();
    struct blk_fx_req w = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, 3, 4096, 0x4d);
    struct blk_fx_req id = blk_fx_add(&fx, VIRTIO_BLK_T_GET_ID, 0, 20, 0);
    fake_host_kick(&host, 0);
    wait_used(2);
    cr_assert_eq(blk_fx_status(&fx, &w), VIRTIO_BLK_S_OK);
    cr_assert_eq(blk_fx_status(&fx, &id), VIRTIO_BLK_S_OK);
    cr_assert_str_eq((const char *)blk_fx_host(&fx, id.data, 20), "blk-root");
    cr_assert(blk_fx_img_all(&fx, 3 * 512, 4096, 0x4d));
    cr_assert_geq(fake_host_irqs(&host), 1);
    cr_assert(fake_mmio_rd(t, FAKE_MMIO_INT_STATUS) & 1, "used-buffer interrupt pending");
}

Test(virtio_blk_mmio, status_zero_with_requests_in_flight)
{
    driver_ok();
    for (unsigned i = 0; i < 100; i++)
        blk_fx_add(&fx, VIRTIO_BLK_T_IN, i * 64, 32 * 1024, 0);
    fake_host_kick(&host, 0);
    struct virtio_blk_stats st;
    virtio_blk_get_stats(fx.dev, &st);
    cr_assert_gt(st.inflight_peak, 0);

    fake_mmio_wr(t, FAKE_MMIO_STATUS, 0); /* drains before it returns */
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_STATUS), 0);
    while (fake_host_poll(&host))
        ;
    virtio_blk_get_stats(fx.dev, &st);
    cr_assert_eq(st.reads + st.ioerr, 0, "nothing completed into the reset queue");
    cr_assert_lt(vqb_used_idx(&fx.vq), 100);

    /* A fresh driver start works. */
    blk_fx_reset(&fx); /* zero the rings as the driver does (the device is already reset) */
    driver_ok();
    struct blk_fx_req r = blk_fx_add(&fx, VIRTIO_BLK_T_IN, 0, 512, 0xcc);
    fake_host_kick(&host, 0);
    wait_used(1);
    cr_assert_eq(blk_fx_status(&fx, &r), VIRTIO_BLK_S_OK);
}
