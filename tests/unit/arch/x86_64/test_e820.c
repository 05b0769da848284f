/* e820 map tests: the low-memory split, extra regions, ordering and capacity errors. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "arch/x86_64/e820.h"
#include "arch/x86_64/layout.h"
#include "tests/lib/x86_images.h"

static void check_sorted(const struct x86_e820_entry *m, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        cr_assert_gt(m[i].size, 0, "entry %u is empty", i);
        if (i > 0)
            cr_assert_geq(m[i].addr, m[i - 1].addr + m[i - 1].size, "entry %u overlaps", i);
    }
}

Test(x86_e820, one_region_256m)
{
    struct gmem gm;
    struct x86_e820_entry m[X86_E820_MAX_ENTRIES];
    unsigned n = 0;
    x86_img_gmem(&gm, 256 * MiB);
    cr_assert_eq(x86_e820_build(&gm, m, X86_E820_MAX_ENTRIES, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(m[0].addr, 0);
    cr_assert_eq(m[0].size, X86_EBDA_GPA);
    cr_assert_eq(m[0].type, X86_E820_RAM);
    cr_assert_eq(m[1].addr, X86_EBDA_GPA);
    cr_assert_eq(m[1].size, 1 * MiB - X86_EBDA_GPA);
    cr_assert_eq(m[1].type, X86_E820_RESERVED);
    cr_assert_eq(m[2].addr, 1 * MiB);
    cr_assert_eq(m[2].size, 255 * MiB);
    cr_assert_eq(m[2].type, X86_E820_RAM);
    check_sorted(m, n);
    gmem_destroy(&gm);
}

Test(x86_e820, two_regions_3_5g)
{
    struct gmem gm;
    struct x86_e820_entry m[X86_E820_MAX_ENTRIES];
    unsigned n = 0;
    x86_img_gmem2(&gm, 0, 3 * GiB, 4 * GiB, 512 * MiB);
    cr_assert_eq(x86_e820_build(&gm, m, X86_E820_MAX_ENTRIES, &n), 0);
    cr_assert_eq(n, 4);
    cr_assert_eq(m[2].addr, 1 * MiB);
    cr_assert_eq(m[2].size, 3 * GiB - 1 * MiB);
    cr_assert_eq(m[3].addr, 4 * GiB);
    cr_assert_eq(m[3].size, 512 * MiB);
    cr_assert_eq(m[3].type, X86_E820_RAM);
    check_sorted(m, n);
    /* Nothing in the MMIO hole is RAM. */
    for (unsigned i = 0; i < n; i++)
        cr_assert_not(ranges_overlap(m[i].addr, m[i].size, X86_MMIO_HOLE_START,
                                     X86_MMIO_HOLE_END - X86_MMIO_HOLE_START));
    gmem_destroy(&gm);
}

Test(x86_e820, exactly_1m_omits_empty_high_ram)
{
    struct gmem gm;
    struct x86_e820_entry m[X86_E820_MAX_ENTRIES];
    unsigned n = 0;
    x86_img_gmem(&gm, 1 * MiB);
    cr_assert_eq(x86_e820_build(&gm, m, X86_E820_MAX_ENTRIES, &n), 0);
    cr_assert_eq(n, 2);
    gmem_destroy(&gm);
}

Test(x86_e820, capacity_too_small)
{
    struct gmem gm;
    struct x86_e820_entry m[4];
    unsigned n = 77;
    x86_img_gmem2(&gm, 0, 16 * MiB, 4 * GiB, 16 * MiB);
    cr_assert_eq(x86_e820_build(&gm, m, 3, &n), -ENOSPC);
    cr_assert_eq(n, 77, "count untouched on failure");
    cr_assert_eq(x86_e820_build(&gm, m, 0, &n), -ENOSPC);
    cr_assert_eq(x86_e820_build(&gm, m, 4, &n), 0);
    cr_assert_eq(n, 4);
    gmem_destroy(&gm);
}

Test(x86_e820, bad_low_region)
{
    struct gmem gm;
    struct x86_e820_entry m[X86_E820_MAX_ENTRIES];
    unsigned n;
    x86_img_gmem2(&gm, 1 * MiB, 16 * MiB, 4 * GiB, 16 * MiB);
    cr_assert_eq(x86_e820_build(&gm, m, X86_E820_MAX_ENTRIES, &n), -EINVAL);
    gmem_destroy(&gm);
    x86_img_gmem(&gm, 512 * KiB);
    cr_assert_eq(x86_e820_build(&gm, m, X86_E820_MAX_ENTRIES, &n), -EINVAL);
    gmem_destroy(&gm);
    memset(&gm, 0, sizeof(gm));
    cr_assert_eq(x86_e820_build(&gm, m, X86_E820_MAX_ENTRIES, &n), -EINVAL);
}

/* The PCI ECAM window goes in as reserved, in address order, never over RAM. */
Test(x86_e820, reserve_ecam)
{
    struct gmem gm;
    struct x86_e820_entry m[X86_E820_MAX_ENTRIES];
    unsigned n = 0;
    x86_img_gmem(&gm, 256 * MiB);
    cr_assert_eq(x86_e820_build(&gm, m, X86_E820_MAX_ENTRIES, &n), 0);
    cr_assert_eq(x86_e820_reserve(m, X86_E820_MAX_ENTRIES, &n, X86_PCI_ECAM_BASE, MiB), 0);
    cr_assert_eq(n, 4);
    cr_assert_eq(m[3].addr, X86_PCI_ECAM_BASE);
    cr_assert_eq(m[3].size, MiB);
    cr_assert_eq(m[3].type, X86_E820_RESERVED);
    check_sorted(m, n);
    /* over RAM, empty or wrapping: refused, map unchanged */
    cr_assert_eq(x86_e820_reserve(m, X86_E820_MAX_ENTRIES, &n, 100 * MiB, MiB), -EINVAL);
    cr_assert_eq(x86_e820_reserve(m, X86_E820_MAX_ENTRIES, &n, 0xf0000000ULL, 0), -EINVAL);
    cr_assert_eq(x86_e820_reserve(m, X86_E820_MAX_ENTRIES, &n, UINT64_MAX, 2), -EINVAL);
    cr_assert_eq(x86_e820_reserve(m, 4, &n, 0xf0000000ULL, MiB), -ENOSPC);
    cr_assert_eq(n, 4);
    gmem_destroy(&gm);
}
