/*
 * Unit tests for the vhost-vdpa layer (devices/vhost/vdpa*) against the
 * simulated kernel device of tests/lib/fake_vdpa: open and the bounds on
 * what the kernel reports, backend features, the three feature sets,
 * status, config bounds, IOTLB mapping of guest RAM, and that the layer
 * never trips a rule the simulator watches for.  The queue, start and
 * suspend rules are in test_vdpa_queue.c.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "devices/vhost/vdpa.h"
#include "devices/vhost/vdpa_uapi.h"
#include "tests/lib/fake_vdpa.h"
#include "tests/lib/virtq_builder.h"

static struct fake_vdpa f;
static struct vdpa_dev d;
static struct errbuf err;

static void init(void)
{
    fake_vdpa_init(&f);
    memset(&err, 0, sizeof(err));
}

TestSuite(vdpa, .init = init);

static void open_ok(void)
{
    cr_assert_eq(vdpa_open(&d, &fake_vdpa_ops, &f, "/dev/vhost-vdpa-0", &err), 0, "%s", err.msg);
}

/* Open, then ACKNOWLEDGE | DRIVER. */
static void open_driver(void)
{
    open_ok();
    cr_assert_eq(vdpa_status_set(&d, VDPA_S_ACKNOWLEDGE), 0);
    cr_assert_eq(vdpa_status_set(&d, VDPA_S_ACKNOWLEDGE | VDPA_S_DRIVER), 0);
}

Test(vdpa, open_reads_the_device)
{
    open_ok();
    cr_assert(f.owner, "SET_OWNER sent");
    cr_assert_eq(d.device_id, 2);
    cr_assert_str_eq(vdpa_type_name(d.device_id), "blk");
    cr_assert_eq(d.dev_features, 0x331006644ull);
    cr_assert_eq(d.nqueues, 1);
    cr_assert_eq(d.vring_max, 256);
    cr_assert_eq(d.config_size, 60);
    cr_assert_eq(d.iova_last, UINT64_MAX);
    cr_assert_eq(d.backend_offered, 0xe);
    cr_assert_eq(d.backend, 0x6, "MSG_V2 and BATCH acked, ASID not (we do not use it)");
    cr_assert_eq(f.backend_acked, 0x6);
    vdpa_close(&d);
    cr_assert(!f.open);
    cr_assert_eq(f.closes, 1);
    cr_assert_eq(f.violations, 0, "%s", f.violation);
}

Test(vdpa, open_exclusive)
{
    struct vdpa_dev d2;
    open_ok();
    cr_assert_eq(vdpa_open(&d2, &fake_vdpa_ops, &f, "/dev/vhost-vdpa-0", &err), -EBUSY);
    cr_assert(strstr(err.msg, "exclusive"), "%s", err.msg);
    vdpa_close(&d);
}

/* Open must fail with a message naming `what`, and leave nothing open. */
static void open_refused(const char *what)
{
    cr_assert_lt(vdpa_open(&d, &fake_vdpa_ops, &f, "/dev/vhost-vdpa-0", &err), 0);
    cr_assert(strstr(err.msg, what), "message '%s' lacks '%s'", err.msg, what);
    cr_assert(!f.open, "the fd is closed again");
    cr_assert_eq(d.fd, -1);
}

Test(vdpa, hostile_config_size_bounded)
{
    f.config_size = VDPA_MAX_CONFIG + 1;
    open_refused("config space of 4097 bytes");
}

Test(vdpa, hostile_queue_count_zero)
{
    f.vqs = 0;
    open_refused("reports 0 queues");
}

Test(vdpa, hostile_queue_count_huge)
{
    f.vqs = 0x10000;
    open_refused("reports 65536 queues");
}

Test(vdpa, hostile_queue_size_zero)
{
    f.vring_num = 0;
    open_refused("queue size 0");
}

Test(vdpa, hostile_iova_range_empty)
{
    f.iova_first = 0x2000;
    f.iova_last = 0x1000;
    open_refused("empty IOVA range");
}

Test(vdpa, hostile_device_id)
{
    f.device_id = 0;
    open_refused("device id 0");
}

Test(vdpa, refuses_without_version_1)
{
    f.features &= ~(1ull << VDPA_F_VERSION_1);
    open_refused("VERSION_1");
}

