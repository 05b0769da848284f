/*
 * A blk device over the vhost-user data plane, driven through the real
 * virtio-mmio transport (with fake KVM: tests/lib/fake_virtio.c) against
 * the real qemu-storage-daemon, no KVM needed.  The driver side writes the
 * registers as a guest would: the device ID and capacity come from the
 * backend; at DRIVER_OK the transport's kick eventfd goes to the backend,
 * so a "KVM" kick reaches it without wisp; the backend's call becomes an
 * irqfd pulse with InterruptStatus bit 0 set; a reset stops the ring; a
 * backend that dies sets DEVICE_NEEDS_RESET and the transport keeps
 * answering.  Plus the device's refusal to migrate.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "devices/vhost/vhost_user_dp.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/virtio_dp.h"
#include "tests/lib/fake_virtio.h"
#include "tests/lib/qsd_peer.h"
#include "tests/lib/vhu_blk_rig.h"
#include "tests/lib/virtq_builder.h"
#include "vmm/log.h"
#include "vmm/metrics.h"

#define IMG   (1024 * 1024)
#define QSIZE 16
#define LIVE                                                                                       \
    (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |                \
     VIRTIO_STATUS_DRIVER_OK)

static struct qsd_peer p;
static struct vqb b;
static struct fake_host h;
static struct virtio_dev *d;
static struct virtio_mmio *t;

static void setup(void)
{
    void *dp = NULL;
    vhu_blk_rig_up(&p, &b, &h, IMG, QSIZE, "vblk0", false, &dp, &d, &t);
}

static void teardown(void)
{
    vhu_blk_rig_down(&p, &b, &h, d, t);
}

TestSuite(vhost_user_blk, .init = setup, .fini = teardown, .timeout = 30);

static uint32_t rd(uint64_t off)
{
    return fake_mmio_rd(t, off);
}

static void wr(uint64_t off, uint32_t v)
{
    fake_mmio_wr(t, off, v);
}

static void go_live(void)
{
    vhu_blk_rig_live(t, VIRTIO_BIT(VIRTIO_F_VERSION_1), QSIZE);
}

/* Is the transport's kick eventfd of queue 0 polled by the main loop? */
static bool kick_in_loop(void)
{
    int fd = fake_host_kick_fd(&h, 0);
    for (unsigned i = 0; i < EVLOOP_MAX_HANDLERS; i++)
        if (h.loop.handlers[i].fd == fd)
            return true;
    return false;
}

/* One request; returns the status byte's gpa. */
static gpa_t req(uint32_t type, uint64_t sector, gpa_t data, uint32_t len)
{
    gpa_t hdr = vqb_alloc(&b, 16, 0);
    uint8_t *hp = vqb_host(&b, hdr, 16);
    memcpy(hp, &type, 4);
    memset(hp + 4, 0, 4);
    memcpy(hp + 8, &sector, 8);
    gpa_t st = vqb_alloc(&b, 1, 0xff);
    struct vqb_buf bufs[3] = {{hdr, 16, false}, {data, len, type == 0}, {st, 1, true}};
    vqb_add_chain(&b, bufs, 3);
    return st;
}

/* "KVM" kick of queue 0, then run the main loop until used.idx reaches want. */
static void kick_wait(uint16_t want)
{
    fake_host_kick(&h, 0);
    for (int i = 0; i < 500 && vqb_used_idx(&b) != want; i++) {
        fake_host_poll(&h);
        usleep(5000);
    }
    cr_assert_eq(vqb_used_idx(&b), want);
    /* The call reached the main loop: InterruptStatus bit 0, then a pulse. */
    for (int i = 0; i < 200 && !(rd(FAKE_MMIO_INT_STATUS) & 1); i++) {
        fake_host_poll(&h);
        usleep(5000);
    }
    cr_assert(rd(FAKE_MMIO_INT_STATUS) & 1, "InterruptStatus %#x", rd(FAKE_MMIO_INT_STATUS));
    cr_assert_gt(fake_host_irqs(&h), 0);
    wr(FAKE_MMIO_INT_ACK, 1);
}

