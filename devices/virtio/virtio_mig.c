/*
 * virtio devices in the migration registry (virtio_mig.h): hooks that save
 * a device with virtio_snapshot_save() and encode it as a one-device
 * VMSTATE-VIRTIO stream, and decode and restore it on the other side.
 */
#include "devices/virtio/virtio_mig.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/virtio_dp.h"
#include "devices/virtio/virtio_snapshot.h"
#include "migration/virtio_state.h"
#include "vmm/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define VIRTIO_MIG_VERSION  1U   /* the section wraps a VMSTATE-VIRTIO stream, which has its own */
#define VIRTIO_MIG_DRAIN_MS 5000 /* how long an external data plane may take to finish */

static const char *vmig_cannot(void *opaque)
{
    struct virtio_mig *m = opaque;
    return m->dev->ops->unmigratable;
}

static void set_paused(struct virtio_mig *m, bool paused)
{
    struct virtio_dev *d = m->dev;
    pthread_mutex_lock(&d->lock);
    for (unsigned q = 0; q < d->ops->num_queues; q++)
        d->vq[q].paused = paused;
    pthread_mutex_unlock(&d->lock);
    /* Pick up what the guest queued meanwhile, on the thread that serves
     * the queue (its back end's syscalls are that thread's, not ours). */
    for (unsigned q = 0; !paused && q < d->ops->num_queues; q++)
        if (d->vq[q].active && !virtio_mmio_kick_async(m->mmio, (uint16_t)q)) {
            pthread_mutex_lock(&d->lock);
            virtio_mmio_kick_locked(m->mmio, (uint16_t)q);
            pthread_mutex_unlock(&d->lock);
        }
}

static int vmig_quiesce(void *opaque)
{
    struct virtio_mig *m = opaque;
    if (virtio_dp_is(m->dev))
        return virtio_dp_quiesce(m->dev, VIRTIO_MIG_DRAIN_MS);
    set_paused(m, true);
    return m->dev->ops->device_id == VIRTIO_ID_BLOCK ? virtio_blk_quiesce(m->dev) : 0;
}

static void vmig_resume(void *opaque)
{
    struct virtio_mig *m = opaque;
    if (virtio_dp_is(m->dev)) {
        virtio_dp_resume(m->dev);
        return;
    }
    if (m->dev->ops->device_id == VIRTIO_ID_BLOCK)
        virtio_blk_resume(m->dev);
    set_paused(m, false);
}

/*
 * wisp's own device writes come from the guest-memory write log.  An
 * external data plane writes guest memory from another process or the
 * kernel, which neither that log nor KVM's sees: the conservative rule
 * (docs/VHOST.md, "Migration") sends every page again once it has stopped.
 */
static int vmig_dirty_log(void *opaque, mig_dirty_fn mark, void *ctx)
{
    struct virtio_mig *m = opaque;
    int e = gmem_log_drain(m->mem, mark, ctx);
    if (e == 0 && virtio_dp_is(m->dev) && virtio_dp_take_dirty_all(m->dev))
        for (unsigned i = 0; e == 0 && i < m->mem->nregions; i++)
            e = mark(ctx, m->mem->regions[i].gpa, m->mem->regions[i].size);
    return e;
}

static int vmig_save(void *opaque, struct vstate_out *out)
{
    struct virtio_mig *m = opaque;
    struct virtio_state s;
    char why[160] = "";
    int e = virtio_snapshot_save(m->dev, m->mmio, m->instance, &s, why, sizeof(why));
    if (e < 0) {
        log_error("snapshot: virtio %s: %s", m->dev->id, why[0] ? why : strerror(-e));
        return e;
    }
    e = virtio_state_encode(&s, out);
    virtio_state_free(&s);
    return e;
}

static int vmig_load(void *opaque, uint16_t version, const uint8_t *buf, size_t len,
                     struct errbuf *err)
{
    struct virtio_mig *m = opaque;
    (void)version;
    struct virtio_state s;
    unsigned n = 0;
    char why[160] = "";
    int e = virtio_state_decode(buf, len, &s, 1, &n, why, sizeof(why));
    if (e == 0 && n != 1) {
        virtio_state_free(&s);
        e = -EBADMSG;
        snprintf(why, sizeof(why), "%u devices in one device's state", n);
    }
    if (e < 0)
        return err_set(err, WISP_EXIT_USAGE, -e, "virtio %s: %s", m->dev->id, why);
    e = virtio_snapshot_load(m->dev, m->mmio, &s, why, sizeof(why));
    virtio_state_free(&s);
    if (e < 0)
        return err_set(err, WISP_EXIT_USAGE, -e, "virtio %s: %s", m->dev->id, why);
    return 0;
}

#define VIRTIO_OPS(name, id, str)                                                                  \
    static const struct mig_device_ops name = {                                                    \
        .type = str,                                                                               \
        .section_id = id,                                                                          \
        .version = VIRTIO_MIG_VERSION,                                                             \
        .min_version = VIRTIO_MIG_VERSION,                                                         \
        .cannot_migrate = vmig_cannot,                                                             \
        .save = vmig_save,                                                                         \
        .load = vmig_load,                                                                         \
        .quiesce = vmig_quiesce,                                                                   \
        .resume = vmig_resume,                                                                     \
        .dirty_log = vmig_dirty_log,                                                               \
    }
VIRTIO_OPS(net_ops, MIG_SEC_VIRTIO_NET, "virtio-net");
VIRTIO_OPS(blk_ops, MIG_SEC_VIRTIO_BLK, "virtio-blk");
VIRTIO_OPS(console_ops, MIG_SEC_VIRTIO_CONSOLE, "virtio-console");
VIRTIO_OPS(rng_ops, MIG_SEC_VIRTIO_RNG, "virtio-rng");
VIRTIO_OPS(balloon_ops, MIG_SEC_VIRTIO_BALLOON, "virtio-balloon");
VIRTIO_OPS(vsock_ops, MIG_SEC_VIRTIO_VSOCK, "virtio-vsock");
VIRTIO_OPS(fs_ops, MIG_SEC_VIRTIO_FS, "virtio-fs");

int virtio_mig_register(struct virtio_mig *m, struct virtio_dev *dev, struct virtio_mmio *mmio,
                        struct gmem *mem, uint32_t instance, struct mig_registry *reg,
                        struct errbuf *err)
{
    const struct mig_device_ops *ops;
    switch (dev->ops->device_id) {
    case VIRTIO_ID_NET:
        ops = &net_ops;
        break;
    case VIRTIO_ID_BLOCK:
        ops = &blk_ops;
        break;
    case VIRTIO_ID_CONSOLE:
        ops = &console_ops;
        break;
    case VIRTIO_ID_RNG:
        ops = &rng_ops;
        break;
    case VIRTIO_ID_BALLOON:
        ops = &balloon_ops;
        break;
    case VIRTIO_ID_VSOCK:
        ops = &vsock_ops;
        break;
    case VIRTIO_ID_FS:
        ops = &fs_ops;
        break;
    default:
        return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                       "virtio device %s (type %u) has no migration section", dev->id,
                       dev->ops->device_id);
    }
    uint8_t plane = MIG_PLANE_BUILTIN;
    if (virtio_dp_is(dev))
        plane = strcmp(virtio_dp_kind(dev), "vDPA") ? MIG_PLANE_VHOST_USER : MIG_PLANE_VDPA;
    *m = (struct virtio_mig){.dev = dev, .mmio = mmio, .instance = instance, .mem = mem};
    return mig_registry_add(reg, ops, m, instance, plane, MIG_DEV_F_PORTABLE, err);
}
