/*
 * Live migration on the real binary (docs/MIGRATION.md): a test guest that
 * prints "tick N" on COM1 every 20 ms moves between wisp processes in two
 * network namespaces joined by a veth pair ("two hosts"), over TCP, with
 * `wisp migrate`; the destination is `wisp run --incoming`.
 *
 * What must hold: every hop ends with the source exiting 0 and the ticks
 * continuing on the destination exactly where they stopped (the counter
 * lives in guest memory and registers: a lost page or a stale vCPU state
 * breaks the sequence); and every failure -- a destination that refuses
 * (memory, vCPUs, devices, CPU template), dies mid-stream, or receives a
 * corrupted, truncated or wrong-version stream through a meddling proxy --
 * leaves the VM running on the source, ticking, while the destination
 * exits with one line that names the problem.
 */
#include "tests/lib/api_http.h"
#include "tests/lib/migck.h"
#include "tests/lib/sandbox_proc.h"
#include "tests/lib/wisp_run.h"
#include "migration/stream.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
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

#define HOPS       20
#define MEM        "128M"
#define MIG_PORT0  7700
#define EXIT_USAGE 2

struct netpair {
    char ns[2][32];
    char ip[2][32];
    bool up;
};

struct vmproc {
    struct sandbox_proc p;
    char sock[128];
    char serial[128];
    bool running;
};

static struct netpair net;
static char dir[64];

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

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Two namespaces, a veth pair between them, 10.77.X.1 and 10.77.X.2. */
static void net_up(void)
{
    unsigned x = (unsigned)getpid() % 200 + 1;
    for (int i = 0; i < 2; i++) {
        snprintf(net.ns[i], sizeof(net.ns[i]), "wmig%u%c", (unsigned)getpid(), 'a' + i);
        snprintf(net.ip[i], sizeof(net.ip[i]), "10.77.%u.%d", x, i + 1);
    }
    cr_assert_eq(sh("ip netns add %s && ip netns add %s && "
                    "ip link add wmv0 netns %s type veth peer name wmv1 netns %s && "
                    "ip -n %s addr add %s/24 dev wmv0 && ip -n %s addr add %s/24 dev wmv1 && "
                    "ip -n %s link set wmv0 up && ip -n %s link set wmv1 up && "
                    "ip -n %s link set lo up && ip -n %s link set lo up",
                    net.ns[0], net.ns[1], net.ns[0], net.ns[1], net.ns[0], net.ip[0], net.ns[1],
                    net.ip[1], net.ns[0], net.ns[1], net.ns[0], net.ns[1]),
                 0, "cannot set up the two test hosts");
    net.up = true;
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/wisp-mig-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    net_up();
}

static void teardown(void)
{
    if (net.up)
        sh("ip netns del %s; ip netns del %s", net.ns[0], net.ns[1]);
    net.up = false;
    sh("rm -rf %s", dir);
}

TestSuite(migrate, .init = setup, .fini = teardown, .timeout = 600);

/*
 * Start wisp in namespace `host` (0 or 1): a source (cmdline != NULL: boots
 * the tick guest) or a destination (`incoming` URL).  `extra` adds options.
 * stderr goes to stdout, which the test reads.
 */
static void start(struct vmproc *v, int host, const char *name, const char *cmdline,
                  const char *incoming, const char *extra)
{
    memset(v, 0, sizeof(*v));
    snprintf(v->sock, sizeof(v->sock), "%s/%s.sock", dir, name);
    snprintf(v->serial, sizeof(v->serial), "%s/%s.log", dir, name);
    char boot[512] = "", inc[192] = "";
    if (cmdline)
        snprintf(boot, sizeof(boot), "--kernel %s --cmdline '%s'", guest_elf(), cmdline);
    if (incoming)
        snprintf(inc, sizeof(inc), "--incoming %s", incoming);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "exec ip netns exec %s %s run --debug-exit --vcpus 2 --memory " MEM
             " --serial file:%s --api-sock %s --log-level info %s %s %s 2>&1",
             net.ns[host], wisp_bin(), v->serial, v->sock, boot, inc, extra ? extra : "");
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    cr_assert_eq(sandbox_proc_start(&v->p, argv, NULL), 0);
    v->running = true;
    if (incoming)
        cr_assert(sandbox_proc_wait_for(&v->p, "waiting for the migration stream", 20000),
                  "destination not listening: %s", v->p.out);
}

/* Numbers of the complete "tick N" lines in a serial file, in order. */
static long ticks(const char *path, long *first, long *last, bool *gapless)
{
    size_t len;
    char *text = read_file(path, &len);
    long n = 0, prev = -1;
    *first = *last = -1;
    *gapless = true;
    for (char *p = text; p && (p = strstr(p, "tick ")) != NULL; p += 5) {
        char *end;
        long v = strtol(p + 5, &end, 10);
        if (end == p + 5 || *end != '\n')
            continue;
        if (*first < 0)
            *first = v;
        else if (v != prev + 1)
            *gapless = false;
        prev = *last = v;
        n++;
    }
    free(text);
    return n;
}

