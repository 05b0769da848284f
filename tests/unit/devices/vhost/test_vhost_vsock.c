/*
 * Unit tests for the vhost-vsock data plane (devices/vhost/vhost_vsock.c)
 * against the simulated kernel of tests/lib/fake_vhost_vsock: creation
 * (owner, features, CID; a CID clash and a missing module as one line),
 * start and stop in the kernel's order with no violation the simulator
 * watches for, bounds on what the kernel answers, refused queue sets, and
 * the vsock device over it through the real virtio-mmio transport: the
 * event queue stays with the VMM, the rx/tx kick eventfds go to the kernel
 * and come back at reset.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <linux/vhost.h>
#include <string.h>

#include "devices/vhost/vhost_vsock.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio_dp.h"
#include "devices/virtio/vsock.h"
#include "tests/lib/fake_vhost_vsock.h"
#include "tests/lib/fake_virtio.h"
#include "tests/lib/virtq_builder.h"
#include "vmm/log.h"
#include "vmm/util.h"

#define LIVE                                                                                       \
    (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |                \
     VIRTIO_STATUS_DRIVER_OK)
#define CID 42

static struct fake_vhv f;
static struct vqb b;
static struct errbuf err;
static void *dp;

static void init(void)
{
    fake_vhv_init(&f);
    vqb_init(&b, VQB_ONE_REGION, 16, 256);
    memset(&err, 0, sizeof(err));
    dp = NULL;
    log_threshold = LOG_ERROR;
}

static void fini(void)
{
    if (dp)
        vhv_dp_ops.destroy(dp);
    vqb_fini(&b);
}

TestSuite(vhost_vsock, .init = init, .fini = fini);

static void create_ok(void)
{
    cr_assert_eq(vhv_create(NULL, CID, &b.mem, &fake_vhv_ops, &f, &dp, &err), 0, "%s", err.msg);
}

/* rx at 4 MiB, tx at 4 MiB + 64 KiB (all inside the builder's RAM). */
static void queues(struct virtio_dp_queue q[2], int kick0, int call0)
{
    for (unsigned i = 0; i < 2; i++)
        q[i] = (struct virtio_dp_queue){.index = (uint16_t)i,
                                        .size = 16,
                                        .next_avail = (uint16_t)(3 + i),
                                        .desc = VQB_DESC_GPA + i * 0x10000,
                                        .avail = VQB_AVAIL_GPA + i * 0x10000,
                                        .used = VQB_USED_GPA + i * 0x10000,
                                        .kick_fd = kick0 + (int)i,
                                        .call_fd = call0 + (int)i};
}

Test(vhost_vsock, create_takes_ownership_then_sets_the_cid)
{
    create_ok();
    cr_assert(f.owner);
    cr_assert_eq(f.cid, CID);
    cr_assert_eq(fake_vhv_first(&f, VHOST_SET_OWNER), 0, "SET_OWNER comes first");
    cr_assert_gt(fake_vhv_first(&f, VHOST_VSOCK_SET_GUEST_CID), 0);
    cr_assert_eq(vhv_dp_ops.features(dp), f.features);
    uint8_t cfg[8];
    cr_assert_eq(vhv_dp_ops.config_read(dp, 0, cfg, 8), 0);
    uint64_t cid;
    memcpy(&cid, cfg, 8);
    cr_assert_eq(cid, CID);
    cr_assert_eq(vhv_dp_ops.config_read(dp, 4, cfg, 4), 0);
    cr_assert_eq(vhv_dp_ops.config_read(dp, 4, cfg, 5), -EINVAL, "bounded by the 8 bytes");
    cr_assert_eq(vhv_dp_ops.config_read(dp, 0xfffffffc, cfg, 8), -EINVAL);
    cr_assert_eq(f.violations, 0, "%s", f.violation);
}

