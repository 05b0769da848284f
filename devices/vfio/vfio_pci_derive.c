/*
 * `wisp vpci derive` (vfio_pci.h): the layout file that describes what wisp
 * presents of a function without a layout.  The built-in view is built
 * exactly as vfio_pci_create builds it (same snapshot, same BAR rules, same
 * vpci_cfg) and then read back as a layout, so derive and the real thing
 * cannot drift apart.  Device quirks, if a device ever needs one, go in
 * derive_quirks() and nowhere else.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/vfio/vfio_pci.h"
#include "devices/vfio/vpci_cfg.h"

#define PAGE 4096ULL

/* Derive never enables a vector: irq ops that refuse. */
static int no_install(void *o, enum vpci_irq_kind k, unsigned vec, uint64_t addr, uint32_t data)
{
    (void)o, (void)k, (void)vec, (void)addr, (void)data;
    return -ENOTSUP;
}

static void no_remove(void *o, enum vpci_irq_kind k, unsigned vec)
{
    (void)o, (void)k, (void)vec;
}

static const struct vpci_irq_ops no_irq_ops = {.vector_install = no_install,
                                               .vector_remove = no_remove};

/*
 * The one place for device quirks: adjust the derived layout `l` of the
 * function whose config snapshot is `cfg`.  None is known today: QEMU's edu
 * device and the project's vfio-user server need none.
 */
static void derive_quirks(const uint8_t *cfg, struct vpci_layout *l)
{
    (void)cfg;
    (void)l;
}

/* Add area [off, off + len) to BAR b's mmap list (sorted; at most 8). */
static void add_area(struct vpci_layout_bar *b, uint64_t off, uint64_t len)
{
    if (!len || b->nmmap >= VPCI_LAYOUT_MAX_MMAP)
        return;
    unsigned k = b->nmmap;
    while (k > 0 && b->mmap[k - 1].off > off) {
        b->mmap[k] = b->mmap[k - 1];
        k--;
    }
    b->mmap[k] = (struct vpci_layout_area){.off = off, .len = len};
    b->nmmap++;
}

/*
 * The transport's page-aligned mmap areas of each memory BAR, clipped to
 * the BAR, minus the pages of the MSI-X table and PBA (what the built-in
 * layout maps).  Up to 8 pieces per BAR; the rest stays trapped.
 */
static void derive_areas(const struct vfio_pci_transport *ops,
                         const struct vfio_pci_region *regions, struct vpci_cfg *v,
                         struct vpci_layout *l)
{
    struct vpci_trap_range trap[2] = {{0, 0}, {0, 0}};
    unsigned trap_bar[2] = {PCI_NUM_BARS, PCI_NUM_BARS}, ntrap = 0;
    struct vpci_msix *m = vpci_cfg_msix(v);
    if (m)
        ntrap = vpci_msix_trap(m, trap, trap_bar);
    if (!ops->mmap)
        return;
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        struct vpci_layout_bar *b = &l->bars[i];
        if (b->type != PCI_BAR_MEM32 && b->type != PCI_BAR_MEM64)
            continue;
        for (unsigned a = 0; a < regions[i].nareas && a < 16; a++) {
            uint64_t off = regions[i].areas[a].off, len = regions[i].areas[a].size;
            if (((off | len) & (PAGE - 1)) || !len || off >= b->size)
                continue;
            uint64_t end = off + MIN(len, b->size - off);
            /* cut the trap ranges out of [off, end) */
            for (unsigned t = 0; t <= ntrap && off < end; t++) {
                uint64_t cut = end, next = end;
                for (unsigned u = 0; u < ntrap; u++)
                    if (trap_bar[u] == i && trap[u].off + trap[u].len > off && trap[u].off < cut) {
                        cut = MAX(trap[u].off, off);
                        next = MIN(trap[u].off + trap[u].len, end);
                    }
                add_area(b, off, cut - off);
                off = next;
            }
        }
    }
}

int vfio_pci_derive(const struct vfio_pci_transport *ops, void *t,
                    const struct vfio_pci_region regions[VFIO_PCI_NREGIONS],
                    const unsigned irq_count[3], struct vpci_layout *out, struct errbuf *err)
{
    struct vpci_cfg *v = NULL;
    int ret;
    unsigned cfg_len = regions[VFIO_PCI_CFG_INDEX].size >= PCI_CFG_SIZE ? PCI_CFG_SIZE : 256;
    uint8_t *snap = malloc(PCI_CFG_SIZE);
    if (!snap) {
        ret = err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
        goto out;
    }
    if (regions[VFIO_PCI_CFG_INDEX].size < 256) {
        ret = err_set(err, WISP_EXIT_FAILURE, EINVAL, "derive: the device has no config space");
        goto out;
    }
    ret = ops->region_read(t, VFIO_PCI_CFG_INDEX, 0, snap, cfg_len);
    if (ret < 0) {
        err_set(err, WISP_EXIT_FAILURE, -ret, "derive: cannot read the config space: %s",
                strerror(-ret));
        goto out;
    }
    /* The same params as vfio_pci_create, so the same view. */
    struct vpci_cfg_params par = {
        .cfg = snap,
        .cfg_len = cfg_len,
        .rom_size = regions[VFIO_PCI_ROM_INDEX].size,
        .msi_vectors = irq_count[1],
        .msix_vectors = MIN(irq_count[2], VPCI_MSIX_MAX_VECTORS),
        .intx = false, /* as vfio_pci_create: INTx is not wired */
        .win = {0xfee00000ULL, 0x100000ULL},
        .irq_ops = &no_irq_ops,
    };
    ret = vfio_pci_bars_from(regions, "derive", snap, par.bars, err);
    if (ret < 0)
        goto out;
    ret = vpci_cfg_new(&par, &v, err);
    if (ret < 0)
        goto out;
    ret = vpci_cfg_to_layout(v, out);
    if (ret < 0)
        goto out;
    derive_areas(ops, regions, v, out);
    derive_quirks(snap, out);
out:
    vpci_cfg_free(v);
    free(snap);
    ops->destroy(t);
    return ret;
}
