/*
 * DMA through the container's IOMMU (guest RAM at IOVA = GPA) and the
 * VM's kvm-vfio device.
 *
 * Why the bookkeeping: type1 pins pages at map time and keeps them pinned
 * until unmapped, so every mapping is recorded and vfio_container_close
 * unmaps what is left; a failure half-way through mapping guest RAM undoes
 * the part already mapped.  Mappings are checked against the IOVA ranges
 * and free DMA entries the kernel reported before the kernel is asked.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <string.h>

#include "devices/vfio/iommufd_uapi.h"
#include "devices/vfio/vfio.h"

#define VFIO_PAGE 4096ull

bool vfio_iova_ok(const struct vfio_container *c, uint64_t iova, uint64_t size)
{
    if (size == 0 || iova + size - 1 < iova)
        return false;
    if (c->nranges == 0)
        return true;
    for (unsigned i = 0; i < c->nranges; i++)
        if (iova >= c->ranges[i].start && iova + size - 1 <= c->ranges[i].end)
            return true;
    return false;
}

int vfio_dma_map(struct vfio_container *c, uint64_t iova, void *hva, uint64_t size,
                 struct errbuf *err)
{
    uint64_t va = (uint64_t)(uintptr_t)hva;

    if (c->fd < 0)
        return err_set(err, WISP_EXIT_FAILURE, EBADF, "vfio: DMA map on a closed container");
    if (size == 0 || iova % VFIO_PAGE || size % VFIO_PAGE || va % VFIO_PAGE)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                       "vfio: DMA map of 0x%llx + 0x%llx is not page aligned",
                       (unsigned long long)iova, (unsigned long long)size);
    if (c->iommufd && c->nranges == 0)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                       "vfio: DMA map before the IOAS's IOVA ranges are known (attach first)");
    if (!vfio_iova_ok(c, iova, size))
        return err_set(err, WISP_EXIT_USAGE, ERANGE,
                       "vfio: IOVA [0x%llx, +0x%llx) is outside the IOMMU's usable ranges",
                       (unsigned long long)iova, (unsigned long long)size);
    for (unsigned i = 0; i < c->nmaps; i++)
        if (iova < c->maps[i].iova + c->maps[i].size && c->maps[i].iova < iova + size)
            return err_set(err, WISP_EXIT_FAILURE, EEXIST,
                           "vfio: IOVA 0x%llx overlaps an existing DMA mapping",
                           (unsigned long long)iova);
    if (c->iova_align > VFIO_PAGE && (iova | size | va) & (c->iova_align - 1))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "vfio: DMA map of 0x%llx + 0x%llx is not aligned to the IOMMU's 0x%llx",
                       (unsigned long long)iova, (unsigned long long)size,
                       (unsigned long long)c->iova_align);
    if (c->nmaps >= VFIO_MAX_DMA_MAPS || (c->have_dma_avail && c->dma_avail == 0))
        return err_set(err, WISP_EXIT_HOST, ENOSPC, "vfio: no DMA mapping entries left");

    int rc;
    if (c->iommufd) {
        rc = vfio_iommufd_map(c, iova, va, size);
    } else {
        struct vfio_iommu_type1_dma_map m = {
            .argsz = sizeof(m),
            .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
            .vaddr = va,
            .iova = iova,
            .size = size,
        };
        rc = c->ops->ioctl(c->ctx, c->fd, VFIO_IOMMU_MAP_DMA, (uintptr_t)&m);
    }
    if (rc < 0)
        return err_set(err, WISP_EXIT_HOST, -rc, "vfio: DMA map of 0x%llx + 0x%llx: %s%s",
                       (unsigned long long)iova, (unsigned long long)size, strerror(-rc),
                       rc == -ENOMEM ? " (RLIMIT_MEMLOCK too low?)" : "");
    c->maps[c->nmaps].iova = iova;
    c->maps[c->nmaps].size = size;
    c->nmaps++;
    if (c->have_dma_avail)
        c->dma_avail--;
    return 0;
}

int vfio_dma_unmap(struct vfio_container *c, uint64_t iova, uint64_t size)
{
    for (unsigned i = 0; i < c->nmaps; i++) {
        if (c->maps[i].iova != iova || c->maps[i].size != size)
            continue;
        int rc;
        if (c->iommufd) {
            rc = vfio_iommufd_unmap(c, iova, size);
        } else {
            struct vfio_iommu_type1_dma_unmap u = {.argsz = sizeof(u), .iova = iova, .size = size};
            rc = c->ops->ioctl(c->ctx, c->fd, VFIO_IOMMU_UNMAP_DMA, (uintptr_t)&u);
        }
        if (rc < 0)
            return rc;
        c->maps[i] = c->maps[--c->nmaps];
        if (c->have_dma_avail)
            c->dma_avail++;
        return 0;
    }
    return -ENOENT;
}

int vfio_dma_map_gmem(struct vfio_container *c, const struct gmem *gm, struct errbuf *err)
{
    unsigned done;

    for (done = 0; done < gm->nregions; done++) {
        const struct gmem_region *r = &gm->regions[done];
        if (vfio_dma_map(c, r->gpa, r->hva, r->size, err) < 0)
            break;
    }
    if (done == gm->nregions)
        return 0;
    while (done-- > 0) {
        const struct gmem_region *r = &gm->regions[done];
        if (vfio_dma_unmap(c, r->gpa, r->size) < 0)
            continue; /* still recorded: vfio_container_close tries again */
    }
    return -EIO;
}

int vfio_kvm_create(const struct vfio_sys_ops *ops, void *ctx, int vm_fd, int *dev_fd,
                    struct errbuf *err)
{
    if (ops == NULL)
        ops = &vfio_sys_kernel;
    struct kvm_create_device cd = {.type = KVM_DEV_TYPE_VFIO};
    int rc = ops->ioctl(ctx, vm_fd, KVM_CREATE_DEVICE, (uintptr_t)&cd);
    if (rc < 0)
        return err_set(err, WISP_EXIT_HOST, -rc, "vfio: KVM_CREATE_DEVICE(VFIO): %s",
                       strerror(-rc));
    *dev_fd = (int)cd.fd;
    return 0;
}

int vfio_kvm_add_group(const struct vfio_container *c, int kvm_dev_fd, struct errbuf *err)
{
    int32_t gfd = c->group_fd; /* group fd, or the cdev fd for iommufd */
    struct kvm_device_attr a = {
        .group = KVM_DEV_VFIO_FILE,
        .attr = KVM_DEV_VFIO_FILE_ADD,
        .addr = (uint64_t)(uintptr_t)&gfd,
    };
    int rc = c->ops->ioctl(c->ctx, kvm_dev_fd, KVM_SET_DEVICE_ATTR, (uintptr_t)&a);
    if (rc < 0)
        return err_set(err, WISP_EXIT_HOST, -rc, "vfio: add the %s to kvm-vfio: %s",
                       c->iommufd ? "device" : "group", strerror(-rc));
    return 0;
}
