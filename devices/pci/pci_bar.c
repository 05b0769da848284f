/*
 * BARs (see pci.h): the registers' sizing semantics, the map of decoded
 * BARs inside the bus's windows (refusing what would sit over RAM or over
 * another BAR), dispatch of window accesses to the BAR they hit, and the
 * boot-time allocator that plays firmware.
 */
#include "devices/pci/pci_internal.h"

#include <errno.h>
#include <string.h>

#include "vmm/log.h"

static const struct pci_bar_desc *bar_desc(const struct pci_func *f, unsigned bar)
{
    return &f->d.bars[bar];
}

/* Is `bar` the upper half of the MEM64 BAR before it? */
static bool is_upper(const struct pci_func *f, unsigned bar)
{
    return bar > 0 && bar_desc(f, bar - 1)->type == PCI_BAR_MEM64;
}

int pci_bars_check(const struct pci_func_desc *d)
{
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        const struct pci_bar_desc *bd = &d->bars[i];
        uint64_t s = bd->size;
        switch (bd->type) {
        case PCI_BAR_NONE:
            if (s || bd->prefetchable)
                return -EINVAL;
            continue;
        case PCI_BAR_IO:
            if (s < 4 || s > 256 || bd->prefetchable)
                return -EINVAL;
            break;
        case PCI_BAR_MEM32:
            if (s < 16 || s > (1ULL << 30))
                return -EINVAL;
            break;
        case PCI_BAR_MEM64:
            if (s < 16 || s > (1ULL << 40) || i + 1 >= PCI_NUM_BARS ||
                d->bars[i + 1].type != PCI_BAR_NONE)
                return -EINVAL;
            break;
        default:
            return -EINVAL;
        }
        if (s & (s - 1))
            return -EINVAL;
        /* (a BAR after a MEM64 one is refused above: that slot is its upper half) */
    }
    return 0;
}

/* The writable bits of BAR register `bar`. */
static uint32_t reg_mask(const struct pci_func *f, unsigned bar)
{
    if (is_upper(f, bar))
        return (uint32_t)(~(bar_desc(f, bar - 1)->size - 1) >> 32);
    const struct pci_bar_desc *bd = bar_desc(f, bar);
    switch (bd->type) {
    case PCI_BAR_IO:
        return (uint32_t) ~(bd->size - 1) & ~3U;
    case PCI_BAR_MEM32:
    case PCI_BAR_MEM64:
        return (uint32_t) ~(bd->size - 1) & ~0xfU;
    default:
        return 0;
    }
}

uint32_t pci_bar_reg_read(const struct pci_func *f, unsigned bar)
{
    uint32_t v = f->bar_reg[bar];
    if (is_upper(f, bar))
        return v;
    const struct pci_bar_desc *bd = bar_desc(f, bar);
    switch (bd->type) {
    case PCI_BAR_IO:
        return v | PCI_BAR_IO_FLAG;
    case PCI_BAR_MEM32:
        return v | (bd->prefetchable ? PCI_BAR_PREFETCH_FLAG : 0);
    case PCI_BAR_MEM64:
        return v | PCI_BAR_MEM64_FLAG | (bd->prefetchable ? PCI_BAR_PREFETCH_FLAG : 0);
    default:
        return 0;
    }
}

void pci_bar_reg_write(struct pci_func *f, unsigned bar, uint32_t val)
{
    f->bar_reg[bar] = val & reg_mask(f, bar);
}

static enum pci_space bar_space(const struct pci_func *f, unsigned bar)
{
    return bar_desc(f, bar)->type == PCI_BAR_IO ? PCI_SPACE_IO : PCI_SPACE_MEM;
}

static uint64_t bar_addr(const struct pci_func *f, unsigned bar)
{
    uint64_t a = f->bar_reg[bar];
    if (bar_desc(f, bar)->type == PCI_BAR_MEM64)
        a |= (uint64_t)f->bar_reg[bar + 1] << 32;
    return a;
}

static bool in_window(uint64_t wbase, uint64_t wsize, uint64_t a, uint64_t s)
{
    return wsize && a >= wbase && a - wbase <= wsize && s <= wsize - (a - wbase);
}

/* Does [a, a + s) lie wholly inside a window of `space`? */
static bool fits_windows(const struct pci_windows *w, enum pci_space space, uint64_t a, uint64_t s)
{
    if (space == PCI_SPACE_IO)
        return in_window(w->io_base, w->io_size, a, s);
    return in_window(w->mmio32_base, w->mmio32_size, a, s) ||
           in_window(w->mmio64_base, w->mmio64_size, a, s);
}

