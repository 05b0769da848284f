/*
 * Unit tests for the vfio-user codec (devices/vfio/vfio_user_msg.c): valid
 * round trips of every payload, and every malformed input the decoders must
 * refuse (short header, bad sizes, huge counts, bad capability chains,
 * unknown commands, mismatched replies, bad VERSION JSON).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "devices/vfio/vfio_user_msg.h"

TestSuite(vfio_user_msg, .timeout = 10);

static void hdr(uint8_t *b, uint16_t id, uint16_t cmd, uint32_t size, uint32_t flags)
{
    struct vfio_user_hdr h = {.id = id, .cmd = cmd, .size = size, .flags = flags};
    vfio_user_hdr_encode(b, &h);
}

Test(vfio_user_msg, header_round_trip_is_little_endian)
{
    uint8_t b[16];
    struct vfio_user_hdr h = {.id = 0x1234,
                              .cmd = VFIO_USER_REGION_READ,
                              .size = 0x20,
                              .flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR,
                              .error = 5};
    vfio_user_hdr_encode(b, &h);
    cr_assert_eq(b[0], 0x34);
    cr_assert_eq(b[1], 0x12);
    cr_assert_eq(b[4], 0x20);
    struct vfio_user_hdr d;
    cr_assert_eq(vfio_user_hdr_decode(b, sizeof(b), &d), 0);
    cr_assert_eq(d.id, h.id);
    cr_assert_eq(d.cmd, h.cmd);
    cr_assert_eq(d.size, h.size);
    cr_assert_eq(d.flags, h.flags);
    cr_assert_eq(d.error, 5);
}

Test(vfio_user_msg, malformed_headers_refused)
{
    uint8_t b[32] = {0};
    struct vfio_user_hdr d;
    hdr(b, 1, VFIO_USER_VERSION, 16, 0);
    cr_assert_eq(vfio_user_hdr_decode(b, 15, &d), -EPROTO, "short header");
    hdr(b, 1, VFIO_USER_VERSION, 15, 0);
    cr_assert_eq(vfio_user_hdr_decode(b, 16, &d), -EPROTO, "size below the header");
    hdr(b, 1, VFIO_USER_VERSION, VFIO_USER_MSG_MAX + 1, 0);
    cr_assert_eq(vfio_user_hdr_decode(b, 16, &d), -EPROTO, "size above the limit");
    hdr(b, 1, VFIO_USER_VERSION, 32, 0);
    cr_assert_eq(vfio_user_msg_check(b, 20, &d), -EPROTO, "size > buffer");
    cr_assert_eq(vfio_user_msg_check(b, 32, &d), 0);
    hdr(b, 1, 14, 16, 0);
    cr_assert_eq(vfio_user_hdr_decode(b, 16, &d), -ENOTSUP, "command 14 unused");
    hdr(b, 1, 99, 16, 0);
    cr_assert_eq(vfio_user_hdr_decode(b, 16, &d), -ENOTSUP, "unknown command");
    hdr(b, 1, 0, 16, 0);
    cr_assert_eq(vfio_user_hdr_decode(b, 16, &d), -ENOTSUP, "command 0");
    hdr(b, 1, VFIO_USER_VERSION, 16, 2);
    cr_assert_eq(vfio_user_hdr_decode(b, 16, &d), -EPROTO, "bad type");
    hdr(b, 1, VFIO_USER_VERSION, 16, VFIO_USER_F_ERROR);
    cr_assert_eq(vfio_user_hdr_decode(b, 16, &d), -EPROTO, "error flag on a command");
    hdr(b, 1, VFIO_USER_VERSION, 16, 0x100);
    cr_assert_eq(vfio_user_hdr_decode(b, 16, &d), -EPROTO, "undefined flag");
}

Test(vfio_user_msg, reply_check)
{
    struct vfio_user_hdr req = {.id = 7, .cmd = VFIO_USER_DMA_MAP, .size = 48};
    struct vfio_user_hdr rep = {
        .id = 7, .cmd = VFIO_USER_DMA_MAP, .size = 16, .flags = VFIO_USER_F_TYPE_REPLY};
    cr_assert_eq(vfio_user_reply_check(&req, &rep), 0);
    rep.id = 8;
    cr_assert_eq(vfio_user_reply_check(&req, &rep), -EPROTO, "id mismatch");
    rep.id = 7;
    rep.cmd = VFIO_USER_DMA_UNMAP;
    cr_assert_eq(vfio_user_reply_check(&req, &rep), -EPROTO, "command mismatch");
    rep.cmd = VFIO_USER_DMA_MAP;
    rep.flags = VFIO_USER_F_TYPE_CMD;
    cr_assert_eq(vfio_user_reply_check(&req, &rep), -EPROTO, "not a reply");
    rep.flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR;
    rep.error = EEXIST;
    cr_assert_eq(vfio_user_reply_check(&req, &rep), -EEXIST);
    rep.error = 0;
    cr_assert_eq(vfio_user_reply_check(&req, &rep), -EIO);
    rep.error = 100000;
    cr_assert_eq(vfio_user_reply_check(&req, &rep), -EIO);
}

Test(vfio_user_msg, version_round_trip)
{
    uint8_t b[600];
    struct vfio_user_version v = {.major = 0,
                                  .minor = 2,
                                  .caps = {.max_msg_fds = 8,
                                           .max_data_xfer_size = 65536,
                                           .max_dma_maps = 100,
                                           .pgsizes = 4096,
                                           .migration = true,
                                           .mig_pgsize = 4096,
                                           .mig_max_bitmap_size = 1 << 20}};
    int n = vfio_user_version_encode(b, sizeof(b), &v);
    cr_assert_gt(n, 4);
    cr_assert_eq(b[n - 1], 0, "JSON is NUL-terminated");
    struct vfio_user_version d;
    cr_assert_eq(vfio_user_version_decode(b, (size_t)n, &d), 0);
    cr_assert_eq(d.minor, 2);
    cr_assert_eq(d.caps.max_msg_fds, 8);
    cr_assert_eq(d.caps.max_data_xfer_size, 65536);
    cr_assert_eq(d.caps.max_dma_maps, 100);
    cr_assert(d.caps.migration);
    cr_assert_eq(d.caps.mig_max_bitmap_size, 1 << 20);
    cr_assert_eq(vfio_user_version_encode(b, 10, &v), -ENOSPC);
    /* No JSON: the spec's defaults. */
    cr_assert_eq(vfio_user_version_decode(b, 4, &d), 0);
    cr_assert_eq(d.caps.max_msg_fds, 1);
    cr_assert_eq(d.caps.max_data_xfer_size, VFIO_USER_DATA_MAX);
    cr_assert_eq(vfio_user_version_decode(b, 3, &d), -EPROTO);
}

