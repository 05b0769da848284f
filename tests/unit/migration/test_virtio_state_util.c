/* Fixtures for the VMSTATE-VIRTIO tests (see test_virtio_state.h). */
#include "tests/unit/migration/test_virtio_state.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "migration/virtio_state_wire.h"

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    cr_assert_not_null(p);
    return p;
}

static void fill_pattern(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 7);
}

static void set_vq(struct virtio_state_vq *v, uint16_t size, uint16_t max, uint64_t base)
{
    v->size = size;
    v->max_size_src = max;
    v->vector = VIRTIO_STATE_NO_VECTOR;
    v->enabled = 1;
    v->desc_addr = base;
    v->driver_addr = base + 0x1000;
    v->device_addr = base + 0x2000;
    v->signalled_used = VIRTIO_STATE_SIGNALLED_UNKNOWN;
}

static void fill_blk(struct virtio_state *s)
{
    memset(s, 0, sizeof(*s));
    s->instance_id = 1;
    strcpy(s->id, "blk0");
    s->device_id = VIRTIO_ID_BLOCK;
    s->transport = VIRTIO_STATE_TRANSPORT_MMIO;
    s->num_queues = 2;
    s->mmio_base = 0xd0000000;
    s->mmio_len = 0x1000;
    s->irq = 5;
    /* Two feature words: bit 70 proves more than 64 bits survive. */
    s->has_dev_features = true;
    s->dev_feat.n = 2;
    s->dev_feat.w[0] = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX) |
                       VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) | VIRTIO_BIT(9) | VIRTIO_BIT(1);
    s->dev_feat.w[1] = VIRTIO_BIT(70 - 64);
    s->drv_feat.n = 2;
    s->drv_feat.w[0] =
        VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | VIRTIO_BIT(9);
    s->drv_feat.w[1] = VIRTIO_BIT(70 - 64);
    s->has_backend_features = true;
    s->backend_feat.n = 1;
    s->backend_feat.w[0] = s->drv_feat.w[0] | VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM);
    s->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                VIRTIO_STATUS_DRIVER_OK;
    s->config_generation = 3;
    s->config_len = 60;
    fill_pattern(s->config, s->config_len, 0x11);
    s->mmio = (struct virtio_state_mmio){1, 1, 1, 3, 2};

    set_vq(&s->vq[0], 128, 256, 0x10000);
    s->vq[0].flags = VIRTIO_STATE_VQ_INFLIGHT_VALID;
    s->vq[0].last_avail_idx = 1000;
    s->vq[0].used_idx = 997;
    s->vq[0].signalled_used = 997;
    s->vq[0].n_inflight = 3;
    s->vq[0].inflight = xmalloc(3 * sizeof(*s->vq[0].inflight));
    s->vq[0].inflight[0] = (struct virtio_state_inflight){5, 10};
    s->vq[0].inflight[1] = (struct virtio_state_inflight){9, 11};
    s->vq[0].inflight[2] = (struct virtio_state_inflight){2, 15};

    set_vq(&s->vq[1], 64, 256, 0x20000);
    s->vq[1].flags = VIRTIO_STATE_VQ_DRAINED;
    s->vq[1].last_avail_idx = 65535;
    s->vq[1].used_idx = 65535;

    s->dev_rec_type = VIRTIO_STATE_T_BLK_STATE;
    s->has_opaque = true;
    s->opaque_optional = false;
    strcpy(s->opaque_kind, "vu-blk");
    s->opaque_len = 100;
    s->opaque = xmalloc(100);
    fill_pattern(s->opaque, 100, 0x42);
}

