/*
 * virtio-blk device model (virtio 1.2 section 5.2): one request queue in
 * front of a block backend (devices/backends/blk_backend.h; the raw-file
 * backend by default).
 *
 * Offered features: SIZE_MAX, SEG_MAX, BLK_SIZE, FLUSH, and DISCARD and
 * WRITE_ZEROES when the backend can do them and the disk is writable, or RO
 * for a read-only disk; VERSION_1, EVENT_IDX and INDIRECT_DESC come from the
 * common code.  No MQ (one queue of 256), no TOPOLOGY, no CONFIG_WCE: the
 * cache is always write-back and FLUSH makes it durable.  If the driver does
 * not negotiate FLUSH, every write is made durable before it completes
 * (RWF_DSYNC), as the spec requires then.
 *
 * Data path, all on the main event loop under dev->lock: a kick pops chains
 * while fewer than `queue_depth` requests are in flight and hands each to
 * the backend without waiting (at most one ring's worth per event; the rest
 * is rescheduled through the device's own eventfd).  When the backend's
 * eventfd fires, its completions write the status byte, return the chains
 * and interrupt once per batch, then popping resumes: requests beyond the
 * in-flight limit wait in the ring, and no kick is lost.  A vCPU never waits
 * for the disk, except through a device reset (below).
 *
 * Guest errors.  A request the device understands but cannot serve gets a
 * status: IOERR for a range outside the disk (overflow-checked), a data
 * length that is not a multiple of 512, a write-like request on a read-only
 * disk, a malformed discard/write-zeroes segment or a backend failure;
 * UNSUPP for an unknown type, an unnegotiated DISCARD/WRITE_ZEROES, unknown
 * segment flags, or UNMAP on a discard (section 5.2.6.2).  A chain with no room for a status byte,
 * with a header shorter than 16 bytes, or over the per-request cap (VIRTIO_BLK_MAX_REQ bytes) has
 * nowhere to put a status: it is returned with used length 0 and counted as malformed (rate-limited
 * log), and the device keeps working, since the queue itself is intact.  Only a broken ring
 * (virtq_pop() < 0) sets DEVICE_NEEDS_RESET.
 *
 * Reset and destroy drain the backend synchronously: they wait for every
 * request in flight (whose buffers are in guest memory) and throw the
 * completions away, so no completion can ever touch a queue that was reset
 * or freed.  This is the one place a vCPU (writing Status = 0) waits for the
 * disk, and the wait is bounded by drain_timeout_ms: a disk that does not
 * finish in time has what is left cancelled and abandoned.  The device then
 * counts drain_timeouts, keeps dropping the late completions (the kernel
 * may still fill their data buffers, as a real device finishing its DMA
 * would, but no status byte, used entry or interrupt is ever written for
 * them), and refuses DRIVER_OK (DEVICE_NEEDS_RESET) until all have ended.
 *
 * Capacity: the image size rounded down to whole 512-byte sectors; the
 * bytes of a partial last sector are never read or written.  Every request
 * is checked against [0, capacity * 512) by the device, and again by the
 * backend.
 *
 * Migration: call virtio_blk_quiesce() before saving (it completes every
 * request in flight to the guest and stops popping); save refuses with
 * -EBUSY otherwise.  The device state is the config space as the guest saw
 * it (capacity, read-only, limits) and the ID string; load refuses a device
 * whose disk differs.
 */
#ifndef DEVICES_VIRTIO_BLK_H
#define DEVICES_VIRTIO_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/backends/blk_backend.h"
#include "devices/virtio/virtio.h"
#include "vmm/error.h"

/* Device feature bits (virtio 1.2 section 5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX     1
#define VIRTIO_BLK_F_SEG_MAX      2
#define VIRTIO_BLK_F_GEOMETRY     4
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_BLK_SIZE     6
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_TOPOLOGY     10
#define VIRTIO_BLK_F_CONFIG_WCE   11
#define VIRTIO_BLK_F_MQ           12
#define VIRTIO_BLK_F_DISCARD      13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types (section 5.2.6). */
#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_GET_LIFETIME 10
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_T_SECURE_ERASE 14