static int version_json(const char *json)
{
    uint8_t b[VFIO_USER_JSON_MAX + 64] = {0, 0, 2, 0};
    size_t n = strlen(json) + 1;
    memcpy(b + 4, json, n);
    struct vfio_user_version d;
    return vfio_user_version_decode(b, 4 + n, &d);
}

Test(vfio_user_msg, version_json_checked)
{
    cr_assert_eq(version_json("{\"capabilities\":{\"max_msg_fds\":4,\"unknown\":[1,2]}}"), 0);
    cr_assert_eq(version_json("{}"), 0);
    cr_assert_eq(version_json("{\"capabilities\":{\"max_msg_fds\":-1}}"), -EPROTO);
    cr_assert_eq(version_json("{\"capabilities\":{\"max_msg_fds\":\"8\"}}"), -EPROTO);
    cr_assert_eq(version_json("{\"capabilities\":{\"max_data_xfer_size\":0}}"), -EPROTO);
    cr_assert_eq(version_json("{\"capabilities\":{\"pgsizes\":512}}"), -EPROTO);
    cr_assert_eq(version_json("{\"capabilities\":{\"pgsizes\":6144}}"), -EPROTO);
    cr_assert_eq(version_json("{\"capabilities\":{\"migration\":{\"pgsize\":12288}}}"), -EPROTO);
    cr_assert_eq(version_json("{\"capabilities\":[]}"), -EPROTO);
    cr_assert_eq(version_json("[1]"), -EPROTO);
    cr_assert_eq(version_json("{\"capabilities\":{}} trailing"), -EPROTO);
    cr_assert_eq(version_json("{\"a\":[[[[[[[[[[[[1]]]]]]]]]]]]}"), -EPROTO, "nesting depth");
    /* A huge fd count is clamped to what wisp accepts. */
    uint8_t b[128] = {0, 0, 2, 0};
    const char *j = "{\"capabilities\":{\"max_msg_fds\":100000,\"max_data_xfer_size\":99999999}}";
    memcpy(b + 4, j, strlen(j) + 1);
    struct vfio_user_version d;
    cr_assert_eq(vfio_user_version_decode(b, 4 + strlen(j) + 1, &d), 0);
    cr_assert_eq(d.caps.max_msg_fds, VFIO_USER_MAX_FDS);
    cr_assert_eq(d.caps.max_data_xfer_size, VFIO_USER_DATA_MAX);
    /* Not NUL-terminated, embedded NUL, too long. */
    cr_assert_eq(vfio_user_version_decode(b, 4 + strlen(j), &d), -EPROTO);
    b[10] = 0;
    cr_assert_eq(vfio_user_version_decode(b, 4 + strlen(j) + 1, &d), -EPROTO);
    static uint8_t big[VFIO_USER_JSON_MAX + 8];
    memset(big, ' ', sizeof(big));
    big[4] = '{';
    big[sizeof(big) - 2] = '}';
    big[sizeof(big) - 1] = 0;
    cr_assert_eq(vfio_user_version_decode(big, sizeof(big), &d), -EPROTO);
}

