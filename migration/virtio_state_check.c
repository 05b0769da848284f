/*
 * Semantic validation of decoded (or about to be encoded) virtio device
 * state.  A stream can be perfectly framed and still describe a device no
 * driver could have produced: features the device never offered, DRIVER_OK
 * without FEATURES_OK, rings at address 0, more buffers in flight than the
 * ring holds.  Restoring such a state would hand a hostile peer control
 * over what our device believes, so every rule a conforming device and
 * transport keep is checked here before anything is applied
 * (docs/VIRTIO_STATE.md, "Validation").
 */
#include "migration/virtio_state.h"

#include <errno.h>
#include <string.h>

#include "migration/virtio_state_wire.h"

#define STATUS_KNOWN                                                                               \
    (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK |                  \
     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATE_STATUS_SUSPEND | VIRTIO_STATUS_DEVICE_NEEDS_RESET |  \
     VIRTIO_STATUS_FAILED)

/* mmio feature selectors pick 32-bit halves of the (at most 16) 64-bit words. */
#define MAX_FEATURES_SEL (2 * VIRTIO_STATE_MAX_FEATURE_WORDS)

static uint64_t word(const struct virtio_state_features *f, unsigned i)
{
    return i < f->n ? f->w[i] : 0;
}

static bool has_bit(const struct virtio_state_features *f, unsigned bit)
{
    return (word(f, bit / 64) >> (bit % 64)) & 1;
}

static int check_features(const struct virtio_state *s, char *why, size_t whylen)
{
    const uint64_t vhost_private =
        VIRTIO_BIT(VIRTIO_STATE_VHOST_F_LOG_ALL) | VIRTIO_BIT(VIRTIO_STATE_VHOST_F_PROTOCOL);

    if (s->has_dev_features) {
        for (unsigned i = 0; i < s->drv_feat.n; i++) {
            uint64_t extra = s->drv_feat.w[i] & ~word(&s->dev_feat, i);
            if (extra)
                return virtio_state_fail(why, whylen, -EINVAL,
                                         "%s: acked features not offered (word %u, bits 0x%llx)",
                                         s->id, i, (unsigned long long)extra);
        }
    }
    /* vhost-private bits are never the guest's and must be stripped before saving. */
    if (word(&s->drv_feat, 0) & vhost_private)
        return virtio_state_fail(why, whylen, -EINVAL, "%s: guest acked vhost-private features",
                                 s->id);
    if (s->has_backend_features && (word(&s->backend_feat, 0) & vhost_private))
        return virtio_state_fail(why, whylen, -EINVAL,
                                 "%s: BACKEND_FEATURES carries vhost-private bits", s->id);
    return 0;
}

static int check_status(const struct virtio_state *s, char *why, size_t whylen)
{
    uint8_t st = s->status;

    if (st & ~STATUS_KNOWN)
        return virtio_state_fail(why, whylen, -EINVAL, "%s: unknown status bits 0x%x", s->id,
                                 st & ~STATUS_KNOWN);
    if ((st & VIRTIO_STATUS_DRIVER) && !(st & VIRTIO_STATUS_ACKNOWLEDGE))
        return virtio_state_fail(why, whylen, -EINVAL, "%s: DRIVER without ACKNOWLEDGE", s->id);
    if ((st & VIRTIO_STATUS_FEATURES_OK) && !(st & VIRTIO_STATUS_DRIVER))
        return virtio_state_fail(why, whylen, -EINVAL, "%s: FEATURES_OK without DRIVER", s->id);
    if ((st & VIRTIO_STATUS_DRIVER_OK) && !(st & VIRTIO_STATUS_FEATURES_OK))
        return virtio_state_fail(why, whylen, -EINVAL, "%s: DRIVER_OK without FEATURES_OK", s->id);
    if ((st & VIRTIO_STATUS_FEATURES_OK) && !has_bit(&s->drv_feat, VIRTIO_F_VERSION_1))
        return virtio_state_fail(why, whylen, -EINVAL, "%s: FEATURES_OK without VERSION_1 acked",
                                 s->id);
    if ((st & VIRTIO_STATE_STATUS_SUSPEND) &&
        (!(st & VIRTIO_STATUS_FEATURES_OK) || !has_bit(&s->drv_feat, VIRTIO_STATE_F_SUSPEND)))
        return virtio_state_fail(why, whylen, -EINVAL,
                                 "%s: SUSPEND without FEATURES_OK and VIRTIO_F_SUSPEND", s->id);
    return 0;
}

