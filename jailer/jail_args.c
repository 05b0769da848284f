/*
 * `wisp jail` option parsing (see jail_args.h).  Every value is checked
 * here for shape, so the later steps only deal with well-formed input and a
 * typo fails before anything exists on disk.
 */
#include "jailer/jail_args.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define USAGE(err, ...) err_set((err), WISP_EXIT_USAGE, EINVAL, "jail: " __VA_ARGS__)

void jail_args_print_help(FILE *f)
{
    fprintf(f,
            "Usage: wisp jail --id ID --uid UID --gid GID [options] -- WISP-RUN-ARGS...\n"
            "       wisp jail --cleanup --id ID [--chroot-base DIR] [--exec-file PATH]\n"
            "\n"
            "Run `wisp run WISP-RUN-ARGS` as UID:GID, chrooted in\n"
            "DIR/<exec-name>/ID/root, in new PID, mount, network, IPC, UTS and\n"
            "cgroup namespaces, with no capabilities and no_new_privs (run as root).\n"
            "See docs/JAILER.md.\n"
            "\n"
            "  --id ID              1-64 letters, digits or '-'; names the jail and cgroup\n"
            "  --uid UID, --gid GID numeric ids the VMM runs as (0 is refused)\n"
            "  --chroot-base DIR    default " JAIL_DEFAULT_BASE "\n"
            "  --exec-file PATH     the wisp binary to copy in (default: this one)\n"
            "  --netns PATH         join this network namespace (default: a new, empty one)\n"
            "  --new-netns          a new, empty network namespace (the default)\n"
            "  --cgroup KEY=VALUE   cgroup v2 limit, repeatable: cpu.max, cpu.weight,\n"
            "                       memory.max, memory.high, memory.swap.max, pids.max,\n"
            "                       hugetlb.2MB.max, hugetlb.1GB.max\n"
            "  --rlimit no-file=N   open files (default %d, at least %d)\n"
            "  --rlimit fsize=SIZE  largest file the VMM may write (e.g. 64M)\n"
            "  --device DEV         device node: kvm (always), tun (added for net devices),\n"
            "                       vfio:GROUP, vhost-vdpa:N; repeatable\n"
            "  --daemonize          new session, stdio on /dev/null; print the VMM's pid\n"
            "                       and exit once it runs\n"
            "  --cleanup            remove the jail directory and cgroup of a finished VM\n"
            "\n"
            "WISP-RUN-ARGS: --kernel and --initrd files are copied into the jail, and\n"
            "blk path= images are bind-mounted; all must be absolute paths to regular\n"
            "files with exactly one link.  vhost-user= sockets (blk, net, fs) are\n"
            "bind-mounted too (a UNIX socket with one link).  Other paths (--serial\n"
            "file:, console socket=) are inside the jail.  --config is not accepted.\n"
            "\n"
            "Exit status: the VMM's, or 2 (bad input), 3 (host problem).\n",
            JAIL_DEFAULT_NOFILE, JAIL_MIN_NOFILE);
}

