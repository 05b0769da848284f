/*
 * The passthrough PCI function (vfio_pci.h): config space through vpci_cfg,
 * BARs as KVM slots or trapped region accesses, MSI/MSI-X through KVM's
 * routing table and irqfds, whatever the transport.  Why a function split
 * from its transports: see vfio_pci.h.
 */
#include "devices/vfio/vfio_pci.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/vfio/vpci_cfg.h"
#include "vmm/irq_routing.h"
#include "vmm/log.h"

#define MAX_SLOTS_PER_BAR 8U
#define PAGE              4096ULL

struct vec_state {
    int gsi; /* -1: none */
    int fd;  /* the irqfd's eventfd, also the device's trigger; -1: none */
};

struct bar_state {
    void *mm[16]; /* mmap of each area of the region, or NULL */
    size_t mmlen[16];
    unsigned nslots;
    unsigned slot[MAX_SLOTS_PER_BAR];
};

struct vfio_pci {
    struct vfio_pci_host h;
    char id[32];
    const struct vfio_pci_transport *ops;
    void *t;
    struct vfio_pci_region regions[VFIO_PCI_NREGIONS];
    struct vpci_cfg *cfg;
    struct bar_state bar[PCI_NUM_BARS];
    unsigned ntrap;
    struct vpci_trap_range trap[2];
    unsigned trap_bar[2];
    struct vec_state msi[VPCI_MSI_MAX_VECTORS];
    struct vec_state *msix;
    unsigned nmsix;
    atomic_bool failed;
    atomic_bool failed_logged;
};

static struct irq_routing *routing(struct vfio_pci *p)
{
    return p->h.routing;
}

/* ---- transport failure ------------------------------------------------------------------ */

static bool check_failed(struct vfio_pci *p)
{
    if (atomic_load(&p->failed))
        return true;
    if (p->ops->failed && p->ops->failed(p->t)) {
        atomic_store(&p->failed, true);
        if (!atomic_exchange(&p->failed_logged, true))
            log_error("device %s: %s transport failed; its BARs read all-ones from now on", p->id,
                      p->ops->name);
        return true;
    }
    return false;
}

bool vfio_pci_failed(struct vfio_pci *p)
{
    return check_failed(p);
}

void vfio_pci_parts(struct vfio_pci *p, struct vfio_pci_parts *out)
{
    *out = (struct vfio_pci_parts){
        .id = p->id, .ops = p->ops, .t = p->t, .cfg = p->cfg, .mem = p->h.mem};
}

void vfio_pci_set_failed(struct vfio_pci *p)
{
    atomic_store(&p->failed, true);
}

/* ---- config space ------------------------------------------------------------------------ */

static uint32_t cfg_read(void *opaque, unsigned off, unsigned len)
{
    struct vfio_pci *p = opaque;
    return vpci_cfg_read(p->cfg, off, len);
}

static void cfg_write(void *opaque, unsigned off, unsigned len, uint32_t val)
{
    struct vfio_pci *p = opaque;
    vpci_cfg_write(p->cfg, off, len, val);
}

/* Forward decode and bus master to the device; INTx stays disabled (not wired). */
static void cmd_write(void *opaque, uint16_t cmd)
{
    struct vfio_pci *p = opaque;
    if (check_failed(p))
        return;
    uint16_t dev = 0;
    if (p->ops->region_read(p->t, VFIO_PCI_CFG_INDEX, PCI_CFG_COMMAND, &dev, 2) < 0)
        return;
    uint16_t fwd = PCI_CMD_IO | PCI_CMD_MEMORY | PCI_CMD_MASTER;
    dev = (uint16_t)((dev & ~fwd) | (cmd & fwd) | PCI_CMD_INTX_DISABLE);
    if (p->ops->region_write(p->t, VFIO_PCI_CFG_INDEX, PCI_CFG_COMMAND, &dev, 2) < 0)
        log_warn("device %s: cannot forward the command register", p->id);
}

