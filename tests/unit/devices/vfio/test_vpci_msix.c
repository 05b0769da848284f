/*
 * Unit tests for devices/vfio/vpci_msix: the MSI-X capability, table and
 * PBA and the MSI capability of a passed-through function, driven the way
 * a guest does (config space through a real PCI bus, the table through
 * the bus's BAR window) and with hostile accesses.  Routes go into a real
 * GSI routing table through the fake ops of vpci_fake.h.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "devices/pci/pci.h"
#include "devices/vfio/vpci_cfg.h"
#include "tests/unit/devices/vfio/vpci_fake.h"

#define DF      PCI_DEVFN(4, 0)
#define MSI_ADR 0xfee01000ULL

static const struct pci_windows win = {
    .mmio32_base = 0xc0000000ULL,
    .mmio32_size = 0x10000000ULL,
    .mmio64_base = 0x1000000000ULL,
    .mmio64_size = 0x1000000000ULL,
    .io_base = 0xc000,
    .io_size = 0x1000,
};

static struct pci_bus *b;
static uint8_t phys[PCI_CFG_SIZE];
static struct rec r;
static struct vpci_cfg *v;
static struct vpci_msix *mx;
static unsigned forwarded; /* BAR accesses that went to the "device" */

static uint32_t f_cfg_read(void *o, unsigned off, unsigned len)
{
    return vpci_cfg_read(o, off, len);
}

static void f_cfg_write(void *o, unsigned off, unsigned len, uint32_t val)
{
    vpci_cfg_write(o, off, len, val);
}

/* The passthrough function's BAR path: the emulation first, then the device. */
static void f_bar_read(void *o, unsigned bar, uint64_t off, void *data, unsigned len)
{
    struct vpci_msix *m = vpci_cfg_msix(o);
    if (m && vpci_msix_bar_read(m, bar, off, data, len))
        return;
    forwarded++;
    memset(data, 0x5a, len);
}

static void f_bar_write(void *o, unsigned bar, uint64_t off, const void *data, unsigned len)
{
    struct vpci_msix *m = vpci_cfg_msix(o);
    if (m && vpci_msix_bar_write(m, bar, off, data, len))
        return;
    forwarded++;
}

static const struct pci_func_ops f_ops = {
    .cfg_read = f_cfg_read,
    .cfg_write = f_cfg_write,
    .bar_read = f_bar_read,
    .bar_write = f_bar_write,
};

static void setup(void)
{
    b = pci_bus_new(&win);
    cr_assert(b);
    fake_device(phys);
    rec_init(&r);
    forwarded = 0;
}

static void teardown(void)
{
    vpci_cfg_free(v);
    v = NULL;
    pci_bus_free(b);
    irq_routing_free(r.routing);
}

TestSuite(vpci_msix, .init = setup, .fini = teardown);
TestSuite(vpci_msi, .init = setup, .fini = teardown);

static void plug(const struct vpci_cfg_params *p)
{
    struct errbuf e = {0};
    cr_assert_eq(vpci_cfg_new(p, &v, &e), 0, "%s", e.msg);
    cr_assert_eq(pci_bus_add(b, DF, vpci_cfg_desc(v), &f_ops, v), 0);
    cr_assert_eq(pci_bus_assign(b, &e), 0, "%s", e.msg);
    mx = vpci_cfg_msix(v);
}

static void plug_default(void)
{
    struct vpci_cfg_params p;
    fake_params(&p, phys, &rec_ops, &r);
    plug(&p);
    cr_assert(mx);
}

static uint32_t cfg_rd(unsigned reg, unsigned len)
{
    return pci_cfg_read(b, DF, reg, len);
}

static void cfg_wr(unsigned reg, unsigned len, uint32_t val)
{
    pci_cfg_write(b, DF, reg, len, val);
}

/* Guest MMIO into BAR0 through the bus's 64-bit window. */
static uint64_t bar0(void)
{
    uint64_t gpa = 0;
    cr_assert(pci_bar_mapped(b, DF, 0, &gpa));
    return gpa;
}

