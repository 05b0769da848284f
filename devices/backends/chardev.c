/*
 * Character backends for the virtio console (see chardev.h).
 *
 * Why a backend of its own: the console must never stall the main loop on
 * a slow terminal or a client that stopped reading, and must keep working
 * when clients come and go; keeping the fd juggling (reopen, accept,
 * hang-up, epoll interest) here leaves the device model with a plain "read
 * some / write some" interface.
 */
#include "devices/backends/chardev.h"

#include "vmm/uds.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/log.h"

_Static_assert(CHARDEV_PATH_MAX == sizeof(((struct sockaddr_un *)0)->sun_path) - 1,
               "CHARDEV_PATH_MAX follows sun_path");

struct chardev {
    int ep;
    int listen_fd;                /* socket kind: -1 otherwise */
    int in_fd;                    /* -1: no input */
    int out_fd;                   /* -1: no output peer */
    bool out_unpolled;            /* output epoll cannot watch (regular file): always ready */
    bool in_gated, out_gated;     /* fd shared with another process: see gated_io() */
    size_t out_chunk;             /* gated output: most bytes one write may carry */
    bool want_in, want_out;       /* what the owner asked for */
    bool in_watched, out_watched; /* registered in ep */
    bool listening;               /* listen_fd registered in ep */
    unsigned pending;             /* CHARDEV_EV_* to report at the next poll */
    bool created_path;
    char path[CHARDEV_PATH_MAX + 1];
    chardev_filter_fn filter; /* input filter (the terminal escape), or NULL */
    void *filter_ctx;
};

static int ep_set(struct chardev *c, int fd, bool *watched, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    int r = epoll_ctl(c->ep, *watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
    if (r == 0)
        *watched = true;
    return r < 0 ? -errno : 0;
}

static void ep_del(struct chardev *c, int fd, bool *watched)
{
    if (*watched)
        (void)epoll_ctl(c->ep, EPOLL_CTL_DEL, fd, NULL);
    *watched = false;
}

/*
 * Bring the epoll set in line with the wants.  A client socket stays in the
 * set with no events while nothing is wanted, so a hang-up is still seen.
 */
static void update(struct chardev *c)
{
    if (c->in_fd >= 0 && c->in_fd == c->out_fd) {
        uint32_t ev = (c->want_in ? EPOLLIN : 0) | (c->want_out ? EPOLLOUT : 0);
        (void)ep_set(c, c->in_fd, &c->in_watched, ev);
        return;
    }
    if (c->in_fd >= 0) {
        if (c->want_in)
            (void)ep_set(c, c->in_fd, &c->in_watched, EPOLLIN);
        else
            ep_del(c, c->in_fd, &c->in_watched);
    }
    if (c->out_fd >= 0 && !c->out_unpolled) {
        if (c->want_out)
            (void)ep_set(c, c->out_fd, &c->out_watched, EPOLLOUT);
        else
            ep_del(c, c->out_fd, &c->out_watched);
    }
    if (c->listen_fd >= 0 && !c->listening && c->out_fd < 0) {
        bool w = false;
        if (ep_set(c, c->listen_fd, &w, EPOLLIN) == 0)
            c->listening = true;
    }
}

static void close_in(struct chardev *c)
{
    if (c->in_fd < 0)
        return;
    ep_del(c, c->in_fd, &c->in_watched);
    if (c->in_fd != c->out_fd)
        close(c->in_fd);
    c->in_fd = -1;
}

static void close_out(struct chardev *c)
{
    if (c->out_fd < 0)
        return;
    if (c->out_fd == c->in_fd) {
        close_in(c);
    } else {
        ep_del(c, c->out_fd, &c->out_watched);
    }
    close(c->out_fd);
    c->out_fd = -1;
    c->out_watched = false;
    c->pending |= CHARDEV_EV_DOWN;
    update(c); /* socket kind: listen for the next client */
}

/* The peer is gone: a socket client loses both directions, stdio only the side that failed. */
static void lost(struct chardev *c, bool input_side)
{
    if (c->in_fd >= 0 && c->in_fd == c->out_fd)
        close_out(c);
    else if (input_side)
        close_in(c);
    else
        close_out(c);
}

static void accept_client(struct chardev *c)
{
    int fd = accept4(c->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        /* EAGAIN, or a client that left before we got to it, is routine;
         * anything else (out of fds) is the host's trouble: say so. */
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED && errno != EINTR)
            log_ratelimited(LOG_WARN, "console socket %s: accept: %s", c->path, strerror(errno));
        return;
    }
    bool w = true;
    ep_del(c, c->listen_fd, &w);
    c->listening = false;
    c->in_fd = c->out_fd = fd;
    c->in_watched = c->out_watched = false;
    update(c);
    c->pending |= CHARDEV_EV_UP | CHARDEV_EV_IN | CHARDEV_EV_OUT;
}