/* ---- BARs -------------------------------------------------------------------------------- */

static void add_slot(struct vfio_pci *p, unsigned bar, uint64_t gpa, uint64_t len, uint8_t *hva)
{
    struct bar_state *b = &p->bar[bar];
    if (!len)
        return;
    if (b->nslots == MAX_SLOTS_PER_BAR || !p->h.svc->mem_slot_add)
        return; /* the rest traps: slower, still correct */
    unsigned slot;
    int ret = p->h.svc->mem_slot_add(p->h.svc->ctx, gpa, len, hva, &slot);
    if (ret < 0) {
        log_warn("device %s: BAR%u 0x%llx+0x%llx traps instead of a memory slot: %s", p->id, bar,
                 (unsigned long long)gpa, (unsigned long long)len, strerror(-ret));
        return;
    }
    b->slot[b->nslots++] = slot;
    log_info("device %s: BAR%u 0x%llx+0x%llx as memory slot %u", p->id, bar,
             (unsigned long long)gpa, (unsigned long long)len, slot);
}

static void bar_map(void *opaque, unsigned bar, enum pci_space space, uint64_t gpa, uint64_t size)
{
    struct vfio_pci *p = opaque;
    const struct vfio_pci_region *r = &p->regions[bar];
    if (space != PCI_SPACE_MEM || (gpa & (PAGE - 1)) || check_failed(p))
        return;
    for (unsigned a = 0; a < r->nareas; a++) {
        uint8_t *mm = p->bar[bar].mm[a];
        if (!mm)
            continue;
        uint64_t start = r->areas[a].off, end = start + p->bar[bar].mmlen[a];
        if (end > size)
            end = size;
        /* Cut the MSI-X trap ranges (sorted, page granular) out of the area. */
        uint64_t cur = start;
        for (unsigned i = 0; i < p->ntrap && cur < end; i++) {
            if (p->trap_bar[i] != bar)
                continue;
            uint64_t ts = p->trap[i].off, te = ts + p->trap[i].len;
            if (te <= cur || ts >= end)
                continue;
            if (ts > cur)
                add_slot(p, bar, gpa + cur, ts - cur, mm + (cur - start));
            cur = te;
        }
        if (cur < end)
            add_slot(p, bar, gpa + cur, end - cur, mm + (cur - start));
    }
}

static void bar_unmap(void *opaque, unsigned bar, enum pci_space space, uint64_t gpa, uint64_t size)
{
    (void)space, (void)gpa, (void)size;
    struct vfio_pci *p = opaque;
    struct bar_state *b = &p->bar[bar];
    for (unsigned i = 0; i < b->nslots; i++)
        p->h.svc->mem_slot_remove(p->h.svc->ctx, b->slot[i]);
    b->nslots = 0;
}

static void bar_read(void *opaque, unsigned bar, uint64_t off, void *data, unsigned len)
{
    struct vfio_pci *p = opaque;
    struct vpci_msix *m = vpci_cfg_msix(p->cfg);
    if (m && vpci_msix_bar_read(m, bar, off, data, len))
        return;
    if (check_failed(p) || p->ops->region_read(p->t, bar, off, data, len) < 0) {
        memset(data, 0xff, len);
        check_failed(p);
    }
}

static void bar_write(void *opaque, unsigned bar, uint64_t off, const void *data, unsigned len)
{
    struct vfio_pci *p = opaque;
    struct vpci_msix *m = vpci_cfg_msix(p->cfg);
    if (m && vpci_msix_bar_write(m, bar, off, data, len))
        return;
    if (!check_failed(p) && p->ops->region_write(p->t, bar, off, data, len) < 0)
        check_failed(p);
}

