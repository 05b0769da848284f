/*
 * A layout file applied to a passed-through function (docs/VPCI_LAYOUT.md,
 * "When the device cannot honour a layout"): the guest sees exactly the
 * layout's IDs, BARs and capability chain, and wisp refuses to start when
 * the device cannot back it.  The shadow, the PM/PCIe rules and the
 * MSI/MSI-X emulation are vpci_cfg.c's, fed from the layout instead of
 * from the device's own chain.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "devices/vfio/vpci_cfg_internal.h"

static const char *const bar_type_name[] = {[PCI_BAR_NONE] = "absent",
                                            [PCI_BAR_IO] = "io",
                                            [PCI_BAR_MEM32] = "mem32",
                                            [PCI_BAR_MEM64] = "mem64"};

static int __printf(3, 4)
    refuse(const struct vpci_cfg_params *p, struct errbuf *err, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return err_set(err, WISP_EXIT_USAGE, EINVAL, "vpci layout %s: the device cannot honour it: %s",
                   p->layout_name ? p->layout_name : "-", msg);
}

/* BARs, ROM and INTx against what the transport reports. */
static int check_header(const struct vpci_cfg_params *p, struct errbuf *err)
{
    const struct vpci_layout *l = p->layout;
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        const struct vpci_layout_bar *lb = &l->bars[i];
        const struct pci_bar_desc *db = &p->bars[i];
        if (lb->type == PCI_BAR_NONE)
            continue;
        if (db->type != lb->type)
            return refuse(p, err, "BAR%u is %s on the device, %s in the layout", i,
                          bar_type_name[db->type], bar_type_name[lb->type]);
        if (lb->size > db->size)
            return refuse(p, err, "BAR%u is 0x%llx bytes on the device, the layout wants 0x%llx", i,
                          (unsigned long long)db->size, (unsigned long long)lb->size);
        if (lb->prefetchable && !db->prefetchable)
            return refuse(p, err, "BAR%u is not prefetchable on the device", i);
    }
    if (l->rom_size && p->rom_size < l->rom_size)
        return refuse(p, err, "its ROM is 0x%llx bytes, the layout wants 0x%llx",
                      (unsigned long long)p->rom_size, (unsigned long long)l->rom_size);
    if (l->intx_pin && !p->intx)
        return refuse(p, err, "it has no usable INTx, the layout gives pin %u", l->intx_pin);
    return 0;
}

/* The device's capability `id` (its offset), or 0. */
static unsigned dev_cap(const uint8_t *cfg, const uint8_t *offs, unsigned n, uint8_t id)
{
    for (unsigned i = 0; i < n; i++)
        if (cfg[offs[i]] == id)
            return offs[i];
    return 0;
}

/* Can the device back capability `c` of the layout? */
static int check_cap(const struct vpci_cfg_params *p, const struct vpci_layout_cap *c,
                     unsigned doff, struct errbuf *err)
{
    if (c->id == VPCI_CAP_ID_MSI) {
        if (c->vectors > p->msi_vectors)
            return refuse(p, err, "it offers %u MSI vectors, the layout wants %u", p->msi_vectors,
                          c->vectors);
        return 0;
    }
    if (c->id == VPCI_CAP_ID_MSIX) {
        if (!doff)
            return refuse(p, err, "it has no MSI-X capability");
        uint32_t table = le32_get(p->cfg + doff + 4), pba = le32_get(p->cfg + doff + 8);
        unsigned qsize = (le16_get(p->cfg + doff + 2) & VPCI_MSIX_CTRL_QSIZE) + 1U;
        if (c->vectors > p->msix_vectors || c->vectors > qsize)
            return refuse(p, err, "it offers %u MSI-X vectors, the layout wants %u",
                          MIN(p->msix_vectors, qsize), c->vectors);
        if ((table & 7U) != c->table_bir || (table & ~7U) != c->table_off ||
            (pba & 7U) != c->pba_bir || (pba & ~7U) != c->pba_off)
            return refuse(p, err,
                          "its MSI-X table and PBA are at %u:0x%x and %u:0x%x, the layout has "
                          "%u:0x%x and %u:0x%x",
                          table & 7U, table & ~7U, pba & 7U, pba & ~7U, c->table_bir, c->table_off,
                          c->pba_bir, c->pba_off);
        return 0;
    }
    if (c->policy != VPCI_LAYOUT_PASSTHROUGH)
        return 0; /* synthesised: the device has nothing to give */
    if (!doff)
        return refuse(p, err, "it has no capability 0x%02x for the passthrough cap at 0x%02x",
                      c->id, c->off);
    unsigned have = vpci_cfg_cap_len(p->cfg, c->id, doff);
    if (!have)
        have = VPCI_CFG_LEGACY - doff;
    if (c->len > have)
        return refuse(p, err,
                      "its capability 0x%02x at 0x%02x is 0x%x bytes, the layout wants 0x%x", c->id,
                      doff, have, c->len);
    return 0;
}

