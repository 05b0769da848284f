/*
 * virtio-net receive path with a socketpair backend: one frame per buffer,
 * a frame spread over several buffers with MRG_RXBUF (num_buffers), RX
 * pausing when the guest has no buffers and resuming on its kick with no
 * frame lost (security.md H2), frames that cannot be delivered counted,
 * interrupt batching, bounded work, malformed rings and a vanished backend.
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
#define RXQ VIRTIO_NET_RXQ

static struct net_harness h;
static int peer = -1;

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

TestSuite(virtio_net_rx, .init = setup, .fini = teardown, .timeout = 30);

static void start(uint64_t features)
{
    net_harness_start(&h, net_harness_new_net(&h, NULL, &peer), 2, 256, features);
    net_harness_settle(&h, 0);
}

static struct virtio_net_stats stats(void)
{
    struct virtio_net_stats st;
    virtio_net_get_stats(h.d, &st);
    return st;
}

static uint8_t frame_byte(uint8_t seed, size_t i)
{
    return (uint8_t)(seed + i * 13 + (i >> 8));
}

static void send_frame(size_t len, uint8_t seed)
{
    static uint8_t buf[HDR + VIRTIO_NET_MAX_FRAME + 16];
    memset(buf, 0xee, HDR); /* junk header: the device must zero it */
    for (size_t i = 0; i < len; i++)
        buf[HDR + i] = frame_byte(seed, i);
    cr_assert_eq(send(peer, buf, HDR + len, 0), (ssize_t)(HDR + len));
}

/* Post `n` writable buffers of `len` bytes; their GPAs go to gpas[] if given. */
static void post_rx(unsigned n, uint32_t len, gpa_t *gpas)
{
    for (unsigned i = 0; i < n; i++)
        net_harness_add_buf(&h, RXQ, len, true, 0x5a, gpas ? &gpas[i] : NULL);
}

/* Check that used entries [first, first + nbuf) carry one frame of `len` bytes. */
static void check_frame(uint16_t first, unsigned nbuf, const gpa_t *gpas, size_t len, uint8_t seed)
{
    struct vqb *q = &h.q[RXQ];
    size_t total = HDR + len, off = 0;
    for (unsigned k = 0; k < nbuf; k++) {
        uint32_t id, ulen;
        vqb_used_elem(q, (uint16_t)(first + k), &id, &ulen);
        const uint8_t *p = vqb_host(q, gpas[k], ulen);
        for (uint32_t i = 0; i < ulen; i++, off++) {
            if (off < HDR) {
                uint8_t want = off == 10 ? (uint8_t)nbuf : 0;
                cr_assert_eq(p[i], want, "header byte %zu", off);
            } else {
                cr_assert_eq(p[i], frame_byte(seed, off - HDR), "frame byte %zu", off - HDR);
            }
        }
    }
    cr_assert_eq(off, total, "used lengths add up to the frame");
}

Test(virtio_net_rx, one_frame_one_buffer)
{
    start(FEATS);
    gpa_t g[1];
    post_rx(1, 1526, g);
    net_harness_kick(&h, RXQ);
    send_frame(100, 1);
    net_harness_settle(&h, 20);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 1);
    uint32_t id, len;
    vqb_used_elem(&h.q[RXQ], 0, &id, &len);
    cr_assert_eq(len, HDR + 100);
    check_frame(0, 1, g, 100, 1);
    cr_assert_geq(h.used_irqs, 1);
    struct virtio_net_stats st = stats();
    cr_assert_eq(st.rx_frames, 1);
    cr_assert_eq(st.rx_bytes, 100);
}

Test(virtio_net_rx, frame_spread_with_mrg_rxbuf)
{
    start(FEATS | MRG);
    gpa_t g[4];
    post_rx(4, 1024, g);
    net_harness_kick(&h, RXQ);
    send_frame(3000, 2);
    net_harness_settle(&h, 20);
    /* 12 + 3000 bytes over 1024-byte buffers: 1024 + 1024 + 964. */
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 3);
    uint32_t id, len;
    const uint32_t want[3] = {1024, 1024, 964};
    for (unsigned k = 0; k < 3; k++) {
        vqb_used_elem(&h.q[RXQ], (uint16_t)k, &id, &len);
        cr_assert_eq(len, want[k], "buffer %u", k);
    }
    check_frame(0, 3, g, 3000, 2);
    cr_assert_eq(h.used_irqs, 1, "one interrupt for the batch");
    cr_assert_eq(stats().rx_frames, 1);
}

