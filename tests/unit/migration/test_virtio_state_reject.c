/*
 * VMSTATE-VIRTIO TLV v1: every malformed stream is refused with its own
 * reason.  Each test starts from a valid encoding, breaks exactly one rule,
 * and (through vst_splice / vst_fix_crc) repairs lengths and the CRC so the
 * decoder reaches the rule under test instead of failing earlier.
 */
#include "tests/unit/migration/test_virtio_state.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migration/virtio_state_wire.h"
#include "vmm/log.h"

Test(virtio_state_reject, empty_and_tiny)
{
    struct vst_buf b = {(uint8_t *)"VIRTSTAT", 0};
    vst_expect_reject(&b, -EBADMSG, "empty stream");
    b.p = NULL;
    vst_expect_reject(&b, -EBADMSG, "empty stream");
    b.p = (uint8_t *)"VIRTS";
    for (b.len = 1; b.len < 8; b.len++)
        vst_expect_reject(&b, -EBADMSG, "shorter than the magic");
}

Test(virtio_state_reject, header)
{
    struct vst_buf b;

    vst_small(&b);
    b.p[0] = 'W';
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "bad magic");
    b.p[0] = 'V';
    size_t len = b.len;
    b.len = 20;
    vst_expect_reject(&b, -EBADMSG, "truncated header");
    b.len = len;

    le16_put(b.p + VSW_OFF(vsw_stream_hdr, major), 2);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EPROTO, "unsupported major version 2");
    le16_put(b.p + VSW_OFF(vsw_stream_hdr, major), 0);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EPROTO, "unsupported major version 0");
    le16_put(b.p + VSW_OFF(vsw_stream_hdr, major), 1);

    le32_put(b.p + VSW_OFF(vsw_stream_hdr, header_len), 40); /* minor 0 must be 32 */
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "bad header_len 40");
    le16_put(b.p + VSW_OFF(vsw_stream_hdr, minor), 1);
    le32_put(b.p + VSW_OFF(vsw_stream_hdr, header_len), 36); /* not 8-aligned */
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "bad header_len 36");
    le16_put(b.p + VSW_OFF(vsw_stream_hdr, minor), 0);
    le32_put(b.p + VSW_OFF(vsw_stream_hdr, header_len), 32);

    le32_put(b.p + VSW_OFF(vsw_stream_hdr, flags), 1);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "unknown stream flags");
    le32_put(b.p + VSW_OFF(vsw_stream_hdr, flags), 0);

    le64_put(b.p + VSW_OFF(vsw_stream_hdr, total_len), 1ULL << 40);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -E2BIG, "exceeds");
    le64_put(b.p + VSW_OFF(vsw_stream_hdr, total_len), b.len - 8);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "total_len 344 but 352 bytes given");
    vst_buf_free(&b);
}

Test(virtio_state_reject, crc_mismatch)
{
    struct vst_buf b;
    vst_small(&b);
    vst_val(&b, VIRTIO_STATE_T_DEVICE_STATUS, 0)[0] ^= 0x10;
    vst_expect_reject(&b, -EBADMSG, "CRC32C mismatch");
    vst_buf_free(&b);
}

Test(virtio_state_reject, lengths_beyond_the_end)
{
    struct vst_buf b;

    vst_small(&b);
    vst_set_len(&b, vst_find(&b, VIRTIO_STATE_T_DEVICE_STATUS, 0), 1000);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "length 1000 runs past the end");
    vst_buf_free(&b);

    vst_small(&b);
    vst_set_len(&b, vst_find(&b, VIRTIO_STATE_T_DEVICE, 0), UINT32_MAX);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "length 4294967295 runs past the end");
    vst_buf_free(&b);

    vst_small(&b);
    vst_set_len(&b, vst_find(&b, VIRTIO_STATE_T_VQ_STATE, 0), UINT32_MAX);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "length 4294967295 runs past the end");
    vst_buf_free(&b);

    /* The END record's padding cannot hide beyond total_len either. */
    vst_small(&b);
    vst_set_len(&b, vst_find(&b, VIRTIO_STATE_T_END, 0), 1);
    vst_splice(&b, b.len, 0, "\0", 1);
    vst_expect_reject(&b, -EBADMSG, "padding runs past the end");
    vst_buf_free(&b);

    vst_small(&b);
    /* 292: the 4 padding bytes are END's zero selector, so only the rule below trips. */
    vst_set_len(&b, vst_find(&b, VIRTIO_STATE_T_DEVICE, 0), 288 + 4);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "not a multiple of 8");
    vst_buf_free(&b);
}

