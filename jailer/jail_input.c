/*
 * Jail inputs (see jail_input.h): open and check every file once, rewrite
 * the wisp run arguments to the jail's paths, and list the device nodes.
 * Nothing here creates anything, so a refusal leaves nothing behind.
 */
#include "jailer/jail_input.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "vmm/cli.h"
#include "jailer/jail_args.h"
#include "jailer/jail_elf.h"

#define USAGE(err, e, ...) err_set((err), WISP_EXIT_USAGE, (e), "jail: " __VA_ARGS__)
#define HOST(err, e, ...)  err_set((err), WISP_EXIT_HOST, (e), "jail: " __VA_ARGS__)

/* Fixed misc-device numbers (major 10; Linux include/linux/miscdevice.h). */
#define MISC_MAJOR 10
#define KVM_MINOR  232
#define TUN_MINOR  200

/* Errors that mean "the operator named something unusable", not a host fault. */
static bool is_input_errno(int e)
{
    return e == ENOENT || e == ENOTDIR || e == ELOOP || e == ENAMETOOLONG;
}

/*
 * The checks both inputs share: a normalized absolute path whose last
 * component is not a symbolic link, of the wanted type (`want_sock`: a UNIX
 * socket, else a regular file), with one link.  Fills *ls.
 */
static int lstat_checked(const char *path, bool want_sock, const char *what, struct stat *ls,
                         struct errbuf *err)
{
    if (!jail_args_path_ok(path))
        return USAGE(err, EINVAL, "%s must be a normalized absolute path, not '%s'", what, path);
    if (lstat(path, ls) < 0) {
        int e = errno;
        if (is_input_errno(e))
            return USAGE(err, e, "%s %s: %s", what, path, strerror(e));
        return HOST(err, e, "%s %s: %s", what, path, strerror(e));
    }
    if (S_ISLNK(ls->st_mode))
        return USAGE(err, ELOOP, "%s %s is a symbolic link (refused)", what, path);
    if (want_sock && !S_ISSOCK(ls->st_mode))
        return USAGE(err, EINVAL, "%s %s is not a UNIX socket (is its backend running?)", what,
                     path);
    if (!want_sock && !S_ISREG(ls->st_mode))
        return USAGE(err, EINVAL, "%s %s is not a regular file", what, path);
    if (ls->st_nlink != 1)
        return USAGE(err, EMLINK, "%s %s has %lu hard links (refused: it may alias another file)",
                     what, path, (unsigned long)ls->st_nlink);
    return 0;
}

/* The descriptor is what counts from here on: it must be what lstat saw. */
static int same_file(int fd, const struct stat *ls, const char *what, const char *path,
                     struct errbuf *err)
{
    struct stat fs;
    if (fstat(fd, &fs) < 0 || fs.st_dev != ls->st_dev || fs.st_ino != ls->st_ino ||
        (fs.st_mode & S_IFMT) != (ls->st_mode & S_IFMT) || fs.st_nlink != 1) {
        close(fd);
        return USAGE(err, EAGAIN, "%s %s changed while it was being checked", what, path);
    }
    return fd;
}

