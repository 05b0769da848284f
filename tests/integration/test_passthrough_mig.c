/*
 * Live migration of a VM with a vfio-user passthrough function
 * (devices/vfio/vfio_mig_dev.c, docs/VFIO_USER.md "Migration"), under
 * KVM: the test guest (test=pcidev loop=1) runs a DMA loop on the test
 * server's device, copying a new pattern into one of 8 ring slots per
 * iteration and checking the copy, the device's checksum, the MSI-X
 * interrupt and every earlier slot.  The VM moves over a UNIX socket to a
 * second wisp with its own fresh server (RESUMING loads the device
 * state) and the loop goes on there, so data copied before the move is
 * checked after it and interrupts keep arriving.  Refusals, the source
 * running on: a destination presenting another vPCI layout; a source
 * server without migration (--no-migration); and (passthrough_edu, run by
 * tests/testbed/vfio/run) a kernel VFIO device, which cannot migrate.
 */
#include "tests/lib/proc.h"
#include "tests/lib/sandbox_proc.h"
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[64];
static pid_t servers[2] = {-1, -1};

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/wisp-ptm-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    for (int i = 0; i < 2; i++)
        if (servers[i] > 0) {
            kill(servers[i], SIGKILL);
            waitpid(servers[i], NULL, 0);
            servers[i] = -1;
        }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

TestSuite(passthrough_mig, .init = setup, .fini = teardown, .timeout = 300);

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Server `i` at DIR/srvI.sock, with `flag` (NULL: none). */
static void server(int i, const char *flag, char *path, size_t cap)
{
    char bin[PATH_MAX], self[PATH_MAX];
    const char *e = getenv("WISP_VFIO_USER_SERVER");
    snprintf(self, sizeof(self), "%s", wisp_bin());
    snprintf(bin, sizeof(bin), "%s", e && e[0] ? e : "");
    if (!bin[0])
        snprintf(bin, sizeof(bin), "%s/vfio-user-server", dirname(self));
    snprintf(path, cap, "%s/srv%d.sock", dir, i);
    servers[i] = fork();
    cr_assert_geq(servers[i], 0);
    if (servers[i] == 0) {
        execl(bin, bin, "--socket", path, flag, (char *)NULL);
        _exit(127);
    }
    for (int k = 0; k < 500 && access(path, F_OK) != 0; k++)
        usleep(10000);
    cr_assert_eq(access(path, F_OK), 0, "server %s did not start", bin);
}

struct vm {
    struct sandbox_proc p;
    char sock[96], serial[96];
    bool running;
};

/* A source (boots the loop guest) or a destination (`incoming`). */
static void start(struct vm *v, const char *name, const char *srv, const char *layout,
                  const char *incoming)
{
    memset(v, 0, sizeof(*v));
    snprintf(v->sock, sizeof(v->sock), "%s/%s.api", dir, name);
    snprintf(v->serial, sizeof(v->serial), "%s/%s.log", dir, name);
    char dev[256], ser[128], cmd[2048], boot[512] = "", inc[160] = "";
    snprintf(dev, sizeof(dev), "vfio-user,id=pt0,socket=%s%s%s", srv, layout ? ",layout=" : "",
             layout ? layout : "");
    snprintf(ser, sizeof(ser), "file:%s", v->serial);
    if (incoming)
        snprintf(inc, sizeof(inc), "--incoming %s", incoming);
    else
        snprintf(boot, sizeof(boot), "--kernel %s --cmdline 'test=pcidev loop=1'", guest_elf());
    int n = snprintf(cmd, sizeof(cmd),
                     "exec %s run --debug-exit --memory 128M --pci on --device %s --serial %s "
                     "--api-sock %s --log-level info %s %s 2>&1",
                     wisp_bin(), dev, ser, v->sock, boot, inc);
    cr_assert(n > 0 && (size_t)n < sizeof(cmd), "command line too long");
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    cr_assert_eq(sandbox_proc_start(&v->p, argv, NULL), 0);
    v->running = true;
    if (incoming)
        cr_assert(sandbox_proc_wait_for(&v->p, "waiting for the migration stream", 20000),
                  "destination not listening: %s", v->p.out);
}

