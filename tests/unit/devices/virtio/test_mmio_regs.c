/*
 * virtio-mmio register file: identification, feature words, config space,
 * shared-memory and selector registers, and a sweep of every offset in
 * 0..0x1FF with every access size in {1,2,3,4,8}, read and write, checking
 * the value of every valid read and that invalid or forbidden writes leave
 * the device exactly as it was (run it under ASan: accesses use buffers of
 * exactly the access size).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/fake_virtio.h"
#include "vmm/log.h"

static struct fake_fixture fx;

static void setup(void)
{
    log_threshold = LOG_ERROR; /* the sweep provokes every refusal log */
    fake_fixture_init(&fx);
}

static void teardown(void)
{
    fake_fixture_fini(&fx);
}

TestSuite(virtio_mmio_regs, .init = setup, .fini = teardown, .timeout = 60);

#define ACK     VIRTIO_STATUS_ACKNOWLEDGE
#define DRV     VIRTIO_STATUS_DRIVER
#define FEAT_OK VIRTIO_STATUS_FEATURES_OK
#define DRV_OK  VIRTIO_STATUS_DRIVER_OK
#define OFFERED                                                                                    \
    (FAKE_VIRTIO_FEATURES | VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX) |      \
     VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC))
#define RING0_DESC  0x10000
#define RING0_AVAIL 0x11000
#define RING0_USED  0x12000
#define RING1_DESC  0x20000
#define RING1_AVAIL 0x21000
#define RING1_USED  0x22000

static uint32_t rd(uint64_t off)
{
    return fake_mmio_rd(fx.t, off);
}

static void wr(uint64_t off, uint32_t v)
{
    fake_mmio_wr(fx.t, off, v);
}

Test(virtio_mmio_regs, identification)
{
    cr_expect_eq(rd(FAKE_MMIO_MAGIC), 0x74726976);
    cr_expect_eq(rd(FAKE_MMIO_VERSION), 2);
    cr_expect_eq(rd(FAKE_MMIO_DEVICE_ID), FAKE_VIRTIO_DEVICE_ID);
    cr_expect_eq(rd(FAKE_MMIO_VENDOR_ID), 0x50534957); /* "WISP" */
    cr_expect_eq(rd(FAKE_MMIO_STATUS), 0);
    /* Little-endian bytes of the magic are "virt"; but a byte read is refused. */
    uint8_t b = 0xaa;
    virtio_mmio_read(fx.t, FAKE_MMIO_MAGIC, &b, 1);
    cr_expect_eq(b, 0);
}

Test(virtio_mmio_regs, registered_on_the_bus)
{
    uint8_t b[4];
    cr_assert(bus_read(&fx.host.bus, FAKE_MMIO_BASE + FAKE_MMIO_MAGIC, b, 4));
    cr_expect_eq(le32_get(b), 0x74726976);
    cr_expect_not(bus_read(&fx.host.bus, FAKE_MMIO_BASE + 0x1000, b, 4), "window is 4 KiB");
    cr_expect_eq(fx.host.gsi, FAKE_MMIO_GSI);
    cr_expect_eq(fx.host.irqfd_calls, 1);
}

Test(virtio_mmio_regs, device_features_words)
{
    wr(FAKE_MMIO_DEV_FEATURES_SEL, 0);
    cr_expect_eq(rd(FAKE_MMIO_DEV_FEATURES), (uint32_t)OFFERED);
    wr(FAKE_MMIO_DEV_FEATURES_SEL, 1);
    cr_expect_eq(rd(FAKE_MMIO_DEV_FEATURES), (uint32_t)(OFFERED >> 32));
    cr_expect_eq(rd(FAKE_MMIO_DEV_FEATURES) & 1, 1, "VERSION_1 is bit 32");
    for (uint32_t sel = 2; sel < 8; sel++) {
        wr(FAKE_MMIO_DEV_FEATURES_SEL, sel);
        cr_expect_eq(rd(FAKE_MMIO_DEV_FEATURES), 0, "sel %u", sel);
    }
    wr(FAKE_MMIO_DEV_FEATURES_SEL, 0xffffffff);
    cr_expect_eq(rd(FAKE_MMIO_DEV_FEATURES), 0);
    cr_expect_eq(rd(FAKE_MMIO_DEV_FEATURES_SEL), 0, "write-only register reads 0");
}

