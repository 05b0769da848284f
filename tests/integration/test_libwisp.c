/*
 * libwisp under KVM (docs/LIBWISP.md): examples/boot.c, built against an
 * installed copy (tests/libwisp/build-example), boots the test guest and
 * reports its status; and a program driving the library in-process pauses,
 * resumes, snapshots, restores and live-migrates (to a real `wisp run
 * --incoming`) a VM running the migck workload, whose
 * counter in guest memory shows what ran when.  The in-process tests link
 * the library's objects from the core archive (the same code libwisp.so
 * exports); each Criterion test is its own process, one VM at a time.
 */
#include "include/wisp/wisp.h"
#include "tests/lib/sandbox_proc.h"
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LONG_MS 120000

/* The static example next to the wisp binary under test (make libwisp-example). */
static const char *example_bin(void)
{
    static char path[4096];
    const char *env = getenv("WISP_LIBWISP_BOOT");
    if (env)
        return env;
    char wisp[4096];
    snprintf(wisp, sizeof(wisp), "%s", wisp_bin());
    snprintf(path, sizeof(path), "%s/libwisp-example/boot-static", dirname(wisp));
    cr_assert_eq(access(path, X_OK), 0, "%s missing: run `make libwisp-example`", path);
    return path;
}

Test(libwisp, example_boots_the_guest, .timeout = 180)
{
    struct proc_result r;
    const char *argv[] = {example_bin(),  guest_elf(), "--cmdline", "test=report cpus=1 mem=256",
                          "--debug-exit", NULL};
    cr_assert_eq(proc_run((char *const *)(uintptr_t)argv, NULL, NULL, 0, LONG_MS, &r), 0);
    cr_assert_eq(r.status, GUEST_PASS, "status %d\nstdout:\n%s\nstderr:\n%s", r.status, r.out,
                 r.err);
    cr_assert(strstr(r.out, "RESULT PASS"), "no RESULT PASS on the console:\n%s", r.out);
    char want[64];
    snprintf(want, sizeof(want), "boot: exit status %d", GUEST_PASS);
    cr_assert(strstr(r.err, want), "no '%s' in stderr:\n%s", want, r.err);
}

/* ---- in-process: pause, resume, snapshot, restore ---- */

struct scratch {
    char dir[64];
    char snap[96];
    char serial[128];
};

