/*
 * Snapshots on the real binary (docs/SNAPSHOT.md, docs/API.md): a test guest
 * in test=migck mode (guest-images/README.md) writes and verifies a memory
 * area continuously and prints "migck N ok ..." with an iteration counter
 * that lives in guest memory.  A VM restored from a snapshot goes on from
 * where the snapshot caught it: its first N is at least the last N the
 * source printed before the snapshot was asked for, it keeps counting, and
 * no page ever reads back wrong ("migck FAIL").
 *
 * Everything here runs under the default --seccomp kill: a wisp that dies
 * of a forbidden syscall ends with status 148 and fails the test.
 */
#include "tests/lib/api_http.h"
#include "tests/lib/sandbox_proc.h"
#include "tests/lib/migck.h"
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <errno.h>
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

#define EXIT_SECCOMP 148
#define MEM_MIB      128
#define MEM_BYTES    ((uint64_t)MEM_MIB << 20)
#define MIGCK_MB     4 /* 1024 pages: the first touch of a page after a restore is slow nested */
#define MIGCK_PAGES  (MIGCK_MB * 256)
#define LONG_MS      120000

/* One wisp process (a source or a restored clone) and its files. */
struct vm {
    struct sandbox_proc p;
    bool running;
    char serial[160];
    char disk[160];
};

/* The test's scratch directory (a source's API socket must be on a local
 * file system: it lives in /tmp) and the snapshot directory inside it. */
struct scratch {
    char dir[64];
    char sock[96];
    char snap[96];
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

static void scratch_init(struct scratch *s)
{
    snprintf(s->dir, sizeof(s->dir), "/tmp/wisp-snap-XXXXXX");
    cr_assert_not_null(mkdtemp(s->dir));
    snprintf(s->sock, sizeof(s->sock), "%s/api.sock", s->dir);
    snprintf(s->snap, sizeof(s->snap), "%s/snap", s->dir);
    cr_assert_eq(mkdir(s->snap, 0700), 0);
}

static void scratch_cleanup(struct scratch *s)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
    cr_assert_eq(system(cmd), 0);
}

static void start(struct vm *vm, const char *const *args)
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
static void start_source(struct vm *vm, const struct scratch *s, bool snap, bool disk,
                         const char *name)
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
    start(vm, args);
}

/*
 * Start a clone from s->snap/NAME.state + NAME.mem with the machine options
 * of start_source() (vCPUs, memory and `extra` may differ for the mismatch
 * test); `disk`: the clone's own image.  `extra` ends with NULL.
 */
static void start_clone(struct vm *vm, const struct scratch *s, const char *snapname,
                        const char *clone, const char *disk, const char *vcpus, const char *mem,
                        const char *const *extra)
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
    start(vm, args);
}

/* For a failure message: each thread of `pid` as "name state utime+stime;". */
static void thread_report(pid_t pid, char *out, size_t cap)
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
static const char *tail_of(const char *path, size_t n)
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
static struct migck wait_migck(struct vm *vm, long beyond, const char *what)
{
    struct migck m;
    double end = now_s() + LONG_MS / 1000.0;
    for (;;) {
        migck_scan(vm->serial, &m);
        cr_assert_not(m.fail, "%s: %s\nserial ends: %s", what, m.fail_line,
                      tail_of(vm->serial, 300));
        if (m.last > beyond)
            return m;
        int st;
        if (waitpid(vm->p.pid, &st, WNOHANG) == vm->p.pid) {
            vm->running = false;
            sandbox_proc_wait_for(&vm->p, "\x01", 100);
            cr_assert_fail("%s: wisp ended early (status 0x%x): %s", what, st, vm->p.err);
        }
        if (now_s() >= end) {
            char threads[1024], t2[1024];
            thread_report(vm->p.pid, threads, sizeof(threads));
            sleep_ms(1000);
            thread_report(vm->p.pid, t2, sizeof(t2));
            cr_assert_fail("%s: no migck N > %ld within %d ms (last %ld)\nthreads: %s\n"
                           "1 s later: %s\nserial ends: %s",
                           what, beyond, LONG_MS, m.last, threads, t2, tail_of(vm->serial, 300));
        }
        sleep_ms(50);
    }
}

