/*
 * MSI and MSI-X emulation for passed-through PCI functions, shared by every
 * transport (kernel VFIO, vfio-user).
 *
 * Why emulate instead of passing through: the message address and data a
 * guest programs must never reach the device.  On x86 they select the
 * destination CPU and vector, so a device programmed by the guest could
 * interrupt anything.  Instead wisp keeps the guest's MSI capability
 * registers and MSI-X table in its own memory, and for every vector that
 * is enabled and unmasked asks the passthrough function (through struct
 * vpci_irq_ops) to route the device's interrupt for that vector (an
 * eventfd the device signals, VFIO_DEVICE_SET_IRQS or vfio-user's
 * equivalent) to a GSI whose MSI route carries the guest's address/data
 * (vmm/irq_routing.h, then an irqfd).  The MSI-X table and PBA are never
 * mapped into the guest: vpci_msix_trap() says which page-granular byte
 * ranges of the BAR the passthrough function must trap rather than mmap,
 * and its bar_read/bar_write path hands accesses there to
 * vpci_msix_bar_read()/vpci_msix_bar_write().
 *
 * Masking: a vector whose route is removed (masked, function-masked, or
 * disabled) does not reach the guest.  If the device signals it meanwhile,
 * the passthrough function reports that with vpci_msix_signal() /
 * vpci_msi_signal() (typically: it keeps the device's eventfd and reads it
 * when the vector is masked); the emulated pending bit is set and the
 * interrupt is delivered once, through ops->vector_fire, when the vector is
 * unmasked again (the spec's Pending Bits: a masked vector's message is
 * held, not lost).
 *
 * Thread-safety: each object has its own mutex.  Config-space calls come
 * from the PCI bus with its lock held (lock order: bus, then this object);
 * BAR accesses and *_signal() come without it.  The vpci_irq_ops callbacks
 * run with this object's mutex held and must not call back into it.
 */
#ifndef DEVICES_VFIO_VPCI_MSIX_H
#define DEVICES_VFIO_VPCI_MSIX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/pci/pci.h"
#include "vmm/util.h"

#define VPCI_CAP_ID_MSI  0x05
#define VPCI_CAP_ID_MSIX 0x11

#define VPCI_MSIX_MAX_VECTORS 2048U
#define VPCI_MSIX_ENTRY_SIZE  16U
#define VPCI_MSIX_CAP_LEN     12U
#define VPCI_MSI_MAX_VECTORS  32U

/* MSI-X message control (cap + 2) bits. */
#define VPCI_MSIX_CTRL_ENABLE 0x8000U
#define VPCI_MSIX_CTRL_FMASK  0x4000U
#define VPCI_MSIX_CTRL_QSIZE  0x07ffU
/* MSI message control bits. */
#define VPCI_MSI_CTRL_ENABLE  0x0001U
#define VPCI_MSI_CTRL_MMC     0x000eU
#define VPCI_MSI_CTRL_MME     0x0070U
#define VPCI_MSI_CTRL_64BIT   0x0080U
#define VPCI_MSI_CTRL_MASKBIT 0x0100U

enum vpci_irq_kind { VPCI_IRQ_MSI, VPCI_IRQ_MSIX };

/*
 * What the passthrough function does for vector changes.  Every callback
 * runs with the MSI/MSI-X object's mutex held (see the top comment).
 */
