/*
 * The controllable block backend of blk_fake_be.h: held requests, a hung
 * drain, and counters.
 */
#include "tests/lib/blk_fake_be.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static struct fake_be *to_fake(struct blk_backend *b)
{
    return (struct fake_be *)b;
}

static int fake_submit(struct blk_backend *b, struct blk_io *io)
{
    struct fake_be *f = to_fake(b);
    if (b->inflight >= b->max_inflight)
        return -EAGAIN;
    f->held[f->nheld++] = io;
    f->submits++;
    b->inflight++;
    return 0;
}

static void fake_unplug(struct blk_backend *b)
{
    (void)b;
}

static unsigned fake_complete(struct blk_backend *b)
{
    struct fake_be *f = to_fake(b);
    uint64_t cnt;
    unsigned n = 0;
    (void)!read(b->event_fd, &cnt, sizeof(cnt));
    if (!f->release)
        return 0;
    f->release = false;
    while (f->nheld) {
        struct blk_io *io = f->held[--f->nheld];
        b->inflight--;
        io->done(io, f->release_result);
        n++;
    }
    return n;
}

static int fake_drain(struct blk_backend *b, unsigned timeout_ms)
{
    struct fake_be *f = to_fake(b);
    f->drains++;
    f->last_timeout_ms = timeout_ms;
    if (b->inflight == 0)
        return 0;
    if (f->hang) {
        /* A disk that never answers: all the wait can do is run out. */
        struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
        return -ETIMEDOUT;
    }
    f->release = true;
    f->release_result = 0;
    fake_complete(b);
    return 0;
}

static void fake_destroy(struct blk_backend *b)
{
    if (b->inflight) {
        fprintf(stderr, "fake_be: destroyed with %u requests in flight\n", b->inflight);
        abort();
    }
    close(b->event_fd);
    free(b);
}

static const struct blk_backend_ops fake_ops = {
    .kind = "fake",
    .submit = fake_submit,
    .unplug = fake_unplug,
    .complete = fake_complete,
    .drain = fake_drain,
    .destroy = fake_destroy,
};

struct fake_be *fake_be_new(uint64_t size, unsigned max_inflight)
{
    struct fake_be *f = calloc(1, sizeof(*f));
    if (!f)
        abort();
    f->be.ops = &fake_ops;
    f->be.size = size;
    f->be.caps = BLK_CAP_FLUSH;
    f->be.max_inflight = max_inflight < FAKE_BE_MAX ? max_inflight : FAKE_BE_MAX;
    f->be.event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (f->be.event_fd < 0)
        abort();
    return f;
}

void fake_be_release(struct fake_be *f, int result)
{
    uint64_t one = 1;
    f->release = true;
    f->release_result = result;
    (void)!write(f->be.event_fd, &one, sizeof(one));
}
