/*
 * vfio-user socket I/O (see vfio_user_sock.h): deadline-bounded sendmsg and
 * recvmsg with SCM_RIGHTS checking.  The socket's own blocking mode does not
 * matter: every call uses MSG_DONTWAIT and waits in poll() for what is left
 * of its deadline.
 */
#include "devices/vfio/vfio_user_sock.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * Room for more descriptors than any message may carry, so that a peer
 * sending too many is seen (and its fds closed) rather than truncated.
 */
#define CMSG_FDS_ROOM (VFIO_USER_MAX_FDS * 4)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on sock until deadline (ms, CLOCK_MONOTONIC). */
static int wait_fd(int sock, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = sock, .events = events};
        int n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            continue;
        if (pfd.revents & POLLNVAL)
            return -EBADF;
        /* POLLHUP/POLLERR: let the next send/recv report what happened. */
        return 0;
    }
}

void vfio_user_close_fds(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

int vfio_user_sock_send(int sock, const uint8_t *buf, size_t len, const int *fds, unsigned nfds,
                        int timeout_ms)
{
    if (nfds > VFIO_USER_MAX_FDS || len == 0)
        return -EINVAL;
    int64_t deadline = now_ms() + timeout_ms;
    union {
        char buf[CMSG_SPACE(sizeof(int) * VFIO_USER_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    size_t done = 0;
    while (done < len) {
        struct iovec iov = {.iov_base = (void *)(uintptr_t)(buf + done), .iov_len = len - done};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        if (done == 0 && nfds > 0) {
            memset(&ctl, 0, sizeof(ctl));
            mh.msg_control = ctl.buf;
            mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
            struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
            memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        ssize_t n = sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -errno;
            int rc = wait_fd(sock, POLLOUT, deadline);
            if (rc < 0)
                return rc;
            continue;
        }
        done += (size_t)n; /* the fds went with the first bytes */
    }
    return 0;
}

/*
 * Takes the SCM_RIGHTS fds out of mh into fds[*nfds..], closing all of them
 * and returning -EPROTO when they are not allowed (allow false), exceed
 * max_fds, or the control data was truncated.
 */
static int take_fds(struct msghdr *mh, bool allow, int *fds, unsigned max_fds, unsigned *nfds)
{
    int rc = 0;
    if (mh->msg_flags & MSG_CTRUNC)
        rc = -EPROTO; /* the kernel dropped fds (already closed by it) */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            rc = -EPROTO;
            continue;
        }
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (rc == 0 && allow && *nfds < max_fds) {
                fds[(*nfds)++] = fd;
            } else {
                close(fd);
                rc = -EPROTO;
            }
        }
    }
    return rc;
}

/* Reads exactly len bytes into buf; fds only allowed with the first byte. */
static int recv_exact(int sock, uint8_t *buf, size_t len, bool first, int *fds, unsigned max_fds,
                      unsigned *nfds, int64_t deadline)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * CMSG_FDS_ROOM)];
        struct cmsghdr align;
    } ctl;
    size_t done = 0;
    while (done < len) {
        struct iovec iov = {.iov_base = buf + done, .iov_len = len - done};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = ctl.buf,
                            .msg_controllen = sizeof(ctl.buf)};
        ssize_t n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -errno;
            int rc = wait_fd(sock, POLLIN, deadline);
            if (rc < 0)
                return rc;
            continue;
        }
        int rc = take_fds(&mh, first && done == 0, fds, max_fds, nfds);
        if (rc < 0)
            return rc;
        if (n == 0)
            return -ECONNRESET;
        done += (size_t)n;
    }
    return 0;
}

int vfio_user_sock_recv(int sock, uint8_t *buf, size_t cap, int *fds, unsigned max_fds,
                        unsigned *nfds, struct vfio_user_hdr *h, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    *nfds = 0;
    if (cap < VFIO_USER_HDR_SIZE)
        return -EINVAL;
    if (max_fds > VFIO_USER_MAX_FDS)
        max_fds = VFIO_USER_MAX_FDS;
    int rc = recv_exact(sock, buf, VFIO_USER_HDR_SIZE, true, fds, max_fds, nfds, deadline);
    if (rc < 0)
        goto fail;
    rc = vfio_user_hdr_decode(buf, VFIO_USER_HDR_SIZE, h);
    if (rc == -ENOTSUP && h->size <= cap) {
        /* Consume the unknown message so the stream stays in step. */
        int rc2 = recv_exact(sock, buf + VFIO_USER_HDR_SIZE, h->size - VFIO_USER_HDR_SIZE, false,
                             fds, 0, nfds, deadline);
        rc = rc2 < 0 ? rc2 : -ENOTSUP;
        goto fail;
    }
    if (rc < 0)
        goto fail;
    if (h->size > cap) {
        rc = -EMSGSIZE;
        goto fail;
    }
    rc = recv_exact(sock, buf + VFIO_USER_HDR_SIZE, h->size - VFIO_USER_HDR_SIZE, false, fds, 0,
                    nfds, deadline);
    if (rc < 0)
        goto fail;
    return 0;
fail:
    vfio_user_close_fds(fds, *nfds);
    *nfds = 0;
    return rc;
}
