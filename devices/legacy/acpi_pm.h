/*
 * The ACPI power-management registers of a hardware-reduced ACPI machine:
 * the sleep control and sleep status registers (ACPI 6, 4.8.3.7) and the
 * reset register (4.8.3.6), one byte each, in that order.  The FADT points
 * the guest's ACPI driver at them, so Linux's `poweroff` (S5) and its ACPI
 * `reboot` reach the VMM as one port write each instead of ending in a halted
 * vCPU that KVM never reports.
 *
 * The device knows only register offsets; the architecture decides where the
 * block sits (arch/x86_64/layout.h) and which SLP_TYP value its DSDT gives
 * \_S5.  Guests write anything: values other than "enter S5" and the reset
 * value are ignored (counted, logged once at debug level).
 */
#ifndef DEVICES_LEGACY_ACPI_PM_H
#define DEVICES_LEGACY_ACPI_PM_H

#include <stdint.h>

#include "devices/device.h"

/* Register offsets in the block, and its length. */
#define ACPI_PM_SLEEP_CTL 0
#define ACPI_PM_SLEEP_STS 1
#define ACPI_PM_RESET     2
#define ACPI_PM_LEN       3

/* Sleep control register fields. */
#define ACPI_PM_SLP_EN        0x20
#define ACPI_PM_SLP_TYP_SHIFT 2
#define ACPI_PM_SLP_TYP_MASK  0x7

struct acpi_pm_ops {
    /* The guest entered S5 (soft off). */
    void (*poweroff)(void *opaque);
    /* The guest wrote the reset value to the reset register. */
    void (*reset)(void *opaque);
};

struct acpi_pm;

/*
 * Create the block.  `s5_slp_typ` (0..7) is the SLP_TYP value the DSDT's
 * \_S5 package carries; `reset_value` is the FADT's RESET_VALUE.  The ops
 * run on the writing vCPU thread and must only request a stop.  `ops` must
 * outlive the device.  NULL with errno set on failure (EINVAL for a bad
 * SLP_TYP).
 */
struct acpi_pm *acpi_pm_create(const struct acpi_pm_ops *ops, void *opaque, uint8_t s5_slp_typ,
                               uint8_t reset_value);

void acpi_pm_destroy(struct acpi_pm *pm);

/*
 * Bus callbacks for the block [base, base + ACPI_PM_LEN).  A wider access
 * is taken byte by byte, each byte at its own offset.  Every register reads
 * 0: SLP_EN and the reset register are write-only, and WAK_STS is never set
 * because the guest never sleeps and wakes.
 */
void acpi_pm_pio_read(void *opaque, uint64_t offset, void *data, unsigned len);
void acpi_pm_pio_write(void *opaque, uint64_t offset, const void *data, unsigned len);

/* Writes ignored so far (other sleep types, other reset values, bad offsets). */
uint64_t acpi_pm_ignored(const struct acpi_pm *pm);

/* Stateless: save writes an empty "acpi_pm" section (version 1), load checks it. */
extern const struct device_ops acpi_pm_device_ops;

#endif /* DEVICES_LEGACY_ACPI_PM_H */
