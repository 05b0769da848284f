/*
 * I/O dispatch for port I/O and MMIO exits.
 *
 * Devices register [base, base+len) ranges before any vCPU runs; after that
 * the table is read-only, so lookups from vCPU threads take no lock (devices
 * lock their own state).  Registration refuses zero-length, wrapping and
 * overlapping ranges.  An access is delivered only if it lies wholly inside
 * one range, with the offset relative to the range base; an access that
 * straddles a range end is treated as unclaimed.
 */
#ifndef VMM_BUS_H
#define VMM_BUS_H

#include <stdint.h>

#include "vmm/util.h"

#define BUS_MAX_RANGES 64

/* `data` holds `len` bytes (1, 2, 4 or 8), little-endian. */
typedef void (*bus_read_fn)(void *opaque, uint64_t offset, void *data, unsigned len);
typedef void (*bus_write_fn)(void *opaque, uint64_t offset, const void *data, unsigned len);

struct bus_range {
    uint64_t base;
    uint64_t len;
    const char *name; /* static string, for logs */
    bus_read_fn read;
    bus_write_fn write;
    void *opaque;
};

struct bus {
    const char *name; /* "pio" or "mmio" */
    unsigned n;
    struct bus_range ranges[BUS_MAX_RANGES]; /* sorted by base */
};

void bus_init(struct bus *b, const char *name);

/* 0, -EINVAL (empty or wrapping), -EEXIST (overlap), -ENOSPC (table full). */
int bus_register(struct bus *b, uint64_t base, uint64_t len, const char *name, bus_read_fn read,
                 bus_write_fn write, void *opaque) __must_check;

/* Lookup; NULL if no range wholly contains [addr, addr+len). */
const struct bus_range *bus_find(const struct bus *b, uint64_t addr, unsigned len);

/*
 * Dispatch an access.  Returns false if nothing claimed it; for reads the
 * caller then returns all-ones, as an empty bus does on real hardware.
 */
bool bus_read(const struct bus *b, uint64_t addr, void *data, unsigned len);
bool bus_write(const struct bus *b, uint64_t addr, const void *data, unsigned len);

#endif /* VMM_BUS_H */