static int check_transport(const struct virtio_state *s, char *why, size_t whylen)
{
    const struct virtio_state_mmio *m = &s->mmio;
    uint64_t end;

    if (s->device_id == 0)
        return virtio_state_fail(why, whylen, -EINVAL, "%s: device id 0 (empty slot)", s->id);
    if (s->transport != VIRTIO_STATE_TRANSPORT_MMIO)
        return virtio_state_fail(why, whylen, -EINVAL,
                                 "%s: transport %u is not supported (mmio "
                                 "only)",
                                 s->id, s->transport);
    if (!range_end(s->mmio_base, s->mmio_len, &end) ||
        s->mmio_len < VIRTIO_STATE_MMIO_REGS_END + s->config_len)
        return virtio_state_fail(why, whylen, -EINVAL,
                                 "%s: MMIO window 0x%llx+0x%x cannot hold %u config bytes", s->id,
                                 (unsigned long long)s->mmio_base, s->mmio_len, s->config_len);
    if (s->irq == 0)
        return virtio_state_fail(why, whylen, -EINVAL, "%s: irq 0", s->id);
    if (m->interrupt_status & ~VIRTIO_STATE_MMIO_INT_MASK)
        return virtio_state_fail(why, whylen, -EINVAL,
                                 "%s: InterruptStatus 0x%x has bits "
                                 "beyond 0-1",
                                 s->id, m->interrupt_status);
    if (m->dev_features_sel >= MAX_FEATURES_SEL || m->drv_features_sel >= MAX_FEATURES_SEL)
        return virtio_state_fail(why, whylen, -EINVAL, "%s: features selector %u/%u out of range",
                                 s->id, m->dev_features_sel, m->drv_features_sel);
    if (m->queue_sel > VIRTIO_STATE_MAX_QUEUE_SEL || m->shm_sel > VIRTIO_STATE_MAX_SHM_SEL)
        return virtio_state_fail(why, whylen, -EINVAL, "%s: queue/shm selector %u/%u out of range",
                                 s->id, m->queue_sel, m->shm_sel);
    return 0;
}

/* Ring placement: aligned, non-zero, and [addr, addr + bytes) must not wrap. */
static int check_ring_addr(const struct virtio_state *s, unsigned q, const char *what,
                           uint64_t addr, uint64_t align, uint64_t bytes, char *why, size_t whylen)
{
    uint64_t end;
    if (addr == 0 || !is_aligned(addr, align) || !range_end(addr, bytes, &end))
        return virtio_state_fail(why, whylen, -EINVAL,
                                 "%s vq %u: %s ring at 0x%llx is null, misaligned or wraps", s->id,
                                 q, what, (unsigned long long)addr);
    return 0;
}

