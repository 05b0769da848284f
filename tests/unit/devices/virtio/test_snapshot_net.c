/*
 * virtio_snapshot with virtio-net behind the real mmio transport, moved
 * from a device on one socketpair backend to a device on another (same
 * MAC): the state carries nothing of the backend, so the stream saved
 * after the move is byte-identical; TX and RX go on through the new
 * backend at the right ring indices; RX chains held for a partly delivered
 * frame are returned (length 0) by the new device instead of being lost or
 * popped twice; another MAC is refused.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "devices/virtio/net.h"
#include "tests/unit/devices/virtio/test_snapshot.h"

#define HDR           TAP_VNET_HDR_LEN
#define RING(q, part) (1 * MiB + (uint64_t)(q)*0x30000 + (uint64_t)(part)*0x10000)
#define BUF(i)        (4 * MiB + (uint64_t)(i)*0x10000)
#define QSIZE         64
#define FEATURES                                                                                   \
    (VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_NET_F_MAC) |                               \
     VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF) | VIRTIO_BIT(VIRTIO_NET_F_STATUS) |                        \
     VIRTIO_BIT(VIRTIO_F_EVENT_IDX))

static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
static struct gmem mem;
static struct snap_side a, b;
static struct fake_ring ring[2];

static void setup(void)
{
    struct gmem_range r = {0, 8 * MiB};
    struct errbuf err = {0};
    cr_assert_eq(gmem_create(&mem, &r, 1, false, &err), 0, "%s", err.msg);
    snap_side_init(&a);
    snap_side_init(&b);
    snap_side_attach(&a, snap_new_net(&a, &mem, mac));
    for (unsigned q = 0; q < 2; q++)
        fake_ring_init(&ring[q], &mem, RING(q, 0), RING(q, 1), RING(q, 2), QSIZE);
    snap_bring_up(&a, ring, 2, FEATURES);
}

static void teardown(void)
{
    snap_side_fini(&a);
    snap_side_fini(&b);
    gmem_destroy(&mem);
}

TestSuite(virtio_snapshot_net, .init = setup, .fini = teardown, .timeout = 30);

static uint8_t *host(gpa_t gpa, size_t len)
{
    uint8_t *p = gmem_ptr(&mem, gpa, len);
    cr_assert_not_null(p);
    return p;
}

static void used_elem(unsigned q, uint16_t slot, uint32_t *id, uint32_t *len)
{
    const uint8_t *e = host(RING(q, 2) + 4 + 8ULL * (slot % QSIZE), 8);
    *id = le32_get(e);
    *len = le32_get(e + 4);
}

/* The guest sends a frame of `len` bytes filled with `fill` from buffer i. */
static void tx(struct snap_side *s, unsigned i, unsigned len, uint8_t fill)
{
    uint8_t *p = host(BUF(i), HDR + len);
    memset(p, 0, HDR);
    memset(p + HDR, fill, len);
    fake_ring_add(&ring[VIRTIO_NET_TXQ], BUF(i), HDR + len, false);
    fake_host_kick(&s->host, VIRTIO_NET_TXQ);
}

/* The host side of `s` sends a frame; returns nothing, the device reads it on its loop. */
static void host_send(struct snap_side *s, unsigned len, uint8_t fill)
{
    uint8_t f[HDR + 1500];
    memset(f, 0, HDR);
    memset(f + HDR, fill, len);
    cr_assert_eq(send(s->peer, f, HDR + len, 0), (ssize_t)(HDR + len));
}

/* Expect exactly one frame of len bytes of `fill` on the peer of s. */
static void expect_frame(struct snap_side *s, unsigned len, uint8_t fill)
{
    uint8_t got[HDR + 1500];
    cr_assert_eq(recv(s->peer, got, sizeof(got), MSG_DONTWAIT), (ssize_t)(HDR + len));
    for (unsigned k = 0; k < len; k++)
        cr_assert_eq(got[HDR + k], fill);
}

static void post_rx(unsigned i, uint32_t len)
{
    fake_ring_add(&ring[VIRTIO_NET_RXQ], BUF(i), len, true);
}