static void wait_ticks(struct vmproc *v, long min_count)
{
    double end = now_s() + 60;
    long f, l;
    bool g;
    while (ticks(v->serial, &f, &l, &g) < min_count) {
        cr_assert_lt(now_s(), end, "the guest stopped ticking in %s", v->serial);
        sleep_ms(50);
    }
}

/* Run `wisp migrate` to `url` from v's API; returns its exit status, output in *out. */
static int migrate(struct vmproc *v, const char *url, const char *extra, char **out)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s migrate --api-sock %s --to %s %s", wisp_bin(), v->sock, url,
             extra ? extra : "");
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    struct proc_result r;
    cr_assert_eq(proc_run(argv, NULL, NULL, 0, 120000, &r), 0);
    cr_assert_not(r.timed_out, "wisp migrate hung");
    size_t n = strlen(r.out) + strlen(r.err) + 2;
    *out = malloc(n);
    snprintf(*out, n, "%s%s", r.out, r.err);
    int st = r.status;
    proc_result_free(&r);
    return st;
}

static int finish(struct vmproc *v, unsigned ms)
{
    struct proc_result r;
    sandbox_proc_finish(&v->p, NULL, ms, &r);
    v->running = false;
    int st = r.timed_out ? -1 : r.status;
    cr_assert_null(strstr(r.out, "seccomp"), "%s", r.out);
    proc_result_free(&r);
    return st;
}

static void stop(struct vmproc *v)
{
    if (!v->running)
        return;
    kill(v->p.pid, SIGTERM);
    (void)finish(v, 20000);
}

/* After `what`, the source still runs the guest: the ticks go on, none skipped.  Stops it. */
static void still_ticking(struct vmproc *src, const char *what)
{
    long f, l0, l1;
    bool g;
    ticks(src->serial, &f, &l0, &g);
    sleep_ms(500);
    ticks(src->serial, &f, &l1, &g);
    cr_assert_gt(l1, l0, "the source stopped after %s", what);
    cr_assert(g, "ticks skipped on the source after %s", what);
    stop(src);
}

Test(migrate, back_and_forth_over_tcp)
{
    struct vmproc vm[2];
    int cur = 0, host = 0;
    start(&vm[cur], host, "hop0", "test=tick tick_count=1000000", NULL, NULL);
    wait_ticks(&vm[cur], 10);
    double worst = 0;
    for (int hop = 1; hop <= HOPS; hop++) {
        int nxt = 1 - cur, dhost = 1 - host;
        char name[16], url[64];
        snprintf(name, sizeof(name), "hop%d", hop);
        snprintf(url, sizeof(url), "tcp:%s:%d", net.ip[dhost], MIG_PORT0 + hop);
        start(&vm[nxt], dhost, name, NULL, url + 0, NULL);
        double t0 = now_s();
        char *out;
        int st = migrate(&vm[cur], url, "--downtime-ms 100", &out);
        cr_assert_eq(st, 0, "hop %d: wisp migrate exited %d:\n%s", hop, st, out);
        cr_assert(strstr(out, "completed"), "%s", out);
        free(out);
        cr_assert_eq(finish(&vm[cur], 20000), 0, "hop %d: the source did not exit 0", hop);
        double took = now_s() - t0;
        worst = took > worst ? took : worst;
        wait_ticks(&vm[nxt], 5);
        long sf, sl, df, dl;
        bool sg, dg;
        ticks(vm[cur].serial, &sf, &sl, &sg);
        ticks(vm[nxt].serial, &df, &dl, &dg);
        /* A line may be cut by the hop: the next complete one is N+1 or N+2. */
        cr_assert(df == sl + 1 || df == sl + 2,
                  "hop %d: source's last tick %ld, destination's first %ld", hop, sl, df);
        cr_assert(sg && dg, "hop %d: ticks skipped within one host", hop);
        unlink(vm[cur].serial);
        cur = nxt;
        host = dhost;
    }
    fprintf(stderr, "migrate: %d hops, the slowest took %.2f s\n", HOPS, worst);
    stop(&vm[cur]);
}

/* Wait until the migck guest in `serial` prints N >= want; returns its state. */
static struct migck wait_migck(const char *serial, long want)
{
    struct migck m;
    double end = now_s() + 120;
    for (;;) {
        migck_scan(serial, &m);
        cr_assert_not(m.fail, "%s: %s", serial, m.fail_line);
        if (m.last >= want)
            return m;
        cr_assert_lt(now_s(), end, "%s: migck stuck at %ld (want %ld)", serial, m.last, want);
        sleep_ms(100);
    }
}