/* Reap wisp (after `sig`, if not 0) and return its result; never status 148. */
static void finish(struct vm *vm, int sig, int want_status, struct proc_result *r)
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

static void stop(struct vm *vm)
{
    struct proc_result r;
    finish(vm, SIGTERM, 128 + SIGTERM, &r);
    proc_result_free(&r);
}

/* `wisp snapshot create --api-sock S --state NAME.state --mem NAME.mem [--stop]`; returns
 * its JSON answer's mem_data_pages after checking status 0 and mem_bytes. */
static long cli_snapshot(const struct scratch *s, const char *name, bool stop_after)
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

static void api_fault(const struct scratch *s, const char *method, const char *path,
                      const char *json, int want_status, const char *want);

static void copy_file(const char *from, const char *to)
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

Test(snapshot, create_and_restore_twice, .timeout = 300)
{
    struct scratch s;
    scratch_init(&s);
    struct vm src;
    start_source(&src, &s, true, true, "src");
    /* Every page of the area written: the clones must get all of it back. */
    struct migck m = wait_migck(&src, MIGCK_PAGES + 64, "source");
    m = wait_migck(&src, m.last, "source");
    long before = m.last;

    double t0 = now_s();
    cli_snapshot(&s, "s1", false);
    fprintf(stderr, "snapshot: create took %.0f ms\n", (now_s() - t0) * 1000);
    migck_scan(src.serial, &m);
    long after = m.last;
    /* The source goes on after the snapshot. */
    m = wait_migck(&src, after + 1, "source after the snapshot");
    m = wait_migck(&src, m.last, "source after the snapshot");
    stop(&src);
    migck_scan(src.serial, &m);
    long src_last = m.last;
    cr_assert_not(m.fail, "%s", m.fail_line);

    /* A snapshot holds the devices' state, not the disk: the image is the
     * user's.  Each clone gets its own copy (two VMs writing one image
     * would corrupt it).  The copy is of the source's image at its end,
     * so it may hold records the source wrote after the snapshot. */
    char disk[2][200];
    struct vm clone[2];
    for (int i = 0; i < 2; i++) {
        snprintf(disk[i], sizeof(disk[i]), "%s/clone%d.img", s.dir, i);
        copy_file(src.disk, disk[i]);
    }
    char mem[16];
    snprintf(mem, sizeof(mem), "%dM", MEM_MIB);
    start_clone(&clone[0], &s, "s1", "clone0", disk[0], "2", mem, NULL);
    start_clone(&clone[1], &s, "s1", "clone1", disk[1], "2", mem, NULL);
    for (int i = 0; i < 2; i++) {
        char what[32];
        snprintf(what, sizeof(what), "clone %d", i);
        struct migck c = wait_migck(&clone[i], -1, what);
        /* The snapshot point lies after the last line printed before the
         * create was asked for. */
        cr_assert_gt(c.first, before, "%s: first N %ld, the source had printed %ld", what, c.first,
                     before);
        /* It keeps counting: a whole pass over the area (every page verified). */
        c = wait_migck(&clone[i], c.first + MIGCK_PAGES, what);
        c = wait_migck(&clone[i], c.last, what);
        fprintf(stderr,
                "snapshot: %s: source printed %ld before, %ld after the snapshot; "
                "clone went from %ld to %ld in %ld lines\n",
                what, before, after, c.first, c.last, c.lines);
    }
    for (int i = 0; i < 2; i++) {
        stop(&clone[i]);
        struct migck c;
        migck_scan(clone[i].serial, &c);
        cr_assert_not(c.fail, "clone %d: %s", i, c.fail_line);
        int rec = migck_check_disk(disk[i], c.last > src_last ? c.last : src_last, &c);
        cr_assert_gt(rec, 0, "clone %d: no record on the disk", i);
    }
    /* The source's own image too. */
    migck_scan(src.serial, &m);
    cr_assert_gt(migck_check_disk(src.disk, src_last, &m), 0);
    scratch_cleanup(&s);
}

