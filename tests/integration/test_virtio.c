/*
 * virtio-mmio devices end to end: the test guest drives wisp's blk, net,
 * rng and console devices through its own drivers, and the host side
 * checks what landed (image bytes, frames through a tap in a network
 * namespace, bytes on a console socket).  Hostile-guest modes check that a
 * misbehaving driver breaks only its own device.
 */
#include "tests/lib/netns.h"
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define ASSERT_PASS(r)                                                                             \
    cr_assert_eq((r)->status, GUEST_PASS, "status %d\nstdout:\n%s\nstderr:\n%s", (r)->status,      \
                 (r)->out, (r)->err)
#define ASSERT_OUT(r, s)                                                                           \
    cr_assert(strstr((r)->out, (s)), "missing '%s' in stdout:\n%s\nstderr:\n%s", (s), (r)->out,    \
              (r)->err)

#define IMG_SECTORS 16384 /* 8 MiB */

static char *make_image(void)
{
    char *p = write_temp("", 0);
    cr_assert_eq(truncate(p, IMG_SECTORS * 512LL), 0);
    return p;
}

/* The guest's pattern: sector s, u64 word j = pattern ^ (s << 16) ^ j. */
static void check_sector(const uint8_t *img, uint64_t s, uint64_t pattern)
{
    for (uint64_t j = 0; j < 64; j++) {
        uint64_t w;
        memcpy(&w, img + s * 512 + j * 8, 8);
        cr_assert_eq(w, pattern ^ (s << 16) ^ j, "sector %llu word %llu: 0x%llx",
                     (unsigned long long)s, (unsigned long long)j, (unsigned long long)w);
    }
}

Test(virtio, blk_writes_reach_the_image, .timeout = 120)
{
    char *img = make_image();
    char dev[512];
    snprintf(dev, sizeof(dev), "blk,path=%s,id=disk0", img);
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--device", dev,
             "--cmdline", "test=blk blk_pattern=0x1234abcd", NULL);
    ASSERT_PASS(&r);
    ASSERT_OUT(&r, "blk id=\"disk0\"");
    ASSERT_OUT(&r, "check blk_read_past_end ok");
    size_t len;
    uint8_t *data = (uint8_t *)read_file(img, &len);
    unlink(img);
    free(img);
    cr_assert_eq(len, IMG_SECTORS * 512);
    uint64_t n = IMG_SECTORS;
    check_sector(data, 0, 0x1234abcd);
    check_sector(data, 1, 0x1234abcd);
    check_sector(data, n / 2, 0x1234abcd);
    check_sector(data, n - 1, 0x1234abcd);
    for (size_t i = 0; i < 512; i++)
        cr_assert_eq(data[2 * 512 + i], 0, "write-zeroes left data at byte %zu", i);
    free(data);
    proc_result_free(&r);
}

Test(virtio, blk_readonly_refuses_writes, .timeout = 120)
{
    char *img = make_image();
    char dev[512];
    snprintf(dev, sizeof(dev), "blk,path=%s,readonly=on", img);
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--device", dev,
             "--cmdline", "test=blk blk_ro=1", NULL);
    size_t len;
    uint8_t *data = (uint8_t *)read_file(img, &len);
    unlink(img);
    free(img);
    ASSERT_PASS(&r);
    ASSERT_OUT(&r, "ro=1");
    for (size_t i = 0; i < len; i++)
        cr_assert_eq(data[i], 0, "read-only image modified at byte %zu", i);
    free(data);
    proc_result_free(&r);
}

Test(virtio, rng_returns_bytes, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--device", "rng",
             "--cmdline", "test=rng", NULL);
    ASSERT_PASS(&r);
    ASSERT_OUT(&r, "check rng_not_constant ok");
    proc_result_free(&r);
}

/* Connect to wisp's console socket, waiting for it to appear. */
static int connect_console(const char *path)
{
    for (int i = 0; i < 600; i++) {
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return s;
        close(s);
        usleep(50 * 1000);
    }
    cr_assert_fail("console socket %s never appeared", path);
    return -1;
}

