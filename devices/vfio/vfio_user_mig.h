/*
 * Migration v2 over vfio-user (docs/VFIO_USER.md, "Migration"): the device
 * state machine driven through DEVICE_FEATURE, and the device's opaque
 * state moved with MIG_DATA_READ/WRITE.
 *
 * Why apart from the client: the state machine is policy (which arcs exist,
 * which path to take) that wisp's migration code will drive; the client only
 * carries messages.  vfio-user has the kernel's states without the P2P
 * ones; the arcs a server must accept are STOP->{RUNNING, STOP_COPY,
 * RESUMING}, RUNNING->{STOP, PRE_COPY}, STOP_COPY->STOP, RESUMING->STOP,
 * PRE_COPY->{RUNNING, STOP_COPY}.  Other moves go one arc at a time along a
 * shortest path.
 */
#ifndef DEVICES_VFIO_VFIO_USER_MIG_H
#define DEVICES_VFIO_VFIO_USER_MIG_H

#include <stddef.h>
#include <stdint.h>

#include "devices/vfio/vfio_user_client.h"

enum vfio_user_mig_state {
    VFIO_USER_MIG_ERROR = 0,
    VFIO_USER_MIG_STOP = 1,
    VFIO_USER_MIG_RUNNING = 2,
    VFIO_USER_MIG_STOP_COPY = 3,
    VFIO_USER_MIG_RESUMING = 4,
    VFIO_USER_MIG_PRE_COPY = 6,
};

/* MIGRATION feature flags (GET). */
#define VFIO_USER_MIG_F_STOP_COPY 1u
#define VFIO_USER_MIG_F_PRE_COPY  4u

/* Largest device state vfio_user_mig_save accepts (a bound on the server). */
#define VFIO_USER_MIG_STATE_MAX (64u << 20)

/*
 * The first arc on a shortest path from `from` to `to` (pure).  Returns 0 and
 * *next, or -EINVAL for ERROR, an unknown state or from == to.
 */
int vfio_user_mig_next_state(uint32_t from, uint32_t to, uint32_t *next);

/* True if from -> to is one arc a server must accept. */
bool vfio_user_mig_arc_ok(uint32_t from, uint32_t to);

/* The device's MIGRATION flags; -ENOTSUP (server's error) if it cannot migrate. */
int vfio_user_mig_flags(struct vfio_user_client *c, uint64_t *flags);

/* The device's state (MIG_DEVICE_STATE GET); an unknown value fails the call (-EPROTO). */
int vfio_user_mig_get_state(struct vfio_user_client *c, uint32_t *state);

/*
 * Moves the device to `to`, one SET per arc.  On an error the device may be
 * anywhere on the path: the caller reads the state back, retries or resets.
 * Returns 0, -EINVAL, the server's error, -EIO.
 */
int vfio_user_mig_set_state(struct vfio_user_client *c, uint32_t to);

/*
 * Saves the device's state: the device must be in STOP_COPY; reads
 * MIG_DATA until an empty reply into buf (cap bytes, <= VFIO_USER_MIG_STATE_MAX).
 * Returns 0 and *len, -ENOSPC if the state does not fit, or a call's error.
 */
int vfio_user_mig_save(struct vfio_user_client *c, uint8_t *buf, size_t cap, size_t *len);

/* Loads a state saved by vfio_user_mig_save: the device must be in RESUMING. */
int vfio_user_mig_load(struct vfio_user_client *c, const uint8_t *buf, size_t len);

#endif /* DEVICES_VFIO_VFIO_USER_MIG_H */
