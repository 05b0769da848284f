/*
 * VFIO capability chains: the variable-length tails of REGION_INFO and
 * IOMMU_GET_INFO answers.
 *
 * Why careful parsing: a chain is a linked list of headers inside a buffer
 * the kernel filled, linked by byte offsets.  We trust the kernel to mean
 * well, not to be bug-free (and a simulator or a future vfio-user server
 * feeds the same parser), so every offset and count is bounded by the
 * `argsz` bytes actually filled, links must move strictly forward (no
 * loops), the walk has a hop limit, and a cap's body may not run into the
 * next cap.  A malformed chain is an error, never a partial answer.
 */
#include <errno.h>
#include <linux/vfio.h>
#include <string.h>

#include "devices/vfio/vfio.h"

/* Called for each cap with its body: [cap, cap + len), len >= header. */
typedef int (*vfio_cap_fn)(void *ctx, const struct vfio_info_cap_header *h, const uint8_t *cap,
                           uint32_t len, struct errbuf *err);

/*
 * Walk the chain starting at `first` in buf[0, argsz).  Caps may not start
 * before `min_off` (the fixed part of the answer).
 */
static int vfio_cap_walk(const uint8_t *buf, uint32_t argsz, uint32_t min_off, uint32_t first,
                         vfio_cap_fn fn, void *ctx, struct errbuf *err)
{
    uint32_t off = first;
    unsigned hops = 0;

    while (off != 0) {
        struct vfio_info_cap_header h;

        if (++hops > VFIO_MAX_CAP_HOPS)
            return err_set(err, WISP_EXIT_FAILURE, EINVAL, "vfio: capability chain longer than %d",
                           VFIO_MAX_CAP_HOPS);
        if (off < min_off)
            return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                           "vfio: capability at %u overlaps the fixed part (%u bytes)", off,
                           min_off);
        if (off % 4 != 0)
            return err_set(err, WISP_EXIT_FAILURE, EINVAL, "vfio: capability at %u is unaligned",
                           off);
        if (off > argsz || argsz - off < sizeof(h))
            return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                           "vfio: capability at %u runs past argsz %u", off, argsz);
        memcpy(&h, buf + off, sizeof(h));
        if (h.next != 0 && h.next <= off)
            return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                           "vfio: capability at %u links back to %u", off, h.next);
        uint32_t end = h.next != 0 ? h.next : argsz;
        if (end > argsz)
            return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                           "vfio: capability at %u links past argsz %u (to %u)", off, argsz,
                           h.next);
        if (end - off < sizeof(h))
            return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                           "vfio: capability at %u is shorter than its header", off);
        int rc = fn(ctx, &h, buf + off, end - off, err);
        if (rc < 0)
            return rc;
        off = h.next;
    }
    return 0;
}

static int region_cap(void *ctx, const struct vfio_info_cap_header *h, const uint8_t *cap,
                      uint32_t len, struct errbuf *err)
{
    struct vfio_region *r = ctx;

    switch (h->id) {
    case VFIO_REGION_INFO_CAP_SPARSE_MMAP: {
        struct vfio_region_info_cap_sparse_mmap sp;
        if (r->sparse)
            return err_set(err, WISP_EXIT_FAILURE, EINVAL, "vfio: two sparse-mmap capabilities");
        if (len < sizeof(sp))
            return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                           "vfio: sparse-mmap capability truncated (%u bytes)", len);
        memcpy(&sp, cap, sizeof(sp));
        uint32_t room = (len - (uint32_t)sizeof(sp)) / sizeof(struct vfio_region_sparse_mmap_area);
        if (sp.nr_areas > room)
            return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                           "vfio: sparse-mmap lists %u areas, room for %u", sp.nr_areas, room);
        if (sp.nr_areas > VFIO_MAX_SPARSE)
            return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                           "vfio: sparse-mmap lists %u areas, at most %d supported", sp.nr_areas,
                           VFIO_MAX_SPARSE);
        r->sparse = true;
        r->nareas = 0;
        for (uint32_t i = 0; i < sp.nr_areas; i++) {
            struct vfio_region_sparse_mmap_area a;
            memcpy(&a, cap + sizeof(sp) + i * sizeof(a), sizeof(a));
            if (a.size == 0)
                continue;
            if (a.offset > r->size || a.size > r->size - a.offset)
                return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                               "vfio: sparse area %u [0x%llx, +0x%llx) outside the region (0x%llx)",
                               i, (unsigned long long)a.offset, (unsigned long long)a.size,
                               (unsigned long long)r->size);
            r->areas[r->nareas].offset = a.offset;
            r->areas[r->nareas].size = a.size;
            r->nareas++;
        }
        return 0;
    }
    case VFIO_REGION_INFO_CAP_TYPE: {
        struct vfio_region_info_cap_type t;
        if (len < sizeof(t))
            return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                           "vfio: type capability truncated (%u bytes)", len);
        memcpy(&t, cap, sizeof(t));
        r->has_type = true;
        r->type = t.type;
        r->subtype = t.subtype;
        return 0;
    }
    case VFIO_REGION_INFO_CAP_MSIX_MAPPABLE:
        r->msix_mappable = true;
        return 0;
    default:
        return 0; /* unknown caps are skipped: the chain told us where the next one is */
    }
}

