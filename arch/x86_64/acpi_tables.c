/*
 * The ACPI tables with a fixed layout: RSDP, XSDT, FADT, MADT and MCFG
 * (ACPI 6.3, chapter 5.2, and the PCI Firmware Specification 3.2 for the
 * MCFG).  Each is written field by field at the offsets the specification
 * gives, into bytes acpi.c has proven to lie inside the area.
 */
#include <string.h>

#include "arch/x86_64/acpi_internal.h"
#include "arch/x86_64/irqmap.h"
#include "arch/x86_64/layout.h"
#include "vmm/log.h"

/* Common header, 5.2.6. */
#define HDR_SIGNATURE   0
#define HDR_LENGTH      4
#define HDR_REVISION    8
#define HDR_OEM_ID      10
#define HDR_OEM_TABLE   16
#define HDR_OEM_REV     24
#define HDR_CREATOR     28
#define HDR_CREATOR_REV 32

/* RSDP, 5.2.5.3. */
#define RSDP_CHECKSUM     8
#define RSDP_OEM_ID       9
#define RSDP_REVISION     15
#define RSDP_RSDT         16
#define RSDP_LENGTH       20
#define RSDP_XSDT         24
#define RSDP_EXT_CHECKSUM 32
#define RSDP_V1_LEN       20 /* what the first checksum covers */

/* FADT, 5.2.9 (revision 6, ACPI 6.3: minor version 3). */
#define FADT_REVISION       6
#define FADT_MINOR          3
#define FADT_DSDT           40
#define FADT_SCI_INT        46
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS          112
#define FADT_RESET_REG      116
#define FADT_RESET_VALUE    128
#define FADT_MINOR_VERSION  131
#define FADT_X_DSDT         140
#define FADT_SLEEP_CTL      244
#define FADT_SLEEP_STS      256
#define FADT_HYPERVISOR_ID  268

/* FADT Flags, 5.2.9 table 5-35. */
#define FADT_F_PWR_BUTTON      (1U << 4) /* no fixed-feature power button */
#define FADT_F_SLP_BUTTON      (1U << 5) /* no fixed-feature sleep button */
#define FADT_F_RESET_REG_SUP   (1U << 10)
#define FADT_F_HW_REDUCED_ACPI (1U << 20)
/* IA-PC boot architecture flags, 5.2.9.3: an 8042 (the i8042 with its keyboard, DSDT KBD0). */
#define FADT_BOOT_8042            (1U << 1)
#define FADT_BOOT_VGA_NOT_PRESENT (1U << 2)
#define FADT_BOOT_CMOS_RTC_ABSENT (1U << 5)

/* Generic Address Structure, 5.2.3.2. */
#define GAS_SPACE_SYSTEM_IO 1
#define GAS_ACCESS_BYTE     1

/* MADT, 5.2.12 (revision 5, ACPI 6.3). */
#define MADT_REVISION        5
#define MADT_LAPIC_ADDR      36
#define MADT_FLAGS           40
#define MADT_PCAT_COMPAT     1U
#define MADT_TYPE_LAPIC      0
#define MADT_TYPE_IOAPIC     1
#define MADT_TYPE_ISO        2
#define MADT_TYPE_LAPIC_NMI  4
#define MADT_LAPIC_ENABLED   1U
#define MADT_ALL_PROCESSORS  0xFF
#define MADT_LINT1           1
#define MADT_INTI_CONFORMING 0 /* polarity and trigger mode of the bus (ISA: high, edge) */

#define XSDT_REVISION 1
#define MCFG_REVISION 1
#define MCFG_ALLOC    44 /* after the header and 8 reserved bytes */

uint8_t x86_acpi_sum_fix(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + p[i]);
    return (uint8_t)(0x100 - sum);
}

void x86_acpi_checksum(uint8_t *t, size_t len)
{
    t[ACPI_HDR_CHECKSUM] = 0;
    t[ACPI_HDR_CHECKSUM] = x86_acpi_sum_fix(t, len);
}

