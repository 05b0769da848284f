/*
 * Raw image backend on io_uring (see blk_raw.h for the interface).
 *
 * This file exists so that virtio-blk I/O never blocks the event loop: every
 * request becomes one io_uring operation whose completion is signalled
 * through an eventfd the device watches.
 *
 * Request life cycle: submit() checks the request against the image (range,
 * read-only, iovec total == len) and prepares one SQE whose user_data is the
 * struct blk_io pointer; unplug() hands the batch to the kernel.  A CQE may
 * finish the request or continue it: a short read or write is resubmitted
 * for the rest (it makes progress every time, so this ends), and a
 * WRITE_ZEROES the file system cannot do one way is retried the next way.
 * `inflight` counts requests from acceptance to their done() call, so it
 * never exceeds max_inflight, and neither does the number of SQEs or CQEs
 * outstanding: the rings cannot overflow.
 *
 * If io_uring_enter() refuses a batch (a transient -EAGAIN or -ENOMEM), the
 * SQEs stay in the ring and are handed over again by the next unplug(),
 * complete() or drain(); the eventfd is written so that complete() does run
 * even when nothing else is in flight.
 */
#include "devices/backends/blk_raw.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vmm/log.h"

/* How WRITE_ZEROES is being carried out (blk_io.be_priv); each falls back to the next. */
enum wz_mode { WZ_ZERO_RANGE, WZ_PUNCH, WZ_WRITE };

/* Most CQEs one complete() call handles before yielding to the event loop. */
#define REAP_BUDGET_FACTOR 2

/* Source buffer for WRITE_ZEROES on file systems without fallocate modes. */
#define ZERO_CHUNK (64 * 1024)
static const uint8_t zero_chunk[ZERO_CHUNK];

struct blk_raw {
    struct blk_backend be; /* first: the device only sees this */
    struct io_uring ring;
    int fd;
    bool no_zero_range; /* the file system refused FALLOC_FL_ZERO_RANGE */
    bool no_punch;      /* ... and FALLOC_FL_PUNCH_HOLE */
    bool timed_wait;    /* the kernel can bound io_uring_enter waits (IORING_FEAT_EXT_ARG) */
    unsigned cancels;   /* ASYNC_CANCEL SQEs whose CQE has not been reaped */
};

/* user_data of cancel SQEs: no request has this address. */
static char cancel_tag;

/* After a drain's deadline, how long cancelled requests get to report back. */
#define DRAIN_CANCEL_GRACE_MS 100

static struct blk_raw *to_raw(struct blk_backend *b)
{
    return (struct blk_raw *)b;
}

static bool is_write_like(enum blk_op op)
{
    return op == BLK_OP_WRITE || op == BLK_OP_DISCARD || op == BLK_OP_WRITE_ZEROES;
}

/* Ask the event loop to call complete() soon (queued SQEs need another try). */
static void self_signal(struct blk_raw *r)
{
    uint64_t one = 1;
    if (write(r->be.event_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_ratelimited(LOG_WARN, "blk raw: cannot signal eventfd: %s", strerror(errno));
}

/* Hand queued SQEs to the kernel; on failure they stay queued for the next try. */
static void flush_sq(struct blk_raw *r)
{
    if (io_uring_sq_ready(&r->ring) == 0)
        return;
    int rc = io_uring_submit(&r->ring);
    if (rc < 0) {
        log_ratelimited(LOG_WARN, "blk raw: io_uring submit failed, will retry: %s", strerror(-rc));
        self_signal(r);
    }
}

/* Prepare the SQE for the current state of `io` (after a partial transfer, the rest). */
static void prep(struct blk_raw *r, struct blk_io *io)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe) {
        /* At most max_inflight SQEs exist and the ring holds that many. */
        vmm_fatal("blk raw: submission ring full with %u requests in flight", r->be.inflight);
    }
    switch (io->op) {
    case BLK_OP_READ:
        io_uring_prep_readv(sqe, r->fd, io->iov, io->iovcnt, io->offset);
        break;
    case BLK_OP_WRITE:
        io_uring_prep_writev2(sqe, r->fd, io->iov, io->iovcnt, io->offset,
                              (io->flags & BLK_IO_FUA) ? RWF_DSYNC : 0);
        break;
    case BLK_OP_FLUSH:
        io_uring_prep_fsync(sqe, r->fd, IORING_FSYNC_DATASYNC);
        break;
    case BLK_OP_DISCARD:
        io_uring_prep_fallocate(sqe, r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                (off_t)io->offset, (off_t)io->len);
        break;
    case BLK_OP_WRITE_ZEROES:
        if (io->be_priv == WZ_ZERO_RANGE)
            io_uring_prep_fallocate(sqe, r->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                                    (off_t)io->offset, (off_t)io->len);
        else if (io->be_priv == WZ_PUNCH)
            io_uring_prep_fallocate(sqe, r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                    (off_t)io->offset, (off_t)io->len);
        else
            io_uring_prep_write(sqe, r->fd, zero_chunk, (unsigned)MIN(io->len, ZERO_CHUNK),
                                io->offset);
        break;
    }
    /* The ring only accepts the image, registered as fixed file 0 (blk_raw_restrict_ring). */
    sqe->fd = 0;
    io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE);
    io_uring_sqe_set_data(sqe, io);
}