static void mmio_wr(uint64_t off, uint64_t val, unsigned len)
{
    void *h = pci_window_handle(b, PCI_SPACE_MEM, win.mmio64_base);
    pci_window_write(h, bar0() + off - win.mmio64_base, &val, len);
}

static uint64_t mmio_rd(uint64_t off, unsigned len)
{
    uint64_t val = 0;
    void *h = pci_window_handle(b, PCI_SPACE_MEM, win.mmio64_base);
    pci_window_read(h, bar0() + off - win.mmio64_base, &val, len);
    return val;
}

/* Program table entry `i` (masked state untouched). */
static void entry(unsigned i, uint64_t addr, uint32_t data)
{
    uint64_t e = F_TABLE + 16ULL * i;
    mmio_wr(e, (uint32_t)addr, 4);
    mmio_wr(e + 4, (uint32_t)(addr >> 32), 4);
    mmio_wr(e + 8, data, 4);
}

static void unmask(unsigned i, bool un)
{
    mmio_wr(F_TABLE + 16ULL * i + 12, un ? 0 : 1, 4);
}

static void msix_ctrl(uint16_t c)
{
    cfg_wr(F_MSIX + 2, 2, c);
}

Test(vpci_msix, capability_registers)
{
    plug_default();
    cr_assert_eq(cfg_rd(F_MSIX, 1), VPCI_CAP_ID_MSIX);
    cr_assert_eq(cfg_rd(F_MSIX + 2, 2), F_NVEC - 1, "table size, disabled, unmasked");
    cr_assert_eq(cfg_rd(F_MSIX + 4, 4), F_TABLE);
    cr_assert_eq(cfg_rd(F_MSIX + 8, 4), F_PBA);
    cfg_wr(F_MSIX + 4, 4, 0x1234U); /* BIR/offset read-only */
    cfg_wr(F_MSIX + 2, 2, 0x07ffU); /* table size read-only */
    cr_assert_eq(cfg_rd(F_MSIX + 4, 4), F_TABLE);
    cr_assert_eq(cfg_rd(F_MSIX + 2, 2), F_NVEC - 1);
    cfg_wr(F_MSIX, 4, 0xc000ffffU); /* dword write at the cap: control changes only */
    cr_assert_eq(cfg_rd(F_MSIX, 4),
                 (uint32_t)(0xc000U | (F_NVEC - 1)) << 16 | F_MSI << 8 | VPCI_CAP_ID_MSIX);
}

