/*
 * The vfio-user 0.2 codec (see vfio_user_msg.h): byte-level encode and decode
 * of the header and the payloads, every length checked before it is used.
 * Nothing here keeps state, touches a socket or allocates memory sized by
 * the peer (json-c's allocations are bounded by VFIO_USER_JSON_MAX).
 */
#include "devices/vfio/vfio_user_msg.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

bool vfio_user_cmd_known(uint16_t cmd)
{
    return cmd >= VFIO_USER_VERSION && cmd <= VFIO_USER_MIG_DATA_WRITE && cmd != 14;
}

void vfio_user_hdr_encode(uint8_t *buf, const struct vfio_user_hdr *h)
{
    put16(buf, h->id);
    put16(buf + 2, h->cmd);
    put32(buf + 4, h->size);
    put32(buf + 8, h->flags);
    put32(buf + 12, h->error);
}

int vfio_user_hdr_decode(const uint8_t *buf, size_t len, struct vfio_user_hdr *h)
{
    if (len < VFIO_USER_HDR_SIZE)
        return -EPROTO;
    h->id = get16(buf);
    h->cmd = get16(buf + 2);
    h->size = get32(buf + 4);
    h->flags = get32(buf + 8);
    h->error = get32(buf + 12);
    if (h->size < VFIO_USER_HDR_SIZE || h->size > VFIO_USER_MSG_MAX)
        return -EPROTO;
    uint32_t type = h->flags & VFIO_USER_F_TYPE_MASK;
    if (type != VFIO_USER_F_TYPE_CMD && type != VFIO_USER_F_TYPE_REPLY)
        return -EPROTO;
    /* Only replies carry errors; undefined flag bits are refused. */
    if (h->flags & ~(VFIO_USER_F_TYPE_MASK | VFIO_USER_F_NO_REPLY | VFIO_USER_F_ERROR))
        return -EPROTO;
    if (type == VFIO_USER_F_TYPE_CMD && (h->flags & VFIO_USER_F_ERROR))
        return -EPROTO;
    if (!vfio_user_cmd_known(h->cmd))
        return -ENOTSUP;
    return 0;
}

int vfio_user_msg_check(const uint8_t *buf, size_t len, struct vfio_user_hdr *h)
{
    int rc = vfio_user_hdr_decode(buf, len, h);
    if (rc < 0)
        return rc;
    return h->size == len ? 0 : -EPROTO;
}

