/*
 * A vhost-user-blk backend that dies and is started again (no KVM): the
 * blk device over the vhost-user data plane with `reconnect`, through the
 * real virtio-mmio transport (fake KVM), against qemu-storage-daemon.  The
 * daemon is killed with SIGKILL while the device runs, a request is made
 * and kicked while no backend is there, and a new daemon on the same image
 * and socket takes the ring over at the used index: the request completes,
 * the device never shows DEVICE_NEEDS_RESET, and both writes are in the
 * image.  Without `reconnect` the same death fails the device
 * (test_vhost_user_blk.c).
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "devices/vhost/vhost_user_dp.h"
#include "devices/virtio/mmio.h"
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
static void *dp;
static struct metrics_dev m;

static void setup(void)
{
    vhu_blk_rig_up(&p, &b, &h, IMG, QSIZE, "vblk0", true, &dp, &d, &t);
    memset(&m, 0, sizeof(m));
    d->metrics = &m;
}

static void teardown(void)
{
    vhu_blk_rig_down(&p, &b, &h, d, t);
}

TestSuite(vhost_user_restart, .init = setup, .fini = teardown, .timeout = 60);

static void go_live(void)
{
    vhu_blk_rig_live(t, VIRTIO_BIT(VIRTIO_F_VERSION_1), QSIZE);
}

/* A write of `len` bytes of `fill` at `sector`; returns the status byte's gpa. */
static gpa_t write_req(uint64_t sector, uint8_t fill, uint32_t len)
{
    gpa_t hdr = vqb_alloc(&b, 16, 0);
    uint8_t *hp = vqb_host(&b, hdr, 16);
    uint32_t type = 1;
    memcpy(hp, &type, 4);
    memset(hp + 4, 0, 4);
    memcpy(hp + 8, &sector, 8);
    gpa_t data = vqb_alloc(&b, len, fill);
    gpa_t st = vqb_alloc(&b, 1, 0xff);
    struct vqb_buf bufs[3] = {{hdr, 16, false}, {data, len, false}, {st, 1, true}};
    vqb_add_chain(&b, bufs, 3);
    return st;
}

/* Run the main loop until used.idx reaches want or ~ms pass. */
static void poll_until(uint16_t want, int ms)
{
    for (int i = 0; i < ms / 5 && vqb_used_idx(&b) != want; i++) {
        fake_host_poll(&h);
        usleep(5000);
    }
}

static void image_holds(uint64_t sector, uint8_t fill, uint32_t len)
{
    int fd = open(p.img, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    uint8_t buf[4096];
    cr_assert_eq(pread(fd, buf, len, (off_t)sector * 512), (ssize_t)len);
    close(fd);
    for (uint32_t i = 0; i < len; i++)
        cr_assert_eq(buf[i], fill, "sector %llu byte %u: %#x", (unsigned long long)sector, i,
                     buf[i]);
}

Test(vhost_user_restart, a_killed_backend_is_replaced_and_the_ring_goes_on)
{
    go_live();
    gpa_t st1 = write_req(4, 0x11, 1024);
    fake_host_kick(&h, 0);
    poll_until(1, 5000);
    cr_assert_eq(vqb_used_idx(&b), 1);
    cr_assert_eq(*(uint8_t *)vqb_host(&b, st1, 1), 0);

    qsd_peer_kill(&p);
    /* The main loop notices (EOF) and starts retrying; the device does not fail. */
    for (int i = 0; i < 40; i++) {
        fake_host_poll(&h);
        usleep(5000);
    }
    cr_assert_not(virtio_dp_dead(d));
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);

    /* The driver goes on: a request kicked while no backend is there waits in the eventfd. */
    gpa_t st2 = write_req(8, 0x22, 2048);
    fake_host_kick(&h, 0);
    poll_until(2, 300);
    cr_assert_eq(vqb_used_idx(&b), 1, "nobody served it yet");

    qsd_peer_restart(&p);
    poll_until(2, 10000);
    cr_assert_eq(vqb_used_idx(&b), 2, "the new backend took the ring over");
    cr_assert_eq(*(uint8_t *)vqb_host(&b, st2, 1), 0, "status OK");
    cr_assert_eq(vhu_dp_reconnects(dp), 1);
    cr_assert_eq(m.dataplane_reconnects, 1, "counted in the device's metrics");
    cr_assert_eq(m.dataplane_failures, 0);
    cr_assert_geq(m.dataplane_calls, 2, "both completions were relayed");
    cr_assert_not(virtio_dp_dead(d));
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_STATUS), LIVE, "the guest saw no NEEDS_RESET");

    /* A guest reset stops the ring on the new backend (GET_VRING_BASE drains), then the image. */
    fake_mmio_wr(t, FAKE_MMIO_STATUS, 0);
    image_holds(4, 0x11, 1024);
    image_holds(8, 0x22, 2048);
}

Test(vhost_user_restart, a_reset_while_the_backend_is_away_then_a_new_start)
{
    go_live();
    qsd_peer_kill(&p);
    for (int i = 0; i < 40; i++) {
        fake_host_poll(&h);
        usleep(5000);
    }
    /* The driver resets and starts again with no backend: nothing to ask, nothing fails. */
    fake_mmio_wr(t, FAKE_MMIO_STATUS, 0);
    go_live();
    gpa_t st = write_req(16, 0x33, 512);
    fake_host_kick(&h, 0);
    qsd_peer_restart(&p);
    poll_until(1, 10000);
    cr_assert_eq(vqb_used_idx(&b), 1);
    cr_assert_eq(*(uint8_t *)vqb_host(&b, st, 1), 0);
    cr_assert_not(virtio_dp_dead(d));
    fake_mmio_wr(t, FAKE_MMIO_STATUS, 0);
    image_holds(16, 0x33, 512);
}
