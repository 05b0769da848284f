/*
 * Helpers shared by the ACPI table tests (test_acpi*.c): build a table set
 * into a host buffer and find tables in it by following the RSDP, with
 * offsets written from the ACPI 6.3 specification, not from the builder.
 */
#ifndef TESTS_UNIT_ARCH_X86_64_TEST_ACPI_H
#define TESTS_UNIT_ARCH_X86_64_TEST_ACPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86_64/acpi.h"

#define TA_GPA  0xe0000ULL
#define TA_AREA 0x10000U

/* A built table set: area[0, used) at guest-physical TA_GPA. */
struct ta_tables {
    uint8_t area[TA_AREA];
    size_t used;
};

/* Devices with a GSI of their own: every free IOAPIC pin. */
#define TA_MAX_DEVS 21U

/*
 * Virtio-mmio windows 4 KiB apart from 0xd0000000, the first TA_MAX_DEVS
 * on distinct GSIs (5, 6, 7, 9, ...); filled by ta_desc().  One more than
 * the maximum, for the too-many test.
 */
extern struct x86_acpi_mmio_dev ta_virtio[X86_ACPI_MAX_VIRTIO + 1];
/* A PCI host bridge with every window present. */
extern const struct x86_acpi_pci ta_pci;

/* A description with `nvcpus`, IOAPIC id as mptable.h says, the first `nvirtio` of ta_virtio. */
struct x86_acpi_desc ta_desc(unsigned nvcpus, unsigned nvirtio, const struct x86_acpi_pci *pci);

/* Build `d` (Criterion-fails on error) and check the RSDP's checksums. */
void ta_build(struct ta_tables *t, const struct x86_acpi_desc *d);
/* The same without checking any checksum (for tests that leave that to iasl). */
void ta_build_raw(struct ta_tables *t, const struct x86_acpi_desc *d);

/* The table with signature `sig` (XSDT, a table it lists, or the DSDT through the FADT), or
 * NULL; checks the checksums on the way. */
const uint8_t *ta_find(const struct ta_tables *t, const char *sig);
/* ta_find(), checking the checksums on the way only if `sums`. */
const uint8_t *ta_locate(const struct ta_tables *t, const char *sig, bool sums);

/* Byte sum mod 256. */
uint8_t ta_sum(const uint8_t *p, size_t len);

#endif /* TESTS_UNIT_ARCH_X86_64_TEST_ACPI_H */