/* The highest N of "pcidev: loop N ok" in the serial file; *failed if a check failed. */
static long loops(const char *serial, bool *failed)
{
    size_t len;
    char *t = read_file(serial, &len);
    long last = 0;
    for (char *p = t; p && (p = strstr(p, "pcidev: loop ")) != NULL; p += 13)
        last = strtol(p + 13, NULL, 10);
    *failed = t && (strstr(t, "FAIL") != NULL);
    free(t);
    return last;
}

static long wait_loops(const char *serial, long want)
{
    double end = now_s() + 90;
    bool failed = false;
    long n;
    while ((n = loops(serial, &failed)) < want && !failed && now_s() < end)
        usleep(50000);
    size_t len;
    char *t = read_file(serial, &len);
    cr_assert_not(failed, "a check failed in the guest:\n%s", t ? t : "");
    cr_assert_geq(n, want, "the DMA loop reached %ld of %ld:\n%s", n, want, t ? t : "");
    free(t);
    return n;
}

static int migrate(struct vm *v, const char *to, char **out)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s migrate --api-sock %s --to %s 2>&1", wisp_bin(), v->sock, to);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    struct proc_result r;
    cr_assert_eq(proc_run(argv, NULL, NULL, 0, 120000, &r), 0);
    cr_assert_not(r.timed_out, "wisp migrate hung");
    *out = strdup(r.out);
    int st = r.status;
    proc_result_free(&r);
    return st;
}

static char *finish(struct vm *v, unsigned ms, int *status)
{
    struct proc_result r;
    if (v->running && !ms)
        kill(v->p.pid, SIGTERM);
    sandbox_proc_finish(&v->p, NULL, ms ? ms : 20000, &r);
    v->running = false;
    *status = r.timed_out ? -1 : r.status;
    char *out = strdup(r.out);
    proc_result_free(&r);
    return out;
}

Test(passthrough_mig, mid_dma_to_a_fresh_server)
{
    char s0[128], s1[128], to[128];
    server(0, NULL, s0, sizeof(s0));
    server(1, NULL, s1, sizeof(s1));
    snprintf(to, sizeof(to), "unix:%s/mig.sock", dir);
    struct vm src, dst;
    start(&src, "src", s0, NULL, NULL);
    long before = wait_loops(src.serial, 128);
    start(&dst, "dst", s1, NULL, to);
    char *out;
    int st = migrate(&src, to, &out);
    cr_assert_eq(st, 0, "wisp migrate: %d\n%s", st, out);
    free(out);
    int sst;
    char *sout = finish(&src, 30000, &sst);
    cr_assert_eq(sst, 0, "the source exits 0 once the destination runs: %d\n%s", sst, sout);
    cr_assert(strstr(sout, "device pt0: no DMA dirty logging: all 128 MiB"), "%s", sout);
    cr_assert(strstr(sout, "device pt0: saved"), "%s", sout);
    bool failed;
    long moved = loops(src.serial, &failed);
    cr_assert_geq(moved, before);
    /* The loop goes on on the destination (its counter is the guest's):
     * 256 more iterations, each checking every ring slot, the checksum and
     * its interrupt. */
    long after = wait_loops(dst.serial, moved + 256);
    fprintf(stderr, "passthrough_mig: loop %ld on the source, loop %ld on the destination\n", moved,
            after);
    int dst_st;
    char *dout = finish(&dst, 0, &dst_st);
    cr_assert(strstr(dout, "device pt0: loaded"), "%s", dout);
    cr_assert_null(strstr(dout, "seccomp"), "%s", dout);
    free(sout);
    free(dout);
}

/* A destination presenting another layout (2 MSI-X vectors, not 4)
 * refuses; the source keeps looping. */
