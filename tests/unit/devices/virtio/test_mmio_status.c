/*
 * virtio-mmio driver status and feature negotiation: every value a driver
 * can write to Status from every reachable state, checked against a model of
 * virtio 1.2 sections 2.1 and 3.1 written independently of the transport;
 * FAILED, DEVICE_NEEDS_RESET and reset; DriverFeatures gating, unoffered
 * bits and FEATURES_OK without VERSION_1.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "tests/lib/fake_virtio.h"
#include "vmm/log.h"

static struct fake_fixture fx;

static void setup(void)
{
    log_threshold = LOG_ERROR;
    fake_fixture_init(&fx);
}

static void teardown(void)
{
    fake_fixture_fini(&fx);
}

TestSuite(virtio_mmio_status, .init = setup, .fini = teardown, .timeout = 30);

#define ACK     VIRTIO_STATUS_ACKNOWLEDGE
#define DRV     VIRTIO_STATUS_DRIVER
#define FEAT_OK VIRTIO_STATUS_FEATURES_OK
#define DRV_OK  VIRTIO_STATUS_DRIVER_OK
#define NR      VIRTIO_STATUS_DEVICE_NEEDS_RESET
#define FAILED  VIRTIO_STATUS_FAILED
#define OFFERED                                                                                    \
    (FAKE_VIRTIO_FEATURES | VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX) |      \
     VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC))

static uint32_t rd(uint64_t off)
{
    return fake_mmio_rd(fx.t, off);
}

static void wr(uint64_t off, uint32_t v)
{
    fake_mmio_wr(fx.t, off, v);
}

static void device_needs_reset(void)
{
    pthread_mutex_lock(&fx.dev.dev.lock);
    fx.dev.dev.tops->needs_reset(&fx.dev.dev);
    pthread_mutex_unlock(&fx.dev.dev.lock);
}

/*
 * Bring the device into `state` through the registers (and, for
 * DEVICE_NEEDS_RESET, the device's own report).  VERSION_1 is acked as soon
 * as DRIVER is set, so FEATURES_OK sticks; no queue is ready, so DRIVER_OK
 * activates no queue.
 */
static void reach(uint8_t state)
{
    static const uint8_t path[] = {ACK, ACK | DRV, ACK | DRV | FEAT_OK,
                                   ACK | DRV | FEAT_OK | DRV_OK};
    uint8_t drv = state & (ACK | DRV | FEAT_OK | DRV_OK);

    wr(FAKE_MMIO_STATUS, 0);
    for (size_t i = 0; i < ARRAY_SIZE(path) && (path[i] & drv) == path[i]; i++) {
        wr(FAKE_MMIO_STATUS, path[i]);
        if (path[i] == (ACK | DRV)) {
            wr(FAKE_MMIO_DRV_FEATURES_SEL, 1);
            wr(FAKE_MMIO_DRV_FEATURES, 1); /* VERSION_1 */
        }
    }
    if (state & NR)
        device_needs_reset();
    if (state & FAILED)
        wr(FAKE_MMIO_STATUS, rd(FAKE_MMIO_STATUS) | FAILED);
    cr_assert_eq(rd(FAKE_MMIO_STATUS), state, "could not reach status 0x%02x", state);
}

/*
 * The model: which status a write of `v` leaves in state `s`.
 *   0 resets; bits 4-5 (SUSPEND, reserved) are not ours and void the write;
 *   FAILED may be added at any time (and nothing else with it);
 *   NEEDS_RESET in the written value is the device's bit echoed back;
 *   otherwise exactly one step along ACK, DRIVER, FEATURES_OK, DRIVER_OK,
 *   never clearing a bit, never from FAILED or NEEDS_RESET.
 */
static uint8_t model(uint8_t s, uint8_t v)
{
    static const uint8_t path[] = {0, ACK, ACK | DRV, ACK | DRV | FEAT_OK,
                                   ACK | DRV | FEAT_OK | DRV_OK};
    if (v == 0)
        return 0;
    if (v & 0x30)
        return s;
    if (v & FAILED)
        return s | FAILED;
    if (s & (FAILED | NR))
        return s;
    for (size_t i = 0; i + 1 < ARRAY_SIZE(path); i++)
        if (s == path[i] && (v & ~NR) == path[i + 1])
            return path[i + 1];
    return s;
}

