/*
 * virtio-net device model with a SOCK_SEQPACKET socketpair as the backend:
 * config and features, TX framing and header zeroing, malformed and
 * oversized TX chains, the TX budget, RX into one buffer and spread over
 * several with MRG_RXBUF, RX pausing without buffers and resuming on a kick
 * without losing frames, drops that are counted, and backend failure.
 * State save/load is in test_net_state.c, the real tap in test_net_tap.c.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio/net.h"
#include "tests/lib/net_harness.h"

#define HDR TAP_VNET_HDR_LEN
#define FEATS                                                                                      \
    (VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_NET_F_MAC) |                               \
     VIRTIO_BIT(VIRTIO_NET_F_STATUS))
#define MRG VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF)

static struct net_harness h;
static int peer = -1;
static const uint8_t test_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

static struct virtio_dev *make_dev(const uint8_t *mac)
{
    return net_harness_new_net(&h, mac, &peer);
}

static void setup(void)
{
    net_harness_init(&h);
}

static void teardown(void)
{
    net_harness_fini(&h);
    if (peer >= 0)
        close(peer);
    peer = -1;
}

TestSuite(virtio_net, .init = setup, .fini = teardown, .timeout = 30);

static void start(uint64_t features)
{
    net_harness_start(&h, make_dev(test_mac), 2, 256, features);
    net_harness_settle(&h, 0); /* the activation kick */
}

static struct virtio_net_stats stats(void)
{
    struct virtio_net_stats st;
    virtio_net_get_stats(h.d, &st);
    return st;
}

/* Fill buf with a recognisable frame of len bytes (Ethernet header included). */
static void make_frame(uint8_t *buf, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed + i * 7);
}

/* Post a TX chain: header (hdr_fill bytes) then frame, split as asked. */
static uint16_t post_tx(const uint8_t *hdr, size_t hdr_len, const uint8_t *frame, size_t len)
{
    struct vqb *q = &h.q[VIRTIO_NET_TXQ];
    struct vqb_buf b[2];
    unsigned n = 0;
    if (hdr_len) {
        b[n].addr = vqb_alloc(q, hdr_len, 0);
        memcpy(vqb_host(q, b[n].addr, hdr_len), hdr, hdr_len);
        b[n].len = (uint32_t)hdr_len;
        b[n++].write = false;
    }
    if (len) {
        b[n].addr = vqb_alloc(q, len, 0);
        memcpy(vqb_host(q, b[n].addr, len), frame, len);
        b[n].len = (uint32_t)len;
        b[n++].write = false;
    }
    return vqb_add_chain(q, b, n);
}

/* Receive one record from the peer, or -1 if none within 200 ms. */
static ssize_t peer_recv(uint8_t *buf, size_t len)
{
    struct timeval tv = {.tv_usec = 200000};
    setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return recv(peer, buf, len, 0);
}

Test(virtio_net, config_and_features)
{
    start(FEATS);
    uint8_t cfg[VIRTIO_NET_CFG_SIZE];
    h.d->ops->config_read(h.d, 0, cfg, sizeof(cfg));
    cr_assert_arr_eq(cfg, test_mac, 6);
    cr_assert_eq(le16_get(cfg + VIRTIO_NET_CFG_STATUS), VIRTIO_NET_S_LINK_UP);
    uint16_t st = 0;
    h.d->ops->config_read(h.d, VIRTIO_NET_CFG_STATUS, &st, 2);
    cr_assert_eq(st, VIRTIO_NET_S_LINK_UP);

    uint64_t f = h.d->host_features;
    cr_assert(f & VIRTIO_BIT(VIRTIO_F_VERSION_1));
    cr_assert(f & VIRTIO_BIT(VIRTIO_NET_F_MAC));
    cr_assert(f & VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF));
    cr_assert(f & VIRTIO_BIT(VIRTIO_NET_F_STATUS));
    /* No offloads: CSUM 0, GUEST_CSUM 1, GUEST_TSO4..UFO 7-10, HOST_TSO4..UFO 11-14, CTRL_VQ 17. */
    const unsigned none[] = {0, 1, 7, 8, 9, 10, 11, 12, 13, 14, 17, 22};
    for (size_t i = 0; i < ARRAY_SIZE(none); i++)
        cr_assert_not(f & VIRTIO_BIT(none[i]), "feature %u offered", none[i]);
    cr_assert_eq(h.d->ops->device_id, VIRTIO_ID_NET);
    cr_assert_eq(h.d->ops->num_queues, 2);
    cr_assert_eq(h.d->vq[0].max_size, 256);
}

