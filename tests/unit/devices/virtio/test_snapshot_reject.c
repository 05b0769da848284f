/*
 * virtio_snapshot refusals.  Each refused load must leave the target
 * exactly as it was (same saved state, no interrupt) and say why in one
 * line: another device type, more queues, features the target does not
 * offer, a queue larger than its maximum, another register window, a
 * damaged stream, a guest avail index too far ahead in guest memory, a
 * missing device record, an unmigratable device.  Saving refuses an
 * unmigratable device and a guest state the format cannot carry.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "devices/virtio/rng.h"
#include "tests/unit/devices/virtio/test_snapshot.h"

#define RING(part) (1 * MiB + (uint64_t)(part)*0x10000)
#define BUF(i)     (4 * MiB + (uint64_t)(i)*0x1000)
#define QSIZE      64
#define FEATURES   (VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX))

static struct gmem mem;
static struct snap_side a, b, c;
static struct fake_ring ring;
static struct virtio_state st; /* a's state, saved after some I/O */

static void setup(void)
{
    struct gmem_range r = {0, 8 * MiB};
    struct errbuf err = {0};
    cr_assert_eq(gmem_create(&mem, &r, 1, false, &err), 0, "%s", err.msg);
    snap_side_init(&a);
    snap_side_init(&b);
    snap_side_init(&c);
    snap_side_attach(&a, snap_new_rng(&a, &mem));
    snap_side_attach(&b, snap_new_rng(&b, &mem));
    fake_ring_init(&ring, &mem, RING(0), RING(1), RING(2), QSIZE);
    snap_bring_up(&a, &ring, 1, FEATURES);
    for (unsigned i = 0; i < 3; i++)
        fake_ring_add(&ring, BUF(i), 128, true);
    fake_host_kick(&a.host, 0);
    cr_assert_eq(fake_ring_used_idx(&ring), 3);
    snap_save_state(&a, &st);
}

static void teardown(void)
{
    virtio_state_free(&st);
    snap_side_fini(&a);
    snap_side_fini(&b);
    snap_side_fini(&c);
    gmem_destroy(&mem);
}

TestSuite(virtio_snapshot_reject, .init = setup, .fini = teardown, .timeout = 30);

Test(virtio_snapshot_reject, accepts_the_unmodified_state)
{
    char why[256] = "";
    cr_assert_eq(virtio_snapshot_load(b.d, b.t, &st, why, sizeof(why)), 0, "%s", why);
}

Test(virtio_snapshot_reject, another_device_type)
{
    struct virtio_state cs;
    snap_side_attach(&c, snap_new_console(&c, &mem));
    snap_save_state(&c, &cs);
    snap_expect_refusal(&b, &cs, -EINVAL, "state is of a console device, this is a rng device");
    virtio_state_free(&cs);
}

Test(virtio_snapshot_reject, more_queues)
{
    st.num_queues = 2;
    memset(&st.vq[1], 0, sizeof(st.vq[1]));
    st.vq[1].vector = VIRTIO_STATE_NO_VECTOR;
    snap_expect_refusal(&b, &st, -EINVAL, "the state has 2 queues, this device 1");
}

Test(virtio_snapshot_reject, acked_features_not_offered)
{
    st.dev_feat.w[0] |= VIRTIO_BIT(0);
    st.drv_feat.w[0] |= VIRTIO_BIT(0);
    snap_expect_refusal(&b, &st, -EINVAL, "acked features 0x1 that this device does not offer");
}

Test(virtio_snapshot_reject, offered_features_missing_here)
{
    st.dev_feat.w[0] |= VIRTIO_BIT(1);
    snap_expect_refusal(&b, &st, -EINVAL, "does not offer features 0x2 that the source offered");
}

Test(virtio_snapshot_reject, features_above_bit_63)
{
    st.dev_feat.n = st.drv_feat.n = 2;
    st.dev_feat.w[1] = st.drv_feat.w[1] = 1; /* bit 64 */
    snap_expect_refusal(&b, &st, -EINVAL, "above bit 63");
}

Test(virtio_snapshot_reject, queue_larger_than_maximum)
{
    st.vq[0].size = 512;
    st.vq[0].max_size_src = 512;
    snap_expect_refusal(&b, &st, -EINVAL, "size 512 exceeds this device's maximum 256");
}

Test(virtio_snapshot_reject, another_window)
{
    snap_side_attach_at(&c, snap_new_rng(&c, &mem), SNAP_BASE + 0x1000, SNAP_GSI + 1);
    snap_expect_refusal(&c, &st, -EINVAL, "window 0xd0000000+0x1000 on GSI 5");
}

