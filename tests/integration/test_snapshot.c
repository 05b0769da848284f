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
#include "tests/integration/test_snapshot_harness.h"
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

Test(snapshot, create_and_restore_twice, .timeout = 300)
{
    struct scratch s;
    ts_scratch_init(&s);
    struct vm src;
    ts_start_source(&src, &s, true, true, "src");
    /* Every page of the area written: the clones must get all of it back. */
    struct migck m = ts_wait_migck(&src, MIGCK_PAGES + 64, "source");
    m = ts_wait_migck(&src, m.last, "source");
    long before = m.last;

    double t0 = ts_now_s();
    ts_cli_snapshot(&s, "s1", false);
    fprintf(stderr, "snapshot: create took %.0f ms\n", (ts_now_s() - t0) * 1000);
    migck_scan(src.serial, &m);
    long after = m.last;
    /* The source goes on after the snapshot. */
    m = ts_wait_migck(&src, after + 1, "source after the snapshot");
    m = ts_wait_migck(&src, m.last, "source after the snapshot");
    ts_stop(&src);
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
        ts_copy_file(src.disk, disk[i]);
    }
    char mem[16];
    snprintf(mem, sizeof(mem), "%dM", MEM_MIB);
    ts_start_clone(&clone[0], &s, "s1", "clone0", disk[0], "2", mem, NULL);
    ts_start_clone(&clone[1], &s, "s1", "clone1", disk[1], "2", mem, NULL);
    for (int i = 0; i < 2; i++) {
        char what[32];
        snprintf(what, sizeof(what), "clone %d", i);
        struct migck c = ts_wait_migck(&clone[i], -1, what);
        /* The snapshot point lies after the last line printed before the
         * create was asked for. */
        cr_assert_gt(c.first, before, "%s: first N %ld, the source had printed %ld", what, c.first,
                     before);
        /* It keeps counting: a whole pass over the area (every page verified). */
        c = ts_wait_migck(&clone[i], c.first + MIGCK_PAGES, what);
        c = ts_wait_migck(&clone[i], c.last, what);
        fprintf(stderr,
                "snapshot: %s: source printed %ld before, %ld after the snapshot; "
                "clone went from %ld to %ld in %ld lines\n",
                what, before, after, c.first, c.last, c.lines);
    }
    for (int i = 0; i < 2; i++) {
        ts_stop(&clone[i]);
        struct migck c;
        migck_scan(clone[i].serial, &c);
        cr_assert_not(c.fail, "clone %d: %s", i, c.fail_line);
        int rec = migck_check_disk(disk[i], c.last > src_last ? c.last : src_last, &c);
        cr_assert_gt(rec, 0, "clone %d: no record on the disk", i);
    }
    /* The source's own image too. */
    migck_scan(src.serial, &m);
    cr_assert_gt(migck_check_disk(src.disk, src_last, &m), 0);
    ts_scratch_cleanup(&s);
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
    ts_scratch_init(&s);
    struct vm src;
    ts_start_source(&src, &s, true, false, "src");
    /* Every page of the area written once: all of it is data in the file. */
    ts_wait_migck(&src, MIGCK_PAGES + 64, "source");
    long data_pages = ts_cli_snapshot(&s, "s1", false);
    ts_stop(&src);
    cr_assert_geq(data_pages, MIGCK_PAGES);

    char mem[16];
    snprintf(mem, sizeof(mem), "%dM", MEM_MIB);
    static const char *const lazy[] = {"--restore-lazy", "--log-level", "info", NULL};
    struct vm clone;
    ts_start_clone(&clone, &s, "s1", "lazy", NULL, "2", mem, lazy);
    struct migck c = ts_wait_migck(&clone, -1, "lazy clone");
    /* A whole pass: every page of the area read and written after the restore. */
    ts_wait_migck(&clone, c.first + MIGCK_PAGES + 8, "lazy clone");
    struct proc_result r;
    ts_finish(&clone, SIGTERM, 128 + SIGTERM, &r);
    cr_assert(strstr(r.err, "restored "), "%s", r.err);
    long copied = log_number(r.err, "lazy restore: ");
    long zero = log_number(r.err, "pages copied on demand, ");
    fprintf(stderr, "snapshot: lazy restore copied %ld pages (%ld zero) of %ld data pages\n",
            copied, zero, data_pages);
    cr_assert_geq(copied, MIGCK_PAGES, "the guest touched its %d-page area", MIGCK_PAGES);
    cr_assert_leq(copied, data_pages, "more pages copied than the file holds");
    cr_assert_lt(copied, (long)(MEM_BYTES / 4096), "everything was copied");
    proc_result_free(&r);
    ts_scratch_cleanup(&s);
}

