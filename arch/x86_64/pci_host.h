/*
 * The x86 machine's PCI host (with --pci on): where layout.h puts the
 * bus's windows and ECAM, the bus with its host bridge at 00:00.0 and the
 * ranges it claims through vm_services, and the bridge's ACPI description.
 * The bus model itself is devices/pci/; this file only places it.
 */
#ifndef ARCH_X86_64_PCI_HOST_H
#define ARCH_X86_64_PCI_HOST_H

#include <stdint.h>

#include "arch/x86_64/acpi.h"
#include "devices/pci/pci.h"
#include "vmm/services.h"

/*
 * IOAPIC GSIs reserved for PCI INTx with --pci on: INTA#-INTD# of device d
 * reach GSI X86_PCI_INTX_GSI + (d + pin) % 4 (the usual swizzle), level-
 * triggered, active-low, as the DSDT's _PRT says.  They are the last four
 * of the virtio-mmio slots' GSIs, so with PCI on, 12 virtio devices fit.
 */
#define X86_PCI_INTX_GSI  20U
#define X86_PCI_INTX_GSIS 4U

/* The windows for a guest with `mem_size` bytes of RAM (layout.h). */
void x86_pci_windows(uint64_t mem_size, struct pci_windows *w);

/*
 * Create the bus and its host bridge, place the BARs, and claim conf1
 * (0xCF8-0xCFF), the ECAM window and the BAR windows through `svc`.
 * *out receives the bus (free with pci_bus_free).  0 or -errno with `err`.
 */
int x86_pci_create(const struct vm_services *svc, uint64_t mem_size, struct pci_bus **out,
                   struct errbuf *err) __must_check;

/* The host bridge as the ACPI tables describe it (DSDT PCI0, MCFG). */
void x86_pci_acpi_desc(uint64_t mem_size, struct x86_acpi_pci *out);

#endif /* ARCH_X86_64_PCI_HOST_H */