Test(vdpa, refuses_without_iotlb_v2)
{
    f.backend_offered = 1ull << VHOST_BACKEND_F_IOTLB_BATCH;
    open_refused("IOTLB_MSG_V2");
}

Test(vdpa, ioctl_failure_closes)
{
    f.fail_req = VHOST_VDPA_GET_CONFIG_SIZE;
    f.fail_errno = EIO;
    f.fail_nth = 1;
    open_refused("GET_CONFIG_SIZE failed");
}

Test(vdpa, backend_features_only_offered_and_known)
{
    f.backend_offered = 0x1ff; /* everything up to IOTLB_PERSIST */
    open_ok();
    cr_assert_eq(d.backend, VDPA_BACKEND_WANTED, "only what the layer implements");
    cr_assert_eq(f.backend_acked, VDPA_BACKEND_WANTED);
    vdpa_close(&d);
}

Test(vdpa, simulator_refuses_unoffered_backend_features)
{
    open_ok();
    uint64_t v = 1ull << VHOST_BACKEND_F_SUSPEND; /* VDUSE does not offer it */
    cr_assert_eq(fake_vdpa_ops.ioctl(&f, FAKE_VDPA_FD, VHOST_SET_BACKEND_FEATURES, (uintptr_t)&v),
                 -EOPNOTSUPP);
    vdpa_close(&d);
}

Test(vdpa, guest_offer_hides_transport_and_private_bits)
{
    f.features |= (1ull << VDPA_F_NOTIFICATION_DATA) | (1ull << VDPA_F_RING_RESET) |
                  (1ull << VDPA_F_RING_PACKED) | (1ull << VDPA_F_SUSPEND) | (1ull << 26) |
                  (1ull << 30);
    open_ok();
    cr_assert_eq(d.guest_offered & VDPA_GUEST_HIDDEN, 0);
    cr_assert(!((d.guest_offered >> VDPA_F_ACCESS_PLATFORM) & 1));
    cr_assert((d.guest_offered >> VDPA_F_VERSION_1) & 1);
    vdpa_close(&d);
}

Test(vdpa, three_feature_sets_kept_apart)
{
    open_driver();
    uint64_t g = (1ull << VDPA_F_VERSION_1) | (1ull << 9) /* blk FLUSH, offered */;
    cr_assert_eq(vdpa_features_set(&d, g), 0);
    cr_assert_eq(d.guest_acked, g);
    cr_assert_eq(d.backend_acked, g | (1ull << VDPA_F_ACCESS_PLATFORM), "ACCESS_PLATFORM forced");
    cr_assert_eq(f.acked, d.backend_acked, "the device got the backend set");
    cr_assert_eq(d.dev_features, 0x331006644ull, "the device's offer unchanged");
    cr_assert(d.status & VDPA_S_FEATURES_OK);
    vdpa_close(&d);
}

Test(vdpa, features_not_offered_to_the_guest_refused)
{
    open_driver();
    cr_assert_eq(vdpa_features_set(&d, 1ull << VDPA_F_ACCESS_PLATFORM), -EINVAL);
    cr_assert_eq(vdpa_features_set(&d, 1ull << 50), -EINVAL);
    cr_assert(!f.features_set, "nothing reached the device");
    vdpa_close(&d);
}

Test(vdpa, features_after_features_ok_refused)
{
    open_driver();
    cr_assert_eq(vdpa_features_set(&d, 1ull << VDPA_F_VERSION_1), 0);
    cr_assert_eq(vdpa_features_set(&d, 1ull << VDPA_F_VERSION_1), -EBUSY);
    /* The simulator (like the kernel) refuses it too. */
    uint64_t v = 1ull << VDPA_F_VERSION_1;
    cr_assert_eq(fake_vdpa_ops.ioctl(&f, FAKE_VDPA_FD, VHOST_SET_FEATURES, (uintptr_t)&v), -EBUSY);
    vdpa_close(&d);
}

Test(vdpa, features_before_driver_refused)
{
    open_ok();
    cr_assert_eq(vdpa_features_set(&d, 1ull << VDPA_F_VERSION_1), -EINVAL);
    vdpa_close(&d);
}

Test(vdpa, features_ok_not_kept_is_an_error)
{
    f.refuse_features_ok = true;
    open_driver();
    cr_assert_eq(vdpa_features_set(&d, 1ull << VDPA_F_VERSION_1), -EPROTO);
    cr_assert(!(d.status & VDPA_S_FEATURES_OK));
    vdpa_close(&d);
}

