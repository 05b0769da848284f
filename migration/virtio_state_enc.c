/*
 * VMSTATE-VIRTIO TLV v1 encoder: struct virtio_state[] -> byte stream.
 *
 * The encoder is the reference for the record order and for what a
 * canonical stream looks like: every field little-endian at the offsets of
 * migration/virtio_state_wire.h, reserved bytes and padding zero, records
 * in the spec's part order.  The decoder accepts exactly what this writes
 * (plus the forward-compatible variations documented in
 * docs/VIRTIO_STATE.md), so decode -> encode reproduces a canonical stream
 * byte for byte.  States are checked against the format rules first, so
 * the encoder never emits a stream the decoder would refuse for a limit.
 */
#include "migration/virtio_state.h"

#include <errno.h>
#include <string.h>

#include "migration/virtio_state_wire.h"
#include "vmm/log.h"

static const uint8_t zeros[VIRTIO_STATE_ALIGN];

static void put_pad(struct vstate_out *o, size_t len)
{
    vstate_put_bytes(o, zeros,
                     (VIRTIO_STATE_ALIGN - len % VIRTIO_STATE_ALIGN) % VIRTIO_STATE_ALIGN);
}

/* Append a record header; returns its offset in o->buf (for patching containers). */
static size_t put_hdr(struct vstate_out *o, uint16_t type, uint8_t flags, const uint8_t *sel,
                      uint32_t len)
{
    uint8_t h[sizeof(struct vsw_rec_hdr)] = {0};
    size_t at = o->len;

    le16_put(h + VSW_OFF(vsw_rec_hdr, type), type);
    h[VSW_OFF(vsw_rec_hdr, flags)] = flags;
    if (sel)
        memcpy(h + VSW_OFF(vsw_rec_hdr, selector), sel, VIRTIO_STATE_KIND_LEN);
    le32_put(h + VSW_OFF(vsw_rec_hdr, length), len);
    vstate_put_bytes(o, h, sizeof(h));
    return at;
}

/* A whole record whose value is one buffer. */
static void put_rec(struct vstate_out *o, uint16_t type, uint8_t flags, const uint8_t *sel,
                    const void *val, uint32_t len)
{
    put_hdr(o, type, flags, sel, len);
    vstate_put_bytes(o, val, len);
    put_pad(o, len);
}

static void put_features(struct vstate_out *o, uint16_t type, uint8_t flags,
                         const struct virtio_state_features *f)
{
    put_hdr(o, type, flags, NULL, f->n * 8);
    for (unsigned i = 0; i < f->n; i++)
        vstate_put_u64(o, f->w[i]);
}

static void sel_vq(uint8_t sel[8], unsigned q)
{
    memset(sel, 0, 8);
    le16_put(sel, (uint16_t)q);
}

static void put_vq(struct vstate_out *o, const struct virtio_state_vq *v, unsigned q)
{
    uint8_t sel[8], cfg[sizeof(struct vsw_vq_cfg)] = {0}, st[sizeof(struct vsw_vq_state)] = {0};

    sel_vq(sel, q);
    le16_put(cfg + VSW_OFF(vsw_vq_cfg, queue_size), v->size);
    le16_put(cfg + VSW_OFF(vsw_vq_cfg, vector), v->vector);
    le16_put(cfg + VSW_OFF(vsw_vq_cfg, enabled), v->enabled);
    le64_put(cfg + VSW_OFF(vsw_vq_cfg, queue_desc), v->desc_addr);
    le64_put(cfg + VSW_OFF(vsw_vq_cfg, queue_driver), v->driver_addr);
    le64_put(cfg + VSW_OFF(vsw_vq_cfg, queue_device), v->device_addr);
    put_rec(o, VIRTIO_STATE_T_VQ_CFG, 0, sel, cfg, sizeof(cfg));

    st[VSW_OFF(vsw_vq_state, ring)] = v->ring;
    st[VSW_OFF(vsw_vq_state, flags)] = v->flags;
    le16_put(st + VSW_OFF(vsw_vq_state, max_size_src), v->max_size_src);
    le16_put(st + VSW_OFF(vsw_vq_state, last_avail_idx), v->last_avail_idx);
    le16_put(st + VSW_OFF(vsw_vq_state, used_idx), v->used_idx);
    st[VSW_OFF(vsw_vq_state, avail_wrap)] = v->avail_wrap;
    st[VSW_OFF(vsw_vq_state, used_wrap)] = v->used_wrap;
    le32_put(st + VSW_OFF(vsw_vq_state, signalled_used), v->signalled_used);
    put_rec(o, VIRTIO_STATE_T_VQ_STATE, 0, sel, st, sizeof(st));

    if (!(v->flags & VIRTIO_STATE_VQ_INFLIGHT_VALID))
        return;
    uint8_t ih[sizeof(struct vsw_vq_inflight_hdr)] = {0};
    le16_put(ih + VSW_OFF(vsw_vq_inflight_hdr, count), v->n_inflight);
    put_hdr(o, VIRTIO_STATE_T_VQ_INFLIGHT, 0, sel,
            (uint32_t)(sizeof(ih) + v->n_inflight * sizeof(struct vsw_inflight_entry)));
    vstate_put_bytes(o, ih, sizeof(ih));
    for (unsigned i = 0; i < v->n_inflight; i++) {
        uint8_t e[sizeof(struct vsw_inflight_entry)] = {0};
        le16_put(e + VSW_OFF(vsw_inflight_entry, head), v->inflight[i].head);
        le64_put(e + VSW_OFF(vsw_inflight_entry, order), v->inflight[i].order);
        vstate_put_bytes(o, e, sizeof(e));
    }
}

