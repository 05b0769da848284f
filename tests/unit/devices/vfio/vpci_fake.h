/*
 * Test fixtures shared by the vpci unit tests: a fake "physical" config
 * space (the untrusted snapshot a transport would read), the region info
 * that goes with it, and a vpci_irq_ops recorder that routes vectors
 * through a real GSI routing table (vmm/irq_routing.h), as a passthrough
 * function would.
 */
#ifndef TESTS_UNIT_DEVICES_VFIO_VPCI_FAKE_H
#define TESTS_UNIT_DEVICES_VFIO_VPCI_FAKE_H

#include <criterion/criterion.h>

#include <string.h>

#include "devices/vfio/vpci_cfg.h"
#include "vmm/irq_routing.h"

/* The default fake device: capabilities in an odd order, some hidden.
 *   0x34 -> 0xa0 PCIe v2 -> 0x60 vendor -> 0x40 PM -> 0x80 AF (0x13)
 *        -> 0x70 MSI-X -> 0x48 MSI (64-bit, maskable) -> end
 * Kept: 0xa0 -> 0x40 -> 0x70 -> 0x48. */
#define F_PCIE  0xa0
#define F_VNDR  0x60
#define F_PM    0x40
#define F_AF    0x80
#define F_MSIX  0x70
#define F_MSI   0x48
#define F_TABLE 0x2000U
#define F_PBA   0x3000U
#define F_NVEC  8U

static inline void fake_cap(uint8_t *c, unsigned off, uint8_t id, unsigned next)
{
    c[off] = id;
    c[off + 1] = (uint8_t)next;
}

static inline void fake_header(uint8_t *c)
{
    memset(c, 0, PCI_CFG_SIZE);
    le16_put(c + 0x00, 0x8086);
    le16_put(c + 0x02, 0x10fb);
    le16_put(c + 0x06, PCI_STATUS_CAP_LIST | 0x0200U); /* + DEVSEL bits */
    c[0x08] = 0x05;                                    /* revision */
    c[0x09] = 0x00;
    c[0x0a] = 0x00;
    c[0x0b] = 0x02;                  /* network controller */
    c[0x0e] = 0x80;                  /* the physical device is multi-function */
    le32_put(c + 0x10, 0xfebc000cU); /* physical BAR values: never used */
    le32_put(c + 0x14, 0xffffffffU);
    le16_put(c + 0x2c, 0x1028);
    le16_put(c + 0x2e, 0x1f72);
    c[0x3d] = 1; /* INTA# */
}

static inline void fake_device(uint8_t *c)
{
    fake_header(c);
    c[0x34] = F_PCIE;
    fake_cap(c, F_PCIE, VPCI_CAP_ID_EXP, F_VNDR);
    c[F_PCIE + 2] = 0x02;                     /* version 2, endpoint */
    le32_put(c + F_PCIE + 4, 0x10008fc2U);    /* DevCap with FLR (bit 28) */
    le16_put(c + F_PCIE + 8, 0x2810);         /* DevCtl */
    le32_put(c + F_PCIE + 0x0c, 0x00427c43U); /* LnkCap */
    fake_cap(c, F_VNDR, VPCI_CAP_ID_VNDR, F_PM);
    c[F_VNDR + 2] = 0x10;
    memset(c + F_VNDR + 3, 0xab, 0x0d);
    fake_cap(c, F_PM, VPCI_CAP_ID_PM, F_AF);
    le16_put(c + F_PM + 2, 0xc803); /* PMC: PME from D0/D3hot/D3cold */
    le16_put(c + F_PM + 4, 0x8103); /* PMCSR: D3hot, PME_En, PME_Status */
    fake_cap(c, F_AF, 0x13, F_MSIX);
    c[F_AF + 2] = 0x06;
    fake_cap(c, F_MSIX, VPCI_CAP_ID_MSIX, F_MSI);
    le16_put(c + F_MSIX + 2, (uint16_t)(F_NVEC - 1));
    le32_put(c + F_MSIX + 4, F_TABLE | 0);
    le32_put(c + F_MSIX + 8, F_PBA | 0);
    fake_cap(c, F_MSI, VPCI_CAP_ID_MSI, 0);
    le16_put(c + F_MSI + 2, VPCI_MSI_CTRL_64BIT | VPCI_MSI_CTRL_MASKBIT | (5U << 1));
    le32_put(c + 0x100, 0x14010001U); /* AER, next 0x140 */
    le32_put(c + 0x140, 0x0001000eU); /* ARI */
}

/* Region info for the fake device: BAR0 64-bit prefetchable 16 KiB (MSI-X
 * table and PBA), BAR2 32-bit 4 KiB, BAR4 I/O 32 bytes, a 64 KiB ROM. */
