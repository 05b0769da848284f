/*
 * Kernel VFIO: container and group set-up, the device fd and what the
 * kernel says about the device (info, regions with their caps, IRQs),
 * region access (pread/pwrite, mmap) and reset.
 *
 * Why here and not in the PCI function: these are the kernel's rules
 * (/work/shared/reference/vfio.md §1.2, §1.5, §1.8), independent of how the
 * device is presented to the guest; the PCI passthrough function builds its
 * virtual config space on top.  All kernel access goes through c->ops.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "devices/vfio/vfio.h"

#define VFIO_PATH "/dev/vfio/vfio"

static void close_fd(const struct vfio_container *c, int *fd)
{
    if (*fd >= 0)
        c->ops->close(c->ctx, *fd);
    *fd = -1;
}

/*
 * Ask the kernel for an info struct with caps: first `fixed` bytes, then
 * again with the argsz it asks for (bounded by VFIO_MAX_INFO_SIZE).
 * *out (malloc'ed) and *len (valid bytes) on success (0).  An ioctl failing
 * with `quiet` (an errno, or 0) returns 1, without an error report.
 */
static int get_info(const struct vfio_container *c, int fd, unsigned long req, const void *in,
                    uint32_t fixed, void **out, uint32_t *len, const char *what, int quiet,
                    struct errbuf *err)
{
    uint32_t size = fixed;

    for (int round = 0; round < 2; round++) {
        uint8_t *buf = calloc(1, size);
        if (buf == NULL)
            return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "vfio: %s: out of memory", what);
        memcpy(buf, in, fixed);
        memcpy(buf, &size, sizeof(size)); /* argsz is the first member of every info struct */
        int rc = c->ops->ioctl(c->ctx, fd, req, (uintptr_t)buf);
        if (rc < 0) {
            free(buf);
            if (quiet != 0 && rc == -quiet)
                return 1;
            return err_set(err, WISP_EXIT_FAILURE, -rc, "vfio: %s: %s", what, strerror(-rc));
        }
        uint32_t want;
        memcpy(&want, buf, sizeof(want));
        if (want <= size) {
            /* The kernel filled at most what it says it needs. */
            *out = buf;
            *len = want < fixed ? fixed : want;
            return 0;
        }
        free(buf);
        if (round == 1 || want > VFIO_MAX_INFO_SIZE)
            return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                           "vfio: %s: the kernel asks for %u bytes (had %u)", what, want, size);
        size = want;
    }
    return err_set(err, WISP_EXIT_FAILURE, EINVAL, "vfio: %s: no answer", what);
}

int vfio_container_open(struct vfio_container *c, const struct vfio_sys_ops *ops, void *ctx,
                        const char *group_path, struct errbuf *err)
{
    memset(c, 0, sizeof(*c));
    c->ops = ops != NULL ? ops : &vfio_sys_kernel;
    c->ctx = ctx;
    c->fd = c->group_fd = -1;

    int rc = c->ops->open(c->ctx, VFIO_PATH, O_RDWR);
    if (rc < 0)
        return err_set(err, WISP_EXIT_HOST, -rc, "vfio: open %s: %s", VFIO_PATH, strerror(-rc));
    c->fd = rc;

    rc = c->ops->ioctl(c->ctx, c->fd, VFIO_GET_API_VERSION, 0);
    if (rc != VFIO_API_VERSION) {
        err_set(err, WISP_EXIT_HOST, rc < 0 ? -rc : ENOTSUP,
                "vfio: API version %d, this VMM speaks %d", rc, VFIO_API_VERSION);
        goto fail;
    }
    rc = c->ops->ioctl(c->ctx, c->fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU);
    if (rc <= 0) {
        err_set(err, WISP_EXIT_HOST, rc < 0 ? -rc : ENOTSUP,
                "vfio: the kernel has no TYPE1v2 IOMMU (vfio_iommu_type1 not loaded?)");
        goto fail;
    }

    rc = c->ops->open(c->ctx, group_path, O_RDWR);
    if (rc < 0) {
        err_set(err, WISP_EXIT_HOST, -rc, "vfio: open %s: %s", group_path, strerror(-rc));
        goto fail;
    }
    c->group_fd = rc;

    struct vfio_group_status st = {.argsz = sizeof(st)};
    rc = c->ops->ioctl(c->ctx, c->group_fd, VFIO_GROUP_GET_STATUS, (uintptr_t)&st);
    if (rc < 0) {
        err_set(err, WISP_EXIT_HOST, -rc, "vfio: %s: group status: %s", group_path, strerror(-rc));
        goto fail;
    }
    if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
        err_set(err, WISP_EXIT_HOST, EBUSY,
                "vfio: %s is not viable: bind every device of the group to vfio-pci", group_path);
        goto fail;
    }
    int cfd = c->fd;
    rc = c->ops->ioctl(c->ctx, c->group_fd, VFIO_GROUP_SET_CONTAINER, (uintptr_t)&cfd);
    if (rc < 0) {
        err_set(err, WISP_EXIT_HOST, -rc, "vfio: %s: set container: %s", group_path, strerror(-rc));
        goto fail;
    }
    rc = c->ops->ioctl(c->ctx, c->fd, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
    if (rc < 0) {
        err_set(err, WISP_EXIT_HOST, -rc,
                "vfio: set TYPE1v2 IOMMU: %s (interrupt remapping missing?)", strerror(-rc));
        goto fail;
    }

    struct vfio_iommu_type1_info in = {0};
    void *buf = NULL;
    uint32_t len = 0;
    rc = get_info(c, c->fd, VFIO_IOMMU_GET_INFO, &in, sizeof(in), &buf, &len, "IOMMU info", 0, err);
    if (rc != 0)
        goto fail;
    rc = vfio_parse_iommu_caps(buf, len, c, err);
    free(buf);
    if (rc < 0)
        goto fail;
    return 0;

fail:
    close_fd(c, &c->group_fd);
    close_fd(c, &c->fd);
    return -EIO;
}

