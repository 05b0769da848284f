/*
 * ACPI table structure tests: the RSDP, XSDT, FADT, MADT and MCFG parsed
 * at the offsets ACPI 6.3 (5.2) and the PCI Firmware spec give, plus the
 * builder's refusals (bad descriptions, an area too small) and the guest
 * memory writer.  The DSDT's contents are in test_acpi_dsdt.c.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "arch/x86_64/irqmap.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"
#include "tests/lib/x86_images.h"
#include "tests/unit/arch/x86_64/test_acpi.h"

TestSuite(x86_acpi);

static struct ta_tables t;

static void check_header(const uint8_t *p, const char *sig, uint8_t rev)
{
    cr_assert_eq(memcmp(p, sig, 4), 0);
    cr_assert_eq(p[8], rev, "%s revision %u", sig, p[8]);
    cr_assert_eq(memcmp(p + 10, "WISP  ", 6), 0, "%s OEM id", sig);
    cr_assert_eq(memcmp(p + 16, "WISPVM  ", 8), 0, "%s OEM table id", sig);
    cr_assert_eq(le32_get(p + 24), 1, "%s OEM revision", sig);
    cr_assert_eq(memcmp(p + 28, "WISP", 4), 0, "%s creator id", sig);
    cr_assert_eq(le32_get(p + 32), 1, "%s creator revision", sig);
}

Test(x86_acpi, rsdp_and_xsdt)
{
    struct x86_acpi_desc d = ta_desc(2, 3, NULL);
    ta_build(&t, &d);
    const uint8_t *r = t.area;
    cr_assert_eq(memcmp(r + 9, "WISP  ", 6), 0, "RSDP OEM id");
    cr_assert_eq(le32_get(r + 16), 0, "no RSDT");
    for (unsigned i = 33; i < 36; i++)
        cr_assert_eq(r[i], 0, "reserved byte %u", i);

    const uint8_t *x = ta_find(&t, "XSDT");
    cr_assert_not_null(x);
    check_header(x, "XSDT", 1);
    cr_assert_eq(le32_get(x + 4), 36 + 2 * 8, "two entries without PCI");
    cr_assert_eq(memcmp(t.area + (le64_get(x + 36) - TA_GPA), "FACP", 4), 0);
    cr_assert_eq(memcmp(t.area + (le64_get(x + 44) - TA_GPA), "APIC", 4), 0);
    cr_assert_null(ta_find(&t, "MCFG"));
    cr_assert_eq((le64_get(t.area + 24) - TA_GPA) % 16, 0, "XSDT 16-byte aligned");
    for (uint32_t off = 36; off < le32_get(x + 4); off += 8)
        cr_assert_eq(le64_get(x + off) % 16, 0, "tables 16-byte aligned");

    d = ta_desc(2, 3, &ta_pci);
    ta_build(&t, &d);
    x = ta_find(&t, "XSDT");
    cr_assert_eq(le32_get(x + 4), 36 + 3 * 8, "MCFG added with PCI");
    cr_assert_eq(memcmp(t.area + (le64_get(x + 52) - TA_GPA), "MCFG", 4), 0);
}

/* A Generic Address Structure naming an 8-bit System I/O register. */
static void check_gas_io8(const uint8_t *g, uint16_t port, const char *what)
{
    cr_assert_eq(g[0], 1, "%s: System I/O", what);
    cr_assert_eq(g[1], 8, "%s: bit width", what);
    cr_assert_eq(g[2], 0, "%s: bit offset", what);
    cr_assert_eq(g[3], 1, "%s: byte access", what);
    cr_assert_eq(le64_get(g + 4), port, "%s: port", what);
}

