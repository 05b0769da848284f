/*
 * VMSTATE-VIRTIO TLV v1, shared pieces: the CRC32C both directions use, the
 * format rules both directions enforce (virtio_state_check_limits), record
 * names for error messages, and freeing decoded states.  The encoder, the
 * decoder and the semantic checks live in virtio_state_{enc,dec,check}.c.
 */
#include "migration/virtio_state.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migration/virtio_state_wire.h"

/*
 * CRC32C, slicing by 8: table[0] is the classic byte-at-a-time table;
 * table[k][b] is the CRC of byte b followed by k zero bytes, so eight input
 * bytes fold in with eight independent lookups.  The table is built once at
 * first use (pthread_once keeps concurrent first callers race-free).
 */
#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
#if defined(__x86_64__)
static bool crc_hw; /* the CPU has the CRC32 instruction (SSE4.2), which is CRC32C */
#endif

static void crc_init(void)
{
#if defined(__x86_64__)
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int i = 0; i < 8; i++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc_table[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++)
        for (int k = 1; k < 8; k++)
            crc_table[k][b] = (crc_table[k - 1][b] >> 8) ^ crc_table[0][crc_table[k - 1][b] & 0xff];
}

#if defined(__x86_64__)
/*
 * The same CRC with the CPU's CRC32 instruction: 8 bytes a step, several
 * times faster than the tables, which matters when every RAM section of a
 * migration stream is checksummed.
 */
__attribute__((target("sse4.2"))) static uint32_t crc_x86(uint32_t c, const uint8_t *s, size_t n)
{
    uint64_t c64 = c;
    for (; n >= 8; s += 8, n -= 8) {
        uint64_t v;
        memcpy(&v, s, sizeof(v));
        c64 = __builtin_ia32_crc32di(c64, v);
    }
    uint32_t c32 = (uint32_t)c64;
    while (n--)
        c32 = __builtin_ia32_crc32qi(c32, *s++);
    return c32;
}
#endif

uint32_t virtio_state_crc32c(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
#if defined(__x86_64__)
    if (crc_hw)
        return ~crc_x86(~crc, p, n);
#endif
    return virtio_state_crc32c_sw(crc, p, n);
}

uint32_t virtio_state_crc32c_sw(uint32_t crc, const void *p, size_t n)
{
    const uint8_t *s = p;
    uint32_t c = ~crc;

    pthread_once(&crc_once, crc_init);
    while (n >= 8) {
        /* Hosts are little-endian (vmm/util.h), so le32_get is a plain load. */
        uint32_t lo = le32_get(s) ^ c;
        uint32_t hi = le32_get(s + 4);
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^
            crc_table[2][(hi >> 8) & 0xff] ^ crc_table[1][(hi >> 16) & 0xff] ^
            crc_table[0][hi >> 24];
        s += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ crc_table[0][(c ^ *s++) & 0xff];
    return ~c;
}

int virtio_state_fail(char *why, size_t whylen, int err, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return err;
}

const char *virtio_state_type_name(uint16_t type)
{
    switch (type) {
    case VIRTIO_STATE_T_DEV_FEATURES:
        return "DEV_FEATURES";
    case VIRTIO_STATE_T_DRV_FEATURES:
        return "DRV_FEATURES";
    case VIRTIO_STATE_T_DEVICE_STATUS:
        return "DEVICE_STATUS";
    case VIRTIO_STATE_T_VQ_CFG:
        return "VQ_CFG";
    case VIRTIO_STATE_T_NET_CVQ_CFG_PART:
        return "NET_CVQ_CFG_PART";
    case VIRTIO_STATE_T_DEVICE:
        return "DEVICE";
    case VIRTIO_STATE_T_DEVICE_INFO:
        return "DEVICE_INFO";
    case VIRTIO_STATE_T_BACKEND_FEATURES:
        return "BACKEND_FEATURES";
    case VIRTIO_STATE_T_CONFIG_SPACE:
        return "CONFIG_SPACE";
    case VIRTIO_STATE_T_MMIO_TRANSPORT:
        return "MMIO_TRANSPORT";
    case VIRTIO_STATE_T_DEVICE_NAME:
        return "DEVICE_NAME";
    case VIRTIO_STATE_T_VQ_STATE:
        return "VQ_STATE";
    case VIRTIO_STATE_T_VQ_INFLIGHT:
        return "VQ_INFLIGHT";
    case VIRTIO_STATE_T_BLK_STATE:
        return "BLK_STATE";
    case VIRTIO_STATE_T_NET_STATE:
        return "NET_STATE";
    case VIRTIO_STATE_T_CONSOLE_STATE:
        return "CONSOLE_STATE";
    case VIRTIO_STATE_T_RNG_STATE:
        return "RNG_STATE";
    case VIRTIO_STATE_T_BLK_DEV_STATE:
        return "BLK_DEV_STATE";
    case VIRTIO_STATE_T_BALLOON_STATE:
        return "BALLOON_STATE";
    case VIRTIO_STATE_T_VSOCK_STATE:
        return "VSOCK_STATE";
    case VIRTIO_STATE_T_BACKEND_OPAQUE:
        return "BACKEND_OPAQUE";
    case VIRTIO_STATE_T_END:
        return "END";
    default:
        return "unknown";
    }
}

void virtio_state_free(struct virtio_state *s)
{
    if (!s)
        return;
    for (unsigned q = 0; q < VIRTIO_STATE_MAX_DEV_QUEUES; q++)
        free(s->vq[q].inflight);
    free(s->dev_blob);
    free(s->opaque);
    memset(s, 0, sizeof(*s));
}

/* Names and kinds are ids in logs and config: a conservative character set. */
static bool id_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

bool virtio_state_name_ok(const char *p, size_t max)
{
    size_t n = strnlen(p, max + 1);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!id_char_ok(p[i]))
            return false;
    return true;
}

