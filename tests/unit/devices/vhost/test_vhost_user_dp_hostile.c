/*
 * The blk device over the vhost-user data plane against a hostile backend,
 * through the real virtio-mmio transport (fake KVM): a fake backend thread
 * completes the handshake, then either NACKs SET_FEATURES at DRIVER_OK or
 * sends an unsolicited message while the device runs.  Either way the
 * driver is told through DEVICE_NEEDS_RESET (with a configuration-change
 * interrupt), the transport keeps answering, and nothing hangs.  At a save
 * (migration): a backend that never finishes fails the save within its
 * bound, one that names a wrong ring position fails the device.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "devices/vhost/vhost_user_dp.h"
#include "devices/vhost/vhost_user_sock.h"
#include "devices/virtio/virtio_dp.h"
#include "tests/lib/fake_virtio.h"
#include "tests/lib/virtq_builder.h"
#include "vmm/log.h"
#include "vmm/util.h"

#define BASE 0xd0000000ULL
#define LIVE                                                                                       \
    (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |                \
     VIRTIO_STATUS_DRIVER_OK)

/* QUIET: a backend that never serves its ring; WRONG_BASE: one that, asked
 * for a ring's position at a save, names another. */
enum fake_mode { NACK_FEATURES, UNSOLICITED, QUIET, WRONG_BASE };

static char dir[64], path[96];
static int lsock = -1;
static pthread_t th;
static enum fake_mode mode;
static struct vqb b;
static struct fake_host h;
static struct virtio_dev *d;
static struct virtio_mmio *t;

static void reply_u64(int s, uint32_t req, uint64_t v)
{
    uint8_t m[VHU_HDR_SIZE + 8];
    struct vhu_hdr hd = {.request = req, .flags = VHU_VERSION | VHU_F_REPLY, .size = 8};
    vhu_hdr_encode(m, &hd);
    le64_put(m + VHU_HDR_SIZE, v);
    (void)vhu_sock_send(s, m, sizeof(m), NULL, 0, 1000);
}

/* A backend that answers the handshake like a blk backend, then misbehaves. */
static void *fake(void *arg)
{
    (void)arg;
    int s = accept(lsock, NULL, NULL);
    if (s < 0)
        return NULL;
    uint8_t m[VHU_HDR_SIZE + VHU_MAX_PAYLOAD];
    for (;;) {
        int fds[VHU_MAX_FDS];
        unsigned n;
        int len = vhu_sock_recv(s, m, sizeof(m), fds, VHU_MAX_FDS, &n, 5000);
        fdsock_close_fds(fds, n);
        if (len < 0)
            break;
        struct vhu_hdr hd;
        vhu_hdr_decode(m, VHU_HDR_SIZE, &hd);
        switch (hd.request) {
        case VHU_GET_FEATURES:
            reply_u64(s, hd.request, (1ull << 32) | (1ull << VHU_F_PROTOCOL_FEATURES));
            continue;
        case VHU_GET_PROTOCOL_FEATURES:
            reply_u64(s, hd.request,
                      (1ull << VHU_PF_CONFIG) |
                          (mode == NACK_FEATURES ? 1ull << VHU_PF_REPLY_ACK : 0));
            continue;
        case VHU_GET_CONFIG: {
            uint32_t size = le32_get(m + VHU_HDR_SIZE + 4);
            uint8_t r[VHU_HDR_SIZE + VHU_CONFIG_HDR + VHU_MAX_CONFIG] = {0};
            struct vhu_hdr rh = {.request = hd.request,
                                 .flags = VHU_VERSION | VHU_F_REPLY,
                                 .size = VHU_CONFIG_HDR + size};
            vhu_hdr_encode(r, &rh);
            memcpy(r + VHU_HDR_SIZE, m + VHU_HDR_SIZE, 8); /* echo offset and size */
            le64_put(r + VHU_HDR_SIZE + VHU_CONFIG_HDR, 2048);
            (void)vhu_sock_send(s, r, VHU_HDR_SIZE + VHU_CONFIG_HDR + size, NULL, 0, 1000);
            continue;
        }
        case VHU_GET_VRING_BASE: {
            uint8_t r[VHU_HDR_SIZE + 8];
            struct vhu_hdr rh = {
                .request = hd.request, .flags = VHU_VERSION | VHU_F_REPLY, .size = 8};
            vhu_hdr_encode(r, &rh);
            memcpy(r + VHU_HDR_SIZE, m + VHU_HDR_SIZE, 4); /* the ring index */
            le32_put(r + VHU_HDR_SIZE + 4, mode == WRONG_BASE ? 7 : 0);
            (void)vhu_sock_send(s, r, sizeof(r), NULL, 0, 1000);
            continue;
        }
        default:
            break;
        }
        if (hd.flags & VHU_F_NEED_REPLY)
            reply_u64(s, hd.request, mode == NACK_FEATURES && hd.request == VHU_SET_FEATURES);
        if (mode == UNSOLICITED && hd.request == VHU_SET_VRING_ENABLE)
            reply_u64(s, VHU_GET_FEATURES, 0); /* nobody asked */
    }
    close(s);
    return NULL;
}

