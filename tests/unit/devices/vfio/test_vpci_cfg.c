/*
 * Unit tests for devices/vfio/vpci_cfg: a passed-through function's config
 * space built from a fake (hostile where it matters) physical snapshot,
 * checked through a real PCI bus (conf1 and ECAM): the header and BARs
 * from region info, the allow-listed capability chain, hidden bytes, the
 * capability walk's bounds, read-only and virtualised fields.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "devices/pci/pci.h"
#include "devices/vfio/vpci_cfg.h"
#include "tests/unit/devices/vfio/vpci_fake.h"

static const struct pci_windows win = {
    .mmio32_base = 0xc0000000ULL,
    .mmio32_size = 0x10000000ULL,
    .mmio64_base = 0x1000000000ULL,
    .mmio64_size = 0x1000000000ULL,
    .io_base = 0xc000,
    .io_size = 0x1000,
};

#define DF PCI_DEVFN(3, 0)

static struct pci_bus *b;
static uint8_t phys[PCI_CFG_SIZE];
static struct rec r;
static struct vpci_cfg *v;

static uint32_t f_cfg_read(void *o, unsigned off, unsigned len)
{
    return vpci_cfg_read(o, off, len);
}

static void f_cfg_write(void *o, unsigned off, unsigned len, uint32_t val)
{
    vpci_cfg_write(o, off, len, val);
}

/* The passthrough function's table, as it would look (minus the device). */
static const struct pci_func_ops f_ops = {.cfg_read = f_cfg_read, .cfg_write = f_cfg_write};

static void setup(void)
{
    b = pci_bus_new(&win);
    cr_assert(b);
    cr_assert_eq(pci_bus_add_host_bridge(b), 0);
    fake_device(phys);
    rec_init(&r);
}

static void teardown(void)
{
    vpci_cfg_free(v);
    v = NULL;
    pci_bus_free(b);
    irq_routing_free(r.routing);
}

TestSuite(vpci_cfg, .init = setup, .fini = teardown);

/* Build from `phys` with the default params (maybe edited) and plug in. */
static void plug(const struct vpci_cfg_params *p)
{
    struct errbuf e = {0};
    cr_assert_eq(vpci_cfg_new(p, &v, &e), 0, "%s", e.msg);
    cr_assert_eq(pci_bus_add(b, DF, vpci_cfg_desc(v), &f_ops, v), 0);
}

static void plug_default(void)
{
    struct vpci_cfg_params p;
    fake_params(&p, phys, &rec_ops, &r);
    plug(&p);
}

static uint32_t conf1_rd(unsigned reg, unsigned len)
{
    uint32_t a = PCI_CONF1_ENABLE | DF << 8 | (reg & 0xfcU), val = 0;
    pci_conf1_write(b, 0, &a, 4);
    pci_conf1_read(b, 4 + (reg & 3U), &val, len);
    return val;
}

static void conf1_wr(unsigned reg, unsigned len, uint32_t val)
{
    uint32_t a = PCI_CONF1_ENABLE | DF << 8 | (reg & 0xfcU);
    pci_conf1_write(b, 0, &a, 4);
    pci_conf1_write(b, 4 + (reg & 3U), &val, len);
}

static uint32_t ecam_rd(unsigned reg, unsigned len)
{
    uint32_t val = 0;
    pci_ecam_read(b, (uint64_t)DF << 12 | reg, &val, len);
    return val;
}

static void ecam_wr(unsigned reg, unsigned len, uint32_t val)
{
    pci_ecam_write(b, (uint64_t)DF << 12 | reg, &val, len);
}

/* Walk the guest's chain through conf1 like Linux does; ids into `ids`. */
static unsigned guest_chain(uint8_t ids[64], uint8_t offs[64])
{
    unsigned n = 0;
    if (!(conf1_rd(0x06, 2) & PCI_STATUS_CAP_LIST))
        return 0;
    for (unsigned p = conf1_rd(0x34, 1); p && n < 64; p = conf1_rd(p + 1, 1)) {
        offs[n] = (uint8_t)p;
        ids[n++] = (uint8_t)conf1_rd(p, 1);
    }
    return n;
}