/*
 * io_uring requests are executed by the kernel without consulting seccomp,
 * so a ring is as powerful as open(2) plus read/write on anything.  Lock it
 * down before it is enabled: the image is the only (fixed) file every SQE
 * may name, only the operations prep() uses are allowed, and no further
 * registration is possible.  A compromised thread can then do nothing with
 * the ring that it could not do to the image anyway.
 */
int blk_raw_restrict_ring(struct io_uring *ring, int fd)
{
    int rc = io_uring_register_files(ring, &fd, 1);
    if (rc < 0)
        return rc;
    static const uint8_t ops[] = {IORING_OP_READV, IORING_OP_WRITEV,    IORING_OP_WRITE,
                                  IORING_OP_FSYNC, IORING_OP_FALLOCATE, IORING_OP_ASYNC_CANCEL};
    struct io_uring_restriction res[ARRAY_SIZE(ops) + 2];
    memset(res, 0, sizeof(res));
    unsigned n = 0;
    for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
        res[n].opcode = IORING_RESTRICTION_SQE_OP;
        res[n++].sqe_op = ops[i];
    }
    res[n].opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED;
    res[n++].sqe_flags = IOSQE_FIXED_FILE;
    res[n].opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
    res[n++].sqe_flags = IOSQE_FIXED_FILE;
    /* Debian 12's liburing 2.3 declares io_uring_register_restrictions() and
     * io_uring_enable_rings() but does not export them: call the kernel. */
    if (syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_RESTRICTIONS, res, n) < 0)
        return -errno;
    if (syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
        return -errno;
    return 0;
}

static void finish(struct blk_raw *r, struct blk_io *io, int result)
{
    r->be.inflight--;
    io->done(io, result);
}

/* Drop the first `n` bytes (fewer than io->len) of a READ/WRITE after a short transfer. */
static void advance(struct blk_io *io, uint64_t n)
{
    io->offset += n;
    io->len -= n;
    while (n > 0 && io->iovcnt > 0) {
        if (n < io->iov[0].iov_len) {
            io->iov[0].iov_base = (uint8_t *)io->iov[0].iov_base + n;
            io->iov[0].iov_len -= n;
            break;
        }
        n -= io->iov[0].iov_len;
        io->iov++;
        io->iovcnt--;
    }
}

/* First WRITE_ZEROES method to try, given what the file system refused before. */
static uint32_t wz_first_mode(const struct blk_raw *r, uint32_t flags)
{
    if (!r->no_zero_range && !(flags & BLK_IO_UNMAP))
        return WZ_ZERO_RANGE;
    if (!r->no_punch)
        return WZ_PUNCH;
    return r->no_zero_range ? WZ_WRITE : WZ_ZERO_RANGE;
}

