/*
 * A passed-through function's config space as the guest sees it (see
 * vpci_cfg.h and docs/VPCI.md): the device's snapshot is parsed once, every
 * pointer in it checked, and the guest is answered from a shadow that
 * holds only the capabilities on the allow-list, chained anew.
 */
#include "devices/vfio/vpci_cfg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/vfio/vpci_cfg_internal.h"
#include "vmm/log.h"

/* A BAR the bus would take (the same rules as pci_bus_add's check). */
int vpci_cfg_bars_check(const struct pci_bar_desc *bars, struct errbuf *err)
{
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        const struct pci_bar_desc *b = &bars[i];
        uint64_t s = b->size, lo = 16, hi = 1ULL << 30;
        switch (b->type) {
        case PCI_BAR_NONE:
            if (s || b->prefetchable)
                goto bad;
            continue;
        case PCI_BAR_IO:
            lo = 4;
            hi = 256;
            if (b->prefetchable)
                goto bad;
            break;
        case PCI_BAR_MEM32:
            break;
        case PCI_BAR_MEM64:
            hi = 1ULL << 40;
            if (i + 1 >= PCI_NUM_BARS || bars[i + 1].type != PCI_BAR_NONE)
                goto bad;
            break;
        default:
            goto bad;
        }
        if (s < lo || s > hi || !is_pow2(s))
            goto bad;
        continue;
    bad:
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "vpci: BAR%u (type %d, size 0x%llx) cannot be exposed", i, (int)b->type,
                       (unsigned long long)s);
    }
    return 0;
}

/*
 * Walk the device's capability list once.  Stops (keeping what it found)
 * at a pointer below 0x40, unaligned, whose capability header would run
 * past the legacy space, or already visited, and after
 * VPCI_CFG_MAX_CAPS capabilities.  Fills offs[] in chain order.
 */
unsigned vpci_cfg_walk_caps(const uint8_t *cfg, uint8_t offs[VPCI_CFG_MAX_CAPS])
{
    uint64_t seen = 0; /* one bit per dword 0x40..0xfc */
    unsigned n = 0;
    if (!(le16_get(cfg + CFG_STATUS) & PCI_STATUS_CAP_LIST))
        return 0;
    unsigned ptr = cfg[CFG_CAP_PTR];
    while (ptr) {
        if (n >= VPCI_CFG_MAX_CAPS || ptr < PCI_CFG_HEADER_END || (ptr & 3U) ||
            ptr + 2 > VPCI_CFG_LEGACY || (seen >> ((ptr - PCI_CFG_HEADER_END) / 4) & 1U)) {
            log_msg(LOG_WARN, "vpci: capability list cut at 0x%x after %u entries", ptr, n);
            break;
        }
        seen |= 1ULL << ((ptr - PCI_CFG_HEADER_END) / 4);
        offs[n++] = (uint8_t)ptr;
        ptr = cfg[ptr + 1];
    }
    return n;
}

/* The guest-visible length of capability `id` at `off`, 0 to hide it. */
unsigned vpci_cfg_cap_len(const uint8_t *cfg, uint8_t id, unsigned off)
{
    switch (id) {
    case VPCI_CAP_ID_PM:
        return PM_LEN;
    case VPCI_CAP_ID_MSI:
        return vpci_msi_cap_len(le16_get(cfg + off + 2));
    case VPCI_CAP_ID_MSIX:
        return VPCI_MSIX_CAP_LEN;
    case VPCI_CAP_ID_EXP:
        return (cfg[off + EXP_FLAGS] & 0xfU) >= 2 ? EXP_V2_LEN : EXP_V1_LEN;
    default:
        return 0; /* vendor-specific and everything else: hidden */
    }
}

static bool cap_kept(const struct vpci_cfg *v, uint8_t id)
{
    for (unsigned i = 0; i < v->ncaps; i++)
        if (v->caps[i].id == id)
            return true;
    return false;
}