Test(vpci_msix, trap_ranges_page_granular)
{
    plug_default();
    struct vpci_trap_range t[2];
    unsigned bars[2];
    cr_assert_eq(vpci_msix_trap(mx, t, bars), 1, "adjacent pages: one range");
    cr_assert_eq(bars[0], 0);
    cr_assert_eq(t[0].off, 0x2000);
    cr_assert_eq(t[0].len, 0x2000);
    vpci_cfg_free(v);
    v = NULL;

    /* pages apart, table and PBA in one page, a BAR smaller than a page,
     * separate BARs */
    struct vpci_cfg_params p;
    struct errbuf e = {0};
    le32_put(phys + F_MSIX + 4, 0x10U | 0);
    fake_params(&p, phys, &rec_ops, &r);
    cr_assert_eq(vpci_cfg_new(&p, &v, &e), 0);
    cr_assert_eq(vpci_msix_trap(vpci_cfg_msix(v), t, bars), 2);
    cr_assert_eq(t[0].off, 0);
    cr_assert_eq(t[0].len, 0x1000);
    cr_assert_eq(t[1].off, 0x3000);
    cr_assert_eq(t[1].len, 0x1000);
    cr_assert_eq(bars[0] + bars[1], 0);
    vpci_cfg_free(v);
    le32_put(phys + F_MSIX + 4, 0x100U | 2);
    le32_put(phys + F_MSIX + 8, 0x800U | 2);
    fake_params(&p, phys, &rec_ops, &r);
    p.bars[2].size = 0x1000;
    cr_assert_eq(vpci_cfg_new(&p, &v, &e), 0);
    cr_assert_eq(vpci_msix_trap(vpci_cfg_msix(v), t, bars), 1);
    cr_assert_eq(bars[0], 2);
    cr_assert_eq(t[0].off, 0);
    cr_assert_eq(t[0].len, 0x1000);
    vpci_cfg_free(v);
    p.bars[2].size = 0x800; /* table 0x100..0x17f, PBA 0x7f8: whole small BAR */
    le32_put(phys + F_MSIX + 8, 0x7f8U | 2);
    cr_assert_eq(vpci_cfg_new(&p, &v, &e), 0);
    cr_assert_eq(vpci_msix_trap(vpci_cfg_msix(v), t, bars), 1);
    cr_assert_eq(t[0].off, 0);
    cr_assert_eq(t[0].len, 0x800);
    vpci_cfg_free(v);
    le32_put(phys + F_MSIX + 8, 0x0U | 0); /* PBA in BAR0, table in BAR2 */
    cr_assert_eq(vpci_cfg_new(&p, &v, &e), 0);
    cr_assert_eq(vpci_msix_trap(vpci_cfg_msix(v), t, bars), 2);
    cr_assert_eq(bars[0], 2);
    cr_assert_eq(bars[1], 0);
    cr_assert_eq(t[1].off, 0);
    cr_assert_eq(t[1].len, 0x1000);
}

Test(vpci_msix, enable_unmask_installs_route)
{
    plug_default();
    entry(0, MSI_ADR, 0x4041);
    entry(3, MSI_ADR + 0x2000, 0x4043);
    cr_assert_eq(mmio_rd(F_TABLE + 12, 4), 1, "masked at reset");
    cr_assert_eq(mmio_rd(F_TABLE + 8, 4), 0x4041);
    unmask(0, true);
    cr_assert_eq(rec_count(&r, REC_INSTALL), 0, "MSI-X still disabled");
    msix_ctrl(VPCI_MSIX_CTRL_ENABLE);
    cr_assert_eq(r.ev[0].op, REC_MODE);
    cr_assert_eq(r.ev[0].vec, F_NVEC, "mode: MSI-X with the table size");
    cr_assert_eq(rec_count(&r, REC_INSTALL), 1);
    uint64_t a;
    uint32_t d;
    cr_assert(rec_route(&r, VPCI_IRQ_MSIX, 0, &a, &d));
    cr_assert_eq(a, MSI_ADR);
    cr_assert_eq(d, 0x4041);
    unmask(3, true);
    cr_assert(rec_route(&r, VPCI_IRQ_MSIX, 3, &a, &d));
    cr_assert_eq(a, MSI_ADR + 0x2000);
    cr_assert_eq(d, 0x4043);
    /* a data change on an unmasked vector replaces its route */
    mmio_wr(F_TABLE + 8, 0x4051, 4);
    cr_assert(rec_route(&r, VPCI_IRQ_MSIX, 0, &a, &d));
    cr_assert_eq(d, 0x4051);
    /* mask -> removed */
    unmask(3, false);
    cr_assert(!vpci_msix_installed(mx, 3));
    cr_assert(!rec_route(&r, VPCI_IRQ_MSIX, 3, &a, &d));
    /* function mask removes all, clearing it brings them back */
    msix_ctrl(VPCI_MSIX_CTRL_ENABLE | VPCI_MSIX_CTRL_FMASK);
    cr_assert(!vpci_msix_installed(mx, 0));
    msix_ctrl(VPCI_MSIX_CTRL_ENABLE);
    cr_assert(vpci_msix_installed(mx, 0));
    /* disable: routes go, then the mode */
    msix_ctrl(0);
    cr_assert(!vpci_msix_installed(mx, 0));
    cr_assert_eq(r.ev[r.n - 1].op, REC_MODE);
    cr_assert_eq(r.ev[r.n - 1].vec, 0);
    cr_assert_eq(irq_routing_count(r.routing), 0);
}