static void fill_net(struct virtio_state *s)
{
    memset(s, 0, sizeof(*s));
    s->instance_id = 2;
    strcpy(s->id, "net0");
    s->device_id = VIRTIO_ID_NET;
    s->transport = VIRTIO_STATE_TRANSPORT_MMIO;
    s->num_queues = 3;
    s->mmio_base = 0xd0001000;
    s->mmio_len = 0x1000;
    s->irq = 6;
    s->has_dev_features = true;
    s->dev_feat.n = 1;
    s->dev_feat.w[0] = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(5) | VIRTIO_BIT(16) |
                       VIRTIO_BIT(15) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
    s->drv_feat.n = 1;
    s->drv_feat.w[0] = s->dev_feat.w[0] & ~VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
    s->status = 0x0f;
    s->config_len = 12;
    fill_pattern(s->config, 12, 0x52);
    s->mmio.queue_sel = 2;

    set_vq(&s->vq[0], 256, 256, 0x40000);
    s->vq[0].flags = VIRTIO_STATE_VQ_INFLIGHT_VALID; /* valid, and empty */
    s->vq[0].last_avail_idx = 12;
    s->vq[0].used_idx = 12;
    s->vq[0].signalled_used = 11;
    set_vq(&s->vq[1], 256, 256, 0x50000);
    s->vq[1].last_avail_idx = 300;
    s->vq[1].used_idx = 298;
    s->vq[1].signalled_used = 298;
    /* Queue 2 never configured: size 0, not ready, no addresses. */
    s->vq[2].max_size_src = 64;
    s->vq[2].vector = VIRTIO_STATE_NO_VECTOR;

    s->dev_rec_type = VIRTIO_STATE_T_NET_STATE;
    s->dev_blob_len = 37;
    s->dev_blob = xmalloc(37);
    fill_pattern(s->dev_blob, 37, 0x99);
    s->has_opaque = true;
    s->opaque_optional = true;
    strcpy(s->opaque_kind, "vdpa");
}

void vst_fill_full(struct virtio_state s[2])
{
    fill_blk(&s[0]);
    fill_net(&s[1]);
}

void vst_fill_small(struct virtio_state *s)
{
    memset(s, 0, sizeof(*s));
    s->instance_id = 7;
    strcpy(s->id, "rng0");
    s->device_id = VIRTIO_ID_RNG;
    s->transport = VIRTIO_STATE_TRANSPORT_MMIO;
    s->num_queues = 1;
    s->mmio_base = 0xd0000000;
    s->mmio_len = 0x1000;
    s->irq = 5;
    s->has_dev_features = true;
    s->dev_feat.n = 1;
    s->dev_feat.w[0] = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
    s->drv_feat.n = 1;
    s->drv_feat.w[0] = VIRTIO_BIT(VIRTIO_F_VERSION_1);
    s->status = 0x0f;
    s->mmio.interrupt_status = 1;
    set_vq(&s->vq[0], 256, 256, 0x100000);
    s->vq[0].flags = VIRTIO_STATE_VQ_DRAINED;
    s->vq[0].last_avail_idx = 5;
    s->vq[0].used_idx = 5;
    s->vq[0].signalled_used = 5;
}

void vst_release(struct virtio_state *s, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        virtio_state_free(&s[i]);
}

void vst_encode(const struct virtio_state *s, unsigned n, struct vst_buf *b)
{
    struct vstate_out o;
    vstate_out_init(&o);
    cr_assert_eq(virtio_state_encode_many(s, n, &o), 0, "encode failed");
    b->len = o.len;
    b->p = xmalloc(o.len);
    memcpy(b->p, o.buf, o.len);
    vstate_out_free(&o);
}

void vst_small(struct vst_buf *b)
{
    struct virtio_state s;
    vst_fill_small(&s);
    vst_encode(&s, 1, b);
}

void vst_full(struct vst_buf *b)
{
    struct virtio_state *s = calloc(2, sizeof(*s));
    cr_assert_not_null(s);
    vst_fill_full(s);
    vst_encode(s, 2, b);
    vst_release(s, 2);
    free(s);
}

void vst_buf_free(struct vst_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
}

size_t vst_rec_size(const struct vst_buf *b, size_t at)
{
    uint32_t len = le32_get(b->p + at + VSW_OFF(vsw_rec_hdr, length));
    return VIRTIO_STATE_REC_HDR_LEN + (((size_t)len + 7) & ~(size_t)7);
}

/* Records start after header_len, which a test may have grown. */
static size_t hdr_len(const struct vst_buf *b)
{
    return le32_get(b->p + VSW_OFF(vsw_stream_hdr, header_len));
}

