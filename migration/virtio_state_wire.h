/*
 * Byte layouts of VMSTATE-VIRTIO TLV v1 (see docs/VIRTIO_STATE.md).
 *
 * Every struct here is made of byte arrays only, so it has alignment 1 and
 * no padding: offsetof() gives the wire offset and sizeof() the wire size,
 * both pinned by the _Static_asserts below.  The structs are never overlaid
 * on a buffer; the encoder and decoder read and write each field with the
 * le*_get/le*_put helpers at VSW_OFF(...).  This keeps the format explicit
 * and lets the compiler catch a layout change.
 *
 * Internal to migration/virtio_state*.c: the end of this header also holds
 * the decoder context and helpers those files share.  Other code includes
 * migration/virtio_state.h only (tests may include this to poke bytes).
 */
#ifndef MIGRATION_VIRTIO_STATE_WIRE_H
#define MIGRATION_VIRTIO_STATE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "migration/virtio_state.h"

#define VSW_OFF(type, field) offsetof(struct type, field)

/* Stream header, at offset 0. */
struct vsw_stream_hdr {
    uint8_t magic[8];      /* "VIRTSTAT" */
    uint8_t major[2];      /* 1 */
    uint8_t minor[2];      /* 0 */
    uint8_t header_len[4]; /* 32 (a newer minor may be longer, 8-aligned) */
    uint8_t total_len[8];  /* bytes of the whole stream, header included */
    uint8_t flags[4];      /* none defined: 0 */
    uint8_t crc32c[4];     /* over total_len bytes with this field zeroed */
};

/* Record header: the virtio 1.4 struct virtio_dev_part_hdr layout. */
struct vsw_rec_hdr {
    uint8_t type[2];
    uint8_t flags; /* VIRTIO_STATE_RF_* */
    uint8_t reserved;
    uint8_t selector[8];
    uint8_t length[4]; /* value bytes, padding excluded */
};

/* DEVICE_INFO value. */
struct vsw_device_info {
    uint8_t device_id[4];
    uint8_t transport[4];
    uint8_t num_queues[2];
    uint8_t reserved[2];
    uint8_t mmio_base[8];
    uint8_t mmio_len[4];
    uint8_t irq[4];
};

/* CONFIG_SPACE value prefix; `len` config bytes follow. */
struct vsw_config_hdr {
    uint8_t generation[4];
    uint8_t len[4];
};

/* MMIO_TRANSPORT value.  16-byte records (no shm_sel) are accepted. */
struct vsw_mmio {
    uint8_t dev_features_sel[4];
    uint8_t drv_features_sel[4];
    uint8_t queue_sel[4];
    uint8_t interrupt_status[4];
    uint8_t shm_sel[4];
    uint8_t reserved[4];
};
#define VSW_MMIO_MIN_LEN 16

/* VQ_CFG value: virtio 1.4 struct virtio_dev_part_vq_cfg. */
struct vsw_vq_cfg {
    uint8_t queue_size[2];
    uint8_t vector[2];
    uint8_t enabled[2];
    uint8_t reserved[2];
    uint8_t queue_desc[8];
    uint8_t queue_driver[8];
    uint8_t queue_device[8];
};

/* VQ_STATE value.  12-byte records (no signalled_used) are accepted. */
struct vsw_vq_state {
    uint8_t ring;
    uint8_t flags;
    uint8_t max_size_src[2];
    uint8_t last_avail_idx[2];
    uint8_t used_idx[2];
    uint8_t avail_wrap;
    uint8_t used_wrap;
    uint8_t reserved[2];
    uint8_t signalled_used[4];
};
#define VSW_VQ_STATE_MIN_LEN 12

/* VQ_INFLIGHT value: this header, then `count` entries. */
struct vsw_vq_inflight_hdr {
    uint8_t count[2];
    uint8_t reserved[6];
};
struct vsw_inflight_entry {
    uint8_t head[2];
    uint8_t reserved0[2];
    uint8_t reserved1[4];
    uint8_t order[8];
};