/*
 * A guest that checks its own memory (every page of a 4 MiB area against a
 * table of generations) and writes self-checking records to its disk moves
 * back and forth HOPS times; after each hop it completes a whole verification pass on the
 * destination, and the disk (shared by both ends, as shared storage would
 * be) holds only whole records at the end.  Device writes to guest memory
 * during pre-copy (virtio-blk completions) are what KVM's log does not see.
 */
Test(migrate, memory_and_disk_survive_twenty_hops)
{
    char disk[160], dev[200];
    snprintf(disk, sizeof(disk), "%s/disk.img", dir);
    FILE *f = fopen(disk, "w");
    cr_assert_not_null(f);
    cr_assert_eq(ftruncate(fileno(f), MIGCK_DISK_BYTES), 0);
    fclose(f);
    snprintf(dev, sizeof(dev), "--device blk,path=%s", disk);
    const long pages = 4 * 256;
    struct vmproc vm[2];
    int cur = 0, host = 0;
    start(&vm[cur], host, "m0", "test=migck migck_mb=4 migck_blk=1", NULL, dev);
    struct migck m = wait_migck(vm[cur].serial, pages + 64);
    for (int hop = 1; hop <= HOPS; hop++) {
        int nxt = 1 - cur, dhost = 1 - host;
        char name[16], url[64];
        snprintf(name, sizeof(name), "m%d", hop);
        snprintf(url, sizeof(url), "tcp:%s:%d", net.ip[dhost], MIG_PORT0 + 50 + hop);
        start(&vm[nxt], dhost, name, NULL, url, dev);
        char *out;
        int st = migrate(&vm[cur], url, NULL, &out);
        cr_assert_eq(st, 0, "hop %d: wisp migrate exited %d:\n%s", hop, st, out);
        free(out);
        cr_assert_eq(finish(&vm[cur], 20000), 0, "hop %d: the source did not exit 0", hop);
        migck_scan(vm[cur].serial, &m);
        cr_assert_not(m.fail, "hop %d: source: %s", hop, m.fail_line);
        struct migck d = wait_migck(vm[nxt].serial, m.last + pages + 64);
        cr_assert_gt(d.first, m.last, "hop %d: the counter went back", hop);
        m = d;
        unlink(vm[cur].serial);
        cur = nxt;
        host = dhost;
    }
    stop(&vm[cur]);
    migck_scan(vm[cur].serial, &m);
    cr_assert_not(m.fail, "%s", m.fail_line);
    cr_assert_gt(migck_check_disk(disk, m.last + 1, &m), 0, "no record reached the disk");
}

/* A destination that must refuse, the source keeps ticking. */
static void refused(const char *dest_extra, const char *want)
{
    struct vmproc src, dst;
    start(&src, 0, "src", "test=tick tick_count=1000000", NULL, NULL);
    wait_ticks(&src, 5);
    char url[160];
    snprintf(url, sizeof(url), "unix:%s/mig.sock", dir);
    start(&dst, 0, "dst", NULL, url, dest_extra);
    char *out;
    int st = migrate(&src, url, NULL, &out);
    cr_assert_eq(st, 1, "wisp migrate exited %d:\n%s", st, out);
    cr_assert(strstr(out, want), "want '%s' in:\n%s", want, out);
    free(out);
    int dst_st = finish(&dst, 20000);
    cr_assert_eq(dst_st, EXIT_USAGE, "destination status %d", dst_st);
    still_ticking(&src, "a refused migration");
}

Test(migrate, refuses_other_memory_size)
{
    refused("--memory 256M", "memory range 0");
}

Test(migrate, refuses_other_vcpu_count)
{
    refused("--vcpus 1", "destination has 1 vCPUs, the stream 2");
}

Test(migrate, refuses_other_devices)
{
    refused("--device rng", "devices");
}

Test(migrate, refuses_other_cpu_template)
{
    refused("--cpu-template x86-64-v2", "CPU template");
}

Test(migrate, destination_killed_mid_stream)
{
    struct vmproc src, dst;
    start(&src, 0, "src", "test=tick tick_count=1000000", NULL, NULL);
    wait_ticks(&src, 5);
    char url[160];
    snprintf(url, sizeof(url), "unix:%s/mig.sock", dir);
    start(&dst, 0, "dst", NULL, url, NULL);
    /* 8 Mbit/s: the first pass over the guest's pages takes seconds. */
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s migrate --api-sock %s --to %s --bandwidth-mbps 1 2>&1",
             wisp_bin(), src.sock, url);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    struct sandbox_proc m;
    cr_assert_eq(sandbox_proc_start(&m, argv, NULL), 0);
    sleep_ms(1500);
    kill(dst.p.pid, SIGKILL);
    (void)finish(&dst, 5000);
    struct proc_result r;
    sandbox_proc_finish(&m, NULL, 90000, &r);
    cr_assert_eq(r.status, 1, "wisp migrate exited %d: %s", r.status, r.out);
    cr_assert(strstr(r.out, "failed"), "%s", r.out);
    proc_result_free(&r);
    still_ticking(&src, "the destination died");
}