Test(passthrough_mig, other_layout_refused)
{
    char s0[128], s1[128], to[128], lay[128];
    server(0, NULL, s0, sizeof(s0));
    server(1, NULL, s1, sizeof(s1));
    snprintf(to, sizeof(to), "unix:%s/mig.sock", dir);
    snprintf(lay, sizeof(lay), "%s/two.layout", dir);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "%s vpci derive --vfio-user %s | sed 's/vectors=4/vectors=2/' > %s && grep -q "
             "vectors=2 %s",
             wisp_bin(), s1, lay, lay);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    /* derive took server 1's only client: start it again. */
    kill(servers[1], SIGKILL);
    waitpid(servers[1], NULL, 0);
    server(1, NULL, s1, sizeof(s1));
    struct vm src, dst;
    start(&src, "src", s0, NULL, NULL);
    wait_loops(src.serial, 64);
    start(&dst, "dst", s1, lay, to);
    char *out;
    int st = migrate(&src, to, &out);
    cr_assert_neq(st, 0, "%s", out);
    cr_assert(strstr(out, "device pt0: the stream's vPCI layout (digest 0x"), "%s", out);
    free(out);
    bool failed;
    long n = loops(src.serial, &failed);
    wait_loops(src.serial, n + 128);
    int s;
    free(finish(&dst, 0, &s));
    free(finish(&src, 0, &s));
}

/* A server without migration: refused before anything is sent. */
Test(passthrough_mig, server_without_migration_refused)
{
    char s0[128], s1[128], to[128];
    server(0, "--no-migration", s0, sizeof(s0));
    server(1, NULL, s1, sizeof(s1));
    snprintf(to, sizeof(to), "unix:%s/mig.sock", dir);
    struct vm src, dst;
    start(&src, "src", s0, NULL, NULL);
    wait_loops(src.serial, 64);
    start(&dst, "dst", s1, NULL, to);
    char *out;
    int st = migrate(&src, to, &out);
    cr_assert_neq(st, 0, "%s", out);
    cr_assert(strstr(out, "cannot migrate: the vfio-user server does not support migration"), "%s",
              out);
    free(out);
    bool failed;
    long n = loops(src.serial, &failed);
    wait_loops(src.serial, n + 128);
    int s;
    free(finish(&dst, 0, &s));
    free(finish(&src, 0, &s));
}

/* Kernel VFIO: edu has no migration support and wisp's kernel migration
 * v2 is not built, so a migration is refused with one line and the guest
 * runs on.  Run by tests/testbed/vfio/run (WISP_EDU_BDF). */
Test(passthrough_edu, migration_refused, .timeout = 180)
{
    const char *bdf = getenv("WISP_EDU_BDF");
    if (!bdf || !bdf[0])
        cr_skip_test("WISP_EDU_BDF unset: run through tests/testbed/vfio/run");
    snprintf(dir, sizeof(dir), "/tmp/wisp-ptm-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char dev[160], sock[96], serial[96], cmd[1024];
    snprintf(dev, sizeof(dev), "vfio,path=/sys/bus/pci/devices/%s,id=edu", bdf);
    snprintf(sock, sizeof(sock), "%s/api", dir);
    snprintf(serial, sizeof(serial), "%s/serial", dir);
    snprintf(cmd, sizeof(cmd),
             "exec %s run --memory 128M --pci on --device %s --serial file:%s --api-sock %s "
             "--kernel %s --cmdline test=tick 2>&1",
             wisp_bin(), dev, serial, sock, guest_elf());
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    struct vm v = {.running = true};
    snprintf(v.sock, sizeof(v.sock), "%s", sock);
    cr_assert_eq(sandbox_proc_start(&v.p, argv, NULL), 0);
    double end = now_s() + 60;
    size_t len;
    char *t = NULL;
    while (now_s() < end && !((t = read_file(serial, &len)) && strstr(t, "tick 2"))) {
        free(t);
        t = NULL;
        usleep(50000);
    }
    cr_assert(t, "the guest never ticked");
    free(t);
    /* A listener stands in for the destination: the source refuses after
     * connecting, before it sends a byte. */
    char to[128], *out;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/mig.sock", dir);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(lfd, 0);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(lfd, 1), 0);
    snprintf(to, sizeof(to), "unix:%s", sa.sun_path);
    int st = migrate(&v, to, &out);
    close(lfd);
    cr_assert_neq(st, 0, "%s", out);
    cr_assert(strstr(out, "device vfio-pci 0 cannot migrate: migration through this transport "
                          "(kernel VFIO) is not built yet"),
              "%s", out);
    free(out);
    end = now_s() + 30;
    while (now_s() < end && !((t = read_file(serial, &len)) && strstr(t, "tick 40"))) {
        free(t);
        t = NULL;
        usleep(50000);
    }
    cr_assert(t, "the guest stopped after the refusal");
    free(t);
    int s;
    free(finish(&v, 0, &s));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}