void x86_acpi_header(uint8_t *t, const char sig[4], uint32_t len, uint8_t rev)
{
    memcpy(t + HDR_SIGNATURE, sig, 4);
    le32_put(t + HDR_LENGTH, len);
    t[HDR_REVISION] = rev;
    t[ACPI_HDR_CHECKSUM] = 0;
    memcpy(t + HDR_OEM_ID, ACPI_OEM_ID, 6);
    memcpy(t + HDR_OEM_TABLE, ACPI_OEM_TABLE_ID, 8);
    le32_put(t + HDR_OEM_REV, ACPI_OEM_REVISION);
    memcpy(t + HDR_CREATOR, ACPI_CREATOR_ID, 4);
    le32_put(t + HDR_CREATOR_REV, ACPI_CREATOR_REVISION);
}

unsigned x86_acpi_iso_count(void)
{
    unsigned n = 0;
    for (unsigned irq = 0; irq < X86_ISA_IRQS; irq++) {
        int pin = x86_isa_irq_ioapic_pin(irq);
        if (pin >= 0 && (unsigned)pin != irq)
            n++;
    }
    return n;
}

/* Revision 2 (ACPI 2.0+): no RSDT, both checksums. */
void x86_acpi_rsdp(uint8_t *area, const struct acpi_layout *l)
{
    uint8_t *r = area;
    memset(r, 0, ACPI_RSDP_LEN);
    memcpy(r, "RSD PTR ", 8);
    memcpy(r + RSDP_OEM_ID, ACPI_OEM_ID, 6);
    r[RSDP_REVISION] = 2;
    le32_put(r + RSDP_RSDT, 0);
    le32_put(r + RSDP_LENGTH, ACPI_RSDP_LEN);
    le64_put(r + RSDP_XSDT, l->gpa + l->xsdt);
    r[RSDP_CHECKSUM] = x86_acpi_sum_fix(r, RSDP_V1_LEN);
    r[RSDP_EXT_CHECKSUM] = x86_acpi_sum_fix(r, ACPI_RSDP_LEN);
}

void x86_acpi_xsdt(uint8_t *area, const struct acpi_layout *l)
{
    uint8_t *t = area + l->xsdt;
    size_t off = ACPI_HEADER_LEN;
    x86_acpi_header(t, "XSDT", (uint32_t)l->xsdt_len, XSDT_REVISION);
    const size_t tables[] = {l->fadt, l->madt, l->mcfg};
    for (size_t i = 0; i < ARRAY_SIZE(tables); i++) {
        if (tables[i] == 0)
            continue;
        le64_put(t + off, l->gpa + tables[i]);
        off += ACPI_XSDT_ENTRY_LEN;
    }
    x86_acpi_checksum(t, l->xsdt_len);
}

/* An 8-bit System I/O register accessed with byte accesses. */
static void gas_io8(uint8_t *g, uint16_t port)
{
    g[0] = GAS_SPACE_SYSTEM_IO;
    g[1] = 8; /* register bit width */
    g[2] = 0; /* bit offset */
    g[3] = GAS_ACCESS_BYTE;
    le64_put(g + 4, port);
}

/*
 * Hardware-reduced (no SCI, PM1 blocks, PM timer, GPEs or FACS): power
 * state changes go through the sleep control/status registers and reset
 * through RESET_REG.  The DSDT is named by both the 32-bit and the 64-bit
 * field when it lies below 4 GiB: they then agree, which is what both
 * ACPICA (no mismatch warning) and older readers of the 32-bit field want.
 */
void x86_acpi_fadt(uint8_t *area, const struct acpi_layout *l)
{
    uint8_t *t = area + l->fadt;
    const uint64_t dsdt = l->gpa + l->dsdt;
    memset(t, 0, ACPI_FADT_LEN);
    x86_acpi_header(t, "FACP", ACPI_FADT_LEN, FADT_REVISION);
    le32_put(t + FADT_DSDT, dsdt <= UINT32_MAX ? (uint32_t)dsdt : 0);
    le16_put(t + FADT_SCI_INT, 0);
    le16_put(t + FADT_IAPC_BOOT_ARCH,
             FADT_BOOT_8042 | FADT_BOOT_VGA_NOT_PRESENT | FADT_BOOT_CMOS_RTC_ABSENT);
    le32_put(t + FADT_FLAGS,
             FADT_F_HW_REDUCED_ACPI | FADT_F_RESET_REG_SUP | FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON);
    gas_io8(t + FADT_RESET_REG, X86_ACPI_RESET_PORT);
    t[FADT_RESET_VALUE] = X86_ACPI_RESET_VALUE;
    t[FADT_MINOR_VERSION] = FADT_MINOR;
    le64_put(t + FADT_X_DSDT, dsdt);
    gas_io8(t + FADT_SLEEP_CTL, X86_ACPI_SLEEP_CTL_PORT);
    gas_io8(t + FADT_SLEEP_STS, X86_ACPI_SLEEP_STS_PORT);
    memcpy(t + FADT_HYPERVISOR_ID, "WISP", 4); /* the other 4 bytes stay 0 */
    x86_acpi_checksum(t, ACPI_FADT_LEN);
}