static const struct pci_func_ops func_ops = {
    .cfg_read = cfg_read,
    .cfg_write = cfg_write,
    .cmd_write = cmd_write,
    .bar_map = bar_map,
    .bar_unmap = bar_unmap,
    .bar_read = bar_read,
    .bar_write = bar_write,
};

/* ---- MSI / MSI-X ------------------------------------------------------------------------- */

static struct vec_state *vec_of(struct vfio_pci *p, enum vpci_irq_kind kind, unsigned vec)
{
    if (kind == VPCI_IRQ_MSI)
        return vec < VPCI_MSI_MAX_VECTORS ? &p->msi[vec] : NULL;
    return vec < p->nmsix ? &p->msix[vec] : NULL;
}

static unsigned irq_index(enum vpci_irq_kind kind)
{
    return kind == VPCI_IRQ_MSI ? VFIO_PCI_IRQ_MSI : VFIO_PCI_IRQ_MSIX;
}

/*
 * Unbind the vector's irqfd and drop its route.  The eventfd stays attached
 * at the device: what the device raises while the vector is masked adds up
 * in its counter, and binding the irqfd again injects it once (KVM checks
 * the eventfd when an irqfd is assigned): the Pending Bit's behaviour.
 */
static void vec_unroute(struct vfio_pci *p, struct vec_state *v)
{
    if (v->gsi < 0)
        return;
    if (v->fd >= 0 && p->h.svc->irqfd_bind(p->h.svc->ctx, v->fd, (unsigned)v->gsi, false) < 0)
        log_warn("device %s: cannot unbind the irqfd of GSI %d", p->id, v->gsi);
    if (irq_routing_remove_msi(routing(p), (unsigned)v->gsi) == 0 &&
        irq_routing_commit(routing(p), p->h.vm_fd) < 0)
        log_warn("device %s: cannot commit the GSI table", p->id);
    v->gsi = -1;
}

/* Unroute, detach the eventfd at the device and close it. */
static void vec_close(struct vfio_pci *p, enum vpci_irq_kind kind, unsigned vec,
                      struct vec_state *v)
{
    vec_unroute(p, v);
    if (v->fd >= 0) {
        int none = -1;
        if (!check_failed(p))
            (void)p->ops->set_irqs(p->t, irq_index(kind), vec, 1, &none);
        close(v->fd);
        v->fd = -1;
    }
}

static int vector_install(void *opaque, enum vpci_irq_kind kind, unsigned vec, uint64_t addr,
                          uint32_t data)
{
    struct vfio_pci *p = opaque;
    struct vec_state *v = vec_of(p, kind, vec);
    if (!v)
        return -EINVAL;
    int ret;
    if (v->gsi >= 0) { /* new address/data for an installed vector */
        ret = irq_routing_set_msi(routing(p), (unsigned)v->gsi, addr, data);
        return ret < 0 ? ret : irq_routing_commit(routing(p), p->h.vm_fd);
    }
    if (v->fd < 0) { /* first use: an eventfd for the device to signal */
        if (check_failed(p))
            return -EIO;
        v->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (v->fd < 0)
            return -errno;
        ret = p->ops->set_irqs(p->t, irq_index(kind), vec, 1, &v->fd);
        if (ret < 0) {
            close(v->fd);
            v->fd = -1;
            goto fail;
        }
    }
    ret = irq_routing_add_msi(routing(p), IRQ_ROUTING_MSI_FIRST, addr, data);
    if (ret < 0)
        goto fail;
    v->gsi = ret;
    ret = irq_routing_commit(routing(p), p->h.vm_fd);
    if (ret == 0)
        ret = p->h.svc->irqfd_bind(p->h.svc->ctx, v->fd, (unsigned)v->gsi, true);
    if (ret < 0) {
        if (irq_routing_remove_msi(routing(p), (unsigned)v->gsi) == 0 &&
            irq_routing_commit(routing(p), p->h.vm_fd) < 0)
            log_warn("device %s: cannot commit the GSI table", p->id);
        v->gsi = -1;
        goto fail;
    }
    return 0;
fail:
    log_warn("device %s: cannot install %s vector %u: %s", p->id,
             kind == VPCI_IRQ_MSI ? "MSI" : "MSI-X", vec, strerror(-ret));
    return ret;
}

