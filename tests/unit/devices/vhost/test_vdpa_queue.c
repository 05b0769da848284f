/*
 * Unit tests for the vhost-vdpa layer's queue, start and stop rules
 * (devices/vhost/vdpa.c) against tests/lib/fake_vdpa: ring setup bounds and
 * ordering, enable before DRIVER_OK, DRIVER_OK read back, SUSPEND / ring
 * base / RESUME, the device without SUSPEND, hostile ring bases, and a
 * whole start-use-suspend round trip through the simulator's ring engine
 * with no rule violated.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "devices/vhost/vdpa.h"
#include "devices/vhost/vdpa_uapi.h"
#include "tests/lib/fake_vdpa.h"
#include "tests/lib/virtq_builder.h"

#define QN 16

static struct fake_vdpa f;
static struct vdpa_dev d;
static struct errbuf err;
static struct vqb b;

static void init(void)
{
    fake_vdpa_init(&f);
    memset(&err, 0, sizeof(err));
    memset(&d, 0, sizeof(d));
    d.fd = -1; /* closed, for tests that never open it */
    vqb_init(&b, VQB_ONE_REGION, QN, QN);
}

static void fini(void)
{
    vdpa_close(&d);
    cr_assert(!f.open, "closed");
    vqb_fini(&b);
}

TestSuite(vdpa_queue, .init = init, .fini = fini);

static struct vdpa_queue_cfg qcfg(void)
{
    return (struct vdpa_queue_cfg){.num = QN,
                                   .desc = VQB_DESC_GPA,
                                   .avail = VQB_AVAIL_GPA,
                                   .used = VQB_USED_GPA,
                                   .kick_fd = 5,
                                   .call_fd = 6};
}

/* Open, ACK|DRIVER, FEATURES_OK with VERSION_1, guest RAM mapped. */
static void ready(void)
{
    cr_assert_eq(vdpa_open(&d, &fake_vdpa_ops, &f, "/dev/vhost-vdpa-0", &err), 0, "%s", err.msg);
    cr_assert_eq(vdpa_status_set(&d, VDPA_S_ACKNOWLEDGE | VDPA_S_DRIVER), 0);
    cr_assert_eq(vdpa_features_set(&d, 1ull << VDPA_F_VERSION_1), 0);
    cr_assert_eq(vdpa_map_gmem(&d, &b.mem, &err), 0, "%s", err.msg);
}

/* ready(), queue 0 programmed and enabled, DRIVER_OK. */
static void started(void)
{
    struct vdpa_queue_cfg c = qcfg();
    ready();
    cr_assert_eq(vdpa_queue_setup(&d, 0, &c), 0);
    cr_assert_eq(vdpa_queue_enable(&d, 0, true), 0);
    cr_assert_eq(vdpa_start(&d), 0);
}

Test(vdpa_queue, setup_programs_gpas)
{
    struct vdpa_queue_cfg c = qcfg();
    c.base = 7;
    ready();
    cr_assert_eq(vdpa_queue_setup(&d, 0, &c), 0);
    cr_assert_eq(f.vq[0].num, QN);
    cr_assert_eq(f.vq[0].last_avail, 7);
    cr_assert_eq(f.vq[0].desc, VQB_DESC_GPA, "IOVA = GPA, not a host address");
    cr_assert_eq(f.vq[0].avail, VQB_AVAIL_GPA);
    cr_assert_eq(f.vq[0].used, VQB_USED_GPA);
    cr_assert_eq(f.vq[0].kick, 5);
    cr_assert_eq(f.vq[0].call, 6);
}

Test(vdpa_queue, sizes_bounded)
{
    struct vdpa_queue_cfg c = qcfg();
    ready();
    c.num = 0;
    cr_assert_eq(vdpa_queue_setup(&d, 0, &c), -EINVAL);
    c.num = 24;
    cr_assert_eq(vdpa_queue_setup(&d, 0, &c), -EINVAL, "not a power of two");
    c.num = 512;
    cr_assert_eq(vdpa_queue_setup(&d, 0, &c), -EINVAL, "over GET_VRING_NUM");
    c.num = QN;
    cr_assert_eq(vdpa_queue_setup(&d, 1, &c), -EINVAL, "one queue only");
    cr_assert_eq(f.vq[0].num, 0, "nothing reached the device");
}

Test(vdpa_queue, rings_must_be_mapped)
{
    struct vdpa_queue_cfg c = qcfg();
    ready();
    c.used = VQB_RAM_END - 8; /* runs past RAM */
    cr_assert_eq(vdpa_queue_setup(&d, 0, &c), -EFAULT);
    c = qcfg();
    c.desc = VQB_DESC_GPA + 8; /* misaligned */
    cr_assert_eq(vdpa_queue_setup(&d, 0, &c), -EFAULT);
    c = qcfg();
    c.kick_fd = -1;
    cr_assert_eq(vdpa_queue_setup(&d, 0, &c), -EBADF);
}

