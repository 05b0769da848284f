/*
 * Seccomp filters on the real binary (docs/SECURITY.md, "Seccomp filters"):
 * guests boot with filters on, every thread of a running VM is filtered, a
 * forbidden syscall ends wisp with status 148 and one line naming thread and
 * syscall, abort() still ends in SIGABRT, and the weaker modes warn.
 *
 * The forbidden-call and abort cases need a wisp built with -DWISP_TEST_HOOKS
 * (WISP_TEST_BIN, default build/wisp-test); without one they are skipped.
 */
#include "tests/lib/pty.h"
#include "tests/lib/sandbox_proc.h"
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXIT_SECCOMP 148 /* SANDBOX_EXIT_STATUS */

static void assert_no_seccomp_report(const struct proc_result *r)
{
    cr_assert_null(strstr(r->err, "seccomp"), "stderr:\n%s", r->err);
}

Test(seccomp, guest_boots_with_filters, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--vcpus", "2",
             "--seccomp", "kill", "--stats", "--cmdline", "test=report cpus=2", NULL);
    cr_assert_eq(r.status, GUEST_PASS, "status %d\n%s\n%s", r.status, r.out, r.err);
    cr_assert(strstr(r.out, "RESULT PASS"), "%s", r.out);
    cr_assert(strstr(r.err, "\"wisp_stats\":1"), "--stats works under the filter: %s", r.err);
    cr_assert_null(strstr(r.err, "\"peak_rss_kib\":0,"), "%s", r.err);
    assert_no_seccomp_report(&r);
    proc_result_free(&r);
}

Test(seccomp, json_key_and_serial_input, .timeout = 120)
{
    char json[512];
    snprintf(json, sizeof(json),
             "{\"kernel\": \"%s\", \"debug-exit\": true, \"seccomp\": \"kill\",\n"
             " \"cmdline\": \"test=serial-irq\"}",
             guest_elf());
    char *path = write_temp(json, strlen(json));
    struct proc_result r;
    wisp_run(&r, "through the filter\n", NULL, "run", "--config", path, NULL);
    unlink(path);
    free(path);
    cr_assert_eq(r.status, GUEST_PASS, "status %d\n%s\n%s", r.status, r.out, r.err);
    cr_assert(strstr(r.out, "THROUGH THE FILTER"), "%s", r.out);
    assert_no_seccomp_report(&r);
    proc_result_free(&r);
}

/* Start a 2-vCPU guest that waits for a line of input; false if it never got ready. */
static bool start_waiting_vm(struct sandbox_proc *p, const char *bin, char *const env[])
{
    char *argv[] = {(char *)(uintptr_t)bin,
                    "run",
                    "--kernel",
                    (char *)(uintptr_t)guest_elf(),
                    "--debug-exit",
                    "--vcpus",
                    "2",
                    "--cmdline",
                    "test=echo",
                    NULL};
    cr_assert_eq(sandbox_proc_start(p, argv, env), 0);
    return sandbox_proc_wait_for(p, "echo ready", WISP_TIMEOUT_MS);
}

/* The "Key:\tvalue" line of a thread's /proc status file, copied into `out`. */
static bool status_field(pid_t pid, pid_t tid, const char *key, char *out, size_t len)
{
    char path[96], text[8192];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
    FILE *f = fopen(path, "re"); /* procfs reports size 0: read, do not stat */
    if (!f)
        return false;
    text[0] = '\n'; /* so that the first line matches "\nKey:" too */
    size_t n = fread(text + 1, 1, sizeof(text) - 2, f);
    fclose(f);
    text[n + 1] = '\0';
    char want[64];
    snprintf(want, sizeof(want), "\n%s:\t", key);
    const char *v = strstr(text, want);
    if (!v)
        return false;
    v += strlen(want);
    snprintf(out, len, "%.*s", (int)strcspn(v, "\n"), v);
    return true;
}