unsigned chardev_poll(struct chardev *c)
{
    struct epoll_event evs[4];
    int n = epoll_wait(c->ep, evs, (int)ARRAY_SIZE(evs), 0);
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        uint32_t e = evs[i].events;
        if (fd == c->listen_fd) {
            if (c->out_fd < 0)
                accept_client(c);
            continue;
        }
        if (fd == c->in_fd && (e & EPOLLIN))
            c->pending |= CHARDEV_EV_IN;
        if (fd == c->out_fd && (e & EPOLLOUT))
            c->pending |= CHARDEV_EV_OUT;
        if (e & (EPOLLHUP | EPOLLERR)) {
            /* While the owner wants input, let it read what is left: the
             * read then sees the end.  Otherwise the peer is gone now. */
            if (fd == c->in_fd && c->want_in)
                c->pending |= CHARDEV_EV_IN;
            else
                lost(c, fd == c->in_fd);
        }
    }
    unsigned r = c->pending;
    c->pending = 0;
    return r;
}

void chardev_set_interest(struct chardev *c, bool input, bool output)
{
    if (input == c->want_in && output == c->want_out)
        return;
    c->want_in = input;
    c->want_out = output;
    update(c);
}

/*
 * I/O on an fd whose open file description we share with our parent (see
 * reopen_std()): its O_NONBLOCK flag is not ours to set, and whoever holds
 * it may clear it at any time, so the fd must be assumed blocking.  A
 * zero-timeout poll first; only if it reports readiness, one read() or
 * one write() of at most out_chunk bytes, sizes the ready fd takes without
 * waiting:
 *   - a pipe reports POLLOUT with at least one free page, and a write of
 *     at most PIPE_BUF bytes then fits;
 *   - a UNIX stream socket reports POLLOUT with most of its send buffer
 *     free, far more than PIPE_BUF;
 *   - a terminal reports POLLOUT only with room in its output buffer, so a
 *     few bytes fit (the COM1 rule, devices/legacy/serial.c);
 *   - a regular file is always ready and never waits for a reader.
 * EINTR is not retried: the event loop calls again.  What is left: another
 * process writing into the same pipe or terminal between the poll and the
 * write could take the room, and the write would wait until the reader
 * reads.  Returns -EAGAIN if the fd is not ready.
 */
static ssize_t gated_io(int fd, bool output, void *buf, size_t len)
{
    struct pollfd pfd = {.fd = fd, .events = output ? POLLOUT : POLLIN};
    static const struct timespec zero = {0, 0};
    int r = ppoll(&pfd, 1, &zero, NULL);
    if (r < 0)
        return errno == EINTR ? -EAGAIN : -errno;
    /* An error or hang-up: let the read or write report it. */
    if (r == 0 || !(pfd.revents & ((output ? POLLOUT : POLLIN) | POLLERR | POLLHUP)))
        return -EAGAIN;
    ssize_t n = output ? write(fd, buf, len) : read(fd, buf, len);
    if (n < 0)
        return errno == EINTR ? -EAGAIN : -errno;
    return n;
}

/*
 * One read or write on fd: gated (gated_io) when we share its open file
 * description, plain with EINTR retried otherwise.  Returns the byte count,
 * -EAGAIN when the fd has nothing or no room now, or another -errno.
 */