static void vector_remove(void *opaque, enum vpci_irq_kind kind, unsigned vec)
{
    struct vfio_pci *p = opaque;
    struct vec_state *v = vec_of(p, kind, vec);
    if (v)
        vec_unroute(p, v);
}

/* The mode changed at the device: every eventfd of `kind` is detached there. */
static void forget_fds(struct vfio_pci *p, enum vpci_irq_kind kind)
{
    unsigned n = kind == VPCI_IRQ_MSI ? VPCI_MSI_MAX_VECTORS : p->nmsix;
    for (unsigned i = 0; i < n; i++) {
        struct vec_state *v = vec_of(p, kind, i);
        vec_unroute(p, v);
        if (v->fd >= 0)
            close(v->fd);
        v->fd = -1;
    }
}

static int irq_mode(void *opaque, enum vpci_irq_kind kind, unsigned nvec)
{
    struct vfio_pci *p = opaque;
    forget_fds(p, kind);
    if (check_failed(p))
        return -EIO;
    if (nvec == 0)
        return p->ops->set_irqs(p->t, irq_index(kind), 0, 0, NULL);
    /* Enable the mode at the device with no triggers yet; vectors attach theirs. */
    int *fds = malloc(nvec * sizeof(*fds));
    if (!fds)
        return -ENOMEM;
    for (unsigned i = 0; i < nvec; i++)
        fds[i] = -1;
    int ret = p->ops->set_irqs(p->t, irq_index(kind), 0, nvec, fds);
    free(fds);
    if (ret < 0)
        log_warn("device %s: cannot enable %s at the device: %s", p->id,
                 kind == VPCI_IRQ_MSI ? "MSI" : "MSI-X", strerror(-ret));
    return ret;
}

static void vector_fire(void *opaque, enum vpci_irq_kind kind, unsigned vec)
{
    struct vfio_pci *p = opaque;
    struct vec_state *v = vec_of(p, kind, vec);
    uint64_t one = 1;
    if (v && v->fd >= 0 && write(v->fd, &one, sizeof(one)) < 0)
        log_warn("device %s: cannot inject a pending vector", p->id);
}

static const struct vpci_irq_ops irq_ops = {
    .vector_install = vector_install,
    .vector_remove = vector_remove,
    .mode = irq_mode,
    .vector_fire = vector_fire,
};

/* ---- creation ---------------------------------------------------------------------------- */

int vfio_pci_bars_from(const struct vfio_pci_region *regions, const char *id, const uint8_t *cfg,
                       struct pci_bar_desc *bars, struct errbuf *err)
{
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        uint64_t size = regions[i].size;
        if (!size)
            continue;
        if (size & (size - 1))
            return err_set(err, WISP_EXIT_FAILURE, EINVAL, "device %s: BAR%u size 0x%llx", id, i,
                           (unsigned long long)size);
        uint32_t reg;
        memcpy(&reg, cfg + PCI_CFG_BAR0 + 4 * i, 4);
        if (reg & PCI_BAR_IO_FLAG) {
            bars[i] = (struct pci_bar_desc){.size = size, .type = PCI_BAR_IO};
        } else if ((reg & 6) == PCI_BAR_MEM64_FLAG && i + 1 < PCI_NUM_BARS) {
            bars[i] = (struct pci_bar_desc){
                .size = size, .type = PCI_BAR_MEM64, .prefetchable = reg & PCI_BAR_PREFETCH_FLAG};
            i++; /* the upper half */
        } else {
            bars[i] = (struct pci_bar_desc){
                .size = size, .type = PCI_BAR_MEM32, .prefetchable = reg & PCI_BAR_PREFETCH_FLAG};
        }
    }
    return 0;
}

