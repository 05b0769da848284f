/*
 * The jail's directory tree (security.md A2):
 *
 *   <base>/                     root:root, not writable by group/others (checked)
 *     <exec-name>/              root:root 0755 (shared by every jail of this binary)
 *       <id>/                   root:root 0755 (must not exist yet)
 *         root/                 uid:gid 0700: becomes "/" of the VMM
 *           wisp                root:root 0511, a copy of the binary
 *           lib64/..., lib/...  root:root 0755 dirs, 0555 copies of the libraries
 *           kernel, initrd      root:root 0444 copies (if given)
 *           diskN               root:root 0400 empty mount points for blk images
 *           dev/                root:root 0755
 *             kvm               char 10:232, uid:gid 0600
 *             net/tun           char 10:200, uid:gid 0600 (tun or a net device)
 *             vfio/vfio, vfio/N, vhost-vdpa-N   (as requested; host numbers)
 *             vhost-vsock       (a vsock,backend=vhost device; host numbers)
 *
 * Everything is created relative to directory descriptors opened with
 * O_NOFOLLOW, and every file with O_CREAT|O_EXCL|O_NOFOLLOW, so nothing
 * planted in the tree can redirect a write.  Copies, not links: the VMM
 * shares no inode (and no page cache) with host files.
 */
#ifndef JAILER_JAIL_FS_H
#define JAILER_JAIL_FS_H

#include "jailer/jail.h"

/* Deepest directory nesting jail_fs_remove_tree() descends into. */
#define JAIL_FS_MAX_DEPTH 64

/*
 * Create the tree above for plan `p` (files, nodes and binds from
 * jail_input_plan).  The base directory is created (mode 0755) if missing,
 * but not its parents.  p->id_path and p->root_path are set.
 * Returns 0, or -errno with `err` set: WISP_EXIT_USAGE if the jail already
 * exists or the base is unsafe (not root-owned or writable by others),
 * WISP_EXIT_HOST for other failures (including a base on a nodev or noexec
 * mount).  What was created is recorded in `p` for jail_fs_undo().
 */
int jail_fs_build(struct jail_plan *p, struct errbuf *err) __must_check;

/*
 * Remove what jail_fs_build created (the <id> tree; <exec-name> and the
 * base only if this run created them and they are empty) and close the
 * directory descriptors.  Idempotent.
 */
void jail_fs_undo(struct jail_plan *p);

/*
 * Remove `name` in directory `parent` and everything below it, never
 * following a symbolic link (links are removed, not their targets) and
 * never descending deeper than JAIL_FS_MAX_DEPTH.  For trees a hostile VMM
 * may have written to.
 * Returns 0 (also if `name` does not exist), or -errno (-ELOOP when too deep).
 */
int jail_fs_remove_tree(int parent, const char *name) __must_check;

/*
 * --cleanup: remove <base>/<exec_name>/<id>.  The base and <exec_name>
 * directories are checked as in jail_fs_build() and left in place.
 * Returns 0, -ENOENT if there is no such jail (err not set), or -errno with
 * `err` set.
 */
int jail_fs_cleanup(const char *base, const char *exec_name, const char *id,
                    struct errbuf *err) __must_check;

#endif /* JAILER_JAIL_FS_H */