Test(vpci_msix, qword_table_access)
{
    plug_default();
    mmio_wr(F_TABLE + 16, MSI_ADR | 0x12345678ULL << 32, 8);
    mmio_wr(F_TABLE + 24, 0x4099ULL, 8); /* data and unmask */
    cr_assert_eq(mmio_rd(F_TABLE + 16, 8), MSI_ADR | 0x12345678ULL << 32);
    cr_assert_eq(mmio_rd(F_TABLE + 24, 8), 0x4099ULL);
    msix_ctrl(VPCI_MSIX_CTRL_ENABLE);
    cr_assert(!vpci_msix_installed(mx, 1), "address above 4 GiB: outside the MSI window");
    mmio_wr(F_TABLE + 16, MSI_ADR, 8);
    cr_assert(vpci_msix_installed(mx, 1));
}

Test(vpci_msix, invalid_address_not_routed)
{
    plug_default();
    msix_ctrl(VPCI_MSIX_CTRL_ENABLE);
    entry(2, 0, 0x10); /* zero address */
    unmask(2, true);
    cr_assert(!vpci_msix_installed(mx, 2));
    entry(2, 0xc0000000ULL, 0x10); /* aims at MMIO, not the interrupt window */
    cr_assert(!vpci_msix_installed(mx, 2));
    entry(2, MSI_ADR + 2, 0x10); /* not dword-aligned */
    cr_assert(!vpci_msix_installed(mx, 2));
    entry(2, MSI_ADR, 0x10);
    cr_assert(vpci_msix_installed(mx, 2));
    cr_assert_eq(rec_count(&r, REC_INSTALL), 1);
}

Test(vpci_msix, install_failure_latches_instead)
{
    plug_default();
    r.fail_install = -ENOSPC;
    msix_ctrl(VPCI_MSIX_CTRL_ENABLE);
    entry(0, MSI_ADR, 0x41);
    unmask(0, true);
    cr_assert(!vpci_msix_installed(mx, 0));
    cr_assert(vpci_cfg_signal(v, VPCI_IRQ_MSIX, 0));
    cr_assert_eq(mmio_rd(F_PBA, 8), 1);
}

Test(vpci_msix, pending_latch_and_fire_on_unmask)
{
    plug_default();
    msix_ctrl(VPCI_MSIX_CTRL_ENABLE);
    entry(5, MSI_ADR, 0x45);
    cr_assert(vpci_cfg_signal(v, VPCI_IRQ_MSIX, 5), "masked: latched");
    cr_assert(vpci_msix_pending(mx, 5));
    cr_assert_eq(mmio_rd(F_PBA, 4), 1U << 5);
    cr_assert_eq(mmio_rd(F_PBA, 8), 1ULL << 5);
    mmio_wr(F_PBA, 0, 8); /* the PBA is read-only */
    cr_assert_eq(mmio_rd(F_PBA, 4), 1U << 5);
    unmask(5, true);
    cr_assert(vpci_msix_installed(mx, 5));
    cr_assert(!vpci_msix_pending(mx, 5));
    cr_assert_eq(r.ev[r.n - 1].op, REC_FIRE);
    cr_assert_eq(r.ev[r.n - 1].vec, 5);
    cr_assert_eq(mmio_rd(F_PBA, 4), 0);
    cr_assert(!vpci_cfg_signal(v, VPCI_IRQ_MSIX, 5), "installed: goes to the guest directly");
    cr_assert(!vpci_cfg_signal(v, VPCI_IRQ_MSIX, F_NVEC), "no such vector");
    cr_assert(!vpci_cfg_signal(v, VPCI_IRQ_MSIX, 0xffffffffU));
}

