/*
 * Block backend interface: where a virtio-blk device's sectors live.
 *
 * The device model (devices/virtio/blk.c) parses guest requests and checks
 * them against the device's capacity; a backend only moves bytes.  Keeping
 * this interface small (submit, reap completions, drain) lets another data
 * plane, such as a userspace NVMe driver or a network block client, replace
 * the raw-file backend (blk_raw.c) without the device knowing which one it
 * talks to.
 *
 * Model: every request is asynchronous.  submit() queues it and returns at
 * once, unplug() starts the queued batch, and each completion is delivered
 * later through the request's done() callback.  A backend never calls done() on its own thread or
 * timing: it only does so from inside complete() or drain(), which its owner calls. The owner (the
 * device) watches `event_fd` in the event loop and calls complete() when it becomes readable,
 * holding whatever lock protects the requests, so done() always runs under the owner's lock and
 * never races with a reset.
 *
 * Threads: a backend is not thread-safe; the owner serialises every call
 * (the virtio device does so with dev->lock).
 *
 * Bounds: a backend refuses (-EINVAL) any request reaching outside
 * [0, size) even though the device checks first, so a device bug cannot
 * touch host data beyond the image.
 */
#ifndef DEVICES_BACKENDS_BLK_BACKEND_H
#define DEVICES_BACKENDS_BLK_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/util.h"

/* Sector size of the virtio-blk protocol; every offset and length is a multiple of it. */
#define BLK_SECTOR_SIZE 512U

enum blk_op {
    BLK_OP_READ,         /* fill iov from [offset, offset + len) */
    BLK_OP_WRITE,        /* store iov at [offset, offset + len) */
    BLK_OP_FLUSH,        /* make every completed write durable */
    BLK_OP_DISCARD,      /* [offset, offset + len) may be deallocated; contents undefined */
    BLK_OP_WRITE_ZEROES, /* [offset, offset + len) reads back as zeroes */
};

/* blk_io.flags */
#define BLK_IO_UNMAP 1U /* WRITE_ZEROES: the range may also be deallocated */
#define BLK_IO_FUA   2U /* WRITE: durable before completion (no separate flush will come) */

/* Backend capabilities (blk_backend.caps). */
#define BLK_CAP_FLUSH        1U
#define BLK_CAP_DISCARD      2U
#define BLK_CAP_WRITE_ZEROES 4U

struct blk_io;

/*
 * Completion callback.  `result` is 0 on success or a negative errno.  It is
 * called exactly once per accepted request, from complete() or drain(); the
 * request and its iovecs belong to the caller again when it runs.
 */
typedef void (*blk_io_done_fn)(struct blk_io *io, int result);

/*
 * One request.  The caller fills it and keeps it (and `iov`) alive and
 * untouched until done() is called.  While the request is in flight the
 * backend may update offset, len, iov and iovcnt in place (it advances them
 * after a short transfer), so the caller must not rely on them afterwards.
 */
struct blk_io {
    enum blk_op op;
    uint32_t flags;    /* BLK_IO_* */
    uint64_t offset;   /* bytes from the start of the disk (not FLUSH) */
    uint64_t len;      /* bytes (not FLUSH); READ/WRITE: the sum of the iovec lengths */
    struct iovec *iov; /* READ/WRITE only */
    unsigned iovcnt;   /* READ/WRITE only, <= IOV_MAX */
    blk_io_done_fn done;
    void *opaque;     /* for the caller */
    uint32_t be_priv; /* the backend's own state while in flight */
};

struct blk_backend;

struct blk_backend_ops {
    const char *kind; /* "raw", ... for logs */
    /*
     * Queue `io` without waiting for it.  Returns 0 if accepted (done() will
     * follow), or a negative errno and done() is never called: -EAGAIN if
     * max_inflight requests are already in flight, -EROFS for a write-like
     * request on a read-only backend, -EINVAL for a range outside [0, size)
     * or a malformed request, -EIO if the backend is broken.
     */
    int (*submit)(struct blk_backend *b, struct blk_io *io);
    /*
     * Start everything submit() queued since the last call.  A backend may
     * hold requests back until then so a batch costs one system call; the
     * owner calls it after each batch of submit()s.  complete() and drain()
     * also start whatever is still queued.
     */
    void (*unplug)(struct blk_backend *b);
    /*
     * Deliver the completions that are ready, without blocking; called when
     * event_fd is readable.  Returns the number of done() calls made.
     */
    unsigned (*complete)(struct blk_backend *b);
    /*
     * Wait until nothing is in flight, calling done() for each request, but
     * for at most about `timeout_ms` (a short grace period for cancellation
     * comes on top).  Returns 0 when idle.  Otherwise the backend has asked
     * for the requests left to be cancelled and returns a negative errno
     * (-ETIMEDOUT, or the error that stopped the wait): those requests stay
     * in flight, may still move data, and get their done() later from
     * complete() or another drain().  Used by reset, quiesce and destroy; a
     * hung disk must not hold their (vCPU or main) thread forever.
     */
    int (*drain)(struct blk_backend *b, unsigned timeout_ms);
    /* Release everything.  Nothing may be in flight (drain first). */
    void (*destroy)(struct blk_backend *b);
};

/* The part every backend shares; a backend embeds it as its first member. */
struct blk_backend {
    const struct blk_backend_ops *ops;
    uint64_t size;         /* bytes, a non-zero multiple of BLK_SECTOR_SIZE */
    bool read_only;        /* writes, discards and write-zeroes fail with -EROFS */
    uint32_t caps;         /* BLK_CAP_* */
    unsigned max_inflight; /* most requests accepted at once */
    unsigned inflight;     /* requests accepted and not yet completed */
    int event_fd;          /* readable when complete() has work; the owner polls it */
};

#endif /* DEVICES_BACKENDS_BLK_BACKEND_H */
