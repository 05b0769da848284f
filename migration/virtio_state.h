/*
 * VMSTATE-VIRTIO TLV v1: the backend-neutral state of virtio devices.
 *
 * Every virtio device and the mmio transport save what a guest can observe
 * (features, status, config bytes, transport registers, queue geometry and
 * ring indices, in-flight heads) in this one format, so a VM can move
 * between a built-in device, a vhost-user backend and a vDPA device.  The
 * record header has the same layout as the virtio 1.4 "device parts"
 * header, and spec part types keep their spec meaning.  The byte layout,
 * limits and validation rules are specified in docs/VIRTIO_STATE.md; the
 * wire structs live in migration/virtio_state_wire.h.
 *
 * Division of work:
 *   - struct virtio_state is a plain C description of one device's record;
 *     it holds no pointers into live devices or guest memory.
 *   - virtio_state_encode*() turns an array of them into one stream;
 *   - virtio_state_decode() treats a stream as hostile input: it parses and
 *     validates everything (framing, CRC, caps, then virtio_state_check() on
 *     every device) before it returns anything;
 *   - virtio_state_check() is the semantic check; the restore path calls it
 *     again once it has read the guest's ring indices (guest_idx_valid).
 *
 * Ownership: `inflight`, `dev_blob` and `opaque` point to heap memory.  After
 * virtio_state_decode() the states own them; release each state with
 * virtio_state_free().  States built by a caller for encoding stay the
 * caller's: the encoder only reads them.
 */
#ifndef MIGRATION_VIRTIO_STATE_H
#define MIGRATION_VIRTIO_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/virtio.h"
#include "migration/vstate.h"
#include "vmm/util.h"

/* Stream header. */
#define VIRTIO_STATE_MAGIC       "VIRTSTAT"
#define VIRTIO_STATE_MAJOR       1
#define VIRTIO_STATE_MINOR       0
#define VIRTIO_STATE_HDR_LEN     32  /* header_len written by this version */
#define VIRTIO_STATE_HDR_MAX     256 /* longest header a newer minor may use */
#define VIRTIO_STATE_REC_HDR_LEN 16
#define VIRTIO_STATE_ALIGN       8

/* Record flags (same bit numbers as VIRTIO_DEV_PART_F_*). */
#define VIRTIO_STATE_RF_OPTIONAL  0x01
#define VIRTIO_STATE_RF_CONTAINER 0x02

/* Record types: 0x0000-0x05FF are virtio spec parts, 0x8000-0xFFFF project types. */
#define VIRTIO_STATE_T_DEV_FEATURES     0x0100
#define VIRTIO_STATE_T_DRV_FEATURES     0x0101
#define VIRTIO_STATE_T_DEVICE_STATUS    0x0103
#define VIRTIO_STATE_T_VQ_CFG           0x0104
#define VIRTIO_STATE_T_NET_CVQ_CFG_PART 0x0200 /* reserved: not supported yet */
#define VIRTIO_STATE_T_DEVICE           0x8000 /* container, selector le32 instance_id */
#define VIRTIO_STATE_T_DEVICE_INFO      0x8001
#define VIRTIO_STATE_T_BACKEND_FEATURES 0x8002
#define VIRTIO_STATE_T_CONFIG_SPACE     0x8003
#define VIRTIO_STATE_T_MMIO_TRANSPORT   0x8004
#define VIRTIO_STATE_T_DEVICE_NAME      0x8005
#define VIRTIO_STATE_T_VQ_STATE         0x8010
#define VIRTIO_STATE_T_VQ_INFLIGHT      0x8011
#define VIRTIO_STATE_T_BLK_STATE        0x8020 /* reserved, empty */
#define VIRTIO_STATE_T_NET_STATE        0x8030 /* device-owned blob, net only */
#define VIRTIO_STATE_T_CONSOLE_STATE    0x8031 /* device-owned blob, console only */
#define VIRTIO_STATE_T_RNG_STATE        0x8032 /* device-owned blob, rng only */
#define VIRTIO_STATE_T_BLK_DEV_STATE    0x8033 /* device-owned blob, blk only (verify-only) */
#define VIRTIO_STATE_T_BALLOON_STATE    0x8034 /* device-owned blob, balloon only */
#define VIRTIO_STATE_T_VSOCK_STATE      0x8035 /* device-owned blob, vsock only */
#define VIRTIO_STATE_T_BACKEND_OPAQUE   0x80F0
#define VIRTIO_STATE_T_END              0xFFFF

