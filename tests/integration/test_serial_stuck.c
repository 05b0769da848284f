/*
 * COM1 on a stdout nobody reads.  wisp's stdout is a blocking pipe, filled to
 * capacity before wisp starts, whose read end the test holds open and never
 * reads: what a parent that stopped reading (or a stuck terminal) looks like.
 * Guest output must then be lost and counted, never block a vCPU, so wisp
 * still ends when the guest exits and when it is told to stop (SIGTERM).
 */
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A blocking pipe with no room left; *rd gets the read end, *wr the write end. */
static void full_blocking_pipe(int *rd, int *wr)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    fcntl(p[1], F_SETPIPE_SZ, 4096);
    int fl = fcntl(p[1], F_GETFL);
    cr_assert_eq(fcntl(p[1], F_SETFL, fl | O_NONBLOCK), 0); /* only while filling */
    static char fill[4096];
    while (write(p[1], fill, sizeof(fill)) > 0)
        ;
    while (write(p[1], fill, 1) > 0)
        ;
    cr_assert_eq(errno, EAGAIN);
    cr_assert_eq(fcntl(p[1], F_SETFL, fl), 0);
    *rd = p[0];
    *wr = p[1];
}

static pid_t spawn_stuck(const char *cmdline, int *rd)
{
    int wr;
    full_blocking_pipe(rd, &wr);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null < 0 || dup2(null, 0) < 0 || dup2(wr, 1) < 0 || dup2(null, 2) < 0)
            _exit(127);
        execl(wisp_bin(), wisp_bin(), "run", "--kernel", guest_elf(), "--debug-exit", "--cmdline",
              cmdline, (char *)NULL);
        _exit(127);
    }
    close(wr);
    return pid;
}

Test(serial_stuck, guest_exit_ends_wisp, .timeout = 120)
{
    int rd;
    pid_t pid = spawn_stuck("test=report", &rd);
    int st = wisp_wait_bounded(pid, WISP_TIMEOUT_MS,
                               "after the guest's exit: a vCPU is blocked on stdout");
    cr_assert(WIFEXITED(st), "wisp died from a signal");
    cr_assert_eq(WEXITSTATUS(st), GUEST_PASS, "status %d", WEXITSTATUS(st));
    close(rd);
}

Test(serial_stuck, sigterm_ends_wisp, .timeout = 120)
{
    int rd;
    /* echo prints its cue (lost here) and then polls COM1 for input for ~60 s. */
    pid_t pid = spawn_stuck("test=echo", &rd);
    /* Under ASan in the nested testbed start-up takes well over 0.5 s:
     * wait until wisp reads SIGTERM from its signalfd, then give the guest
     * time to fill the pipe. */
    cr_assert(wisp_wait_signal_blocked(pid, SIGTERM, WISP_TIMEOUT_MS),
              "wisp never blocked SIGTERM");
    nanosleep(&(struct timespec){0, 500 * 1000 * 1000}, NULL);
    int st;
    cr_assert_eq(waitpid(pid, &st, WNOHANG), 0, "wisp ended before SIGTERM");
    cr_assert_eq(kill(pid, SIGTERM), 0);
    st = wisp_wait_bounded(pid, 10000, "after SIGTERM: a vCPU is blocked on stdout");
    cr_assert(WIFEXITED(st), "wisp died from a signal");
    cr_assert_eq(WEXITSTATUS(st), 128 + SIGTERM);
    close(rd);
}