Test(x86_acpi, fadt_hardware_reduced)
{
    struct x86_acpi_desc d = ta_desc(1, 0, NULL);
    ta_build(&t, &d);
    const uint8_t *f = ta_find(&t, "FACP");
    cr_assert_not_null(f);
    check_header(f, "FACP", 6);
    cr_assert_eq(le32_get(f + 4), 276);
    cr_assert_eq(f[131], 3, "FADT minor version: ACPI 6.3");

    const uint8_t *dsdt = ta_find(&t, "DSDT");
    uint64_t dsdt_gpa = TA_GPA + (uint64_t)(dsdt - t.area);
    cr_assert_eq(le64_get(f + 140), dsdt_gpa, "X_DSDT");
    cr_assert_eq(le32_get(f + 40), dsdt_gpa, "DSDT: the same address, below 4 GiB");
    cr_assert_eq(le32_get(f + 36), 0, "no FACS");
    cr_assert_eq(le64_get(f + 132), 0, "no X_FACS");
    cr_assert_eq(le16_get(f + 46), 0, "no SCI");

    uint32_t flags = le32_get(f + 112);
    cr_assert(flags & (1U << 20), "HW_REDUCED_ACPI");
    cr_assert(flags & (1U << 10), "RESET_REG_SUP");
    cr_assert_eq(flags & ~((1U << 20) | (1U << 10) | (1U << 4) | (1U << 5)), 0,
                 "no other flag than the control-method buttons: 0x%x", flags);

    uint16_t boot = le16_get(f + 109);
    cr_assert_eq(boot & (1U << 0), 0, "no LEGACY_DEVICES");
    cr_assert(boot & (1U << 1), "8042 present (the i8042 and its keyboard)");
    cr_assert(boot & (1U << 2), "VGA not present");
    cr_assert_eq(boot & (1U << 3), 0, "MSI supported");
    cr_assert(boot & (1U << 5), "CMOS RTC not present");

    check_gas_io8(f + 116, X86_ACPI_RESET_PORT, "RESET_REG");
    cr_assert_eq(f[128], X86_ACPI_RESET_VALUE);
    check_gas_io8(f + 244, X86_ACPI_SLEEP_CTL_PORT, "SLEEP_CONTROL_REG");
    check_gas_io8(f + 256, X86_ACPI_SLEEP_STS_PORT, "SLEEP_STATUS_REG");
    cr_assert_eq(memcmp(f + 268, "WISP\0\0\0\0", 8), 0, "hypervisor vendor");

    /* PM1/PM2/timer/GPE blocks and their extended GASes: all absent. */
    for (unsigned i = 48; i < 109; i++)
        cr_assert_eq(f[i], 0, "legacy register field byte %u", i);
    for (unsigned i = 148; i < 244; i++)
        cr_assert_eq(f[i], 0, "X_ register block byte %u", i);
}

static void check_madt(unsigned n)
{
    struct x86_acpi_desc d = ta_desc(n, 0, NULL);
    ta_build(&t, &d);
    const uint8_t *m = ta_find(&t, "APIC");
    cr_assert_not_null(m);
    check_header(m, "APIC", 5);
    cr_assert_eq(le32_get(m + 36), X86_LAPIC_GPA);
    cr_assert_eq(le32_get(m + 40), 1, "PCAT_COMPAT: KVM has the 8259s");

    const uint32_t len = le32_get(m + 4);
    unsigned lapics = 0, ioapics = 0, nmis = 0;
    int iso_gsi[X86_ISA_IRQS];
    for (unsigned i = 0; i < X86_ISA_IRQS; i++)
        iso_gsi[i] = -1;
    uint32_t off = 44;
    while (off < len) {
        const uint8_t *e = m + off;
        cr_assert_geq(e[1], 2);
        cr_assert_leq(off + e[1], len, "entry at %u runs past the table", off);
        switch (e[0]) {
        case 0:
            cr_assert_eq(e[1], 8);
            cr_assert_eq(e[2], lapics, "processor UID = index");
            cr_assert_eq(e[3], lapics, "APIC id = index");
            cr_assert_eq(le32_get(e + 4), 1, "enabled");
            lapics++;
            break;
        case 1:
            cr_assert_eq(e[1], 12);
            cr_assert_eq(e[2], x86_ioapic_id(n));
            cr_assert_eq(e[3], 0);
            cr_assert_eq(le32_get(e + 4), X86_IOAPIC_GPA);
            cr_assert_eq(le32_get(e + 8), 0, "GSI base 0");
            ioapics++;
            break;
        case 2:
            cr_assert_eq(e[1], 10);
            cr_assert_eq(e[2], 0, "ISA bus");
            cr_assert_lt(e[3], X86_ISA_IRQS);
            cr_assert_eq(iso_gsi[e[3]], -1, "one override per IRQ");
            iso_gsi[e[3]] = (int)le32_get(e + 4);
            cr_assert_eq(le16_get(e + 8), 0, "conforms to the bus");
            break;
        case 4:
            cr_assert_eq(e[1], 6);
            cr_assert_eq(e[2], 0xFF, "all processors");
            cr_assert_eq(le16_get(e + 3), 0);
            cr_assert_eq(e[5], 1, "LINT1");
            nmis++;
            break;
        default:
            cr_assert_fail("unexpected MADT entry type %u", e[0]);
        }
        off += e[1];
    }
    cr_assert_eq(off, len, "entries fill the table exactly");
    cr_assert_eq(lapics, n);
    cr_assert_eq(ioapics, 1);
    cr_assert_eq(nmis, 1);

    /* What a guest derives for each ISA IRQ is the pin KVM's routing uses. */
    for (unsigned irq = 0; irq < X86_ISA_IRQS; irq++) {
        int pin = x86_isa_irq_ioapic_pin(irq);
        int acpi_gsi = iso_gsi[irq] >= 0 ? iso_gsi[irq] : (int)irq;
        if (pin < 0)
            cr_assert_eq(iso_gsi[irq], -1, "no override for unrouted IRQ %u", irq);
        else
            cr_assert_eq(acpi_gsi, pin, "ISA IRQ %u: MADT says GSI %d, irqmap pin %d", irq,
                         acpi_gsi, pin);
    }
    cr_assert_eq(iso_gsi[0], 2, "the PIT's override");
}

