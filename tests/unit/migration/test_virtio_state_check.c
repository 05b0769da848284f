/*
 * virtio_state_check() and virtio_state_check_set(): each semantic rule
 * refuses a state that breaks it, with its own reason, and the fixtures
 * (which model real devices) pass.
 */
#include "tests/unit/migration/test_virtio_state.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* One mutation of a valid state and the reason it must produce. */
enum mut {
    M_NOT_OFFERED,
    M_VHOST_PRIVATE,
    M_BACKEND_PRIVATE,
    M_NO_VERSION_1,
    M_DRIVER_OK_ONLY,
    M_DRIVER_NO_ACK,
    M_FEATURES_OK_NO_DRIVER,
    M_UNKNOWN_STATUS,
    M_SUSPEND,
    M_SIZE_NOT_POW2,
    M_SIZE_OVER_MAX,
    M_MAX_NOT_POW2,
    M_ENABLED_ZERO_SIZE,
    M_ENABLED_NULL_DESC,
    M_MISALIGNED_USED,
    M_RING_WRAPS,
    M_ENABLED_TWO,
    M_VECTOR,
    M_ENABLED_EARLY,
    M_PACKED_NO_FEATURE,
    M_SPLIT_WRAP,
    M_SIGNALLED,
    M_INUSE,
    M_DRAINED_BUSY,
    M_INFLIGHT_COUNT,
    M_HEAD_RANGE,
    M_HEAD_TWICE,
    M_ORDER,
    M_GUEST_AHEAD,
    M_GUEST_INUSE,
    M_GUEST_USED,
    M_INT_STATUS,
    M_FEATURES_SEL,
    M_QUEUE_SEL,
    M_SHM_SEL,
    M_DEVICE_ID,
    M_PCI,
    M_WINDOW,
    M_IRQ,
    M_COUNT
};

static const char *const reason[M_COUNT] = {
    [M_NOT_OFFERED] = "acked features not offered (word 1, bits 0x1)",
    [M_VHOST_PRIVATE] = "guest acked vhost-private features",
    [M_BACKEND_PRIVATE] = "BACKEND_FEATURES carries vhost-private bits",
    [M_NO_VERSION_1] = "FEATURES_OK without VERSION_1 acked",
    [M_DRIVER_OK_ONLY] = "DRIVER_OK without FEATURES_OK",
    [M_DRIVER_NO_ACK] = "DRIVER without ACKNOWLEDGE",
    [M_FEATURES_OK_NO_DRIVER] = "FEATURES_OK without DRIVER",
    [M_UNKNOWN_STATUS] = "unknown status bits 0x20",
    [M_SUSPEND] = "SUSPEND without FEATURES_OK and VIRTIO_F_SUSPEND",
    [M_SIZE_NOT_POW2] = "size 96 is not a power of two",
    [M_SIZE_OVER_MAX] = "size 512 is not a power of two <= 256",
    [M_MAX_NOT_POW2] = "QueueSizeMax 300 is not a power of two",
    [M_ENABLED_ZERO_SIZE] = "enabled with size 0",
    [M_ENABLED_NULL_DESC] = "descriptor ring at 0x0 is null",
    [M_MISALIGNED_USED] = "device ring at 0x102002",
    [M_RING_WRAPS] = "descriptor ring at 0xfffffffffffff000",
    [M_ENABLED_TWO] = "enabled = 2",
    [M_VECTOR] = "vector 0x1 on mmio",
    [M_ENABLED_EARLY] = "enabled before FEATURES_OK",
    [M_PACKED_NO_FEATURE] = "packed ring without RING_PACKED",
    [M_SPLIT_WRAP] = "bad wrap counters",
    [M_SIGNALLED] = "signalled_used 0x10000",
    [M_INUSE] = "last_avail 400 / used 100 impossible for size 256",
    [M_DRAINED_BUSY] = "DRAINED with buffers in flight",
    [M_INFLIGHT_COUNT] = "2 in-flight entries but 3 buffers in use",
    [M_HEAD_RANGE] = "in-flight head 128 >= size 128",
    [M_HEAD_TWICE] = "in-flight head 5 twice",
    [M_ORDER] = "in-flight list not in pop order",
    [M_GUEST_AHEAD] = "guest avail idx 262 is 257 ahead of last_avail 5",
    [M_GUEST_INUSE] = "buffers in use exceed size 256",
    [M_GUEST_USED] = "guest used idx 4 differs from saved 5",
    [M_INT_STATUS] = "InterruptStatus 0x4 has bits beyond 0-1",
    [M_FEATURES_SEL] = "features selector 32/0 out of range",
    [M_QUEUE_SEL] = "queue/shm selector 65536/0 out of range",
    [M_SHM_SEL] = "queue/shm selector 0/256 out of range",
    [M_DEVICE_ID] = "device id 0 (empty slot)",
    [M_PCI] = "transport 2 is not supported (mmio only)",
    [M_WINDOW] = "MMIO window 0xd0000000+0x100 cannot hold 60 config bytes",
    [M_IRQ] = "irq 0",
};