Test(vpci_cfg, header_from_snapshot)
{
    plug_default();
    cr_assert_eq(conf1_rd(0x00, 4), 0x10fb8086U);
    cr_assert_eq(conf1_rd(0x08, 4), 0x02000005U, "class and revision");
    cr_assert_eq(conf1_rd(0x2c, 4), 0x1f721028U, "subsystem");
    cr_assert_eq(conf1_rd(0x0e, 1), 0, "multi-function bit cleared, type 0");
    cr_assert_eq(conf1_rd(0x3d, 1), 1, "INTA#");
    cr_assert_eq(conf1_rd(0x34, 1), F_PCIE);
    cr_assert_eq(conf1_rd(0x06, 2), PCI_STATUS_CAP_LIST, "status: the cap list bit only");
    /* ids are read-only */
    conf1_wr(0x00, 4, 0);
    cr_assert_eq(ecam_rd(0x00, 4), 0x10fb8086U);
}

Test(vpci_cfg, no_intx_no_pin)
{
    struct vpci_cfg_params p;
    fake_params(&p, phys, &rec_ops, &r);
    p.intx = false;
    plug(&p);
    cr_assert_eq(conf1_rd(0x3d, 1), 0);
    phys[0x3d] = 9; /* a nonsense pin with INTx: also 0 */
    p.intx = true;
    struct vpci_cfg *v2;
    struct errbuf e = {0};
    cr_assert_eq(vpci_cfg_new(&p, &v2, &e), 0);
    cr_assert_eq(vpci_cfg_desc(v2)->irq_pin, 0);
    vpci_cfg_free(v2);
}

Test(vpci_cfg, allow_listed_chain_in_device_order)
{
    plug_default();
    uint8_t ids[64], offs[64];
    unsigned n = guest_chain(ids, offs);
    cr_assert_eq(n, 4);
    const uint8_t want_ids[] = {VPCI_CAP_ID_EXP, VPCI_CAP_ID_PM, VPCI_CAP_ID_MSIX, VPCI_CAP_ID_MSI};
    const uint8_t want_offs[] = {F_PCIE, F_PM, F_MSIX, F_MSI};
    for (unsigned i = 0; i < n; i++) {
        cr_assert_eq(ids[i], want_ids[i], "cap %u", i);
        cr_assert_eq(offs[i], want_offs[i], "cap %u", i);
    }
    cr_assert_eq(vpci_cfg_cap_offset(v, VPCI_CAP_ID_VNDR), 0);
}

Test(vpci_cfg, hidden_caps_read_zero_and_ignore_writes)
{
    plug_default();
    for (unsigned o = F_VNDR; o < F_VNDR + 0x10; o += 4)
        cr_assert_eq(conf1_rd(o, 4), 0, "vendor cap at 0x%x", o);
    cr_assert_eq(conf1_rd(F_AF, 4), 0);
    conf1_wr(F_VNDR, 4, 0x12345678U);
    conf1_wr(0xf0, 4, 0x12345678U); /* unused space */
    cr_assert_eq(conf1_rd(F_VNDR, 4), 0);
    cr_assert_eq(conf1_rd(0xf0, 4), 0);
    /* every byte outside the kept caps reads 0 */
    for (unsigned o = 0x40; o < 0x100; o++) {
        bool kept = (o >= F_PCIE && o < F_PCIE + 0x3c) || (o >= F_PM && o < F_PM + 8) ||
                    (o >= F_MSIX && o < F_MSIX + 12) || (o >= F_MSI && o < F_MSI + 24);
        if (!kept)
            cr_assert_eq(conf1_rd(o, 1), 0, "byte 0x%x", o);
    }
}