/*
 * Set up MSI or MSI-X from the layout's form and vector count.  MSI-X keeps
 * the device's table size (`doff`: its capability), so the trap ranges
 * cover the device's whole table and PBA even when the layout offers fewer
 * vectors: no guest access reaches the entries it does not see.
 */
static int irq_cap(struct vpci_cfg *v, const struct vpci_cfg_params *p,
                   const struct vpci_layout_cap *c, unsigned doff, struct errbuf *err)
{
    int rc;
    if (c->id == VPCI_CAP_ID_MSI) {
        unsigned mmc = (unsigned)__builtin_ctz(c->vectors);
        uint16_t ctrl = (uint16_t)((c->msi_64bit ? VPCI_MSI_CTRL_64BIT : 0) |
                                   (c->msi_maskable ? VPCI_MSI_CTRL_MASKBIT : 0) | mmc << 1);
        rc = vpci_msi_init(&v->msi, ctrl, c->vectors, &p->win, p->irq_ops, p->irq_opaque);
        v->has_msi = rc == 0;
    } else {
        uint8_t cap[VPCI_MSIX_CAP_LEN] = {VPCI_CAP_ID_MSIX, 0};
        le16_put(cap + 2, le16_get(p->cfg + doff + 2) & VPCI_MSIX_CTRL_QSIZE);
        le32_put(cap + 4, c->table_off | c->table_bir);
        le32_put(cap + 8, c->pba_off | c->pba_bir);
        rc = vpci_msix_init(&v->msix, cap, c->vectors, v->desc.bars, &p->win, p->irq_ops,
                            p->irq_opaque);
        v->has_msix = rc == 0;
    }
    if (rc < 0)
        return err_set(err, WISP_EXIT_USAGE, -rc,
                       "vpci layout %s: cap 0x%02x cannot be emulated (%s)",
                       p->layout_name ? p->layout_name : "-", c->off, strerror(-rc));
    return 0;
}

