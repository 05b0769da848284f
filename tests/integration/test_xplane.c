/*
 * A VM moving between data planes (docs/VHOST.md, "Migration"): a migck
 * guest (it checks every page of a memory area and writes self-checking
 * records to its disk) runs with its blk device served by
 * qemu-storage-daemon over vhost-user, moves onto wisp's built-in blk on
 * the same image, and back, by snapshot and restore and by live migration
 * over a UNIX socket.  The guest must go on counting from where it was
 * with every page intact, and the image must hold only whole records.
 *
 * Live migration is what checks the dirty rule: the backend writes guest
 * memory (read data, used ring) that KVM's log does not see; without the
 * final resend of every page the destination resumes on a stale used ring
 * and the guest stalls, or finds a page from before the move.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/test_snapshot_harness.h"
#include "tests/lib/qsd_peer.h"

TestSuite(xplane, .timeout = 600);

/* The migck source: blk over vhost-user on `p`. */
static void start_vhu_source(struct vm *vm, const struct scratch *s, const struct qsd_peer *p)
{
    memset(vm, 0, sizeof(*vm));
    snprintf(vm->serial, sizeof(vm->serial), "%s/src.serial", s->dir);
    static char serial_arg[200], dev[200], cmdline[128], mem[16];
    snprintf(serial_arg, sizeof(serial_arg), "file:%s", vm->serial);
    snprintf(mem, sizeof(mem), "%dM", MEM_MIB);
    snprintf(cmdline, sizeof(cmdline), "test=migck migck_mb=%d migck_blk=1", MIGCK_MB);
    snprintf(dev, sizeof(dev), "blk,vhost-user=%s", p->sock);
    const char *args[] = {"--kernel",
                          guest_elf(),
                          "--debug-exit",
                          "--vcpus",
                          "2",
                          "--memory",
                          mem,
                          "--serial",
                          serial_arg,
                          "--api-sock",
                          s->sock,
                          "--cmdline",
                          cmdline,
                          "--device",
                          dev,
                          "--snapshot-dir",
                          s->snap,
                          NULL};
    ts_start(vm, args);
}

/* The records on the image and the guest's progress: nothing lost or torn. */
static void check_image(const char *img, const struct vm *last, long max_k)
{
    struct migck m;
    migck_scan(last->serial, &m);
    cr_assert_not(m.fail, "%s", m.fail_line);
    cr_assert_gt(migck_check_disk(img, max_k + 1, &m), 0, "no record reached the disk");
}

/*
 * vhost-user -> built-in -> vhost-user by snapshot: each hop stops the
 * VM at the snapshot, and the next process restores it onto the other
 * data plane.  The image is the same file throughout.
 */
Test(xplane, snapshot_hops_between_vhost_user_and_built_in)
{
    struct scratch s;
    ts_scratch_init(&s);
    struct qsd_peer p;
    qsd_peer_start(&p, MIGCK_DISK_BYTES);
    char mem[16], dev[200];
    snprintf(mem, sizeof(mem), "%dM", MEM_MIB);

    struct vm a;
    start_vhu_source(&a, &s, &p);
    struct migck m = ts_wait_migck(&a, MIGCK_PAGES + 64, "vhost-user source");
    ts_cli_snapshot(&s, "h1", true);
    struct proc_result r;
    ts_finish(&a, 0, 0, &r);
    proc_result_free(&r);
    migck_scan(a.serial, &m);
    cr_assert_not(m.fail, "%s", m.fail_line);
    long last = m.last;

    /* Onto the built-in device, on the image the daemon served. */
    struct vm b;
    const char *keep[] = {"--api-sock", s.sock, "--snapshot-dir", s.snap, NULL};
    ts_start_clone(&b, &s, "h1", "builtin", p.img, "2", mem, keep);
    struct migck c = ts_wait_migck(&b, -1, "built-in clone");
    cr_assert_geq(c.first, last, "built-in: began at %ld, the source had printed %ld", c.first,
                  last);
    c = ts_wait_migck(&b, c.first + MIGCK_PAGES + 64, "built-in clone");
    ts_cli_snapshot(&s, "h2", true);
    ts_finish(&b, 0, 0, &r);
    proc_result_free(&r);
    migck_scan(b.serial, &c);
    cr_assert_not(c.fail, "%s", c.fail_line);
    last = c.last;

    /* And back onto a fresh daemon serving the same image. */
    qsd_peer_kill(&p);
    qsd_peer_restart(&p);
    snprintf(dev, sizeof(dev), "blk,vhost-user=%s", p.sock);
    const char *vhu[] = {"--device", dev, NULL};
    struct vm v;
    ts_start_clone(&v, &s, "h2", "back", NULL, "2", mem, vhu);
    c = ts_wait_migck(&v, -1, "vhost-user clone");
    cr_assert_geq(c.first, last, "vhost-user: began at %ld, the built-in had printed %ld", c.first,
                  last);
    c = ts_wait_migck(&v, c.first + MIGCK_PAGES + 64, "vhost-user clone");
    ts_stop(&v);
    migck_scan(v.serial, &c);
    qsd_peer_kill(&p);
    check_image(p.img, &v, c.last);
    qsd_peer_stop(&p);
    ts_scratch_cleanup(&s);
}

