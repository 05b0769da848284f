/*
 * virtio-vsock against a hostile guest and hostile or slow host peers:
 * malformed headers (short chain, len beyond the chain, unknown type and
 * op, wrong CIDs), the connection table's bound, credit violations, a host
 * peer that stops reading next to a live connection, host-to-guest credit,
 * many connections at once, reset and save/load (TRANSPORT_RESET).
 */
#include <criterion/criterion.h>

#include <linux/sockios.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/unit/devices/virtio/vsock_util.h"

#define OP(x) VIRTIO_VSOCK_OP_##x

static void setup(void)
{
    vt_start(200);
}

static void teardown(void)
{
    vt_stop();
}

TestSuite(virtio_vsock_hostile, .init = setup, .fini = teardown, .timeout = 60);

static int connect_pair(uint32_t g, uint32_t p, int lfd)
{
    vt_send(g, p, OP(REQUEST), 0, NULL, 0);
    vt_pump(8);
    struct vt_pkt k;
    cr_assert(vt_recv(&k));
    cr_assert_eq(k.op, OP(RESPONSE));
    return vt_accept(lfd);
}

static void expect_op(uint16_t op, uint32_t src_port, uint32_t dst_port)
{
    struct vt_pkt k;
    vt_pump(8);
    cr_assert(vt_recv(&k), "a packet arrives");
    cr_assert_eq(k.op, op, "op %u, want %u", k.op, op);
    cr_assert_eq(k.src_port, src_port);
    cr_assert_eq(k.dst_port, dst_port);
}

static void expect_nothing(void)
{
    struct vt_pkt k;
    vt_pump(8);
    cr_assert_not(vt_recv(&k), "no packet (got op %u)", k.op);
}

Test(virtio_vsock_hostile, short_chain_is_completed_and_counted)
{
    vt_send_raw(VT_CID, 2, 1, 2, VIRTIO_VSOCK_TYPE_STREAM, OP(REQUEST), 0, 0, 0, NULL, 0, 20);
    expect_nothing();
    cr_assert_eq(vt_stats().bad_pkts, 1);
}

Test(virtio_vsock_hostile, len_beyond_the_chain_is_reset)
{
    int lfd = vt_listen(7000);
    int fd = connect_pair(1100, 7000, lfd);
    /* len says 4096, the chain holds 10 payload bytes. */
    vt_send_raw(VT_CID, 2, 1100, 7000, VIRTIO_VSOCK_TYPE_STREAM, OP(RW), 0, 1 << 16, 0,
                "0123456789", 4096, VIRTIO_VSOCK_HDR_LEN + 10);
    expect_op(OP(RST), 7000, 1100);
    cr_assert_eq(vt_stats().bad_pkts, 1);
    char buf[16];
    cr_assert_eq(vt_read(fd, buf, sizeof(buf), 100), 0, "nothing reached the host");
    /* And len over the device's maximum, even with the bytes present. */
    vt_send_raw(VT_CID, 2, 1101, 7000, VIRTIO_VSOCK_TYPE_STREAM, OP(RW), 0, 0, 0, NULL,
                VIRTIO_VSOCK_MAX_PKT + 1, VIRTIO_VSOCK_HDR_LEN + VIRTIO_VSOCK_MAX_PKT + 1);
    expect_op(OP(RST), 7000, 1101);
    close(fd);
    close(lfd);
}

Test(virtio_vsock_hostile, unknown_type_and_op_get_rst)
{
    vt_send_raw(VT_CID, 2, 1200, 7001, 2 /* SEQPACKET */, OP(REQUEST), 0, 0, 0, NULL, 0, 0);
    expect_op(OP(RST), 7001, 1200);
    int lfd = vt_listen(7001);
    int fd = connect_pair(1201, 7001, lfd);
    vt_send(1201, 7001, 99, 0, NULL, 0);
    expect_op(OP(RST), 7001, 1201);
    cr_assert_eq(virtio_vsock_conn_count(vt.h.d), 0, "the connection is gone");
    /* Packets for a connection that does not exist. */
    vt_send(1202, 7001, OP(RW), 0, "x", 1);
    expect_op(OP(RST), 7001, 1202);
    /* No RST answers an RST. */
    vt_send(1203, 7001, OP(RST), 0, NULL, 0);
    expect_nothing();
    close(fd);
    close(lfd);
}