_Static_assert(sizeof(struct vsw_stream_hdr) == VIRTIO_STATE_HDR_LEN, "stream header is 32 bytes");
_Static_assert(VSW_OFF(vsw_stream_hdr, total_len) == 16, "total_len at 16");
_Static_assert(VSW_OFF(vsw_stream_hdr, crc32c) == 28, "crc32c at 28");
_Static_assert(sizeof(struct vsw_rec_hdr) == VIRTIO_STATE_REC_HDR_LEN, "record header is 16 bytes");
_Static_assert(VSW_OFF(vsw_rec_hdr, selector) == 4 && VSW_OFF(vsw_rec_hdr, length) == 12,
               "record header matches virtio_dev_part_hdr");
_Static_assert(sizeof(struct vsw_device_info) == 28, "DEVICE_INFO is 28 bytes");
_Static_assert(VSW_OFF(vsw_device_info, mmio_base) == 12, "mmio_base at 12");
_Static_assert(sizeof(struct vsw_config_hdr) == 8, "CONFIG_SPACE prefix is 8 bytes");
_Static_assert(sizeof(struct vsw_mmio) == 24, "MMIO_TRANSPORT is 24 bytes");
_Static_assert(VSW_OFF(vsw_mmio, shm_sel) == VSW_MMIO_MIN_LEN, "shm_sel follows the 16-byte core");
_Static_assert(sizeof(struct vsw_vq_cfg) == 32, "VQ_CFG is 32 bytes");
_Static_assert(VSW_OFF(vsw_vq_cfg, queue_desc) == 8, "queue_desc at 8");
_Static_assert(sizeof(struct vsw_vq_state) == 16, "VQ_STATE is 16 bytes");
_Static_assert(VSW_OFF(vsw_vq_state, signalled_used) == VSW_VQ_STATE_MIN_LEN,
               "signalled_used follows the 12-byte core");
_Static_assert(sizeof(struct vsw_vq_inflight_hdr) == 8, "VQ_INFLIGHT header is 8 bytes");
_Static_assert(sizeof(struct vsw_inflight_entry) == 16, "in-flight entry is 16 bytes");
_Static_assert(VSW_OFF(vsw_inflight_entry, order) == 8, "order at 8");

/*
 * Helpers shared by virtio_state*.c only (not part of the public API).
 */

/* Decoder context, shared by virtio_state_dec.c (framing) and _rec.c (values). */
struct vs_dec {
    const uint8_t *buf;
    size_t len; /* == total_len, validated */
    char *why;
    size_t whylen;
    unsigned queues; /* across all devices so far */
};

/* One framed record: [val, val + len) lies inside the buffer, padding checked. */
struct vs_rec {
    size_t off; /* of the header */
    uint16_t type;
    uint8_t flags;
    const uint8_t *sel; /* 8 bytes */
    uint32_t len;
    const uint8_t *val;
    size_t next; /* offset after value and padding */
};

#define VS_FAIL(d, err, ...) virtio_state_fail((d)->why, (d)->whylen, (err), __VA_ARGS__)

/*
 * Parse the value of known record `r` (any type the decoder ranks) into `s`.
 * Returns 0 or a negative errno with the reason in d->why.
 */
int virtio_state_get_value(struct vs_dec *d, const struct vs_rec *r, struct virtio_state *s);

/* Are all n bytes at p zero? */
static inline bool vsw_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Format `fmt` into why[0, whylen) (either may be NULL/0) and return `err`. */
int virtio_state_fail(char *why, size_t whylen, int err, const char *fmt, ...) __printf(4, 5);

/* Is `p` 1..max characters of [A-Za-z0-9._-] followed by a NUL within max + 1 bytes? */
bool virtio_state_name_ok(const char *p, size_t max);

/* The VIRTIO_ID_* a device-specific record type belongs to, 0 if `type` is not one. */
uint32_t virtio_state_dev_rec_owner(uint16_t type);

#endif /* MIGRATION_VIRTIO_STATE_WIRE_H */
