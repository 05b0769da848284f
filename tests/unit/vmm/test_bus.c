/* I/O bus: registration rules and dispatch boundaries. */
#include "vmm/bus.h"

#include <criterion/criterion.h>
#include <errno.h>

struct probe {
    uint64_t last_off;
    unsigned last_len;
    unsigned reads, writes;
};

static void probe_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct probe *p = opaque;
    p->last_off = off;
    p->last_len = len;
    p->reads++;
    memset(data, 0xab, len);
}

static void probe_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
    struct probe *p = opaque;
    (void)data;
    p->last_off = off;
    p->last_len = len;
    p->writes++;
}

Test(bus, register_rules)
{
    struct bus b;
    struct probe p = {0};
    bus_init(&b, "test");
    cr_assert_eq(bus_register(&b, 0x100, 8, "a", probe_read, probe_write, &p), 0);
    cr_assert_eq(bus_register(&b, 0x108, 8, "b", probe_read, probe_write, &p), 0, "adjacent ok");
    cr_assert_eq(bus_register(&b, 0x104, 2, "c", probe_read, probe_write, &p), -EEXIST);
    cr_assert_eq(bus_register(&b, 0xf8, 9, "d", probe_read, probe_write, &p), -EEXIST);
    cr_assert_eq(bus_register(&b, 0x10f, 1, "e", probe_read, probe_write, &p), -EEXIST);
    cr_assert_eq(bus_register(&b, 0x200, 0, "f", probe_read, probe_write, &p), -EINVAL);
    cr_assert_eq(bus_register(&b, UINT64_MAX - 1, 4, "g", probe_read, probe_write, &p), -EINVAL);
    cr_assert_eq(bus_register(&b, 0x50, 0x10, "h", probe_read, probe_write, &p), 0);
    /* Sorted by base. */
    cr_assert_eq(b.ranges[0].base, 0x50);
    cr_assert_eq(b.ranges[1].base, 0x100);
    cr_assert_eq(b.ranges[2].base, 0x108);
}

Test(bus, table_full)
{
    struct bus b;
    bus_init(&b, "test");
    for (unsigned i = 0; i < BUS_MAX_RANGES; i++)
        cr_assert_eq(bus_register(&b, i * 16, 16, "x", NULL, NULL, NULL), 0);
    cr_assert_eq(bus_register(&b, 0x100000, 16, "y", NULL, NULL, NULL), -ENOSPC);
}

Test(bus, dispatch_offsets_and_edges)
{
    struct bus b;
    struct probe p = {0};
    uint8_t data[8] = {0};
    bus_init(&b, "test");
    cr_assert_eq(bus_register(&b, 0x1000, 0x10, "a", probe_read, probe_write, &p), 0);
    cr_assert(bus_read(&b, 0x1004, data, 4));
    cr_assert_eq(p.last_off, 4);
    cr_assert_eq(p.last_len, 4);
    cr_assert_eq(data[0], 0xab);
    cr_assert(bus_write(&b, 0x100f, data, 1));
    cr_assert_eq(p.last_off, 0xf);
    /* Straddling the end, before the start, after the end: unclaimed. */
    cr_assert_not(bus_read(&b, 0x100e, data, 4));
    cr_assert_not(bus_write(&b, 0xfff, data, 2));
    cr_assert_not(bus_read(&b, 0x1010, data, 1));
    cr_assert_not(bus_read(&b, UINT64_MAX, data, 2), "wrapping access");
    cr_assert_not(bus_read(&b, 0x1000, data, 0), "zero length");
    cr_assert_eq(p.reads, 1);
    cr_assert_eq(p.writes, 1);
}

Test(bus, missing_callbacks_are_unclaimed)
{
    struct bus b;
    uint8_t d = 0;
    bus_init(&b, "test");
    cr_assert_eq(bus_register(&b, 0x10, 1, "ro", NULL, NULL, NULL), 0);
    cr_assert_not(bus_read(&b, 0x10, &d, 1));
    cr_assert_not(bus_write(&b, 0x10, &d, 1));
}