/* The next method after `mode` failed with EOPNOTSUPP. */
static uint32_t wz_next_mode(struct blk_raw *r, uint32_t mode)
{
    if (mode == WZ_ZERO_RANGE) {
        r->no_zero_range = true;
        return r->no_punch ? WZ_WRITE : WZ_PUNCH;
    }
    r->no_punch = true;
    return r->no_zero_range ? WZ_WRITE : WZ_ZERO_RANGE;
}

/*
 * Handle one CQE for `io`.  Returns the request's final result, or 1 if it
 * continues (a new SQE was prepared for the rest of it).
 */
static int on_cqe(struct blk_raw *r, struct blk_io *io, int res)
{
    switch (io->op) {
    case BLK_OP_READ:
    case BLK_OP_WRITE:
        if (res <= 0) /* 0: end of file, the image shrank under us */
            return res < 0 ? res : -EIO;
        if ((uint64_t)res < io->len) {
            advance(io, (uint64_t)res);
            prep(r, io);
            return 1;
        }
        return 0;
    case BLK_OP_FLUSH:
        return res < 0 ? res : 0;
    case BLK_OP_DISCARD:
        /* Deallocation is optional: a file system without hole punching is fine. */
        return (res < 0 && res != -EOPNOTSUPP) ? res : 0;
    case BLK_OP_WRITE_ZEROES:
        if (io->be_priv == WZ_WRITE) {
            if (res <= 0)
                return res < 0 ? res : -EIO;
            io->offset += (uint64_t)res;
            io->len -= MIN((uint64_t)res, io->len);
        } else if (res == -EOPNOTSUPP) {
            io->be_priv = wz_next_mode(r, io->be_priv);
        } else {
            return res < 0 ? res : 0;
        }
        if (io->len == 0)
            return 0;
        prep(r, io);
        return 1;
    }
    return -EIO;
}

/* Handle up to `budget` ready CQEs; returns how many requests finished. */
static unsigned reap(struct blk_raw *r, unsigned budget, bool *more)
{
    unsigned finished = 0;
    struct io_uring_cqe *cqe;
    *more = false;
    while (io_uring_peek_cqe(&r->ring, &cqe) == 0) {
        if (budget-- == 0) {
            *more = true;
            break;
        }
        struct blk_io *io = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        /* Free the CQE before done() runs: the callback may submit again. */
        io_uring_cqe_seen(&r->ring, cqe);
        if (io == (void *)&cancel_tag) {
            /* The cancel's own answer: how many it stopped, -ENOENT, -EALREADY. */
            r->cancels--;
            continue;
        }
        if (!io)
            vmm_fatal("blk raw: completion without a request");
        int result = on_cqe(r, io, res);
        if (result <= 0) {
            finish(r, io, result);
            finished++;
        }
    }
    return finished;
}

static int raw_submit(struct blk_backend *b, struct blk_io *io)
{
    struct blk_raw *r = to_raw(b);
    uint64_t end;

    if (b->inflight >= b->max_inflight)
        return -EAGAIN;
    if (b->read_only && is_write_like(io->op))
        return -EROFS;
    if (io->op != BLK_OP_FLUSH) {
        /* Defence in depth: the device checked this against its capacity. */
        if (!range_end(io->offset, io->len, &end) || end > b->size)
            return -EINVAL;
    }
    if (io->op == BLK_OP_READ || io->op == BLK_OP_WRITE) {
        if (!io->iov || io->iovcnt == 0 || io->iovcnt > IOV_MAX)
            return -EINVAL;
        /* readv/writev move the iovec total, so it must equal the checked length. */
        uint64_t sum = 0;
        for (unsigned i = 0; i < io->iovcnt; i++)
            if (__builtin_add_overflow(sum, io->iov[i].iov_len, &sum))
                return -EINVAL;
        if (sum != io->len)
            return -EINVAL;
    } else if (io->op > BLK_OP_WRITE_ZEROES) {
        return -EINVAL;
    }
    if (io->op == BLK_OP_WRITE_ZEROES)
        io->be_priv = wz_first_mode(r, io->flags);
    prep(r, io);
    b->inflight++;
    return 0;
}

static void raw_unplug(struct blk_backend *b)
{
    flush_sq(to_raw(b));
}

