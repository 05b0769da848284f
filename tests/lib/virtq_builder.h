/*
 * Test fixture playing the virtio driver for split virtqueues: it creates
 * real guest memory with gmem_create(), places a descriptor table, an
 * available ring and a used ring in it, and lets tests add well-formed or
 * deliberately broken chains, publish them, and read back what the device
 * wrote.  The ring layout is written from the offsets below (virtio 1.2
 * section 2.7), independent of devices/virtio/queue.c, so a mistake shared
 * by both cannot hide itself.  Test-only: misuse aborts.
 */
#ifndef TESTS_LIB_VIRTQ_BUILDER_H
#define TESTS_LIB_VIRTQ_BUILDER_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/queue.h"
#include "vmm/gmem.h"

/* Guest-physical placement, the same in every layout. */
#define VQB_DESC_GPA  (4 * MiB) /* room for 32768 descriptors (512 KiB) */
#define VQB_AVAIL_GPA (5 * MiB)
#define VQB_USED_GPA  (6 * MiB)
#define VQB_DATA_GPA  (8 * MiB)  /* vqb_alloc() hands out buffers from here */
#define VQB_RAM_END   (16 * MiB) /* end of RAM in both layouts */
/* VQB_TWO_REGIONS: RAM [0, HOLE_START) and [HOLE_END, RAM_END), nothing between. */
#define VQB_HOLE_START (1 * MiB)
#define VQB_HOLE_END   (2 * MiB)

/* Ring field offsets as the driver sees them. */
#define VQB_AVAIL_FLAGS         0
#define VQB_AVAIL_IDX           2
#define VQB_AVAIL_RING(i)       (4 + 2 * (uint64_t)(i))
#define VQB_AVAIL_USED_EVENT(n) VQB_AVAIL_RING(n)
#define VQB_USED_FLAGS          0
#define VQB_USED_IDX            2
#define VQB_USED_ELEM(i)        (4 + 8 * (uint64_t)(i))
#define VQB_USED_AVAIL_EVENT(n) VQB_USED_ELEM(n)

enum vqb_layout {
    VQB_ONE_REGION,  /* RAM [0, 16 MiB) */
    VQB_TWO_REGIONS, /* RAM [0, 1 MiB) and [2 MiB, 16 MiB): a hole in between */
};

struct vqb {
    struct gmem mem;
    struct virtq q;     /* the device's queue under test */
    uint16_t size;      /* ring size the driver configured */
    uint16_t avail_idx; /* driver's shadow of avail.idx */
    uint16_t next_desc; /* next free descriptor for vqb_add_chain() (wraps) */
    gpa_t data_next;    /* vqb_alloc() bump pointer */
};

/* One buffer of a chain the builder writes. */
struct vqb_buf {
    gpa_t addr;
    uint32_t len;
    bool write; /* device-writable */
};

/*
 * Create guest RAM in `layout`, zero the rings, and configure b->q (reset,
 * max_size = `max_size`, cfg.size = `size`, ring addresses above, ready) but
 * do not activate it.  `size` need not be valid (activation tests).
 */
void vqb_init(struct vqb *b, enum vqb_layout layout, uint16_t size, uint16_t max_size);
/* virtq_activate() on b->q; returns its result. */
int vqb_activate(struct vqb *b, bool event_idx, bool indirect);
void vqb_fini(struct vqb *b);

/* Host pointer for [gpa, gpa + len) in the fixture's RAM; aborts if invalid. */
void *vqb_host(struct vqb *b, gpa_t gpa, uint64_t len);
/* A fresh 16-aligned buffer of `len` bytes in the data area, filled with `fill`. */
gpa_t vqb_alloc(struct vqb *b, uint64_t len, uint8_t fill);

/* Write descriptor `i` of the main table / of a table at `table_gpa`. */
void vqb_set_desc(struct vqb *b, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                  uint16_t next);
void vqb_set_table_desc(struct vqb *b, gpa_t table_gpa, uint16_t i, uint64_t addr, uint32_t len,
                        uint16_t flags, uint16_t next);

/*
 * Write `n` buffers as a chain at the next free descriptors (linked with
 * NEXT, WRITE where asked) and publish it.  Returns the head.
 */
uint16_t vqb_add_chain(struct vqb *b, const struct vqb_buf *bufs, unsigned n);
/*
 * Write `n` buffers as an indirect table at `table_gpa` (entries 0..n-1,
 * linked), one main descriptor pointing at it with INDIRECT, and publish it.
 * Returns the head.
 */
uint16_t vqb_add_indirect(struct vqb *b, gpa_t table_gpa, const struct vqb_buf *bufs, unsigned n);

/* Put `head` in the next avail slot and publish avail.idx + 1 (release). */
void vqb_publish(struct vqb *b, uint16_t head);
/* Raw writes: avail.idx (also sets the shadow), avail.ring[slot], avail.flags, used_event. */
void vqb_set_avail_idx(struct vqb *b, uint16_t idx);
void vqb_set_avail_ring(struct vqb *b, uint16_t slot, uint16_t head);
void vqb_set_avail_flags(struct vqb *b, uint16_t flags);
void vqb_set_used_event(struct vqb *b, uint16_t v);

/* What the device wrote: used.idx, used.flags, avail_event, used.ring[slot % size]. */
uint16_t vqb_used_idx(struct vqb *b);
uint16_t vqb_used_flags(struct vqb *b);
uint16_t vqb_avail_event(struct vqb *b);
void vqb_used_elem(struct vqb *b, uint16_t slot, uint32_t *id, uint32_t *len);

#endif /* TESTS_LIB_VIRTQ_BUILDER_H */