static bool find_in(const struct vst_buf *b, size_t pos, size_t end, uint16_t type, unsigned *nth,
                    size_t *found)
{
    while (pos + VIRTIO_STATE_REC_HDR_LEN <= end) {
        uint16_t t = le16_get(b->p + pos);
        if (t == type && (*nth)-- == 0) {
            *found = pos;
            return true;
        }
        if (t == VIRTIO_STATE_T_DEVICE && find_in(b, pos + VIRTIO_STATE_REC_HDR_LEN,
                                                  pos + vst_rec_size(b, pos), type, nth, found))
            return true;
        pos += vst_rec_size(b, pos);
    }
    return false;
}

size_t vst_find(const struct vst_buf *b, uint16_t type, unsigned nth)
{
    size_t found = 0;
    cr_assert(find_in(b, hdr_len(b), b->len, type, &nth, &found), "record 0x%04x not found", type);
    return found;
}

uint8_t *vst_val(struct vst_buf *b, uint16_t type, unsigned nth)
{
    return b->p + vst_find(b, type, nth) + VIRTIO_STATE_REC_HDR_LEN;
}

void vst_set_len(struct vst_buf *b, size_t at, uint32_t len)
{
    le32_put(b->p + at + VSW_OFF(vsw_rec_hdr, length), len);
}

void vst_drop(struct vst_buf *b, uint16_t type, unsigned nth)
{
    size_t at = vst_find(b, type, nth);
    vst_splice(b, at, vst_rec_size(b, at), NULL, 0);
}

void vst_fix_crc(struct vst_buf *b)
{
    le32_put(b->p + VSW_OFF(vsw_stream_hdr, crc32c), 0);
    le32_put(b->p + VSW_OFF(vsw_stream_hdr, crc32c), virtio_state_crc32c(0, b->p, b->len));
}

void vst_splice(struct vst_buf *b, size_t at, size_t old_n, const void *src, size_t new_n)
{
    size_t pos = hdr_len(b), dev = SIZE_MAX;

    /* Find the DEVICE strictly enclosing `at`, before the bytes move. */
    while (pos + VIRTIO_STATE_REC_HDR_LEN <= b->len) {
        size_t sz = vst_rec_size(b, pos);
        if (le16_get(b->p + pos) == VIRTIO_STATE_T_DEVICE && pos < at && at < pos + sz)
            dev = pos;
        pos += sz;
    }
    cr_assert_leq(at + old_n, b->len);
    uint8_t *p = xmalloc(b->len - old_n + new_n);
    memcpy(p, b->p, at);
    if (src)
        memcpy(p + at, src, new_n);
    else
        memset(p + at, 0, new_n);
    memcpy(p + at + new_n, b->p + at + old_n, b->len - at - old_n);
    free(b->p);
    b->p = p;
    b->len = b->len - old_n + new_n;
    if (dev != SIZE_MAX) {
        uint8_t *l = b->p + dev + VSW_OFF(vsw_rec_hdr, length);
        le32_put(l, (uint32_t)(le32_get(l) + new_n - old_n));
    }
    le64_put(b->p + VSW_OFF(vsw_stream_hdr, total_len), b->len);
    vst_fix_crc(b);
}

size_t vst_make_rec(uint8_t *dst, uint16_t type, uint8_t flags, const uint8_t sel[8],
                    const void *val, uint32_t len)
{
    size_t total = VIRTIO_STATE_REC_HDR_LEN + ((len + 7u) & ~7u);
    memset(dst, 0, total);
    le16_put(dst + VSW_OFF(vsw_rec_hdr, type), type);
    dst[VSW_OFF(vsw_rec_hdr, flags)] = flags;
    if (sel)
        memcpy(dst + VSW_OFF(vsw_rec_hdr, selector), sel, 8);
    le32_put(dst + VSW_OFF(vsw_rec_hdr, length), len);
    if (len)
        memcpy(dst + VIRTIO_STATE_REC_HDR_LEN, val, len);
    return total;
}

/* Room for the 257-device test without a fresh 1.5 MiB calloc per call. */
#define OUT_MAX (VIRTIO_STATE_MAX_DEVICES + 8)
static struct virtio_state *out_array(void)
{
    static struct virtio_state *out;
    if (!out) {
        out = calloc(OUT_MAX, sizeof(*out));
        cr_assert_not_null(out);
    }
    return out;
}