Test(vhost_vsock, a_cid_in_use_is_one_line_and_exit_3)
{
    f.taken_cid = CID;
    cr_assert_eq(vhv_create(NULL, CID, &b.mem, &fake_vhv_ops, &f, &dp, &err), -EADDRINUSE);
    cr_assert_eq(err.exit_code, WISP_EXIT_HOST);
    cr_assert_str_eq(err.msg, "vsock: cid 42 is already used by another VM on this host");
    cr_assert_eq(f.closes, f.opens, "the device is closed again");
    cr_assert_null(dp);
}

Test(vhost_vsock, no_module_says_so)
{
    f.open_errno = ENOENT;
    cr_assert_eq(vhv_create(NULL, CID, &b.mem, &fake_vhv_ops, &f, &dp, &err), -ENOENT);
    cr_assert_eq(err.exit_code, WISP_EXIT_HOST);
    cr_assert(strstr(err.msg, "/dev/vhost-vsock") && strstr(err.msg, "modprobe vhost_vsock"), "%s",
              err.msg);
}

Test(vhost_vsock, cid_out_of_range_refused_before_the_kernel)
{
    cr_assert_eq(vhv_create(NULL, 2, &b.mem, &fake_vhv_ops, &f, &dp, &err), -EINVAL);
    cr_assert_eq(vhv_create(NULL, 0xffffffffULL, &b.mem, &fake_vhv_ops, &f, &dp, &err), -EINVAL);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    cr_assert_eq(f.opens, 0);
}

Test(vhost_vsock, owner_refused_closes)
{
    f.fail_req = VHOST_SET_OWNER;
    f.fail_errno = EBUSY;
    cr_assert_eq(vhv_create(NULL, CID, &b.mem, &fake_vhv_ops, &f, &dp, &err), -EBUSY);
    cr_assert(strstr(err.msg, "SET_OWNER"), "%s", err.msg);
    cr_assert_eq(f.closes, 1);
}

Test(vhost_vsock, start_in_the_kernels_order)
{
    create_ok();
    struct virtio_dp_queue q[2];
    queues(q, 100, 200);
    uint64_t acked = (1ull << 32) | (1ull << 29) | (1ull << 1);
    cr_assert_eq(vhv_dp_ops.start(dp, acked, q, 2), 0);
    cr_assert(f.running && vhv_running(dp));
    cr_assert_eq(f.violations, 0, "%s", f.violation);
    cr_assert_eq(f.acked, acked);
    /* The memory table is guest RAM at wisp's addresses; rings at wisp's addresses too. */
    cr_assert_eq(f.nregions, b.mem.nregions);
    cr_assert_eq(f.reg_gpa[0], b.mem.regions[0].gpa);
    cr_assert_eq(f.reg_hva[0], (uint64_t)(uintptr_t)b.mem.regions[0].hva);
    for (unsigned i = 0; i < 2; i++) {
        cr_assert_eq(f.vq[i].num, 16);
        cr_assert_eq(f.vq[i].base, 3 + i);
        cr_assert_eq(f.vq[i].desc, (uint64_t)(uintptr_t)gmem_ptr(&b.mem, q[i].desc, 256));
        cr_assert_eq(f.vq[i].kick, 100 + (int)i);
        cr_assert_eq(f.vq[i].call, 200 + (int)i);
    }
    int feat = fake_vhv_first(&f, VHOST_SET_FEATURES),
        mem = fake_vhv_first(&f, VHOST_SET_MEM_TABLE);
    int ring = fake_vhv_first(&f, VHOST_SET_VRING_NUM),
        run = fake_vhv_first(&f, VHOST_VSOCK_SET_RUNNING);
    cr_assert(feat < mem && mem < ring && ring < run, "%d %d %d %d", feat, mem, ring, run);
    cr_assert_eq(vhv_dp_ops.start(dp, acked, q, 2), -EBUSY, "no second start while running");
}

