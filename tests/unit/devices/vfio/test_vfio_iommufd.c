/*
 * Unit tests for the iommufd transport (devices/vfio/vfio_iommufd.c) against
 * the simulated kernel of tests/lib/fake_iommufd.h: the whole sequence
 * open -> kvm-vfio -> bind/attach -> map guest RAM -> device operations ->
 * teardown in the kernel's order without one refusal from the simulator;
 * for each rule the simulator enforces, that wisp's layer does not break it
 * (it refuses first, on its own); hostile IOVA_RANGES answers; failures
 * part-way that leave no fd or IOMMU object behind.  The simulator's own
 * enforcement of those rules is shown in test_fake_iommufd.c.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "devices/vfio/iommufd_uapi.h"
#include "devices/vfio/vfio.h"
#include "tests/lib/fake_iommufd.h"
#include "vmm/gmem.h"

#define CDEV FAKE_IOMMUFD_CDEV

static struct fake_iommufd f;
static struct vfio_container c;
static struct vfio_device d;
static struct errbuf err;
static struct gmem gm;
static int kdev = -1;

static void init(void)
{
    fake_iommufd_init(&f);
    memset(&err, 0, sizeof(err));
    memset(&c, 0, sizeof(c));
    memset(&d, 0, sizeof(d));
    c.fd = d.fd = kdev = -1;
}

TestSuite(vfio_iommufd, .init = init);

static void make_gmem(const struct gmem_range *r, unsigned n)
{
    cr_assert_eq(gmem_create(&gm, r, n, false, &err), 0, "%s", err.msg);
}

/* open, kvm-vfio, bind + attach: the set-up before guest RAM is mapped. */
static void setup(void)
{
    cr_assert_eq(vfio_iommufd_open(&c, &fake_iommufd_ops, &f, CDEV, &err), 0, "%s", err.msg);
    cr_assert_eq(vfio_kvm_create(&fake_iommufd_ops, &f, 7, &kdev, &err), 0, "%s", err.msg);
    cr_assert_eq(vfio_kvm_add_group(&c, kdev, &err), 0, "%s", err.msg);
    cr_assert_eq(vfio_iommufd_attach(&c, &err), 0, "%s", err.msg);
}

/* Everything released, and the simulated kernel never had to refuse. */
static void teardown_clean(void)
{
    vfio_device_close(&d);
    vfio_container_close(&c);
    if (kdev >= 0)
        fake_iommufd_ops.close(&f, kdev);
    cr_assert_eq(f.v.nopen, 0, "leaked %d fds", f.v.nopen);
    cr_assert_eq(f.v.bad_closes, 0);
    cr_assert_eq(fake_iommufd_live_objs(&f), 0);
    cr_assert_eq(f.rejections, 0, "the kernel refused: %s", f.last_reject);
}

Test(vfio_iommufd, whole_sequence)
{
    struct gmem_range r[] = {{0, 0x100000}, {0x100000000ull, 0x200000}};
    make_gmem(r, 2);
    setup();
    cr_assert(c.bound && c.attached);
    cr_assert_eq(c.devid, 0x42);
    cr_assert_neq(c.hwpt_id, c.ioas_id, "the kernel's HWPT id is kept");
    cr_assert_eq(c.nranges, 2);
    cr_assert_eq(c.ranges[0].end, 0xfedfffffull);
    cr_assert_eq(c.iova_align, 4096);
    cr_assert_eq(vfio_dma_map_gmem(&c, &gm, &err), 0, "%s", err.msg);
    cr_assert_eq(f.nareas, 2);
    cr_assert_eq(f.areas[1].iova, 0x100000000ull, "IOVA = GPA");
    cr_assert_eq(f.areas[1].va, (uint64_t)(uintptr_t)gm.regions[1].hva);
    cr_assert_eq(f.last_map_flags,
                 IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE);

    /* The device operations are the group path's, on the cdev fd. */
    cr_assert_eq(vfio_device_open(&d, &c, "vfio0", &err), 0, "%s", err.msg);
    cr_assert_eq(d.fd, c.group_fd, "the cdev is the device fd");
    cr_assert_eq(d.regions[0].size, 0x100000);
    uint32_t v = 0;
    cr_assert_eq(vfio_region_read(&d, VFIO_PCI_CONFIG_REGION_INDEX, 0, &v, 4), 0);
    cr_assert_eq(v, 0xabababab);
    cr_assert_eq(vfio_region_write(&d, 0, 8, &v, 4), 0);
    cr_assert_eq(f.v.last_off, 8);
    void *p;
    size_t len;
    cr_assert_eq(vfio_region_mmap(&d, 0, 0, &p, &len), 0);
    cr_assert_eq(len, 0x100000);
    int fds[1] = {33};
    cr_assert_eq(vfio_irq_set_eventfds(&d, VFIO_PCI_MSI_IRQ_INDEX, 0, 1, fds), 0);
    cr_assert_eq(f.v.set_irqs_calls, 1);
    cr_assert_eq(vfio_device_reset(&d), 0);
    cr_assert_eq(f.v.reset_calls, 1);
    cr_assert_eq(f.v.kvm_group_fd, c.group_fd, "kvm-vfio got the cdev fd");

    vfio_device_close(&d);
    cr_assert_eq(f.v.live_mmaps, 0);
    cr_assert_geq(c.group_fd, 0, "the device close leaves the cdev to the container");
    teardown_clean();
    cr_assert_str_eq(f.log, "iommu ioas cdev kvm bind attach ranges map map detach unmap unmap "
                            "destroy close-cdev close-iommu");
    cr_assert(!f.kvm_after_bind);
    gmem_destroy(&gm);
}

