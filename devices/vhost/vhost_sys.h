/*
 * The kernel's vhost character devices (/dev/vhost-vdpa-N, /dev/vhost-vsock)
 * as wisp's vhost layers see them: open, ioctl, write, close behind one
 * injectable table.
 *
 * Why it exists: vdpa.c and vhost_vsock.c drive the same kind of kernel fd
 * with ordering rules the kernel does not always enforce; with every call
 * going through this table, a simulated kernel (tests/lib/fake_vdpa.c,
 * tests/lib/fake_vhost_vsock.c) stands in for it in the unit tests and the
 * logic runs unchanged against both.
 */
#ifndef DEVICES_VHOST_VHOST_SYS_H
#define DEVICES_VHOST_VHOST_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The kernel, as a vhost layer sees it.  Each returns -errno on failure
 * (never -1 with errno).  `ctx` is the table's own state (NULL for the real
 * kernel).  ioctl's `arg` is the pointer (cast) or value the request takes.
 */
struct vhost_sys_ops {
    int (*open)(void *ctx, const char *path, int flags);               /* fd or -errno */
    int (*ioctl)(void *ctx, int fd, unsigned long req, uintptr_t arg); /* >= 0 or -errno */
    ssize_t (*write)(void *ctx, int fd, const void *buf, size_t len);  /* bytes or -errno */
    int (*close)(void *ctx, int fd);
};

/* The real kernel (plain system calls, O_CLOEXEC added to every open). */
extern const struct vhost_sys_ops vhost_sys_kernel;

#endif /* DEVICES_VHOST_VHOST_SYS_H */
