/*
 * virtio-mmio queue configuration: when queue registers may be written (and
 * the CVE-2026-5747 regression: nothing changes after DRIVER_OK and I/O goes
 * on with the old geometry), and validation at DRIVER_OK (bad sizes, rings
 * across the RAM hole, misaligned, at the top of the address space or on
 * MMIO: all queues or none, DEVICE_NEEDS_RESET and a config interrupt).
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/fake_virtio.h"
#include "vmm/log.h"

#include "tests/unit/devices/virtio/test_mmio_fixture.h"

TestSuite(virtio_mmio_queue, .init = setup, .fini = teardown, .timeout = 30);

Test(virtio_mmio_queue, bring_up_and_io)
{
    struct metrics_dev m = {0};
    fx.dev.dev.metrics = &m;
    go_live();
    wr(FAKE_MMIO_QUEUE_SEL, 0);
    cr_expect_eq(rd(FAKE_MMIO_QUEUE_READY), 1);
    fake_ring_add(&r0, BUF0, 128, true);
    wr(FAKE_MMIO_QUEUE_NOTIFY, 0); /* the MMIO fallback path */
    cr_expect_eq(fx.dev.notifies[0], 1);
    cr_expect_eq(fx.dev.chains[0], 1);
    cr_expect_eq(fake_ring_used_idx(&r0), 1);
    cr_expect_eq(*(uint8_t *)gmem_ptr(&fx.mem, BUF0, 1), 0xd5, "device wrote the buffer");
    cr_expect_eq(rd(FAKE_MMIO_INT_STATUS), 1, "used-buffer interrupt");
    cr_expect_eq(fake_host_irqs(&fx.host), 1);
    cr_expect_eq(m.queue_events, 1, "the notification is counted");
    cr_expect_eq(m.activate_fails, 0);
}

/* ---- when queue registers may be written ---------------------------------- */

static bool queue_untouched(unsigned q)
{
    const struct virtq_config *c = &fx.dev.dev.vq[q].cfg;
    return c->size == 0 && !c->ready && !c->desc_gpa && !c->avail_gpa && !c->used_gpa;
}

Test(virtio_mmio_queue, writes_before_features_ok_ignored)
{
    const uint8_t states[] = {0, ACK, ACK | DRV};
    for (size_t i = 0; i < ARRAY_SIZE(states); i++) {
        wr(FAKE_MMIO_STATUS, 0);
        if (states[i] & ACK)
            wr(FAKE_MMIO_STATUS, ACK);
        if (states[i] & DRV)
            wr(FAKE_MMIO_STATUS, ACK | DRV);
        fake_mmio_setup_queue(fx.t, 0, &r0);
        cr_expect(queue_untouched(0), "status 0x%02x", states[i]);
        cr_expect_eq(rd(FAKE_MMIO_QUEUE_READY), 0);
    }
}

Test(virtio_mmio_queue, writes_after_failed_ignored)
{
    cr_assert_eq(fake_mmio_negotiate(fx.t, VERSION_1_ONLY), ACK | DRV | FEAT_OK);
    wr(FAKE_MMIO_STATUS, ACK | DRV | FEAT_OK | VIRTIO_STATUS_FAILED);
    fake_mmio_setup_queue(fx.t, 0, &r0);
    cr_expect(queue_untouched(0));
}

Test(virtio_mmio_queue, ready_queue_is_frozen_until_cleared)
{
    cr_assert_eq(fake_mmio_negotiate(fx.t, VERSION_1_ONLY), ACK | DRV | FEAT_OK);
    fake_mmio_setup_queue(fx.t, 0, &r0);
    cr_expect_eq(rd(FAKE_MMIO_QUEUE_READY), 1);
    wr(FAKE_MMIO_QUEUE_NUM, 8);
    wr(FAKE_MMIO_DESC_LO, 0x40000);
    cr_expect_eq(fx.dev.dev.vq[0].cfg.size, 16);
    cr_expect_eq(fx.dev.dev.vq[0].cfg.desc_gpa, 0x10000);
    wr(FAKE_MMIO_QUEUE_READY, 2); /* not a valid value */
    cr_expect_eq(rd(FAKE_MMIO_QUEUE_READY), 1);
    /* Clearing QueueReady before DRIVER_OK works and unfreezes the queue. */
    wr(FAKE_MMIO_QUEUE_READY, 0);
    cr_expect_eq(rd(FAKE_MMIO_QUEUE_READY), 0);
    wr(FAKE_MMIO_QUEUE_NUM, 8);
    wr(FAKE_MMIO_DESC_HI, 1);
    cr_expect_eq(fx.dev.dev.vq[0].cfg.size, 8);
    cr_expect_eq(fx.dev.dev.vq[0].cfg.desc_gpa, 0x100010000ULL);
    /* Ready is not yet validation: a nonsense geometry is accepted here. */
    wr(FAKE_MMIO_QUEUE_READY, 1);
    cr_expect_eq(rd(FAKE_MMIO_QUEUE_READY), 1);
    cr_expect_not(fx.dev.dev.vq[0].active);
}