Test(virtio_net, random_mac_is_local_unicast)
{
    struct virtio_dev *a = make_dev(NULL);
    uint8_t m1[6], m2[6];
    a->ops->config_read(a, 0, m1, 6);
    cr_assert_eq(m1[0] & 3, 2, "locally administered unicast: %02x", m1[0]);
    close(peer);
    struct virtio_dev *b = make_dev(NULL);
    b->ops->config_read(b, 0, m2, 6);
    cr_assert_eq(m2[0] & 3, 2);
    cr_assert(memcmp(m1, m2, 6) != 0, "two random MACs differ");
    a->ops->destroy(a);
    b->ops->destroy(b);
}

Test(virtio_net, tx_frame_with_zeroed_header)
{
    start(FEATS);
    uint8_t hdr[HDR], frame[60], got[200];
    memset(hdr, 0, HDR);
    hdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM; /* not negotiated: must not reach the tap */
    le16_put(hdr + 4, 1400);              /* gso_size */
    make_frame(frame, sizeof(frame), 1);
    uint16_t head = post_tx(hdr, HDR, frame, sizeof(frame));
    net_harness_kick(&h, VIRTIO_NET_TXQ);

    ssize_t n = peer_recv(got, sizeof(got));
    cr_assert_eq(n, HDR + 60);
    for (unsigned i = 0; i < HDR; i++)
        cr_assert_eq(got[i], 0, "header byte %u", i);
    cr_assert_arr_eq(got + HDR, frame, 60);

    uint32_t id, len;
    cr_assert_eq(vqb_used_idx(&h.q[VIRTIO_NET_TXQ]), 1);
    vqb_used_elem(&h.q[VIRTIO_NET_TXQ], 0, &id, &len);
    cr_assert_eq(id, head);
    cr_assert_eq(len, 0);
    cr_assert_geq(h.used_irqs, 1);
    struct virtio_net_stats st = stats();
    cr_assert_eq(st.tx_frames, 1);
    cr_assert_eq(st.tx_bytes, 60);
    cr_assert_eq(st.tx_hdr_zeroed, 1);
    cr_assert_eq(h.needs_reset, 0);
}

Test(virtio_net, tx_header_split_over_descriptors)
{
    start(FEATS);
    struct vqb *q = &h.q[VIRTIO_NET_TXQ];
    uint8_t frame[100], got[200];
    make_frame(frame, sizeof(frame), 9);
    /* 5 header bytes, then 7 header bytes + 20 frame bytes, then the rest. */
    gpa_t a = vqb_alloc(q, 5, 0), b = vqb_alloc(q, 27, 0), c = vqb_alloc(q, 80, 0);
    memcpy((uint8_t *)vqb_host(q, b, 27) + 7, frame, 20);
    memcpy(vqb_host(q, c, 80), frame + 20, 80);
    struct vqb_buf bufs[3] = {{a, 5, false}, {b, 27, false}, {c, 80, false}};
    vqb_add_chain(q, bufs, 3);
    net_harness_kick(&h, VIRTIO_NET_TXQ);
    cr_assert_eq(peer_recv(got, sizeof(got)), HDR + 100);
    cr_assert_arr_eq(got + HDR, frame, 100);
}

