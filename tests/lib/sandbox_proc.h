/*
 * Helpers for the seccomp tests: run a program in the background with its
 * stdin kept open (so a guest waiting for input keeps the VM alive while a
 * test inspects /proc/<pid>/task), and evaluate a classic-BPF seccomp
 * program in user space (so a filter can be checked rule by rule without
 * the kernel).  Complements proc.h, which runs a program to completion.
 */
#ifndef TESTS_LIB_SANDBOX_PROC_H
#define TESTS_LIB_SANDBOX_PROC_H

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "tests/lib/proc.h"

struct sandbox_proc {
    pid_t pid;
    int in_fd;  /* the child's stdin; -1 once closed */
    int out_fd; /* the child's stdout */
    int err_fd; /* the child's stderr */
    char *out;  /* stdout read so far (NUL-terminated) */
    size_t out_len;
    char *err; /* stderr read so far */
    size_t err_len;
};

/*
 * Start argv[0] (a path) with argv; `env` entries ("K=V", NULL-terminated,
 * may be NULL) are added to the environment.  stdin stays open until
 * sandbox_proc_finish().  Returns 0 or -errno.
 */
int sandbox_proc_start(struct sandbox_proc *p, char *const argv[], char *const env[]);

/*
 * Read the child's output until its stdout contains `needle` (true) or
 * `timeout_ms` passes or the child closes stdout (false).
 */
bool sandbox_proc_wait_for(struct sandbox_proc *p, const char *needle, unsigned timeout_ms);

/*
 * Write `input` (may be NULL) to the child's stdin, close it, read the rest
 * of its output and reap it.  After `timeout_ms` the child is killed with
 * SIGKILL and r->timed_out is set.  `r` takes over the captured output (free
 * it with proc_result_free()); `p` is finished either way.
 */
void sandbox_proc_finish(struct sandbox_proc *p, const char *input, unsigned timeout_ms,
                         struct proc_result *r);

/* The pids of every thread of `pid`, from /proc/<pid>/task; returns the count (at most max). */
int sandbox_proc_threads(pid_t pid, pid_t *tids, int max);

/*
 * Run a seccomp BPF program on `d` as the kernel would and return the action
 * word, or SANDBOX_BPF_BAD for an instruction the kernel's checker would
 * reject or this interpreter does not know.
 */
#define SANDBOX_BPF_BAD 0xdeadbeefu
uint32_t sandbox_proc_bpf_run(const struct sock_fprog *prog, const struct seccomp_data *d);

#endif /* TESTS_LIB_SANDBOX_PROC_H */
