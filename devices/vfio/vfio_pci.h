/*
 * One passed-through PCI function on wisp's PCI bus, over either transport:
 * kernel VFIO (vfio.h) or a vfio-user server (vfio_user_client.h).
 *
 * Why one function over a small transport interface: what a guest sees of
 * a passed-through function (config space from vpci_cfg, BARs, MSI/MSI-X
 * routed through KVM) is the same whoever moves the bytes; only region
 * access, interrupt eventfds and mmap differ.  struct vfio_pci_transport is
 * that difference, so the wiring below is written (and reviewed) once.
 *
 * What it does: snapshots config space through the transport, builds the
 * guest's view (vpci_cfg_new), adds itself to the bus, and then:
 *   - BARs: mmap-able parts (minus the MSI-X trap ranges, page granular)
 *     become KVM memory slots at the BAR's guest address on bar_map and go
 *     on bar_unmap (vm_services.mem_slot_add/remove); every other access
 *     traps and goes through region read/write;
 *   - MSI/MSI-X (vpci_irq_ops): per vector an eventfd handed to the
 *     device once, and on install a GSI from irq_routing_add_msi, commit
 *     and an irqfd binding the eventfd to it; remove unbinds the irqfd and
 *     drops the route but leaves the eventfd at the device, so what the
 *     device raises while masked is held in its counter and injected once
 *     when the vector is installed again (the Pending Bit's behaviour; the
 *     emulated PBA itself does not show it);
 *   - the command register's memory/IO decode and bus master bits are
 *     forwarded to the device's config space;
 *   - INTx is not wired: the guest sees interrupt pin 0.
 * DMA: the transport constructors map all guest RAM at IOVA = GPA before
 * the device can run.
 *
 * A transport that fails (a vfio-user server gone) marks the function
 * failed: BAR reads return all-ones, writes are dropped, wisp keeps going.
 *
 * Thread-safety: bus callbacks come from vCPU threads (bar_read/bar_write
 * without the bus lock); transports are thread-safe (vfio-user's client has
 * its lock, kernel VFIO's pread/pwrite are), the slot bookkeeping is under
 * the bus lock (bar_map/unmap).
 */
#ifndef DEVICES_VFIO_VFIO_PCI_H
#define DEVICES_VFIO_VFIO_PCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/pci/pci.h"
#include "devices/vfio/vpci_layout.h"
#include "devices/vfio/vpci_msix.h"
#include "vmm/error.h"
#include "vmm/gmem.h"
#include "vmm/services.h"
#include "vmm/util.h"

struct irq_routing;
struct vfio_sys_ops;
struct vpci_cfg;

/* Region and IRQ indices: the same in kernel VFIO and vfio-user. */
#define VFIO_PCI_NREGIONS  9U /* BAR0-5, ROM, config, VGA */
#define VFIO_PCI_CFG_INDEX 7U
#define VFIO_PCI_ROM_INDEX 6U
#define VFIO_PCI_IRQ_INTX  0U
#define VFIO_PCI_IRQ_MSI   1U
#define VFIO_PCI_IRQ_MSIX  2U

/* A region as the transport describes it. */
struct vfio_pci_region {
    uint64_t size;
    bool readable, writable;
    unsigned nareas; /* mmap-able areas (offset, size inside the region) */
    struct {
        uint64_t off, size;
    } areas[16];
};

/*
 * What a transport does; `t` is its own state.  All return 0 or -errno.
 * region_read fills all-ones on failure.  set_irqs: count 0 disables the
 * index; fds[i] -1 detaches vector start + i.  mmap (optional, NULL: never
 * mmap) maps area `area` of region `index` shared.  failed (optional): the
 * transport is gone for good.
 */
struct vfio_pci_transport {
    const char *name; /* "vfio", "vfio-user" */
    int (*region_read)(void *t, unsigned index, uint64_t off, void *buf, size_t len);
    int (*region_write)(void *t, unsigned index, uint64_t off, const void *buf, size_t len);
    int (*set_irqs)(void *t, unsigned index, uint32_t start, uint32_t count, const int *fds);
    int (*mmap)(void *t, unsigned index, unsigned area, void **addr, size_t *len);
    bool (*failed)(void *t);
    void (*destroy)(void *t);
    /*
     * Optional, migration v2 (vfio_pci_mig.c); mig_cannot NULL: this
     * transport cannot migrate a device.  mig_cannot: why this device
     * cannot migrate now, or NULL.  mig_set_state: walk to `state`
     * (VFIO_MIG_STATE_*).  mig_save (in STOP_COPY): the device's blob into
     * `buf`, at most `cap` bytes (-ENOSPC beyond).  mig_load (in RESUMING).
     */
    const char *(*mig_cannot)(void *t);
    int (*mig_set_state)(void *t, uint32_t state);
    int (*mig_save)(void *t, uint8_t *buf, size_t cap, size_t *len);
    int (*mig_load)(void *t, const uint8_t *buf, size_t len);
};

/* Migration v2 device states, the same numbers in kernel VFIO and vfio-user. */
#define VFIO_MIG_STATE_STOP      1U
#define VFIO_MIG_STATE_RUNNING   2U
#define VFIO_MIG_STATE_STOP_COPY 3U
#define VFIO_MIG_STATE_RESUMING  4U

/* What the VM core hands a passthrough function. */
struct vfio_pci_host {
    struct pci_bus *bus;
    struct irq_routing *routing; /* arch_irq_routing() */
    int vm_fd;                   /* for irq_routing_commit and the kvm-vfio device */
    const struct vm_services *svc;
    const struct gmem *mem;
    struct vpci_msi_window win;
    /* Kernel VFIO's system calls (devices/vfio/vfio.h); NULL: the real kernel. */
    const struct vfio_sys_ops *sys;
    void *sys_ctx;
};

