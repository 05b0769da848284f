/*
 * Deadline-bounded sendmsg/recvmsg with SCM_RIGHTS checking (see fdsock.h),
 * shared by the vfio-user and vhost-user socket layers.
 */
#include "devices/fdsock.h"

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
#define CMSG_FDS_ROOM (FDSOCK_MAX_FDS * 4)

int64_t fdsock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fdsock_wait(int sock, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - fdsock_now_ms();
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

void fdsock_close_fds(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

int fdsock_send(int sock, const uint8_t *buf, size_t len, const int *fds, unsigned nfds,
                int64_t deadline)
{
    if (nfds > FDSOCK_MAX_FDS || len == 0)
        return -EINVAL;
    union {
        char buf[CMSG_SPACE(sizeof(int) * FDSOCK_MAX_FDS)];
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
            int rc = fdsock_wait(sock, POLLOUT, deadline);
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
 * max_fds, come in a foreign control message, or the control data was
 * truncated.
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

int fdsock_recv_exact(int sock, uint8_t *buf, size_t len, bool first, int *fds, unsigned max_fds,
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
            int rc = fdsock_wait(sock, POLLIN, deadline);
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