Test(vpci_cfg, extended_space_hidden)
{
    plug_default();
    for (unsigned o = 0x100; o < PCI_CFG_SIZE; o += 4)
        cr_assert_eq(ecam_rd(o, 4), 0, "ext 0x%x", o);
    ecam_wr(0x100, 4, 0xffffffffU);
    cr_assert_eq(ecam_rd(0x100, 4), 0);
    cr_assert_eq(vpci_cfg_read(v, 0xffc, 4), 0);
}

Test(vpci_cfg, bar_sizing_from_region_info)
{
    plug_default();
    conf1_wr(0x10, 4, 0xffffffffU);
    conf1_wr(0x14, 4, 0xffffffffU);
    cr_assert_eq(conf1_rd(0x10, 4), 0xffffc000U | PCI_BAR_MEM64_FLAG | PCI_BAR_PREFETCH_FLAG,
                 "16 KiB 64-bit prefetchable, not the snapshot's register");
    cr_assert_eq(conf1_rd(0x14, 4), 0xffffffffU);
    conf1_wr(0x18, 4, 0xffffffffU);
    cr_assert_eq(conf1_rd(0x18, 4), 0xfffff000U);
    conf1_wr(0x20, 4, 0xffffffffU);
    cr_assert_eq(conf1_rd(0x20, 4), 0xffffffe0U | PCI_BAR_IO_FLAG);
    conf1_wr(0x1c, 4, 0xffffffffU);
    cr_assert_eq(conf1_rd(0x1c, 4), 0, "BAR3: absent");
    /* the bus places and maps them */
    struct errbuf e = {0};
    cr_assert_eq(pci_bus_assign(b, &e), 0, "%s", e.msg);
    uint64_t gpa;
    cr_assert(pci_bar_mapped(b, DF, 0, &gpa));
    cr_assert_geq(gpa, win.mmio64_base, "64-bit BAR in the 64-bit window");
    cr_assert(pci_bar_mapped(b, DF, 2, &gpa));
    cr_assert(pci_bar_mapped(b, DF, 4, &gpa));
}

Test(vpci_cfg, bad_params_refused)
{
    struct vpci_cfg_params p;
    struct errbuf e = {0};
    fake_params(&p, phys, &rec_ops, &r);
    p.cfg_len = 100;
    cr_assert_eq(vpci_cfg_new(&p, &v, &e), -EINVAL);
    cr_assert_null(v);
    fake_params(&p, phys, &rec_ops, &r);
    p.bars[2].size = 0x1800; /* not a power of two */
    cr_assert_eq(vpci_cfg_new(&p, &v, &e), -EINVAL);
    fake_params(&p, phys, &rec_ops, &r);
    p.bars[1] =
        (struct pci_bar_desc){.size = 0x1000, .type = PCI_BAR_MEM32}; /* MEM64's upper half */
    cr_assert_eq(vpci_cfg_new(&p, &v, &e), -EINVAL);
    fake_params(&p, phys, &rec_ops, &r);
    p.bars[5] = (struct pci_bar_desc){.size = 0x1000, .type = PCI_BAR_MEM64};
    cr_assert_eq(vpci_cfg_new(&p, &v, &e), -EINVAL);
    fake_params(&p, phys, &rec_ops, &r);
    p.bars[4] = (struct pci_bar_desc){.size = 0x20, .type = PCI_BAR_IO, .prefetchable = true};
    cr_assert_eq(vpci_cfg_new(&p, &v, &e), -EINVAL);
    fake_params(&p, phys, &rec_ops, &r);
    p.bars[3] = (struct pci_bar_desc){.size = 0x1000, .type = 7};
    cr_assert_eq(vpci_cfg_new(&p, &v, &e), -EINVAL);
    fake_params(&p, phys, &rec_ops, &r);
    phys[0x0e] = 0x81; /* a bridge */
    cr_assert_eq(vpci_cfg_new(&p, &v, &e), -ENOTSUP);
    cr_assert_null(v);
}