/* Mutate the blk0 fixture (index 0 of vst_fill_full) or the small rng state. */
static void mutate(enum mut m, struct virtio_state *blk, struct virtio_state *rng)
{
    struct virtio_state_vq *q0 = &blk->vq[0], *r0 = &rng->vq[0];

    switch (m) {
    case M_NOT_OFFERED:
        blk->drv_feat.w[1] |= 1;
        break;
    case M_VHOST_PRIVATE:
        blk->drv_feat.w[0] |= VIRTIO_BIT(VIRTIO_STATE_VHOST_F_PROTOCOL);
        blk->dev_feat.w[0] |= VIRTIO_BIT(VIRTIO_STATE_VHOST_F_PROTOCOL);
        break;
    case M_BACKEND_PRIVATE:
        blk->backend_feat.w[0] |= VIRTIO_BIT(VIRTIO_STATE_VHOST_F_LOG_ALL);
        break;
    case M_NO_VERSION_1:
        blk->drv_feat.w[0] &= ~VIRTIO_BIT(VIRTIO_F_VERSION_1);
        break;
    case M_DRIVER_OK_ONLY:
        blk->status &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
        break;
    case M_DRIVER_NO_ACK:
        blk->status &= (uint8_t)~VIRTIO_STATUS_ACKNOWLEDGE;
        break;
    case M_FEATURES_OK_NO_DRIVER:
        blk->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_FEATURES_OK;
        break;
    case M_UNKNOWN_STATUS:
        blk->status |= 0x20;
        break;
    case M_SUSPEND:
        blk->status |= VIRTIO_STATE_STATUS_SUSPEND;
        break;
    case M_SIZE_NOT_POW2:
        q0->size = 96;
        break;
    case M_SIZE_OVER_MAX:
        q0->size = 512;
        break;
    case M_MAX_NOT_POW2:
        q0->max_size_src = 300;
        break;
    case M_ENABLED_ZERO_SIZE:
        blk->vq[1].size = 0;
        break;
    case M_ENABLED_NULL_DESC:
        r0->desc_addr = 0;
        break;
    case M_MISALIGNED_USED:
        r0->device_addr += 2;
        break;
    case M_RING_WRAPS:
        r0->desc_addr = 0xfffffffffffff000ULL;
        break;
    case M_ENABLED_TWO:
        q0->enabled = 2;
        break;
    case M_VECTOR:
        q0->vector = 1;
        break;
    case M_ENABLED_EARLY:
        rng->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
        break;
    case M_PACKED_NO_FEATURE:
        r0->ring = VIRTIO_STATE_RING_PACKED;
        break;
    case M_SPLIT_WRAP:
        r0->used_wrap = 1;
        break;
    case M_SIGNALLED:
        r0->signalled_used = 0x10000;
        break;
    case M_INUSE:
        r0->flags = 0;
        r0->last_avail_idx = 400;
        r0->used_idx = 100;
        break;
    case M_DRAINED_BUSY:
        r0->last_avail_idx = 6;
        break;
    case M_INFLIGHT_COUNT:
        q0->n_inflight = 2;
        break;
    case M_HEAD_RANGE:
        q0->inflight[1].head = 128;
        break;
    case M_HEAD_TWICE:
        q0->inflight[2].head = 5;
        break;
    case M_ORDER:
        q0->inflight[2].order = 11;
        break;
    case M_GUEST_AHEAD:
        r0->guest_idx_valid = true;
        r0->guest_avail_idx = 262;
        r0->guest_used_idx = 5;
        break;
    case M_GUEST_INUSE:
        r0->guest_idx_valid = true;
        r0->guest_avail_idx = 5;
        r0->guest_used_idx = 5 - 257;
        break;
    case M_GUEST_USED:
        r0->guest_idx_valid = true;
        r0->guest_avail_idx = 6;
        r0->guest_used_idx = 4;
        break;
    case M_INT_STATUS:
        blk->mmio.interrupt_status = 4;
        break;
    case M_FEATURES_SEL:
        rng->mmio.dev_features_sel = 32;
        break;
    case M_QUEUE_SEL:
        rng->mmio.queue_sel = 0x10000;
        break;
    case M_SHM_SEL:
        rng->mmio.shm_sel = 256;
        break;
    case M_DEVICE_ID:
        rng->device_id = 0;
        break;
    case M_PCI:
        blk->transport = VIRTIO_STATE_TRANSPORT_PCI;
        break;
    case M_WINDOW:
        blk->mmio_len = 0x100;
        break;
    case M_IRQ:
        rng->irq = 0;
        break;
    case M_COUNT:
        break;
    }
}