Test(vdpa, status_bits_cannot_be_cleared)
{
    open_driver();
    unsigned before = f.ioctls;
    cr_assert_eq(vdpa_status_set(&d, VDPA_S_ACKNOWLEDGE), -EINVAL);
    cr_assert_eq(f.ioctls, before, "refused before the kernel");
    cr_assert_eq(f.status, VDPA_S_ACKNOWLEDGE | VDPA_S_DRIVER);
    uint8_t s = VDPA_S_ACKNOWLEDGE;
    cr_assert_eq(fake_vdpa_ops.ioctl(&f, FAKE_VDPA_FD, VHOST_VDPA_SET_STATUS, (uintptr_t)&s),
                 -EINVAL, "the simulator refuses it like the kernel");
    cr_assert_eq(vdpa_status_set(&d, VDPA_S_ACKNOWLEDGE | VDPA_S_DRIVER | VDPA_S_DRIVER_OK),
                 -EINVAL, "DRIVER_OK only through vdpa_start");
    vdpa_close(&d);
}

Test(vdpa, config_bounded)
{
    open_ok();
    uint64_t cap = 0;
    uint8_t buf[64];
    cr_assert_eq(vdpa_config_read(&d, 0, &cap, sizeof(cap)), 0);
    cr_assert_eq(cap, 32768);
    unsigned before = f.ioctls;
    cr_assert_eq(vdpa_config_read(&d, 56, buf, 8), -EINVAL);
    cr_assert_eq(vdpa_config_read(&d, 0, buf, 0), -EINVAL);
    cr_assert_eq(vdpa_config_read(&d, UINT32_MAX, buf, 2), -EINVAL);
    cr_assert_eq(vdpa_config_write(&d, 60, buf, 1), -EINVAL);
    cr_assert_eq(f.ioctls, before, "refused before the kernel");
    uint8_t wce = 1;
    cr_assert_eq(vdpa_config_write(&d, 32, &wce, 1), 0);
    cr_assert_eq(f.config[32], 1);
    vdpa_close(&d);
}

Test(vdpa, map_gmem_iova_is_gpa_batched)
{
    struct vqb b;
    vqb_init(&b, VQB_TWO_REGIONS, 16, 16);
    open_driver();
    cr_assert_eq(vdpa_map_gmem(&d, &b.mem, &err), 0, "%s", err.msg);
    cr_assert_eq(f.nmaps, 2);
    for (unsigned i = 0; i < 2; i++) {
        cr_assert_eq(f.maps[i].iova, b.mem.regions[i].gpa);
        cr_assert_eq(f.maps[i].size, b.mem.regions[i].size);
        cr_assert_eq(f.maps[i].uaddr, (uint64_t)(uintptr_t)b.mem.regions[i].hva);
        cr_assert_eq(f.maps[i].perm, VHOST_ACCESS_RW);
    }
    cr_assert_eq(f.batch_begins, 1);
    cr_assert_eq(f.batch_ends, 1);
    cr_assert_eq(f.unbatched, 0);
    cr_assert_eq(vdpa_map_gmem(&d, &b.mem, &err), -EEXIST, "twice refused by the layer");
    cr_assert_eq(vdpa_unmap_all(&d), 0);
    cr_assert_eq(f.nmaps, 0);
    vdpa_close(&d);
    vqb_fini(&b);
}

Test(vdpa, map_without_batch_sends_no_batch_messages)
{
    struct vqb b;
    f.backend_offered = 1ull << VHOST_BACKEND_F_IOTLB_MSG_V2;
    vqb_init(&b, VQB_TWO_REGIONS, 16, 16);
    open_ok();
    cr_assert_eq(vdpa_map_gmem(&d, &b.mem, &err), 0, "%s", err.msg);
    cr_assert_eq(f.nmaps, 2);
    cr_assert_eq(f.iotlb_msgs, 2, "two UPDATEs, no BATCH_BEGIN/END");
    vdpa_close(&d);
    vqb_fini(&b);
}

Test(vdpa, map_outside_iova_range_refused_before_any_message)
{
    struct vqb b;
    f.iova_first = 0x100000; /* RAM starts at 0 */
    vqb_init(&b, VQB_ONE_REGION, 16, 16);
    open_ok();
    cr_assert_eq(vdpa_map_gmem(&d, &b.mem, &err), -ERANGE);
    cr_assert(strstr(err.msg, "outside the device's IOVA range"), "%s", err.msg);
    cr_assert_eq(f.iotlb_msgs, 0);
    vdpa_close(&d);
    vqb_fini(&b);
}