/* Should BAR `bar` be decoded where its registers say (ignoring other BARs)? */
static bool wants_map(const struct pci_func *f, unsigned bar, uint64_t *gpa)
{
    const struct pci_bar_desc *bd = bar_desc(f, bar);
    if (!f->present || !f->d.generic_header || bd->type == PCI_BAR_NONE || is_upper(f, bar))
        return false;
    uint16_t need = bd->type == PCI_BAR_IO ? PCI_CMD_IO : PCI_CMD_MEMORY;
    if (!(f->command & need))
        return false;
    /* 0 is "not assigned" (what firmware leaves and Linux writes to free a
     * BAR); it is never in a window, so this only keeps it out of the log. */
    *gpa = bar_addr(f, bar);
    return *gpa != 0;
}

static void unmap(struct pci_func *f, unsigned bar)
{
    f->mapped[bar] = false;
    if (f->ops->bar_unmap)
        f->ops->bar_unmap(f->opaque, bar, bar_space(f, bar), f->map_gpa[bar],
                          bar_desc(f, bar)->size);
}

/* Does [a, a + s) in `space` overlap a mapped BAR? */
static bool hits_mapped(const struct pci_bus *b, enum pci_space space, uint64_t a, uint64_t s)
{
    for (unsigned i = 0; i < PCI_MAX_FUNCS; i++) {
        const struct pci_func *f = &b->f[i];
        if (!f->present)
            continue;
        for (unsigned bar = 0; bar < PCI_NUM_BARS; bar++)
            if (f->mapped[bar] && bar_space(f, bar) == space &&
                ranges_overlap(f->map_gpa[bar], bar_desc(f, bar)->size, a, s))
                return true;
    }
    return false;
}

void pci_bars_update(struct pci_bus *b)
{
    /* First take down every mapping that moved or lost its decode bit, so
     * the second pass sees only mappings that stay. */
    for (unsigned i = 0; i < PCI_MAX_FUNCS; i++) {
        struct pci_func *f = &b->f[i];
        for (unsigned bar = 0; f->present && bar < PCI_NUM_BARS; bar++) {
            uint64_t gpa;
            if (f->mapped[bar] && !(wants_map(f, bar, &gpa) && gpa == f->map_gpa[bar]))
                unmap(f, bar);
        }
    }
    for (unsigned i = 0; i < PCI_MAX_FUNCS; i++) {
        struct pci_func *f = &b->f[i];
        for (unsigned bar = 0; f->present && bar < PCI_NUM_BARS; bar++) {
            uint64_t gpa, size = bar_desc(f, bar)->size;
            if (f->mapped[bar] || !wants_map(f, bar, &gpa))
                continue;
            enum pci_space space = bar_space(f, bar);
            const char *why = NULL;
            if (!fits_windows(&b->w, space, gpa, size))
                why = "outside the PCI windows (over RAM or another device)";
            else if (hits_mapped(b, space, gpa, size))
                why = "over another BAR";
            if (why) {
                /* The register keeps the value; nothing is decoded there.
                 * Counted and logged once per new address. */
                if (f->refused[bar] && f->refused_gpa[bar] == gpa)
                    continue;
                f->refused[bar] = true;
                f->refused_gpa[bar] = gpa;
                b->refused++;
                log_ratelimited(LOG_WARN,
                                "pci %02x.%u: BAR%u at 0x%llx (size 0x%llx) %s: not mapped",
                                i / PCI_FUNCS, i % PCI_FUNCS, bar, (unsigned long long)gpa,
                                (unsigned long long)size, why);
                continue;
            }
            f->refused[bar] = false;
            f->mapped[bar] = true;
            f->map_gpa[bar] = gpa;
            if (f->ops->bar_map)
                f->ops->bar_map(f->opaque, bar, space, gpa, size);
        }
    }
}

bool pci_bar_mapped(struct pci_bus *b, unsigned devfn, unsigned bar, uint64_t *gpa)
{
    if (devfn >= PCI_MAX_FUNCS || bar >= PCI_NUM_BARS)
        return false;
    pthread_mutex_lock(&b->lock);
    const struct pci_func *f = &b->f[devfn];
    bool m = f->present && f->mapped[bar];
    if (m)
        *gpa = f->map_gpa[bar];
    pthread_mutex_unlock(&b->lock);
    return m;
}

/* ---- window dispatch ---- */

void *pci_window_handle(struct pci_bus *b, enum pci_space space, uint64_t base)
{
    for (unsigned i = 0; i < b->nwh; i++)
        if (b->wh[i].space == space && b->wh[i].base == base)
            return &b->wh[i];
    if (b->nwh >= ARRAY_SIZE(b->wh))
        return NULL;
    b->wh[b->nwh] = (struct pci_window_h){.bus = b, .space = space, .base = base};
    return &b->wh[b->nwh++];
}