static void start(enum fake_mode m)
{
    mode = m;
    strcpy(dir, "/tmp/wisp-vhuh-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/be.sock", dir);
    lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    cr_assert_eq(bind(lsock, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(lsock, 1), 0);
    cr_assert_eq(pthread_create(&th, NULL, fake, NULL), 0);
    log_threshold = LOG_ERROR;
    vqb_init(&b, VQB_ONE_REGION, 16, 256);
    fake_host_init(&h);
    struct errbuf err = {0};
    void *dp = NULL;
    cr_assert_eq(vhu_dp_create(path, &b.mem, 1000, NULL, 0, false, &dp, &err), 0, "%s", err.msg);
    cr_assert_eq(virtio_dp_create(&virtio_dp_blk, "hb", &vhu_dp_ops, dp, &b.mem, &h.loop, &d, &err),
                 0, "%s", err.msg);
    cr_assert_eq(virtio_mmio_create(d, &h.host, BASE, 5, &t, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
    if (t)
        virtio_mmio_destroy(t);
    if (d)
        d->ops->destroy(d); /* closes the connection: the fake sees EOF */
    if (lsock >= 0) {
        pthread_join(th, NULL);
        close(lsock);
    }
    fake_host_fini(&h);
    vqb_fini(&b);
    unlink(path);
    rmdir(dir);
}

TestSuite(vhost_user_dp_hostile, .fini = teardown, .timeout = 20);

static void driver_ok(void)
{
    cr_assert_eq(fake_mmio_negotiate(t, VIRTIO_BIT(VIRTIO_F_VERSION_1)),
                 VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    fake_mmio_wr(t, FAKE_MMIO_QUEUE_SEL, 0);
    fake_mmio_wr(t, FAKE_MMIO_QUEUE_NUM, 16);
    fake_mmio_wr(t, FAKE_MMIO_DESC_LO, (uint32_t)VQB_DESC_GPA);
    fake_mmio_wr(t, FAKE_MMIO_DRIVER_LO, (uint32_t)VQB_AVAIL_GPA);
    fake_mmio_wr(t, FAKE_MMIO_DEVICE_LO, (uint32_t)VQB_USED_GPA);
    fake_mmio_wr(t, FAKE_MMIO_QUEUE_READY, 1);
    fake_mmio_wr(t, FAKE_MMIO_STATUS, LIVE);
}

Test(vhost_user_dp_hostile, a_nack_at_driver_ok_means_needs_reset)
{
    start(NACK_FEATURES);
    driver_ok();
    cr_assert(fake_mmio_rd(t, FAKE_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    cr_assert(fake_mmio_rd(t, FAKE_MMIO_INT_STATUS) & 2);
    cr_assert(virtio_dp_dead(d));
    /* The transport still answers; a new activation fails at once. */
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
    fake_mmio_wr(t, FAKE_MMIO_STATUS, 0);
    driver_ok();
    cr_assert(fake_mmio_rd(t, FAKE_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

Test(vhost_user_dp_hostile, an_unsolicited_message_means_needs_reset)
{
    start(UNSOLICITED);
    driver_ok();
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_STATUS), LIVE);
    for (int i = 0; i < 200 && !virtio_dp_dead(d); i++) {
        fake_host_poll(&h);
        usleep(5000);
    }
    cr_assert(virtio_dp_dead(d));
    cr_assert(fake_mmio_rd(t, FAKE_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    cr_assert(fake_mmio_rd(t, FAKE_MMIO_INT_STATUS) & 2);
}

/*
 * A save waits for the data plane to finish what the guest made available,
 * but not forever: a backend that never serves its ring fails the quiesce
 * (the migration or snapshot fails) within the bound, and the device runs on.
 */
Test(vhost_user_dp_hostile, a_backend_that_never_finishes_fails_the_save_not_the_device)
{
    start(QUIET);
    driver_ok();
    gpa_t buf = vqb_alloc(&b, 16, 0);
    struct vqb_buf one = {buf, 16, false};
    vqb_add_chain(&b, &one, 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(virtio_dp_quiesce(d, 200), -ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_assert_lt(s, 2.0, "the quiesce took %.2f s", s);
    cr_assert_not(virtio_dp_dead(d));
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_STATUS), LIVE);
}

/* A backend that stops its ring somewhere else than the guest's ring says:
 * the device fails (DEVICE_NEEDS_RESET), the save fails, the VMM goes on. */
Test(vhost_user_dp_hostile, a_wrong_ring_position_at_a_save_means_needs_reset)
{
    start(WRONG_BASE);
    driver_ok();
    cr_assert_eq(virtio_dp_quiesce(d, 1000), -EPROTO);
    cr_assert(virtio_dp_dead(d));
    cr_assert(fake_mmio_rd(t, FAKE_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    cr_assert(fake_mmio_rd(t, FAKE_MMIO_INT_STATUS) & 2);
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
}