/* Status byte values. */
#define VIRTIO_BLK_S_OK     0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

/* Discard / write-zeroes segment flags. */
#define VIRTIO_BLK_WZ_F_UNMAP 1U

#define VIRTIO_BLK_ID_BYTES 20 /* GET_ID: NUL-padded, no NUL when 20 bytes long */

/* Request header, device-readable, first 16 bytes of every chain. */
struct virtio_blk_req_hdr {
    uint32_t type;     /* le32 */
    uint32_t reserved; /* le32, formerly ioprio; ignored */
    uint64_t sector;   /* le64 */
};
_Static_assert(sizeof(struct virtio_blk_req_hdr) == 16, "request header is 16 bytes");

/* One discard / write-zeroes segment. */
struct virtio_blk_dwz_seg {
    uint64_t sector;      /* le64 */
    uint32_t num_sectors; /* le32 */
    uint32_t flags;       /* le32, VIRTIO_BLK_WZ_F_* */
};
_Static_assert(sizeof(struct virtio_blk_dwz_seg) == 16, "discard segment is 16 bytes");

/* Fixed device limits. */
#define VIRTIO_BLK_QUEUE_SIZE 256
/*
 * The limits below are wisp's virtio-blk profile: the guest sees them
 * whatever serves the queue (built in, vhost-user, vDPA; see
 * virtio_blk_profile), so a VM can move between data planes.  They are
 * what every external backend we know honours (qemu-storage-daemon's
 * vhost-user-blk and vduse-blk exports: 126 segments, 32768-sector discard
 * and write-zeroes); the built-in device enforces exactly these.
 */
#define VIRTIO_BLK_SEG_MAX  126U  /* data segments per request */
#define VIRTIO_BLK_SIZE_MAX 4096U /* bytes per data segment */
/* Largest data transfer: what a driver honouring SEG_MAX and SIZE_MAX can send. */
#define VIRTIO_BLK_MAX_DATA ((uint64_t)VIRTIO_BLK_SEG_MAX * VIRTIO_BLK_SIZE_MAX)
/* Per-request cap on readable + writable bytes (virtq_pop max_len): data, header, status, slack. */
#define VIRTIO_BLK_MAX_REQ (VIRTIO_BLK_MAX_DATA + 4096)
/* Discard / write-zeroes: one segment of at most 16 MiB; hint to split at 4 KiB. */
#define VIRTIO_BLK_MAX_DWZ_SECTORS (1U << 15)
#define VIRTIO_BLK_DISCARD_ALIGN   8U

/* Config space layout (section 5.2.4), up to the fields this device may offer. */
struct virtio_blk_config_space {
    uint64_t capacity; /* 512-byte sectors */
    uint32_t size_max;
    uint32_t seg_max;
    uint16_t geo_cylinders;
    uint8_t geo_heads;
    uint8_t geo_sectors;
    uint32_t blk_size;
    uint8_t topo_physical_block_exp;
    uint8_t topo_alignment_offset;
    uint16_t topo_min_io_size;
    uint32_t topo_opt_io_size;
    uint8_t writeback;
    uint8_t unused0;
    uint16_t num_queues;
    uint32_t max_discard_sectors;
    uint32_t max_discard_seg;
    uint32_t discard_sector_alignment;
    uint32_t max_write_zeroes_sectors;
    uint32_t max_write_zeroes_seg;
    uint8_t write_zeroes_may_unmap;
    uint8_t unused1[3];
};
#define VIRTIO_BLK_CONFIG_SIZE 60U /* bytes exposed: through unused1 */
_Static_assert(offsetof(struct virtio_blk_config_space, capacity) == 0, "capacity at 0");
_Static_assert(offsetof(struct virtio_blk_config_space, size_max) == 8, "size_max at 8");
_Static_assert(offsetof(struct virtio_blk_config_space, seg_max) == 12, "seg_max at 12");
_Static_assert(offsetof(struct virtio_blk_config_space, geo_cylinders) == 16, "geometry at 16");
_Static_assert(offsetof(struct virtio_blk_config_space, blk_size) == 20, "blk_size at 20");
_Static_assert(offsetof(struct virtio_blk_config_space, topo_physical_block_exp) == 24,
               "topology at 24");