int vfio_user_reply_check(const struct vfio_user_hdr *req, const struct vfio_user_hdr *rep)
{
    if ((rep->flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_REPLY || rep->id != req->id ||
        rep->cmd != req->cmd)
        return -EPROTO;
    if (rep->flags & VFIO_USER_F_ERROR) {
        if (rep->error == 0 || rep->error > 4095)
            return -EIO;
        return -(int)rep->error;
    }
    return 0;
}

/* ---- VERSION ---- */

int vfio_user_version_encode(uint8_t *buf, size_t cap, const struct vfio_user_version *v)
{
    char json[512];
    const struct vfio_user_caps *c = &v->caps;
    int n =
        snprintf(json, sizeof(json),
                 "{\"capabilities\":{\"max_msg_fds\":%" PRIu32 ",\"max_data_xfer_size\":%" PRIu32
                 ",\"max_dma_maps\":%" PRIu32 ",\"pgsizes\":%" PRIu64 "%s",
                 c->max_msg_fds, c->max_data_xfer_size, c->max_dma_maps, c->pgsizes,
                 c->write_multiple ? ",\"write_multiple\":true" : "");
    if (n < 0 || (size_t)n >= sizeof(json))
        return -ENOSPC;
    if (c->migration) {
        int m = snprintf(json + n, sizeof(json) - (size_t)n,
                         ",\"migration\":{\"pgsize\":%" PRIu64 ",\"max_bitmap_size\":%" PRIu64 "}",
                         c->mig_pgsize, c->mig_max_bitmap_size);
        if (m < 0 || (size_t)m >= sizeof(json) - (size_t)n)
            return -ENOSPC;
        n += m;
    }
    if ((size_t)n + 3 > sizeof(json))
        return -ENOSPC;
    memcpy(json + n, "}}", 3);
    n += 2;
    size_t total = 4 + (size_t)n + 1;
    if (total > cap)
        return -ENOSPC;
    put16(buf, v->major);
    put16(buf + 2, v->minor);
    memcpy(buf + 4, json, (size_t)n + 1);
    return (int)total;
}

/* A non-negative integer no larger than max, or -EPROTO. */
static int json_u64(struct json_object *o, uint64_t max, uint64_t *out)
{
    if (!json_object_is_type(o, json_type_int))
        return -EPROTO;
    errno = 0;
    int64_t v = json_object_get_int64(o);
    if (errno != 0 || v < 0 || (uint64_t)v > max)
        return -EPROTO;
    *out = (uint64_t)v;
    return 0;
}

static int caps_parse(struct json_object *caps, struct vfio_user_caps *c)
{
    struct json_object *o, *m;
    uint64_t v;
    if (!json_object_is_type(caps, json_type_object))
        return -EPROTO;
    if (json_object_object_get_ex(caps, "max_msg_fds", &o)) {
        if (json_u64(o, UINT32_MAX, &v) < 0)
            return -EPROTO;
        c->max_msg_fds = v > VFIO_USER_MAX_FDS ? VFIO_USER_MAX_FDS : (uint32_t)v;
    }
    if (json_object_object_get_ex(caps, "max_data_xfer_size", &o)) {
        if (json_u64(o, UINT32_MAX, &v) < 0 || v == 0)
            return -EPROTO;
        c->max_data_xfer_size = v > VFIO_USER_DATA_MAX ? VFIO_USER_DATA_MAX : (uint32_t)v;
    }
    if (json_object_object_get_ex(caps, "max_dma_maps", &o)) {
        if (json_u64(o, UINT32_MAX, &v) < 0)
            return -EPROTO;
        c->max_dma_maps = (uint32_t)v;
    }
    if (json_object_object_get_ex(caps, "pgsizes", &o)) {
        /* 4 KiB pages must be supported and nothing smaller is meaningful. */
        if (json_u64(o, UINT64_MAX >> 1, &v) < 0 || !(v & 4096) || (v & 4095))
            return -EPROTO;
        c->pgsizes = v;
    }
    if (json_object_object_get_ex(caps, "write_multiple", &o)) {
        if (!json_object_is_type(o, json_type_boolean))
            return -EPROTO;
        c->write_multiple = json_object_get_boolean(o);
    }
    if (json_object_object_get_ex(caps, "migration", &m)) {
        if (!json_object_is_type(m, json_type_object))
            return -EPROTO;
        c->migration = true;
        if (json_object_object_get_ex(m, "pgsize", &o)) {
            if (json_u64(o, 1ull << 30, &v) < 0 || v < 4096 || (v & (v - 1)))
                return -EPROTO;
            c->mig_pgsize = v;
        }
        if (json_object_object_get_ex(m, "max_bitmap_size", &o)) {
            if (json_u64(o, UINT64_MAX >> 1, &v) < 0)
                return -EPROTO;
            c->mig_max_bitmap_size = v;
        }
    }
    return 0;
}

int vfio_user_version_decode(const uint8_t *p, size_t len, struct vfio_user_version *v)
{
    memset(v, 0, sizeof(*v));
    v->caps.max_msg_fds = 1;
    v->caps.max_data_xfer_size = VFIO_USER_DATA_MAX;
    v->caps.max_dma_maps = 65535;
    v->caps.pgsizes = 4096;
    v->caps.mig_pgsize = 4096;
    if (len < 4)
        return -EPROTO;
    v->major = get16(p);
    v->minor = get16(p + 2);
    if (len == 4)
        return 0;
    size_t jlen = len - 4;
    const char *json = (const char *)(p + 4);
    /* NUL-terminated, no NUL inside, bounded. */
    if (jlen > VFIO_USER_JSON_MAX || json[jlen - 1] != '\0' || strlen(json) != jlen - 1)
        return -EPROTO;
    struct json_tokener *tok = json_tokener_new_ex(8);
    if (!tok)
        return -ENOMEM;
    struct json_object *root = json_tokener_parse_ex(tok, json, (int)(jlen - 1));
    int rc = -EPROTO;
    if (!root || json_tokener_get_error(tok) != json_tokener_success ||
        tok->char_offset != (int)(jlen - 1) || !json_object_is_type(root, json_type_object))
        goto out;
    struct json_object *caps;
    if (json_object_object_get_ex(root, "capabilities", &caps))
        rc = caps_parse(caps, &v->caps);
    else
        rc = 0;
out:
    json_object_put(root);
    json_tokener_free(tok);
    return rc;
}

/* ---- fixed-size payloads ---- */

void vfio_user_dma_map_encode(uint8_t *buf, const struct vfio_user_dma_map *m)
{
    put32(buf, m->argsz);
    put32(buf + 4, m->flags);
    put64(buf + 8, m->offset);
    put64(buf + 16, m->addr);
    put64(buf + 24, m->size);
}

int vfio_user_dma_map_decode(const uint8_t *p, size_t len, struct vfio_user_dma_map *m)
{
    if (len < VFIO_USER_DMA_MAP_SIZE)
        return -EPROTO;
    m->argsz = get32(p);
    m->flags = get32(p + 4);
    m->offset = get64(p + 8);
    m->addr = get64(p + 16);
    m->size = get64(p + 24);
    return 0;
}

void vfio_user_dma_unmap_encode(uint8_t *buf, const struct vfio_user_dma_unmap *m)
{
    put32(buf, m->argsz);
    put32(buf + 4, m->flags);
    put64(buf + 8, m->addr);
    put64(buf + 16, m->size);
}

int vfio_user_dma_unmap_decode(const uint8_t *p, size_t len, struct vfio_user_dma_unmap *m)
{
    if (len < VFIO_USER_DMA_UNMAP_SIZE)
        return -EPROTO;
    m->argsz = get32(p);
    m->flags = get32(p + 4);
    m->addr = get64(p + 8);
    m->size = get64(p + 16);
    return 0;
}

/* The three 16-byte structures that are four u32s. */
static void put4x32(uint8_t *buf, uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
    put32(buf, a);
    put32(buf + 4, b);
    put32(buf + 8, c);
    put32(buf + 12, d);
}

void vfio_user_device_info_encode(uint8_t *buf, const struct vfio_user_device_info *d)
{
    put4x32(buf, d->argsz, d->flags, d->num_regions, d->num_irqs);
}

int vfio_user_device_info_decode(const uint8_t *p, size_t len, struct vfio_user_device_info *d)
{
    if (len < VFIO_USER_DEVICE_INFO_SIZE)
        return -EPROTO;
    d->argsz = get32(p);
    d->flags = get32(p + 4);
    d->num_regions = get32(p + 8);
    d->num_irqs = get32(p + 12);
    return 0;
}

void vfio_user_irq_info_encode(uint8_t *buf, const struct vfio_user_irq_info *i)
{
    put4x32(buf, i->argsz, i->flags, i->index, i->count);
}

int vfio_user_irq_info_decode(const uint8_t *p, size_t len, struct vfio_user_irq_info *i)
{
    if (len < VFIO_USER_IRQ_INFO_SIZE)
        return -EPROTO;
    i->argsz = get32(p);
    i->flags = get32(p + 4);
    i->index = get32(p + 8);
    i->count = get32(p + 12);
    return 0;
}

void vfio_user_irq_set_encode(uint8_t *buf, const struct vfio_user_irq_set *s)
{
    put4x32(buf, s->argsz, s->flags, s->index, s->start);
    put32(buf + 16, s->count);
}

int vfio_user_irq_set_decode(const uint8_t *p, size_t len, struct vfio_user_irq_set *s)
{
    if (len < VFIO_USER_IRQ_SET_SIZE)
        return -EPROTO;
    s->argsz = get32(p);
    s->flags = get32(p + 4);
    s->index = get32(p + 8);
    s->start = get32(p + 12);
    s->count = get32(p + 16);
    if (s->count > VFIO_USER_MAX_IRQS || s->start > VFIO_USER_MAX_IRQS - s->count)
        return -EPROTO;
    uint32_t data =
        s->flags & (VFIO_USER_IRQ_DATA_NONE | VFIO_USER_IRQ_DATA_BOOL | VFIO_USER_IRQ_DATA_EVENTFD);
    if (data == 0 || (data & (data - 1)))
        return -EPROTO;
    if (data == VFIO_USER_IRQ_DATA_BOOL && len - VFIO_USER_IRQ_SET_SIZE != s->count)
        return -EPROTO;
    return 0;
}

/* ---- REGION_INFO and its capability chain ---- */

#define CAP_HDR_SIZE   8u
#define SPARSE_FIXED   (CAP_HDR_SIZE + 8u)
#define SPARSE_AREA_SZ 16u

int vfio_user_region_info_encode(uint8_t *buf, size_t cap, const struct vfio_user_region_info *r)
{
    if (r->nr_areas > VFIO_USER_MAX_AREAS)
        return -EINVAL;
    size_t total = VFIO_USER_REGION_INFO_SIZE;
    if (r->nr_areas)
        total += SPARSE_FIXED + (size_t)r->nr_areas * SPARSE_AREA_SZ;
    if (total > cap)
        return -ENOSPC;
    uint32_t flags = r->flags & ~VFIO_USER_REGION_F_CAPS;
    uint32_t cap_off = 0;
    if (r->nr_areas) {
        flags |= VFIO_USER_REGION_F_CAPS;
        cap_off = VFIO_USER_REGION_INFO_SIZE;
        uint8_t *c = buf + cap_off;
        put16(c, VFIO_USER_CAP_SPARSE_MMAP);
        put16(c + 2, 1);
        put32(c + 4, 0);
        put32(c + 8, r->nr_areas);
        put32(c + 12, 0);
        for (uint32_t i = 0; i < r->nr_areas; i++) {
            put64(c + SPARSE_FIXED + i * SPARSE_AREA_SZ, r->areas[i].offset);
            put64(c + SPARSE_FIXED + i * SPARSE_AREA_SZ + 8, r->areas[i].size);
        }
    }
    put4x32(buf, (uint32_t)total, flags, r->index, cap_off);
    put64(buf + 16, r->size);
    put64(buf + 24, r->offset);
    return (int)total;
}

/* One sparse-mmap cap at p[off..len): its areas into r. */
static int sparse_decode(const uint8_t *p, size_t len, size_t off, struct vfio_user_region_info *r)
{
    if (len - off < SPARSE_FIXED)
        return -EPROTO;
    uint32_t n = get32(p + off + CAP_HDR_SIZE);
    /* Cap the count before using it to size anything. */
    if (n > VFIO_USER_MAX_AREAS || (len - off - SPARSE_FIXED) / SPARSE_AREA_SZ < n)
        return -EPROTO;
    if (r->nr_areas) /* a second sparse cap: ambiguous */
        return -EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *a = p + off + SPARSE_FIXED + (size_t)i * SPARSE_AREA_SZ;
        uint64_t ao = get64(a), as = get64(a + 8);
        if (as == 0 || ao > r->size || as > r->size - ao)
            return -EPROTO;
        r->areas[i].offset = ao;
        r->areas[i].size = as;
    }
    r->nr_areas = n;
    return 0;
}