/* The device type a device-specific record belongs to (0: none allowed). */
uint32_t virtio_state_dev_rec_owner(uint16_t type)
{
    switch (type) {
    case VIRTIO_STATE_T_BLK_STATE:
    case VIRTIO_STATE_T_BLK_DEV_STATE:
        return VIRTIO_ID_BLOCK;
    case VIRTIO_STATE_T_NET_STATE:
        return VIRTIO_ID_NET;
    case VIRTIO_STATE_T_CONSOLE_STATE:
        return VIRTIO_ID_CONSOLE;
    case VIRTIO_STATE_T_RNG_STATE:
        return VIRTIO_ID_RNG;
    case VIRTIO_STATE_T_BALLOON_STATE:
        return VIRTIO_ID_BALLOON;
    case VIRTIO_STATE_T_VSOCK_STATE:
        return VIRTIO_ID_VSOCK;
    default:
        return 0;
    }
}

static int check_words(const struct virtio_state_features *f, const char *what, char *why,
                       size_t whylen)
{
    if (f->n > VIRTIO_STATE_MAX_FEATURE_WORDS)
        return virtio_state_fail(why, whylen, -E2BIG, "%s: %u feature words (limit %u)", what, f->n,
                                 VIRTIO_STATE_MAX_FEATURE_WORDS);
    return 0;
}

static int check_vq_limits(const struct virtio_state *s, unsigned q, char *why, size_t whylen)
{
    const struct virtio_state_vq *v = &s->vq[q];

    if (v->ring != VIRTIO_STATE_RING_SPLIT && v->ring != VIRTIO_STATE_RING_PACKED)
        return virtio_state_fail(why, whylen, -EINVAL, "%s vq %u: unknown ring type %u", s->id, q,
                                 v->ring);
    if (v->flags & ~(VIRTIO_STATE_VQ_DRAINED | VIRTIO_STATE_VQ_INFLIGHT_VALID))
        return virtio_state_fail(why, whylen, -EINVAL, "%s vq %u: unknown VQ_STATE flags 0x%x",
                                 s->id, q, v->flags);
    if (!(v->flags & VIRTIO_STATE_VQ_INFLIGHT_VALID) && v->n_inflight)
        return virtio_state_fail(why, whylen, -EINVAL,
                                 "%s vq %u: in-flight entries without INFLIGHT_VALID", s->id, q);
    if (v->n_inflight > v->size)
        return virtio_state_fail(why, whylen, -E2BIG,
                                 "%s vq %u: %u in-flight entries exceed queue size %u", s->id, q,
                                 v->n_inflight, v->size);
    if (v->n_inflight && !v->inflight)
        return virtio_state_fail(why, whylen, -EINVAL, "%s vq %u: in-flight list missing", s->id,
                                 q);
    return 0;
}

