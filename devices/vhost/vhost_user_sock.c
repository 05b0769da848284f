/*
 * vhost-user socket I/O (see vhost_user_sock.h): deadline-bounded sendmsg
 * and recvmsg with SCM_RIGHTS checking.  Every call uses MSG_DONTWAIT and
 * waits in poll() for what is left of its deadline, whatever the socket's
 * own blocking mode.
 */
#include "devices/vhost/vhost_user_sock.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Control room for more fds than allowed, so that extra fds are seen and closed, not truncated. */
#define VHU_CMSG_ROOM (VHU_MAX_FDS * 4)

static int64_t vhu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for `events` on sock until deadline (CLOCK_MONOTONIC ms): 0 or -ETIMEDOUT/-errno. */
static int vhu_wait(int sock, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - vhu_now_ms();
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
        return 0; /* POLLHUP/POLLERR: the next send/recv says what happened */
    }
}

void vhu_close_fds(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

int vhu_sock_send(int sock, const uint8_t *buf, size_t len, const int *fds, unsigned nfds,
                  int timeout_ms)
{
    if (nfds > VHU_MAX_FDS || len == 0)
        return -EINVAL;
    int64_t deadline = vhu_now_ms() + timeout_ms;
    union {
        char buf[CMSG_SPACE(sizeof(int) * VHU_MAX_FDS)];
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
            int rc = vhu_wait(sock, POLLOUT, deadline);
            if (rc < 0)
                return rc;
            continue;
        }
        done += (size_t)n; /* the fds went with the first bytes */
    }
    return 0;
}

/*
 * Moves the SCM_RIGHTS fds of mh into fds[*nfds..]; if they are not allowed
 * here, exceed max_fds, or the control data is truncated or foreign, closes
 * them all and returns -EPROTO.
 */
static int vhu_take_fds(struct msghdr *mh, bool allow, int *fds, unsigned max_fds, unsigned *nfds)
{
    int rc = (mh->msg_flags & MSG_CTRUNC) ? -EPROTO : 0;
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

/* Reads exactly len bytes; fds are allowed only with the message's first byte. */
static int vhu_recv_exact(int sock, uint8_t *buf, size_t len, bool first, int *fds,
                          unsigned max_fds, unsigned *nfds, int64_t deadline)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * VHU_CMSG_ROOM)];
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
            int rc = vhu_wait(sock, POLLIN, deadline);
            if (rc < 0)
                return rc;
            continue;
        }
        int rc = vhu_take_fds(&mh, first && done == 0, fds, max_fds, nfds);
        if (rc < 0)
            return rc;
        if (n == 0)
            return -ECONNRESET;
        done += (size_t)n;
    }
    return 0;
}

int vhu_sock_recv(int sock, uint8_t *buf, size_t cap, int *fds, unsigned max_fds, unsigned *nfds,
                  int timeout_ms)
{
    int64_t deadline = vhu_now_ms() + timeout_ms;
    *nfds = 0;
    if (cap < VHU_HDR_SIZE)
        return -EINVAL;
    if (max_fds > VHU_MAX_FDS)
        max_fds = VHU_MAX_FDS;
    int rc = vhu_recv_exact(sock, buf, VHU_HDR_SIZE, true, fds, max_fds, nfds, deadline);
    if (rc < 0)
        goto fail;
    struct vhu_hdr h;
    vhu_hdr_decode(buf, VHU_HDR_SIZE, &h);
    /* Bound the size before reading a byte of payload: the stream is lost either way. */
    if (h.size > VHU_MAX_PAYLOAD || h.size > cap - VHU_HDR_SIZE) {
        rc = -EMSGSIZE;
        goto fail;
    }
    rc = vhu_recv_exact(sock, buf + VHU_HDR_SIZE, h.size, false, fds, 0, nfds, deadline);
    if (rc < 0)
        goto fail;
    return (int)(VHU_HDR_SIZE + h.size);
fail:
    vhu_close_fds(fds, *nfds);
    *nfds = 0;
    return rc;
}
