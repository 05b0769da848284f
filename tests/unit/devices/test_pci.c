/*
 * Unit tests for the PCI bus (devices/pci/): conf1 and ECAM decode reach
 * the same config space, absent functions read all-ones, the generic
 * type-0 header (read-only ids, BAR sizing, command gating), the BAR map's
 * refusals (over RAM, over another BAR) and the boot-time allocator.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "devices/pci/pci.h"

static const struct pci_windows win = {
    .mmio32_base = 0xc0000000ULL,
    .mmio32_size = 0x10000000ULL,
    .mmio64_base = 0x1000000000ULL,
    .mmio64_size = 0x1000000000ULL,
    .io_base = 0xc000,
    .io_size = 0x1000,
};

/* A test function: records its map/unmap notifications and BAR accesses. */
struct tfunc {
    int maps, unmaps;
    unsigned last_bar;
    uint64_t last_gpa;
    uint64_t last_off;
    uint32_t cfg[1024];
    uint16_t cmd;
};

static void t_map(void *o, unsigned bar, enum pci_space s, uint64_t gpa, uint64_t size)
{
    struct tfunc *t = o;
    (void)s;
    (void)size;
    t->maps++;
    t->last_bar = bar;
    t->last_gpa = gpa;
}

static void t_unmap(void *o, unsigned bar, enum pci_space s, uint64_t gpa, uint64_t size)
{
    struct tfunc *t = o;
    (void)bar;
    (void)s;
    (void)gpa;
    (void)size;
    t->unmaps++;
}

static void t_bar_read(void *o, unsigned bar, uint64_t off, void *data, unsigned len)
{
    struct tfunc *t = o;
    t->last_bar = bar;
    t->last_off = off;
    memset(data, 0x5a, len);
}

static uint32_t t_cfg_read(void *o, unsigned off, unsigned len)
{
    (void)len;
    return ((struct tfunc *)o)->cfg[off / 4];
}

static void t_cfg_write(void *o, unsigned off, unsigned len, uint32_t v)
{
    (void)len;
    ((struct tfunc *)o)->cfg[off / 4] = v;
}

static void t_cmd(void *o, uint16_t cmd)
{
    ((struct tfunc *)o)->cmd = cmd;
}

static const struct pci_func_ops tops = {
    .cfg_read = t_cfg_read,
    .cfg_write = t_cfg_write,
    .cmd_write = t_cmd,
    .bar_map = t_map,
    .bar_unmap = t_unmap,
    .bar_read = t_bar_read,
};

static struct pci_bus *b;

static void setup(void)
{
    b = pci_bus_new(&win);
    cr_assert(b);
    cr_assert_eq(pci_bus_add_host_bridge(b), 0);
}

static void teardown(void)
{
    pci_bus_free(b);
}

TestSuite(pci, .init = setup, .fini = teardown);

static struct pci_func_desc tdesc(void)
{
    struct pci_func_desc d = {
        .vendor = 0x1234,
        .device = 0x5678,
        .class_code = 0xff0000,
        .generic_header = true,
        .irq_pin = 1,
        .cap_ptr = 0x40,
    };
    d.bars[0] = (struct pci_bar_desc){.size = 0x1000, .type = PCI_BAR_MEM32};
    d.bars[1] =
        (struct pci_bar_desc){.size = 0x100000, .type = PCI_BAR_MEM64, .prefetchable = true};
    d.bars[3] = (struct pci_bar_desc){.size = 0x20, .type = PCI_BAR_IO};
    return d;
}

static uint32_t conf1_rd(unsigned devfn, unsigned reg, unsigned len)
{
    uint32_t a = PCI_CONF1_ENABLE | devfn << 8 | (reg & 0xfcU), v = 0;
    pci_conf1_write(b, 0, &a, 4);
    pci_conf1_read(b, 4 + (reg & 3U), &v, len);
    return v;
}

static void conf1_wr(unsigned devfn, unsigned reg, unsigned len, uint32_t v)
{
    uint32_t a = PCI_CONF1_ENABLE | devfn << 8 | (reg & 0xfcU);
    pci_conf1_write(b, 0, &a, 4);
    pci_conf1_write(b, 4 + (reg & 3U), &v, len);
}

static uint32_t ecam_rd(unsigned devfn, unsigned reg, unsigned len)
{
    uint32_t v = 0;
    pci_ecam_read(b, (uint64_t)devfn << 12 | reg, &v, len);
    return v;
}