static long log_number(const char *text, const char *prefix)
{
    const char *p = strstr(text, prefix);
    cr_assert_not_null(p, "no \"%s\" in:\n%s", prefix, text);
    return strtol(p + strlen(prefix), NULL, 10);
}

Test(snapshot, lazy_restore_touches_pages_on_demand, .timeout = 300)
{
    struct scratch s;
    scratch_init(&s);
    struct vm src;
    start_source(&src, &s, true, false, "src");
    /* Every page of the area written once: all of it is data in the file. */
    wait_migck(&src, MIGCK_PAGES + 64, "source");
    long data_pages = cli_snapshot(&s, "s1", false);
    stop(&src);
    cr_assert_geq(data_pages, MIGCK_PAGES);

    char mem[16];
    snprintf(mem, sizeof(mem), "%dM", MEM_MIB);
    static const char *const lazy[] = {"--restore-lazy", "--log-level", "info", NULL};
    struct vm clone;
    start_clone(&clone, &s, "s1", "lazy", NULL, "2", mem, lazy);
    struct migck c = wait_migck(&clone, -1, "lazy clone");
    /* A whole pass: every page of the area read and written after the restore. */
    wait_migck(&clone, c.first + MIGCK_PAGES + 8, "lazy clone");
    struct proc_result r;
    finish(&clone, SIGTERM, 128 + SIGTERM, &r);
    cr_assert(strstr(r.err, "restored "), "%s", r.err);
    long copied = log_number(r.err, "lazy restore: ");
    long zero = log_number(r.err, "pages copied on demand, ");
    fprintf(stderr, "snapshot: lazy restore copied %ld pages (%ld zero) of %ld data pages\n",
            copied, zero, data_pages);
    cr_assert_geq(copied, MIGCK_PAGES, "the guest touched its %d-page area", MIGCK_PAGES);
    cr_assert_leq(copied, data_pages, "more pages copied than the file holds");
    cr_assert_lt(copied, (long)(MEM_BYTES / 4096), "everything was copied");
    proc_result_free(&r);
    scratch_cleanup(&s);
}

Test(snapshot, stop_after_snapshot, .timeout = 300)
{
    struct scratch s;
    scratch_init(&s);
    struct vm src;
    start_source(&src, &s, true, false, "src");
    wait_migck(&src, 50, "source");
    cli_snapshot(&s, "s1", true);
    struct proc_result r;
    finish(&src, 0, 0, &r);
    proc_result_free(&r);
    struct stat st;
    cr_assert_lt(stat(s.sock, &st), 0, "the API socket was left behind");
    struct migck m;
    migck_scan(src.serial, &m);
    cr_assert_not(m.fail, "%s", m.fail_line);

    /* The source stopped at the snapshot: a restore goes on from at least
     * its last line. */
    char mem[16];
    snprintf(mem, sizeof(mem), "%dM", MEM_MIB);
    struct vm clone;
    start_clone(&clone, &s, "s1", "clone", NULL, "2", mem, NULL);
    struct migck c = wait_migck(&clone, -1, "clone");
    cr_assert_geq(c.first, m.last, "the clone began at %ld, the source had printed %ld", c.first,
                  m.last);
    wait_migck(&clone, c.first + MIGCK_PAGES, "clone");
    stop(&clone);
    scratch_cleanup(&s);
}

/*
 * PUT /snapshot/load into a wisp started with --restore-wait: the VM starts
 * paused (resume_vm false) and runs on after PATCH /vm Resumed, from where
 * the source stopped.  A second load, now that it runs, is refused.
 */
