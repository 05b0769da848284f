/*
 * A simulated kernel vhost-vdpa device behind struct vhost_sys_ops
 * (devices/vhost/vdpa.h), so the layer's logic and error paths run in the
 * unit tests without /dev/vhost-vdpa-N.  It answers like the kernel where
 * the kernel enforces a rule (the errno values of virtio.md §2.1-2.2:
 * status bits cannot be cleared, SET_FEATURES after FEATURES_OK is EBUSY,
 * unoffered backend features are EOPNOTSUPP, IOTLB messages outside the
 * IOVA range or of a bad type are EINVAL, overlaps EEXIST, ring setup on a
 * running device EINVAL, and, as measured on 6.12, SET_STATUS(0) keeps the
 * vhost-side IOTLB so mapping the same IOVAs again is EEXIST) and counts a
 * "violation" where the kernel
 * does not enforce the rule but the result is wrong or unreliable
 * (GET_VRING_BASE on a running device answers garbage, SET_VRING_ENABLE
 * after DRIVER_OK without ENABLE_AFTER_DRIVER_OK, DRIVER_OK with rings the
 * IOTLB does not map).  A minimal split-ring engine (fake_vdpa_process)
 * reads the rings through its IOTLB, as a real device would.  Defaults
 * mirror the VDUSE block device measured in the testbed.  Test-only.
 */
#ifndef TESTS_LIB_FAKE_VDPA_H
#define TESTS_LIB_FAKE_VDPA_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/vhost/vdpa.h"

#define FAKE_VDPA_FD       77
#define FAKE_VDPA_MAX_MAPS 16
#define FAKE_VDPA_MAX_VQS  8

struct fake_vdpa_map {
    uint64_t iova, size, uaddr;
    uint8_t perm;
};

struct fake_vdpa_vq {
    uint32_t num;
    uint64_t desc, avail, used;
    int kick, call;
    bool enabled;
    uint16_t last_avail, used_idx;
};

struct fake_vdpa {
    /* What the simulated device reports (fake_vdpa_init: VDUSE blk as measured). */
    uint32_t device_id;
    uint64_t features;
    uint64_t backend_offered;
    uint32_t vqs;
    uint16_t vring_num;
    uint32_t config_size;
    uint8_t config[256];
    uint64_t iova_first, iova_last;
    /* Misbehaviour on request. */
    bool refuse_features_ok;   /* FEATURES_OK does not stick */
    bool needs_reset_on_start; /* DRIVER_OK reads back with NEEDS_RESET */
    bool base_hostile;         /* GET_VRING_BASE answers 0x12345 */
    bool short_write;          /* IOTLB writes return one byte short */
    unsigned long fail_req;    /* ioctl fail_req (or 1 = IOTLB UPDATE write) fails ... */
    int fail_errno;            /* ... with -fail_errno ... */
    unsigned fail_nth;         /* ... on its nth call (1 = first) */
    unsigned fail_seen;

    /* State. */
    bool open, owner;
    int opens, closes;
    uint8_t status;
    uint64_t acked;
    bool features_set;
    uint64_t backend_acked;
    bool suspended;
    bool in_batch;
    unsigned nmaps;
    struct fake_vdpa_map maps[FAKE_VDPA_MAX_MAPS];
    struct fake_vdpa_vq vq[FAKE_VDPA_MAX_VQS];
    /* What was asked. */
    unsigned ioctls, iotlb_msgs, updates, invalidates, batch_begins, batch_ends, unbatched;
    unsigned resets, config_calls;
    unsigned violations;
    char violation[160]; /* the last one */
};

extern const struct vhost_sys_ops fake_vdpa_ops;

/*
 * Defaults, as the testbed's VDUSE blk device reported: id 2, features
 * 0x331006644 (VERSION_1, ACCESS_PLATFORM, ...), backend features 0xe
 * (MSG_V2, BATCH, ASID; no SUSPEND), 1 queue of up to 256, 60 bytes of
 * config with capacity 32768, IOVA range the whole 64-bit space.
 */
void fake_vdpa_init(struct fake_vdpa *f);

/*
 * The device side of a kick: use every buffer published on queue `q` since
 * the last call (used length 0), reading avail and writing used through the
 * IOTLB.  Returns the number used, or -1 (and a violation) if the rings are
 * not mapped, the queue is not enabled or the device is not running.
 */
int fake_vdpa_process(struct fake_vdpa *f, unsigned q);

#endif /* TESTS_LIB_FAKE_VDPA_H */
