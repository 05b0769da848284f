/*
 * Helpers of the virtio-vsock unit tests (see vsock_util.h).
 */
#include "tests/unit/devices/virtio/vsock_util.h"

#include <criterion/criterion.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct vt vt;

void vt_start(unsigned hs_ms)
{
    memset(&vt, 0, sizeof(vt));
    snprintf(vt.dir, sizeof(vt.dir), "/tmp/wisp-vsock-XXXXXX");
    cr_assert_not_null(mkdtemp(vt.dir));
    snprintf(vt.path, sizeof(vt.path), "%s/v.sock", vt.dir);
    net_harness_init(&vt.h);
    struct virtio_vsock_config cfg = {
        .id = "vsock0", .guest_cid = VT_CID, .uds_path = vt.path, .handshake_ms = hs_ms};
    struct virtio_dev *d;
    struct errbuf err = {0};
    cr_assert_eq(virtio_vsock_create(&cfg, NULL, &vt.h.loop, &d, &err), 0, "%s", err.msg);
    net_harness_start(&vt.h, d, 3, VIRTIO_VSOCK_QUEUE_SIZE, VIRTIO_BIT(VIRTIO_F_VERSION_1));
    vt.tx_gpa = vqb_alloc(&vt.h.q[VIRTIO_VSOCK_TXQ], VIRTIO_VSOCK_HDR_LEN + 2 * 65536, 0);
    for (unsigned i = 0; i < VT_RX_POOL; i++)
        vt.rx_gpa[i] = vqb_alloc(&vt.h.q[VIRTIO_VSOCK_RXQ], VT_RX_BUF, 0);
    net_harness_settle(&vt.h, 0);
}

void vt_stop(void)
{
    net_harness_fini(&vt.h);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", vt.dir);
    cr_assert_eq(system(cmd), 0);
}

void vt_send_raw(uint64_t src_cid, uint64_t dst_cid, uint32_t src_port, uint32_t dst_port,
                 uint16_t type, uint16_t op, uint32_t flags, uint32_t buf_alloc, uint32_t fwd_cnt,
                 const void *data, uint32_t len, uint32_t chain_len)
{
    struct vqb *q = &vt.h.q[VIRTIO_VSOCK_TXQ];
    uint32_t cl = chain_len ? chain_len : VIRTIO_VSOCK_HDR_LEN + len;
    uint8_t *p = vqb_host(q, vt.tx_gpa, VIRTIO_VSOCK_HDR_LEN + 2 * 65536);
    uint8_t h[VIRTIO_VSOCK_HDR_LEN] = {0};
    le64_put(h + VSOCK_HDR_SRC_CID, src_cid);
    le64_put(h + VSOCK_HDR_DST_CID, dst_cid);
    le32_put(h + VSOCK_HDR_SRC_PORT, src_port);
    le32_put(h + VSOCK_HDR_DST_PORT, dst_port);
    le32_put(h + VSOCK_HDR_LEN, len);
    le16_put(h + VSOCK_HDR_TYPE, type);
    le16_put(h + VSOCK_HDR_OP, op);
    le32_put(h + VSOCK_HDR_FLAGS, flags);
    le32_put(h + VSOCK_HDR_BUF_ALLOC, buf_alloc);
    le32_put(h + VSOCK_HDR_FWD_CNT, fwd_cnt);
    memcpy(p, h, sizeof(h) < cl ? sizeof(h) : cl);
    if (data && len && cl > VIRTIO_VSOCK_HDR_LEN)
        memcpy(p + VIRTIO_VSOCK_HDR_LEN, data,
               len < cl - VIRTIO_VSOCK_HDR_LEN ? len : cl - VIRTIO_VSOCK_HDR_LEN);
    struct vqb_buf b = {vt.tx_gpa, cl, false};
    uint16_t used = vqb_used_idx(q);
    vqb_add_chain(q, &b, 1);
    net_harness_kick(&vt.h, VIRTIO_VSOCK_TXQ);
    cr_assert_eq(vqb_used_idx(q), (uint16_t)(used + 1), "every tx chain completes at once");
}