Test(virtio_mmio_regs, forbidden_features_never_offered)
{
    const uint64_t bad = VIRTIO_BIT(VIRTIO_F_NOTIFICATION_DATA) | VIRTIO_BIT(VIRTIO_F_RING_PACKED) |
                         VIRTIO_BIT(VIRTIO_F_RING_RESET) | VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM);
    /* Asked for at init: stripped by the common code. */
    struct virtio_dev d;
    virtio_dev_init(&d, &fake_virtio_ops, "x", &fx.mem, NULL, bad | VIRTIO_BIT(3));
    cr_expect_eq(d.host_features & bad, 0);
    cr_expect(d.host_features & VIRTIO_BIT(3));
    cr_expect(d.host_features & VIRTIO_BIT(VIRTIO_F_VERSION_1));
    virtio_dev_fini(&d);

    /* Smuggled in later: still not offered by the transport. */
    fx.dev.dev.host_features |= bad;
    for (uint32_t w = 0; w < 2; w++) {
        wr(FAKE_MMIO_DEV_FEATURES_SEL, w);
        cr_expect_eq(rd(FAKE_MMIO_DEV_FEATURES), (uint32_t)(OFFERED >> (32 * w)));
    }
}

Test(virtio_mmio_regs, shared_memory_regions_absent)
{
    for (uint32_t sel = 0; sel < 3; sel++) {
        wr(FAKE_MMIO_SHM_SEL, sel);
        cr_expect_eq(rd(FAKE_MMIO_SHM_LEN_LO), 0xffffffff);
        cr_expect_eq(rd(FAKE_MMIO_SHM_LEN_HI), 0xffffffff);
        cr_expect_eq(rd(FAKE_MMIO_SHM_BASE_LO), 0xffffffff);
        cr_expect_eq(rd(FAKE_MMIO_SHM_BASE_HI), 0xffffffff);
    }
    cr_expect_eq(rd(FAKE_MMIO_QUEUE_RESET), 0, "QueueReset is not offered");
}

Test(virtio_mmio_regs, queue_sel_beyond_queues)
{
    cr_assert_eq(fake_mmio_negotiate(fx.t, OFFERED), ACK | DRV | FEAT_OK);
    wr(FAKE_MMIO_QUEUE_SEL, 0);
    cr_expect_eq(rd(FAKE_MMIO_QUEUE_NUM_MAX), FAKE_VIRTIO_QUEUE_MAX);
    wr(FAKE_MMIO_QUEUE_SEL, 1);
    cr_expect_eq(rd(FAKE_MMIO_QUEUE_NUM_MAX), FAKE_VIRTIO_QUEUE_MAX);
    const uint32_t sels[] = {2, 7, 8, 9, 0xffff, 0x10000, 0xffffffff};
    for (size_t i = 0; i < ARRAY_SIZE(sels); i++) {
        wr(FAKE_MMIO_QUEUE_SEL, sels[i]);
        cr_expect_eq(rd(FAKE_MMIO_QUEUE_NUM_MAX), 0, "sel %u", sels[i]);
        cr_expect_eq(rd(FAKE_MMIO_QUEUE_READY), 0);
        wr(FAKE_MMIO_QUEUE_NUM, 16);
        wr(FAKE_MMIO_DESC_LO, 0x1000);
        wr(FAKE_MMIO_DRIVER_LO, 0x2000);
        wr(FAKE_MMIO_DEVICE_LO, 0x3000);
        wr(FAKE_MMIO_QUEUE_READY, 1);
        cr_expect_eq(rd(FAKE_MMIO_QUEUE_READY), 0);
    }
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
        const struct virtq_config *c = &fx.dev.dev.vq[q].cfg;
        cr_expect(c->size == 0 && !c->ready && !c->desc_gpa && !c->avail_gpa && !c->used_gpa,
                  "queue %u touched", q);
    }
}

