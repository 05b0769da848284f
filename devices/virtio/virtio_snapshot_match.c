/*
 * The checking half of virtio_snapshot_load(): does an untrusted device
 * state fit this device, and how is it to be applied?
 *
 * Why separate: a restore must refuse before it changes anything, so every
 * decision (which queues run, where they resume, whether the device record
 * is loaded) is taken here, from the state, the device and guest memory,
 * and written into a plan that the applying half only carries out.  Guest
 * memory is read through checked gmem calls, once per value.
 */
#include "devices/virtio/virtio_snapshot_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/blk.h"
#include "devices/virtio/net.h"

#define NOT_LIVE (VIRTIO_STATUS_FAILED | VIRTIO_STATUS_DEVICE_NEEDS_RESET)
/* mmio feature selectors: 64 feature bits are words 0 and 1; the transport
 * stores every larger selector as 2, since they all read as 0. */
#define FEATURE_WORDS ((uint32_t)(sizeof(uint64_t) / sizeof(uint32_t)))

/* Split ring layout (virtio 1.2 section 2.7): what virtq_activate() maps. */
#define DESC_BYTES(n)  (16ULL * (n))
#define AVAIL_BYTES(n) (6ULL + 2ULL * (n))
#define USED_BYTES(n)  (6ULL + 8ULL * (n))
#define RING_IDX_OFF   2 /* avail->idx and used->idx */
#define AVAIL_RING(i)  (4ULL + 2ULL * (i))

static const struct virtio_snapshot_type types[] = {
    {VIRTIO_ID_NET, "net", VIRTIO_STATE_T_NET_STATE, true, true, 0},
    {VIRTIO_ID_BLOCK, "blk", VIRTIO_STATE_T_BLK_DEV_STATE, true, false,
     VIRTIO_BIT(VIRTIO_BLK_F_RO)},
    {VIRTIO_ID_CONSOLE, "console", VIRTIO_STATE_T_CONSOLE_STATE, true, false, 0},
    {VIRTIO_ID_RNG, "rng", VIRTIO_STATE_T_RNG_STATE, true, false, 0},
    {VIRTIO_ID_BALLOON, "balloon", VIRTIO_STATE_T_BALLOON_STATE, true, true, 0},
    /* The rx chain vsock may hold (popped, nothing written) is the only one in
     * flight and the last popped: the queue rewinds onto it. */
    {VIRTIO_ID_VSOCK, "vsock", VIRTIO_STATE_T_VSOCK_STATE, true, false, 0},
};

const struct virtio_snapshot_type *virtio_snapshot_type(uint32_t device_id)
{
    for (size_t i = 0; i < ARRAY_SIZE(types); i++)
        if (types[i].device_id == device_id)
            return &types[i];
    return NULL;
}

int virtio_snapshot_fail(char *why, size_t whylen, int err, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return err;
}

#define FAIL(err, ...) virtio_snapshot_fail(why, whylen, (err), __VA_ARGS__)

static const char *type_name(uint32_t device_id, char *buf, size_t len)
{
    const struct virtio_snapshot_type *t = virtio_snapshot_type(device_id);
    if (t)
        return t->name;
    snprintf(buf, len, "type-%u", device_id);
    return buf;
}

/* Word 0 of a feature record; the higher words must be empty (64-bit devices). */
static int low_word(const struct virtio_dev *d, const struct virtio_state_features *f,
                    const char *what, uint64_t *w0, char *why, size_t whylen)
{
    for (unsigned i = 1; i < f->n && i < VIRTIO_STATE_MAX_FEATURE_WORDS; i++)
        if (f->w[i])
            return FAIL(-EINVAL,
                        "%s: %s features above bit 63 (word %u: 0x%llx): this device has 64", d->id,
                        what, i, (unsigned long long)f->w[i]);
    *w0 = f->n ? f->w[0] : 0;
    return 0;
}

