/*
 * What the ACPI table builders share among themselves (acpi.c lays the
 * tables out, acpi_tables.c writes the fixed-layout ones, acpi_dsdt.c the
 * DSDT's AML).  Not for use outside arch/x86_64/acpi*.c.
 */
#ifndef ARCH_X86_64_ACPI_INTERNAL_H
#define ARCH_X86_64_ACPI_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "arch/x86_64/acpi.h"
#include "arch/x86_64/aml.h"

/* Identification every table carries (ACPI 6.3 5.2.6, the common header). */
#define ACPI_OEM_ID           "WISP  "   /* 6 bytes */
#define ACPI_OEM_TABLE_ID     "WISPVM  " /* 8 bytes */
#define ACPI_OEM_REVISION     1U
#define ACPI_CREATOR_ID       "WISP"
#define ACPI_CREATOR_REVISION 1U

#define ACPI_HEADER_LEN     36U
#define ACPI_HDR_CHECKSUM   9U
#define ACPI_RSDP_LEN       36U
#define ACPI_FADT_LEN       276U /* revision 6 */
#define ACPI_MCFG_LEN       60U  /* header, 8 reserved bytes, one 16-byte allocation */
#define ACPI_TABLE_ALIGN    16U
#define ACPI_XSDT_ENTRY_LEN 8U

/* MADT sizes (ACPI 6.3 5.2.12): header + local APIC address + flags, then entries. */
#define ACPI_MADT_FIXED_LEN  44U
#define ACPI_MADT_LAPIC_LEN  8U
#define ACPI_MADT_IOAPIC_LEN 12U
#define ACPI_MADT_ISO_LEN    10U
#define ACPI_MADT_LNMI_LEN   6U

/* Where each table goes, as offsets from the start of the area (0 = absent for MCFG). */
struct acpi_layout {
    size_t xsdt, xsdt_len;
    size_t fadt;
    size_t madt, madt_len;
    size_t mcfg;
    size_t dsdt;  /* last: its length is known only once the AML is encoded */
    uint64_t gpa; /* of the area */
};

/* The number of ISA IRQs irqmap.h wires to an IOAPIC pin other than their own number. */
unsigned x86_acpi_iso_count(void);

/* Write the common header of a table of `len` bytes at t (checksum 0 for now). */
void x86_acpi_header(uint8_t *t, const char sig[4], uint32_t len, uint8_t rev);
/* Set byte 9 of the table at t so its `len` bytes sum to 0 mod 256. */
void x86_acpi_checksum(uint8_t *t, size_t len);
/* The value that makes p[0..len) sum to 0 mod 256 when added. */
uint8_t x86_acpi_sum_fix(const uint8_t *p, size_t len);

/* The fixed-layout tables, written at their layout offsets in `area` (acpi_tables.c). */
void x86_acpi_rsdp(uint8_t *area, const struct acpi_layout *l);
void x86_acpi_xsdt(uint8_t *area, const struct acpi_layout *l);
void x86_acpi_fadt(uint8_t *area, const struct acpi_layout *l);
void x86_acpi_madt(uint8_t *area, const struct acpi_layout *l, const struct x86_acpi_desc *d);
void x86_acpi_mcfg(uint8_t *area, const struct acpi_layout *l, const struct x86_acpi_pci *pci);

/* The DSDT's AML after its header, for a validated description (acpi_dsdt.c). */
void x86_acpi_dsdt_aml(struct aml_buf *b, const struct x86_acpi_desc *d);

#endif /* ARCH_X86_64_ACPI_INTERNAL_H */
