/*
 * Whole-device save and restore in the VMSTATE-VIRTIO format (see
 * virtio_snapshot.h for the rules).  This file saves, and applies a restore
 * that virtio_snapshot_match.c has already checked and planned.
 *
 * Why here and not in each device: the common part (features, status,
 * config, queues, transport registers) is the same for every device and is
 * where an untrusted state could do the most harm (ring indices, queue
 * geometry), so it is restored in one place, in the order queue.h requires;
 * devices only save and load their own data through ops->save/load.
 */
#include "devices/virtio/virtio_snapshot_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define FAIL(err, ...) virtio_snapshot_fail(why, whylen, (err), __VA_ARGS__)

/* ---- save ---------------------------------------------------------------- */

static void save_queue(const struct virtq *vq, struct virtio_state_vq *v)
{
    v->size = vq->cfg.size;
    v->vector = VIRTIO_STATE_NO_VECTOR;
    v->enabled = vq->cfg.ready;
    v->desc_addr = vq->cfg.desc_gpa;
    v->driver_addr = vq->cfg.avail_gpa;
    v->device_addr = vq->cfg.used_gpa;
    v->ring = VIRTIO_STATE_RING_SPLIT;
    v->max_size_src = vq->max_size;
    v->last_avail_idx = vq->last_avail;
    v->used_idx = vq->used_idx;
    v->signalled_used =
        vq->signalled_used_valid ? vq->signalled_used : VIRTIO_STATE_SIGNALLED_UNKNOWN;
    /* Every popped chain is pushed exactly once, so on a split ring the chains in
     * flight are last_avail - used_idx.  Devices that hold chains say so in their
     * own record (net) or refuse to save (blk, until quiesced). */
    if (vq->last_avail == vq->used_idx)
        v->flags = VIRTIO_STATE_VQ_DRAINED;
}

/* The device's own data, as its type's record. */
static int save_record(struct virtio_dev *d, struct virtio_state *out, char *why, size_t whylen)
{
    const struct virtio_snapshot_type *ty = virtio_snapshot_type(d->ops->device_id);
    struct vstate_out o;
    int r;

    if (!d->ops->save)
        return 0;
    if (!ty)
        return FAIL(-EOPNOTSUPP, "%s: no device-specific record exists for device type %u", d->id,
                    d->ops->device_id);
    vstate_out_init(&o);
    r = d->ops->save(d, &o);
    if (r == -EBUSY) {
        r = FAIL(-EBUSY, "%s: requests in flight; quiesce the device before saving", d->id);
        goto out;
    }
    if (r < 0) {
        r = FAIL(r, "%s: the device could not save its own state: %s", d->id, strerror(-r));
        goto out;
    }
    out->dev_rec_type = ty->rec_type;
    if (!ty->carries_blob)
        goto out; /* blk: verify-only data, see virtio_snapshot.h */
    if (o.len > VIRTIO_STATE_MAX_DEV_BLOB) {
        r = FAIL(-E2BIG, "%s: own state of %zu bytes exceeds the %u-byte record", d->id, o.len,
                 VIRTIO_STATE_MAX_DEV_BLOB);
        goto out;
    }
    /* The state takes the buffer: virtio_state_free() releases it. */
    out->dev_blob = o.buf;
    out->dev_blob_len = (uint32_t)o.len;
    return 0;
out:
    vstate_out_free(&o);
    return r;
}

