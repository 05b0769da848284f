/*
 * virtio-vsock against real UNIX-socket peers: config, guest-initiated and
 * host-initiated (CONNECT/OK) connections with data both ways, shutdown,
 * the handshake's bounds, hostile packet headers, the connection table's
 * bound, credit in both directions, a host peer that stops reading, many
 * connections at once, reset, and save/load with TRANSPORT_RESET.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/backends/vsock_uds.h"
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

TestSuite(virtio_vsock, .init = setup, .fini = teardown, .timeout = 30);

/* Guest port g connects to host port p, which a host process listens on; returns the host fd. */
static int guest_connect(uint32_t g, uint32_t p, int lfd)
{
    vt_send(g, p, OP(REQUEST), 0, NULL, 0);
    vt_pump(8);
    struct vt_pkt k;
    cr_assert(vt_recv(&k), "a reply to REQUEST");
    cr_assert_eq(k.op, OP(RESPONSE));
    cr_assert_eq(k.src_cid, VIRTIO_VSOCK_HOST_CID);
    cr_assert_eq(k.dst_cid, VT_CID);
    cr_assert_eq(k.src_port, p);
    cr_assert_eq(k.dst_port, g);
    cr_assert_eq(k.buf_alloc, VIRTIO_VSOCK_CONN_BUF);
    return vt_accept(lfd);
}

static void expect_rst(uint32_t src_port, uint32_t dst_port)
{
    struct vt_pkt k;
    vt_pump(8);
    cr_assert(vt_recv(&k), "an RST arrives");
    cr_assert_eq(k.op, OP(RST));
    cr_assert_eq(k.src_port, src_port);
    cr_assert_eq(k.dst_port, dst_port);
    cr_assert_eq(k.len, 0);
}

static void expect_nothing(void)
{
    struct vt_pkt k;
    vt_pump(8);
    cr_assert_not(vt_recv(&k), "no packet (got op %u)", k.op);
}

Test(virtio_vsock, config_space_and_features)
{
    struct virtio_dev *d = vt.h.d;
    uint8_t cfg[8];
    d->ops->config_read(d, 0, cfg, 8);
    cr_assert_eq(le64_get(cfg), VT_CID);
    cr_assert_eq(d->ops->device_id, 19);
    cr_assert_eq(d->ops->num_queues, 3);
    cr_assert_eq(d->host_features & 0xffffffffULL & ~VIRTIO_BIT(VIRTIO_F_EVENT_IDX) &
                     ~VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC),
                 0, "no device features: STREAM only");
}

Test(virtio_vsock, guest_to_host_echo_and_close)
{
    int lfd = vt_listen(5000);
    int fd = guest_connect(1025, 5000, lfd);
    vt_send(1025, 5000, OP(RW), 0, "hello", 5);
    char buf[64] = {0};
    cr_assert_eq(vt_read(fd, buf, sizeof(buf), 500), 5);
    cr_assert_str_eq(buf, "hello");
    cr_assert_eq(write(fd, "world!", 6), 6);
    vt_pump(8);
    struct vt_pkt k;
    cr_assert(vt_recv(&k));
    cr_assert_eq(k.op, OP(RW));
    cr_assert_eq(k.len, 6);
    cr_assert_arr_eq(k.data, "world!", 6);
    cr_assert_eq(k.src_port, 5000);
    cr_assert_eq(k.dst_port, 1025);
    cr_assert_eq(k.fwd_cnt, 5, "our credit: the 5 bytes the host took");
    /* The guest closes: RST back, the host peer sees end of stream. */
    vt_send(1025, 5000, OP(SHUTDOWN), VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND, NULL,
            0);
    expect_rst(5000, 1025);
    cr_assert_eq(vt_read(fd, buf, sizeof(buf), 500), 0);
    cr_assert_eq(virtio_vsock_conn_count(vt.h.d), 0);
    struct virtio_vsock_stats st = vt_stats();
    cr_assert_eq(st.conns_opened, 1);
    cr_assert_eq(st.tx_bytes, 5);
    cr_assert_eq(st.rx_bytes, 6);
    close(fd);
    close(lfd);
}

Test(virtio_vsock, host_eof_is_shutdown_send_and_half_close_works)
{
    int lfd = vt_listen(5001);
    int fd = guest_connect(1026, 5001, lfd);
    cr_assert_eq(shutdown(fd, SHUT_WR), 0);
    vt_pump(8);
    struct vt_pkt k;
    cr_assert(vt_recv(&k));
    cr_assert_eq(k.op, OP(SHUTDOWN));
    cr_assert_eq(k.flags, VIRTIO_VSOCK_SHUTDOWN_SEND);
    /* The guest may still answer after the host's half-close. */
    vt_send(1026, 5001, OP(RW), 0, "late", 4);
    char buf[8];
    cr_assert_eq(vt_read(fd, buf, sizeof(buf), 500), 4);
    vt_send(1026, 5001, OP(SHUTDOWN), VIRTIO_VSOCK_SHUTDOWN_SEND, NULL, 0);
    expect_rst(5001, 1026);
    close(fd);
    close(lfd);
}

Test(virtio_vsock, guest_request_with_no_listener_is_refused)
{
    vt_send(1027, 6000, OP(REQUEST), 0, NULL, 0);
    expect_rst(6000, 1027);
    cr_assert_eq(vt_stats().conns_refused, 1);
    cr_assert_eq(virtio_vsock_conn_count(vt.h.d), 0);
}