Test(virtio_snapshot_reject, avail_index_too_far_ahead)
{
    /* The guest's avail.idx claims 65 buffers past last_avail on a ring of 64. */
    snap_poke16(&mem, RING(1) + 2, (uint16_t)(3 + QSIZE + 1));
    snap_expect_refusal(&b, &st, -EINVAL, "guest avail idx 68 is 65 ahead");
}

Test(virtio_snapshot_reject, guest_used_index_differs)
{
    snap_poke16(&mem, RING(2) + 2, 2);
    snap_expect_refusal(&b, &st, -EINVAL, "guest used idx 2 differs from saved 3");
}

Test(virtio_snapshot_reject, rings_outside_guest_ram)
{
    st.vq[0].desc_addr = 64 * MiB;
    snap_expect_refusal(&b, &st, -EFAULT, "not in guest RAM");
}

Test(virtio_snapshot_reject, invalid_state)
{
    st.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK;
    snap_expect_refusal(&b, &st, -EINVAL, "DRIVER_OK without FEATURES_OK");
}

Test(virtio_snapshot_reject, missing_device_record)
{
    free(st.dev_blob);
    st.dev_blob = NULL;
    st.dev_blob_len = 0;
    st.dev_rec_type = 0;
    snap_expect_refusal(&b, &st, -EOPNOTSUPP, "no RNG_STATE record");
}

Test(virtio_snapshot_reject, damaged_stream)
{
    struct vstate_out o;
    struct virtio_state d[1];
    struct snap_print p;
    char why[256];
    unsigned n;
    snap_print_take(&b, &p);
    vstate_out_init(&o);
    cr_assert_eq(virtio_state_encode(&st, &o), 0);

    o.buf[o.len / 2] ^= 0x40;
    cr_assert_eq(virtio_state_decode(o.buf, o.len, d, 1, &n, why, sizeof(why)), -EBADMSG);
    cr_assert(strstr(why, "CRC"), "%s", why);
    o.buf[o.len / 2] ^= 0x40;
    cr_assert_eq(virtio_state_decode(o.buf, o.len - 8, d, 1, &n, why, sizeof(why)), -EBADMSG);
    cr_assert_eq(n, 0);
    snap_print_check(&b, &p); /* nothing reached the device */
    vstate_out_free(&o);
}

static struct virtio_dev_ops pinned_ops;

/* d's ops, but unmigratable (a device holding state it cannot export). */
static const struct virtio_dev_ops *pin(struct virtio_dev *d)
{
    const struct virtio_dev_ops *old = d->ops;
    pinned_ops = *old;
    pinned_ops.unmigratable = "host device state cannot be exported";
    d->ops = &pinned_ops;
    return old;
}

Test(virtio_snapshot_reject, unmigratable_source)
{
    struct virtio_state s2;
    char why[256] = "";
    const struct virtio_dev_ops *old = pin(a.d);
    cr_assert_eq(virtio_snapshot_save(a.d, a.t, SNAP_ID, &s2, why, sizeof(why)), -EOPNOTSUPP);
    cr_assert(strstr(why, "host device state cannot be exported"), "%s", why);
    cr_assert_null(s2.dev_blob);
    a.d->ops = old;
}

Test(virtio_snapshot_reject, unmigratable_target)
{
    struct snap_print p;
    char why[256] = "";
    snap_print_take(&b, &p);
    const struct virtio_dev_ops *old = pin(b.d);
    cr_assert_eq(virtio_snapshot_load(b.d, b.t, &st, why, sizeof(why)), -EOPNOTSUPP);
    cr_assert(strstr(why, "cannot take a migrated state: host device state"), "%s", why);
    b.d->ops = old;
    snap_print_check(&b, &p);
}

Test(virtio_snapshot_reject, wrong_transport)
{
    char why[256] = "";
    cr_assert_eq(virtio_snapshot_load(b.d, a.t, &st, why, sizeof(why)), -EINVAL);
    cr_assert(strstr(why, "not the device's transport"), "%s", why);
}

/* A guest can leave a ready queue without a size before DRIVER_OK: the format cannot carry it. */
Test(virtio_snapshot_reject, save_refuses_unrestorable_guest_state)
{
    struct virtio_state s2;
    char why[256] = "";
    uint32_t status = fake_mmio_negotiate(b.t, FEATURES);
    cr_assert(status & VIRTIO_STATUS_FEATURES_OK);
    fake_mmio_wr(b.t, FAKE_MMIO_QUEUE_SEL, 0);
    fake_mmio_wr(b.t, FAKE_MMIO_QUEUE_READY, 1);
    cr_assert_eq(virtio_snapshot_save(b.d, b.t, SNAP_ID, &s2, why, sizeof(why)), -EINVAL);
    cr_assert(strstr(why, "cannot be restored") && strstr(why, "size 0"), "%s", why);
}