Test(seccomp, every_thread_is_filtered, .timeout = 120)
{
    struct sandbox_proc p;
    bool ready = start_waiting_vm(&p, wisp_bin(), NULL);
    cr_assert(ready, "guest never asked for input:\n%s\n%s", p.out, p.err);
    /*
     * Every task: wisp's threads, and tasks the kernel starts on our behalf
     * (KVM's "kvm-nx-lpage-recovery", io_uring workers), which inherit the
     * filter of the thread that caused them.  The main thread enters its
     * filter right after creating the vCPU threads: allow it a moment.
     */
    pid_t tids[32];
    int n = 0, filtered = 0;
    bool vcpu0 = false, vcpu1 = false;
    char report[1024] = "";
    for (int tries = 0; tries < 50; tries++) {
        n = sandbox_proc_threads(p.pid, tids, 32);
        filtered = 0;
        report[0] = '\0';
        for (int i = 0; i < n; i++) {
            char mode[16] = "", count[16] = "", name[32] = "";
            status_field(p.pid, tids[i], "Seccomp", mode, sizeof(mode));
            status_field(p.pid, tids[i], "Seccomp_filters", count, sizeof(count));
            status_field(p.pid, tids[i], "Name", name, sizeof(name));
            filtered += !strcmp(mode, "2") && (!count[0] || !strcmp(count, "1"));
            vcpu0 |= !strcmp(name, "wisp-vcpu0");
            vcpu1 |= !strcmp(name, "wisp-vcpu1");
            size_t off = strlen(report);
            snprintf(report + off, sizeof(report) - off, " %s(Seccomp %s, filters %s)", name, mode,
                     count);
        }
        if (filtered == n)
            break;
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    cr_assert_geq(n, 3, "main thread and 2 vCPUs:%s", report);
    cr_assert_eq(filtered, n, "every task under exactly one filter:%s", report);
    cr_assert(vcpu0 && vcpu1, "vCPU threads missing:%s", report);
    cr_log_info("tasks:%s", report);
    struct proc_result r;
    sandbox_proc_finish(&p, "filtered\n", WISP_TIMEOUT_MS, &r);
    cr_assert_eq(r.status, GUEST_PASS, "status %d\n%s\n%s", r.status, r.out, r.err);
    cr_assert(strstr(r.out, "echo FILTERED"), "%s", r.out);
    assert_no_seccomp_report(&r);
    proc_result_free(&r);
}

Test(seccomp, sigterm_stops_a_filtered_vm, .timeout = 120)
{
    struct sandbox_proc p;
    bool ready = start_waiting_vm(&p, wisp_bin(), NULL);
    cr_assert(ready, "guest never asked for input:\n%s\n%s", p.out, p.err);
    kill(p.pid, SIGTERM);
    struct proc_result r;
    sandbox_proc_finish(&p, NULL, WISP_TIMEOUT_MS, &r);
    cr_assert_eq(r.status, 128 + SIGTERM, "status %d\n%s", r.status, r.err);
    assert_no_seccomp_report(&r);
    proc_result_free(&r);
}

Test(seccomp, off_and_log_warn, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--seccomp", "off",
             "--cmdline", "test=exit code=7", NULL);
    cr_assert_eq(r.status, 7, "status %d\n%s", r.status, r.err);
    cr_assert(strstr(r.err, "wisp: warning: seccomp is off"), "%s", r.err);
    proc_result_free(&r);

    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--seccomp", "log",
             "--cmdline", "test=report", NULL);
    cr_assert_eq(r.status, GUEST_PASS, "status %d\n%s", r.status, r.err);
    cr_assert(strstr(r.err, "wisp: warning: seccomp is in log mode"), "%s", r.err);
    proc_result_free(&r);

    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--seccomp", "trap", NULL);
    cr_assert_eq(r.status, 2, "status %d\n%s", r.status, r.err);
    cr_assert_str_eq(r.err, "wisp: error: seccomp must be kill, log or off, not 'trap'\n");
    proc_result_free(&r);
}

/* ---- test hooks (wisp built with -DWISP_TEST_HOOKS) ------------------------------------- */

static const char *const hook_roles[] = {"main", "vcpu"};

ParameterizedTestParameters(seccomp, forbidden_syscall_is_reported)
{
    static int roles[] = {0, 1};
    return cr_make_param_array(int, roles, ARRAY_SIZE(roles));
}

ParameterizedTest(int *role, seccomp, forbidden_syscall_is_reported, .timeout = 120)
{
    const char *bin = wisp_hook_bin();
    if (!bin)
        cr_skip_test("no wisp built with -DWISP_TEST_HOOKS (set WISP_TEST_BIN)");
    char env_var[64];
    snprintf(env_var, sizeof(env_var), "WISP_TEST_FORBIDDEN_SYSCALL=%s", hook_roles[*role]);
    char *env[] = {env_var, NULL};
    struct sandbox_proc p;
    start_waiting_vm(&p, bin, env);
    struct proc_result r;
    sandbox_proc_finish(&p, NULL, WISP_TIMEOUT_MS, &r);
    cr_assert_eq(r.status, EXIT_SECCOMP, "status %d\n%s", r.status, r.err);
    /* One line; with two vCPUs either may be the one that reports. */
    const char *who = *role == 0 ? "main" : "wisp-vcpu";
    char want[96];
    snprintf(want, sizeof(want), "wisp: fatal: seccomp: thread %s", who);
    cr_assert(!strncmp(r.err, want, strlen(want)), "stderr:\n%s", r.err);
    const char *tail = " made forbidden syscall socket(41)\n";
    cr_assert(strlen(r.err) > strlen(tail) && !strcmp(r.err + strlen(r.err) - strlen(tail), tail),
              "stderr:\n%s", r.err);
    cr_assert_eq(strchr(r.err, '\n') + 1, r.err + strlen(r.err), "one line:\n%s", r.err);
    proc_result_free(&r);
}