Test(virtio_mmio_status, every_write_from_every_state)
{
    static const uint8_t states[] = {
        0,
        ACK,
        ACK | DRV,
        ACK | DRV | FEAT_OK,
        ACK | DRV | FEAT_OK | DRV_OK,
        FAILED,
        ACK | FAILED,
        ACK | DRV | FAILED,
        ACK | DRV | FEAT_OK | FAILED,
        ACK | DRV | FEAT_OK | DRV_OK | FAILED,
        ACK | NR,
        ACK | DRV | NR,
        ACK | DRV | FEAT_OK | NR,
        ACK | DRV | FEAT_OK | DRV_OK | NR,
        ACK | DRV | FEAT_OK | DRV_OK | NR | FAILED,
    };
    unsigned cases = 0;
    for (size_t si = 0; si < ARRAY_SIZE(states); si++) {
        for (unsigned v = 0; v < 256; v++) {
            reach(states[si]);
            unsigned activates = fx.dev.activates, resets = fx.dev.resets;
            wr(FAKE_MMIO_STATUS, v);
            uint8_t want = model(states[si], (uint8_t)v);
            uint32_t got = rd(FAKE_MMIO_STATUS);
            cr_expect_eq(got, want, "status 0x%02x, write 0x%02x: got 0x%02x, want 0x%02x",
                         states[si], v, got, want);
            /* Side effects happen exactly with their transitions. */
            bool activated = !(states[si] & DRV_OK) && (want & DRV_OK);
            cr_expect_eq(fx.dev.activates - activates, activated ? 1u : 0u,
                         "status 0x%02x, write 0x%02x: activation", states[si], v);
            cr_expect_eq(fx.dev.resets - resets, v == 0 ? 1u : 0u,
                         "status 0x%02x, write 0x%02x: reset", states[si], v);
            cases++;
        }
    }
    /* Writes wider than the 8-bit status are void too. */
    reach(ACK);
    wr(FAKE_MMIO_STATUS, 0x100 | ACK | DRV);
    cr_expect_eq(rd(FAKE_MMIO_STATUS), ACK);
    cr_expect_eq(cases, ARRAY_SIZE(states) * 256);
}

Test(virtio_mmio_status, failed_is_sticky_until_reset)
{
    reach(ACK | DRV);
    wr(FAKE_MMIO_STATUS, FAILED); /* even written alone */
    cr_expect_eq(rd(FAKE_MMIO_STATUS), ACK | DRV | FAILED);
    wr(FAKE_MMIO_STATUS, ACK | DRV);
    wr(FAKE_MMIO_STATUS, ACK | DRV | FEAT_OK);
    wr(FAKE_MMIO_STATUS, ACK | DRV | FEAT_OK | FAILED);
    cr_expect_eq(rd(FAKE_MMIO_STATUS), ACK | DRV | FAILED);
    wr(FAKE_MMIO_STATUS, 0);
    cr_expect_eq(rd(FAKE_MMIO_STATUS), 0);
}

Test(virtio_mmio_status, needs_reset_from_device)
{
    reach(ACK | DRV | FEAT_OK | DRV_OK);
    uint64_t irqs = fake_host_irqs(&fx.host);
    device_needs_reset();
    cr_expect_eq(rd(FAKE_MMIO_STATUS), ACK | DRV | FEAT_OK | DRV_OK | NR);
    cr_expect_eq(rd(FAKE_MMIO_INT_STATUS), 2, "config change interrupt");
    cr_expect_eq(fake_host_irqs(&fx.host), irqs + 1);
    /* Reported once: a second report does not interrupt again. */
    device_needs_reset();
    cr_expect_eq(fake_host_irqs(&fx.host), irqs + 1);
    /* The driver echoes the bit when it adds FAILED. */
    wr(FAKE_MMIO_STATUS, ACK | DRV | FEAT_OK | DRV_OK | NR | FAILED);
    cr_expect_eq(rd(FAKE_MMIO_STATUS), ACK | DRV | FEAT_OK | DRV_OK | NR | FAILED);
    wr(FAKE_MMIO_STATUS, 0);
    cr_expect_eq(rd(FAKE_MMIO_STATUS), 0);
    cr_expect_eq(rd(FAKE_MMIO_INT_STATUS), 0);
    /* A reset device has nothing to report. */
    device_needs_reset();
    cr_expect_eq(rd(FAKE_MMIO_STATUS), 0);
}

Test(virtio_mmio_status, virtio_dev_fail_marks_queues_broken)
{
    reach(ACK | DRV | FEAT_OK | DRV_OK);
    pthread_mutex_lock(&fx.dev.dev.lock);
    virtio_dev_fail(&fx.dev.dev, "test failure");
    pthread_mutex_unlock(&fx.dev.dev.lock);
    cr_expect(rd(FAKE_MMIO_STATUS) & NR);
    cr_expect(fx.dev.dev.vq[0].broken && fx.dev.dev.vq[1].broken);
    wr(FAKE_MMIO_STATUS, 0);
    cr_expect(!fx.dev.dev.vq[0].broken && !fx.dev.dev.vq[1].broken, "reset repairs");
}

/* ---- feature negotiation ------------------------------------------------- */

static uint64_t acked(void)
{
    return fx.dev.dev.guest_features;
}

