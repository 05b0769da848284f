/*
 * Unit tests for the VFIO layer (devices/vfio/) against the simulated kernel
 * of tests/lib/fake_vfio: set-up refusals that close what they opened,
 * region bounds, DMA mapping of guest RAM and its teardown, interrupts,
 * mmap bookkeeping, reset and the kvm-vfio device.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "devices/vfio/vfio.h"
#include "tests/lib/fake_vfio.h"

static struct fake_vfio f;
static struct vfio_container c;
static struct vfio_device d;
static struct errbuf err;

static void init(void)
{
    fake_vfio_init(&f);
    memset(&err, 0, sizeof(err));
}

TestSuite(vfio, .init = init);

static void open_all(void)
{
    cr_assert_eq(vfio_container_open(&c, &fake_vfio_ops, &f, "/dev/vfio/1", &err), 0, "%s",
                 err.msg);
    cr_assert_eq(vfio_device_open(&d, &c, "0000:00:01.0", &err), 0, "%s", err.msg);
    cr_assert_eq(f.nopen, 3);
}

static void close_all(void)
{
    vfio_device_close(&d);
    vfio_container_close(&c);
    cr_assert_eq(f.nopen, 0, "every fd closed");
    cr_assert_eq(f.bad_closes, 0, "no fd closed twice");
}

Test(vfio, open_and_close)
{
    open_all();
    cr_assert_eq(d.num_regions, VFIO_PCI_NUM_REGIONS);
    cr_assert_eq(d.regions[0].size, 0x100000);
    cr_assert_eq(d.regions[0].nareas, 1);
    cr_assert_eq(d.regions[VFIO_PCI_CONFIG_REGION_INDEX].offset, 7ull << 40);
    cr_assert_eq(d.regions[VFIO_PCI_VGA_REGION_INDEX].size, 0, "absent VGA region");
    cr_assert_eq(d.irqs[VFIO_PCI_MSI_IRQ_INDEX].count, 1);
    close_all();
}

/* Each refusal during container set-up closes what it opened. */
static void container_refused(void)
{
    cr_assert_lt(vfio_container_open(&c, &fake_vfio_ops, &f, "/dev/vfio/1", &err), 0);
    cr_assert(err_isset(&err));
    cr_assert_eq(f.nopen, 0, "leaked %d fds (%s)", f.nopen, err.msg);
    cr_assert_eq(c.fd, -1);
    vfio_container_close(&c); /* harmless after a failure */
    cr_assert_eq(f.bad_closes, 0);
}

Test(vfio, wrong_api_version)
{
    f.api_version = 1;
    container_refused();
}

Test(vfio, no_type1v2)
{
    f.type1v2 = 0;
    container_refused();
}

Test(vfio, group_missing)
{
    f.fail_open_nth = 2;
    container_refused();
}

Test(vfio, group_not_viable)
{
    f.viable = false;
    container_refused();
    cr_assert(strstr(err.msg, "viable") != NULL, "%s", err.msg);
}

Test(vfio, set_iommu_fails)
{
    f.fail_req = VFIO_SET_IOMMU;
    f.fail_errno = EPERM;
    f.fail_nth = 1;
    container_refused();
}

Test(vfio, hostile_iommu_caps)
{
    struct vfio_iommu_type1_info_cap_iova_range ir = {
        .header = {.id = VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, .version = 1}, .nr_iovas = 1000};
    fake_vfio_iommu_cap(&f, &ir, sizeof(ir));
    container_refused();
}

static void device_refused(void)
{
    cr_assert_eq(vfio_container_open(&c, &fake_vfio_ops, &f, "/dev/vfio/1", &err), 0);
    cr_assert_lt(vfio_device_open(&d, &c, "0000:00:01.0", &err), 0);
    cr_assert(err_isset(&err));
    cr_assert_eq(f.nopen, 2, "device fd closed after the refusal (%s)", err.msg);
    cr_assert_eq(d.fd, -1);
    vfio_device_close(&d);
    vfio_container_close(&c);
    cr_assert_eq(f.nopen, 0);
    cr_assert_eq(f.bad_closes, 0);
}

