/*
 * VMSTATE-VIRTIO TLV v1 decoder, record values: one parser per known record
 * type.  virtio_state_dec.c has already framed the record (its length fits
 * in the buffer, padding is zero), checked that it is not a duplicate and
 * that it comes in order; here each value is bounded against its own
 * record length and the format caps before it is copied or allocated.
 * Short records get the defaults documented in docs/VIRTIO_STATE.md or
 * fail; bytes beyond the known layout (a newer minor's tail) are ignored.
 */
#include "migration/virtio_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "migration/virtio_state_wire.h"

static int get_features(struct vs_dec *d, const struct vs_rec *r, struct virtio_state_features *f)
{
    if (r->len % 8)
        return VS_FAIL(d, -EBADMSG, "%s: length %u is not a multiple of 8",
                       virtio_state_type_name(r->type), r->len);
    if (r->len / 8 > VIRTIO_STATE_MAX_FEATURE_WORDS)
        return VS_FAIL(d, -E2BIG, "%s: %u feature words (limit %u)",
                       virtio_state_type_name(r->type), r->len / 8, VIRTIO_STATE_MAX_FEATURE_WORDS);
    f->n = r->len / 8;
    for (unsigned i = 0; i < f->n; i++)
        f->w[i] = le64_get(r->val + 8 * i);
    return 0;
}

/* Copy a blob whose length was already framed inside the buffer. */
static int dup_blob(struct vs_dec *d, const struct vs_rec *r, uint8_t **out)
{
    if (!r->len)
        return 0;
    *out = malloc(r->len);
    if (!*out)
        return VS_FAIL(d, -ENOMEM, "out of memory copying %s", virtio_state_type_name(r->type));
    memcpy(*out, r->val, r->len);
    return 0;
}

static int get_info(struct vs_dec *d, const struct vs_rec *r, struct virtio_state *s)
{
    const uint8_t *v = r->val;

    if (r->len < sizeof(struct vsw_device_info))
        return VS_FAIL(d, -EBADMSG, "device %u: DEVICE_INFO of %u bytes, need %zu", s->instance_id,
                       r->len, sizeof(struct vsw_device_info));
    s->device_id = le32_get(v + VSW_OFF(vsw_device_info, device_id));
    s->transport = le32_get(v + VSW_OFF(vsw_device_info, transport));
    s->num_queues = le16_get(v + VSW_OFF(vsw_device_info, num_queues));
    s->mmio_base = le64_get(v + VSW_OFF(vsw_device_info, mmio_base));
    s->mmio_len = le32_get(v + VSW_OFF(vsw_device_info, mmio_len));
    s->irq = le32_get(v + VSW_OFF(vsw_device_info, irq));
    if (s->transport != VIRTIO_STATE_TRANSPORT_MMIO && s->transport != VIRTIO_STATE_TRANSPORT_PCI)
        return VS_FAIL(d, -EBADMSG, "device %u: unknown transport %u", s->instance_id,
                       s->transport);
    if (s->num_queues > VIRTIO_STATE_MAX_DEV_QUEUES)
        return VS_FAIL(d, -E2BIG, "device %u: %u queues (limit %u per device)", s->instance_id,
                       s->num_queues, VIRTIO_STATE_MAX_DEV_QUEUES);
    d->queues += s->num_queues;
    if (d->queues > VIRTIO_STATE_MAX_QUEUES_TOTAL)
        return VS_FAIL(d, -E2BIG, "more than %u queues in the stream",
                       VIRTIO_STATE_MAX_QUEUES_TOTAL);
    return 0;
}

static int get_name(struct vs_dec *d, const struct vs_rec *r, struct virtio_state *s)
{
    if (r->len == 0 || r->len > VIRTIO_STATE_NAME_MAX)
        return VS_FAIL(d, -EBADMSG, "device %u: DEVICE_NAME of %u bytes (1-%u)", s->instance_id,
                       r->len, VIRTIO_STATE_NAME_MAX);
    if (memchr(r->val, 0, r->len))
        return VS_FAIL(d, -EBADMSG, "device %u: DEVICE_NAME contains a NUL byte", s->instance_id);
    memcpy(s->id, r->val, r->len);
    s->id[r->len] = '\0';
    if (!virtio_state_name_ok(s->id, VIRTIO_STATE_NAME_MAX))
        return VS_FAIL(d, -EBADMSG, "device %u: DEVICE_NAME has characters outside [A-Za-z0-9._-]",
                       s->instance_id);
    return 0;
}