int vfio_user_region_info_decode(const uint8_t *p, size_t len, struct vfio_user_region_info *r)
{
    memset(r, 0, sizeof(*r));
    if (len < VFIO_USER_REGION_INFO_SIZE)
        return -EPROTO;
    r->argsz = get32(p);
    r->flags = get32(p + 4);
    r->index = get32(p + 8);
    r->cap_offset = get32(p + 12);
    r->size = get64(p + 16);
    r->offset = get64(p + 24);
    if (r->argsz > len)
        return -E2BIG;
    if (r->argsz < VFIO_USER_REGION_INFO_SIZE)
        return -EPROTO;
    if (!(r->flags & VFIO_USER_REGION_F_CAPS))
        return 0;
    /* Walk only what argsz covers: the rest of the payload is not the chain. */
    size_t end = r->argsz;
    size_t off = r->cap_offset;
    size_t prev = VFIO_USER_REGION_INFO_SIZE - 1;
    for (unsigned n = 0; off != 0; n++) {
        if (n >= VFIO_USER_MAX_CAPS || off <= prev || off > end || end - off < CAP_HDR_SIZE)
            return -EPROTO;
        uint16_t id = get16(p + off);
        uint32_t next = get32(p + off + 4);
        if (id == VFIO_USER_CAP_SPARSE_MMAP) {
            int rc = sparse_decode(p, end, off, r);
            if (rc < 0)
                return rc;
        }
        prev = off;
        off = next;
    }
    return 0;
}

