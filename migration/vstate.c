/* Section-framed little-endian state buffers (see vstate.h). */
#include "migration/vstate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SEC_MAGIC    0x43455357u /* "WSEC" */
#define SEC_NAME_LEN 16
#define SEC_HDR_LEN  (4 + 2 + 2 + 4 + SEC_NAME_LEN)

void vstate_out_init(struct vstate_out *o)
{
    memset(o, 0, sizeof(*o));
    o->section_start = SIZE_MAX;
}

void vstate_out_free(struct vstate_out *o)
{
    free(o->buf);
    vstate_out_init(o);
}

static uint8_t *out_reserve(struct vstate_out *o, size_t n)
{
    if (o->err)
        return NULL;
    if (n > VSTATE_MAX_SECTION || o->len + n > VSTATE_MAX_SECTION * 4ULL) {
        o->err = -E2BIG;
        return NULL;
    }
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->len + n)
            cap *= 2;
        uint8_t *b = realloc(o->buf, cap);
        if (!b) {
            o->err = -ENOMEM;
            return NULL;
        }
        o->buf = b;
        o->cap = cap;
    }
    uint8_t *p = o->buf + o->len;
    o->len += n;
    return p;
}

void vstate_put_bytes(struct vstate_out *o, const void *p, size_t n)
{
    /* Nothing to reserve: out_reserve() would compute NULL + 0 on a fresh buffer (UB). */
    if (n == 0)
        return;
    uint8_t *d = out_reserve(o, n);
    if (d)
        memcpy(d, p, n);
}
void vstate_put_u8(struct vstate_out *o, uint8_t v)
{
    vstate_put_bytes(o, &v, 1);
}
void vstate_put_u16(struct vstate_out *o, uint16_t v)
{
    uint8_t b[2];
    le16_put(b, v);
    vstate_put_bytes(o, b, 2);
}
void vstate_put_u32(struct vstate_out *o, uint32_t v)
{
    uint8_t b[4];
    le32_put(b, v);
    vstate_put_bytes(o, b, 4);
}
void vstate_put_u64(struct vstate_out *o, uint64_t v)
{
    uint8_t b[8];
    le64_put(b, v);
    vstate_put_bytes(o, b, 8);
}

void vstate_begin(struct vstate_out *o, const char *name, uint16_t version)
{
    if (o->section_start != SIZE_MAX) {
        o->err = o->err ? o->err : -EINVAL; /* sections do not nest */
        return;
    }
    o->section_start = o->len;
    char nm[SEC_NAME_LEN] = {0};
    memcpy(nm, name, MIN(strlen(name), sizeof(nm)));
    vstate_put_u32(o, SEC_MAGIC);
    vstate_put_u16(o, version);
    vstate_put_u16(o, 0);
    vstate_put_u32(o, 0); /* length, patched by vstate_end */
    vstate_put_bytes(o, nm, sizeof(nm));
}

int vstate_end(struct vstate_out *o)
{
    if (o->section_start == SIZE_MAX)
        return o->err ? o->err : -EINVAL;
    if (!o->err) {
        size_t payload = o->len - o->section_start - SEC_HDR_LEN;
        if (payload > VSTATE_MAX_SECTION)
            o->err = -E2BIG;
        else
            le32_put(o->buf + o->section_start + 8, (uint32_t)payload);
    }
    o->section_start = SIZE_MAX;
    return o->err;
}

void vstate_in_init(struct vstate_in *in, const void *buf, size_t len)
{
    memset(in, 0, sizeof(*in));
    in->buf = buf;
    in->len = len;
    in->end = len;
}

static const uint8_t *in_take(struct vstate_in *in, size_t n)
{
    if (in->err)
        return NULL;
    if (n > in->end - in->pos) {
        in->err = -EBADMSG;
        return NULL;
    }
    const uint8_t *p = in->buf + in->pos;
    in->pos += n;
    return p;
}

void vstate_get_bytes(struct vstate_in *in, void *p, size_t n)
{
    /* Nothing to take: in_take() would compute NULL + 0 on an empty input (UB). */
    if (n == 0)
        return;
    const uint8_t *s = in_take(in, n);
    if (s)
        memcpy(p, s, n);
    else
        memset(p, 0, n);
}
uint8_t vstate_get_u8(struct vstate_in *in)
{
    const uint8_t *s = in_take(in, 1);
    return s ? s[0] : 0;
}
uint16_t vstate_get_u16(struct vstate_in *in)
{
    const uint8_t *s = in_take(in, 2);
    return s ? le16_get(s) : 0;
}
uint32_t vstate_get_u32(struct vstate_in *in)
{
    const uint8_t *s = in_take(in, 4);
    return s ? le32_get(s) : 0;
}
uint64_t vstate_get_u64(struct vstate_in *in)
{
    const uint8_t *s = in_take(in, 8);
    return s ? le64_get(s) : 0;
}

int vstate_enter(struct vstate_in *in, const char *name, uint16_t min_version, uint16_t max_version,
                 uint16_t *version)
{
    if (in->err)
        return in->err;
    in->end = in->len;
    const uint8_t *h = in_take(in, SEC_HDR_LEN);
    if (!h)
        return in->err;
    char want[SEC_NAME_LEN] = {0};
    memcpy(want, name, MIN(strlen(name), sizeof(want)));
    uint16_t ver = le16_get(h + 4);
    uint32_t plen = le32_get(h + 8);
    if (le32_get(h) != SEC_MAGIC || le16_get(h + 6) != 0 || memcmp(h + 12, want, SEC_NAME_LEN))
        return in->err = -EBADMSG;
    if (ver < min_version || ver > max_version)
        return in->err = -EPROTO;
    if (plen > VSTATE_MAX_SECTION || plen > in->len - in->pos)
        return in->err = -EBADMSG;
    in->end = in->pos + plen;
    *version = ver;
    return 0;
}

int vstate_leave(struct vstate_in *in)
{
    if (!in->err && in->pos != in->end)
        in->err = -EBADMSG;
    in->end = in->len;
    return in->err;
}
