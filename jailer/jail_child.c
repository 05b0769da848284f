/*
 * The jail's child (see jail_child.h).  Runs once per VM, as root, right
 * before the exec; each step narrows what the VMM can reach if a guest
 * takes it over.
 */
#include "jailer/jail_child.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "jailer/jail_cgroup.h"

#define HOST(err, e, ...) err_set((err), WISP_EXIT_HOST, (e), "jail: " __VA_ARGS__)

int jail_child_set_rlimits(uint64_t nofile, bool has_fsize, uint64_t fsize, struct errbuf *err)
{
    struct rlimit nf = {nofile, nofile}, core = {0, 0};
    if (setrlimit(RLIMIT_NOFILE, &nf) < 0)
        return HOST(err, errno, "setrlimit(RLIMIT_NOFILE, %llu): %s", (unsigned long long)nofile,
                    strerror(errno));
    if (setrlimit(RLIMIT_CORE, &core) < 0)
        return HOST(err, errno, "setrlimit(RLIMIT_CORE, 0): %s", strerror(errno));
    if (has_fsize) {
        struct rlimit fs = {fsize, fsize};
        if (setrlimit(RLIMIT_FSIZE, &fs) < 0)
            return HOST(err, errno, "setrlimit(RLIMIT_FSIZE, %llu): %s", (unsigned long long)fsize,
                        strerror(errno));
    }
    return 0;
}

static int enter_namespaces(const struct jail_plan *p, struct errbuf *err)
{
    /* A cgroup namespace too: the VMM sees its group as "/", not the host's layout. */
    int flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
    if (p->netns_fd >= 0) {
        if (setns(p->netns_fd, CLONE_NEWNET) < 0)
            return HOST(err, errno, "cannot join --netns %s: %s", p->opts->netns, strerror(errno));
    } else {
        flags |= CLONE_NEWNET; /* empty: only a down loopback device */
    }
    if (unshare(flags) < 0)
        return HOST(err, errno, "unshare(mount, IPC, UTS, cgroup%s namespaces): %s",
                    p->netns_fd < 0 ? ", network" : "", strerror(errno));
    /* The host's name stays on the host. */
    if (sethostname("wisp", 4) < 0)
        return HOST(err, errno, "sethostname: %s", strerror(errno));
    return 0;
}

/* Make the jail root the process's "/" with nothing of the host left reachable. */
static int pivot_into(const char *root, struct errbuf *err)
{
    /* Private first: no mount made below propagates back to the host. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return HOST(err, errno, "cannot make / private: %s", strerror(errno));
    /* pivot_root needs the new root to be a mount point. */
    if (mount(root, root, NULL, MS_BIND, NULL) < 0 ||
        mount(NULL, root, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID, NULL) < 0)
        return HOST(err, errno, "cannot bind-mount %s onto itself: %s", root, strerror(errno));
    if (chdir(root) < 0)
        return HOST(err, errno, "chdir %s: %s", root, strerror(errno));
    /* pivot_root(".", ".") stacks the old root on top of the new one, so no
     * directory for it is needed in the jail; the detach then removes it. */
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        return HOST(err, errno, "pivot_root into %s: %s", root, strerror(errno));
    if (umount2(".", MNT_DETACH) < 0)
        return HOST(err, errno, "cannot detach the old root: %s", strerror(errno));
    if (chdir("/") < 0)
        return HOST(err, errno, "chdir /: %s", strerror(errno));
    return 0;
}

/*
 * Attach each disk image.  The parent cloned them with open_tree() while it
 * was in the host's mount namespace (a bind mount from a file of another
 * namespace is refused); moving a detached tree into ours is allowed.
 */
static int mount_disks(const struct jail_plan *p, struct errbuf *err)
{
    for (unsigned i = 0; i < p->nbinds; i++) {
        const struct jail_bind *b = &p->binds[i];
        struct mount_attr attr = {
            .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC |
                        (b->readonly ? MOUNT_ATTR_RDONLY : 0),
        };
        char dst[JAIL_PATH_MAX + 1];
        snprintf(dst, sizeof(dst), "/%s", b->dst);
        if (mount_setattr(b->tree_fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0 ||
            move_mount(b->tree_fd, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0)
            return HOST(err, errno, "cannot mount the disk image on %s: %s", dst, strerror(errno));
    }
    return 0;
}

int jail_child_drop_privileges(uid_t uid, gid_t gid, struct errbuf *err)
{
    /* The bounding set first: dropping from it needs CAP_SETPCAP, which the
     * uid change takes away.  Probe upwards until the kernel says EINVAL. */
    for (int cap = 0; cap < 256; cap++) {
        int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (r < 0 && errno == EINVAL)
            break;
        if (r < 0 || (r == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0))
            return HOST(err, errno, "cannot drop capability %d from the bounding set: %s", cap,
                        strerror(errno));
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return HOST(err, errno, "cannot clear ambient capabilities: %s", strerror(errno));
    if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
        return HOST(err, errno, "cannot switch to %u:%u: %s", (unsigned)uid, (unsigned)gid,
                    strerror(errno));
    /* setresuid() cleared the permitted and effective sets, not the inheritable one. */
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &hdr, data) < 0)
        return HOST(err, errno, "cannot clear capabilities: %s", strerror(errno));
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return HOST(err, errno, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
    /* Trust, but verify: every id switched, no capability left, no way back. */
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || ru != uid || eu != uid ||
        su != uid || rg != gid || eg != gid || sg != gid || getgroups(0, NULL) != 0)
        return HOST(err, EPERM, "ids did not change as requested");
    if (syscall(SYS_capget, &hdr, data) < 0)
        return HOST(err, errno, "capget: %s", strerror(errno));
    for (unsigned i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
        if (data[i].effective || data[i].permitted || data[i].inheritable)
            return HOST(err, EPERM, "capabilities remain after the drop");
    if (setresuid(0, 0, 0) == 0 || setresgid(0, 0, 0) == 0)
        return HOST(err, EPERM, "root could be regained after the drop");
    return 0;
}

static int setup(const struct jail_plan *p, struct errbuf *err)
{
    const struct jail_opts *o = p->opts;
    int ret = jail_cgroup_join(p, err);
    if (ret == 0)
        ret = jail_child_set_rlimits(o->nofile, o->has_fsize, o->fsize, err);
    if (ret == 0)
        ret = enter_namespaces(p, err);
    if (ret == 0)
        ret = pivot_into(p->root_path, err);
    if (ret == 0)
        ret = mount_disks(p, err);
    if (ret < 0)
        return ret;
    if (o->daemonize) {
        if (setsid() < 0 || dup2(p->devnull_fd, 0) < 0 || dup2(p->devnull_fd, 1) < 0 ||
            dup2(p->devnull_fd, 2) < 0)
            return HOST(err, errno, "cannot daemonize: %s", strerror(errno));
    }
    return jail_child_drop_privileges(o->uid, o->gid, err);
}

_Noreturn void jail_child_run(const struct jail_plan *p, int status_fd)
{
    struct errbuf err = {0};
    if (setup(p, &err) == 0) {
        char *const no_env[] = {NULL};
        execve("/wisp", p->exec_argv, no_env);
        HOST(&err, errno, "cannot exec /wisp in the jail: %s", strerror(errno));
    }
    /* One write well below PIPE_BUF: the parent reads it whole or not at all. */
    ssize_t n = write(status_fd, &err, sizeof(err));
    (void)n;
    _exit(err.exit_code ? err.exit_code : WISP_EXIT_HOST);
}