Test(pci, host_bridge_ids_via_conf1_and_ecam)
{
    uint32_t id = (uint32_t)PCI_HOST_DEVICE << 16 | PCI_HOST_VENDOR;
    cr_assert_eq(conf1_rd(0, 0, 4), id);
    cr_assert_eq(ecam_rd(0, 0, 4), id);
    cr_assert_eq(conf1_rd(0, 0x0a, 2), 0x0600); /* class 06, subclass 00 */
    cr_assert_eq(ecam_rd(0, 0x0b, 1), 0x06);
    cr_assert_eq(conf1_rd(0, 0x0e, 1), 0); /* header type 0, single function */
    cr_assert_eq(conf1_rd(0, 0x02, 2), PCI_HOST_DEVICE);
    for (unsigned r = 0x10; r < 0x28; r += 4)
        cr_assert_eq(ecam_rd(0, r, 4), 0, "no BARs");
}

Test(pci, absent_functions_read_all_ones)
{
    cr_assert_eq(conf1_rd(PCI_DEVFN(1, 0), 0, 4), 0xffffffffU);
    cr_assert_eq(conf1_rd(PCI_DEVFN(31, 7), 0, 2), 0xffff);
    cr_assert_eq(ecam_rd(PCI_DEVFN(5, 3), 0x40, 1), 0xff);
    cr_assert_eq(ecam_rd(PCI_DEVFN(0, 1), 0, 4), 0xffffffffU);
    /* writes vanish */
    conf1_wr(PCI_DEVFN(1, 0), 0x04, 2, 0x7);
    cr_assert_eq(conf1_rd(PCI_DEVFN(1, 0), 0x04, 4), 0xffffffffU);
}

Test(pci, conf1_decode)
{
    /* the address register reads back what was written, minus reserved bits */
    uint32_t a = 0xff000003U | PCI_CONF1_ENABLE | (3U << 11) | (2U << 8) | 0x44;
    pci_conf1_write(b, 0, &a, 4);
    uint32_t v = 0;
    pci_conf1_read(b, 0, &v, 4);
    cr_assert_eq(v, PCI_CONF1_ENABLE | (3U << 11) | (2U << 8) | 0x44);
    /* enable bit clear: all-ones even for the host bridge */
    a = 0;
    pci_conf1_write(b, 0, &a, 4);
    pci_conf1_read(b, 4, &v, 4);
    cr_assert_eq(v, 0xffffffffU);
    /* another bus: all-ones */
    a = PCI_CONF1_ENABLE | (1U << 16);
    pci_conf1_write(b, 0, &a, 4);
    pci_conf1_read(b, 4, &v, 4);
    cr_assert_eq(v, 0xffffffffU);
    /* byte lanes: 0xCFE reads bytes 2-3 of the dword */
    cr_assert_eq(conf1_rd(0, 0x02, 2), PCI_HOST_DEVICE);
    cr_assert_eq(conf1_rd(0, 0x03, 1), PCI_HOST_DEVICE >> 8);
    /* byte write to 0xCFB (Linux's probe) leaves the address alone */
    a = PCI_CONF1_ENABLE;
    pci_conf1_write(b, 0, &a, 4);
    uint8_t one = 1;
    pci_conf1_write(b, 3, &one, 1);
    pci_conf1_read(b, 0, &v, 4);
    cr_assert_eq(v, PCI_CONF1_ENABLE);
}

Test(pci, ecam_decode_and_same_space)
{
    struct tfunc t = {0};
    struct pci_func_desc d = tdesc();
    cr_assert_eq(pci_bus_add(b, PCI_DEVFN(3, 2), &d, &tops, &t), 0);
    cr_assert_eq(ecam_rd(PCI_DEVFN(3, 2), 0, 4), 0x56781234U);
    cr_assert_eq(conf1_rd(PCI_DEVFN(3, 2), 0, 4), 0x56781234U);
    /* extended space: only ECAM reaches 0x100+, goes to the function */
    uint32_t v = 0xabcd0001U;
    pci_ecam_write(b, (uint64_t)PCI_DEVFN(3, 2) << 12 | 0x100, &v, 4);
    cr_assert_eq(t.cfg[0x40], 0xabcd0001U);
    cr_assert_eq(ecam_rd(PCI_DEVFN(3, 2), 0x100, 4), 0xabcd0001U);
    /* a conf1 write at 0x48 is visible through ECAM */
    conf1_wr(PCI_DEVFN(3, 2), 0x48, 4, 0x11223344U);
    cr_assert_eq(ecam_rd(PCI_DEVFN(3, 2), 0x48, 4), 0x11223344U);
    /* status says "capability list" because cap_ptr is set */
    cr_assert_eq(ecam_rd(PCI_DEVFN(3, 2), 0x06, 2) & PCI_STATUS_CAP_LIST, PCI_STATUS_CAP_LIST);
    cr_assert_eq(ecam_rd(PCI_DEVFN(3, 2), 0x34, 1), 0x40);
    /* misaligned ECAM access: all-ones */
    cr_assert_eq(ecam_rd(PCI_DEVFN(3, 2), 0x01, 2), 0xffff);
    /* multi-function bit: 03.0 absent, so nothing; add 03.0 and it shows */
    struct tfunc t0 = {0};
    struct pci_func_desc d0 = tdesc();
    memset(d0.bars, 0, sizeof(d0.bars));
    cr_assert_eq(pci_bus_add(b, PCI_DEVFN(3, 0), &d0, &tops, &t0), 0);
    cr_assert_eq(ecam_rd(PCI_DEVFN(3, 0), 0x0e, 1), PCI_HEADER_MULTIFUNCTION);
}