/* Is [off, off + len) inside one mmap area of layout BAR `lb`? */
static bool in_layout_area(const struct vpci_layout_bar *lb, uint64_t off, uint64_t len)
{
    for (unsigned k = 0; k < lb->nmmap && k < VPCI_LAYOUT_MAX_MMAP; k++)
        if (off >= lb->mmap[k].off && len <= lb->mmap[k].len &&
            off - lb->mmap[k].off <= lb->mmap[k].len - len)
            return true;
    return false;
}

/* A transport area we may mmap: page-aligned, not empty. */
static bool area_ok(const struct vfio_pci_region *r, unsigned a)
{
    return !((r->areas[a].off | r->areas[a].size) & (PAGE - 1)) && r->areas[a].size;
}

/*
 * mmap what the transport lets us map of each memory BAR (page-aligned
 * areas).  With a layout, only transport areas wholly inside the layout's
 * mmap areas: the rest is trapped (the guest reads the same bytes).
 */
static void map_areas(struct vfio_pci *p, const struct pci_bar_desc *bars,
                      const struct vpci_layout *l)
{
    if (!p->ops->mmap)
        return;
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        const struct vfio_pci_region *r = &p->regions[i];
        if (bars[i].type != PCI_BAR_MEM32 && bars[i].type != PCI_BAR_MEM64)
            continue;
        for (unsigned a = 0; a < r->nareas && a < 16; a++) {
            if (!area_ok(r, a) ||
                (l && !in_layout_area(&l->bars[i], r->areas[a].off, r->areas[a].size)))
                continue;
            void *addr;
            size_t len;
            if (p->ops->mmap(p->t, i, a, &addr, &len) == 0) {
                p->bar[i].mm[a] = addr;
                p->bar[i].mmlen[a] = len & ~(size_t)(PAGE - 1);
            }
        }
    }
}

/* Every mmap area of the layout inside one area the transport can map. */
static int layout_areas_check(const struct vfio_pci *p, const struct vpci_layout *l,
                              const char *name, struct errbuf *err)
{
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        const struct vfio_pci_region *r = &p->regions[i];
        for (unsigned k = 0; k < l->bars[i].nmmap && k < VPCI_LAYOUT_MAX_MMAP; k++) {
            const struct vpci_layout_area *la = &l->bars[i].mmap[k];
            bool ok = false;
            for (unsigned a = 0; p->ops->mmap && a < r->nareas && a < 16 && !ok; a++)
                ok = area_ok(r, a) && la->off >= r->areas[a].off && la->len <= r->areas[a].size &&
                     la->off - r->areas[a].off <= r->areas[a].size - la->len;
            if (!ok)
                return err_set(err, WISP_EXIT_USAGE, EINVAL,
                               "vpci layout %s: the device cannot honour it: BAR%u mmap area "
                               "0x%llx+0x%llx is not one the transport can map",
                               name, i, (unsigned long long)la->off, (unsigned long long)la->len);
        }
    }
    return 0;
}

int vfio_pci_create(const struct vfio_pci_host *h, const char *id,
                    const struct vfio_pci_transport *ops, void *t,
                    const struct vfio_pci_region regions[VFIO_PCI_NREGIONS],
                    const unsigned irq_count[3], const struct vfio_pci_layout *lay, unsigned devfn,
                    struct vfio_pci **out, struct errbuf *err)
{
    int ret;
    uint8_t *snap = NULL;
    struct vfio_pci *p = calloc(1, sizeof(*p));
    if (!p) {
        ops->destroy(t);
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    }
    p->h = *h;
    snprintf(p->id, sizeof(p->id), "%s", id);
    p->ops = ops;
    p->t = t;
    memcpy(p->regions, regions, sizeof(p->regions));
    for (unsigned i = 0; i < VPCI_MSI_MAX_VECTORS; i++)
        p->msi[i] = (struct vec_state){-1, -1};
    p->nmsix = MIN(irq_count[2], VPCI_MSIX_MAX_VECTORS);
    if (p->nmsix) {
        p->msix = malloc(p->nmsix * sizeof(*p->msix));
        if (!p->msix) {
            ret = err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
            goto fail;
        }
        for (unsigned i = 0; i < p->nmsix; i++)
            p->msix[i] = (struct vec_state){-1, -1};
    }