static unsigned raw_complete(struct blk_backend *b)
{
    struct blk_raw *r = to_raw(b);
    uint64_t cnt;
    bool more;

    /* Consume the wake-up first: a CQE posted after this read signals again. */
    if (read(b->event_fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
        log_ratelimited(LOG_WARN, "blk raw: eventfd read failed: %s", strerror(errno));
    unsigned n = reap(r, REAP_BUDGET_FACTOR * b->max_inflight, &more);
    if (more)
        self_signal(r); /* bounded work per call; the rest on the next loop turn */
    flush_sq(r);
    return n;
}

/* Nanoseconds from now until `end` (CLOCK_MONOTONIC); <= 0 once it has passed. */
static int64_t ns_until(const struct timespec *end)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(end->tv_sec - now.tv_sec) * 1000000000 + (end->tv_nsec - now.tv_nsec);
}

static void deadline_in(struct timespec *end, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, end);
    end->tv_sec += ms / 1000;
    end->tv_nsec += (long)(ms % 1000) * 1000000;
    if (end->tv_nsec >= 1000000000) {
        end->tv_sec++;
        end->tv_nsec -= 1000000000;
    }
}

/*
 * Ask the kernel to cancel every request of this ring (IORING_OP_ASYNC_CANCEL,
 * match any).  A cancelled request completes with -ECANCELED (or -EINTR)
 * through the normal path; one the kernel cannot stop completes when it ends.
 */
static void cancel_all(struct blk_raw *r)
{
    /* One at a time, and never into a ring still holding unsubmitted SQEs:
     * prep() counts on room for every request in flight. */
    if (r->cancels > 0 || io_uring_sq_ready(&r->ring) > 0)
        return;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (!sqe)
        return;
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ALL | IORING_ASYNC_CANCEL_ANY);
    sqe->fd = 0;
    io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE); /* the ring requires it on every SQE */
    io_uring_sqe_set_data(sqe, (void *)&cancel_tag);
    r->cancels++;
    flush_sq(r);
}

static int raw_drain(struct blk_backend *b, unsigned timeout_ms)
{
    struct blk_raw *r = to_raw(b);
    struct timespec end;
    bool more, cancelled = false;
    int err = -ETIMEDOUT;

    deadline_in(&end, timeout_ms);
    for (;;) {
        reap(r, UINT_MAX, &more);
        if (b->inflight == 0)
            return 0;
        int64_t left = ns_until(&end);
        if (left <= 0) {
            if (cancelled)
                break;
            cancel_all(r);
            cancelled = true;
            deadline_in(&end, DRAIN_CANCEL_GRACE_MS);
            continue;
        }
        int rc;
        if (r->timed_wait) {
            struct __kernel_timespec ts = {.tv_sec = left / 1000000000,
                                           .tv_nsec = left % 1000000000};
            struct io_uring_cqe *cqe;
            rc = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
        } else {
            /* Kernels before 5.11 cannot time the wait out (no EXT_ARG). */
            rc = io_uring_submit_and_wait(&r->ring, 1);
        }
        /* EINTR (the vCPU kick) and ETIME end at the deadline, not before. */
        if (rc >= 0 || rc == -ETIME || rc == -EINTR)
            continue;
        if (rc == -EAGAIN || rc == -ENOMEM || rc == -EBUSY) {
            struct timespec ms = {.tv_nsec = 1000 * 1000};
            nanosleep(&ms, NULL);
            continue;
        }
        err = rc;
        if (!cancelled) {
            cancel_all(r);
            cancelled = true;
        }
        break;
    }
    log_ratelimited(LOG_ERROR, "blk raw: %u requests still in flight after %u ms (%s); cancelled",
                    b->inflight, timeout_ms, strerror(-err));
    return err;
}

static void raw_destroy(struct blk_backend *b)
{
    struct blk_raw *r = to_raw(b);
    if (b->inflight)
        vmm_fatal("blk raw: destroyed with %u requests in flight", b->inflight);
    io_uring_queue_exit(&r->ring);
    close(b->event_fd);
    close(r->fd);
    free(r);
}

static const struct blk_backend_ops raw_ops = {
    .kind = "raw",
    .submit = raw_submit,
    .unplug = raw_unplug,
    .complete = raw_complete,
    .drain = raw_drain,
    .destroy = raw_destroy,
};

