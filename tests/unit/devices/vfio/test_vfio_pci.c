/*
 * Unit tests for devices/vfio/vfio_pci.c over a fake transport: what the
 * passthrough function does with the bus's callbacks, without KVM or a
 * device.  BAR mmap areas become memory slots with the MSI-X trap range
 * cut out and go again when decode is turned off; the command register's
 * decode and bus-master bits reach the device with INTx kept disabled;
 * trapped accesses reach the transport, MSI-X table accesses never do; a
 * failed transport reads all-ones and drops writes; a layout's mmap areas
 * decide what is mapped and one the transport cannot map is refused.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/pci/pci.h"
#include "devices/vfio/vfio_pci.h"
#include "devices/vfio/vpci_layout.h"
#include "vmm/irq_routing.h"

#define DF       PCI_DEVFN(1, 0)
#define BAR_SIZE 0x4000U
#define W32      0xc0000000ULL

static const struct pci_windows win = {
    .mmio32_base = W32,
    .mmio32_size = 0x10000000ULL,
    .mmio64_base = 0x1000000000ULL,
    .mmio64_size = 0x1000000000ULL,
    .io_base = 0xc000,
    .io_size = 0x1000,
};

struct slot_call {
    uint64_t gpa, size;
    void *hva;
};

static struct fake {
    uint8_t cfg[256];
    uint8_t *bar; /* BAR_SIZE, page aligned: also the "mmap" */
    bool failed;
    unsigned bar_reads, bar_writes;
    uint16_t last_cmd;
    unsigned nslots, nremoved;
    struct slot_call slots[8];
    bool destroyed;
} fk;

static struct pci_bus *bus;
static struct irq_routing *rt;
static struct vfio_pci *pt;

static int f_read(void *t, unsigned index, uint64_t off, void *buf, size_t len)
{
    struct fake *f = t;
    if (f->failed) {
        memset(buf, 0xff, len);
        return -EIO;
    }
    if (index == VFIO_PCI_CFG_INDEX && off + len <= sizeof(f->cfg)) {
        memcpy(buf, f->cfg + off, len);
        return 0;
    }
    if (index == 0 && off + len <= BAR_SIZE) {
        f->bar_reads++;
        memcpy(buf, f->bar + off, len);
        return 0;
    }
    return -EINVAL;
}

static int f_write(void *t, unsigned index, uint64_t off, const void *buf, size_t len)
{
    struct fake *f = t;
    if (f->failed)
        return -EIO;
    if (index == VFIO_PCI_CFG_INDEX && off == PCI_CFG_COMMAND && len == 2) {
        memcpy(&f->last_cmd, buf, 2);
        return 0;
    }
    if (index == 0 && off + len <= BAR_SIZE) {
        f->bar_writes++;
        memcpy(f->bar + off, buf, len);
        return 0;
    }
    return -EINVAL;
}

static int f_set_irqs(void *t, unsigned index, uint32_t start, uint32_t count, const int *fds)
{
    (void)t, (void)index, (void)start, (void)count, (void)fds;
    return 0;
}

static int f_mmap(void *t, unsigned index, unsigned area, void **addr, size_t *len)
{
    struct fake *f = t;
    if (index != 0 || area != 0)
        return -EINVAL;
    *addr = f->bar;
    *len = BAR_SIZE;
    return 0;
}

static bool f_failed(void *t)
{
    return ((struct fake *)t)->failed;
}

static void f_destroy(void *t)
{
    ((struct fake *)t)->destroyed = true;
}

static const struct vfio_pci_transport fops = {
    .name = "fake",
    .region_read = f_read,
    .region_write = f_write,
    .set_irqs = f_set_irqs,
    .mmap = f_mmap,
    .failed = f_failed,
    .destroy = f_destroy,
};

static int s_slot_add(void *ctx, uint64_t gpa, uint64_t size, void *hva, unsigned *slot)
{
    struct fake *f = ctx;
    cr_assert_lt(f->nslots, 8);
    f->slots[f->nslots] = (struct slot_call){gpa, size, hva};
    *slot = 32 + f->nslots++;
    return 0;
}

static void s_slot_remove(void *ctx, unsigned slot)
{
    (void)slot;
    ((struct fake *)ctx)->nremoved++;
}

static const struct vm_services svc = {
    .ctx = &fk,
    .mem_slot_add = s_slot_add,
    .mem_slot_remove = s_slot_remove,
};

static void put16(unsigned off, uint16_t v)
{
    memcpy(fk.cfg + off, &v, 2);
}

static void put32(unsigned off, uint32_t v)
{
    memcpy(fk.cfg + off, &v, 4);
}

