/*
 * The vhost-user frontend against the real peer, no KVM needed:
 * qemu-storage-daemon exports a raw image as vhost-user-blk, the frontend
 * connects with the virtq_builder's memfd "guest RAM", builds a split
 * virtqueue there, and writes and reads sectors by kicking the kick eventfd
 * and waiting on the call eventfd, playing the driver itself.  The image
 * file is checked from the host afterwards, and a backend killed mid-run
 * fails the next request cleanly instead of hanging.
 *
 * qemu-storage-daemon comes from Debian's qemu-system-common (a dependency
 * of qemu-system-x86 in scripts/setup.sh).  A missing binary fails the
 * tests: they are the proof that the protocol layer talks to a real backend.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "devices/vhost/vhost_user.h"
#include "devices/virtio/virtio.h"
#include "tests/lib/qsd_peer.h"
#include "tests/lib/virtq_builder.h"

#define IMG_BYTES    (1024 * 1024)
#define SECTOR       512
#define QSIZE        16
#define BLK_T_IN     0
#define BLK_T_OUT    1
#define BLK_CFG_SIZE 60 /* struct virtio_blk_config up to write_zeroes fields, as qsd reports */

static struct qsd_peer p;
static struct vqb b;
static struct vhu_conn c;
static int kick = -1, call = -1;

static void setup(void)
{
    qsd_peer_start(&p, IMG_BYTES);
    vqb_init(&b, VQB_ONE_REGION, QSIZE, 256);
    kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    cr_assert(kick >= 0 && call >= 0);
}

static void teardown(void)
{
    vhu_disconnect(&c);
    qsd_peer_stop(&p);
    vqb_fini(&b);
    close(kick);
    close(call);
}

TestSuite(vhost_user_qsd, .init = setup, .fini = teardown, .timeout = 30);

static uint64_t hva(gpa_t gpa, uint64_t len)
{
    return (uint64_t)(uintptr_t)vqb_host(&b, gpa, len);
}

/* Connect, handshake, config, features, memory table, ring 0 started. */
static void bring_up(void)
{
    cr_assert_eq(vhu_connect(&c, p.sock, 3000), 0);
    cr_assert_eq(vhu_handshake(&c), 0);
    cr_assert(vhu_has_protocol(&c, VHU_PF_CONFIG));
    cr_assert(vhu_has_protocol(&c, VHU_PF_REPLY_ACK));
    cr_assert_eq(c.queue_num, 1);
    uint8_t cfg[BLK_CFG_SIZE];
    cr_assert_eq(vhu_get_config(&c, 0, sizeof(cfg), cfg), 0);
    uint64_t capacity;
    memcpy(&capacity, cfg, 8);
    cr_assert_eq(capacity, IMG_BYTES / SECTOR, "capacity %llu", (unsigned long long)capacity);
    cr_assert_eq(vhu_set_features(&c, VIRTIO_BIT(VIRTIO_F_VERSION_1)), 0);
    cr_assert_eq(vhu_set_mem_table(&c, &b.mem), 0);
    struct vhu_vring v = {.size = QSIZE,
                          .base = 0,
                          .desc = hva(VQB_DESC_GPA, 16 * QSIZE),
                          .avail = hva(VQB_AVAIL_GPA, 6 + 2 * QSIZE),
                          .used = hva(VQB_USED_GPA, 6 + 8 * QSIZE),
                          .kick_fd = kick,
                          .call_fd = call};
    cr_assert_eq(vhu_vring_start(&c, 0, &v), 0);
}

/* Kick, then wait (bounded) on the call eventfd until used.idx reaches `want`. */
static void kick_and_wait(uint16_t want)
{
    uint64_t one = 1;
    cr_assert_eq(write(kick, &one, 8), 8);
    for (int i = 0; i < 100 && vqb_used_idx(&b) != want; i++) {
        struct pollfd pfd = {.fd = call, .events = POLLIN};
        if (poll(&pfd, 1, 100) == 1) {
            uint64_t v;
            cr_assert_eq(read(call, &v, 8), 8);
        }
    }
    cr_assert_eq(vqb_used_idx(&b), want, "used.idx %u, want %u", vqb_used_idx(&b), want);
}

/* One blk request of `nsec` sectors at `sector`; returns the status byte's gpa. */
static gpa_t blk_req(uint32_t type, uint64_t sector, gpa_t data, uint32_t nsec)
{
    gpa_t hdr = vqb_alloc(&b, 16, 0);
    uint8_t *h = vqb_host(&b, hdr, 16);
    memcpy(h, &type, 4);
    memset(h + 4, 0, 4);
    memcpy(h + 8, &sector, 8);
    gpa_t st = vqb_alloc(&b, 1, 0xff);
    struct vqb_buf bufs[3] = {
        {hdr, 16, false}, {data, nsec * SECTOR, type == BLK_T_IN}, {st, 1, true}};
    vqb_add_chain(&b, bufs, 3);
    return st;
}

