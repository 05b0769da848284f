/*
 * Helpers shared by the jailer's unit tests (test_jail_*.c): temporary
 * directories, small files, a synthetic ELF binary, tree listings, and
 * parsing a `wisp jail` command line from a NULL-terminated list.
 */
#ifndef TESTS_UNIT_JAILER_TEST_JAIL_UTIL_H
#define TESTS_UNIT_JAILER_TEST_JAIL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "jailer/jail.h"

/* uid/gid the tests hand jails to (no passwd entry needed). */
#define TJ_UID 54321
#define TJ_GID 54322

/* A fresh root-owned 0700 directory under /tmp; malloc'd path.  Aborts the test on failure. */
char *tj_mkdtemp(void);
/* rm -rf without following links; ignores errors. */
void tj_rm_rf(const char *path);
/* Number of entries in directory `path` (not counting . and ..); -1 if it cannot be read. */
int tj_count_entries(const char *path);
/* Create `path` with `len` bytes of `data` and mode `mode` (exact). */
void tj_write_file(const char *path, const void *data, size_t len, mode_t mode);
/* Does `path` exist (lstat)? */
bool tj_exists(const char *path);

/*
 * Write a minimal ELF64 for this machine at `path` (mode 0755).  With
 * `dynamic`, it has PT_INTERP `interp` and one DT_NEEDED `needed`;
 * otherwise it is "static" (no PT_INTERP, no PT_DYNAMIC).
 */
void tj_write_elf(const char *path, bool dynamic, const char *interp, const char *needed);
/* The bytes tj_write_elf would write, in a malloc'd buffer of *len bytes. */
unsigned char *tj_make_elf(bool dynamic, const char *interp, const char *needed, size_t *len);

/*
 * Every entry below `dir`, one line each, sorted: "PATH TYPE MODE UID:GID[ MAJ:MIN]"
 * with TYPE d, f, c, l, p and MODE in octal (PATH relative, no leading '/').
 * malloc'd; NULL if `dir` cannot be walked.
 */
char *tj_list_tree(const char *dir);

/*
 * jail_args_parse() on {"wisp", "jail", args..., NULL}.  The vector is static:
 * `o` points into it until the next call.
 */
int tj_parse(struct jail_opts *o, struct errbuf *err, ...);

/* True if the tests run as root (what building a jail needs). */
bool tj_is_root(void);

#endif /* TESTS_UNIT_JAILER_TEST_JAIL_UTIL_H */
