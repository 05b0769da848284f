/*
 * The control API on the real binary (docs/API.md): a test guest that prints
 * "tick N" on COM1 every 20 ms (test=tick, serial to a file) runs with
 * --api-sock; the tests talk HTTP/1.1 to the socket and watch the ticks.
 *
 * Why ticks: a paused VM must really stop running guest code, and a resumed
 * one must run again.  The serial file is the guest's only output, written
 * by the vCPU thread itself, so "no new tick for a second" after PATCH
 * Paused answered means no vCPU ran.
 */
#include "tests/lib/api_http.h"
#include "tests/lib/sandbox_proc.h"
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define API_TIMEOUT_S 5  /* API_CONN_TIMEOUT_S in vmm/api/api.h */
#define API_MAX_CONN  16 /* API_MAX_CONNECTIONS */
#define EXIT_SECCOMP  148
#define REPLY_MAX     API_HTTP_REPLY_MAX

struct vm_under_test {
    struct sandbox_proc p;
    char dir[64];
    char sock[96];
    char serial[96];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

/* The number of the last complete "tick N" line in the serial file, or -1. */
static long last_tick(const struct vm_under_test *vm)
{
    size_t len;
    char *text = read_file(vm->serial, &len);
    long last = -1;
    for (char *p = text; p && (p = strstr(p, "tick ")) != NULL; p += 5) {
        char *end;
        long n = strtol(p + 5, &end, 10);
        if (end != p + 5 && *end == '\n')
            last = n;
    }
    free(text);
    return last;
}

static void start_vm(struct vm_under_test *vm, const char *bin, char *const env[],
                     const char *cmdline)
{
    snprintf(vm->dir, sizeof(vm->dir), "/tmp/wisp-api-XXXXXX");
    cr_assert_not_null(mkdtemp(vm->dir));
    snprintf(vm->sock, sizeof(vm->sock), "%s/api.sock", vm->dir);
    snprintf(vm->serial, sizeof(vm->serial), "%s/serial.log", vm->dir);
    char serial_arg[128];
    snprintf(serial_arg, sizeof(serial_arg), "file:%s", vm->serial);
    char *argv[] = {(char *)(uintptr_t)bin,
                    "run",
                    "--kernel",
                    (char *)(uintptr_t)guest_elf(),
                    "--debug-exit",
                    "--vcpus",
                    "2",
                    "--memory",
                    "256M",
                    "--serial",
                    serial_arg,
                    "--api-sock",
                    vm->sock,
                    "--cmdline",
                    (char *)(uintptr_t)cmdline,
                    NULL};
    cr_assert_eq(sandbox_proc_start(&vm->p, argv, env), 0);
}

/* Wait until the guest ticks (and so the API thread exists too). */
static void wait_ticking(struct vm_under_test *vm)
{
    double end = now_s() + WISP_TIMEOUT_MS / 1000.0;
    while (last_tick(vm) < 0) {
        int st;
        cr_assert_eq(waitpid(vm->p.pid, &st, WNOHANG), 0, "wisp ended early: %s",
                     (sandbox_proc_wait_for(&vm->p, "\x01", 10), vm->p.err));
        cr_assert_lt(now_s(), end, "the guest never ticked");
        sleep_ms(50);
    }
}

/* SIGTERM, reap, check status 143 and that the socket file is gone. */
static void stop_vm(struct vm_under_test *vm)
{
    kill(vm->p.pid, SIGTERM);
    struct proc_result r;
    sandbox_proc_finish(&vm->p, NULL, WISP_TIMEOUT_MS, &r);
    cr_assert_not(r.timed_out, "wisp did not stop on SIGTERM");
    cr_assert_eq(r.status, 128 + SIGTERM, "status %d\n%s", r.status, r.err);
    cr_assert_null(strstr(r.err, "seccomp"), "%s", r.err);
    struct stat st;
    cr_assert_lt(stat(vm->sock, &st), 0, "the API socket was left behind");
    proc_result_free(&r);
    unlink(vm->serial);
    rmdir(vm->dir);
}

Test(api, resources_and_faults, .timeout = 180)
{
    struct vm_under_test vm;
    start_vm(&vm, wisp_bin(), NULL, "test=tick");
    wait_ticking(&vm);
    char reply[REPLY_MAX];
    const char *body;

    cr_assert_eq(api_http(vm.sock, "GET", "/", NULL, reply, &body), 200, "%s", reply);
    cr_assert(strstr(body, "\"state\":\"Running\""), "%s", body);
    cr_assert(strstr(body, "\"app_name\":\"wisp\""), "%s", body);
    cr_assert(strstr(body, "\"id\":\"anonymous-instance\""), "%s", body);
    cr_assert(strstr(body, "\"vmm_version\":\""), "%s", body);
    cr_assert(strstr(reply, "Content-Type: application/json"), "%s", reply);

    cr_assert_eq(api_http(vm.sock, "GET", "/version", NULL, reply, &body), 200, "%s", reply);
    cr_assert(strstr(body, "\"vmm_version\":\""), "%s", body);
    cr_assert_eq(api_http(vm.sock, "GET", "/machine-config", NULL, reply, &body), 200, "%s", reply);
    cr_assert(strstr(body, "\"vcpu_count\":2"), "%s", body);
    cr_assert(strstr(body, "\"mem_size_mib\":256"), "%s", body);

    cr_assert_eq(api_http(vm.sock, "GET", "/snapshot/nope", NULL, reply, &body), 404, "%s", reply);
    cr_assert(strstr(body, "\"fault_message\":\"no resource at /snapshot/nope\""), "%s", body);
    cr_assert_eq(api_http(vm.sock, "GET", "/snapshot/create", NULL, reply, &body), 405, "%s",
                 reply);
    cr_assert(strstr(reply, "Allow: PUT"), "%s", reply);
    cr_assert_eq(api_http(vm.sock, "PUT", "/vm", "{}", reply, &body), 405, "%s", reply);
    cr_assert(strstr(reply, "Allow: PATCH"), "%s", reply);
    cr_assert(strstr(body, "fault_message"), "%s", body);

    cr_assert_eq(api_http(vm.sock, "PATCH", "/vm", "{\"state\": \"Paused\"", reply, &body), 400);
    cr_assert(strstr(body, "malformed JSON"), "%s", body);
    cr_assert_eq(api_http(vm.sock, "PATCH", "/vm", "{\"state\": \"Sleeping\"}", reply, &body), 400);
    cr_assert(strstr(body, "state must be"), "%s", body);
    cr_assert_eq(api_http(vm.sock, "PATCH", "/vm", NULL, reply, &body), 400);
    cr_assert(strstr(body, "needs a JSON body"), "%s", body);

    /* Over the 4096-byte cap: by Content-Length, and chunked (no length up front). */
    static char big[6000];
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    cr_assert_eq(api_http(vm.sock, "PATCH", "/vm", big, reply, &body), 413, "%s", reply);
    cr_assert(strstr(body, "request body over 4096 bytes"), "%s", body);
    static char chunked[7000];
    int n = snprintf(chunked, sizeof(chunked),
                     "PATCH /vm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
                     strlen(big), big);
    cr_assert_eq(api_http_raw(vm.sock, chunked, (size_t)n, reply, &body), 413, "%s", reply);
    cr_assert(strstr(body, "request body over 4096 bytes"), "%s", body);

    /* After all that, the guest still runs and the API still answers. */
    long t = last_tick(&vm);
    sleep_ms(500);
    cr_assert_gt(last_tick(&vm), t, "the guest stopped ticking");
    cr_assert_eq(api_http(vm.sock, "GET", "/", NULL, reply, &body), 200, "%s", reply);
    stop_vm(&vm);
}

Test(api, pause_stops_the_guest_and_resume_restarts_it, .timeout = 180)
{
    struct vm_under_test vm;
    start_vm(&vm, wisp_bin(), NULL, "test=tick");
    wait_ticking(&vm);
    char reply[REPLY_MAX];
    const char *body;

    for (int round = 0; round < 3; round++) {
        long before = last_tick(&vm);
        sleep_ms(300);
        cr_assert_gt(last_tick(&vm), before, "round %d: not ticking before the pause", round);

        double t0 = now_s();
        cr_assert_eq(api_http(vm.sock, "PATCH", "/vm", "{\"state\": \"Paused\"}", reply, &body),
                     204, "%s", reply);
        double pause_ms = (now_s() - t0) * 1000;
        fprintf(stderr, "api: round %d: PATCH Paused answered in %.1f ms\n", round, pause_ms);
        long paused_at = last_tick(&vm);
        cr_assert_eq(api_http(vm.sock, "GET", "/", NULL, reply, &body), 200);
        cr_assert(strstr(body, "\"state\":\"Paused\""), "%s", body);
        /* Pausing twice is fine. */
        cr_assert_eq(api_http(vm.sock, "PATCH", "/vm", "{\"state\": \"Paused\"}", reply, &body),
                     204);
        sleep_ms(1000);
        cr_assert_eq(last_tick(&vm), paused_at, "round %d: the guest ran while paused", round);

        cr_assert_eq(api_http(vm.sock, "PATCH", "/vm", "{\"state\": \"Resumed\"}", reply, &body),
                     204, "%s", reply);
        cr_assert_eq(api_http(vm.sock, "GET", "/", NULL, reply, &body), 200);
        cr_assert(strstr(body, "\"state\":\"Running\""), "%s", body);
        double end = now_s() + 10;
        while (last_tick(&vm) <= paused_at && now_s() < end)
            sleep_ms(20);
        cr_assert_gt(last_tick(&vm), paused_at, "round %d: no tick after the resume", round);
    }
    stop_vm(&vm);
}

Test(api, stop_while_paused, .timeout = 120)
{
    struct vm_under_test vm;
    start_vm(&vm, wisp_bin(), NULL, "test=tick");
    wait_ticking(&vm);
    char reply[REPLY_MAX];
    const char *body;
    cr_assert_eq(api_http(vm.sock, "PATCH", "/vm", "{\"state\": \"Paused\"}", reply, &body), 204);
    double t0 = now_s();
    stop_vm(&vm); /* 143, no seccomp report, socket removed */
    fprintf(stderr, "api: SIGTERM while paused: exit after %.1f ms\n", (now_s() - t0) * 1000);
}

Test(api, guest_ends_normally_after_a_pause, .timeout = 120)
{
    struct vm_under_test vm;
    start_vm(&vm, wisp_bin(), NULL, "test=tick tick_count=100 tick_ms=10");
    wait_ticking(&vm);
    char reply[REPLY_MAX];
    const char *body;
    int st = api_http(vm.sock, "PATCH", "/vm", "{\"state\": \"Paused\"}", reply, &body);
    cr_assert(st == 204 || st == -1, "%d %s", st, reply); /* -1: it already finished */
    api_http(vm.sock, "PATCH", "/vm", "{\"state\": \"Resumed\"}", reply, &body);
    struct proc_result r;
    sandbox_proc_finish(&vm.p, NULL, WISP_TIMEOUT_MS, &r);
    cr_assert_eq(r.status, GUEST_PASS, "status %d\n%s", r.status, r.err);
    cr_assert_eq(last_tick(&vm), 99);
    proc_result_free(&r);
    unlink(vm.serial);
    rmdir(vm.dir);
}

Test(api, stalled_clients_stall_nothing, .timeout = 180)
{
    struct vm_under_test vm;
    start_vm(&vm, wisp_bin(), NULL, "test=tick");
    wait_ticking(&vm);
    char reply[REPLY_MAX];
    const char *body;

    /* Half a request, then silence. */
    int stalled = api_http_connect(vm.sock);
    cr_assert_geq(stalled, 0);
    static const char half[] = "PATCH /vm HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{\"sta";
    cr_assert_eq(send(stalled, half, strlen(half), MSG_NOSIGNAL), (ssize_t)strlen(half));
    double t0 = now_s();

    long t = last_tick(&vm);
    double q0 = now_s();
    cr_assert_eq(api_http(vm.sock, "GET", "/", NULL, reply, &body), 200, "%s", reply);
    cr_assert_lt(now_s() - q0, 2.0, "another client waited behind the stalled one");
    sleep_ms(500);
    cr_assert_gt(last_tick(&vm), t, "the guest stopped while a client stalled");

    /* The idle connection is closed after API_TIMEOUT_S, without an answer. */
    char buf[256];
    size_t got = api_http_read_all(stalled, buf, sizeof(buf), (API_TIMEOUT_S + 5) * 1000);
    double closed_after = now_s() - t0;
    cr_assert_eq(got, 0, "a half request got an answer: %s", buf);
    cr_assert_lt(closed_after, API_TIMEOUT_S + 4.0, "not closed after %.1f s", closed_after);
    cr_assert_geq(closed_after, API_TIMEOUT_S - 1.0, "closed after only %.1f s", closed_after);
    close(stalled);
    fprintf(stderr, "api: a stalled client was dropped after %.1f s\n", closed_after);

    /* A full house of stalled clients: the guest runs on, and once they time
     * out the API answers again. */
    int fds[API_MAX_CONN];
    for (int i = 0; i < API_MAX_CONN; i++) {
        fds[i] = api_http_connect(vm.sock);
        cr_assert_geq(fds[i], 0);
        cr_assert_eq(send(fds[i], "GET", 3, MSG_NOSIGNAL), 3);
    }
    t = last_tick(&vm);
    sleep_ms(500);
    cr_assert_gt(last_tick(&vm), t, "the guest stopped behind stalled clients");
    sleep_ms((API_TIMEOUT_S + 2) * 1000);
    cr_assert_eq(api_http(vm.sock, "GET", "/", NULL, reply, &body), 200, "%s", reply);
    for (int i = 0; i < API_MAX_CONN; i++)
        close(fds[i]);
    stop_vm(&vm);
}

/* Run `wisp VERB --api-sock SOCK`. */
static void verb(struct proc_result *r, const char *v, const char *sock)
{
    wisp_run(r, NULL, NULL, v, "--api-sock", sock, NULL);
}

Test(api, cli_verbs, .timeout = 180)
{
    struct vm_under_test vm;
    start_vm(&vm, wisp_bin(), NULL, "test=tick");
    wait_ticking(&vm);
    struct proc_result r;

    verb(&r, "status", vm.sock);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "\"state\":\"Running\""), "%s", r.out);
    proc_result_free(&r);

    verb(&r, "pause", vm.sock);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "");
    proc_result_free(&r);
    long paused_at = last_tick(&vm);
    verb(&r, "status", vm.sock);
    cr_assert(strstr(r.out, "\"state\":\"Paused\""), "%s", r.out);
    proc_result_free(&r);
    sleep_ms(500);
    cr_assert_eq(last_tick(&vm), paused_at, "the guest ran while paused");

    verb(&r, "resume", vm.sock);
    cr_assert_eq(r.status, 0, "%s", r.err);
    proc_result_free(&r);
    verb(&r, "status", vm.sock);
    cr_assert(strstr(r.out, "\"state\":\"Running\""), "%s", r.out);
    proc_result_free(&r);

    /* Documented failures: usage 2, no answer 3. */
    wisp_run(&r, NULL, NULL, "pause", NULL);
    cr_assert_eq(r.status, 2, "%s", r.err);
    cr_assert(strstr(r.err, "wisp: error: --api-sock PATH is required"), "%s", r.err);
    proc_result_free(&r);
    char missing[128];
    snprintf(missing, sizeof(missing), "%s/none.sock", vm.dir);
    verb(&r, "status", missing);
    cr_assert_eq(r.status, 3, "%s", r.err);
    cr_assert(strstr(r.err, "cannot connect"), "%s", r.err);
    proc_result_free(&r);
    stop_vm(&vm);
}