Test(vfio_user_msg, fixed_payload_round_trips)
{
    uint8_t b[64];
    struct vfio_user_dma_map m = {32, 3, 0x1000, 0x100000, 0x200000}, m2;
    vfio_user_dma_map_encode(b, &m);
    cr_assert_eq(vfio_user_dma_map_decode(b, 32, &m2), 0);
    cr_assert_eq(memcmp(&m, &m2, sizeof(m)), 0);
    cr_assert_eq(vfio_user_dma_map_decode(b, 31, &m2), -EPROTO);
    struct vfio_user_dma_unmap u = {24, 0, 0x100000, 0x200000}, u2;
    vfio_user_dma_unmap_encode(b, &u);
    cr_assert_eq(vfio_user_dma_unmap_decode(b, 24, &u2), 0);
    cr_assert_eq(memcmp(&u, &u2, sizeof(u)), 0);
    cr_assert_eq(vfio_user_dma_unmap_decode(b, 23, &u2), -EPROTO);
    struct vfio_user_device_info di = {16, 3, 9, 5}, di2;
    vfio_user_device_info_encode(b, &di);
    cr_assert_eq(vfio_user_device_info_decode(b, 16, &di2), 0);
    cr_assert_eq(memcmp(&di, &di2, sizeof(di)), 0);
    cr_assert_eq(vfio_user_device_info_decode(b, 12, &di2), -EPROTO);
    struct vfio_user_irq_info ii = {16, 9, 2, 4}, ii2;
    vfio_user_irq_info_encode(b, &ii);
    cr_assert_eq(vfio_user_irq_info_decode(b, 16, &ii2), 0);
    cr_assert_eq(memcmp(&ii, &ii2, sizeof(ii)), 0);
    cr_assert_eq(vfio_user_irq_info_decode(b, 0, &ii2), -EPROTO);
}

