/*
 * Guest RAM for a vhost-vdpa device: IOTLB v2 messages written to the
 * device fd (virtio.md §2.2).  Kept apart from vdpa.c because it is the
 * one place that hands host memory to the device: every region is checked
 * against the device's IOVA range first, IOVA = GPA (no vIOMMU), the whole
 * guest RAM goes in one batch when the device offers IOTLB_BATCH, and a
 * failure part-way takes back what was mapped.
 */
#include <errno.h>
#include <string.h>

#include "devices/vhost/vdpa.h"
#include "devices/vhost/vdpa_uapi.h"

/* Write one IOTLB v2 message; a short write is -EIO. */
static int iotlb_msg(struct vdpa_dev *d, uint8_t type, uint64_t iova, uint64_t size, uint64_t uaddr)
{
    struct vhost_msg_v2 m;
    memset(&m, 0, sizeof(m));
    m.type = VHOST_IOTLB_MSG_V2;
    m.asid = 0;
    m.iotlb.type = type;
    m.iotlb.iova = iova;
    m.iotlb.size = size;
    m.iotlb.uaddr = uaddr;
    m.iotlb.perm = type == VHOST_IOTLB_UPDATE ? VHOST_ACCESS_RW : 0;
    ssize_t n = d->ops->write(d->ctx, d->fd, &m, sizeof(m));
    if (n < 0)
        return (int)n;
    return n == (ssize_t)sizeof(m) ? 0 : -EIO;
}

static int batch(struct vdpa_dev *d, uint8_t type)
{
    if (!vdpa_has_backend(d, VHOST_BACKEND_F_IOTLB_BATCH))
        return 0;
    return iotlb_msg(d, type, 0, 0, 0);
}

/* Is [iova, iova + size) non-empty, non-wrapping and inside the device's range? */
static bool in_range(const struct vdpa_dev *d, uint64_t iova, uint64_t size)
{
    if (size == 0 || iova + size - 1 < iova)
        return false;
    return iova >= d->iova_first && iova + size - 1 <= d->iova_last;
}

int vdpa_unmap_all(struct vdpa_dev *d)
{
    int first = 0;
    if (d->nmaps == 0)
        return 0;
    int rc = batch(d, VHOST_IOTLB_BATCH_BEGIN);
    if (rc < 0)
        first = rc;
    for (unsigned i = 0; i < d->nmaps; i++) {
        rc = iotlb_msg(d, VHOST_IOTLB_INVALIDATE, d->maps[i].iova, d->maps[i].size, 0);
        if (rc < 0 && first == 0)
            first = rc;
    }
    rc = batch(d, VHOST_IOTLB_BATCH_END);
    if (rc < 0 && first == 0)
        first = rc;
    d->nmaps = 0;
    return first;
}

int vdpa_map_gmem(struct vdpa_dev *d, const struct gmem *gm, struct errbuf *err)
{
    int rc;
    if (d->fd < 0)
        return err_set(err, WISP_EXIT_FAILURE, EBADF, "vdpa: device not open");
    if (d->nmaps != 0)
        return err_set(err, WISP_EXIT_FAILURE, EEXIST, "vdpa: guest RAM is already mapped");
    if (gm->nregions == 0 || gm->nregions > VDPA_MAX_MAPS)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "vdpa: guest RAM has %u regions",
                       gm->nregions);
    /* Check everything before the device sees any of it. */
    for (unsigned i = 0; i < gm->nregions; i++) {
        const struct gmem_region *r = &gm->regions[i];
        if (!in_range(d, r->gpa, r->size))
            return err_set(err, WISP_EXIT_USAGE, ERANGE,
                           "vdpa: guest RAM [%#llx, +%#llx) is outside the device's IOVA range "
                           "[%#llx, %#llx]",
                           (unsigned long long)r->gpa, (unsigned long long)r->size,
                           (unsigned long long)d->iova_first, (unsigned long long)d->iova_last);
    }
    rc = batch(d, VHOST_IOTLB_BATCH_BEGIN);
    if (rc < 0)
        return err_set(err, WISP_EXIT_FAILURE, -rc, "vdpa: IOTLB batch begin failed");
    for (unsigned i = 0; i < gm->nregions; i++) {
        const struct gmem_region *r = &gm->regions[i];
        rc = iotlb_msg(d, VHOST_IOTLB_UPDATE, r->gpa, r->size, (uint64_t)(uintptr_t)r->hva);
        if (rc < 0) {
            err_set(err, rc == -ENOMEM ? WISP_EXIT_HOST : WISP_EXIT_FAILURE, -rc,
                    "vdpa: mapping guest RAM [%#llx, +%#llx) failed: %s%s",
                    (unsigned long long)r->gpa, (unsigned long long)r->size, strerror(-rc),
                    rc == -ENOMEM ? " (RLIMIT_MEMLOCK too small?)" : "");
            goto fail;
        }
        d->maps[d->nmaps++] = (struct vdpa_map){.iova = r->gpa, .size = r->size};
    }
    rc = batch(d, VHOST_IOTLB_BATCH_END);
    if (rc < 0) {
        err_set(err, WISP_EXIT_FAILURE, -rc, "vdpa: IOTLB batch end failed");
        goto fail;
    }
    return 0;
fail:
    /* Close the open batch (if any) first; then take back what was mapped. */
    (void)batch(d, VHOST_IOTLB_BATCH_END);
    if (vdpa_unmap_all(d) < 0) {
        /* Best effort: the mapping error above is the one reported. */
    }
    return rc;
}