int vfio_parse_region_caps(const void *buf, uint32_t argsz, struct vfio_region *r,
                           struct errbuf *err)
{
    struct vfio_region_info info;

    if (argsz < sizeof(info))
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "vfio: region info of %u bytes", argsz);
    memcpy(&info, buf, sizeof(info));
    memset(r, 0, sizeof(*r));
    r->flags = info.flags;
    r->size = info.size;
    r->offset = info.offset;
    if (r->offset + r->size < r->offset)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "vfio: region at 0x%llx + 0x%llx wraps",
                       (unsigned long long)r->offset, (unsigned long long)r->size);
    if (info.flags & VFIO_REGION_INFO_FLAG_CAPS) {
        int rc = vfio_cap_walk(buf, argsz, sizeof(info), info.cap_offset, region_cap, r, err);
        if (rc < 0)
            return rc;
    }
    /* No sparse list: a mmap-able region is one area, the whole of it. */
    if (!r->sparse && (r->flags & VFIO_REGION_INFO_FLAG_MMAP) && r->size != 0) {
        r->nareas = 1;
        r->areas[0].offset = 0;
        r->areas[0].size = r->size;
    }
    if (!(r->flags & VFIO_REGION_INFO_FLAG_MMAP))
        r->nareas = 0;
    return 0;
}

static int iommu_cap(void *ctx, const struct vfio_info_cap_header *h, const uint8_t *cap,
                     uint32_t len, struct errbuf *err)
{
    struct vfio_container *c = ctx;

    switch (h->id) {
    case VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: {
        struct vfio_iommu_type1_info_cap_iova_range ir;
        if (c->nranges != 0)
            return err_set(err, WISP_EXIT_FAILURE, EINVAL, "vfio: two IOVA-range capabilities");
        if (len < sizeof(ir))
            return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                           "vfio: IOVA-range capability truncated (%u bytes)", len);
        memcpy(&ir, cap, sizeof(ir));
        uint32_t room = (len - (uint32_t)sizeof(ir)) / sizeof(struct vfio_iova_range);
        if (ir.nr_iovas > room || ir.nr_iovas > VFIO_MAX_IOVA_RANGES || ir.nr_iovas == 0)
            return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                           "vfio: IOVA-range capability lists %u ranges (room %u, limit %d)",
                           ir.nr_iovas, room, VFIO_MAX_IOVA_RANGES);
        for (uint32_t i = 0; i < ir.nr_iovas; i++) {
            struct vfio_iova_range rg;
            memcpy(&rg, cap + sizeof(ir) + i * sizeof(rg), sizeof(rg));
            if (rg.end < rg.start)
                return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                               "vfio: IOVA range %u ends before it starts", i);
            c->ranges[i] = rg;
        }
        c->nranges = ir.nr_iovas;
        return 0;
    }
    case VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: {
        struct vfio_iommu_type1_info_dma_avail da;
        if (len < sizeof(da))
            return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                           "vfio: DMA-avail capability truncated (%u bytes)", len);
        memcpy(&da, cap, sizeof(da));
        c->have_dma_avail = true;
        c->dma_avail = da.avail;
        return 0;
    }
    default:
        return 0;
    }
}

int vfio_parse_iommu_caps(const void *buf, uint32_t argsz, struct vfio_container *c,
                          struct errbuf *err)
{
    struct vfio_iommu_type1_info info;

    if (argsz < sizeof(info))
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "vfio: IOMMU info of %u bytes", argsz);
    memcpy(&info, buf, sizeof(info));
    c->nranges = 0;
    c->have_dma_avail = false;
    c->iova_pgsizes = (info.flags & VFIO_IOMMU_INFO_PGSIZES) ? info.iova_pgsizes : 0;
    if (info.flags & VFIO_IOMMU_INFO_CAPS)
        return vfio_cap_walk(buf, argsz, sizeof(info), info.cap_offset, iommu_cap, c, err);
    return 0;
}