Test(virtio_snapshot_net, moves_to_another_backend)
{
    struct vstate_out x;
    for (unsigned i = 0; i < 3; i++) {
        tx(&a, i, 60, (uint8_t)(0x10 + i));
        expect_frame(&a, 60, (uint8_t)(0x10 + i));
    }
    for (unsigned i = 10; i < 14; i++)
        post_rx(i, 2048);
    fake_host_kick(&a.host, VIRTIO_NET_RXQ);
    host_send(&a, 70, 0xa0);
    host_send(&a, 80, 0xa1);
    snap_settle(&a);
    cr_assert_eq(fake_ring_used_idx(&ring[VIRTIO_NET_RXQ]), 2);
    cr_assert_eq(fake_ring_used_idx(&ring[VIRTIO_NET_TXQ]), 3);

    snap_side_attach(&b, snap_new_net(&b, &mem, mac));
    snap_migrate(&a, &b, &x);
    /* Backend-neutral: the other socketpair saves exactly the same stream. */
    snap_assert_stream(&b, &x);

    tx(&b, 3, 90, 0x33);
    expect_frame(&b, 90, 0x33);
    uint8_t junk[16];
    cr_assert_lt(recv(a.peer, junk, sizeof(junk), MSG_DONTWAIT), 0, "nothing on the old backend");
    cr_assert_eq(fake_ring_used_idx(&ring[VIRTIO_NET_TXQ]), 4);

    host_send(&b, 100, 0xb0);
    snap_settle(&b);
    cr_assert_eq(fake_ring_used_idx(&ring[VIRTIO_NET_RXQ]), 3);
    uint32_t id, len;
    used_elem(VIRTIO_NET_RXQ, 2, &id, &len);
    cr_assert_eq(id, 2, "third RX chain (buffer 12)");
    cr_assert_eq(len, HDR + 100);
    const uint8_t *p = host(BUF(12), HDR + 100);
    cr_assert_eq(le16_get(p + 10), 1, "num_buffers");
    cr_assert_eq(p[HDR], 0xb0);
    cr_assert_eq(p[HDR + 99], 0xb0);
    vstate_out_free(&x);
}

Test(virtio_snapshot_net, held_rx_chain_returned_by_destination)
{
    struct virtio_state st;
    struct vstate_out x;
    post_rx(20, 64); /* too small: the frame needs more buffers (MRG_RXBUF) */
    fake_host_kick(&a.host, VIRTIO_NET_RXQ);
    host_send(&a, 188, 0xcc);
    snap_settle(&a);
    cr_assert_eq(fake_ring_used_idx(&ring[VIRTIO_NET_RXQ]), 0, "chain held, frame incomplete");

    snap_side_attach(&b, snap_new_net(&b, &mem, mac));
    snap_migrate(&a, &b, &x);
    snap_decode(&x, &st);
    cr_assert_eq(st.vq[VIRTIO_NET_RXQ].last_avail_idx, 1);
    cr_assert_eq(st.vq[VIRTIO_NET_RXQ].used_idx, 0);
    cr_assert_eq(st.vq[VIRTIO_NET_RXQ].flags, 0, "neither drained nor an in-flight list");
    cr_assert_eq(st.dev_rec_type, VIRTIO_STATE_T_NET_STATE);
    virtio_state_free(&st);

    /* The restore kick returned the held chain, empty (its frame is lost). */
    cr_assert_eq(fake_ring_used_idx(&ring[VIRTIO_NET_RXQ]), 1);
    uint32_t id, len;
    used_elem(VIRTIO_NET_RXQ, 0, &id, &len);
    cr_assert_eq(id, 0);
    cr_assert_eq(len, 0);

    post_rx(21, 2048);
    fake_host_kick(&b.host, VIRTIO_NET_RXQ);
    host_send(&b, 100, 0xdd);
    snap_settle(&b);
    cr_assert_eq(fake_ring_used_idx(&ring[VIRTIO_NET_RXQ]), 2);
    used_elem(VIRTIO_NET_RXQ, 1, &id, &len);
    cr_assert_eq(id, 1);
    cr_assert_eq(len, HDR + 100);
    cr_assert_eq(host(BUF(21), HDR + 1)[HDR], 0xdd);
    vstate_out_free(&x);
}

