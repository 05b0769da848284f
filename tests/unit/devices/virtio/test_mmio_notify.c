/*
 * virtio-mmio notifications, interrupts, reset and transport state:
 * QueueNotify by MMIO and through the ioeventfd handler, when kicks reach
 * the device, a malformed ring turning into DEVICE_NEEDS_RESET,
 * InterruptStatus and InterruptACK (and EVENT_IDX suppression through
 * virtio_dev_signal), what reset clears, and get/set_regs validation.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/fake_virtio.h"
#include "vmm/log.h"

#include "tests/unit/devices/virtio/test_mmio_fixture.h"

TestSuite(virtio_mmio_notify, .init = setup, .fini = teardown, .timeout = 30);

static bool queue_untouched(unsigned q)
{
    const struct virtq_config *c = &fx.dev.dev.vq[q].cfg;
    return c->size == 0 && !c->ready && !c->desc_gpa && !c->avail_gpa && !c->used_gpa;
}

/* ---- notifications ---------------------------------------------------------- */

Test(virtio_mmio_notify, ioeventfds_bound_per_queue)
{
    cr_assert_eq(fx.host.ncalls, FAKE_VIRTIO_QUEUES);
    for (unsigned q = 0; q < FAKE_VIRTIO_QUEUES; q++) {
        cr_expect_eq(fx.host.calls[q].addr, FAKE_MMIO_BASE + 0x50);
        cr_expect_eq(fx.host.calls[q].datamatch, q);
        cr_expect(fx.host.calls[q].assign);
        cr_expect_geq(fx.host.calls[q].fd, 0);
    }
    cr_expect_neq(fx.host.calls[0].fd, fx.host.calls[1].fd);
}

Test(virtio_mmio_notify, notify_through_ioeventfd)
{
    go_live();
    fake_ring_add(&r1, BUF1, 32, false);
    fake_ring_add(&r1, BUF1 + 32, 32, true);
    cr_expect_eq(fake_host_kick(&fx.host, 1), 1, "one handler ran");
    cr_expect_eq(fx.dev.notifies[1], 1);
    cr_expect_eq(fx.dev.notifies[0], 0);
    cr_expect_eq(fx.dev.chains[1], 2);
    cr_expect_eq(fake_ring_used_idx(&r1), 2);
    /* Several kicks before the loop runs coalesce into one call. */
    uint64_t one = 1;
    int fd = fake_host_kick_fd(&fx.host, 0);
    cr_assert(write(fd, &one, 8) == 8 && write(fd, &one, 8) == 8);
    cr_expect_eq(fake_host_poll(&fx.host), 1);
    cr_expect_eq(fx.dev.notifies[0], 1);
    cr_expect_eq(fake_host_poll(&fx.host), 0, "eventfd drained");
}

Test(virtio_mmio_notify, notify_ignored_unless_live)
{
    cr_assert_eq(fake_mmio_negotiate(fx.t, VERSION_1_ONLY), ACK | DRV | FEAT_OK);
    fake_mmio_setup_queue(fx.t, 0, &r0);
    fake_host_kick(&fx.host, 0);
    wr(FAKE_MMIO_QUEUE_NOTIFY, 0);
    cr_expect_eq(fx.dev.notifies[0], 0, "before DRIVER_OK");
    wr(FAKE_MMIO_STATUS, LIVE);
    wr(FAKE_MMIO_QUEUE_NOTIFY, 0);
    cr_expect_eq(fx.dev.notifies[0], 1);
    /* Out-of-range indices and other widths. */
    const uint32_t bad[] = {2, 8, 0xffff, 0x10000, 0xffffffff};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        wr(FAKE_MMIO_QUEUE_NOTIFY, bad[i]);
    uint16_t v16 = 0;
    virtio_mmio_write(fx.t, FAKE_MMIO_QUEUE_NOTIFY, &v16, 2);
    uint64_t v64 = 0;
    virtio_mmio_write(fx.t, FAKE_MMIO_QUEUE_NOTIFY, &v64, 8);
    cr_expect_eq(fx.dev.notifies[0] + fx.dev.notifies[1], 1);
    /* After FAILED the device is left alone. */
    wr(FAKE_MMIO_STATUS, LIVE | VIRTIO_STATUS_FAILED);
    wr(FAKE_MMIO_QUEUE_NOTIFY, 0);
    fake_host_kick(&fx.host, 0);
    cr_expect_eq(fx.dev.notifies[0], 1);
}