Test(vfio, device_with_hostile_region_chain)
{
    struct vfio_info_cap_header h = {.id = 0x7777, .version = 1};
    fake_vfio_region_cap(&f, 2, &h, sizeof(h));
    /* Make the cap link to itself. */
    h.next = 32;
    memcpy(f.region[2] + 32, &h, sizeof(h));
    device_refused();
}

Test(vfio, device_region_info_keeps_growing)
{
    struct vfio_info_cap_header h = {.id = VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, .version = 1};
    fake_vfio_region_cap(&f, 0, &h, sizeof(h));
    f.grow_argsz = true;
    device_refused();
}

Test(vfio, device_irq_info_fails)
{
    f.fail_req = VFIO_DEVICE_GET_IRQ_INFO;
    f.fail_errno = EIO;
    f.fail_nth = 2;
    device_refused();
}

Test(vfio, device_not_pci)
{
    f.device_flags = VFIO_DEVICE_FLAGS_PLATFORM;
    device_refused();
}

Test(vfio, region_caps_through_two_rounds)
{
    struct {
        struct vfio_region_info_cap_sparse_mmap sp;
        struct vfio_region_sparse_mmap_area a[2];
    } cap = {
        .sp = {.header = {.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP, .version = 1}, .nr_areas = 2},
        .a = {{0, 0x2000}, {0x4000, 0x8000}}};
    fake_vfio_region_cap(&f, 0, &cap, sizeof(cap));
    open_all();
    cr_assert(d.regions[0].sparse);
    cr_assert_eq(d.regions[0].nareas, 2);

    void *p1, *p2;
    size_t l1, l2;
    cr_assert_eq(vfio_region_mmap(&d, 0, 1, &p1, &l1), 0);
    cr_assert_eq(f.last_mmap_off, 0x4000);
    cr_assert_eq(l1, 0x8000);
    cr_assert_eq(f.last_mmap_prot, PROT_READ | PROT_WRITE);
    cr_assert_eq(vfio_region_mmap(&d, 0, 0, &p2, &l2), 0);
    cr_assert_eq(vfio_region_mmap(&d, 0, 2, &p2, &l2), -EINVAL, "no third area");
    cr_assert_eq(vfio_region_mmap(&d, VFIO_PCI_CONFIG_REGION_INDEX, 0, &p2, &l2), -EINVAL,
                 "config space is not mmap-able");
    cr_assert_eq(f.live_mmaps, 2);
    cr_assert_eq(vfio_region_munmap(&d, p1), 0);
    cr_assert_eq(vfio_region_munmap(&d, p1), -EINVAL, "not twice");
    cr_assert_eq(f.live_mmaps, 1);
    close_all();
    cr_assert_eq(f.live_mmaps, 0, "device close unmaps the rest");
}

Test(vfio, region_read_write_bounds)
{
    open_all();
    uint8_t buf[16];
    unsigned cfg = VFIO_PCI_CONFIG_REGION_INDEX;

    cr_assert_eq(vfio_region_read(&d, cfg, 252, buf, 4), 0);
    cr_assert_eq(f.last_off, (7ll << 40) + 252, "pread at region offset + off");
    cr_assert_eq(f.last_len, 4);
    unsigned before = f.preads;
    cr_assert_eq(vfio_region_read(&d, cfg, 253, buf, 4), -EINVAL, "one byte past the end");
    cr_assert_eq(vfio_region_read(&d, cfg, 256, buf, 1), -EINVAL);
    cr_assert_eq(vfio_region_read(&d, cfg, ~0ull - 1, buf, 4), -EINVAL, "wrapping offset");
    cr_assert_eq(vfio_region_read(&d, cfg, 0, buf, 0), -EINVAL, "empty access");
    cr_assert_eq(vfio_region_read(&d, VFIO_PCI_VGA_REGION_INDEX, 0, buf, 1), -EINVAL, "absent");
    cr_assert_eq(vfio_region_read(&d, 99, 0, buf, 1), -EINVAL, "no such region");
    cr_assert_eq(vfio_region_write(&d, cfg, 255, buf, 2), -EINVAL);
    cr_assert_eq(f.preads, before, "refused accesses never reach the kernel");
    cr_assert_eq(f.pwrites, 0);
    cr_assert_eq(vfio_region_write(&d, 0, 0xffffc, buf, 4), 0);
    cr_assert_eq(f.pwrites, 1);

    /* A read-only region refuses writes. */
    d.regions[1].flags = VFIO_REGION_INFO_FLAG_READ;
    d.regions[1].size = 0x1000;
    cr_assert_eq(vfio_region_write(&d, 1, 0, buf, 4), -EACCES);
    close_all();
}

