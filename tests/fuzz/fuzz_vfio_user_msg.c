/*
 * Fuzz target: the vfio-user codec (devices/vfio/vfio_user_msg.c) as the
 * client meets it, a server's messages.
 *
 * Why: everything a vfio-user server sends is untrusted (security.md E):
 * a compromised device process controls every byte, so the header checks
 * and each payload decoder must refuse what is malformed without reading
 * past the end, and what they accept must be within wisp's limits.
 *
 * The input is one whole message (header + payload).  If the header and
 * size check pass, the payload goes to the decoder of its command, with and
 * without data where the command has both forms, and properties are checked:
 * decoded counts within the limits, data pointers inside the input, and
 * re-encoding what was decoded gives something that decodes to the same.
 */
#include "tests/fuzz/fuzz.h"

#include <errno.h>

#include "devices/vfio/vfio_user_msg.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static bool inside(const uint8_t *p, size_t len, const uint8_t *q, size_t n)
{
    return q >= p && (size_t)(q - p) <= len && n <= len - (size_t)(q - p);
}

static void region_info(const uint8_t *p, size_t len)
{
    static struct vfio_user_region_info r, r2;
    static uint8_t buf[4096];
    if (vfio_user_region_info_decode(p, len, &r) < 0)
        return;
    FZ_CHECK(r.nr_areas <= VFIO_USER_MAX_AREAS, "areas %u", r.nr_areas);
    for (uint32_t i = 0; i < r.nr_areas; i++)
        FZ_CHECK(r.areas[i].offset <= r.size && r.areas[i].size <= r.size - r.areas[i].offset,
                 "area %u outside the region", i);
    int n = vfio_user_region_info_encode(buf, sizeof(buf), &r);
    FZ_CHECK(n > 0, "re-encode failed: %d", n);
    FZ_CHECK(vfio_user_region_info_decode(buf, (size_t)n, &r2) == 0, "re-decode failed");
    FZ_CHECK(r2.nr_areas == r.nr_areas && r2.size == r.size && r2.offset == r.offset,
             "round trip differs");
}

static void version(const uint8_t *p, size_t len)
{
    static uint8_t buf[1024];
    struct vfio_user_version v, v2;
    if (vfio_user_version_decode(p, len, &v) < 0)
        return;
    FZ_CHECK(v.caps.max_msg_fds <= VFIO_USER_MAX_FDS, "fds %u", v.caps.max_msg_fds);
    FZ_CHECK(v.caps.max_data_xfer_size <= VFIO_USER_DATA_MAX && v.caps.max_data_xfer_size > 0,
             "xfer %u", v.caps.max_data_xfer_size);
    int n = vfio_user_version_encode(buf, sizeof(buf), &v);
    FZ_CHECK(n > 0, "re-encode failed: %d", n);
    FZ_CHECK(vfio_user_version_decode(buf, (size_t)n, &v2) == 0, "re-decode failed");
    FZ_CHECK(v2.caps.max_msg_fds == v.caps.max_msg_fds && v2.caps.pgsizes == v.caps.pgsizes,
             "round trip differs");
}

static void payload(uint16_t cmd, const uint8_t *p, size_t len)
{
    struct vfio_user_region_rw rr;
    struct vfio_user_dma_rw dr;
    struct vfio_user_mig_data md;
    struct vfio_user_feature f;
    union {
        struct vfio_user_dma_map m;
        struct vfio_user_dma_unmap u;
        struct vfio_user_device_info d;
        struct vfio_user_irq_info i;
        struct vfio_user_irq_set s;
    } x;
    switch (cmd) {
    case VFIO_USER_VERSION:
        version(p, len);
        break;
    case VFIO_USER_DMA_MAP:
        (void)vfio_user_dma_map_decode(p, len, &x.m);
        break;
    case VFIO_USER_DMA_UNMAP:
        (void)vfio_user_dma_unmap_decode(p, len, &x.u);
        break;
    case VFIO_USER_DEVICE_GET_INFO:
        (void)vfio_user_device_info_decode(p, len, &x.d);
        break;
    case VFIO_USER_DEVICE_GET_REGION_INFO:
        region_info(p, len);
        break;
    case VFIO_USER_DEVICE_GET_IRQ_INFO:
        (void)vfio_user_irq_info_decode(p, len, &x.i);
        break;
    case VFIO_USER_DEVICE_SET_IRQS:
        if (vfio_user_irq_set_decode(p, len, &x.s) == 0)
            FZ_CHECK(x.s.count <= VFIO_USER_MAX_IRQS, "count %u", x.s.count);
        break;
    case VFIO_USER_REGION_READ:
    case VFIO_USER_REGION_WRITE:
        for (int wd = 0; wd < 2; wd++)
            if (vfio_user_region_rw_decode(p, len, wd, &rr) == 0 && wd)
                FZ_CHECK(inside(p, len, rr.data, rr.count), "region data outside the input");
        break;
    case VFIO_USER_DMA_READ:
    case VFIO_USER_DMA_WRITE:
        for (int wd = 0; wd < 2; wd++)
            if (vfio_user_dma_rw_decode(p, len, wd, &dr) == 0 && wd)
                FZ_CHECK(inside(p, len, dr.data, (size_t)dr.count), "dma data outside the input");
        break;
    case VFIO_USER_DEVICE_FEATURE:
        if (vfio_user_feature_decode(p, len, &f) == 0 && f.data_len)
            FZ_CHECK(inside(p, len, f.data, f.data_len), "feature data outside the input");
        break;
    case VFIO_USER_MIG_DATA_READ:
    case VFIO_USER_MIG_DATA_WRITE:
        for (int wd = 0; wd < 2; wd++)
            if (vfio_user_mig_data_decode(p, len, wd, &md) == 0 && wd)
                FZ_CHECK(inside(p, len, md.data, md.size), "mig data outside the input");
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vfio_user_hdr h;
    int rc = vfio_user_hdr_decode(data, size, &h);
    if (rc == 0) {
        /* The reply check against a request with the same id and command. */
        struct vfio_user_hdr req = {.id = h.id, .cmd = h.cmd, .size = VFIO_USER_HDR_SIZE};
        int rr = vfio_user_reply_check(&req, &h);
        FZ_CHECK(rr <= 0 && rr >= -4095, "reply check %d", rr);
    }
    if (vfio_user_msg_check(data, size, &h) != 0)
        return 0;
    FZ_CHECK(h.size == size && h.size >= VFIO_USER_HDR_SIZE, "size %u", h.size);
    payload(h.cmd, data + VFIO_USER_HDR_SIZE, size - VFIO_USER_HDR_SIZE);
    return 0;
}