Test(virtio_state_reject, too_many_devices)
{
    unsigned n = VIRTIO_STATE_MAX_DEVICES;
    struct virtio_state *s = calloc(n + 1, sizeof(*s));
    struct vstate_out o;
    struct vst_buf b;
    log_threshold = LOG_ERROR; /* the refusals below are expected */

    cr_assert_not_null(s);
    for (unsigned i = 0; i < n + 1; i++) {
        vst_fill_small(&s[i]);
        s[i].instance_id = i;
        snprintf(s[i].id, sizeof(s[i].id), "rng%u", i);
        s[i].mmio_base = 0xd0000000 + i * 0x1000ULL;
    }
    vstate_out_init(&o);
    cr_assert_eq(virtio_state_encode_many(s, n + 1, &o), -EINVAL);
    vstate_out_free(&o);

    vst_encode(s, n, &b);
    struct virtio_state *d = calloc(n, sizeof(*d));
    vst_expect_ok(&b, d, n, n); /* 256 is fine */
    vst_release(d, n);
    free(d);
    /* A 257th DEVICE (a copy of the last, with a fresh instance id). */
    size_t last = vst_find(&b, VIRTIO_STATE_T_DEVICE, n - 1), sz = vst_rec_size(&b, last);
    uint8_t *copy = malloc(sz);
    memcpy(copy, b.p + last, sz);
    le32_put(copy + VSW_OFF(vsw_rec_hdr, selector), 5000);
    vst_splice(&b, vst_find(&b, VIRTIO_STATE_T_END, 0), 0, copy, sz);
    vst_expect_reject(&b, -E2BIG, "more than 256 devices");
    free(copy);
    free(s);
    vst_buf_free(&b);
}

Test(virtio_state_reject, queue_caps)
{
    struct vst_buf b;

    vst_small(&b);
    le16_put(vst_val(&b, VIRTIO_STATE_T_DEVICE_INFO, 0) + VSW_OFF(vsw_device_info, num_queues), 9);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -E2BIG, "9 queues (limit 8 per device)");
    vst_buf_free(&b);

    /* 128 devices x 8 queues = 1024 is the most a stream may hold; one more device breaks it. */
    unsigned n = VIRTIO_STATE_MAX_QUEUES_TOTAL / VIRTIO_STATE_MAX_DEV_QUEUES;
    struct virtio_state *s = calloc(n, sizeof(*s));
    cr_assert_not_null(s);
    for (unsigned i = 0; i < n; i++) {
        vst_fill_small(&s[i]);
        s[i].instance_id = i;
        snprintf(s[i].id, sizeof(s[i].id), "rng%u", i);
        s[i].mmio_base = 0xd0000000 + i * 0x1000ULL;
        s[i].num_queues = VIRTIO_STATE_MAX_DEV_QUEUES;
        for (unsigned q = 1; q < VIRTIO_STATE_MAX_DEV_QUEUES; q++) {
            s[i].vq[q].max_size_src = 256;
            s[i].vq[q].vector = VIRTIO_STATE_NO_VECTOR;
        }
    }
    vst_encode(s, n, &b);
    size_t last = vst_find(&b, VIRTIO_STATE_T_DEVICE, n - 1), sz = vst_rec_size(&b, last);
    uint8_t *copy = malloc(sz);
    memcpy(copy, b.p + last, sz);
    le32_put(copy + VSW_OFF(vsw_rec_hdr, selector), 5000);
    vst_splice(&b, vst_find(&b, VIRTIO_STATE_T_END, 0), 0, copy, sz);
    vst_expect_reject(&b, -E2BIG, "more than 1024 queues");
    free(copy);
    free(s);
    vst_buf_free(&b);
}

Test(virtio_state_reject, config_caps)
{
    struct vst_buf b;
    uint8_t *big = calloc(1, 8 + 4104); /* value + padding */

    /* A real 4097-byte config space. */
    vst_small(&b);
    size_t at = vst_find(&b, VIRTIO_STATE_T_CONFIG_SPACE, 0);
    le32_put(big + 4, 4097);
    vst_splice(&b, at + VIRTIO_STATE_REC_HDR_LEN, 8, big, 8 + 4097 + 7);
    vst_set_len(&b, at, 8 + 4097);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -E2BIG, "config space of 4097 bytes (limit 4096)");
    vst_buf_free(&b);

    vst_small(&b);
    le32_put(vst_val(&b, VIRTIO_STATE_T_CONFIG_SPACE, 0) + 4, 100);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "config length 100 exceeds its record");
    vst_buf_free(&b);
    free(big);
}