void vst_expect_reject(const struct vst_buf *b, int err, const char *needle)
{
    static const struct virtio_state zero;
    struct virtio_state *out = out_array();
    char why[256];
    unsigned n = 99;
    int r = virtio_state_decode(b->p, b->len, out, OUT_MAX, &n, why, sizeof(why));

    cr_assert_eq(r, err, "decode returned %d (%s), expected %d", r, r ? why : "ok", err);
    cr_assert_eq(n, 0);
    cr_assert(strstr(why, needle), "reason \"%s\" lacks \"%s\"", why, needle);
    for (unsigned i = 0; i < 2; i++)
        cr_assert(!memcmp(&out[i], &zero, sizeof(zero)), "output %u not cleared", i);
}

void vst_expect_ok(const struct vst_buf *b, struct virtio_state *out, unsigned max, unsigned n)
{
    char why[256] = "";
    unsigned got = 0;
    int r = virtio_state_decode(b->p, b->len, out, max, &got, why, sizeof(why));
    cr_assert_eq(r, 0, "decode failed: %d %s", r, why);
    cr_assert_eq(got, n);
}

void vst_assert_equal(const struct virtio_state *a, const struct virtio_state *b)
{
    struct virtio_state *x = xmalloc(sizeof(*x)), *y = xmalloc(sizeof(*y));

    /* memcpy, not assignment: padding bytes must be copied too for the memcmp below. */
    memcpy(x, a, sizeof(*x));
    memcpy(y, b, sizeof(*y));
    for (unsigned q = 0; q < VIRTIO_STATE_MAX_DEV_QUEUES; q++) {
        cr_assert_eq(a->vq[q].n_inflight, b->vq[q].n_inflight, "vq %u in-flight count", q);
        for (unsigned i = 0; i < a->vq[q].n_inflight; i++) {
            cr_assert_eq(a->vq[q].inflight[i].head, b->vq[q].inflight[i].head);
            cr_assert_eq(a->vq[q].inflight[i].order, b->vq[q].inflight[i].order);
        }
        x->vq[q].inflight = y->vq[q].inflight = NULL;
    }
    cr_assert_eq(a->dev_blob_len, b->dev_blob_len);
    cr_assert(!a->dev_blob_len || !memcmp(a->dev_blob, b->dev_blob, a->dev_blob_len));
    cr_assert_eq(a->opaque_len, b->opaque_len);
    cr_assert(!a->opaque_len || !memcmp(a->opaque, b->opaque, a->opaque_len));
    x->dev_blob = y->dev_blob = x->opaque = y->opaque = NULL;
    cr_assert(!memcmp(x, y, sizeof(*x)), "states of %s / %s differ", a->id, b->id);
    free(x);
    free(y);
}

/* Record types whose value has a fixed layout: a longer record is a newer minor's tail (section 6).
 */
static bool has_ignored_tail(uint16_t type)
{
    switch (type) {
    case VIRTIO_STATE_T_DEVICE_INFO:
    case VIRTIO_STATE_T_CONFIG_SPACE: /* bytes past 8 + len */
    case VIRTIO_STATE_T_MMIO_TRANSPORT:
    case VIRTIO_STATE_T_DEVICE_STATUS:
    case VIRTIO_STATE_T_VQ_CFG:
    case VIRTIO_STATE_T_VQ_STATE:
    case VIRTIO_STATE_T_VQ_INFLIGHT: /* bytes past count entries */
    case VIRTIO_STATE_T_BLK_STATE:
        return true;
    default:
        return false;
    }
}

/* Is value byte `v` of a record of `type` a reserved field (written 0, ignored by readers)? */
static bool reserved_value_byte(uint16_t type, size_t v)
{
#define IN(st, f) (v >= VSW_OFF(st, f) && v < VSW_OFF(st, f) + sizeof(((struct st *)0)->f))
    switch (type) {
    case VIRTIO_STATE_T_DEVICE_INFO:
        return IN(vsw_device_info, reserved);
    case VIRTIO_STATE_T_MMIO_TRANSPORT:
        return IN(vsw_mmio, reserved);
    case VIRTIO_STATE_T_VQ_CFG:
        return IN(vsw_vq_cfg, reserved);
    case VIRTIO_STATE_T_VQ_STATE:
        return IN(vsw_vq_state, reserved);
    case VIRTIO_STATE_T_VQ_INFLIGHT: {
        const size_t h = sizeof(struct vsw_vq_inflight_hdr);
        if (v < h)
            return IN(vsw_vq_inflight_hdr, reserved);
        v = (v - h) % sizeof(struct vsw_inflight_entry);
        return IN(vsw_inflight_entry, reserved0) || IN(vsw_inflight_entry, reserved1);
    }
    default:
        return false;
    }
#undef IN
}