Test(virtio_mmio_regs, config_space_reads)
{
    /* Every 1/2/4-byte access inside the 8 bytes, aligned or not. */
    for (unsigned len = 1; len <= 4; len *= 2) {
        for (unsigned off = 0; off + len <= FAKE_VIRTIO_CONFIG_SIZE; off++) {
            uint8_t *b = malloc(len);
            memset(b, 0xaa, len);
            virtio_mmio_read(fx.t, FAKE_MMIO_CONFIG + off, b, len);
            for (unsigned i = 0; i < len; i++)
                cr_expect_eq(b[i], 0x10 + off + i, "len %u off %u byte %u", len, off, i);
            free(b);
        }
    }
    /* Crossing the end, beyond it, 8-byte and 3-byte accesses read 0. */
    const struct {
        unsigned off, len;
    } bad[] = {{7, 2}, {6, 4}, {5, 4}, {8, 1}, {0x100, 4}, {0xefc, 4}, {0, 8}, {0, 3}, {4, 3}};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        uint8_t *b = malloc(bad[i].len);
        memset(b, 0xaa, bad[i].len);
        virtio_mmio_read(fx.t, FAKE_MMIO_CONFIG + bad[i].off, b, bad[i].len);
        for (unsigned j = 0; j < bad[i].len; j++)
            cr_expect_eq(b[j], 0, "off %u len %u", bad[i].off, bad[i].len);
        free(b);
    }
}

Test(virtio_mmio_regs, config_space_writes)
{
    uint8_t v4[4] = {1, 2, 3, 4};
    /* Before the driver has claimed the device: ignored. */
    virtio_mmio_write(fx.t, FAKE_MMIO_CONFIG, v4, 4);
    wr(FAKE_MMIO_STATUS, ACK);
    virtio_mmio_write(fx.t, FAKE_MMIO_CONFIG, v4, 4);
    cr_expect_eq(fx.dev.config_writes, 0);
    cr_expect_eq(fx.dev.config[0], 0x10);

    wr(FAKE_MMIO_STATUS, ACK | DRV);
    virtio_mmio_write(fx.t, FAKE_MMIO_CONFIG + 4, v4, 4);
    cr_expect_eq(fx.dev.config_writes, 1);
    cr_expect_eq(memcmp(fx.dev.config + 4, v4, 4), 0);
    virtio_mmio_write(fx.t, FAKE_MMIO_CONFIG + 7, v4, 1);
    cr_expect_eq(fx.dev.config[7], 1);
    cr_expect_eq(fx.dev.config_writes, 2);

    /* Out of range, wrong size: ignored (the fake aborts if one got through). */
    virtio_mmio_write(fx.t, FAKE_MMIO_CONFIG + 7, v4, 2);
    virtio_mmio_write(fx.t, FAKE_MMIO_CONFIG + 8, v4, 1);
    virtio_mmio_write(fx.t, FAKE_MMIO_CONFIG + 6, v4, 4);
    virtio_mmio_write(fx.t, FAKE_MMIO_CONFIG, v4, 3);
    uint8_t v8[8] = {0};
    virtio_mmio_write(fx.t, FAKE_MMIO_CONFIG, v8, 8);
    cr_expect_eq(fx.dev.config_writes, 2);

    /* A failed driver no longer writes config. */
    wr(FAKE_MMIO_STATUS, ACK | DRV | VIRTIO_STATUS_FAILED);
    virtio_mmio_write(fx.t, FAKE_MMIO_CONFIG, v4, 4);
    cr_expect_eq(fx.dev.config_writes, 2);
}

Test(virtio_mmio_regs, config_generation)
{
    uint32_t g0 = rd(FAKE_MMIO_CONFIG_GEN);
    pthread_mutex_lock(&fx.dev.dev.lock);
    fx.dev.dev.tops->notify_config(&fx.dev.dev);
    pthread_mutex_unlock(&fx.dev.dev.lock);
    cr_expect_eq(rd(FAKE_MMIO_CONFIG_GEN), g0 + 1);
    cr_expect_eq(rd(FAKE_MMIO_INT_STATUS), 2);
    cr_expect_eq(fake_host_irqs(&fx.host), 1);
    wr(FAKE_MMIO_CONFIG_GEN, 77);
    cr_expect_eq(rd(FAKE_MMIO_CONFIG_GEN), g0 + 1, "read-only");
    /* Reset bumps it: ops->reset may change config under a reading driver. */
    wr(FAKE_MMIO_STATUS, 0);
    cr_expect_eq(rd(FAKE_MMIO_CONFIG_GEN), g0 + 2);
}

