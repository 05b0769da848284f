/*
 * VMSTATE-VIRTIO TLV v1: CRC32C, golden bytes, round trips and the
 * forward-compatible variations a reader must accept.  Rejections are in
 * test_virtio_state_reject.c, robustness in test_virtio_state_fuzz.c.
 */
#include "tests/unit/migration/test_virtio_state.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "migration/virtio_state_wire.h"
#include "vmm/log.h"

/*
 * The encoding of vst_fill_small(), laid out by hand from
 * docs/VIRTIO_STATE.md and checked with an independent bitwise CRC32C.  If
 * this test fails, the wire format changed: that needs a new major or
 * minor version, not a new golden array.
 */
/* One row per 16 bytes, one comment per record (kept out of clang-format). */
/* clang-format off */
static const uint8_t golden[352] = {
    /* Stream header: "VIRTSTAT", major 1, minor 0, header_len 32, total_len 352, flags 0, CRC. */
    0x56, 0x49, 0x52, 0x54, 0x53, 0x54, 0x41, 0x54, 0x01, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00,
    0x60, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xb4, 0x16, 0x9f, 0x29,
    /* DEVICE 0x8000, CONTAINER, selector instance 7, length 288. */
    0x00, 0x80, 0x02, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x00, 0x00,
    /* DEVICE_INFO 0x8001, length 28: rng (4), mmio (1), 1 queue, 0xd0000000 + 0x1000, irq 5. */
    0x01, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00,
    0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd0,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /* DEVICE_NAME 0x8005, length 4: "rng0" + 4 bytes padding. */
    0x05, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
    0x72, 0x6e, 0x67, 0x30, 0x00, 0x00, 0x00, 0x00,
    /* DEV_FEATURES 0x0100, OPTIONAL, length 8: VERSION_1 | EVENT_IDX. */
    0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x20, 0x01, 0x00, 0x00, 0x00,
    /* DRV_FEATURES 0x0101, length 8: VERSION_1. */
    0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    /* CONFIG_SPACE 0x8003, length 8: generation 0, 0 bytes. */
    0x03, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /* MMIO_TRANSPORT 0x8004, length 24: selectors 0, InterruptStatus 1, shm_sel 0, reserved. */
    0x04, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /* DEVICE_STATUS 0x0103, length 1: 0x0f + 7 bytes padding. */
    0x03, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x0f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /* VQ_CFG 0x0104, queue 0, length 32: size 256, vector 0xffff, enabled, rings 0x10{0,1,2}000. */
    0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00,
    0x00, 0x01, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x10, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00,
    /* VQ_STATE 0x8010, queue 0, length 16: split, DRAINED, max 256, avail 5, used 5, signalled 5.
     */
    0x10, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x00, 0x01, 0x05, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00,
    /* END 0xffff, length 0. */
    0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /* clang-format on */
};
/* clang-format on */

