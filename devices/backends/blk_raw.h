/*
 * Raw image backend for virtio-blk: a regular file (or a host block device)
 * whose bytes are the disk's sectors, driven through io_uring so the event
 * loop never blocks on the disk.
 *
 * Operations: readv/writev at offsets (RWF_DSYNC for BLK_IO_FUA writes),
 * fdatasync for FLUSH, fallocate(PUNCH_HOLE | KEEP_SIZE) for DISCARD, and
 * for WRITE_ZEROES fallocate(ZERO_RANGE | KEEP_SIZE), falling back to
 * PUNCH_HOLE and then to writing zeroes where the file system lacks them.
 * A DISCARD the file system cannot do completes successfully (it is a hint).
 *
 * Completions: one io_uring with a registered eventfd (blk_backend.event_fd).
 * The ring has room for max_inflight requests, and its completion queue for
 * twice that, so completions are never dropped.
 */
#ifndef DEVICES_BACKENDS_BLK_RAW_H
#define DEVICES_BACKENDS_BLK_RAW_H

#include <stdbool.h>

#include "devices/backends/blk_backend.h"
#include "vmm/error.h"

/* Default and largest number of requests in flight. */
#define BLK_RAW_DEFAULT_INFLIGHT 256U
#define BLK_RAW_MAX_INFLIGHT     4096U

struct blk_raw_config {
    const char *path;      /* image file or block device */
    bool read_only;        /* open O_RDONLY; write-like requests fail with -EROFS */
    bool direct;           /* O_DIRECT: bypass the host page cache; then every buffer,
                            * offset and length must suit the host device's alignment,
                            * or the request fails with -EINVAL */
    unsigned max_inflight; /* 0 = BLK_RAW_DEFAULT_INFLIGHT; at most BLK_RAW_MAX_INFLIGHT */
};

/*
 * Open the image and set up the ring.  The disk size is the file size (or
 * the block device size) rounded down to a multiple of 512 bytes: a partial
 * last sector is never read or written.  An image smaller than one sector is
 * refused.
 *
 * Returns 0 with *out set, or a negative errno with `err` set:
 *   WISP_EXIT_USAGE: the image cannot be opened (the message names the path),
 *     is not a regular file or block device, or is smaller than 512 bytes,
 *     or the configuration is invalid;
 *   WISP_EXIT_HOST: io_uring is unavailable (disabled by sysctl, old kernel,
 *     locked-memory limit).
 * The backend is released with b->ops->destroy(b).
 */
int blk_raw_open(const struct blk_raw_config *cfg, struct blk_backend **out,
                 struct errbuf *err) __must_check;

struct io_uring;

/*
 * Lock down a ring created with IORING_SETUP_R_DISABLED, then enable it:
 * `fd` becomes fixed file 0 and the only file an SQE may name
 * (IOSQE_FIXED_FILE required), only READV, WRITEV, WRITE, FSYNC and
 * FALLOCATE are allowed, and no more registrations.  Needed because the
 * kernel runs io_uring requests without consulting seccomp.  0 or -errno.
 */
int blk_raw_restrict_ring(struct io_uring *ring, int fd) __must_check;

#endif /* DEVICES_BACKENDS_BLK_RAW_H */
