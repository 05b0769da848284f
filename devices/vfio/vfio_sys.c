/*
 * The real kernel behind struct vfio_sys_ops: plain system calls, with
 * errno folded into the return value.  Kept apart from the logic so that
 * everything else in devices/vfio/ runs unchanged against a simulator.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/vfio/vfio.h"

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

static ssize_t sys_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
    (void)ctx;
    ssize_t n;
    do
        n = pread(fd, buf, len, off);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static ssize_t sys_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
    (void)ctx;
    ssize_t n;
    do
        n = pwrite(fd, buf, len, off);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static int sys_mmap(void *ctx, int fd, off_t off, size_t len, int prot, void **out)
{
    (void)ctx;
    void *p = mmap(NULL, len, prot, MAP_SHARED, fd, off);
    if (p == MAP_FAILED)
        return -errno;
    *out = p;
    return 0;
}

static int sys_munmap(void *ctx, void *addr, size_t len)
{
    (void)ctx;
    return munmap(addr, len) < 0 ? -errno : 0;
}

static int sys_close(void *ctx, int fd)
{
    (void)ctx;
    return close(fd) < 0 ? -errno : 0;
}

const struct vfio_sys_ops vfio_sys_kernel = {
    .open = sys_open,
    .ioctl = sys_ioctl,
    .pread = sys_pread,
    .pwrite = sys_pwrite,
    .mmap = sys_mmap,
    .munmap = sys_munmap,
    .close = sys_close,
};
