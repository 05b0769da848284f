/*
 * acpi.h - a small reader for the ACPI tables a VMM hands the guest.
 *
 * Reads what a Linux guest would: RSDP (from the boot protocol's pointer,
 * else by scanning 0xE0000-0xFFFFF), XSDT, FADT, MADT and the DSDT, with
 * every checksum verified.  The DSDT is not interpreted; the reader only
 * finds the byte patterns a table of fixed-form Name objects produces
 * (LNRO0005 devices with Memory32Fixed and Extended Interrupt resources,
 * and the \_S5 package), which is all the test guest needs.
 */
#ifndef WISP_GUEST_ACPI_H
#define WISP_GUEST_ACPI_H

#include "guest.h"

struct acpi_mmio_dev {
    u64 base;
    u32 size;
    u32 gsi;
};

/*
 * Find and validate the tables (once; later calls return the cache).
 * False if there is no RSDP or a table is malformed (reported with SAY).
 */
bool acpi_init(void);

/* Up to `max` LNRO0005 (virtio-mmio) devices in DSDT order; returns the count. */
int acpi_virtio_devices(struct acpi_mmio_dev *out, int max);

/* The ECAM base of segment 0, bus 0 from the MCFG; false if none. */
bool acpi_mcfg_bus0(u64 *ecam);

/* test=acpi: check every table (cpus=N, devices=N, acpi=0 for "none expected"). */
void test_acpi(void);
/* test=acpi-poweroff / acpi-reset: enter S5 / write the reset register as
 * Linux does, from the FADT's registers and the DSDT's \_S5. */
void test_acpi_poweroff(void);
void test_acpi_reset(void);

/* test=pci (pci.c): enumerate bus 0 through conf1 and through ECAM (from
 * the MCFG, else ecam=ADDR on the command line); pci=0: no bus expected. */
void test_pci(void);

#endif