Test(virtio_mmio_notify, malformed_ring_needs_reset)
{
    go_live();
    fake_ring_set_avail_idx(&r0, 17); /* 17 ahead of a 16-entry ring */
    fake_host_kick(&fx.host, 0);
    cr_expect_lt(fx.dev.last_pop, 0);
    cr_expect_eq(rd(FAKE_MMIO_STATUS), LIVE | NR);
    cr_expect_eq(rd(FAKE_MMIO_INT_STATUS), 2);
    cr_expect(fx.dev.dev.vq[0].broken && fx.dev.dev.vq[1].broken);
    uint64_t irqs = fake_host_irqs(&fx.host);
    /* Further kicks neither reach the device nor interrupt again. */
    unsigned n = fx.dev.notifies[0];
    for (int i = 0; i < 100; i++)
        fake_host_kick(&fx.host, 0);
    cr_expect_eq(fx.dev.notifies[0], n);
    cr_expect_eq(fake_host_irqs(&fx.host), irqs);
    /* Reset and start over. */
    wr(FAKE_MMIO_STATUS, 0);
    fake_ring_init(&r0, &fx.mem, 0x10000, 0x11000, 0x12000, 16);
    go_live();
    fake_ring_add(&r0, BUF0, 8, true);
    fake_host_kick(&fx.host, 0);
    cr_expect_eq(fake_ring_used_idx(&r0), 1);
}

/* ---- interrupts --------------------------------------------------------------- */

static void from_device(void (*fn)(struct virtio_dev *))
{
    pthread_mutex_lock(&fx.dev.dev.lock);
    fn(&fx.dev.dev);
    pthread_mutex_unlock(&fx.dev.dev.lock);
}

Test(virtio_mmio_notify, interrupt_status_and_ack)
{
    go_live();
    cr_expect_eq(rd(FAKE_MMIO_INT_STATUS), 0);
    from_device(fx.dev.dev.tops->notify_used);
    cr_expect_eq(rd(FAKE_MMIO_INT_STATUS), 1);
    cr_expect_eq(fake_host_irqs(&fx.host), 1);
    from_device(fx.dev.dev.tops->notify_config);
    cr_expect_eq(rd(FAKE_MMIO_INT_STATUS), 3);
    cr_expect_eq(fake_host_irqs(&fx.host), 2);
    /* Still pending: every raise pulses (edge), it is not coalesced. */
    from_device(fx.dev.dev.tops->notify_used);
    cr_expect_eq(fake_host_irqs(&fx.host), 3);
    /* InterruptStatus is read-only; ACK clears what is written. */
    wr(FAKE_MMIO_INT_STATUS, 0);
    cr_expect_eq(rd(FAKE_MMIO_INT_STATUS), 3);
    wr(FAKE_MMIO_INT_ACK, 1);
    cr_expect_eq(rd(FAKE_MMIO_INT_STATUS), 2);
    wr(FAKE_MMIO_INT_ACK, 0);
    cr_expect_eq(rd(FAKE_MMIO_INT_STATUS), 2);
    wr(FAKE_MMIO_INT_ACK, 0xfffffffc);
    cr_expect_eq(rd(FAKE_MMIO_INT_STATUS), 2);
    wr(FAKE_MMIO_INT_ACK, 0xffffffff);
    cr_expect_eq(rd(FAKE_MMIO_INT_STATUS), 0);
    cr_expect_eq(rd(FAKE_MMIO_INT_ACK), 0, "write-only");
    /* A byte-wide ACK is not a valid access. */
    from_device(fx.dev.dev.tops->notify_used);
    uint8_t b = 1;
    virtio_mmio_write(fx.t, FAKE_MMIO_INT_ACK, &b, 1);
    cr_expect_eq(rd(FAKE_MMIO_INT_STATUS), 1);
}

Test(virtio_mmio_notify, event_idx_suppresses_interrupts)
{
    cr_assert_eq(fake_mmio_negotiate(fx.t, OFFERED), ACK | DRV | FEAT_OK);
    fake_mmio_setup_queue(fx.t, 0, &r0);
    wr(FAKE_MMIO_STATUS, LIVE);
    cr_assert(fx.dev.dev.vq[0].event_idx);
    /* used_event = 5 (after the avail ring): interrupt only once used.idx passes it. */
    le16_put(gmem_ptr(&fx.mem, r0.avail + 4 + 2 * 16, 2), 5);
    for (unsigned i = 0; i < 8; i++) {
        fake_ring_add(&r0, BUF0 + 16 * i, 16, true);
        fake_host_kick(&fx.host, 0);
    }
    /* The first push always interrupts (nothing known yet), then only 5 -> 6. */
    cr_expect_eq(fake_host_irqs(&fx.host), 2);
    cr_expect_eq(fake_ring_used_idx(&r0), 8);
}