static int save_locked(struct virtio_dev *d, struct virtio_mmio *t, struct virtio_state *out,
                       char *why, size_t whylen)
{
    const struct virtio_dev_ops *ops = d->ops;
    struct virtio_mmio_regs regs;
    char reason[192];
    int r;

    if (d->transport != t)
        return FAIL(-EINVAL, "%s: not the device's transport", d->id);
    if (ops->unmigratable)
        return FAIL(-EOPNOTSUPP, "%s: cannot be migrated: %s", d->id, ops->unmigratable);

    snprintf(out->id, sizeof(out->id), "%s", d->id);
    out->device_id = ops->device_id;
    out->transport = VIRTIO_STATE_TRANSPORT_MMIO;
    out->num_queues = ops->num_queues;
    out->mmio_base = virtio_mmio_base(t);
    out->mmio_len = VIRTIO_MMIO_WINDOW;
    out->irq = virtio_mmio_gsi(t);

    /* What the transport offers, i.e. what the guest read from DeviceFeatures. */
    out->has_dev_features = true;
    out->dev_feat.n = 1;
    out->dev_feat.w[0] = d->host_features & ~VIRTIO_F_NEVER_OFFERED;
    out->drv_feat.n = 1;
    out->drv_feat.w[0] = d->guest_features;
    out->status = d->status;

    out->config_generation = d->config_generation;
    out->config_len = ops->config_size;
    if (ops->config_size)
        ops->config_read(d, 0, out->config, ops->config_size);

    virtio_mmio_get_regs_locked(t, &regs);
    out->mmio.dev_features_sel = regs.device_features_sel;
    out->mmio.drv_features_sel = regs.driver_features_sel;
    out->mmio.queue_sel = regs.queue_sel;
    out->mmio.interrupt_status = regs.interrupt_status;
    out->mmio.shm_sel = 0; /* no shared memory regions: any selector reads the same */

    for (unsigned q = 0; q < ops->num_queues; q++)
        save_queue(&d->vq[q], &out->vq[q]);

    if ((r = save_record(d, out, why, whylen)))
        return r;

    /* Never hand out a state the destination would refuse: say why here instead. */
    if (virtio_state_check(out, reason, sizeof(reason)) < 0)
        return FAIL(-EINVAL, "%s: the guest left the device in a state that cannot be restored: %s",
                    d->id, reason);
    return 0;
}

int virtio_snapshot_save(struct virtio_dev *d, struct virtio_mmio *t, uint32_t instance_id,
                         struct virtio_state *out, char *why, size_t whylen)
{
    int r;

    if (!out)
        return FAIL(-EINVAL, "virtio snapshot: no state to save into");
    memset(out, 0, sizeof(*out));
    if (!d || !t)
        return FAIL(-EINVAL, "virtio snapshot: no device or transport");
    out->instance_id = instance_id;
    pthread_mutex_lock(&d->lock);
    r = save_locked(d, t, out, why, whylen);
    pthread_mutex_unlock(&d->lock);
    if (r < 0)
        virtio_state_free(out);
    return r;
}

/* ---- restore ------------------------------------------------------------- */

/*
 * A step after the device was touched failed: leave it needing a reset.
 * virtio_dev_fail() breaks the queues and has the transport raise the
 * config interrupt (which it skips at status 0, hence the status first).
 */
static int apply_failed(struct virtio_dev *d, const struct virtio_state *s, char *why,
                        size_t whylen, const char *fmt, ...) __printf(5, 6);
static int apply_failed(struct virtio_dev *d, const struct virtio_state *s, char *why,
                        size_t whylen, const char *fmt, ...)
{
    char msg[192];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!d->status)
        d->status = s->status;
    virtio_dev_fail(d, msg);
    d->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
    return FAIL(-EIO, "%s: restore failed, device needs reset: %s", d->id, msg);
}

static int load_record(struct virtio_dev *d, const struct virtio_state *s)
{
    struct vstate_in in;

    vstate_in_init(&in, s->dev_blob, s->dev_blob_len);
    int r = d->ops->load(d, &in);
    if (r == 0 && in.pos != in.len)
        r = -EBADMSG; /* the record is one section, nothing after it */
    return r;
}

static void set_queue(struct virtq *vq, const struct virtio_state_vq *v, uint16_t last_avail)
{
    /* queue.h: reset, then configuration and indices, then activate. */
    virtq_reset(vq);
    vq->cfg.size = v->size;
    vq->cfg.ready = v->enabled;
    vq->cfg.desc_gpa = v->desc_addr;
    vq->cfg.avail_gpa = v->driver_addr;
    vq->cfg.used_gpa = v->device_addr;
    vq->last_avail = last_avail;
    vq->used_idx = v->used_idx;
}

