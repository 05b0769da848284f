/*
 * Internals of the passthrough config space shared by vpci_cfg.c (the
 * built-in layout derived from the device) and vpci_cfg_layout.c (a layout
 * file applied to the device): the shadow's struct, the capability walk
 * and the rules every passthrough capability gets.  Not for use outside
 * these two files.
 */
#ifndef DEVICES_VFIO_VPCI_CFG_INTERNAL_H
#define DEVICES_VFIO_VPCI_CFG_INTERNAL_H

#include "devices/vfio/vpci_cfg.h"

#define CFG_STATUS       0x06
#define CFG_REVISION     0x08
#define CFG_HEADER_TYPE  0x0e
#define CFG_SUBSYS       0x2c
#define CFG_CAP_PTR      0x34
#define CFG_INT_PIN      0x3d
#define HEADER_TYPE_MASK 0x7fU

#define PM_LEN        8U
#define PM_PMC        2U /* capabilities: PME support in bits 15:11 */
#define PM_PMCSR      4U /* control/status: power state 1:0, PME_En 8, PME_Status 15 */
#define EXP_V1_LEN    0x14U
#define EXP_V2_LEN    0x3cU
#define EXP_FLAGS     2U
#define EXP_DEVCAP    4U
#define EXP_DEVCTL    8U
#define EXP_LNKCTL    0x10U
#define EXP_DEVCTL2   0x28U
#define EXP_FLR_CAP   (1U << 28) /* DevCap: function level reset */
#define ROM_ADDR_MASK 0xfffff800U
#define ROM_ENABLE    0x1U

/* One capability kept in the guest's chain. */
struct vcap {
    uint8_t id, off, len;
};

struct vpci_cfg {
    struct pci_func_desc desc;
    uint8_t shadow[VPCI_CFG_LEGACY]; /* kept PM/PCIe caps; ids and next pointers */
    uint8_t wmask[VPCI_CFG_LEGACY];  /* shadow bits the guest may change */
    struct vcap caps[VPCI_CFG_MAX_CAPS];
    unsigned ncaps;
    bool has_msi, has_msix;
    struct vpci_msi msi;
    struct vpci_msix msix;
    uint64_t rom_size;
    uint32_t rom_reg;
};

/*
 * BARs the bus would take (the same rules as pci_bus_add's check): 0, or
 * -EINVAL with the first bad BAR named in `err`.
 */
int vpci_cfg_bars_check(const struct pci_bar_desc *bars, struct errbuf *err);

/*
 * Walk the device's capability list once.  Stops (keeping what it found)
 * at a pointer below 0x40, unaligned, whose capability header would run
 * past the legacy space, or already visited, and after VPCI_CFG_MAX_CAPS
 * capabilities.  Fills offs[] in chain order; returns the count.
 */
unsigned vpci_cfg_walk_caps(const uint8_t *cfg, uint8_t offs[VPCI_CFG_MAX_CAPS]);

/* The built-in guest-visible length of capability `id` at `off` of the
 * snapshot `cfg` (PM, MSI, PCIe, MSI-X), 0 for every other id. */
unsigned vpci_cfg_cap_len(const uint8_t *cfg, uint8_t id, unsigned off);

/*
 * Copy the c->len device bytes at `src` into the shadow at c->off and apply
 * the rules of docs/VPCI.md for PM (no PME, always D0) and PCIe (no FLR,
 * control registers as guest scratch copies), never touching bytes past
 * c->len.  Other ids are copied as they are, read-only.
 */
void vpci_cfg_shadow_cap(struct vpci_cfg *v, const uint8_t *src, const struct vcap *c);

/* Chain v->caps[] in order: ids and next pointers in the shadow (never
 * writable), the desc's capability pointer. */
void vpci_cfg_link_caps(struct vpci_cfg *v);

/*
 * Build `v` (zeroed) from p->layout instead of from the device
 * (vpci_cfg_layout.c): check that the device can honour it, then the desc,
 * the capability chain with its policies and the MSI/MSI-X emulation.
 * 0, or -EINVAL with "vpci layout NAME: the device cannot honour it: ..."
 * (WISP_EXIT_USAGE) in `err`; `v` then needs vpci_cfg_free.
 */
int vpci_cfg_layout_build(struct vpci_cfg *v, const struct vpci_cfg_params *p, struct errbuf *err);

#endif /* DEVICES_VFIO_VPCI_CFG_INTERNAL_H */
