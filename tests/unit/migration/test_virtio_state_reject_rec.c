/*
 * VMSTATE-VIRTIO TLV v1: malformed record values (identity, short records,
 * in-flight lists, device-specific records, semantic rules) are refused
 * with their own reason; framing and caps are in test_virtio_state_reject.c.  Each test starts from
 * a valid encoding, breaks exactly one rule, and (through vst_splice / vst_fix_crc) repairs lengths
 * and the CRC so the decoder reaches the rule under test instead of failing earlier.
 */
#include "tests/unit/migration/test_virtio_state.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "migration/virtio_state_wire.h"

Test(virtio_state_reject, device_identity)
{
    struct vst_buf b;

    vst_full(&b);
    le32_put(b.p + vst_find(&b, VIRTIO_STATE_T_DEVICE, 1) + VSW_OFF(vsw_rec_hdr, selector), 1);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "duplicate device instance id 1");
    vst_buf_free(&b);

    vst_full(&b);
    memcpy(vst_val(&b, VIRTIO_STATE_T_DEVICE_NAME, 1), "blk0", 4);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "duplicate device name blk0");
    vst_buf_free(&b);

    vst_small(&b);
    vst_val(&b, VIRTIO_STATE_T_DEVICE_NAME, 0)[1] = '/';
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "DEVICE_NAME has characters outside");
    vst_buf_free(&b);

    vst_small(&b);
    le32_put(vst_val(&b, VIRTIO_STATE_T_DEVICE_INFO, 0) + VSW_OFF(vsw_device_info, transport), 3);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "unknown transport 3");
    le32_put(vst_val(&b, VIRTIO_STATE_T_DEVICE_INFO, 0) + VSW_OFF(vsw_device_info, transport), 2);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "MMIO_TRANSPORT in a non-mmio device");
    vst_buf_free(&b);
}

Test(virtio_state_reject, short_records)
{
    struct vst_buf b;
    size_t at;

    vst_small(&b);
    at = vst_find(&b, VIRTIO_STATE_T_VQ_CFG, 0);
    vst_set_len(&b, at, 24);
    vst_splice(&b, at + VIRTIO_STATE_REC_HDR_LEN + 24, 8, NULL, 0);
    vst_expect_reject(&b, -EBADMSG, "VQ_CFG of 24 bytes, need 32");
    vst_buf_free(&b);

    vst_small(&b);
    at = vst_find(&b, VIRTIO_STATE_T_DEVICE_INFO, 0);
    vst_set_len(&b, at, 24);
    vst_splice(&b, at + VIRTIO_STATE_REC_HDR_LEN + 24, 8, NULL, 0);
    vst_expect_reject(&b, -EBADMSG, "DEVICE_INFO of 24 bytes, need 28");
    vst_buf_free(&b);

    vst_small(&b);
    at = vst_find(&b, VIRTIO_STATE_T_VQ_STATE, 0);
    vst_set_len(&b, at, 8);
    vst_splice(&b, at + VIRTIO_STATE_REC_HDR_LEN + 8, 8, NULL, 0);
    vst_expect_reject(&b, -EBADMSG, "VQ_STATE of 8 bytes, need 12");
    vst_buf_free(&b);
}

Test(virtio_state_reject, inflight)
{
    struct vst_buf b;

    /* blk0 queue 0 has 3 in-flight heads; shrink the queue to 2. */
    vst_full(&b);
    le16_put(vst_val(&b, VIRTIO_STATE_T_VQ_CFG, 0) + VSW_OFF(vsw_vq_cfg, queue_size), 2);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -E2BIG, "3 in-flight entries exceed queue size 2");
    vst_buf_free(&b);

    /* A count the record cannot hold is refused before anything is allocated. */
    vst_full(&b);
    le16_put(vst_val(&b, VIRTIO_STATE_T_VQ_INFLIGHT, 0), 60000);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "60000 in-flight entries exceed the VQ_INFLIGHT record");
    vst_buf_free(&b);

    vst_full(&b);
    vst_drop(&b, VIRTIO_STATE_T_VQ_INFLIGHT, 0);
    vst_expect_reject(&b, -EBADMSG, "INFLIGHT_VALID but no VQ_INFLIGHT for queue 0");
    vst_buf_free(&b);

    vst_full(&b);
    vst_val(&b, VIRTIO_STATE_T_VQ_STATE, 0)[VSW_OFF(vsw_vq_state, flags)] = 0;
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "VQ_INFLIGHT without INFLIGHT_VALID");
    vst_val(&b, VIRTIO_STATE_T_VQ_STATE, 0)[VSW_OFF(vsw_vq_state, flags)] = 0x80;
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "VQ_STATE: unknown flags 0x80");
    vst_val(&b, VIRTIO_STATE_T_VQ_STATE, 0)[VSW_OFF(vsw_vq_state, flags)] = 2;
    vst_val(&b, VIRTIO_STATE_T_VQ_STATE, 0)[VSW_OFF(vsw_vq_state, ring)] = 2;
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "VQ_STATE: unknown ring type 2");
    vst_buf_free(&b);
}

