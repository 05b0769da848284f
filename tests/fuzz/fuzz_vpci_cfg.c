/*
 * Fuzz target: the config space of a passed-through function
 * (devices/vfio/vpci_cfg.c, vpci_msix.c), built from a hostile "physical"
 * config snapshot and then driven by a hostile guest.
 *
 * Why: both sides are untrusted (docs/VPCI.md): the device's firmware
 * writes the snapshot (capability pointers, MSI-X BIR and offsets, MSI
 * control) and the guest writes config space and the MSI-X table.
 *
 * Input: u8 setup | 256 bytes of snapshot (zero-padded) | a register-access
 * program (fuzz.h).  setup bits 0-2: MSI vectors offered (0..7 -> 0, 1, 2,
 * 4, ... 64), bits 3-5: MSI-X vectors (0, 1, 3, 8, 64, 512, 2048, 4096),
 * bit 6: INTx.  BARs are fixed: BAR0 MEM64 16 KiB, BAR2 MEM32 4 KiB, BAR3
 * MEM32 2 KiB, BAR4 I/O.  Program selectors:
 *   0: config space at offset (any offset, length)      vpci_cfg_read/write
 *   1: BAR (arg % 6) of the MSI-X emulation             vpci_msix_bar_read/write
 *   2: signal: kind = arg & 1, vector = offset          vpci_cfg_signal
 *   FZ_OP_DEV:   check the invariants below
 *   FZ_OP_STATE: free and rebuild from the same snapshot
 * Checked: the guest's capability chain is finite, only allow-listed ids,
 * pointers >= 0x40 and dword-aligned; extended space reads 0; the irq ops
 * see install/remove in a consistent order (never remove what is not
 * installed) with addresses inside the MSI window; vpci's installed view
 * matches the ops'; BAR reads write exactly `len` bytes.
 */
#include "tests/fuzz/fuzz.h"

#include <errno.h>

#include "devices/vfio/vpci_cfg.h"

#define FZ_MAX_OPS 4096
#define FZ_WIN     0xfee00000ULL

static bool fz_inst[2][VPCI_MSIX_MAX_VECTORS];

static int fz_install(void *o, enum vpci_irq_kind k, unsigned vec, uint64_t addr, uint32_t data)
{
    (void)o;
    (void)data;
    FZ_CHECK(vec < VPCI_MSIX_MAX_VECTORS, "vector %u", vec);
    FZ_CHECK(k != VPCI_IRQ_MSI || vec < VPCI_MSI_MAX_VECTORS, "MSI vector %u", vec);
    FZ_CHECK(addr >= FZ_WIN && addr < FZ_WIN + 0x100000 && !(addr & 3), "address 0x%llx",
             (unsigned long long)addr);
    if (vec == 7)
        return -ENOSPC; /* one vector whose routing always fails */
    fz_inst[k][vec] = true;
    return 0;
}

static void fz_remove(void *o, enum vpci_irq_kind k, unsigned vec)
{
    (void)o;
    FZ_CHECK(vec < VPCI_MSIX_MAX_VECTORS && fz_inst[k][vec], "remove of %u", vec);
    fz_inst[k][vec] = false;
}

static void fz_fire(void *o, enum vpci_irq_kind k, unsigned vec)
{
    (void)o;
    FZ_CHECK(vec < VPCI_MSIX_MAX_VECTORS && fz_inst[k][vec], "fire of uninstalled %u", vec);
}

