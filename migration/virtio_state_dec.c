/*
 * VMSTATE-VIRTIO TLV v1 decoder: byte stream -> struct virtio_state[].
 *
 * The stream comes from another host (or a file) and is treated as hostile:
 *   - every length is checked against the bytes that remain in its parent
 *     (stream or container) before anything is read or allocated, in
 *     size_t arithmetic so a length of 2^32-1 cannot wrap;
 *   - padding and reserved header bytes must be zero, selectors of records
 *     that take none must be zero, unknown flag bits are refused;
 *   - known records appear at most once (per queue for VQ_*), in the
 *     spec's part order; unknown OPTIONAL records are skipped (their
 *     framing is still walked, nesting <= 4), unknown mandatory ones fail;
 *   - every cap of docs/VIRTIO_STATE.md is enforced where the count is read;
 *   - nothing is returned until every device also passed
 *     virtio_state_check(); on any failure all allocations are released.
 * Each failure produces its own one-line reason in `why`.
 */
#include "migration/virtio_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "migration/virtio_state_wire.h"

/* Per-device parse state. */
struct devp {
    uint32_t seen;     /* bit per rank: singleton records met */
    uint32_t last_key; /* order key of the last known record */
    uint16_t last_type;
    uint8_t vq_seen[VIRTIO_STATE_MAX_DEV_QUEUES]; /* bit per VQ record kind */
};

/* Order ranks of the known records inside a DEVICE (the spec's part order). */
enum rank {
    R_NONE = 0,
    R_INFO,
    R_NAME,
    R_DEV_FEAT,
    R_DRV_FEAT,
    R_BACKEND_FEAT,
    R_CONFIG,
    R_MMIO,
    R_STATUS,
    R_VQ,
    R_DEVREC,
    R_OPAQUE,
};

static enum rank rank_of(uint16_t type)
{
    switch (type) {
    case VIRTIO_STATE_T_DEVICE_INFO:
        return R_INFO;
    case VIRTIO_STATE_T_DEVICE_NAME:
        return R_NAME;
    case VIRTIO_STATE_T_DEV_FEATURES:
        return R_DEV_FEAT;
    case VIRTIO_STATE_T_DRV_FEATURES:
        return R_DRV_FEAT;
    case VIRTIO_STATE_T_BACKEND_FEATURES:
        return R_BACKEND_FEAT;
    case VIRTIO_STATE_T_CONFIG_SPACE:
        return R_CONFIG;
    case VIRTIO_STATE_T_MMIO_TRANSPORT:
        return R_MMIO;
    case VIRTIO_STATE_T_DEVICE_STATUS:
        return R_STATUS;
    case VIRTIO_STATE_T_VQ_CFG:
    case VIRTIO_STATE_T_VQ_STATE:
    case VIRTIO_STATE_T_VQ_INFLIGHT:
        return R_VQ;
    case VIRTIO_STATE_T_BLK_STATE:
    case VIRTIO_STATE_T_NET_STATE:
    case VIRTIO_STATE_T_CONSOLE_STATE:
    case VIRTIO_STATE_T_RNG_STATE:
    case VIRTIO_STATE_T_BLK_DEV_STATE:
    case VIRTIO_STATE_T_BALLOON_STATE:
    case VIRTIO_STATE_T_VSOCK_STATE:
        return R_DEVREC;
    case VIRTIO_STATE_T_BACKEND_OPAQUE:
        return R_OPAQUE;
    default:
        return R_NONE;
    }
}

