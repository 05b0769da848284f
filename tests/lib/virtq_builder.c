/*
 * Split-virtqueue driver fixture (see virtq_builder.h).  The builder writes
 * guest memory the way a driver does, with plain little-endian stores and a
 * release store for avail.idx; it never calls the queue code except to
 * reset and activate the queue under test.
 */
#include "tests/lib/virtq_builder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DESC_BYTES 16

_Noreturn static void vqb_die(const char *what)
{
    fprintf(stderr, "virtq_builder: %s\n", what);
    abort();
}

void vqb_init(struct vqb *b, enum vqb_layout layout, uint16_t size, uint16_t max_size)
{
    struct gmem_range one[] = {{0, VQB_RAM_END}};
    struct gmem_range two[] = {{0, VQB_HOLE_START}, {VQB_HOLE_END, VQB_RAM_END - VQB_HOLE_END}};
    struct errbuf err = {0};
    int r;

    memset(b, 0, sizeof(*b));
    if (layout == VQB_ONE_REGION)
        r = gmem_create(&b->mem, one, 1, false, &err);
    else
        r = gmem_create(&b->mem, two, 2, false, &err);
    if (r < 0)
        vqb_die(err.msg);

    b->size = size;
    b->data_next = VQB_DATA_GPA;
    /* A fresh memfd is zeroed: the rings start as a driver initialises them. */
    b->q.max_size = max_size;
    virtq_reset(&b->q);
    b->q.cfg.size = size;
    b->q.cfg.ready = true;
    b->q.cfg.desc_gpa = VQB_DESC_GPA;
    b->q.cfg.avail_gpa = VQB_AVAIL_GPA;
    b->q.cfg.used_gpa = VQB_USED_GPA;
}

int vqb_activate(struct vqb *b, bool event_idx, bool indirect)
{
    return virtq_activate(&b->q, &b->mem, event_idx, indirect);
}

void vqb_fini(struct vqb *b)
{
    gmem_destroy(&b->mem);
}

void *vqb_host(struct vqb *b, gpa_t gpa, uint64_t len)
{
    void *p = gmem_ptr(&b->mem, gpa, len);
    if (!p)
        vqb_die("fixture address outside RAM");
    return p;
}

gpa_t vqb_alloc(struct vqb *b, uint64_t len, uint8_t fill)
{
    gpa_t gpa = b->data_next;

    if (len > VQB_RAM_END - gpa)
        vqb_die("data area exhausted");
    if (len)
        memset(vqb_host(b, gpa, len), fill, len);
    b->data_next = (gpa + len + 15) & ~15ULL;
    return gpa;
}

static void put16(struct vqb *b, gpa_t gpa, uint16_t v)
{
    le16_put(vqb_host(b, gpa, 2), v);
}

static uint16_t get16(struct vqb *b, gpa_t gpa)
{
    return le16_get(vqb_host(b, gpa, 2));
}

void vqb_set_table_desc(struct vqb *b, gpa_t table_gpa, uint16_t i, uint64_t addr, uint32_t len,
                        uint16_t flags, uint16_t next)
{
    uint8_t *d = vqb_host(b, table_gpa + (uint64_t)i * DESC_BYTES, DESC_BYTES);

    le64_put(d, addr);
    le32_put(d + 8, len);
    le16_put(d + 12, flags);
    le16_put(d + 14, next);
}

void vqb_set_desc(struct vqb *b, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                  uint16_t next)
{
    vqb_set_table_desc(b, VQB_DESC_GPA, i, addr, len, flags, next);
}

static uint16_t take_desc(struct vqb *b)
{
    uint16_t i = b->next_desc;
    b->next_desc = (uint16_t)((i + 1) % b->size);
    return i;
}

uint16_t vqb_add_chain(struct vqb *b, const struct vqb_buf *bufs, unsigned n)
{
    uint16_t head, cur;

    if (n == 0 || n > b->size)
        vqb_die("bad chain length");
    head = cur = take_desc(b);
    for (unsigned k = 0; k < n; k++) {
        uint16_t flags = bufs[k].write ? VIRTQ_DESC_F_WRITE : 0;
        uint16_t next = 0;
        if (k + 1 < n) {
            next = take_desc(b);
            flags |= VIRTQ_DESC_F_NEXT;
        }
        vqb_set_desc(b, cur, bufs[k].addr, bufs[k].len, flags, next);
        cur = next;
    }
    vqb_publish(b, head);
    return head;
}

uint16_t vqb_add_indirect(struct vqb *b, gpa_t table_gpa, const struct vqb_buf *bufs, unsigned n)
{
    uint16_t head;

    for (unsigned k = 0; k < n; k++) {
        uint16_t flags =
            (bufs[k].write ? VIRTQ_DESC_F_WRITE : 0) | (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
        vqb_set_table_desc(b, table_gpa, (uint16_t)k, bufs[k].addr, bufs[k].len, flags,
                           (uint16_t)(k + 1 < n ? k + 1 : 0));
    }
    head = take_desc(b);
    vqb_set_desc(b, head, table_gpa, n * DESC_BYTES, VIRTQ_DESC_F_INDIRECT, 0);
    vqb_publish(b, head);
    return head;
}

void vqb_set_avail_ring(struct vqb *b, uint16_t slot, uint16_t head)
{
    put16(b, VQB_AVAIL_GPA + VQB_AVAIL_RING(slot % b->size), head);
}

void vqb_set_avail_idx(struct vqb *b, uint16_t idx)
{
    uint16_t *p = vqb_host(b, VQB_AVAIL_GPA + VQB_AVAIL_IDX, 2);

    /* Release, as a driver's write barrier before publishing the index. */
    __atomic_store_n(p, idx, __ATOMIC_RELEASE);
    b->avail_idx = idx;
}

void vqb_publish(struct vqb *b, uint16_t head)
{
    vqb_set_avail_ring(b, b->avail_idx, head);
    vqb_set_avail_idx(b, (uint16_t)(b->avail_idx + 1));
}

void vqb_set_avail_flags(struct vqb *b, uint16_t flags)
{
    put16(b, VQB_AVAIL_GPA + VQB_AVAIL_FLAGS, flags);
}

void vqb_set_used_event(struct vqb *b, uint16_t v)
{
    put16(b, VQB_AVAIL_GPA + VQB_AVAIL_USED_EVENT(b->size), v);
}

uint16_t vqb_used_idx(struct vqb *b)
{
    return __atomic_load_n((uint16_t *)vqb_host(b, VQB_USED_GPA + VQB_USED_IDX, 2),
                           __ATOMIC_ACQUIRE);
}

uint16_t vqb_used_flags(struct vqb *b)
{
    return get16(b, VQB_USED_GPA + VQB_USED_FLAGS);
}

uint16_t vqb_avail_event(struct vqb *b)
{
    return get16(b, VQB_USED_GPA + VQB_USED_AVAIL_EVENT(b->size));
}

void vqb_used_elem(struct vqb *b, uint16_t slot, uint32_t *id, uint32_t *len)
{
    const uint8_t *e = vqb_host(b, VQB_USED_GPA + VQB_USED_ELEM(slot % b->size), 8);

    *id = le32_get(e);
    *len = le32_get(e + 4);
}