/* Build from a snapshot with a hostile cap list; the ids the guest sees. */
static unsigned hostile(uint8_t ids[64], uint8_t offs[64])
{
    struct vpci_cfg_params p;
    fake_params(&p, phys, &rec_ops, &r);
    p.cfg_len = VPCI_CFG_LEGACY;
    plug(&p);
    return guest_chain(ids, offs);
}

Test(vpci_cfg, cap_loop_truncated, .timeout = 10)
{
    fake_header(phys);
    phys[0x34] = 0x40;
    fake_cap(phys, 0x40, VPCI_CAP_ID_PM, 0x48);
    fake_cap(phys, 0x48, VPCI_CAP_ID_EXP, 0x40); /* back to the first */
    uint8_t ids[64], offs[64];
    cr_assert_eq(hostile(ids, offs), 2);
    cr_assert_eq(ids[0], VPCI_CAP_ID_PM);
    cr_assert_eq(ids[1], VPCI_CAP_ID_EXP);
    cr_assert_eq(conf1_rd(0x49, 1), 0, "the loop is cut: last next pointer 0");
}

Test(vpci_cfg, self_loop_and_full_ring_truncated, .timeout = 10)
{
    /* 48 hidden caps in every dword 0x40..0xfc, the last pointing back to
     * 0x40, and a PM cap at 0xfc: the walk ends after 48 without hanging. */
    fake_header(phys);
    phys[0x34] = 0x40;
    for (unsigned o = 0x40; o < 0xfc; o += 4)
        fake_cap(phys, o, VPCI_CAP_ID_VNDR, o + 4);
    fake_cap(phys, 0xfc, VPCI_CAP_ID_MSIX, 0x40); /* MSI-X with a table outside BAR0: hidden */
    uint8_t ids[64], offs[64];
    cr_assert_eq(hostile(ids, offs), 0);
    cr_assert_eq(conf1_rd(0x06, 2) & PCI_STATUS_CAP_LIST, 0, "no caps: status bit clear");
    cr_assert_eq(conf1_rd(0x34, 1), 0);
}

Test(vpci_cfg, pointer_below_0x40_unaligned_or_past_end)
{
    uint8_t ids[64], offs[64];
    fake_header(phys);
    phys[0x34] = 0x20; /* into the header */
    cr_assert_eq(hostile(ids, offs), 0);
    vpci_cfg_free(v);
    v = NULL;
    pci_bus_free(b);
    b = pci_bus_new(&win);

    fake_header(phys);
    phys[0x34] = 0x40;
    fake_cap(phys, 0x40, VPCI_CAP_ID_PM, 0x4a); /* unaligned: cut after PM */
    fake_cap(phys, 0x48, VPCI_CAP_ID_EXP, 0);
    cr_assert_eq(hostile(ids, offs), 1);
    cr_assert_eq(ids[0], VPCI_CAP_ID_PM);
    cr_assert_eq(conf1_rd(0x41, 1), 0);
    vpci_cfg_free(v);
    v = NULL;
    pci_bus_free(b);
    b = pci_bus_new(&win);

    fake_header(phys);
    phys[0x34] = 0x40;
    fake_cap(phys, 0x40, VPCI_CAP_ID_PM, 0xf0); /* a PCIe v2 cap at 0xf0 would run past 0xff */
    fake_cap(phys, 0xf0, VPCI_CAP_ID_EXP, 0xfc);
    phys[0xf2] = 2;
    fake_cap(phys, 0xfc, VPCI_CAP_ID_PM, 0); /* a second PM: duplicate, dropped */
    cr_assert_eq(hostile(ids, offs), 1);
    cr_assert_eq(ids[0], VPCI_CAP_ID_PM);
    cr_assert_eq(conf1_rd(0xf0, 4), 0);
}

