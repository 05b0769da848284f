/*
 * MP table tests: a parser written from the MP 1.4 spec walks what
 * x86_mptable_write() produced and checks checksums, counts and wiring.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"
#include "tests/lib/x86_images.h"

static struct gmem gm;
static struct errbuf err;

static void setup(void)
{
    memset(&err, 0, sizeof(err));
    x86_img_gmem(&gm, 2 * MiB);
}

static void teardown(void)
{
    gmem_destroy(&gm);
}

TestSuite(x86_mptable, .init = setup, .fini = teardown);

static uint8_t sum(const uint8_t *p, size_t len)
{
    uint8_t s = 0;
    for (size_t i = 0; i < len; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

static void check_table(unsigned n)
{
    /* Garbage first: the writer must clear its areas. */
    memset(gmem_ptr(&gm, X86_EBDA_GPA, X86_EBDA_SIZE), 0xA5, X86_EBDA_SIZE);
    memset(gmem_ptr(&gm, X86_MPTABLE_GPA, X86_MPTABLE_MAX), 0xA5, X86_MPTABLE_MAX);
    cr_assert_eq(x86_mptable_write(&gm, n, &err), 0, "%s", err.msg);

    const uint8_t *f = gmem_ptr(&gm, X86_EBDA_GPA, X86_EBDA_SIZE);
    cr_assert_eq(memcmp(f, "_MP_", 4), 0);
    cr_assert_eq(le32_get(f + 4), X86_MPTABLE_GPA);
    cr_assert_eq(f[8], 1, "length in paragraphs");
    cr_assert_eq(f[9], 4, "spec 1.4");
    cr_assert_eq(sum(f, 16), 0, "floating pointer checksum");
    for (unsigned i = 11; i < 16; i++)
        cr_assert_eq(f[i], 0, "feature byte %u", i);
    cr_assert_eq(f[16], 0, "rest of the EBDA cleared");

    const uint8_t *c = gmem_ptr(&gm, X86_MPTABLE_GPA, X86_MPTABLE_MAX);
    uint16_t base_len = le16_get(c + 4);
    uint16_t count = le16_get(c + 34);
    cr_assert_eq(memcmp(c, "PCMP", 4), 0);
    cr_assert_eq(c[6], 4);
    cr_assert_eq(sum(c, base_len), 0, "configuration table checksum");
    cr_assert_eq(memcmp(c + 8, "WISP    ", 8), 0);
    cr_assert_eq(memcmp(c + 16, "MICROVM     ", 12), 0);
    cr_assert_eq(le32_get(c + 28), 0);
    cr_assert_eq(le16_get(c + 32), 0);
    cr_assert_eq(count, n + 1 + 1 + 15 + 2);
    cr_assert_eq(le32_get(c + 36), X86_LAPIC_GPA);
    cr_assert_eq(le16_get(c + 40), 0);
    cr_assert_eq(c[42], 0);
    cr_assert_eq(base_len, 44 + n * 20 + 8 + 8 + 17 * 8);
    cr_assert_eq(c[base_len], 0, "rest of the MP area cleared");

    size_t off = 44;
    unsigned cpus = 0, buses = 0, ioapics = 0, ioints = 0, lints = 0;
    bool seen_irq[16] = {false};
    int last_type = 0;
    for (unsigned e = 0; e < count; e++) {
        uint8_t type = c[off];
        cr_assert_geq(type, last_type, "entries sorted by type");
        last_type = type;
        switch (type) {
        case 0:
            cr_assert_eq(c[off + 1], cpus, "APIC id = index");
            cr_assert_eq(c[off + 2], 0x14);
            cr_assert_eq(c[off + 3], cpus == 0 ? 3 : 1, "enabled, BSP only for CPU 0");
            cr_assert_eq(le32_get(c + off + 4), 0x600);
            cr_assert_eq(le32_get(c + off + 8), 0x201);
            cpus++;
            off += 20;
            break;
        case 1:
            cr_assert_eq(c[off + 1], 0);
            cr_assert_eq(memcmp(c + off + 2, "ISA   ", 6), 0);
            buses++;
            off += 8;
            break;
        case 2:
            cr_assert_eq(c[off + 1], n < 16 ? n : 0, "IOAPIC id: after the CPUs if it fits 4 bits");
            cr_assert_eq(c[off + 2], 0x11);
            cr_assert_eq(c[off + 3], 1);
            cr_assert_eq(le32_get(c + off + 4), X86_IOAPIC_GPA);
            ioapics++;
            off += 8;
            break;
        case 3: {
            uint8_t irq = c[off + 5];
            cr_assert_eq(c[off + 1], 0, "INT");
            cr_assert_eq(le16_get(c + off + 2), 0, "conforms to bus");
            cr_assert_eq(c[off + 4], 0, "ISA bus");
            cr_assert_lt(irq, 16);
            cr_assert_neq(irq, 2, "no entry for the cascade");
            cr_assert_not(seen_irq[irq]);
            seen_irq[irq] = true;
            cr_assert_eq(c[off + 6], n < 16 ? n : 0, "to the IOAPIC");
            cr_assert_eq(c[off + 7], irq == 0 ? 2 : irq, "PC wiring: the PIT on pin 2");
            ioints++;
            off += 8;
            break;
        }
        case 4:
            cr_assert_eq(c[off + 1], lints == 0 ? 3 : 1, "ExtINT then NMI");
            cr_assert_eq(c[off + 6], 0xFF);
            cr_assert_eq(c[off + 7], lints, "LINT0 then LINT1");
            lints++;
            off += 8;
            break;
        default:
            cr_assert_fail("unknown entry type %u", type);
        }
    }
    cr_assert_eq(off, base_len);
    cr_assert_eq(cpus, n);
    cr_assert_eq(buses, 1);
    cr_assert_eq(ioapics, 1);
    cr_assert_eq(ioints, 15);
    cr_assert_eq(lints, 2);
}

Test(x86_mptable, one_vcpu)
{
    check_table(1);
}

Test(x86_mptable, four_vcpus)
{
    check_table(4);
}

/* 15 vCPUs is the last count whose IOAPIC id (= count) fits KVM's 4-bit register. */
Test(x86_mptable, fifteen_vcpus)
{
    check_table(15);
    cr_assert_eq(x86_ioapic_id(15), 15);
}

Test(x86_mptable, sixteen_vcpus)
{
    check_table(16);
    cr_assert_eq(x86_ioapic_id(16), 0);
}

Test(x86_mptable, max_vcpus)
{
    check_table(254);
}

Test(x86_mptable, bad_counts_refused)
{
    X86_IMG_EXPECT_ERR(x86_mptable_write(&gm, 0, &err), err, "0 vCPUs requested");
    memset(&err, 0, sizeof(err));
    X86_IMG_EXPECT_ERR(x86_mptable_write(&gm, 255, &err), err, "1 to 254");
    memset(&err, 0, sizeof(err));
    X86_IMG_EXPECT_ERR(x86_mptable_write(&gm, 100000, &err), err, "100000 vCPUs");
}

Test(x86_mptable, no_ram_for_the_table)
{
    gmem_destroy(&gm);
    x86_img_gmem(&gm, 0x80000);
    X86_IMG_EXPECT_ERR(x86_mptable_write(&gm, 1, &err), err, "MP table areas");
}
