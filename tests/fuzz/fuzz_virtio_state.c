/*
 * Fuzz target: the VMSTATE-VIRTIO stream decoder and encoder
 * (migration/virtio_state*.c).
 *
 * Why: on migration and snapshot restore this decoder reads bytes a
 * compromised source host wrote (security.md G2/G3, "snapshot_restore"): it
 * must bound every count, length and index before use, and accept only
 * states that virtio_state_check() approves.
 *
 * The first byte holds flags, the rest is a stream:
 *   bit 0: set header total_len to the real length; bit 1: recompute the
 *   CRC32C, so mutated streams get past framing into the record parsers;
 *   bit 2: encoder mode: the rest fills a struct virtio_state field by
 *   field, which is encoded (if the encoder accepts it) and decoded back.
 * Checked (round trip): a stream that decodes re-encodes, the re-encoding
 * decodes to the same states (decode(encode(decode(x))) == decode(x)) and
 * encodes to the same bytes; every decoded state passes virtio_state_check();
 * a refusal leaves *n = 0 and a one-line reason.  In encoder mode: a state
 * that passes virtio_state_check() encodes, and decodes back to itself.
 */
#include "tests/fuzz/fuzz.h"

#include <errno.h>

#include "migration/virtio_state.h"
#include "migration/vstate.h"

#define FZ_MAX_DEV       8
#define FZ_WHY           256
#define FZ_F_LEN         1
#define FZ_F_CRC         2
#define FZ_F_ENCODE      4
#define FZ_HDR_TOTAL_LEN 16
#define FZ_HDR_CRC       28

static struct virtio_state fz_a[FZ_MAX_DEV], fz_b[FZ_MAX_DEV];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static bool fz_bytes_eq(const void *a, const void *b, size_t n)
{
    return n == 0 || (a && b && !memcmp(a, b, n));
}

/* Field-wise equality of two decoded states (pointers compared by contents). */
static bool fz_state_eq(const struct virtio_state *a, const struct virtio_state *b)
{
    struct virtio_state x = *a, y = *b;
    for (unsigned q = 0; q < VIRTIO_STATE_MAX_DEV_QUEUES; q++) {
        const struct virtio_state_vq *va = &a->vq[q], *vb = &b->vq[q];
        bool same = va->n_inflight == vb->n_inflight;
        for (unsigned i = 0; same && i < va->n_inflight; i++)
            same = va->inflight[i].head == vb->inflight[i].head &&
                   va->inflight[i].order == vb->inflight[i].order;
        if (!same) {
            fprintf(stderr, "fuzz: queue %u in-flight lists differ (%u vs %u entries)\n", q,
                    va->n_inflight, vb->n_inflight);
            return false;
        }
        x.vq[q].inflight = y.vq[q].inflight = NULL;
    }
    if (!fz_bytes_eq(a->dev_blob, b->dev_blob, a->dev_blob_len) ||
        !fz_bytes_eq(a->opaque, b->opaque, a->opaque_len)) {
        fprintf(stderr, "fuzz: device blob (type 0x%x, %u bytes vs 0x%x, %u) or opaque differ\n",
                a->dev_rec_type, a->dev_blob_len, b->dev_rec_type, b->dev_blob_len);
        return false;
    }
    x.dev_blob = y.dev_blob = NULL;
    x.opaque = y.opaque = NULL;
    const uint8_t *px = (const uint8_t *)&x, *py = (const uint8_t *)&y;
    for (size_t i = 0; i < sizeof(x); i++) {
        if (px[i] != py[i]) {
            /* Name the field for whoever triages the crash. */
            fprintf(stderr, "fuzz: states differ at byte %zu of struct virtio_state\n", i);
            return false;
        }
    }
    return true;
}

static void fz_free(struct virtio_state *s, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        virtio_state_free(&s[i]);
}