Test(vpci_cfg, status_without_cap_list_means_no_caps)
{
    le16_put(phys + 0x06, 0);
    plug_default();
    cr_assert_eq(conf1_rd(0x34, 1), 0);
    cr_assert_null(vpci_cfg_msix(v));
    cr_assert_null(vpci_cfg_msi(v));
}

Test(vpci_cfg, overlapping_caps_dropped)
{
    /* MSI (64-bit, maskable: 24 bytes at 0x48..0x5f) and a PCIe cap
     * claiming 0x50: the later one in the chain goes. */
    fake_header(phys);
    phys[0x34] = 0x48;
    fake_cap(phys, 0x48, VPCI_CAP_ID_MSI, 0x50);
    le16_put(phys + 0x4a, VPCI_MSI_CTRL_64BIT | VPCI_MSI_CTRL_MASKBIT);
    fake_cap(phys, 0x50, VPCI_CAP_ID_EXP, 0);
    uint8_t ids[64], offs[64];
    cr_assert_eq(hostile(ids, offs), 1);
    cr_assert_eq(ids[0], VPCI_CAP_ID_MSI);
    cr_assert_eq(conf1_rd(0x49, 1), 0);
}

Test(vpci_cfg, pcie_fields_virtualised)
{
    plug_default();
    unsigned e = F_PCIE;
    cr_assert_eq(conf1_rd(e + 4, 4), 0x00008fc2U, "DevCap without FLR");
    cr_assert_eq(conf1_rd(e + 0x0c, 4), 0x00427c43U, "LnkCap passed read-only");
    conf1_wr(e + 0x0c, 4, 0);
    cr_assert_eq(conf1_rd(e + 0x0c, 4), 0x00427c43U);
    conf1_wr(e + 8, 2, 0x8000U | 0x5020U); /* Initiate FLR + MRRS/MPS */
    cr_assert_eq(conf1_rd(e + 8, 2), 0x5020U, "DevCtl scratch, FLR dropped");
    conf1_wr(e + 0x10, 2, 0x0030U | 0x0003U); /* Retrain, Link Disable, ASPM */
    cr_assert_eq(conf1_rd(e + 0x10, 2), 0x0003U);
    conf1_wr(e + 0x0a, 2, 0xffffU); /* DevSta: no W1C effects, read-only */
    cr_assert_eq(conf1_rd(e + 0x0a, 2), 0);
    conf1_wr(e, 4, 0xffffffffU); /* id, next and flags read-only */
    cr_assert_eq(conf1_rd(e, 1), VPCI_CAP_ID_EXP);
    cr_assert_eq(conf1_rd(e + 1, 1), F_PM);
    cr_assert_eq(conf1_rd(e + 2, 2), 0x0002U);
}

Test(vpci_cfg, pm_state_read_only)
{
    plug_default();
    cr_assert_eq(conf1_rd(F_PM + 2, 2), 0x0003U, "PMC without PME support");
    cr_assert_eq(conf1_rd(F_PM + 4, 2), 0, "always D0, no PME");
    conf1_wr(F_PM + 4, 2, 0x0103U); /* to D3hot with PME_En */
    cr_assert_eq(conf1_rd(F_PM + 4, 2), 0);
}