static ssize_t fd_io(int fd, bool gated, bool output, void *buf, size_t len)
{
    if (gated)
        return gated_io(fd, output, buf, len);
    ssize_t n;
    do {
        n = output ? write(fd, buf, len) : read(fd, buf, len);
    } while (n < 0 && errno == EINTR);
    if (n >= 0)
        return n;
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

ssize_t chardev_read(struct chardev *c, void *buf, size_t len)
{
    if (c->in_fd < 0)
        return -EPIPE;
    ssize_t n = fd_io(c->in_fd, c->in_gated, false, buf, len);
    if (n > 0 && c->filter) {
        size_t kept = c->filter(c->filter_ctx, buf, (size_t)n);
        if (kept > (size_t)n)
            vmm_fatal("chardev: input filter grew %zd bytes to %zu", n, kept);
        /* Everything swallowed (e.g. a lone Ctrl-A): nothing for now. */
        return kept ? (ssize_t)kept : -EAGAIN;
    }
    if (n > 0 || n == -EAGAIN)
        return n;
    lost(c, true); /* end of input or an error */
    return -EPIPE;
}

ssize_t chardev_write(struct chardev *c, const void *buf, size_t len)
{
    if (c->out_fd < 0)
        return -EPIPE;
    if (c->out_gated)
        len = MIN(len, c->out_chunk);
    ssize_t n = fd_io(c->out_fd, c->out_gated, true, (void *)(uintptr_t)buf, len);
    if (n >= 0 || n == -EAGAIN)
        return n;
    lost(c, false);
    return -EPIPE;
}

void chardev_set_input_filter(struct chardev *c, chardev_filter_fn fn, void *ctx)
{
    c->filter = fn;
    c->filter_ctx = ctx;
}

bool chardev_connected(const struct chardev *c)
{
    return c->out_fd >= 0;
}

int chardev_fd(const struct chardev *c)
{
    return c->ep;
}

void chardev_close(struct chardev *c)
{
    if (!c)
        return;
    if (c->in_fd >= 0 && c->in_fd != c->out_fd)
        close(c->in_fd);
    if (c->out_fd >= 0)
        close(c->out_fd);
    if (c->listen_fd >= 0)
        close(c->listen_fd);
    if (c->created_path && unlink(c->path) < 0 && errno != ENOENT)
        log_warn("console socket %s: cannot remove it: %s", c->path, strerror(errno));
    if (c->ep >= 0)
        close(c->ep);
    free(c);
}

static struct chardev *alloc_chardev(struct errbuf *err)
{
    struct chardev *c = calloc(1, sizeof(*c));
    if (!c) {
        err_set(err, WISP_EXIT_HOST, ENOMEM, "console: out of memory");
        return NULL;
    }
    c->listen_fd = c->in_fd = c->out_fd = -1;
    c->ep = epoll_create1(EPOLL_CLOEXEC);
    if (c->ep < 0) {
        err_set(err, WISP_EXIT_HOST, errno, "console: epoll_create1: %s", strerror(errno));
        free(c);
        return NULL;
    }
    return c;
}

/* Probe whether epoll can watch fd (regular files and /dev/null cannot). */
static bool pollable(struct chardev *c, int fd)
{
    struct epoll_event ev = {.events = 0, .data.fd = fd};
    if (epoll_ctl(c->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        return false;
    (void)epoll_ctl(c->ep, EPOLL_CTL_DEL, fd, NULL);
    return true;
}

/* Bytes one gated write may carry on `fd` without waiting (see gated_io()). */
static size_t gated_chunk(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return 8;
    if (S_ISREG(st.st_mode))
        return SIZE_MAX;
    if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))
        return PIPE_BUF;
    return 8; /* a terminal or another character device */
}

/*
 * chardev_open_fds(), where an fd marked shared belongs to an open file
 * description others hold too: it is left as it is (blocking or not) and
 * served through gated_io().
 */
static int open_fds(int in_fd, bool in_shared, int out_fd, bool out_shared, struct chardev **out,
                    struct errbuf *err)
{
    struct chardev *c = alloc_chardev(err);
    if (!c) {
        if (in_fd >= 0)
            close(in_fd);
        if (out_fd >= 0 && out_fd != in_fd)
            close(out_fd);
        return -ENOMEM;
    }
    c->in_fd = in_fd;
    c->out_fd = out_fd;
    c->in_gated = in_fd >= 0 && in_shared;
    c->out_gated = out_fd >= 0 && out_shared;
    if (c->out_gated)
        c->out_chunk = gated_chunk(out_fd);
    int fds[2] = {in_fd, out_fd};
    bool shared[2] = {in_shared, out_shared};
    for (unsigned i = 0; i < 2; i++) {
        if (fds[i] < 0 || shared[i])
            continue;
        int fl = fcntl(fds[i], F_GETFL);
        if (fl < 0 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) < 0) {
            int e = errno;
            chardev_close(c);
            return err_set(err, WISP_EXIT_HOST, e, "console: fcntl: %s", strerror(e));
        }
    }
    if (c->in_fd >= 0 && !pollable(c, c->in_fd))
        close_in(c); /* e.g. /dev/null: nothing will ever arrive */
    if (c->out_fd >= 0 && c->out_fd != c->in_fd && !pollable(c, c->out_fd))
        c->out_unpolled = true; /* a regular file: writes never wait */
    update(c);
    *out = c;
    return 0;
}

