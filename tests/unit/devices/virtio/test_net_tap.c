/*
 * virtio-net on a real tap, inside a network namespace of the test's own
 * (Criterion runs each test in its own process, so unshare(CLONE_NEWNET)
 * leaves the host untouched): a guest frame comes out of the tap into a
 * packet socket, and a frame sent into the tap reaches the guest's buffers.
 * Also the one-line errors of tap_open().  Skipped only when /dev/net/tun is
 * missing.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio/net.h"
#include "tests/lib/net_harness.h"

#define HDR       TAP_VNET_HDR_LEN
#define ETHERTYPE 0x88b5 /* IEEE local experimental: nothing else sends it */
#define TAPNAME   "wisptap0"

static struct net_harness h;
static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x01, 0x02, 0x03};
static const uint8_t peer_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};

static void setup(void)
{
    net_harness_init(&h);
}

static void teardown(void)
{
    net_harness_fini(&h);
}

TestSuite(virtio_net_tap, .init = setup, .fini = teardown, .timeout = 30);

static void enter_netns(void)
{
    if (access("/dev/net/tun", R_OK | W_OK) != 0)
        cr_skip_test("/dev/net/tun is missing");
    cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare(CLONE_NEWNET): %s", strerror(errno));
}

static void link_up(const char *name)
{
    /* Fewer stray frames (router solicitations) on the tap; best effort. */
    char p[96];
    snprintf(p, sizeof(p), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", name);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r __unused = write(fd, "1", 1);
        close(fd);
    }
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s, 0);
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    cr_assert_eq(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
    ifr.ifr_flags |= IFF_UP;
    cr_assert_eq(ioctl(s, SIOCSIFFLAGS, &ifr), 0, "link up: %s", strerror(errno));
    close(s);
}

static int packet_socket(const char *name)
{
    int ps = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    cr_assert_geq(ps, 0, "packet socket: %s", strerror(errno));
    struct sockaddr_ll sll = {.sll_family = AF_PACKET,
                              .sll_protocol = htons(ETH_P_ALL),
                              .sll_ifindex = (int)if_nametoindex(name)};
    cr_assert_gt(sll.sll_ifindex, 0);
    cr_assert_eq(bind(ps, (struct sockaddr *)&sll, sizeof(sll)), 0);
    return ps;
}

static size_t make_frame(uint8_t *f, const uint8_t *dst, const uint8_t *src, size_t payload,
                         uint8_t seed)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = ETHERTYPE >> 8;
    f[13] = ETHERTYPE & 0xff;
    for (size_t i = 0; i < payload; i++)
        f[14 + i] = (uint8_t)(seed + 3 * i);
    return 14 + payload;
}

Test(virtio_net_tap, frames_both_ways_through_a_real_tap)
{
    enter_netns();
    struct virtio_dev *d;
    struct errbuf err = {0};
    struct virtio_net_config cfg = {.id = "net0", .tap = TAPNAME, .has_mac = true};
    memcpy(cfg.mac, mac, 6);
    cr_assert_eq(virtio_net_create(&cfg, NULL, &h.loop, &d, &err), 0, "%s", err.msg);
    link_up(TAPNAME);
    int ps = packet_socket(TAPNAME);
    net_harness_start(&h, d, 2, 256,
                      VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_NET_F_MAC) |
                          VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF));
    net_harness_settle(&h, 0);

    /* Guest -> tap -> packet socket. */
    uint8_t frame[256], got[2048];
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    size_t len = make_frame(frame, bcast, mac, 100, 1);
    struct vqb *tq = &h.q[VIRTIO_NET_TXQ];
    gpa_t g = vqb_alloc(tq, HDR + len, 0);
    memcpy((uint8_t *)vqb_host(tq, g, HDR + len) + HDR, frame, len);
    struct vqb_buf b = {g, (uint32_t)(HDR + len), false};
    vqb_add_chain(tq, &b, 1);
    net_harness_kick(&h, VIRTIO_NET_TXQ);
    bool seen = false;
    for (int tries = 0; tries < 50 && !seen; tries++) {
        struct pollfd pfd = {ps, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t n = recv(ps, got, sizeof(got), 0);
        if (n >= 14 && got[12] == (ETHERTYPE >> 8) && got[13] == (ETHERTYPE & 0xff)) {
            cr_assert_eq(n, (ssize_t)len);
            cr_assert_arr_eq(got, frame, len);
            seen = true;
        }
    }
    cr_assert(seen, "the guest's frame came out of the tap");
    struct virtio_net_stats st;
    virtio_net_get_stats(d, &st);
    cr_assert_eq(st.tx_frames, 1);

    /* Packet socket -> tap -> guest. */
    struct vqb *rq = &h.q[VIRTIO_NET_RXQ];
    gpa_t rx[16];
    for (int i = 0; i < 16; i++)
        net_harness_add_buf(&h, VIRTIO_NET_RXQ, 2048, true, 0, &rx[i]);
    net_harness_kick(&h, VIRTIO_NET_RXQ);
    len = make_frame(frame, mac, peer_mac, 150, 7);
    cr_assert_eq(send(ps, frame, len, 0), (ssize_t)len, "send: %s", strerror(errno));
    seen = false;
    for (int tries = 0; tries < 50 && !seen; tries++) {
        net_harness_pump(&h, 100);
        for (uint16_t k = 0; k < vqb_used_idx(rq) && !seen; k++) {
            uint32_t id, ulen;
            vqb_used_elem(rq, k, &id, &ulen);
            const uint8_t *p = vqb_host(rq, rx[id % 16], 2048);
            if (ulen >= HDR + 14 && p[HDR + 12] == (ETHERTYPE >> 8)) {
                cr_assert_eq(ulen, HDR + len);
                for (unsigned i = 0; i < HDR; i++)
                    cr_assert_eq(p[i], i == 10 ? 1 : 0, "header byte %u", i);
                cr_assert_arr_eq(p + HDR, frame, len);
                seen = true;
            }
        }
    }
    cr_assert(seen, "the frame sent into the tap reached the guest");
    close(ps);
}

Test(virtio_net_tap, open_errors_are_one_line)
{
    enter_netns();
    struct net_backend *a, *b;
    struct errbuf err = {0};
    cr_assert_eq(tap_open("wisptap1", &a, &err), 0, "%s", err.msg);

    /* A single-queue tap takes one attachment. */
    cr_assert_eq(tap_open("wisptap1", &b, &err), -EBUSY);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    cr_assert(strstr(err.msg, "wisptap1") && strstr(err.msg, strerror(EBUSY)), "%s", err.msg);
    cr_assert_null(strchr(err.msg, '\n'));

    /* A device of another kind. */
    struct errbuf e2 = {0};
    cr_assert_eq(tap_open("lo", &b, &e2), -EINVAL);
    cr_assert_eq(e2.exit_code, WISP_EXIT_USAGE);
    cr_assert(strstr(e2.msg, "'lo'"), "%s", e2.msg);

    struct errbuf e3 = {0};
    cr_assert_eq(tap_open("bad/name", &b, &e3), -EINVAL);
    cr_assert_eq(e3.exit_code, WISP_EXIT_USAGE);
    a->ops->destroy(a);
}
