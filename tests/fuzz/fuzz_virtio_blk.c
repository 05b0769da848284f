/*
 * Fuzz target: virtio-blk request parsing (devices/virtio/blk*.c) behind the
 * real virtio-mmio transport, with an in-memory backend.
 *
 * Why: the request header, the data segments, discard/write-zeroes
 * segment lists and the status byte all come from guest-described chains;
 * sector arithmetic, per-request caps and the in-flight limit must hold
 * for any of them (security.md D1/D4, "virtio_blk").
 *
 * Input: u8 flags (bit 0 read-only disk; bits 1-3 backend caps flush,
 * discard, write-zeroes; bits 4-7 queue depth) | harness driver program
 * (harness_virtio.h).  The backend keeps a 64 KiB disk in memory, completes
 * requests when the event loop is polled (every seventh with -EIO), and
 * checks what the device submits: a known op, READ/WRITE iovecs inside
 * guest RAM that add up to len, at most IOV_MAX of them, and no more
 * requests in flight than it allows.
 */
#include "tests/fuzz/harness_virtio.h"

#include <errno.h>
#include <limits.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/backends/blk_backend.h"
#include "devices/virtio/blk.h"

#define FZ_DISK     (64 * KiB)
#define FZ_INFLIGHT 16

struct fz_blk {
    struct blk_backend be; /* first: the ops cast back from it */
    uint8_t disk[FZ_DISK];
    struct blk_io *done[FZ_INFLIGHT];
    int result[FZ_INFLIGHT];
    unsigned ndone;
    unsigned count;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fzv_init_once();
    return 0;
}

static int fz_blk_rw(struct fz_blk *b, struct blk_io *io)
{
    uint64_t sum = 0;
    FZ_CHECK(io->iovcnt <= IOV_MAX, "%u iovecs", io->iovcnt);
    for (unsigned i = 0; i < io->iovcnt; i++) {
        FZ_CHECK(fzv_in_ram(io->iov[i].iov_base, io->iov[i].iov_len),
                 "iovec %u of a request is not guest RAM", i);
        sum += io->iov[i].iov_len;
    }
    FZ_CHECK(sum == io->len, "iovecs hold %llu bytes, len %llu", (unsigned long long)sum,
             (unsigned long long)io->len);
    if (io->offset > FZ_DISK || io->len > FZ_DISK - io->offset)
        return -EINVAL;
    uint64_t off = io->offset;
    for (unsigned i = 0; i < io->iovcnt; i++) {
        if (io->op == BLK_OP_READ)
            memcpy(io->iov[i].iov_base, b->disk + off, io->iov[i].iov_len);
        else
            memcpy(b->disk + off, io->iov[i].iov_base, io->iov[i].iov_len);
        off += io->iov[i].iov_len;
    }
    return 0;
}

static int fz_blk_submit(struct blk_backend *be, struct blk_io *io)
{
    struct fz_blk *b = (struct fz_blk *)be;
    int r = 0;
    if (be->inflight >= be->max_inflight)
        return -EAGAIN;
    switch (io->op) {
    case BLK_OP_READ:
    case BLK_OP_WRITE:
        if (io->op == BLK_OP_WRITE && be->read_only)
            return -EROFS;
        r = fz_blk_rw(b, io);
        break;
    case BLK_OP_FLUSH:
        /* Fixed (corpus regress-flush-without-cap): a T_FLUSH the driver did
         * not negotiate is answered UNSUPP and never reaches the backend. */
        FZ_CHECK(be->caps & BLK_CAP_FLUSH, "flush without the capability");
        break;
    case BLK_OP_DISCARD:
    case BLK_OP_WRITE_ZEROES:
        FZ_CHECK(be->caps & (io->op == BLK_OP_DISCARD ? BLK_CAP_DISCARD : BLK_CAP_WRITE_ZEROES),
                 "op %d without the capability", (int)io->op);
        if (be->read_only)
            return -EROFS;
        if (io->offset > FZ_DISK || io->len > FZ_DISK - io->offset)
            return -EINVAL;
        memset(b->disk + io->offset, 0, io->len);
        break;
    default:
        FZ_CHECK(0, "unknown op %d", (int)io->op);
    }
    if (r < 0)
        return r;
    FZ_CHECK(b->ndone < FZ_INFLIGHT, "more requests than max_inflight accepted");
    b->result[b->ndone] = (++b->count % 7 == 0) ? -EIO : 0;
    b->done[b->ndone++] = io;
    be->inflight++;
    uint64_t one = 1;
    if (write(be->event_fd, &one, sizeof(one)) != sizeof(one))
        abort();
    return 0;
}

static void fz_blk_unplug(struct blk_backend *be)
{
    (void)be;
}

static unsigned fz_blk_complete(struct blk_backend *be)
{
    struct fz_blk *b = (struct fz_blk *)be;
    uint64_t n;
    unsigned ran = 0;
    if (read(be->event_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        abort();
    /* done() may submit more: take the list first. */
    while (b->ndone) {
        struct blk_io *io = b->done[0];
        int res = b->result[0];
        b->ndone--;
        memmove(b->done, b->done + 1, b->ndone * sizeof(b->done[0]));
        memmove(b->result, b->result + 1, b->ndone * sizeof(b->result[0]));
        be->inflight--;
        io->done(io, res);
        ran++;
    }
    return ran;
}

static int fz_blk_drain(struct blk_backend *be, unsigned timeout_ms)
{
    (void)timeout_ms;
    (void)fz_blk_complete(be);
    return 0;
}

static void fz_blk_destroy(struct blk_backend *be)
{
    struct fz_blk *b = (struct fz_blk *)be;
    FZ_CHECK(be->inflight == 0, "destroyed with %u requests in flight", be->inflight);
    close(be->event_fd);
    free(b);
}

static const struct blk_backend_ops fz_blk_ops = {
    .kind = "fuzz",
    .submit = fz_blk_submit,
    .unplug = fz_blk_unplug,
    .complete = fz_blk_complete,
    .drain = fz_blk_drain,
    .destroy = fz_blk_destroy,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in;
    struct errbuf err = {0};
    struct virtio_dev *dev;
    fz_init(&in, data, size);
    unsigned flags = fz_u8(&in);

    struct fz_blk *b = calloc(1, sizeof(*b));
    FZ_CHECK(b, "out of memory");
    for (unsigned i = 0; i < FZ_DISK; i++)
        b->disk[i] = (uint8_t)(i * 13 + (i >> 9));
    b->be = (struct blk_backend){
        .ops = &fz_blk_ops,
        .size = FZ_DISK,
        .read_only = flags & 1,
        .caps = (flags >> 1) & 7,
        .max_inflight = FZ_INFLIGHT,
        .event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
    };
    FZ_CHECK(b->be.event_fd >= 0, "eventfd");
    struct virtio_blk_config cfg = {
        .id = "blk0", .serial = "fuzz-disk", .queue_depth = (flags >> 4) % 17};
    if (virtio_blk_create_with_backend(&cfg, &b->be, &fzv.mem, &fzv.loop, &dev, &err) < 0) {
        fprintf(stderr, "fuzz_virtio_blk: %s\n", err.msg);
        abort();
    }
    fzv_attach(dev);
    fzv_run(&in);
    struct virtio_blk_stats st;
    virtio_blk_get_stats(dev, &st);
    FZ_CHECK(st.inflight_peak <= FZ_INFLIGHT, "peak %llu in flight",
             (unsigned long long)st.inflight_peak);
    fzv_detach();
    return 0;
}
