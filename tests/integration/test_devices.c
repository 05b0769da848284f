/*
 * Legacy devices end to end: serial output and input (polled and through
 * IRQ 4 / irqfd), i8042 reset, triple fault, debug-exit status, unassigned
 * ports and MMIO, serial sinks, --stats.
 */
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define ASSERT_OUT(r, s)                                                                           \
    cr_assert(strstr((r)->out, (s)), "missing '%s' in stdout:\n%s\nstderr:\n%s", (s), (r)->out,    \
              (r)->err)

Test(devices, serial_input_polled, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, "hello wisp\n", NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--cmdline",
             "test=echo", NULL);
    cr_assert_eq(r.status, GUEST_PASS, "%d\n%s\n%s", r.status, r.out, r.err);
    ASSERT_OUT(&r, "echo HELLO WISP");
    proc_result_free(&r);
}

Test(devices, serial_input_interrupts, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, "irq path\n", NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--cmdline",
             "test=serial-irq", NULL);
    cr_assert_eq(r.status, GUEST_PASS, "%d\n%s\n%s", r.status, r.out, r.err);
    ASSERT_OUT(&r, "IRQ PATH");
    cr_assert_null(strstr(r.out, "rx_irqs=0 "), "%s", r.out);
    cr_assert_null(strstr(r.out, "thre_irqs=0"), "%s", r.out);
    proc_result_free(&r);
}

Test(devices, i8042_reset_exits_zero, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--cmdline",
             "test=reset", NULL);
    cr_assert_eq(r.status, 0, "%d\n%s\n%s", r.status, r.out, r.err);
    proc_result_free(&r);
}

Test(devices, triple_fault_is_reset, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--cmdline",
             "test=triple", "--log-level", "info", NULL);
    cr_assert_eq(r.status, 0, "%d\n%s\n%s", r.status, r.out, r.err);
    cr_assert(strstr(r.err, "triple fault"), "%s", r.err);
    proc_result_free(&r);
}

Test(devices, debug_exit_value_is_status, .timeout = 120)
{
    const char *codes[] = {"0", "7", "42", "255"};
    for (size_t i = 0; i < ARRAY_SIZE(codes); i++) {
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "test=exit code=%s", codes[i]);
        struct proc_result r;
        wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--cmdline", cmd,
                 NULL);
        cr_assert_eq(r.status, atoi(codes[i]), "code %s gave %d: %s", codes[i], r.status, r.err);
        proc_result_free(&r);
    }
}

/* The boot benchmark times QEMU by the byte the guest writes just before its
 * exit (mark=1): it must reach stdout before wisp exits, and only then. */
Test(devices, exit_mark_precedes_exit, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--cmdline",
             "test=exit code=4 mark=1", NULL);
    cr_assert_eq(r.status, 4, "%d: %s", r.status, r.err);
    cr_assert_eq(r.out_len, 1, "stdout: '%s'", r.out);
    cr_assert_eq(r.out[0], '!');
    proc_result_free(&r);
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--cmdline",
             "test=exit code=4", NULL);
    cr_assert_eq(r.status, 4);
    cr_assert_eq(r.out_len, 0, "no mark without mark=1: '%s'", r.out);
    proc_result_free(&r);
}

Test(devices, no_debug_exit_port_without_flag, .timeout = 120)
{
    /* Without --debug-exit the port is unassigned: the guest's write is ignored
     * and the guest falls back to an i8042 reset, so wisp exits 0, not 9. */
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--cmdline", "test=exit code=9", NULL);
    cr_assert_eq(r.status, 0, "%d\n%s", r.status, r.err);
    proc_result_free(&r);
}

Test(devices, unassigned_io_is_harmless, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--cmdline",
             "test=badio", NULL);
    cr_assert_eq(r.status, GUEST_PASS, "%d\n%s\n%s", r.status, r.out, r.err);
    ASSERT_OUT(&r, "badio survived");
    proc_result_free(&r);
}

Test(devices, serial_to_file_and_none, .timeout = 120)
{
    char path[] = "/tmp/wisp-serial-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char serial[128];
    snprintf(serial, sizeof(serial), "file:%s", path);
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--serial", serial,
             "--cmdline", "test=report", NULL);
    cr_assert_eq(r.status, GUEST_PASS, "%d %s", r.status, r.err);
    cr_assert_eq(r.out_len, 0, "stdout should be empty: %s", r.out);
    char *text = read_file(path, NULL);
    unlink(path);
    cr_assert_not_null(text);
    cr_assert(strstr(text, "RESULT PASS"), "%s", text);
    free(text);
    proc_result_free(&r);

    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--serial", "none",
             "--cmdline", "test=report", NULL);
    cr_assert_eq(r.status, GUEST_PASS);
    cr_assert_eq(r.out_len, 0);
    proc_result_free(&r);
}

Test(devices, stats_line, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--stats", "--cmdline",
             "test=exit code=3", NULL);
    cr_assert_eq(r.status, 3);
    cr_assert(strstr(r.err, "\"wisp_stats\":1"), "%s", r.err);
    cr_assert(strstr(r.err, "\"exit_code\":3"), "%s", r.err);
    proc_result_free(&r);
}

/* Start wisp with stdin kept open (a pipe we hold), wait for `ready` on stdout. */
static pid_t spawn_waiting(const char *ready, int *in_fd, int *out_fd)
{
    int pin[2], pout[2];
    cr_assert_eq(pipe(pin), 0);
    cr_assert_eq(pipe(pout), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        close(pin[1]);
        close(pout[0]);
        execl(wisp_bin(), wisp_bin(), "run", "--kernel", guest_elf(), "--debug-exit", "--cmdline",
              "test=echo", (char *)NULL);
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    char buf[4096];
    size_t got = 0;
    while (got < sizeof(buf) - 1) {
        ssize_t n = read(pout[0], buf + got, sizeof(buf) - 1 - got);
        cr_assert_gt(n, 0, "wisp ended before '%s'", ready);
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, ready))
            break;
    }
    *in_fd = pin[1];
    *out_fd = pout[0];
    return pid;
}

static void stop_with_signal(int sig)
{
    int in_fd, out_fd;
    pid_t pid = spawn_waiting("echo ready", &in_fd, &out_fd);
    cr_assert_eq(kill(pid, sig), 0);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "wisp died from signal %d instead of exiting", WTERMSIG(st));
    cr_assert_eq(WEXITSTATUS(st), 128 + sig);
    close(in_fd);
    close(out_fd);
}

Test(devices, sigterm_exits_143, .timeout = 120)
{
    stop_with_signal(SIGTERM);
}

Test(devices, sigint_exits_130, .timeout = 120)
{
    stop_with_signal(SIGINT);
}

Test(devices, stdin_eof_keeps_guest_running, .timeout = 120)
{
    /* Closing stdin is not a reason to stop the VM: the guest keeps waiting
     * for input until it is stopped. */
    int in_fd, out_fd;
    pid_t pid = spawn_waiting("echo ready", &in_fd, &out_fd);
    close(in_fd);
    usleep(300 * 1000);
    int st;
    cr_assert_eq(waitpid(pid, &st, WNOHANG), 0, "wisp exited after stdin EOF");
    kill(pid, SIGTERM);
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    close(out_fd);
}
