/*
 * Unit tests for devices/vfio/vpci_cfg_layout.c: a layout file applied to
 * the fake physical function of vpci_fake.h, read back through a real PCI
 * bus (conf1) as a guest would.  The guest sees the layout's IDs, BARs and
 * chain at the layout's offsets, with each policy (passthrough from where
 * the device has the capability, fixed fields, emulated MSI/MSI-X,
 * synthesised bytes) and hidden ranges; each way a device can fail to
 * honour a layout is refused with one line and WISP_EXIT_USAGE.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "devices/pci/pci.h"
#include "devices/vfio/vpci_cfg.h"
#include "devices/vfio/vpci_layout.h"
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

/* The fake device (vpci_fake.h) moved around: PCIe from 0xa0 to 0x40 with
 * Link Capabilities fixed, the vendor cap from 0x60 to 0x7c, MSI-X at 0x80
 * (the device's table and PBA), MSI at 0x90 with fewer vectors, PM from
 * 0x40 to 0xa8, a PASID-like capability the device lacks at 0xb0, hidden
 * bytes after it.  BAR4 (io) is left out; BAR2 shrinks to 2 KiB. */
static const char layout_text[] = "wisp-vpci-layout 1\n"
                                  "id 0x1af4 0x1110\n"
                                  "subsystem 0x1af4 0x0042\n"
                                  "revision 0x07\n"
                                  "class 0x058000\n"
                                  "intx 1\n"
                                  "rom absent\n"
                                  "bar 0 mem64 0x4000 prefetchable\n"
                                  "bar 2 mem32 0x800\n"
                                  "cap 0x40 pcie 0x3c passthrough\n"
                                  "field 0x0c 4 fixed 11003000\n"
                                  "cap 0x7c vendor 0x04 passthrough\n"
                                  "cap 0x80 msix 0x0c emulated vectors=4 table=0:0x2000 "
                                  "pba=0:0x3000\n"
                                  "cap 0x90 msi 0x0e emulated vectors=2 64bit\n"
                                  "cap 0xa8 pm 0x08 passthrough\n"
                                  "cap 0xb0 0x1b 0x08 synthesised data=0100a1b2c3d4\n"
                                  "hidden 0xb8 0x48\n";

static struct pci_bus *b;
static uint8_t phys[PCI_CFG_SIZE];
static struct rec r;
static struct vpci_cfg *v;
static struct vpci_layout lay;
static struct vpci_cfg_params par;

static uint32_t f_cfg_read(void *o, unsigned off, unsigned len)
{
    return vpci_cfg_read(o, off, len);
}

static void f_cfg_write(void *o, unsigned off, unsigned len, uint32_t val)
{
    vpci_cfg_write(o, off, len, val);
}

static const struct pci_func_ops f_ops = {.cfg_read = f_cfg_read, .cfg_write = f_cfg_write};

static void setup(void)
{
    b = pci_bus_new(&win);
    cr_assert(b);
    cr_assert_eq(pci_bus_add_host_bridge(b), 0);
    fake_device(phys);
    rec_init(&r);
    struct errbuf e = {0};
    cr_assert_eq(vpci_layout_parse(layout_text, strlen(layout_text), "t.layout", &lay, &e), 0, "%s",
                 e.msg);
    fake_params(&par, phys, &rec_ops, &r);
    par.layout = &lay;
    par.layout_name = "t.layout";
}

static void teardown(void)
{
    vpci_cfg_free(v);
    v = NULL;
    pci_bus_free(b);
    irq_routing_free(r.routing);
}

TestSuite(vpci_cfg_layout, .init = setup, .fini = teardown);

static void plug(void)
{
    struct errbuf e = {0};
    cr_assert_eq(vpci_cfg_new(&par, &v, &e), 0, "%s", e.msg);
    cr_assert_eq(pci_bus_add(b, DF, vpci_cfg_desc(v), &f_ops, v), 0);
    cr_assert_eq(pci_bus_assign(b, &e), 0, "%s", e.msg);
}

