/*
 * virtio-vsock's host side in a real wisp process, under its real seccomp
 * filters (kill mode) and Landlock: host peers connect to uds_path, and a
 * CONNECT to a guest that never answers (the freestanding test guest has no
 * vsock driver) is closed after the handshake timeout, a malformed line at
 * once; wisp keeps running, ends cleanly on SIGTERM and removes uds_path.
 * The guest side is tested in the unit suites (virtio_vsock*).
 */
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(unsigned ms)
{
    nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000 * 1000}, NULL);
}

static int peer(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    for (int i = 0; i < 100; i++) {
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return fd;
        sleep_ms(100);
    }
    cr_assert_fail("cannot connect to %s: %s", path, strerror(errno));
    return -1;
}

/* Milliseconds until the peer closes (reads 0), or -1 after `limit_ms`. */
static long closed_after(int fd, int limit_ms)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    struct pollfd p = {fd, POLLIN, 0};
    char buf[64];
    while (poll(&p, 1, limit_ms) == 1) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) {
            clock_gettime(CLOCK_MONOTONIC, &b);
            return (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
        }
        cr_assert_fail("unexpected bytes from wisp: %.*s", (int)n, buf);
    }
    return -1;
}

Test(vsock, host_peers_under_seccomp, .timeout = 120)
{
    char dir[] = "/tmp/wisp-vsock-it-XXXXXX", path[128], spec[200];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/v.sock", dir);
    snprintf(spec, sizeof(spec), "vsock,cid=3,uds_path=%s", path);
    signal(SIGPIPE, SIG_IGN);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0)
            _exit(127);
        execl(wisp_bin(), wisp_bin(), "run", "--kernel", guest_elf(), "--debug-exit", "--serial",
              "none", "--device", "console", "--device", spec, "--cmdline",
              "test=console console_wait_ms=60000", (char *)NULL);
        _exit(127);
    }
    int bad = peer(path);
    cr_assert_eq(write(bad, "HELLO 5\n", 8), 8);
    cr_assert_geq(closed_after(bad, 1000), 0, "a malformed line is refused at once");
    int mute = peer(path);
    cr_assert_eq(write(mute, "CONNECT 5\n", 10), 10);
    long ms = closed_after(mute, 10000);
    cr_assert_geq(ms, 1000, "closed after the 2 s the guest has to answer, not at once (%ld)", ms);
    cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "wisp still runs");
    cr_assert_eq(kill(pid, SIGTERM), 0);
    int st = wisp_wait_bounded(pid, 10000, "after SIGTERM");
    cr_assert(WIFEXITED(st), "wisp died from a signal (seccomp?)");
    cr_assert_eq(WEXITSTATUS(st), 128 + SIGTERM);
    struct stat sb;
    cr_assert_lt(stat(path, &sb), 0, "uds_path removed at exit");
    close(bad);
    close(mute);
    rmdir(dir);
}