Test(virtio_state_reject, feature_caps)
{
    struct vst_buf b;
    uint8_t words[17 * 8] = {0};

    vst_small(&b);
    size_t at = vst_find(&b, VIRTIO_STATE_T_DRV_FEATURES, 0);
    words[4] = 1; /* VERSION_1 in word 0 */
    vst_splice(&b, at + VIRTIO_STATE_REC_HDR_LEN, 8, words, sizeof(words));
    vst_set_len(&b, at, sizeof(words));
    vst_fix_crc(&b);
    vst_expect_reject(&b, -E2BIG, "DRV_FEATURES: 17 feature words (limit 16)");
    vst_buf_free(&b);

    vst_small(&b);
    vst_set_len(&b, vst_find(&b, VIRTIO_STATE_T_DRV_FEATURES, 0), 5);
    memset(vst_val(&b, VIRTIO_STATE_T_DRV_FEATURES, 0) + 5, 0, 3);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "DRV_FEATURES: length 5 is not a multiple of 8");
    vst_buf_free(&b);
}

Test(virtio_state_reject, duplicate_and_missing_records)
{
    struct vst_buf b;

    vst_small(&b);
    size_t at = vst_find(&b, VIRTIO_STATE_T_DEVICE_STATUS, 0), sz = vst_rec_size(&b, at);
    uint8_t copy[64];
    memcpy(copy, b.p + at, sz);
    vst_splice(&b, at + sz, 0, copy, sz);
    vst_expect_reject(&b, -EBADMSG, "duplicate DEVICE_STATUS");
    vst_buf_free(&b);

    static const struct {
        uint16_t type;
        const char *msg;
    } need[] = {
        {VIRTIO_STATE_T_DRV_FEATURES, "missing DRV_FEATURES"},
        {VIRTIO_STATE_T_DEVICE_NAME, "missing DEVICE_NAME"},
        {VIRTIO_STATE_T_CONFIG_SPACE, "missing CONFIG_SPACE"},
        {VIRTIO_STATE_T_DEVICE_STATUS, "missing DEVICE_STATUS"},
        {VIRTIO_STATE_T_MMIO_TRANSPORT, "missing MMIO_TRANSPORT"},
        {VIRTIO_STATE_T_VQ_STATE, "missing VQ_STATE for queue 0"},
        {VIRTIO_STATE_T_DEVICE_INFO, "DEVICE_INFO missing (must be the first record)"},
        {VIRTIO_STATE_T_END, "END record missing"},
    };
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
        vst_small(&b);
        vst_drop(&b, need[i].type, 0);
        vst_expect_reject(&b, -EBADMSG, need[i].msg);
        vst_buf_free(&b);
    }

    /* Duplicate per-queue record. */
    vst_small(&b);
    at = vst_find(&b, VIRTIO_STATE_T_VQ_CFG, 0);
    sz = vst_rec_size(&b, at);
    memcpy(copy, b.p + at, sz);
    vst_splice(&b, at, 0, copy, sz);
    vst_expect_reject(&b, -EBADMSG, "duplicate VQ_CFG for queue 0");
    vst_buf_free(&b);

    /* A stream with no device at all. */
    vst_small(&b);
    vst_drop(&b, VIRTIO_STATE_T_DEVICE, 0);
    vst_expect_reject(&b, -EBADMSG, "stream holds no DEVICE");
    vst_buf_free(&b);
}

Test(virtio_state_reject, unknown_records)
{
    struct vst_buf b;
    uint8_t rec[256], inner[256];
    size_t n;

    vst_small(&b);
    n = vst_make_rec(rec, 0x8fff, 0, NULL, "abc", 3);
    vst_splice(&b, vst_find(&b, VIRTIO_STATE_T_VQ_CFG, 0), 0, rec, n);
    vst_expect_reject(&b, -EBADMSG, "unknown mandatory record type 0x8fff");
    vst_buf_free(&b);

    vst_small(&b); /* at top level too */
    vst_splice(&b, vst_find(&b, VIRTIO_STATE_T_END, 0), 0, rec, n);
    vst_expect_reject(&b, -EBADMSG, "unknown mandatory record type 0x8fff");
    vst_buf_free(&b);

    vst_small(&b); /* a spec part this reader does not implement */
    n = vst_make_rec(rec, VIRTIO_STATE_T_NET_CVQ_CFG_PART, 0, NULL, "abc", 3);
    vst_splice(&b, vst_find(&b, VIRTIO_STATE_T_VQ_CFG, 0), 0, rec, n);
    vst_expect_reject(&b, -EBADMSG, "0x0200 (NET_CVQ_CFG_PART)");
    vst_buf_free(&b);

    /* Optional containers: 4 levels pass, 5 are refused. */
    for (unsigned depth = 4; depth <= 5; depth++) {
        n = vst_make_rec(rec, 0x9001, VIRTIO_STATE_RF_OPTIONAL, NULL, "x", 1);
        for (unsigned i = 0; i < depth; i++) {
            memcpy(inner, rec, n);
            n = vst_make_rec(rec, 0x9000, VIRTIO_STATE_RF_OPTIONAL | VIRTIO_STATE_RF_CONTAINER,
                             NULL, inner, (uint32_t)n);
        }
        vst_small(&b);
        vst_splice(&b, vst_find(&b, VIRTIO_STATE_T_END, 0), 0, rec, n);
        if (depth == 4) {
            struct virtio_state d;
            vst_expect_ok(&b, &d, 1, 1);
        } else {
            vst_expect_reject(&b, -EBADMSG, "containers nested deeper than 4");
        }
        vst_buf_free(&b);
    }
}