/* The wisp-api thread runs under its own filter, and a forbidden call there ends wisp. */
Test(api, api_thread_is_filtered, .timeout = 120)
{
    struct vm_under_test vm;
    start_vm(&vm, wisp_bin(), NULL, "test=tick");
    wait_ticking(&vm);
    pid_t tids[32];
    int n = sandbox_proc_threads(vm.p.pid, tids, 32);
    bool found = false;
    for (int i = 0; i < n; i++) {
        char path[96], text[4096];
        snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)vm.p.pid, (int)tids[i]);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        size_t len = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[len] = '\0';
        if (!strstr(text, "Name:\twisp-api\n"))
            continue;
        found = true;
        cr_assert(strstr(text, "\nSeccomp:\t2\n"), "wisp-api is not filtered:\n%s", text);
    }
    cr_assert(found, "no wisp-api thread");
    stop_vm(&vm);
}

Test(api, forbidden_syscall_in_api_thread, .timeout = 120)
{
    const char *bin = wisp_hook_bin();
    if (!bin)
        cr_skip_test("no wisp built with -DWISP_TEST_HOOKS (set WISP_TEST_BIN)");
    char *env[] = {"WISP_TEST_FORBIDDEN_SYSCALL=api", NULL};
    struct vm_under_test vm;
    start_vm(&vm, bin, env, "test=tick");
    struct proc_result r;
    sandbox_proc_finish(&vm.p, NULL, WISP_TIMEOUT_MS, &r);
    cr_assert_eq(r.status, EXIT_SECCOMP, "status %d\n%s", r.status, r.err);
    cr_assert(strstr(r.err, "wisp: fatal: seccomp: thread wisp-api made forbidden syscall socket"),
              "%s", r.err);
    proc_result_free(&r);
    unlink(vm.serial);
    unlink(vm.sock); /* a killed wisp cannot remove it */
    rmdir(vm.dir);
}
