/*
 * cgroup v2 group of a jail (see jail_cgroup.h).  Limits must hold from the
 * VMM's first instruction, so the group is complete before anyone joins.
 */
#include "jailer/jail_cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define USAGE(err, e, ...) err_set((err), WISP_EXIT_USAGE, (e), "jail: " __VA_ARGS__)
#define HOST(err, e, ...)  err_set((err), WISP_EXIT_HOST, (e), "jail: " __VA_ARGS__)

#define PARENT "wisp"

/* Copy a mountinfo path field (ends at a space), decoding \ooo escapes. */
static int unescape_field(const char *s, char *out, size_t outlen)
{
    size_t n = 0;
    while (*s && *s != ' ' && *s != '\n') {
        char c = *s++;
        if (c == '\\' && s[0] >= '0' && s[0] <= '3' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' &&
            s[2] <= '7') {
            c = (char)((s[0] - '0') * 64 + (s[1] - '0') * 8 + (s[2] - '0'));
            s += 3;
        }
        if (n + 1 >= outlen)
            return -ENAMETOOLONG;
        out[n++] = c;
    }
    out[n] = '\0';
    return 0;
}

/* Start of field `idx` (0-based, space-separated) in the line at `s`, or NULL. */
static const char *field(const char *s, unsigned idx)
{
    for (; idx > 0; idx--) {
        s = strpbrk(s, " \n");
        if (!s || *s == '\n')
            return NULL;
        s++;
    }
    return s;
}

int jail_cgroup_find_mount(const char *mountinfo, char *out, size_t outlen)
{
    for (const char *line = mountinfo; line && *line;) {
        const char *next = strchr(line, '\n');
        /* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER" */
        const char *sep = strstr(line, " - ");
        const char *root = field(line, 3), *mnt = field(line, 4);
        if (sep && (!next || sep < next) && root && mnt && !strncmp(sep + 3, "cgroup2 ", 8) &&
            !strncmp(root, "/ ", 2))
            return unescape_field(mnt, out, outlen);
        line = next ? next + 1 : NULL;
    }
    return -ENOENT;
}

