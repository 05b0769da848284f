/*
 * Transports of the migration stream (stream.h): a memory buffer, and a file
 * descriptor that never blocks forever.
 *
 * Why the fd transport polls: the peer of a migration is another host.  If
 * it dies or stops reading in the middle of a section, a blocking read() or
 * write() would hang wisp (and, on the source, a paused guest) for good.
 * Every call therefore has a deadline, measured on CLOCK_MONOTONIC from the
 * start of the call, and ends with -ETIMEDOUT when it passes.
 */
#include "migration/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "migration/virtio_state.h"

uint32_t mig_stream_crc32c(uint32_t crc, const void *p, size_t n)
{
    /* The table-driven CRC-32C of the virtio state format: one copy in migration/. */
    return virtio_state_crc32c(crc, p, n);
}

/* ---- Memory transport ---- */

static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
    struct mig_mem_transport *m = ctx;
    size_t n = MIN(len, m->in_len - m->in_pos);
    if (n) {
        memcpy(buf, m->in + m->in_pos, n);
        m->in_pos += n;
    }
    return (ssize_t)n;
}

static int mem_write(void *ctx, const void *buf, size_t len)
{
    struct mig_mem_transport *m = ctx;
    if (len == 0)
        return 0;
    if (len > m->cap - m->out_len)
        return -ENOSPC;
    if (m->out_len + len > m->out_cap) {
        size_t cap = m->out_cap ? m->out_cap : MIN((size_t)4096, m->cap);
        while (cap < m->out_len + len)
            cap = cap > m->cap / 2 ? m->cap : cap * 2;
        uint8_t *b = realloc(m->out, cap);
        if (!b)
            return -ENOMEM;
        m->out = b;
        m->out_cap = cap;
    }
    memcpy(m->out + m->out_len, buf, len);
    m->out_len += len;
    return 0;
}

void mig_mem_transport_init(struct mig_mem_transport *m, struct mig_transport *t, const void *in,
                            size_t in_len, size_t cap)
{
    memset(m, 0, sizeof(*m));
    m->in = in;
    m->in_len = in ? in_len : 0;
    m->cap = cap;
    t->read = mem_read;
    t->write = mem_write;
    t->ctx = m;
}

void mig_mem_transport_free(struct mig_mem_transport *m)
{
    free(m->out);
    m->out = NULL;
    m->out_len = m->out_cap = 0;
}

/* ---- File-descriptor transport ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Wait until fd is ready for `events` or the deadline passes.  0 when ready
 * (or in error or hung up: the next read/write reports it), -ETIMEDOUT, or
 * -errno from poll().
 */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)MIN(left, (int64_t)INT32_MAX));
        if (r > 0)
            return 0;
        if (r == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

static ssize_t fd_read(void *ctx, void *buf, size_t len)
{
    struct mig_fd_transport *f = ctx;
    int64_t deadline = now_ms() + f->timeout_ms;
    size_t done = 0;
    while (done < len) {
        ssize_t n = read(f->fd, (uint8_t *)buf + done, len - done);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n == 0)
            break; /* end of stream: the caller decides whether that is an error */
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int r = wait_fd(f->fd, POLLIN, deadline);
        if (r < 0)
            return r;
    }
    return (ssize_t)done;
}

/* send() with MSG_NOSIGNAL on sockets, so a closed peer is -EPIPE and not SIGPIPE. */
static ssize_t fd_write_some(int fd, const void *buf, size_t len)
{
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == ENOTSOCK)
        n = write(fd, buf, len);
    return n;
}

static int fd_write(void *ctx, const void *buf, size_t len)
{
    struct mig_fd_transport *f = ctx;
    int64_t deadline = now_ms() + f->timeout_ms;
    size_t done = 0;
    while (done < len) {
        ssize_t n = fd_write_some(f->fd, (const uint8_t *)buf + done, len - done);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n == 0)
            return -EIO; /* a regular file that takes nothing: no progress is possible */
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int r = wait_fd(f->fd, POLLOUT, deadline);
        if (r < 0)
            return r;
    }
    return 0;
}

int mig_fd_transport_init(struct mig_fd_transport *f, struct mig_transport *t, int fd,
                          int timeout_ms)
{
    if (fd < 0 || timeout_ms <= 0)
        return -EINVAL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    f->fd = fd;
    f->timeout_ms = timeout_ms;
    t->read = fd_read;
    t->write = fd_write;
    t->ctx = f;
    return 0;
}
