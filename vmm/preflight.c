/*
 * Pre-KVM input checks (see preflight.h).  Every message names the path
 * and the option it came from, because that is what the user has to fix.
 */
#include "vmm/preflight.h"
#include "devices/vfio/vfio.h"
#include "devices/vfio/vfio_pci.h"
#include "arch/arch.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECTOR 512

/*
 * Open `path` for `flags` without blocking and fstat it; `what` names it in
 * errors ("kernel", "initrd", "disk image").  *fd is the open file on success.
 */
static int open_input(const char *path, const char *what, int flags, int *fd, struct stat *st,
                      struct errbuf *err)
{
    *fd = open(path, flags | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (*fd < 0)
        return err_set(err, WISP_EXIT_USAGE, errno, "cannot open %s %s: %s", what, path,
                       strerror(errno));
    if (fstat(*fd, st) < 0) {
        int e = errno;
        close(*fd);
        *fd = -1;
        return err_set(err, WISP_EXIT_USAGE, e, "cannot stat %s %s: %s", what, path, strerror(e));
    }
    return 0;
}

/* A non-empty regular file of at most `max` bytes (`max_what` says what limits it). */
static int check_regular(const char *path, const char *what, const struct stat *st, uint64_t max,
                         const char *max_what, struct errbuf *err)
{
    if (!S_ISREG(st->st_mode))
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "%s %s is not a regular file", what, path);
    if (st->st_size == 0)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "%s %s is empty", what, path);
    if ((uint64_t)st->st_size > max)
        return err_set(err, WISP_EXIT_USAGE, EFBIG, "%s %s is too large: %llu MiB, %s is %llu MiB",
                       what, path, (unsigned long long)(((uint64_t)st->st_size + MiB - 1) / MiB),
                       max_what, (unsigned long long)(max / MiB));
    return 0;
}

static int check_kernel(const struct vm_config *cfg, struct errbuf *err)
{
    struct stat st;
    int fd;
    int ret = open_input(cfg->kernel, "kernel", O_RDONLY, &fd, &st, err);
    if (ret < 0)
        return ret;
    /* Not limited by guest memory: a vmlinux may carry large unloaded sections. */
    ret = check_regular(cfg->kernel, "kernel", &st, CONFIG_MAX_MEMORY, "the limit", err);
    if (ret < 0)
        goto out;
    /* Mapped, not read: the format check looks at headers only. */
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        ret = err_set(err, WISP_EXIT_USAGE, errno, "cannot read kernel %s: %s", cfg->kernel,
                      strerror(errno));
        goto out;
    }
    struct errbuf why = {0};
    ret = arch_check_kernel(p, (size_t)st.st_size, &why);
    munmap(p, (size_t)st.st_size);
    if (ret < 0)
        err_set(err, why.exit_code, -ret, "kernel %s: %s", cfg->kernel, why.msg);
out:
    close(fd);
    return ret;
}

static int check_initrd(const struct vm_config *cfg, struct errbuf *err)
{
    struct stat st;
    int fd;
    int ret = open_input(cfg->initrd, "initrd", O_RDONLY, &fd, &st, err);
    if (ret < 0)
        return ret;
    ret = check_regular(cfg->initrd, "initrd", &st, cfg->memory, "guest memory", err);
    close(fd);
    return ret;
}

/* --device vfio,path=/dev/vfio/devices/vfioN (iommufd): /dev/iommu exists
 * (Debian's kernels have no CONFIG_IOMMUFD: exit 3 with one line) and both
 * nodes are ours to open. */
static int check_vfio_cdev(const struct device_spec *d, struct errbuf *err)
{
    if (access("/dev/iommu", F_OK) < 0 && errno == ENOENT)
        return err_set(err, WISP_EXIT_HOST, ENOENT,
                       "vfio device %s: the host kernel lacks IOMMUFD (no /dev/iommu; needs "
                       "CONFIG_IOMMUFD and CONFIG_VFIO_DEVICE_CDEV, Linux >= 6.6)",
                       d->path);
    const char *nodes[] = {"/dev/iommu", d->path};
    for (unsigned i = 0; i < 2; i++)
        if (access(nodes[i], R_OK | W_OK) < 0)
            return err_set(err, WISP_EXIT_USAGE, errno, "vfio device %s: cannot use %s: %s",
                           d->path, nodes[i], strerror(errno));
    return 0;
}

/* --device vfio: the sysfs path names a device on vfio-pci whose group
 * node we may open (vfio_pci_sysfs_group gives the one-line reasons). */
static int check_vfio(const struct device_spec *d, struct errbuf *err)
{
    if (vfio_cdev_path(d->path))
        return check_vfio_cdev(d, err);
    char group[64];
    int ret = vfio_pci_sysfs_group(d->path, group, sizeof(group), err);
    if (ret < 0)
        return ret;
    if (access(group, R_OK | W_OK) < 0)
        return err_set(err, WISP_EXIT_USAGE, errno, "vfio device %s: cannot use %s: %s", d->path,
                       group, strerror(errno));
    if (access("/dev/vfio/vfio", R_OK | W_OK) < 0)
        return err_set(err, WISP_EXIT_USAGE, errno, "vfio device %s: cannot use /dev/vfio/vfio: %s",
                       d->path, strerror(errno));
    return 0;
}

