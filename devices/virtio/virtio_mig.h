/*
 * A virtio device (any type, on the mmio transport) as a member of the
 * migration registry (migration/hooks.h).  Its state travels as a
 * VMSTATE-VIRTIO stream of one device (virtio_snapshot.h), under the
 * section id of its type (virtio-net 0x201, -blk 0x202, -console 0x203,
 * -rng 0x204), marked portable: the standard state does not depend on
 * the data plane, so a destination may serve the device differently.
 *
 * Quiesce pauses every queue (virtq_pop hands out nothing; a blk device
 * also drains its requests in flight), so neither the state nor guest
 * memory changes while they are saved; resume undoes it and retries each
 * queue.  The dirty_log hook drains the guest memory write log
 * (gmem_log_*), which the queues fill with what device emulation wrote:
 * KVM's dirty log sees only the guest's own writes.
 *
 * Why a module of its own: the device models know nothing of the stream,
 * and the stream nothing of virtio; this is the one place that pairs
 * them (quiesce a blk device before saving it, un-quiesce it when the
 * source carries on, decode and restore on the destination).
 */
#ifndef DEVICES_VIRTIO_VIRTIO_MIG_H
#define DEVICES_VIRTIO_VIRTIO_MIG_H

#include <stdint.h>

#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "migration/hooks.h"

/* Per-device context the registry points at; must outlive the registry. */
struct virtio_mig {
    struct virtio_dev *dev;
    struct virtio_mmio *mmio;
    uint32_t instance;
    struct gmem *mem; /* the VM's guest memory, whose device write log the dirty_log hook drains */
};

/*
 * Fill `m` and register it with `reg` as instance `instance` (unique per
 * device type; the device manager uses the device's index).  Refuses
 * (-EINVAL) a device type without a section id.  0 or -errno with err.
 */
int virtio_mig_register(struct virtio_mig *m, struct virtio_dev *dev, struct virtio_mmio *mmio,
                        struct gmem *mem, uint32_t instance, struct mig_registry *reg,
                        struct errbuf *err) __must_check;

#endif /* DEVICES_VIRTIO_VIRTIO_MIG_H */