/* One DEVICE container with its records in the spec's part order. */
static void put_device(struct vstate_out *o, const struct virtio_state *s)
{
    uint8_t sel[8] = {0}, info[sizeof(struct vsw_device_info)] = {0};
    uint8_t cfg[sizeof(struct vsw_config_hdr)], mmio[sizeof(struct vsw_mmio)] = {0};
    size_t at;

    le32_put(sel, s->instance_id);
    at = put_hdr(o, VIRTIO_STATE_T_DEVICE, VIRTIO_STATE_RF_CONTAINER, sel, 0);

    le32_put(info + VSW_OFF(vsw_device_info, device_id), s->device_id);
    le32_put(info + VSW_OFF(vsw_device_info, transport), s->transport);
    le16_put(info + VSW_OFF(vsw_device_info, num_queues), s->num_queues);
    le64_put(info + VSW_OFF(vsw_device_info, mmio_base), s->mmio_base);
    le32_put(info + VSW_OFF(vsw_device_info, mmio_len), s->mmio_len);
    le32_put(info + VSW_OFF(vsw_device_info, irq), s->irq);
    put_rec(o, VIRTIO_STATE_T_DEVICE_INFO, 0, NULL, info, sizeof(info));
    put_rec(o, VIRTIO_STATE_T_DEVICE_NAME, 0, NULL, s->id, (uint32_t)strlen(s->id));

    if (s->has_dev_features)
        put_features(o, VIRTIO_STATE_T_DEV_FEATURES, VIRTIO_STATE_RF_OPTIONAL, &s->dev_feat);
    put_features(o, VIRTIO_STATE_T_DRV_FEATURES, 0, &s->drv_feat);
    if (s->has_backend_features)
        put_features(o, VIRTIO_STATE_T_BACKEND_FEATURES, VIRTIO_STATE_RF_OPTIONAL,
                     &s->backend_feat);

    le32_put(cfg + VSW_OFF(vsw_config_hdr, generation), s->config_generation);
    le32_put(cfg + VSW_OFF(vsw_config_hdr, len), s->config_len);
    put_hdr(o, VIRTIO_STATE_T_CONFIG_SPACE, 0, NULL, (uint32_t)sizeof(cfg) + s->config_len);
    vstate_put_bytes(o, cfg, sizeof(cfg));
    vstate_put_bytes(o, s->config, s->config_len);
    put_pad(o, s->config_len);

    if (s->transport == VIRTIO_STATE_TRANSPORT_MMIO) {
        le32_put(mmio + VSW_OFF(vsw_mmio, dev_features_sel), s->mmio.dev_features_sel);
        le32_put(mmio + VSW_OFF(vsw_mmio, drv_features_sel), s->mmio.drv_features_sel);
        le32_put(mmio + VSW_OFF(vsw_mmio, queue_sel), s->mmio.queue_sel);
        le32_put(mmio + VSW_OFF(vsw_mmio, interrupt_status), s->mmio.interrupt_status);
        le32_put(mmio + VSW_OFF(vsw_mmio, shm_sel), s->mmio.shm_sel);
        put_rec(o, VIRTIO_STATE_T_MMIO_TRANSPORT, 0, NULL, mmio, sizeof(mmio));
    }
    put_rec(o, VIRTIO_STATE_T_DEVICE_STATUS, 0, NULL, &s->status, 1);

    for (unsigned q = 0; q < s->num_queues; q++)
        put_vq(o, &s->vq[q], q);

    if (s->dev_rec_type)
        put_rec(o, s->dev_rec_type,
                s->dev_rec_type == VIRTIO_STATE_T_BLK_STATE ? VIRTIO_STATE_RF_OPTIONAL : 0, NULL,
                s->dev_blob, s->dev_blob_len);
    if (s->has_opaque) {
        uint8_t kind[VIRTIO_STATE_KIND_LEN] = {0};
        memcpy(kind, s->opaque_kind, strnlen(s->opaque_kind, sizeof(kind)));
        put_rec(o, VIRTIO_STATE_T_BACKEND_OPAQUE, s->opaque_optional ? VIRTIO_STATE_RF_OPTIONAL : 0,
                kind, s->opaque, s->opaque_len);
    }

    /* Records were padded one by one, so the container length is a multiple of 8. */
    if (!o->err)
        le32_put(o->buf + at + VSW_OFF(vsw_rec_hdr, length),
                 (uint32_t)(o->len - at - VIRTIO_STATE_REC_HDR_LEN));
}

