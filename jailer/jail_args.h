/*
 * `wisp jail` command line: parsing into struct jail_opts and the checks
 * that need nothing but the strings themselves (ids, numbers, path shapes,
 * cgroup keys).  Checks that touch the file system are in jail_input.c.
 */
#ifndef JAILER_JAIL_ARGS_H
#define JAILER_JAIL_ARGS_H

#include <stdio.h>

#include "jailer/jail.h"

/*
 * Parse `wisp jail ...` (argv[0] is the program, argv[1] "jail") into `o`.
 * Everything after "--" is the wisp run argument list; it is required unless
 * --cleanup or --help is given.  Nothing is opened or created.
 * Returns 0, or -EINVAL with `err` set (WISP_EXIT_USAGE, message "jail: ...").
 */
int jail_args_parse(int argc, char *const argv[], struct jail_opts *o,
                    struct errbuf *err) __must_check;

/*
 * Is `id[0..len)` a valid jail id: 1 to JAIL_ID_MAX bytes, each one of
 * A-Z a-z 0-9 '-'?  `len` is explicit so an embedded NUL is refused too.
 */
bool jail_args_id_valid(const char *id, size_t len);

/*
 * Is `path` absolute and normalized: starts with '/', no empty, "." or ".."
 * component, no trailing '/', not "/" itself, shorter than JAIL_HOST_PATH_MAX?
 * The jailer never resolves ".." so that what it checks is what it opens.
 */
bool jail_args_path_ok(const char *path);

/* Is `key` a cgroup file --cgroup may write (cpu.max, memory.max, pids.max, ...)? */
bool jail_args_cgroup_key_ok(const char *key);

/* The `wisp jail --help` text. */
void jail_args_print_help(FILE *f);

#endif /* JAILER_JAIL_ARGS_H */