_Static_assert(offsetof(struct virtio_blk_config_space, writeback) == 32, "writeback at 32");
_Static_assert(offsetof(struct virtio_blk_config_space, num_queues) == 34, "num_queues at 34");
_Static_assert(offsetof(struct virtio_blk_config_space, max_discard_sectors) == 36,
               "max_discard_sectors at 36");
_Static_assert(offsetof(struct virtio_blk_config_space, max_discard_seg) == 40,
               "max_discard_seg at 40");
_Static_assert(offsetof(struct virtio_blk_config_space, discard_sector_alignment) == 44,
               "discard_sector_alignment at 44");
_Static_assert(offsetof(struct virtio_blk_config_space, max_write_zeroes_sectors) == 48,
               "max_write_zeroes_sectors at 48");
_Static_assert(offsetof(struct virtio_blk_config_space, max_write_zeroes_seg) == 52,
               "max_write_zeroes_seg at 52");
_Static_assert(offsetof(struct virtio_blk_config_space, write_zeroes_may_unmap) == 56,
               "write_zeroes_may_unmap at 56");
_Static_assert(offsetof(struct virtio_blk_config_space, unused1) + 3 == VIRTIO_BLK_CONFIG_SIZE,
               "config space ends after unused1");

/* User configuration of one disk. */
struct virtio_blk_config {
    const char *id;            /* instance id ("blk0"): logs, snapshot keys; NULL: "blk" */
    const char *path;          /* image, for virtio_blk_create() */
    const char *serial;        /* GET_ID string, at most 20 bytes; NULL: the instance id
                                * (cut to 20 bytes) */
    bool read_only;            /* offer RO; refuse writes, discards and write-zeroes */
    bool direct;               /* open the image with O_DIRECT (see blk_raw.h) */
    unsigned queue_depth;      /* most requests in flight; 0: VIRTIO_BLK_QUEUE_SIZE */
    unsigned drain_timeout_ms; /* reset/quiesce/destroy wait; 0: VIRTIO_BLK_DRAIN_TIMEOUT_MS */
};

/* How long a reset, quiesce or destroy waits for the disk before giving up on it. */
#define VIRTIO_BLK_DRAIN_TIMEOUT_MS 5000

/* Counters for --stats and tests; they survive reset and are not migrated. */
struct virtio_blk_stats {
    uint64_t reads, writes, flushes;  /* requests completed with OK, by type */
    uint64_t discards, write_zeroes;  /* likewise */
    uint64_t get_ids;                 /* likewise */
    uint64_t read_bytes, write_bytes; /* data moved by OK reads / writes */
    uint64_t ioerr;                   /* requests completed with IOERR */
    uint64_t unsupp;                  /* requests completed with UNSUPP */
    uint64_t malformed;               /* chains returned with length 0 (no status possible) */
    uint64_t inflight_full;           /* times popping stopped at the in-flight limit */
    uint64_t inflight_peak;           /* most requests the backend held at once */
    uint64_t budget_yields;           /* times an event stopped after a ring's worth */
    uint64_t drain_timeouts;          /* resets/destroys that gave up waiting for the disk */
};

/*
 * Create a virtio-blk device on the image cfg->path (blk_raw_open()).  `mem`
 * and `loop` must outlive the device; `loop` must be initialised: the device
 * registers two fds in it here (the backend's completion eventfd and its own
 * reschedule eventfd).  The device is returned with its transport unset;
 * destroy it with (*out)->ops->destroy(*out), without dev->lock held.
 *
 * Errors (one line in `err`): the blk_raw_open() errors (WISP_EXIT_USAGE
 * naming the path when the image cannot be opened, WISP_EXIT_HOST without
 * io_uring); WISP_EXIT_USAGE for a serial longer than 20 bytes or a
 * queue_depth over VIRTIO_BLK_QUEUE_SIZE; WISP_EXIT_FAILURE for out of
 * memory, eventfd creation or an event loop without room.
 * Returns 0 or -errno.
 */