    unsigned cfg_len = regions[VFIO_PCI_CFG_INDEX].size >= PCI_CFG_SIZE ? PCI_CFG_SIZE : 256;
    if (regions[VFIO_PCI_CFG_INDEX].size < 256) {
        ret = err_set(err, WISP_EXIT_FAILURE, EINVAL, "device %s: no config space region", id);
        goto fail;
    }
    snap = malloc(cfg_len);
    if (!snap) {
        ret = err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
        goto fail;
    }
    ret = ops->region_read(t, VFIO_PCI_CFG_INDEX, 0, snap, cfg_len);
    if (ret < 0) {
        err_set(err, WISP_EXIT_FAILURE, -ret, "device %s: cannot read its config space: %s", id,
                strerror(-ret));
        goto fail;
    }
    struct vpci_cfg_params par = {
        .cfg = snap,
        .cfg_len = cfg_len,
        .rom_size = regions[VFIO_PCI_ROM_INDEX].size,
        .msi_vectors = irq_count[1],
        .msix_vectors = p->nmsix,
        .intx = false, /* INTx is not wired (vfio_pci.h) */
        .win = h->win,
        .irq_ops = &irq_ops,
        .irq_opaque = p,
        .layout = lay ? lay->layout : NULL,
        .layout_name = lay ? lay->name : NULL,
    };
    ret = vfio_pci_bars_from(p->regions, p->id, snap, par.bars, err);
    if (ret < 0)
        goto fail;
    if (par.layout) {
        ret = layout_areas_check(p, par.layout, par.layout_name, err);
        if (ret < 0)
            goto fail;
    }
    ret = vpci_cfg_new(&par, &p->cfg, err);
    if (ret < 0)
        goto fail;
    struct vpci_msix *m = vpci_cfg_msix(p->cfg);
    if (m)
        p->ntrap = vpci_msix_trap(m, p->trap, p->trap_bar);
    map_areas(p, vpci_cfg_desc(p->cfg)->bars, par.layout);
    const struct pci_func_desc *d = vpci_cfg_desc(p->cfg);
    ret = pci_bus_add(h->bus, devfn, d, &func_ops, p);
    if (ret < 0) {
        err_set(err, WISP_EXIT_FAILURE, -ret, "device %s: cannot add it to the PCI bus: %s", id,
                strerror(-ret));
        goto fail;
    }
    log_info("device %s: %s %04x:%04x at PCI 00:%02x.%u", id, ops->name, d->vendor, d->device,
             devfn >> 3, devfn & 7);
    free(snap);
    *out = p;
    return 0;
fail:
    free(snap);
    vfio_pci_destroy(p);
    return ret;
}

void vfio_pci_destroy(struct vfio_pci *p)
{
    if (!p)
        return;
    vpci_cfg_free(p->cfg); /* removes installed vectors through irq_ops */
    for (unsigned i = 0; i < VPCI_MSI_MAX_VECTORS; i++)
        vec_close(p, VPCI_IRQ_MSI, i, &p->msi[i]);
    for (unsigned i = 0; i < p->nmsix; i++)
        vec_close(p, VPCI_IRQ_MSIX, i, &p->msix[i]);
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        bar_unmap(p, i, PCI_SPACE_MEM, 0, 0);
    p->ops->destroy(p->t); /* unmaps the areas, closes the device */
    free(p->msix);
    free(p);
}