static bool overlaps_kept(const struct vpci_cfg *v, unsigned off, unsigned len)
{
    for (unsigned i = 0; i < v->ncaps; i++)
        if (ranges_overlap(off, len, v->caps[i].off, v->caps[i].len))
            return true;
    return false;
}

/* Put `val` at capability byte `rel` of `buf` (the shadow or the write
 * mask at the capability's offset) only if it lies inside the capability:
 * a layout may cut a capability short, and the next one may follow. */
static void put16_in(uint8_t *buf, const struct vcap *c, unsigned rel, uint16_t val)
{
    if (rel + 2 <= c->len)
        le16_put(buf + rel, val);
}

void vpci_cfg_shadow_cap(struct vpci_cfg *v, const uint8_t *src, const struct vcap *c)
{
    uint8_t *s = v->shadow + c->off, *w = v->wmask + c->off;
    memcpy(s, src, c->len);
    if (c->id == VPCI_CAP_ID_PM) {
        /* No PME (wisp cannot deliver it); always D0, so BARs stay mapped. */
        put16_in(s, c, PM_PMC, le16_get(src + PM_PMC) & 0x07ffU);
        put16_in(s, c, PM_PMCSR, 0);
        return;
    }
    if (c->id != VPCI_CAP_ID_EXP)
        return;
    /* PCIe: no FLR (reset belongs to the transport); control registers
     * are the guest's scratch copy, never forwarded. */
    if (EXP_DEVCAP + 4 <= c->len)
        le32_put(s + EXP_DEVCAP, le32_get(src + EXP_DEVCAP) & ~EXP_FLR_CAP);
    put16_in(w, c, EXP_DEVCTL, 0x7fffU); /* not bit 15, Initiate FLR */
    put16_in(w, c, EXP_LNKCTL, 0x0fcbU); /* not Link Disable, Retrain */
    if (c->len == EXP_V2_LEN)
        put16_in(w, c, EXP_DEVCTL2, 0xffffU);
}

/* Set up the MSI or MSI-X emulation for a found capability: false hides it. */
static bool irq_cap(struct vpci_cfg *v, const struct vpci_cfg_params *p, const struct vcap *c)
{
    int rc;
    if (c->id == VPCI_CAP_ID_MSI) {
        rc = vpci_msi_init(&v->msi, le16_get(p->cfg + c->off + 2), p->msi_vectors, &p->win,
                           p->irq_ops, p->irq_opaque);
        v->has_msi = rc == 0;
    } else {
        rc = vpci_msix_init(&v->msix, p->cfg + c->off, p->msix_vectors, p->bars, &p->win,
                            p->irq_ops, p->irq_opaque);
        v->has_msix = rc == 0;
    }
    if (rc < 0)
        log_msg(LOG_WARN, "vpci: %s capability at 0x%x hidden (%d)",
                c->id == VPCI_CAP_ID_MSI ? "MSI" : "MSI-X", c->off, rc);
    return rc == 0;
}

/* Keep the allowed capabilities, in chain order, and chain them anew. */
static void build_caps(struct vpci_cfg *v, const struct vpci_cfg_params *p)
{
    uint8_t offs[VPCI_CFG_MAX_CAPS];
    unsigned n = vpci_cfg_walk_caps(p->cfg, offs);
    for (unsigned i = 0; i < n; i++) {
        unsigned off = offs[i];
        uint8_t id = p->cfg[off];
        unsigned len = vpci_cfg_cap_len(p->cfg, id, off);
        if (!len || off + len > VPCI_CFG_LEGACY || cap_kept(v, id) || overlaps_kept(v, off, len))
            continue; /* hidden, too long, a duplicate or overlapping: dropped */
        struct vcap c = {.id = id, .off = (uint8_t)off, .len = (uint8_t)len};
        if (id == VPCI_CAP_ID_MSI || id == VPCI_CAP_ID_MSIX) {
            if (!irq_cap(v, p, &c))
                continue;
        } else {
            vpci_cfg_shadow_cap(v, p->cfg + c.off, &c);
        }
        v->caps[v->ncaps++] = c;
    }
    vpci_cfg_link_caps(v);
}