static int get_config(struct vs_dec *d, const struct vs_rec *r, struct virtio_state *s)
{
    uint32_t clen;

    if (r->len < sizeof(struct vsw_config_hdr))
        return VS_FAIL(d, -EBADMSG, "device %u: CONFIG_SPACE of %u bytes, need 8", s->instance_id,
                       r->len);
    clen = le32_get(r->val + VSW_OFF(vsw_config_hdr, len));
    if (clen > VIRTIO_STATE_MAX_CONFIG)
        return VS_FAIL(d, -E2BIG, "device %u: config space of %u bytes (limit %u)", s->instance_id,
                       clen, VIRTIO_STATE_MAX_CONFIG);
    if (clen > r->len - sizeof(struct vsw_config_hdr))
        return VS_FAIL(d, -EBADMSG, "device %u: config length %u exceeds its record",
                       s->instance_id, clen);
    s->config_generation = le32_get(r->val + VSW_OFF(vsw_config_hdr, generation));
    s->config_len = clen;
    memcpy(s->config, r->val + sizeof(struct vsw_config_hdr), clen);
    return 0;
}

static int get_mmio(struct vs_dec *d, const struct vs_rec *r, struct virtio_state *s)
{
    const uint8_t *v = r->val;

    if (s->transport != VIRTIO_STATE_TRANSPORT_MMIO)
        return VS_FAIL(d, -EBADMSG, "device %u: MMIO_TRANSPORT in a non-mmio device",
                       s->instance_id);
    if (r->len < VSW_MMIO_MIN_LEN)
        return VS_FAIL(d, -EBADMSG, "device %u: MMIO_TRANSPORT of %u bytes, need %u",
                       s->instance_id, r->len, VSW_MMIO_MIN_LEN);
    s->mmio.dev_features_sel = le32_get(v + VSW_OFF(vsw_mmio, dev_features_sel));
    s->mmio.drv_features_sel = le32_get(v + VSW_OFF(vsw_mmio, drv_features_sel));
    s->mmio.queue_sel = le32_get(v + VSW_OFF(vsw_mmio, queue_sel));
    s->mmio.interrupt_status = le32_get(v + VSW_OFF(vsw_mmio, interrupt_status));
    /* Documented default: a 16-byte record predates shm_sel, which then reads 0. */
    if (r->len >= VSW_OFF(vsw_mmio, shm_sel) + 4)
        s->mmio.shm_sel = le32_get(v + VSW_OFF(vsw_mmio, shm_sel));
    return 0;
}

static int get_vq_cfg(struct vs_dec *d, const struct vs_rec *r, struct virtio_state_vq *v)
{
    const uint8_t *p = r->val;

    if (r->len < sizeof(struct vsw_vq_cfg))
        return VS_FAIL(d, -EBADMSG, "VQ_CFG of %u bytes, need %zu", r->len,
                       sizeof(struct vsw_vq_cfg));
    v->size = le16_get(p + VSW_OFF(vsw_vq_cfg, queue_size));
    v->vector = le16_get(p + VSW_OFF(vsw_vq_cfg, vector));
    v->enabled = le16_get(p + VSW_OFF(vsw_vq_cfg, enabled));
    v->desc_addr = le64_get(p + VSW_OFF(vsw_vq_cfg, queue_desc));
    v->driver_addr = le64_get(p + VSW_OFF(vsw_vq_cfg, queue_driver));
    v->device_addr = le64_get(p + VSW_OFF(vsw_vq_cfg, queue_device));
    return 0;
}

