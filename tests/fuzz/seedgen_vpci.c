/*
 * Seeds of the vpci_cfg target (fuzz_vpci_cfg.c): a plausible physical
 * config space (PCIe, vendor, PM, MSI-X, MSI in an odd order) with a guest
 * that enables MSI-X and MSI the way Linux does, and a snapshot whose
 * capability list loops.  Input layout: u8 setup | 256 snapshot bytes |
 * program.  Also the seeds of the vpci_layout target (fuzz_vpci_layout.c):
 * layout files, two valid ones and one with an error.
 */
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/seedgen.h"

#include "devices/vfio/vpci_cfg.h"

#define SG_SETUP_DEFAULT (6U | 3U << 3 | 0x40U) /* 32 MSI, 8 MSI-X, INTx */

static void sg_snapshot(struct sg_buf *b, bool loop)
{
    uint8_t c[VPCI_CFG_LEGACY] = {0};
    le16_put(c, 0x8086);
    le16_put(c + 2, 0x10fb);
    le16_put(c + 6, PCI_STATUS_CAP_LIST);
    c[0x0b] = 0x02;
    c[0x0e] = 0x80;
    c[0x3d] = 1;
    c[0x34] = 0xa0;
    c[0xa0] = VPCI_CAP_ID_EXP; /* PCIe v2 -> vendor */
    c[0xa1] = 0x60;
    c[0xa2] = 2;
    c[0x60] = VPCI_CAP_ID_VNDR; /* -> PM */
    c[0x61] = 0x40;
    c[0x62] = 0x10;
    c[0x40] = VPCI_CAP_ID_PM; /* -> MSI-X */
    c[0x41] = 0x70;
    c[0x70] = VPCI_CAP_ID_MSIX; /* 8 vectors, table 0x2000, PBA 0x3000 in BAR0 -> MSI */
    c[0x71] = 0x48;
    le16_put(c + 0x72, 7);
    le32_put(c + 0x74, 0x2000);
    le32_put(c + 0x78, 0x3000);
    c[0x48] = VPCI_CAP_ID_MSI; /* 64-bit, maskable, 32 vectors */
    c[0x49] = loop ? 0xa0 : 0;
    le16_put(c + 0x4a, VPCI_MSI_CTRL_64BIT | VPCI_MSI_CTRL_MASKBIT | 5U << 1);
    sg_put(b, c, sizeof(c));
}