Test(virtio_state_check, fixtures_pass)
{
    struct virtio_state *s = calloc(3, sizeof(*s));
    char why[200] = "";

    vst_fill_full(s);
    vst_fill_small(&s[2]);
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(virtio_state_check(&s[i], why, sizeof(why)), 0, "%u: %s", i, why);
    cr_assert_eq(virtio_state_check_set(s, 2, why, sizeof(why)), 0, "%s", why);
    /* Consistent guest indices pass too: 3 buffers were made available beyond last_avail. */
    s[2].vq[0].guest_idx_valid = true;
    s[2].vq[0].guest_avail_idx = 8;
    s[2].vq[0].guest_used_idx = 5;
    cr_assert_eq(virtio_state_check(&s[2], why, sizeof(why)), 0, "%s", why);
    vst_release(s, 3);
    free(s);
}

Test(virtio_state_check, each_rule_has_its_reason)
{
    struct virtio_state *s = calloc(3, sizeof(*s));
    char why[200];

    for (int m = 0; m < M_COUNT; m++) {
        vst_fill_full(s);
        vst_fill_small(&s[2]);
        mutate((enum mut)m, &s[0], &s[2]);
        int r0 = virtio_state_check(&s[0], why, sizeof(why));
        int r2 = r0 ? 0 : virtio_state_check(&s[2], why, sizeof(why));
        cr_assert(r0 == -EINVAL || r2 == -EINVAL, "mutation %d passed", m);
        cr_assert(strstr(why, reason[m]), "mutation %d: \"%s\" lacks \"%s\"", m, why, reason[m]);
        vst_release(s, 3);
    }
    free(s);
}

Test(virtio_state_check, limits)
{
    struct virtio_state s;
    char why[200];

    vst_fill_small(&s);
    s.config_len = VIRTIO_STATE_MAX_CONFIG + 1;
    cr_assert_eq(virtio_state_check(&s, why, sizeof(why)), -E2BIG);
    cr_assert(strstr(why, "config space of 4097 bytes"), "%s", why);
    vst_fill_small(&s);
    s.drv_feat.n = 17;
    cr_assert_eq(virtio_state_check_limits(&s, why, sizeof(why)), -E2BIG);
    cr_assert(strstr(why, "DRV_FEATURES: 17 feature words"), "%s", why);
    vst_fill_small(&s);
    s.id[0] = '\0';
    cr_assert_eq(virtio_state_check_limits(&s, why, sizeof(why)), -EINVAL);
    cr_assert(strstr(why, "name must be"), "%s", why);
    vst_fill_small(&s);
    s.dev_rec_type = VIRTIO_STATE_T_NET_STATE;
    cr_assert_eq(virtio_state_check_limits(&s, why, sizeof(why)), -EINVAL);
    cr_assert(strstr(why, "NET_STATE in a device of type 4"), "%s", why);
    vst_fill_small(&s);
    s.vq[0].n_inflight = 1;
    cr_assert_eq(virtio_state_check_limits(&s, why, sizeof(why)), -EINVAL);
    cr_assert(strstr(why, "in-flight entries without INFLIGHT_VALID"), "%s", why);
    vst_fill_small(&s);
    s.has_opaque = true;
    strcpy(s.opaque_kind, "vu-fs");
    s.opaque_len = VIRTIO_STATE_MAX_OPAQUE + 1;
    cr_assert_eq(virtio_state_check_limits(&s, why, sizeof(why)), -E2BIG);
    cr_assert(strstr(why, "BACKEND_OPAQUE of"), "%s", why);
}

Test(virtio_state_check, set_rules)
{
    struct virtio_state *s = calloc(2, sizeof(*s));
    char why[200];

    vst_fill_full(s);
    s[1].instance_id = s[0].instance_id;
    cr_assert_eq(virtio_state_check_set(s, 2, why, sizeof(why)), -EINVAL);
    cr_assert(strstr(why, "share instance id 1"), "%s", why);
    s[1].instance_id = 2;
    strcpy(s[1].id, "blk0");
    cr_assert_eq(virtio_state_check_set(s, 2, why, sizeof(why)), -EINVAL);
    cr_assert(strstr(why, "two devices named blk0"), "%s", why);
    strcpy(s[1].id, "net0");
    s[1].mmio_base = s[0].mmio_base + 0xfff;
    cr_assert_eq(virtio_state_check_set(s, 2, why, sizeof(why)), -EINVAL);
    cr_assert(strstr(why, "overlap"), "%s", why);
    s[1].mmio_base = UINT64_MAX - 10;
    cr_assert_eq(virtio_state_check_set(s, 2, why, sizeof(why)), -EINVAL);
    cr_assert(strstr(why, "invalid MMIO window"), "%s", why);
    vst_release(s, 2);
    free(s);
}
