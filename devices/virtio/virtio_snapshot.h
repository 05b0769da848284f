/*
 * Whole-device save and restore of a virtio device on the mmio transport,
 * in the vendor-neutral VMSTATE-VIRTIO format (migration/virtio_state.h,
 * docs/VIRTIO_STATE.md): the common part (features, status, config space,
 * queues), the transport registers and the device's own data, in one
 * struct virtio_state.  Migration and snapshots use it; the state it writes
 * describes what the guest can observe, not which backend served it, so a
 * device may come back on another backend of the same kind.
 *
 * Why a module of its own: saving is easy to get subtly wrong (a queue
 * saved with requests in flight, a device-specific blob dropped) and
 * restoring is a parser of untrusted input that then drives live queues.
 * Keeping both in one place lets every device model stay ignorant of the
 * format and lets the rules below be checked once.
 *
 * Device-specific data: the bytes ops->save writes travel as the device
 * type's project record (NET_STATE, CONSOLE_STATE, RNG_STATE).  A blk
 * device's own section is verify-only (capacity, read-only, limits, serial);
 * until the format has a record for it (0x8033 BLK_DEV_STATE, see
 * docs/VIRTIO_STATE.md section 5) the empty BLK_STATE is written, and the
 * destination checks the disk through CONFIG_SPACE and DEV_FEATURES.
 *
 * Restore rules (the source is not trusted; everything below is checked
 * before the device is touched):
 *   - virtio_state_check() passes, with the guest's avail/used indices read
 *     from guest memory for every queue that will run (the QEMU bounds);
 *   - same device type, queue count, register window and GSI (the guest
 *     found the device there); pairing by name and instance id is the
 *     caller's (the migration stream's) job;
 *   - acked features are offered here; every feature the source offered is
 *     offered here too (the destination may add capabilities, never remove
 *     one, and never add a restricting one such as blk RO);
 *   - config space: same length and, for a read-only config space (every
 *     current device), the same bytes;
 *   - queue sizes within this device's maxima, split rings only, rings in
 *     guest RAM; an in-flight list is accepted only when it names exactly
 *     the avail entries after used_idx (then the queue rewinds to used_idx
 *     and the device pops them again, in order).
 * Then: device reset (what Status = 0 does to the device), ops->load, the
 * common part, queues (virtq_reset, configuration and indices,
 * virtq_activate), ops->activate for a live (DRIVER_OK) device so its
 * backend re-arms, the transport registers; finally one kick per running
 * queue and one used-buffer interrupt (docs/VIRTIO_STATE.md section 10,
 * step 4).  A failure once the device has been touched leaves it with
 * DEVICE_NEEDS_RESET (queues broken, config interrupt raised): the guest
 * must reset it, and the caller should not resume the VM.
 */
#ifndef DEVICES_VIRTIO_VIRTIO_SNAPSHOT_H
#define DEVICES_VIRTIO_VIRTIO_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "migration/virtio_state.h"

/*
 * Save device `d`, whose transport is `t`, as instance `instance_id` into
 * *out (overwritten; on success release it with virtio_state_free(), which
 * frees the device blob).  Takes dev->lock.  Save a quiescent device: vCPUs
 * paused, and for blk virtio_blk_quiesce() first.  The state is checked
 * with virtio_state_check() before it is returned, so a state saved here
 * is one the decoder and virtio_snapshot_load() accept.
 *
 * `why` (may be NULL) receives a one-line reason on failure.  Returns 0, or:
 *   -EINVAL      bad arguments (t is not d's transport), or the device is in
 *                a state the format cannot describe (e.g. the guest set a
 *                queue ready with an invalid geometry and has not reset it)
 *   -EOPNOTSUPP  ops->unmigratable is set (the reason is in `why`), or the
 *                device type has no record for its own data
 *   -EBUSY       the device reports requests in flight (quiesce first)
 *   -E2BIG       the device's own data exceeds VIRTIO_STATE_MAX_DEV_BLOB
 *   -ENOMEM, or another error of ops->save
 * On failure *out is zeroed and owns nothing.
 */
int virtio_snapshot_save(struct virtio_dev *d, struct virtio_mmio *t, uint32_t instance_id,
                         struct virtio_state *out, char *why, size_t whylen) __must_check;

/*
 * Restore state `s` (untrusted, e.g. from virtio_state_decode(); not
 * modified) into device `d` on transport `t`, which must be the same kind
 * of device; see the rules above.  Takes dev->lock; guest memory must
 * already hold the guest's RAM, and the vCPUs must be paused.
 *
 * `why` (may be NULL) receives a one-line reason on failure.  Returns 0, or:
 *   -EINVAL      s fails virtio_state_check(), or does not match this device
 *                (type, queues, window, features, config, queue sizes, guest
 *                indices): the device is unchanged
 *   -EOPNOTSUPP  this device is unmigratable, or s needs what it cannot do
 *                (packed rings, an in-flight list it cannot replay, a
 *                missing device record): the device is unchanged
 *   -EFAULT      a ring of a queue to run is not in guest RAM: unchanged
 *   -ENOMEM      out of memory: unchanged
 *   -EIO         a later step failed (ops->load refused the device record,
 *                activation failed): the device is left in
 *                DEVICE_NEEDS_RESET and `why` says which step
 */
int virtio_snapshot_load(struct virtio_dev *d, struct virtio_mmio *t, const struct virtio_state *s,
                         char *why, size_t whylen) __must_check;

#endif /* DEVICES_VIRTIO_VIRTIO_SNAPSHOT_H */