Test(virtio_vsock_hostile, wrong_cids)
{
    int lfd = vt_listen(7002);
    /* Spoofed source: dropped, no reply, no connection. */
    vt_send_raw(VT_CID + 1, 2, 1300, 7002, VIRTIO_VSOCK_TYPE_STREAM, OP(REQUEST), 0, 0, 0, NULL, 0,
                0);
    expect_nothing();
    /* Not for the host: refused. */
    vt_send_raw(VT_CID, 5, 1301, 7002, VIRTIO_VSOCK_TYPE_STREAM, OP(REQUEST), 0, 0, 0, NULL, 0, 0);
    struct vt_pkt k;
    vt_pump(8);
    cr_assert(vt_recv(&k));
    cr_assert_eq(k.op, OP(RST));
    cr_assert_eq(k.src_cid, 5);
    cr_assert_eq(virtio_vsock_conn_count(vt.h.d), 0);
    cr_assert_eq(vt_stats().bad_pkts, 2);
    close(lfd);
}

Test(virtio_vsock_hostile, connection_table_is_bounded)
{
    int lfd = vt_listen(7003);
    int fds[VIRTIO_VSOCK_MAX_CONNS];
    for (unsigned i = 0; i < VIRTIO_VSOCK_MAX_CONNS; i++)
        fds[i] = connect_pair(2000 + i, 7003, lfd);
    cr_assert_eq(virtio_vsock_conn_count(vt.h.d), VIRTIO_VSOCK_MAX_CONNS);
    vt_send(3000, 7003, OP(REQUEST), 0, NULL, 0);
    expect_op(OP(RST), 7003, 3000);
    /* The host side is bounded by the same table. */
    int h = vt_host_connect();
    net_harness_settle(&vt.h, 10);
    char buf[4];
    cr_assert_eq(vt_read(h, buf, sizeof(buf), 200), 0, "closed at once");
    cr_assert_eq(vt_stats().conns_refused, 2);
    /* A slot frees: connections work again. */
    vt_send(2000, 7003, OP(RST), 0, NULL, 0);
    int fd = connect_pair(3001, 7003, lfd);
    close(fd);
    close(h);
    for (unsigned i = 0; i < VIRTIO_VSOCK_MAX_CONNS; i++)
        close(fds[i]);
    close(lfd);
}

static uint8_t big[VIRTIO_VSOCK_MAX_PKT];

Test(virtio_vsock_hostile, credit_violation_resets_only_that_connection)
{
    int lfd = vt_listen(7004);
    int slow = connect_pair(1400, 7004, lfd);
    int live = connect_pair(1401, 7004, lfd);
    /* The slow peer reads nothing; the guest ignores its credit. */
    bool reset = false;
    for (int i = 0; i < 200 && !reset; i++) {
        vt_send(1400, 7004, OP(RW), 0, big, sizeof(big));
        reset = vt_stats().credit_violations > 0;
    }
    cr_assert(reset, "sending beyond the credit resets the connection");
    vt_pump(8);
    struct vt_pkt k;
    bool rst = false;
    while (vt_recv(&k))
        rst |= k.op == OP(RST) && k.dst_port == 1400;
    cr_assert(rst);
    vt_send(1401, 7004, OP(RW), 0, "still", 5);
    char buf[8] = {0};
    cr_assert_eq(vt_read(live, buf, 5, 500), 5);
    cr_assert_str_eq(buf, "still");
    close(slow);
    close(live);
    close(lfd);
}