/* Read the record header at `pos` and frame it inside [pos, end). */
static int read_rec(struct vs_dec *d, size_t pos, size_t end, struct vs_rec *r)
{
    const uint8_t *h = d->buf + pos;
    size_t room, padded;

    if (end - pos < VIRTIO_STATE_REC_HDR_LEN)
        return VS_FAIL(d, -EBADMSG, "truncated record header at offset %zu", pos);
    r->off = pos;
    r->type = le16_get(h + VSW_OFF(vsw_rec_hdr, type));
    r->flags = h[VSW_OFF(vsw_rec_hdr, flags)];
    r->sel = h + VSW_OFF(vsw_rec_hdr, selector);
    r->len = le32_get(h + VSW_OFF(vsw_rec_hdr, length));
    r->val = h + VIRTIO_STATE_REC_HDR_LEN;
    room = end - pos - VIRTIO_STATE_REC_HDR_LEN;
    if (r->len > room)
        return VS_FAIL(d, -EBADMSG, "record 0x%04x (%s) at offset %zu: length %u runs past the end",
                       r->type, virtio_state_type_name(r->type), pos, r->len);
    padded = ((size_t)r->len + VIRTIO_STATE_ALIGN - 1) & ~(size_t)(VIRTIO_STATE_ALIGN - 1);
    if (padded > room)
        return VS_FAIL(d, -EBADMSG, "record 0x%04x at offset %zu: padding runs past the end",
                       r->type, pos);
    if (!vsw_zero(r->val + r->len, padded - r->len))
        return VS_FAIL(d, -EBADMSG, "record 0x%04x (%s) at offset %zu: non-zero padding", r->type,
                       virtio_state_type_name(r->type), pos);
    if (h[VSW_OFF(vsw_rec_hdr, reserved)])
        return VS_FAIL(d, -EBADMSG, "record 0x%04x at offset %zu: reserved header byte set",
                       r->type, pos);
    if (r->flags & ~(VIRTIO_STATE_RF_OPTIONAL | VIRTIO_STATE_RF_CONTAINER))
        return VS_FAIL(d, -EBADMSG, "record 0x%04x at offset %zu: unknown flags 0x%02x", r->type,
                       pos, r->flags);
    r->next = pos + VIRTIO_STATE_REC_HDR_LEN + padded;
    return 0;
}

/*
 * An unknown record at nesting `depth` (1 = top level).  OPTIONAL ones are
 * skipped, but a container's framing is still walked: a reader that skips
 * must not let a malformed inner structure pass unnoticed.
 */
static int skip_unknown(struct vs_dec *d, const struct vs_rec *r, unsigned depth)
{
    if (!(r->flags & VIRTIO_STATE_RF_OPTIONAL))
        return VS_FAIL(d, -EBADMSG, "unknown mandatory record type 0x%04x (%s) at offset %zu",
                       r->type, virtio_state_type_name(r->type), r->off);
    if (!(r->flags & VIRTIO_STATE_RF_CONTAINER))
        return 0;
    if (depth > VIRTIO_STATE_MAX_NESTING)
        return VS_FAIL(d, -EBADMSG, "containers nested deeper than %u at offset %zu",
                       VIRTIO_STATE_MAX_NESTING, r->off);
    if (r->len % VIRTIO_STATE_ALIGN)
        return VS_FAIL(d, -EBADMSG, "container at offset %zu: length %u not a multiple of 8",
                       r->off, r->len);
    size_t pos = r->off + VIRTIO_STATE_REC_HDR_LEN, end = pos + r->len;
    while (pos < end) {
        struct vs_rec in;
        int e = read_rec(d, pos, end, &in);
        if (e)
            return e;
        if ((in.flags & VIRTIO_STATE_RF_CONTAINER) && (e = skip_unknown(d, &in, depth + 1)))
            return e;
        pos = in.next;
    }
    return 0;
}

/*
 * VQ_CFG / VQ_STATE / VQ_INFLIGHT: selector le16 index, the rest zero.
 * Checks index and uniqueness and gives the order key; the value is parsed
 * by get_vq_value() once the order is known to be right.
 */
static int vq_key(struct vs_dec *d, const struct vs_rec *r, const struct virtio_state *s,
                  struct devp *p, uint32_t *key)
{
    unsigned q = le16_get(r->sel), bit;