Test(pci, read_only_fields)
{
    conf1_wr(0, 0x00, 4, 0);
    conf1_wr(0, 0x08, 4, 0x12345678U);
    conf1_wr(0, 0x2c, 4, 0xdeadbeefU);
    cr_assert_eq(conf1_rd(0, 0, 4), (uint32_t)PCI_HOST_DEVICE << 16 | PCI_HOST_VENDOR);
    cr_assert_eq(conf1_rd(0, 0x08, 4), PCI_HOST_CLASS << 8);
    cr_assert_eq(conf1_rd(0, 0x2c, 4), 0);
    /* writable: interrupt line and cache line size, command's defined bits */
    conf1_wr(0, 0x3c, 1, 0x0b);
    cr_assert_eq(conf1_rd(0, 0x3c, 1), 0x0b);
    conf1_wr(0, 0x04, 2, 0xffff);
    cr_assert_eq(conf1_rd(0, 0x04, 2), 0x0547);
}

Test(pci, bar_sizing)
{
    struct tfunc t = {0};
    struct pci_func_desc d = tdesc();
    unsigned df = PCI_DEVFN(1, 0);
    cr_assert_eq(pci_bus_add(b, df, &d, &tops, &t), 0);
    conf1_wr(df, 0x10, 4, 0xffffffffU);
    cr_assert_eq(conf1_rd(df, 0x10, 4), 0xfffff000U);
    conf1_wr(df, 0x14, 4, 0xffffffffU);
    cr_assert_eq(conf1_rd(df, 0x14, 4), 0xfff00000U | PCI_BAR_MEM64_FLAG | PCI_BAR_PREFETCH_FLAG);
    conf1_wr(df, 0x18, 4, 0xffffffffU);
    cr_assert_eq(conf1_rd(df, 0x18, 4), 0xffffffffU, "upper half of a 1 MiB MEM64 BAR");
    conf1_wr(df, 0x1c, 4, 0xffffffffU);
    cr_assert_eq(conf1_rd(df, 0x1c, 4), 0xffffffe0U | PCI_BAR_IO_FLAG);
    conf1_wr(df, 0x20, 4, 0xffffffffU);
    cr_assert_eq(conf1_rd(df, 0x20, 4), 0, "unimplemented BAR");
    /* a big MEM64 BAR has size bits in the upper half too */
    struct tfunc t2 = {0};
    struct pci_func_desc d2 = {.vendor = 1, .generic_header = true};
    d2.bars[0] = (struct pci_bar_desc){.size = 1ULL << 33, .type = PCI_BAR_MEM64};
    cr_assert_eq(pci_bus_add(b, PCI_DEVFN(2, 0), &d2, &tops, &t2), 0);
    conf1_wr(PCI_DEVFN(2, 0), 0x10, 4, 0xffffffffU);
    conf1_wr(PCI_DEVFN(2, 0), 0x14, 4, 0xffffffffU);
    cr_assert_eq(conf1_rd(PCI_DEVFN(2, 0), 0x10, 4), PCI_BAR_MEM64_FLAG);
    cr_assert_eq(conf1_rd(PCI_DEVFN(2, 0), 0x14, 4), 0xfffffffeU);
}