static int get_vq_state(struct vs_dec *d, const struct vs_rec *r, struct virtio_state_vq *v)
{
    const uint8_t *p = r->val;

    if (r->len < VSW_VQ_STATE_MIN_LEN)
        return VS_FAIL(d, -EBADMSG, "VQ_STATE of %u bytes, need %u", r->len, VSW_VQ_STATE_MIN_LEN);
    v->ring = p[VSW_OFF(vsw_vq_state, ring)];
    v->flags = p[VSW_OFF(vsw_vq_state, flags)];
    v->max_size_src = le16_get(p + VSW_OFF(vsw_vq_state, max_size_src));
    v->last_avail_idx = le16_get(p + VSW_OFF(vsw_vq_state, last_avail_idx));
    v->used_idx = le16_get(p + VSW_OFF(vsw_vq_state, used_idx));
    v->avail_wrap = p[VSW_OFF(vsw_vq_state, avail_wrap)];
    v->used_wrap = p[VSW_OFF(vsw_vq_state, used_wrap)];
    /* Documented default: a 12-byte record has no signalled_used, so it is unknown. */
    v->signalled_used = r->len >= sizeof(struct vsw_vq_state)
                            ? le32_get(p + VSW_OFF(vsw_vq_state, signalled_used))
                            : VIRTIO_STATE_SIGNALLED_UNKNOWN;
    if (v->ring != VIRTIO_STATE_RING_SPLIT && v->ring != VIRTIO_STATE_RING_PACKED)
        return VS_FAIL(d, -EBADMSG, "VQ_STATE: unknown ring type %u", v->ring);
    if (v->flags & ~(VIRTIO_STATE_VQ_DRAINED | VIRTIO_STATE_VQ_INFLIGHT_VALID))
        return VS_FAIL(d, -EBADMSG, "VQ_STATE: unknown flags 0x%02x", v->flags);
    return 0;
}

static int get_vq_inflight(struct vs_dec *d, const struct vs_rec *r, struct virtio_state_vq *v,
                           unsigned q)
{
    const size_t ent = sizeof(struct vsw_inflight_entry);
    uint16_t count;

    if (!(v->flags & VIRTIO_STATE_VQ_INFLIGHT_VALID))
        return VS_FAIL(d, -EBADMSG, "queue %u: VQ_INFLIGHT without INFLIGHT_VALID in VQ_STATE", q);
    if (r->len < sizeof(struct vsw_vq_inflight_hdr))
        return VS_FAIL(d, -EBADMSG, "queue %u: VQ_INFLIGHT of %u bytes, need 8", q, r->len);
    count = le16_get(r->val + VSW_OFF(vsw_vq_inflight_hdr, count));
    /* Against the record (hence the buffer) first, then the cap, then allocate. */
    if ((size_t)count * ent > r->len - sizeof(struct vsw_vq_inflight_hdr))
        return VS_FAIL(d, -EBADMSG, "queue %u: %u in-flight entries exceed the VQ_INFLIGHT record",
                       q, count);
    if (count > v->size)
        return VS_FAIL(d, -E2BIG, "queue %u: %u in-flight entries exceed queue size %u", q, count,
                       v->size);
    if (!count)
        return 0;
    v->inflight = calloc(count, sizeof(*v->inflight));
    if (!v->inflight)
        return VS_FAIL(d, -ENOMEM, "out of memory for %u in-flight entries", count);
    v->n_inflight = count;
    for (unsigned i = 0; i < count; i++) {
        const uint8_t *e = r->val + sizeof(struct vsw_vq_inflight_hdr) + i * ent;
        v->inflight[i].head = le16_get(e + VSW_OFF(vsw_inflight_entry, head));
        v->inflight[i].order = le64_get(e + VSW_OFF(vsw_inflight_entry, order));
    }
    return 0;
}

static int get_vq_value(struct vs_dec *d, const struct vs_rec *r, struct virtio_state *s)
{
    unsigned q = le16_get(r->sel); /* < num_queues: checked by vq_key() */

    if (r->type == VIRTIO_STATE_T_VQ_CFG)
        return get_vq_cfg(d, r, &s->vq[q]);
    if (r->type == VIRTIO_STATE_T_VQ_STATE)
        return get_vq_state(d, r, &s->vq[q]);
    return get_vq_inflight(d, r, &s->vq[q], q);
}