static int check_enabled(const struct virtio_state *s, unsigned q, char *why, size_t whylen)
{
    const struct virtio_state_vq *v = &s->vq[q];
    bool packed = v->ring == VIRTIO_STATE_RING_PACKED;
    uint64_t n = v->size;
    int r;

    if (v->size == 0)
        return virtio_state_fail(why, whylen, -EINVAL, "%s vq %u: enabled with size 0", s->id, q);
    if (!(s->status & VIRTIO_STATUS_FEATURES_OK))
        return virtio_state_fail(why, whylen, -EINVAL, "%s vq %u: enabled before FEATURES_OK",
                                 s->id, q);
    if (packed != has_bit(&s->drv_feat, VIRTIO_F_RING_PACKED))
        return virtio_state_fail(why, whylen, -EINVAL,
                                 "%s vq %u: ring type disagrees with RING_PACKED", s->id, q);
    /* Split: 16-byte descriptors; avail 6 + 2n; used 6 + 8n (event fields included). */
    if ((r = check_ring_addr(s, q, "descriptor", v->desc_addr, 16, 16 * n, why, whylen)) ||
        (r = check_ring_addr(s, q, "driver", v->driver_addr, packed ? 4 : 2, packed ? 4 : 6 + 2 * n,
                             why, whylen)) ||
        (r = check_ring_addr(s, q, "device", v->device_addr, 4, packed ? 4 : 6 + 8 * n, why,
                             whylen)))
        return r;
    if (v->guest_idx_valid && !packed) {
        /* QEMU's load-time bounds (hw/virtio/virtio.c), on the guest's own indices. */
        uint16_t ahead = (uint16_t)(v->guest_avail_idx - v->last_avail_idx);
        uint16_t inuse = (uint16_t)(v->last_avail_idx - v->guest_used_idx);
        if (ahead > v->size)
            return virtio_state_fail(why, whylen, -EINVAL,
                                     "%s vq %u: guest avail idx %u is %u ahead of last_avail %u "
                                     "(size %u)",
                                     s->id, q, v->guest_avail_idx, ahead, v->last_avail_idx,
                                     v->size);
        if (inuse > v->size)
            return virtio_state_fail(why, whylen, -EINVAL,
                                     "%s vq %u: %u buffers in use exceed size %u", s->id, q, inuse,
                                     v->size);
        if (v->guest_used_idx != v->used_idx)
            return virtio_state_fail(why, whylen, -EINVAL,
                                     "%s vq %u: guest used idx %u differs from saved %u", s->id, q,
                                     v->guest_used_idx, v->used_idx);
    }
    return 0;
}

static int check_inflight(const struct virtio_state *s, unsigned q, char *why, size_t whylen)
{
    const struct virtio_state_vq *v = &s->vq[q];
    uint64_t seen[VIRTIO_STATE_QUEUE_SIZE_LIMIT / 64];

    memset(seen, 0, sizeof(seen));
    for (unsigned i = 0; i < v->n_inflight; i++) {
        uint16_t h = v->inflight[i].head;
        if (h >= v->size || h >= VIRTIO_STATE_QUEUE_SIZE_LIMIT)
            return virtio_state_fail(why, whylen, -EINVAL,
                                     "%s vq %u: in-flight head %u >= size "
                                     "%u",
                                     s->id, q, h, v->size);
        if (seen[h / 64] & (1ULL << (h % 64)))
            return virtio_state_fail(why, whylen, -EINVAL, "%s vq %u: in-flight head %u twice",
                                     s->id, q, h);
        seen[h / 64] |= 1ULL << (h % 64);
        if (i && v->inflight[i].order <= v->inflight[i - 1].order)
            return virtio_state_fail(why, whylen, -EINVAL,
                                     "%s vq %u: in-flight list not in pop order", s->id, q);
    }
    return 0;
}

