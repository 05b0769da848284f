/*
 * Seccomp in forked children, beyond single calls: two threads trapping at
 * once print one line, /proc shows one filter per thread, every role can
 * restore the terminal, log and off modes, and sandbox_enter()'s refusals
 * (not prepared, role not built).  Uses run_child() from test_sandbox_child.c.
 */
#include "vmm/config.h"
#include "sandbox/sandbox.h"
#include "vmm/term.h"
#include "tests/unit/sandbox/test_sandbox.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

static pthread_barrier_t barrier;

static void *trapping_thread(void *arg)
{
    (void)arg;
    struct errbuf err = {0};
    if (sandbox_enter(SANDBOX_VCPU, &err) < 0)
        _exit(98);
    pthread_barrier_wait(&barrier);
    socket(AF_INET, SOCK_STREAM, 0);
    return NULL;
}

static void two_trapping_threads(int role, int arg)
{
    (void)role;
    (void)arg;
    pthread_t t[2];
    MUST(pthread_barrier_init(&barrier, NULL, 2) == 0);
    for (int i = 0; i < 2; i++)
        MUST(pthread_create(&t[i], NULL, trapping_thread, NULL) == 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
}

Test(sandbox, two_threads_trapping_print_one_line)
{
    for (int round = 0; round < 20; round++) {
        struct child_result r;
        run_child(-1, SECCOMP_KILL, two_trapping_threads, 0, &r);
        cr_assert_eq(r.status, SANDBOX_EXIT_STATUS, "%d %s", r.status, r.err);
        cr_assert_str_eq(r.err, "wisp: fatal: seccomp: thread t-worker made forbidden syscall "
                                "socket(41)\n");
    }
}

static void check_status(int role, int arg)
{
    (void)role;
    char buf[4096];
    (void)arg;
    ssize_t n = read(fds.status, buf, sizeof(buf) - 1);
    MUST(n > 0);
    buf[n] = '\0';
    MUST(strstr(buf, "\nSeccomp:\t2\n") != NULL);
    MUST(strstr(buf, "\nNoNewPrivs:\t1\n") != NULL);
    MUST(!strstr(buf, "Seccomp_filters:") || strstr(buf, "\nSeccomp_filters:\t1\n"));
}

Test(sandbox, thread_status_shows_one_filter)
{
    struct child_result r;
    run_child(SANDBOX_MAIN, SECCOMP_KILL, check_status, 0, &r);
    cr_assert_eq(r.status, 0, "status %d, stderr: %s", r.status, r.err);
}

/* term_restore() runs in fatal-signal and SIGSYS handlers on any thread. */
static void restore_terminal(int role, int arg)
{
    (void)role;
    (void)arg;
    struct termios t;
    MUST(tcgetattr(fds.pty, &t) == 0 && !(t.c_lflag & ICANON)); /* raw */
    term_restore();
    MUST(tcgetattr(fds.pty, &t) == 0 && (t.c_lflag & ICANON) && (t.c_lflag & ECHO));
}

ParameterizedTestParameters(sandbox, terminal_restore_in_every_role)
{
    static int roles[] = {SANDBOX_MAIN,      SANDBOX_VCPU, SANDBOX_API, SANDBOX_MIGRATION,
                          SANDBOX_IO_WORKER, SANDBOX_UFFD, SANDBOX_VDPA};
    return cr_make_param_array(int, roles, ARRAY_SIZE(roles));
}

ParameterizedTest(int *role, sandbox, terminal_restore_in_every_role)
{
    struct child_result r;
    child_raw_term = true;
    run_child(*role, SECCOMP_KILL, restore_terminal, 0, &r);
    child_raw_term = false;
    cr_assert_eq(r.status, 0, "%s: status %d, stderr: %s", sandbox_role_name(*role), r.status,
                 r.err);
}

static void inet_socket(int role, int arg)
{
    (void)role;
    (void)arg;
    MUST(socket(AF_INET, SOCK_STREAM, 0) >= 0);
}

Test(sandbox, log_mode_lets_the_call_run)
{
    struct child_result r;
    run_child(SANDBOX_VCPU, SECCOMP_LOG, inet_socket, 0, &r);
    cr_assert_eq(r.status, 0, "status %d, stderr: %s", r.status, r.err);
    cr_assert(strstr(r.err, "log mode"), "%s", r.err);
}

Test(sandbox, off_mode_installs_nothing_and_warns)
{
    struct child_result r;
    run_child(SANDBOX_VCPU, SECCOMP_OFF, inet_socket, 0, &r);
    cr_assert_eq(r.status, 0, "status %d, stderr: %s", r.status, r.err);
    cr_assert(strstr(r.err, "wisp: warning: seccomp is off"), "%s", r.err);
}

Test(sandbox, enter_needs_prepare)
{
    struct errbuf err = {0};
    cr_assert_eq(sandbox_enter(SANDBOX_MAIN, &err), -EINVAL);
    cr_assert(strstr(err.msg, "not prepared"), "%s", err.msg);
}

static void enter_api(int role, int arg)
{
    (void)role;
    (void)arg;
    struct errbuf err = {0};
    MUST(sandbox_enter(SANDBOX_IO_WORKER, &err) == -EINVAL); /* not built by default */
    MUST(strstr(err.msg, "no seccomp filter built for role io-worker"));
    MUST(sandbox_enter(SANDBOX_API, &err) == 0); /* wisp-api is a thread now */
}

Test(sandbox, default_builds_only_thread_roles)
{
    struct child_result r;
    run_child(-2, SECCOMP_KILL, enter_api, 0, &r);
    cr_assert_eq(r.status, 0, "status %d, stderr: %s", r.status, r.err);
}