/* CVE-2026-5747: after DRIVER_OK the driver must not be able to reshape a live queue. */
Test(virtio_mmio_queue, no_reconfiguration_after_driver_ok)
{
    go_live();
    struct virtq before = fx.dev.dev.vq[0];
    wr(FAKE_MMIO_QUEUE_SEL, 0);
    /* First try to take the queue out of ready, which would unlock the rest. */
    wr(FAKE_MMIO_QUEUE_READY, 0);
    cr_expect_eq(rd(FAKE_MMIO_QUEUE_READY), 1);
    const uint32_t nums[] = {0, 0x8000, 1, 3, 0xffffffff};
    for (size_t i = 0; i < ARRAY_SIZE(nums); i++)
        wr(FAKE_MMIO_QUEUE_NUM, nums[i]);
    const uint64_t regs[] = {FAKE_MMIO_DESC_LO,   FAKE_MMIO_DESC_HI,   FAKE_MMIO_DRIVER_LO,
                             FAKE_MMIO_DRIVER_HI, FAKE_MMIO_DEVICE_LO, FAKE_MMIO_DEVICE_HI};
    for (size_t i = 0; i < ARRAY_SIZE(regs); i++) {
        wr(regs[i], 0x40000);
        wr(regs[i], 0xfffff000);
    }
    wr(FAKE_MMIO_QUEUE_READY, 0);
    wr(FAKE_MMIO_QUEUE_READY, 1);

    const struct virtq *q = &fx.dev.dev.vq[0];
    cr_expect_eq(q->cfg.size, 16);
    cr_expect_eq(q->cfg.desc_gpa, before.cfg.desc_gpa);
    cr_expect_eq(q->cfg.avail_gpa, before.cfg.avail_gpa);
    cr_expect_eq(q->cfg.used_gpa, before.cfg.used_gpa);
    cr_expect(q->cfg.ready && q->active);
    cr_expect_eq(q->num, before.num);
    cr_expect(q->desc == before.desc && q->avail == before.avail && q->used == before.used);
    cr_expect_eq(rd(FAKE_MMIO_QUEUE_READY), 1);

    /* I/O continues on the old rings: 20 requests wrap the 16-entry ring. */
    for (unsigned i = 0; i < 20; i++) {
        fake_ring_add(&r0, BUF0 + 64 * i, 64, true);
        fake_host_kick(&fx.host, 0);
    }
    cr_expect_eq(fx.dev.chains[0], 20);
    cr_expect_eq(fake_ring_used_idx(&r0), 20);
    cr_expect_not(rd(FAKE_MMIO_STATUS) & NR);
}

/* ---- validation at DRIVER_OK ------------------------------------------------ */

struct bad_geometry {
    const char name[40];
    uint32_t num;
    uint64_t desc, avail, used;
};

static struct bad_geometry bad_geometries[] = {
    {"size 0", 0, 0x10000, 0x11000, 0x12000},
    {"size 3 (not a power of two)", 3, 0x10000, 0x11000, 0x12000},
    {"size 384", 384, 0x10000, 0x11000, 0x12000},
    {"size 512 > max 256", 512, 0x10000, 0x11000, 0x12000},
    {"size 0x8000 > max", 0x8000, 0x10000, 0x11000, 0x12000},
    {"size 0x10000", 0x10000, 0x10000, 0x11000, 0x12000},
    {"size 0x10010 (truncates to 16)", 0x10010, 0x10000, 0x11000, 0x12000},
    {"desc misaligned", 16, 0x10008, 0x11000, 0x12000},
    {"avail misaligned", 16, 0x10000, 0x11001, 0x12000},
    {"used misaligned", 16, 0x10000, 0x11000, 0x12002},
    {"desc across the hole", 16, FAKE_HOLE_START - 0x80, 0x11000, 0x12000},
    {"avail across the hole", 16, 0x10000, FAKE_HOLE_START - 0x10, 0x12000},
    {"used across the hole", 16, 0x10000, 0x11000, FAKE_HOLE_START - 0x40},
    {"desc in the hole", 16, FAKE_HOLE_START + 0x1000, 0x11000, 0x12000},
    {"used past the end of RAM", 16, 0x10000, 0x11000, FAKE_RAM_END - 0x40},
    {"desc at 2^64-8", 16, UINT64_MAX - 7, 0x11000, 0x12000},
    {"avail at 2^64-8", 16, 0x10000, UINT64_MAX - 7, 0x12000},
    {"used at 2^64-8", 16, 0x10000, 0x11000, UINT64_MAX - 7},
    {"desc at 2^64-256", 16, UINT64_MAX - 255, 0x11000, 0x12000},
    {"desc at MMIO window", 16, FAKE_MMIO_BASE, 0x11000, 0x12000},
};

ParameterizedTestParameters(virtio_mmio_queue, bad_geometry_refused)
{
    return cr_make_param_array(struct bad_geometry, bad_geometries, ARRAY_SIZE(bad_geometries));
}

