/*
 * The vhost-vdpa layer (devices/vhost/vdpa*) against a real kernel and a
 * real vDPA device: a VDUSE block device served by qemu-storage-daemon in
 * the testbed's L1 (tests/testbed/vdpa/setup made it).  No guest: this
 * program plays the virtio driver with tests/lib/virtq_builder, so the
 * device reads the rings and buffers from our memfd "guest RAM" through the
 * IOTLB mappings the layer made.
 *
 *   vdpa-blk DEVNODE IMAGE_SECTORS
 *
 * Why a program and not a Criterion suite: it needs the one device of L1
 * and runs its checks in order on it.  Prints one "ok"/"FAIL" line per
 * check, "vdpa-blk: offered ..." lines with what the device reported, and
 * ends with "N passed, N failed" (what tests/run-all counts).  Exit status 1
 * if any failed.  It writes NREQ 4 KiB blocks at blocks 1..NREQ, block i
 * (from 0) filled with byte 0xa0 + i, and after a reset and restart block
 * 7 filled with 0xb7; tests/testbed/vdpa/run checks the image file for
 * exactly that afterwards.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "devices/vhost/vdpa.h"
#include "devices/vhost/vdpa_uapi.h"
#include "tests/lib/virtq_builder.h"

#define QSIZE 64
#define NREQ  4
#define BLK   4096
/* After the reset and restart: one more block, written and read back. */
#define RESTART_BLOCK 7
#define RESTART_FILL  0xb7

/* virtio-blk request (virtio 1.2 §5.2.6), written field by field. */
#define BLK_T_IN  0
#define BLK_T_OUT 1
#define BLK_S_OK  0

static int passed, failed;

static void check(bool ok, const char *what)
{
    printf("vdpa-blk: %s - %s\n", ok ? "ok" : "FAIL", what);
    fflush(stdout);
    if (ok)
        passed++;
    else
        failed++;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait (call eventfd, 10 s at most) until the device has used `target` buffers. */
static bool wait_used(struct vqb *b, int call_fd, uint16_t target)
{
    double end = now_s() + 10;
    while ((uint16_t)(vqb_used_idx(b) - target) != 0) {
        double left = end - now_s();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = call_fd, .events = POLLIN};
        if (poll(&p, 1, (int)(left * 1000) + 1) > 0) {
            uint64_t v;
            if (read(call_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                return false;
        }
    }
    return true;
}

struct req {
    gpa_t hdr, data, status;
};

/* Queue one request (header RO, data RO or WO, status WO) without kicking. */
static void add_req(struct vqb *b, struct req *r, uint32_t type, uint64_t sector, uint8_t fill)
{
    r->hdr = vqb_alloc(b, 16, 0);
    r->data = vqb_alloc(b, BLK, fill);
    r->status = vqb_alloc(b, 1, 0xff);
    uint8_t *h = vqb_host(b, r->hdr, 16);
    memcpy(h, &type, 4); /* x86_64 is little-endian, as virtio 1.x is */
    memcpy(h + 8, &sector, 8);
    struct vqb_buf bufs[3] = {
        {r->hdr, 16, false},
        {r->data, BLK, type == BLK_T_IN},
        {r->status, 1, true},
    };
    vqb_add_chain(b, bufs, 3);
}

static bool kick(int fd)
{
    uint64_t one = 1;
    return write(fd, &one, sizeof(one)) == sizeof(one);
}

static bool all_bytes(const uint8_t *p, size_t len, uint8_t v)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != v)
            return false;
    return true;
}