Test(snapshot, load_through_the_api, .timeout = 300)
{
    struct scratch s;
    scratch_init(&s);
    struct vm src;
    start_source(&src, &s, true, false, "src");
    wait_migck(&src, 50, "source");
    cli_snapshot(&s, "s1", true);
    struct proc_result r;
    finish(&src, 0, 0, &r);
    proc_result_free(&r);
    struct migck m;
    migck_scan(src.serial, &m);

    struct vm vm;
    memset(&vm, 0, sizeof(vm));
    snprintf(vm.serial, sizeof(vm.serial), "%s/loaded.serial", s.dir);
    char serial_arg[200], mem[16];
    snprintf(serial_arg, sizeof(serial_arg), "file:%s", vm.serial);
    snprintf(mem, sizeof(mem), "%dM", MEM_MIB);
    const char *args[] = {
        "--debug-exit", "--vcpus",        "2",          "--memory", mem,
        "--serial",     serial_arg,       "--api-sock", s.sock,     "--snapshot-dir",
        s.snap,         "--restore-wait", NULL};
    start(&vm, args);
    /* Until the API answers: the socket file appears at bind(), a moment
     * before the server accepts (long enough under ASan to be seen). */
    char reply[API_HTTP_REPLY_MAX];
    const char *body;
    int st = -1;
    for (int i = 0; i < 400 && (st = api_http(s.sock, "GET", "/", NULL, reply, &body)) != 200; i++)
        sleep_ms(50);
    cr_assert_eq(st, 200, "%s", reply);
    const char *load = "{\"snapshot_path\":\"s1.state\",\"mem_file_path\":\"s1.mem\","
                       "\"resume_vm\":false}";
    cr_assert_eq(api_http(s.sock, "PUT", "/snapshot/load", load, reply, &body), 204, "%s", reply);
    cr_assert_eq(api_http(s.sock, "GET", "/", NULL, reply, &body), 200, "%s", reply);
    cr_assert(strstr(body, "\"state\":\"Paused\""), "%s", body);
    sleep_ms(500);
    struct migck c;
    migck_scan(vm.serial, &c);
    cr_assert_eq(c.lines, 0, "a VM loaded with resume_vm false ran");
    cr_assert_eq(api_http(s.sock, "PATCH", "/vm", "{\"state\":\"Resumed\"}", reply, &body), 204,
                 "%s", reply);
    c = wait_migck(&vm, -1, "loaded");
    cr_assert_geq(c.first, m.last, "the loaded VM began at %ld, the source had printed %ld",
                  c.first, m.last);
    wait_migck(&vm, c.first + MIGCK_PAGES, "loaded");
    api_fault(&s, "PUT", "/snapshot/load", load, 409, "already running");
    stop(&vm);
    scratch_cleanup(&s);
}

/* Restore that must be refused with status 2 and one line containing `want`. */
static void refused(const struct scratch *s, const char *snapname, const char *name,
                    const char *disk, const char *vcpus, const char *mem, const char *const *extra,
                    const char *want)
{
    struct vm vm;
    start_clone(&vm, s, snapname, name, disk, vcpus, mem, extra);
    struct proc_result r;
    finish(&vm, 0, 2, &r);
    cr_assert(strstr(r.err, want), "%s: no \"%s\" in: %s", name, want, r.err);
    char *nl = strchr(r.err, '\n');
    cr_assert(nl && nl[1] == '\0', "%s: not one line: %s", name, r.err);
    struct stat st;
    cr_assert(stat(vm.serial, &st) < 0 || st.st_size == 0, "%s: the serial file has %lld bytes",
              name, (long long)st.st_size);
    fprintf(stderr, "snapshot: %s: %s", name, r.err);
    proc_result_free(&r);
}

