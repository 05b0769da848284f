/*
 * e820 map construction (see e820.h).  The low 1 MiB is split the way a PC
 * BIOS reports it so guests that look for the EBDA and BIOS tables find them
 * reserved, not handed out as free RAM.
 */
#include "arch/x86_64/e820.h"

#include <errno.h>
#include <string.h>

#include "arch/x86_64/layout.h"

_Static_assert(X86_EBDA_GPA < X86_LOWMEM_RESERVED_END, "EBDA lies below the reserved end");
_Static_assert(X86_LOWMEM_RESERVED_END == X86_HIGH_MEM_START, "reserved area ends at 1 MiB");

static int add(struct x86_e820_entry *out, unsigned cap, unsigned *i, uint64_t addr, uint64_t size,
               uint32_t type)
{
    if (size == 0)
        return 0;
    if (*i >= cap)
        return -ENOSPC;
    out[*i].addr = addr;
    out[*i].size = size;
    out[*i].type = type;
    (*i)++;
    return 0;
}

int x86_e820_build(const struct gmem *gm, struct x86_e820_entry *out, unsigned cap, unsigned *n)
{
    if (gm->nregions == 0 || gm->nregions > GMEM_MAX_REGIONS)
        return -EINVAL;
    const struct gmem_region *r0 = &gm->regions[0];
    /* The low-memory boot structures live in region 0; the layout cannot work otherwise. */
    if (r0->gpa != 0 || r0->size < X86_HIGH_MEM_START)
        return -EINVAL;

    unsigned i = 0;
    int ret = add(out, cap, &i, 0, X86_EBDA_GPA, X86_E820_RAM);
    if (ret == 0)
        ret = add(out, cap, &i, X86_EBDA_GPA, X86_LOWMEM_RESERVED_END - X86_EBDA_GPA,
                  X86_E820_RESERVED);
    if (ret == 0)
        ret = add(out, cap, &i, X86_HIGH_MEM_START, r0->size - X86_HIGH_MEM_START, X86_E820_RAM);
    /* gmem keeps regions sorted and disjoint, so appending keeps the map sorted. */
    for (unsigned r = 1; ret == 0 && r < gm->nregions; r++)
        ret = add(out, cap, &i, gm->regions[r].gpa, gm->regions[r].size, X86_E820_RAM);
    if (ret < 0)
        return ret;
    *n = i;
    return 0;
}

int x86_e820_reserve(struct x86_e820_entry *map, unsigned cap, unsigned *n, uint64_t addr,
                     uint64_t size)
{
    uint64_t end;
    if (!range_end(addr, size, &end))
        return -EINVAL;
    unsigned pos = 0;
    for (unsigned i = 0; i < *n; i++) {
        if (ranges_overlap(map[i].addr, map[i].size, addr, size))
            return -EINVAL;
        if (map[i].addr < addr)
            pos = i + 1;
    }
    if (*n >= cap)
        return -ENOSPC;
    memmove(&map[pos + 1], &map[pos], (*n - pos) * sizeof(map[0]));
    map[pos] = (struct x86_e820_entry){.addr = addr, .size = size, .type = X86_E820_RESERVED};
    (*n)++;
    return 0;
}