/* DEVICE_INFO transport. */
#define VIRTIO_STATE_TRANSPORT_MMIO 1
#define VIRTIO_STATE_TRANSPORT_PCI  2

/* VQ_STATE ring type and flags. */
#define VIRTIO_STATE_RING_SPLIT        0
#define VIRTIO_STATE_RING_PACKED       1
#define VIRTIO_STATE_VQ_DRAINED        0x01 /* nothing in flight at save */
#define VIRTIO_STATE_VQ_INFLIGHT_VALID 0x02 /* a VQ_INFLIGHT record follows */
#define VIRTIO_STATE_SIGNALLED_UNKNOWN 0xFFFFFFFFu
#define VIRTIO_STATE_NO_VECTOR         0xFFFF /* VQ_CFG vector on mmio */
#define VIRTIO_STATE_STATUS_SUSPEND    16     /* virtio 1.4 */
#define VIRTIO_STATE_F_SUSPEND         43     /* virtio 1.4 */
#define VIRTIO_STATE_VHOST_F_LOG_ALL   26     /* vhost-private, never migrated */
#define VIRTIO_STATE_VHOST_F_PROTOCOL  30     /* vhost-user-private, never migrated */
#define VIRTIO_STATE_MMIO_REGS_END     0x100  /* device config starts here in the window */
#define VIRTIO_STATE_QUEUE_SIZE_LIMIT  32768  /* largest virtqueue the spec allows */
#define VIRTIO_STATE_MMIO_INT_MASK     0x3    /* InterruptStatus: used buffer, config change */
#define VIRTIO_STATE_MAX_SHM_SEL       0xFF   /* shared-memory region ids are 8-bit */
#define VIRTIO_STATE_MAX_QUEUE_SEL     0xFFFF /* virtqueue indices are 16-bit */

/* Limits.  Decoding refuses anything beyond them; so does encoding. */
#define VIRTIO_STATE_MAX_DEVICES       256
#define VIRTIO_STATE_MAX_QUEUES_TOTAL  1024
#define VIRTIO_STATE_MAX_DEV_QUEUES    VIRTIO_MAX_QUEUES
#define VIRTIO_STATE_MAX_FEATURE_WORDS 16 /* 1024 feature bits */
#define VIRTIO_STATE_MAX_CONFIG        4096
#define VIRTIO_STATE_MAX_DEV_BLOB      (64U * 1024)        /* NET/CONSOLE/RNG_STATE */
#define VIRTIO_STATE_MAX_OPAQUE        (16U * 1024 * 1024) /* BACKEND_OPAQUE */
#define VIRTIO_STATE_MAX_NESTING       4
#define VIRTIO_STATE_MAX_TOTAL         (64U * 1024 * 1024)
#define VIRTIO_STATE_KIND_LEN          8 /* BACKEND_OPAQUE selector */
#define VIRTIO_STATE_NAME_MAX          (VIRTIO_ID_LEN - 1)

/* A feature bitmap of up to 1024 bits, as n little-endian 64-bit words. */
struct virtio_state_features {
    unsigned n; /* words present on the wire, <= VIRTIO_STATE_MAX_FEATURE_WORDS */
    uint64_t w[VIRTIO_STATE_MAX_FEATURE_WORDS];
};

/* The mmio transport registers a guest can observe (MMIO_TRANSPORT). */
struct virtio_state_mmio {
    uint32_t dev_features_sel;
    uint32_t drv_features_sel;
    uint32_t queue_sel;
    uint32_t interrupt_status;
    uint32_t shm_sel; /* 0 when the record predates it (16-byte record) */
};

