/*
 * virtio_snapshot with virtio-rng behind the real mmio transport: a device
 * brought up through the registers moves to a fresh device on a fresh
 * transport over the same guest memory and goes on where it stopped (no
 * request lost or served twice, the used ring continues at the right
 * index, also across the 16-bit wrap from a restored index); the state
 * saved again equals the one loaded; in-flight lists are replayed only in
 * order, an unaccounted queue rewinds, and a device record the device
 * refuses leaves it needing a reset.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
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
}

static void teardown(void)
{
    snap_side_fini(&a);
    snap_side_fini(&b);
    snap_side_fini(&c);
    gmem_destroy(&mem);
}

TestSuite(virtio_snapshot_rng, .init = setup, .fini = teardown, .timeout = 30);

/* The guest posts n zeroed 256-byte buffers (i = first..first+n-1). */
static void post(unsigned first, unsigned n)
{
    for (unsigned i = first; i < first + n; i++) {
        cr_assert_eq(gmem_zero(&mem, BUF(i % 256), 256), 0);
        fake_ring_add(&ring, BUF(i % 256), 256, true);
    }
}

/* used.ring[slot] as the device wrote it. */
static void used_elem(uint16_t slot, uint32_t *id, uint32_t *len)
{
    uint8_t e[8];
    cr_assert_eq(gmem_read(&mem, RING(2) + 4 + 8ULL * (slot % QSIZE), e, 8), 0);
    *id = le32_get(e);
    *len = le32_get(e + 4);
}

static uint64_t requests(struct snap_side *s)
{
    struct virtio_rng_stats st;
    virtio_rng_get_stats(s->d, &st);
    return st.requests;
}

Test(virtio_snapshot_rng, moves_and_continues)
{
    struct vstate_out x;
    snap_bring_up(&a, &ring, 1, FEATURES);
    post(0, 5);
    fake_host_kick(&a.host, 0);
    cr_assert_eq(fake_ring_used_idx(&ring), 5);

    uint64_t irqs = fake_host_irqs(&b.host);
    snap_migrate(&a, &b, &x);
    cr_assert_gt(fake_host_irqs(&b.host), irqs, "one used-buffer interrupt after the restore");
    cr_assert(fake_mmio_rd(b.t, FAKE_MMIO_INT_STATUS) & 1);
    cr_assert_eq(fake_mmio_rd(b.t, FAKE_MMIO_STATUS), fake_mmio_rd(a.t, FAKE_MMIO_STATUS));
    snap_assert_stream(&b, &x); /* save(load(x)) == x */

    /* The guest goes on with the same rings; only the new device serves them. */
    post(5, 3);
    fake_host_kick(&b.host, 0);
    snap_settle(&b);
    snap_settle(&a);
    cr_assert_eq(fake_ring_used_idx(&ring), 8);
    for (uint16_t i = 5; i < 8; i++) {
        uint32_t id, len;
        used_elem(i, &id, &len);
        cr_assert_eq(id, i % QSIZE, "used slot %u holds head %u", i, id);
        cr_assert_eq(len, 256);
    }
    cr_assert_eq(requests(&a), 5, "the source served nothing after the move");
    cr_assert_eq(requests(&b), 3, "each new request served once");
    vstate_out_free(&x);
}

/* Indices restored just below 65536 wrap on the new device, and move again. */
Test(virtio_snapshot_rng, restored_index_wraps)
{
    struct virtio_state st;
    struct vstate_out x;
    char why[256] = "";
    snap_bring_up(&a, &ring, 1, FEATURES);
    post(0, 2);
    fake_host_kick(&a.host, 0);
    snap_save_state(&a, &st);

    /* A guest that has already been through 65533 requests. */
    st.vq[0].last_avail_idx = st.vq[0].used_idx = 65533;
    st.vq[0].signalled_used = 65533;
    fake_ring_set_avail_idx(&ring, 65533);
    snap_poke16(&mem, RING(2) + 2, 65533);
    cr_assert_eq(virtio_snapshot_load(b.d, b.t, &st, why, sizeof(why)), 0, "%s", why);
    virtio_state_free(&st);

    post(0, 6);
    fake_host_kick(&b.host, 0);
    cr_assert_eq(fake_ring_used_idx(&ring), 3, "used.idx wrapped from 65533 to 3");
    for (uint16_t i = 65533, k = 0; k < 6; i++, k++) {
        uint32_t id, len;
        used_elem(i, &id, &len);
        cr_assert_eq(id, i % QSIZE);
        cr_assert_eq(len, 256);
    }
    cr_assert_eq(requests(&b), 6);

    /* And on to a third device, past the wrap. */
    snap_side_attach(&c, snap_new_rng(&c, &mem));
    snap_migrate(&b, &c, &x);
    snap_decode(&x, &st);
    cr_assert_eq(st.vq[0].last_avail_idx, 3);
    cr_assert_eq(st.vq[0].used_idx, 3);
    cr_assert(st.vq[0].flags & VIRTIO_STATE_VQ_DRAINED);
    virtio_state_free(&st);
    post(6, 1);
    fake_host_kick(&c.host, 0);
    cr_assert_eq(fake_ring_used_idx(&ring), 4);
    vstate_out_free(&x);
}