Test(vfio_user_msg, set_irqs_checked)
{
    uint8_t b[64] = {0};
    struct vfio_user_irq_set s = {20, VFIO_USER_IRQ_DATA_EVENTFD | VFIO_USER_IRQ_ACTION_TRIGGER, 2,
                                  0, 4},
                             d;
    vfio_user_irq_set_encode(b, &s);
    cr_assert_eq(vfio_user_irq_set_decode(b, 20, &d), 0);
    cr_assert_eq(memcmp(&s, &d, sizeof(s)), 0);
    cr_assert_eq(vfio_user_irq_set_decode(b, 19, &d), -EPROTO);
    s.count = VFIO_USER_MAX_IRQS + 1;
    vfio_user_irq_set_encode(b, &s);
    cr_assert_eq(vfio_user_irq_set_decode(b, 20, &d), -EPROTO, "huge count");
    s.count = 2;
    s.start = UINT32_MAX - 1;
    vfio_user_irq_set_encode(b, &s);
    cr_assert_eq(vfio_user_irq_set_decode(b, 20, &d), -EPROTO, "start + count wraps");
    s.start = 0;
    s.flags = VFIO_USER_IRQ_DATA_EVENTFD | VFIO_USER_IRQ_DATA_BOOL;
    vfio_user_irq_set_encode(b, &s);
    cr_assert_eq(vfio_user_irq_set_decode(b, 20, &d), -EPROTO, "two data types");
    s.flags = VFIO_USER_IRQ_DATA_BOOL | VFIO_USER_IRQ_ACTION_TRIGGER;
    vfio_user_irq_set_encode(b, &s);
    cr_assert_eq(vfio_user_irq_set_decode(b, 21, &d), -EPROTO, "bool data short");
    cr_assert_eq(vfio_user_irq_set_decode(b, 22, &d), 0);
}

Test(vfio_user_msg, region_info_with_sparse_cap)
{
    uint8_t b[512];
    struct vfio_user_region_info r = {
        .flags = VFIO_USER_REGION_F_READ, .index = 0, .size = 0x4000, .offset = 0, .nr_areas = 2};
    r.areas[0] = (struct vfio_user_area){0, 0x1000};
    r.areas[1] = (struct vfio_user_area){0x2000, 0x2000};
    int n = vfio_user_region_info_encode(b, sizeof(b), &r);
    cr_assert_eq(n, 32 + 16 + 32);
    struct vfio_user_region_info d;
    cr_assert_eq(vfio_user_region_info_decode(b, (size_t)n, &d), 0);
    cr_assert(d.flags & VFIO_USER_REGION_F_CAPS);
    cr_assert_eq(d.nr_areas, 2);
    cr_assert_eq(d.areas[1].offset, 0x2000);
    cr_assert_eq(d.size, 0x4000);
    cr_assert_eq(vfio_user_region_info_decode(b, (size_t)n - 1, &d), -E2BIG, "argsz > len");
    cr_assert_eq(vfio_user_region_info_decode(b, 31, &d), -EPROTO);
    cr_assert_eq(vfio_user_region_info_encode(b, 40, &r), -ENOSPC);
}

/* A region-info buffer whose chain is then corrupted by each test. */
static size_t sparse_buf(uint8_t *b)
{
    struct vfio_user_region_info r = {.size = 0x4000, .nr_areas = 1};
    r.areas[0] = (struct vfio_user_area){0, 0x1000};
    memset(b, 0, 256);
    return (size_t)vfio_user_region_info_encode(b, 256, &r);
}

