/*
 * `wisp jail` (see jail.h): the order of the steps, the parent's side of
 * the launch, and undoing a launch that failed.
 *
 * The parent stays in the host's namespaces on purpose.  It only unshares
 * the PID namespace (which affects its children, not itself), so after a
 * failure in the child it still sees the jail tree and the cgroup and can
 * remove them; mounts made by the child live in the child's own mount
 * namespace and vanish with it.
 */
#include "jailer/jail.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jailer/jail_args.h"
#include "jailer/jail_cgroup.h"
#include "jailer/jail_child.h"
#include "jailer/jail_fs.h"
#include "jailer/jail_input.h"

#define HOST(err, e, ...) err_set((err), WISP_EXIT_HOST, (e), "jail: " __VA_ARGS__)

void jail_plan_init(struct jail_plan *p, const struct jail_opts *opts)
{
    memset(p, 0, sizeof(*p));
    p->opts = opts;
    p->netns_fd = p->devnull_fd = -1;
    p->base_fd = p->exec_dir_fd = p->id_dir_fd = p->root_fd = -1;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

void jail_plan_free(struct jail_plan *p)
{
    for (unsigned i = 0; i < p->nfiles; i++)
        close_fd(&p->files[i].src_fd);
    for (unsigned i = 0; i < p->nbinds; i++) {
        close_fd(&p->binds[i].src_fd);
        close_fd(&p->binds[i].tree_fd);
    }
    p->nfiles = p->nbinds = 0;
    close_fd(&p->netns_fd);
    close_fd(&p->devnull_fd);
    close_fd(&p->base_fd);
    close_fd(&p->exec_dir_fd);
    close_fd(&p->id_dir_fd);
    close_fd(&p->root_fd);
    for (int i = 0; p->exec_argv && i < p->exec_argc; i++)
        free(p->exec_argv[i]);
    free(p->exec_argv);
    p->exec_argv = NULL;
    p->exec_argc = 0;
}

void jail_undo(struct jail_plan *p)
{
    jail_cgroup_undo(p);
    jail_fs_undo(p);
}

int jail_prepare(struct jail_plan *p, struct errbuf *err)
{
    int ret = jail_input_plan(p, err);
    if (ret == 0)
        ret = jail_fs_build(p, err);
    if (ret == 0)
        ret = jail_cgroup_create(p, err);
    if (ret < 0)
        jail_undo(p);
    return ret;
}

/* The VMM's pid for the signal forwarder; 0 until it exists. */
static volatile sig_atomic_t vmm_pid;
/* A stop signal that arrived before there was a VMM to forward it to. */
static volatile sig_atomic_t early_signal;

static void forward_signal(int sig)
{
    pid_t pid = (pid_t)vmm_pid;
    if (pid > 0)
        kill(pid, sig);
    else
        early_signal = sig;
}

/* SIGINT, SIGTERM and SIGHUP sent to the jailer reach the VMM, which stops cleanly. */
static void install_forwarders(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = forward_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

static int wait_status(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return WISP_EXIT_HOST;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Detached copies of the disk image mounts (see mount_disks in jail_child.c). */
static int clone_disk_trees(struct jail_plan *p, struct errbuf *err)
{
    for (unsigned i = 0; i < p->nbinds; i++) {
        struct jail_bind *b = &p->binds[i];
        b->tree_fd = open_tree(b->src_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (b->tree_fd < 0)
            return HOST(err, errno, "cannot clone a mount of disk image %u: %s", i,
                        strerror(errno));
    }
    return 0;
}

/* Read the child's error report: 1 = got one, 0 = end of file (it exec'd), <0 = -errno. */
static int read_report(int fd, struct errbuf *out)
{
    size_t got = 0;
    while (got < sizeof(*out)) {
        ssize_t n = read(fd, (char *)out + got, sizeof(*out) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got == 0)
        return 0;
    if (got != sizeof(*out))
        return -EPROTO;
    out->msg[sizeof(out->msg) - 1] = '\0';
    return 1;
}

/*
 * Fork the child that becomes the VMM, as PID 1 of a new PID namespace.
 * Returns its pid with *status_fd set to the read end of the close-on-exec
 * report pipe, or -errno with `err` set (no child then).
 */
static pid_t fork_child(const struct jail_plan *p, int *status_fd, struct errbuf *err)
{
    /* Our own PID namespace, to return to once the VMM has been forked. */
    int own_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
    if (own_pidns < 0)
        return HOST(err, errno, "cannot open /proc/self/ns/pid: %s", strerror(errno));
    int st[2] = {-1, -1}, ret = 0;
    if (pipe2(st, O_CLOEXEC) < 0)
        ret = HOST(err, errno, "pipe: %s", strerror(errno));
    else if (unshare(CLONE_NEWPID) < 0)
        ret = HOST(err, errno, "unshare(CLONE_NEWPID): %s", strerror(errno));
    else if (early_signal)
        ret = HOST(err, EINTR, "stopped by signal %d before the VMM started", (int)early_signal);
    pid_t pid = -1;
    if (ret == 0) {
        /*
         * The child, and wisp after the exec, start with the stop signals
         * blocked.  As PID 1 of its namespace wisp would otherwise drop them
         * while their action is still the default, until its event loop
         * takes them over with a signalfd; blocked, they stay pending until
         * then.  Our own copies wait until vmm_pid is set, then reach the
         * forwarder.
         */
        sigset_t stops, old;
        sigemptyset(&stops);
        sigaddset(&stops, SIGINT);
        sigaddset(&stops, SIGTERM);
        sigaddset(&stops, SIGHUP);
        sigprocmask(SIG_BLOCK, &stops, &old);
        fflush(NULL);
        pid = fork();
        if (pid == 0) {
            close(st[0]);
            jail_child_run(p, st[1]);
        }
        if (pid < 0)
            ret = HOST(err, errno, "fork: %s", strerror(errno));
        else
            vmm_pid = pid;
        sigprocmask(SIG_SETMASK, &old, NULL);
    }
    /* Later children of ours (none of the jailer's, but a sanitizer's
     * helper thread at exit) must not land in the VMM's namespace, which
     * dies with it. */
    setns(own_pidns, CLONE_NEWPID);
    close(own_pidns);
    if (st[1] >= 0)
        close(st[1]);
    if (ret < 0) {
        if (st[0] >= 0)
            close(st[0]);
        return ret;
    }
    *status_fd = st[0];
    return pid;
}

/*
 * Fork the VMM into its jail.  Returns its exit status (>= 0) once it ran
 * (0 right away with --daemonize), or -errno with `err` set if it failed
 * before the exec; the child is reaped by then.
 */
static int jail_spawn(struct jail_plan *p, struct errbuf *err)
{
    int ret = clone_disk_trees(p, err);
    if (ret < 0)
        return ret;
    int status_fd;
    pid_t pid = fork_child(p, &status_fd, err);
    if (pid < 0)
        return pid;
    struct errbuf child = {0};
    ret = read_report(status_fd, &child);
    close(status_fd);
    for (unsigned i = 0; i < p->nbinds; i++)
        close_fd(&p->binds[i].tree_fd);
    if (ret != 0) {
        int status = wait_status(pid);
        if (ret > 0)
            return err_set(err, child.exit_code ? child.exit_code : WISP_EXIT_HOST, EIO, "%s",
                           child.msg);
        return HOST(err, -ret, "the jail child failed before exec (status %d)", status);
    }
    if (p->opts->daemonize) {
        printf("%d\n", (int)pid);
        fflush(stdout);
        return 0;
    }
    return wait_status(pid);
}

/* Close every inherited descriptor but stdio: none of them is meant for the VMM. */
static void close_inherited_fds(void)
{
    if (close_range(3, ~0U, 0) == 0)
        return;
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = 3; fd < (max > 0 ? max : 1024); fd++)
        close((int)fd);
}

static int jail_cleanup(const struct jail_opts *o, struct errbuf *err)
{
    const char *name = o->exec_file ? strrchr(o->exec_file, '/') + 1 : "wisp";
    /* The cgroup first: it refuses while the VM still runs. */
    int ret = jail_cgroup_cleanup(o->cgroup_root, o->id, err);
    if (ret == 0)
        ret = jail_fs_cleanup(o->chroot_base, name, o->id, err);
    if (ret == -ENOENT)
        return 0;
    return ret < 0 ? err->exit_code : 0;
}

int jail_main(int argc, char *const argv[], struct errbuf *err)
{
    struct jail_opts o;
    if (jail_args_parse(argc, argv, &o, err) < 0)
        return err->exit_code;
    if (o.help) {
        jail_args_print_help(stdout);
        return WISP_EXIT_OK;
    }
    if (geteuid() != 0) {
        HOST(err, EPERM, "wisp jail must run as root");
        return err->exit_code;
    }
    close_inherited_fds();
    if (clearenv() != 0) {
        HOST(err, ENOMEM, "cannot clear the environment");
        return err->exit_code;
    }
    if (o.cleanup)
        return jail_cleanup(&o, err);
    /* From here a stop signal must not kill us halfway: what exists gets removed. */
    install_forwarders();
    struct jail_plan *p = malloc(sizeof(*p));
    if (!p) {
        HOST(err, ENOMEM, "out of memory");
        return err->exit_code;
    }
    jail_plan_init(p, &o);
    int code;
    if (jail_prepare(p, err) < 0) {
        code = err->exit_code;
    } else {
        code = jail_spawn(p, err);
        if (code < 0) {
            jail_undo(p);
            code = err->exit_code;
        }
    }
    jail_plan_free(p);
    free(p);
    return code;
}