void vpci_cfg_link_caps(struct vpci_cfg *v)
{
    for (unsigned i = 0; i < v->ncaps; i++) {
        v->shadow[v->caps[i].off] = v->caps[i].id;
        v->shadow[v->caps[i].off + 1] = i + 1 < v->ncaps ? v->caps[i + 1].off : 0;
        /* id and next pointer are never writable */
        v->wmask[v->caps[i].off] = v->wmask[v->caps[i].off + 1] = 0;
    }
    v->desc.cap_ptr = v->ncaps ? v->caps[0].off : 0;
}

int vpci_cfg_new(const struct vpci_cfg_params *p, struct vpci_cfg **out, struct errbuf *err)
{
    int rc;
    *out = NULL;
    if (!p->cfg || (p->cfg_len != VPCI_CFG_LEGACY && p->cfg_len != PCI_CFG_SIZE) || !p->irq_ops)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "vpci: no usable config space snapshot");
    if (p->cfg[CFG_HEADER_TYPE] & HEADER_TYPE_MASK)
        return err_set(err, WISP_EXIT_USAGE, ENOTSUP,
                       "vpci: header type 0x%x is not a type-0 "
                       "function",
                       p->cfg[CFG_HEADER_TYPE] & HEADER_TYPE_MASK);
    rc = vpci_cfg_bars_check(p->bars, err);
    if (rc < 0)
        return rc;
    struct vpci_cfg *v = calloc(1, sizeof(*v));
    if (!v)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "vpci: out of memory");
    if (p->layout) {
        rc = vpci_cfg_layout_build(v, p, err);
        if (rc < 0) {
            vpci_cfg_free(v);
            return rc;
        }
        *out = v;
        return 0;
    }
    const uint8_t *c = p->cfg;
    v->desc = (struct pci_func_desc){
        .vendor = le16_get(c),
        .device = le16_get(c + 2),
        .class_code = le32_get(c + CFG_REVISION) >> 8,
        .revision = c[CFG_REVISION],
        .subsys_vendor = le16_get(c + CFG_SUBSYS),
        .subsys_id = le16_get(c + CFG_SUBSYS + 2),
        .irq_pin = p->intx && c[CFG_INT_PIN] >= 1 && c[CFG_INT_PIN] <= 4 ? c[CFG_INT_PIN] : 0,
        .generic_header = true,
    };
    memcpy(v->desc.bars, p->bars, sizeof(v->desc.bars));
    if (p->rom_size >= 2048 && p->rom_size <= (1ULL << 31) && is_pow2(p->rom_size))
        v->rom_size = p->rom_size;
    else if (p->rom_size)
        log_msg(LOG_WARN, "vpci: ROM of 0x%llx bytes hidden", (unsigned long long)p->rom_size);
    build_caps(v, p);
    *out = v;
    return 0;
}

void vpci_cfg_free(struct vpci_cfg *v)
{
    if (!v)
        return;
    if (v->has_msix)
        vpci_msix_destroy(&v->msix);
    if (v->has_msi)
        vpci_msi_destroy(&v->msi);
    free(v);
}

const struct pci_func_desc *vpci_cfg_desc(const struct vpci_cfg *v)
{
    return &v->desc;
}

/* The kept capability holding byte `off`, or NULL. */
static const struct vcap *cap_at(const struct vpci_cfg *v, unsigned off)
{
    for (unsigned i = 0; i < v->ncaps; i++)
        if (off >= v->caps[i].off && off - v->caps[i].off < 4U * ((v->caps[i].len + 3U) / 4))
            return &v->caps[i];
    return NULL;
}

/* An aligned 1/2/4-byte access inside 0x40..0xff (no wrap-around). */
static bool access_ok(unsigned off, unsigned len)
{
    return (len == 1 || len == 2 || len == 4) && off % len == 0 && off >= PCI_CFG_HEADER_END &&
           off < VPCI_CFG_LEGACY && len <= VPCI_CFG_LEGACY - off;
}