Test(virtio_net, tx_header_too_short)
{
    start(FEATS);
    uint8_t hdr[8] = {0}, got[64];
    uint16_t head = post_tx(hdr, sizeof(hdr), NULL, 0);
    net_harness_kick(&h, VIRTIO_NET_TXQ);
    cr_assert_lt(peer_recv(got, sizeof(got)), 0, "nothing sent");
    uint32_t id, len;
    cr_assert_eq(vqb_used_idx(&h.q[VIRTIO_NET_TXQ]), 1, "chain completed");
    vqb_used_elem(&h.q[VIRTIO_NET_TXQ], 0, &id, &len);
    cr_assert_eq(id, head);
    cr_assert_eq(stats().tx_errors, 1);
    cr_assert_eq(h.needs_reset, 0, "a bad frame does not fail the device");

    /* A header with a frame shorter than an Ethernet header is refused too. */
    uint8_t full[HDR] = {0}, tiny[4] = {1, 2, 3, 4};
    post_tx(full, HDR, tiny, sizeof(tiny));
    net_harness_kick(&h, VIRTIO_NET_TXQ);
    cr_assert_lt(peer_recv(got, sizeof(got)), 0);
    cr_assert_eq(stats().tx_errors, 2);
}

Test(virtio_net, oversized_tx_chain_refused)
{
    start(FEATS);
    static uint8_t big[VIRTIO_NET_MAX_FRAME + 1];
    uint8_t hdr[HDR] = {0}, got[64];
    post_tx(hdr, HDR, big, sizeof(big));
    net_harness_kick(&h, VIRTIO_NET_TXQ);
    cr_assert_lt(peer_recv(got, sizeof(got)), 0, "nothing sent");
    cr_assert_eq(vqb_used_idx(&h.q[VIRTIO_NET_TXQ]), 1, "completed anyway");
    cr_assert_eq(stats().tx_errors, 1);
    cr_assert_eq(h.needs_reset, 0);

    /* The largest allowed frame passes. */
    int sz = 1 << 20;
    setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    post_tx(hdr, HDR, big, VIRTIO_NET_MAX_FRAME);
    net_harness_kick(&h, VIRTIO_NET_TXQ);
    static uint8_t got2[HDR + VIRTIO_NET_MAX_FRAME + 1];
    cr_assert_eq(peer_recv(got2, sizeof(got2)), HDR + VIRTIO_NET_MAX_FRAME);
}

Test(virtio_net, tx_work_is_bounded_per_event)
{
    start(FEATS);
    uint8_t hdr[HDR] = {0}, frame[64], got[128];
    make_frame(frame, sizeof(frame), 3);
    for (int i = 0; i < 100; i++)
        post_tx(hdr, HDR, frame, sizeof(frame));
    net_harness_kick(&h, VIRTIO_NET_TXQ);
    cr_assert_eq(vqb_used_idx(&h.q[VIRTIO_NET_TXQ]), VIRTIO_NET_BUDGET, "one budget per kick");
    net_harness_settle(&h, 0); /* the device rescheduled itself */
    cr_assert_eq(vqb_used_idx(&h.q[VIRTIO_NET_TXQ]), 100);
    int n = 0;
    while (peer_recv(got, sizeof(got)) == HDR + 64)
        n++;
    cr_assert_eq(n, 100);
    cr_assert_eq(stats().tx_frames, 100);
}

Test(virtio_net, tx_backend_full_counts_drops)
{
    start(FEATS);
    uint8_t hdr[HDR] = {0}, frame[1000];
    make_frame(frame, sizeof(frame), 4);
    /* Nobody reads the peer: the socket fills up and the rest is refused. */
    for (int i = 0; i < 600; i++) {
        post_tx(hdr, HDR, frame, sizeof(frame));
        if (i % 64 == 63) {
            net_harness_kick(&h, VIRTIO_NET_TXQ);
            net_harness_settle(&h, 0);
        }
    }
    net_harness_kick(&h, VIRTIO_NET_TXQ);
    net_harness_settle(&h, 0);
    struct virtio_net_stats st = stats();
    cr_assert_eq(vqb_used_idx(&h.q[VIRTIO_NET_TXQ]), 600, "every chain completed");
    cr_assert_gt(st.tx_dropped, 0);
    cr_assert_eq(st.tx_frames + st.tx_dropped, 600);
}