/* Types this reader parses (an OPTIONAL record of any other type is skipped). */
static bool known_type(uint16_t type)
{
    switch (type) {
    case VIRTIO_STATE_T_DEVICE:
    case VIRTIO_STATE_T_END:
    case VIRTIO_STATE_T_DEVICE_INFO:
    case VIRTIO_STATE_T_DEVICE_NAME:
    case VIRTIO_STATE_T_DEV_FEATURES:
    case VIRTIO_STATE_T_DRV_FEATURES:
    case VIRTIO_STATE_T_BACKEND_FEATURES:
    case VIRTIO_STATE_T_CONFIG_SPACE:
    case VIRTIO_STATE_T_MMIO_TRANSPORT:
    case VIRTIO_STATE_T_DEVICE_STATUS:
    case VIRTIO_STATE_T_VQ_CFG:
    case VIRTIO_STATE_T_VQ_STATE:
    case VIRTIO_STATE_T_VQ_INFLIGHT:
    case VIRTIO_STATE_T_BLK_STATE:
    case VIRTIO_STATE_T_NET_STATE:
    case VIRTIO_STATE_T_CONSOLE_STATE:
    case VIRTIO_STATE_T_RNG_STATE:
    case VIRTIO_STATE_T_BLK_DEV_STATE:
    case VIRTIO_STATE_T_BALLOON_STATE:
    case VIRTIO_STATE_T_VSOCK_STATE:
    case VIRTIO_STATE_T_BACKEND_OPAQUE:
        return true;
    default:
        return false;
    }
}

/*
 * Bytes of the value of the record at `h` that a reader uses once bit
 * `mask` of byte `off` is flipped, if the flip shrinks CONFIG_SPACE's len
 * or VQ_INFLIGHT's count (what follows is then a tail); 0 otherwise.
 */
static size_t shrunk_payload(const uint8_t *h, size_t off, unsigned mask)
{
    uint16_t type = le16_get(h + VSW_OFF(vsw_rec_hdr, type));
    const uint8_t *v = h + VIRTIO_STATE_REC_HDR_LEN;
    size_t f, w, unit, hdr;

    if (type == VIRTIO_STATE_T_CONFIG_SPACE) {
        f = VSW_OFF(vsw_config_hdr, len), w = 4, unit = 1, hdr = sizeof(struct vsw_config_hdr);
    } else if (type == VIRTIO_STATE_T_VQ_INFLIGHT) {
        f = VSW_OFF(vsw_vq_inflight_hdr, count), w = 2, unit = sizeof(struct vsw_inflight_entry);
        hdr = sizeof(struct vsw_vq_inflight_hdr);
    } else {
        return 0;
    }
    if (off < VIRTIO_STATE_REC_HDR_LEN + f || off >= VIRTIO_STATE_REC_HDR_LEN + f + w)
        return 0;
    uint32_t n = w == 4 ? le32_get(v + f) : le16_get(v + f);
    uint32_t flipped = n ^ ((uint32_t)mask << (8 * (off - VIRTIO_STATE_REC_HDR_LEN - f)));
    return flipped < n ? hdr + (size_t)flipped * unit : 0;
}

/* vst_flip_meaning() for a bit `off` bytes into the record at `h`. */
static enum vst_flip rec_flip(const uint8_t *h, size_t off, unsigned mask)
{
    uint16_t type = le16_get(h + VSW_OFF(vsw_rec_hdr, type));
    uint32_t len = le32_get(h + VSW_OFF(vsw_rec_hdr, length));
    uint8_t flags = h[VSW_OFF(vsw_rec_hdr, flags)];
    const size_t lo = VSW_OFF(vsw_rec_hdr, length);

