/*
 * Landlock (security.md A4): after set-up wisp needs almost no filesystem
 * access, so the whole process gives it up before the first vCPU thread
 * starts.  seccomp already refuses openat() in the main thread, but it
 * cannot look at paths: unlink() and friends take any path.  Landlock is
 * the kernel's path-aware check and closes that gap; it also forbids TCP
 * and, where the kernel has scopes, signals and abstract UNIX sockets
 * beyond wisp itself.
 *
 * What stays allowed (nothing else on any filesystem):
 *   - removing files in the directory of each path in `remove_files`
 *     (the virtio-console sockets wisp created, removed at exit);
 *   - reading files under /proc/self when `read_proc_self` (--stats);
 *   - creating, writing, reading and truncating regular files beneath
 *     `write_dir` (--snapshot-dir: snapshots are written there);
 *   - reading anything when `read_all` (sanitizer builds: report
 *     symbolisation reads the binary and /proc/self/maps).
 * Descriptors opened before (disk images, tap, KVM, serial file) keep
 * working: Landlock checks at open time.
 *
 * The restriction is applied to the calling thread and inherited by the
 * threads it creates afterwards; wisp applies it in the main thread before
 * the vCPU threads exist, so all threads share one domain.
 */
#ifndef SANDBOX_LANDLOCK_H
#define SANDBOX_LANDLOCK_H

#include <stdbool.h>

#include "vmm/config.h"
#include "vmm/error.h"

#define LANDLOCK_MAX_REMOVE 16

struct landlock_policy {
    enum landlock_mode mode; /* auto (default), on (required), off */
    const char *remove_files[LANDLOCK_MAX_REMOVE];
    unsigned nremove;
    bool read_proc_self;
    bool read_all;
    const char *write_dir;  /* --snapshot-dir: create, write, read and truncate files there */
    bool allow_tcp_connect; /* live migration: TCP connect is not restricted (bind still is) */
};

/* The running kernel's Landlock ABI version, or 0 without Landlock. */
int landlock_abi(void);

/*
 * Restrict this thread and its future threads per `p`, using the rights of
 * ABI version `abi` (normally landlock_abi(); tests pass others).
 * Returns 1 if applied, 0 if not (mode off, or auto on a kernel without
 * Landlock: logged at info level), or -errno with one line in `err`:
 *   WISP_EXIT_HOST  mode on and no Landlock (-EOPNOTSUPP), a directory to
 *                   allow cannot be opened, or a Landlock call failed.
 */
int landlock_apply(const struct landlock_policy *p, int abi, struct errbuf *err) __must_check;

#endif /* SANDBOX_LANDLOCK_H */
