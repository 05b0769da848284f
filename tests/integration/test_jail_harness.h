/*
 * Harness for the `wisp jail` integration tests (test_jail.c): a per-test
 * chroot base and jail id, the command line, the jailed VMM's pid, the
 * expected jail tree, and cleanup that checks nothing is left behind.
 */
#ifndef TESTS_INTEGRATION_TEST_JAIL_HARNESS_H
#define TESTS_INTEGRATION_TEST_JAIL_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

#include "tests/lib/proc.h"
#include "tests/lib/sandbox_proc.h"

/* The ids jailed VMMs run as. */
#define JH_UID 64101
#define JH_GID 64102

struct jh {
    char base[128];    /* --chroot-base: a fresh directory per test */
    char id[80];       /* --id: unique per test and process (room for bad ones) */
    char exec[4096];   /* --exec-file: the wisp binary copied into the jail */
    char kernel[4096]; /* absolute path of the test guest ELF */
};

/*
 * Skip the test unless it runs as root with a usable /dev/kvm and a wisp
 * binary that can run jailed (a sanitizer build cannot: see .c); then make
 * the base directory and pick an id with `tag` in it.
 */
void jh_init(struct jh *h, const char *tag);

/*
 * argv for `wisp jail --id --uid --gid --chroot-base --exec-file EXTRA... --
 * RUN...` (EXTRA and RUN NULL-terminated, may be NULL).  Static storage:
 * valid until the next call.
 */
char *const *jh_argv(const struct jh *h, const char *const *extra, const char *const *run);

/* Run the jail to completion (stdin gets `input`, may be NULL). */
void jh_run(const struct jh *h, struct proc_result *r, const char *input, const char *const *extra,
            const char *const *run);

/* Start it in the background (stdin held open) and wait for `ready` on stdout. */
void jh_start(const struct jh *h, struct sandbox_proc *p, const char *const *extra,
              const char *const *run, const char *ready);

/* The jailed VMM: the only child of the jailer `jailer`. */
pid_t jh_vmm_pid(pid_t jailer);

/* "<base>/<exec-name>/<id>" and ".../root". */
const char *jh_id_dir(const struct jh *h);
const char *jh_root_dir(const struct jh *h);

/* `wisp jail --cleanup`, then remove the base; asserts it all went away. */
void jh_cleanup(struct jh *h);

/* The base must be empty: a refused launch left nothing behind. */
void jh_assert_nothing_left(const struct jh *h);

/* Exactly one stderr line "wisp: error: jail: ..." containing `needle`, and status `code`. */
void jh_assert_error(const struct proc_result *r, int code, const char *needle);

/* A whole /proc file, NUL-terminated (malloc'd), or NULL. */
char *jh_read_proc(const char *path);

/* Value of `key` (e.g. "CapEff:") in /proc/<pid>/status, whitespace trimmed; static buffer. */
const char *jh_status(pid_t pid, const char *key);

/*
 * Every entry below `dir` as sorted lines "PATH TYPE MODE UID:GID[ MAJ:MIN]"
 * (as tests/unit/jailer/test_jail_util.h), malloc'd.
 */
char *jh_list_tree(const char *dir);

/*
 * The listing jh_list_tree() must give for a jail root holding the binary,
 * the libraries `ldd` reports for it, /dev/kvm and the files named in
 * `extra_lines` (already formatted, NULL-terminated).  malloc'd.
 */
char *jh_expected_tree(const struct jh *h, const char *const *extra_lines);

/*
 * Expect (non-fatally) the jailed identity in /proc/<vmm>/status: Uid and
 * Gid JH_UID/JH_GID in all four slots, no groups, every capability set
 * empty, NoNewPrivs 1, and PID 1 of its own namespace.
 */
void jh_check_identity(pid_t vmm);

/* Does this wisp build install seccomp filters (`wisp run --help` lists --seccomp)? */
bool jh_seccomp_built_in(void);

/* Where cgroup v2 is mounted, or NULL (with `why` filled) if it is not usable. */
const char *jh_cgroup_root(char *why, size_t whylen);

#endif /* TESTS_INTEGRATION_TEST_JAIL_HARNESS_H */
