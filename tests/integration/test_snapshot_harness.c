/*
 * The snapshot integration tests' harness (test_snapshot.c,
 * test_snapshot_refuse.c): wisp processes booting a migck guest or restoring
 * one, their scratch directory, and the waits and checks they share.
 */
#include "tests/integration/test_snapshot_harness.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/api_http.h"
#include "vmm/util.h"

double ts_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ts_sleep_ms(long ms)
{
    nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

void ts_scratch_init(struct scratch *s)
{
    snprintf(s->dir, sizeof(s->dir), "/tmp/wisp-snap-XXXXXX");
    cr_assert_not_null(mkdtemp(s->dir));
    snprintf(s->sock, sizeof(s->sock), "%s/api.sock", s->dir);
    snprintf(s->snap, sizeof(s->snap), "%s/snap", s->dir);
    cr_assert_eq(mkdir(s->snap, 0700), 0);
}

void ts_scratch_cleanup(struct scratch *s)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
    cr_assert_eq(system(cmd), 0);
}

void ts_start(struct vm *vm, const char *const *args)
{
    const char *argv[48];
    size_t n = 0;
    argv[n++] = wisp_bin();
    argv[n++] = "run";
    for (size_t i = 0; args[i]; i++) {
        cr_assert_lt(n, ARRAY_SIZE(argv) - 1);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    cr_assert_eq(sandbox_proc_start(&vm->p, (char *const *)(uintptr_t)argv, NULL), 0);
    vm->running = true;
}

/*
 * Boot a migck source of MEM_MIB MiB, 2 vCPUs.  `snap`: --snapshot-dir and
 * --api-sock from `s` (else only --api-sock); `disk`: a fresh 1 MiB image
 * as the first virtio-blk device, migck_blk=1.
 */
void ts_start_source(struct vm *vm, const struct scratch *s, bool snap, bool disk, const char *name)
{
    memset(vm, 0, sizeof(*vm));
    snprintf(vm->serial, sizeof(vm->serial), "%s/%s.serial", s->dir, name);
    char serial_arg[200], dev[200], cmdline[128], mem[16];
    snprintf(serial_arg, sizeof(serial_arg), "file:%s", vm->serial);
    snprintf(mem, sizeof(mem), "%dM", MEM_MIB);
    snprintf(cmdline, sizeof(cmdline), "test=migck migck_mb=%d migck_blk=%d", MIGCK_MB,
             disk ? 1 : 0);
    const char *args[32] = {"--kernel", guest_elf(), "--debug-exit", "--vcpus",  "2",
                            "--memory", mem,         "--serial",     serial_arg, "--api-sock",
                            s->sock,    "--cmdline", cmdline};
    size_t n = 13;
    if (snap) {
        args[n++] = "--snapshot-dir";
        args[n++] = s->snap;
    }
    if (disk) {
        snprintf(vm->disk, sizeof(vm->disk), "%s/%s.img", s->dir, name);
        int fd = open(vm->disk, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ftruncate(fd, MIGCK_DISK_BYTES), 0);
        close(fd);
        snprintf(dev, sizeof(dev), "blk,path=%s", vm->disk);
        args[n++] = "--device";
        args[n++] = dev;
    }
    args[n] = NULL;
    ts_start(vm, args);
}

/*
 * Start a clone from s->snap/NAME.state + NAME.mem with the machine options
 * of ts_start_source() (vCPUs, memory and `extra` may differ for the mismatch
 * test); `disk`: the clone's own image.  `extra` ends with NULL.
 */
void ts_start_clone(struct vm *vm, const struct scratch *s, const char *snapname, const char *clone,
                    const char *disk, const char *vcpus, const char *mem, const char *const *extra)
{
    memset(vm, 0, sizeof(*vm));
    snprintf(vm->serial, sizeof(vm->serial), "%s/%s.serial", s->dir, clone);
    char state[200], memf[200], serial_arg[200], dev[200];
    snprintf(state, sizeof(state), "%s/%s.state", s->snap, snapname);
    snprintf(memf, sizeof(memf), "%s/%s.mem", s->snap, snapname);
    snprintf(serial_arg, sizeof(serial_arg), "file:%s", vm->serial);
    const char *args[40] = {"--restore", state, "--restore-mem", memf, "--debug-exit",
                            "--vcpus",   vcpus, "--memory",      mem,  "--serial",
                            serial_arg};
    size_t n = 11;
    if (disk) {
        snprintf(vm->disk, sizeof(vm->disk), "%s", disk);
        snprintf(dev, sizeof(dev), "blk,path=%s", disk);
        args[n++] = "--device";
        args[n++] = dev;
    }
    for (size_t i = 0; extra && extra[i]; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    ts_start(vm, args);
}

/* For a failure message: each thread of `pid` as "name state utime+stime;". */
static void ts_thread_report(pid_t pid, char *out, size_t cap)
{
    pid_t tids[64];
    int n = sandbox_proc_threads(pid, tids, 64);
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < n && used + 80 < cap; i++) {
        char path[96], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tids[i]);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        char *name = strchr(buf, '('), *end = strrchr(buf, ')');
        if (!name || !end)
            continue;
        char state;
        unsigned long ut = 0, st = 0;
        /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
         * stime */
        if (sscanf(end + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &state, &ut,
                   &st) != 3)
            continue;
        used += (size_t)snprintf(out + used, cap - used, "%.*s %c %lu; ", (int)(end - name - 1),
                                 name + 1, state, ut + st);
    }
}