Test(pci, bad_descs_refused)
{
    struct tfunc t = {0};
    struct pci_func_desc d = tdesc();
    d.bars[0].size = 0x1800; /* not a power of two */
    cr_assert_eq(pci_bus_add(b, PCI_DEVFN(1, 0), &d, &tops, &t), -EINVAL);
    d = tdesc();
    d.bars[2].type = PCI_BAR_MEM32; /* the upper half of BAR1 */
    d.bars[2].size = 0x1000;
    cr_assert_eq(pci_bus_add(b, PCI_DEVFN(1, 0), &d, &tops, &t), -EINVAL);
    d = tdesc();
    d.bars[5] = (struct pci_bar_desc){.size = 0x1000, .type = PCI_BAR_MEM64}; /* no upper half */
    cr_assert_eq(pci_bus_add(b, PCI_DEVFN(1, 0), &d, &tops, &t), -EINVAL);
    d = tdesc();
    cr_assert_eq(pci_bus_add(b, PCI_DEVFN(0, 0), &d, &tops, &t), -EEXIST);
    cr_assert_eq(pci_bus_add(b, 256, &d, &tops, &t), -EINVAL);
}

Test(pci, command_gates_bar_mapping)
{
    struct tfunc t = {0};
    struct pci_func_desc d = tdesc();
    unsigned df = PCI_DEVFN(1, 0);
    cr_assert_eq(pci_bus_add(b, df, &d, &tops, &t), 0);
    conf1_wr(df, 0x10, 4, 0xc0001000U);
    uint64_t gpa;
    cr_assert_not(pci_bar_mapped(b, df, 0, &gpa), "memory decode off");
    cr_assert_eq(t.maps, 0);
    conf1_wr(df, 0x04, 2, PCI_CMD_MEMORY);
    cr_assert_eq(t.cmd, PCI_CMD_MEMORY);
    cr_assert(pci_bar_mapped(b, df, 0, &gpa));
    cr_assert_eq(gpa, 0xc0001000U);
    cr_assert_eq(t.maps, 1);
    cr_assert_eq(t.last_gpa, 0xc0001000U);
    /* accesses in the window reach the BAR, with the offset */
    void *h = pci_window_handle(b, PCI_SPACE_MEM, win.mmio32_base);
    uint32_t v = 0;
    pci_window_read(h, 0x1010, &v, 4);
    cr_assert_eq(v, 0x5a5a5a5aU);
    cr_assert_eq(t.last_off, 0x10);
    pci_window_read(h, 0x3000, &v, 4);
    cr_assert_eq(v, 0xffffffffU, "no BAR there");
    /* the IO BAR stays off: only memory decode is on */
    conf1_wr(df, 0x1c, 4, 0xc040);
    cr_assert_not(pci_bar_mapped(b, df, 3, &gpa));
    conf1_wr(df, 0x04, 2, PCI_CMD_MEMORY | PCI_CMD_IO);
    cr_assert(pci_bar_mapped(b, df, 3, &gpa));
    cr_assert_eq(gpa, 0xc040);
    /* moving the BAR unmaps and maps again */
    conf1_wr(df, 0x10, 4, 0xc0008000U);
    cr_assert(pci_bar_mapped(b, df, 0, &gpa));
    cr_assert_eq(gpa, 0xc0008000U);
    cr_assert_eq(t.unmaps, 1);
    /* decode off: everything goes */
    conf1_wr(df, 0x04, 2, 0);
    cr_assert_not(pci_bar_mapped(b, df, 0, &gpa));
    cr_assert_not(pci_bar_mapped(b, df, 3, &gpa));
    pci_window_read(h, 0x8000, &v, 4);
    cr_assert_eq(v, 0xffffffffU);
}