static inline void fake_params(struct vpci_cfg_params *p, const uint8_t *cfg,
                               const struct vpci_irq_ops *ops, void *opaque)
{
    memset(p, 0, sizeof(*p));
    p->cfg = cfg;
    p->cfg_len = PCI_CFG_SIZE;
    p->bars[0] = (struct pci_bar_desc){.size = 0x4000, .type = PCI_BAR_MEM64, .prefetchable = true};
    p->bars[2] = (struct pci_bar_desc){.size = 0x1000, .type = PCI_BAR_MEM32};
    p->bars[4] = (struct pci_bar_desc){.size = 0x20, .type = PCI_BAR_IO};
    p->rom_size = 0x10000;
    p->msi_vectors = 32;
    p->msix_vectors = F_NVEC;
    p->intx = true;
    p->win = (struct vpci_msi_window){.base = 0xfee00000ULL, .size = 0x100000ULL};
    p->irq_ops = ops;
    p->irq_opaque = opaque;
}

/* What the irq ops were asked to do. */
enum rec_op { REC_INSTALL, REC_REMOVE, REC_MODE, REC_FIRE };
struct rec_ev {
    enum rec_op op;
    enum vpci_irq_kind kind;
    unsigned vec;
    uint64_t addr;
    uint32_t data;
};
struct rec {
    struct irq_routing *routing;
    int gsi[2][VPCI_MSIX_MAX_VECTORS]; /* -1 none */
    unsigned n;
    struct rec_ev ev[256];
    int fail_install; /* -errno to return from vector_install, 0 ok */
};

static inline void rec_log(struct rec *r, enum rec_op op, enum vpci_irq_kind k, unsigned vec,
                           uint64_t addr, uint32_t data)
{
    if (r->n < sizeof(r->ev) / sizeof(r->ev[0]))
        r->ev[r->n++] = (struct rec_ev){op, k, vec, addr, data};
}

static inline int rec_install(void *o, enum vpci_irq_kind k, unsigned vec, uint64_t addr,
                              uint32_t data)
{
    struct rec *r = o;
    rec_log(r, REC_INSTALL, k, vec, addr, data);
    if (r->fail_install)
        return r->fail_install;
    int *g = &r->gsi[k][vec];
    if (*g >= 0)
        return irq_routing_set_msi(r->routing, (unsigned)*g, addr, data);
    int gsi = irq_routing_add_msi(r->routing, IRQ_ROUTING_MSI_FIRST, addr, data);
    if (gsi < 0)
        return gsi;
    *g = gsi; /* a real function: irqfd on the GSI, eventfd to the device, commit */
    return 0;
}

static inline void rec_remove(void *o, enum vpci_irq_kind k, unsigned vec)
{
    struct rec *r = o;
    rec_log(r, REC_REMOVE, k, vec, 0, 0);
    cr_assert_geq(r->gsi[k][vec], 0, "remove of a vector never installed");
    cr_assert_eq(irq_routing_remove_msi(r->routing, (unsigned)r->gsi[k][vec]), 0);
    r->gsi[k][vec] = -1;
}

static inline int rec_mode(void *o, enum vpci_irq_kind k, unsigned nvec)
{
    rec_log(o, REC_MODE, k, nvec, 0, 0);
    return 0;
}

static inline void rec_fire(void *o, enum vpci_irq_kind k, unsigned vec)
{
    rec_log(o, REC_FIRE, k, vec, 0, 0);
}

static const struct vpci_irq_ops rec_ops = {
    .vector_install = rec_install,
    .vector_remove = rec_remove,
    .mode = rec_mode,
    .vector_fire = rec_fire,
};

static inline void rec_init(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    memset(r->gsi, 0xff, sizeof(r->gsi));
    r->routing = irq_routing_new();
    cr_assert(r->routing);
}

/* How many events of `op` (and kind) were logged. */
static inline unsigned rec_count(const struct rec *r, enum rec_op op)
{
    unsigned c = 0;
    for (unsigned i = 0; i < r->n; i++)
        c += r->ev[i].op == op;
    return c;
}

/* The MSI route of the GSI installed for (kind, vec): true and addr/data. */
static inline bool rec_route(const struct rec *r, enum vpci_irq_kind k, unsigned vec,
                             uint64_t *addr, uint32_t *data)
{
    int g = r->gsi[k][vec];
    for (unsigned i = 0; g >= 0 && i < irq_routing_count(r->routing); i++) {
        const struct kvm_irq_routing_entry *e = irq_routing_entry(r->routing, i);
        if (e->gsi == (unsigned)g && e->type == KVM_IRQ_ROUTING_MSI) {
            *addr = (uint64_t)e->u.msi.address_hi << 32 | e->u.msi.address_lo;
            *data = e->u.msi.data;
            return true;
        }
    }
    return false;
}

#endif /* TESTS_UNIT_DEVICES_VFIO_VPCI_FAKE_H */