Test(vhost_user_blk, identity_and_config_come_from_the_backend)
{
    cr_assert_eq(rd(FAKE_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
    uint64_t cap = rd(FAKE_MMIO_CONFIG) | (uint64_t)rd(FAKE_MMIO_CONFIG + 4) << 32;
    cr_assert_eq(cap, IMG / 512);
    wr(FAKE_MMIO_DEV_FEATURES_SEL, 1);
    cr_assert(rd(FAKE_MMIO_DEV_FEATURES) & 1, "VERSION_1 offered");
    wr(FAKE_MMIO_DEV_FEATURES_SEL, 0);
    uint32_t lo = rd(FAKE_MMIO_DEV_FEATURES);
    cr_assert_eq(lo & (1u << 12), 0, "MQ must not be offered (one queue)");
    cr_assert_eq(lo & (1u << 30), 0, "PROTOCOL_FEATURES is not a device feature");
    /* wisp's blk profile, the built-in device's, not the backend's own view
     * (qemu-storage-daemon offers TOPOLOGY and CONFIG_WCE, SIZE_MAX 0). */
    struct virtio_blk_caps caps = {
        .capacity = IMG / 512, .flush = true, .discard = true, .write_zeroes = true};
    uint8_t want[VIRTIO_BLK_CONFIG_SIZE];
    uint64_t f = virtio_blk_profile(&caps, want);
    cr_assert_eq(lo & 0xffffff, (uint32_t)f, "device features 0x%x, the profile's 0x%x",
                 lo & 0xffffff, (uint32_t)f);
    for (unsigned i = 0; i < VIRTIO_BLK_CONFIG_SIZE; i += 4) {
        uint32_t w = want[i] | want[i + 1] << 8 | want[i + 2] << 16 | (uint32_t)want[i + 3] << 24;
        cr_assert_eq(rd(FAKE_MMIO_CONFIG + i), w, "config word at %u", i);
    }
    cr_assert_null(d->ops->unmigratable, "its state is portable across data planes");
}

Test(vhost_user_blk, guest_io_through_the_backend_and_the_image_from_the_host)
{
    cr_assert(kick_in_loop());
    go_live();
    cr_assert_not(kick_in_loop(), "the kick eventfd must go to the backend, not the main loop");
    gpa_t w = vqb_alloc(&b, 1024, 0x5a);
    gpa_t st = req(1, 4, w, 1024);
    kick_wait(1);
    cr_assert_eq(*(uint8_t *)vqb_host(&b, st, 1), 0);
    gpa_t r = vqb_alloc(&b, 1024, 0);
    st = req(0, 4, r, 1024);
    kick_wait(2);
    cr_assert_eq(*(uint8_t *)vqb_host(&b, st, 1), 0);
    cr_assert_eq(memcmp(vqb_host(&b, r, 1024), vqb_host(&b, w, 1024), 1024), 0);
    /* Reset stops the ring (GET_VRING_BASE drains), then the image is checked. */
    wr(FAKE_MMIO_STATUS, 0);
    cr_assert_eq(rd(FAKE_MMIO_STATUS), 0);
    cr_assert(kick_in_loop(), "the transport polls its kick eventfd again after a reset");
    int fd = open(p.img, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    uint8_t buf[1024];
    cr_assert_eq(pread(fd, buf, sizeof(buf), 4 * 512), (ssize_t)sizeof(buf));
    close(fd);
    for (unsigned i = 0; i < sizeof(buf); i++)
        cr_assert_eq(buf[i], 0x5a, "image byte %u", i);
    /* And the device comes up again after the reset. */
    go_live();
}

Test(vhost_user_blk, a_dead_backend_sets_needs_reset_and_the_vmm_goes_on)
{
    struct metrics_dev m = {0};
    d->metrics = &m;
    go_live();
    qsd_peer_kill(&p);
    for (int i = 0; i < 200 && !virtio_dp_dead(d); i++) {
        fake_host_poll(&h);
        usleep(5000);
    }
    cr_assert(virtio_dp_dead(d));
    cr_assert_eq(m.dataplane_failures, 1, "the failure is counted once");
    cr_assert_eq(m.dataplane_reconnects, 0);
    cr_assert(rd(FAKE_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    cr_assert(rd(FAKE_MMIO_INT_STATUS) & 2, "configuration-change interrupt");
    /* The driver resets; re-activation fails cleanly, nothing hangs. */
    wr(FAKE_MMIO_STATUS, 0);
    cr_assert_eq(fake_mmio_negotiate(t, VIRTIO_BIT(VIRTIO_F_VERSION_1)),
                 VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    wr(FAKE_MMIO_QUEUE_SEL, 0);
    wr(FAKE_MMIO_QUEUE_NUM, QSIZE);
    wr(FAKE_MMIO_DESC_LO, (uint32_t)VQB_DESC_GPA);
    wr(FAKE_MMIO_DRIVER_LO, (uint32_t)VQB_AVAIL_GPA);
    wr(FAKE_MMIO_DEVICE_LO, (uint32_t)VQB_USED_GPA);
    wr(FAKE_MMIO_QUEUE_READY, 1);
    wr(FAKE_MMIO_STATUS, LIVE);
    cr_assert(rd(FAKE_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    cr_assert_eq(m.dataplane_failures, 1, "a dead data plane is not counted again");
    d->metrics = NULL; /* m goes out of scope before teardown */
}