Test(vdpa, map_failure_takes_back_what_was_mapped)
{
    struct vqb b;
    f.fail_req = 1; /* the second UPDATE write */
    f.fail_errno = ENOMEM;
    f.fail_nth = 2;
    vqb_init(&b, VQB_TWO_REGIONS, 16, 16);
    open_ok();
    cr_assert_eq(vdpa_map_gmem(&d, &b.mem, &err), -ENOMEM);
    cr_assert(strstr(err.msg, "RLIMIT_MEMLOCK"), "%s", err.msg);
    cr_assert_eq(err.exit_code, WISP_EXIT_HOST);
    cr_assert_eq(f.nmaps, 0, "the first region was invalidated");
    cr_assert_eq(d.nmaps, 0);
    cr_assert(!f.in_batch, "the batch was closed");
    vdpa_close(&d);
    vqb_fini(&b);
}

Test(vdpa, short_iotlb_write_is_an_error)
{
    struct vqb b;
    f.short_write = true;
    vqb_init(&b, VQB_ONE_REGION, 16, 16);
    open_ok();
    cr_assert_eq(vdpa_map_gmem(&d, &b.mem, &err), -EIO);
    vdpa_close(&d);
    vqb_fini(&b);
}

Test(vdpa, simulator_iotlb_rules)
{
    open_ok();
    struct vhost_msg_v2 m;
    memset(&m, 0, sizeof(m));
    m.type = VHOST_IOTLB_MSG_V2;
    m.iotlb.type = VHOST_IOTLB_UPDATE;
    m.iotlb.iova = 0x1000;
    m.iotlb.size = 0x1000;
    m.iotlb.uaddr = 0x7000000;
    m.iotlb.perm = VHOST_ACCESS_RW;
    cr_assert_eq(fake_vdpa_ops.write(&f, FAKE_VDPA_FD, &m, sizeof(m)), (ssize_t)sizeof(m));
    cr_assert_eq(fake_vdpa_ops.write(&f, FAKE_VDPA_FD, &m, sizeof(m)), -EEXIST, "overlap");
    m.iotlb.iova = 0x3000;
    m.iotlb.size = 0;
    cr_assert_eq(fake_vdpa_ops.write(&f, FAKE_VDPA_FD, &m, sizeof(m)), -EINVAL, "size 0");
    m.iotlb.size = 0x1000;
    m.iotlb.type = 9;
    cr_assert_eq(fake_vdpa_ops.write(&f, FAKE_VDPA_FD, &m, sizeof(m)), -EINVAL, "bad type");
    m.iotlb.type = VHOST_IOTLB_UPDATE;
    m.iotlb.perm = 0;
    cr_assert_eq(fake_vdpa_ops.write(&f, FAKE_VDPA_FD, &m, sizeof(m)), -EINVAL, "bad perm");
    vdpa_close(&d);
    f.iova_last = 0xffff;
    open_ok();
    m.iotlb.perm = VHOST_ACCESS_RW;
    m.iotlb.iova = 0xf000;
    m.iotlb.size = 0x2000;
    cr_assert_eq(fake_vdpa_ops.write(&f, FAKE_VDPA_FD, &m, sizeof(m)), -EINVAL, "past the range");
    vdpa_close(&d);
}

Test(vdpa, reset_forgets_mappings_and_remaps)
{
    struct vqb b;
    vqb_init(&b, VQB_ONE_REGION, 16, 16);
    open_driver();
    cr_assert_eq(vdpa_map_gmem(&d, &b.mem, &err), 0, "%s", err.msg);
    cr_assert_eq(vdpa_reset(&d), 0);
    cr_assert_eq(f.nmaps, 0, "the layer invalidated the kernel's IOTLB");
    cr_assert_eq(d.nmaps, 0, "and the layer knows");
    cr_assert_eq(d.status, 0);
    cr_assert_eq(vdpa_map_gmem(&d, &b.mem, &err), 0, "%s", err.msg);
    cr_assert_eq(f.nmaps, 1);
    vdpa_close(&d);
    cr_assert(!f.open);
    vqb_fini(&b);
}