int jail_input_open(const char *path, bool path_only, const char *what, struct errbuf *err)
{
    struct stat ls;
    int ret = lstat_checked(path, false, what, &ls, err);
    if (ret < 0)
        return ret;
    int fd = open(path, (path_only ? O_PATH : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        if (is_input_errno(e))
            return USAGE(err, e, "%s %s: %s", what, path, strerror(e));
        return HOST(err, e, "cannot open %s %s: %s", what, path, strerror(e));
    }
    return same_file(fd, &ls, what, path, err);
}

int jail_input_open_socket(const char *path, const char *what, struct errbuf *err)
{
    struct stat ls;
    int ret = lstat_checked(path, true, what, &ls, err);
    if (ret < 0)
        return ret;
    int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return HOST(err, errno, "cannot open %s %s: %s", what, path, strerror(errno));
    return same_file(fd, &ls, what, path, err);
}

static int add_file(struct jail_plan *p, int fd, const char *dst, mode_t mode, struct errbuf *err)
{
    if (p->nfiles >= JAIL_MAX_FILES) {
        close(fd);
        return HOST(err, E2BIG, "more than %d files to copy", JAIL_MAX_FILES);
    }
    struct jail_file *f = &p->files[p->nfiles++];
    f->src_fd = fd;
    snprintf(f->dst, sizeof(f->dst), "%s", dst);
    f->mode = mode;
    return 0;
}

static bool exec_name_ok(const char *name)
{
    size_t n = strlen(name);
    return n >= 1 && n <= JAIL_NAME_MAX &&
           strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* files[0] = the binary, then the libraries its loader needs. */
static int plan_exec(struct jail_plan *p, struct errbuf *err)
{
    const char *exe = p->opts->exec_file;
    int fd;
    if (exe) {
        fd = jail_input_open(exe, false, "--exec-file", err);
        if (fd < 0)
            return fd;
        const char *name = strrchr(exe, '/') + 1; /* absolute: checked by jail_input_open */
        if (!exec_name_ok(name)) {
            close(fd);
            return USAGE(err, EINVAL, "--exec-file name '%s' must be 1-%d of [A-Za-z0-9._-]", name,
                         JAIL_NAME_MAX);
        }
        snprintf(p->exec_name, sizeof(p->exec_name), "%s", name);
    } else {
        /* The running binary itself, by the kernel's reference rather than a
         * path that could have been replaced since we started. */
        fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            return HOST(err, e, "cannot open /proc/self/exe: %s", strerror(e));
        }
        snprintf(p->exec_name, sizeof(p->exec_name), "wisp");
    }
    /* Execute-only: the kernel marks a process non-dumpable when it execs a
     * file it cannot read, which survives execve where PR_SET_DUMPABLE does not. */
    int ret = add_file(p, fd, "wisp", 0511, err);
    if (ret < 0)
        return ret;
    struct jail_elf_libs libs;
    ret = jail_elf_resolve(fd, &libs, err);
    for (unsigned i = 0; ret == 0 && i < libs.n; i++) {
        ret = add_file(p, libs.libs[i].fd, libs.libs[i].path + 1, 0555, err);
        libs.libs[i].fd = -1; /* owned by the plan now, or closed by add_file */
    }
    jail_elf_libs_close(&libs);
    return ret;
}

static int push_arg(struct jail_plan *p, const char *s, struct errbuf *err)
{
    char *copy = strdup(s);
    if (!copy)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "jail: out of memory");
    p->exec_argv[p->exec_argc++] = copy;
    return 0;
}

/* Reserve the next bind mount for `fd` at /<prefix>N; its jail path goes to `dst`. */
static int add_bind(struct jail_plan *p, int fd, const char *prefix, char *dst, size_t dst_size,
                    struct errbuf *err)
{
    if (p->nbinds >= CONFIG_MAX_DEVICES) {
        close(fd);
        return USAGE(err, E2BIG, "at most %d bind-mounted disk images and sockets",
                     CONFIG_MAX_DEVICES);
    }
    struct jail_bind *b = &p->binds[p->nbinds];
    b->src_fd = fd;
    b->tree_fd = -1;
    b->readonly = false;
    snprintf(b->dst, sizeof(b->dst), "%s%u", prefix, p->nbinds);
    snprintf(dst, dst_size, "/%s", b->dst);
    p->nbinds++;
    return 0;
}

/* `blk,...,path=HOST,...` -> `blk,...,path=/diskN,...`; `vhost-user=SOCK` (blk, net, fs)
 * -> `vhost-user=/vhost-userN`; notes net devices with a tap (need tun) and
 * vsock,backend=vhost (needs /dev/vhost-vsock). */
static int rewrite_device(struct jail_plan *p, const char *spec, bool *need_tun, char **out,
                          struct errbuf *err)
{
    size_t cap = strlen(spec) + 32;
    char *copy = strdup(spec), *res = calloc(1, cap);
    int ret = 0;
    if (!copy || !res) {
        ret = err_set(err, WISP_EXIT_FAILURE, ENOMEM, "jail: out of memory");
        goto out;
    }
    char *save = NULL, *tok = strtok_r(copy, ",", &save);
    bool is_blk = tok && !strcmp(tok, "blk"), readonly = false;
    bool is_net = tok && !strcmp(tok, "net"), tap = false;
    bool vhu_ok = is_blk || is_net || (tok && !strcmp(tok, "fs"));
    bool is_vsock = tok && !strcmp(tok, "vsock");
    int bind = -1, vhu = -1;
    for (; tok; tok = strtok_r(NULL, ",", &save)) {
        size_t used = strlen(res);
        const char *sep = used ? "," : "";
        char dst[JAIL_PATH_MAX + 1];
        if (is_vsock && !strcmp(tok, "backend=vhost"))
            p->vhost_vsock = true; /* plan_nodes() adds /dev/vhost-vsock */
        if (is_net && !strncmp(tok, "tap=", 4))
            tap = true;
        if (is_blk && !strncmp(tok, "path=", 5)) {
            if (bind >= 0) {
                ret = USAGE(err, EINVAL, "blk path= is given twice in '%s'", spec);
                goto out;
            }
            int fd = jail_input_open(tok + 5, true, "blk path=", err);
            ret = fd < 0 ? fd : add_bind(p, fd, "disk", dst, sizeof(dst), err);
            if (ret < 0)
                goto out;
            bind = (int)p->nbinds - 1;
            snprintf(res + used, cap - used, "%spath=%s", sep, dst);
            continue;
        }
        if (vhu_ok && !strncmp(tok, "vhost-user=", 11)) {
            if (vhu >= 0) {
                ret = USAGE(err, EINVAL, "vhost-user= is given twice in '%s'", spec);
                goto out;
            }
            int fd = jail_input_open_socket(tok + 11, "vhost-user=", err);
            ret = fd < 0 ? fd : add_bind(p, fd, "vhost-user", dst, sizeof(dst), err);
            if (ret < 0)
                goto out;
            vhu = (int)p->nbinds - 1;
            snprintf(res + used, cap - used, "%svhost-user=%s", sep, dst);
            continue;
        }
        if (is_blk && !strncmp(tok, "readonly=", 9))
            readonly =
                !strcmp(tok + 9, "on") || !strcmp(tok + 9, "true") || !strcmp(tok + 9, "yes");
        snprintf(res + used, cap - used, "%s%s", sep, tok);
    }
    if (bind >= 0)
        p->binds[bind].readonly = readonly;
    if (tap)
        *need_tun = true; /* a net device on a vhost-user backend needs no tap */
out:
    free(copy);
    if (ret < 0) {
        free(res);
        return ret;
    }
    *out = res;
    return 0;
}

