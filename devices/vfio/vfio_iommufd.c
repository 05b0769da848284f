/*
 * The iommufd transport of kernel VFIO: /dev/iommu, an IOAS holding guest
 * RAM at IOVA = GPA, and the device's VFIO cdev (/dev/vfio/devices/vfioN)
 * bound to the iommufd and attached to the IOAS.
 *
 * Why a file of its own, and why so small: only the set-up, the DMA
 * primitives and the teardown differ from the container/group API.  The
 * bookkeeping of DMA mappings (vfio_dma.c), the device operations (regions,
 * mmap, IRQs, reset in vfio.c and vfio_irq.c) and kvm-vfio are shared: this
 * transport is a struct vfio_container with c->iommufd set.  The kernel's
 * rules are in /work/shared/reference/vfio.md §1.3; what the kernel answers
 * (range counts, ranges, alignment, ids) is checked before it is used.
 * Debian's kernels lack CONFIG_IOMMUFD: this runs against the simulator of
 * tests/lib/fake_iommufd.h only (docs/VFIO.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "devices/vfio/iommufd_uapi.h"
#include "devices/vfio/vfio.h"

#define IOMMUFD_PATH "/dev/iommu"
#define CDEV_PREFIX  "/dev/vfio/devices/vfio"
/* Larger alignments than a 1 GiB page make no sense for RAM mappings. */
#define IOMMUFD_MAX_ALIGN (1ull << 30)

bool vfio_cdev_path(const char *path)
{
    size_t n = strlen(CDEV_PREFIX);
    if (path == NULL || strncmp(path, CDEV_PREFIX, n) != 0)
        return false;
    const char *num = path + n;
    size_t digits = strspn(num, "0123456789");
    return digits > 0 && digits <= 9 && num[digits] == '\0';
}

static void close_fd(const struct vfio_container *c, int *fd)
{
    if (*fd >= 0)
        c->ops->close(c->ctx, *fd);
    *fd = -1;
}

/* IOMMU_DESTROY of the IOAS; 0 or -errno. */
static int destroy_ioas(const struct vfio_container *c)
{
    struct iommu_destroy d = {.size = sizeof(d), .id = c->ioas_id};
    return c->ops->ioctl(c->ctx, c->fd, IOMMU_DESTROY, (uintptr_t)&d);
}

int vfio_iommufd_open(struct vfio_container *c, const struct vfio_sys_ops *ops, void *ctx,
                      const char *cdev_path, struct errbuf *err)
{
    memset(c, 0, sizeof(*c));
    c->ops = ops != NULL ? ops : &vfio_sys_kernel;
    c->ctx = ctx;
    c->fd = c->group_fd = -1;
    c->iommufd = true;
    bool have_ioas = false;

    if (!vfio_cdev_path(cdev_path))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "vfio: %s is not a VFIO cdev (/dev/vfio/devices/vfioN)", cdev_path);
    int rc = c->ops->open(c->ctx, IOMMUFD_PATH, O_RDWR);
    if (rc == -ENOENT || rc == -ENODEV || rc == -ENXIO)
        return err_set(err, WISP_EXIT_HOST, -rc,
                       "vfio: the host kernel lacks IOMMUFD (no %s; needs CONFIG_IOMMUFD and "
                       "CONFIG_VFIO_DEVICE_CDEV, Linux >= 6.6) for %s",
                       IOMMUFD_PATH, cdev_path);
    if (rc < 0)
        return err_set(err, WISP_EXIT_HOST, -rc, "vfio: open %s: %s", IOMMUFD_PATH, strerror(-rc));
    c->fd = rc;

    struct iommu_ioas_alloc a = {.size = sizeof(a)};
    rc = c->ops->ioctl(c->ctx, c->fd, IOMMU_IOAS_ALLOC, (uintptr_t)&a);
    if (rc < 0) {
        err_set(err, WISP_EXIT_HOST, -rc, "vfio: iommufd IOAS_ALLOC: %s", strerror(-rc));
        goto fail;
    }
    c->ioas_id = a.out_ioas_id;
    have_ioas = true;

    rc = c->ops->open(c->ctx, cdev_path, O_RDWR);
    if (rc < 0) {
        err_set(err, WISP_EXIT_HOST, -rc, "vfio: open %s: %s", cdev_path, strerror(-rc));
        goto fail;
    }
    c->group_fd = rc;
    return 0;

fail:
    if (have_ioas && destroy_ioas(c) < 0)
        c->ioas_id = 0; /* closing /dev/iommu frees it anyway */
    close_fd(c, &c->fd);
    return -EIO;
}

