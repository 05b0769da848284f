/*
 * virtio_snapshot with virtio-blk behind the real mmio transport: a disk
 * that did I/O moves to a fresh device on the same image and guest memory
 * and carries on (reads see the writes, no request lost or repeated, the
 * used ring continues); the state saved again is byte-identical; saving
 * refuses while requests are in flight until the device is quiesced; a
 * different disk (capacity, read-only) is refused and the target left as
 * it was.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devices/virtio/blk.h"
#include "tests/lib/blk_fixture.h"
#include "tests/unit/devices/virtio/test_snapshot.h"

static struct blk_fx fx; /* guest RAM, the ring's driver side, the image */
static struct snap_side a, b;
static char other[160]; /* a second image, when a test needs one */

static void setup(void)
{
    blk_fx_setup(&fx, NULL);
    snap_side_init(&a);
    snap_side_init(&b);
    other[0] = '\0';
}

static void teardown(void)
{
    snap_side_fini(&a);
    snap_side_fini(&b);
    blk_fx_fini(&fx);
    if (other[0])
        unlink(other);
}

TestSuite(virtio_snapshot_blk, .init = setup, .fini = teardown, .timeout = 30);

static struct virtio_dev *new_blk(struct snap_side *s, const char *path, bool ro)
{
    struct virtio_blk_config cfg = {.id = "blk0", .path = path, .read_only = ro};
    struct errbuf err = {0};
    struct virtio_dev *d;
    cr_assert_eq(virtio_blk_create(&cfg, &fx.vq.mem, &s->host.loop, &d, &err), 0, "%s", err.msg);
    return d;
}

/* Bring the disk up as Linux does: every offered feature, one ring of 256. */
static void driver_ok(struct snap_side *s)
{
    struct fake_ring ring;
    fake_ring_init(&ring, &fx.vq.mem, VQB_DESC_GPA, VQB_AVAIL_GPA, VQB_USED_GPA, 256);
    snap_bring_up(s, &ring, 1, s->d->host_features);
}

/* Run side s's event loop until used.idx reaches n (10 s at most). */
static void wait_used(struct snap_side *s, uint16_t n)
{
    for (int i = 0; i < 10000 && vqb_used_idx(&fx.vq) != n; i++) {
        if (!fake_host_poll(&s->host)) {
            struct timespec ms = {.tv_nsec = 1000000};
            nanosleep(&ms, NULL);
        }
    }
    cr_assert_eq(vqb_used_idx(&fx.vq), n);
}

static struct virtio_blk_stats stats(struct snap_side *s)
{
    struct virtio_blk_stats st;
    virtio_blk_get_stats(s->d, &st);
    return st;
}

Test(virtio_snapshot_blk, moves_and_continues)
{
    struct blk_fx_req w[8], r[8], id;
    struct vstate_out x;
    snap_side_attach(&a, new_blk(&a, fx.path, false));
    driver_ok(&a);
    for (unsigned i = 0; i < 8; i++)
        w[i] = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, i * 8, 4096, (uint8_t)(0x40 + i));
    id = blk_fx_add(&fx, VIRTIO_BLK_T_GET_ID, 0, 20, 0);
    fake_host_kick(&a.host, 0);
    wait_used(&a, 9);

    virtio_blk_quiesce(a.d);
    snap_side_attach(&b, new_blk(&b, fx.path, false));
    snap_migrate(&a, &b, &x);
    snap_assert_stream(&b, &x);

    /* Read back through the new device, and write once more. */
    for (unsigned i = 0; i < 8; i++)
        r[i] = blk_fx_add(&fx, VIRTIO_BLK_T_IN, i * 8, 4096, 0);
    struct blk_fx_req w2 = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, 100, 512, 0x77);
    fake_host_kick(&b.host, 0);
    wait_used(&b, 18);
    snap_settle(&a);
    for (unsigned i = 0; i < 8; i++) {
        uint32_t len;
        cr_assert_eq(blk_fx_status(&fx, &w[i]), VIRTIO_BLK_S_OK);
        cr_assert_eq(blk_fx_status(&fx, &r[i]), VIRTIO_BLK_S_OK);
        const uint8_t *p = blk_fx_host(&fx, r[i].data, 4096);
        for (unsigned k = 0; k < 4096; k++)
            cr_assert_eq(p[k], 0x40 + i, "read %u byte %u", i, k);
        cr_assert(blk_fx_used_len(&fx, r[i].head, &len) && len == 4097);
    }
    cr_assert_eq(blk_fx_status(&fx, &id), VIRTIO_BLK_S_OK);
    cr_assert_eq(blk_fx_status(&fx, &w2), VIRTIO_BLK_S_OK);
    cr_assert(blk_fx_img_all(&fx, 100 * 512, 512, 0x77));
    struct virtio_blk_stats sa = stats(&a), sb = stats(&b);
    cr_assert_eq(sa.writes, 8);
    cr_assert_eq(sa.reads, 0, "the source served nothing after the move");
    cr_assert_eq(sb.reads, 8);
    cr_assert_eq(sb.writes, 1, "each new request served once");
    vstate_out_free(&x);
}

