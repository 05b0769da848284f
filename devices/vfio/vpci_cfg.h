/*
 * The config space a guest sees of a passed-through PCI function, the same
 * for every transport (kernel VFIO, vfio-user): built once from a snapshot
 * of the physical config space and the transport's region and IRQ info,
 * then answered from wisp's memory.  docs/VPCI.md says what passes, what
 * is hidden and what is virtualised.
 *
 * Why a shadow instead of pass-through: the physical function is untrusted
 * (its firmware builds its config space) and so is the guest.  Nothing the
 * guest writes to config space reaches the device through this module; the
 * passthrough function forwards only what it decides to (the command
 * register through pci_func_ops.cmd_write, MSI/MSI-X through
 * vpci_irq_ops), and nothing the device says is used before it is checked
 * here, once, at setup.
 *
 * Use, by the passthrough function:
 *   vpci_cfg_new(&params, &v, err)      snapshot + region/IRQ info -> v
 *   vpci_cfg_desc(v)                    the desc for pci_bus_add()
 *   its pci_func_ops.cfg_read/cfg_write call vpci_cfg_read/vpci_cfg_write
 *   vpci_cfg_msix(v) -> vpci_msix_trap(): BAR ranges never to mmap;
 *     its bar_read/bar_write call vpci_msix_bar_read/write first
 *   masked vectors signalled by the device: vpci_cfg_signal()
 *   vpci_cfg_free(v) after the function left the bus.
 *
 * Thread-safety: vpci_cfg_read/write run under the PCI bus's lock (as
 * pci_func_ops callbacks) and are not called concurrently; the MSI and
 * MSI-X state has its own locks (vpci_msix.h).
 */
#ifndef DEVICES_VFIO_VPCI_CFG_H
#define DEVICES_VFIO_VPCI_CFG_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/pci/pci.h"
#include "devices/vfio/vpci_layout.h"
#include "devices/vfio/vpci_msix.h"
#include "vmm/error.h"
#include "vmm/util.h"

#define VPCI_CFG_MAX_CAPS 48U /* 256 bytes minus the header hold 48 dwords */
#define VPCI_CFG_LEGACY   256U
#define VPCI_CAP_ID_PM    0x01
#define VPCI_CAP_ID_VNDR  0x09
#define VPCI_CAP_ID_EXP   0x10

/* What the transport knows about the physical function. */
struct vpci_cfg_params {
    const uint8_t *cfg; /* config space snapshot (untrusted) */
    unsigned cfg_len;   /* 256 or 4096 */
    /*
     * BARs from the transport's region info: size (0: absent), type and
     * prefetchable.  The transport may take type and prefetchable from the
     * BAR registers' flag bits, but sizes from region info only.  Rules as
     * pci_bus_add(): powers of two, I/O 4..256, MEM32 16 B..1 GiB, MEM64
     * 16 B..1 TiB and not in BAR5, the BAR after a MEM64 one NONE.
     */
    struct pci_bar_desc bars[PCI_NUM_BARS];
    uint64_t rom_size;          /* region info of the ROM; 0 or unusable: no ROM */
    unsigned msi_vectors;       /* IRQ info: 0 hides the MSI capability */
    unsigned msix_vectors;      /* IRQ info: 0 hides the MSI-X capability */
    bool intx;                  /* IRQ info: INTx usable; false: interrupt pin 0 */
    struct vpci_msi_window win; /* valid MSI addresses (arch) */
    const struct vpci_irq_ops *irq_ops;
    void *irq_opaque;
    /*
     * A layout file (docs/VPCI_LAYOUT.md), or NULL for the built-in layout
     * derived from the device.  With one, the guest sees exactly the
     * layout; the device (cfg, bars, rom_size, the vector counts, intx)
     * must be able to back it or vpci_cfg_new refuses.  Not kept.
     */
    const struct vpci_layout *layout;
    const char *layout_name; /* the file, for error lines */
};

struct vpci_cfg;

/*
 * Build the guest's view from `p` (p->cfg is copied; not kept).  The
 * capability list is walked once: it stops at a pointer below 0x40, not
 * dword-aligned, past 0xff, or seen before, or after VPCI_CFG_MAX_CAPS
 * capabilities; what was found until then is kept (and the truncation
 * logged), so a device with a broken list still works without the rest.
 * With p->layout, the layout replaces all of that (vpci_cfg_layout.c).
 * Returns 0 and *out, or -EINVAL (bad params, bad BARs, a layout the
 * device cannot honour: reason in `err`), -ENOTSUP (header type not 0),
 * -ENOMEM.
 */
int vpci_cfg_new(const struct vpci_cfg_params *p, struct vpci_cfg **out,
                 struct errbuf *err) __must_check;

/* Free `v` (NULL is fine), removing any installed MSI/MSI-X vector through
 * the irq ops. */
void vpci_cfg_free(struct vpci_cfg *v);

/*
 * The desc to put on the bus: ids, class, revision, subsystem from the
 * snapshot; interrupt pin only with INTx; BARs from the params; the
 * rebuilt capability pointer; generic_header on (the bus emulates
 * 0x00-0x3f: BAR sizing and relocation, command, multi-function off for a
 * lone function).
 */