/* ---- a meddling proxy between source and destination ---- */

struct proxy {
    char listen_path[128];
    char dest_path[128];
    long corrupt_at; /* flip a bit of this stream byte, or -1 */
    long cut_at;     /* close after this many bytes, or -1 */
    int version;     /* > 0: rewrite the header's format version (and its checksum) */
    int lfd;
    pthread_t thread;
};

static int unix_socket(const char *path, bool listening)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    int r = listening ? bind(s, (struct sockaddr *)&sa, sizeof(sa)) : 0;
    if (r == 0)
        r = listening ? listen(s, 1) : connect(s, (struct sockaddr *)&sa, sizeof(sa));
    if (r < 0) {
        close(s);
        return -1;
    }
    return s;
}

static void *proxy_run(void *arg)
{
    struct proxy *x = arg;
    int a = accept(x->lfd, NULL, NULL);
    int b = a >= 0 ? unix_socket(x->dest_path, false) : -1;
    long pos = 0;
    char buf[65536];
    struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
    while (a >= 0 && b >= 0 && poll(p, 2, 30000) > 0) {
        if (p[0].revents) {
            ssize_t n = read(a, buf, sizeof(buf));
            if (n <= 0) {
                shutdown(b, SHUT_WR);
                p[0].fd = -1;
                continue;
            }
            if (x->cut_at >= 0 && pos + n > x->cut_at) {
                n = x->cut_at - pos;
                if (n > 0 && write(b, buf, (size_t)n) < 0)
                    break;
                break; /* the stream ends here: both sides see it close */
            }
            if (x->corrupt_at >= pos && x->corrupt_at < pos + n)
                buf[x->corrupt_at - pos] ^= 0x10;
            if (x->version > 0 && pos == 0 && n >= 20) {
                /* A well-formed header of another format version. */
                buf[8] = (char)(x->version & 0xff);
                buf[9] = (char)(x->version >> 8);
                uint32_t crc = mig_stream_crc32c(0, buf, 16);
                for (int i = 0; i < 4; i++)
                    buf[16 + i] = (char)(crc >> (8 * i));
            }
            pos += n;
            if (write(b, buf, (size_t)n) != n)
                break;
        }
        if (p[1].revents) { /* the destination's answer goes back */
            ssize_t n = read(b, buf, sizeof(buf));
            if (n <= 0 || write(a, buf, (size_t)n) != n)
                break;
        }
    }
    if (a >= 0)
        close(a);
    if (b >= 0)
        close(b);
    return NULL;
}

static void meddled(long corrupt_at, long cut_at, int version, const char *dest_says)
{
    struct vmproc src, dst;
    start(&src, 0, "src", "test=tick tick_count=1000000", NULL, NULL);
    wait_ticks(&src, 5);
    struct proxy x = {.corrupt_at = corrupt_at, .cut_at = cut_at, .version = version};
    snprintf(x.listen_path, sizeof(x.listen_path), "%s/proxy.sock", dir);
    snprintf(x.dest_path, sizeof(x.dest_path), "%s/mig.sock", dir);
    x.lfd = unix_socket(x.listen_path, true);
    cr_assert_geq(x.lfd, 0);
    char url[160];
    snprintf(url, sizeof(url), "unix:%s", x.dest_path);
    start(&dst, 0, "dst", NULL, url, NULL);
    pthread_create(&x.thread, NULL, proxy_run, &x);
    snprintf(url, sizeof(url), "unix:%s", x.listen_path);
    char *out;
    int st = migrate(&src, url, NULL, &out);
    pthread_join(x.thread, NULL);
    close(x.lfd);
    cr_assert_eq(st, 1, "wisp migrate exited %d:\n%s", st, out);
    free(out);
    struct proc_result r;
    sandbox_proc_finish(&dst.p, NULL, 20000, &r);
    cr_assert_neq(r.status, 0, "the destination accepted a damaged stream");
    cr_assert(strstr(r.out, dest_says), "want '%s' from the destination:\n%s", dest_says, r.out);
    proc_result_free(&r);
    still_ticking(&src, "a failed migration");
}

Test(migrate, corrupted_byte_is_refused)
{
    /* Past the header and MACHINE: inside the first RAM section. */
    meddled(20000, -1, 0, "checksum");
}

Test(migrate, truncated_stream_is_refused)
{
    meddled(-1, 30000, 0, "migration stream");
}

Test(migrate, wrong_version_is_refused)
{
    meddled(-1, -1, 7, "version");
}