Test(vpci_cfg, odd_accesses_defined)
{
    plug_default();
    cr_assert_eq(vpci_cfg_read(v, F_PCIE + 1, 2), 0, "misaligned");
    cr_assert_eq(vpci_cfg_read(v, F_PCIE, 3), 0, "bad size");
    cr_assert_eq(vpci_cfg_read(v, 0x10, 4), 0, "header: not ours");
    cr_assert_eq(vpci_cfg_read(v, PCI_CFG_SIZE, 4), 0);
    cr_assert_eq(vpci_cfg_read(v, 0xfffffffcU, 4), 0);
    vpci_cfg_write(v, F_PCIE + 9, 2, 0xffff);
    vpci_cfg_write(v, 0xfffffffcU, 4, 0xffff);
    cr_assert_eq(vpci_cfg_read(v, F_PCIE + 8, 2), 0x2810U, "DevCtl untouched");
    /* byte and word reads of a kept cap agree with the dword */
    uint32_t d = vpci_cfg_read(v, F_PCIE + 4, 4);
    cr_assert_eq(vpci_cfg_read(v, F_PCIE + 6, 2), d >> 16);
    cr_assert_eq(vpci_cfg_read(v, F_PCIE + 5, 1), (d >> 8) & 0xffU);
}

Test(vpci_cfg, msi_and_msix_hidden_without_vectors)
{
    struct vpci_cfg_params p;
    fake_params(&p, phys, &rec_ops, &r);
    p.msi_vectors = 0;
    p.msix_vectors = 0;
    plug(&p);
    uint8_t ids[64], offs[64];
    cr_assert_eq(guest_chain(ids, offs), 2);
    cr_assert_eq(ids[0], VPCI_CAP_ID_EXP);
    cr_assert_eq(ids[1], VPCI_CAP_ID_PM);
    cr_assert_eq(conf1_rd(F_MSIX, 4), 0);
    cr_assert_eq(conf1_rd(F_MSI + 4, 4), 0);
}

Test(vpci_cfg, msix_with_bad_table_hidden)
{
    struct vpci_cfg_params p;
    struct errbuf e = {0};
    const uint32_t bad[][2] = {
        {0x4000U | 0, F_PBA},      /* table past BAR0's end */
        {0x3ff0U | 0, F_PBA},      /* table runs past the end */
        {F_TABLE | 4, F_PBA},      /* BIR 4: an I/O BAR */
        {F_TABLE | 3, F_PBA},      /* BIR 3: absent */
        {F_TABLE | 7, F_PBA},      /* BIR 7: no such BAR */
        {F_TABLE, F_TABLE + 0x40}, /* PBA inside the table */
        {F_TABLE, 0x3ffcU | 0},    /* PBA runs past the end */
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fake_device(phys);
        le32_put(phys + F_MSIX + 4, bad[i][0]);
        le32_put(phys + F_MSIX + 8, bad[i][1]);
        fake_params(&p, phys, &rec_ops, &r);
        struct vpci_cfg *x;
        cr_assert_eq(vpci_cfg_new(&p, &x, &e), 0);
        cr_assert_null(vpci_cfg_msix(x), "case %u", i);
        cr_assert_eq(vpci_cfg_cap_offset(x, VPCI_CAP_ID_MSIX), 0, "case %u", i);
        cr_assert_neq(vpci_cfg_cap_offset(x, VPCI_CAP_ID_MSI), 0, "case %u", i);
        vpci_cfg_free(x);
    }
}

Test(vpci_cfg, rom_sizing_never_mapped)
{
    plug_default();
    vpci_cfg_rom_write(v, 0xffffffffU);
    cr_assert_eq(vpci_cfg_rom_read(v), 0xffff0001U, "64 KiB, enable bit kept");
    vpci_cfg_rom_write(v, 0xfeb01234U);
    cr_assert_eq(vpci_cfg_rom_read(v), 0xfeb00000U);
    cr_assert_eq(conf1_rd(0x30, 4), 0, "the bus answers 0x30 today: no ROM");
    struct vpci_cfg_params p;
    fake_params(&p, phys, &rec_ops, &r);
    p.rom_size = 0x1234; /* not a power of two: no ROM */
    struct vpci_cfg *x;
    struct errbuf e = {0};
    cr_assert_eq(vpci_cfg_new(&p, &x, &e), 0);
    vpci_cfg_rom_write(x, 0xffffffffU);
    cr_assert_eq(vpci_cfg_rom_read(x), 0);
    vpci_cfg_free(x);
}
