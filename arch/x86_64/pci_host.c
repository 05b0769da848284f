/*
 * The x86 machine's PCI host (see pci_host.h): the bus of devices/pci/
 * placed at layout.h's addresses and registered on the PIO and MMIO buses.
 */
#include "arch/x86_64/pci_host.h"

#include <errno.h>

#include "arch/x86_64/layout.h"
#include "devices/virtio/mmio.h"

_Static_assert(X86_PCI_MMIO32_BASE >= X86_MMIO_HOLE_START &&
                   X86_PCI_MMIO32_BASE + X86_PCI_MMIO32_SIZE <= X86_VIRTIO_MMIO_BASE,
               "the 32-bit BAR window lies in the hole, below the virtio-mmio windows");
_Static_assert(X86_PCI_ECAM_BASE >= X86_VIRTIO_MMIO_BASE + 16 * VIRTIO_MMIO_WINDOW &&
                   X86_PCI_ECAM_BASE + PCI_ECAM_BUS_LEN <= X86_IOAPIC_GPA,
               "ECAM lies between the virtio-mmio windows and the IOAPIC");
_Static_assert(X86_PCI_IO_BASE + X86_PCI_IO_SIZE <= 0x10000 &&
                   X86_PCI_CONF1_PORT + PCI_CONF1_LEN <= X86_PCI_IO_BASE,
               "the I/O window lies above conf1 and inside the port space");

/* RAM ends at 3 GiB or below, or continues above 4 GiB (arch_ram_layout). */
static uint64_t ram_end(uint64_t mem_size)
{
    uint64_t low = X86_MMIO_HOLE_START;
    return mem_size <= low ? X86_MMIO_HOLE_END : X86_MMIO_HOLE_END + (mem_size - low);
}

void x86_pci_windows(uint64_t mem_size, struct pci_windows *w)
{
    uint64_t top = ram_end(mem_size);
    *w = (struct pci_windows){
        .mmio32_base = X86_PCI_MMIO32_BASE,
        .mmio32_size = X86_PCI_MMIO32_SIZE,
        .mmio64_base = (top + X86_PCI_MMIO64_ALIGN - 1) & ~(X86_PCI_MMIO64_ALIGN - 1),
        .mmio64_size = X86_PCI_MMIO64_SIZE,
        .io_base = X86_PCI_IO_BASE,
        .io_size = X86_PCI_IO_SIZE,
    };
}

int x86_pci_create(const struct vm_services *svc, uint64_t mem_size, struct pci_bus **out,
                   struct errbuf *err)
{
    struct pci_windows w;
    x86_pci_windows(mem_size, &w);
    struct pci_bus *b = *out = pci_bus_new(&w);
    if (!b)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "cannot create the PCI bus");
    int ret = pci_bus_add_host_bridge(b);
    if (ret < 0)
        return err_set(err, WISP_EXIT_FAILURE, -ret, "cannot add the PCI host bridge");
    ret = pci_bus_assign(b, err);
    if (ret < 0)
        return ret;
    void *h32 = pci_window_handle(b, PCI_SPACE_MEM, w.mmio32_base);
    void *h64 = pci_window_handle(b, PCI_SPACE_MEM, w.mmio64_base);
    void *hio = pci_window_handle(b, PCI_SPACE_IO, w.io_base);
    if (!h32 || !h64 || !hio)
        return err_set(err, WISP_EXIT_FAILURE, ENOSPC, "internal: PCI window handles");
    svc->register_pio(svc->ctx, X86_PCI_CONF1_PORT, PCI_CONF1_LEN, "pci-conf1", pci_conf1_read,
                      pci_conf1_write, b);
    svc->register_mmio(svc->ctx, X86_PCI_ECAM_BASE, PCI_ECAM_BUS_LEN, "pci-ecam", pci_ecam_read,
                       pci_ecam_write, b);
    svc->register_mmio(svc->ctx, w.mmio32_base, w.mmio32_size, "pci-mmio32", pci_window_read,
                       pci_window_write, h32);
    svc->register_mmio(svc->ctx, w.mmio64_base, w.mmio64_size, "pci-mmio64", pci_window_read,
                       pci_window_write, h64);
    svc->register_pio(svc->ctx, (uint16_t)w.io_base, (uint16_t)w.io_size, "pci-io", pci_window_read,
                      pci_window_write, hio);
    return 0;
}

void x86_pci_acpi_desc(uint64_t mem_size, struct x86_acpi_pci *out)
{
    struct pci_windows w;
    x86_pci_windows(mem_size, &w);
    *out = (struct x86_acpi_pci){
        .ecam_base = X86_PCI_ECAM_BASE,
        .segment = 0,
        .bus_start = 0,
        .bus_end = 0,
        .mmio32_base = (uint32_t)w.mmio32_base,
        .mmio32_size = (uint32_t)w.mmio32_size,
        .mmio64_base = w.mmio64_base,
        .mmio64_size = w.mmio64_size,
        .io_base = (uint16_t)w.io_base,
        .io_size = (uint32_t)w.io_size,
        .conf1_port = X86_PCI_CONF1_PORT,
        .nintx = X86_PCI_INTX_GSIS,
    };
    for (unsigned i = 0; i < X86_PCI_INTX_GSIS; i++)
        out->intx_gsi[i] = X86_PCI_INTX_GSI + i;
}