/* The mapped BAR wholly containing [a, a + len): its function and offset. */
static struct pci_func *find_bar(struct pci_bus *b, enum pci_space space, uint64_t a, unsigned len,
                                 unsigned *bar, uint64_t *off)
{
    for (unsigned i = 0; i < PCI_MAX_FUNCS; i++) {
        struct pci_func *f = &b->f[i];
        for (unsigned n = 0; f->present && n < PCI_NUM_BARS; n++) {
            if (!f->mapped[n] || bar_space(f, n) != space)
                continue;
            if (in_window(f->map_gpa[n], bar_desc(f, n)->size, a, len)) {
                *bar = n;
                *off = a - f->map_gpa[n];
                return f;
            }
        }
    }
    return NULL;
}

void pci_window_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct pci_window_h *h = opaque;
    unsigned bar = 0;
    uint64_t boff = 0;
    pthread_mutex_lock(&h->bus->lock);
    struct pci_func *f = find_bar(h->bus, h->space, h->base + off, len, &bar, &boff);
    pthread_mutex_unlock(&h->bus->lock);
    /* Functions are never removed, so f stays valid without the lock. */
    if (f && f->ops->bar_read)
        f->ops->bar_read(f->opaque, bar, boff, data, len);
    else
        memset(data, 0xff, len);
}

void pci_window_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
    struct pci_window_h *h = opaque;
    unsigned bar = 0;
    uint64_t boff = 0;
    pthread_mutex_lock(&h->bus->lock);
    struct pci_func *f = find_bar(h->bus, h->space, h->base + off, len, &bar, &boff);
    pthread_mutex_unlock(&h->bus->lock);
    if (f && f->ops->bar_write)
        f->ops->bar_write(f->opaque, bar, boff, data, len);
}

/* ---- boot-time placement ---- */

struct cursor {
    uint64_t next, end;
};

static bool place(struct cursor *c, uint64_t size, uint64_t *gpa)
{
    uint64_t a = (c->next + size - 1) & ~(size - 1);
    if (a < c->next || a > c->end || size > c->end - a)
        return false;
    *gpa = a;
    c->next = a + size;
    return true;
}

int pci_bus_assign(struct pci_bus *b, struct errbuf *err)
{
    const struct pci_windows *w = &b->w;
    struct cursor c32 = {w->mmio32_base, w->mmio32_base + w->mmio32_size};
    struct cursor c64 = {w->mmio64_base, w->mmio64_base + w->mmio64_size};
    struct cursor cio = {w->io_base, w->io_base + w->io_size};
    bool done[PCI_MAX_FUNCS][PCI_NUM_BARS];
    memset(done, 0, sizeof(done));
    int ret = 0;
    pthread_mutex_lock(&b->lock);
    /* Largest first: with power-of-two sizes, bump allocation then keeps
     * every BAR naturally aligned with no gaps between them. */
    for (;;) {
        struct pci_func *best = NULL;
        unsigned bi = 0, bbar = 0;
        for (unsigned i = 0; i < PCI_MAX_FUNCS; i++) {
            struct pci_func *f = &b->f[i];
            for (unsigned n = 0; f->present && f->d.generic_header && n < PCI_NUM_BARS; n++) {
                const struct pci_bar_desc *bd = bar_desc(f, n);
                if (bd->type == PCI_BAR_NONE || is_upper(f, n) || done[i][n])
                    continue;
                if (!best || bd->size > bar_desc(best, bbar)->size) {
                    best = f;
                    bi = i;
                    bbar = n;
                }
            }
        }
        if (!best)
            break;
        done[bi][bbar] = true;
        const struct pci_bar_desc *bd = bar_desc(best, bbar);
        uint64_t gpa = 0;
        bool ok;
        if (bd->type == PCI_BAR_IO)
            ok = place(&cio, bd->size, &gpa);
        else if (bd->type == PCI_BAR_MEM64)
            ok = place(&c64, bd->size, &gpa) || place(&c32, bd->size, &gpa);
        else
            ok = place(&c32, bd->size, &gpa);
        if (!ok) {
            ret = err_set(err, WISP_EXIT_USAGE, ENOSPC,
                          "PCI %02x.%u: BAR%u (0x%llx bytes) does not fit its window",
                          bi / PCI_FUNCS, bi % PCI_FUNCS, bbar, (unsigned long long)bd->size);
            break;
        }
        best->bar_reg[bbar] = (uint32_t)gpa & reg_mask(best, bbar);
        if (bd->type == PCI_BAR_MEM64)
            best->bar_reg[bbar + 1] = (uint32_t)(gpa >> 32) & reg_mask(best, bbar + 1);
        best->command |= bd->type == PCI_BAR_IO ? PCI_CMD_IO : PCI_CMD_MEMORY;
    }
    if (ret == 0)
        pci_bars_update(b);
    pthread_mutex_unlock(&b->lock);
    return ret;
}
