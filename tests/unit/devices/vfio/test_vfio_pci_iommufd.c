/*
 * The passthrough function's kernel transport (devices/vfio/vfio_pci_kernel.c)
 * on the iommufd path, against the simulated kernel of
 * tests/lib/fake_iommufd.h: `path=/dev/vfio/devices/vfioN` takes the
 * iommufd route in the order the kernel wants (kvm-vfio gets the cdev before
 * the bind, ranges are read after the attach, guest RAM is mapped at
 * IOVA = GPA), the function lands on the PCI bus, and its destruction
 * tears down in the kernel's order with nothing left behind.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "devices/pci/pci.h"
#include "devices/vfio/vfio.h"
#include "devices/vfio/vfio_pci.h"
#include "tests/lib/fake_iommufd.h"
#include "vmm/gmem.h"
#include "vmm/irq_routing.h"

static const struct pci_windows win = {
    .mmio32_base = 0xc0000000ULL,
    .mmio32_size = 0x10000000ULL,
    .mmio64_base = 0x1000000000ULL,
    .mmio64_size = 0x1000000000ULL,
    .io_base = 0xc000,
    .io_size = 0x1000,
};

static struct fake_iommufd f;
static struct gmem gm;
static struct pci_bus *bus;
static struct irq_routing *rt;

static int s_slot_add(void *ctx, uint64_t gpa, uint64_t size, void *hva, unsigned *slot)
{
    (void)ctx, (void)gpa, (void)size, (void)hva;
    *slot = 1;
    return 0;
}

static void s_slot_remove(void *ctx, unsigned slot)
{
    (void)ctx, (void)slot;
}

static const struct vm_services svc = {
    .mem_slot_add = s_slot_add,
    .mem_slot_remove = s_slot_remove,
};

static void setup(void)
{
    fake_iommufd_init(&f);
    /* A plain function: 1b36:0005, header type 0, no capabilities. */
    f.v.use_config = true;
    f.v.config[0] = 0x36;
    f.v.config[1] = 0x1b;
    f.v.config[2] = 0x05;
    struct gmem_range r[] = {{0, 0x100000}, {0x100000000ull, 0x100000}};
    struct errbuf err = {0};
    cr_assert_eq(gmem_create(&gm, r, 2, false, &err), 0, "%s", err.msg);
    bus = pci_bus_new(&win);
    rt = irq_routing_new();
    cr_assert(bus && rt);
}

static void teardown(void)
{
    pci_bus_free(bus);
    irq_routing_free(rt);
    gmem_destroy(&gm);
}

TestSuite(vfio_pci_iommufd, .init = setup, .fini = teardown, .timeout = 10);

static int create(struct vfio_pci **pt, struct errbuf *err)
{
    struct vfio_pci_host h = {.bus = bus,
                              .routing = rt,
                              .vm_fd = -1,
                              .svc = &svc,
                              .mem = &gm,
                              .win = {0xfee00000ULL, 0x100000},
                              .sys = &fake_iommufd_ops,
                              .sys_ctx = &f};
    return vfio_pci_create_kernel(&h, "pt0", FAKE_IOMMUFD_CDEV, NULL, PCI_DEVFN(1, 0), pt, err);
}

Test(vfio_pci_iommufd, create_and_destroy)
{
    struct vfio_pci *pt = NULL;
    struct errbuf err = {0};
    cr_assert_eq(create(&pt, &err), 0, "%s", err.msg);
    cr_assert_not_null(pt);
    cr_assert_str_eq(f.log, "iommu ioas cdev kvm bind attach ranges map map");
    cr_assert(!f.kvm_after_bind, "kvm-vfio learns the cdev before the bind");
    cr_assert_eq(f.nareas, 2);
    cr_assert_eq(f.areas[1].iova, 0x100000000ull, "IOVA = GPA");
    cr_assert_eq(f.v.reset_calls, 1, "a clean device");
    cr_assert_eq(f.v.kvm_creates, 1);
    vfio_pci_destroy(pt);
    cr_assert_str_eq(f.log, "iommu ioas cdev kvm bind attach ranges map map detach unmap unmap "
                            "destroy close-cdev close-iommu");
    cr_assert_eq(f.v.nopen, 0, "every fd closed, the kvm-vfio device's too");
    cr_assert_eq(f.v.bad_closes, 0);
    cr_assert_eq(fake_iommufd_live_objs(&f), 0);
    cr_assert_eq(f.rejections, 0, "the kernel refused: %s", f.last_reject);
}

/* Guest RAM in the IOAS's reserved MSI window: refused, with nothing left behind. */
Test(vfio_pci_iommufd, ram_in_reserved_range)
{
    f.ranges[0].last = 0xfffff; /* the first gmem region fits, the second does not */
    f.ranges[1].start = 0x200000000ull;
    struct vfio_pci *pt = NULL;
    struct errbuf err = {0};
    cr_assert_lt(create(&pt, &err), 0);
    cr_assert(strstr(err.msg, "outside the IOMMU's usable ranges"), "%s", err.msg);
    cr_assert_eq(f.v.nopen, 0);
    cr_assert_eq(fake_iommufd_live_objs(&f), 0);
    cr_assert_eq(f.rejections, 0, "the kernel refused: %s", f.last_reject);
}

Test(vfio_pci_iommufd, host_without_iommufd)
{
    f.no_iommufd = true;
    struct vfio_pci *pt = NULL;
    struct errbuf err = {0};
    cr_assert_lt(create(&pt, &err), 0);
    cr_assert_eq(err.exit_code, WISP_EXIT_HOST);
    cr_assert(strstr(err.msg, "lacks IOMMUFD"), "%s", err.msg);
    cr_assert_eq(f.v.nopen, 0);
}