/* IOAS_IOVA_RANGES into c->ranges, checked; 0 or -errno with err. */
static int read_ranges(struct vfio_container *c, struct errbuf *err)
{
    struct iommu_iova_range r[VFIO_MAX_IOVA_RANGES];
    memset(r, 0, sizeof(r));
    struct iommu_ioas_iova_ranges q = {
        .size = sizeof(q),
        .ioas_id = c->ioas_id,
        .num_iovas = VFIO_MAX_IOVA_RANGES,
        .allowed_iovas = (uint64_t)(uintptr_t)r,
    };
    int rc = c->ops->ioctl(c->ctx, c->fd, IOMMU_IOAS_IOVA_RANGES, (uintptr_t)&q);
    /* Read each answer field once: it is the kernel's, not ours. */
    uint32_t n = q.num_iovas;
    uint64_t align = q.out_iova_alignment;
    if (rc == -EMSGSIZE || (rc == 0 && n > VFIO_MAX_IOVA_RANGES))
        return err_set(err, WISP_EXIT_HOST, EMSGSIZE,
                       "vfio: the IOAS has %u IOVA ranges, wisp handles at most %u", n,
                       VFIO_MAX_IOVA_RANGES);
    if (rc < 0)
        return err_set(err, WISP_EXIT_HOST, -rc, "vfio: iommufd IOVA_RANGES: %s", strerror(-rc));
    if (n == 0)
        return err_set(err, WISP_EXIT_HOST, ERANGE, "vfio: the IOAS allows no IOVA at all");
    if (align < 4096 || align > IOMMUFD_MAX_ALIGN || (align & (align - 1)) != 0)
        return err_set(err, WISP_EXIT_HOST, EINVAL, "vfio: odd IOVA alignment 0x%llx",
                       (unsigned long long)align);
    for (uint32_t i = 0; i < n; i++) {
        if (r[i].start > r[i].last)
            return err_set(err, WISP_EXIT_HOST, EINVAL,
                           "vfio: IOVA range %u is inverted (0x%llx > 0x%llx)", i,
                           (unsigned long long)r[i].start, (unsigned long long)r[i].last);
        c->ranges[i].start = r[i].start;
        c->ranges[i].end = r[i].last;
    }
    c->nranges = n;
    c->iova_align = align;
    return 0;
}

int vfio_iommufd_attach(struct vfio_container *c, struct errbuf *err)
{
    if (!c->iommufd || c->fd < 0 || c->group_fd < 0)
        return err_set(err, WISP_EXIT_FAILURE, EBADF, "vfio: iommufd attach without open");
    /* The kernel binds a cdev fd once (a second BIND is EINVAL). */
    if (c->bound)
        return err_set(err, WISP_EXIT_FAILURE, EALREADY, "vfio: the device is already bound");
    struct vfio_device_bind_iommufd b = {.argsz = sizeof(b), .iommufd = c->fd};
    int rc = c->ops->ioctl(c->ctx, c->group_fd, VFIO_DEVICE_BIND_IOMMUFD, (uintptr_t)&b);
    if (rc < 0)
        return err_set(err, WISP_EXIT_HOST, -rc, "vfio: BIND_IOMMUFD: %s%s", strerror(-rc),
                       rc == -EBUSY ? " (is the device's group open elsewhere?)" : "");
    c->bound = true;
    c->devid = b.out_devid;

    struct vfio_device_attach_iommufd_pt at = {.argsz = sizeof(at), .pt_id = c->ioas_id};
    rc = c->ops->ioctl(c->ctx, c->group_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, (uintptr_t)&at);
    if (rc < 0)
        return err_set(err, WISP_EXIT_HOST, -rc, "vfio: ATTACH_IOMMUFD_PT: %s", strerror(-rc));
    c->attached = true;
    c->hwpt_id = at.pt_id; /* the page table the kernel made for the IOAS */
    /* The attach may have reserved the device's own ranges: read them now. */
    return read_ranges(c, err);
}

int vfio_iommufd_map(const struct vfio_container *c, uint64_t iova, uint64_t va, uint64_t size)
{
    struct iommu_ioas_map m = {
        .size = sizeof(m),
        .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
        .ioas_id = c->ioas_id,
        .user_va = va,
        .length = size,
        .iova = iova,
    };
    return c->ops->ioctl(c->ctx, c->fd, IOMMU_IOAS_MAP, (uintptr_t)&m);
}

int vfio_iommufd_unmap(const struct vfio_container *c, uint64_t iova, uint64_t size)
{
    struct iommu_ioas_unmap u = {
        .size = sizeof(u), .ioas_id = c->ioas_id, .iova = iova, .length = size};
    return c->ops->ioctl(c->ctx, c->fd, IOMMU_IOAS_UNMAP, (uintptr_t)&u);
}

void vfio_iommufd_close(struct vfio_container *c)
{
    if (c->attached && c->group_fd >= 0) {
        struct vfio_device_detach_iommufd_pt d = {.argsz = sizeof(d)};
        if (c->ops->ioctl(c->ctx, c->group_fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, (uintptr_t)&d) == 0)
            c->attached = false;
    }
    while (c->nmaps > 0) {
        struct vfio_dma m = c->maps[c->nmaps - 1];
        if (vfio_dma_unmap(c, m.iova, m.size) < 0)
            c->nmaps--; /* destroying the IOAS drops it anyway */
    }
    if (c->fd >= 0 && !c->attached && destroy_ioas(c) < 0)
        c->ioas_id = 0; /* closing /dev/iommu frees it */
    /* Closing the cdev unbinds it (and detaches it if DETACH failed). */
    close_fd(c, &c->group_fd);
    c->bound = c->attached = false;
    close_fd(c, &c->fd);
}