static uint32_t rd(unsigned reg, unsigned len)
{
    uint32_t a = PCI_CONF1_ENABLE | DF << 8 | (reg & 0xfcU), val = 0;
    pci_conf1_write(b, 0, &a, 4);
    pci_conf1_read(b, 4 + (reg & 3U), &val, len);
    return val;
}

static void wr(unsigned reg, unsigned len, uint32_t val)
{
    uint32_t a = PCI_CONF1_ENABLE | DF << 8 | (reg & 0xfcU);
    pci_conf1_write(b, 0, &a, 4);
    pci_conf1_write(b, 4 + (reg & 3U), &val, len);
}

/* The size a guest reads back after writing all-ones to BAR `i`. */
static uint32_t bar_size_mask(unsigned i)
{
    uint32_t old = rd(0x10 + 4 * i, 4);
    wr(0x10 + 4 * i, 4, 0xffffffffU);
    uint32_t m = rd(0x10 + 4 * i, 4);
    wr(0x10 + 4 * i, 4, old);
    return m;
}

Test(vpci_cfg_layout, header_is_the_layouts)
{
    plug();
    cr_expect_eq(rd(0x00, 4), 0x11101af4U, "vendor and device from the layout");
    cr_expect_eq(rd(0x08, 4), 0x05800007U, "class and revision");
    cr_expect_eq(rd(0x2c, 4), 0x00421af4U, "subsystem");
    cr_expect_eq(rd(0x3d, 1), 1, "pin");
    cr_expect_eq(bar_size_mask(0) & ~0xfU, 0xffffc000U, "BAR0 16 KiB");
    cr_expect_eq(bar_size_mask(0) & 0xfU, 0xcU, "64-bit prefetchable");
    cr_expect_eq(bar_size_mask(2), 0xfffff800U, "BAR2 2 KiB, smaller than the device's");
    cr_expect_eq(bar_size_mask(4), 0, "BAR4 left out: absent");
}

Test(vpci_cfg_layout, chain_at_the_layouts_offsets)
{
    static const uint8_t want_off[] = {0x40, 0x7c, 0x80, 0x90, 0xa8, 0xb0};
    static const uint8_t want_id[] = {0x10, 0x09, 0x11, 0x05, 0x01, 0x1b};
    plug();
    cr_assert_eq(rd(0x34, 1), 0x40);
    unsigned p = 0x40, n = 0;
    for (; p && n < 10; n++, p = rd(p + 1, 1)) {
        cr_assert_lt(n, sizeof(want_off));
        cr_expect_eq(p, want_off[n], "cap %u at 0x%x", n, p);
        cr_expect_eq(rd(p, 1), want_id[n], "cap %u id", n);
    }
    cr_expect_eq(n, sizeof(want_off));
    cr_expect_eq(vpci_cfg_cap_offset(v, VPCI_CAP_ID_MSIX), 0x80);
}

Test(vpci_cfg_layout, passthrough_and_fixed_fields)
{
    plug();
    cr_expect_eq(rd(0x40 + 2, 2), 0x0002U, "PCIe flags from the device's cap at 0xa0");
    cr_expect_eq(rd(0x40 + 4, 4), 0x00008fc2U, "DevCap from the device, FLR cleared");
    cr_expect_eq(rd(0x40 + 8, 2), 0x2810U, "DevCtl from the device");
    cr_expect_eq(rd(0x40 + 0x0c, 4), 0x00300011U, "LnkCap: the layout's fixed bytes");
    wr(0x40 + 0x0c, 4, 0);
    cr_expect_eq(rd(0x40 + 0x0c, 4), 0x00300011U, "fixed bytes are read-only");
    wr(0x40 + 8, 2, 0x8000U | 0x5020U);
    cr_expect_eq(rd(0x40 + 8, 2), 0x5020U, "DevCtl still the guest's scratch, no FLR");
    cr_expect_eq(rd(0x7c + 2, 2), 0xab10U, "vendor cap: the device's first bytes");
    cr_expect_eq(rd(0xa8 + 2, 2), 0x0003U, "PM from 0x40: no PME support");
    cr_expect_eq(rd(0xa8 + 4, 2), 0, "PM: D0");
    wr(0xa8 + 4, 2, 0x0103U);
    cr_expect_eq(rd(0xa8 + 4, 2), 0, "PM state read-only");
}