/* ---- reset ---------------------------------------------------------------------- */

Test(virtio_mmio_notify, reset_clears_everything)
{
    go_live();
    wr(FAKE_MMIO_DEV_FEATURES_SEL, 1);
    wr(FAKE_MMIO_DRV_FEATURES_SEL, 1);
    wr(FAKE_MMIO_QUEUE_SEL, 1);
    from_device(fx.dev.dev.tops->notify_used);
    from_device(fx.dev.dev.tops->notify_config);
    uint32_t gen = rd(FAKE_MMIO_CONFIG_GEN);
    unsigned resets = fx.dev.resets;

    wr(FAKE_MMIO_STATUS, 0);
    cr_expect_eq(fx.dev.resets, resets + 1);
    cr_expect_eq(rd(FAKE_MMIO_STATUS), 0);
    cr_expect_eq(rd(FAKE_MMIO_INT_STATUS), 0);
    cr_expect_eq(fx.dev.dev.guest_features, 0);
    cr_expect_eq(rd(FAKE_MMIO_CONFIG_GEN), gen + 1);
    struct virtio_mmio_regs r;
    virtio_mmio_get_regs(fx.t, &r);
    cr_expect(r.device_features_sel == 0 && r.driver_features_sel == 0 && r.queue_sel == 0);
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
        cr_expect(queue_untouched(q), "queue %u", q);
        cr_expect_not(fx.dev.dev.vq[q].active || fx.dev.dev.vq[q].broken);
        cr_expect_eq(fx.dev.dev.vq[q].max_size, q < FAKE_VIRTIO_QUEUES ? FAKE_VIRTIO_QUEUE_MAX : 0);
        wr(FAKE_MMIO_QUEUE_SEL, q);
        cr_expect_eq(rd(FAKE_MMIO_QUEUE_READY), 0);
    }
    /* Kicks after reset go nowhere. */
    fake_host_kick(&fx.host, 0);
    cr_expect_eq(fx.dev.notifies[0], 0);
    /* The ioeventfds stay bound across resets. */
    cr_expect_eq(fake_host_bound(&fx.host), FAKE_VIRTIO_QUEUES);
}

/* ---- state ----------------------------------------------------------------------- */

Test(virtio_mmio_notify, get_set_regs)
{
    struct virtio_mmio_regs r = {.device_features_sel = 1,
                                 .driver_features_sel = 2,
                                 .queue_sel = FAKE_VIRTIO_QUEUES,
                                 .interrupt_status = 3};
    cr_assert_eq(virtio_mmio_set_regs(fx.t, &r), 0);
    struct virtio_mmio_regs got;
    virtio_mmio_get_regs(fx.t, &got);
    cr_expect_eq(memcmp(&r, &got, sizeof(r)), 0);
    cr_expect_eq(rd(FAKE_MMIO_INT_STATUS), 3);
    cr_expect_eq(rd(FAKE_MMIO_DEV_FEATURES), (uint32_t)(OFFERED >> 32));

    const struct virtio_mmio_regs bad[] = {
        {3, 0, 0, 0},          {0, 3, 0, 0},          {0, 0, FAKE_VIRTIO_QUEUES + 1, 0},
        {0, 0, 0, 4},          {0xffffffff, 0, 0, 0}, {0, 0, 0xffffffff, 0},
        {0, 0, 0, 0x80000000},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        cr_expect_eq(virtio_mmio_set_regs(fx.t, &bad[i]), -EINVAL, "case %zu", i);
        virtio_mmio_get_regs(fx.t, &got);
        cr_expect_eq(memcmp(&r, &got, sizeof(r)), 0, "case %zu changed state", i);
    }
    /* Whatever a guest writes, get_regs returns something set_regs accepts. */
    wr(FAKE_MMIO_DEV_FEATURES_SEL, 0xffffffff);
    wr(FAKE_MMIO_DRV_FEATURES_SEL, 0x12345);
    wr(FAKE_MMIO_QUEUE_SEL, 0xffffffff);
    virtio_mmio_get_regs(fx.t, &got);
    cr_expect_eq(virtio_mmio_set_regs(fx.t, &got), 0);
    cr_expect_eq(rd(FAKE_MMIO_QUEUE_NUM_MAX), 0);
}
