/*
 * Kernel VFIO passthrough: the container/group API (docs/VFIO.md).
 *
 * Why a layer of its own: the PCI passthrough function (devices/pci/) needs
 * a device's regions, interrupts and DMA without knowing ioctls, and every
 * kernel access here goes through an injectable table of system calls
 * (struct vfio_sys_ops) so a simulated kernel can stand in for it in the unit
 * tests (and, later, for iommufd).  What the kernel returns is treated as
 * untrusted-ish input: every offset and length in a capability chain is
 * bounded by the buffer the kernel filled, and every walk has a hop limit.
 *
 * Order of use (the kernel's rules, /work/shared/reference/vfio.md §1.2):
 *   vfio_container_open   container + one group, TYPE1v2 IOMMU, IOVA ranges
 *   vfio_kvm_create       the VM's kvm-vfio device (once per VM), then
 *   vfio_kvm_add_group    before the device fd is taken
 *   vfio_dma_map_gmem     guest RAM at IOVA = GPA
 *   vfio_device_open      device fd by PCI address, info, regions, IRQs
 *   ... vfio_region_read/write, vfio_region_mmap, vfio_irq_*, vfio_device_reset
 *   vfio_device_close, vfio_container_close (unmaps DMA, closes fds)
 * One group per container for now.  Not thread-safe: one owner thread.
 */
#ifndef DEVICES_VFIO_VFIO_H
#define DEVICES_VFIO_VFIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/vfio.h>
#include <sys/types.h>

#include "vmm/error.h"
#include "vmm/gmem.h"

/*
 * The kernel, as this layer sees it.  Every function returns -errno on
 * failure (never -1 with errno), so a fake needs no errno games.  `ctx` is
 * the table's own state (NULL for the real kernel).  ioctl's `arg` is the
 * value or the pointer (cast) the request takes.
 */
struct vfio_sys_ops {
    int (*open)(void *ctx, const char *path, int flags);               /* fd or -errno */
    int (*ioctl)(void *ctx, int fd, unsigned long req, uintptr_t arg); /* >= 0 or -errno */
    ssize_t (*pread)(void *ctx, int fd, void *buf, size_t len, off_t off);
    ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t len, off_t off);
    /* MAP_SHARED mapping of fd at off; 0 and *out, or -errno. */
    int (*mmap)(void *ctx, int fd, off_t off, size_t len, int prot, void **out);
    int (*munmap)(void *ctx, void *addr, size_t len);
    int (*close)(void *ctx, int fd);
};

/* The real kernel (plain system calls). */
extern const struct vfio_sys_ops vfio_sys_kernel;

#define VFIO_MAX_IOVA_RANGES 16
#define VFIO_MAX_DMA_MAPS    32
#define VFIO_MAX_REGIONS     16 /* BAR0-5, ROM, config, VGA and a few device-specific */
#define VFIO_MAX_SPARSE      16 /* mmap-able areas per region */
#define VFIO_MAX_IRQS        8  /* INTx, MSI, MSI-X, ERR, REQ and spare */
#define VFIO_MAX_CAP_HOPS    64
#define VFIO_MAX_INFO_SIZE   65536 /* the largest argsz we allocate for */
#define VFIO_MAX_MMAPS       32

struct vfio_dma {
    uint64_t iova, size;
};

struct vfio_container {
    const struct vfio_sys_ops *ops;
    void *ctx;
    int fd;       /* /dev/vfio/vfio (iommufd: /dev/iommu), -1 if closed */
    int group_fd; /* /dev/vfio/N (iommufd: the cdev /dev/vfio/devices/vfioN, also the device fd) */
    /* The iommufd transport (vfio_iommufd.c); all false/0 for the group API. */
    bool iommufd;
    bool bound, attached; /* BIND_IOMMUFD, ATTACH_IOMMUFD_PT done */
    uint32_t ioas_id, devid, hwpt_id;
    uint64_t iova_align; /* IOVA_RANGES' out_iova_alignment (a power of two) */
    /* From VFIO_IOMMU_GET_INFO; nranges 0 = the kernel gave no IOVA cap. */
    uint64_t iova_pgsizes;
    unsigned nranges;
    struct vfio_iova_range ranges[VFIO_MAX_IOVA_RANGES]; /* <linux/vfio.h>; end inclusive */
    bool have_dma_avail;
    uint32_t dma_avail;
    unsigned nmaps;
    struct vfio_dma maps[VFIO_MAX_DMA_MAPS];
};

struct vfio_area {
    uint64_t offset, size; /* inside the region */
};