Test(virtio_state_reject, framing_bytes)
{
    struct vst_buf b;
    size_t at;

    vst_small(&b);
    vst_val(&b, VIRTIO_STATE_T_DEVICE_NAME, 0)[6] = 1; /* "rng0" + padding */
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "(DEVICE_NAME) at offset 96: non-zero padding");
    vst_buf_free(&b);

    vst_small(&b);
    at = vst_find(&b, VIRTIO_STATE_T_DEVICE_STATUS, 0);
    b.p[at + VSW_OFF(vsw_rec_hdr, reserved)] = 1;
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "reserved header byte set");
    b.p[at + VSW_OFF(vsw_rec_hdr, reserved)] = 0;
    b.p[at + VSW_OFF(vsw_rec_hdr, flags)] = 4;
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "unknown flags 0x04");
    b.p[at + VSW_OFF(vsw_rec_hdr, flags)] = VIRTIO_STATE_RF_CONTAINER;
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "DEVICE_STATUS must not be a container");
    b.p[at + VSW_OFF(vsw_rec_hdr, flags)] = 0;
    b.p[at + VSW_OFF(vsw_rec_hdr, selector) + 3] = 1;
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "DEVICE_STATUS selector must be zero");
    vst_buf_free(&b);

    vst_small(&b);
    at = vst_find(&b, VIRTIO_STATE_T_DEVICE, 0);
    b.p[at + VSW_OFF(vsw_rec_hdr, flags)] = 0;
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "lacks the CONTAINER flag");
    b.p[at + VSW_OFF(vsw_rec_hdr, flags)] = VIRTIO_STATE_RF_CONTAINER;
    b.p[at + VSW_OFF(vsw_rec_hdr, selector) + 6] = 1;
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "selector reserved bytes set");
    vst_buf_free(&b);

    vst_small(&b);
    at = vst_find(&b, VIRTIO_STATE_T_VQ_STATE, 0);
    b.p[at + VSW_OFF(vsw_rec_hdr, selector)] = 1;
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "VQ_STATE for queue 1, but the device has 1 queues");
    b.p[at + VSW_OFF(vsw_rec_hdr, selector)] = 0;
    b.p[at + VSW_OFF(vsw_rec_hdr, selector) + 5] = 1;
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "VQ_STATE selector has reserved bytes set");
    vst_buf_free(&b);

    vst_small(&b);
    vst_splice(&b, b.len, 0, NULL, 16); /* an all-zero record after END */
    vst_expect_reject(&b, -EBADMSG, "16 bytes after the END record");
    vst_buf_free(&b);
}

Test(virtio_state_reject, placement_and_order)
{
    struct vst_buf b;
    uint8_t copy[64];
    size_t at, sz;

    /* A copy of DEVICE_STATUS at the top level. */
    vst_small(&b);
    at = vst_find(&b, VIRTIO_STATE_T_DEVICE_STATUS, 0);
    sz = vst_rec_size(&b, at);
    memcpy(copy, b.p + at, sz);
    vst_splice(&b, vst_find(&b, VIRTIO_STATE_T_END, 0), 0, copy, sz);
    vst_expect_reject(&b, -EBADMSG, "DEVICE_STATUS record at offset 336 outside a DEVICE");
    vst_buf_free(&b);

    /* DEVICE_STATUS moved before CONFIG_SPACE. */
    vst_small(&b);
    at = vst_find(&b, VIRTIO_STATE_T_DEVICE_STATUS, 0);
    memcpy(copy, b.p + at, sz);
    vst_splice(&b, at, sz, NULL, 0);
    vst_splice(&b, vst_find(&b, VIRTIO_STATE_T_CONFIG_SPACE, 0), 0, copy, sz);
    vst_expect_reject(&b, -EBADMSG, "CONFIG_SPACE out of order (after DEVICE_STATUS)");
    vst_buf_free(&b);

    /* END inside a DEVICE. */
    vst_small(&b);
    uint8_t end[16];
    vst_make_rec(end, VIRTIO_STATE_T_END, 0, NULL, NULL, 0);
    vst_splice(&b, vst_find(&b, VIRTIO_STATE_T_VQ_CFG, 0), 0, end, 16);
    vst_expect_reject(&b, -EBADMSG, "END inside a DEVICE container");
    vst_buf_free(&b);
}