void vfio_container_close(struct vfio_container *c)
{
    if (c->ops == NULL)
        return;
    if (c->iommufd) {
        vfio_iommufd_close(c);
        return;
    }
    while (c->nmaps > 0) {
        struct vfio_dma m = c->maps[c->nmaps - 1];
        if (vfio_dma_unmap(c, m.iova, m.size) < 0)
            c->nmaps--; /* closing the container drops it anyway */
    }
    close_fd(c, &c->group_fd);
    close_fd(c, &c->fd);
}

static int read_region(struct vfio_device *d, uint32_t index, struct errbuf *err)
{
    struct vfio_region_info in = {.index = index};
    void *buf = NULL;
    uint32_t len = 0;
    char what[48];

    snprintf(what, sizeof(what), "region %u info", index);
    int rc = get_info(d->c, d->fd, VFIO_DEVICE_GET_REGION_INFO, &in, sizeof(in), &buf, &len, what,
                      EINVAL, err);
    if (rc == 1) {
        /* vfio-pci refuses the indices a device lacks (VGA on a non-VGA device). */
        memset(&d->regions[index], 0, sizeof(d->regions[index]));
        return 0;
    }
    if (rc < 0)
        return rc;
    rc = vfio_parse_region_caps(buf, len, &d->regions[index], err);
    free(buf);
    return rc;
}

int vfio_device_open(struct vfio_device *d, struct vfio_container *c, const char *name,
                     struct errbuf *err)
{
    memset(d, 0, sizeof(*d));
    d->c = c;
    d->fd = -1;

    int rc;
    if (c->iommufd) {
        /* The cdev is the device fd; usable only once bound (vfio.md §1.3). */
        if (!c->attached)
            return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                           "vfio: device %s: not bound and attached to iommufd", name);
        d->fd = c->group_fd;
    } else {
        rc = c->ops->ioctl(c->ctx, c->group_fd, VFIO_GROUP_GET_DEVICE_FD, (uintptr_t)name);
        if (rc < 0)
            return err_set(err, WISP_EXIT_HOST, -rc, "vfio: device %s: %s", name, strerror(-rc));
        d->fd = rc;
    }

    struct vfio_device_info info = {.argsz = sizeof(info)};
    rc = c->ops->ioctl(c->ctx, d->fd, VFIO_DEVICE_GET_INFO, (uintptr_t)&info);
    if (rc < 0) {
        err_set(err, WISP_EXIT_FAILURE, -rc, "vfio: device %s info: %s", name, strerror(-rc));
        goto fail;
    }
    d->flags = info.flags;
    d->num_regions = info.num_regions;
    d->num_irqs = info.num_irqs;
    if (!(info.flags & VFIO_DEVICE_FLAGS_PCI)) {
        err_set(err, WISP_EXIT_USAGE, ENOTSUP, "vfio: device %s is not a PCI device", name);
        goto fail;
    }
    if (info.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX) {
        err_set(err, WISP_EXIT_FAILURE, EINVAL, "vfio: device %s has only %u regions", name,
                info.num_regions);
        goto fail;
    }
    uint32_t nreg = info.num_regions < VFIO_MAX_REGIONS ? info.num_regions : VFIO_MAX_REGIONS;
    for (uint32_t i = 0; i < nreg; i++) {
        rc = read_region(d, i, err);
        if (rc < 0)
            goto fail;
    }
    uint32_t nirq = info.num_irqs < VFIO_MAX_IRQS ? info.num_irqs : VFIO_MAX_IRQS;
    for (uint32_t i = 0; i < nirq; i++) {
        struct vfio_irq_info ii = {.argsz = sizeof(ii), .index = i};
        rc = c->ops->ioctl(c->ctx, d->fd, VFIO_DEVICE_GET_IRQ_INFO, (uintptr_t)&ii);
        if (rc == -EINVAL) {
            ii.flags = ii.count = 0; /* an index this device lacks */
        } else if (rc < 0) {
            err_set(err, WISP_EXIT_FAILURE, -rc, "vfio: device %s IRQ %u info: %s", name, i,
                    strerror(-rc));
            goto fail;
        }
        d->irqs[i].flags = ii.flags;
        d->irqs[i].count = ii.count;
    }
    return 0;