Test(virtio_vsock, host_connect_handshake_and_data)
{
    int fd = vt_host_connect();
    const char hello[] = "CONNECT 1234\nearly";
    cr_assert_eq(write(fd, hello, strlen(hello)), (ssize_t)strlen(hello));
    vt_pump(8);
    struct vt_pkt k;
    cr_assert(vt_recv(&k), "REQUEST to the guest");
    cr_assert_eq(k.op, OP(REQUEST));
    cr_assert_eq(k.dst_port, 1234);
    cr_assert_geq(k.src_port, 1u << 30);
    uint32_t hp = k.src_port;
    char buf[64] = {0};
    cr_assert_eq(vt_read(fd, buf, sizeof(buf), 50), 0, "no OK before the guest accepts");
    vt_send(1234, hp, OP(RESPONSE), 0, NULL, 0);
    char want[32];
    snprintf(want, sizeof(want), "OK %u\n", hp);
    cr_assert_eq(vt_read(fd, buf, strlen(want), 500), strlen(want));
    cr_assert_str_eq(buf, want);
    vt_pump(8);
    cr_assert(vt_recv(&k));
    cr_assert_eq(k.op, OP(RW), "bytes after the CONNECT line are the guest's");
    cr_assert_eq(k.len, 5);
    cr_assert_arr_eq(k.data, "early", 5);
    vt_send(1234, hp, OP(RW), 0, "back", 4);
    memset(buf, 0, sizeof(buf));
    cr_assert_eq(vt_read(fd, buf, 4, 500), 4);
    cr_assert_str_eq(buf, "back");
    close(fd);
}

Test(virtio_vsock, guest_refuses_host_connection)
{
    int fd = vt_host_connect();
    cr_assert_eq(write(fd, "CONNECT 77\n", 11), 11);
    vt_pump(8);
    struct vt_pkt k;
    cr_assert(vt_recv(&k));
    cr_assert_eq(k.op, OP(REQUEST));
    vt_send(77, k.src_port, OP(RST), 0, NULL, 0);
    char buf[8];
    cr_assert_eq(vt_read(fd, buf, sizeof(buf), 500), 0, "closed without OK");
    cr_assert_eq(virtio_vsock_conn_count(vt.h.d), 0);
    close(fd);
}

Test(virtio_vsock, handshake_bad_line_long_line_and_timeout)
{
    char buf[8];
    int bad = vt_host_connect();
    cr_assert_eq(write(bad, "CONNECT x\n", 10), 10);
    int lng = vt_host_connect();
    char line[100];
    memset(line, '7', sizeof(line));
    memcpy(line, "CONNECT ", 8);
    cr_assert_eq(write(lng, line, sizeof(line)), (ssize_t)sizeof(line));
    int mute = vt_host_connect();
    vt_pump(8);
    cr_assert_eq(vt_read(bad, buf, sizeof(buf), 500), 0, "a bad line is refused");
    cr_assert_eq(vt_read(lng, buf, sizeof(buf), 500), 0, "an endless line is refused");
    cr_assert_eq(virtio_vsock_conn_count(vt.h.d), 1, "only the silent peer is left");
    for (int i = 0; i < 50 && virtio_vsock_conn_count(vt.h.d); i++)
        net_harness_pump(&vt.h, 20);
    cr_assert_eq(vt_read(mute, buf, sizeof(buf), 500), 0, "a silent peer is timed out");
    cr_assert_eq(vt_stats().handshake_timeouts, 1);
    cr_assert_eq(vt_stats().conns_refused, 2);
    expect_nothing();
    close(bad);
    close(lng);
    close(mute);
}

Test(virtio_vsock, guest_that_never_answers_request_is_timed_out)
{
    int fd = vt_host_connect();
    cr_assert_eq(write(fd, "CONNECT 9\n", 10), 10);
    vt_pump(8);
    struct vt_pkt k;
    cr_assert(vt_recv(&k));
    uint32_t hp = k.src_port;
    for (int i = 0; i < 50 && virtio_vsock_conn_count(vt.h.d); i++)
        net_harness_pump(&vt.h, 20);
    char buf[8];
    cr_assert_eq(vt_read(fd, buf, sizeof(buf), 500), 0);
    expect_rst(hp, 9);
    cr_assert_eq(vt_stats().handshake_timeouts, 1);
    close(fd);
}

Test(virtio_vsock, parse_connect_line)
{
    uint32_t p = 0;
    cr_assert_eq(vsock_uds_parse_connect("CONNECT 0\n", 10, &p), 0);
    cr_assert_eq(p, 0);
    cr_assert_eq(vsock_uds_parse_connect("CONNECT 4294967295\n", 19, &p), 0);
    cr_assert_eq(p, UINT32_MAX);
    cr_assert_eq(vsock_uds_parse_connect("CONNECT 4294967296\n", 19, &p), -EINVAL);
    cr_assert_eq(vsock_uds_parse_connect("CONNECT 12345678901\n", 20, &p), -EINVAL);
    cr_assert_eq(vsock_uds_parse_connect("CONNECT \n", 9, &p), -EINVAL);
    cr_assert_eq(vsock_uds_parse_connect("CONNECT -1\n", 11, &p), -EINVAL);
    cr_assert_eq(vsock_uds_parse_connect("CONNECT  1\n", 11, &p), -EINVAL);
    cr_assert_eq(vsock_uds_parse_connect("connect 1\n", 10, &p), -EINVAL);
    cr_assert_eq(vsock_uds_parse_connect("CONNECT 1", 9, &p), -EINVAL);
}
