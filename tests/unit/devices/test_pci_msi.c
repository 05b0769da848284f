/*
 * A PCI function with an MSI capability, for unit tests only: it shows the
 * path a passthrough function takes.  The guest programs the capability
 * through config space (pci_func_ops.cfg_write); the function installs,
 * replaces and removes the vector's route in the GSI routing table
 * (vmm/irq_routing.h) and would then commit it.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "devices/pci/pci.h"
#include "vmm/irq_routing.h"

#define MSI_CAP     0x50
#define MSI_CTRL_EN 0x0001U
#define MSI_CTRL_64 0x0080U
#define MSI_CAP_ID  0x05
#define MSI_ADDR_LO (MSI_CAP + 4)
#define MSI_ADDR_HI (MSI_CAP + 8)
#define MSI_DATA    (MSI_CAP + 12)

struct msi_func {
    uint8_t cfg[256]; /* the capability's bytes, little-endian */
    struct irq_routing *routing;
    int gsi; /* -1: no route */
};

static uint32_t rd(const uint8_t *p, unsigned len)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < len; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint32_t msi_cfg_read(void *o, unsigned off, unsigned len)
{
    struct msi_func *m = o;
    return off + len <= sizeof(m->cfg) ? rd(m->cfg + off, len) : 0;
}

/* Bring the route in line with the capability: enabled -> installed. */
static void msi_sync(struct msi_func *m)
{
    bool en = rd(m->cfg + MSI_CAP + 2, 2) & MSI_CTRL_EN;
    uint64_t addr = rd(m->cfg + MSI_ADDR_LO, 4) | (uint64_t)rd(m->cfg + MSI_ADDR_HI, 4) << 32;
    uint32_t data = rd(m->cfg + MSI_DATA, 2);
    if (en && m->gsi < 0)
        m->gsi = irq_routing_add_msi(m->routing, IRQ_ROUTING_MSI_FIRST, addr, data);
    else if (en)
        cr_assert_eq(irq_routing_set_msi(m->routing, (unsigned)m->gsi, addr, data), 0);
    else if (m->gsi >= 0) {
        cr_assert_eq(irq_routing_remove_msi(m->routing, (unsigned)m->gsi), 0);
        m->gsi = -1;
    }
    /* a real function commits here: irq_routing_commit(routing, vm_fd) */
}

static void msi_cfg_write(void *o, unsigned off, unsigned len, uint32_t v)
{
    struct msi_func *m = o;
    if (off < MSI_CAP + 2 || off + len > MSI_DATA + 2)
        return; /* read-only: id, next pointer, everything else */
    for (unsigned i = 0; i < len; i++) {
        unsigned at = off + i;
        uint8_t b = (uint8_t)(v >> (8 * i));
        if (at == MSI_CAP + 2)
            b = (uint8_t)((m->cfg[at] & ~MSI_CTRL_EN) | (b & MSI_CTRL_EN));
        else if (at == MSI_CAP + 3)
            continue;
        m->cfg[at] = b;
    }
    msi_sync(m);
}

static const struct pci_func_ops msi_ops = {.cfg_read = msi_cfg_read, .cfg_write = msi_cfg_write};

static const struct pci_windows win = {.mmio32_base = 0xc0000000ULL, .mmio32_size = 1ULL << 28};

static void ecam_wr(struct pci_bus *b, unsigned devfn, unsigned reg, unsigned len, uint32_t v)
{
    pci_ecam_write(b, (uint64_t)devfn << 12 | reg, &v, len);
}

static uint32_t ecam_rd(struct pci_bus *b, unsigned devfn, unsigned reg, unsigned len)
{
    uint32_t v = 0;
    pci_ecam_read(b, (uint64_t)devfn << 12 | reg, &v, len);
    return v;
}

Test(pci_msi, guest_programs_msi_and_routes_follow)
{
    struct irq_routing *routing = irq_routing_new();
    cr_assert(routing);
    for (unsigned gsi = 0; gsi < 24; gsi++)
        cr_assert_eq(irq_routing_set_irqchip(routing, gsi, KVM_IRQCHIP_IOAPIC, gsi), 0);
    struct pci_bus *b = pci_bus_new(&win);
    cr_assert(b);
    struct msi_func m = {.routing = routing, .gsi = -1};
    m.cfg[MSI_CAP] = MSI_CAP_ID;
    m.cfg[MSI_CAP + 2] = (uint8_t)MSI_CTRL_64;
    struct pci_func_desc d = {.vendor = 0x1234,
                              .device = 1,
                              .class_code = 0xff0000,
                              .generic_header = true,
                              .cap_ptr = MSI_CAP};
    unsigned df = PCI_DEVFN(4, 0);
    cr_assert_eq(pci_bus_add(b, df, &d, &msi_ops, &m), 0);

    /* the guest walks the capability list */
    cr_assert(ecam_rd(b, df, 0x06, 2) & PCI_STATUS_CAP_LIST);
    unsigned cap = ecam_rd(b, df, 0x34, 1);
    cr_assert_eq(cap, MSI_CAP);
    cr_assert_eq(ecam_rd(b, df, cap, 1), MSI_CAP_ID);

    /* program address and data, then enable */
    ecam_wr(b, df, MSI_ADDR_LO, 4, 0xfee00000U);
    ecam_wr(b, df, MSI_ADDR_HI, 4, 0);
    ecam_wr(b, df, MSI_DATA, 2, 0x4041);
    cr_assert_eq(m.gsi, -1, "not enabled yet");
    ecam_wr(b, df, MSI_CAP + 2, 2, MSI_CTRL_EN);
    cr_assert_eq(m.gsi, 24);
    cr_assert_eq(irq_routing_count(routing), 25);
    const struct kvm_irq_routing_entry *e = irq_routing_entry(routing, 24);
    cr_assert_eq(e->type, KVM_IRQ_ROUTING_MSI);
    cr_assert_eq(e->u.msi.address_lo, 0xfee00000U);
    cr_assert_eq(e->u.msi.data, 0x4041);
    cr_assert_eq(ecam_rd(b, df, MSI_CAP + 2, 2), MSI_CTRL_64 | MSI_CTRL_EN);

    /* the guest retargets the vector: the same GSI, a new route */
    ecam_wr(b, df, MSI_ADDR_LO, 4, 0xfee01000U);
    cr_assert_eq(irq_routing_count(routing), 25);
    cr_assert_eq(irq_routing_entry(routing, 24)->u.msi.address_lo, 0xfee01000U);

    /* disable: the route goes, the board's wiring stays */
    ecam_wr(b, df, MSI_CAP + 2, 2, 0);
    cr_assert_eq(m.gsi, -1);
    cr_assert_eq(irq_routing_count(routing), 24);
    pci_bus_free(b);
    irq_routing_free(routing);
}
