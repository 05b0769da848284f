/*
 * virtio-net, virtio-rng and virtio-console behind the real virtio-mmio
 * transport (tests/lib/fake_virtio.h plays KVM and the driver): bring-up
 * through the registers, kicks through the ioeventfds in the event loop,
 * interrupts through the irqfd, and a driver reset that stops the data
 * path.  Checks the device models against the transport's calling
 * convention rather than against the harness's imitation of it.
 */
#include <criterion/criterion.h>

#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio/console.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "tests/lib/fake_virtio.h"

#define HDR  TAP_VNET_HDR_LEN
#define BASE 0xd0000000ULL
#define GSI  5
/* Guest RAM [0, 8 MiB): rings at 1 MiB steps of 64 KiB, buffers from 4 MiB. */
#define RING(q, part) (1 * MiB + (uint64_t)(q)*0x30000 + (uint64_t)(part)*0x10000)
#define BUF(i)        (4 * MiB + (uint64_t)(i)*0x10000)

static struct gmem mem;
static struct fake_host fh;
static struct virtio_mmio *t;
static struct virtio_dev *dev;
static struct fake_ring ring[2];
static int peer = -1;

static void setup(void)
{
    struct gmem_range r = {0, 8 * MiB};
    struct errbuf err = {0};
    cr_assert_eq(gmem_create(&mem, &r, 1, false, &err), 0, "%s", err.msg);
    fake_host_init(&fh);
}

static void teardown(void)
{
    if (t)
        virtio_mmio_destroy(t);
    if (dev)
        dev->ops->destroy(dev);
    t = NULL;
    dev = NULL;
    fake_host_fini(&fh);
    gmem_destroy(&mem);
    if (peer >= 0)
        close(peer);
    peer = -1;
}

TestSuite(virtio_models_mmio, .init = setup, .fini = teardown, .timeout = 30);

static uint8_t *host(gpa_t gpa, size_t len)
{
    uint8_t *p = gmem_ptr(&mem, gpa, len);
    cr_assert_not_null(p);
    return p;
}

/* Put dev on MMIO and bring it up like a driver: features, nq queues of 64, DRIVER_OK. */
static void bring_up(unsigned nq, uint64_t features)
{
    struct errbuf err = {0};
    cr_assert_eq(virtio_mmio_create(dev, &fh.host, BASE, GSI, &t, &err), 0, "%s", err.msg);
    uint32_t st = fake_mmio_negotiate(t, features);
    cr_assert(st & VIRTIO_STATUS_FEATURES_OK, "features accepted");
    for (unsigned q = 0; q < nq; q++) {
        fake_ring_init(&ring[q], &mem, RING(q, 0), RING(q, 1), RING(q, 2), 64);
        fake_mmio_setup_queue(t, q, &ring[q]);
    }
    fake_mmio_wr(t, FAKE_MMIO_STATUS, st | VIRTIO_STATUS_DRIVER_OK);
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_STATUS), st | VIRTIO_STATUS_DRIVER_OK);
    fake_host_poll(&fh);
}

static void poll_until_idle(void)
{
    for (int i = 0; i < 100 && fake_host_poll(&fh) > 0; i++)
        usleep(1000);
}

