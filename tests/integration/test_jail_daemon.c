/*
 * `wisp jail --daemonize`: the jailer prints the VMM's pid and returns at
 * once; the VMM runs on in its own session with stdio on /dev/null, still
 * confined, and stops on SIGTERM sent straight to it (as PID 1 of its
 * namespace it gets the signal only because it was started with the stop
 * signals blocked, until its event loop takes them).
 */
#include "tests/integration/test_jail_harness.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/wisp_run.h"

static struct jh h;
static pid_t daemon_pid;

static void teardown(void)
{
    if (daemon_pid > 0)
        kill(daemon_pid, SIGKILL);
    daemon_pid = 0;
    jh_cleanup(&h);
}

TestSuite(jail_daemon, .fini = teardown, .timeout = 120);

static bool gone(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    char *s = jh_read_proc(path);
    bool dead = !s || strstr(s, ") Z ") != NULL;
    free(s);
    return dead;
}

Test(jail_daemon, detaches_and_reports_the_pid)
{
    jh_init(&h, "daemon");
    const char *extra[] = {"--daemonize", NULL};
    const char *run[] = {"--kernel", h.kernel, "--debug-exit", "--cmdline", "test=echo", NULL};
    struct proc_result r;
    jh_run(&h, &r, NULL, extra, run);
    cr_assert_eq(r.status, 0, "status %d\n%s", r.status, r.err);
    pid_t vmm = (pid_t)atoi(r.out);
    cr_assert_gt(vmm, 0, "stdout: '%s'", r.out);
    daemon_pid = vmm;
    proc_result_free(&r);
    cr_assert_not(gone(vmm), "the VMM is not running");
    char path[64], target[64] = "";
    snprintf(path, sizeof(path), "/proc/%d/fd/0", (int)vmm);
    cr_assert_gt(readlink(path, target, sizeof(target) - 1), 0);
    cr_expect_str_eq(target, "/dev/null");
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)vmm);
    char *st = jh_read_proc(path);
    int sid = 0;
    cr_assert_eq(sscanf(strrchr(st, ')') + 2, "%*c %*d %*d %d", &sid), 1);
    free(st);
    cr_expect_eq(sid, vmm, "not a session leader");
    jh_check_identity(vmm);
    cr_assert_eq(kill(vmm, SIGTERM), 0);
    /* Judged once: after the VMM is reaped its pid may be reused (a long
     * `make test` in the testbed's L1 wraps pids), so a second look could
     * find some other process. */
    bool dead = false;
    for (int i = 0; i < 200 && !(dead = gone(vmm)); i++)
        usleep(50 * 1000);
    cr_assert(dead, "SIGTERM did not stop the daemonized VMM");
    daemon_pid = 0;
}