Test(snapshot, refuses_mismatch, .timeout = 300)
{
    struct scratch s;
    scratch_init(&s);
    struct vm src;
    start_source(&src, &s, true, true, "src");
    wait_migck(&src, 50, "source");
    cli_snapshot(&s, "s1", true);
    struct proc_result r;
    finish(&src, 0, 0, &r);
    proc_result_free(&r);

    static const char *const rng[] = {"--device", "rng", NULL};
    refused(&s, "s1", "vcpus", src.disk, "1", "128M", NULL,
            "destination has 1 vCPUs, the stream 2");
    refused(&s, "s1", "memory", src.disk, "2", "256M", NULL, "memory");
    refused(&s, "s1", "extra_device", src.disk, "2", "128M", rng, "devices");
    refused(&s, "s1", "missing_device", NULL, "2", "128M", NULL, "devices");
    scratch_cleanup(&s);
}

/* Copy s1.state to NAME.state (and link the memory file) and apply `edit`. */
static void corrupt_copy(const struct scratch *s, const char *name, long flip_at, long truncate_to)
{
    char from[200], to[200], mfrom[200], mto[200];
    snprintf(from, sizeof(from), "%s/s1.state", s->snap);
    snprintf(to, sizeof(to), "%s/%s.state", s->snap, name);
    snprintf(mfrom, sizeof(mfrom), "%s/s1.mem", s->snap);
    snprintf(mto, sizeof(mto), "%s/%s.mem", s->snap, name);
    copy_file(from, to);
    cr_assert_eq(link(mfrom, mto), 0, "%s", strerror(errno));
    int fd = open(to, O_RDWR | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    if (flip_at >= 0) {
        uint8_t b;
        cr_assert_eq(pread(fd, &b, 1, flip_at), 1);
        b ^= 0x20;
        cr_assert_eq(pwrite(fd, &b, 1, flip_at), 1);
    }
    if (truncate_to >= 0)
        cr_assert_eq(ftruncate(fd, truncate_to), 0);
    close(fd);
}

Test(snapshot, refuses_corrupt_state, .timeout = 300)
{
    struct scratch s;
    scratch_init(&s);
    struct vm src;
    start_source(&src, &s, true, false, "src");
    wait_migck(&src, 50, "source");
    cli_snapshot(&s, "s1", true);
    struct proc_result r;
    finish(&src, 0, 0, &r);
    proc_result_free(&r);
    char path[200];
    snprintf(path, sizeof(path), "%s/s1.state", s.snap);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);

    /* Stream header 20 bytes, then the first section's 16-byte header: byte
     * 40 is in the machine section's payload (docs/MIGRATION_FORMAT.md). */
    corrupt_copy(&s, "flip", 40, -1);
    refused(&s, "flip", "flip", NULL, "2", "128M", NULL, "checksum mismatch");
    /* A byte in the middle of the file: in some other section. */
    corrupt_copy(&s, "flip2", st.st_size / 2, -1);
    refused(&s, "flip2", "flip2", NULL, "2", "128M", NULL, "checksum mismatch");
    corrupt_copy(&s, "short", -1, st.st_size / 2);
    refused(&s, "short", "short", NULL, "2", "128M", NULL, "the stream ends");
    corrupt_copy(&s, "magic", 0, -1);
    refused(&s, "magic", "magic", NULL, "2", "128M", NULL, "bad magic");
    /* The original still restores. */
    char mem[16];
    snprintf(mem, sizeof(mem), "%dM", MEM_MIB);
    struct vm clone;
    start_clone(&clone, &s, "s1", "clone", NULL, "2", mem, NULL);
    wait_migck(&clone, -1, "clone");
    stop(&clone);
    scratch_cleanup(&s);
}