Test(vdpa_queue, setup_before_features_ok_refused)
{
    struct vdpa_queue_cfg c = qcfg();
    cr_assert_eq(vdpa_open(&d, &fake_vdpa_ops, &f, "/dev/vhost-vdpa-0", &err), 0, "%s", err.msg);
    cr_assert_eq(vdpa_queue_setup(&d, 0, &c), -EBUSY);
}

Test(vdpa_queue, setup_on_running_device_refused)
{
    struct vdpa_queue_cfg c = qcfg();
    started();
    unsigned before = f.ioctls;
    cr_assert_eq(vdpa_queue_setup(&d, 0, &c), -EBUSY);
    cr_assert_eq(f.ioctls, before, "refused before the kernel");
    /* The simulator, like the kernel, refuses new ring addresses then. */
    struct vhost_vring_addr a = {.index = 0};
    cr_assert_eq(fake_vdpa_ops.ioctl(&f, FAKE_VDPA_FD, VHOST_SET_VRING_ADDR, (uintptr_t)&a),
                 -EINVAL);
}

Test(vdpa_queue, enable_needs_programmed_queue)
{
    ready();
    cr_assert_eq(vdpa_queue_enable(&d, 0, true), -EINVAL);
}

Test(vdpa_queue, enable_after_driver_ok_refused_without_feature)
{
    started();
    cr_assert_eq(vdpa_queue_enable(&d, 0, false), -EBUSY);
    cr_assert_eq(f.violations, 0, "%s", f.violation);
}

Test(vdpa_queue, enable_after_driver_ok_with_feature)
{
    f.backend_offered |= 1ull << VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK;
    started();
    cr_assert_eq(vdpa_queue_enable(&d, 0, false), 0);
    cr_assert(!f.vq[0].enabled);
    cr_assert_eq(f.violations, 0, "%s", f.violation);
}

Test(vdpa_queue, start_needs_features_ok_memory_and_queue)
{
    struct vdpa_queue_cfg c = qcfg();
    cr_assert_eq(vdpa_open(&d, &fake_vdpa_ops, &f, "/dev/vhost-vdpa-0", &err), 0, "%s", err.msg);
    cr_assert_eq(vdpa_status_set(&d, VDPA_S_ACKNOWLEDGE | VDPA_S_DRIVER), 0);
    cr_assert_eq(vdpa_start(&d), -EINVAL, "no FEATURES_OK");
    cr_assert_eq(vdpa_features_set(&d, 1ull << VDPA_F_VERSION_1), 0);
    cr_assert_eq(vdpa_start(&d), -EINVAL, "no guest RAM mapped");
    cr_assert_eq(vdpa_map_gmem(&d, &b.mem, &err), 0, "%s", err.msg);
    cr_assert_eq(vdpa_start(&d), -EINVAL, "no queue");
    cr_assert_eq(vdpa_queue_setup(&d, 0, &c), 0);
    cr_assert_eq(vdpa_queue_enable(&d, 0, true), 0);
    cr_assert_eq(vdpa_start(&d), 0);
    cr_assert(f.status & VDPA_S_DRIVER_OK);
    cr_assert_eq(vdpa_start(&d), -EINVAL, "twice");
    cr_assert_eq(f.violations, 0, "%s", f.violation);
}

Test(vdpa_queue, needs_reset_at_start_is_an_error)
{
    struct vdpa_queue_cfg c = qcfg();
    f.needs_reset_on_start = true;
    ready();
    cr_assert_eq(vdpa_queue_setup(&d, 0, &c), 0);
    cr_assert_eq(vdpa_queue_enable(&d, 0, true), 0);
    cr_assert_eq(vdpa_start(&d), -EIO);
}

Test(vdpa_queue, base_from_running_device_refused)
{
    uint16_t base = 0;
    f.backend_offered |= 1ull << VHOST_BACKEND_F_SUSPEND;
    started();
    cr_assert_eq(vdpa_vring_base_get(&d, 0, &base), -EBUSY);
    cr_assert_eq(f.violations, 0, "the layer never asked: %s", f.violation);
    /* What the layer protects against: the simulator answers garbage. */
    struct vhost_vring_state st = {.index = 0};
    cr_assert_eq(fake_vdpa_ops.ioctl(&f, FAKE_VDPA_FD, VHOST_GET_VRING_BASE, (uintptr_t)&st), 0);
    cr_assert_eq(f.violations, 1);
}

Test(vdpa_queue, without_suspend)
{
    uint16_t base = 0;
    started(); /* the default device offers no SUSPEND, like VDUSE */
    cr_assert_eq(vdpa_suspend(&d), -EOPNOTSUPP);
    cr_assert_eq(vdpa_vring_base_get(&d, 0, &base), -EOPNOTSUPP);
    cr_assert_eq(vdpa_resume(&d), -EOPNOTSUPP);
    cr_assert_eq(f.violations, 0, "%s", f.violation);
}