/* Everything the decoder would refuse for a format reason, before a byte is written. */
static int precheck(const struct virtio_state *s, unsigned n)
{
    char why[160];
    unsigned queues = 0;

    if (n == 0 || n > VIRTIO_STATE_MAX_DEVICES) {
        log_ratelimited(LOG_WARN, "virtio state: cannot encode %u devices (1-%u)", n,
                        VIRTIO_STATE_MAX_DEVICES);
        return -EINVAL;
    }
    for (unsigned i = 0; i < n; i++) {
        if (virtio_state_check_limits(&s[i], why, sizeof(why))) {
            log_ratelimited(LOG_WARN, "virtio state: not encoded: %s", why);
            return -EINVAL;
        }
        queues += s[i].num_queues;
        for (unsigned j = 0; j < i; j++) {
            if (s[i].instance_id == s[j].instance_id || !strcmp(s[i].id, s[j].id)) {
                log_ratelimited(LOG_WARN, "virtio state: devices %s and %s share an id", s[j].id,
                                s[i].id);
                return -EINVAL;
            }
        }
    }
    if (queues > VIRTIO_STATE_MAX_QUEUES_TOTAL) {
        log_ratelimited(LOG_WARN, "virtio state: %u queues in total (limit %u)", queues,
                        VIRTIO_STATE_MAX_QUEUES_TOTAL);
        return -EINVAL;
    }
    return 0;
}

int virtio_state_encode_many(const struct virtio_state *s, unsigned n, struct vstate_out *out)
{
    uint8_t h[sizeof(struct vsw_stream_hdr)] = {0};
    size_t start = out->len, total;
    int r;

    if ((r = precheck(s, n)))
        return r;

    memcpy(h + VSW_OFF(vsw_stream_hdr, magic), VIRTIO_STATE_MAGIC, 8);
    le16_put(h + VSW_OFF(vsw_stream_hdr, major), VIRTIO_STATE_MAJOR);
    le16_put(h + VSW_OFF(vsw_stream_hdr, minor), VIRTIO_STATE_MINOR);
    le32_put(h + VSW_OFF(vsw_stream_hdr, header_len), VIRTIO_STATE_HDR_LEN);
    vstate_put_bytes(out, h, sizeof(h));
    for (unsigned i = 0; i < n; i++)
        put_device(out, &s[i]);
    put_hdr(out, VIRTIO_STATE_T_END, 0, NULL, 0);
    if (out->err) {
        r = out->err;
        goto err;
    }
    total = out->len - start;
    if (total > VIRTIO_STATE_MAX_TOTAL) {
        r = -E2BIG;
        goto err;
    }

    /* total_len first: the CRC covers it (and every other byte but the CRC field). */
    uint8_t *p = out->buf + start;
    le64_put(p + VSW_OFF(vsw_stream_hdr, total_len), total);
    le32_put(p + VSW_OFF(vsw_stream_hdr, crc32c), 0);
    le32_put(p + VSW_OFF(vsw_stream_hdr, crc32c), virtio_state_crc32c(0, p, total));
    return 0;

err:
    out->len = start;
    return r;
}

int virtio_state_encode(const struct virtio_state *s, struct vstate_out *out)
{
    return virtio_state_encode_many(s, 1, out);
}