Test(vfio_iommufd, host_without_iommufd)
{
    f.no_iommufd = true;
    cr_assert_lt(vfio_iommufd_open(&c, &fake_iommufd_ops, &f, CDEV, &err), 0);
    cr_assert_eq(err.exit_code, WISP_EXIT_HOST);
    cr_assert(strstr(err.msg, "lacks IOMMUFD"), "%s", err.msg);
    cr_assert_eq(c.fd, -1);
    vfio_container_close(&c); /* harmless after a failure */
    cr_assert_eq(f.v.nopen, 0);
}

Test(vfio_iommufd, cdev_path_form)
{
    cr_assert(vfio_cdev_path("/dev/vfio/devices/vfio0"));
    cr_assert(vfio_cdev_path("/dev/vfio/devices/vfio123456789"));
    cr_assert(!vfio_cdev_path("/dev/vfio/devices/vfio"));
    cr_assert(!vfio_cdev_path("/dev/vfio/devices/vfio1234567890"));
    cr_assert(!vfio_cdev_path("/dev/vfio/devices/vfio1/../x"));
    cr_assert(!vfio_cdev_path("/dev/vfio/7"));
    cr_assert(!vfio_cdev_path("/sys/bus/pci/devices/0000:00:03.0"));
    cr_assert_lt(vfio_iommufd_open(&c, &fake_iommufd_ops, &f, "/dev/vfio/7", &err), 0);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    cr_assert_eq(f.v.nopen, 0);
}

/* A failure part-way through set-up releases the IOAS and every fd. */
static void refused_then_clean(void)
{
    vfio_container_close(&c);
    if (kdev >= 0)
        fake_iommufd_ops.close(&f, kdev);
    cr_assert(err_isset(&err));
    cr_assert_eq(f.v.nopen, 0, "leaked %d fds (%s)", f.v.nopen, err.msg);
    cr_assert_eq(fake_iommufd_live_objs(&f), 0);
    cr_assert_eq(f.v.bad_closes, 0);
}

Test(vfio_iommufd, ioas_alloc_fails)
{
    f.v.fail_req = IOMMU_IOAS_ALLOC;
    f.v.fail_errno = ENOMEM;
    f.v.fail_nth = 1;
    cr_assert_lt(vfio_iommufd_open(&c, &fake_iommufd_ops, &f, CDEV, &err), 0);
    refused_then_clean();
}

Test(vfio_iommufd, cdev_missing)
{
    cr_assert_lt(vfio_iommufd_open(&c, &fake_iommufd_ops, &f, "/dev/vfio/devices/vfio9", &err), 0);
    cr_assert(strstr(err.msg, "vfio9"), "%s", err.msg);
    refused_then_clean();
    cr_assert(strstr(f.log, "destroy"), "the IOAS is destroyed: %s", f.log);
}

Test(vfio_iommufd, bind_busy)
{
    f.v.fail_req = VFIO_DEVICE_BIND_IOMMUFD;
    f.v.fail_errno = EBUSY;
    f.v.fail_nth = 1;
    cr_assert_eq(vfio_iommufd_open(&c, &fake_iommufd_ops, &f, CDEV, &err), 0, "%s", err.msg);
    cr_assert_lt(vfio_iommufd_attach(&c, &err), 0);
    cr_assert(strstr(err.msg, "BIND_IOMMUFD"), "%s", err.msg);
    refused_then_clean();
    cr_assert_eq(f.rejections, 0, "%s", f.last_reject);
}

Test(vfio_iommufd, attach_fails)
{
    f.v.fail_req = VFIO_DEVICE_ATTACH_IOMMUFD_PT;
    f.v.fail_errno = EINVAL;
    f.v.fail_nth = 1;
    cr_assert_eq(vfio_iommufd_open(&c, &fake_iommufd_ops, &f, CDEV, &err), 0, "%s", err.msg);
    cr_assert_lt(vfio_iommufd_attach(&c, &err), 0);
    cr_assert(c.bound && !c.attached);
    refused_then_clean();
    cr_assert_eq(f.rejections, 0, "no DETACH of an unattached device: %s", f.last_reject);
}

/* ---- the rules, kept by wisp's layer before the kernel sees the call ----------------------- */