/* decode(x) accepted as fz_a[0..n): check the round trip. */
static void fz_round_trip(unsigned n)
{
    char why[FZ_WHY] = "";
    for (unsigned i = 0; i < n; i++)
        FZ_CHECK(virtio_state_check(&fz_a[i], why, sizeof(why)) == 0,
                 "decoded state %u fails check: %s", i, why);

    struct vstate_out e1, e2;
    vstate_out_init(&e1);
    vstate_out_init(&e2);
    int r = virtio_state_encode_many(fz_a, n, &e1);
    FZ_CHECK(r == 0, "decoded states do not encode: %d", r);

    unsigned n2 = 0;
    r = virtio_state_decode(e1.buf, e1.len, fz_b, FZ_MAX_DEV, &n2, why, sizeof(why));
    FZ_CHECK(r == 0, "own encoding does not decode: %d (%s)", r, why);
    FZ_CHECK(n2 == n, "%u states became %u", n, n2);
    for (unsigned i = 0; i < n; i++)
        FZ_CHECK(fz_state_eq(&fz_a[i], &fz_b[i]), "state %u changed in the round trip", i);

    FZ_CHECK(virtio_state_encode_many(fz_b, n2, &e2) == 0, "re-encoding failed");
    FZ_CHECK(e1.len == e2.len && !memcmp(e1.buf, e2.buf, e1.len), "encoding not stable");
    fz_free(fz_b, n2);
    vstate_out_free(&e1);
    vstate_out_free(&e2);
}

static void fz_decode(const uint8_t *p, size_t len)
{
    char why[FZ_WHY];
    memset(why, 0, sizeof(why));
    unsigned n = 12345;
    int r = virtio_state_decode(p, len, fz_a, FZ_MAX_DEV, &n, why, sizeof(why));
    if (r < 0) {
        FZ_CHECK(n == 0, "refusal with n = %u", n);
        FZ_CHECK(r == -EBADMSG || r == -EPROTO || r == -E2BIG || r == -ENOSPC || r == -EINVAL ||
                     r == -ENOMEM,
                 "unexpected error %d", r);
        FZ_CHECK(why[0] && memchr(why, '\0', sizeof(why)) && !strchr(why, '\n'),
                 "reason is not one line");
        for (unsigned i = 0; i < FZ_MAX_DEV; i++)
            FZ_CHECK(!fz_a[i].dev_blob && !fz_a[i].opaque, "refusal left allocations");
        return;
    }
    FZ_CHECK(n >= 1 && n <= FZ_MAX_DEV, "n = %u", n);
    fz_round_trip(n);
    fz_free(fz_a, n);
}