static char *read_small(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = calloc(1, 4096);
    ssize_t n = buf ? read(fd, buf, 4095) : -1;
    close(fd);
    if (n < 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Is word `w` in the space-separated list `list`? */
static bool has_word(const char *list, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = list; (p = strstr(p, w)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

/* Write `s` to `name` in `dirfd` with exactly one write(). */
static int write_once(int dirfd, const char *name, const char *s)
{
    int fd = openat(dirfd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, s, strlen(s));
    int e = n < 0 ? errno : n != (ssize_t)strlen(s) ? EIO : 0;
    close(fd);
    return -e;
}

static void controller_of(const char *key, char *out, size_t len)
{
    size_t n = strcspn(key, ".");
    snprintf(out, len, "%.*s", (int)MIN(n, len - 1), key);
}

/* Make every controller the limits need available to children of `dirfd`. */
static int enable_controllers(const struct jail_opts *o, int dirfd, const char *where,
                              struct errbuf *err)
{
    char *have = read_small(dirfd, "cgroup.subtree_control");
    if (!have)
        return HOST(err, errno, "cannot read %s/cgroup.subtree_control: %s", where,
                    strerror(errno));
    int ret = 0;
    for (unsigned i = 0; ret == 0 && i < o->ncgroups; i++) {
        char ctl[24], cmd[32];
        controller_of(o->cgroups[i].key, ctl, sizeof(ctl));
        if (has_word(have, ctl))
            continue;
        snprintf(cmd, sizeof(cmd), "+%s", ctl);
        ret = write_once(dirfd, "cgroup.subtree_control", cmd);
        if (ret < 0)
            ret = HOST(err, -ret, "cannot enable the %s controller in %s: %s", ctl, where,
                       strerror(-ret));
    }
    free(have);
    return ret;
}

static int find_root(const struct jail_opts *o, char *out, size_t len, struct errbuf *err)
{
    if (o->cgroup_root) {
        snprintf(out, len, "%s", o->cgroup_root);
        return 0;
    }
    int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return HOST(err, errno, "cannot read /proc/self/mountinfo: %s", strerror(errno));
    size_t cap = 1 << 20, got = 0;
    char *buf = malloc(cap);
    ssize_t n = 1;
    while (buf && got + 1 < cap && (n = read(fd, buf + got, cap - 1 - got)) > 0)
        got += (size_t)n;
    close(fd);
    int ret = -ENOMEM;
    if (buf) {
        buf[got] = '\0';
        ret = jail_cgroup_find_mount(buf, out, len);
        free(buf);
    }
    if (ret < 0)
        return HOST(err, -ret, "cgroup v2 is not mounted (needed for --cgroup)");
    return 0;
}

/* The root must be a writable cgroup v2 with every controller the keys need. */
static int check_root(const struct jail_opts *o, int rootfd, const char *root, struct errbuf *err)
{
    struct statvfs sv;
    if (fstatvfs(rootfd, &sv) < 0 || (sv.f_flag & ST_RDONLY))
        return HOST(err, EROFS, "cgroup v2 at %s is not writable", root);
    char *avail = read_small(rootfd, "cgroup.controllers");
    if (!avail)
        return HOST(err, errno, "%s is not a cgroup v2 hierarchy (no cgroup.controllers)", root);
    avail[strcspn(avail, "\n")] = '\0';
    int ret = 0;
    for (unsigned i = 0; ret == 0 && i < o->ncgroups; i++) {
        char ctl[24];
        controller_of(o->cgroups[i].key, ctl, sizeof(ctl));
        if (!has_word(avail, ctl))
            ret = HOST(err, ENOTSUP,
                       "cgroup v2 controller '%s' is not available at %s (available: %s)", ctl,
                       root, avail[0] ? avail : "none");
    }
    free(avail);
    return ret;
}

static int create_group(struct jail_plan *p, int rootfd, struct errbuf *err)
{
    const struct jail_opts *o = p->opts;
    int ret = enable_controllers(o, rootfd, p->cg_root, err);
    if (ret < 0)
        return ret;
    if (mkdirat(rootfd, PARENT, 0755) < 0 && errno != EEXIST)
        return HOST(err, errno, "cannot create %s/" PARENT ": %s", p->cg_root, strerror(errno));
    int pfd = openat(rootfd, PARENT, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (pfd < 0)
        return HOST(err, errno, "cannot open %s/" PARENT ": %s", p->cg_root, strerror(errno));
    char where[sizeof(p->cg_root) + 8];
    snprintf(where, sizeof(where), "%s/" PARENT, p->cg_root);
    ret = enable_controllers(o, pfd, where, err);
    if (ret == 0 && mkdirat(pfd, o->id, 0755) < 0)
        ret = errno == EEXIST
                  ? USAGE(err, EEXIST,
                          "cgroup %s already exists (remove it with wisp jail "
                          "--cleanup --id %s)",
                          p->cg_path, o->id)
                  : HOST(err, errno, "cannot create cgroup %s: %s", p->cg_path, strerror(errno));
    if (ret == 0)
        p->created_cg = true;
    int gfd = ret == 0 ? openat(pfd, o->id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
    if (ret == 0 && gfd < 0)
        ret = HOST(err, errno, "cannot open cgroup %s: %s", p->cg_path, strerror(errno));
    for (unsigned i = 0; ret == 0 && i < o->ncgroups; i++) {
        const struct jail_cgroup_setting *s = &o->cgroups[i];
        int w = write_once(gfd, s->key, s->value);
        if (w == -EINVAL || w == -ERANGE)
            ret = USAGE(err, -w, "the kernel refuses %s=%s: %s", s->key, s->value, strerror(-w));
        else if (w < 0)
            ret = HOST(err, -w, "cannot write %s/%s: %s", p->cg_path, s->key, strerror(-w));
    }
    if (gfd >= 0)
        close(gfd);
    close(pfd);
    return ret;
}

int jail_cgroup_create(struct jail_plan *p, struct errbuf *err)
{
    const struct jail_opts *o = p->opts;
    if (o->ncgroups == 0)
        return 0;
    int ret = find_root(o, p->cg_root, sizeof(p->cg_root), err);
    if (ret < 0)
        return ret;
    if ((size_t)snprintf(p->cg_path, sizeof(p->cg_path), "%s/" PARENT "/%s", p->cg_root, o->id) >=
        sizeof(p->cg_path))
        return HOST(err, ENAMETOOLONG, "cgroup path too long");
    int rootfd = open(p->cg_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return HOST(err, errno, "cannot open cgroup v2 root %s: %s", p->cg_root, strerror(errno));
    ret = check_root(o, rootfd, p->cg_root, err);
    if (ret == 0)
        ret = create_group(p, rootfd, err);
    close(rootfd);
    return ret;
}

int jail_cgroup_join(const struct jail_plan *p, struct errbuf *err)
{
    if (!p->created_cg)
        return 0;
    int dfd = open(p->cg_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int ret = dfd < 0 ? -errno : write_once(dfd, "cgroup.procs", "0");
    if (dfd >= 0)
        close(dfd);
    if (ret < 0)
        return HOST(err, -ret, "cannot join cgroup %s: %s", p->cg_path, strerror(-ret));
    return 0;
}

void jail_cgroup_undo(struct jail_plan *p)
{
    if (p->created_cg && rmdir(p->cg_path) == 0)
        p->created_cg = false;
}

int jail_cgroup_cleanup(const char *cgroup_root, const char *id, struct errbuf *err)
{
    struct jail_opts o = {.cgroup_root = cgroup_root};
    char root[512], path[1024];
    struct errbuf ignore = {0};
    if (find_root(&o, root, sizeof(root), &ignore) < 0)
        return 0; /* no cgroup v2: no group can exist */
    snprintf(path, sizeof(path), "%s/" PARENT "/%s", root, id);
    if (rmdir(path) == 0 || errno == ENOENT)
        return 0;
    if (errno == EBUSY)
        return HOST(err, EBUSY, "cgroup %s still has processes (is the VM still running?)", path);
    return HOST(err, errno, "cannot remove cgroup %s: %s", path, strerror(errno));
}