Test(virtio_vsock_hostile, stalled_host_peer_does_not_stall_the_guest)
{
    int lfd = vt_listen(7005);
    int slow = connect_pair(1500, 7005, lfd);
    int live = connect_pair(1501, 7005, lfd);
    /* A well-behaved guest: sends only within the credit it was given. */
    uint64_t sent = 0;
    uint32_t fwd = 0;
    for (int i = 0; i < 400; i++) {
        uint32_t credit = VIRTIO_VSOCK_CONN_BUF - (uint32_t)(sent - fwd);
        if (credit == 0)
            break;
        uint32_t n = credit < 4096 ? credit : 4096;
        vt_send(1500, 7005, OP(RW), 0, big, n);
        sent += n;
        vt_pump(8);
        struct vt_pkt k;
        while (vt_recv(&k))
            if (k.dst_port == 1500)
                fwd = k.fwd_cnt;
    }
    cr_assert_eq((uint32_t)(sent - fwd), VIRTIO_VSOCK_CONN_BUF,
                 "the guest ran out of credit: wisp holds at most CONN_BUF bytes");
    cr_assert_eq(vt_stats().credit_violations, 0);
    int outq = 0;
    cr_assert_eq(ioctl(slow, SIOCINQ, &outq), 0);
    cr_assert_gt(outq, 0, "the rest waits in the host socket");
    /* The other connection is unaffected both ways. */
    vt_send(1501, 7005, OP(RW), 0, "ping", 4);
    char buf[8] = {0};
    cr_assert_eq(vt_read(live, buf, 4, 500), 4);
    cr_assert_eq(write(live, "pong", 4), 4);
    vt_pump(8);
    struct vt_pkt k;
    cr_assert(vt_recv(&k));
    cr_assert_eq(k.dst_port, 1501);
    cr_assert_arr_eq(k.data, "pong", 4);
    /* The slow peer reads: credit comes back. */
    static uint8_t sink[1 << 20];
    cr_assert_gt(vt_read(slow, sink, sizeof(sink), 200), 0);
    net_harness_settle(&vt.h, 10);
    vt_pump(8);
    bool credit = false;
    while (vt_recv(&k))
        credit |= k.dst_port == 1500 && k.op == OP(CREDIT_UPDATE) && k.fwd_cnt != fwd;
    cr_assert(credit, "a CREDIT_UPDATE follows once the peer drains");
    close(slow);
    close(live);
    close(lfd);
}