Test(x86_acpi, madt_1_vcpu)
{
    check_madt(1);
}

Test(x86_acpi, madt_2_vcpus)
{
    check_madt(2);
}

Test(x86_acpi, madt_16_vcpus)
{
    check_madt(16);
}

Test(x86_acpi, madt_254_vcpus)
{
    check_madt(254);
}

Test(x86_acpi, mcfg)
{
    struct x86_acpi_pci p = ta_pci;
    p.segment = 3;
    p.bus_start = 0x10;
    p.bus_end = 0x3f;
    struct x86_acpi_desc d = ta_desc(4, 2, &p);
    ta_build(&t, &d);
    const uint8_t *m = ta_find(&t, "MCFG");
    cr_assert_not_null(m);
    check_header(m, "MCFG", 1);
    cr_assert_eq(le32_get(m + 4), 60);
    for (unsigned i = 36; i < 44; i++)
        cr_assert_eq(m[i], 0, "reserved byte %u", i);
    cr_assert_eq(le64_get(m + 44), p.ecam_base, "base of bus 0");
    cr_assert_eq(le16_get(m + 52), 3);
    cr_assert_eq(m[54], 0x10);
    cr_assert_eq(m[55], 0x3f);
    cr_assert_eq(le32_get(m + 56), 0);
}

/* Every table lies in [0, used); the rest of the area is untouched. */
Test(x86_acpi, used_is_exact)
{
    struct x86_acpi_desc d = ta_desc(254, 16, &ta_pci);
    ta_build(&t, &d);
    const uint8_t *dsdt = ta_find(&t, "DSDT");
    cr_assert_eq((size_t)(dsdt - t.area) + le32_get(dsdt + 4), t.used, "the DSDT is last");
    for (size_t i = t.used; i < sizeof(t.area); i++)
        cr_assert_eq(t.area[i], 0xA5, "byte %zu beyond `used` written", i);
}

/* A refused description leaves the buffer alone and says why in one line. */
static void expect_einval(const struct x86_acpi_desc *d, const char *needle)
{
    struct errbuf err = {0};
    size_t used = 12345;
    memset(t.area, 0xA5, sizeof(t.area));
    int ret = x86_acpi_build(d, TA_GPA, t.area, sizeof(t.area), &used, &err);
    X86_IMG_EXPECT_ERR(ret, err, needle);
    cr_assert_eq(ret, -EINVAL);
    cr_assert_eq(used, 12345);
    for (size_t i = 0; i < sizeof(t.area); i++)
        cr_assert_eq(t.area[i], 0xA5, "byte %zu written before refusing", i);
}

