/*
 * The jail's child process: what runs between fork() and execve("/wisp").
 * It is PID 1 of the new PID namespace (the parent unshared CLONE_NEWPID
 * before forking), still root, with the host's mount table.  In order:
 * join the cgroup, set resource limits, enter the network namespace (new or
 * --netns) and new mount, IPC, UTS and cgroup namespaces, make every mount
 * private, bind the jail root onto itself and pivot_root into it, detach
 * the old root, mount the disk images, optionally start a new session on
 * /dev/null, drop every privilege, exec.  Any failure is reported to the
 * parent through a pipe (one struct errbuf) and ends the child.
 */
#ifndef JAILER_JAIL_CHILD_H
#define JAILER_JAIL_CHILD_H

#include <sys/types.h>

#include "jailer/jail.h"

/*
 * Turn the calling process into the jailed VMM described by `p` and exec
 * it.  Never returns: on failure writes the error (sizeof(struct errbuf)
 * bytes) to `status_fd` and _exit()s with its exit code.  `status_fd` must
 * be O_CLOEXEC, so a successful exec shows as end-of-file to the reader.
 */
_Noreturn void jail_child_run(const struct jail_plan *p, int status_fd);

/*
 * Drop every privilege of the calling (single-threaded, root) process:
 * empty the capability bounding set and the ambient set, setgroups(0),
 * setresgid(gid), setresuid(uid), clear the permitted, effective and
 * inheritable sets, set PR_SET_NO_NEW_PRIVS, then verify that root cannot
 * be regained.  Returns 0, or -errno with `err` set (WISP_EXIT_HOST).
 */
int jail_child_drop_privileges(uid_t uid, gid_t gid, struct errbuf *err) __must_check;

/*
 * Set RLIMIT_NOFILE (soft = hard = `nofile`), RLIMIT_FSIZE (when
 * `has_fsize`) and RLIMIT_CORE 0: a VMM core dump would hold guest memory.
 * Returns 0, or -errno with `err` set (WISP_EXIT_HOST).
 */
int jail_child_set_rlimits(uint64_t nofile, bool has_fsize, uint64_t fsize,
                           struct errbuf *err) __must_check;

#endif /* JAILER_JAIL_CHILD_H */
