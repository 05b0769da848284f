/* PIO/MMIO range table and dispatch (see bus.h). */
#include "vmm/bus.h"

#include <errno.h>
#include <string.h>

void bus_init(struct bus *b, const char *name)
{
    memset(b, 0, sizeof(*b));
    b->name = name;
}

int bus_register(struct bus *b, uint64_t base, uint64_t len, const char *name, bus_read_fn read,
                 bus_write_fn write, void *opaque)
{
    uint64_t end;
    if (!range_end(base, len, &end))
        return -EINVAL;
    if (b->n >= BUS_MAX_RANGES)
        return -ENOSPC;
    unsigned pos = 0;
    while (pos < b->n && b->ranges[pos].base < base)
        pos++;
    if (pos > 0 && ranges_overlap(b->ranges[pos - 1].base, b->ranges[pos - 1].len, base, len))
        return -EEXIST;
    if (pos < b->n && ranges_overlap(b->ranges[pos].base, b->ranges[pos].len, base, len))
        return -EEXIST;
    memmove(&b->ranges[pos + 1], &b->ranges[pos], (b->n - pos) * sizeof(b->ranges[0]));
    b->ranges[pos] = (struct bus_range){base, len, name, read, write, opaque};
    b->n++;
    return 0;
}

const struct bus_range *bus_find(const struct bus *b, uint64_t addr, unsigned len)
{
    uint64_t end;
    if (!range_end(addr, len, &end))
        return NULL;
    /* Binary search for the last range with base <= addr. */
    unsigned lo = 0, hi = b->n;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (b->ranges[mid].base <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    const struct bus_range *r = &b->ranges[lo - 1];
    if (addr - r->base >= r->len || end - r->base > r->len)
        return NULL;
    return r;
}

bool bus_read(const struct bus *b, uint64_t addr, void *data, unsigned len)
{
    const struct bus_range *r = bus_find(b, addr, len);
    if (!r || !r->read)
        return false;
    r->read(r->opaque, addr - r->base, data, len);
    return true;
}

bool bus_write(const struct bus *b, uint64_t addr, const void *data, unsigned len)
{
    const struct bus_range *r = bus_find(b, addr, len);
    if (!r || !r->write)
        return false;
    r->write(r->opaque, addr - r->base, data, len);
    return true;
}