/* Encoder mode: build one state from fuzz bytes. */
static void fz_encode(struct fz_in *in)
{
    struct virtio_state *s = &fz_a[0];
    memset(s, 0, sizeof(*s));
    size_t got;
    s->instance_id = fz_u32(in);
    const uint8_t *name = fz_take(in, fz_u8(in) % VIRTIO_ID_LEN, &got);
    memcpy(s->id, name, got);
    /* The id is a C string: bytes after its NUL are not part of the state. */
    size_t idlen = strnlen(s->id, sizeof(s->id));
    memset(s->id + idlen, 0, sizeof(s->id) - idlen);
    s->device_id = fz_u8(in);
    s->transport = fz_u8(in) % 3;
    s->num_queues = fz_u8(in) % (VIRTIO_STATE_MAX_DEV_QUEUES + 2);
    s->mmio_base = fz_u64(in);
    s->mmio_len = fz_u32(in);
    s->irq = fz_u32(in);
    s->has_dev_features = fz_u8(in) & 1;
    s->dev_feat.n = fz_u8(in) % 4;
    s->drv_feat.n = fz_u8(in) % 4;
    for (unsigned i = 0; i < 3; i++) {
        s->dev_feat.w[i] = fz_u64(in);
        s->drv_feat.w[i] = fz_u64(in);
    }
    s->status = fz_u8(in);
    s->config_generation = fz_u32(in);
    s->config_len = fz_u16(in) % 300;
    const uint8_t *cfg = fz_take(in, s->config_len, &got);
    memcpy(s->config, cfg, got);
    s->mmio.dev_features_sel = fz_u8(in);
    s->mmio.drv_features_sel = fz_u8(in);
    s->mmio.queue_sel = fz_u8(in);
    s->mmio.interrupt_status = fz_u8(in);
    struct virtio_state_inflight infl[VIRTIO_STATE_MAX_DEV_QUEUES][4];
    for (unsigned q = 0; q < VIRTIO_STATE_MAX_DEV_QUEUES; q++) {
        struct virtio_state_vq *v = &s->vq[q];
        v->size = fz_u16(in);
        v->vector = fz_u16(in);
        v->enabled = fz_u8(in) % 3;
        v->desc_addr = fz_u64(in);
        v->driver_addr = fz_u64(in);
        v->device_addr = fz_u64(in);
        v->ring = fz_u8(in) % 3;
        v->flags = fz_u8(in) % 4;
        v->max_size_src = fz_u16(in);
        v->last_avail_idx = fz_u16(in);
        v->used_idx = fz_u16(in);
        v->signalled_used = fz_u32(in);
        v->n_inflight = fz_u8(in) % 5;
        for (unsigned i = 0; i < v->n_inflight; i++)
            infl[q][i] = (struct virtio_state_inflight){fz_u16(in), fz_u64(in)};
        v->inflight = v->n_inflight ? infl[q] : NULL;
    }
    /* What is not on the wire stays zero, as the decoder leaves it. */
    if (!s->has_dev_features)
        s->dev_feat.n = 0;
    for (unsigned i = s->dev_feat.n; i < VIRTIO_STATE_MAX_FEATURE_WORDS; i++)
        s->dev_feat.w[i] = 0;
    for (unsigned i = s->drv_feat.n; i < VIRTIO_STATE_MAX_FEATURE_WORDS; i++)
        s->drv_feat.w[i] = 0;
    for (unsigned q = s->num_queues; q < VIRTIO_STATE_MAX_DEV_QUEUES; q++)
        memset(&s->vq[q], 0, sizeof(s->vq[q]));
    uint8_t blob[64];
    s->dev_rec_type = fz_u16(in);
    s->dev_blob_len = fz_u8(in) % (sizeof(blob) + 1);
    memset(blob, 0, sizeof(blob));
    memcpy(blob, fz_take(in, s->dev_blob_len, &got), got);
    s->dev_blob = s->dev_blob_len ? blob : NULL;

    char why[FZ_WHY];
    struct vstate_out o;
    vstate_out_init(&o);
    int checked = virtio_state_check(s, why, sizeof(why));
    int r = virtio_state_encode(s, &o);
    if (checked == 0)
        FZ_CHECK(r == 0, "a state that passes check does not encode: %d", r);
    if (r == 0 && checked == 0) {
        unsigned n = 0;
        r = virtio_state_decode(o.buf, o.len, fz_b, FZ_MAX_DEV, &n, why, sizeof(why));
        FZ_CHECK(r == 0 && n == 1, "checked state does not decode: %d (%s)", r, why);
        /* The decoder owns its copies; compare them with what was encoded. */
        FZ_CHECK(fz_state_eq(s, &fz_b[0]), "state changed through encode/decode");
        fz_free(fz_b, n);
    } else if (r != 0) {
        FZ_CHECK(o.len == 0, "failed encode appended %zu bytes", o.len);
    }
    vstate_out_free(&o);
    memset(s, 0, sizeof(*s)); /* it points at stack arrays */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in;
    fz_init(&in, data, size);
    unsigned flags = fz_u8(&in);
    if (flags & FZ_F_ENCODE) {
        fz_encode(&in);
        return 0;
    }
    size_t len = fz_left(&in);
    uint8_t *buf = malloc(len ? len : 1);
    memcpy(buf, data + in.pos, len);
    if ((flags & FZ_F_LEN) && len >= FZ_HDR_TOTAL_LEN + 8)
        le64_put(buf + FZ_HDR_TOTAL_LEN, len);
    if ((flags & FZ_F_CRC) && len >= FZ_HDR_CRC + 4) {
        le32_put(buf + FZ_HDR_CRC, 0);
        le32_put(buf + FZ_HDR_CRC, virtio_state_crc32c(0, buf, len));
    }
    fz_decode(buf, len);
    free(buf);
    return 0;
}
