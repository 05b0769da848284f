/*
 * The real kernel behind struct vhost_sys_ops: plain system calls with errno
 * folded into the return value, kept apart from the logic so everything
 * else in devices/vhost/vdpa*.c and vhost_vsock.c runs unchanged against a simulator.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/vhost/vhost_sys.h"

static int sys_open(void *ctx, const char *path, int flags)
{
    (void)ctx;
    int fd = open(path, flags | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static int sys_ioctl(void *ctx, int fd, unsigned long req, uintptr_t arg)
{
    (void)ctx;
    int rc = ioctl(fd, req, arg);
    return rc < 0 ? -errno : rc;
}

static ssize_t sys_write(void *ctx, int fd, const void *buf, size_t len)
{
    (void)ctx;
    ssize_t n;
    do
        n = write(fd, buf, len);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static int sys_close(void *ctx, int fd)
{
    (void)ctx;
    return close(fd) < 0 ? -errno : 0;
}

const struct vhost_sys_ops vhost_sys_kernel = {
    .open = sys_open,
    .ioctl = sys_ioctl,
    .write = sys_write,
    .close = sys_close,
};