const struct pci_func_desc *vpci_cfg_desc(const struct vpci_cfg *v);

/*
 * Config reads/writes at `off` >= 0x40 (pci_func_ops.cfg_read/cfg_write
 * semantics: len 1, 2 or 4, off aligned, < PCI_CFG_SIZE; anything else
 * reads 0 and is dropped).  Kept capabilities answer as docs/VPCI.md says;
 * every other byte, extended space included, reads 0 and ignores writes.
 * MSI and MSI-X are never enabled together: while one is on, writes to
 * the other's enable bit are dropped.
 */
uint32_t vpci_cfg_read(struct vpci_cfg *v, unsigned off, unsigned len);
void vpci_cfg_write(struct vpci_cfg *v, unsigned off, unsigned len, uint32_t val);

/* The MSI-X / MSI emulation, or NULL when the capability is hidden. */
struct vpci_msix *vpci_cfg_msix(struct vpci_cfg *v);
struct vpci_msi *vpci_cfg_msi(struct vpci_cfg *v);

/*
 * The layout (docs/VPCI_LAYOUT.md) of what `v` presents: its IDs, class,
 * pin, BARs (no mmap areas: the transport's business), ROM and chain, with
 * PM/PCIe/other kept capabilities as passthrough and MSI/MSI-X as emulated
 * with the form and vector counts the guest sees.  Applied to the same
 * device, it presents the same config space.  Returns 0.
 */
int vpci_cfg_to_layout(struct vpci_cfg *v, struct vpci_layout *out);

/* Offset of the kept capability `id` in the guest's chain, 0 if none. */
unsigned vpci_cfg_cap_offset(const struct vpci_cfg *v, uint8_t id);

/*
 * The device signalled vector `vec` of `kind` while it is not installed:
 * latch its pending bit.  true if latched (false: no such vector, or it is
 * installed and the interrupt went to the guest directly).
 */
bool vpci_cfg_signal(struct vpci_cfg *v, enum vpci_irq_kind kind, unsigned vec);

/*
 * The expansion ROM BAR (0x30) as a BAR-like register: reads the address
 * bits the guest wrote and the enable bit, or ~(size - 1) after an
 * all-ones write; 0 without a ROM.  The ROM is never mapped: these only
 * answer sizing.  (The bus's generic header answers 0x30 itself today, as
 * 0, so the guest sees no ROM until devices/pci forwards it here.)
 */
uint32_t vpci_cfg_rom_read(struct vpci_cfg *v);
void vpci_cfg_rom_write(struct vpci_cfg *v, uint32_t val);

/*
 * The guest-programmed state of the view, in wisp's own byte format, for
 * migration (vpci_cfg_state.c; docs/VFIO_USER.md "Migration"): what a
 * guest wrote to config space 0x40-0xff (capability registers, MSI and
 * MSI-X control), the ROM register, the MSI-X table and the pending bits.
 * The type-0 header (command register, BARs) is the bus's, not in here.
 *
 *   u8[192]  config bytes 0x40-0xff as vpci_cfg_read returns them
 *   le32     ROM register (vpci_cfg_rom_read)
 *   le32     MSI-X vectors n (0 without MSI-X)
 *   n x 16   MSI-X table entries (address low, high, data, control)
 *   u8[(n + 7) / 8]  MSI-X pending bits
 *   le32     MSI pending bits (vectors 0-31)
 *
 * Only call with the vCPUs stopped (no concurrent config access).
 */
#define VPCI_CFG_STATE_FIXED (VPCI_CFG_LEGACY - PCI_CFG_HEADER_END + 4U + 4U + 4U)
#define VPCI_CFG_STATE_MAX                                                                         \
    (VPCI_CFG_STATE_FIXED + VPCI_MSIX_MAX_VECTORS * VPCI_MSIX_ENTRY_SIZE +                         \
     VPCI_MSIX_MAX_VECTORS / 8U)

/* The exact size vpci_cfg_state_save writes for `v` (<= VPCI_CFG_STATE_MAX). */
size_t vpci_cfg_state_size(const struct vpci_cfg *v);

/* Write the state into `buf` (`cap` bytes).  0 and *len, or -ENOSPC. */
int vpci_cfg_state_save(struct vpci_cfg *v, uint8_t *buf, size_t cap, size_t *len) __must_check;

/*
 * Apply a state saved by vpci_cfg_state_save on another wisp, replayed
 * through the guest's own write paths (so it can set nothing a guest
 * could not): MSI-X table entries first, then config space with the MSI
 * and MSI-X message control last (enabling installs the vectors through
 * the irq ops), the ROM register, then the pending bits.  Everything is
 * checked before anything is applied: -EBADMSG for a length that is not
 * exactly this view's, -EPROTO for another MSI-X vector count, with one
 * line naming `id` in `err` (WISP_EXIT_USAGE); `v` is then unchanged.
 */
int vpci_cfg_state_load(struct vpci_cfg *v, const uint8_t *buf, size_t len, const char *id,
                        struct errbuf *err) __must_check;

#endif /* DEVICES_VFIO_VPCI_CFG_H */