Test(virtio_vsock_hostile, host_to_guest_respects_guest_credit)
{
    int lfd = vt_listen(7006);
    vt_send_raw(VT_CID, 2, 1600, 7006, VIRTIO_VSOCK_TYPE_STREAM, OP(REQUEST), 0, 100, 0, NULL, 0,
                0);
    vt_pump(8);
    struct vt_pkt k;
    cr_assert(vt_recv(&k));
    int fd = vt_accept(lfd);
    static uint8_t data[1000];
    cr_assert_eq(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
    vt_pump(8);
    uint32_t got = 0;
    while (vt_recv(&k))
        got += k.len;
    cr_assert_eq(got, 100, "no more than buf_alloc in flight");
    int outq = 0;
    cr_assert_eq(ioctl(fd, SIOCOUTQ, &outq), 0);
    cr_assert_gt(outq, 0, "the rest waits in the host peer's socket");
    vt_send_raw(VT_CID, 2, 1600, 7006, VIRTIO_VSOCK_TYPE_STREAM, OP(CREDIT_UPDATE), 0, 100, 100,
                NULL, 0, 0);
    vt_pump(8);
    got = 0;
    while (vt_recv(&k))
        got += k.len;
    cr_assert_eq(got, 100);
    /* CREDIT_REQUEST gets our credit. */
    vt_send_raw(VT_CID, 2, 1600, 7006, VIRTIO_VSOCK_TYPE_STREAM, OP(CREDIT_REQUEST), 0, 100, 0,
                NULL, 0, 0);
    vt_pump(8);
    cr_assert(vt_recv(&k));
    cr_assert_eq(k.op, OP(CREDIT_UPDATE));
    cr_assert_eq(k.buf_alloc, VIRTIO_VSOCK_CONN_BUF);
    close(fd);
    close(lfd);
}

Test(virtio_vsock_hostile, header_only_rx_buffers_do_not_spin)
{
    int lfd = vt_listen(7010);
    struct vqb *q = &vt.h.q[VIRTIO_VSOCK_RXQ];
    gpa_t g = vqb_alloc(q, VIRTIO_VSOCK_HDR_LEN, 0);
    struct vqb_buf b = {g, VIRTIO_VSOCK_HDR_LEN, true};
    vqb_add_chain(q, &b, 1);
    net_harness_kick(&vt.h, VIRTIO_VSOCK_RXQ);
    vt_send(1900, 7010, OP(REQUEST), 0, NULL, 0);
    cr_assert_eq(vqb_used_idx(q), 1, "RESPONSE fits a header-only buffer");
    int fd = vt_accept(lfd);
    vqb_add_chain(q, &b, 1);
    net_harness_kick(&vt.h, VIRTIO_VSOCK_RXQ);
    cr_assert_eq(write(fd, "data", 4), 4);
    int rounds = net_harness_settle(&vt.h, 20);
    cr_assert_lt(rounds, 10, "no busy loop on a buffer with no room for data (%d)", rounds);
    cr_assert_eq(vqb_used_idx(q), 1, "the data waits");
    /* A control packet still fits it. */
    vt_send(1900, 7010, OP(CREDIT_REQUEST), 0, NULL, 0);
    cr_assert_eq(vqb_used_idx(q), 2);
    uint32_t id, len;
    vqb_used_elem(q, 1, &id, &len);
    cr_assert_eq(len, VIRTIO_VSOCK_HDR_LEN);
    cr_assert_eq(le16_get((uint8_t *)vqb_host(q, g, 44) + VSOCK_HDR_OP), OP(CREDIT_UPDATE));
    close(fd);
    close(lfd);
}

Test(virtio_vsock_hostile, many_connections_keep_their_bytes_apart)
{
    enum { N = 16 };
    int lfd = vt_listen(7007);
    int fds[N];
    for (unsigned i = 0; i < N; i++)
        fds[i] = connect_pair(4000 + i, 7007, lfd);
    for (unsigned i = 0; i < N; i++) {
        char msg[16];
        int n = snprintf(msg, sizeof(msg), "conn-%u", i);
        vt_send(4000 + i, 7007, OP(RW), 0, msg, (uint32_t)n);
        cr_assert_eq(write(fds[i], msg, (size_t)n), n);
    }
    for (unsigned i = 0; i < N; i++) {
        char want[16], buf[16] = {0};
        int n = snprintf(want, sizeof(want), "conn-%u", i);
        cr_assert_eq(vt_read(fds[i], buf, (size_t)n, 500), (size_t)n);
        cr_assert_str_eq(buf, want);
    }
    vt_pump(32);
    unsigned seen = 0;
    struct vt_pkt k;
    while (vt_recv(&k)) {
        char want[16];
        cr_assert_eq(k.op, OP(RW));
        int n = snprintf(want, sizeof(want), "conn-%u", k.dst_port - 4000);
        cr_assert_eq(k.len, (uint32_t)n);
        cr_assert_arr_eq(k.data, want, (size_t)n);
        seen++;
    }
    cr_assert_eq(seen, N);
    for (unsigned i = 0; i < N; i++)
        close(fds[i]);
    close(lfd);
}

Test(virtio_vsock_hostile, reset_drops_connections)
{
    int lfd = vt_listen(7008);
    int fd = connect_pair(1700, 7008, lfd);
    pthread_mutex_lock(&vt.h.d->lock);
    vt.h.d->ops->reset(vt.h.d);
    pthread_mutex_unlock(&vt.h.d->lock);
    net_harness_settle(&vt.h, 10);
    char buf[4];
    cr_assert_eq(vt_read(fd, buf, sizeof(buf), 500), 0);
    cr_assert_eq(virtio_vsock_conn_count(vt.h.d), 0);
    close(fd);
    close(lfd);
}

Test(virtio_vsock_hostile, load_drops_connections_and_sends_transport_reset)
{
    int lfd = vt_listen(7009);
    int fd = connect_pair(1800, 7009, lfd);
    struct vstate_out o = net_harness_save(vt.h.d);
    cr_assert_eq(net_harness_load(vt.h.d, o.buf, o.len), 0);
    struct vqb *eq = &vt.h.q[VIRTIO_VSOCK_EVQ];
    gpa_t g = vqb_alloc(eq, 8, 0xee);
    struct vqb_buf b = {g, 8, true};
    vqb_add_chain(eq, &b, 1);
    net_harness_kick(&vt.h, VIRTIO_VSOCK_EVQ);
    net_harness_settle(&vt.h, 10);
    cr_assert_eq(vqb_used_idx(eq), 1);
    uint32_t id, len;
    vqb_used_elem(eq, 0, &id, &len);
    cr_assert_eq(len, 4);
    cr_assert_eq(le32_get(vqb_host(eq, g, 4)), VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
    cr_assert_eq(vt_stats().reset_events, 1);
    char buf[4];
    cr_assert_eq(vt_read(fd, buf, sizeof(buf), 500), 0, "host connections are dropped");
    cr_assert_eq(virtio_vsock_conn_count(vt.h.d), 0);
    /* A state with another CID is refused. */
    le64_put(o.buf + o.len - 8, VT_CID + 1);
    cr_assert_lt(net_harness_load(vt.h.d, o.buf, o.len), 0);
    vstate_out_free(&o);
    close(fd);
    close(lfd);
}