/* ---- data-carrying payloads ---- */

int vfio_user_region_rw_encode(uint8_t *buf, size_t cap, const struct vfio_user_region_rw *r,
                               bool with_data)
{
    if (r->count > VFIO_USER_DATA_MAX)
        return -EINVAL;
    size_t total = VFIO_USER_REGION_RW_SIZE + (with_data ? r->count : 0);
    if (total > cap)
        return -ENOSPC;
    put64(buf, r->offset);
    put32(buf + 8, r->region);
    put32(buf + 12, r->count);
    if (with_data && r->count)
        memcpy(buf + VFIO_USER_REGION_RW_SIZE, r->data, r->count);
    return (int)total;
}

int vfio_user_region_rw_decode(const uint8_t *p, size_t len, bool with_data,
                               struct vfio_user_region_rw *r)
{
    if (len < VFIO_USER_REGION_RW_SIZE)
        return -EPROTO;
    r->offset = get64(p);
    r->region = get32(p + 8);
    r->count = get32(p + 12);
    r->data = NULL;
    if (r->count > VFIO_USER_DATA_MAX || r->region >= VFIO_USER_MAX_REGION ||
        r->offset > UINT64_MAX - r->count)
        return -EPROTO;
    size_t rest = len - VFIO_USER_REGION_RW_SIZE;
    if (with_data) {
        if (rest != r->count)
            return -EPROTO;
        r->data = p + VFIO_USER_REGION_RW_SIZE;
    } else if (rest != 0) {
        return -EPROTO;
    }
    return 0;
}