int vpci_cfg_layout_build(struct vpci_cfg *v, const struct vpci_cfg_params *p, struct errbuf *err)
{
    const struct vpci_layout *l = p->layout;
    uint8_t offs[VPCI_CFG_MAX_CAPS];
    unsigned n = vpci_cfg_walk_caps(p->cfg, offs);
    int rc = check_header(p, err);
    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < l->ncaps && i < VPCI_CFG_MAX_CAPS; i++) {
        rc = check_cap(p, &l->caps[i], dev_cap(p->cfg, offs, n, l->caps[i].id), err);
        if (rc < 0)
            return rc;
    }
    v->desc = (struct pci_func_desc){
        .vendor = l->vendor,
        .device = l->device,
        .class_code = l->class_code,
        .revision = l->revision,
        .subsys_vendor = l->subsys_vendor,
        .subsys_id = l->subsys_id,
        .irq_pin = l->intx_pin,
        .generic_header = true,
    };
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        v->desc.bars[i] = (struct pci_bar_desc){.size = l->bars[i].size,
                                                .type = l->bars[i].type,
                                                .prefetchable = l->bars[i].prefetchable};
    rc = vpci_cfg_bars_check(v->desc.bars, err);
    if (rc < 0)
        return rc;
    v->rom_size = l->rom_size;
    for (unsigned i = 0; i < l->ncaps && i < VPCI_CFG_MAX_CAPS; i++) {
        const struct vpci_layout_cap *c = &l->caps[i];
        struct vcap vc = {.id = c->id, .off = c->off, .len = c->len};
        if (c->policy == VPCI_LAYOUT_EMULATED) {
            rc = irq_cap(v, p, c, dev_cap(p->cfg, offs, n, c->id), err);
            if (rc < 0)
                return rc;
        } else if (c->policy == VPCI_LAYOUT_SYNTHESISED) {
            memcpy(v->shadow + c->off + 2, c->data + 2, c->len - 2U); /* read-only */
        } else {
            vpci_cfg_shadow_cap(v, p->cfg + dev_cap(p->cfg, offs, n, c->id), &vc);
            for (unsigned k = 2; k < c->len; k++)
                if (c->fixed[k]) {
                    v->shadow[c->off + k] = c->data[k];
                    v->wmask[c->off + k] = 0;
                }
        }
        v->caps[v->ncaps++] = vc;
    }
    vpci_cfg_link_caps(v); /* hidden ranges: no capability there, so they read 0 */
    return 0;
}

int vpci_cfg_to_layout(struct vpci_cfg *v, struct vpci_layout *l)
{
    memset(l, 0, sizeof(*l));
    l->vendor = v->desc.vendor;
    l->device = v->desc.device;
    l->subsys_vendor = v->desc.subsys_vendor;
    l->subsys_id = v->desc.subsys_id;
    l->revision = v->desc.revision;
    l->class_code = v->desc.class_code;
    l->intx_pin = v->desc.irq_pin;
    l->rom_size = v->rom_size;
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        l->bars[i] = (struct vpci_layout_bar){.type = v->desc.bars[i].type,
                                              .size = v->desc.bars[i].size,
                                              .prefetchable = v->desc.bars[i].prefetchable};
    for (unsigned i = 0; i < v->ncaps && i < VPCI_LAYOUT_MAX_CAPS; i++) {
        const struct vcap *c = &v->caps[i];
        struct vpci_layout_cap *lc = &l->caps[l->ncaps++];
        *lc = (struct vpci_layout_cap){
            .off = c->off, .id = c->id, .len = c->len, .policy = VPCI_LAYOUT_PASSTHROUGH};
        /* What the guest reads today is what the emulation shows. */
        uint32_t ctrl = vpci_cfg_read(v, c->off + 2U, 2);
        if (c->id == VPCI_CAP_ID_MSI) {
            lc->policy = VPCI_LAYOUT_EMULATED;
            lc->vectors = 1U << ((ctrl & VPCI_MSI_CTRL_MMC) >> 1);
            lc->msi_64bit = ctrl & VPCI_MSI_CTRL_64BIT;
            lc->msi_maskable = ctrl & VPCI_MSI_CTRL_MASKBIT;
        } else if (c->id == VPCI_CAP_ID_MSIX) {
            uint32_t t = vpci_cfg_read(v, c->off + 4U, 4), pb = vpci_cfg_read(v, c->off + 8U, 4);
            lc->policy = VPCI_LAYOUT_EMULATED;
            lc->vectors = (ctrl & VPCI_MSIX_CTRL_QSIZE) + 1U;
            lc->table_bir = (uint8_t)(t & 7U);
            lc->table_off = t & ~7U;
            lc->pba_bir = (uint8_t)(pb & 7U);
            lc->pba_off = pb & ~7U;
        }
    }
    return 0;
}
