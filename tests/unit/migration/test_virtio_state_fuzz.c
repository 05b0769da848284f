/*
 * VMSTATE-VIRTIO TLV v1 robustness: every single-bit flip (with the old
 * CRC, and with the CRC recomputed), every
 * truncation, random garbage of many lengths, and random damage behind a
 * repaired CRC (so the record parser itself is exercised, not only the
 * checksum).  Run under ASan+UBSan by `make test-san`: the decoder must
 * never read out of bounds, leak, or accept a stream it cannot re-encode.
 */
#include "tests/unit/migration/test_virtio_state.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "migration/virtio_state_wire.h"

#define MAXDEV 4

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static struct virtio_state *outs(void)
{
    static struct virtio_state *o;
    if (!o)
        o = calloc(MAXDEV, sizeof(*o));
    cr_assert_not_null(o);
    return o;
}

/*
 * Decode; if accepted, the result must re-encode and decode to the same
 * bytes (a stream the decoder takes is one the encoder can reproduce).
 * Returns the decoder's result.
 */
static int decode_checked(const uint8_t *p, size_t len)
{
    struct virtio_state *o = outs();
    unsigned n = 0;
    char why[256];
    int r = virtio_state_decode(p, len, o, MAXDEV, &n, why, sizeof(why));

    if (r) {
        cr_assert_eq(n, 0);
        cr_assert(why[0], "refusal without a reason");
        return r;
    }
    struct vst_buf a, c;
    vst_encode(o, n, &a);
    vst_release(o, n);
    vst_expect_ok(&a, o, MAXDEV, n);
    vst_encode(o, n, &c);
    vst_release(o, n);
    cr_assert_eq(a.len, c.len);
    cr_assert(!memcmp(a.p, c.p, a.len), "re-encoding is not stable");
    vst_buf_free(&a);
    vst_buf_free(&c);
    return 0;
}

/*
 * Decode a stream the test expects refused; returns the reason.  The
 * caller's array must come back owning nothing (n stays 0).
 */
static const char *refusal(const uint8_t *p, size_t len, char *why, size_t whylen)
{
    struct virtio_state *o = outs();
    unsigned n = 0;
    int r = virtio_state_decode(p, len, o, MAXDEV, &n, why, whylen);
    cr_assert_neq(r, 0, "accepted");
    cr_assert_eq(n, 0);
    cr_assert(why[0], "refusal without a reason");
    return why;
}

/*
 * The CRC layer alone: every single-bit flip with the CRC left as it was is
 * refused, and by the CRC unless a header field checked before it (magic,
 * major, header_len, total_len) already gave the stream away.  Nothing
 * after the CRC check is reached, so this says nothing about the parser:
 * every_bit_flip_behind_valid_crc does that.
 */
static void flip_all_bits_keep_crc(struct vst_buf *b)
{
    const size_t pre_crc_end = VSW_OFF(vsw_stream_hdr, flags);
    unsigned by_crc = 0;
    char why[256];

    for (size_t bit = 0; bit < b->len * 8; bit++) {
        size_t byte = bit / 8;
        b->p[byte] ^= (uint8_t)(1u << (bit % 8));
        refusal(b->p, b->len, why, sizeof(why));
        if (byte >= pre_crc_end || (byte >= VSW_OFF(vsw_stream_hdr, minor) &&
                                    byte < VSW_OFF(vsw_stream_hdr, header_len))) {
            cr_assert(strstr(why, "CRC32C mismatch"), "flip of bit %zu: '%s', not the CRC", bit,
                      why);
            by_crc++;
        }
        b->p[byte] ^= (uint8_t)(1u << (bit % 8));
    }
    cr_assert_eq(decode_checked(b->p, b->len), 0);
    cr_log_info("CRC: %u of %zu flips refused by the CRC itself", by_crc, b->len * 8);
}

Test(virtio_state_fuzz, every_bit_flip_refused_by_crc_small)
{
    struct virtio_state s;
    struct vst_buf b;
    vst_fill_small(&s);
    vst_encode(&s, 1, &b);
    flip_all_bits_keep_crc(&b);
    vst_buf_free(&b);
}

Test(virtio_state_fuzz, every_bit_flip_refused_by_crc_full, .timeout = 120)
{
    struct vst_buf b;
    vst_full(&b);
    flip_all_bits_keep_crc(&b);
    vst_buf_free(&b);
}

/*
 * The same flips with the CRC recomputed, so the record parser and the
 * semantic check must judge each one on their own.  A refused stream gives
 * the caller nothing; an accepted one must mean exactly what its bytes say:
 * the decoded state encodes back to the flipped stream byte for byte (a
 * legitimate different value), or, for a bit the format tells readers to
 * ignore, to the unflipped stream (vst_flip_meaning).  Anything else is a
 * misparse.  The devices' side of the same sweep is in
 * tests/unit/devices/virtio/test_snapshot_flip.c.
 */