/* The last `n` bytes of a file, for a failure message (static buffer). */
const char *ts_tail_of(const char *path, size_t n)
{
    static char buf[512];
    size_t len;
    char *text = read_file(path, &len);
    if (n >= sizeof(buf))
        n = sizeof(buf) - 1;
    snprintf(buf, sizeof(buf), "%s", text ? text + (len > n ? len - n : 0) : "(none)");
    free(text);
    return buf;
}

/* Wait until the guest printed a migck N > `beyond`; fails on FAIL or an early exit. */
struct migck ts_wait_migck(struct vm *vm, long beyond, const char *what)
{
    struct migck m;
    double end = ts_now_s() + LONG_MS / 1000.0;
    for (;;) {
        migck_scan(vm->serial, &m);
        cr_assert_not(m.fail, "%s: %s\nserial ends: %s", what, m.fail_line,
                      ts_tail_of(vm->serial, 300));
        if (m.last > beyond)
            return m;
        int st;
        if (waitpid(vm->p.pid, &st, WNOHANG) == vm->p.pid) {
            vm->running = false;
            sandbox_proc_wait_for(&vm->p, "\x01", 100);
            cr_assert_fail("%s: wisp ended early (status 0x%x): %s", what, st, vm->p.err);
        }
        if (ts_now_s() >= end) {
            char threads[1024], t2[1024];
            ts_thread_report(vm->p.pid, threads, sizeof(threads));
            ts_sleep_ms(1000);
            ts_thread_report(vm->p.pid, t2, sizeof(t2));
            cr_assert_fail("%s: no migck N > %ld within %d ms (last %ld)\nthreads: %s\n"
                           "1 s later: %s\nserial ends: %s",
                           what, beyond, LONG_MS, m.last, threads, t2, ts_tail_of(vm->serial, 300));
        }
        ts_sleep_ms(50);
    }
}

/* Reap wisp (after `sig`, if not 0) and return its result; never status 148. */
void ts_finish(struct vm *vm, int sig, int want_status, struct proc_result *r)
{
    if (sig) {
        cr_assert(wisp_wait_signal_blocked(vm->p.pid, sig, 10000));
        kill(vm->p.pid, sig);
    }
    sandbox_proc_finish(&vm->p, NULL, LONG_MS, r);
    vm->running = false;
    cr_assert_not(r->timed_out, "wisp did not exit\n%s", r->err);
    cr_assert_neq(r->status, EXIT_SECCOMP, "seccomp killed wisp:\n%s", r->err);
    cr_assert_null(strstr(r->err, "seccomp"), "%s", r->err);
    cr_assert_eq(r->status, want_status, "status %d, want %d\n%s", r->status, want_status, r->err);
}

void ts_stop(struct vm *vm)
{
    struct proc_result r;
    ts_finish(vm, SIGTERM, 128 + SIGTERM, &r);
    proc_result_free(&r);
}

/* `wisp snapshot create --api-sock S --state NAME.state --mem NAME.mem [--stop]`; returns
 * its JSON answer's mem_data_pages after checking status 0 and mem_bytes. */
long ts_cli_snapshot(const struct scratch *s, const char *name, bool stop_after)
{
    char state[80], mem[80];
    snprintf(state, sizeof(state), "%s.state", name);
    snprintf(mem, sizeof(mem), "%s.mem", name);
    struct proc_result r;
    if (stop_after)
        wisp_run(&r, NULL, NULL, "snapshot", "create", "--api-sock", s->sock, "--state", state,
                 "--mem", mem, "--stop", NULL);
    else
        wisp_run(&r, NULL, NULL, "snapshot", "create", "--api-sock", s->sock, "--state", state,
                 "--mem", mem, NULL);
    cr_assert_eq(r.status, 0, "snapshot create: status %d\n%s%s", r.status, r.out, r.err);
    char want[64];
    snprintf(want, sizeof(want), "\"mem_bytes\":%llu", (unsigned long long)MEM_BYTES);
    cr_assert(strstr(r.out, want), "no %s in %s", want, r.out);
    const char *p = strstr(r.out, "\"mem_data_pages\":");
    cr_assert_not_null(p, "%s", r.out);
    long pages = strtol(p + 17, NULL, 10);
    cr_assert_gt(pages, 0, "%s", r.out);
    cr_assert_leq(pages, (long)(MEM_BYTES / 4096), "%s", r.out);
    fprintf(stderr, "snapshot: %s", r.out);
    proc_result_free(&r);
    return pages;
}

void ts_copy_file(const char *from, const char *to)
{
    size_t len;
    char *data = read_file(from, &len);
    cr_assert_not_null(data, "%s", from);
    FILE *f = fopen(to, "wbe");
    cr_assert_not_null(f, "%s", to);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
    free(data);
}

/* PUT /snapshot/create with `json`: the status, and `want` in the fault message. */
void ts_api_fault(const struct scratch *s, const char *method, const char *path, const char *json,
                  int want_status, const char *want)
{
    char reply[API_HTTP_REPLY_MAX];
    const char *body = NULL;
    int st = api_http(s->sock, method, path, json, reply, &body);
    cr_assert_eq(st, want_status, "%s %s %s: %d\n%s", method, path, json ? json : "", st, reply);
    cr_assert(body && strstr(body, "fault_message"), "%s %s: %s", method, path, reply);
    cr_assert(strstr(body, want), "%s %s %s: no \"%s\" in %s", method, path, json ? json : "", want,
              body);
}

void ts_still_running(struct vm *vm)
{
    struct migck m;
    migck_scan(vm->serial, &m);
    m = ts_wait_migck(vm, m.last, "after the faults");
    ts_wait_migck(vm, m.last, "after the faults");
}