ParameterizedTest(struct bad_geometry *g, virtio_mmio_queue, bad_geometry_refused)
{
    cr_assert_eq(fake_mmio_negotiate(fx.t, VERSION_1_ONLY), ACK | DRV | FEAT_OK);
    fake_mmio_setup_queue(fx.t, 0, &r0); /* a good queue 0... */
    struct fake_ring bad = {.desc = g->desc, .avail = g->avail, .used = g->used, .size = 16};
    fake_mmio_setup_queue(fx.t, 1, &bad); /* ...and a bad queue 1 */
    wr(FAKE_MMIO_QUEUE_NUM, 0);           /* refused: the queue is ready */
    wr(FAKE_MMIO_QUEUE_READY, 0);
    wr(FAKE_MMIO_QUEUE_NUM, g->num);
    wr(FAKE_MMIO_QUEUE_READY, 1);
    uint64_t irqs = fake_host_irqs(&fx.host);

    wr(FAKE_MMIO_STATUS, LIVE);
    cr_expect_eq(rd(FAKE_MMIO_STATUS), LIVE | NR, "%s: status 0x%02x", g->name,
                 rd(FAKE_MMIO_STATUS));
    cr_expect_eq(rd(FAKE_MMIO_INT_STATUS), 2, "%s: config interrupt", g->name);
    cr_expect_eq(fake_host_irqs(&fx.host), irqs + 1);
    cr_expect_eq(fx.dev.activates, 0, "%s: device not activated", g->name);
    cr_expect_not(fx.dev.dev.vq[0].active, "%s: all or nothing", g->name);
    cr_expect_not(fx.dev.dev.vq[1].active);
    /* What the driver wrote is still there to read back. */
    cr_expect_eq(rd(FAKE_MMIO_QUEUE_READY), 1);
    /* Kicks go nowhere. */
    fake_ring_add(&r0, BUF0, 16, true);
    wr(FAKE_MMIO_QUEUE_NOTIFY, 0);
    fake_host_kick(&fx.host, 0);
    cr_expect_eq(fx.dev.notifies[0], 0);
    /* Reset makes the device usable again. */
    wr(FAKE_MMIO_STATUS, 0);
    cr_expect_eq(rd(FAKE_MMIO_STATUS), 0);
    fake_ring_init(&r0, &fx.mem, 0x10000, 0x11000, 0x12000, 16);
    go_live();
}

Test(virtio_mmio_queue, good_geometries_accepted)
{
    cr_assert_eq(fake_mmio_negotiate(fx.t, OFFERED), ACK | DRV | FEAT_OK);
    /* Largest size, the used ring ending 2 bytes short of the hole. */
    struct fake_ring big;
    uint64_t used = FAKE_HOLE_START - (6 + 8 * 256);
    used &= ~3ULL;
    fake_ring_init(&big, &fx.mem, 0x40000, 0x41002, used, 256);
    fake_mmio_setup_queue(fx.t, 0, &big);
    struct fake_ring one;
    fake_ring_init(&one, &fx.mem, 0x50000, 0x50010, 0x50018, 1);
    fake_mmio_setup_queue(fx.t, 1, &one);
    wr(FAKE_MMIO_STATUS, LIVE);
    cr_expect_eq(rd(FAKE_MMIO_STATUS), LIVE);
    cr_expect(fx.dev.dev.vq[0].active && fx.dev.dev.vq[1].active);
    cr_expect(fx.dev.dev.vq[0].event_idx && fx.dev.dev.vq[0].indirect, "features reached queues");
}

Test(virtio_mmio_queue, unready_queue_not_activated)
{
    cr_assert_eq(fake_mmio_negotiate(fx.t, VERSION_1_ONLY), ACK | DRV | FEAT_OK);
    fake_mmio_setup_queue(fx.t, 0, &r0);
    wr(FAKE_MMIO_STATUS, LIVE);
    cr_expect_eq(rd(FAKE_MMIO_STATUS), LIVE);
    cr_expect(fx.dev.dev.vq[0].active);
    cr_expect_not(fx.dev.dev.vq[1].active);
    fake_host_kick(&fx.host, 1);
    wr(FAKE_MMIO_QUEUE_NOTIFY, 1);
    cr_expect_eq(fx.dev.notifies[1], 0);
}

Test(virtio_mmio_queue, device_activate_failure)
{
    struct metrics_dev m = {0};
    fx.dev.dev.metrics = &m;
    fx.dev.activate_result = -EIO;
    cr_assert_eq(fake_mmio_negotiate(fx.t, VERSION_1_ONLY), ACK | DRV | FEAT_OK);
    fake_mmio_setup_queue(fx.t, 0, &r0);
    wr(FAKE_MMIO_STATUS, LIVE);
    cr_expect_eq(rd(FAKE_MMIO_STATUS), LIVE | NR);
    cr_expect_eq(rd(FAKE_MMIO_INT_STATUS), 2);
    cr_expect_eq(fx.dev.activates, 1);
    cr_expect_not(fx.dev.dev.vq[0].active);
    wr(FAKE_MMIO_QUEUE_NOTIFY, 0);
    cr_expect_eq(fx.dev.notifies[0], 0);
    cr_expect_eq(m.activate_fails, 1, "the refused DRIVER_OK is counted");
    cr_expect_eq(m.queue_events, 0, "a kick to a dead queue is not");
}