Test(vpci_msix, hostile_bar_accesses)
{
    plug_default();
    entry(0, MSI_ADR, 0x41);
    uint64_t tend = F_TABLE + 16ULL * F_NVEC;
    /* straddling the table's start and end: all-ones, writes dropped */
    cr_assert_eq(mmio_rd(F_TABLE - 2, 4), 0xffffffffU);
    cr_assert_eq(mmio_rd(tend - 4, 8), 0xffffffffffffffffULL);
    mmio_wr(F_TABLE - 4, 0xdeadbeefULL << 32, 8); /* upper half would hit entry 0 */
    cr_assert_eq(mmio_rd(F_TABLE, 4), (uint32_t)MSI_ADR);
    /* unaligned and small: all-ones, dropped */
    cr_assert_eq(mmio_rd(F_TABLE + 2, 4), 0xffffffffU);
    cr_assert_eq(mmio_rd(F_TABLE + 4, 8), 0xffffffffffffffffULL);
    cr_assert_eq(mmio_rd(F_TABLE + 12, 1), 0xff);
    cr_assert_eq(mmio_rd(F_TABLE + 12, 2), 0xffff);
    mmio_wr(F_TABLE + 12, 0, 1);
    mmio_wr(F_TABLE + 12, 0, 2);
    mmio_wr(F_TABLE + 14, 0, 2);
    cr_assert_eq(mmio_rd(F_TABLE + 12, 4), 1, "still masked");
    /* odd lengths straight at the emulation */
    uint8_t buf[16];
    cr_assert(vpci_msix_bar_read(mx, 0, F_TABLE, buf, 3));
    cr_assert_eq(buf[0] & buf[1] & buf[2], 0xff);
    cr_assert(vpci_msix_bar_read(mx, 0, F_TABLE, buf, 16));
    memset(buf, 0, sizeof(buf));
    cr_assert(vpci_msix_bar_write(mx, 0, F_TABLE, buf, 16));
    cr_assert(!vpci_msix_bar_read(mx, 0, F_TABLE, buf, 0), "empty access touches nothing");
    cr_assert(vpci_msix_bar_read(mx, 0, UINT64_MAX - 1, buf, 4), "wrapping: not forwarded");
    cr_assert_eq(buf[0] & buf[1] & buf[2] & buf[3], 0xff);
    cr_assert(!vpci_msix_bar_read(mx, 2, F_TABLE, buf, 4), "another BAR");
    cr_assert_eq(mmio_rd(F_TABLE, 4), (uint32_t)MSI_ADR);
    cr_assert_eq(forwarded, 0);
    /* outside the table and PBA: the device's */
    cr_assert_eq(mmio_rd(0x100, 4), 0x5a5a5a5aU);
    cr_assert_eq(mmio_rd(tend, 4), 0x5a5a5a5aU, "right after the table, same page");
    mmio_wr(0x100, 1, 4);
    cr_assert_eq(forwarded, 3);
}

Test(vpci_msix, fewer_vectors_than_the_table)
{
    struct vpci_cfg_params p;
    fake_params(&p, phys, &rec_ops, &r);
    p.msix_vectors = 2; /* the transport offers 2 of the table's 8 */
    plug(&p);
    cr_assert_eq(cfg_rd(F_MSIX + 2, 2), 1, "table size 2");
    entry(4, MSI_ADR, 0x44); /* beyond: reads 0, writes dropped */
    cr_assert_eq(mmio_rd(F_TABLE + 16 * 4, 4), 0);
    cr_assert_eq(mmio_rd(F_TABLE + 16 * 4 + 12, 4), 0);
    cr_assert_eq(forwarded, 0, "the physical table is still never reached");
    msix_ctrl(VPCI_MSIX_CTRL_ENABLE);
    cr_assert_eq(r.ev[0].vec, 2);
}

/* ---- MSI ---- */