Test(virtio_mmio_status, negotiation_keeps_only_offered_bits)
{
    cr_assert_eq(fake_mmio_negotiate(fx.t, ~0ULL), ACK | DRV | FEAT_OK);
    cr_expect_eq(acked(), OFFERED, "acked 0x%llx", (unsigned long long)acked());
    cr_expect(virtio_has_feature(&fx.dev.dev, VIRTIO_F_VERSION_1));
    cr_expect_not(virtio_has_feature(&fx.dev.dev, VIRTIO_F_NOTIFICATION_DATA));
    cr_expect_not(virtio_has_feature(&fx.dev.dev, VIRTIO_F_RING_PACKED));
}

Test(virtio_mmio_status, negotiation_subset)
{
    uint64_t want = VIRTIO_BIT(5) | VIRTIO_BIT(VIRTIO_F_VERSION_1);
    cr_assert_eq(fake_mmio_negotiate(fx.t, want), ACK | DRV | FEAT_OK);
    cr_expect_eq(acked(), want);
    cr_expect_not(virtio_has_feature(&fx.dev.dev, VIRTIO_F_EVENT_IDX));
}

Test(virtio_mmio_status, features_ok_needs_version_1)
{
    cr_expect_eq(fake_mmio_negotiate(fx.t, FAKE_VIRTIO_FEATURES), ACK | DRV,
                 "FEATURES_OK must not stick without VERSION_1");
    /* Nothing past it either. */
    wr(FAKE_MMIO_STATUS, ACK | DRV | FEAT_OK | DRV_OK);
    cr_expect_eq(rd(FAKE_MMIO_STATUS), ACK | DRV);
    cr_expect_eq(fx.dev.activates, 0);
    /* The driver may still fix its choice and retry. */
    wr(FAKE_MMIO_DRV_FEATURES_SEL, 1);
    wr(FAKE_MMIO_DRV_FEATURES, 1);
    wr(FAKE_MMIO_STATUS, ACK | DRV | FEAT_OK);
    cr_expect_eq(rd(FAKE_MMIO_STATUS), ACK | DRV | FEAT_OK);
}

Test(virtio_mmio_status, driver_features_only_in_driver_state)
{
    /* Before DRIVER. */
    wr(FAKE_MMIO_STATUS, ACK);
    wr(FAKE_MMIO_DRV_FEATURES_SEL, 0);
    wr(FAKE_MMIO_DRV_FEATURES, 0xffffffff);
    cr_expect_eq(acked(), 0);
    /* In DRIVER: accepted; a second write of the same word replaces it. */
    wr(FAKE_MMIO_STATUS, ACK | DRV);
    wr(FAKE_MMIO_DRV_FEATURES, 0xffffffff);
    cr_expect_eq(acked(), (uint32_t)OFFERED);
    wr(FAKE_MMIO_DRV_FEATURES, 1);
    cr_expect_eq(acked(), 1);
    wr(FAKE_MMIO_DRV_FEATURES_SEL, 1);
    wr(FAKE_MMIO_DRV_FEATURES, 0xffffffff);
    cr_expect_eq(acked(), 1 | VIRTIO_BIT(VIRTIO_F_VERSION_1));
    /* Words beyond 1 have no offered bits. */
    wr(FAKE_MMIO_DRV_FEATURES_SEL, 2);
    wr(FAKE_MMIO_DRV_FEATURES, 0xffffffff);
    wr(FAKE_MMIO_DRV_FEATURES_SEL, 0xffffffff);
    wr(FAKE_MMIO_DRV_FEATURES, 0xffffffff);
    cr_expect_eq(acked(), 1 | VIRTIO_BIT(VIRTIO_F_VERSION_1));
    /* After FEATURES_OK: frozen. */
    wr(FAKE_MMIO_STATUS, ACK | DRV | FEAT_OK);
    cr_assert_eq(rd(FAKE_MMIO_STATUS), ACK | DRV | FEAT_OK);
    wr(FAKE_MMIO_DRV_FEATURES_SEL, 0);
    wr(FAKE_MMIO_DRV_FEATURES, 0xffffffff);
    wr(FAKE_MMIO_DRV_FEATURES_SEL, 1);
    wr(FAKE_MMIO_DRV_FEATURES, 0);
    cr_expect_eq(acked(), 1 | VIRTIO_BIT(VIRTIO_F_VERSION_1));
    /* Reset forgets them. */
    wr(FAKE_MMIO_STATUS, 0);
    cr_expect_eq(acked(), 0);
}

Test(virtio_mmio_status, driver_features_refused_after_failed)
{
    wr(FAKE_MMIO_STATUS, ACK);
    wr(FAKE_MMIO_STATUS, ACK | DRV);
    wr(FAKE_MMIO_STATUS, ACK | DRV | FAILED);
    wr(FAKE_MMIO_DRV_FEATURES, 0xffffffff);
    cr_expect_eq(acked(), 0);
}