static int get_devrec(struct vs_dec *d, const struct vs_rec *r, struct virtio_state *s)
{
    if (virtio_state_dev_rec_owner(r->type) != s->device_id)
        return VS_FAIL(d, -EBADMSG, "device %u: %s record in a device of type %u", s->instance_id,
                       virtio_state_type_name(r->type), s->device_id);
    if (r->len > VIRTIO_STATE_MAX_DEV_BLOB)
        return VS_FAIL(d, -E2BIG, "device %u: %s of %u bytes (limit %u)", s->instance_id,
                       virtio_state_type_name(r->type), r->len, VIRTIO_STATE_MAX_DEV_BLOB);
    s->dev_rec_type = r->type;
    /* BLK_STATE is reserved and empty in v1: a longer one is a tail, ignored. */
    if (r->type == VIRTIO_STATE_T_BLK_STATE)
        return 0;
    s->dev_blob_len = r->len;
    return dup_blob(d, r, &s->dev_blob);
}

static int get_opaque(struct vs_dec *d, const struct vs_rec *r, struct virtio_state *s)
{
    size_t k = strnlen((const char *)r->sel, VIRTIO_STATE_KIND_LEN);

    memcpy(s->opaque_kind, r->sel, k);
    s->opaque_kind[k] = '\0';
    if (!vsw_zero(r->sel + k, VIRTIO_STATE_KIND_LEN - k) ||
        !virtio_state_name_ok(s->opaque_kind, VIRTIO_STATE_KIND_LEN))
        return VS_FAIL(d, -EBADMSG,
                       "device %u: BACKEND_OPAQUE kind is not 1-8 characters of "
                       "[A-Za-z0-9._-]",
                       s->instance_id);
    if (r->len > VIRTIO_STATE_MAX_OPAQUE)
        return VS_FAIL(d, -E2BIG, "device %u: BACKEND_OPAQUE of %u bytes (limit %u)",
                       s->instance_id, r->len, VIRTIO_STATE_MAX_OPAQUE);
    s->has_opaque = true;
    s->opaque_optional = r->flags & VIRTIO_STATE_RF_OPTIONAL;
    s->opaque_len = r->len;
    return dup_blob(d, r, &s->opaque);
}

int virtio_state_get_value(struct vs_dec *d, const struct vs_rec *r, struct virtio_state *s)
{
    switch (r->type) {
    case VIRTIO_STATE_T_DEVICE_INFO:
        return get_info(d, r, s);
    case VIRTIO_STATE_T_DEVICE_NAME:
        return get_name(d, r, s);
    case VIRTIO_STATE_T_DEV_FEATURES:
        s->has_dev_features = true;
        return get_features(d, r, &s->dev_feat);
    case VIRTIO_STATE_T_DRV_FEATURES:
        return get_features(d, r, &s->drv_feat);
    case VIRTIO_STATE_T_BACKEND_FEATURES:
        s->has_backend_features = true;
        return get_features(d, r, &s->backend_feat);
    case VIRTIO_STATE_T_CONFIG_SPACE:
        return get_config(d, r, s);
    case VIRTIO_STATE_T_MMIO_TRANSPORT:
        return get_mmio(d, r, s);
    case VIRTIO_STATE_T_DEVICE_STATUS:
        if (r->len < 1)
            return VS_FAIL(d, -EBADMSG, "device %u: empty DEVICE_STATUS", s->instance_id);
        s->status = r->val[0];
        return 0;
    case VIRTIO_STATE_T_BACKEND_OPAQUE:
        return get_opaque(d, r, s);
    case VIRTIO_STATE_T_VQ_CFG:
    case VIRTIO_STATE_T_VQ_STATE:
    case VIRTIO_STATE_T_VQ_INFLIGHT:
        return get_vq_value(d, r, s);
    default:
        return get_devrec(d, r, s);
    }
}
