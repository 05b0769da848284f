/*
 * The PCI host bridge as wisp's machine describes it (arch/x86_64/
 * pci_host.c): the DSDT's _PRT routes every device's INTA#-INTD# to the
 * four GSIs reserved for PCI, the conf1 ports are in the bridge's _CRS,
 * the MCFG points at the ECAM window, and a virtio device on a PCI INTx
 * GSI is refused.  (iasl checks the same tables in test_acpi_iasl.c.)
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "arch/x86_64/layout.h"
#include "arch/x86_64/pci_host.h"
#include "tests/unit/arch/x86_64/test_acpi.h"

static struct ta_tables t;

static const uint8_t *find_bytes(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (!memcmp(hay + i, needle, m))
            return hay + i;
    return NULL;
}

/* Decode one AML integer at p (Zero/One/Byte/Word/DWord prefixes); bytes used in *n. */
static uint64_t aml_int(const uint8_t *p, size_t *n)
{
    switch (p[0]) {
    case 0x00:
        *n = 1;
        return 0;
    case 0x01:
        *n = 1;
        return 1;
    case 0x0A:
        *n = 2;
        return p[1];
    case 0x0B:
        *n = 3;
        return (uint64_t)p[1] | (uint64_t)p[2] << 8;
    case 0x0C:
        *n = 5;
        return (uint64_t)p[1] | (uint64_t)p[2] << 8 | (uint64_t)p[3] << 16 | (uint64_t)p[4] << 24;
    default:
        cr_assert_fail("unexpected AML opcode 0x%02x in _PRT", p[0]);
        return 0;
    }
}

Test(x86_acpi_pci, prt_routes_intx_to_reserved_gsis)
{
    struct x86_acpi_pci p;
    x86_pci_acpi_desc(256ULL << 20, &p);
    struct x86_acpi_desc d = ta_desc(1, 12, &p);
    ta_build(&t, &d);
    const uint8_t *dsdt = ta_find(&t, "DSDT");
    cr_assert(dsdt);
    size_t len = dsdt[4] | (size_t)dsdt[5] << 8 | (size_t)dsdt[6] << 16;
    const uint8_t *prt = find_bytes(dsdt, len, "_PRT", 4);
    cr_assert(prt, "no _PRT in the DSDT");
    const uint8_t *q = prt + 4;
    cr_assert_eq(q[0], 0x12, "PackageOp");
    /* PkgLength: bits 7:6 of the lead byte say how many bytes follow */
    q += 1 + 1 + (q[1] >> 6);
    cr_assert_eq(q[0], 128, "32 devices x 4 pins");
    q++;
    for (unsigned dev = 0; dev < 32; dev++) {
        for (unsigned pin = 0; pin < 4; pin++) {
            cr_assert_eq(q[0], 0x12);
            q += 1 + 1 + (q[1] >> 6);
            cr_assert_eq(q[0], 4);
            q++;
            size_t n;
            cr_assert_eq(aml_int(q, &n), (uint64_t)dev << 16 | 0xffff);
            q += n;
            cr_assert_eq(aml_int(q, &n), pin);
            q += n;
            cr_assert_eq(aml_int(q, &n), 0, "no link device");
            q += n;
            uint64_t gsi = aml_int(q, &n);
            q += n;
            cr_assert_eq(gsi, X86_PCI_INTX_GSI + (dev + pin) % 4);
            for (unsigned i = 0; i < 12; i++)
                cr_assert_neq(gsi, ta_virtio[i].gsi, "INTx GSI %llu is a virtio device's",
                              (unsigned long long)gsi);
        }
    }
    /* the conf1 ports: IO (Decode16, 0xCF8, 0xCF8, 1, 8) */
    static const uint8_t io[] = {0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08};
    cr_assert(find_bytes(dsdt, len, io, sizeof(io)), "conf1 ports not in _CRS");
    /* the MCFG names the ECAM window for bus 0 */
    const uint8_t *mcfg = ta_find(&t, "MCFG");
    cr_assert(mcfg);
    uint64_t base = 0;
    for (int i = 7; i >= 0; i--)
        base = base << 8 | mcfg[44 + i];
    cr_assert_eq(base, X86_PCI_ECAM_BASE);
    cr_assert_eq(mcfg[44 + 10], 0);
    cr_assert_eq(mcfg[44 + 11], 0);
}

Test(x86_acpi_pci, virtio_on_an_intx_gsi_refused)
{
    struct x86_acpi_pci p;
    x86_pci_acpi_desc(256ULL << 20, &p);
    struct x86_acpi_desc d = ta_desc(1, 13, &p); /* device 12 gets GSI 20 */
    struct errbuf err = {0};
    size_t used;
    cr_assert_eq(x86_acpi_build(&d, TA_GPA, t.area, sizeof(t.area), &used, &err), -EINVAL);
    cr_assert(strstr(err.msg, "PCI INTx GSI 20"), "%s", err.msg);
}

Test(x86_acpi_pci, windows_follow_ram)
{
    struct pci_windows w;
    x86_pci_windows(256ULL << 20, &w);
    cr_assert_eq(w.mmio64_base, 1ULL << 32);
    x86_pci_windows(3ULL << 30, &w);
    cr_assert_eq(w.mmio64_base, 1ULL << 32);
    x86_pci_windows((3ULL << 30) + 1, &w);
    cr_assert_eq(w.mmio64_base, (1ULL << 32) + (1ULL << 30), "next 1 GiB above RAM");
    x86_pci_windows(8ULL << 30, &w);
    cr_assert_eq(w.mmio64_base, (1ULL << 32) + (5ULL << 30));
    cr_assert_eq(w.mmio32_base + w.mmio32_size, X86_VIRTIO_MMIO_BASE);
}