int virtio_blk_create(const struct virtio_blk_config *cfg, const struct gmem *mem,
                      struct evloop *loop, struct virtio_dev **out,
                      struct errbuf *err) __must_check;

/*
 * Same with an already open backend, of which the device takes ownership
 * (destroyed on failure too).  cfg->path and cfg->direct are ignored; the
 * disk is read-only if cfg->read_only or be->read_only.  The in-flight limit
 * is also capped by be->max_inflight.
 */
int virtio_blk_create_with_backend(const struct virtio_blk_config *cfg, struct blk_backend *be,
                                   const struct gmem *mem, struct evloop *loop,
                                   struct virtio_dev **out, struct errbuf *err) __must_check;

/*
 * Stop popping new requests and wait until every request in flight has
 * completed to the guest (status written, chain returned, interrupt sent).
 * Call before save, with the vCPUs paused; undo with virtio_blk_resume().
 * Takes dev->lock; waits at most about drain_timeout_ms.  Returns 0, or
 * <0 if requests are still in flight (save then refuses with -EBUSY).
 */
int virtio_blk_quiesce(struct virtio_dev *d);

/* Pop again after virtio_blk_quiesce() (and pick up what the guest queued meanwhile). */
void virtio_blk_resume(struct virtio_dev *d);

/* What a virtio-blk device can do, for virtio_blk_profile(). */
struct virtio_blk_caps {
    uint64_t capacity; /* 512-byte sectors */
    bool read_only;
    bool flush;
    bool discard; /* honours VIRTIO_BLK_MAX_DWZ_SECTORS in one segment */
    bool write_zeroes;
};

/*
 * wisp's virtio-blk guest view, the same for every data plane: fills the
 * VIRTIO_BLK_CONFIG_SIZE bytes of config space (little-endian) and returns
 * the device features to offer (SIZE_MAX, SEG_MAX, BLK_SIZE, and FLUSH,
 * RO, DISCARD, WRITE_ZEROES as `caps` allow; DISCARD and WRITE_ZEROES on
 * writable disks only).  Two devices with equal caps present identical
 * config spaces and features, which is what lets a migration restore a
 * built-in device's state onto a vhost-user or vDPA one and back.
 */
uint64_t virtio_blk_profile(const struct virtio_blk_caps *caps,
                            uint8_t config[VIRTIO_BLK_CONFIG_SIZE]);

/*
 * The device record of a blk (VIRTIO_STATE_T_BLK_DEV_STATE), the same for
 * every data plane: what the guest read (capacity, read-only, config
 * space) and the GET_ID string, all zero when an external data plane
 * answers GET_ID itself.
 */
struct virtio_blk_record {
    uint64_t capacity;
    bool read_only;
    uint8_t config[VIRTIO_BLK_CONFIG_SIZE];
    char serial[VIRTIO_BLK_ID_BYTES];
};

/* Append the record to `out`.  0 or out->err. */
int virtio_blk_record_save(const struct virtio_blk_record *r, struct vstate_out *out);

/*
 * Parse a saved record from `in` and compare it with this device's
 * (`mine`): the disk must be the one the guest saw (capacity, read-only,
 * config bytes, and the ID string when both sides know it).  0, or
 * -EINVAL with a log line naming device `id`, or the parser's -errno.
 */
int virtio_blk_record_check(const char *id, const struct virtio_blk_record *mine,
                            struct vstate_in *in);

/* Snapshot of the counters.  Takes dev->lock. */
void virtio_blk_get_stats(struct virtio_dev *d, struct virtio_blk_stats *st);

#endif /* DEVICES_VIRTIO_BLK_H */