ParameterizedTestParameters(seccomp, abort_in_filtered_thread_is_sigabrt)
{
    static int roles[] = {0, 1};
    return cr_make_param_array(int, roles, ARRAY_SIZE(roles));
}

ParameterizedTest(int *role, seccomp, abort_in_filtered_thread_is_sigabrt, .timeout = 120)
{
    const char *bin = wisp_hook_bin();
    if (!bin)
        cr_skip_test("no wisp built with -DWISP_TEST_HOOKS (set WISP_TEST_BIN)");
    char env_var[64];
    snprintf(env_var, sizeof(env_var), "WISP_TEST_ABORT=%s", hook_roles[*role]);
    char *env[] = {env_var, NULL};
    struct sandbox_proc p;
    start_waiting_vm(&p, bin, env);
    struct proc_result r;
    sandbox_proc_finish(&p, NULL, WISP_TIMEOUT_MS, &r);
    cr_assert_eq(r.status, 128 + SIGABRT, "status %d\n%s", r.status, r.err);
    cr_assert(strstr(r.err, "wisp: fatal: test hook: abort in thread"), "%s", r.err);
    assert_no_seccomp_report(&r);
    proc_result_free(&r);
}

/* ---- the terminal is restored on every seccomp and abort exit --------------------------- */

struct pty_run {
    int status;
    char err[sizeof(((struct pty_proc *)0)->err)];
    bool restored; /* ICANON and ECHO are back on the terminal after wisp exits */
};

/* Run `bin` on a pseudo-terminal (stdin and stdout), stderr captured. */
static void run_on_pty(const char *bin, const char *env_var, const char *cmdline,
                       struct pty_run *res)
{
    const char *argv[] = {bin,       "run", "--kernel",  guest_elf(), "--debug-exit",
                          "--vcpus", "2",   "--cmdline", cmdline,     NULL};
    struct pty_proc p;
    cr_assert_eq(pty_start(&p, (char *const *)(uintptr_t)argv, env_var), 0);
    cr_assert(pty_is_cooked(&p), "a new pty starts in canonical mode with echo");
    res->status = pty_wait(&p, WISP_TIMEOUT_MS);
    snprintf(res->err, sizeof(res->err), "%s", p.err);
    res->restored = pty_is_cooked(&p);
    pty_close(&p);
}

Test(seccomp, terminal_restored_after_guest_exit, .timeout = 120)
{
    struct pty_run r = {0};
    run_on_pty(wisp_bin(), NULL, "test=exit code=5", &r);
    cr_assert_eq(r.status, 5, "status %d: %s", r.status, r.err);
    cr_assert(r.restored, "terminal left in raw mode");
}

struct pty_case {
    int hook; /* 0: forbidden syscall, 1: abort */
    int role; /* index into hook_roles */
};

ParameterizedTestParameters(seccomp, terminal_restored_after_fatal_exit)
{
    static struct pty_case cases[] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};
    return cr_make_param_array(struct pty_case, cases, ARRAY_SIZE(cases));
}

ParameterizedTest(struct pty_case *c, seccomp, terminal_restored_after_fatal_exit, .timeout = 120)
{
    const char *bin = wisp_hook_bin();
    if (!bin)
        cr_skip_test("no wisp built with -DWISP_TEST_HOOKS (set WISP_TEST_BIN)");
    char env_var[64];
    snprintf(env_var, sizeof(env_var), "%s=%s",
             c->hook ? "WISP_TEST_ABORT" : "WISP_TEST_FORBIDDEN_SYSCALL", hook_roles[c->role]);
    struct pty_run r = {0};
    run_on_pty(bin, env_var, "test=echo", &r);
    cr_assert_eq(r.status, c->hook ? 128 + SIGABRT : EXIT_SECCOMP, "%s: status %d: %s", env_var,
                 r.status, r.err);
    cr_assert(r.restored, "%s: terminal left in raw mode", env_var);
}
