/* Process-wide filesystem, network and scope restriction (see landlock.h). */
#include "sandbox/landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "sandbox/landlock_abi.h"
#include "vmm/log.h"

int landlock_abi(void)
{
    long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
    return v > 0 ? (int)v : 0;
}

/* Every filesystem right the ABI knows: all are refused unless a rule grants them. */
static uint64_t handled_fs(int abi)
{
    uint64_t fs = LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_READ_DIR |
                  LL_FS_REMOVE_DIR | LL_FS_REMOVE_FILE | LL_FS_MAKE_CHAR | LL_FS_MAKE_DIR |
                  LL_FS_MAKE_REG | LL_FS_MAKE_SOCK | LL_FS_MAKE_FIFO | LL_FS_MAKE_BLOCK |
                  LL_FS_MAKE_SYM;
    if (abi >= 2)
        fs |= LL_FS_REFER;
    if (abi >= 3)
        fs |= LL_FS_TRUNCATE;
    if (abi >= 5)
        fs |= LL_FS_IOCTL_DEV;
    return fs;
}

/* Grant `access` beneath directory `dir`. */
static int allow_beneath(int ruleset, const char *dir, uint64_t access, struct errbuf *err)
{
    int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "landlock: cannot open %s: %s", dir,
                       strerror(errno));
    struct ll_path_beneath_attr pb = {.allowed_access = access, .parent_fd = fd};
    int ret = 0;
    if (syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &pb, 0) < 0)
        ret = err_set(err, WISP_EXIT_HOST, errno, "landlock: cannot add a rule for %s: %s", dir,
                      strerror(errno));
    close(fd);
    return ret;
}

/* The directory part of `path` ("." for a bare name), or -ENAMETOOLONG. */
static int dir_of(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');
    int n = !slash          ? snprintf(out, size, ".")
            : slash == path ? snprintf(out, size, "/")
                            : snprintf(out, size, "%.*s", (int)(slash - path), path);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int landlock_apply(const struct landlock_policy *p, int abi, struct errbuf *err)
{
    if (p->mode == LANDLOCK_OFF)
        return 0;
    if (abi < 1) {
        if (p->mode == LANDLOCK_ON)
            return err_set(err, WISP_EXIT_HOST, EOPNOTSUPP,
                           "--landlock on: this kernel does not offer Landlock "
                           "(use --landlock auto or off)");
        log_info("landlock: not offered by this kernel; running without it");
        return 0;
    }
    if (p->nremove > LANDLOCK_MAX_REMOVE)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "internal: too many landlock paths");

    struct ll_ruleset_attr attr = {.handled_access_fs = handled_fs(abi)};
    size_t size = LL_RULESET_ATTR_SIZE_V1;
    if (abi >= 4) {
        attr.handled_access_net = LL_NET_BIND_TCP | (p->allow_tcp_connect ? 0 : LL_NET_CONNECT_TCP);
        size = LL_RULESET_ATTR_SIZE_V4;
    }
    if (abi >= 6) {
        attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
        size = LL_RULESET_ATTR_SIZE_V6;
    }
    int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (rs < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "landlock: cannot create a ruleset: %s",
                       strerror(errno));
    int ret = 0;
    for (unsigned i = 0; i < p->nremove && ret == 0; i++) {
        char dir[PATH_MAX];
        if (dir_of(p->remove_files[i], dir, sizeof(dir)) < 0)
            ret = err_set(err, WISP_EXIT_USAGE, ENAMETOOLONG, "landlock: path too long: %s",
                          p->remove_files[i]);
        else
            ret = allow_beneath(rs, dir, LL_FS_REMOVE_FILE, err);
    }
    if (ret == 0 && p->read_proc_self)
        ret = allow_beneath(rs, "/proc/self", LL_FS_READ_FILE, err);
    if (ret == 0 && p->write_dir) {
        uint64_t w = LL_FS_MAKE_REG | LL_FS_WRITE_FILE | LL_FS_READ_FILE;
        if (abi >= 3)
            w |= LL_FS_TRUNCATE;
        ret = allow_beneath(rs, p->write_dir, w, err);
    }
    if (ret == 0 && p->read_all)
        ret = allow_beneath(rs, "/", LL_FS_READ_FILE | LL_FS_READ_DIR, err);
    /* Required by the kernel without CAP_SYS_ADMIN; seccomp sets it anyway. */
    if (ret == 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        ret = err_set(err, WISP_EXIT_HOST, errno, "cannot set no_new_privs: %s", strerror(errno));
    if (ret == 0 && syscall(SYS_landlock_restrict_self, rs, 0) < 0)
        ret = err_set(err, WISP_EXIT_HOST, errno, "landlock: cannot restrict wisp: %s",
                      strerror(errno));
    close(rs);
    if (ret == 0)
        log_debug("landlock: ABI %d applied", abi);
    return ret == 0 ? 1 : ret;
}
