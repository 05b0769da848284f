/*
 * The guest's physical memory map as the firmware would report it (e820).
 * Built once from the guest RAM regions and the fixed layout (layout.h), then
 * copied into the Linux zero page or the PVH memory map, so both boot
 * protocols describe the same memory.
 */
#ifndef ARCH_X86_64_E820_H
#define ARCH_X86_64_E820_H

#include <stdint.h>

#include "arch/x86_64/bootparams.h"
#include "vmm/gmem.h"

/* Host-side form of one map entry; serialised explicitly by each consumer. */
struct x86_e820_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type; /* X86_E820_RAM or X86_E820_RESERVED */
};

/* Enough for every layout gmem can describe: 3 low entries + one per further
 * region + one reserved device range (the PCI ECAM window). */
#define X86_E820_MAX_ENTRIES (4U + GMEM_MAX_REGIONS)

/*
 * Describe `gm` as an e820 map:
 *   [0, X86_EBDA_GPA)                              RAM
 *   [X86_EBDA_GPA, X86_LOWMEM_RESERVED_END)        reserved (EBDA, VGA hole, BIOS area)
 *   [X86_HIGH_MEM_START, end of region 0)          RAM (omitted if empty)
 *   every further region                           RAM
 * The result is sorted by address and non-overlapping.
 *
 * @gm:  guest memory; region 0 must start at 0 and cover at least the first 1 MiB
 * @out: array of `cap` entries receiving the map
 * @cap: capacity of `out`
 * @n:   set to the number of entries written (only on success)
 * Returns 0, -EINVAL if region 0 does not start at 0 or is smaller than 1 MiB,
 * or -ENOSPC if `cap` is too small.
 */
int x86_e820_build(const struct gmem *gm, struct x86_e820_entry *out, unsigned cap,
                   unsigned *n) __must_check;

/*
 * Add [addr, addr + size) as reserved to a map x86_e820_build() made (a
 * device range a guest must not take for RAM or hand out, such as the PCI
 * ECAM window, which Linux wants reserved before it uses the MCFG).  The
 * map stays sorted.  0, -EINVAL if the range is empty, wraps or overlaps an
 * entry, or -ENOSPC if `cap` is too small.
 */
int x86_e820_reserve(struct x86_e820_entry *map, unsigned cap, unsigned *n, uint64_t addr,
                     uint64_t size) __must_check;

#endif /* ARCH_X86_64_E820_H */