Test(virtio_snapshot_blk, refuses_while_in_flight_until_quiesced)
{
    struct virtio_state st;
    char why[256] = "";
    snap_side_attach(&a, new_blk(&a, fx.path, false));
    driver_ok(&a);
    for (unsigned i = 0; i < 64; i++)
        blk_fx_add(&fx, VIRTIO_BLK_T_IN, i * 64, 32 * 1024, 0);
    fake_host_kick(&a.host, 0); /* submitted; completions wait for the loop */
    cr_assert_gt(stats(&a).inflight_peak, 0);

    cr_assert_eq(virtio_snapshot_save(a.d, a.t, SNAP_ID, &st, why, sizeof(why)), -EBUSY);
    cr_assert(strstr(why, "quiesce") && !strchr(why, '\n'), "%s", why);
    cr_assert_null(st.dev_blob);

    virtio_blk_quiesce(a.d);
    cr_assert_eq(vqb_used_idx(&fx.vq), 64, "quiesce completed everything to the guest");
    snap_save_state(&a, &st);
    cr_assert(st.vq[0].flags & VIRTIO_STATE_VQ_DRAINED);
    cr_assert_eq(st.vq[0].last_avail_idx, 64);
    cr_assert_eq(st.dev_rec_type, VIRTIO_STATE_T_BLK_DEV_STATE);
    cr_assert_gt(st.dev_blob_len, 0, "the disk's own section travels (verify-only)");
    virtio_state_free(&st);
}

/* A state of the disk at fx.path as a writable, running device. */
static void source_state(struct virtio_state *st, bool ro)
{
    snap_side_attach(&a, new_blk(&a, fx.path, ro));
    driver_ok(&a);
    blk_fx_add(&fx, VIRTIO_BLK_T_IN, 0, 512, 0);
    fake_host_kick(&a.host, 0);
    wait_used(&a, 1);
    snap_save_state(&a, st);
}

/* The target is up too, so that "unchanged" means something. */
static void target(const char *path, bool ro)
{
    snap_side_attach(&b, new_blk(&b, path, ro));
    driver_ok(&b);
}

Test(virtio_snapshot_blk, refuses_another_capacity)
{
    struct virtio_state st;
    snprintf(other, sizeof(other), "%s-big", fx.path);
    FILE *f = fopen(other, "w");
    cr_assert_not_null(f);
    cr_assert_eq(ftruncate(fileno(f), 8 * MiB), 0);
    fclose(f);
    source_state(&st, false);
    target(other, false);
    snap_expect_refusal(&b, &st, -EINVAL, "read-only config byte");
    virtio_state_free(&st);
}

Test(virtio_snapshot_blk, refuses_read_only_onto_writable)
{
    struct virtio_state st;
    source_state(&st, true);
    target(fx.path, false);
    snap_expect_refusal(&b, &st, -EINVAL, "acked features 0x20 that this device does not offer");
    virtio_state_free(&st);
}

Test(virtio_snapshot_blk, refuses_writable_onto_read_only)
{
    struct virtio_state st;
    source_state(&st, false);
    target(fx.path, true);
    /* Missing DISCARD/WRITE_ZEROES, or (a backend without them) the added RO bit. */
    snap_expect_refusal(&b, &st, -EINVAL, "features 0x");
    virtio_state_free(&st);
}

/* Even when the writable source offered nothing the read-only target lacks. */
Test(virtio_snapshot_blk, refuses_added_read_only_flag)
{
    struct virtio_state st;
    target(fx.path, true);
    snap_save_state(&b, &st);
    st.dev_feat.w[0] &= ~VIRTIO_BIT(VIRTIO_BLK_F_RO);
    st.drv_feat.w[0] &= ~VIRTIO_BIT(VIRTIO_BLK_F_RO);
    snap_expect_refusal(&b, &st, -EINVAL, "restricting features 0x20");
    virtio_state_free(&st);
}

/* Indices restored just below 65536: requests across the wrap are each served once. */
Test(virtio_snapshot_blk, restored_index_wraps)
{
    struct virtio_state st;
    struct blk_fx_req w[12];
    char why[256] = "";
    source_state(&st, false);
    st.vq[0].last_avail_idx = st.vq[0].used_idx = 65530;
    st.vq[0].signalled_used = VIRTIO_STATE_SIGNALLED_UNKNOWN;
    vqb_set_avail_idx(&fx.vq, 65530);
    snap_poke16(&fx.vq.mem, VQB_USED_GPA + VQB_USED_IDX, 65530);
    snap_side_attach(&b, new_blk(&b, fx.path, false));
    cr_assert_eq(virtio_snapshot_load(b.d, b.t, &st, why, sizeof(why)), 0, "%s", why);
    virtio_state_free(&st);

    for (unsigned i = 0; i < 12; i++)
        w[i] = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, 200 + i, 512, (uint8_t)(0x90 + i));
    fake_host_kick(&b.host, 0);
    wait_used(&b, 6); /* 65530 + 12 */
    for (unsigned i = 0; i < 12; i++) {
        cr_assert_eq(blk_fx_status(&fx, &w[i]), VIRTIO_BLK_S_OK);
        cr_assert(blk_fx_img_all(&fx, (200 + i) * 512, 512, (uint8_t)(0x90 + i)));
    }
    cr_assert_eq(stats(&b).writes, 12, "each request across the wrap served once");
}

Test(virtio_snapshot_blk, another_disk_serial_is_not_accepted)
{
    /* The GET_ID string travels in BLK_DEV_STATE: a destination disk with
     * another serial must not silently take over the guest's disk. */
    struct virtio_state st;
    source_state(&st, false);
    struct virtio_blk_config cfg = {.id = "disk9", .path = fx.path};
    struct errbuf err = {0};
    struct virtio_dev *d;
    cr_assert_eq(virtio_blk_create(&cfg, &fx.vq.mem, &b.host.loop, &d, &err), 0, "%s", err.msg);
    snap_side_attach(&b, d); /* a fresh destination: not brought up, rings untouched */
    char why[256] = "";
    int r = virtio_snapshot_load(b.d, b.t, &st, why, sizeof(why));
    cr_assert_lt(r, 0, "a different serial was accepted");
    cr_assert(strstr(why, "BLK_DEV_STATE"), "%s", why);
    cr_assert(b.d->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET || r != -EIO,
              "a failed apply leaves the device needing a reset");
    virtio_state_free(&st);
}