struct vfio_region {
    uint32_t flags; /* VFIO_REGION_INFO_FLAG_* */
    uint64_t size;
    uint64_t offset; /* of the region in the device fd */
    unsigned nareas; /* mmap-able areas: from SPARSE_MMAP, else the whole region if MMAP */
    struct vfio_area areas[VFIO_MAX_SPARSE];
    bool sparse;   /* the areas came from a SPARSE_MMAP cap */
    bool has_type; /* a TYPE cap was present */
    uint32_t type, subtype;
    bool msix_mappable; /* MSIX_MAPPABLE cap */
};

struct vfio_irq {
    uint32_t flags; /* VFIO_IRQ_INFO_* */
    uint32_t count;
};

struct vfio_mmap {
    void *addr;
    size_t len;
};

struct vfio_device {
    struct vfio_container *c;
    int fd;         /* iommufd: the container's cdev fd, borrowed (closed by the container) */
    uint32_t flags; /* VFIO_DEVICE_FLAGS_* */
    uint32_t num_regions, num_irqs; /* as reported; only the first VFIO_MAX_* are read */
    struct vfio_region regions[VFIO_MAX_REGIONS];
    struct vfio_irq irqs[VFIO_MAX_IRQS];
    unsigned nmmaps;
    struct vfio_mmap mmaps[VFIO_MAX_MMAPS];
};

/*
 * Open the container and the group at `group_path` (/dev/vfio/N), check API
 * version 0, TYPE1v2, that the group is viable; attach the group, set the
 * IOMMU and read its IOVA ranges and free DMA entries.  `ops` NULL means the
 * real kernel.  On failure everything opened is closed and c->fd is -1.
 */
int vfio_container_open(struct vfio_container *c, const struct vfio_sys_ops *ops, void *ctx,
                        const char *group_path, struct errbuf *err) __must_check;

/* Unmap every DMA mapping still recorded, close the group and container. */
void vfio_container_close(struct vfio_container *c);

/*
 * Map [hva, hva + size) at `iova` for device reads and writes.  Page
 * aligned, non-wrapping, inside one of the IOMMU's IOVA ranges (when it
 * reported them) and within the free DMA entries.  Recorded for unmap.
 */
int vfio_dma_map(struct vfio_container *c, uint64_t iova, void *hva, uint64_t size,
                 struct errbuf *err) __must_check;

/* Unmap a mapping made by vfio_dma_map (exactly its iova and size). */
int vfio_dma_unmap(struct vfio_container *c, uint64_t iova, uint64_t size) __must_check;

/*
 * Map every RAM region of `gm` at IOVA = GPA.  All or nothing: on failure
 * the regions already mapped are unmapped again.
 */
int vfio_dma_map_gmem(struct vfio_container *c, const struct gmem *gm,
                      struct errbuf *err) __must_check;

/*
 * Is [iova, iova + size) inside one IOVA range the IOMMU reported (true
 * when it reported none)?  Exposed for the address-space planners.
 */
bool vfio_iova_ok(const struct vfio_container *c, uint64_t iova, uint64_t size);

/*
 * Take the device named `name` (a PCI address, "0000:00:03.0") from the
 * container's group and read its info, every region's info with caps, and
 * every IRQ's info.  On failure the device fd is closed and d->fd is -1.
 */
int vfio_device_open(struct vfio_device *d, struct vfio_container *c, const char *name,
                     struct errbuf *err) __must_check;

/* Unmap the region mmaps made through it and close the device fd. */
void vfio_device_close(struct vfio_device *d);

/*
 * Read or write `len` bytes at `off` in region `index`: the region must
 * exist, allow the direction, and wholly contain [off, off + len).  A short
 * transfer is -EIO.  0 or -errno.
 */
int vfio_region_read(const struct vfio_device *d, unsigned index, uint64_t off, void *buf,
                     size_t len) __must_check;
int vfio_region_write(const struct vfio_device *d, unsigned index, uint64_t off, const void *buf,
                      size_t len) __must_check;

/*
 * Map mmap-able area `area` of region `index` (see struct vfio_region:
 * sparse areas, or the whole region) shared, read/write as the region
 * allows.  *out gets the address, *len its length.  The mapping belongs to
 * the device until vfio_region_munmap or vfio_device_close.
 */
int vfio_region_mmap(struct vfio_device *d, unsigned index, unsigned area, void **out,
                     size_t *len) __must_check;
int vfio_region_munmap(struct vfio_device *d, void *addr) __must_check;

/*
 * Interrupts.  vfio_irq_set_eventfds attaches `count` eventfds (-1 = none
 * for that vector) to vectors [start, start + count) of `index`
 * (VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX, ...); for MSI/MSI-X
 * this is what enables them on the device.  vfio_irq_disable tears the
 * whole index down.  vfio_intx_enable sets the INTx trigger eventfd and the
 * unmask eventfd (KVM's resample fd).  All check the IRQ info first.
 */
