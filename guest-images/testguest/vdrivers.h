/*
 * vdrivers.h - per-device-type helpers on top of virtio.h (blk, rng,
 * console, net), shared by the device tests, the hostile modes and the
 * CPL3 benchmarks, and the entry points of those tests.
 */
#ifndef WISP_GUEST_VDRIVERS_H
#define WISP_GUEST_VDRIVERS_H

#include "virtio.h"

/* Default wait for one request (milliseconds). */
#define VREQ_TIMEOUT_MS 5000

/* ---- blk (vblk.c) ---- */
struct blk_slot {
    struct virtio_blk_req_hdr hdr;
    struct virtio_blk_discard_wz seg; /* payload of DISCARD / WRITE_ZEROES */
    u8 status;
    u8 pad[15];
};
_Static_assert(sizeof(struct blk_slot) == 48, "blk slot");

struct blkdev {
    struct vdev *d;
    struct vq q;
    u64 capacity; /* 512-byte sectors */
    u32 blk_size, seg_max, size_max;
    u32 unit;               /* sectors per logical block (>= 1) */
    struct blk_slot *slots; /* q.size entries, from the pool */
    u64 wait_ms;            /* blk_sync's bound per request; 0: VREQ_TIMEOUT_MS */
};

/* Negotiate (VERSION_1 plus `want`), set up queue 0 with up to `qsize`
 * entries, read the config, DRIVER_OK. 0 or a VE_* error. */
int blk_open(struct blkdev *b, struct vdev *d, u64 want, u16 qsize);

/* Queue one request using slot `slot` (< q.size) for header and status.
 * IN and GET_ID make `data` device-writable, OUT device-readable; for
 * DISCARD / WRITE_ZEROES the slot's seg is sent and `data` is ignored;
 * FLUSH has no data. Not kicked. Returns the head or VE_NOSPC. */
int blk_submit(struct blkdev *b, unsigned slot, u32 type, u64 sector, void *data, u32 len);

/* One request, waited for: returns the status byte (VIRTIO_BLK_S_*) or
 * a negative VE_* error. */
int blk_sync(struct blkdev *b, u32 type, u64 sector, void *data, u32 len);

/* test=blk; returns with any_failed set on failure. */
void test_blk(void);

/* ---- rng (vmisc.c) ---- */
struct rngdev {
    struct vdev *d;
    struct vq q;
};
int rng_open(struct rngdev *r, struct vdev *d);
/* Fill buf[0..len) with requests of at most len bytes each; returns the
 * number of bytes the device wrote (== len on success) or a VE_* error. */
int rng_read(struct rngdev *r, void *buf, u32 len);
void test_rng(void);

/* test=balloon (vballoon.c): follow the host's balloon target. */
void test_balloon(void);

/* ---- console (vmisc.c) ---- */
void test_console(void);

/* ---- net (vnet.c) ---- */
#define NET_ETHERTYPE GUEST_NET_ETHERTYPE /* IEEE local experimental */
#define NET_FRAME_LEN GUEST_NET_FRAME_LEN /* minimum Ethernet frame without FCS */
#define NET_RXBUF_LEN 2048                /* header + 1514-byte frame, rounded */

struct netdev {
    struct vdev *d;
    struct vq rx, tx;
    u8 mac[6];
    bool has_mac, mrg_rxbuf;
    u16 status, mtu;
};

/* Negotiate MAC, STATUS, MTU, MRG_RXBUF (when offered), set up rx (0) and
 * tx (1) with up to `qsize` entries each, read the config, DRIVER_OK. */
int net_open(struct netdev *n, struct vdev *d, u16 qsize);

/* Build the test frame for sequence number `seq` of `count` after a zeroed
 * virtio_net_hdr at `buf` (NET_FRAME_LEN + 12 bytes): broadcast, source =
 * our MAC, ethertype NET_ETHERTYPE, payload "wisp", seq, count (both big
 * endian u32), zero padding. */
void net_build_frame(const struct netdev *n, u8 *buf, u32 seq, u32 count);

/* If the frame (after the 12-byte header) is one of ours, its sequence
 * number; otherwise -1. */
long net_frame_seq(const u8 *frame, u32 len);

void test_net(void);

/* ---- hostile.c ---- */
/* Run hostile mode `mode` (the part after "hostile-"); never returns. */
__attribute__((noreturn)) void test_hostile(const char *mode);

/* ---- bench.c ---- */
__attribute__((noreturn)) void test_bench_blk(void);
__attribute__((noreturn)) void test_bench_net(void);
__attribute__((noreturn)) void test_cpl3_probe(void); /* test=cpl3 */

/* ---- migck.c ---- */
/* test=migck: memory (and disk) continuity across snapshot/restore. */
__attribute__((noreturn)) void test_migck(void);

/* ---- shared ---- */
/* Print "RESULT PASS|FAIL" and exit with the matching status. */
__attribute__((noreturn)) void vfinish(void);

/* A u64 command-line option, or `def` when absent or unparsable. */
u64 opt_u64(const char *key, u64 def);
/* True if option `key` equals `val`. */
bool opt_is(const char *key, const char *val);

#endif