static struct gmem gm;

static void make_gmem(void)
{
    struct gmem_range r[] = {{0, 0x100000}, {0x200000, 0x200000}, {0x100000000ull, 0x100000}};
    gm.fd = -1;
    cr_assert_eq(gmem_create(&gm, r, 3, false, &err), 0, "%s", err.msg);
}

Test(vfio, dma_maps_every_ram_range_and_unmaps_on_teardown)
{
    make_gmem();
    open_all();
    cr_assert_eq(vfio_dma_map_gmem(&c, &gm, &err), 0, "%s", err.msg);
    cr_assert_eq(f.nmaps, 3);
    for (unsigned i = 0; i < 3; i++) {
        bool found = false;
        for (unsigned j = 0; j < f.nmaps; j++)
            if (f.maps[j].iova == gm.regions[i].gpa && f.maps[j].size == gm.regions[i].size &&
                f.maps[j].vaddr == (uint64_t)(uintptr_t)gm.regions[i].hva)
                found = true;
        cr_assert(found, "RAM range %u mapped at IOVA = GPA", i);
    }
    close_all();
    cr_assert_eq(f.nmaps, 0, "teardown unmapped everything");
    cr_assert_eq(f.unmap_calls, 3);
    gmem_destroy(&gm);
}

Test(vfio, dma_map_failure_undoes_the_part_mapped)
{
    make_gmem();
    open_all();
    f.fail_req = VFIO_IOMMU_MAP_DMA;
    f.fail_errno = ENOMEM;
    f.fail_nth = 3;
    cr_assert_lt(vfio_dma_map_gmem(&c, &gm, &err), 0);
    cr_assert(strstr(err.msg, "MEMLOCK") != NULL, "%s", err.msg);
    cr_assert_eq(f.nmaps, 0);
    cr_assert_eq(c.nmaps, 0);
    close_all();
    gmem_destroy(&gm);
}

Test(vfio, dma_respects_iova_ranges_and_alignment)
{
    struct {
        struct vfio_iommu_type1_info_cap_iova_range ir;
        struct vfio_iova_range r[2];
    } cap = {
        .ir = {.header = {.id = VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, .version = 1}, .nr_iovas = 2},
        .r = {{0, 0xfedfffff}, {0xfef00000, 0xffffffffffffull}}};
    fake_vfio_iommu_cap(&f, &cap, sizeof(cap));
    open_all();
    cr_assert_eq(c.nranges, 2);
    static uint8_t buf[0x4000] __attribute__((aligned(4096)));
    cr_assert_eq(vfio_dma_map(&c, 0xfee00000, buf, 0x1000, &err), -ERANGE, "MSI window");
    cr_assert_eq(vfio_dma_map(&c, 0xfedff000, buf, 0x2000, &err), -ERANGE, "straddles a hole");
    cr_assert_eq(vfio_dma_map(&c, 0x1800, buf, 0x1000, &err), -EINVAL, "unaligned IOVA");
    cr_assert_eq(vfio_dma_map(&c, 0x1000, buf + 1, 0x1000, &err), -EINVAL, "unaligned address");
    cr_assert_eq(vfio_dma_map(&c, ~0ull - 0xfff, buf, 0x2000, &err), -ERANGE, "wraps");
    cr_assert_eq(f.map_calls, 0, "nothing refused reached the kernel");
    cr_assert_eq(vfio_dma_map(&c, 0xfef00000, buf, 0x2000, &err), 0);
    cr_assert_eq(vfio_dma_map(&c, 0xfef01000, buf, 0x1000, &err), -EEXIST, "overlap");
    cr_assert_eq(vfio_dma_unmap(&c, 0xfef00000, 0x1000), -ENOENT, "only whole mappings");
    cr_assert_eq(vfio_dma_unmap(&c, 0xfef00000, 0x2000), 0);
    cr_assert_eq(f.nmaps, 0);
    close_all();
}

