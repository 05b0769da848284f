/*
 * Shared fixture of the virtio-mmio queue and notification tests: a fake
 * device with two queues (one in each RAM region), register helpers and a
 * bring-up to DRIVER_OK.  Each including file gets its own copy of the
 * statics and declares its own TestSuite(NAME, .init = setup, .fini = teardown).
 */
#ifndef TESTS_UNIT_DEVICES_VIRTIO_TEST_MMIO_FIXTURE_H
#define TESTS_UNIT_DEVICES_VIRTIO_TEST_MMIO_FIXTURE_H

#include <criterion/criterion.h>

#include "tests/lib/fake_virtio.h"
#include "vmm/log.h"

static struct fake_fixture fx;
static struct fake_ring r0, r1;

#define ACK     VIRTIO_STATUS_ACKNOWLEDGE
#define DRV     VIRTIO_STATUS_DRIVER
#define FEAT_OK VIRTIO_STATUS_FEATURES_OK
#define DRV_OK  VIRTIO_STATUS_DRIVER_OK
#define NR      VIRTIO_STATUS_DEVICE_NEEDS_RESET
#define LIVE    (ACK | DRV | FEAT_OK | DRV_OK)
#define OFFERED                                                                                    \
    (FAKE_VIRTIO_FEATURES | VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX) |      \
     VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC))
#define VERSION_1_ONLY VIRTIO_BIT(VIRTIO_F_VERSION_1)
#define BUF0           0x30000 /* data buffers, in RAM */
#define BUF1           0x31000

static void setup(void)
{
    log_threshold = LOG_ERROR;
    fake_fixture_init(&fx);
    fake_ring_init(&r0, &fx.mem, 0x10000, 0x11000, 0x12000, 16);
    fake_ring_init(&r1, &fx.mem, FAKE_HOLE_END, FAKE_HOLE_END + 0x1000, FAKE_HOLE_END + 0x2000,
                   256); /* the second RAM region */
}

static void teardown(void)
{
    fake_fixture_fini(&fx);
}

static uint32_t rd(uint64_t off)
{
    return fake_mmio_rd(fx.t, off);
}

static void wr(uint64_t off, uint32_t v)
{
    fake_mmio_wr(fx.t, off, v);
}

/* Negotiate, set up both queues (no EVENT_IDX: every push interrupts), DRIVER_OK. */
static void go_live(void)
{
    unsigned activates = fx.dev.activates;
    cr_assert_eq(fake_mmio_negotiate(fx.t, VERSION_1_ONLY), ACK | DRV | FEAT_OK);
    fake_mmio_setup_queue(fx.t, 0, &r0);
    fake_mmio_setup_queue(fx.t, 1, &r1);
    wr(FAKE_MMIO_STATUS, LIVE);
    cr_assert_eq(rd(FAKE_MMIO_STATUS), LIVE);
    cr_assert(fx.dev.dev.vq[0].active && fx.dev.dev.vq[1].active);
    cr_assert_eq(fx.dev.activates, activates + 1);
}

#endif /* TESTS_UNIT_DEVICES_VIRTIO_TEST_MMIO_FIXTURE_H */