static const struct vpci_irq_ops fz_ops = {
    .vector_install = fz_install,
    .vector_remove = fz_remove,
    .vector_fire = fz_fire,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static void fz_check(struct vpci_cfg *v)
{
    const struct pci_func_desc *d = vpci_cfg_desc(v);
    unsigned n = 0;
    for (unsigned p = d->cap_ptr; p; p = vpci_cfg_read(v, p + 1, 1)) {
        FZ_CHECK(p >= 0x40 && p < 0x100 && !(p & 3), "pointer 0x%x", p);
        FZ_CHECK(++n <= VPCI_CFG_MAX_CAPS, "chain longer than %u", n);
        uint8_t id = (uint8_t)vpci_cfg_read(v, p, 1);
        FZ_CHECK(id == VPCI_CAP_ID_PM || id == VPCI_CAP_ID_MSI || id == VPCI_CAP_ID_MSIX ||
                     id == VPCI_CAP_ID_EXP,
                 "id 0x%x kept", id);
    }
    for (unsigned o = 0x100; o < PCI_CFG_SIZE; o += 0x40)
        FZ_CHECK(vpci_cfg_read(v, o, 4) == 0, "extended 0x%x", o);
    struct vpci_msix *m = vpci_cfg_msix(v);
    for (unsigned i = 0; m && i < VPCI_MSIX_MAX_VECTORS; i++)
        FZ_CHECK(vpci_msix_installed(m, i) == fz_inst[VPCI_IRQ_MSIX][i], "MSI-X %u", i);
    struct vpci_msi *s = vpci_cfg_msi(v);
    for (unsigned i = 0; s && i < VPCI_MSI_MAX_VECTORS; i++)
        FZ_CHECK(vpci_msi_installed(s, i) == fz_inst[VPCI_IRQ_MSI][i], "MSI %u", i);
}

static struct vpci_cfg *fz_build(const struct vpci_cfg_params *p)
{
    struct vpci_cfg *v = NULL;
    struct errbuf e = {0};
    memset(fz_inst, 0, sizeof(fz_inst));
    int rc = vpci_cfg_new(p, &v, &e);
    FZ_CHECK(rc == 0 || rc == -ENOTSUP, "vpci_cfg_new: %d", rc);
    FZ_CHECK(rc == 0 || fz_one_line(&e), "error report");
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned msix_n[] = {0, 1, 3, 8, 64, 512, 2048, 4096};
    struct fz_in in;
    fz_init(&in, data, size);
    uint8_t setup = fz_u8(&in);
    uint8_t snap[VPCI_CFG_LEGACY] = {0};
    size_t got;
    const uint8_t *s = fz_take(&in, sizeof(snap), &got);
    memcpy(snap, s, got);

    struct vpci_cfg_params p = {
        .cfg = snap,
        .cfg_len = VPCI_CFG_LEGACY,
        .msi_vectors = (setup & 7U) ? 1U << ((setup & 7U) - 1) : 0,
        .msix_vectors = msix_n[(setup >> 3) & 7U],
        .intx = setup & 0x40U,
        .rom_size = 0x8000,
        .win = {.base = FZ_WIN, .size = 0x100000},
        .irq_ops = &fz_ops,
    };
    p.bars[0] = (struct pci_bar_desc){.size = 0x4000, .type = PCI_BAR_MEM64, .prefetchable = true};
    p.bars[2] = (struct pci_bar_desc){.size = 0x1000, .type = PCI_BAR_MEM32};
    p.bars[3] = (struct pci_bar_desc){.size = 0x800, .type = PCI_BAR_MEM32};
    p.bars[4] = (struct pci_bar_desc){.size = 0x40, .type = PCI_BAR_IO};

    struct vpci_cfg *v = fz_build(&p);
    if (!v)
        return 0;
    struct fz_op op;
    for (unsigned n = 0; n < FZ_MAX_OPS && fz_next_op(&in, &op); n++) {
        struct vpci_msix *m = vpci_cfg_msix(v);
        if (op.kind == FZ_OP_DEV) {
            fz_check(v);
        } else if (op.kind == FZ_OP_STATE) {
            vpci_cfg_free(v);
            v = fz_build(&p);
            FZ_CHECK(v, "rebuild failed");
        } else if (op.sel == 0 && op.kind == FZ_OP_READ) {
            (void)vpci_cfg_read(v, (unsigned)op.offset, op.len);
        } else if (op.sel == 0) {
            vpci_cfg_write(v, (unsigned)op.offset, op.len, le32_get(op.val));
        } else if (op.sel == 1 && m && op.kind == FZ_OP_READ) {
            uint8_t buf[FZ_ACCESS_MAX + 8];
            memset(buf, FZ_CANARY, sizeof(buf));
            (void)vpci_msix_bar_read(m, op.arg % 6, op.offset, buf, op.len);
            for (size_t i = op.len; i < sizeof(buf); i++)
                FZ_CHECK(buf[i] == FZ_CANARY, "BAR read of %u wrote byte %zu", op.len, i);
        } else if (op.sel == 1 && m) {
            (void)vpci_msix_bar_write(m, op.arg % 6, op.offset, op.val, op.len);
        } else if (op.sel == 2) {
            (void)vpci_cfg_signal(v, (op.arg & 1) ? VPCI_IRQ_MSIX : VPCI_IRQ_MSI, op.off16);
        }
    }
    fz_check(v);
    vpci_cfg_free(v);
    for (unsigned k = 0; k < 2; k++)
        for (unsigned i = 0; i < VPCI_MSIX_MAX_VECTORS; i++)
            FZ_CHECK(!fz_inst[k][i], "vector %u of kind %u left installed after free", i, k);
    return 0;
}
