/*
 * The forked-child fixture of the seccomp tests (test_sandbox_child.c defines
 * it; test_sandbox_modes.c uses it too): run a body in a child that has
 * prepared the sandbox and entered a role, and collect its exit status and
 * stderr.
 */
#ifndef TESTS_UNIT_SANDBOX_TEST_SANDBOX_H
#define TESTS_UNIT_SANDBOX_TEST_SANDBOX_H

#include <stdbool.h>

#include "vmm/config.h"

struct child_fds {
    int null, efd, ep, listener;
    int status;  /* the child's /proc/self/status, opened before its filter */
    int pty;     /* with child_raw_term: a terminal the child puts in raw mode first */
    int pair[2]; /* a connected AF_UNIX stream pair (the API role's client I/O) */
};
/* Opened by run_child() for each child; bodies use them. */
extern struct child_fds fds;
/* Set for one run_child() call to give the child a raw terminal (fds.pty). */
extern bool child_raw_term;

struct child_result {
    int status; /* exit code, or 128 + signal */
    char err[16384];
};

typedef void (*child_body)(int role, int arg);

/*
 * Fork; the child prepares the sandbox in `mode` (every role, or with role
 * -2 the default set), enters `role` (unless it is negative: then the body
 * enters, or creates threads that do), runs body(role, arg) and exits 0.
 */
void run_child(int role, enum seccomp_mode mode, child_body body, int arg,
               struct child_result *res);

/* In a filtered child: report the failing line with write(2) and exit 1. */
#define MUST(cond)                                                                                 \
    do {                                                                                           \
        if (!(cond))                                                                               \
            must_fail(__LINE__);                                                                   \
    } while (0)

/* MUST()'s failure path: write the line number and errno to stderr, _exit(1). */
_Noreturn void must_fail(int line);

#endif /* TESTS_UNIT_SANDBOX_TEST_SANDBOX_H */