Test(x86_acpi, bad_descriptions_refused)
{
    struct x86_acpi_desc d = ta_desc(0, 0, NULL);
    expect_einval(&d, "0 vCPUs requested; the MADT describes 1 to 254");
    d = ta_desc(255, 0, NULL);
    expect_einval(&d, "255 vCPUs");
    d = ta_desc(2, 0, NULL);
    d.ioapic_id = 16;
    expect_einval(&d, "IOAPIC id 16");

    d = ta_desc(2, X86_ACPI_MAX_VIRTIO + 1, NULL);
    expect_einval(&d, "33 virtio-mmio devices; at most 32");
    d = ta_desc(2, 2, NULL);
    d.virtio = NULL;
    expect_einval(&d, "not given");

    d = ta_desc(2, 3, NULL);
    ta_virtio[2].gsi = 24;
    expect_einval(&d, "device 2 uses GSI 24; the IOAPIC has GSIs 0 to 23");
    ta_virtio[2].gsi = 0;
    expect_einval(&d, "GSI 0, which does not reach the IOAPIC pin");
    ta_virtio[2].gsi = 2;
    expect_einval(&d, "GSI 2, which does not reach the IOAPIC pin");
    ta_virtio[2].gsi = X86_COM1_IRQ;
    expect_einval(&d, "GSI 4, which is COM1's");
    ta_virtio[2].gsi = ta_virtio[0].gsi;
    expect_einval(&d, "devices 0 and 2 share GSI 5");

    d = ta_desc(2, 3, NULL);
    ta_virtio[1].size = 0;
    expect_einval(&d, "device 1 window");
    d = ta_desc(2, 3, NULL);
    ta_virtio[1].base = 0xfffff000ULL;
    ta_virtio[1].size = 0x2000;
    expect_einval(&d, "below 4 GiB");
    d = ta_desc(2, 3, NULL);
    ta_virtio[1].base = 0x100000000ULL;
    expect_einval(&d, "below 4 GiB");
    d = ta_desc(2, 3, NULL);
    ta_virtio[2].base = ta_virtio[1].base + 0x800;
    expect_einval(&d, "devices 1 and 2 overlap");
}

Test(x86_acpi, bad_pci_refused)
{
    struct x86_acpi_pci p = ta_pci;
    struct x86_acpi_desc d = ta_desc(2, 2, &p);

    p = ta_pci;
    p.bus_start = 5;
    p.bus_end = 4;
    expect_einval(&d, "bus range 5-4 is empty");
    p = ta_pci;
    p.ecam_base += 0x1000;
    expect_einval(&d, "not 1 MiB aligned");
    p = ta_pci;
    p.ecam_base = 0xfffffffffff00000ULL;
    expect_einval(&d, "ECAM range wraps");
    p = ta_pci;
    p.mmio32_size = 0;
    expect_einval(&d, "32-bit MMIO window");
    p = ta_pci;
    p.mmio32_base = 0xf0000000U;
    p.mmio32_size = 0x20000000U;
    expect_einval(&d, "32-bit MMIO window");
    p = ta_pci;
    p.mmio64_base = UINT64_MAX - 0xfff;
    expect_einval(&d, "64-bit MMIO window wraps");
    p = ta_pci;
    p.io_base = 0x1000;
    p.io_size = 0x10000;
    expect_einval(&d, "beyond port 0xffff");
    p = ta_pci;
    p.io_base = 0;
    p.io_size = 0x10000;
    expect_einval(&d, "whole I/O space");
    p = ta_pci;
    p.mmio32_base = 0xe8000000U;
    p.mmio32_size = 0x1000000U;
    expect_einval(&d, "overlaps the ECAM range");
    p = ta_pci;
    p.mmio64_base = 0xc8000000U;
    p.mmio64_size = 0x1000000U;
    expect_einval(&d, "PCI MMIO windows overlap");
    p = ta_pci;
    p.mmio32_base = 0xd0000000U;
    expect_einval(&d, "device 0 overlaps a PCI range");
}