/* --device vfio-user: the server's socket exists and is a socket. */
/* A peer's UNIX socket (`what`: "vfio-user", "blk vhost-user") must exist and be a socket. */
static int check_socket(const char *path, const char *what, struct errbuf *err)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return err_set(err, WISP_EXIT_USAGE, errno, "%s socket %s: %s", what, path,
                       strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        return err_set(err, WISP_EXIT_USAGE, ENOTSOCK, "%s socket %s is not a socket", what, path);
    return 0;
}

/* --device vdpa: the vhost-vdpa node exists, is a character device, and may be opened. */
static int check_vdpa(const struct device_spec *d, struct errbuf *err)
{
    struct stat st;
    if (stat(d->path, &st) < 0)
        return err_set(err, WISP_EXIT_USAGE, errno, "vdpa device %s: %s", d->path, strerror(errno));
    if (!S_ISCHR(st.st_mode))
        return err_set(err, WISP_EXIT_USAGE, ENODEV,
                       "vdpa device %s is not a character device (want /dev/vhost-vdpa-N)",
                       d->path);
    if (access(d->path, R_OK | W_OK) < 0)
        return err_set(err, WISP_EXIT_USAGE, errno, "vdpa device %s: %s", d->path, strerror(errno));
    return 0;
}

static int check_vfio_user(const struct device_spec *d, struct errbuf *err)
{
    return check_socket(d->socket, "vfio-user", err);
}

static int check_disk(const struct device_spec *d, struct errbuf *err)
{
    struct stat st;
    int fd;
    int ret = open_input(d->path, "disk image", d->readonly ? O_RDONLY : O_RDWR, &fd, &st, err);
    if (ret < 0)
        return ret;
    if (S_ISREG(st.st_mode) && st.st_size < SECTOR)
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL,
                      "disk image %s is smaller than one 512-byte sector", d->path);
    else if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL,
                      "disk image %s is neither a regular file nor a block device", d->path);
    close(fd);
    return ret;
}

/* The directory a file or socket will be created in must exist. */
static int check_parent_dir(const char *path, const char *what, struct errbuf *err)
{
    char *copy = strdup(path);
    if (!copy)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    const char *dir = dirname(copy);
    struct stat st;
    int ret = 0;
    if (stat(dir, &st) < 0)
        ret = err_set(err, WISP_EXIT_USAGE, errno, "%s %s: directory %s: %s", what, path, dir,
                      strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        ret =
            err_set(err, WISP_EXIT_USAGE, ENOTDIR, "%s %s: %s is not a directory", what, path, dir);
    free(copy);
    return ret;
}

/* A layout= file must parse (file errors before /dev/kvm; devmgr loads it
 * again when it creates the function). */
static int check_layout(const char *path, struct errbuf *err)
{
    struct vpci_layout *l = malloc(sizeof(*l));
    if (!l)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    int ret = vpci_layout_load(path, l, err);
    free(l);
    return ret;
}

int preflight_check(const struct vm_config *cfg, struct errbuf *err)
{
    int ret = arch_check_config(cfg, err);
    /* A restored VM does not load its kernel: guest memory comes from the snapshot. */
    bool boots = !cfg->restore && !cfg->incoming && !cfg->restore_wait;
    if (ret == 0 && boots)
        ret = check_kernel(cfg, err);
    if (ret == 0 && cfg->initrd && boots)
        ret = check_initrd(cfg, err);
    if (ret == 0 && cfg->snapshot_dir) {
        struct stat st;
        if (stat(cfg->snapshot_dir, &st) < 0)
            ret = err_set(err, WISP_EXIT_USAGE, errno, "snapshot directory %s: %s",
                          cfg->snapshot_dir, strerror(errno));
        else if (!S_ISDIR(st.st_mode))
            ret = err_set(err, WISP_EXIT_USAGE, ENOTDIR, "snapshot directory %s is not a directory",
                          cfg->snapshot_dir);
    }
    if (ret == 0 && cfg->serial == SERIAL_FILE)
        ret = check_parent_dir(cfg->serial_path, "serial output file", err);
    if (ret == 0 && cfg->api_sock)
        ret = check_parent_dir(cfg->api_sock, "API socket", err);
    for (unsigned i = 0; ret == 0 && i < cfg->ndevices; i++) {
        const struct device_spec *d = &cfg->devices[i];
        if ((d->type == DEV_BLK || d->type == DEV_FS || d->type == DEV_NET) && d->socket)
            ret = check_socket(d->socket,
                               d->type == DEV_FS    ? "fs vhost-user"
                               : d->type == DEV_NET ? "net vhost-user"
                                                    : "blk vhost-user",
                               err);
        else if (d->type == DEV_BLK)
            ret = check_disk(d, err);
        else if (d->type == DEV_CONSOLE && d->socket)
            ret = check_parent_dir(d->socket, "console socket", err);
        else if (d->type == DEV_VSOCK && d->socket) /* none with backend=vhost */
            ret = check_parent_dir(d->socket, "vsock uds_path", err);
        else if (d->type == DEV_VFIO)
            ret = check_vfio(d, err);
        else if (d->type == DEV_VFIO_USER)
            ret = check_vfio_user(d, err);
        else if (d->type == DEV_VDPA)
            ret = check_vdpa(d, err);
        if (ret == 0 && d->layout)
            ret = check_layout(d->layout, err);
    }
    return ret;
}