bool jail_args_id_valid(const char *id, size_t len)
{
    if (!id || len == 0 || len > JAIL_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool jail_args_path_ok(const char *path)
{
    size_t len = path ? strlen(path) : 0;
    if (len < 2 || len >= JAIL_HOST_PATH_MAX || path[0] != '/' || path[len - 1] == '/')
        return false;
    /* Walk the components after each '/'. */
    for (const char *c = path + 1; c && *c;) {
        const char *slash = strchr(c, '/');
        size_t n = slash ? (size_t)(slash - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        c = slash ? slash + 1 : NULL;
    }
    return true;
}

static const char *const cgroup_keys[] = {
    "cpu.max",         "cpu.weight", "memory.max",      "memory.high",
    "memory.swap.max", "pids.max",   "hugetlb.2MB.max", "hugetlb.1GB.max",
};

bool jail_args_cgroup_key_ok(const char *key)
{
    for (size_t i = 0; i < ARRAY_SIZE(cgroup_keys); i++)
        if (!strcmp(key, cgroup_keys[i]))
            return true;
    return false;
}

/* A decimal id: digits only, 1 .. 2^32 - 2 (-1 means "unchanged" to setresuid). */
static int parse_id_number(const char *s, const char *what, uint32_t *out, struct errbuf *err)
{
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n != strlen(s) || n > 10)
        return USAGE(err, "--%s must be a number, not '%s'", what, s);
    unsigned long long v = strtoull(s, NULL, 10);
    if (v == 0)
        return USAGE(err, "--%s 0 is refused: the VMM must not run as root", what);
    if (v >= UINT32_MAX)
        return USAGE(err, "--%s %s is out of range", what, s);
    *out = (uint32_t)v;
    return 0;
}

static int parse_cgroup(struct jail_opts *o, const char *kv, struct errbuf *err)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return USAGE(err, "--cgroup needs KEY=VALUE, not '%s'", kv);
    size_t klen = (size_t)(eq - kv);
    struct jail_cgroup_setting *s = &o->cgroups[o->ncgroups];
    if (klen >= sizeof(s->key))
        return USAGE(err, "unknown cgroup key in '%s'", kv);
    char key[sizeof(s->key)];
    memcpy(key, kv, klen);
    key[klen] = '\0';
    if (!jail_args_cgroup_key_ok(key))
        return USAGE(err, "cgroup key '%s' is not allowed (see wisp jail --help)", key);
    const char *val = eq + 1;
    size_t vlen = strlen(val);
    /* Values are numbers, "max" or "QUOTA PERIOD": nothing that could be a path or a
     * second line. */
    if (vlen == 0 || vlen >= sizeof(s->value) ||
        strspn(val, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .") != vlen)
        return USAGE(err, "cgroup value for %s must be 1-%zu letters, digits, spaces or dots", key,
                     sizeof(s->value) - 1);
    for (unsigned i = 0; i < o->ncgroups; i++)
        if (!strcmp(o->cgroups[i].key, key))
            return USAGE(err, "cgroup key '%s' is given twice", key);
    if (o->ncgroups >= JAIL_MAX_CGROUPS)
        return USAGE(err, "at most %d --cgroup settings", JAIL_MAX_CGROUPS);
    memcpy(s->key, key, klen + 1);
    memcpy(s->value, val, vlen + 1);
    o->ncgroups++;
    return 0;
}

static int parse_rlimit(struct jail_opts *o, const char *kv, bool *seen_nofile, struct errbuf *err)
{
    if (!strncmp(kv, "no-file=", 8)) {
        const char *v = kv + 8;
        size_t n = strspn(v, "0123456789");
        if (n == 0 || n != strlen(v) || n > 9)
            return USAGE(err, "--rlimit no-file needs a number, not '%s'", v);
        unsigned long val = strtoul(v, NULL, 10);
        if (val < JAIL_MIN_NOFILE || val > JAIL_MAX_NOFILE)
            return USAGE(err,
                         "--rlimit no-file=%lu is outside %d..%u: wisp needs descriptors for "
                         "its libraries, KVM and devices",
                         val, JAIL_MIN_NOFILE, JAIL_MAX_NOFILE);
        if (*seen_nofile)
            return USAGE(err, "--rlimit no-file is given twice");
        *seen_nofile = true;
        o->nofile = val;
        return 0;
    }
    if (!strncmp(kv, "fsize=", 6)) {
        uint64_t v;
        if (config_parse_size(kv + 6, &v) < 0 || v == 0)
            return USAGE(err, "--rlimit fsize needs a size like 1048576 or 64M, not '%s'", kv + 6);
        if (o->has_fsize)
            return USAGE(err, "--rlimit fsize is given twice");
        o->has_fsize = true;
        o->fsize = v;
        return 0;
    }
    return USAGE(err, "--rlimit takes no-file=N or fsize=SIZE, not '%s'", kv);
}

/* "N" for vfio:N and vhost-vdpa:N: a decimal below one million. */
static int parse_dev_number(const char *s, unsigned *out)
{
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n != strlen(s) || n > 6)
        return -EINVAL;
    *out = (unsigned)strtoul(s, NULL, 10);
    return 0;
}

static int parse_device(struct jail_opts *o, const char *v, struct errbuf *err)
{
    struct jail_dev_req d = {0};
    if (!strcmp(v, "kvm")) {
        d.type = JAIL_DEV_KVM;
    } else if (!strcmp(v, "tun")) {
        d.type = JAIL_DEV_TUN;
    } else if (!strncmp(v, "vfio:", 5) && parse_dev_number(v + 5, &d.num) == 0) {
        d.type = JAIL_DEV_VFIO;
    } else if (!strncmp(v, "vhost-vdpa:", 11) && parse_dev_number(v + 11, &d.num) == 0) {
        d.type = JAIL_DEV_VHOST_VDPA;
    } else {
        return USAGE(err, "--device must be kvm, tun, vfio:GROUP or vhost-vdpa:N, not '%s'", v);
    }
    for (unsigned i = 0; i < o->ndevs; i++)
        if (o->devs[i].type == d.type && o->devs[i].num == d.num)
            return USAGE(err, "--device %s is given twice", v);
    if (o->ndevs >= JAIL_MAX_DEVS)
        return USAGE(err, "at most %d --device options", JAIL_MAX_DEVS);
    o->devs[o->ndevs++] = d;
    return 0;
}

/* Options that take no value. */
static bool is_switch(const char *name)
{
    return !strcmp(name, "new-netns") || !strcmp(name, "daemonize") || !strcmp(name, "cleanup");
}

static int apply(struct jail_opts *o, const char *name, const char *val, bool *seen_nofile,
                 bool *seen_new_netns, struct errbuf *err)
{
    if (!strcmp(name, "id")) {
        if (!jail_args_id_valid(val, strlen(val)))
            return USAGE(err, "--id must be 1-%d letters, digits or '-', not '%s'", JAIL_ID_MAX,
                         val);
        if (o->id[0])
            return USAGE(err, "--id is given twice");
        memcpy(o->id, val, strlen(val) + 1);
        return 0;
    }
    if (!strcmp(name, "uid") || !strcmp(name, "gid")) {
        uint32_t *dst = name[0] == 'u' ? &o->uid : &o->gid;
        if (*dst)
            return USAGE(err, "--%s is given twice", name);
        return parse_id_number(val, name, dst, err);
    }
    if (!strcmp(name, "chroot-base") || !strcmp(name, "exec-file") || !strcmp(name, "netns")) {
        const char **dst = name[0] == 'c'   ? &o->chroot_base
                           : name[0] == 'e' ? &o->exec_file
                                            : &o->netns;
        if (!jail_args_path_ok(val))
            return USAGE(err, "--%s must be a normalized absolute path, not '%s'", name, val);
        if (*dst)
            return USAGE(err, "--%s is given twice", name);
        *dst = val;
        return 0;
    }
    if (!strcmp(name, "cgroup"))
        return parse_cgroup(o, val, err);
    if (!strcmp(name, "rlimit"))
        return parse_rlimit(o, val, seen_nofile, err);
    if (!strcmp(name, "device"))
        return parse_device(o, val, err);
    if (!strcmp(name, "new-netns"))
        *seen_new_netns = true;
    else if (!strcmp(name, "daemonize"))
        o->daemonize = true;
    else if (!strcmp(name, "cleanup"))
        o->cleanup = true;
    else
        return USAGE(err, "unknown option '--%s' (see wisp jail --help)", name);
    return 0;
}

/* Cross-option rules, once everything is parsed. */
static int check_combination(struct jail_opts *o, bool seen_new_netns, bool have_sep,
                             struct errbuf *err)
{
    if (!o->id[0])
        return USAGE(err, "--id is required");
    if (o->cleanup) {
        if (o->run_argc > 0 || o->daemonize || o->ncgroups || o->ndevs || o->netns || o->uid ||
            o->gid)
            return USAGE(err, "--cleanup takes only --id, --chroot-base and --exec-file");
        return 0;
    }
    if (!o->uid || !o->gid)
        return USAGE(err, "--uid and --gid are required");
    if (o->netns && seen_new_netns)
        return USAGE(err, "--netns and --new-netns exclude each other");
    if (!have_sep || o->run_argc == 0)
        return USAGE(err, "missing '-- WISP-RUN-ARGS' (e.g. -- --kernel /path/vmlinux)");
    return 0;
}

int jail_args_parse(int argc, char *const argv[], struct jail_opts *o, struct errbuf *err)
{
    memset(o, 0, sizeof(*o));
    o->nofile = JAIL_DEFAULT_NOFILE;
    bool seen_nofile = false, seen_new_netns = false, have_sep = false;
    int i = 2;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--")) {
            have_sep = true;
            i++;
            break;
        }
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            o->help = true;
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0)
            return USAGE(err, "unexpected argument '%s' (WISP-RUN-ARGS go after '--')", arg);
        char name[32];
        const char *eq = strchr(arg + 2, '=');
        size_t nlen = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        if (nlen == 0 || nlen >= sizeof(name))
            return USAGE(err, "unknown option '%s'", arg);
        memcpy(name, arg + 2, nlen);
        name[nlen] = '\0';
        const char *val = NULL;
        if (eq) {
            if (is_switch(name))
                return USAGE(err, "option '--%s' takes no value", name);
            val = eq + 1;
        } else if (!is_switch(name)) {
            if (i + 1 >= argc)
                return USAGE(err, "option '--%s' needs a value", name);
            val = argv[++i];
        }
        int ret = apply(o, name, val, &seen_nofile, &seen_new_netns, err);
        if (ret < 0)
            return ret;
    }
    if (!o->chroot_base)
        o->chroot_base = JAIL_DEFAULT_BASE;
    if (have_sep && i < argc && !strcmp(argv[i], "run"))
        i++;
    o->run_argc = have_sep ? argc - i : 0;
    o->run_argv = have_sep ? argv + i : NULL;
    return check_combination(o, seen_new_netns, have_sep, err);
}