Test(vhost_vsock, stop_reads_positions_once_stopped)
{
    create_ok();
    struct virtio_dp_queue q[2];
    queues(q, 100, 200);
    cr_assert_eq(vhv_dp_ops.start(dp, 1ull << 32, q, 2), 0);
    f.vq[0].base = 7; /* the kernel consumed buffers */
    f.vq[1].base = 65535;
    uint16_t next[2];
    cr_assert_eq(vhv_dp_ops.stop(dp, q, 2, next), 0);
    cr_assert_eq(f.violations, 0, "%s", f.violation);
    cr_assert(!f.running && !vhv_running(dp));
    cr_assert_eq(next[0], 7);
    cr_assert_eq(next[1], 65535);
    for (unsigned i = 0; i < 2; i++)
        cr_assert(f.vq[i].kick == -1 && f.vq[i].call == -1, "queue %u's eventfds detached", i);
    /* A restart is allowed and in order again. */
    cr_assert_eq(vhv_dp_ops.start(dp, 1ull << 32, q, 2), 0);
    cr_assert_eq(f.violations, 0, "%s", f.violation);
}

Test(vhost_vsock, hostile_ring_position_refused)
{
    create_ok();
    struct virtio_dp_queue q[2];
    queues(q, 100, 200);
    cr_assert_eq(vhv_dp_ops.start(dp, 1ull << 32, q, 2), 0);
    f.hostile_base = 0x12345;
    uint16_t next[2];
    cr_assert_eq(vhv_dp_ops.stop(dp, q, 2, next), -EIO);
}

Test(vhost_vsock, bad_queue_sets_refused_before_running)
{
    create_ok();
    struct virtio_dp_queue q[2];
    queues(q, 100, 200);
    cr_assert_eq(vhv_dp_ops.start(dp, 1ull << 32, q, 1), -EINVAL, "tx missing");
    q[1].index = 0;
    cr_assert_eq(vhv_dp_ops.start(dp, 1ull << 32, q, 2), -EINVAL, "rx twice");
    q[1].index = 2;
    cr_assert_eq(vhv_dp_ops.start(dp, 1ull << 32, q, 2), -EINVAL, "the event queue is the VMM's");
    queues(q, 100, 200);
    cr_assert_eq(vhv_dp_ops.start(dp, 1ull << 40, q, 2), -EINVAL, "a feature not offered");
    q[1].used = VQB_RAM_END - 8;
    cr_assert_eq(vhv_dp_ops.start(dp, 1ull << 32, q, 2), -EFAULT, "a ring past guest RAM");
    queues(q, 100, 200);
    q[0].size = 12;
    cr_assert_eq(vhv_dp_ops.start(dp, 1ull << 32, q, 2), -EINVAL, "not a power of two");
    cr_assert_eq(fake_vhv_first(&f, VHOST_VSOCK_SET_RUNNING), -1);
    cr_assert(f.vq[0].kick == -1 && f.vq[1].kick == -1, "a failed start leaves no kick attached");
}

Test(vhost_vsock, kernel_refusing_to_run_detaches)
{
    create_ok();
    struct virtio_dp_queue q[2];
    queues(q, 100, 200);
    f.fail_req = VHOST_VSOCK_SET_RUNNING;
    f.fail_errno = EIO;
    cr_assert_eq(vhv_dp_ops.start(dp, 1ull << 32, q, 2), -EIO);
    cr_assert(!vhv_running(dp));
    cr_assert(f.vq[0].kick == -1 && f.vq[1].kick == -1 && f.vq[0].call == -1);
}

/* ---- the vsock device over it, through the real virtio-mmio transport ---------------------- */

static struct fake_host h;
static struct virtio_dev *d;
static struct virtio_mmio *t;

static void dev_init(void)
{
    init();
    fake_host_init(&h);
    d = NULL;
    t = NULL;
}

static void dev_fini(void)
{
    if (t)
        virtio_mmio_destroy(t);
    if (d)
        d->ops->destroy(d); /* destroys the data plane too */
    dp = NULL;
    fake_host_fini(&h);
    vqb_fini(&b);
}

TestSuite(vhost_vsock_dev, .init = dev_init, .fini = dev_fini);