Test(virtio_state_reject, device_records)
{
    struct vst_buf b;
    size_t at;

    vst_full(&b);
    at = vst_find(&b, VIRTIO_STATE_T_NET_STATE, 0);
    le16_put(b.p + at, VIRTIO_STATE_T_RNG_STATE);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "RNG_STATE record in a device of type 1");
    vst_buf_free(&b);

    vst_full(&b);
    at = vst_find(&b, VIRTIO_STATE_T_BACKEND_OPAQUE, 0);
    b.p[at + VSW_OFF(vsw_rec_hdr, selector) + 2] = ' ';
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "BACKEND_OPAQUE kind");
    vst_buf_free(&b);

    vst_full(&b); /* a second device-specific record */
    at = vst_find(&b, VIRTIO_STATE_T_BLK_STATE, 0);
    uint8_t copy[16];
    memcpy(copy, b.p + at, 16);
    vst_splice(&b, at, 0, copy, 16);
    vst_expect_reject(&b, -EBADMSG, "duplicate BLK_STATE record (one device-specific");
    vst_buf_free(&b);
}

/* Semantic rules reached through the decoder (virtio_state_check runs on every device). */
Test(virtio_state_reject, semantic_through_decode)
{
    struct vst_buf b;

    vst_small(&b);
    uint8_t *drv = vst_val(&b, VIRTIO_STATE_T_DRV_FEATURES, 0);
    drv[0] |= 1 << 3; /* bit 3 was never offered */
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EINVAL, "acked features not offered (word 0, bits 0x8)");
    vst_buf_free(&b);

    vst_small(&b);
    vst_val(&b, VIRTIO_STATE_T_DEVICE_STATUS, 0)[0] = 0x07;
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EINVAL, "DRIVER_OK without FEATURES_OK");
    vst_buf_free(&b);

    vst_small(&b);
    le16_put(vst_val(&b, VIRTIO_STATE_T_VQ_CFG, 0) + VSW_OFF(vsw_vq_cfg, queue_size), 100);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EINVAL, "size 100 is not a power of two <= 256");
    vst_buf_free(&b);

    vst_full(&b);
    le32_put(vst_val(&b, VIRTIO_STATE_T_DEVICE_INFO, 1) + VSW_OFF(vsw_device_info, mmio_base),
             0xd0000800);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EINVAL, "MMIO windows of blk0 and net0 overlap");
    vst_buf_free(&b);
}

/* A vsock device's state: VSOCK_STATE round-trips, and is refused in another
 * device type, above the blob cap, and cut short. */
Test(virtio_state_reject, vsock_record)
{
    struct virtio_state s, d;
    struct vst_buf b;
    uint8_t blob[36];
    for (unsigned i = 0; i < sizeof(blob); i++)
        blob[i] = (uint8_t)(i + 1);

    vst_fill_small(&s);
    strcpy(s.id, "vsock0");
    s.device_id = VIRTIO_ID_VSOCK;
    s.dev_rec_type = VIRTIO_STATE_T_VSOCK_STATE;
    s.dev_blob = blob;
    s.dev_blob_len = sizeof(blob);
    vst_encode(&s, 1, &b);
    vst_expect_ok(&b, &d, 1, 1);
    cr_assert_eq(d.dev_rec_type, VIRTIO_STATE_T_VSOCK_STATE);
    cr_assert_eq(d.dev_blob_len, sizeof(blob));
    cr_assert_eq(memcmp(d.dev_blob, blob, sizeof(blob)), 0);
    virtio_state_free(&d);
    cr_assert_str_eq(virtio_state_type_name(VIRTIO_STATE_T_VSOCK_STATE), "VSOCK_STATE");

    /* Cut short: the record claims more than its device holds. */
    size_t at = vst_find(&b, VIRTIO_STATE_T_VSOCK_STATE, 0);
    vst_set_len(&b, at, 4096);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "");
    vst_set_len(&b, at, sizeof(blob));

    /* Oversized: 64 KiB + 1 bytes. */
    size_t big_n = VIRTIO_STATE_REC_HDR_LEN + VIRTIO_STATE_MAX_DEV_BLOB + 8;
    uint8_t *big = calloc(1, big_n), *val = calloc(1, VIRTIO_STATE_MAX_DEV_BLOB + 1);
    cr_assert(big && val);
    static const uint8_t nosel[8];
    size_t n =
        vst_make_rec(big, VIRTIO_STATE_T_VSOCK_STATE, 0, nosel, val, VIRTIO_STATE_MAX_DEV_BLOB + 1);
    vst_splice(&b, at, vst_rec_size(&b, at), big, n);
    vst_expect_reject(&b, -E2BIG, "VSOCK_STATE of 65537 bytes (limit 65536)");
    free(big);
    free(val);
    vst_buf_free(&b);

    /* In a device of another type (net). */
    vst_full(&b);
    at = vst_find(&b, VIRTIO_STATE_T_NET_STATE, 0);
    le16_put(b.p + at, VIRTIO_STATE_T_VSOCK_STATE);
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "VSOCK_STATE record in a device of type 1");
    vst_buf_free(&b);
}
