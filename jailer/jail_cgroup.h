/*
 * cgroup v2 group of a jail (security.md A3): <root>/wisp/<id>, where
 * <root> is where cgroup v2 is mounted (/sys/fs/cgroup on a unified host,
 * /sys/fs/cgroup/unified on a hybrid one).  Only created when --cgroup is
 * given.  The controllers the limits need are enabled in the root's and in
 * wisp/'s cgroup.subtree_control; each limit file is written once, with
 * one write(); the VMM joins the group before it execs, so all its threads
 * are accounted there.  The group and its files stay root-owned: the VMM
 * cannot change its limits or leave the group.
 */
#ifndef JAILER_JAIL_CGROUP_H
#define JAILER_JAIL_CGROUP_H

#include <stddef.h>

#include "jailer/jail.h"

/*
 * Find the cgroup v2 mount point in the text of a /proc/self/mountinfo
 * (the first cgroup2 mount of a hierarchy's root, octal escapes decoded).
 * Returns 0 with `out` set, -ENOENT if there is none, -ENAMETOOLONG.
 */
int jail_cgroup_find_mount(const char *mountinfo, char *out, size_t outlen) __must_check;

/*
 * Create the group for p->opts (p->opts->cgroup_root, or the mount found in
 * /proc/self/mountinfo) and write the limits.  Sets p->cg_root, p->cg_path
 * and p->created_cg.
 * Returns 0, or -errno with `err` set: WISP_EXIT_HOST when cgroup v2 is not
 * mounted, read-only, or lacks a controller (the message says which ones it
 * has); WISP_EXIT_USAGE when the group already exists or the kernel refuses
 * a value (EINVAL, ERANGE).
 */
int jail_cgroup_create(struct jail_plan *p, struct errbuf *err) __must_check;

/*
 * Move the calling process into p->cg_path (writes "0" to cgroup.procs).
 * Returns 0, or -errno with `err` set (WISP_EXIT_HOST).
 */
int jail_cgroup_join(const struct jail_plan *p, struct errbuf *err) __must_check;

/* Remove the group if jail_cgroup_create made it (it must have no processes left). */
void jail_cgroup_undo(struct jail_plan *p);

/*
 * --cleanup: remove <root>/wisp/<id> (root as for jail_cgroup_create) if it
 * exists.  Returns 0 (also when there is no such group or no cgroup v2), or
 * -errno with `err` set: -EBUSY while processes are still in it.
 */
int jail_cgroup_cleanup(const char *cgroup_root, const char *id, struct errbuf *err) __must_check;

#endif /* JAILER_JAIL_CGROUP_H */