void vt_send(uint32_t gport, uint32_t hport, uint16_t op, uint32_t flags, const void *data,
             uint32_t len)
{
    vt_send_raw(VT_CID, VIRTIO_VSOCK_HOST_CID, gport, hport, VIRTIO_VSOCK_TYPE_STREAM, op, flags,
                1u << 20, 0, data, len, 0);
}

void vt_pump(unsigned n)
{
    struct vqb *q = &vt.h.q[VIRTIO_VSOCK_RXQ];
    bool added = false;
    while ((uint16_t)(vt.rx_posted - vt.rx_seen) < n) {
        gpa_t g = vt.rx_gpa[vt.rx_posted % VT_RX_POOL];
        struct vqb_buf b = {g, VT_RX_BUF, true};
        uint16_t head = vqb_add_chain(q, &b, 1);
        vt.head_gpa[head] = g;
        vt.rx_posted++;
        added = true;
    }
    if (added)
        net_harness_kick(&vt.h, VIRTIO_VSOCK_RXQ);
    net_harness_settle(&vt.h, 10);
}

bool vt_recv(struct vt_pkt *p)
{
    struct vqb *q = &vt.h.q[VIRTIO_VSOCK_RXQ];
    if (vqb_used_idx(q) == vt.rx_seen)
        return false;
    uint32_t id, len;
    vqb_used_elem(q, vt.rx_seen++, &id, &len);
    cr_assert_lt(id, VIRTIO_VSOCK_QUEUE_SIZE);
    cr_assert_geq(len, VIRTIO_VSOCK_HDR_LEN);
    cr_assert_leq(len, VT_RX_BUF);
    const uint8_t *h = vqb_host(q, vt.head_gpa[id], VT_RX_BUF);
    p->src_cid = le64_get(h + VSOCK_HDR_SRC_CID);
    p->dst_cid = le64_get(h + VSOCK_HDR_DST_CID);
    p->src_port = le32_get(h + VSOCK_HDR_SRC_PORT);
    p->dst_port = le32_get(h + VSOCK_HDR_DST_PORT);
    p->len = le32_get(h + VSOCK_HDR_LEN);
    p->type = le16_get(h + VSOCK_HDR_TYPE);
    p->op = le16_get(h + VSOCK_HDR_OP);
    p->flags = le32_get(h + VSOCK_HDR_FLAGS);
    p->buf_alloc = le32_get(h + VSOCK_HDR_BUF_ALLOC);
    p->fwd_cnt = le32_get(h + VSOCK_HDR_FWD_CNT);
    cr_assert_eq(p->len, len - VIRTIO_VSOCK_HDR_LEN, "used length matches the header");
    memcpy(p->data, h + VIRTIO_VSOCK_HDR_LEN, p->len);
    return true;
}

static void addr_of(struct sockaddr_un *sa, uint32_t port, bool suffix)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (suffix)
        snprintf(sa->sun_path, sizeof(sa->sun_path), "%s_%u", vt.path, port);
    else
        snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", vt.path);
}

int vt_listen(uint32_t port)
{
    struct sockaddr_un sa;
    addr_of(&sa, port, true);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(fd, 128), 0);
    return fd;
}

int vt_accept(int lfd)
{
    struct pollfd p = {lfd, POLLIN, 0};
    cr_assert_eq(poll(&p, 1, 1000), 1, "a connection arrives");
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(fd, 0);
    return fd;
}

int vt_host_connect(void)
{
    struct sockaddr_un sa;
    addr_of(&sa, 0, false);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

size_t vt_read(int fd, void *buf, size_t len, int wait_ms)
{
    size_t got = 0;
    struct pollfd pfd = {fd, POLLIN, 0};
    while (got < len && poll(&pfd, 1, got ? 0 : wait_ms) > 0) {
        ssize_t n = recv(fd, (uint8_t *)buf + got, len - got, MSG_DONTWAIT);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

struct virtio_vsock_stats vt_stats(void)
{
    struct virtio_vsock_stats st;
    virtio_vsock_get_stats(vt.h.d, &st);
    return st;
}