Test(pci, bar_over_ram_or_other_bar_refused)
{
    struct tfunc t1 = {0}, t2 = {0};
    struct pci_func_desc d = tdesc();
    cr_assert_eq(pci_bus_add(b, PCI_DEVFN(1, 0), &d, &tops, &t1), 0);
    cr_assert_eq(pci_bus_add(b, PCI_DEVFN(2, 0), &d, &tops, &t2), 0);
    conf1_wr(PCI_DEVFN(1, 0), 0x10, 4, 0xc0004000U);
    conf1_wr(PCI_DEVFN(1, 0), 0x04, 2, PCI_CMD_MEMORY);
    uint64_t gpa;
    cr_assert(pci_bar_mapped(b, PCI_DEVFN(1, 0), 0, &gpa));
    /* 02.0 BAR0 over 01.0 BAR0: the register takes it, nothing is mapped */
    uint64_t refused = pci_bus_refused(b);
    conf1_wr(PCI_DEVFN(2, 0), 0x10, 4, 0xc0004000U);
    conf1_wr(PCI_DEVFN(2, 0), 0x04, 2, PCI_CMD_MEMORY);
    cr_assert_eq(conf1_rd(PCI_DEVFN(2, 0), 0x10, 4), 0xc0004000U);
    cr_assert_not(pci_bar_mapped(b, PCI_DEVFN(2, 0), 0, &gpa));
    cr_assert_gt(pci_bus_refused(b), refused);
    cr_assert_eq(t2.maps, 0);
    /* the first mapping is untouched and still answers */
    void *h = pci_window_handle(b, PCI_SPACE_MEM, win.mmio32_base);
    uint32_t v = 0;
    t1.last_off = 99;
    pci_window_read(h, 0x4000, &v, 4);
    cr_assert_eq(t1.last_off, 0);
    cr_assert_eq(t1.unmaps, 0);
    /* over RAM (below the window): refused too */
    conf1_wr(PCI_DEVFN(2, 0), 0x10, 4, 0x00100000U);
    cr_assert_eq(conf1_rd(PCI_DEVFN(2, 0), 0x10, 4), 0x00100000U);
    cr_assert_not(pci_bar_mapped(b, PCI_DEVFN(2, 0), 0, &gpa));
    /* a MEM64 BAR just past the 64-bit window's end: refused */
    conf1_wr(PCI_DEVFN(2, 0), 0x14, 4, 0);
    conf1_wr(PCI_DEVFN(2, 0), 0x18, 4, 0x20U);
    cr_assert_not(pci_bar_mapped(b, PCI_DEVFN(2, 0), 1, &gpa));
    /* once 01.0 moves away, 02.0 gets its place */
    conf1_wr(PCI_DEVFN(1, 0), 0x10, 4, 0xc0010000U);
    conf1_wr(PCI_DEVFN(2, 0), 0x10, 4, 0xc0004000U);
    cr_assert(pci_bar_mapped(b, PCI_DEVFN(2, 0), 0, &gpa));
    cr_assert_eq(gpa, 0xc0004000U);
}

Test(pci, allocator_aligns_and_separates)
{
    struct tfunc t1 = {0}, t2 = {0};
    struct pci_func_desc d = tdesc();
    cr_assert_eq(pci_bus_add(b, PCI_DEVFN(1, 0), &d, &tops, &t1), 0);
    cr_assert_eq(pci_bus_add(b, PCI_DEVFN(2, 0), &d, &tops, &t2), 0);
    struct errbuf err = {0};
    cr_assert_eq(pci_bus_assign(b, &err), 0);
    uint64_t g[2][3];
    for (unsigned f = 0; f < 2; f++) {
        unsigned df = PCI_DEVFN(f + 1, 0);
        cr_assert(pci_bar_mapped(b, df, 0, &g[f][0]));
        cr_assert(pci_bar_mapped(b, df, 1, &g[f][1]));
        cr_assert(pci_bar_mapped(b, df, 3, &g[f][2]));
        cr_assert_eq(g[f][0] % 0x1000, 0);
        cr_assert_eq(g[f][1] % 0x100000, 0);
        cr_assert_eq(g[f][2] % 0x20, 0);
        cr_assert(g[f][0] >= win.mmio32_base && g[f][0] < win.mmio32_base + win.mmio32_size);
        cr_assert(g[f][1] >= win.mmio64_base, "MEM64 goes to the 64-bit window");
        cr_assert(g[f][2] >= win.io_base && g[f][2] < win.io_base + win.io_size);
        cr_assert_eq(conf1_rd(df, 0x04, 2), PCI_CMD_MEMORY | PCI_CMD_IO);
    }
    for (unsigned k = 0; k < 3; k++)
        cr_assert_neq(g[0][k], g[1][k]);
    cr_assert_eq(pci_bus_refused(b), 0);
}

Test(pci, allocator_reports_full_window)
{
    struct pci_windows small = win;
    small.mmio32_size = 0x1000;
    small.mmio64_size = 0;
    struct pci_bus *s = pci_bus_new(&small);
    cr_assert(s);
    struct tfunc t = {0};
    struct pci_func_desc d = tdesc();
    cr_assert_eq(pci_bus_add(s, PCI_DEVFN(1, 0), &d, &tops, &t), 0);
    struct errbuf err = {0};
    cr_assert_eq(pci_bus_assign(s, &err), -ENOSPC);
    pci_bus_free(s);
}

Test(pci, bad_windows_refused)
{
    struct pci_windows w = win;
    w.mmio32_base = 0xfff00000ULL;
    w.mmio32_size = 0x200000ULL; /* crosses 4 GiB */
    cr_assert_null(pci_bus_new(&w));
    w = win;
    w.mmio64_base = w.mmio32_base;
    cr_assert_null(pci_bus_new(&w));
    w = win;
    w.io_size = 0x10000;
    cr_assert_null(pci_bus_new(&w));
}