Test(vdpa_queue, suspend_before_driver_ok_refused)
{
    f.backend_offered |= 1ull << VHOST_BACKEND_F_SUSPEND;
    ready();
    cr_assert_eq(vdpa_suspend(&d), -EINVAL);
    cr_assert(!d.suspended);
}

Test(vdpa_queue, hostile_base_bounded)
{
    uint16_t base = 0;
    f.backend_offered |= 1ull << VHOST_BACKEND_F_SUSPEND;
    f.base_hostile = true;
    started();
    cr_assert_eq(vdpa_suspend(&d), 0);
    cr_assert_eq(vdpa_vring_base_get(&d, 0, &base), -EIO);
    cr_assert_eq(vdpa_vring_base_get(&d, 5, &base), -EINVAL, "queue index bounded");
}

Test(vdpa_queue, round_trip_use_suspend_base_resume)
{
    uint16_t base = 0;
    struct vqb_buf buf = {0, 64, true};
    f.backend_offered |= (1ull << VHOST_BACKEND_F_SUSPEND) | (1ull << VHOST_BACKEND_F_RESUME);
    started();
    for (unsigned i = 0; i < 3; i++) {
        buf.addr = vqb_alloc(&b, 64, 0);
        vqb_add_chain(&b, &buf, 1);
    }
    cr_assert_eq(fake_vdpa_process(&f, 0), 3, "%s", f.violation);
    cr_assert_eq(vqb_used_idx(&b), 3, "the device found the rings through the IOTLB");
    cr_assert_eq(vdpa_suspend(&d), 0);
    cr_assert(f.suspended);
    cr_assert_eq(vdpa_vring_base_get(&d, 0, &base), 0);
    cr_assert_eq(base, 3);
    /* Suspended: the rings may be moved (a migrated base, say). */
    struct vdpa_queue_cfg c = qcfg();
    c.base = 3;
    cr_assert_eq(vdpa_queue_setup(&d, 0, &c), 0);
    cr_assert_eq(vdpa_resume(&d), 0);
    cr_assert(!f.suspended);
    vqb_add_chain(&b, &buf, 1);
    cr_assert_eq(fake_vdpa_process(&f, 0), 1);
    cr_assert_eq(vqb_used_idx(&b), 4);
    cr_assert_eq(f.violations, 0, "%s", f.violation);
    cr_assert_eq(vdpa_reset(&d), 0);
    cr_assert_eq(f.status, 0);
    cr_assert(!d.suspended);
}

Test(vdpa_queue, config_call_bound_and_unbound)
{
    ready();
    cr_assert_eq(vdpa_config_call(&d, 9), 0);
    cr_assert_eq(vdpa_config_call(&d, -1), 0);
    cr_assert_eq(f.config_calls, 2);
}

/* The simulator's own rules, so that a layer that broke them would be seen. */
Test(vdpa_queue, simulator_counts_enable_after_driver_ok)
{
    started();
    struct vhost_vring_state st = {.index = 0, .num = 0};
    cr_assert_eq(fake_vdpa_ops.ioctl(&f, FAKE_VDPA_FD, VHOST_VDPA_SET_VRING_ENABLE, (uintptr_t)&st),
                 0, "the kernel does not refuse it");
    cr_assert_eq(f.violations, 1);
}

Test(vdpa_queue, simulator_counts_driver_ok_with_unmapped_rings)
{
    struct vdpa_queue_cfg c = qcfg();
    ready();
    cr_assert_eq(vdpa_queue_setup(&d, 0, &c), 0);
    cr_assert_eq(vdpa_queue_enable(&d, 0, true), 0);
    /* Take the mapping away behind the layer's back. */
    cr_assert_eq(vdpa_unmap_all(&d), 0);
    uint8_t s = f.status | VDPA_S_DRIVER_OK;
    cr_assert_eq(fake_vdpa_ops.ioctl(&f, FAKE_VDPA_FD, VHOST_VDPA_SET_STATUS, (uintptr_t)&s), 0);
    cr_assert_eq(f.violations, 1, "%s", f.violation);
}

Test(vdpa_queue, simulator_requires_owner_and_v2_messages)
{
    int fd = fake_vdpa_ops.open(&f, "/dev/vhost-vdpa-0", 0);
    uint64_t feat = 0;
    cr_assert_eq(fake_vdpa_ops.ioctl(&f, fd, VHOST_GET_FEATURES, (uintptr_t)&feat), -EPERM);
    cr_assert_eq(fake_vdpa_ops.ioctl(&f, fd, VHOST_SET_OWNER, 0), 0);
    struct vhost_msg_v2 m;
    memset(&m, 0, sizeof(m));
    m.type = VHOST_IOTLB_MSG_V2;
    m.iotlb.type = VHOST_IOTLB_BATCH_BEGIN;
    cr_assert_eq(fake_vdpa_ops.write(&f, fd, &m, sizeof(m)), -EINVAL, "MSG_V2 not acked yet");
    cr_assert_eq(fake_vdpa_ops.close(&f, fd), 0);
}