Test(virtio_state, crc32c_vectors)
{
    uint8_t b[32];

    cr_assert_eq(virtio_state_crc32c(0, "123456789", 9), 0xE3069283u);
    memset(b, 0, sizeof(b));
    cr_assert_eq(virtio_state_crc32c(0, b, 32), 0x8A9136AAu); /* RFC 3720 B.4 */
    memset(b, 0xff, sizeof(b));
    cr_assert_eq(virtio_state_crc32c(0, b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    cr_assert_eq(virtio_state_crc32c(0, b, 32), 0x46DD794Eu);
    /* Incremental use over any split gives the one-shot result. */
    for (size_t cut = 0; cut <= 32; cut++)
        cr_assert_eq(virtio_state_crc32c(virtio_state_crc32c(0, b, cut), b + cut, 32 - cut),
                     0x46DD794Eu);
}

/* The instruction path and the table path agree on every length and alignment. */
Test(virtio_state, crc32c_paths_agree)
{
    static uint8_t buf[4096 + 64];
    uint32_t x = 0x12345678;
    for (size_t i = 0; i < sizeof(buf); i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    cr_assert_eq(virtio_state_crc32c_sw(0, "123456789", 9), 0xE3069283u);
    for (size_t off = 0; off < 16; off++)
        for (size_t len = 0; len < 80; len++)
            cr_assert_eq(virtio_state_crc32c(7, buf + off, len),
                         virtio_state_crc32c_sw(7, buf + off, len), "off %zu len %zu", off, len);
    cr_assert_eq(virtio_state_crc32c(0, buf, 4096), virtio_state_crc32c_sw(0, buf, 4096));
}

Test(virtio_state, golden_bytes)
{
    struct virtio_state s, d;
    uint8_t copy[sizeof(golden)];
    struct vst_buf b, g = {copy, sizeof(golden)};

    memcpy(copy, golden, sizeof(golden));

    vst_fill_small(&s);
    vst_encode(&s, 1, &b);
    cr_assert_eq(b.len, sizeof(golden));
    for (size_t i = 0; i < b.len; i++)
        cr_assert_eq(b.p[i], golden[i], "byte %zu: 0x%02x, golden 0x%02x", i, b.p[i], golden[i]);
    vst_expect_ok(&g, &d, 1, 1);
    vst_assert_equal(&s, &d);
    virtio_state_free(&d);
    vst_buf_free(&b);
}

Test(virtio_state, round_trip_full)
{
    struct virtio_state *s = calloc(2, sizeof(*s)), *d = calloc(4, sizeof(*d));
    struct vst_buf a, b;

    vst_fill_full(s);
    vst_encode(s, 2, &a);
    vst_expect_ok(&a, d, 4, 2);
    vst_assert_equal(&s[0], &d[0]);
    vst_assert_equal(&s[1], &d[1]);
    cr_assert_eq(d[0].vq[0].n_inflight, 3);
    cr_assert_eq(d[0].dev_feat.w[1], VIRTIO_BIT(6));
    cr_assert_str_eq(d[0].opaque_kind, "vu-blk");
    cr_assert_not(d[0].opaque_optional);
    cr_assert_eq(d[1].dev_rec_type, VIRTIO_STATE_T_NET_STATE);
    /* decode -> encode is byte-identical. */
    vst_encode(d, 2, &b);
    cr_assert_eq(a.len, b.len);
    cr_assert(!memcmp(a.p, b.p, a.len));
    vst_release(s, 2);
    vst_release(d, 2);
    vst_buf_free(&a);
    vst_buf_free(&b);
    free(s);
    free(d);
}

Test(virtio_state, encode_appends_and_checks)
{
    struct virtio_state s;
    struct vstate_out o;
    log_threshold = LOG_ERROR; /* the refusals below are expected */

    vst_fill_small(&s);
    vstate_out_init(&o);
    vstate_put_u32(&o, 0xabcdef01); /* the stream may follow other data */
    cr_assert_eq(virtio_state_encode(&s, &o), 0);
    cr_assert_eq(o.len, 4 + sizeof(golden));
    cr_assert(!memcmp(o.buf + 4, golden, sizeof(golden)));
    /* A format violation appends nothing. */
    s.num_queues = VIRTIO_STATE_MAX_DEV_QUEUES + 1;
    cr_assert_eq(virtio_state_encode(&s, &o), -EINVAL);
    cr_assert_eq(o.len, 4 + sizeof(golden));
    vst_fill_small(&s);
    strcpy(s.id, "bad name");
    cr_assert_eq(virtio_state_encode(&s, &o), -EINVAL);
    vst_fill_small(&s);
    cr_assert_eq(virtio_state_encode_many(&s, 0, &o), -EINVAL);
    vstate_out_free(&o);
}

Test(virtio_state, encode_refuses_duplicate_ids)
{
    struct virtio_state s[2];
    struct vstate_out o;
    log_threshold = LOG_ERROR; /* the refusals below are expected */

    vst_fill_small(&s[0]);
    vst_fill_small(&s[1]);
    s[1].mmio_base += 0x1000;
    vstate_out_init(&o);
    cr_assert_eq(virtio_state_encode_many(s, 2, &o), -EINVAL); /* same instance id */
    s[1].instance_id = 8;
    cr_assert_eq(virtio_state_encode_many(s, 2, &o), -EINVAL); /* same name */
    strcpy(s[1].id, "rng1");
    cr_assert_eq(virtio_state_encode_many(s, 2, &o), 0);
    vstate_out_free(&o);
}

Test(virtio_state, mid_initialisation_round_trip)
{
    /* A guest may be migrated between DRIVER and FEATURES_OK: nothing enabled yet. */
    struct virtio_state s, d;
    struct vst_buf b;

    vst_fill_small(&s);
    s.status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
    s.vq[0].enabled = 0;
    s.vq[0].size = 0;
    s.vq[0].desc_addr = s.vq[0].driver_addr = s.vq[0].device_addr = 0;
    s.vq[0].last_avail_idx = s.vq[0].used_idx = 0;
    s.mmio.drv_features_sel = 1;
    vst_encode(&s, 1, &b);
    vst_expect_ok(&b, &d, 1, 1);
    vst_assert_equal(&s, &d);
    vst_buf_free(&b);
}

Test(virtio_state, unknown_optional_records_skipped)
{
    struct virtio_state s, d;
    struct vst_buf b;
    uint8_t rec[64], inner[32], val[24] = {1, 2, 3};
    size_t n;

    vst_fill_small(&s);
    vst_encode(&s, 1, &b);
    /* Inside the device, between DEVICE_STATUS and VQ_CFG. */
    n = vst_make_rec(rec, 0x8fff, VIRTIO_STATE_RF_OPTIONAL, NULL, val, 19);
    vst_splice(&b, vst_find(&b, VIRTIO_STATE_T_VQ_CFG, 0), 0, rec, n);
    /* At the top level: an optional container holding a mandatory record. */
    size_t in = vst_make_rec(inner, 0x9abc, 0, NULL, val, 3);
    n = vst_make_rec(rec, 0x9000, VIRTIO_STATE_RF_OPTIONAL | VIRTIO_STATE_RF_CONTAINER, NULL, inner,
                     (uint32_t)in);
    vst_splice(&b, vst_find(&b, VIRTIO_STATE_T_END, 0), 0, rec, n);
    vst_expect_ok(&b, &d, 1, 1);
    vst_assert_equal(&s, &d);
    vst_buf_free(&b);
}

Test(virtio_state, newer_minor_and_longer_records)
{
    struct virtio_state s, d;
    struct vst_buf b;
    uint8_t ext[8] = {0xee, 0xee};

    vst_fill_small(&s);
    vst_encode(&s, 1, &b);
    /* Minor 1 with an 8-byte header extension this reader ignores. */
    le16_put(b.p + VSW_OFF(vsw_stream_hdr, minor), 1);
    le32_put(b.p + VSW_OFF(vsw_stream_hdr, header_len), 40);
    vst_splice(&b, VIRTIO_STATE_HDR_LEN, 0, ext, sizeof(ext));
    /* DEVICE_STATUS grows a tail (length 1 -> 5): the tail is ignored. */
    size_t st = vst_find(&b, VIRTIO_STATE_T_DEVICE_STATUS, 0);
    b.p[st + VIRTIO_STATE_REC_HDR_LEN + 1] = 0x77;
    le32_put(b.p + st + VSW_OFF(vsw_rec_hdr, length), 5);
    vst_fix_crc(&b);
    vst_expect_ok(&b, &d, 1, 1);
    vst_assert_equal(&s, &d);
    vst_buf_free(&b);
}

Test(virtio_state, short_records_take_documented_defaults)
{
    struct virtio_state s, d;
    struct vst_buf b;

    vst_fill_small(&s);
    s.mmio.shm_sel = 3;
    vst_encode(&s, 1, &b);
    /* MMIO_TRANSPORT of 16 bytes: shm_sel defaults to 0. */
    size_t m = vst_find(&b, VIRTIO_STATE_T_MMIO_TRANSPORT, 0);
    le32_put(b.p + m + VSW_OFF(vsw_rec_hdr, length), 16);
    vst_splice(&b, m + VIRTIO_STATE_REC_HDR_LEN + 16, 8, NULL, 0);
    /* VQ_STATE of 12 bytes: signalled_used defaults to unknown. */
    size_t v = vst_find(&b, VIRTIO_STATE_T_VQ_STATE, 0);
    le32_put(b.p + v + VSW_OFF(vsw_rec_hdr, length), 12);
    memset(b.p + v + VIRTIO_STATE_REC_HDR_LEN + 12, 0, 4);
    vst_fix_crc(&b);
    vst_expect_ok(&b, &d, 1, 1);
    cr_assert_eq(d.mmio.shm_sel, 0);
    cr_assert_eq(d.vq[0].signalled_used, VIRTIO_STATE_SIGNALLED_UNKNOWN);
    virtio_state_free(&d);
    vst_buf_free(&b);
}

Test(virtio_state, blk_state_tail_ignored)
{
    struct virtio_state *s = calloc(2, sizeof(*s)), *d = calloc(2, sizeof(*d));
    struct vst_buf b;
    uint8_t junk[8] = {9, 9, 9, 9, 9, 9, 9, 9};

    vst_fill_full(s);
    vst_encode(s, 2, &b);
    size_t at = vst_find(&b, VIRTIO_STATE_T_BLK_STATE, 0);
    vst_splice(&b, at + VIRTIO_STATE_REC_HDR_LEN, 0, junk, sizeof(junk));
    le32_put(b.p + at + VSW_OFF(vsw_rec_hdr, length), 8);
    vst_fix_crc(&b);
    vst_expect_ok(&b, d, 2, 2);
    cr_assert_eq(d[0].dev_rec_type, VIRTIO_STATE_T_BLK_STATE);
    cr_assert_eq(d[0].dev_blob_len, 0);
    vst_release(s, 2);
    vst_release(d, 2);
    vst_buf_free(&b);
    free(s);
    free(d);
}

Test(virtio_state, why_may_be_null)
{
    unsigned n;
    struct virtio_state d;

    cr_assert_eq(virtio_state_decode("x", 1, &d, 1, &n, NULL, 0), -EBADMSG);
    cr_assert_eq(virtio_state_decode(golden, sizeof(golden), &d, 1, &n, NULL, 0), 0);
    cr_assert_eq(n, 1);
    virtio_state_free(&d);
    virtio_state_free(&d); /* idempotent */
    virtio_state_free(NULL);
}

Test(virtio_state, caller_array_too_small)
{
    struct virtio_state *s = calloc(2, sizeof(*s)), *d = calloc(1, sizeof(*d));
    struct vst_buf b;
    char why[128];
    unsigned n = 5;

    vst_fill_full(s);
    vst_encode(s, 2, &b);
    cr_assert_eq(virtio_state_decode(b.p, b.len, d, 1, &n, why, sizeof(why)), -ENOSPC);
    cr_assert_eq(n, 0);
    cr_assert(strstr(why, "room given by the caller"), "%s", why);
    cr_assert_null(d[0].vq[0].inflight); /* the first device was freed */
    vst_release(s, 2);
    vst_buf_free(&b);
    free(s);
    free(d);
}

Test(virtio_state, type_names)
{
    cr_assert_str_eq(virtio_state_type_name(VIRTIO_STATE_T_DEVICE_STATUS), "DEVICE_STATUS");
    cr_assert_str_eq(virtio_state_type_name(VIRTIO_STATE_T_VQ_INFLIGHT), "VQ_INFLIGHT");
    cr_assert_str_eq(virtio_state_type_name(0x1234), "unknown");
}
