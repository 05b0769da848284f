/*
 * virtio-net save/load: MAC, status and the frame in hand survive a round
 * trip into a second device; chains held for a partly delivered frame are
 * returned by the destination; damaged or inconsistent state is refused
 * and leaves the device unchanged; the MAC parser.
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
     VIRTIO_BIT(VIRTIO_NET_F_STATUS) | VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF))
#define RXQ VIRTIO_NET_RXQ

static struct net_harness src, dst;
static int psrc = -1, pdst = -1;
static const uint8_t mac_a[6] = {0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc};

static void setup(void)
{
    net_harness_init(&src);
    net_harness_init(&dst);
}

static void teardown(void)
{
    net_harness_fini(&src);
    net_harness_fini(&dst);
    if (psrc >= 0)
        close(psrc);
    if (pdst >= 0)
        close(pdst);
    psrc = pdst = -1;
}

TestSuite(virtio_net_state, .init = setup, .fini = teardown, .timeout = 30);

static void send_frame(int fd, size_t len, uint8_t seed)
{
    uint8_t buf[HDR + 4096];
    memset(buf, 0, HDR);
    for (size_t i = 0; i < len; i++)
        buf[HDR + i] = (uint8_t)(seed + i);
    cr_assert_eq(send(fd, buf, HDR + len, 0), (ssize_t)(HDR + len));
}

static void read_mac(struct virtio_dev *d, uint8_t mac[6])
{
    d->ops->config_read(d, VIRTIO_NET_CFG_MAC, mac, 6);
}

Test(virtio_net_state, round_trip_with_frame_in_hand)
{
    net_harness_start(&src, net_harness_new_net(&src, mac_a, &psrc), 2, 256, FEATS);
    send_frame(psrc, 700, 3); /* no RX buffers: the frame stays in hand */
    net_harness_settle(&src, 20);
    struct vstate_out o = net_harness_save(src.d);

    struct virtio_dev *d = net_harness_new_net(&dst, NULL, &pdst);
    cr_assert_eq(net_harness_load(d, o.buf, o.len), 0);
    uint8_t mac[6];
    read_mac(d, mac);
    cr_assert_arr_eq(mac, mac_a, 6);

    /* Saving again gives the same bytes. */
    struct vstate_out o2 = net_harness_save(d);
    cr_assert_eq(o2.len, o.len);
    cr_assert_arr_eq(o2.buf, o.buf, o.len);
    vstate_out_free(&o2);
    vstate_out_free(&o);

    net_harness_start(&dst, d, 2, 256, FEATS);
    gpa_t g;
    net_harness_add_buf(&dst, RXQ, 2048, true, 0, &g);
    net_harness_kick(&dst, RXQ);
    net_harness_settle(&dst, 20);
    cr_assert_eq(vqb_used_idx(&dst.q[RXQ]), 1, "the frame is delivered on the destination");
    uint32_t id, len;
    vqb_used_elem(&dst.q[RXQ], 0, &id, &len);
    cr_assert_eq(len, HDR + 700);
    const uint8_t *p = vqb_host(&dst.q[RXQ], g, len);
    cr_assert_eq(le16_get(p + 10), 1, "num_buffers");
    for (size_t i = 0; i < 700; i++)
        cr_assert_eq(p[HDR + i], (uint8_t)(3 + i));
}

Test(virtio_net_state, held_chains_are_returned_on_the_destination)
{
    net_harness_start(&src, net_harness_new_net(&src, mac_a, &psrc), 2, 256, FEATS);
    uint16_t h1 = net_harness_add_buf(&src, RXQ, 1024, true, 0, NULL);
    uint16_t h2 = net_harness_add_buf(&src, RXQ, 1024, true, 0, NULL);
    net_harness_kick(&src, RXQ);
    send_frame(psrc, 3000, 1); /* needs three buffers: two are held */
    net_harness_settle(&src, 20);
    cr_assert_eq(vqb_used_idx(&src.q[RXQ]), 0);
    struct vstate_out o = net_harness_save(src.d);

    struct virtio_dev *d = net_harness_new_net(&dst, NULL, &pdst);
    cr_assert_eq(net_harness_load(d, o.buf, o.len), 0);
    vstate_out_free(&o);
    net_harness_start(&dst, d, 2, 256, FEATS);
    net_harness_kick(&dst, RXQ);
    net_harness_settle(&dst, 20);
    cr_assert_eq(vqb_used_idx(&dst.q[RXQ]), 2, "held chains completed");
    uint32_t id, len;
    vqb_used_elem(&dst.q[RXQ], 0, &id, &len);
    cr_assert_eq(id, h1);
    cr_assert_eq(len, 0);
    vqb_used_elem(&dst.q[RXQ], 1, &id, &len);
    cr_assert_eq(id, h2);
    cr_assert_eq(len, 0);
}

/* A hand-made "virtio-net" v1 section. */
struct fake {
    uint16_t version;
    uint8_t mac[6];
    uint16_t status;
    uint16_t nret;
    uint16_t head;
    uint32_t flen;
    size_t frame_bytes; /* bytes actually written for the frame */
    bool trailing;
};

static struct vstate_out build(const struct fake *f)
{
    static uint8_t frame[70000];
    struct vstate_out o;
    vstate_out_init(&o);
    vstate_begin(&o, "virtio-net", f->version);
    vstate_put_bytes(&o, f->mac, 6);
    vstate_put_u16(&o, f->status);
    vstate_put_u16(&o, f->nret);
    for (unsigned i = 0; i < f->nret; i++)
        vstate_put_u16(&o, f->head);
    vstate_put_u32(&o, f->flen);
    vstate_put_bytes(&o, frame, f->frame_bytes);
    if (f->trailing)
        vstate_put_u8(&o, 0);
    cr_assert_eq(vstate_end(&o), 0);
    return o;
}