static void flip_all_bits_fix_crc(const struct vst_buf *orig, unsigned ndev)
{
    struct vst_buf b = {malloc(orig->len), orig->len};
    unsigned refused = 0, accepted = 0, ignored = 0;

    cr_assert_not_null(b.p);
    for (size_t bit = 0; bit < orig->len * 8; bit++) {
        size_t byte = bit / 8;
        /* Recomputing the CRC would undo a flip inside it. */
        if (byte >= VSW_OFF(vsw_stream_hdr, crc32c) && byte < VIRTIO_STATE_HDR_LEN)
            continue;
        memcpy(b.p, orig->p, orig->len);
        b.p[byte] ^= (uint8_t)(1u << (bit % 8));
        vst_fix_crc(&b);
        if (decode_checked(b.p, b.len)) {
            refused++;
            continue;
        }
        struct virtio_state *o = outs();
        struct vst_buf e;
        vst_expect_ok(&b, o, MAXDEV, ndev);
        /* decode_checked() released its copy: decode again to encode the result. */
        vst_encode(o, ndev, &e);
        for (unsigned i = 0; i < ndev; i++)
            virtio_state_free(&o[i]);
        struct vst_buf want;
        enum vst_flip k = vst_flip_meaning(orig, bit, &want);
        cr_assert(e.len == want.len && !memcmp(e.p, want.p, e.len),
                  "flip of bit %zu (byte %zu, kind %d) accepted but decoded as something else", bit,
                  byte, (int)k);
        vst_buf_free(&e);
        vst_buf_free(&want);
        if (k == VST_FLIP_VALUE)
            accepted++;
        else
            ignored++;
    }
    free(b.p);
    cr_log_info("flips behind a valid CRC: %u refused by the decoder, %u accepted as other "
                "values, %u accepted as the same stream",
                refused, accepted, ignored);
    /* Most flips break a rule of the parser or of the semantic check. */
    cr_assert_gt(refused, accepted + ignored);
}

Test(virtio_state_fuzz, every_bit_flip_behind_valid_crc_small)
{
    struct vst_buf b;
    vst_small(&b);
    flip_all_bits_fix_crc(&b, 1);
    vst_buf_free(&b);
}

Test(virtio_state_fuzz, every_bit_flip_behind_valid_crc_full, .timeout = 120)
{
    struct vst_buf b;
    vst_full(&b);
    flip_all_bits_fix_crc(&b, 2);
    vst_buf_free(&b);
}

Test(virtio_state_fuzz, every_truncation_refused)
{
    struct vst_buf b;
    vst_full(&b);
    for (size_t len = 0; len < b.len; len++) {
        cr_assert_neq(decode_checked(b.p, len), 0, "prefix of %zu bytes accepted", len);
        /* Also with the header claiming the shorter length and a matching CRC. */
        if (len >= VIRTIO_STATE_HDR_LEN) {
            struct vst_buf t = {malloc(len), len};
            memcpy(t.p, b.p, len);
            le64_put(t.p + VSW_OFF(vsw_stream_hdr, total_len), len);
            vst_fix_crc(&t);
            cr_assert_neq(decode_checked(t.p, len), 0, "repaired prefix of %zu accepted", len);
            vst_buf_free(&t);
        }
    }
    vst_buf_free(&b);
}

Test(virtio_state_fuzz, random_garbage, .timeout = 120)
{
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    uint8_t *p = malloc(8192);

    cr_assert_not_null(p);
    for (unsigned iter = 0; iter < 20000; iter++) {
        size_t len = rng_next(&seed) % (iter < 10000 ? 64 : 8192);
        for (size_t i = 0; i < len; i++)
            p[i] = (uint8_t)rng_next(&seed);
        cr_assert_neq(decode_checked(p, len), 0);
        /* Garbage behind a believable header: reaches the record parser. */
        if (len >= VIRTIO_STATE_HDR_LEN) {
            memcpy(p, VIRTIO_STATE_MAGIC, 8);
            le16_put(p + 8, 1);
            le16_put(p + 10, 0);
            le32_put(p + 12, VIRTIO_STATE_HDR_LEN);
            le64_put(p + 16, len);
            le32_put(p + 24, 0);
            struct vst_buf t = {p, len};
            vst_fix_crc(&t);
            cr_assert_neq(decode_checked(p, len), 0);
        }
    }
    free(p);
}

/* Random byte damage and random record-length edits in a valid stream, CRC repaired. */
Test(virtio_state_fuzz, structured_damage, .timeout = 120)
{
    uint64_t seed = 12345;
    struct vst_buf b, t;
    unsigned accepted = 0;

    vst_full(&b);
    t.p = malloc(b.len);
    t.len = b.len;
    for (unsigned iter = 0; iter < 30000; iter++) {
        memcpy(t.p, b.p, b.len);
        unsigned edits = 1 + rng_next(&seed) % 4;
        for (unsigned e = 0; e < edits; e++) {
            size_t at = VIRTIO_STATE_HDR_LEN + rng_next(&seed) % (b.len - VIRTIO_STATE_HDR_LEN);
            uint64_t v = rng_next(&seed);
            switch (v % 4) {
            case 0:
                t.p[at] = (uint8_t)(v >> 8);
                break;
            case 1:
                t.p[at] ^= (uint8_t)(1u << ((v >> 8) % 8));
                break;
            case 2: /* hit a 16-bit or 32-bit field with an extreme value */
                if (at + 4 <= b.len)
                    le32_put(t.p + at, (v >> 8) & 1 ? UINT32_MAX : (uint32_t)(v >> 16) % 70000);
                break;
            default:
                t.p[at] = 0;
                break;
            }
        }
        vst_fix_crc(&t);
        if (!decode_checked(t.p, t.len))
            accepted++;
    }
    cr_log_info("structured damage: %u of 30000 accepted", accepted);
    free(t.p);
    vst_buf_free(&b);
}