/* A destination waiting on `url`, its blk on `dev`. */
static void start_dest(struct vm *vm, const struct scratch *s, const char *name, const char *url,
                       const char *dev, const char *sock)
{
    memset(vm, 0, sizeof(*vm));
    snprintf(vm->serial, sizeof(vm->serial), "%s/%s.serial", s->dir, name);
    static char serial_arg[200], mem[16];
    snprintf(serial_arg, sizeof(serial_arg), "file:%s", vm->serial);
    snprintf(mem, sizeof(mem), "%dM", MEM_MIB);
    const char *args[] = {
        "--debug-exit", "--log-level", "info", "--vcpus",    "2",  "--memory",   mem, "--serial",
        serial_arg,     "--device",    dev,    "--api-sock", sock, "--incoming", url, NULL};
    ts_start(vm, args);
    /* Listening once the socket exists (the log line goes to stderr). */
    const char *path = url + strlen("unix:");
    double end = ts_now_s() + 20;
    while (access(path, F_OK) != 0) {
        cr_assert_lt(ts_now_s(), end, "%s never listened on %s", name, path);
        ts_sleep_ms(20);
    }
}

/* `wisp migrate` from the VM behind `sock` to `url`; must succeed. */
static void migrate(const char *sock, const char *url)
{
    char *argv[] = {
        (char *)(uintptr_t)wisp_bin(), "migrate", "--api-sock", (char *)(uintptr_t)sock, "--to",
        (char *)(uintptr_t)url,        NULL};
    struct proc_result r;
    cr_assert_eq(proc_run(argv, NULL, NULL, 0, LONG_MS, &r), 0);
    cr_assert_not(r.timed_out, "wisp migrate hung");
    cr_assert_eq(r.status, 0, "wisp migrate exited %d:\n%s%s", r.status, r.out, r.err);
    proc_result_free(&r);
}

/*
 * vhost-user -> built-in -> vhost-user live: the guest runs (and the
 * daemon writes its memory) during the pre-copy rounds of every hop.
 */
Test(xplane, live_migration_between_vhost_user_and_built_in)
{
    struct scratch s;
    ts_scratch_init(&s);
    struct qsd_peer p;
    qsd_peer_start(&p, MIGCK_DISK_BYTES);
    char builtin[200], vhu[200], url[160], sock2[160];
    snprintf(builtin, sizeof(builtin), "blk,path=%s", p.img);
    snprintf(vhu, sizeof(vhu), "blk,vhost-user=%s", p.sock);
    snprintf(sock2, sizeof(sock2), "%s/api2.sock", s.dir);

    struct vm vm[3];
    start_vhu_source(&vm[0], &s, &p);
    struct migck m = ts_wait_migck(&vm[0], MIGCK_PAGES + 64, "vhost-user source");
    const char *socks[3] = {s.sock, sock2, s.sock};
    for (int hop = 1; hop <= 2; hop++) {
        char name[16];
        snprintf(name, sizeof(name), "hop%d", hop);
        snprintf(url, sizeof(url), "unix:%s/mig%d.sock", s.dir, hop);
        start_dest(&vm[hop], &s, name, url, hop == 1 ? builtin : vhu, socks[hop]);
        migrate(socks[hop - 1], url);
        struct proc_result r;
        ts_finish(&vm[hop - 1], 0, 0, &r);
        proc_result_free(&r);
        migck_scan(vm[hop - 1].serial, &m);
        cr_assert_not(m.fail, "hop %d source: %s", hop, m.fail_line);
        struct migck d = ts_wait_migck(&vm[hop], m.last + MIGCK_PAGES + 64, name);
        cr_assert_gt(d.first, m.last, "hop %d: the counter went back", hop);
        m = d;
    }
    ts_stop(&vm[2]);
    migck_scan(vm[2].serial, &m);
    qsd_peer_kill(&p);
    check_image(p.img, &vm[2], m.last);
    qsd_peer_stop(&p);
    ts_scratch_cleanup(&s);
}