/* One descriptor chain the device had popped but not completed. */
struct virtio_state_inflight {
    uint16_t head;  /* descriptor head index, < queue size */
    uint64_t order; /* pop order: strictly increasing along the list */
};

struct virtio_state_vq {
    /* VQ_CFG (virtio 1.4 struct virtio_dev_part_vq_cfg). */
    uint16_t size;    /* QueueSize */
    uint16_t vector;  /* VIRTIO_STATE_NO_VECTOR on mmio */
    uint16_t enabled; /* QueueReady: 0 or 1 */
    uint64_t desc_addr;
    uint64_t driver_addr;
    uint64_t device_addr;

    /* VQ_STATE. */
    uint8_t ring;          /* VIRTIO_STATE_RING_* */
    uint8_t flags;         /* VIRTIO_STATE_VQ_* */
    uint16_t max_size_src; /* QueueSizeMax on the source */
    uint16_t last_avail_idx;
    uint16_t used_idx;
    uint8_t avail_wrap; /* packed rings only; 0 for split */
    uint8_t used_wrap;
    uint32_t signalled_used; /* used_idx at the last interrupt, or SIGNALLED_UNKNOWN */

    /* VQ_INFLIGHT: present iff flags has VIRTIO_STATE_VQ_INFLIGHT_VALID. */
    uint16_t n_inflight;
    struct virtio_state_inflight *inflight;

    /*
     * Not on the wire: the restore path may read avail->idx and used->idx
     * from guest memory and set these, so virtio_state_check() applies the
     * QEMU bounds (avail - last_avail <= size, last_avail - used <= size).
     */
    bool guest_idx_valid;
    uint16_t guest_avail_idx;
    uint16_t guest_used_idx;
};

struct virtio_state {
    uint32_t instance_id;   /* DEVICE selector; unique in a stream */
    char id[VIRTIO_ID_LEN]; /* DEVICE_NAME: [A-Za-z0-9._-], 1..31 chars */

    /* DEVICE_INFO. */
    uint32_t device_id; /* VIRTIO_ID_* */
    uint32_t transport; /* VIRTIO_STATE_TRANSPORT_* */
    uint16_t num_queues;
    uint64_t mmio_base;
    uint32_t mmio_len;
    uint32_t irq;

    bool has_dev_features;                 /* DEV_FEATURES is optional */
    struct virtio_state_features dev_feat; /* offered */
    struct virtio_state_features drv_feat; /* acked by the guest */
    bool has_backend_features;
    struct virtio_state_features backend_feat; /* sent to a vhost/vDPA backend */

    uint8_t status; /* DEVICE_STATUS */

    /* CONFIG_SPACE: the bytes as the guest saw them. */
    uint32_t config_generation;
    uint32_t config_len;
    uint8_t config[VIRTIO_STATE_MAX_CONFIG];

    struct virtio_state_mmio mmio; /* MMIO_TRANSPORT (mmio only) */

    struct virtio_state_vq vq[VIRTIO_STATE_MAX_DEV_QUEUES]; /* [0, num_queues) used */

    /*
     * Device-specific record: 0 (none), VIRTIO_STATE_T_BLK_STATE (always
     * empty) or VIRTIO_STATE_T_{NET,CONSOLE,RNG}_STATE with a blob the
     * device alone interprets, <= VIRTIO_STATE_MAX_DEV_BLOB bytes.
     */
    uint16_t dev_rec_type;
    uint32_t dev_blob_len;
    uint8_t *dev_blob;

    /* BACKEND_OPAQUE: backend-private state, restorable on the same kind only. */
    bool has_opaque;
    bool opaque_optional; /* false: a reader that cannot use it must refuse */
    char opaque_kind[VIRTIO_STATE_KIND_LEN + 1]; /* e.g. "vu-fs" */
    uint32_t opaque_len;
    uint8_t *opaque;
};