/* Read from `fd` until `needle` shows up (bounded by poll timeouts). */
static void read_until(int fd, const char *needle)
{
    char buf[4096];
    size_t got = 0;
    while (got < sizeof(buf) - 1) {
        struct pollfd p = {fd, POLLIN, 0};
        cr_assert_gt(poll(&p, 1, 60000), 0, "timed out waiting for '%s'", needle);
        ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
        cr_assert_gt(n, 0, "EOF before '%s' (got '%.*s')", needle, (int)got, buf);
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, needle))
            return;
    }
    cr_assert_fail("'%s' not seen", needle);
}

/*
 * Run wisp in the background with `args`, talk to the console socket at
 * `sock` (expect the guest's hello, answer with a line), then collect the
 * result.
 */
static void run_with_console(struct proc_result *r, const char *sock, const char *const *args)
{
    int out[2];
    cr_assert_eq(pipe(out), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(out[1], 2);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        char *argv[32];
        size_t n = 0;
        argv[n++] = (char *)(uintptr_t)wisp_bin();
        for (; args[n - 1]; n++)
            argv[n] = (char *)(uintptr_t)args[n - 1];
        argv[n] = NULL;
        execv(argv[0], argv);
        _exit(127);
    }
    close(out[1]);
    int c = connect_console(sock);
    read_until(c, "console hello");
    const char line[] = "hello console\n";
    cr_assert_eq(write(c, line, sizeof(line) - 1), (ssize_t)sizeof(line) - 1);
    memset(r, 0, sizeof(*r));
    size_t cap = 1 << 16;
    r->out = calloc(1, cap);
    r->err = calloc(1, 1);
    for (;;) {
        ssize_t k = read(out[0], r->out + r->out_len, cap - 1 - r->out_len);
        if (k <= 0)
            break;
        r->out_len += (size_t)k;
    }
    int st;
    waitpid(pid, &st, 0);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    close(c);
    close(out[0]);
}

Test(virtio, console_socket_round_trip, .timeout = 120)
{
    char sock[64];
    snprintf(sock, sizeof(sock), "/tmp/wisp-console-%d.sock", getpid());
    char dev[128];
    snprintf(dev, sizeof(dev), "console,socket=%s", sock);
    const char *args[] = {"run",       "--kernel",     guest_elf(), "--debug-exit", "--device", dev,
                          "--cmdline", "test=console", NULL};
    struct proc_result r;
    run_with_console(&r, sock, args);
    ASSERT_PASS(&r);
    ASSERT_OUT(&r, "console got HELLO CONSOLE");
    cr_assert_neq(access(sock, F_OK), 0, "console socket left behind");
    proc_result_free(&r);
}

Test(virtio, net_frames_through_tap, .timeout = 120)
{
    char why[128];
    if (!netns_enter(why, sizeof(why)))
        cr_skip_test("%s", why);
    cr_assert_eq(netns_tap_create("wtap0"), 0);
    cr_assert_eq(netns_reflector_start("wtap0", 0x88b5), 0);
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--device",
             "net,tap=wtap0,mac=52:54:00:12:34:56", "--cmdline",
             "test=net net_count=16 net_expect=16", NULL);
    unsigned reflected = netns_reflector_stop();
    ASSERT_PASS(&r);
    ASSERT_OUT(&r, "mac=52:54:00:12:34:56");
    ASSERT_OUT(&r, "distinct=16");
    cr_assert_geq(reflected, 16, "the host saw %u frames", reflected);
    proc_result_free(&r);
}