Test(virtio_net_rx, batch_of_frames_one_interrupt)
{
    start(FEATS | MRG);
    post_rx(8, 2048, NULL);
    net_harness_kick(&h, RXQ);
    for (int i = 0; i < 5; i++)
        send_frame(200 + i, (uint8_t)i);
    net_harness_pump(&h, 100);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 5);
    cr_assert_eq(h.used_irqs, 1);
}

Test(virtio_net_rx, no_buffers_then_kick_resumes)
{
    start(FEATS | MRG);
    send_frame(500, 7);
    send_frame(600, 8);
    /* No buffers: the device must stop polling (no busy loop) and keep the frame. */
    int rounds = net_harness_settle(&h, 20);
    cr_assert_lt(rounds, 5, "RX stopped polling the backend (%d rounds)", rounds);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 0);
    cr_assert_geq(stats().rx_paused, 1);

    gpa_t g[2];
    post_rx(2, 2048, g);
    net_harness_kick(&h, RXQ);
    net_harness_settle(&h, 20);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 2, "both frames delivered after the kick");
    check_frame(0, 1, &g[0], 500, 7);
    check_frame(1, 1, &g[1], 600, 8);
    struct virtio_net_stats st = stats();
    cr_assert_eq(st.rx_frames, 2);
    cr_assert_eq(st.rx_dropped, 0, "nothing lost");
}

Test(virtio_net_rx, asks_for_kicks_only_when_out_of_buffers)
{
    start(FEATS);
    cr_assert_eq(vqb_used_flags(&h.q[RXQ]) & VIRTQ_USED_F_NO_NOTIFY, VIRTQ_USED_F_NO_NOTIFY,
                 "no RX kicks needed while the device polls");
    send_frame(300, 3);
    net_harness_settle(&h, 20);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 0);
    cr_assert_eq(vqb_used_flags(&h.q[RXQ]) & VIRTQ_USED_F_NO_NOTIFY, 0,
                 "out of buffers: the driver must kick");
    gpa_t g[3];
    post_rx(3, 1526, g);
    net_harness_kick(&h, RXQ);
    send_frame(301, 4);
    net_harness_settle(&h, 20);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 2);
    check_frame(0, 1, &g[0], 300, 3);
    check_frame(1, 1, &g[1], 301, 4);
    cr_assert_eq(vqb_used_flags(&h.q[RXQ]) & VIRTQ_USED_F_NO_NOTIFY, VIRTQ_USED_F_NO_NOTIFY);
}

Test(virtio_net_rx, event_idx_out_of_buffers)
{
    start(FEATS | MRG | VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
    send_frame(300, 3);
    net_harness_settle(&h, 20);
    /* avail_event = last_avail (0): the next buffer posted triggers a kick. */
    cr_assert_eq(vqb_avail_event(&h.q[RXQ]), 0);
    gpa_t g[1];
    post_rx(1, 1526, g);
    net_harness_kick(&h, RXQ);
    net_harness_settle(&h, 20);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 1);
    check_frame(0, 1, g, 300, 3);
}

Test(virtio_net_rx, partial_frame_waits_for_more_buffers)
{
    start(FEATS | MRG);
    gpa_t g[4];
    post_rx(2, 1024, g);
    net_harness_kick(&h, RXQ);
    send_frame(3000, 5);
    net_harness_settle(&h, 20);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 0, "nothing published for an incomplete frame");
    post_rx(2, 1024, g + 2);
    net_harness_kick(&h, RXQ);
    net_harness_settle(&h, 20);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 3);
    check_frame(0, 3, g, 3000, 5);
    /* The fourth buffer serves the next frame. */
    gpa_t g4[1] = {g[3]};
    send_frame(80, 6);
    net_harness_settle(&h, 20);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 4);
    check_frame(3, 1, g4, 80, 6);
}

Test(virtio_net_rx, frame_too_big_for_one_buffer_without_mrg)
{
    start(FEATS);
    gpa_t g[2];
    post_rx(1, 100, g);
    net_harness_kick(&h, RXQ);
    send_frame(500, 1);
    net_harness_settle(&h, 20);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 1, "the buffer comes back");
    uint32_t id, len;
    vqb_used_elem(&h.q[RXQ], 0, &id, &len);
    cr_assert_eq(len, 0);
    cr_assert_eq(stats().rx_dropped, 1, "the drop is counted");
    post_rx(1, 1526, g + 1);
    net_harness_kick(&h, RXQ);
    send_frame(400, 2);
    net_harness_settle(&h, 20);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 2);
    check_frame(1, 1, g + 1, 400, 2);
}