Test(vhost_user_qsd, write_read_through_the_ring_and_check_the_image)
{
    bring_up();
    /* Write 4 sectors at sector 10, each filled with its own byte. */
    gpa_t wdata = vqb_alloc(&b, 4 * SECTOR, 0);
    uint8_t *w = vqb_host(&b, wdata, 4 * SECTOR);
    for (int i = 0; i < 4; i++)
        memset(w + i * SECTOR, 0xa0 + i, SECTOR);
    gpa_t st = blk_req(BLK_T_OUT, 10, wdata, 4);
    kick_and_wait(1);
    cr_assert_eq(*(uint8_t *)vqb_host(&b, st, 1), 0, "write status");

    /* Read them back into a fresh buffer. */
    gpa_t rdata = vqb_alloc(&b, 4 * SECTOR, 0x55);
    st = blk_req(BLK_T_IN, 10, rdata, 4);
    kick_and_wait(2);
    cr_assert_eq(*(uint8_t *)vqb_host(&b, st, 1), 0, "read status");
    uint32_t id, len;
    vqb_used_elem(&b, 1, &id, &len);
    cr_assert_eq(len, 4 * SECTOR + 1, "used len %u", len);
    cr_assert_eq(memcmp(vqb_host(&b, rdata, 4 * SECTOR), w, 4 * SECTOR), 0);

    /* Stop: the backend reports where it will resume. */
    uint16_t base = 0;
    cr_assert_eq(vhu_vring_stop(&c, 0, &base), 0);
    cr_assert_eq(base, 2);

    /* The image from the host: the sectors written, zeros around them. */
    int fd = open(p.img, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    uint8_t f[6 * SECTOR];
    cr_assert_eq(pread(fd, f, sizeof(f), 9 * SECTOR), (ssize_t)sizeof(f));
    close(fd);
    for (int s = 0; s < 6; s++)
        for (int i = 0; i < SECTOR; i++) {
            uint8_t want = (s >= 1 && s <= 4) ? (uint8_t)(0xa0 + s - 1) : 0;
            cr_assert_eq(f[s * SECTOR + i], want, "image sector %d byte %d", 9 + s, i);
        }
}

Test(vhost_user_qsd, a_ring_restarts_at_the_base_it_was_stopped_at)
{
    bring_up();
    gpa_t data = vqb_alloc(&b, SECTOR, 0x11);
    blk_req(BLK_T_OUT, 0, data, 1);
    kick_and_wait(1);
    uint16_t base = 0;
    cr_assert_eq(vhu_vring_stop(&c, 0, &base), 0);
    cr_assert_eq(base, 1);
    /* A second connection (qsd accepts repeated ones) resumes at base 1. */
    vhu_disconnect(&c);
    cr_assert_eq(vhu_connect(&c, p.sock, 3000), 0);
    cr_assert_eq(vhu_handshake(&c), 0);
    cr_assert_eq(vhu_set_features(&c, VIRTIO_BIT(VIRTIO_F_VERSION_1)), 0);
    cr_assert_eq(vhu_set_mem_table(&c, &b.mem), 0);
    struct vhu_vring v = {.size = QSIZE,
                          .base = base,
                          .desc = hva(VQB_DESC_GPA, 16 * QSIZE),
                          .avail = hva(VQB_AVAIL_GPA, 6 + 2 * QSIZE),
                          .used = hva(VQB_USED_GPA, 6 + 8 * QSIZE),
                          .kick_fd = kick,
                          .call_fd = call};
    cr_assert_eq(vhu_vring_start(&c, 0, &v), 0);
    gpa_t rd = vqb_alloc(&b, SECTOR, 0);
    gpa_t st = blk_req(BLK_T_IN, 0, rd, 1);
    kick_and_wait(2);
    cr_assert_eq(*(uint8_t *)vqb_host(&b, st, 1), 0);
    cr_assert_eq(*(uint8_t *)vqb_host(&b, rd, 1), 0x11);
}

Test(vhost_user_qsd, a_killed_backend_fails_the_next_request_without_a_hang)
{
    bring_up();
    qsd_peer_kill(&p);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint16_t base;
    int rc = vhu_vring_stop(&c, 0, &base);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert(rc == -ECONNRESET || rc == -EPIPE, "rc %d", rc);
    cr_assert(c.dead);
    cr_assert_lt(t1.tv_sec - t0.tv_sec, 2, "took too long");
    /* Every later call fails at once. */
    cr_assert_eq(vhu_get_config(&c, 0, 8, &base), -ECONNRESET);
}
