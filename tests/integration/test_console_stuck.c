/*
 * The virtio console on a stdout nobody reads, shared with the parent.
 * wisp's stdout is one end of a UNIX stream socket (as under a service
 * manager's log socket), filled before wisp starts; the test holds the
 * other end and never reads.  wisp cannot reopen a socket privately, so it
 * shares the open file description with the test: it must leave the flags
 * alone, and its event loop must never wait in write() on it, even after
 * the test (the parent) clears O_NONBLOCK, which it is free to do.  The
 * guest resends its console hello every 500 ms until console_wait_ms runs
 * out, then exits: wisp must end too.
 */
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(unsigned ms)
{
    nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000 * 1000}, NULL);
}

static pid_t spawn(int out, const char *cmdline)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(null, 2) < 0)
            _exit(127);
        execl(wisp_bin(), wisp_bin(), "run", "--kernel", guest_elf(), "--debug-exit", "--serial",
              "none", "--device", "console", "--cmdline", cmdline, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Fill `fd` (blocking) without touching its flags; `peer` never reads. */
static void fill(int fd)
{
    static char buf[4096];
    while (send(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
    while (send(fd, buf, 1, MSG_DONTWAIT) > 0)
        ;
    cr_assert(errno == EAGAIN || errno == EWOULDBLOCK);
}

static void run_stuck(bool sigterm)
{
    int sv[2];
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fill(sv[0]);
    pid_t pid = spawn(sv[0], sigterm ? "test=console console_wait_ms=60000"
                                     : "test=console console_wait_ms=3000");
    sleep_ms(1000); /* booted; the console is set up and has written */
    int fl = fcntl(sv[0], F_GETFL);
    cr_assert_geq(fl, 0);
    bool nonblock = fl & O_NONBLOCK;
    /* What a parent may do with its own stdout: wisp must not depend on it. */
    cr_assert_eq(fcntl(sv[0], F_SETFL, fl & ~O_NONBLOCK), 0);
    int st;
    if (sigterm) {
        sleep_ms(1000); /* a few more hellos */
        cr_assert(wisp_wait_signal_blocked(pid, SIGTERM, WISP_TIMEOUT_MS),
                  "wisp never blocked SIGTERM");
        cr_assert_eq(waitpid(pid, &st, WNOHANG), 0, "wisp ended before SIGTERM");
        cr_assert_eq(kill(pid, SIGTERM), 0);
        st = wisp_wait_bounded(pid, 10000, "after SIGTERM: its event loop is blocked on stdout");
        cr_assert(WIFEXITED(st), "wisp died from a signal");
        cr_assert_eq(WEXITSTATUS(st), 128 + SIGTERM);
    } else {
        st = wisp_wait_bounded(pid, WISP_TIMEOUT_MS,
                               "after the guest's exit: its event loop is blocked on stdout");
        cr_assert(WIFEXITED(st), "wisp died from a signal");
        /* No input line ever comes: the guest reports FAIL, which is fine here. */
        cr_assert(WEXITSTATUS(st) == GUEST_PASS || WEXITSTATUS(st) == GUEST_FAIL, "status %d",
                  WEXITSTATUS(st));
    }
    cr_assert(!nonblock, "wisp switched the shared stdout to O_NONBLOCK");
    close(sv[0]);
    close(sv[1]);
}

Test(console_stuck, guest_exit_ends_wisp, .timeout = 120)
{
    run_stuck(false);
}

Test(console_stuck, sigterm_ends_wisp, .timeout = 120)
{
    run_stuck(true);
}