Test(vfio_user_msg, region_info_bad_cap_chains)
{
    uint8_t b[256];
    struct vfio_user_region_info d;
    size_t n = sparse_buf(b);
    b[12] = 8; /* cap_offset inside the fixed part */
    cr_assert_eq(vfio_user_region_info_decode(b, n, &d), -EPROTO);
    n = sparse_buf(b);
    b[12] = 200; /* cap_offset past argsz */
    cr_assert_eq(vfio_user_region_info_decode(b, n, &d), -EPROTO);
    n = sparse_buf(b);
    b[32 + 4] = 32; /* next points back at itself: a loop */
    cr_assert_eq(vfio_user_region_info_decode(b, n, &d), -EPROTO);
    n = sparse_buf(b);
    b[32 + 8] = 0xff; /* nr_areas 255 + more: huge count */
    b[32 + 11] = 0x7f;
    cr_assert_eq(vfio_user_region_info_decode(b, n, &d), -EPROTO);
    n = sparse_buf(b);
    b[32 + 8] = 2; /* two areas claimed, one present */
    cr_assert_eq(vfio_user_region_info_decode(b, n, &d), -EPROTO);
    n = sparse_buf(b);
    b[32 + 16 + 8 + 2] = 0x01; /* area size 0x11000 > region size */
    cr_assert_eq(vfio_user_region_info_decode(b, n, &d), -EPROTO);
    n = sparse_buf(b);
    b[32 + 4] = 60; /* next leaves a 4-byte tail: no room for a cap header */
    cr_assert_eq(vfio_user_region_info_decode(b, n, &d), -EPROTO);
    /* An unknown cap is skipped; a chain of many unknown caps is capped. */
    uint8_t c[32 + 8 * 40];
    memset(c, 0, sizeof(c));
    c[0] = (uint8_t)sizeof(c);
    c[1] = (uint8_t)(sizeof(c) >> 8);
    c[4] = VFIO_USER_REGION_F_CAPS;
    c[12] = 32;
    for (size_t i = 0; i < 40; i++) {
        uint8_t *cap = c + 32 + i * 8;
        cap[0] = 99;
        if (i < 39)
            cap[4] = (uint8_t)(32 + (i + 1) * 8), cap[5] = (uint8_t)((32 + (i + 1) * 8) >> 8);
    }
    cr_assert_eq(vfio_user_region_info_decode(c, sizeof(c), &d), -EPROTO, "too many caps");
    c[32 + 2 * 8 + 4] = 0; /* chain of 3 */
    c[32 + 2 * 8 + 5] = 0;
    cr_assert_eq(vfio_user_region_info_decode(c, sizeof(c), &d), 0);
    cr_assert_eq(d.nr_areas, 0);
}

Test(vfio_user_msg, region_info_area_count_capped)
{
    /* 65 well-formed areas, all present: one more than wisp keeps. */
    enum { N = VFIO_USER_MAX_AREAS + 1 };
    static uint8_t b[32 + 16 + N * 16];
    memset(b, 0, sizeof(b));
    b[0] = (uint8_t)sizeof(b);
    b[1] = (uint8_t)(sizeof(b) >> 8);
    b[4] = VFIO_USER_REGION_F_CAPS;
    b[12] = 32;
    b[16 + 2] = 0x10; /* region size 1 MiB */
    b[32] = VFIO_USER_CAP_SPARSE_MMAP;
    b[32 + 8] = N;
    for (int i = 0; i < N; i++)
        b[32 + 16 + i * 16 + 8 + 1] = 0x10; /* each area 4 KiB at offset 0 */
    struct vfio_user_region_info d;
    cr_assert_eq(vfio_user_region_info_decode(b, sizeof(b), &d), -EPROTO);
    b[32 + 8] = N - 1; /* the limit itself is accepted */
    cr_assert_eq(vfio_user_region_info_decode(b, sizeof(b), &d), 0);
    cr_assert_eq(d.nr_areas, VFIO_USER_MAX_AREAS);
}