static void dev_create(void)
{
    create_ok();
    cr_assert_eq(
        virtio_dp_create(&virtio_dp_vsock, "vsock0", &vhv_dp_ops, dp, &b.mem, &h.loop, &d, &err), 0,
        "%s", err.msg);
    cr_assert_eq(virtio_mmio_create(d, &h.host, FAKE_MMIO_BASE, 5, &t, &err), 0, "%s", err.msg);
}

static void dev_driver_ok(void)
{
    cr_assert_eq(fake_mmio_negotiate(t, VIRTIO_BIT(VIRTIO_F_VERSION_1)),
                 VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    for (uint32_t q = 0; q < 3; q++) {
        fake_mmio_wr(t, FAKE_MMIO_QUEUE_SEL, q);
        fake_mmio_wr(t, FAKE_MMIO_QUEUE_NUM, 16);
        fake_mmio_wr(t, FAKE_MMIO_DESC_LO, (uint32_t)(VQB_DESC_GPA + q * 0x10000));
        fake_mmio_wr(t, FAKE_MMIO_DRIVER_LO, (uint32_t)(VQB_AVAIL_GPA + q * 0x10000));
        fake_mmio_wr(t, FAKE_MMIO_DEVICE_LO, (uint32_t)(VQB_USED_GPA + q * 0x10000));
        fake_mmio_wr(t, FAKE_MMIO_QUEUE_READY, 1);
    }
    fake_mmio_wr(t, FAKE_MMIO_STATUS, LIVE);
}

Test(vhost_vsock_dev, guest_sees_a_vsock_device_with_the_cid)
{
    dev_create();
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_DEVICE_ID), VIRTIO_ID_VSOCK);
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_CONFIG), CID);
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_CONFIG + 4), 0);
    /* Offered: the kernel's offer masked: VERSION_1, EVENT_IDX, INDIRECT, SEQPACKET; never
     * ACCESS_PLATFORM (no IOTLB), LOG_ALL, NOTIFY_ON_EMPTY or ANY_LAYOUT. */
    uint64_t offered = d->host_features;
    cr_assert_eq(offered, (1ull << 32) | (1ull << 29) | (1ull << 28) | (1ull << 1), "%#llx",
                 (unsigned long long)offered);
    cr_assert_not_null(d->ops->unmigratable, "refused through the existing mechanism");
}

Test(vhost_vsock_dev, rx_and_tx_go_to_the_kernel_the_event_queue_stays)
{
    dev_create();
    dev_driver_ok();
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_STATUS), LIVE);
    cr_assert(f.running);
    cr_assert_eq(f.violations, 0, "%s", f.violation);
    /* The kernel got the transport's QueueNotify eventfds of queues 0 and 1. */
    cr_assert_eq(f.vq[0].kick, fake_host_kick_fd(&h, 0));
    cr_assert_eq(f.vq[1].kick, fake_host_kick_fd(&h, 1));
    cr_assert_geq(fake_host_kick_fd(&h, 2), 0);
    /* A kick on the event queue still reaches wisp (the main loop handles it). */
    cr_assert_geq(fake_host_kick(&h, 2), 1);
    /* Reset: the kernel stops, positions read after it, kicks come back. */
    fake_mmio_wr(t, FAKE_MMIO_STATUS, 0);
    cr_assert(!f.running);
    cr_assert_eq(f.violations, 0, "%s", f.violation);
    cr_assert_eq(f.vq[0].kick, -1);
    /* A second DRIVER_OK starts it again, in order. */
    dev_driver_ok();
    cr_assert(f.running);
    cr_assert_eq(f.violations, 0, "%s", f.violation);
}

Test(vhost_vsock_dev, a_kernel_refusal_means_needs_reset)
{
    dev_create();
    f.fail_req = VHOST_SET_MEM_TABLE;
    f.fail_errno = ENOMEM;
    dev_driver_ok();
    cr_assert(fake_mmio_rd(t, FAKE_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    cr_assert(virtio_dp_dead(d));
}