static int match_features(const struct virtio_dev *d, const struct virtio_state *s,
                          const struct virtio_snapshot_type *ty, char *why, size_t whylen)
{
    uint64_t offered = d->host_features & ~VIRTIO_F_NEVER_OFFERED;
    uint64_t exact = ty ? ty->exact_features : 0;
    uint64_t acked = 0, src = 0;
    int r;

    if ((r = low_word(d, &s->drv_feat, "acked", &acked, why, whylen)))
        return r;
    if (acked & ~offered)
        return FAIL(-EINVAL, "%s: the guest acked features 0x%llx that this device does not offer",
                    d->id, (unsigned long long)(acked & ~offered));
    if (!s->has_dev_features) {
        /* Without the source's offer, the acked set stands in for the restricting bits. */
        if ((offered ^ acked) & exact)
            return FAIL(-EINVAL, "%s: restricting features 0x%llx differ from the acked set", d->id,
                        (unsigned long long)((offered ^ acked) & exact));
        return 0;
    }
    if ((r = low_word(d, &s->dev_feat, "offered", &src, why, whylen)))
        return r;
    /* A driver that resets re-reads DeviceFeatures: nothing may disappear. */
    if (src & ~offered)
        return FAIL(-EINVAL,
                    "%s: this device does not offer features 0x%llx that the source offered", d->id,
                    (unsigned long long)(src & ~offered));
    if ((offered ^ src) & exact)
        return FAIL(-EINVAL,
                    "%s: this device offers restricting features 0x%llx (e.g. read-only) "
                    "that the source did not",
                    d->id, (unsigned long long)((offered ^ src) & exact));
    return 0;
}

static int match_config(struct virtio_dev *d, const struct virtio_state *s, char *why,
                        size_t whylen)
{
    const struct virtio_dev_ops *ops = d->ops;
    uint8_t cur[VIRTIO_MAX_CONFIG];

    if (s->config_len != ops->config_size)
        return FAIL(-EINVAL, "%s: config space of %u bytes, this device has %u", d->id,
                    s->config_len, ops->config_size);
    /* A config space the driver cannot write must be what the guest already read:
     * capacity and limits of a disk, a MAC.  (A device with writable config fields
     * carries them in its own record and checks the rest in ops->load.) */
    if (ops->config_write || !ops->config_size)
        return 0;
    ops->config_read(d, 0, cur, ops->config_size);
    /* vsock's config space is the guest CID: say so in the operator's terms. */
    if (ops->device_id == VIRTIO_ID_VSOCK && ops->config_size == 8 && memcmp(cur, s->config, 8))
        return FAIL(-EINVAL, "%s: the state is for guest CID %llu, this device has CID %llu", d->id,
                    (unsigned long long)le64_get(s->config), (unsigned long long)le64_get(cur));
    for (uint32_t i = 0; i < ops->config_size; i++)
        if (cur[i] != s->config[i])
            return FAIL(-EINVAL,
                        "%s: read-only config byte %u is 0x%02x here, 0x%02x in the state "
                        "(another disk, MAC or limits)",
                        d->id, i, cur[i], s->config[i]);
    return 0;
}

static int match_record(struct virtio_dev *d, const struct virtio_state *s,
                        struct virtio_snapshot_plan *p, char *why, size_t whylen)
{
    const struct virtio_snapshot_type *ty = p->type;

    if (!d->ops->load)
        return 0; /* nothing of its own to restore; a record would be ignored */
    if (!ty)
        return FAIL(-EOPNOTSUPP, "%s: no device-specific record exists for device type %u", d->id,
                    d->ops->device_id);
    if (!ty->carries_blob)
        return 0; /* verify-only data: checked through config and features */
    if (s->dev_rec_type != ty->rec_type || s->dev_blob_len == 0)
        return FAIL(-EOPNOTSUPP,
                    "%s: the state has no %s record: the device's own state would be "
                    "lost",
                    d->id, virtio_state_type_name(ty->rec_type));
    p->load_blob = true;
    return 0;
}

static int read_idx(const struct gmem *mem, gpa_t ring, uint16_t *idx)
{
    uint8_t b[2];
    int r = gmem_read(mem, ring + RING_IDX_OFF, b, sizeof(b));
    *idx = le16_get(b);
    return r;
}

/*
 * An in-flight list can be replayed only by popping again: accept it when it
 * names exactly the avail entries [used_idx, last_avail_idx) in pop order,
 * i.e. the device completed in order, and resume at used_idx.
 */
static int match_inflight(struct virtio_dev *d, const struct virtio_state *s, unsigned q,
                          struct virtio_snapshot_plan *p, char *why, size_t whylen)
{
    const struct virtio_state_vq *v = &s->vq[q];