Test(virtio, all_four_devices, .timeout = 120)
{
    /* The "done when": a disk, a tap NIC, rng and console at once. */
    char why[128];
    if (!netns_enter(why, sizeof(why)))
        cr_skip_test("%s", why);
    cr_assert_eq(netns_tap_create("wtap1"), 0);
    cr_assert_eq(netns_reflector_start("wtap1", 0x88b5), 0);
    char *img = make_image();
    char blk[512], con[128], sock[64];
    snprintf(blk, sizeof(blk), "blk,path=%s", img);
    snprintf(sock, sizeof(sock), "/tmp/wisp-all-%d.sock", getpid());
    snprintf(con, sizeof(con), "console,socket=%s", sock);
    const char *args[] = {"run",       "--kernel",
                          guest_elf(), "--debug-exit",
                          "--vcpus",   "2",
                          "--device",  blk,
                          "--device",  "net,tap=wtap1",
                          "--device",  "rng",
                          "--device",  con,
                          "--cmdline", "test=virtio-all net_count=8 net_expect=8",
                          NULL};
    struct proc_result r;
    run_with_console(&r, sock, args);
    netns_reflector_stop();
    unlink(img);
    free(img);
    ASSERT_PASS(&r);
    ASSERT_OUT(&r, "check blk_readback ok");
    ASSERT_OUT(&r, "check rng_read ok");
    ASSERT_OUT(&r, "console got HELLO CONSOLE");
    proc_result_free(&r);
}

/* Hostile guests: each mode must leave wisp running and the other device usable. */
static const char *const hostile_modes[] = {
    "desc-out-of-ram", "desc-across-hole", "chain-loop",     "chain-too-long",
    "avail-jump",      "huge-len",         "queue-reconfig", "features-not-offered",
    "ro-registers",    "bad-access-size",
};

Test(virtio, hostile_guest_modes, .timeout = 300)
{
    for (size_t i = 0; i < ARRAY_SIZE(hostile_modes); i++) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "test=hostile-%s", hostile_modes[i]);
        struct proc_result r;
        wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--device", "rng",
                 "--device", "rng", "--cmdline", cmd, NULL);
        cr_assert_eq(r.status, GUEST_PASS, "%s: status %d\n%s\n%s", hostile_modes[i], r.status,
                     r.out, r.err);
        cr_assert(strstr(r.out, "survived"), "%s:\n%s", hostile_modes[i], r.out);
        /* Guest-triggered logging is rate-limited. */
        unsigned lines = 0;
        for (const char *p = r.err; (p = strchr(p, '\n')); p++)
            lines++;
        cr_assert_leq(lines, 20, "%s: %u log lines:\n%s", hostile_modes[i], lines, r.err);
        proc_result_free(&r);
    }
}

Test(virtio, hostile_blk_victim, .timeout = 120)
{
    /*
     * A descriptor outside guest RAM makes virtq_pop() fail: for blk that is
     * a broken ring, not a bad request, so the one right outcome is
     * DEVICE_NEEDS_RESET with nothing completed (blk.h: only a broken ring
     * sets it; no status byte can be written through such a chain), and the
     * other device keeps working.
     */
    char *img = make_image();
    char dev[512];
    snprintf(dev, sizeof(dev), "blk,path=%s", img);
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--device", dev,
             "--device", "rng", "--cmdline", "test=hostile-desc-out-of-ram hostile_dev=blk", NULL);
    unlink(img);
    free(img);
    ASSERT_PASS(&r);
    cr_assert(strstr(r.out, "hostile outcome completed=0 len=0 blk_status=-1 needs_reset=1"),
              "blk victim: expected NEEDS_RESET and no completion:\n%s", r.out);
    cr_assert(strstr(r.out, "check hostile_healthy_device ok"), "%s", r.out);
    proc_result_free(&r);
}

Test(virtio, device_setup_errors)
{
    struct {
        const char *dev;
        int code;
        const char *needle;
    } cases[] = {
        {"blk,path=/nonexistent/disk.img", 2, "/nonexistent/disk.img"},
        {"console,socket=/nonexistent-dir/c.sock", 2, "/nonexistent-dir/c.sock"},
        {"blk", 2, "needs path="},
        {"sound", 2, "unknown device type"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct proc_result r;
        wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--device",
                 cases[i].dev, "--cmdline", "test=exit", NULL);
        cr_assert_eq(r.status, cases[i].code, "%s: %d %s", cases[i].dev, r.status, r.err);
        cr_assert(strstr(r.err, cases[i].needle), "%s: %s", cases[i].dev, r.err);
        cr_assert(strncmp(r.err, "wisp: error: ", 13) == 0, "%s", r.err);
        proc_result_free(&r);
    }
}