/* A device that is still being set up (no DRIVER_OK yet) moves as it is. */
Test(virtio_snapshot_rng, mid_initialisation)
{
    struct vstate_out x;
    uint32_t st = fake_mmio_negotiate(a.t, FEATURES);
    fake_mmio_setup_queue(a.t, 0, &ring);
    fake_mmio_wr(a.t, FAKE_MMIO_QUEUE_SEL, 1); /* saturated selector moves too */
    snap_migrate(&a, &b, &x);
    snap_assert_stream(&b, &x);
    cr_assert_eq(fake_mmio_rd(b.t, FAKE_MMIO_STATUS), st);
    /* The driver finishes on the new device. */
    fake_mmio_wr(b.t, FAKE_MMIO_STATUS, st | VIRTIO_STATUS_DRIVER_OK);
    post(0, 2);
    fake_host_kick(&b.host, 0);
    cr_assert_eq(fake_ring_used_idx(&ring), 2);
    vstate_out_free(&x);
}

/* The guest published two chains the source had popped but not used. */
static void two_in_flight(struct virtio_state *st)
{
    snap_bring_up(&a, &ring, 1, FEATURES);
    snap_save_state(&a, st);
    post(0, 2); /* heads 0 and 1 in avail slots 0 and 1, never kicked on a */
    st->vq[0].last_avail_idx = 2;
    st->vq[0].flags = 0;
}

Test(virtio_snapshot_rng, inflight_list_in_order_is_replayed)
{
    struct virtio_state st;
    struct virtio_state_inflight list[2] = {{0, 10}, {1, 11}};
    char why[256] = "";
    two_in_flight(&st);
    st.vq[0].flags = VIRTIO_STATE_VQ_INFLIGHT_VALID;
    st.vq[0].n_inflight = 2;
    st.vq[0].inflight = list;
    cr_assert_eq(virtio_snapshot_load(b.d, b.t, &st, why, sizeof(why)), 0, "%s", why);
    st.vq[0].inflight = NULL;
    st.vq[0].n_inflight = 0;
    virtio_state_free(&st);
    cr_assert_eq(fake_ring_used_idx(&ring), 2, "popped again and completed by the restore kick");
    cr_assert_eq(requests(&b), 2);
}

Test(virtio_snapshot_rng, inflight_list_out_of_order_is_refused)
{
    struct virtio_state st;
    struct virtio_state_inflight list[2] = {{1, 10}, {0, 11}};
    two_in_flight(&st);
    st.vq[0].flags = VIRTIO_STATE_VQ_INFLIGHT_VALID;
    st.vq[0].n_inflight = 2;
    st.vq[0].inflight = list;
    snap_expect_refusal(&b, &st, -EOPNOTSUPP, "out of order");
    st.vq[0].inflight = NULL;
    st.vq[0].n_inflight = 0;
    virtio_state_free(&st);
}

Test(virtio_snapshot_rng, unaccounted_queue_rewinds_to_used)
{
    struct virtio_state st;
    char why[256] = "";
    two_in_flight(&st); /* neither DRAINED nor an in-flight list */
    cr_assert_eq(virtio_snapshot_load(b.d, b.t, &st, why, sizeof(why)), 0, "%s", why);
    virtio_state_free(&st);
    cr_assert_eq(fake_ring_used_idx(&ring), 2, "both chains served after the rewind");
}

/* ops->load refuses the record after the device was reset: DEVICE_NEEDS_RESET. */
Test(virtio_snapshot_rng, refused_record_needs_reset)
{
    struct virtio_state st;
    char why[256] = "";
    uint8_t junk[8] = "junk!!!!";
    snap_bring_up(&a, &ring, 1, FEATURES);
    snap_bring_up(&b, &ring, 1, FEATURES);
    fake_mmio_wr(b.t, FAKE_MMIO_INT_ACK, 3);
    snap_save_state(&a, &st);
    free(st.dev_blob);
    st.dev_blob = junk;
    st.dev_blob_len = sizeof(junk);
    cr_assert_eq(virtio_snapshot_load(b.d, b.t, &st, why, sizeof(why)), -EIO);
    st.dev_blob = NULL;
    st.dev_blob_len = 0;
    virtio_state_free(&st);
    cr_assert(strstr(why, "needs reset") && strstr(why, "RNG_STATE"), "%s", why);
    cr_assert(fake_mmio_rd(b.t, FAKE_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    cr_assert(fake_mmio_rd(b.t, FAKE_MMIO_INT_STATUS) & 2, "config interrupt");
    post(0, 1);
    fake_host_kick(&b.host, 0);
    cr_assert_eq(fake_ring_used_idx(&ring), 0, "nothing served until the driver resets");

    /* The driver resets and starts again: the device works. */
    fake_ring_init(&ring, &mem, RING(0), RING(1), RING(2), QSIZE);
    snap_bring_up(&b, &ring, 1, FEATURES);
    post(0, 1);
    fake_host_kick(&b.host, 0);
    cr_assert_eq(fake_ring_used_idx(&ring), 1);
}

/* The device record is one section: bytes after it are refused too (after the reset). */
Test(virtio_snapshot_rng, trailing_bytes_after_record)
{
    struct virtio_state st;
    char why[256] = "";
    snap_bring_up(&a, &ring, 1, FEATURES);
    snap_save_state(&a, &st);
    uint8_t *longer = malloc(st.dev_blob_len + 4);
    cr_assert_not_null(longer);
    memcpy(longer, st.dev_blob, st.dev_blob_len);
    memset(longer + st.dev_blob_len, 0xab, 4);
    free(st.dev_blob);
    st.dev_blob = longer;
    st.dev_blob_len += 4;
    cr_assert_eq(virtio_snapshot_load(b.d, b.t, &st, why, sizeof(why)), -EIO);
    cr_assert(strstr(why, "RNG_STATE"), "%s", why);
    cr_assert(b.d->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    virtio_state_free(&st);
}