/* Check the rewritten vector with wisp's own parser, so errors show before the jail exists. */
static int check_run_args(struct jail_plan *p, struct errbuf *err)
{
    struct vm_config cfg;
    struct errbuf e = {0};
    enum cli_action action = CLI_RUN;
    config_init(&cfg);
    int ret = cli_parse(p->exec_argc, p->exec_argv, &cfg, &action, &e);
    if (ret == 0 && action != CLI_RUN)
        ret = err_set(&e, WISP_EXIT_USAGE, EINVAL, "the arguments must describe a VM");
    if (ret == 0)
        ret = config_validate(&cfg, &e);
    config_free(&cfg);
    if (ret < 0)
        return err_set(err, e.exit_code ? e.exit_code : WISP_EXIT_USAGE, -ret, "jail: wisp run: %s",
                       e.msg);
    return 0;
}

static int rewrite_one(struct jail_plan *p, const char *key, const char *tok, const char *value,
                       bool *seen, bool *need_tun, struct errbuf *err)
{
    if (!strcmp(key, "kernel") || !strcmp(key, "initrd")) {
        bool kernel = key[0] == 'k';
        const char *what = kernel ? "--kernel" : "--initrd";
        if (seen[!kernel])
            return USAGE(err, EINVAL, "%s is given twice", what);
        seen[!kernel] = true;
        int fd = jail_input_open(value, false, what, err);
        if (fd < 0)
            return fd;
        int ret = add_file(p, fd, key, 0444, err);
        if (ret == 0)
            ret = push_arg(p, what, err);
        if (ret < 0)
            return ret;
        char path[sizeof("/initrd")];
        snprintf(path, sizeof(path), "/%s", kernel ? "kernel" : "initrd");
        return push_arg(p, path, err);
    }
    if (!strcmp(key, "device")) {
        char *spec;
        int ret = rewrite_device(p, value, need_tun, &spec, err);
        if (ret < 0)
            return ret;
        ret = push_arg(p, "--device", err);
        if (ret == 0)
            ret = push_arg(p, spec, err);
        free(spec);
        return ret;
    }
    char opt[72];
    snprintf(opt, sizeof(opt), "--%s", key);
    int ret = push_arg(p, value ? opt : tok, err);
    return ret < 0 || !value ? ret : push_arg(p, value, err);
}

static int plan_run_args(struct jail_plan *p, bool *need_tun, struct errbuf *err)
{
    const struct jail_opts *o = p->opts;
    p->exec_argv = calloc((size_t)o->run_argc * 2 + 3, sizeof(char *));
    if (!p->exec_argv)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "jail: out of memory");
    int ret = push_arg(p, "wisp", err);
    if (ret == 0)
        ret = push_arg(p, "run", err);
    bool seen[2] = {false, false};
    for (int i = 0; ret == 0 && i < o->run_argc; i++) {
        const char *tok = o->run_argv[i];
        const char *eq = strchr(tok, '=');
        size_t klen = eq ? (size_t)(eq - tok - 2) : strlen(tok) - 2;
        char key[64];
        /* Anything that is not a known option goes through untouched: wisp's
         * parser (check_run_args) then reports it exactly as `wisp run` would. */
        if (strncmp(tok, "--", 2) != 0 || strlen(tok) < 3 || klen >= sizeof(key)) {
            ret = push_arg(p, tok, err);
            continue;
        }
        memcpy(key, tok + 2, klen);
        key[klen] = '\0';
        if (!strcmp(key, "config"))
            return USAGE(err, EINVAL,
                         "--config is not accepted under wisp jail: give the options on the "
                         "command line, so every file is checked");
        bool flag = config_key_is_flag(key);
        if (!config_key_known(key) || (!eq && !flag && i + 1 >= o->run_argc)) {
            ret = push_arg(p, tok, err);
            continue;
        }
        const char *value = eq ? eq + 1 : flag ? NULL : o->run_argv[++i];
        ret = rewrite_one(p, key, tok, value, seen, need_tun, err);
    }
    return ret < 0 ? ret : check_run_args(p, err);
}