    if (!vsw_zero(r->sel + 2, 6))
        return VS_FAIL(d, -EBADMSG, "device %u: %s selector has reserved bytes set", s->instance_id,
                       virtio_state_type_name(r->type));
    if (q >= s->num_queues)
        return VS_FAIL(d, -EBADMSG, "device %u: %s for queue %u, but the device has %u queues",
                       s->instance_id, virtio_state_type_name(r->type), q, s->num_queues);
    bit = r->type == VIRTIO_STATE_T_VQ_CFG ? 0 : r->type == VIRTIO_STATE_T_VQ_STATE ? 1 : 2;
    if (p->vq_seen[q] & (1u << bit))
        return VS_FAIL(d, -EBADMSG, "device %u: duplicate %s for queue %u", s->instance_id,
                       virtio_state_type_name(r->type), q);
    if (bit == 2 && !(p->vq_seen[q] & 1))
        return VS_FAIL(d, -EBADMSG, "device %u: VQ_INFLIGHT for queue %u before its VQ_CFG",
                       s->instance_id, q);
    p->vq_seen[q] |= 1u << bit;
    *key = (uint32_t)R_VQ << 24 | q << 8 | bit;
    return 0;
}

/* One known record inside a DEVICE: uniqueness, order, then its value. */
static int get_known(struct vs_dec *d, const struct vs_rec *r, struct virtio_state *s,
                     struct devp *p)
{
    enum rank rk = rank_of(r->type);
    uint32_t key = (uint32_t)rk << 24;
    int e;

    if (r->flags & VIRTIO_STATE_RF_CONTAINER)
        return VS_FAIL(d, -EBADMSG, "device %u: %s must not be a container", s->instance_id,
                       virtio_state_type_name(r->type));
    if (!p->seen && rk != R_INFO)
        return VS_FAIL(d, -EBADMSG, "device %u: DEVICE_INFO missing (must be the first record)",
                       s->instance_id);
    if (rk == R_VQ) {
        if ((e = vq_key(d, r, s, p, &key)))
            return e;
    } else {
        if (p->seen & (1u << rk))
            return VS_FAIL(d, -EBADMSG, "device %u: duplicate %s record%s", s->instance_id,
                           virtio_state_type_name(r->type),
                           rk == R_DEVREC ? " (one device-specific record per device)" : "");
        if (rk != R_OPAQUE && !vsw_zero(r->sel, 8))
            return VS_FAIL(d, -EBADMSG, "device %u: %s selector must be zero", s->instance_id,
                           virtio_state_type_name(r->type));
    }
    if (key <= p->last_key)
        return VS_FAIL(d, -EBADMSG, "device %u: %s out of order (after %s)", s->instance_id,
                       virtio_state_type_name(r->type), virtio_state_type_name(p->last_type));
    p->seen |= 1u << rk;
    p->last_key = key;
    p->last_type = r->type;

    return virtio_state_get_value(d, r, s);
}

/* Every mandatory record is there, then the format and semantic checks. */
static int finish_device(struct vs_dec *d, const struct devp *p, struct virtio_state *s)
{
    static const struct {
        enum rank rk;
        const char *name;
    } need[] = {{R_INFO, "DEVICE_INFO"},
                {R_NAME, "DEVICE_NAME"},
                {R_DRV_FEAT, "DRV_FEATURES"},
                {R_CONFIG, "CONFIG_SPACE"},
                {R_STATUS, "DEVICE_STATUS"}};

    for (size_t i = 0; i < ARRAY_SIZE(need); i++)
        if (!(p->seen & (1u << need[i].rk)))
            return VS_FAIL(d, -EBADMSG, "device %u: missing %s", s->instance_id, need[i].name);
    if (s->transport == VIRTIO_STATE_TRANSPORT_MMIO && !(p->seen & (1u << R_MMIO)))
        return VS_FAIL(d, -EBADMSG, "device %u: missing MMIO_TRANSPORT", s->instance_id);
    for (unsigned q = 0; q < s->num_queues; q++) {
        if ((p->vq_seen[q] & 3) != 3)
            return VS_FAIL(d, -EBADMSG, "device %u: missing %s for queue %u", s->instance_id,
                           (p->vq_seen[q] & 1) ? "VQ_STATE" : "VQ_CFG", q);
        if ((s->vq[q].flags & VIRTIO_STATE_VQ_INFLIGHT_VALID) && !(p->vq_seen[q] & 4))
            return VS_FAIL(d, -EBADMSG, "device %u: INFLIGHT_VALID but no VQ_INFLIGHT for queue %u",
                           s->instance_id, q);
    }
    /* Format limits (virtio_state_check_limits) are part of the semantic check. */
    return virtio_state_check(s, d->why, d->whylen);
}