static int check_vq(const struct virtio_state *s, unsigned q, char *why, size_t whylen)
{
    const struct virtio_state_vq *v = &s->vq[q];
    bool packed = v->ring == VIRTIO_STATE_RING_PACKED;
    uint16_t inuse = (uint16_t)(v->last_avail_idx - v->used_idx);

    if (v->max_size_src > VIRTIO_STATE_QUEUE_SIZE_LIMIT ||
        (v->max_size_src && !is_pow2(v->max_size_src)))
        return virtio_state_fail(why, whylen, -EINVAL,
                                 "%s vq %u: QueueSizeMax %u is not a power "
                                 "of two <= 32768",
                                 s->id, q, v->max_size_src);
    if (v->size && (!is_pow2(v->size) || v->size > v->max_size_src))
        return virtio_state_fail(why, whylen, -EINVAL,
                                 "%s vq %u: size %u is not a power of two <= %u", s->id, q, v->size,
                                 v->max_size_src);
    if (v->enabled > 1)
        return virtio_state_fail(why, whylen, -EINVAL, "%s vq %u: enabled = %u", s->id, q,
                                 v->enabled);
    if (s->transport == VIRTIO_STATE_TRANSPORT_MMIO && v->vector != VIRTIO_STATE_NO_VECTOR)
        return virtio_state_fail(why, whylen, -EINVAL, "%s vq %u: vector 0x%x on mmio", s->id, q,
                                 v->vector);
    if (packed && !has_bit(&s->drv_feat, VIRTIO_F_RING_PACKED))
        return virtio_state_fail(why, whylen, -EINVAL, "%s vq %u: packed ring without RING_PACKED",
                                 s->id, q);
    if (v->avail_wrap > 1 || v->used_wrap > 1 || (!packed && (v->avail_wrap || v->used_wrap)))
        return virtio_state_fail(why, whylen, -EINVAL, "%s vq %u: bad wrap counters", s->id, q);
    if (v->signalled_used > UINT16_MAX && v->signalled_used != VIRTIO_STATE_SIGNALLED_UNKNOWN)
        return virtio_state_fail(why, whylen, -EINVAL, "%s vq %u: signalled_used 0x%x", s->id, q,
                                 v->signalled_used);
    if (packed ? (v->size && (v->last_avail_idx >= v->size || v->used_idx >= v->size))
               : inuse > v->size)
        return virtio_state_fail(why, whylen, -EINVAL,
                                 "%s vq %u: last_avail %u / used %u impossible for size %u", s->id,
                                 q, v->last_avail_idx, v->used_idx, v->size);
    if ((v->flags & VIRTIO_STATE_VQ_DRAINED) && (v->n_inflight || (!packed && inuse)))
        return virtio_state_fail(why, whylen, -EINVAL, "%s vq %u: DRAINED with buffers in flight",
                                 s->id, q);
    if ((v->flags & VIRTIO_STATE_VQ_INFLIGHT_VALID) && !packed && v->n_inflight != inuse)
        return virtio_state_fail(why, whylen, -EINVAL,
                                 "%s vq %u: %u in-flight entries but %u buffers in use", s->id, q,
                                 v->n_inflight, inuse);
    return 0;
}

int virtio_state_check(const struct virtio_state *s, char *why, size_t whylen)
{
    int r;

    if ((r = virtio_state_check_limits(s, why, whylen)) || (r = check_transport(s, why, whylen)) ||
        (r = check_features(s, why, whylen)) || (r = check_status(s, why, whylen)))
        return r;
    for (unsigned q = 0; q < s->num_queues; q++) {
        /* check_vq bounds the size (<= 32768) that check_inflight's bitmap relies on. */
        if ((r = check_vq(s, q, why, whylen)) || (r = check_inflight(s, q, why, whylen)))
            return r;
        if (s->vq[q].enabled && (r = check_enabled(s, q, why, whylen)))
            return r;
    }
    return 0;
}

int virtio_state_check_set(const struct virtio_state *s, unsigned n, char *why, size_t whylen)
{
    for (unsigned i = 0; i < n; i++) {
        for (unsigned j = 0; j < i; j++) {
            if (s[i].instance_id == s[j].instance_id)
                return virtio_state_fail(why, whylen, -EINVAL,
                                         "devices %s and %s share instance "
                                         "id %u",
                                         s[j].id, s[i].id, s[i].instance_id);
            if (!strncmp(s[i].id, s[j].id, sizeof(s[i].id)))
                return virtio_state_fail(why, whylen, -EINVAL, "two devices named %s", s[i].id);
            uint64_t ei, ej;
            if (s[i].transport != VIRTIO_STATE_TRANSPORT_MMIO ||
                s[j].transport != VIRTIO_STATE_TRANSPORT_MMIO)
                continue;
            if (!range_end(s[i].mmio_base, s[i].mmio_len, &ei) ||
                !range_end(s[j].mmio_base, s[j].mmio_len, &ej))
                return virtio_state_fail(why, whylen, -EINVAL, "%s or %s: invalid MMIO window",
                                         s[j].id, s[i].id);
            if (ranges_overlap(s[i].mmio_base, s[i].mmio_len, s[j].mmio_base, s[j].mmio_len))
                return virtio_state_fail(why, whylen, -EINVAL, "MMIO windows of %s and %s overlap",
                                         s[j].id, s[i].id);
        }
    }
    return 0;
}