void sg_vpci_seeds(void)
{
    struct sg_buf b = {0};
    const unsigned cfg = FZ_OP_SEL(0), bar0 = FZ_OP_SEL(1) | FZ_OP_ARG(0);

    /* Linux's MSI-X bring-up: mask all, program entry 0, enable, unmask. */
    sg_u8(&b, SG_SETUP_DEFAULT);
    sg_snapshot(&b, false);
    sg_op(&b, FZ_OP_READ, cfg, 0x34, 1, 0);
    sg_op(&b, FZ_OP_READ, cfg, 0x72, 2, 0);
    sg_op(&b, FZ_OP_WRITE, cfg, 0x72, 2, VPCI_MSIX_CTRL_ENABLE | VPCI_MSIX_CTRL_FMASK);
    sg_op(&b, FZ_OP_WRITE, bar0, 0x2000, 4, 0xfee00000);
    sg_op(&b, FZ_OP_WRITE, bar0, 0x2004, 4, 0);
    sg_op(&b, FZ_OP_WRITE, bar0, 0x2008, 4, 0x4041);
    sg_op(&b, FZ_OP_WRITE, bar0, 0x200c, 4, 0);
    sg_op(&b, FZ_OP_WRITE, cfg, 0x72, 2, VPCI_MSIX_CTRL_ENABLE);
    sg_op(&b, FZ_OP_DEV, 0, 0, 0, 0);
    sg_op(&b, FZ_OP_WRITE, bar0, 0x201c, 4, 1);
    sg_op(&b, FZ_OP_READ, FZ_OP_SEL(2) | FZ_OP_ARG(1), 1, 0, 0); /* signal MSI-X 1 (masked) */
    sg_op(&b, FZ_OP_READ, bar0, 0x3000, 8, 0);
    sg_op(&b, FZ_OP_READ, bar0, 0x1ffe, 4, 0);
    sg_op(&b, FZ_OP_STATE, 0, 0, 0, 0);
    sg_op(&b, FZ_OP_DEV, 0, 0, 0, 0);
    sg_emit("vpci_cfg", "linux-msix", &b);

    /* MSI with 4 vectors, one masked and signalled, then unmasked. */
    sg_u8(&b, SG_SETUP_DEFAULT);
    sg_snapshot(&b, false);
    sg_op(&b, FZ_OP_WRITE, cfg, 0x4c, 4, 0xfee01000);
    sg_op(&b, FZ_OP_WRITE, cfg, 0x50, 4, 0);
    sg_op(&b, FZ_OP_WRITE, cfg, 0x54, 2, 0x4060);
    sg_op(&b, FZ_OP_WRITE, cfg, 0x58, 4, 2);
    sg_op(&b, FZ_OP_WRITE, cfg, 0x4a, 2, VPCI_MSI_CTRL_ENABLE | 2U << 4);
    sg_op(&b, FZ_OP_READ, FZ_OP_SEL(2), 1, 0, 0);
    sg_op(&b, FZ_OP_DEV, 0, 0, 0, 0);
    sg_op(&b, FZ_OP_WRITE, cfg, 0x58, 4, 0);
    sg_op(&b, FZ_OP_DEV, 0, 0, 0, 0);
    sg_emit("vpci_cfg", "msi", &b);

    /* A capability list that loops, and odd accesses everywhere. */
    sg_u8(&b, SG_SETUP_DEFAULT);
    sg_snapshot(&b, true);
    sg_op(&b, FZ_OP_DEV, 0, 0, 0, 0);
    sg_op(&b, FZ_OP_READ, cfg, 0x41, 2, 0);
    sg_op(&b, FZ_OP_READ, cfg | FZ_OP_FAR, 3, 4, 0);
    sg_op(&b, FZ_OP_WRITE, cfg, 0x100, 4, 0xffffffff);
    sg_op(&b, FZ_OP_READ, bar0 | FZ_OP_FAR, 1, 4, 0);
    sg_op(&b, FZ_OP_WRITE, bar0, 0x2002, 8, 0);
    sg_emit("vpci_cfg", "loop-odd", &b);
    sg_free(&b);
}

/* Seeds of the vpci_layout target (fuzz_vpci_layout.c): layout files. */
void sg_vpci_layout_seeds(void)
{
    static const char *const seeds[][2] = {
        {"edu", "# edu with a changed subsystem\n"
                "wisp-vpci-layout 1\nid 0x1234 0x11e8\nsubsystem 0x1af4 0x1100\n"
                "revision 0x10\nclass 0x00ff00\nintx 1\nrom absent\n"
                "bar 0 mem32 0x100000 mmap=0x0+0x1000\n"
                "cap 0x40 msi 0x0e emulated vectors=1 64bit\n"
                "cap 0x50 pcie 0x3c passthrough\nfield 0x0c 4 fixed 11000000\n"
                "cap 0x90 pm 0x08 passthrough\n"
                "cap 0x98 0x1b 0x08 synthesised data=000000000000\nhidden 0xa0 0x60\n"},
        {"msix", "wisp-vpci-layout 1\nid 0x8086 0x10fb\nsubsystem 0 0\nrevision 1\n"
                 "class 0x020000\nintx 0\nrom 0x10000\nbar 0 mem64 0x4000 prefetchable\n"
                 "bar 2 mem32 0x1000\nbar 4 io 0x20\n"
                 "cap 0x70 msix 12 emulated vectors=8 table=0:0x2000 pba=0:0x3000\n"
                 "cap 0x40 pm 8 passthrough\nfield 6 2 fixed 0000\n"
                 "cap 0x48 msi 0x18 emulated vectors=32 64bit maskable\n"},
        {"error", "wisp-vpci-layout 1\nid 0x1234 0x11e8\nbar 0 mem32 0x3000\n"},
    };
    for (unsigned i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        struct sg_buf b = {0};
        sg_str(&b, seeds[i][1]);
        sg_emit("vpci_layout", seeds[i][0], &b);
        sg_free(&b);
    }
}