int main(int argc, char **argv)
{
    struct errbuf err = {0};
    struct vdpa_dev d;
    struct vqb b;
    struct req w[NREQ], r[NREQ];
    char msg[256];
    int rc;

    if (argc != 3) {
        fprintf(stderr, "usage: %s /dev/vhost-vdpa-N IMAGE_SECTORS\n", argv[0]);
        return 2;
    }
    uint64_t sectors = strtoull(argv[2], NULL, 0);
    int kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (kick_fd < 0 || call_fd < 0) {
        perror("eventfd");
        return 1;
    }

    double t0 = now_s();
    rc = vdpa_open(&d, NULL, NULL, argv[1], &err);
    check(rc == 0, rc == 0 ? "open, SET_OWNER, identity, backend features" : err.msg);
    if (rc < 0)
        goto out_counts;
    printf("vdpa-blk: offered device id %u (%s), features %#" PRIx64 ", backend features %#" PRIx64
           " (acked %#" PRIx64 "), %u queue(s) of up to %u, config %u bytes, IOVA [%#" PRIx64
           ", %#" PRIx64 "]\n",
           d.device_id, vdpa_type_name(d.device_id), d.dev_features, d.backend_offered, d.backend,
           d.nqueues, d.vring_max, d.config_size, d.iova_first, d.iova_last);
    struct vdpa_dev d2;
    struct errbuf err2 = {0};
    rc = vdpa_open(&d2, NULL, NULL, argv[1], &err2);
    check(rc == -EBUSY && strstr(err2.msg, "exclusive") != NULL,
          "a second open refused: EBUSY, the device is exclusive");
    check(d.device_id == 2, "device id 2 (virtio-blk)");
    check((d.dev_features >> VDPA_F_VERSION_1) & 1, "VERSION_1 offered");
    check(vdpa_has_backend(&d, VHOST_BACKEND_F_IOTLB_MSG_V2), "IOTLB_MSG_V2 negotiated");
    check(!((d.guest_offered >> VDPA_F_ACCESS_PLATFORM) & 1),
          "ACCESS_PLATFORM kept from the guest's offer");

    uint64_t cap = 0;
    rc = vdpa_config_read(&d, 0, &cap, sizeof(cap));
    snprintf(msg, sizeof(msg), "config: capacity %" PRIu64 " sectors (image %" PRIu64 ")", cap,
             sectors);
    check(rc == 0 && cap == sectors, msg);
    uint8_t big[8];
    check(vdpa_config_read(&d, d.config_size - 4, big, 8) == -EINVAL,
          "config read past the config size refused");

    rc = vdpa_status_set(&d, VDPA_S_ACKNOWLEDGE);
    if (rc == 0)
        rc = vdpa_status_set(&d, VDPA_S_ACKNOWLEDGE | VDPA_S_DRIVER);
    check(rc == 0 && d.status == (VDPA_S_ACKNOWLEDGE | VDPA_S_DRIVER),
          "status ACKNOWLEDGE, DRIVER (read back)");
    check(vdpa_status_set(&d, VDPA_S_ACKNOWLEDGE) == -EINVAL, "clearing a status bit refused");
    rc = vdpa_features_set(&d, 1ull << VDPA_F_VERSION_1);
    check(rc == 0 && (d.status & VDPA_S_FEATURES_OK), "features VERSION_1 -> FEATURES_OK kept");
    check(d.guest_acked == 1ull << VDPA_F_VERSION_1 &&
              d.backend_acked ==
                  (d.guest_acked | (d.dev_features & (1ull << VDPA_F_ACCESS_PLATFORM))),
          "guest-acked and device-acked features kept apart (ACCESS_PLATFORM forced)");
    check(vdpa_features_set(&d, 1ull << VDPA_F_VERSION_1) == -EBUSY,
          "features again after FEATURES_OK refused");

    vqb_init(&b, VQB_ONE_REGION, QSIZE, QSIZE);
    rc = vdpa_map_gmem(&d, &b.mem, &err);
    check(rc == 0 && d.nmaps == 1,
          rc == 0 ? "guest RAM (memfd) mapped by IOTLB v2, IOVA = GPA" : err.msg);
    struct vdpa_queue_cfg qc = {.num = QSIZE,
                                .base = 0,
                                .desc = VQB_DESC_GPA,
                                .avail = VQB_AVAIL_GPA,
                                .used = VQB_USED_GPA,
                                .kick_fd = kick_fd,
                                .call_fd = call_fd};
    rc = vdpa_queue_setup(&d, 0, &qc);
    check(rc == 0, "queue 0: size, base, ring GPAs, kick and call");
    rc = vdpa_queue_enable(&d, 0, true);
    check(rc == 0, "queue 0 enabled before DRIVER_OK");
    rc = vdpa_start(&d);
    check(rc == 0 && (d.status & VDPA_S_DRIVER_OK), "DRIVER_OK (read back, no NEEDS_RESET)");
    check(vdpa_queue_setup(&d, 0, &qc) == -EBUSY, "ring setup on a running device refused");

    /* NREQ writes in one kick, then NREQ reads in one kick. */
    double tio = now_s();
    for (unsigned i = 0; i < NREQ; i++)
        add_req(&b, &w[i], BLK_T_OUT, (uint64_t)(i + 1) * (BLK / 512), (uint8_t)(0xa0 + i));
    check(kick(kick_fd) && wait_used(&b, call_fd, NREQ), "4 writes used (call eventfd)");
    bool st = true;
    for (unsigned i = 0; i < NREQ; i++)
        st = st && *(uint8_t *)vqb_host(&b, w[i].status, 1) == BLK_S_OK;
    check(st, "4 writes: status OK");
    for (unsigned i = 0; i < NREQ; i++)
        add_req(&b, &r[i], BLK_T_IN, (uint64_t)(i + 1) * (BLK / 512), 0x55);
    check(kick(kick_fd) && wait_used(&b, call_fd, 2 * NREQ), "4 reads used (call eventfd)");
    bool same = true;
    for (unsigned i = 0; i < NREQ; i++)
        same = same && *(uint8_t *)vqb_host(&b, r[i].status, 1) == BLK_S_OK &&
               all_bytes(vqb_host(&b, r[i].data, BLK), BLK, (uint8_t)(0xa0 + i));
    check(same, "4 reads: status OK, the data written came back");
    printf("vdpa-blk: 8 requests in %.1f ms\n", (now_s() - tio) * 1000);

    uint16_t base = 0xffff;
    if (vdpa_has_backend(&d, VHOST_BACKEND_F_SUSPEND)) {
        check(vdpa_vring_base_get(&d, 0, &base) == -EBUSY,
              "ring base from a running device refused");
        rc = vdpa_suspend(&d);
        check(rc == 0, "SUSPEND");
        rc = vdpa_vring_base_get(&d, 0, &base);
        snprintf(msg, sizeof(msg), "ring base after SUSPEND is %u (8 requests)", base);
        check(rc == 0 && base == 2 * NREQ, msg);
        if (vdpa_has_backend(&d, VHOST_BACKEND_F_RESUME))
            check(vdpa_resume(&d) == 0, "RESUME");
    } else {
        printf("vdpa-blk: the device does not offer SUSPEND\n");
        check(vdpa_suspend(&d) == -EOPNOTSUPP, "SUSPEND refused (not offered)");
        check(vdpa_vring_base_get(&d, 0, &base) == -EOPNOTSUPP,
              "ring base from a running device that cannot suspend refused");
        snprintf(msg, sizeof(msg), "used.idx %u = requests (the position without SUSPEND)",
                 vqb_used_idx(&b));
        check(vqb_used_idx(&b) == 2 * NREQ, msg);
    }

    rc = vdpa_reset(&d);
    check(rc == 0 && d.status == 0 && d.nmaps == 0, "reset: status 0, mappings forgotten");
    rc = vdpa_status_set(&d, VDPA_S_ACKNOWLEDGE | VDPA_S_DRIVER);
    check(rc == 0 && vdpa_features_set(&d, 1ull << VDPA_F_VERSION_1) == 0,
          "after reset: features negotiated again");
    /*
     * Restart where the queue stopped: the kernel dropped the IOTLB at the
     * reset (a second map would fail with EEXIST otherwise), and the base is
     * the position read without SUSPEND, the used index of the idle queue.
     */
    rc = vdpa_map_gmem(&d, &b.mem, &err);
    check(rc == 0, rc == 0 ? "after reset: guest RAM mapped again" : err.msg);
    qc.base = vqb_used_idx(&b);
    rc = vdpa_queue_setup(&d, 0, &qc);
    if (rc == 0)
        rc = vdpa_queue_enable(&d, 0, true);
    if (rc == 0)
        rc = vdpa_start(&d);
    check(rc == 0, "after reset: queue set up at base 8, started again");
    /* The write completes before the read is queued: a device may reorder them. */
    struct req w2, r2;
    add_req(&b, &w2, BLK_T_OUT, (uint64_t)RESTART_BLOCK * (BLK / 512), RESTART_FILL);
    bool wok = kick(kick_fd) && wait_used(&b, call_fd, 2 * NREQ + 1) &&
               *(uint8_t *)vqb_host(&b, w2.status, 1) == BLK_S_OK;
    add_req(&b, &r2, BLK_T_IN, (uint64_t)RESTART_BLOCK * (BLK / 512), 0x55);
    bool rok = kick(kick_fd) && wait_used(&b, call_fd, 2 * NREQ + 2) &&
               *(uint8_t *)vqb_host(&b, r2.status, 1) == BLK_S_OK &&
               all_bytes(vqb_host(&b, r2.data, BLK), BLK, RESTART_FILL);
    snprintf(msg, sizeof(msg),
             "after restart at base 8: a write (%s) and a read back (%s), used.idx %u (10)",
             wok ? "ok" : "failed", rok ? "ok" : "failed", vqb_used_idx(&b));
    check(wok && rok && vqb_used_idx(&b) == 2 * NREQ + 2, msg);
    vdpa_close(&d);
    check(d.fd == -1, "closed");
    printf("vdpa-blk: whole run %.2f s\n", now_s() - t0);
    vqb_fini(&b);
out_counts:
    close(kick_fd);
    close(call_fd);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