int vfio_user_dma_rw_encode(uint8_t *buf, size_t cap, const struct vfio_user_dma_rw *d,
                            bool with_data)
{
    if (d->count > VFIO_USER_DATA_MAX)
        return -EINVAL;
    size_t total = VFIO_USER_DMA_RW_SIZE + (with_data ? (size_t)d->count : 0);
    if (total > cap)
        return -ENOSPC;
    put64(buf, d->addr);
    put64(buf + 8, d->count);
    if (with_data && d->count)
        memcpy(buf + VFIO_USER_DMA_RW_SIZE, d->data, (size_t)d->count);
    return (int)total;
}

int vfio_user_dma_rw_decode(const uint8_t *p, size_t len, bool with_data,
                            struct vfio_user_dma_rw *d)
{
    if (len < VFIO_USER_DMA_RW_SIZE)
        return -EPROTO;
    d->addr = get64(p);
    d->count = get64(p + 8);
    d->data = NULL;
    if (d->count > VFIO_USER_DATA_MAX || d->addr > UINT64_MAX - d->count)
        return -EPROTO;
    size_t rest = len - VFIO_USER_DMA_RW_SIZE;
    if (with_data) {
        if (rest != d->count)
            return -EPROTO;
        d->data = p + VFIO_USER_DMA_RW_SIZE;
    } else if (rest != 0) {
        return -EPROTO;
    }
    return 0;
}

int vfio_user_feature_encode(uint8_t *buf, size_t cap, const struct vfio_user_feature *f)
{
    if (f->data_len > VFIO_USER_FEATURE_DATA_MAX)
        return -EINVAL;
    size_t total = VFIO_USER_FEATURE_SIZE + f->data_len;
    if (total > cap)
        return -ENOSPC;
    put32(buf, f->argsz);
    put32(buf + 4, f->flags);
    if (f->data_len)
        memcpy(buf + VFIO_USER_FEATURE_SIZE, f->data, f->data_len);
    return (int)total;
}

int vfio_user_feature_decode(const uint8_t *p, size_t len, struct vfio_user_feature *f)
{
    if (len < VFIO_USER_FEATURE_SIZE || len - VFIO_USER_FEATURE_SIZE > VFIO_USER_FEATURE_DATA_MAX)
        return -EPROTO;
    f->argsz = get32(p);
    f->flags = get32(p + 4);
    uint32_t op = f->flags & (VFIO_USER_FEATURE_GET | VFIO_USER_FEATURE_SET);
    /* GET and SET are exclusive unless probing. */
    if (op == (VFIO_USER_FEATURE_GET | VFIO_USER_FEATURE_SET) &&
        !(f->flags & VFIO_USER_FEATURE_PROBE))
        return -EPROTO;
    f->data_len = (uint32_t)(len - VFIO_USER_FEATURE_SIZE);
    f->data = f->data_len ? p + VFIO_USER_FEATURE_SIZE : NULL;
    return 0;
}

int vfio_user_mig_data_encode(uint8_t *buf, size_t cap, const struct vfio_user_mig_data *m,
                              bool with_data)
{
    if (m->size > VFIO_USER_DATA_MAX)
        return -EINVAL;
    size_t total = VFIO_USER_MIG_DATA_SIZE + (with_data ? m->size : 0);
    if (total > cap)
        return -ENOSPC;
    put32(buf, m->argsz);
    put32(buf + 4, m->size);
    if (with_data && m->size)
        memcpy(buf + VFIO_USER_MIG_DATA_SIZE, m->data, m->size);
    return (int)total;
}

int vfio_user_mig_data_decode(const uint8_t *p, size_t len, bool with_data,
                              struct vfio_user_mig_data *m)
{
    if (len < VFIO_USER_MIG_DATA_SIZE)
        return -EPROTO;
    m->argsz = get32(p);
    m->size = get32(p + 4);
    m->data = NULL;
    if (m->size > VFIO_USER_DATA_MAX)
        return -EPROTO;
    size_t rest = len - VFIO_USER_MIG_DATA_SIZE;
    if (with_data) {
        if (rest != m->size)
            return -EPROTO;
        m->data = p + VFIO_USER_MIG_DATA_SIZE;
    } else if (rest != 0) {
        return -EPROTO;
    }
    return 0;
}