Test(virtio_mmio_regs, read_only_registers_ignore_writes)
{
    const uint64_t ro[] = {FAKE_MMIO_MAGIC,       FAKE_MMIO_VERSION,      FAKE_MMIO_DEVICE_ID,
                           FAKE_MMIO_VENDOR_ID,   FAKE_MMIO_DEV_FEATURES, FAKE_MMIO_QUEUE_NUM_MAX,
                           FAKE_MMIO_INT_STATUS,  FAKE_MMIO_SHM_LEN_LO,   FAKE_MMIO_SHM_LEN_HI,
                           FAKE_MMIO_SHM_BASE_LO, FAKE_MMIO_SHM_BASE_HI};
    uint32_t before[ARRAY_SIZE(ro)];
    for (size_t i = 0; i < ARRAY_SIZE(ro); i++)
        before[i] = rd(ro[i]);
    for (size_t i = 0; i < ARRAY_SIZE(ro); i++)
        wr(ro[i], 0x12345678);
    for (size_t i = 0; i < ARRAY_SIZE(ro); i++)
        cr_expect_eq(rd(ro[i]), before[i], "register 0x%03llx", (unsigned long long)ro[i]);
}

/* ---- the sweep ------------------------------------------------------------ */

struct snap {
    uint8_t status;
    uint64_t guest_features;
    uint32_t generation;
    struct virtq_config cfg[FAKE_VIRTIO_QUEUES];
    bool active[FAKE_VIRTIO_QUEUES], broken[FAKE_VIRTIO_QUEUES];
    struct virtio_mmio_regs regs;
    uint8_t config[FAKE_VIRTIO_CONFIG_SIZE];
    unsigned activates, resets, config_writes, notifies;
    uint64_t irqs;
};

static void take(struct snap *s)
{
    const struct virtio_dev *d = &fx.dev.dev;
    memset(s, 0, sizeof(*s));
    s->status = d->status;
    s->guest_features = d->guest_features;
    s->generation = d->config_generation;
    for (unsigned q = 0; q < FAKE_VIRTIO_QUEUES; q++) {
        s->cfg[q] = d->vq[q].cfg;
        s->active[q] = d->vq[q].active;
        s->broken[q] = d->vq[q].broken;
    }
    virtio_mmio_get_regs(fx.t, &s->regs);
    memcpy(s->config, fx.dev.config, sizeof(s->config));
    s->activates = fx.dev.activates;
    s->resets = fx.dev.resets;
    s->config_writes = fx.dev.config_writes;
    s->notifies = fx.dev.notifies[0] + fx.dev.notifies[1];
    s->irqs = fake_host_irqs(&fx.host);
}

static bool same(const struct snap *a, const struct snap *b)
{
    bool ok = a->status == b->status && a->guest_features == b->guest_features &&
              a->generation == b->generation && !memcmp(&a->regs, &b->regs, sizeof(a->regs)) &&
              !memcmp(a->config, b->config, sizeof(a->config)) && a->activates == b->activates &&
              a->resets == b->resets && a->config_writes == b->config_writes &&
              a->notifies == b->notifies && a->irqs == b->irqs;
    for (unsigned q = 0; q < FAKE_VIRTIO_QUEUES; q++) {
        const struct virtq_config *x = &a->cfg[q], *y = &b->cfg[q];
        ok = ok && x->size == y->size && x->ready == y->ready && x->desc_gpa == y->desc_gpa &&
             x->avail_gpa == y->avail_gpa && x->used_gpa == y->used_gpa &&
             a->active[q] == b->active[q] && a->broken[q] == b->broken[q];
    }
    return ok;
}

/*
 * Known state for the sweep: features negotiated, queue 0 configured, queue
 * 1 configured and ready, QueueSel 1, a config interrupt pending; then
 * DRIVER_OK if `live`.
 */
static void prepare(bool live)
{
    struct fake_ring r0, r1;
    fake_ring_init(&r0, &fx.mem, RING0_DESC, RING0_AVAIL, RING0_USED, 16);
    fake_ring_init(&r1, &fx.mem, RING1_DESC, RING1_AVAIL, RING1_USED, 64);
    for (unsigned i = 0; i < FAKE_VIRTIO_CONFIG_SIZE; i++)
        fx.dev.config[i] = (uint8_t)(0x10 + i);
    cr_assert_eq(fake_mmio_negotiate(fx.t, OFFERED), ACK | DRV | FEAT_OK);
    fake_mmio_setup_queue(fx.t, 0, &r0);
    wr(FAKE_MMIO_QUEUE_READY, 0); /* queue 0 stays configured but not ready */
    fake_mmio_setup_queue(fx.t, 1, &r1);
    pthread_mutex_lock(&fx.dev.dev.lock);
    fx.dev.dev.tops->notify_config(&fx.dev.dev);
    pthread_mutex_unlock(&fx.dev.dev.lock);
    if (live) {
        wr(FAKE_MMIO_STATUS, ACK | DRV | FEAT_OK | DRV_OK);
        cr_assert_eq(rd(FAKE_MMIO_STATUS), ACK | DRV | FEAT_OK | DRV_OK);
        cr_assert(fx.dev.dev.vq[1].active);
    }
}

