/*
 * ACPI table set (see acpi.h): checks the machine description, lays the
 * tables out in the area, encodes the DSDT straight into its place, then
 * writes the fixed-layout tables around it once everything is known to fit.
 */
#include "arch/x86_64/acpi.h"

#include <errno.h>
#include <string.h>

#include "arch/x86_64/acpi_internal.h"
#include "arch/x86_64/irqmap.h"
#include "arch/x86_64/layout.h"

_Static_assert(X86_ACPI_GPA + X86_ACPI_MAX <= X86_MPTABLE_GPA, "ACPI area ends at the MP table");
_Static_assert(X86_ACPI_GPA >= X86_EBDA_GPA + X86_EBDA_SIZE, "ACPI area in the reserved range");
_Static_assert(X86_ACPI_GPA % ACPI_TABLE_ALIGN == 0, "RSDP on a 16-byte boundary");

#define PCI_ECAM_BUS_SHIFT 20
#define IO_SPACE_END       0x10000U
#define FOUR_GIB           0x100000000ULL

static int bad(struct errbuf *err, const char *what)
{
    return err_set(err, WISP_EXIT_USAGE, EINVAL, "ACPI tables: %s", what);
}

/* Is [base, base + size) a non-empty range that does not wrap? */
static bool range_ok(uint64_t base, uint64_t size)
{
    uint64_t end;
    return range_end(base, size, &end);
}

static int check_pci(const struct x86_acpi_pci *p, uint64_t *ecam_min, uint64_t *ecam_len,
                     struct errbuf *err)
{
    if (p->bus_start > p->bus_end)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "ACPI tables: PCI bus range %u-%u is empty",
                       p->bus_start, p->bus_end);
    if (!is_aligned(p->ecam_base, 1ULL << PCI_ECAM_BUS_SHIFT))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "ACPI tables: PCI ECAM base 0x%llx is not 1 MiB aligned",
                       (unsigned long long)p->ecam_base);
    if (p->ecam_base > UINT64_MAX - ((uint64_t)(p->bus_end + 1) << PCI_ECAM_BUS_SHIFT))
        return bad(err, "the PCI ECAM range wraps");
    *ecam_min = p->ecam_base + ((uint64_t)p->bus_start << PCI_ECAM_BUS_SHIFT);
    *ecam_len = (uint64_t)(p->bus_end - p->bus_start + 1) << PCI_ECAM_BUS_SHIFT;
    if (p->mmio32_size == 0 || (uint64_t)p->mmio32_base + p->mmio32_size > FOUR_GIB)
        return bad(err, "the PCI 32-bit MMIO window must be non-empty and below 4 GiB");
    if (p->mmio64_size && !range_ok(p->mmio64_base, p->mmio64_size))
        return bad(err, "the PCI 64-bit MMIO window wraps");
    if (p->io_size && (uint64_t)p->io_base + p->io_size > IO_SPACE_END)
        return bad(err, "the PCI I/O window ends beyond port 0xffff");
    if (p->io_size == IO_SPACE_END)
        return bad(err, "the PCI I/O window cannot be the whole I/O space");
    if (ranges_overlap(*ecam_min, *ecam_len, p->mmio32_base, p->mmio32_size) ||
        (p->mmio64_size && ranges_overlap(*ecam_min, *ecam_len, p->mmio64_base, p->mmio64_size)))
        return bad(err, "a PCI MMIO window overlaps the ECAM range");
    if (p->mmio64_size &&
        ranges_overlap(p->mmio32_base, p->mmio32_size, p->mmio64_base, p->mmio64_size))
        return bad(err, "the PCI MMIO windows overlap");
    if (p->conf1_port > IO_SPACE_END - 8 ||
        (p->conf1_port && p->io_size && ranges_overlap(p->conf1_port, 8, p->io_base, p->io_size)))
        return bad(err, "the PCI conf1 ports must lie outside the I/O window");
    if (p->nintx != 0 && p->nintx != 4)
        return bad(err, "PCI INTx routing needs 0 or 4 GSIs");
    for (unsigned i = 0; i < p->nintx; i++) {
        if (p->intx_gsi[i] < X86_ISA_IRQS || p->intx_gsi[i] > X86_ACPI_MAX_GSI)
            return bad(err, "PCI INTx GSIs must be IOAPIC pins 16 to 23");
        for (unsigned j = 0; j < i; j++)
            if (p->intx_gsi[i] == p->intx_gsi[j])
                return bad(err, "PCI INTx GSIs must differ");
    }
    return 0;
}