/* RAM outside the IOAS's allowed ranges (the MSI window) is refused with a clear line. */
Test(vfio_iommufd, ram_outside_allowed_ranges)
{
    struct gmem_range r[] = {{0, 0x100000}, {0xfee00000ull, 0x1000}};
    make_gmem(r, 2);
    setup();
    cr_assert_lt(vfio_dma_map_gmem(&c, &gm, &err), 0);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    cr_assert(strstr(err.msg, "outside the IOMMU's usable ranges"), "%s", err.msg);
    cr_assert_eq(f.nareas, 0, "the region mapped first was unmapped again");
    teardown_clean();
    gmem_destroy(&gm);
}

/* The IOAS's alignment: wisp refuses an unaligned mapping itself. */
Test(vfio_iommufd, unaligned_for_the_ioas)
{
    f.align = 0x200000;
    struct gmem_range r[] = {{0, 0x100000}};
    make_gmem(r, 1);
    setup();
    cr_assert_lt(vfio_dma_map_gmem(&c, &gm, &err), 0);
    cr_assert(strstr(err.msg, "not aligned"), "%s", err.msg);
    teardown_clean();
    gmem_destroy(&gm);
}

Test(vfio_iommufd, overlapping_map)
{
    struct gmem_range r[] = {{0, 0x100000}};
    make_gmem(r, 1);
    setup();
    cr_assert_eq(vfio_dma_map(&c, 0, gm.regions[0].hva, 0x100000, &err), 0, "%s", err.msg);
    cr_assert_lt(vfio_dma_map(&c, 0x80000, gm.regions[0].hva, 0x1000, &err), 0);
    cr_assert(strstr(err.msg, "overlaps"), "%s", err.msg);
    teardown_clean();
    gmem_destroy(&gm);
}

Test(vfio_iommufd, attach_twice)
{
    setup();
    cr_assert_lt(vfio_iommufd_attach(&c, &err), 0);
    cr_assert(strstr(err.msg, "already bound"), "%s", err.msg);
    teardown_clean();
}

Test(vfio_iommufd, unmap_not_mapped)
{
    setup();
    cr_assert_eq(vfio_dma_unmap(&c, 0x1000, 0x1000), -ENOENT);
    teardown_clean();
}

Test(vfio_iommufd, map_before_attach)
{
    struct gmem_range r[] = {{0, 0x100000}};
    make_gmem(r, 1);
    cr_assert_eq(vfio_iommufd_open(&c, &fake_iommufd_ops, &f, CDEV, &err), 0, "%s", err.msg);
    cr_assert_lt(vfio_dma_map_gmem(&c, &gm, &err), 0);
    cr_assert(strstr(err.msg, "attach first"), "%s", err.msg);
    teardown_clean();
    gmem_destroy(&gm);
}

Test(vfio_iommufd, device_before_bind)
{
    cr_assert_eq(vfio_iommufd_open(&c, &fake_iommufd_ops, &f, CDEV, &err), 0, "%s", err.msg);
    cr_assert_lt(vfio_device_open(&d, &c, "vfio0", &err), 0);
    cr_assert(strstr(err.msg, "not bound"), "%s", err.msg);
    teardown_clean();
}

/* Teardown with RAM mapped and the device attached: DETACH before DESTROY (else EBUSY). */
Test(vfio_iommufd, teardown_order)
{
    struct gmem_range r[] = {{0, 0x100000}};
    make_gmem(r, 1);
    setup();
    cr_assert_eq(vfio_dma_map_gmem(&c, &gm, &err), 0, "%s", err.msg);
    teardown_clean();
    const char *det = strstr(f.log, "detach"), *des = strstr(f.log, "destroy");
    cr_assert(det && des && det < des, "%s", f.log);
    gmem_destroy(&gm);
}

/* ---- hostile IOVA_RANGES answers ------------------------------------------------------------ */

static void ranges_refused(const char *why)
{
    cr_assert_eq(vfio_iommufd_open(&c, &fake_iommufd_ops, &f, CDEV, &err), 0, "%s", err.msg);
    cr_assert_lt(vfio_iommufd_attach(&c, &err), 0);
    cr_assert(strstr(err.msg, why), "%s", err.msg);
    cr_assert_eq(c.nranges, 0, "nothing kept from a refused answer");
    refused_then_clean();
}

Test(vfio_iommufd, ranges_count_larger_than_buffer)
{
    f.lie_num_iovas = 1000; /* says 1000, returns success */
    ranges_refused("1000 IOVA ranges");
}

Test(vfio_iommufd, more_ranges_than_wisp_holds)
{
    f.nranges = VFIO_MAX_IOVA_RANGES + 1;
    for (unsigned i = 0; i < f.nranges; i++)
        f.ranges[i] = (struct fake_iommufd_range){i * 0x100000ull, i * 0x100000ull + 0xfffff};
    ranges_refused("at most");
}

Test(vfio_iommufd, zero_ranges)
{
    f.nranges = 0;
    ranges_refused("no IOVA");
}

Test(vfio_iommufd, inverted_range)
{
    f.ranges[1] = (struct fake_iommufd_range){0x2000, 0x1000};
    ranges_refused("inverted");
}

Test(vfio_iommufd, odd_alignment)
{
    f.align = 0x3000;
    ranges_refused("alignment");
}

Test(vfio_iommufd, zero_alignment)
{
    f.align = 0;
    ranges_refused("alignment");
}