/* What a valid read returns in the prepare() state (`live` = DRIVER_OK). */
static uint32_t expected_reg(uint64_t off, bool live)
{
    switch (off) {
    case FAKE_MMIO_MAGIC:
        return 0x74726976;
    case FAKE_MMIO_VERSION:
        return 2;
    case FAKE_MMIO_DEVICE_ID:
        return FAKE_VIRTIO_DEVICE_ID;
    case FAKE_MMIO_VENDOR_ID:
        return 0x50534957;
    case FAKE_MMIO_DEV_FEATURES:
        return (uint32_t)OFFERED; /* DeviceFeaturesSel is 0 after reset */
    case FAKE_MMIO_QUEUE_NUM_MAX:
        return FAKE_VIRTIO_QUEUE_MAX;
    case FAKE_MMIO_QUEUE_READY:
        return 1;
    case FAKE_MMIO_INT_STATUS:
        return 2;
    case FAKE_MMIO_STATUS:
        return ACK | DRV | FEAT_OK | (live ? DRV_OK : 0);
    case FAKE_MMIO_SHM_LEN_LO:
    case FAKE_MMIO_SHM_LEN_HI:
    case FAKE_MMIO_SHM_BASE_LO:
    case FAKE_MMIO_SHM_BASE_HI:
        return 0xffffffff;
    case FAKE_MMIO_CONFIG_GEN:
        return fx.dev.dev.config_generation;
    default:
        return 0;
    }
}

static const unsigned sizes[] = {1, 2, 3, 4, 8};

static void sweep_reads(bool live)
{
    prepare(live);
    for (uint64_t off = 0; off < 0x200; off++) {
        for (size_t si = 0; si < ARRAY_SIZE(sizes); si++) {
            unsigned len = sizes[si];
            uint8_t *b = malloc(len); /* exact size: ASan catches overruns */
            memset(b, 0xaa, len);
            virtio_mmio_read(fx.t, off, b, len);
            uint8_t want[8] = {0};
            if (off < FAKE_MMIO_CONFIG && len == 4 && off % 4 == 0)
                le32_put(want, expected_reg(off, live));
            else if (off >= FAKE_MMIO_CONFIG && len != 3 && len != 8 &&
                     off - FAKE_MMIO_CONFIG + len <= FAKE_VIRTIO_CONFIG_SIZE)
                for (unsigned i = 0; i < len; i++)
                    want[i] = (uint8_t)(0x10 + off - FAKE_MMIO_CONFIG + i);
            cr_expect_eq(memcmp(b, want, len), 0, "read off 0x%03llx len %u",
                         (unsigned long long)off, len);
            free(b);
        }
    }
}

Test(virtio_mmio_regs, sweep_reads_configuring)
{
    sweep_reads(false);
}

Test(virtio_mmio_regs, sweep_reads_live)
{
    sweep_reads(true);
}

/* May a 32-bit write at `off` change state in the prepare(live) state? */
static bool may_change(uint64_t off, unsigned len, bool live)
{
    if (off >= FAKE_MMIO_CONFIG)
        return len != 3 && len != 8 && off - FAKE_MMIO_CONFIG + len <= FAKE_VIRTIO_CONFIG_SIZE;
    if (len != 4 || off % 4)
        return false;
    switch (off) {
    case FAKE_MMIO_DEV_FEATURES_SEL:
    case FAKE_MMIO_DRV_FEATURES_SEL:
    case FAKE_MMIO_QUEUE_SEL:
    case FAKE_MMIO_QUEUE_NOTIFY:
    case FAKE_MMIO_INT_ACK:
    case FAKE_MMIO_STATUS:
        return true;
    case FAKE_MMIO_QUEUE_READY: /* selected queue 1 is ready: only clearing it */
        return !live;
    default:
        /* DriverFeatures after FEATURES_OK, queue geometry of a ready queue or
         * after DRIVER_OK (CVE-2026-5747), read-only and unknown registers. */
        return false;
    }
}

