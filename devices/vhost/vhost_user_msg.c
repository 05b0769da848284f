/*
 * vhost-user codec (see vhost_user_msg.h): request builders and the strict
 * reply check.  No state, no I/O: everything a backend sends is judged here
 * before any field of it is used.
 */
#include "devices/vhost/vhost_user_msg.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmm/util.h"

void vhu_hdr_encode(uint8_t *buf, const struct vhu_hdr *h)
{
    le32_put(buf, h->request);
    le32_put(buf + 4, h->flags);
    le32_put(buf + 8, h->size);
}

void vhu_hdr_decode(const uint8_t *buf, size_t len, struct vhu_hdr *h)
{
    (void)len;
    h->request = le32_get(buf);
    h->flags = le32_get(buf + 4);
    h->size = le32_get(buf + 8);
}

/* Writes the header for a payload of `size` bytes; -EMSGSIZE if it does not fit. */
static int put_hdr(uint8_t *buf, size_t cap, uint32_t req, uint32_t flags, uint32_t size)
{
    if (cap < VHU_HDR_SIZE || size > cap - VHU_HDR_SIZE)
        return -EMSGSIZE;
    if (flags & ~VHU_F_NEED_REPLY)
        return -EINVAL; /* a frontend request carries only the version and NEED_REPLY */
    struct vhu_hdr h = {.request = req, .flags = VHU_VERSION | flags, .size = size};
    vhu_hdr_encode(buf, &h);
    return (int)(VHU_HDR_SIZE + size);
}

int vhu_build_bare(uint8_t *buf, size_t cap, uint32_t req, uint32_t flags)
{
    return put_hdr(buf, cap, req, flags, 0);
}

int vhu_build_u64(uint8_t *buf, size_t cap, uint32_t req, uint32_t flags, uint64_t v)
{
    int n = put_hdr(buf, cap, req, flags, 8);
    if (n > 0)
        le64_put(buf + VHU_HDR_SIZE, v);
    return n;
}

int vhu_build_state(uint8_t *buf, size_t cap, uint32_t req, uint32_t flags, uint32_t index,
                    uint32_t num)
{
    int n = put_hdr(buf, cap, req, flags, 8);
    if (n > 0) {
        le32_put(buf + VHU_HDR_SIZE, index);
        le32_put(buf + VHU_HDR_SIZE + 4, num);
    }
    return n;
}

int vhu_build_vring_addr(uint8_t *buf, size_t cap, uint32_t flags, const struct vhu_vring_addr *a)
{
    int n = put_hdr(buf, cap, VHU_SET_VRING_ADDR, flags, 40);
    if (n < 0)
        return n;
    uint8_t *p = buf + VHU_HDR_SIZE;
    le32_put(p, a->index);
    le32_put(p + 4, a->flags);
    le64_put(p + 8, a->desc);
    le64_put(p + 16, a->used);
    le64_put(p + 24, a->avail);
    le64_put(p + 32, a->log);
    return n;
}

int vhu_build_mem_table(uint8_t *buf, size_t cap, uint32_t flags, const struct vhu_mem_region *r,
                        unsigned n)
{
    if (n == 0 || n > VHU_MAX_REGIONS)
        return -EINVAL;
    /* u32 nregions, u32 padding, then the regions. */
    int len = put_hdr(buf, cap, VHU_SET_MEM_TABLE, flags, 8 + n * VHU_MEM_REGION_SIZE);
    if (len < 0)
        return len;
    uint8_t *p = buf + VHU_HDR_SIZE;
    le32_put(p, n);
    le32_put(p + 4, 0);
    for (unsigned i = 0; i < n; i++) {
        uint8_t *q = p + 8 + i * VHU_MEM_REGION_SIZE;
        le64_put(q, r[i].gpa);
        le64_put(q + 8, r[i].size);
        le64_put(q + 16, r[i].uaddr);
        le64_put(q + 24, r[i].mmap_offset);
    }
    return len;
}

int vhu_build_config(uint8_t *buf, size_t cap, uint32_t req, uint32_t flags, uint32_t offset,
                     uint32_t size, const void *data)
{
    if (size > VHU_MAX_CONFIG || (req != VHU_GET_CONFIG && req != VHU_SET_CONFIG))
        return -EINVAL;
    if (req == VHU_SET_CONFIG && !data)
        return -EINVAL;
    int n = put_hdr(buf, cap, req, flags, VHU_CONFIG_HDR + size);
    if (n < 0)
        return n;
    uint8_t *p = buf + VHU_HDR_SIZE;
    le32_put(p, offset);
    le32_put(p + 4, size);
    le32_put(p + 8, 0);
    if (data)
        memcpy(p + VHU_CONFIG_HDR, data, size);
    else
        memset(p + VHU_CONFIG_HDR, 0, size);
    return n;
}

