/*
 * UNIX-socket host side of the hybrid vsock device (see vsock_uds.h).
 *
 * Why: host processes must reach guest vsock ports without AF_VSOCK on the
 * host (no vhost, a jail with no /dev/vhost-vsock); a UNIX socket per VM is
 * what Firecracker users already script against.
 */
#include "devices/backends/vsock_uds.h"

#include "vmm/uds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

struct vsock_uds {
    int listen_fd, ep_fd, timer_fd;
    bool created_path;
    char path[VSOCK_UDS_PATH_MAX + 1];
};

static int ep_add(struct vsock_uds *u, int fd, uint32_t key, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u64 = key};
    return epoll_ctl(u->ep_fd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int vsock_uds_open(const char *path, struct vsock_uds **out, struct errbuf *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = path ? strlen(path) : 0;
    if (len == 0 || len > VSOCK_UDS_PATH_MAX)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "vsock uds_path must be 1 to %d bytes",
                       VSOCK_UDS_PATH_MAX);
    memcpy(sa.sun_path, path, len);
    struct vsock_uds *u = calloc(1, sizeof(*u));
    if (!u)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "vsock: out of memory");
    memcpy(u->path, path, len + 1);
    u->ep_fd = epoll_create1(EPOLL_CLOEXEC);
    u->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    u->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int ret;
    if (u->ep_fd < 0 || u->timer_fd < 0 || u->listen_fd < 0) {
        ret = err_set(err, WISP_EXIT_HOST, errno, "vsock uds_path %s: %s", path, strerror(errno));
        goto fail;
    }
    ret = uds_bind_listener(u->listen_fd, &sa, "vsock uds_path", err);
    if (ret < 0)
        goto fail;
    u->created_path = true;
    struct itimerspec its = {.it_interval = {0, VSOCK_UDS_TICK_MS * 1000000L},
                             .it_value = {0, VSOCK_UDS_TICK_MS * 1000000L}};
    if (listen(u->listen_fd, 16) < 0 || timerfd_settime(u->timer_fd, 0, &its, NULL) < 0) {
        ret = err_set(err, WISP_EXIT_HOST, errno, "vsock uds_path %s: %s", path, strerror(errno));
        goto fail;
    }
    ret = ep_add(u, u->listen_fd, VSOCK_UDS_KEY_LISTEN, EPOLLIN);
    if (ret == 0)
        ret = ep_add(u, u->timer_fd, VSOCK_UDS_KEY_TIMER, EPOLLIN);
    if (ret < 0) {
        err_set(err, WISP_EXIT_HOST, -ret, "vsock uds_path %s: epoll: %s", path, strerror(-ret));
        goto fail;
    }
    *out = u;
    return 0;
fail:
    vsock_uds_close(u);
    return ret;
}

void vsock_uds_close(struct vsock_uds *u)
{
    if (!u)
        return;
    if (u->listen_fd >= 0)
        close(u->listen_fd);
    if (u->timer_fd >= 0)
        close(u->timer_fd);
    if (u->ep_fd >= 0)
        close(u->ep_fd);
    if (u->created_path)
        unlink(u->path);
    free(u);
}

int vsock_uds_fd(const struct vsock_uds *u)
{
    return u->ep_fd;
}

int vsock_uds_accept(struct vsock_uds *u)
{
    int fd = accept4(u->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

int vsock_uds_connect(struct vsock_uds *u, uint32_t port)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    /* Fits: strlen(path) <= VSOCK_UDS_PATH_MAX, plus '_' and 10 digits. */
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", u->path, port);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int vsock_uds_watch(struct vsock_uds *u, int fd, uint32_t key, bool in, bool out)
{
    struct epoll_event ev = {.events = (in ? EPOLLIN : 0u) | (out ? EPOLLOUT : 0u),
                             .data.u64 = key};
    if (epoll_ctl(u->ep_fd, EPOLL_CTL_MOD, fd, &ev) == 0)
        return 0;
    if (errno != ENOENT)
        return -errno;
    return epoll_ctl(u->ep_fd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

void vsock_uds_unwatch(struct vsock_uds *u, int fd)
{
    epoll_ctl(u->ep_fd, EPOLL_CTL_DEL, fd, NULL);
}

int vsock_uds_shutdown_wr(int fd)
{
    return shutdown(fd, SHUT_WR) < 0 ? -errno : 0;
}

int vsock_uds_wait(struct vsock_uds *u, struct vsock_uds_event *ev, int max)
{
    struct epoll_event e[32];
    int n = epoll_wait(u->ep_fd, e, max < 32 ? max : 32, 0);
    if (n < 0)
        return 0;
    for (int i = 0; i < n; i++) {
        ev[i].key = (uint32_t)e[i].data.u64;
        ev[i].events = e[i].events;
        if (ev[i].key == VSOCK_UDS_KEY_TIMER) {
            uint64_t ticks;
            ssize_t r __unused = read(u->timer_fd, &ticks, sizeof(ticks));
        }
    }
    return n;
}

int vsock_uds_parse_connect(const char *buf, size_t len, uint32_t *port)
{
    static const char verb[] = "CONNECT ";
    const size_t vl = sizeof(verb) - 1;
    if (len < vl + 2 || len > VSOCK_UDS_LINE_MAX || memcmp(buf, verb, vl) || buf[len - 1] != '\n')
        return -EINVAL;
    uint64_t v = 0;
    size_t digits = len - 1 - vl;
    if (digits > 10)
        return -EINVAL;
    for (size_t i = vl; i < len - 1; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(buf[i] - '0');
    }
    if (v > UINT32_MAX)
        return -EINVAL;
    *port = (uint32_t)v;
    return 0;
}