    if (!v->n_inflight)
        return 0;
    if (!d->mem || !gmem_range_ok(d->mem, v->driver_addr, AVAIL_BYTES(v->size)))
        return FAIL(-EFAULT, "%s vq %u: available ring at 0x%llx is not in guest RAM", d->id, q,
                    (unsigned long long)v->driver_addr);
    for (unsigned i = 0; i < v->n_inflight; i++) {
        uint16_t slot = (uint16_t)((uint16_t)(v->used_idx + i) % v->size);
        uint8_t b[2];
        if (gmem_read(d->mem, v->driver_addr + AVAIL_RING(slot), b, sizeof(b)) < 0)
            return FAIL(-EFAULT, "%s vq %u: available ring unreadable", d->id, q);
        if (le16_get(b) != v->inflight[i].head)
            return FAIL(-EOPNOTSUPP,
                        "%s vq %u: in-flight head %u is not avail entry %u (head %u): completed "
                        "out of order, which this device cannot replay",
                        d->id, q, v->inflight[i].head, (uint16_t)(v->used_idx + i), le16_get(b));
    }
    p->last_avail[q] = v->used_idx;
    return 0;
}

/* Queue q of a live device will run: its rings must be in RAM; read the guest's indices. */
static int match_running(struct virtio_dev *d, struct virtio_state *c, unsigned q,
                         const struct virtio_snapshot_plan *p, char *why, size_t whylen)
{
    struct virtio_state_vq *v = &c->vq[q];
    uint16_t n = v->size;

    if (!d->mem || !gmem_range_ok(d->mem, v->desc_addr, DESC_BYTES(n)) ||
        !gmem_range_ok(d->mem, v->driver_addr, AVAIL_BYTES(n)) ||
        !gmem_range_ok(d->mem, v->device_addr, USED_BYTES(n)))
        return FAIL(-EFAULT,
                    "%s vq %u: rings at 0x%llx/0x%llx/0x%llx (size %u) are not in guest RAM", d->id,
                    q, (unsigned long long)v->desc_addr, (unsigned long long)v->driver_addr,
                    (unsigned long long)v->device_addr, n);
    if (read_idx(d->mem, v->driver_addr, &v->guest_avail_idx) < 0 ||
        read_idx(d->mem, v->device_addr, &v->guest_used_idx) < 0)
        return FAIL(-EFAULT, "%s vq %u: ring indices unreadable", d->id, q);
    v->guest_idx_valid = true;
    /* virtio_state_check() bounds the guest against last_avail_idx; after a rewind
     * the device pops from used_idx, and may not find more than a ring there either. */
    uint16_t ahead = (uint16_t)(v->guest_avail_idx - p->last_avail[q]);
    if (p->last_avail[q] != v->last_avail_idx && ahead > n)
        return FAIL(-EINVAL, "%s vq %u: guest avail idx %u is %u ahead of the rewound index %u",
                    d->id, q, v->guest_avail_idx, ahead, p->last_avail[q]);
    return 0;
}

/*
 * virtio-net's record names the RX chains that were popped but not used at
 * save time (held for a partly delivered frame); the destination pushes
 * each back with length 0 and resumes popping at last_avail.  So the list
 * must name exactly the chains in flight on the resumed queue, each once
 * and each a head of that ring: otherwise a head would be pushed twice, a
 * chain never, or an index past the ring reach the driver.
 */
static int match_net_returns(struct virtio_dev *d, const struct virtio_state *s,
                             const struct virtio_snapshot_plan *p, char *why, size_t whylen)
{
    const unsigned q = VIRTIO_NET_RXQ;
    uint16_t heads[VIRTIO_NET_QUEUE_SIZE]; /* the record holds at most this many */
    uint8_t seen[VIRTIO_STATE_QUEUE_SIZE_LIMIT / 8];

    if (!p->load_blob || s->num_queues <= q)
        return 0;
    int n = virtio_net_record_returns(s->dev_blob, s->dev_blob_len, heads, ARRAY_SIZE(heads));
    if (n < 0)
        return FAIL(-EINVAL, "%s: the net record does not parse: %s", d->id, strerror(-n));
    const struct virtio_state_vq *v = &s->vq[q];
    uint16_t inflight = (uint16_t)(p->last_avail[q] - v->used_idx);
    if ((unsigned)n != inflight)
        return FAIL(-EINVAL, "%s vq %u: the record returns %d RX heads, %u chains are in flight",
                    d->id, q, n, inflight);
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < n; i++) {
        uint16_t h = heads[i];
        if (h >= v->size)
            return FAIL(-EINVAL, "%s vq %u: returned RX head %u is outside the ring (size %u)",
                        d->id, q, h, v->size);
        if (seen[h / 8] & (1u << (h % 8)))
            return FAIL(-EINVAL, "%s vq %u: returned RX head %u is listed twice", d->id, q, h);
        seen[h / 8] |= (uint8_t)(1u << (h % 8));
    }
    return 0;
}

static int match_queues(struct virtio_dev *d, struct virtio_state *c,
                        struct virtio_snapshot_plan *p, char *why, size_t whylen)
{
    bool owns = p->type && p->type->record_owns_inuse;
    int r;

