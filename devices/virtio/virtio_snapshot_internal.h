/*
 * Private to devices/virtio/virtio_snapshot*.c: what save and restore know
 * about each device type, and the restore "plan" that the checking half
 * (virtio_snapshot_match.c) hands to the applying half (virtio_snapshot.c),
 * so that every decision about an untrusted state is taken before the
 * device is touched.
 */
#ifndef DEVICES_VIRTIO_VIRTIO_SNAPSHOT_INTERNAL_H
#define DEVICES_VIRTIO_VIRTIO_SNAPSHOT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtio_snapshot.h"

/* Per device type: how its own data travels. */
struct virtio_snapshot_type {
    uint32_t device_id; /* VIRTIO_ID_* */
    const char *name;   /* for messages */
    uint16_t rec_type;  /* its VIRTIO_STATE_T_*_STATE record */
    /* The record carries ops->save's bytes (false: the record is the empty
     * BLK_STATE placeholder and the device's data is verify-only). */
    bool carries_blob;
    /* The record accounts for chains popped but not used at save time (net:
     * RX chains held for a partly delivered frame, completed with length 0
     * on load), so such a queue resumes at last_avail_idx, not rewound. */
    bool record_owns_inuse;
    /* Offered features that restrict the driver: the destination must offer
     * them exactly when the source did (blk RO). */
    uint64_t exact_features;
};

/* The entry for `device_id`, or NULL for a type without a record. */
const struct virtio_snapshot_type *virtio_snapshot_type(uint32_t device_id);

/* Everything virtio_snapshot_load() decided before touching the device. */
struct virtio_snapshot_plan {
    const struct virtio_snapshot_type *type; /* NULL: no device-specific record */
    bool load_blob;                          /* feed s->dev_blob to ops->load */
    bool live; /* DRIVER_OK without FAILED or NEEDS_RESET: enabled queues run now */
    uint16_t last_avail[VIRTIO_MAX_QUEUES]; /* where each queue resumes popping */
    struct virtio_mmio_regs regs;           /* transport registers, selectors saturated */
};

/*
 * Check untrusted `s` against device `d` on transport `t` (dev->lock held)
 * and fill *plan: virtio_state_check() with the guest's ring indices read
 * from guest memory, then the matching rules of virtio_snapshot.h.  Reads
 * the device and guest memory, changes nothing.  Returns 0, or -EINVAL,
 * -EOPNOTSUPP, -EFAULT, -ENOMEM with a one-line reason in `why`.
 */
int virtio_snapshot_match(struct virtio_dev *d, struct virtio_mmio *t, const struct virtio_state *s,
                          struct virtio_snapshot_plan *plan, char *why, size_t whylen);

/* Format a one-line reason into why[0, whylen) (either may be NULL/0); returns `err`. */
int virtio_snapshot_fail(char *why, size_t whylen, int err, const char *fmt, ...) __printf(4, 5);

#endif /* DEVICES_VIRTIO_VIRTIO_SNAPSHOT_INTERNAL_H */