/* The fake function at `devfn` with `nareas` (0 or 1) mmap areas in BAR0. */
static int create(const struct vfio_pci_layout *lay, unsigned devfn, unsigned nareas,
                  struct vfio_pci **out, struct errbuf *err)
{
    struct vfio_pci_host h = {
        .bus = bus, .routing = rt, .vm_fd = -1, .svc = &svc, .win = {0xfee00000ULL, 0x100000}};
    struct vfio_pci_region reg[VFIO_PCI_NREGIONS];
    memset(reg, 0, sizeof(reg));
    reg[0] = (struct vfio_pci_region){
        .size = BAR_SIZE, .readable = true, .writable = true, .nareas = nareas};
    reg[0].areas[0].size = BAR_SIZE;
    reg[VFIO_PCI_CFG_INDEX].size = 256;
    unsigned irqs[3] = {0, 0, 4};
    return vfio_pci_create(&h, "t", &fops, &fk, reg, irqs, lay, devfn, out, err);
}

/* 1b36:10f7 with a 16 KiB BAR0 and MSI-X (4 vectors, table 0x2000, PBA 0x2800). */
static void setup(void)
{
    memset(&fk, 0, sizeof(fk));
    fk.bar = aligned_alloc(4096, BAR_SIZE);
    cr_assert_not_null(fk.bar);
    memset(fk.bar, 0, BAR_SIZE);
    put16(0x00, 0x1b36);
    put16(0x02, 0x10f7);
    put16(0x06, PCI_STATUS_CAP_LIST);
    fk.cfg[0x0b] = 0xff;
    fk.cfg[0x34] = 0x40;
    fk.cfg[0x40] = 0x11;
    put16(0x42, 3); /* 4 vectors */
    put32(0x44, 0x2000);
    put32(0x48, 0x2800);
    uint32_t id = 0x77697370;
    memcpy(fk.bar, &id, 4);
    bus = pci_bus_new(&win);
    rt = irq_routing_new();
    cr_assert(bus && rt);
    struct vfio_pci_host h = {
        .bus = bus, .routing = rt, .vm_fd = -1, .svc = &svc, .win = {0xfee00000ULL, 0x100000}};
    struct vfio_pci_region reg[VFIO_PCI_NREGIONS];
    memset(reg, 0, sizeof(reg));
    reg[0] =
        (struct vfio_pci_region){.size = BAR_SIZE, .readable = true, .writable = true, .nareas = 1};
    reg[0].areas[0].size = BAR_SIZE;
    reg[VFIO_PCI_CFG_INDEX].size = 256;
    unsigned irqs[3] = {0, 0, 4};
    struct errbuf err = {0};
    cr_assert_eq(vfio_pci_create(&h, "t", &fops, &fk, reg, irqs, NULL, DF, &pt, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(pci_bus_assign(bus, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
    vfio_pci_destroy(pt);
    pt = NULL;
    pci_bus_free(bus);
    irq_routing_free(rt);
    free(fk.bar);
}

TestSuite(vfio_pci, .init = setup, .fini = teardown, .timeout = 10);

Test(vfio_pci, slots_skip_the_msix_trap_range)
{
    uint64_t gpa;
    cr_assert(pci_bar_mapped(bus, DF, 0, &gpa));
    cr_assert_eq(fk.nslots, 2, "two slots around the MSI-X page, got %u", fk.nslots);
    cr_assert_eq(fk.slots[0].gpa, gpa);
    cr_assert_eq(fk.slots[0].size, 0x2000);
    cr_assert_eq(fk.slots[0].hva, fk.bar);
    cr_assert_eq(fk.slots[1].gpa, gpa + 0x3000);
    cr_assert_eq(fk.slots[1].size, 0x1000);
    cr_assert_eq(fk.slots[1].hva, fk.bar + 0x3000);
    /* Memory decode off: both slots go; on again: they come back. */
    uint16_t cmd = (uint16_t)pci_cfg_read(bus, DF, PCI_CFG_COMMAND, 2);
    pci_cfg_write(bus, DF, PCI_CFG_COMMAND, 2, cmd & ~PCI_CMD_MEMORY);
    cr_assert_eq(fk.nremoved, 2);
    pci_cfg_write(bus, DF, PCI_CFG_COMMAND, 2, cmd);
    cr_assert_eq(fk.nslots, 4);
}

Test(vfio_pci, command_forwarded_intx_disabled)
{
    pci_cfg_write(bus, DF, PCI_CFG_COMMAND, 2, PCI_CMD_MEMORY | PCI_CMD_MASTER | PCI_CMD_SERR);
    cr_assert_eq(fk.last_cmd, PCI_CMD_MEMORY | PCI_CMD_MASTER | PCI_CMD_INTX_DISABLE, "got 0x%x",
                 fk.last_cmd);
}

Test(vfio_pci, trapped_access_and_msix_table)
{
    uint64_t gpa;
    cr_assert(pci_bar_mapped(bus, DF, 0, &gpa));
    void *h = pci_window_handle(bus, PCI_SPACE_MEM, W32);
    uint32_t v = 0;
    pci_window_read(h, gpa - W32, &v, 4);
    cr_assert_eq(v, 0x77697370);
    cr_assert_eq(fk.bar_reads, 1);
    /* The MSI-X table is emulated: the device never sees it. */
    uint32_t w = 0x12345678;
    pci_window_write(h, gpa - W32 + 0x2008, &w, 4);
    pci_window_read(h, gpa - W32 + 0x2008, &v, 4);
    cr_assert_eq(v, 0x12345678);
    cr_assert_eq(fk.bar_reads, 1);
    cr_assert_eq(fk.bar_writes, 0);
    uint32_t dev;
    memcpy(&dev, fk.bar + 0x2008, 4);
    cr_assert_eq(dev, 0, "the table write reached the device");
}

Test(vfio_pci, failed_transport_reads_all_ones)
{
    uint64_t gpa;
    cr_assert(pci_bar_mapped(bus, DF, 0, &gpa));
    void *h = pci_window_handle(bus, PCI_SPACE_MEM, W32);
    fk.failed = true;
    uint32_t v = 0, w = 5;
    pci_window_write(h, gpa - W32 + 8, &w, 4);
    pci_window_read(h, gpa - W32, &v, 4);
    cr_assert_eq(v, 0xffffffffu);
    cr_assert_eq(fk.bar_writes, 0);
    cr_assert(vfio_pci_failed(pt));
}

Test(vfio_pci, destroy_frees_the_transport)
{
    vfio_pci_destroy(pt);
    pt = NULL;
    cr_assert(fk.destroyed);
}

/* A layout's mmap areas decide what is mapped; one the transport cannot map
 * is refused. */
Test(vfio_pci, layout_mmap_areas)
{
    static const char head[] = "wisp-vpci-layout 1\nid 0x1af4 0x1234\nsubsystem 0 0\nrevision 0\n"
                               "class 0xff0000\nintx 0\nrom absent\n"
                               "cap 0x40 msix 12 emulated vectors=4 table=0:0x2000 pba=0:0x2800\n";
    char text[512];
    struct vpci_layout l;
    struct errbuf err = {0};
    struct vfio_pci *p2 = NULL;
    struct vfio_pci_layout lay = {.layout = &l, .name = "t.layout"};

    memset(&err, 0, sizeof(err));
    snprintf(text, sizeof(text), "%sbar 0 mem32 0x4000 mmap=0x0+0x1000\n", head);
    cr_assert_eq(vpci_layout_parse(text, strlen(text), "t.layout", &l, &err), 0, "%s", err.msg);
    unsigned before = fk.nslots;
    cr_assert_eq(create(&lay, PCI_DEVFN(2, 0), 1, &p2, &err), 0, "%s", err.msg);
    cr_assert_eq(pci_bus_assign(bus, &err), 0, "%s", err.msg);
    cr_expect_eq(fk.nslots, before, "a transport area larger than the layout's is not mapped");
    uint64_t gpa;
    cr_assert(pci_bar_mapped(bus, PCI_DEVFN(2, 0), 0, &gpa));
    void *h = pci_window_handle(bus, PCI_SPACE_MEM, W32);
    uint32_t v = 0;
    unsigned reads = fk.bar_reads;
    pci_window_read(h, gpa - W32, &v, 4);
    cr_expect_eq(v, 0x77697370U, "trapped and forwarded instead");
    cr_expect_eq(fk.bar_reads, reads + 1);
    cr_expect_eq(pci_cfg_read(bus, PCI_DEVFN(2, 0), 0, 4), 0x12341af4U, "the layout's ids");
    vfio_pci_destroy(p2);

    memset(&err, 0, sizeof(err));
    p2 = NULL;
    cr_assert_eq(create(&lay, PCI_DEVFN(2, 0), 0, &p2, &err), -EINVAL);
    cr_expect_null(p2);
    cr_expect_str_eq(err.msg, "vpci layout t.layout: the device cannot honour it: BAR0 mmap area "
                              "0x0+0x1000 is not one the transport can map");
    cr_expect_eq(err.exit_code, WISP_EXIT_USAGE);
}

/* derive over a transport that can mmap: its area minus the MSI-X page. */
Test(vfio_pci, derive_mmap_areas_skip_the_msix_page)
{
    struct vfio_pci_region reg[VFIO_PCI_NREGIONS];
    memset(reg, 0, sizeof(reg));
    reg[0] = (struct vfio_pci_region){.size = BAR_SIZE, .readable = true, .nareas = 1};
    reg[0].areas[0].size = BAR_SIZE;
    reg[VFIO_PCI_CFG_INDEX].size = 256;
    unsigned irqs[3] = {0, 0, 4};
    struct vpci_layout l;
    struct errbuf err = {0};
    cr_assert_eq(vfio_pci_derive(&fops, &fk, reg, irqs, &l, &err), 0, "%s", err.msg);
    cr_assert_eq(l.bars[0].nmmap, 2);
    cr_expect_eq(l.bars[0].mmap[0].off, 0);
    cr_expect_eq(l.bars[0].mmap[0].len, 0x2000);
    cr_expect_eq(l.bars[0].mmap[1].off, 0x3000);
    cr_expect_eq(l.bars[0].mmap[1].len, 0x1000);
    cr_expect_eq(l.vendor, 0x1b36);
    char text[4096];
    int n = vpci_layout_write(&l, text, sizeof(text));
    cr_assert_gt(n, 0);
    cr_expect_eq(vpci_layout_parse(text, (size_t)n, "derived", &l, &err), 0, "%s", err.msg);
}
