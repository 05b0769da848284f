/*
 * Test fixture for the virtio-blk device: a temporary image file, guest
 * RAM and the driver's side of the request ring (tests/lib/virtq_builder.h),
 * an event loop, and a fake transport that counts interrupts and records
 * DEVICE_NEEDS_RESET.  The device runs exactly as in a VM, except that the
 * test plays the transport (kicks, status) and runs the event loop itself.
 * Test-only: misuse aborts.
 */
#ifndef TESTS_LIB_BLK_FIXTURE_H
#define TESTS_LIB_BLK_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/blk.h"
#include "tests/lib/virtq_builder.h"
#include "vmm/evloop.h"

#define BLK_FX_DEFAULT_SIZE (4 * MiB)

struct blk_fx {
    struct vqb vq; /* guest RAM [0, 16 MiB) and the ring (its vq.q is unused) */
    struct evloop loop;
    struct virtio_dev *dev;
    char path[128]; /* the image */
    int img_fd;     /* the test's own descriptor on the image, to check its bytes */
    unsigned irqs;  /* used-buffer interrupts the device asked for */
    unsigned config_irqs;
    unsigned needs_reset; /* times the device asked for DEVICE_NEEDS_RESET */
};

/* Options for blk_fx_init(); zero means the default. */
struct blk_fx_opts {
    const char *dir;      /* where the image goes; NULL: $TMPDIR or /tmp */
    uint64_t image_size;  /* bytes; 0: BLK_FX_DEFAULT_SIZE */
    bool read_only;       /* the device's read_only switch */
    unsigned queue_depth; /* virtio_blk_config.queue_depth */
    const char *serial;   /* virtio_blk_config.serial */
    uint64_t unacked;     /* offered features the driver does not ack */
    bool event_idx;       /* ack EVENT_IDX (off by default: one interrupt per batch) */
    bool direct;          /* open the image with O_DIRECT */
};

/* RAM, ring (size 256), loop and image only; no device yet. */
void blk_fx_setup(struct blk_fx *fx, const struct blk_fx_opts *o);
/* Create the device on fx->path (cfg->path is replaced); returns virtio_blk_create()'s result. */
int blk_fx_create(struct blk_fx *fx, const struct virtio_blk_config *cfg, struct errbuf *err);
/* Create the device on the backend `be` instead of an image (the device owns it). */
int blk_fx_create_on(struct blk_fx *fx, const struct virtio_blk_config *cfg, struct blk_backend *be,
                     struct errbuf *err);
/* Attach the fake transport, ack the offered features minus `unacked`, activate queue 0. */
void blk_fx_start(struct blk_fx *fx, uint64_t unacked, bool event_idx);
/* Same, returning activate()'s result instead of aborting when it refuses. */
int blk_fx_try_start(struct blk_fx *fx, uint64_t unacked, bool event_idx);
/* All three with `o` (NULL: defaults); aborts on failure. */
void blk_fx_init(struct blk_fx *fx, const struct blk_fx_opts *o);
/* Destroy the device (if any), then RAM, loop and image. */
void blk_fx_fini(struct blk_fx *fx);

/* What the transport does on a kick: queue_notify(0) under dev->lock. */
void blk_fx_kick(struct blk_fx *fx);
/* Run the ready event-loop handlers once, waiting up to `timeout_ms`; returns how many ran. */
unsigned blk_fx_pump(struct blk_fx *fx, int timeout_ms);
/* Pump until used.idx reaches `n`; aborts after 10 s. */
void blk_fx_wait_used(struct blk_fx *fx, uint16_t n);

/* One request as the driver placed it. */
struct blk_fx_req {
    uint16_t head;
    gpa_t hdr, data, status;
    uint32_t len; /* data bytes */
};

/*
 * Place a request as an indirect chain [header (R), data, status (W)] and
 * publish it (no kick).  `len` 0 leaves the data buffer out; data is
 * device-writable for IN and GET_ID, readable otherwise, and is filled
 * with `fill`.  The status byte starts as 0xee.
 */
struct blk_fx_req blk_fx_add(struct blk_fx *fx, uint32_t type, uint64_t sector, uint32_t len,
                             uint8_t fill);
/* Same for DISCARD / WRITE_ZEROES with one segment. */
struct blk_fx_req blk_fx_add_dwz(struct blk_fx *fx, uint32_t type, uint64_t sector, uint32_t nsec,
                                 uint32_t flags);
/* Place a request from raw buffers as an indirect chain (status is the last buffer). */
struct blk_fx_req blk_fx_add_bufs(struct blk_fx *fx, const struct vqb_buf *bufs, unsigned n);
/* A guest buffer of `len` bytes aligned to `align` (a power of two), filled with `fill`. */
gpa_t blk_fx_alloc_aligned(struct blk_fx *fx, uint64_t len, uint64_t align, uint8_t fill);
/* Guest buffer holding a request header. */
gpa_t blk_fx_hdr(struct blk_fx *fx, uint32_t type, uint64_t sector);

/* Status byte as the device left it. */
uint8_t blk_fx_status(struct blk_fx *fx, const struct blk_fx_req *r);
/* used.len of chain `head` if it was returned (searches used[0 .. used.idx)). */
bool blk_fx_used_len(struct blk_fx *fx, uint16_t head, uint32_t *len);
/* Host view of guest bytes. */
uint8_t *blk_fx_host(struct blk_fx *fx, gpa_t gpa, uint64_t len);

/* Start of the guest data area again (the bump allocator has no free). */
void blk_fx_reset_alloc(struct blk_fx *fx);
/*
 * What a transport and driver do around a device reset: Status = 0
 * (ops->reset under dev->lock, then virtq_reset), and the driver zeroes its
 * rings and data area.  blk_fx_start() brings the device up again.
 */
void blk_fx_reset(struct blk_fx *fx);

/* Image access through fx->img_fd (pread/pwrite of all bytes, else abort). */
void blk_fx_img_read(struct blk_fx *fx, uint64_t off, void *buf, uint64_t len);
void blk_fx_img_write(struct blk_fx *fx, uint64_t off, const void *buf, uint64_t len);
/* Is every byte of [off, off + len) in the image equal to `v`? */
bool blk_fx_img_all(struct blk_fx *fx, uint64_t off, uint64_t len, uint8_t v);
/* Is [off, off + len) a hole (SEEK_DATA finds no data before its end)? */
bool blk_fx_img_hole(struct blk_fx *fx, uint64_t off, uint64_t len);

/* Kick, then wait until used.idx reaches `n`. */
void blk_fx_run(struct blk_fx *fx, uint16_t n);

#endif /* TESTS_LIB_BLK_FIXTURE_H */