Test(vfio, irqs)
{
    open_all();
    int fds[2] = {41, 42};
    cr_assert_eq(vfio_irq_set_eventfds(&d, VFIO_PCI_MSI_IRQ_INDEX, 0, 1, fds), 0);
    struct vfio_irq_set s;
    memcpy(&s, f.last_irq_set, sizeof(s));
    cr_assert_eq(s.argsz, sizeof(s) + 4);
    cr_assert_eq(s.flags, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER);
    cr_assert_eq(s.index, VFIO_PCI_MSI_IRQ_INDEX);
    cr_assert_eq(s.count, 1);
    int32_t fd0;
    memcpy(&fd0, f.last_irq_set + sizeof(s), 4);
    cr_assert_eq(fd0, 41);

    unsigned calls = f.set_irqs_calls;
    cr_assert_eq(vfio_irq_set_eventfds(&d, VFIO_PCI_MSI_IRQ_INDEX, 0, 2, fds), -EINVAL);
    cr_assert_eq(vfio_irq_set_eventfds(&d, VFIO_PCI_MSI_IRQ_INDEX, 1, 1, fds), -EINVAL);
    cr_assert_eq(vfio_irq_set_eventfds(&d, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, fds), -EINVAL,
                 "MSI-X has no vectors here");
    cr_assert_eq(vfio_irq_set_eventfds(&d, 77, 0, 1, fds), -EINVAL);
    cr_assert_eq(f.set_irqs_calls, calls, "refused requests never reach the kernel");

    cr_assert_eq(vfio_irq_disable(&d, VFIO_PCI_MSI_IRQ_INDEX), 0);
    memcpy(&s, f.last_irq_set, sizeof(s));
    cr_assert_eq(s.flags, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER);
    cr_assert_eq(s.count, 0);
    cr_assert_eq(s.argsz, sizeof(s));

    cr_assert_eq(vfio_intx_enable(&d, 41, 42), 0);
    memcpy(&s, f.last_irq_set, sizeof(s));
    cr_assert_eq(s.flags, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK);
    memcpy(&fd0, f.last_irq_set + sizeof(s), 4);
    cr_assert_eq(fd0, 42, "the unmask eventfd comes second");
    close_all();
}

Test(vfio, reset_only_when_offered)
{
    open_all();
    cr_assert_eq(vfio_device_reset(&d), 0);
    cr_assert_eq(f.reset_calls, 1);
    d.flags &= ~(uint32_t)VFIO_DEVICE_FLAGS_RESET;
    cr_assert_eq(vfio_device_reset(&d), -ENOTSUP);
    cr_assert_eq(f.reset_calls, 1);
    close_all();
}

Test(vfio, kvm_device_and_group)
{
    cr_assert_eq(vfio_container_open(&c, &fake_vfio_ops, &f, "/dev/vfio/1", &err), 0);
    int kdev = -1;
    cr_assert_eq(vfio_kvm_create(&fake_vfio_ops, &f, 7, &kdev, &err), 0, "%s", err.msg);
    cr_assert_eq(f.kvm_creates, 1);
    cr_assert_eq(vfio_kvm_add_group(&c, kdev, &err), 0, "%s", err.msg);
    cr_assert_eq(f.kvm_group_fd, c.group_fd);
    cr_assert_eq(vfio_kvm_add_group(&c, 9999, &err), -EBADF);
    fake_vfio_ops.close(&f, kdev);
    vfio_container_close(&c);
    cr_assert_eq(f.nopen, 0);
}