static int add_node(struct jail_plan *p, const char *dst, dev_t rdev)
{
    if (p->nnodes >= JAIL_MAX_NODES)
        return -E2BIG;
    struct jail_node *n = &p->nodes[p->nnodes++];
    snprintf(n->dst, sizeof(n->dst), "%s", dst);
    n->rdev = rdev;
    return 0;
}

/* Device numbers of a host node whose major is dynamic (vfio groups, vhost-vdpa). */
static int add_host_node(struct jail_plan *p, const char *host, struct errbuf *err)
{
    struct stat st;
    if (lstat(host, &st) < 0)
        return HOST(err, errno, "device %s: %s", host, strerror(errno));
    if (!S_ISCHR(st.st_mode))
        return HOST(err, ENODEV, "device %s is not a character device", host);
    return add_node(p, host + 1, st.st_rdev) < 0 ? HOST(err, E2BIG, "too many device nodes") : 0;
}

static int plan_nodes(struct jail_plan *p, bool need_tun, struct errbuf *err)
{
    const struct jail_opts *o = p->opts;
    int ret = add_node(p, "dev/kvm", makedev(MISC_MAJOR, KVM_MINOR));
    for (unsigned i = 0; i < o->ndevs; i++)
        need_tun |= o->devs[i].type == JAIL_DEV_TUN;
    if (ret == 0 && need_tun)
        ret = add_node(p, "dev/net/tun", makedev(MISC_MAJOR, TUN_MINOR));
    if (ret < 0)
        return HOST(err, E2BIG, "too many device nodes");
    /* Only a VM with a vsock,backend=vhost device sees /dev/vhost-vsock. */
    if (p->vhost_vsock)
        ret = add_host_node(p, "/dev/vhost-vsock", err);
    bool vfio_container = false;
    for (unsigned i = 0; ret == 0 && i < o->ndevs; i++) {
        char host[64];
        const struct jail_dev_req *d = &o->devs[i];
        if (d->type == JAIL_DEV_VFIO) {
            if (!vfio_container) {
                ret = add_host_node(p, "/dev/vfio/vfio", err);
                vfio_container = true;
            }
            snprintf(host, sizeof(host), "/dev/vfio/%u", d->num);
        } else if (d->type == JAIL_DEV_VHOST_VDPA) {
            snprintf(host, sizeof(host), "/dev/vhost-vdpa-%u", d->num);
        } else {
            continue;
        }
        if (ret == 0)
            ret = add_host_node(p, host, err);
    }
    return ret;
}

static int plan_netns(struct jail_plan *p, struct errbuf *err)
{
    const char *path = p->opts->netns;
    if (!path)
        return 0;
    p->netns_fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (p->netns_fd < 0)
        return USAGE(err, errno, "--netns %s: %s", path, strerror(errno));
    struct statfs sf;
    if (fstatfs(p->netns_fd, &sf) < 0 || sf.f_type != NSFS_MAGIC ||
        ioctl(p->netns_fd, NS_GET_NSTYPE) != CLONE_NEWNET)
        return USAGE(err, EINVAL, "--netns %s is not a network namespace", path);
    return 0;
}

int jail_input_plan(struct jail_plan *p, struct errbuf *err)
{
    bool need_tun = false;
    int ret = plan_exec(p, err);
    if (ret == 0)
        ret = plan_run_args(p, &need_tun, err);
    /* The VMM has no CAP_NET_ADMIN to create a tap, and a new network
     * namespace holds none: the tap must wait in the namespace it joins. */
    if (ret == 0 && need_tun && !p->opts->netns)
        ret = USAGE(err, EINVAL,
                    "a net device needs --netns PATH: the namespace holding its tap, owned by "
                    "--uid");
    if (ret == 0)
        ret = plan_nodes(p, need_tun, err);
    if (ret == 0)
        ret = plan_netns(p, err);
    if (ret == 0 && p->opts->daemonize) {
        p->devnull_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (p->devnull_fd < 0)
            ret = HOST(err, errno, "cannot open /dev/null: %s", strerror(errno));
    }
    return ret;
}