Test(virtio_models_mmio, tx_and_rx_through_the_transport)
{
    int sv[2];
    struct net_backend *be;
    struct errbuf err = {0};
    struct virtio_net_config cfg = {.id = "net0"};
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(tap_from_fd(sv[0], "pair", &be), 0);
    cr_assert_eq(virtio_net_create_with_backend(&cfg, be, &mem, &fh.loop, &dev, &err), 0);
    peer = sv[1];
    bring_up(2, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_NET_F_MAC) |
                    VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_DEVICE_ID), VIRTIO_ID_NET);
    uint8_t cfgb[8];
    le32_put(cfgb, fake_mmio_rd(t, FAKE_MMIO_CONFIG));
    le32_put(cfgb + 4, fake_mmio_rd(t, FAKE_MMIO_CONFIG + 4));
    cr_assert_eq(cfgb[0] & 3, 2, "random local unicast MAC through the config window");
    cr_assert_eq(le16_get(cfgb + 6), VIRTIO_NET_S_LINK_UP);

    /* TX: one descriptor with header + 60-byte frame, kicked through the ioeventfd. */
    uint8_t *p = host(BUF(0), HDR + 60);
    memset(p, 0, HDR);
    for (unsigned i = 0; i < 60; i++)
        p[HDR + i] = (uint8_t)i;
    fake_ring_add(&ring[VIRTIO_NET_TXQ], BUF(0), HDR + 60, false);
    uint64_t irqs = fake_host_irqs(&fh);
    fake_host_kick(&fh, VIRTIO_NET_TXQ);
    uint8_t got[128];
    cr_assert_eq(recv(peer, got, sizeof(got), MSG_DONTWAIT), HDR + 60);
    cr_assert_arr_eq(got + HDR, p + HDR, 60);
    cr_assert_eq(fake_ring_used_idx(&ring[VIRTIO_NET_TXQ]), 1);
    cr_assert_gt(fake_host_irqs(&fh), irqs, "used-buffer interrupt");
    cr_assert(fake_mmio_rd(t, FAKE_MMIO_INT_STATUS) & 1);
    fake_mmio_wr(t, FAKE_MMIO_INT_ACK, 1);

    /* RX: a buffer, a kick, then a frame from the backend. */
    fake_ring_add(&ring[VIRTIO_NET_RXQ], BUF(1), 2048, true);
    fake_host_kick(&fh, VIRTIO_NET_RXQ);
    memset(got, 0, sizeof(got));
    for (unsigned i = 0; i < 70; i++)
        got[HDR + i] = (uint8_t)(0x80 + i);
    cr_assert_eq(send(peer, got, HDR + 70, 0), HDR + 70);
    poll_until_idle();
    cr_assert_eq(fake_ring_used_idx(&ring[VIRTIO_NET_RXQ]), 1);
    const uint8_t *rx = host(BUF(1), HDR + 70);
    cr_assert_eq(le16_get(rx + 10), 1, "num_buffers");
    cr_assert_arr_eq(rx + HDR, got + HDR, 70);

    /* A driver reset stops the data path: frames wait in the backend. */
    fake_mmio_wr(t, FAKE_MMIO_STATUS, 0);
    cr_assert_eq(send(peer, got, HDR + 70, 0), HDR + 70);
    /* One pass on the main loop takes the backend out of the poll set (reset
     * itself runs on a vCPU thread that may not call epoll_ctl); then quiet. */
    unsigned first = fake_host_poll(&fh), rounds = 0;
    for (int i = 0; i < 5; i++)
        rounds += fake_host_poll(&fh);
    cr_assert_leq(first, 1);
    cr_assert_eq(rounds, 0, "a reset device does not poll its backend");
}

Test(virtio_models_mmio, rng_through_the_transport)
{
    struct errbuf err = {0};
    struct virtio_rng_config cfg = {.id = "rng0"};
    cr_assert_eq(virtio_rng_create(&cfg, &mem, &fh.loop, &dev, &err), 0, "%s", err.msg);
    bring_up(1, VIRTIO_BIT(VIRTIO_F_VERSION_1));
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_DEVICE_ID), VIRTIO_ID_RNG);
    memset(host(BUF(0), 4096), 0, 4096);
    fake_ring_add(&ring[0], BUF(0), 4096, true);
    fake_host_kick(&fh, 0);
    cr_assert_eq(fake_ring_used_idx(&ring[0]), 1);
    const uint8_t *b = host(BUF(0), 4096);
    unsigned zeros = 0;
    for (unsigned i = 0; i < 4096; i++)
        zeros += b[i] == 0;
    cr_assert_lt(zeros, 100);
}

Test(virtio_models_mmio, console_through_the_transport)
{
    int sv[2];
    struct chardev *cd;
    struct errbuf err = {0};
    struct virtio_console_config cfg = {.id = "console0"};
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(chardev_open_fds(sv[0], sv[0], &cd, &err), 0);
    cr_assert_eq(virtio_console_create_with_chardev(&cfg, cd, &mem, &fh.loop, &dev, &err), 0);
    peer = sv[1];
    /* Input typed before the driver is up (and resets the device) is kept for it. */
    cr_assert_eq(send(peer, "early", 5, 0), 5);
    poll_until_idle();
    bring_up(2, VIRTIO_BIT(VIRTIO_F_VERSION_1));
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_DEVICE_ID), VIRTIO_ID_CONSOLE);
    fake_ring_add(&ring[VIRTIO_CONSOLE_RXQ], BUF(0), 64, true);
    fake_host_kick(&fh, VIRTIO_CONSOLE_RXQ);
    poll_until_idle();
    cr_assert_eq(fake_ring_used_idx(&ring[VIRTIO_CONSOLE_RXQ]), 1);
    cr_assert_arr_eq(host(BUF(0), 5), "early", 5);

    memcpy(host(BUF(1), 3), "out", 3);
    fake_ring_add(&ring[VIRTIO_CONSOLE_TXQ], BUF(1), 3, false);
    fake_host_kick(&fh, VIRTIO_CONSOLE_TXQ);
    char got[8] = {0};
    struct pollfd pfd = {peer, POLLIN, 0};
    cr_assert_eq(poll(&pfd, 1, 200), 1);
    cr_assert_eq(recv(peer, got, sizeof(got), 0), 3);
    cr_assert_str_eq(got, "out");
}
