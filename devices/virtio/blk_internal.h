/*
 * Private state of the virtio-blk device, shared by blk.c (lifecycle,
 * config, migration) and blk_req.c (the request path).  Nothing outside
 * those two files includes this.
 */
#ifndef DEVICES_VIRTIO_BLK_INTERNAL_H
#define DEVICES_VIRTIO_BLK_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/blk.h"

#define HDR_LEN sizeof(struct virtio_blk_req_hdr)
#define SEG_LEN sizeof(struct virtio_blk_dwz_seg)
#define NO_SLOT UINT16_MAX

struct virtio_blk;

/* One request slot: owned by a request from virtq_pop() until its chain is pushed. */
struct blk_req {
    struct virtq_chain chain; /* iovecs rewritten to the data part once parsed */
    struct blk_io io;
    struct virtio_blk *blk;
    volatile uint8_t *status; /* the chain's last writable byte, in guest RAM */
    uint32_t used_len;        /* used.len on completion: bytes written incl. status */
    uint32_t type;            /* VIRTIO_BLK_T_* from the header copy */
    uint16_t next_free;
};

struct virtio_blk {
    struct virtio_dev dev; /* first: ops receive &dev */
    struct blk_backend *be;
    uint64_t capacity; /* sectors */
    bool read_only;
    uint8_t config[VIRTIO_BLK_CONFIG_SIZE]; /* little-endian, fixed at creation */
    char serial[VIRTIO_BLK_ID_BYTES];       /* NUL-padded GET_ID answer */

    struct blk_req *reqs;
    unsigned depth;    /* slots, <= VIRTIO_BLK_QUEUE_SIZE */
    unsigned inflight; /* requests the backend holds */
    uint16_t free_head;
    unsigned drain_timeout_ms; /* longest a reset, quiesce or destroy waits for the disk */
    bool drop_completions;     /* reset/destroy: completions must not touch the guest */
    bool abandoned;            /* a drain timed out: drop completions until inflight is 0 */
    bool quiesced;             /* virtio_blk_quiesce(): pop nothing */
    bool need_signal;          /* chains were pushed since the last interrupt */
    bool need_unplug;          /* requests were submitted since the last unplug */

    int resched_fd; /* "pop more": written when a batch ran out of budget */
    bool be_fd_watched, resched_watched;
    struct virtio_blk_stats stats;
};

/* Put every slot on the free list (b->reqs and b->depth set). */
void blk_req_init_slots(struct virtio_blk *b);

/*
 * Pop and start requests while the device is live, a slot is free and the
 * per-event budget lasts.  Call with dev->lock held, then blk_req_flush().
 */
void blk_req_process(struct virtio_blk *b);

/* End of a batch: unplug the backend, interrupt the driver if chains were pushed. */
void blk_req_flush(struct virtio_blk *b);

/* Event-loop handlers (opaque = struct virtio_blk); they take dev->lock. */
void blk_req_backend_event(void *opaque, uint32_t events);
void blk_req_resched_event(void *opaque, uint32_t events);

#endif /* DEVICES_VIRTIO_BLK_INTERNAL_H */
