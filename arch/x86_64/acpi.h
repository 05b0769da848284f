/*
 * ACPI tables for x86_64 guests.  Stock distribution kernels find
 * virtio-mmio devices only through ACPI (they lack the virtio_mmio.device=
 * command line), and power off and reset through the FADT's registers, so
 * wisp describes its machine with a hardware-reduced ACPI 6.3 table set:
 *
 *   RSDP (rev 2) -> XSDT -> FADT -> DSDT (COM1, virtio-mmio devices, \_S5,
 *                                         a PCI host bridge if one is given)
 *                        -> MADT (local APICs, the IOAPIC, ISA overrides, LINT1 NMI)
 *                        -> MCFG (only with a PCI host bridge)
 *
 * This module only builds bytes; the VM writes them to guest memory with
 * x86_acpi_write() and implements the registers at X86_ACPI_*_PORT.
 */
#ifndef ARCH_X86_64_ACPI_H
#define ARCH_X86_64_ACPI_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"
#include "vmm/gmem.h"

/* Local APIC ids 0..253 (255 is the broadcast id, as for the MP table). */
#define X86_ACPI_MAX_VCPUS 254U
/* The DSDT names virtio devices VR00..VR1F (the free GSIs run out first, see below). */
#define X86_ACPI_MAX_VIRTIO 32U
/* GSIs are IOAPIC pins (GSI base 0), irqmap.h's X86_IOAPIC_PINS. */
#define X86_ACPI_MAX_GSI 23U
/* KVM's IOAPIC id register holds 4 bits. */
#define X86_ACPI_MAX_IOAPIC_ID 15U

/*
 * One virtio-mmio window: [base, base + size) below 4 GiB, edge-triggered,
 * active-high on `gsi`.  The GSI is both the KVM GSI the device's irqfd
 * raises and the IOAPIC pin the DSDT names, so it must be one irqmap.h
 * wires one-to-one (not 0 or 2), below 24, not COM1's IRQ 4, and no other
 * device's: with the DSDT saying Exclusive, 21 devices at most can have
 * their own line.
 */
struct x86_acpi_mmio_dev {
    uint64_t base;
    uint32_t size;
    uint32_t gsi;
};

/*
 * A PCI Express host bridge (PNP0A08) with ECAM.  Bus b's configuration
 * space is at ecam_base + (b << 20), as in the MCFG; only the buses
 * bus_start..bus_end are decoded, and that part of the ECAM range is
 * reserved with a PNP0C02 device.  The windows are what the bridge
 * forwards to its devices and must not overlap the ECAM range.
 */
struct x86_acpi_pci {
    uint64_t ecam_base; /* 1 MiB aligned */
    uint16_t segment;
    uint8_t bus_start;
    uint8_t bus_end;
    uint32_t mmio32_base; /* required: [base, base + size) below 4 GiB, size > 0 */
    uint32_t mmio32_size;
    uint64_t mmio64_base; /* optional: size 0 means none */
    uint64_t mmio64_size;
    uint16_t io_base; /* optional: size 0 means none; base + size <= 0x10000 */
    uint32_t io_size;
    uint16_t conf1_port; /* optional: the 8 conf1 ports the bridge decodes, 0 none */
    /* Optional _PRT: INTA#-INTD# of device d reach GSI
     * intx_gsi[(d + pin) % nintx], level, active-low.  nintx 0 (no _PRT) or
     * 4; the GSIs are IOAPIC pins 16-23 no virtio device uses. */
    unsigned nintx;
    uint32_t intx_gsi[4];
};

struct x86_acpi_desc {
    unsigned nvcpus;    /* 1..X86_ACPI_MAX_VCPUS: local APIC ids 0..nvcpus-1 */
    unsigned ioapic_id; /* x86_ioapic_id(nvcpus) from mptable.h, 0..X86_ACPI_MAX_IOAPIC_ID */
    const struct x86_acpi_mmio_dev *virtio; /* in device order: device i is VR<i in hex> */
    unsigned nvirtio;                       /* 0..X86_ACPI_MAX_VIRTIO */
    const struct x86_acpi_pci *pci;         /* NULL: no PCI host bridge and no MCFG */
};

/*
 * Build every table into buf, the host copy of the guest area that starts
 * at guest-physical `gpa` (16-byte aligned) and holds `len` bytes.  The
 * RSDP is at offset 0; each table follows, 16-byte aligned, in the order
 * XSDT, FADT, MADT, MCFG (if any), DSDT.  Pointers between tables are
 * guest-physical.  Nothing is written at or beyond buf + len.
 *
 * @d:    the machine; validated here
 * @used: receives the bytes used from the start of the area
 * @err:  receives one line on failure (WISP_EXIT_USAGE)
 * Returns 0, -EINVAL for a bad description or gpa (buf untouched), or
 * -ENOSPC ("ACPI tables need N bytes, the area holds M") if the tables do
 * not fit (buf[0, len) then holds a partial DSDT).
 */
int x86_acpi_build(const struct x86_acpi_desc *d, uint64_t gpa, uint8_t *buf, size_t len,
                   size_t *used, struct errbuf *err) __must_check;

/*
 * Clear [X86_ACPI_GPA, +X86_ACPI_MAX) in guest memory, build the tables
 * there and return the RSDP's guest-physical address in *rsdp_gpa.  Returns
 * 0 or the errors of x86_acpi_build(), plus -EFAULT if the area is not RAM.
 */
int x86_acpi_write(const struct gmem *gm, const struct x86_acpi_desc *d, uint64_t *rsdp_gpa,
                   struct errbuf *err) __must_check;

#endif /* ARCH_X86_64_ACPI_H */