Test(virtio_snapshot_net, refuses_another_mac)
{
    struct virtio_state st;
    const uint8_t mac2[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x57};
    snap_side_attach(&b, snap_new_net(&b, &mem, mac2));
    snap_save_state(&a, &st);
    snap_expect_refusal(&b, &st, -EINVAL, "config byte 5");
    virtio_state_free(&st);
}

/*
 * The returned-heads list of the net record against the RX queue.  The
 * source holds two RX chains (heads 0 and 1) for a partly delivered frame,
 * so the saved queue has two chains in flight and the record returns {0, 1}.
 * Each case swaps in a record that differs only in that list, encoded
 * through vstate (so its section checksum is right and ops->load's own
 * parse would take it) and refused by the snapshot matcher.
 */
static void save_with_two_held(struct virtio_state *st)
{
    post_rx(20, 64);
    post_rx(21, 64); /* 128 bytes: still too small for the frame below */
    fake_host_kick(&a.host, VIRTIO_NET_RXQ);
    host_send(&a, 188, 0xcc);
    snap_settle(&a);
    cr_assert_eq(fake_ring_used_idx(&ring[VIRTIO_NET_RXQ]), 0, "chains held, frame incomplete");
    snap_save_state(&a, st);
    cr_assert_eq(st->vq[VIRTIO_NET_RXQ].last_avail_idx, 2);
    cr_assert_eq(st->vq[VIRTIO_NET_RXQ].used_idx, 0);
    uint16_t h[4];
    cr_assert_eq(virtio_net_record_returns(st->dev_blob, st->dev_blob_len, h, 4), 2);
    snap_side_attach(&b, snap_new_net(&b, &mem, mac));
}

/* Replace st's net record by one returning heads[0, n) (no frame in hand). */
static void set_returns(struct virtio_state *st, const uint16_t *heads, unsigned n)
{
    struct vstate_out o;
    vstate_out_init(&o);
    vstate_begin(&o, "virtio-net", 1);
    vstate_put_bytes(&o, mac, 6);
    vstate_put_u16(&o, 1); /* link up */
    vstate_put_u16(&o, (uint16_t)n);
    for (unsigned i = 0; i < n; i++)
        vstate_put_u16(&o, heads[i]);
    vstate_put_u32(&o, 0);
    cr_assert_eq(vstate_end(&o), 0);
    free(st->dev_blob);
    st->dev_blob = o.buf; /* the state frees it */
    st->dev_blob_len = (uint32_t)o.len;
}

static void expect_returns_refused(const uint16_t *heads, unsigned n, const char *needle)
{
    struct virtio_state st;
    save_with_two_held(&st);
    set_returns(&st, heads, n);
    snap_expect_refusal(&b, &st, -EINVAL, needle);
    virtio_state_free(&st);
}

Test(virtio_snapshot_net, returned_heads_as_saved_are_accepted)
{
    /* The control case: the re-encoded list the source saved loads. */
    struct virtio_state st;
    char why[192] = "";
    save_with_two_held(&st);
    set_returns(&st, (const uint16_t[]){0, 1}, 2);
    cr_assert_eq(virtio_snapshot_load(b.d, b.t, &st, why, sizeof(why)), 0, "%s", why);
    virtio_state_free(&st);
}

Test(virtio_snapshot_net, refuses_fewer_returned_heads_than_in_flight)
{
    expect_returns_refused((const uint16_t[]){0}, 1, "returns 1 RX heads, 2 chains are in flight");
}

Test(virtio_snapshot_net, refuses_more_returned_heads_than_in_flight)
{
    expect_returns_refused((const uint16_t[]){0, 1, 2}, 3,
                           "returns 3 RX heads, 2 chains are in flight");
}

Test(virtio_snapshot_net, refuses_a_returned_head_listed_twice)
{
    expect_returns_refused((const uint16_t[]){1, 1}, 2, "RX head 1 is listed twice");
}

Test(virtio_snapshot_net, refuses_a_returned_head_outside_the_ring)
{
    /* QSIZE is below the device's maximum: only the ring's size refuses it. */
    expect_returns_refused((const uint16_t[]){0, QSIZE}, 2, "outside the ring");
}