static void msi_wr_addr(uint64_t a, uint16_t data)
{
    cfg_wr(F_MSI + 4, 4, (uint32_t)a);
    cfg_wr(F_MSI + 8, 4, (uint32_t)(a >> 32));
    cfg_wr(F_MSI + 12, 2, data);
}

Test(vpci_msi, multiple_message_capped)
{
    struct vpci_cfg_params p;
    fake_params(&p, phys, &rec_ops, &r);
    p.msi_vectors = 6; /* device offers 32, transport 6: guest sees 4 */
    plug(&p);
    uint16_t c = (uint16_t)cfg_rd(F_MSI + 2, 2);
    cr_assert_eq((c & VPCI_MSI_CTRL_MMC) >> 1, 2);
    cr_assert(c & VPCI_MSI_CTRL_64BIT);
    cr_assert(c & VPCI_MSI_CTRL_MASKBIT);
    msi_wr_addr(MSI_ADR, 0x4060);
    cfg_wr(F_MSI + 2, 2, VPCI_MSI_CTRL_ENABLE | 5U << 4 | 0); /* MME 32: capped */
    c = (uint16_t)cfg_rd(F_MSI + 2, 2);
    cr_assert_eq((c & VPCI_MSI_CTRL_MME) >> 4, 2);
    cr_assert_eq(r.ev[0].op, REC_MODE);
    cr_assert_eq(r.ev[0].vec, 4);
    cr_assert_eq(rec_count(&r, REC_INSTALL), 4);
    for (unsigned i = 0; i < 4; i++) {
        uint64_t a;
        uint32_t d;
        cr_assert(rec_route(&r, VPCI_IRQ_MSI, i, &a, &d));
        cr_assert_eq(a, MSI_ADR);
        cr_assert_eq(d, 0x4060U | i, "vector %u", i);
    }
    cr_assert(!vpci_msi_installed(vpci_cfg_msi(v), 4));
    /* read-only bits: MMC, 64-bit, per-vector masking */
    cfg_wr(F_MSI + 2, 2, VPCI_MSI_CTRL_ENABLE | 2U << 4);
    cr_assert_eq(cfg_rd(F_MSI + 2, 2), c);
    cfg_wr(F_MSI + 2, 2, 0);
    cr_assert_eq(irq_routing_count(r.routing), 0);
    cr_assert_eq(r.ev[r.n - 1].op, REC_MODE);
    cr_assert_eq(r.ev[r.n - 1].vec, 0);
}

Test(vpci_msi, per_vector_mask_and_pending)
{
    plug_default();
    struct vpci_msi *m = vpci_cfg_msi(v);
    msi_wr_addr(MSI_ADR, 0x4060);
    cfg_wr(F_MSI + 16, 4, 0x2); /* mask vector 1 */
    cfg_wr(F_MSI + 2, 2, VPCI_MSI_CTRL_ENABLE | 1U << 4);
    cr_assert(vpci_msi_installed(m, 0));
    cr_assert(!vpci_msi_installed(m, 1));
    cr_assert(vpci_cfg_signal(v, VPCI_IRQ_MSI, 1));
    cr_assert_eq(cfg_rd(F_MSI + 20, 4), 0x2, "pending register");
    cfg_wr(F_MSI + 20, 4, 0); /* read-only */
    cr_assert_eq(cfg_rd(F_MSI + 20, 4), 0x2);
    cfg_wr(F_MSI + 16, 4, 0);
    cr_assert(vpci_msi_installed(m, 1));
    cr_assert_eq(cfg_rd(F_MSI + 20, 4), 0);
    cr_assert_eq(r.ev[r.n - 1].op, REC_FIRE);
    cr_assert(!vpci_cfg_signal(v, VPCI_IRQ_MSI, 32));
    cr_assert(!vpci_cfg_signal(v, VPCI_IRQ_MSI, 0xffffffffU));
}

