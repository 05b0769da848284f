/*
 * Run a program on a pseudo-terminal (its stdin and stdout), as a user at a
 * shell would, so the tests can check raw mode, the Ctrl-A escape and that
 * the terminal is restored when the program exits.
 */
#ifndef TESTS_LIB_PTY_H
#define TESTS_LIB_PTY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct pty_proc {
    pid_t pid;
    int master;     /* our end: what we write is typed, what we read was printed */
    int slave;      /* kept open to read the terminal's mode after the child exits */
    int err_fd;     /* the child's stderr (a pipe) */
    char out[8192]; /* everything read from the master so far, NUL-terminated */
    size_t out_len;
    char err[4096]; /* stderr, NUL-terminated (filled by pty_wait) */
};

/*
 * Start argv[0] (a path) on a new pty in its own session; `env_var` ("K=V")
 * is added to its environment if not NULL.  Returns 0 or -errno.
 */
int pty_start(struct pty_proc *p, char *const argv[], const char *env_var);

/* Is the terminal in canonical mode with echo (a shell's cooked mode)? */
bool pty_is_cooked(const struct pty_proc *p);

/* Read output until `needle` was printed or `timeout_ms` passed.  True if seen. */
bool pty_expect(struct pty_proc *p, const char *needle, unsigned timeout_ms);

/* Type bytes (all of them, or false). */
bool pty_type(struct pty_proc *p, const void *bytes, size_t len);

/*
 * Drain output and stderr until the child exits (killed after `timeout_ms`),
 * reap it and return its exit code, or 128 + signal.  The fds stay open
 * until pty_close(), so the terminal mode can still be read.
 */
int pty_wait(struct pty_proc *p, unsigned timeout_ms);

void pty_close(struct pty_proc *p);

#endif /* TESTS_LIB_PTY_H */
