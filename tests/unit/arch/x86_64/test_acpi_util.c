/*
 * The ACPI tests' shared helpers (see test_acpi.h): building a table set
 * and walking RSDP -> XSDT -> tables the way a guest does.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "arch/x86_64/mptable.h"
#include "tests/unit/arch/x86_64/test_acpi.h"
#include "vmm/util.h"

/* The GSIs a virtio device may have alone, in the order wisp hands them out. */
static const uint32_t free_gsis[] = {5,  6,  7,  9,  10, 11, 14, 15, 16, 17, 18,
                                     19, 20, 21, 22, 23, 1,  3,  8,  12, 13};
_Static_assert(ARRAY_SIZE(free_gsis) == TA_MAX_DEVS, "one GSI each");

struct x86_acpi_mmio_dev ta_virtio[X86_ACPI_MAX_VIRTIO + 1];

const struct x86_acpi_pci ta_pci = {
    .ecam_base = 0xe0000000ULL,
    .segment = 0,
    .bus_start = 0,
    .bus_end = 255,
    .mmio32_base = 0xc0000000U,
    .mmio32_size = 0x10000000U,
    .mmio64_base = 0x8000000000ULL,
    .mmio64_size = 0x8000000000ULL,
    .io_base = 0x1000,
    .io_size = 0xf000,
};

struct x86_acpi_desc ta_desc(unsigned nvcpus, unsigned nvirtio, const struct x86_acpi_pci *pci)
{
    for (unsigned i = 0; i < ARRAY_SIZE(ta_virtio); i++) {
        ta_virtio[i].base = 0xd0000000ULL + i * 0x1000ULL;
        ta_virtio[i].size = 0x1000;
        ta_virtio[i].gsi = free_gsis[i % TA_MAX_DEVS];
    }
    return (struct x86_acpi_desc){
        .nvcpus = nvcpus,
        .ioapic_id = x86_ioapic_id(nvcpus),
        .virtio = ta_virtio,
        .nvirtio = nvirtio,
        .pci = pci,
    };
}

uint8_t ta_sum(const uint8_t *p, size_t len)
{
    uint8_t s = 0;
    for (size_t i = 0; i < len; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

void ta_build_raw(struct ta_tables *t, const struct x86_acpi_desc *d)
{
    struct errbuf err = {0};
    memset(t->area, 0xA5, sizeof(t->area));
    int ret = x86_acpi_build(d, TA_GPA, t->area, sizeof(t->area), &t->used, &err);
    cr_assert_eq(ret, 0, "build: %d %s", ret, err.msg);
    cr_assert_leq(t->used, sizeof(t->area));
}

void ta_build(struct ta_tables *t, const struct x86_acpi_desc *d)
{
    ta_build_raw(t, d);

    /* RSDP, ACPI 6.3 5.2.5.3. */
    const uint8_t *r = t->area;
    cr_assert_eq(memcmp(r, "RSD PTR ", 8), 0);
    cr_assert_eq(ta_sum(r, 20), 0, "RSDP checksum (first 20 bytes)");
    cr_assert_eq(ta_sum(r, 36), 0, "RSDP extended checksum");
    cr_assert_eq(r[15], 2, "revision 2");
    cr_assert_eq(le32_get(r + 20), 36, "RSDP length");
}

/* A table at guest-physical `gpa`: inside what was built, with a valid checksum if `sums`. */
static const uint8_t *table_at(const struct ta_tables *t, uint64_t gpa, bool sums)
{
    cr_assert_geq(gpa, TA_GPA);
    cr_assert_lt(gpa, TA_GPA + t->used, "table pointer 0x%llx beyond the tables",
                 (unsigned long long)gpa);
    const uint8_t *p = t->area + (gpa - TA_GPA);
    uint32_t len = le32_get(p + 4);
    cr_assert_geq(len, 36);
    cr_assert_leq(gpa - TA_GPA + len, t->used, "table %.4s ends beyond the tables", p);
    if (sums)
        cr_assert_eq(ta_sum(p, len), 0, "table %.4s checksum", p);
    return p;
}

const uint8_t *ta_locate(const struct ta_tables *t, const char *sig, bool sums)
{
    const uint8_t *x = table_at(t, le64_get(t->area + 24), sums);
    cr_assert_eq(memcmp(x, "XSDT", 4), 0);
    uint32_t xlen = le32_get(x + 4);
    cr_assert_eq((xlen - 36) % 8, 0);
    if (strcmp(sig, "XSDT") == 0)
        return x;
    for (uint32_t off = 36; off < xlen; off += 8) {
        const uint8_t *p = table_at(t, le64_get(x + off), sums);
        if (memcmp(p, sig, 4) == 0)
            return p;
        if (memcmp(p, "FACP", 4) == 0 && strcmp(sig, "DSDT") == 0) {
            const uint8_t *d = table_at(t, le64_get(p + 140), sums);
            cr_assert_eq(memcmp(d, "DSDT", 4), 0);
            return d;
        }
    }
    return NULL;
}

const uint8_t *ta_find(const struct ta_tables *t, const char *sig)
{
    return ta_locate(t, sig, true);
}