struct vfio_pci;

/* A layout file for a function (docs/VPCI_LAYOUT.md); `name` (the file)
 * goes into error lines.  A NULL layout pointer: the built-in layout. */
struct vfio_pci_layout {
    const struct vpci_layout *layout;
    const char *name;
};

/*
 * Put the function behind transport `ops`/`t` at `devfn` on h->bus: reads
 * region info (`regions`, VFIO_PCI_NREGIONS entries), IRQ counts
 * (irq_count[3]: INTx, MSI, MSI-X) and the config space, builds the view
 * and adds it.  With `lay` (NULL: none) the guest sees that layout, or
 * creation fails with "vpci layout FILE: the device cannot honour it: ..."
 * (WISP_EXIT_USAGE); its mmap areas must lie in the transport's, and only
 * transport areas wholly inside them are mapped.  Takes ownership of `t`
 * (destroyed on failure too).  The caller runs pci_bus_assign afterwards.
 * 0 and *out, or -errno with `err`.
 */
int vfio_pci_create(const struct vfio_pci_host *h, const char *id,
                    const struct vfio_pci_transport *ops, void *t,
                    const struct vfio_pci_region regions[VFIO_PCI_NREGIONS],
                    const unsigned irq_count[3], const struct vfio_pci_layout *lay, unsigned devfn,
                    struct vfio_pci **out, struct errbuf *err) __must_check;

/*
 * Kernel VFIO: `sysfs` is /sys/bus/pci/devices/DDDD:BB:DD.F; its
 * iommu_group link names /dev/vfio/N and its driver must be vfio-pci.
 * Opens the container, the kvm-vfio device, maps guest RAM, opens the
 * device and calls vfio_pci_create (with `lay`).  A path
 * /dev/vfio/devices/vfioN selects the iommufd transport instead
 * (vfio_iommufd_open, kvm-vfio, vfio_iommufd_attach, then the same steps).
 */
int vfio_pci_create_kernel(const struct vfio_pci_host *h, const char *id, const char *sysfs,
                           const struct vfio_pci_layout *lay, unsigned devfn, struct vfio_pci **out,
                           struct errbuf *err) __must_check;

/*
 * vfio-user: connect to the server at `socket`, DMA_MAP every RAM region
 * with the memfd, and call vfio_pci_create (with `lay`).
 */
int vfio_pci_create_user(const struct vfio_pci_host *h, const char *id, const char *socket,
                         const struct vfio_pci_layout *lay, unsigned devfn, struct vfio_pci **out,
                         struct errbuf *err) __must_check;

/*
 * Check a sysfs device path for --device vfio before anything is opened:
 * the iommu_group link resolves to group N (*group_path gets /dev/vfio/N,
 * `cap` bytes) and the driver is vfio-pci.  0 or -errno with one line in
 * `err`.
 */
int vfio_pci_sysfs_group(const char *sysfs, char *group_path, size_t cap,
                         struct errbuf *err) __must_check;

/*
 * BAR descs from region sizes (`regions`, VFIO_PCI_NREGIONS) and the
 * snapshot `cfg`'s BAR flag bits (I/O, 64-bit, prefetchable).  0, or
 * -EINVAL naming device `id` for a size that is not a power of two.
 */
int vfio_pci_bars_from(const struct vfio_pci_region *regions, const char *id, const uint8_t *cfg,
                       struct pci_bar_desc *bars, struct errbuf *err) __must_check;

/*
 * `wisp vpci derive` (vfio_pci_derive.c): write into *out the layout
 * (docs/VPCI_LAYOUT.md) that, applied to this same function, presents what
 * wisp presents without a layout.  Reads the config space, region and IRQ
 * info through the transport and changes nothing on the device.  Takes
 * ownership of `t`.  0, or -errno with `err`.
 */
int vfio_pci_derive(const struct vfio_pci_transport *ops, void *t,
                    const struct vfio_pci_region regions[VFIO_PCI_NREGIONS],
                    const unsigned irq_count[3], struct vpci_layout *out,
                    struct errbuf *err) __must_check;

/* vfio_pci_derive through kernel VFIO (the sysfs path, as --device vfio;
 * no VM: no kvm-vfio device, no DMA mapping) or vfio-user (no DMA_MAP). */
int vfio_pci_derive_kernel(const char *sysfs, struct vpci_layout *out,
                           struct errbuf *err) __must_check;
int vfio_pci_derive_user(const char *socket, struct vpci_layout *out,
                         struct errbuf *err) __must_check;

/* Is the function's transport failed (reads all-ones)? */
bool vfio_pci_failed(struct vfio_pci *p);

/* For vfio_pci_mig.c: the parts of a function its migration member needs. */
struct vfio_pci_parts {
    const char *id;
    const struct vfio_pci_transport *ops;
    void *t;
    struct vpci_cfg *cfg;
    const struct gmem *mem;
};
void vfio_pci_parts(struct vfio_pci *p, struct vfio_pci_parts *out);

/* Mark the function failed for good (a device that cannot be resumed). */
void vfio_pci_set_failed(struct vfio_pci *p);

/* Tear down: vectors, slots, the view, the transport.  NULL is fine.
 * Only after the vCPUs have stopped. */
void vfio_pci_destroy(struct vfio_pci *p);

#endif /* DEVICES_VFIO_VFIO_PCI_H */
