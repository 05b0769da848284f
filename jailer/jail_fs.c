/*
 * Jail directory tree: create, fill and remove (see jail_fs.h).  The
 * jailer runs as root in directories it is about to hand to an untrusted
 * uid, so every step works on descriptors, refuses to follow links and sets
 * modes explicitly (the umask is not trusted either).
 */
#include "jailer/jail_fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define USAGE(err, e, ...) err_set((err), WISP_EXIT_USAGE, (e), "jail: " __VA_ARGS__)
#define HOST(err, e, ...)  err_set((err), WISP_EXIT_HOST, (e), "jail: " __VA_ARGS__)

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

/* A directory root trusts: owned by root, not writable by group or others. */
static int check_dir(int fd, const char *path, struct errbuf *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return HOST(err, errno, "cannot stat %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)))
        return USAGE(err, EPERM,
                     "%s must be a directory owned by root and not writable by group or others",
                     path);
    return 0;
}

static int open_base(struct jail_plan *p, struct errbuf *err)
{
    const char *base = p->opts->chroot_base;
    p->base_fd = open(base, DIR_FLAGS);
    if (p->base_fd < 0 && errno == ENOENT) {
        if (mkdir(base, 0755) < 0)
            return HOST(err, errno, "cannot create the chroot base %s: %s", base, strerror(errno));
        p->created_base = true;
        p->base_fd = open(base, DIR_FLAGS);
        if (p->base_fd >= 0 && fchmod(p->base_fd, 0755) < 0)
            return HOST(err, errno, "chmod %s: %s", base, strerror(errno));
    }
    if (p->base_fd < 0)
        return errno == ELOOP || errno == ENOTDIR
                   ? USAGE(err, errno, "chroot base %s is not a directory", base)
                   : HOST(err, errno, "cannot open the chroot base %s: %s", base, strerror(errno));
    int ret = check_dir(p->base_fd, base, err);
    if (ret < 0)
        return ret;
    /* The tree holds device nodes and the binary: both must work there. */
    struct statvfs sv;
    if (fstatvfs(p->base_fd, &sv) < 0)
        return HOST(err, errno, "statvfs %s: %s", base, strerror(errno));
    if (sv.f_flag & (ST_NODEV | ST_NOEXEC))
        return HOST(err, EPERM, "chroot base %s is on a nodev or noexec mount", base);
    return 0;
}

/* <exec-name>: open, or create it; then create <id>, which must be new. */
static int make_id_dir(struct jail_plan *p, struct errbuf *err)
{
    const char *id = p->opts->id;
    /* A concurrent jailer's failure may remove an <exec-name> it just created,
     * under our feet: mkdirat then fails with ENOENT, and we try again. */
    for (int attempt = 0; attempt < 3; attempt++) {
        if (p->exec_dir_fd >= 0)
            close(p->exec_dir_fd);
        p->exec_dir_fd = openat(p->base_fd, p->exec_name, DIR_FLAGS);
        if (p->exec_dir_fd < 0 && errno == ENOENT) {
            int made = mkdirat(p->base_fd, p->exec_name, 0755);
            if (made < 0 && errno != EEXIST)
                return HOST(err, errno, "cannot create %s/%s: %s", p->opts->chroot_base,
                            p->exec_name, strerror(errno));
            p->created_exec_dir = made == 0;
            p->exec_dir_fd = openat(p->base_fd, p->exec_name, DIR_FLAGS);
            if (p->exec_dir_fd >= 0 && p->created_exec_dir && fchmod(p->exec_dir_fd, 0755) < 0)
                return HOST(err, errno, "chmod %s: %s", p->exec_name, strerror(errno));
        }
        if (p->exec_dir_fd < 0)
            return HOST(err, errno, "cannot open %s/%s: %s", p->opts->chroot_base, p->exec_name,
                        strerror(errno));
        int ret = check_dir(p->exec_dir_fd, p->exec_name, err);
        if (ret < 0)
            return ret;
        if (mkdirat(p->exec_dir_fd, id, 0755) == 0) {
            p->created_id_dir = true;
            p->id_dir_fd = openat(p->exec_dir_fd, id, DIR_FLAGS);
            if (p->id_dir_fd < 0 || fchmod(p->id_dir_fd, 0755) < 0)
                return HOST(err, errno, "cannot open %s: %s", p->id_path, strerror(errno));
            return 0;
        }
        if (errno == EEXIST)
            return USAGE(err, EEXIST,
                         "%s already exists (remove it with wisp jail --cleanup --id %s)",
                         p->id_path, id);
        if (errno != ENOENT)
            return HOST(err, errno, "cannot create %s: %s", p->id_path, strerror(errno));
    }
    return HOST(err, EAGAIN, "%s/%s keeps disappearing", p->opts->chroot_base, p->exec_name);
}

/*
 * Open (creating as needed, root:root 0755) the directories of `rel` below
 * the jail root, up to its last component, which is returned in *leaf.
 * Returns a directory fd the caller closes, or -errno.
 */
static int open_parent(struct jail_plan *p, const char *rel, const char **leaf)
{
    int cur = dup(p->root_fd);
    if (cur < 0)
        return -errno;
    const char *c = rel;
    for (const char *slash; (slash = strchr(c, '/')) != NULL; c = slash + 1) {
        char comp[JAIL_PATH_MAX];
        size_t n = (size_t)(slash - c);
        if (n == 0 || n >= sizeof(comp)) {
            close(cur);
            return -EINVAL;
        }
        memcpy(comp, c, n);
        comp[n] = '\0';
        bool made = mkdirat(cur, comp, 0755) == 0;
        if (!made && errno != EEXIST) {
            int e = errno;
            close(cur);
            return -e;
        }
        int next = openat(cur, comp, DIR_FLAGS);
        int e = errno;
        close(cur);
        if (next < 0)
            return -e;
        if (made && fchmod(next, 0755) < 0) {
            e = errno;
            close(next);
            return -e;
        }
        cur = next;
    }
    *leaf = c;
    return cur;
}

/* Copy all of `src` into the new file `dst`; the source must not change size meanwhile. */
static int copy_data(int src, int dst)
{
    struct stat st;
    if (fstat(src, &st) < 0)
        return -errno;
    off_t off = 0;
    bool plain = false;
    char buf[64 * 1024];
    for (;;) {
        ssize_t n;
        if (!plain) {
            n = copy_file_range(src, &off, dst, NULL, 1u << 30, 0);
            if (n < 0 &&
                (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
                plain = true; /* not supported between these files: copy by hand */
                continue;
            }
        } else {
            n = pread(src, buf, sizeof(buf), off);
            for (ssize_t done = 0; n > 0 && done < n;) {
                ssize_t w = write(dst, buf + done, (size_t)(n - done));
                if (w < 0 && errno != EINTR)
                    return -errno;
                done += w > 0 ? w : 0;
            }
            if (n > 0)
                off += n;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
    }
    return off == st.st_size ? 0 : -EAGAIN;
}

static int copy_in(struct jail_plan *p, const struct jail_file *f, struct errbuf *err)
{
    const char *leaf;
    int dfd = open_parent(p, f->dst, &leaf);
    if (dfd < 0)
        return HOST(err, -dfd, "cannot create the directories of /%s: %s", f->dst, strerror(-dfd));
    int ret = 0;
    int out = openat(dfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0) {
        ret = HOST(err, errno, "cannot create /%s in the jail: %s", f->dst, strerror(errno));
        goto out;
    }
    ret = copy_data(f->src_fd, out);
    if (ret == 0 && fchmod(out, f->mode) < 0)
        ret = -errno;
    if (ret < 0)
        ret = HOST(err, -ret, "cannot copy /%s into the jail: %s", f->dst, strerror(-ret));
    close(out);
out:
    close(dfd);
    return ret;
}

static int make_node(struct jail_plan *p, const struct jail_node *n, struct errbuf *err)
{
    const char *leaf;
    int dfd = open_parent(p, n->dst, &leaf);
    if (dfd < 0)
        return HOST(err, -dfd, "cannot create the directories of /%s: %s", n->dst, strerror(-dfd));
    int ret = 0;
    /* The root is still root:root 0700 here, so nothing can race these names. */
    if (mknodat(dfd, leaf, S_IFCHR | 0600, n->rdev) < 0 ||
        fchownat(dfd, leaf, p->opts->uid, p->opts->gid, AT_SYMLINK_NOFOLLOW) < 0 ||
        fchmodat(dfd, leaf, 0600, 0) < 0)
        ret = HOST(err, errno, "cannot create /%s in the jail: %s", n->dst, strerror(errno));
    close(dfd);
    return ret;
}

static int make_mount_point(struct jail_plan *p, const struct jail_bind *b, struct errbuf *err)
{
    int fd = openat(p->root_fd, b->dst, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
    if (fd < 0 || fchmod(fd, 0400) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return HOST(err, e, "cannot create /%s in the jail: %s", b->dst, strerror(e));
    }
    close(fd);
    return 0;
}

int jail_fs_build(struct jail_plan *p, struct errbuf *err)
{
    const struct jail_opts *o = p->opts;
    if ((size_t)snprintf(p->id_path, sizeof(p->id_path), "%s/%s/%s", o->chroot_base, p->exec_name,
                         o->id) >= sizeof(p->id_path) ||
        (size_t)snprintf(p->root_path, sizeof(p->root_path), "%s/root", p->id_path) >=
            sizeof(p->root_path))
        return USAGE(err, ENAMETOOLONG, "the jail path is too long");
    int ret = open_base(p, err);
    if (ret == 0)
        ret = make_id_dir(p, err);
    if (ret < 0)
        return ret;
    if (mkdirat(p->id_dir_fd, "root", 0700) < 0 ||
        (p->root_fd = openat(p->id_dir_fd, "root", DIR_FLAGS)) < 0)
        return HOST(err, errno, "cannot create %s: %s", p->root_path, strerror(errno));
    for (unsigned i = 0; ret == 0 && i < p->nfiles; i++)
        ret = copy_in(p, &p->files[i], err);
    for (unsigned i = 0; ret == 0 && i < p->nnodes; i++)
        ret = make_node(p, &p->nodes[i], err);
    for (unsigned i = 0; ret == 0 && i < p->nbinds; i++)
        ret = make_mount_point(p, &p->binds[i], err);
    if (ret < 0)
        return ret;
    /* Last: from now on the VMM's uid may write here. */
    if (fchown(p->root_fd, o->uid, o->gid) < 0 || fchmod(p->root_fd, 0700) < 0)
        return HOST(err, errno, "cannot hand %s to %u:%u: %s", p->root_path, o->uid, o->gid,
                    strerror(errno));
    return 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

void jail_fs_undo(struct jail_plan *p)
{
    close_fd(&p->root_fd);
    close_fd(&p->id_dir_fd);
    if (p->created_id_dir && p->exec_dir_fd >= 0 &&
        jail_fs_remove_tree(p->exec_dir_fd, p->opts->id) == 0)
        p->created_id_dir = false;
    /* Shared directories go only if we made them and no other jail uses them. */
    if (p->created_exec_dir && p->base_fd >= 0)
        unlinkat(p->base_fd, p->exec_name, AT_REMOVEDIR);
    p->created_exec_dir = false;
    close_fd(&p->exec_dir_fd);
    if (p->created_base)
        rmdir(p->opts->chroot_base);
    p->created_base = false;
    close_fd(&p->base_fd);
}

static int remove_entry(int parent, const char *name, unsigned depth)
{
    if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR)
        return -errno;
    if (depth >= JAIL_FS_MAX_DEPTH)
        return -ELOOP;
    int fd = openat(parent, name, DIR_FLAGS);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return -e;
    }
    int ret = 0;
    /* Removing entries while reading may make readdir skip some: repeat
     * passes until one finds nothing left. */
    for (bool again = true; again && ret == 0;) {
        again = false;
        rewinddir(d);
        struct dirent *e;
        while (ret == 0 && (e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            ret = remove_entry(dirfd(d), e->d_name, depth + 1);
            again = true;
        }
    }
    closedir(d);
    if (ret == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        ret = -errno;
    return ret;
}

int jail_fs_remove_tree(int parent, const char *name)
{
    return remove_entry(parent, name, 0);
}

int jail_fs_cleanup(const char *base, const char *exec_name, const char *id, struct errbuf *err)
{
    int ret = -ENOENT;
    int efd = -1, bfd = open(base, DIR_FLAGS);
    if (bfd < 0)
        return errno == ENOENT ? -ENOENT
                               : HOST(err, errno, "cannot open %s: %s", base, strerror(errno));
    ret = check_dir(bfd, base, err);
    if (ret < 0)
        goto out;
    efd = openat(bfd, exec_name, DIR_FLAGS);
    if (efd < 0) {
        ret = errno == ENOENT
                  ? -ENOENT
                  : HOST(err, errno, "cannot open %s/%s: %s", base, exec_name, strerror(errno));
        goto out;
    }
    ret = check_dir(efd, exec_name, err);
    if (ret < 0)
        goto out;
    struct stat st;
    if (fstatat(efd, id, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        ret = errno == ENOENT ? -ENOENT
                              : HOST(err, errno, "cannot stat %s/%s/%s: %s", base, exec_name, id,
                                     strerror(errno));
        goto out;
    }
    ret = jail_fs_remove_tree(efd, id);
    if (ret < 0)
        ret = HOST(err, -ret, "cannot remove %s/%s/%s: %s", base, exec_name, id, strerror(-ret));
out:
    if (efd >= 0)
        close(efd);
    close(bfd);
    return ret;
}