/* Does virtio window v overlap one of the PCI ranges? */
static bool hits_pci(const struct x86_acpi_mmio_dev *v, const struct x86_acpi_pci *p,
                     uint64_t ecam_min, uint64_t ecam_len)
{
    return ranges_overlap(v->base, v->size, ecam_min, ecam_len) ||
           ranges_overlap(v->base, v->size, p->mmio32_base, p->mmio32_size) ||
           (p->mmio64_size && ranges_overlap(v->base, v->size, p->mmio64_base, p->mmio64_size));
}

/*
 * The DSDT gives a device its IOAPIC pin (GSI base 0), while the VMM raises
 * a KVM GSI: they are the same number only where irqmap.h wires ISA IRQ n
 * to pin n (not the PIT's 0, which reaches pin 2, nor the cascade, 2).
 */
static bool gsi_is_pin(unsigned gsi)
{
    return gsi >= X86_ISA_IRQS || x86_isa_irq_ioapic_pin(gsi) == (int)gsi;
}

static int check_desc(const struct x86_acpi_desc *d, struct errbuf *err)
{
    uint64_t ecam_min = 0, ecam_len = 0;

    if (d->nvcpus < 1 || d->nvcpus > X86_ACPI_MAX_VCPUS)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "ACPI tables: %u vCPUs requested; the MADT describes 1 to %u", d->nvcpus,
                       X86_ACPI_MAX_VCPUS);
    if (d->ioapic_id > X86_ACPI_MAX_IOAPIC_ID)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "ACPI tables: IOAPIC id %u does not fit the 4-bit ID register",
                       d->ioapic_id);
    if (d->nvirtio > X86_ACPI_MAX_VIRTIO)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "ACPI tables: %u virtio-mmio devices; at most %u can be described",
                       d->nvirtio, X86_ACPI_MAX_VIRTIO);
    if (d->nvirtio && !d->virtio)
        return bad(err, "virtio-mmio devices counted but not given");
    if (d->pci) {
        int ret = check_pci(d->pci, &ecam_min, &ecam_len, err);
        if (ret < 0)
            return ret;
    }

    for (unsigned i = 0; i < d->nvirtio; i++) {
        const struct x86_acpi_mmio_dev *v = &d->virtio[i];
        if (v->size == 0 || v->base >= FOUR_GIB || v->base + v->size > FOUR_GIB)
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "ACPI tables: virtio-mmio device %u window [0x%llx, +0x%x) is not a "
                           "non-empty range below 4 GiB",
                           i, (unsigned long long)v->base, v->size);
        if (v->gsi > X86_ACPI_MAX_GSI)
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "ACPI tables: virtio-mmio device %u uses GSI %u; the IOAPIC has "
                           "GSIs 0 to %u",
                           i, v->gsi, X86_ACPI_MAX_GSI);
        if (!gsi_is_pin(v->gsi) || v->gsi == X86_COM1_IRQ)
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "ACPI tables: virtio-mmio device %u uses GSI %u, which %s", i, v->gsi,
                           v->gsi == X86_COM1_IRQ ? "is COM1's"
                                                  : "does not reach the IOAPIC pin of that number");
        for (unsigned j = 0; j < i; j++) {
            if (ranges_overlap(v->base, v->size, d->virtio[j].base, d->virtio[j].size))
                return err_set(err, WISP_EXIT_USAGE, EINVAL,
                               "ACPI tables: virtio-mmio devices %u and %u overlap", j, i);
            if (v->gsi == d->virtio[j].gsi)
                return err_set(err, WISP_EXIT_USAGE, EINVAL,
                               "ACPI tables: virtio-mmio devices %u and %u share GSI %u", j, i,
                               v->gsi);
        }
        for (unsigned j = 0; d->pci && j < d->pci->nintx; j++)
            if (v->gsi == d->pci->intx_gsi[j])
                return err_set(err, WISP_EXIT_USAGE, EINVAL,
                               "ACPI tables: virtio-mmio device %u uses PCI INTx GSI %u", i,
                               v->gsi);
        if (d->pci && hits_pci(v, d->pci, ecam_min, ecam_len))
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "ACPI tables: virtio-mmio device %u overlaps a PCI range", i);
    }
    return 0;
}

static size_t align16(size_t v)
{
    return (v + ACPI_TABLE_ALIGN - 1) & ~(size_t)(ACPI_TABLE_ALIGN - 1);
}

