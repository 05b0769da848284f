/*
 * wisp on a terminal, as a user runs it: stdin goes raw while the guest owns
 * the console (the serial port or a virtio console on stdio), Ctrl-A x stops
 * the VM, Ctrl-A Ctrl-A and Ctrl-A <key> reach the guest as one key, and the
 * terminal is cooked again after wisp exits.
 */
#include "tests/lib/pty.h"
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_MS 60000

static void start(struct pty_proc *p, const char *const *extra, const char *cmdline)
{
    const char *argv[24] = {wisp_bin(), "run", "--kernel", guest_elf(), "--debug-exit"};
    size_t n = 5;
    for (size_t i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n++] = "--cmdline";
    argv[n++] = cmdline;
    argv[n] = NULL;
    cr_assert_eq(pty_start(p, (char *const *)(uintptr_t)argv, NULL), 0);
}

/* ---- serial port on stdio ---- */

Test(terminal, serial_raw_and_escape_passthrough, .timeout = 120)
{
    struct pty_proc p;
    start(&p, NULL, "test=echo");
    cr_assert(pty_expect(&p, "echo ready", WAIT_MS), "no prompt: %s", p.out);
    cr_assert_not(pty_is_cooked(&p), "the terminal must be raw while the guest runs");
    /* Ctrl-A d sends d alone; Ctrl-A Ctrl-A one Ctrl-A (the guest echoes it as is). */
    cr_assert(pty_type(&p, "ab\001dc\001\001e\n", 9));
    int st = pty_wait(&p, WAIT_MS);
    cr_assert_eq(st, GUEST_PASS, "status %d\n%s\n%s", st, p.out, p.err);
    cr_assert(strstr(p.out, "echo ABDC\001E"), "%s", p.out);
    cr_assert(pty_is_cooked(&p), "terminal left raw");
    pty_close(&p);
}

Test(terminal, serial_ctrl_a_x_stops, .timeout = 120)
{
    struct pty_proc p;
    const char *extra[] = {"--log-level", "info", NULL};
    start(&p, extra, "test=echo");
    cr_assert(pty_expect(&p, "echo ready", WAIT_MS), "no prompt: %s", p.out);
    /* The escape may span two reads. */
    cr_assert(pty_type(&p, "\001", 1));
    usleep(50000);
    cr_assert(pty_type(&p, "x", 1));
    int st = pty_wait(&p, WAIT_MS);
    cr_assert_eq(st, 128 + SIGINT, "status %d\n%s\n%s", st, p.out, p.err);
    cr_assert(strstr(p.err, "Ctrl-A x"), "%s", p.err);
    cr_assert(pty_is_cooked(&p), "terminal left raw");
    pty_close(&p);
}

/* ---- virtio console on stdio ---- */

Test(terminal, console_raw_and_escape_passthrough, .timeout = 120)
{
    struct pty_proc p;
    const char *extra[] = {"--serial", "none", "--device", "console", NULL};
    start(&p, extra, "test=console");
    cr_assert(pty_expect(&p, "console hello", WAIT_MS), "no hello: %s", p.out);
    cr_assert_not(pty_is_cooked(&p), "the terminal must be raw while the guest runs");
    cr_assert(pty_type(&p, "hi\001there\n", 9));
    int st = pty_wait(&p, WAIT_MS);
    /* Serial is off: the guest's verdict is the exit status. */
    cr_assert_eq(st, GUEST_PASS, "status %d\n%s\n%s", st, p.out, p.err);
    cr_assert(pty_is_cooked(&p), "terminal left raw");
    pty_close(&p);
}

Test(terminal, console_input_is_filtered, .timeout = 120)
{
    /* The same, with the serial report in a file to read what the guest got. */
    char path[] = "/tmp/wisp-term-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    char serial[64];
    snprintf(serial, sizeof(serial), "file:%s", path);
    struct pty_proc p;
    const char *extra[] = {"--serial", serial, "--device", "console", NULL};
    start(&p, extra, "test=console");
    cr_assert(pty_expect(&p, "console hello", WAIT_MS), "no hello: %s", p.out);
    cr_assert(pty_type(&p, "hi\001\001 \001tx\n", 10));
    int st = pty_wait(&p, WAIT_MS);
    char *text = read_file(path, NULL);
    unlink(path);
    cr_assert_eq(st, GUEST_PASS, "status %d\n%s\n%s", st, p.err, text ? text : "");
    cr_assert_not_null(text);
    cr_assert(strstr(text, "console got HI\001 TX"), "%s", text);
    free(text);
    pty_close(&p);
}

Test(terminal, console_ctrl_a_x_stops, .timeout = 120)
{
    struct pty_proc p;
    const char *extra[] = {"--serial", "none", "--device", "console", "--log-level", "info", NULL};
    start(&p, extra, "test=console");
    cr_assert(pty_expect(&p, "console hello", WAIT_MS), "no hello: %s", p.out);
    cr_assert(pty_type(&p, "\001x", 2));
    int st = pty_wait(&p, WAIT_MS);
    cr_assert_eq(st, 128 + SIGINT, "status %d\n%s\n%s", st, p.out, p.err);
    cr_assert(strstr(p.err, "Ctrl-A x"), "%s", p.err);
    cr_assert(pty_is_cooked(&p), "terminal left raw");
    pty_close(&p);
}

/* Input that is not a terminal is passed through untouched: no escape. */
Test(terminal, pipe_input_has_no_escape, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, "a\001xb\n", NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--cmdline",
             "test=echo", NULL);
    cr_assert_eq(r.status, GUEST_PASS, "%d\n%s\n%s", r.status, r.out, r.err);
    cr_assert(strstr(r.out, "echo A\001XB"), "%s", r.out);
    proc_result_free(&r);
}