struct vpci_irq_ops {
    /*
     * Deliver the device's vector `vec` of `kind` as the MSI (addr, data):
     * allocate or update the vector's GSI (irq_routing_add_msi /
     * irq_routing_set_msi, commit), bind the eventfd with an irqfd and hand
     * it to the device.  Called when a vector becomes enabled and unmasked
     * with a valid address, and again when the guest changes address/data
     * of an installed vector (replace the route).  0, or -errno: the vector
     * stays uninstalled (its interrupts latch as pending) and the guest is
     * not told (there is no way to tell it).
     */
    int (*vector_install)(void *opaque, enum vpci_irq_kind kind, unsigned vec, uint64_t addr,
                          uint32_t data);
    /* Stop delivering vector `vec` (installed before): remove the irqfd
     * and the route; the device's eventfd may stay (to latch pending). */
    void (*vector_remove)(void *opaque, enum vpci_irq_kind kind, unsigned vec);
    /*
     * Optional: the guest turned `kind` on with `nvec` vectors (MSI: 2^MME;
     * MSI-X: the table size), or off (nvec 0).  The transport enables the
     * mode at the device first (VFIO: SET_IRQS), before any
     * vector_install.  A failure is logged; vectors are still tracked.
     */
    int (*mode)(void *opaque, enum vpci_irq_kind kind, unsigned nvec);
    /* Optional: inject vector `vec` once (it was pending when unmasked;
     * it is installed at this point).  NULL: the pending event is lost. */
    void (*vector_fire)(void *opaque, enum vpci_irq_kind kind, unsigned vec);
};

/* Where guest MSI addresses must point; size 0 accepts any address that is
 * non-zero and dword-aligned.  The arch code knows the window (x86:
 * 0xfee00000, 1 MiB). */
struct vpci_msi_window {
    uint64_t base, size;
};

/* One vector as the guest programmed it. */
struct vpci_vec {
    uint64_t addr;
    uint32_t data;
    uint32_t ctrl; /* MSI-X vector control: bit 0 masked */
    bool installed;
    uint64_t inst_addr; /* what vector_install got last */
    uint32_t inst_data;
    bool pending;
};

/* A BAR byte range the passthrough function must trap, not mmap. */
struct vpci_trap_range {
    uint64_t off, len;
};

struct vpci_msix {
    pthread_mutex_t lock;
    const struct vpci_irq_ops *ops;
    void *opaque;
    struct vpci_msi_window win;
    unsigned nvec;     /* vectors the guest sees */
    unsigned dev_nvec; /* vectors the device's capability declares (for trapping) */
    unsigned bir;      /* table and PBA: same or different BARs */
    unsigned pba_bir;
    uint64_t table_off, pba_off;
    uint64_t table_bar_size, pba_bar_size;
    uint32_t table_reg, pba_reg; /* the capability's dwords, as the guest reads them */
    bool enabled, fmask;
    struct vpci_vec *vec; /* nvec entries */
};

/*
 * Set `m` up from the device's MSI-X capability (its 12 bytes `cap`,
 * untrusted), at most `max_vec` vectors (the transport's IRQ info) and the
 * BARs of the desc the guest will see (only memory BARs may hold the table
 * or the PBA).  The guest sees min(table size, max_vec) vectors, all masked.
 * 0, or -EINVAL (table or PBA outside its BAR, in an I/O or absent BAR,
 * overlapping, or no vectors: the caller hides the capability), -ENOMEM.
 */
int vpci_msix_init(struct vpci_msix *m, const uint8_t cap[VPCI_MSIX_CAP_LEN], unsigned max_vec,
                   const struct pci_bar_desc bars[PCI_NUM_BARS], const struct vpci_msi_window *win,
                   const struct vpci_irq_ops *ops, void *opaque) __must_check;

/* Remove every installed vector (no ops->mode call) and free `m`'s memory. */
void vpci_msix_destroy(struct vpci_msix *m);

/* Capability bytes [off, off + len), off relative to the capability (the
 * id and next pointer, bytes 0-1, belong to the caller and read 0 here). */
uint32_t vpci_msix_cap_read(struct vpci_msix *m, unsigned off, unsigned len);
/* The guest wrote them: only message control's enable and function mask
 * are writable (bytes 0-1 are ignored). */
void vpci_msix_cap_write(struct vpci_msix *m, unsigned off, unsigned len, uint32_t val);

/*
 * The BAR byte ranges the passthrough function must trap instead of
 * mmapping: the table and the PBA as the device declares them, widened to
 * whole pages and clipped to their BAR (a BAR smaller than a page is
 * trapped whole).  Writes up to two ranges to `r` and their BAR numbers to
 * `bar_of`, returns how many (one when table and PBA share a page range;
 * ranges in the same BAR are sorted and do not overlap).
 */