static void sleep_ms(long ms)
{
    nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

/* The last "migck N ok" count in the console file, or -1. */
static long migck_last(const char *serial)
{
    char *text = read_file(serial, NULL);
    long last = -1;
    for (char *p = text; p && (p = strstr(p, "migck ")); p += 6) {
        char *end;
        long n = strtol(p + 6, &end, 10);
        if (end != p + 6 && !strncmp(end, " ok", 3))
            last = n;
    }
    cr_assert(!text || !strstr(text, "FAIL"), "the guest failed:\n%s", text);
    free(text);
    return last;
}

/* Wait (bounded) until the count exceeds `than`; returns it. */
static long migck_wait_above(const char *serial, long than, const char *what)
{
    for (int i = 0; i < LONG_MS / 50; i++) {
        long n = migck_last(serial);
        if (n > than)
            return n;
        sleep_ms(50);
    }
    cr_assert_fail("migck did not pass %ld within %d ms (%s)", than, LONG_MS, what);
    return -1;
}

static struct wisp_config *migck_config(struct scratch *s, const char *serial_name)
{
    struct wisp_config *cfg;
    struct wisp_error err;
    char serial[200];
    snprintf(s->serial, sizeof(s->serial), "%s/%s", s->dir, serial_name);
    snprintf(serial, sizeof(serial), "file:%s", s->serial);
    cr_assert_eq(wisp_config_new(&cfg, &err), 0);
    cr_assert_eq(wisp_config_set_kernel(cfg, guest_elf(), &err), 0, "%s", err.msg);
    cr_assert_eq(wisp_config_set_cmdline(cfg, "test=migck migck_mb=4", &err), 0, "%s", err.msg);
    cr_assert_eq(wisp_config_set_memory(cfg, 128ull << 20, &err), 0, "%s", err.msg);
    cr_assert_eq(wisp_config_set_vcpus(cfg, 2, &err), 0, "%s", err.msg);
    cr_assert_eq(wisp_config_set(cfg, "serial", serial, &err), 0, "%s", err.msg);
    cr_assert_eq(wisp_config_set(cfg, "debug-exit", NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(wisp_config_set(cfg, "snapshot-dir", s->snap, &err), 0, "%s", err.msg);
    return cfg;
}

static void scratch_init(struct scratch *s)
{
    snprintf(s->dir, sizeof(s->dir), "/tmp/libwisp-XXXXXX");
    cr_assert_not_null(mkdtemp(s->dir));
    snprintf(s->snap, sizeof(s->snap), "%s/snap", s->dir);
    cr_assert_eq(mkdir(s->snap, 0700), 0);
}

static void scratch_cleanup(struct scratch *s)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
    cr_assert_eq(system(cmd), 0);
}

Test(libwisp, pause_resume_snapshot_restore, .timeout = 400)
{
    struct scratch s;
    struct wisp_error err;
    struct wisp_vm *vm, *other;
    int status = -1;
    scratch_init(&s);
    struct wisp_config *cfg = migck_config(&s, "source.serial");

    cr_assert_eq(wisp_vm_create(cfg, &vm, &err), 0, "create: %s", err.msg);
    /* One VM per process at a time. */
    cr_assert_eq(wisp_vm_create(cfg, &other, &err), -EBUSY);
    cr_assert(strstr(err.msg, "one at a time"), "%s", err.msg);
    cr_assert_eq(wisp_vm_pause(vm, &err), -EINVAL, "pause before start: %d", err.code);
    cr_assert_eq(wisp_vm_start(vm, &err), 0, "start: %s", err.msg);
    cr_assert_eq(wisp_vm_start(vm, &err), -EALREADY);
    cr_assert_eq(wisp_vm_wait(vm, 0, &status, &err), -ETIMEDOUT);
    long n = migck_wait_above(s.serial, 2, "after start");

    /* Paused: the counter stands still; resumed: it goes on. */
    cr_assert_eq(wisp_vm_pause(vm, &err), 0, "pause: %s", err.msg);
    long at_pause = migck_last(s.serial);
    sleep_ms(1500);
    cr_assert_eq(migck_last(s.serial), at_pause, "migck ran while paused");
    cr_assert_eq(wisp_vm_resume(vm, &err), 0, "resume: %s", err.msg);
    n = migck_wait_above(s.serial, at_pause + 1, "after resume");

    /* A snapshot names plain files in the snapshot directory. */
    cr_assert_eq(wisp_vm_snapshot(vm, "../x.state", "x.mem", &err), -EINVAL);
    cr_assert(strstr(err.msg, "plain names"), "%s", err.msg);
    cr_assert_eq(wisp_vm_snapshot(vm, "s.state", "s.mem", &err), 0, "snapshot: %s", err.msg);
    long at_snap = migck_last(s.serial);
    cr_assert_geq(at_snap, n);
    /* The source carries on after the snapshot, until stopped. */
    migck_wait_above(s.serial, at_snap + 1, "source after the snapshot");
    cr_assert_eq(wisp_vm_stop(vm, &err), 0);
    cr_assert_eq(wisp_vm_wait(vm, LONG_MS, &status, &err), 0, "wait: %s", err.msg);
    cr_assert_eq(status, 128 + SIGTERM);
    cr_assert_eq(wisp_vm_pause(vm, &err), -ESHUTDOWN);
    wisp_vm_destroy(vm);

    /* The restored VM goes on from the snapshot's count, not from zero. */
    char state[160], mem[160];
    snprintf(state, sizeof(state), "%s/s.state", s.snap);
    snprintf(mem, sizeof(mem), "%s/s.mem", s.snap);
    struct wisp_config *ccfg = migck_config(&s, "clone.serial");
    cr_assert_eq(wisp_vm_restore(ccfg, state, mem, &vm, &err), 0, "restore: %s", err.msg);
    cr_assert_eq(wisp_vm_start(vm, &err), 0, "start the clone: %s", err.msg);
    long first = migck_wait_above(s.serial, -1, "clone");
    cr_assert_geq(first, at_snap - 1, "the clone started at %ld, the snapshot was at %ld", first,
                  at_snap);
    migck_wait_above(s.serial, first + 1, "clone keeps counting");
    wisp_vm_destroy(vm); /* stops a running VM */
    wisp_config_free(ccfg);
    wisp_config_free(cfg);
    scratch_cleanup(&s);
}

Test(libwisp, restore_mismatch_is_reported, .timeout = 300)
{
    struct scratch s;
    struct wisp_error err;
    struct wisp_vm *vm;
    scratch_init(&s);
    struct wisp_config *cfg = migck_config(&s, "a.serial");
    cr_assert_eq(wisp_vm_create(cfg, &vm, &err), 0, "create: %s", err.msg);
    cr_assert_eq(wisp_vm_start(vm, &err), 0, "start: %s", err.msg);
    migck_wait_above(s.serial, 0, "after start");
    cr_assert_eq(wisp_vm_snapshot(vm, "m.state", "m.mem", &err), 0, "snapshot: %s", err.msg);
    wisp_vm_destroy(vm);

    /* Another vCPU count: the start reports the mismatch, as --restore does. */
    char state[160], mem[160];
    snprintf(state, sizeof(state), "%s/m.state", s.snap);
    snprintf(mem, sizeof(mem), "%s/m.mem", s.snap);
    cr_assert_eq(wisp_config_set_vcpus(cfg, 1, &err), 0);
    int ret = wisp_vm_restore(cfg, state, mem, &vm, &err);
    if (ret == 0) {
        ret = wisp_vm_start(vm, &err);
        int status;
        cr_assert_eq(wisp_vm_wait(vm, LONG_MS, &status, &err), 0);
        cr_assert_eq(status, 2, "a refused restore ends with status 2, got %d", status);
        wisp_vm_destroy(vm);
    }
    cr_assert_lt(ret, 0, "a restore into 1 vCPU of a 2-vCPU snapshot was accepted");
    cr_assert(strstr(err.msg, "vCPU") || strstr(err.msg, "vcpu"), "message: %s", err.msg);
    wisp_config_free(cfg);
    scratch_cleanup(&s);
}

Test(libwisp, migrate_to_a_wisp_binary, .timeout = 400)
{
    struct scratch s;
    struct wisp_error err;
    struct wisp_vm *vm;
    int status = -1;
    scratch_init(&s);
    struct wisp_config *cfg = migck_config(&s, "source.serial");

    /* The destination: the wisp binary, as `wisp migrate` would meet it. */
    char url[160], dest_serial[160], cmd[1024];
    snprintf(url, sizeof(url), "unix:%s/mig.sock", s.dir);
    snprintf(dest_serial, sizeof(dest_serial), "%s/dest.serial", s.dir);
    snprintf(cmd, sizeof(cmd),
             "exec %s run --debug-exit --vcpus 2 --memory 128M --serial file:%s "
             "--log-level info --incoming %s 2>&1",
             wisp_bin(), dest_serial, url);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    struct sandbox_proc dest;
    cr_assert_eq(sandbox_proc_start(&dest, argv, NULL), 0);
    cr_assert(sandbox_proc_wait_for(&dest, "waiting for the migration stream", 20000),
              "destination not listening: %s", dest.out);

    cr_assert_eq(wisp_vm_create(cfg, &vm, &err), 0, "create: %s", err.msg);
    cr_assert_eq(wisp_vm_start(vm, &err), 0, "start: %s", err.msg);
    migck_wait_above(s.serial, 2, "source");
    cr_assert_eq(wisp_vm_migrate(vm, "tcp:nowhere", 1000, &err), -EINVAL, "%d %s", err.code,
                 err.msg);
    cr_assert_eq(wisp_vm_migrate(vm, url, LONG_MS, &err), 0, "migrate: %s", err.msg);
    long at_move = migck_last(s.serial);
    /* The source ends with status 0 once the destination runs the VM. */
    cr_assert_eq(wisp_vm_wait(vm, 30000, &status, &err), 0, "wait: %s", err.msg);
    cr_assert_eq(status, 0);
    wisp_vm_destroy(vm);
    /* The destination counts on from where the source stopped. */
    long first = migck_wait_above(dest_serial, -1, "destination");
    cr_assert_geq(first, at_move - 1, "destination at %ld, source moved at %ld", first, at_move);
    migck_wait_above(dest_serial, first + 1, "destination keeps counting");

    kill(dest.pid, SIGTERM);
    struct proc_result r;
    sandbox_proc_finish(&dest, NULL, 20000, &r);
    cr_assert_eq(r.status, 128 + SIGTERM, "destination status %d: %s", r.status, r.out);
    proc_result_free(&r);
    wisp_config_free(cfg);
    scratch_cleanup(&s);
}

/* Boot the report guest to its end in this process; returns the status. */
static int run_report(bool sandbox)
{
    struct wisp_config *cfg;
    struct wisp_error err;
    struct wisp_vm *vm;
    int status = -1;
    cr_assert_eq(wisp_config_new(&cfg, &err), 0);
    cr_assert_eq(wisp_config_set_kernel(cfg, guest_elf(), &err), 0);
    cr_assert_eq(wisp_config_set_cmdline(cfg, "test=report cpus=1 mem=256", &err), 0);
    cr_assert_eq(wisp_config_set(cfg, "serial", "none", &err), 0, "%s", err.msg);
    cr_assert_eq(wisp_config_set(cfg, "debug-exit", NULL, &err), 0);
    cr_assert_eq(wisp_config_set_sandbox(cfg, sandbox, &err), 0);
    cr_assert_eq(wisp_vm_create(cfg, &vm, &err), 0, "create: %s", err.msg);
    cr_assert_eq(wisp_vm_start(vm, &err), 0, "start: %s", err.msg);
    cr_assert_eq(wisp_vm_wait(vm, LONG_MS, &status, &err), 0, "wait: %s", err.msg);
    wisp_vm_destroy(vm);
    wisp_config_free(cfg);
    return status;
}

/*
 * With the sandbox on, the VM's threads run under wisp's seccomp filters
 * and Landlock, and the embedding thread does not: it may still open a
 * TCP socket (no VM role allows AF_INET sockets but the migration thread,
 * and Landlock would refuse the file below), and create the next VM.
 */
/* The Seccomp: mode of thread `tid` of this process (0 none, 2 filter). */
static int thread_seccomp(const char *tid)
{
    char path[320], line[128];
    snprintf(path, sizeof(path), "/proc/self/task/%s/status", tid);
    FILE *f = fopen(path, "r");
    int mode = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "Seccomp: %d", &mode) == 1)
            break;
    if (f)
        fclose(f);
    return mode;
}