static int get_device(struct vs_dec *d, const struct vs_rec *r, struct virtio_state *s,
                      const struct virtio_state *prev, unsigned nprev)
{
    struct devp p;
    size_t pos, end;
    int e;

    memset(&p, 0, sizeof(p));
    s->instance_id = le32_get(r->sel);
    if (!(r->flags & VIRTIO_STATE_RF_CONTAINER))
        return VS_FAIL(d, -EBADMSG, "DEVICE record at offset %zu lacks the CONTAINER flag", r->off);
    if (!vsw_zero(r->sel + 4, 4))
        return VS_FAIL(d, -EBADMSG, "DEVICE at offset %zu: selector reserved bytes set", r->off);
    if (r->len % VIRTIO_STATE_ALIGN)
        return VS_FAIL(d, -EBADMSG, "DEVICE at offset %zu: length %u not a multiple of 8", r->off,
                       r->len);
    for (unsigned i = 0; i < nprev; i++)
        if (prev[i].instance_id == s->instance_id)
            return VS_FAIL(d, -EBADMSG, "duplicate device instance id %u", s->instance_id);

    pos = r->off + VIRTIO_STATE_REC_HDR_LEN;
    end = pos + r->len;
    while (pos < end) {
        struct vs_rec in;
        if ((e = read_rec(d, pos, end, &in)))
            return e;
        if (in.type == VIRTIO_STATE_T_DEVICE || in.type == VIRTIO_STATE_T_END)
            return VS_FAIL(d, -EBADMSG, "device %u: %s inside a DEVICE container", s->instance_id,
                           virtio_state_type_name(in.type));
        e = rank_of(in.type) == R_NONE ? skip_unknown(d, &in, 2) : get_known(d, &in, s, &p);
        if (e)
            return e;
        pos = in.next;
    }
    if ((e = finish_device(d, &p, s)))
        return e;
    for (unsigned i = 0; i < nprev; i++)
        if (!strcmp(prev[i].id, s->id))
            return VS_FAIL(d, -EBADMSG, "duplicate device name %s", s->id);
    return 0;
}

/* Stream header: magic, version, lengths, CRC, flags. */
static int check_header(struct vs_dec *d, const uint8_t *b, size_t len, size_t *hlen)
{
    uint16_t major, minor;
    uint32_t header_len, flags, crc, want;
    uint64_t total;
    static const uint8_t zero_crc[4];

    if (len == 0)
        return VS_FAIL(d, -EBADMSG, "empty stream");
    if (len < 8)
        return VS_FAIL(d, -EBADMSG, "stream of %zu bytes is shorter than the magic", len);
    if (memcmp(b, VIRTIO_STATE_MAGIC, 8))
        return VS_FAIL(d, -EBADMSG, "bad magic (not a VIRTSTAT stream)");
    if (len < VIRTIO_STATE_HDR_LEN)
        return VS_FAIL(d, -EBADMSG, "truncated header (%zu bytes)", len);
    major = le16_get(b + VSW_OFF(vsw_stream_hdr, major));
    minor = le16_get(b + VSW_OFF(vsw_stream_hdr, minor));
    header_len = le32_get(b + VSW_OFF(vsw_stream_hdr, header_len));
    total = le64_get(b + VSW_OFF(vsw_stream_hdr, total_len));
    flags = le32_get(b + VSW_OFF(vsw_stream_hdr, flags));
    crc = le32_get(b + VSW_OFF(vsw_stream_hdr, crc32c));
    if (major != VIRTIO_STATE_MAJOR)
        return VS_FAIL(d, -EPROTO, "unsupported major version %u (this reader supports %u)", major,
                       VIRTIO_STATE_MAJOR);
    if (header_len < VIRTIO_STATE_HDR_LEN || header_len > VIRTIO_STATE_HDR_MAX ||
        header_len % VIRTIO_STATE_ALIGN || (minor == 0 && header_len != VIRTIO_STATE_HDR_LEN))
        return VS_FAIL(d, -EBADMSG, "bad header_len %u for version %u.%u", header_len, major,
                       minor);
    if (total > VIRTIO_STATE_MAX_TOTAL)
        return VS_FAIL(d, -E2BIG, "total_len %llu exceeds the %u-byte cap",
                       (unsigned long long)total, VIRTIO_STATE_MAX_TOTAL);
    if (total != len)
        return VS_FAIL(d, -EBADMSG, "total_len %llu but %zu bytes given", (unsigned long long)total,
                       len);
    if (header_len > total)
        return VS_FAIL(d, -EBADMSG, "header_len %u beyond the stream", header_len);
    want = virtio_state_crc32c(0, b, VSW_OFF(vsw_stream_hdr, crc32c));
    want = virtio_state_crc32c(want, zero_crc, sizeof(zero_crc));
    want = virtio_state_crc32c(want, b + VIRTIO_STATE_HDR_LEN, len - VIRTIO_STATE_HDR_LEN);
    if (crc != want)
        return VS_FAIL(d, -EBADMSG, "CRC32C mismatch (stored 0x%08x, computed 0x%08x)", crc, want);
    if (flags)
        return VS_FAIL(d, -EBADMSG, "unknown stream flags 0x%x", flags);
    /* A newer minor may extend the header; this reader ignores the extension. */
    *hlen = header_len;
    return 0;
}