unsigned vpci_msix_trap(const struct vpci_msix *m, struct vpci_trap_range r[2], unsigned bar_of[2]);

/*
 * A guest access of `len` bytes at `off` into BAR `bar`.  Returns false if
 * the access touches neither the table nor the PBA (the caller forwards it
 * to the device).  Otherwise the access is the emulation's: 4- and 8-byte
 * naturally aligned accesses wholly inside the table or PBA work as the
 * spec says; any other access touching them (unaligned, 1 or 2 bytes,
 * straddling an edge) reads all-ones and its writes are dropped, and so
 * does an access whose end wraps past UINT64_MAX.  The PBA is read-only.
 */
bool vpci_msix_bar_read(struct vpci_msix *m, unsigned bar, uint64_t off, void *data, unsigned len);
bool vpci_msix_bar_write(struct vpci_msix *m, unsigned bar, uint64_t off, const void *data,
                         unsigned len);

/*
 * The device signalled vector `vec` while it was not installed: set its
 * pending bit (an installed vector, or one out of range, is ignored).
 * Returns true if the bit was set.
 */
bool vpci_msix_signal(struct vpci_msix *m, unsigned vec);

/* Is MSI-X enabled (message control bit 15)? */
bool vpci_msix_enabled(struct vpci_msix *m);

/* For tests and logs: is `vec` pending / installed? */
bool vpci_msix_pending(struct vpci_msix *m, unsigned vec);
bool vpci_msix_installed(struct vpci_msix *m, unsigned vec);

/* The MSI capability: 10 to 24 bytes depending on 64-bit and masking. */
struct vpci_msi {
    pthread_mutex_t lock;
    const struct vpci_irq_ops *ops;
    void *opaque;
    struct vpci_msi_window win;
    bool is64, maskable;
    unsigned mmc; /* log2 of the vectors offered: min(device's, max_vec) */
    unsigned mme; /* log2 of the vectors the guest enabled, <= mmc */
    bool enabled;
    uint64_t addr;
    uint16_t data;
    uint32_t mask;
    struct vpci_vec vec[VPCI_MSI_MAX_VECTORS]; /* installed/pending per vector */
};

/*
 * Set `m` up from the device's MSI message control (untrusted) and
 * `max_vec` (the transport's IRQ info; rounded down to a power of two).
 * 0, or -EINVAL (no vectors: hide the capability).
 */
int vpci_msi_init(struct vpci_msi *m, uint16_t dev_ctrl, unsigned max_vec,
                  const struct vpci_msi_window *win, const struct vpci_irq_ops *ops,
                  void *opaque) __must_check;
/* Remove installed vectors and release `m`'s mutex. */
void vpci_msi_destroy(struct vpci_msi *m);
/* The capability's length in bytes (10, 14, 20 or 24). */
unsigned vpci_msi_cap_len(uint16_t dev_ctrl);
/* Capability bytes [off, off + len), off relative to the capability (bytes
 * 0-1 read 0 here; bytes past the capability's length read 0). */
uint32_t vpci_msi_cap_read(struct vpci_msi *m, unsigned off, unsigned len);
/* Writable: enable, MME (capped at MMC), address, data, mask bits of the
 * offered vectors; bytes 0-1 and read-only fields are ignored. */
void vpci_msi_cap_write(struct vpci_msi *m, unsigned off, unsigned len, uint32_t val);
/* Is MSI enabled (message control bit 0)? */
bool vpci_msi_enabled(struct vpci_msi *m);
/* As vpci_msix_signal, for MSI vector `vec`. */
bool vpci_msi_signal(struct vpci_msi *m, unsigned vec);
bool vpci_msi_pending(struct vpci_msi *m, unsigned vec);
bool vpci_msi_installed(struct vpci_msi *m, unsigned vec);

#endif /* DEVICES_VFIO_VPCI_MSIX_H */