Test(vfio_user_msg, region_and_dma_rw)
{
    static uint8_t b[VFIO_USER_MSG_MAX];
    uint8_t data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct vfio_user_region_rw r = {.offset = 0x10, .region = 0, .count = 8, .data = data}, d;
    int n = vfio_user_region_rw_encode(b, sizeof(b), &r, true);
    cr_assert_eq(n, 24);
    cr_assert_eq(vfio_user_region_rw_decode(b, 24, true, &d), 0);
    cr_assert_eq(memcmp(d.data, data, 8), 0);
    cr_assert_eq(vfio_user_region_rw_decode(b, 23, true, &d), -EPROTO, "data short");
    cr_assert_eq(vfio_user_region_rw_decode(b, 24, false, &d), -EPROTO, "unexpected data");
    cr_assert_eq(vfio_user_region_rw_decode(b, 16, false, &d), 0);
    r.count = VFIO_USER_DATA_MAX + 1;
    cr_assert_eq(vfio_user_region_rw_encode(b, sizeof(b), &r, false), -EINVAL);
    memset(b + 12, 0xff, 4); /* count 0xffffffff */
    cr_assert_eq(vfio_user_region_rw_decode(b, 16, false, &d), -EPROTO, "huge count");
    struct vfio_user_dma_rw x = {.addr = 0x1000, .count = 8, .data = data}, y;
    n = vfio_user_dma_rw_encode(b, sizeof(b), &x, true);
    cr_assert_eq(n, 24);
    cr_assert_eq(vfio_user_dma_rw_decode(b, 24, true, &y), 0);
    cr_assert_eq(y.addr, 0x1000);
    cr_assert_eq(vfio_user_dma_rw_decode(b, 25, true, &y), -EPROTO);
    x.addr = UINT64_MAX - 3;
    vfio_user_dma_rw_encode(b, sizeof(b), &x, false);
    cr_assert_eq(vfio_user_dma_rw_decode(b, 16, false, &y), -EPROTO, "addr + count wraps");
    x.addr = 0;
    x.count = 1ull << 40;
    cr_assert_eq(vfio_user_dma_rw_encode(b, sizeof(b), &x, false), -EINVAL);
    memset(b + 8, 0xff, 8);
    cr_assert_eq(vfio_user_dma_rw_decode(b, 16, false, &y), -EPROTO, "huge count");
}

Test(vfio_user_msg, feature_and_mig_data)
{
    uint8_t b[64];
    uint8_t st[8] = {2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    struct vfio_user_feature f = {.argsz = 16,
                                  .flags = VFIO_USER_FEATURE_SET | VFIO_USER_FEATURE_MIG_STATE,
                                  .data_len = 8,
                                  .data = st},
                             g;
    int n = vfio_user_feature_encode(b, sizeof(b), &f);
    cr_assert_eq(n, 16);
    cr_assert_eq(vfio_user_feature_decode(b, 16, &g), 0);
    cr_assert_eq(g.data_len, 8);
    cr_assert_eq(g.flags & VFIO_USER_FEATURE_MASK, VFIO_USER_FEATURE_MIG_STATE);
    cr_assert_eq(vfio_user_feature_decode(b, 7, &g), -EPROTO);
    f.flags |= VFIO_USER_FEATURE_GET;
    vfio_user_feature_encode(b, sizeof(b), &f);
    cr_assert_eq(vfio_user_feature_decode(b, 16, &g), -EPROTO, "GET|SET without PROBE");
    struct vfio_user_mig_data m = {.argsz = 16, .size = 8, .data = st}, k;
    n = vfio_user_mig_data_encode(b, sizeof(b), &m, true);
    cr_assert_eq(n, 16);
    cr_assert_eq(vfio_user_mig_data_decode(b, 16, true, &k), 0);
    cr_assert_eq(memcmp(k.data, st, 8), 0);
    cr_assert_eq(vfio_user_mig_data_decode(b, 15, true, &k), -EPROTO);
    cr_assert_eq(vfio_user_mig_data_decode(b, 8, false, &k), 0);
    memset(b + 4, 0xff, 4);
    cr_assert_eq(vfio_user_mig_data_decode(b, 8, false, &k), -EPROTO, "huge size");
}