uint32_t vpci_cfg_read(struct vpci_cfg *v, unsigned off, unsigned len)
{
    if (!access_ok(off, len))
        return 0; /* extended space: nothing there */
    uint32_t val = 0;
    for (unsigned i = 0; i < len; i++)
        val |= (uint32_t)v->shadow[off + i] << (8 * i);
    /* An aligned access of <= 4 bytes touches one dword, so one capability. */
    const struct vcap *c = cap_at(v, off);
    if (!c || (c->id != VPCI_CAP_ID_MSI && c->id != VPCI_CAP_ID_MSIX))
        return val;
    unsigned rel = off - c->off;
    uint32_t emu = c->id == VPCI_CAP_ID_MSI ? vpci_msi_cap_read(&v->msi, rel, len)
                                            : vpci_msix_cap_read(&v->msix, rel, len);
    return val | emu; /* emulation reads 0 at id/next, the shadow 0 elsewhere */
}

/* Clear bit `bit` of capability byte `at` from a write of `len` bytes at
 * capability offset `rel`. */
static uint32_t drop_bit(unsigned rel, unsigned len, uint32_t val, unsigned at, unsigned bit)
{
    if (rel <= at && at < rel + len)
        val &= ~(1U << ((at - rel) * 8 + bit));
    return val;
}

void vpci_cfg_write(struct vpci_cfg *v, unsigned off, unsigned len, uint32_t val)
{
    if (!access_ok(off, len))
        return;
    const struct vcap *c = cap_at(v, off);
    if (!c)
        return; /* hidden or unused: dropped */
    unsigned rel = off - c->off;
    /* MSI and MSI-X are never on together (the transport could not do
     * both): whichever the guest enabled first wins, the other's enable
     * bit is dropped.  Both change only here, under the bus lock. */
    if (c->id == VPCI_CAP_ID_MSI) {
        if (v->has_msix && vpci_msix_enabled(&v->msix))
            val = drop_bit(rel, len, val, 2, 0);
        vpci_msi_cap_write(&v->msi, rel, len, val);
    } else if (c->id == VPCI_CAP_ID_MSIX) {
        if (v->has_msi && vpci_msi_enabled(&v->msi))
            val = drop_bit(rel, len, val, 3, 7);
        vpci_msix_cap_write(&v->msix, rel, len, val);
    } else {
        for (unsigned i = 0; i < len; i++) {
            uint8_t m = v->wmask[off + i], b = (uint8_t)(val >> (8 * i));
            v->shadow[off + i] = (uint8_t)((v->shadow[off + i] & ~m) | (b & m));
        }
    }
}

struct vpci_msix *vpci_cfg_msix(struct vpci_cfg *v)
{
    return v->has_msix ? &v->msix : NULL;
}

struct vpci_msi *vpci_cfg_msi(struct vpci_cfg *v)
{
    return v->has_msi ? &v->msi : NULL;
}

unsigned vpci_cfg_cap_offset(const struct vpci_cfg *v, uint8_t id)
{
    for (unsigned i = 0; i < v->ncaps; i++)
        if (v->caps[i].id == id)
            return v->caps[i].off;
    return 0;
}

bool vpci_cfg_signal(struct vpci_cfg *v, enum vpci_irq_kind kind, unsigned vec)
{
    if (kind == VPCI_IRQ_MSIX)
        return v->has_msix && vpci_msix_signal(&v->msix, vec);
    return v->has_msi && vpci_msi_signal(&v->msi, vec);
}

uint32_t vpci_cfg_rom_read(struct vpci_cfg *v)
{
    return v->rom_size ? v->rom_reg : 0;
}

void vpci_cfg_rom_write(struct vpci_cfg *v, uint32_t val)
{
    if (v->rom_size)
        v->rom_reg = (val & (uint32_t) ~(v->rom_size - 1) & ROM_ADDR_MASK) | (val & ROM_ENABLE);
}