Test(vpci_msi, msi_32bit_without_masking)
{
    fake_header(phys);
    phys[0x34] = 0x50;
    fake_cap(phys, 0x50, VPCI_CAP_ID_MSI, 0);
    le16_put(phys + 0x52, 0); /* 32-bit, one vector, no mask */
    struct vpci_cfg_params p;
    fake_params(&p, phys, &rec_ops, &r);
    plug(&p);
    cfg_wr(0x54, 4, (uint32_t)MSI_ADR | 3U); /* low bits read 0 */
    cfg_wr(0x58, 2, 0x4070);
    cr_assert_eq(cfg_rd(0x54, 4), (uint32_t)MSI_ADR);
    cr_assert_eq(cfg_rd(0x58, 2), 0x4070);
    cr_assert_eq(cfg_rd(0x5c, 4), 0, "past the 10-byte cap");
    cfg_wr(0x52, 2, VPCI_MSI_CTRL_ENABLE | 5U << 4);
    cr_assert_eq(cfg_rd(0x52, 2), VPCI_MSI_CTRL_ENABLE, "MME capped at 0");
    uint64_t a;
    uint32_t d;
    cr_assert(rec_route(&r, VPCI_IRQ_MSI, 0, &a, &d));
    cr_assert_eq(a, MSI_ADR);
    cr_assert_eq(d, 0x4070);
    /* unmasked data change while enabled: the route follows */
    cfg_wr(0x58, 2, 0x4071);
    cr_assert(rec_route(&r, VPCI_IRQ_MSI, 0, &a, &d));
    cr_assert_eq(d, 0x4071);
    /* byte writes anywhere in the cap do not crash or leak */
    for (unsigned o = 0x50; o < 0x60; o++)
        cfg_wr(o, 1, 0xff);
    cr_assert_eq(cfg_rd(0x50, 2), VPCI_CAP_ID_MSI, "id and next pointer intact");
}

Test(vpci_msi, never_together_with_msix)
{
    plug_default();
    msix_ctrl(VPCI_MSIX_CTRL_ENABLE);
    cfg_wr(F_MSI + 2, 2, VPCI_MSI_CTRL_ENABLE);
    cr_assert_eq(cfg_rd(F_MSI + 2, 2) & VPCI_MSI_CTRL_ENABLE, 0, "MSI-X was first");
    cfg_wr(F_MSI, 4, (uint32_t)VPCI_MSI_CTRL_ENABLE << 16); /* through a dword write too */
    cr_assert(!vpci_msi_enabled(vpci_cfg_msi(v)));
    msix_ctrl(0);
    cfg_wr(F_MSI + 2, 2, VPCI_MSI_CTRL_ENABLE);
    cr_assert(vpci_msi_enabled(vpci_cfg_msi(v)));
    msix_ctrl(VPCI_MSIX_CTRL_ENABLE | VPCI_MSIX_CTRL_FMASK);
    cr_assert_eq(cfg_rd(F_MSIX + 2, 2), VPCI_MSIX_CTRL_FMASK | (F_NVEC - 1),
                 "MSI was first; the function mask still takes");
    cfg_wr(F_MSIX, 4, 0x80000000U);
    cr_assert(!vpci_msix_enabled(mx));
    /* mode calls: MSI-X on, MSI-X off, MSI on; nothing else */
    unsigned modes = 0;
    for (unsigned i = 0; i < r.n; i++) {
        if (r.ev[i].op != REC_MODE)
            continue;
        const struct rec_ev want[] = {
            {REC_MODE, VPCI_IRQ_MSIX, F_NVEC, 0, 0},
            {REC_MODE, VPCI_IRQ_MSIX, 0, 0, 0},
            {REC_MODE, VPCI_IRQ_MSI, 1, 0, 0},
        };
        cr_assert_lt(modes, 3);
        cr_assert_eq(r.ev[i].kind, want[modes].kind, "mode call %u", modes);
        cr_assert_eq(r.ev[i].vec, want[modes].vec, "mode call %u", modes);
        modes++;
    }
    cr_assert_eq(modes, 3);
}