fail:
    vfio_device_close(d);
    return -EIO;
}

void vfio_device_close(struct vfio_device *d)
{
    if (d->c == NULL)
        return;
    for (unsigned i = 0; i < d->nmmaps; i++)
        d->c->ops->munmap(d->c->ctx, d->mmaps[i].addr, d->mmaps[i].len);
    d->nmmaps = 0;
    if (d->c->iommufd)
        d->fd = -1; /* borrowed: the cdev stays the container's until its teardown */
    else
        close_fd(d->c, &d->fd);
}

/* The region `index` if [off, off + len) lies wholly inside it, else NULL. */
static const struct vfio_region *region_range(const struct vfio_device *d, unsigned index,
                                              uint64_t off, size_t len)
{
    if (d->fd < 0 || index >= d->num_regions || index >= VFIO_MAX_REGIONS || len == 0)
        return NULL;
    const struct vfio_region *r = &d->regions[index];
    if (off > r->size || len > r->size - off)
        return NULL;
    return r;
}

int vfio_region_read(const struct vfio_device *d, unsigned index, uint64_t off, void *buf,
                     size_t len)
{
    const struct vfio_region *r = region_range(d, index, off, len);
    if (r == NULL)
        return -EINVAL;
    if (!(r->flags & VFIO_REGION_INFO_FLAG_READ))
        return -EACCES;
    ssize_t n = d->c->ops->pread(d->c->ctx, d->fd, buf, len, (off_t)(r->offset + off));
    if (n < 0)
        return (int)n;
    return (size_t)n == len ? 0 : -EIO;
}

int vfio_region_write(const struct vfio_device *d, unsigned index, uint64_t off, const void *buf,
                      size_t len)
{
    const struct vfio_region *r = region_range(d, index, off, len);
    if (r == NULL)
        return -EINVAL;
    if (!(r->flags & VFIO_REGION_INFO_FLAG_WRITE))
        return -EACCES;
    ssize_t n = d->c->ops->pwrite(d->c->ctx, d->fd, buf, len, (off_t)(r->offset + off));
    if (n < 0)
        return (int)n;
    return (size_t)n == len ? 0 : -EIO;
}

int vfio_region_mmap(struct vfio_device *d, unsigned index, unsigned area, void **out, size_t *len)
{
    if (d->fd < 0 || index >= d->num_regions || index >= VFIO_MAX_REGIONS)
        return -EINVAL;
    const struct vfio_region *r = &d->regions[index];
    if (!(r->flags & VFIO_REGION_INFO_FLAG_MMAP) || area >= r->nareas)
        return -EINVAL;
    const struct vfio_area *a = &r->areas[area];
    uint64_t page = 4096;
    if ((r->offset + a->offset) % page != 0)
        return -EINVAL;
    if (d->nmmaps >= VFIO_MAX_MMAPS)
        return -ENOSPC;
    int prot = 0;
    if (r->flags & VFIO_REGION_INFO_FLAG_READ)
        prot |= PROT_READ;
    if (r->flags & VFIO_REGION_INFO_FLAG_WRITE)
        prot |= PROT_WRITE;
    void *p = NULL;
    int rc = d->c->ops->mmap(d->c->ctx, d->fd, (off_t)(r->offset + a->offset), a->size, prot, &p);
    if (rc < 0)
        return rc;
    d->mmaps[d->nmmaps].addr = p;
    d->mmaps[d->nmmaps].len = a->size;
    d->nmmaps++;
    *out = p;
    *len = a->size;
    return 0;
}

int vfio_region_munmap(struct vfio_device *d, void *addr)
{
    for (unsigned i = 0; i < d->nmmaps; i++) {
        if (d->mmaps[i].addr != addr)
            continue;
        int rc = d->c->ops->munmap(d->c->ctx, addr, d->mmaps[i].len);
        d->mmaps[i] = d->mmaps[--d->nmmaps];
        return rc;
    }
    return -EINVAL;
}

int vfio_device_reset(const struct vfio_device *d)
{
    if (d->fd < 0)
        return -EBADF;
    if (!(d->flags & VFIO_DEVICE_FLAGS_RESET))
        return -ENOTSUP;
    return d->c->ops->ioctl(d->c->ctx, d->fd, VFIO_DEVICE_RESET, 0);
}