/* Size of the open image in bytes. */
static int image_size(int fd, const char *path, uint64_t *size, struct errbuf *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return err_set(err, WISP_EXIT_USAGE, errno, "cannot stat disk image %s: %s", path,
                       strerror(errno));
    if (S_ISREG(st.st_mode)) {
        *size = (uint64_t)st.st_size;
        return 0;
    }
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, size) < 0)
            return err_set(err, WISP_EXIT_USAGE, errno, "cannot get the size of %s: %s", path,
                           strerror(errno));
        return 0;
    }
    return err_set(err, WISP_EXIT_USAGE, EINVAL,
                   "disk image %s is not a regular file or block device", path);
}

int blk_raw_open(const struct blk_raw_config *cfg, struct blk_backend **out, struct errbuf *err)
{
    unsigned depth = cfg->max_inflight ? cfg->max_inflight : BLK_RAW_DEFAULT_INFLIGHT;
    uint64_t size;
    int rc;

    *out = NULL;
    if (!cfg->path || !cfg->path[0])
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "disk image path is empty");
    if (depth > BLK_RAW_MAX_INFLIGHT)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "disk queue depth %u is over %u", depth,
                       BLK_RAW_MAX_INFLIGHT);

    struct blk_raw *r = calloc(1, sizeof(*r));
    if (!r)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory for disk %s", cfg->path);
    r->be.event_fd = -1;

    int flags = (cfg->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | (cfg->direct ? O_DIRECT : 0);
    r->fd = open(cfg->path, flags);
    if (r->fd < 0) {
        rc = err_set(err, WISP_EXIT_USAGE, errno, "cannot open disk image %s: %s", cfg->path,
                     strerror(errno));
        goto err_free;
    }
    rc = image_size(r->fd, cfg->path, &size, err);
    if (rc < 0)
        goto err_close;
    if (size < BLK_SECTOR_SIZE) {
        rc = err_set(err, WISP_EXIT_USAGE, EINVAL,
                     "disk image %s is smaller than one 512-byte sector", cfg->path);
        goto err_close;
    }

    r->be.event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r->be.event_fd < 0) {
        rc = err_set(err, WISP_EXIT_FAILURE, errno, "cannot create eventfd for disk %s: %s",
                     cfg->path, strerror(errno));
        goto err_close;
    }
    /* The completion ring defaults to twice the submission ring: room for every request.
     * It starts disabled so it can be restricted before first use. */
    rc = io_uring_queue_init(depth, &r->ring, IORING_SETUP_R_DISABLED);
    if (rc < 0) {
        rc = err_set(err, WISP_EXIT_HOST, -rc, "cannot set up io_uring for disk %s: %s", cfg->path,
                     strerror(-rc));
        goto err_efd;
    }
    rc = io_uring_register_eventfd(&r->ring, r->be.event_fd);
    if (rc < 0) {
        rc = err_set(err, WISP_EXIT_HOST, -rc, "cannot register io_uring eventfd for %s: %s",
                     cfg->path, strerror(-rc));
        goto err_ring;
    }
    rc = blk_raw_restrict_ring(&r->ring, r->fd);
    if (rc < 0) {
        rc = err_set(err, WISP_EXIT_HOST, -rc, "cannot restrict io_uring for %s: %s", cfg->path,
                     strerror(-rc));
        goto err_ring;
    }

    r->timed_wait = (r->ring.features & IORING_FEAT_EXT_ARG) != 0;
    r->be.ops = &raw_ops;
    r->be.size = align_down(size, BLK_SECTOR_SIZE);
    r->be.read_only = cfg->read_only;
    r->be.caps = BLK_CAP_FLUSH | BLK_CAP_DISCARD | BLK_CAP_WRITE_ZEROES;
    r->be.max_inflight = depth;
    *out = &r->be;
    return 0;

err_ring:
    io_uring_queue_exit(&r->ring);
err_efd:
    close(r->be.event_fd);
err_close:
    close(r->fd);
err_free:
    free(r);
    return rc;
}