/* EVENT_IDX bookkeeping; after virtq_activate(), which forgets it. */
static void set_signalled(struct virtq *vq, const struct virtio_state_vq *v)
{
    vq->signalled_used_valid = v->signalled_used != VIRTIO_STATE_SIGNALLED_UNKNOWN;
    vq->signalled_used = vq->signalled_used_valid ? (uint16_t)v->signalled_used : 0;
}

static int apply(struct virtio_dev *d, struct virtio_mmio *t, const struct virtio_state *s,
                 const struct virtio_snapshot_plan *p, char *why, size_t whylen)
{
    const struct virtio_dev_ops *ops = d->ops;
    int r;

    /* Validated again by the transport, and changes nothing if refused. */
    if (virtio_mmio_set_regs_locked(t, &p->regs) < 0)
        return FAIL(-EINVAL, "%s: transport registers out of range", d->id);

    /* From here on the device changes.  First what Status = 0 does to it. */
    ops->reset(d);
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        virtq_reset(&d->vq[q]);
    d->guest_features = 0;
    d->status = 0;

    if (p->load_blob && (r = load_record(d, s)) < 0)
        return apply_failed(d, s, why, whylen, "the device refused its %s record: %s",
                            virtio_state_type_name(s->dev_rec_type), strerror(-r));

    d->guest_features = s->drv_feat.n ? s->drv_feat.w[0] : 0;
    d->status = s->status;
    d->config_generation = s->config_generation;
    for (unsigned q = 0; q < s->num_queues; q++)
        set_queue(&d->vq[q], &s->vq[q], p->last_avail[q]);

    if (p->live) {
        bool event_idx = virtio_has_feature(d, VIRTIO_F_EVENT_IDX);
        bool indirect = virtio_has_feature(d, VIRTIO_F_INDIRECT_DESC);
        for (unsigned q = 0; q < s->num_queues; q++)
            if (d->vq[q].cfg.ready && virtq_activate(&d->vq[q], d->mem, event_idx, indirect) < 0)
                return apply_failed(d, s, why, whylen, "queue %u rejected at activation", q);
    }
    for (unsigned q = 0; q < s->num_queues; q++)
        set_signalled(&d->vq[q], &s->vq[q]);
    /* Backends re-arm (polling, self-kicks) as at DRIVER_OK. */
    if (p->live && (r = ops->activate(d)) < 0)
        return apply_failed(d, s, why, whylen, "device activation failed: %s", strerror(-r));

    /* Resume (docs/VIRTIO_STATE.md 10, step 4): a kick and an interrupt lost
     * around the switch are made up for; spurious ones are harmless. */
    if (p->live) {
        for (unsigned q = 0; q < s->num_queues; q++)
            virtio_mmio_kick_locked(t, (uint16_t)q);
        d->tops->notify_used(d);
    } else {
        virtio_mmio_repulse_locked(t);
    }
    return 0;
}

int virtio_snapshot_load(struct virtio_dev *d, struct virtio_mmio *t, const struct virtio_state *s,
                         char *why, size_t whylen)
{
    struct virtio_snapshot_plan plan;
    char reason[192];
    int r;

    if (!d || !t || !s)
        return FAIL(-EINVAL, "virtio snapshot: no device, transport or state");
    /* The state alone first: it says nothing about this device yet. */
    if (virtio_state_check(s, reason, sizeof(reason)) < 0)
        return FAIL(-EINVAL, "%s: invalid state: %s", d->id, reason);

    pthread_mutex_lock(&d->lock);
    if (d->transport != t)
        r = FAIL(-EINVAL, "%s: not the device's transport", d->id);
    else if ((r = virtio_snapshot_match(d, t, s, &plan, why, whylen)) == 0)
        r = apply(d, t, s, &plan, why, whylen);
    pthread_mutex_unlock(&d->lock);
    return r;
}