    for (unsigned q = 0; q < c->num_queues; q++) {
        const struct virtio_state_vq *v = &c->vq[q];
        uint16_t inuse = (uint16_t)(v->last_avail_idx - v->used_idx);

        if (v->ring != VIRTIO_STATE_RING_SPLIT)
            return FAIL(-EOPNOTSUPP, "%s vq %u: packed rings are not supported", d->id, q);
        if (v->size > d->vq[q].max_size)
            return FAIL(-EINVAL, "%s vq %u: size %u exceeds this device's maximum %u", d->id, q,
                        v->size, d->vq[q].max_size);
        p->last_avail[q] = v->last_avail_idx;
        if (v->flags & VIRTIO_STATE_VQ_INFLIGHT_VALID) {
            if ((r = match_inflight(d, c, q, p, why, whylen)))
                return r;
        } else if (!(v->flags & VIRTIO_STATE_VQ_DRAINED) && inuse && !owns) {
            /* Nobody knows which chains were in flight: rewind (docs/VIRTIO_STATE.md 10). */
            p->last_avail[q] = v->used_idx;
        }
        if (p->live && v->enabled && (r = match_running(d, c, q, p, why, whylen)))
            return r;
    }
    return 0;
}

static void plan_regs(const struct virtio_dev *d, const struct virtio_state *s,
                      struct virtio_snapshot_plan *p)
{
    /* Larger selectors behave like the saturated value (they read as 0 / no queue). */
    p->regs.device_features_sel = MIN(s->mmio.dev_features_sel, FEATURE_WORDS);
    p->regs.driver_features_sel = MIN(s->mmio.drv_features_sel, FEATURE_WORDS);
    p->regs.queue_sel = MIN(s->mmio.queue_sel, (uint32_t)d->ops->num_queues);
    p->regs.interrupt_status = s->mmio.interrupt_status;
}

int virtio_snapshot_match(struct virtio_dev *d, struct virtio_mmio *t, const struct virtio_state *s,
                          struct virtio_snapshot_plan *p, char *why, size_t whylen)
{
    const struct virtio_dev_ops *ops = d->ops;
    char a[16], b[16];
    int r;

    memset(p, 0, sizeof(*p));
    if (ops->unmigratable)
        return FAIL(-EOPNOTSUPP, "%s: this device cannot take a migrated state: %s", d->id,
                    ops->unmigratable);
    if (s->device_id != ops->device_id)
        return FAIL(-EINVAL, "%s: the state is of a %s device, this is a %s device", d->id,
                    type_name(s->device_id, a, sizeof(a)), type_name(ops->device_id, b, sizeof(b)));
    if (s->num_queues != ops->num_queues)
        return FAIL(-EINVAL, "%s: the state has %u queues, this device %u", d->id, s->num_queues,
                    ops->num_queues);
    if (s->transport != VIRTIO_STATE_TRANSPORT_MMIO || s->mmio_base != virtio_mmio_base(t) ||
        s->mmio_len != VIRTIO_MMIO_WINDOW || s->irq != virtio_mmio_gsi(t))
        return FAIL(-EINVAL,
                    "%s: the state is for window 0x%llx+0x%x on GSI %u, this device is at 0x%llx "
                    "on GSI %u",
                    d->id, (unsigned long long)s->mmio_base, s->mmio_len, s->irq,
                    (unsigned long long)virtio_mmio_base(t), virtio_mmio_gsi(t));
    p->type = virtio_snapshot_type(ops->device_id);
    p->live = (s->status & VIRTIO_STATUS_DRIVER_OK) && !(s->status & NOT_LIVE);
    if ((r = match_features(d, s, p->type, why, whylen)) || (r = match_config(d, s, why, whylen)) ||
        (r = match_record(d, s, p, why, whylen)))
        return r;

    /* A private copy: the guest's indices go into it for virtio_state_check(). */
    struct virtio_state *c = malloc(sizeof(*c));
    if (!c)
        return FAIL(-ENOMEM, "%s: out of memory", d->id);
    *c = *s;
    r = match_queues(d, c, p, why, whylen);
    if (r == 0 && ops->device_id == VIRTIO_ID_NET)
        r = match_net_returns(d, c, p, why, whylen);
    if (r == 0 && virtio_state_check(c, why, whylen) < 0)
        r = -EINVAL;
    free(c); /* shallow: the in-flight lists and blobs are still s's */
    if (r == 0)
        plan_regs(d, s, p);
    return r;
}