int vhu_build_inflight(uint8_t *buf, size_t cap, uint32_t req, uint32_t flags,
                       const struct vhu_inflight *in)
{
    if (req != VHU_GET_INFLIGHT_FD && req != VHU_SET_INFLIGHT_FD)
        return -EINVAL;
    int n = put_hdr(buf, cap, req, flags, VHU_INFLIGHT_SIZE);
    if (n < 0)
        return n;
    uint8_t *p = buf + VHU_HDR_SIZE;
    memset(p, 0, VHU_INFLIGHT_SIZE);
    le64_put(p, in->mmap_size);
    le64_put(p + 8, in->mmap_offset);
    p[16] = (uint8_t)in->num_queues;
    p[17] = (uint8_t)(in->num_queues >> 8);
    p[18] = (uint8_t)in->queue_size;
    p[19] = (uint8_t)(in->queue_size >> 8);
    return n;
}

int vhu_reply_parse(const uint8_t *msg, size_t len, unsigned nfds, uint32_t req,
                    enum vhu_reply_kind kind, uint32_t cfg_offset, uint32_t cfg_size,
                    struct vhu_reply *r)
{
    memset(r, 0, sizeof(*r));
    if (nfds != (kind == VHU_REPLY_INFLIGHT ? 1u : 0u) || len < VHU_HDR_SIZE)
        return -EPROTO;
    struct vhu_hdr h;
    vhu_hdr_decode(msg, len, &h);
    if ((h.flags & VHU_F_VERSION_MASK) != VHU_VERSION || !(h.flags & VHU_F_REPLY) ||
        (h.flags & ~VHU_F_KNOWN) || (h.flags & VHU_F_NEED_REPLY))
        return -EPROTO;
    if (h.request != req)
        return -EPROTO;
    /* The size field must describe exactly what arrived. */
    if (h.size != len - VHU_HDR_SIZE)
        return -EPROTO;
    const uint8_t *p = msg + VHU_HDR_SIZE;
    switch (kind) {
    case VHU_REPLY_U64:
        if (h.size != 8)
            return -EPROTO;
        r->u64 = le64_get(p);
        return 0;
    case VHU_REPLY_STATE:
        if (h.size != 8)
            return -EPROTO;
        r->index = le32_get(p);
        r->num = le32_get(p + 4);
        return 0;
    case VHU_REPLY_CONFIG: {
        if (cfg_size > VHU_MAX_CONFIG || h.size < VHU_CONFIG_HDR)
            return -EPROTO;
        uint32_t off = le32_get(p), size = le32_get(p + 4), flags = le32_get(p + 8);
        if (size == 0 && h.size == VHU_CONFIG_HDR)
            return -EIO; /* the backend's way of saying it failed */
        if (off != cfg_offset || size != cfg_size || h.size != VHU_CONFIG_HDR + size || flags > 1)
            return -EPROTO;
        r->cfg = p + VHU_CONFIG_HDR;
        r->cfg_size = size;
        return 0;
    }
    case VHU_REPLY_INFLIGHT: {
        if (h.size != VHU_INFLIGHT_SIZE)
            return -EPROTO;
        struct vhu_inflight *in = &r->inflight;
        in->mmap_size = le64_get(p);
        in->mmap_offset = le64_get(p + 8);
        in->num_queues = (uint16_t)(p[16] | p[17] << 8);
        in->queue_size = (uint16_t)(p[18] | p[19] << 8);
        if (in->mmap_size == 0 || in->mmap_size > VHU_MAX_INFLIGHT_MMAP ||
            in->mmap_offset > UINT64_MAX - in->mmap_size || in->num_queues == 0 ||
            in->num_queues > VHU_MAX_QUEUES || in->queue_size == 0 ||
            (in->queue_size & (in->queue_size - 1)))
            return -EPROTO;
        return 0;
    }
    }
    return -EPROTO;
}

const char *vhu_req_name(uint32_t req, char *buf, size_t cap)
{
    static const char *const names[] = {
        [VHU_GET_FEATURES] = "GET_FEATURES",
        [VHU_SET_FEATURES] = "SET_FEATURES",
        [VHU_SET_OWNER] = "SET_OWNER",
        [VHU_RESET_OWNER] = "RESET_OWNER",
        [VHU_SET_MEM_TABLE] = "SET_MEM_TABLE",
        [VHU_SET_VRING_NUM] = "SET_VRING_NUM",
        [VHU_SET_VRING_ADDR] = "SET_VRING_ADDR",
        [VHU_SET_VRING_BASE] = "SET_VRING_BASE",
        [VHU_GET_VRING_BASE] = "GET_VRING_BASE",
        [VHU_SET_VRING_KICK] = "SET_VRING_KICK",
        [VHU_SET_VRING_CALL] = "SET_VRING_CALL",
        [VHU_SET_VRING_ERR] = "SET_VRING_ERR",
        [VHU_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
        [VHU_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
        [VHU_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
        [VHU_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
        [VHU_GET_CONFIG] = "GET_CONFIG",
        [VHU_SET_CONFIG] = "SET_CONFIG",
        [VHU_GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
        [VHU_SET_INFLIGHT_FD] = "SET_INFLIGHT_FD",
        [VHU_SET_STATUS] = "SET_STATUS",
        [VHU_GET_STATUS] = "GET_STATUS",
    };
    if (req < sizeof(names) / sizeof(names[0]) && names[req])
        return names[req];
    snprintf(buf, cap, "request %u", req);
    return buf;
}
