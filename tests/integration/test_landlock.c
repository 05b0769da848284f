/*
 * Landlock in a running wisp (sandbox/landlock.c): after set-up the process can
 * open no file; --landlock off and on behave as documented; a console
 * socket is still removed at exit; --stats still reads /proc/self.
 * The test-hook build's WISP_TEST_OPEN=r:PATH (or w:PATH) makes the running
 * main thread open PATH for reading (writing) and log the outcome; seccomp
 * is off there so that its openat() refusal does not hide Landlock's answer.
 * Sanitizer builds of wisp may read any file (report symbolisation), so the
 * refusals are checked with writes, which no build may do.
 */
#include "sandbox/landlock.h"
#include "tests/lib/proc.h"
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static bool have_landlock(void)
{
    return landlock_abi() > 0;
}

/* Run the hook build with WISP_TEST_OPEN=path and extra options. */
static void run_open(struct proc_result *r, const char *how_path, const char *const *extra)
{
    const char *bin = wisp_hook_bin();
    if (!bin)
        cr_skip_test("no wisp built with -DWISP_TEST_HOOKS (set WISP_TEST_BIN)");
    const char *argv[24] = {bin,        "run",  "--kernel",  guest_elf(), "--debug-exit",
                            "--serial", "none", "--seccomp", "off"};
    size_t n = 9;
    for (size_t i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n++] = "--cmdline";
    argv[n++] = "test=exit code=5";
    argv[n] = NULL;
    char env[512];
    snprintf(env, sizeof(env), "WISP_TEST_OPEN=%s", how_path);
    char *envp[] = {env, NULL};
    cr_assert_eq(proc_run((char *const *)(uintptr_t)argv, envp, NULL, 0, WISP_TIMEOUT_MS, r), 0);
    cr_assert_eq(r->status, 5, "status %d: %s", r->status, r->err);
}

/* "w:<a fresh temp file>" */
static char *writable_file(char *how, size_t size)
{
    char *f = write_temp("x", 1);
    snprintf(how, size, "w:%s", f);
    return f;
}

Test(landlock, default_refuses_opens_after_setup, .timeout = 120)
{
    if (!have_landlock())
        cr_skip_test("this kernel has no Landlock");
    char how[256];
    char *f = writable_file(how, sizeof(how));
    struct proc_result r;
    run_open(&r, how, NULL);
    unlink(f);
    free(f);
    cr_assert(strstr(r.err, ": Permission denied"), "%s", r.err);
    proc_result_free(&r);
}

Test(landlock, on_refuses_and_off_allows, .timeout = 120)
{
    if (!have_landlock())
        cr_skip_test("this kernel has no Landlock");
    char how[256];
    char *f = writable_file(how, sizeof(how));
    struct proc_result r;
    const char *on[] = {"--landlock", "on", NULL};
    run_open(&r, how, on);
    cr_assert(strstr(r.err, ": Permission denied"), "%s", r.err);
    proc_result_free(&r);
    const char *off[] = {"--landlock", "off", NULL};
    run_open(&r, how, off);
    cr_assert(strstr(r.err, ": allowed"), "%s", r.err);
    proc_result_free(&r);
    unlink(f);
    free(f);
}

Test(landlock, stats_may_read_proc_self_only, .timeout = 120)
{
    if (!have_landlock())
        cr_skip_test("this kernel has no Landlock");
    struct proc_result r;
    const char *stats[] = {"--stats", NULL};
    run_open(&r, "r:/proc/self/status", stats);
    cr_assert(strstr(r.err, "open /proc/self/status: allowed"), "%s", r.err);
    cr_assert(strstr(r.err, "\"wisp_stats\":1"), "%s", r.err);
    proc_result_free(&r);
#ifndef __SANITIZE_ADDRESS__ /* a sanitizer build of wisp may read anything */
    run_open(&r, "r:/proc/self/status", NULL);
    cr_assert(strstr(r.err, "open /proc/self/status: Permission denied"), "%s", r.err);
    proc_result_free(&r);
#endif
}

/*
 * --snapshot-dir: files there may be written once running (snapshots are
 * created there), files anywhere else still may not.
 */
Test(landlock, snapshot_dir_is_the_only_writable_place, .timeout = 120)
{
    if (!have_landlock())
        cr_skip_test("this kernel has no Landlock");
    char dir[] = "/tmp/wisp-lls-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char inside[128], how[160];
    snprintf(inside, sizeof(inside), "%s/snap.state", dir);
    FILE *f = fopen(inside, "w");
    cr_assert_not_null(f);
    fclose(f);
    const char *opt[] = {"--snapshot-dir", dir, NULL};
    struct proc_result r;
    snprintf(how, sizeof(how), "w:%s", inside);
    run_open(&r, how, opt);
    cr_assert(strstr(r.err, ": allowed"), "%s", r.err);
    proc_result_free(&r);
    char *outside = writable_file(how, sizeof(how));
    run_open(&r, how, opt);
    cr_assert(strstr(r.err, ": Permission denied"), "%s", r.err);
    proc_result_free(&r);
    unlink(outside);
    free(outside);
    unlink(inside);
    rmdir(dir);
}

Test(landlock, console_socket_removed_at_exit, .timeout = 120)
{
    char dir[] = "/tmp/wisp-ll-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char sock[96], dev[128];
    snprintf(sock, sizeof(sock), "%s/console.sock", dir);
    snprintf(dev, sizeof(dev), "console,socket=%s", sock);
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--landlock", "auto",
             "--device", dev, "--cmdline", "test=exit code=6", NULL);
    cr_assert_eq(r.status, 6, "%d: %s", r.status, r.err);
    cr_assert_neq(access(sock, F_OK), 0, "console socket left behind: %s", r.err);
    cr_assert_eq(rmdir(dir), 0);
    proc_result_free(&r);
}

Test(landlock, bad_mode_is_a_usage_error, .timeout = 60)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--landlock", "maybe", NULL);
    cr_assert_eq(r.status, 2, "%d: %s", r.status, r.err);
    cr_assert(strstr(r.err, "landlock must be auto, on or off, not 'maybe'"), "%s", r.err);
    proc_result_free(&r);
}