int vfio_irq_set_eventfds(const struct vfio_device *d, unsigned index, uint32_t start,
                          uint32_t count, const int *fds) __must_check;
int vfio_irq_disable(const struct vfio_device *d, unsigned index) __must_check;
int vfio_intx_enable(const struct vfio_device *d, int trigger_fd, int unmask_fd) __must_check;

/* VFIO_DEVICE_RESET if the device offers it, else -ENOTSUP. */
int vfio_device_reset(const struct vfio_device *d) __must_check;

/*
 * KVM's kvm-vfio device (one per VM): create it on `vm_fd` (*dev_fd gets its
 * fd, closed by the caller through ops->close or close()), and add the
 * container's group (iommufd: the cdev fd; KVM_DEV_VFIO_FILE_ADD has the
 * value of GROUP_ADD) to it, before vfio_device_open (iommufd: before
 * vfio_iommufd_attach binds the device).
 */
int vfio_kvm_create(const struct vfio_sys_ops *ops, void *ctx, int vm_fd, int *dev_fd,
                    struct errbuf *err) __must_check;
int vfio_kvm_add_group(const struct vfio_container *c, int kvm_dev_fd,
                       struct errbuf *err) __must_check;

/*
 * Capability chains (vfio_caps.c), exposed for the tests.  Parse the caps
 * of a REGION_INFO answer `buf` of `argsz` valid bytes into `r` (areas,
 * type, MSI-X mappable), resp. an IOMMU_GET_INFO answer into `c` (IOVA
 * ranges, DMA entries).  -EINVAL with err on a malformed chain.
 */
int vfio_parse_region_caps(const void *buf, uint32_t argsz, struct vfio_region *r,
                           struct errbuf *err) __must_check;
int vfio_parse_iommu_caps(const void *buf, uint32_t argsz, struct vfio_container *c,
                          struct errbuf *err) __must_check;

/*
 * The iommufd transport (vfio_iommufd.c, docs/VFIO.md "iommufd"): the same
 * struct vfio_container, with /dev/iommu as its fd, an IOAS for the DMA
 * mappings and the VFIO cdev as both the "group" (what kvm-vfio is given)
 * and the device fd.  Order (vfio.md §1.3):
 *   vfio_iommufd_open     /dev/iommu, IOAS_ALLOC, open the cdev
 *   vfio_kvm_create + vfio_kvm_add_group (FILE_ADD of the cdev fd)
 *   vfio_iommufd_attach   BIND_IOMMUFD, ATTACH_IOMMUFD_PT(IOAS), IOVA_RANGES
 *   vfio_dma_map_gmem     IOAS_MAP at IOVA = GPA (FIXED_IOVA)
 *   vfio_device_open      info, regions and IRQs on the cdev fd
 *   ... shared device operations ...
 *   vfio_device_close, vfio_container_close: DETACH, UNMAP, DESTROY, close
 */

/* Is `path` of the form /dev/vfio/devices/vfioN (N decimal, <= 9 digits)? */
bool vfio_cdev_path(const char *path);

/*
 * Open /dev/iommu (ENOENT: "the host kernel lacks IOMMUFD", WISP_EXIT_HOST),
 * allocate an IOAS and open the cdev `cdev_path`.  `ops` NULL means the real
 * kernel.  On failure everything is released and c->fd is -1.
 */
int vfio_iommufd_open(struct vfio_container *c, const struct vfio_sys_ops *ops, void *ctx,
                      const char *cdev_path, struct errbuf *err) __must_check;

/*
 * Bind the cdev to the iommufd, attach it to the IOAS and read the IOAS's
 * allowed IOVA ranges and alignment (re-read after the attach, which can
 * narrow them).  Zero ranges, more ranges than VFIO_MAX_IOVA_RANGES, an
 * inverted range or an odd alignment are refused.  The caller closes the
 * container on failure.
 */
int vfio_iommufd_attach(struct vfio_container *c, struct errbuf *err) __must_check;

/*
 * The transport's DMA primitives, used by vfio_dma_map/unmap (which keep
 * the bookkeeping and checks): IOAS_MAP with FIXED_IOVA|READABLE|WRITEABLE,
 * IOAS_UNMAP of exactly that range.  0 or -errno.
 */
int vfio_iommufd_map(const struct vfio_container *c, uint64_t iova, uint64_t va,
                     uint64_t size) __must_check;
int vfio_iommufd_unmap(const struct vfio_container *c, uint64_t iova, uint64_t size) __must_check;

/*
 * Teardown in the kernel's order: detach the device from the IOAS, unmap
 * what is left, destroy the IOAS, close the cdev, close /dev/iommu.
 * Called by vfio_container_close.
 */
void vfio_iommufd_close(struct vfio_container *c);

#endif /* DEVICES_VFIO_VFIO_H */