static int try_load(struct virtio_dev *d, const struct fake *f)
{
    struct vstate_out o = build(f);
    int r = net_harness_load(d, o.buf, o.len);
    vstate_out_free(&o);
    return r;
}

Test(virtio_net_state, damaged_state_is_refused)
{
    struct virtio_dev *d = net_harness_new_net(&dst, mac_a, &pdst);
    dst.d = d; /* destroyed by the harness */
    const struct fake good = {.version = 1,
                              .mac = {0x02, 1, 2, 3, 4, 5},
                              .status = 1,
                              .nret = 1,
                              .head = 7,
                              .flen = 100,
                              .frame_bytes = 100};
    struct fake f;

    f = good, f.mac[0] = 0x03;
    cr_assert_eq(try_load(d, &f), -EINVAL, "multicast MAC");
    f = good, f.status = 3;
    cr_assert_eq(try_load(d, &f), -EINVAL, "unknown status bit");
    f = good, f.nret = 257;
    cr_assert_eq(try_load(d, &f), -EINVAL, "too many held heads");
    f = good, f.head = 256;
    cr_assert_eq(try_load(d, &f), -EINVAL, "head beyond the queue");
    f = good, f.flen = 20, f.frame_bytes = 20;
    cr_assert_eq(try_load(d, &f), -EINVAL, "frame shorter than header + Ethernet header");
    f = good, f.flen = 61 * 1024, f.frame_bytes = 61 * 1024;
    cr_assert_eq(try_load(d, &f), -EINVAL, "frame over the carried maximum");
    f = good, f.frame_bytes = 99;
    cr_assert_neq(try_load(d, &f), 0, "frame shorter than its length");
    f = good, f.trailing = true;
    cr_assert_neq(try_load(d, &f), 0, "trailing byte");
    f = good, f.version = 2;
    cr_assert_neq(try_load(d, &f), 0, "unknown version");

    uint8_t mac[6];
    read_mac(d, mac);
    cr_assert_arr_eq(mac, mac_a, 6, "the device is unchanged after refusals");

    /* Every truncation of a good state is refused. */
    struct vstate_out o = build(&good);
    for (size_t n = 0; n < o.len; n++)
        cr_assert_neq(net_harness_load(d, o.buf, n), 0, "truncated to %zu bytes", n);
    read_mac(d, mac);
    cr_assert_arr_eq(mac, mac_a, 6);
    cr_assert_eq(net_harness_load(d, o.buf, o.len), 0, "the good state loads");
    read_mac(d, mac);
    cr_assert_arr_eq(mac, good.mac, 6);
    vstate_out_free(&o);

    /* Another device's section is not ours. */
    struct vstate_out r;
    vstate_out_init(&r);
    vstate_begin(&r, "virtio-rng", 1);
    cr_assert_eq(vstate_end(&r), 0);
    cr_assert_neq(net_harness_load(d, r.buf, r.len), 0);
    vstate_out_free(&r);
}

Test(virtio_net_state, parse_mac)
{
    uint8_t m[6] = {0};
    cr_assert_eq(virtio_net_parse_mac("52:54:00:Ab:cD:ef", m), 0);
    const uint8_t want[6] = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};
    cr_assert_arr_eq(m, want, 6);
    const char *bad[] = {"",
                         "52:54:00:ab:cd",
                         "52:54:00:ab:cd:ef:",
                         "52-54-00-ab-cd-ef",
                         "52:54:00:ab:cd:eg",
                         "01:00:5e:00:00:01", /* multicast */
                         "5:54:00:ab:cd:ef0"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        cr_assert_eq(virtio_net_parse_mac(bad[i], m), -EINVAL, "%s", bad[i]);
    cr_assert_eq(virtio_net_parse_mac(NULL, m), -EINVAL);
    cr_assert_arr_eq(m, want, 6, "unchanged on error");
}

Test(virtio_net_state, create_errors)
{
    struct virtio_dev *d = NULL;
    struct errbuf err = {0};
    struct virtio_net_config cfg = {.id = "net0", .tap = "this-name-is-too-long"};
    cr_assert_lt(virtio_net_create(&cfg, NULL, &dst.loop, &d, &err), 0);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    cr_assert(strstr(err.msg, "this-name-is-too-long"), "%s", err.msg);
    cr_assert_null(strchr(err.msg, '\n'));

    /* A multicast MAC is a usage error; the backend is released. */
    int sv[2];
    struct net_backend *be;
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    cr_assert_eq(tap_from_fd(sv[0], "pair", &be), 0);
    struct virtio_net_config mc = {.id = "net0", .has_mac = true, .mac = {1, 0, 0x5e, 0, 0, 1}};
    struct errbuf e2 = {0};
    cr_assert_lt(virtio_net_create_with_backend(&mc, be, NULL, &dst.loop, &d, &e2), 0);
    cr_assert_eq(e2.exit_code, WISP_EXIT_USAGE);
    char c;
    cr_assert_eq(recv(sv[1], &c, 1, MSG_DONTWAIT), 0, "backend closed: peer sees EOF");
    close(sv[1]);

    /* An event loop that does not exist yet is an internal error, reported once. */
    struct evloop none = {.epfd = -1};
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    cr_assert_eq(tap_from_fd(sv[0], "pair", &be), 0);
    struct errbuf e3 = {0};
    struct virtio_net_config ok = {.id = "net0"};
    cr_assert_lt(virtio_net_create_with_backend(&ok, be, NULL, &none, &d, &e3), 0);
    cr_assert_eq(e3.exit_code, WISP_EXIT_FAILURE);
    close(sv[1]);
}