Test(x86_acpi, bad_area_refused)
{
    struct x86_acpi_desc d = ta_desc(1, 0, NULL);
    struct errbuf err = {0};
    size_t used;
    X86_IMG_EXPECT_ERR(x86_acpi_build(&d, TA_GPA + 8, t.area, sizeof(t.area), &used, &err), err,
                       "not a 16-byte aligned range");
    memset(&err, 0, sizeof(err));
    X86_IMG_EXPECT_ERR(x86_acpi_build(&d, UINT64_MAX - 0xf, t.area, 0x100, &used, &err), err,
                       "not a 16-byte aligned range");
    memset(&err, 0, sizeof(err));
    X86_IMG_EXPECT_ERR(x86_acpi_build(NULL, TA_GPA, t.area, sizeof(t.area), &used, &err), err,
                       "no description");
}

/*
 * The builder's own size check: for areas one byte short, only room for
 * the RSDP, or nothing, it must refuse with the exact need, and write no
 * byte at or past the given length.  With exactly `need` bytes it builds.
 * The descriptions are valid, so nothing else refuses first.
 */
Test(x86_acpi, area_too_small)
{
    static uint8_t area[TA_AREA + 64];
    struct x86_acpi_desc d = ta_desc(254, 16, &ta_pci);
    ta_build(&t, &d);
    const size_t need = t.used;

    const size_t lens[] = {need - 1, need - 40, 400, 36, 0};
    for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
        struct errbuf err = {0};
        char want[128];
        size_t used = 7;
        memset(area, 0xEE, sizeof(area));
        int ret = x86_acpi_build(&d, TA_GPA, area, lens[i], &used, &err);
        snprintf(want, sizeof(want), "ACPI tables need %zu bytes, the area holds %zu", need,
                 lens[i]);
        X86_IMG_EXPECT_ERR(ret, err, want);
        cr_assert_eq(ret, -ENOSPC);
        cr_assert_eq(used, 7);
        for (size_t j = lens[i]; j < sizeof(area); j++)
            cr_assert_eq(area[j], 0xEE, "len %zu: byte %zu written", lens[i], j);
    }

    size_t used = 0;
    struct errbuf err = {0};
    memset(area, 0xEE, sizeof(area));
    cr_assert_eq(x86_acpi_build(&d, TA_GPA, area, need, &used, &err), 0, "%s", err.msg);
    cr_assert_eq(used, need);
    cr_assert_eq(memcmp(area, t.area, need), 0, "the same tables as in a large area");
    cr_assert_eq(area[need], 0xEE);
}

Test(x86_acpi, write_to_guest_memory)
{
    struct gmem gm;
    struct errbuf err = {0};
    uint64_t rsdp = 0;
    x86_img_gmem(&gm, 2 * MiB);
    uint8_t *a = gmem_ptr(&gm, X86_ACPI_GPA, X86_ACPI_MAX);
    memset(a, 0xA5, X86_ACPI_MAX);

    struct x86_acpi_desc d = ta_desc(4, 3, NULL);
    cr_assert_eq(x86_acpi_write(&gm, &d, &rsdp, &err), 0, "%s", err.msg);
    cr_assert_eq(rsdp, X86_ACPI_GPA);
    ta_build(&t, &d);
    cr_assert_eq(memcmp(a, t.area, t.used), 0, "what the builder builds at that address");
    for (size_t i = t.used; i < X86_ACPI_MAX; i++)
        cr_assert_eq(a[i], 0, "area cleared first: byte %zu", i);

    /* A refused description leaves a clear area, not half a table set. */
    memset(a, 0xA5, X86_ACPI_MAX);
    d.nvcpus = 0;
    X86_IMG_EXPECT_ERR(x86_acpi_write(&gm, &d, &rsdp, &err), err, "0 vCPUs");
    for (size_t i = 0; i < X86_ACPI_MAX; i++)
        cr_assert_eq(a[i], 0, "byte %zu", i);
    gmem_destroy(&gm);

    memset(&err, 0, sizeof(err));
    x86_img_gmem(&gm, 0x80000);
    d.nvcpus = 1;
    X86_IMG_EXPECT_ERR(x86_acpi_write(&gm, &d, &rsdp, &err), err, "ACPI table area at 0xe0000");
    gmem_destroy(&gm);
}