/*
 * One local APIC per vCPU (processor UID = APIC id = index), the IOAPIC
 * with GSI base 0 (so GSI n is pin n), an Interrupt Source Override for
 * every ISA IRQ that irqmap.h wires to another pin (the PIT: IRQ 0 on GSI
 * 2) and LINT1 as NMI on every CPU, the same wiring the MP table gives.
 */
void x86_acpi_madt(uint8_t *area, const struct acpi_layout *l, const struct x86_acpi_desc *d)
{
    uint8_t *t = area + l->madt;
    size_t off = ACPI_MADT_FIXED_LEN;
    memset(t, 0, l->madt_len);
    x86_acpi_header(t, "APIC", (uint32_t)l->madt_len, MADT_REVISION);
    le32_put(t + MADT_LAPIC_ADDR, (uint32_t)X86_LAPIC_GPA);
    le32_put(t + MADT_FLAGS, MADT_PCAT_COMPAT);

    for (unsigned i = 0; i < d->nvcpus; i++) {
        uint8_t *e = t + off;
        e[0] = MADT_TYPE_LAPIC;
        e[1] = ACPI_MADT_LAPIC_LEN;
        e[2] = (uint8_t)i; /* ACPI processor UID */
        e[3] = (uint8_t)i; /* APIC id */
        le32_put(e + 4, MADT_LAPIC_ENABLED);
        off += ACPI_MADT_LAPIC_LEN;
    }

    uint8_t *io = t + off;
    io[0] = MADT_TYPE_IOAPIC;
    io[1] = ACPI_MADT_IOAPIC_LEN;
    io[2] = (uint8_t)d->ioapic_id;
    le32_put(io + 4, (uint32_t)X86_IOAPIC_GPA);
    le32_put(io + 8, 0); /* GSI base */
    off += ACPI_MADT_IOAPIC_LEN;

    for (unsigned irq = 0; irq < X86_ISA_IRQS; irq++) {
        int pin = x86_isa_irq_ioapic_pin(irq);
        if (pin < 0 || (unsigned)pin == irq)
            continue;
        uint8_t *e = t + off;
        e[0] = MADT_TYPE_ISO;
        e[1] = ACPI_MADT_ISO_LEN;
        e[2] = 0; /* bus: ISA */
        e[3] = (uint8_t)irq;
        le32_put(e + 4, (uint32_t)pin);
        le16_put(e + 8, MADT_INTI_CONFORMING);
        off += ACPI_MADT_ISO_LEN;
    }

    uint8_t *nmi = t + off;
    nmi[0] = MADT_TYPE_LAPIC_NMI;
    nmi[1] = ACPI_MADT_LNMI_LEN;
    nmi[2] = MADT_ALL_PROCESSORS;
    le16_put(nmi + 3, MADT_INTI_CONFORMING);
    nmi[5] = MADT_LINT1;
    off += ACPI_MADT_LNMI_LEN;

    if (off != l->madt_len)
        vmm_fatal("MADT: %zu bytes written, %zu laid out", off, l->madt_len);
    x86_acpi_checksum(t, off);
}

/* One allocation: base address (of bus 0), segment, bus range. */
void x86_acpi_mcfg(uint8_t *area, const struct acpi_layout *l, const struct x86_acpi_pci *pci)
{
    uint8_t *t = area + l->mcfg;
    uint8_t *a = t + MCFG_ALLOC;
    memset(t, 0, ACPI_MCFG_LEN);
    x86_acpi_header(t, "MCFG", ACPI_MCFG_LEN, MCFG_REVISION);
    le64_put(a, pci->ecam_base);
    le16_put(a + 8, pci->segment);
    a[10] = pci->bus_start;
    a[11] = pci->bus_end;
    x86_acpi_checksum(t, ACPI_MCFG_LEN);
}