    if (off < 2) {
        uint16_t t = type ^ (uint16_t)(mask << (8 * off));
        /* An OPTIONAL record that now has a type this reader does not know is skipped. */
        bool skipped = (flags & VIRTIO_STATE_RF_OPTIONAL) && !(flags & VIRTIO_STATE_RF_CONTAINER) &&
                       !known_type(t);
        return skipped ? VST_FLIP_SKIPS_RECORD : VST_FLIP_VALUE;
    }
    if (off == VSW_OFF(vsw_rec_hdr, flags))
        /* OPTIONAL only matters for a type the reader does not know; opaque keeps it. */
        return mask == VIRTIO_STATE_RF_OPTIONAL && type != VIRTIO_STATE_T_BACKEND_OPAQUE
                   ? VST_FLIP_IGNORED
                   : VST_FLIP_VALUE;
    if (off >= lo && off < VIRTIO_STATE_REC_HDR_LEN) {
        uint32_t flipped = len ^ ((uint32_t)mask << (8 * (off - lo)));
        /* Longer, into the zero padding: a tail this reader ignores. */
        return has_ignored_tail(type) && flipped > len && flipped <= ((len + 7u) & ~7u)
                   ? VST_FLIP_IGNORED
                   : VST_FLIP_VALUE;
    }
    if (off >= VIRTIO_STATE_REC_HDR_LEN &&
        reserved_value_byte(type, off - VIRTIO_STATE_REC_HDR_LEN))
        return VST_FLIP_IGNORED;
    if (shrunk_payload(h, off, mask))
        return VST_FLIP_SHORTER;
    return VST_FLIP_VALUE;
}

enum vst_flip vst_flip_meaning(const struct vst_buf *b, size_t bit, struct vst_buf *want)
{
    size_t byte = bit / 8, pos = hdr_len(b), end = b->len;
    unsigned mask = 1u << (bit % 8);
    enum vst_flip k = VST_FLIP_VALUE;
    size_t at = 0;

    if (byte < VIRTIO_STATE_HDR_LEN) {
        /* A newer minor is accepted and read by the same rules. */
        if (byte >= VSW_OFF(vsw_stream_hdr, minor) && byte < VSW_OFF(vsw_stream_hdr, header_len))
            k = VST_FLIP_IGNORED;
    } else {
        while (pos + VIRTIO_STATE_REC_HDR_LEN <= end) {
            size_t sz = vst_rec_size(b, pos);
            if (byte < pos + sz) {
                if (le16_get(b->p + pos) == VIRTIO_STATE_T_DEVICE &&
                    byte >= pos + VIRTIO_STATE_REC_HDR_LEN) {
                    end = pos + sz;
                    pos += VIRTIO_STATE_REC_HDR_LEN;
                    continue;
                }
                k = rec_flip(b->p + pos, byte - pos, mask);
                at = pos;
                break;
            }
            pos += sz;
        }
    }
    want->len = b->len;
    want->p = xmalloc(b->len);
    memcpy(want->p, b->p, b->len);
    if (k == VST_FLIP_VALUE) {
        want->p[byte] ^= (uint8_t)mask;
        vst_fix_crc(want);
    } else if (k == VST_FLIP_SKIPS_RECORD) {
        vst_splice(want, at, vst_rec_size(want, at), NULL, 0);
    } else if (k == VST_FLIP_SHORTER) {
        /* The same record, cut after the payload its new len/count covers. */
        const uint8_t *h = b->p + at;
        size_t used = shrunk_payload(h, byte - at, mask);
        uint8_t *v = xmalloc(used ? used : 1), *rec = xmalloc(VIRTIO_STATE_REC_HDR_LEN + used + 8);
        memcpy(v, h + VIRTIO_STATE_REC_HDR_LEN, used);
        v[byte - at - VIRTIO_STATE_REC_HDR_LEN] ^= (uint8_t)mask;
        size_t n = vst_make_rec(rec, le16_get(h), h[VSW_OFF(vsw_rec_hdr, flags)],
                                h + VSW_OFF(vsw_rec_hdr, selector), v, (uint32_t)used);
        vst_splice(want, at, vst_rec_size(want, at), rec, n);
        free(v);
        free(rec);
    }
    return k;
}