/* PUT /snapshot/create with `json`: the status, and `want` in the fault message. */
static void api_fault(const struct scratch *s, const char *method, const char *path,
                      const char *json, int want_status, const char *want)
{
    char reply[API_HTTP_REPLY_MAX];
    const char *body = NULL;
    int st = api_http(s->sock, method, path, json, reply, &body);
    cr_assert_eq(st, want_status, "%s %s %s: %d\n%s", method, path, json ? json : "", st, reply);
    cr_assert(body && strstr(body, "fault_message"), "%s %s: %s", method, path, reply);
    cr_assert(strstr(body, want), "%s %s %s: no \"%s\" in %s", method, path, json ? json : "", want,
              body);
}

static void still_running(struct vm *vm)
{
    struct migck m;
    migck_scan(vm->serial, &m);
    m = wait_migck(vm, m.last, "after the faults");
    wait_migck(vm, m.last, "after the faults");
}

Test(snapshot, api_faults, .timeout = 300)
{
    struct scratch s;
    scratch_init(&s);
    struct vm vm;
    /* Without --snapshot-dir. */
    start_source(&vm, &s, false, false, "nodir");
    wait_migck(&vm, 10, "no dir");
    api_fault(&s, "PUT", "/snapshot/create", "{\"snapshot_path\":\"a\",\"mem_file_path\":\"b\"}",
              400, "--snapshot-dir");
    still_running(&vm);
    stop(&vm);
    struct stat st;
    char path[200];
    snprintf(path, sizeof(path), "%s/a", s.snap);
    cr_assert_lt(stat(path, &st), 0);

    start_source(&vm, &s, true, false, "dir");
    wait_migck(&vm, 10, "dir");
    static const char *const bad_names[] = {
        "{\"snapshot_path\":\"../x\",\"mem_file_path\":\"m\"}",
        "{\"snapshot_path\":\"s\",\"mem_file_path\":\"a/b\"}",
        "{\"snapshot_path\":\"\",\"mem_file_path\":\"m\"}",
        "{\"snapshot_path\":\"same\",\"mem_file_path\":\"same\"}",
        "{\"snapshot_path\":\"..\",\"mem_file_path\":\"m\"}",
        "{\"snapshot_path\":\"/tmp/abs\",\"mem_file_path\":\"m\"}",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad_names); i++)
        api_fault(&s, "PUT", "/snapshot/create", bad_names[i], 400, "plain names");
    api_fault(&s, "PUT", "/snapshot/create", "{\"snapshot_path\":\"s\"", 400, "JSON");
    api_fault(&s, "PUT", "/snapshot/create",
              "{\"snapshot_path\":\"s\",\"mem_file_path\":\"m\","
              "\"colour\":\"red\"}",
              400, "unknown field");
    api_fault(&s, "PUT", "/snapshot/create",
              "{\"snapshot_path\":\"s\",\"mem_file_path\":\"m\","
              "\"stop\":\"yes\"}",
              400, "unknown field or wrong type");
    api_fault(&s, "PUT", "/snapshot/create",
              "{\"snapshot_path\":\"s\",\"mem_file_path\":\"m\","
              "\"snapshot_type\":\"Diff\"}",
              400, "Full");
    api_fault(&s, "PUT", "/snapshot/create", "{\"snapshot_path\":\"s\"}", 400, "required");
    api_fault(&s, "GET", "/snapshot/create", NULL, 405, "");
    char reply[API_HTTP_REPLY_MAX];
    const char *body;
    cr_assert_eq(api_http(s.sock, "GET", "/snapshot/create", NULL, reply, &body), 405);
    cr_assert(strstr(reply, "Allow: PUT"), "%s", reply);
    api_fault(&s, "PUT", "/snapshot/load", "{\"snapshot_path\":\"s\",\"mem_file_path\":\"m\"}", 409,
              "--restore");
    /* Nothing was written into the snapshot directory, and the VM runs on. */
    snprintf(path, sizeof(path), "rmdir '%s'", s.snap);
    still_running(&vm);
    stop(&vm);
    cr_assert_eq(system(path), 0, "the snapshot directory is not empty");
    scratch_cleanup(&s);
}