/* Offsets of everything before the DSDT; their sizes follow from the description. */
static void lay_out(const struct x86_acpi_desc *d, uint64_t gpa, struct acpi_layout *l)
{
    memset(l, 0, sizeof(*l));
    l->gpa = gpa;
    l->xsdt = align16(ACPI_RSDP_LEN);
    l->xsdt_len = ACPI_HEADER_LEN + ACPI_XSDT_ENTRY_LEN * (d->pci ? 3 : 2);
    l->fadt = align16(l->xsdt + l->xsdt_len);
    l->madt = align16(l->fadt + ACPI_FADT_LEN);
    l->madt_len = ACPI_MADT_FIXED_LEN + (size_t)d->nvcpus * ACPI_MADT_LAPIC_LEN +
                  ACPI_MADT_IOAPIC_LEN + x86_acpi_iso_count() * ACPI_MADT_ISO_LEN +
                  ACPI_MADT_LNMI_LEN;
    size_t next = align16(l->madt + l->madt_len);
    if (d->pci) {
        l->mcfg = next;
        next = align16(l->mcfg + ACPI_MCFG_LEN);
    }
    l->dsdt = next;
}

int x86_acpi_build(const struct x86_acpi_desc *d, uint64_t gpa, uint8_t *buf, size_t len,
                   size_t *used, struct errbuf *err)
{
    struct acpi_layout l;
    struct aml_buf aml;
    uint64_t end;

    if (!d || !used || (!buf && len))
        return bad(err, "no description or no buffer");
    if (gpa % ACPI_TABLE_ALIGN || (len && !range_end(gpa, len, &end)))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "ACPI tables: area at 0x%llx (+0x%zx) is not a 16-byte aligned range",
                       (unsigned long long)gpa, len);
    int ret = check_desc(d, err);
    if (ret < 0)
        return ret;

    lay_out(d, gpa, &l);

    /* Encode the DSDT's AML in place; past the end of the area the encoder
     * only counts, so `need` is right even when the tables do not fit. */
    const size_t aml_at = l.dsdt + ACPI_HEADER_LEN;
    if (aml_at < len)
        aml_init(&aml, buf + aml_at, len - aml_at);
    else
        aml_init(&aml, NULL, 0);
    x86_acpi_dsdt_aml(&aml, d);
    ret = aml_finish(&aml);
    const size_t need = aml_at + aml.len;
    if (ret < 0 && ret != -ENOSPC)
        return bad(err, "the DSDT could not be encoded (a wisp bug)");
    if (need > len)
        return err_set(err, WISP_EXIT_USAGE, ENOSPC,
                       "ACPI tables need %zu bytes, the area holds %zu", need, len);
    if (ret < 0) /* -ENOSPC although everything fits: the encoder miscounted */
        return bad(err, "the DSDT's size was miscounted (a wisp bug)");

    /* Everything fits: the padding between tables is zero. */
    memset(buf, 0, l.dsdt);
    x86_acpi_header(buf + l.dsdt, "DSDT", (uint32_t)(ACPI_HEADER_LEN + aml.len), 2);
    x86_acpi_checksum(buf + l.dsdt, ACPI_HEADER_LEN + aml.len);
    x86_acpi_fadt(buf, &l);
    x86_acpi_madt(buf, &l, d);
    if (d->pci)
        x86_acpi_mcfg(buf, &l, d->pci);
    x86_acpi_xsdt(buf, &l);
    x86_acpi_rsdp(buf, &l);
    *used = need;
    return 0;
}

int x86_acpi_write(const struct gmem *gm, const struct x86_acpi_desc *d, uint64_t *rsdp_gpa,
                   struct errbuf *err)
{
    uint8_t *area = gmem_ptr(gm, X86_ACPI_GPA, X86_ACPI_MAX);
    size_t used;

    if (!area)
        return err_set(err, WISP_EXIT_USAGE, EFAULT,
                       "guest RAM does not cover the ACPI table area at 0x%llx",
                       (unsigned long long)X86_ACPI_GPA);
    memset(area, 0, X86_ACPI_MAX);
    int ret = x86_acpi_build(d, X86_ACPI_GPA, area, X86_ACPI_MAX, &used, err);
    if (ret < 0) {
        memset(area, 0, X86_ACPI_MAX); /* no half-built tables for the guest to find */
        return ret;
    }
    *rsdp_gpa = X86_ACPI_GPA;
    return 0;
}
