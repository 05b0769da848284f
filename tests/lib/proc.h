/*
 * Run a program as a child with optional stdin data and a timeout, capturing
 * stdout and stderr.  Used by the integration tests to drive the real wisp
 * binary exactly as a user would.
 */
#ifndef TESTS_LIB_PROC_H
#define TESTS_LIB_PROC_H

#include <stdbool.h>
#include <stddef.h>

struct proc_result {
    int status;     /* exit code, or 128 + signal number */
    bool timed_out; /* killed after the timeout */
    char *out;      /* NUL-terminated stdout */
    size_t out_len;
    char *err; /* NUL-terminated stderr */
    size_t err_len;
    double seconds; /* wall time */
};

/*
 * Run argv[0] (a path) with argv; `env` entries ("K=V") are added to the
 * environment.  `input` (may be NULL) is written to the child's stdin, which
 * is then closed.  Returns 0, or -errno if the child could not be started.
 */
int proc_run(char *const argv[], char *const env[], const char *input, size_t input_len,
             unsigned timeout_ms, struct proc_result *r);

void proc_result_free(struct proc_result *r);

#endif /* TESTS_LIB_PROC_H */