Test(snapshot, stop_after_snapshot, .timeout = 300)
{
    struct scratch s;
    ts_scratch_init(&s);
    struct vm src;
    ts_start_source(&src, &s, true, false, "src");
    ts_wait_migck(&src, 50, "source");
    ts_cli_snapshot(&s, "s1", true);
    struct proc_result r;
    ts_finish(&src, 0, 0, &r);
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
    ts_start_clone(&clone, &s, "s1", "clone", NULL, "2", mem, NULL);
    struct migck c = ts_wait_migck(&clone, -1, "clone");
    cr_assert_geq(c.first, m.last, "the clone began at %ld, the source had printed %ld", c.first,
                  m.last);
    ts_wait_migck(&clone, c.first + MIGCK_PAGES, "clone");
    ts_stop(&clone);
    ts_scratch_cleanup(&s);
}

/*
 * PUT /snapshot/load into a wisp started with --restore-wait: the VM starts
 * paused (resume_vm false) and runs on after PATCH /vm Resumed, from where
 * the source stopped.  A second load, now that it runs, is refused.
 */
Test(snapshot, load_through_the_api, .timeout = 300)
{
    struct scratch s;
    ts_scratch_init(&s);
    struct vm src;
    ts_start_source(&src, &s, true, false, "src");
    ts_wait_migck(&src, 50, "source");
    ts_cli_snapshot(&s, "s1", true);
    struct proc_result r;
    ts_finish(&src, 0, 0, &r);
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
    ts_start(&vm, args);
    /* Until the API answers: the socket file appears at bind(), a moment
     * before the server accepts (long enough under ASan to be seen). */
    char reply[API_HTTP_REPLY_MAX];
    const char *body;
    int st = -1;
    for (int i = 0; i < 400 && (st = api_http(s.sock, "GET", "/", NULL, reply, &body)) != 200; i++)
        ts_sleep_ms(50);
    cr_assert_eq(st, 200, "%s", reply);
    const char *load = "{\"snapshot_path\":\"s1.state\",\"mem_file_path\":\"s1.mem\","
                       "\"resume_vm\":false}";
    cr_assert_eq(api_http(s.sock, "PUT", "/snapshot/load", load, reply, &body), 204, "%s", reply);
    cr_assert_eq(api_http(s.sock, "GET", "/", NULL, reply, &body), 200, "%s", reply);
    cr_assert(strstr(body, "\"state\":\"Paused\""), "%s", body);
    ts_sleep_ms(500);
    struct migck c;
    migck_scan(vm.serial, &c);
    cr_assert_eq(c.lines, 0, "a VM loaded with resume_vm false ran");
    cr_assert_eq(api_http(s.sock, "PATCH", "/vm", "{\"state\":\"Resumed\"}", reply, &body), 204,
                 "%s", reply);
    c = ts_wait_migck(&vm, -1, "loaded");
    cr_assert_geq(c.first, m.last, "the loaded VM began at %ld, the source had printed %ld",
                  c.first, m.last);
    ts_wait_migck(&vm, c.first + MIGCK_PAGES, "loaded");
    ts_api_fault(&s, "PUT", "/snapshot/load", load, 409, "already running");
    ts_stop(&vm);
    ts_scratch_cleanup(&s);
}

/* Restore that must be refused with status 2 and one line containing `want`. */