int chardev_open_fds(int in_fd, int out_fd, struct chardev **out, struct errbuf *err)
{
    return open_fds(in_fd, false, out_fd, false, out, err);
}

/*
 * A private O_NONBLOCK open file description for our stdin/stdout (see
 * chardev.h), through /proc/self/fd.  Where that is not possible the fd is
 * dup()ed and *shared set: a regular file (it must keep its shared offset),
 * a socket (it cannot be reopened through /proc), or no usable /proc (a
 * jail has none; a pipe of another uid refuses the reopen).  A shared
 * description keeps its flags: setting O_NONBLOCK on it would change our
 * parent's writes too, and the parent may clear it again under us.
 */
static int reopen_std(int fd, int flags, bool *shared)
{
    struct stat st;
    *shared = true;
    if (fstat(fd, &st) < 0)
        return -1;
    if (S_ISREG(st.st_mode) || S_ISSOCK(st.st_mode))
        return fcntl(fd, F_DUPFD_CLOEXEC, 3);
    char p[32];
    snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
    int r = open(p, flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (r >= 0) {
        *shared = false;
        return r;
    }
    return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

int chardev_open_stdio(struct chardev **out, struct errbuf *err)
{
    bool in_shared, out_shared;
    int in = reopen_std(STDIN_FILENO, O_RDONLY, &in_shared);
    int o = reopen_std(STDOUT_FILENO, O_WRONLY, &out_shared);
    /* A closed stdin or stdout just means no input or no output. */
    return open_fds(in, in_shared, o, out_shared, out, err);
}

int chardev_open_socket(const char *path, struct chardev **out, struct errbuf *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = path ? strlen(path) : 0;
    if (len == 0)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "console socket path is empty");
    if (len > CHARDEV_PATH_MAX)
        return err_set(err, WISP_EXIT_USAGE, ENAMETOOLONG,
                       "console socket path is too long (%zu bytes, at most %d)", len,
                       CHARDEV_PATH_MAX);
    memcpy(sa.sun_path, path, len);

    struct chardev *c = alloc_chardev(err);
    if (!c)
        return -ENOMEM;
    int ret;
    c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->listen_fd < 0) {
        ret = err_set(err, WISP_EXIT_HOST, errno, "console socket %s: socket: %s", path,
                      strerror(errno));
        goto fail;
    }
    ret = uds_bind_listener(c->listen_fd, &sa, "console socket", err);
    if (ret < 0)
        goto fail;
    c->created_path = true;
    memcpy(c->path, path, len + 1);
    /* Backlog 1: the next client waits there while one is being served. */
    if (listen(c->listen_fd, 1) < 0) {
        ret = err_set(err, WISP_EXIT_HOST, errno, "console socket %s: listen: %s", path,
                      strerror(errno));
        goto fail;
    }
    update(c);
    if (!c->listening) {
        ret = err_set(err, WISP_EXIT_HOST, EINVAL, "console socket %s: cannot watch it", path);
        goto fail;
    }
    *out = c;
    return 0;
fail:
    chardev_close(c);
    return ret;
}