/*
 * Encode `n` device states (1 <= n <= VIRTIO_STATE_MAX_DEVICES) as one
 * stream appended to `out` (which may already hold data, or an open
 * vstate section).  Only format rules are enforced here
 * (virtio_state_check_limits); call virtio_state_check() first if the
 * stream must also be restorable.
 *
 * Returns 0, -EINVAL if a state breaks a format rule (nothing is appended),
 * or out->err (-ENOMEM, -E2BIG) if the buffer could not grow; on failure
 * out->len is restored to its value on entry.
 */
int virtio_state_encode_many(const struct virtio_state *s, unsigned n,
                             struct vstate_out *out) __must_check;

/* virtio_state_encode_many() for a single device. */
int virtio_state_encode(const struct virtio_state *s, struct vstate_out *out) __must_check;

/*
 * Parse and validate the stream buf[0, len) into out[0, *n).  `out` has room
 * for `max` states; the decoder writes each one fully, allocating only after
 * the length it copies has been checked against the buffer.  Nothing is
 * returned until the whole stream (header, CRC, every record, caps, and
 * virtio_state_check() of every device) has been validated.
 *
 * `why` (may be NULL) receives a one-line reason on failure.
 * Returns 0 with *n set, or a negative errno with *n = 0 and every entry of
 * out[] the decoder wrote freed and zeroed:
 *   -EBADMSG  malformed stream (magic, CRC, framing, lengths, padding,
 *             duplicate or missing records, unknown mandatory record, ...)
 *   -EPROTO   unsupported major version
 *   -E2BIG    a limit was exceeded (devices, queues, config, features, ...)
 *   -ENOSPC   more devices than `max`
 *   -EINVAL   a device failed virtio_state_check(), the devices failed
 *             virtio_state_check_set(), or buf is NULL with len > 0
 *   -ENOMEM   allocation failure
 */
int virtio_state_decode(const void *buf, size_t len, struct virtio_state *out, unsigned max,
                        unsigned *n, char *why, size_t whylen) __must_check;

/* Free what a decoded state owns and zero it.  NULL-safe; idempotent. */
void virtio_state_free(struct virtio_state *s);

/*
 * Format rules for one state, shared by the encoder and the decoder: caps,
 * name and kind syntax, transport/record consistency, in-flight list
 * consistent with its flag and within the queue size, device record type
 * matching the device type.  Returns 0 or -EINVAL / -E2BIG with `why`.
 */
int virtio_state_check_limits(const struct virtio_state *s, char *why, size_t whylen) __must_check;

/*
 * Semantic validation of one device (docs/VIRTIO_STATE.md, "Validation"):
 * acked features subset of offered and free of vhost-private bits, status
 * bits and their order (DRIVER_OK needs FEATURES_OK, FEATURES_OK needs
 * VERSION_1), queue sizes, addresses and ring indices, in-flight lists,
 * transport registers, and the guest-index bounds when guest_idx_valid.
 * Includes virtio_state_check_limits().
 * Returns 0, or -EINVAL (-E2BIG for a format limit) with a one-line reason
 * in `why` (may be NULL).
 */
int virtio_state_check(const struct virtio_state *s, char *why, size_t whylen) __must_check;

/*
 * Checks across the devices of one VM: unique instance ids and names, and
 * MMIO windows that do not overlap.  Returns 0 or -EINVAL with `why`.
 */
int virtio_state_check_set(const struct virtio_state *s, unsigned n, char *why,
                           size_t whylen) __must_check;

/*
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78).  Pass crc = 0 to
 * start; feed the previous result to continue over more bytes.
 */
uint32_t virtio_state_crc32c(uint32_t crc, const void *p, size_t n);
/* The same by table lookups only (what runs without SSE4.2); for tests. */
uint32_t virtio_state_crc32c_sw(uint32_t crc, const void *p, size_t n);

/* Name of a record type for messages ("DEVICE_STATUS"), or "unknown". */
const char *virtio_state_type_name(uint16_t type);

#endif /* MIGRATION_VIRTIO_STATE_H */