Test(libwisp, sandbox_binds_only_the_vm_threads, .timeout = 300)
{
    /* While a sandboxed VM runs: its threads are filtered, this one is not. */
    struct scratch s;
    struct wisp_error err;
    struct wisp_vm *vm;
    int status;
    scratch_init(&s);
    struct wisp_config *cfg = migck_config(&s, "sandboxed.serial");
    cr_assert_eq(wisp_config_set_sandbox(cfg, 1, &err), 0);
    cr_assert_eq(wisp_vm_create(cfg, &vm, &err), 0, "create: %s", err.msg);
    cr_assert_eq(wisp_vm_start(vm, &err), 0, "start: %s", err.msg);
    migck_wait_above(s.serial, 1, "sandboxed VM");
    char self[16];
    snprintf(self, sizeof(self), "%ld", (long)syscall(SYS_gettid));
    DIR *d = opendir("/proc/self/task");
    cr_assert_not_null(d);
    unsigned filtered = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        int mode = thread_seccomp(e->d_name);
        if (!strcmp(e->d_name, self))
            cr_assert_eq(mode, 0, "the embedding thread has seccomp mode %d", mode);
        filtered += mode == 2;
    }
    closedir(d);
    /* wisp-vm, two vCPUs, wisp-mig */
    cr_assert_geq(filtered, 4, "only %u filtered threads", filtered);
    cr_assert_eq(wisp_vm_stop(vm, &err), 0);
    cr_assert_eq(wisp_vm_wait(vm, LONG_MS, &status, &err), 0);
    cr_assert_eq(status, 128 + SIGTERM);
    wisp_vm_destroy(vm);
    wisp_config_free(cfg);
    scratch_cleanup(&s);

    cr_assert_eq(run_report(true), GUEST_PASS);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0, "the embedding thread was filtered: %s", strerror(errno));
    close(fd);
    char path[] = "/tmp/libwisp-after-XXXXXX";
    fd = mkstemp(path);
    cr_assert_geq(fd, 0, "the embedding thread lost the file system: %s", strerror(errno));
    close(fd);
    unlink(path);
    /* A second sandboxed VM, then an unsandboxed one, in the same process. */
    cr_assert_eq(run_report(true), GUEST_PASS);
    cr_assert_eq(run_report(false), GUEST_PASS);
}