Test(vpci_cfg_layout, emulated_msix_and_msi)
{
    plug();
    cr_expect_eq(rd(0x80 + 2, 2), 3, "MSI-X: 4 vectors, disabled");
    cr_expect_eq(rd(0x80 + 4, 4), 0x2000U, "table BIR/offset");
    cr_expect_eq(rd(0x80 + 8, 4), 0x3000U, "PBA BIR/offset");
    uint16_t ctl = (uint16_t)rd(0x90 + 2, 2);
    cr_expect_eq(ctl & VPCI_MSI_CTRL_MMC, 1U << 1, "MSI: 2 vectors");
    cr_expect(ctl & VPCI_MSI_CTRL_64BIT);
    cr_expect(!(ctl & VPCI_MSI_CTRL_MASKBIT));
    cr_assert_not_null(vpci_cfg_msix(v));
    cr_assert_not_null(vpci_cfg_msi(v));
    /* MSI-X works at the new offset: enable it, program vector 0, unmask */
    wr(0x80 + 2, 2, VPCI_MSIX_CTRL_ENABLE | VPCI_MSIX_CTRL_FMASK);
    struct vpci_msix *m = vpci_cfg_msix(v);
    uint32_t val = 0xfee00000U;
    cr_assert(vpci_msix_bar_write(m, 0, 0x2000, &val, 4));
    val = 0x41;
    cr_assert(vpci_msix_bar_write(m, 0, 0x2008, &val, 4));
    val = 0;
    cr_assert(vpci_msix_bar_write(m, 0, 0x200c, &val, 4));
    wr(0x80 + 2, 2, VPCI_MSIX_CTRL_ENABLE);
    cr_expect_geq(r.gsi[VPCI_IRQ_MSIX][0], 0, "vector 0 installed");
    wr(0x80 + 2, 2, 0);
    /* the layout shows 4 of the device's 8 entries; entry 6 is still
     * wisp's (reads 0, write dropped), never forwarded to the device */
    val = 0xfee00000U;
    cr_expect(vpci_msix_bar_write(m, 0, 0x2060, &val, 4), "entry 6 trapped");
    uint32_t got = 1;
    cr_expect(vpci_msix_bar_read(m, 0, 0x2060, &got, 4));
    cr_expect_eq(got, 0);
    struct vpci_trap_range tr[4];
    unsigned tb[4];
    unsigned nt = vpci_msix_trap(m, tr, tb);
    cr_assert_geq(nt, 1);
    cr_expect(tr[0].off <= 0x2000 && tr[0].off + tr[0].len >= 0x2000 + 16 * F_NVEC,
              "the trap covers the device's whole table");
}

Test(vpci_cfg_layout, synthesised_and_hidden)
{
    plug();
    cr_expect_eq(rd(0xb0, 4), 0x00010000U | 0x1b, "synthesised: id, last, then data");
    cr_expect_eq(rd(0xb4, 4), 0xd4c3b2a1U);
    wr(0xb4, 4, 0);
    cr_expect_eq(rd(0xb4, 4), 0xd4c3b2a1U, "synthesised bytes are read-only");
    for (unsigned off = 0xb8; off < 0x100; off += 4) {
        wr(off, 4, 0xffffffffU);
        cr_expect_eq(rd(off, 4), 0, "hidden 0x%x", off);
    }
    cr_expect_eq(rd(0x60, 4), 0, "the device's vendor cap at 0x60 is not there");
    cr_expect_eq(rd(0xa0, 4), 0, "nor its PCIe cap at 0xa0");
}

/* vpci_cfg_new refuses with `what` in one line. */
static void refused(const char *what)
{
    struct errbuf e = {0};
    cr_assert_eq(vpci_cfg_new(&par, &v, &e), -EINVAL, "accepted");
    cr_expect_null(v);
    cr_expect_eq(e.exit_code, WISP_EXIT_USAGE);
    cr_expect(!strncmp(e.msg, "vpci layout t.layout: the device cannot honour it: ", 51), "%s",
              e.msg);
    cr_expect(strstr(e.msg, what) != NULL, "'%s' does not say '%s'", e.msg, what);
}