int virtio_state_decode(const void *buf, size_t len, struct virtio_state *out, unsigned max,
                        unsigned *n, char *why, size_t whylen)
{
    struct vs_dec d = {.buf = buf, .len = len, .why = why, .whylen = whylen};
    unsigned ndev = 0;
    size_t pos = 0;
    int e;

    *n = 0;
    if (why && whylen)
        why[0] = '\0';
    if (!buf && len)
        return VS_FAIL(&d, -EINVAL, "no buffer");
    if ((e = check_header(&d, buf, len, &pos)))
        return e;
    for (;;) {
        struct vs_rec r;
        if (pos == d.len) {
            e = VS_FAIL(&d, -EBADMSG, "END record missing");
            goto err;
        }
        if ((e = read_rec(&d, pos, d.len, &r)))
            goto err;
        if (r.type == VIRTIO_STATE_T_END) {
            if (r.flags & VIRTIO_STATE_RF_CONTAINER || !vsw_zero(r.sel, 8)) {
                e = VS_FAIL(&d, -EBADMSG, "malformed END record at offset %zu", r.off);
                goto err;
            }
            if (r.next != d.len) {
                e = VS_FAIL(&d, -EBADMSG, "%zu bytes after the END record", d.len - r.next);
                goto err;
            }
            break;
        }
        if (r.type == VIRTIO_STATE_T_DEVICE) {
            if (ndev == VIRTIO_STATE_MAX_DEVICES) {
                e = VS_FAIL(&d, -E2BIG, "more than %u devices", VIRTIO_STATE_MAX_DEVICES);
                goto err;
            }
            if (ndev == max) {
                e = VS_FAIL(&d, -ENOSPC, "more than %u devices (room given by the caller)", max);
                goto err;
            }
            memset(&out[ndev], 0, sizeof(out[ndev]));
            ndev++; /* counted first, so a partly decoded device is freed below */
            e = get_device(&d, &r, &out[ndev - 1], out, ndev - 1);
        } else if (rank_of(r.type) != R_NONE) {
            e = VS_FAIL(&d, -EBADMSG, "%s record at offset %zu outside a DEVICE container",
                        virtio_state_type_name(r.type), r.off);
        } else {
            e = skip_unknown(&d, &r, 1);
        }
        if (e)
            goto err;
        pos = r.next;
    }
    if (ndev == 0) {
        e = VS_FAIL(&d, -EBADMSG, "stream holds no DEVICE");
        goto err;
    }
    if ((e = virtio_state_check_set(out, ndev, why, whylen)))
        goto err;
    *n = ndev;
    return 0;

err:
    for (unsigned i = 0; i < ndev; i++)
        virtio_state_free(&out[i]);
    return e;
}