Test(virtio_net_rx, frame_larger_than_all_buffers_is_dropped)
{
    start(FEATS | MRG);
    /* 256 buffers of 64 bytes hold 16 KiB: a 20000-byte frame can never fit. */
    post_rx(256, 64, NULL);
    net_harness_kick(&h, RXQ);
    send_frame(20000, 3);
    net_harness_settle(&h, 20);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 256, "every held buffer returned");
    for (uint16_t k = 0; k < 256; k++) {
        uint32_t id, len;
        vqb_used_elem(&h.q[RXQ], k, &id, &len);
        cr_assert_eq(len, 0);
    }
    cr_assert_eq(stats().rx_dropped, 1);
    cr_assert_eq(h.needs_reset, 0);
}

Test(virtio_net_rx, bad_buffers_and_runts)
{
    start(FEATS | MRG);
    /* A first buffer smaller than the header is returned unused. */
    post_rx(1, 8, NULL);
    gpa_t g[1];
    post_rx(1, 2048, g);
    net_harness_kick(&h, RXQ);
    send_frame(10, 1); /* shorter than an Ethernet header: dropped */
    send_frame(100, 2);
    net_harness_settle(&h, 20);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 2);
    uint32_t id, len;
    vqb_used_elem(&h.q[RXQ], 0, &id, &len);
    cr_assert_eq(len, 0);
    check_frame(1, 1, g, 100, 2);
    struct virtio_net_stats st = stats();
    cr_assert_eq(st.rx_bad_chains, 1);
    cr_assert_eq(st.rx_dropped, 1);
}

Test(virtio_net_rx, read_only_rx_chain_is_returned)
{
    start(FEATS);
    net_harness_add_buf(&h, RXQ, 1526, false, 0, NULL);
    gpa_t g[1];
    post_rx(1, 1526, g);
    net_harness_kick(&h, RXQ);
    send_frame(60, 9);
    net_harness_settle(&h, 20);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 2);
    check_frame(1, 1, g, 60, 9);
    cr_assert_eq(stats().rx_bad_chains, 1);
}

Test(virtio_net_rx, work_is_bounded_per_event)
{
    start(FEATS);
    post_rx(200, 256, NULL);
    net_harness_kick(&h, RXQ);
    for (int i = 0; i < 150; i++)
        send_frame(100, (uint8_t)i);
    net_harness_pump(&h, 100);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), VIRTIO_NET_BUDGET, "one budget per event");
    net_harness_settle(&h, 20);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 150);
}

Test(virtio_net_rx, oversized_backend_frame_dropped)
{
    start(FEATS | MRG);
    int sz = 1 << 20;
    setsockopt(peer, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    post_rx(64, 2048, NULL);
    net_harness_kick(&h, RXQ);
    send_frame(VIRTIO_NET_MAX_FRAME + 1, 1);
    send_frame(VIRTIO_NET_MAX_FRAME, 2);
    net_harness_settle(&h, 20);
    struct virtio_net_stats st = stats();
    cr_assert_eq(st.rx_dropped, 1);
    cr_assert_eq(st.rx_frames, 1);
    cr_assert_eq(st.rx_bytes, VIRTIO_NET_MAX_FRAME);
}

Test(virtio_net_rx, malformed_ring_fails_device)
{
    start(FEATS);
    vqb_set_avail_idx(&h.q[RXQ], 300); /* more than the ring size ahead */
    net_harness_kick(&h, RXQ);
    send_frame(60, 1);
    int rounds = net_harness_settle(&h, 20);
    cr_assert_eq(h.needs_reset, 1);
    cr_assert_lt(rounds, 5, "no busy loop on a failed device");
}

Test(virtio_net_rx, backend_gone_fails_device)
{
    start(FEATS);
    post_rx(4, 1526, NULL);
    net_harness_kick(&h, RXQ);
    close(peer);
    peer = -1;
    int rounds = net_harness_settle(&h, 20);
    cr_assert_eq(h.needs_reset, 1);
    cr_assert_lt(rounds, 5, "no busy loop on a dead backend");
}

Test(virtio_net_rx, reset_drops_pending_work)
{
    start(FEATS | MRG);
    post_rx(1, 1024, NULL);
    net_harness_kick(&h, RXQ);
    send_frame(3000, 1); /* needs three buffers: one is held */
    net_harness_settle(&h, 20);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 0);
    pthread_mutex_lock(&h.d->lock);
    h.d->status = 0;
    h.d->ops->reset(h.d);
    for (unsigned i = 0; i < 2; i++)
        virtq_reset(&h.d->vq[i]);
    pthread_mutex_unlock(&h.d->lock);
    cr_assert_eq(stats().rx_dropped, 1, "the frame in hand is dropped and counted");
    send_frame(100, 2);
    int rounds = net_harness_settle(&h, 20);
    cr_assert_lt(rounds, 3, "a reset device does not poll the backend");
}