Test(vpci_cfg_layout, refusals_bars_rom_intx)
{
    par.bars[2].type = PCI_BAR_IO;
    par.bars[2].size = 0x100;
    refused("BAR2 is io on the device, mem32 in the layout");
    fake_params(&par, phys, &rec_ops, &r), par.layout = &lay, par.layout_name = "t.layout";
    par.bars[2] = (struct pci_bar_desc){0};
    refused("BAR2 is absent on the device");
    fake_params(&par, phys, &rec_ops, &r), par.layout = &lay, par.layout_name = "t.layout";
    par.bars[0].size = 0x2000;
    refused("BAR0 is 0x2000 bytes on the device, the layout wants 0x4000");
    fake_params(&par, phys, &rec_ops, &r), par.layout = &lay, par.layout_name = "t.layout";
    par.bars[0].prefetchable = false;
    refused("BAR0 is not prefetchable on the device");
    fake_params(&par, phys, &rec_ops, &r), par.layout = &lay, par.layout_name = "t.layout";
    par.intx = false;
    refused("no usable INTx, the layout gives pin 1");
    fake_params(&par, phys, &rec_ops, &r), par.layout = &lay, par.layout_name = "t.layout";
    lay.rom_size = 0x20000;
    refused("its ROM is 0x10000 bytes, the layout wants 0x20000");
}

Test(vpci_cfg_layout, refusals_irqs)
{
    par.msi_vectors = 1;
    refused("it offers 1 MSI vectors, the layout wants 2");
    par.msi_vectors = 32;
    par.msix_vectors = 2;
    refused("it offers 2 MSI-X vectors, the layout wants 4");
    par.msix_vectors = F_NVEC;
    le16_put(phys + F_MSIX + 2, 1); /* the device's table: 2 entries */
    refused("it offers 2 MSI-X vectors, the layout wants 4");
    le16_put(phys + F_MSIX + 2, F_NVEC - 1);
    lay.caps[2].table_off = 0x1000;
    refused("its MSI-X table and PBA are at 0:0x2000 and 0:0x3000, the layout has 0:0x1000");
    lay.caps[2].table_off = 0x2000;
    phys[F_AF + 1] = F_MSI; /* the chain skips the device's MSI-X */
    refused("it has no MSI-X capability");
}

Test(vpci_cfg_layout, refusals_passthrough_caps)
{
    lay.caps[1].id = 0x12; /* the device has no 0x12 */
    refused("it has no capability 0x12 for the passthrough cap at 0x7c");
    lay.caps[1].id = VPCI_CAP_ID_VNDR;
    phys[F_PCIE + 2] = 0x01; /* a version-1 PCIe capability: 0x14 bytes */
    refused("its capability 0x10 at 0xa0 is 0x14 bytes, the layout wants 0x3c");
}

Test(vpci_cfg_layout, a_short_passthrough_cap_keeps_its_neighbour)
{
    /* PCIe cut to 8 bytes with a capability right after it: wisp's PCIe
     * rules (DevCtl scratch at +8, Link Control at +0x10) must not reach
     * the neighbour's bytes. */
    static const char t[] = "wisp-vpci-layout 1\nid 1 2\nsubsystem 0 0\nrevision 0\nclass 0\n"
                            "intx 0\nrom absent\n"
                            "cap 0x40 pcie 0x08 passthrough\n"
                            "cap 0x48 0x1b 0x0c synthesised data=11223344556677889900\n";
    struct errbuf e = {0};
    cr_assert_eq(vpci_layout_parse(t, strlen(t), "t.layout", &lay, &e), 0, "%s", e.msg);
    plug();
    cr_expect_eq(rd(0x40 + 4, 4), 0x00008fc2U);
    wr(0x48, 4, 0xffffffffU);
    wr(0x50, 4, 0xffffffffU);
    cr_expect_eq(rd(0x48, 4), 0x2211001bU, "neighbour's id, next, data unchanged");
    cr_expect_eq(rd(0x50, 4), 0x00998877U);
}