int virtio_state_check_limits(const struct virtio_state *s, char *why, size_t whylen)
{
    int r;

    if (!virtio_state_name_ok(s->id, VIRTIO_STATE_NAME_MAX))
        return virtio_state_fail(why, whylen, -EINVAL,
                                 "device %u: name must be 1-%u characters of [A-Za-z0-9._-]",
                                 s->instance_id, VIRTIO_STATE_NAME_MAX);
    if (s->transport != VIRTIO_STATE_TRANSPORT_MMIO && s->transport != VIRTIO_STATE_TRANSPORT_PCI)
        return virtio_state_fail(why, whylen, -EINVAL, "%s: unknown transport %u", s->id,
                                 s->transport);
    if (s->num_queues > VIRTIO_STATE_MAX_DEV_QUEUES)
        return virtio_state_fail(why, whylen, -E2BIG, "%s: %u queues (limit %u per device)", s->id,
                                 s->num_queues, VIRTIO_STATE_MAX_DEV_QUEUES);
    if ((r = check_words(&s->dev_feat, "DEV_FEATURES", why, whylen)) ||
        (r = check_words(&s->drv_feat, "DRV_FEATURES", why, whylen)) ||
        (r = check_words(&s->backend_feat, "BACKEND_FEATURES", why, whylen)))
        return r;
    if (s->config_len > VIRTIO_STATE_MAX_CONFIG)
        return virtio_state_fail(why, whylen, -E2BIG, "%s: config space of %u bytes (limit %u)",
                                 s->id, s->config_len, VIRTIO_STATE_MAX_CONFIG);
    for (unsigned q = 0; q < s->num_queues; q++)
        if ((r = check_vq_limits(s, q, why, whylen)))
            return r;

    if (!s->dev_rec_type && s->dev_blob_len)
        return virtio_state_fail(why, whylen, -EINVAL,
                                 "%s: device-specific data without a record type", s->id);
    if (s->dev_rec_type) {
        uint32_t owner = virtio_state_dev_rec_owner(s->dev_rec_type);
        if (!owner)
            return virtio_state_fail(why, whylen, -EINVAL,
                                     "%s: 0x%04x is not a device-specific record type", s->id,
                                     s->dev_rec_type);
        if (owner != s->device_id)
            return virtio_state_fail(why, whylen, -EINVAL, "%s: %s in a device of type %u", s->id,
                                     virtio_state_type_name(s->dev_rec_type), s->device_id);
        if (s->dev_rec_type == VIRTIO_STATE_T_BLK_STATE && s->dev_blob_len)
            return virtio_state_fail(why, whylen, -EINVAL, "%s: BLK_STATE must be empty", s->id);
        if (s->dev_blob_len > VIRTIO_STATE_MAX_DEV_BLOB)
            return virtio_state_fail(why, whylen, -E2BIG, "%s: %s of %u bytes (limit %u)", s->id,
                                     virtio_state_type_name(s->dev_rec_type), s->dev_blob_len,
                                     VIRTIO_STATE_MAX_DEV_BLOB);
        if (s->dev_blob_len && !s->dev_blob)
            return virtio_state_fail(why, whylen, -EINVAL, "%s: device record data missing", s->id);
    }
    if (s->has_opaque) {
        if (!virtio_state_name_ok(s->opaque_kind, VIRTIO_STATE_KIND_LEN))
            return virtio_state_fail(why, whylen, -EINVAL,
                                     "%s: BACKEND_OPAQUE kind must be 1-%u characters of "
                                     "[A-Za-z0-9._-]",
                                     s->id, VIRTIO_STATE_KIND_LEN);
        if (s->opaque_len > VIRTIO_STATE_MAX_OPAQUE)
            return virtio_state_fail(why, whylen, -E2BIG,
                                     "%s: BACKEND_OPAQUE of %u bytes "
                                     "(limit %u)",
                                     s->id, s->opaque_len, VIRTIO_STATE_MAX_OPAQUE);
        if (s->opaque_len && !s->opaque)
            return virtio_state_fail(why, whylen, -EINVAL, "%s: BACKEND_OPAQUE data missing",
                                     s->id);
    }
    return 0;
}
