/*
 * Checked inputs of a jail (security.md A2, A5).  Every file the jail will
 * copy or bind-mount is opened once here, with O_NOFOLLOW, after lstat
 * showed a regular file with exactly one link; later steps use only the
 * descriptor, so a path swapped after the check changes nothing.
 *
 * Why refuse links: the jailer runs as root and exposes what it copies to a
 * hostile guest's VMM.  A symbolic or hard link planted where the operator
 * expects a kernel image could point at /etc/shadow or a key; a hard link is
 * indistinguishable from the file it aliases, so "one link only" is the rule.
 *
 * The wisp run arguments are rewritten to name the copies inside the jail:
 * --kernel and --initrd become /kernel and /initrd (copied), each blk
 * path= becomes /diskN (bind-mounted, read-only when readonly=on).
 * --config is refused: its JSON could name files the jailer never sees.
 */
#ifndef JAILER_JAIL_INPUT_H
#define JAILER_JAIL_INPUT_H

#include <sys/stat.h>

#include "jailer/jail.h"

/*
 * Open `path` (absolute) for a jail: lstat must show a regular file (not a
 * symbolic link) with st_nlink == 1; it is then opened with O_NOFOLLOW
 * (O_PATH if `path_only`, else O_RDONLY) and fstat must show the same file.
 * `what` names the input in messages ("--kernel").
 * Returns the descriptor (O_CLOEXEC), or -errno with `err` set:
 * WISP_EXIT_USAGE for a refused or missing file, WISP_EXIT_HOST otherwise.
 */
int jail_input_open(const char *path, bool path_only, const char *what,
                    struct errbuf *err) __must_check;

/*
 * The same checks for a UNIX socket a vhost-user backend listens on
 * (`vhost-user=SOCK`): not a symbolic link, a socket, one link; returns an
 * O_PATH descriptor of what lstat saw, for a bind mount.
 */
int jail_input_open_socket(const char *path, const char *what, struct errbuf *err) __must_check;

/*
 * Fill `p` from p->opts: the binary (files[0]) and its libraries, the files
 * named by the run arguments, the rewritten argument vector (checked with
 * wisp's own run parser), the device nodes, the network namespace and, with
 * --daemonize, /dev/null.  Creates nothing.
 * Returns 0, or -errno with `err` set (2 for bad input, 3 for the host);
 * descriptors already opened stay in `p` for jail_plan_free().
 */
int jail_input_plan(struct jail_plan *p, struct errbuf *err) __must_check;

#endif /* JAILER_JAIL_INPUT_H */