static void sweep_writes(bool live)
{
    const uint32_t values[] = {0, 1, 0x8000, 0xa5a5a5a5, 0xffffffff};
    struct snap before, after;

    for (size_t vi = 0; vi < ARRAY_SIZE(values); vi++) {
        for (uint64_t off = 0; off < 0x200; off++) {
            for (size_t si = 0; si < ARRAY_SIZE(sizes); si++) {
                unsigned len = sizes[si];
                prepare(live);
                take(&before);
                uint8_t *b = malloc(len);
                for (unsigned i = 0; i < len; i++)
                    b[i] = (uint8_t)(values[vi] >> (8 * (i % 4)));
                virtio_mmio_write(fx.t, off, b, len);
                free(b);
                take(&after);
                if (!may_change(off, len, live))
                    cr_expect(same(&before, &after), "write 0x%x off 0x%03llx len %u changed state",
                              values[vi], (unsigned long long)off, len);
                /* Whatever happened, the device still answers sanely. */
                cr_expect_eq(rd(FAKE_MMIO_MAGIC), 0x74726976);
            }
        }
    }
}

Test(virtio_mmio_regs, sweep_writes_configuring)
{
    sweep_writes(false);
}

Test(virtio_mmio_regs, sweep_writes_live)
{
    sweep_writes(true);
}

Test(virtio_mmio_regs, cmdline)
{
    char buf[64];
    cr_assert_eq(virtio_mmio_cmdline(0xd0000000, 5, buf, sizeof(buf)), 0);
    cr_expect_str_eq(buf, "virtio_mmio.device=4K@0xd0000000:5");
    cr_assert_eq(virtio_mmio_cmdline(0x100000000ULL, 23, buf, sizeof(buf)), 0);
    cr_expect_str_eq(buf, "virtio_mmio.device=4K@0x100000000:23");
    cr_expect_eq(virtio_mmio_cmdline(0xd0000000, 5, buf, 10), -ENOSPC);
    cr_expect_eq(virtio_mmio_cmdline(0xd0000000, 0, buf, sizeof(buf)), -EINVAL);
    cr_expect_eq(virtio_mmio_cmdline(0xd0000800, 5, buf, sizeof(buf)), -EINVAL);
}

/* security.md D7: a million invalid accesses cost a bounded number of log lines. */
Test(virtio_mmio_regs, invalid_access_flood_is_rate_limited)
{
    FILE *log = tmpfile();
    cr_assert_not_null(log);
    int saved = dup(STDERR_FILENO);
    cr_assert(saved >= 0 && dup2(fileno(log), STDERR_FILENO) >= 0);
    log_threshold = LOG_WARN;
    uint64_t dropped = log_rl_dropped_total();

    const unsigned hits = 1000000;
    uint8_t b[8] = {0};
    for (unsigned i = 0; i < hits; i++) {
        switch (i % 5) { /* different refusal paths, one limiter */
        case 0:
            virtio_mmio_read(fx.t, FAKE_MMIO_STATUS, b, 2);
            break;
        case 1:
            wr(FAKE_MMIO_MAGIC, i);
            break;
        case 2:
            (void)rd(0x0f0);
            break;
        case 3:
            wr(FAKE_MMIO_STATUS, 0x20);
            break;
        default:
            wr(FAKE_MMIO_QUEUE_NUM, 16);
            break;
        }
    }

    log_threshold = LOG_ERROR;
    fflush(stderr);
    cr_assert(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    rewind(log);
    unsigned lines = 0, refusals = 0;
    char line[1024];
    while (fgets(line, sizeof(line), log)) {
        lines++;
        refusals += strstr(line, "virtio fake0: ") != NULL;
    }
    fclose(log);
    /* One burst of 10 per 5-second window, plus a "suppressed" line per new window. */
    cr_expect_leq(lines, 22, "%u log lines", lines);
    cr_expect_geq(refusals, 10);
    cr_expect_eq(log_rl_dropped_total() - dropped, hits - refusals, "every line is counted");
}
