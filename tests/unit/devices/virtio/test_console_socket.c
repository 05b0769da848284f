/*
 * virtio-console backends: the listening UNIX socket (mode 0600, one client
 * at a time, disconnect and reconnect, a second client waiting in the
 * backlog, path errors: too long, in use, not a socket, stale file
 * replaced, path removed at destroy) and stdio (reopened without changing
 * the caller's file flags; a shared stdout nobody reads never blocks the
 * event loop).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio/console.h"
#include "tests/lib/net_harness.h"

#define RXQ VIRTIO_CONSOLE_RXQ
#define TXQ VIRTIO_CONSOLE_TXQ

static struct net_harness h;
static char dir[64];
static char path[128];

static void setup(void)
{
    net_harness_init(&h);
    snprintf(dir, sizeof(dir), "/tmp/wisp-console-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/console.sock", dir);
}

static void teardown(void)
{
    net_harness_fini(&h);
    unlink(path);
    rmdir(dir);
}

TestSuite(console_socket, .init = setup, .fini = teardown, .timeout = 30);

static struct virtio_dev *make_socket_console(const char *p, struct errbuf *err)
{
    struct virtio_dev *d = NULL;
    struct virtio_console_config cfg = {
        .id = "console0", .mode = VIRTIO_CONSOLE_SOCKET, .socket_path = p};
    if (virtio_console_create(&cfg, NULL, &h.loop, &d, err) < 0)
        return NULL;
    return d;
}

static int connect_client(const char *p)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    cr_assert_lt(strlen(p), sizeof(sa.sun_path));
    memcpy(sa.sun_path, p, strlen(p));
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
                 strerror(errno));
    return fd;
}

static void guest_write(const char *s)
{
    gpa_t g;
    size_t n = strlen(s);
    net_harness_add_buf(&h, TXQ, (uint32_t)n, false, 0, &g);
    memcpy(vqb_host(&h.q[TXQ], g, n), s, n);
    net_harness_kick(&h, TXQ);
}

static size_t client_read(int fd, char *buf, size_t len, int wait_ms)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, wait_ms) <= 0)
        return 0;
    ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
    return n > 0 ? (size_t)n : 0;
}

static struct virtio_console_stats stats(void)
{
    struct virtio_console_stats st;
    virtio_console_get_stats(h.d, &st);
    return st;
}

Test(console_socket, clients_come_and_go)
{
    struct errbuf err = {0};
    struct virtio_dev *d = make_socket_console(path, &err);
    cr_assert_not_null(d, "%s", err.msg);
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
    net_harness_start(&h, d, 2, 256, VIRTIO_BIT(VIRTIO_F_VERSION_1));
    net_harness_settle(&h, 0);

    guest_write("nobody"); /* no client yet: kept for the first one */
    cr_assert_eq(stats().tx_dropped, 0);

    int c1 = connect_client(path);
    net_harness_settle(&h, 20);
    cr_assert_eq(stats().connects, 1);
    char early[16] = {0};
    cr_assert_eq(client_read(c1, early, sizeof(early), 200), 6, "%s", early);
    cr_assert_arr_eq(early, "nobody", 6, "boot output reaches the first client");
    int c2 = connect_client(path); /* waits in the backlog */
    net_harness_settle(&h, 20);
    cr_assert_eq(stats().connects, 1, "one client at a time");

    char buf[64] = {0};
    guest_write("one");
    cr_assert_eq(client_read(c1, buf, sizeof(buf), 200), 3);
    cr_assert_arr_eq(buf, "one", 3);
    cr_assert_eq(client_read(c2, buf, sizeof(buf), 50), 0, "the waiting client gets nothing");

    gpa_t g;
    net_harness_add_buf(&h, RXQ, 16, true, 0, &g);
    net_harness_kick(&h, RXQ);
    cr_assert_eq(send(c1, "key", 3, 0), 3);
    net_harness_settle(&h, 20);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 1);
    cr_assert_arr_eq(vqb_host(&h.q[RXQ], g, 3), "key", 3);

    /* The first client leaves: the waiting one is served next. */
    close(c1);
    net_harness_settle(&h, 20);
    cr_assert_eq(stats().connects, 2);
    guest_write("two");
    memset(buf, 0, sizeof(buf));
    cr_assert_eq(client_read(c2, buf, sizeof(buf), 200), 3);
    cr_assert_arr_eq(buf, "two", 3);

    /* It leaves too; output waits for the next client. */
    close(c2);
    net_harness_settle(&h, 20);
    guest_write("void");
    int c3 = connect_client(path);
    net_harness_settle(&h, 20);
    guest_write("three");
    memset(buf, 0, sizeof(buf));
    cr_assert_eq(client_read(c3, buf, sizeof(buf), 200), 9, "%s", buf);
    cr_assert_arr_eq(buf, "voidthree", 9);
    close(c3);

    /* Destroying the device removes the socket file. */
    net_harness_settle(&h, 20);
    d->ops->destroy(d);
    h.d = NULL;
    cr_assert_neq(access(path, F_OK), 0, "socket path removed");
}

Test(console_socket, client_input_when_guest_not_ready)
{
    struct errbuf err = {0};
    struct virtio_dev *d = make_socket_console(path, &err);
    cr_assert_not_null(d, "%s", err.msg);
    h.d = d;
    int c = connect_client(path);
    cr_assert_eq(send(c, "early", 5, 0), 5);
    net_harness_settle(&h, 20); /* buffered before DRIVER_OK */
    h.d = NULL;
    net_harness_start(&h, d, 2, 256, VIRTIO_BIT(VIRTIO_F_VERSION_1));
    gpa_t g;
    net_harness_add_buf(&h, RXQ, 16, true, 0, &g);
    net_harness_settle(&h, 20); /* activation reschedules delivery */
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 1);
    cr_assert_arr_eq(vqb_host(&h.q[RXQ], g, 5), "early", 5);
    close(c);
}

Test(console_socket, path_errors)
{
    struct errbuf err = {0};
    char longp[200];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[0] = '/';
    longp[sizeof(longp) - 1] = 0;
    cr_assert_null(make_socket_console(longp, &err));
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    cr_assert(strstr(err.msg, "too long"), "%s", err.msg);
    cr_assert_null(strchr(err.msg, '\n'));

    /* Exactly the longest allowed path works. */
    char maxp[CHARDEV_PATH_MAX + 1];
    int n = snprintf(maxp, sizeof(maxp), "%s/", dir);
    memset(maxp + n, 'b', CHARDEV_PATH_MAX - (size_t)n);
    maxp[CHARDEV_PATH_MAX] = 0;
    struct errbuf e0 = {0};
    struct virtio_dev *d = make_socket_console(maxp, &e0);
    cr_assert_not_null(d, "%s", e0.msg);
    d->ops->destroy(d);

    struct errbuf e1 = {0};
    d = make_socket_console(path, &e1);
    cr_assert_not_null(d, "%s", e1.msg);
    h.d = d;
    struct errbuf e2 = {0};
    cr_assert_null(make_socket_console(path, &e2), "a live listener is not replaced");
    cr_assert_eq(e2.exit_code, WISP_EXIT_USAGE);
    cr_assert(strstr(e2.msg, "in use") && strstr(e2.msg, path), "%s", e2.msg);

    char file[160];
    snprintf(file, sizeof(file), "%s/plain", dir);
    int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    struct errbuf e3 = {0};
    cr_assert_null(make_socket_console(file, &e3));
    cr_assert_eq(e3.exit_code, WISP_EXIT_USAGE);
    cr_assert(strstr(e3.msg, "not a socket"), "%s", e3.msg);
    cr_assert_eq(access(file, F_OK), 0, "a non-socket file is left alone");
    unlink(file);

    char nodir[160];
    snprintf(nodir, sizeof(nodir), "%s/missing/console.sock", dir);
    struct errbuf e4 = {0};
    cr_assert_null(make_socket_console(nodir, &e4));
    cr_assert_eq(e4.exit_code, WISP_EXIT_USAGE);

    struct errbuf e5 = {0};
    cr_assert_null(make_socket_console("", &e5));
    cr_assert_eq(e5.exit_code, WISP_EXIT_USAGE);
}

Test(console_socket, stale_socket_file_is_replaced)
{
    /* A socket file nobody listens on, as a killed wisp leaves behind. */
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path));
    cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(s);
    struct errbuf err = {0};
    struct virtio_dev *d = make_socket_console(path, &err);
    cr_assert_not_null(d, "%s", err.msg);
    h.d = d;
    int c = connect_client(path);
    net_harness_settle(&h, 20);
    cr_assert_eq(stats().connects, 1);
    close(c);
}

Test(console_socket, stdio_backend)
{
    int pin[2], pout[2];
    signal(SIGPIPE, SIG_IGN); /* as wisp does: a closed stdout is EPIPE, not death */
    cr_assert_eq(pipe2(pin, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(pout, O_CLOEXEC), 0);
    int save0 = dup(0), save1 = dup(1);
    cr_assert_eq(dup2(pin[0], 0), 0);
    cr_assert_eq(dup2(pout[1], 1), 1);
    struct chardev *cd;
    struct errbuf err = {0};
    int r = chardev_open_stdio(&cd, &err);
    dup2(save0, 0);
    dup2(save1, 1);
    close(save0);
    close(save1);
    cr_assert_eq(r, 0, "%s", err.msg);
    cr_assert_eq(fcntl(pin[0], F_GETFL) & O_NONBLOCK, 0, "the caller's stdin stays blocking");
    cr_assert_eq(fcntl(pout[1], F_GETFL) & O_NONBLOCK, 0, "the caller's stdout stays blocking");

    struct virtio_dev *d;
    struct virtio_console_config cfg = {.id = "console0"};
    cr_assert_eq(virtio_console_create_with_chardev(&cfg, cd, NULL, &h.loop, &d, &err), 0);
    net_harness_start(&h, d, 2, 256, VIRTIO_BIT(VIRTIO_F_VERSION_1));
    net_harness_settle(&h, 0);

    guest_write("out");
    char buf[16] = {0};
    cr_assert_eq(read(pout[0], buf, sizeof(buf)), 3);
    cr_assert_arr_eq(buf, "out", 3);

    gpa_t g;
    net_harness_add_buf(&h, RXQ, 16, true, 0, &g);
    net_harness_kick(&h, RXQ);
    cr_assert_eq(write(pin[1], "in", 2), 2);
    net_harness_settle(&h, 20);
    cr_assert_eq(vqb_used_idx(&h.q[RXQ]), 1);
    cr_assert_arr_eq(vqb_host(&h.q[RXQ], g, 2), "in", 2);

    /* End of input and a closed output are not errors and cause no busy loop. */
    close(pin[1]);
    close(pout[0]);
    int rounds = net_harness_settle(&h, 20);
    cr_assert_lt(rounds, 5);
    guest_write("gone");
    cr_assert_eq(stats().tx_dropped, 4);
    cr_assert_eq(h.needs_reset, 0);
    close(pin[0]);
    close(pout[1]);
}

/*
 * Make `fd` (a pipe or socket, in blocking mode) full without changing its
 * file flags: a pipe shrunk to one page takes one blocking page-sized
 * write; a socket takes MSG_DONTWAIT sends until it refuses.
 */
static void fill_blocking(int fd, bool pipe_end)
{
    static char fill[4096];
    if (pipe_end) {
        cr_assert_eq(fcntl(fd, F_SETPIPE_SZ, 4096), 4096);
        cr_assert_eq(write(fd, fill, sizeof(fill)), (ssize_t)sizeof(fill));
        return;
    }
    while (send(fd, fill, sizeof(fill), MSG_DONTWAIT) > 0)
        ;
    while (send(fd, fill, 1, MSG_DONTWAIT) > 0)
        ;
    cr_assert(errno == EAGAIN || errno == EWOULDBLOCK);
}

/*
 * The console on a stdout whose open file description wisp shares with its
 * parent (`fd`, dup2()ed to 1 for chardev_open_stdio()) and that nobody
 * reads: the description must keep the caller's flags, and guest output
 * must then stay in the device's buffer (or be dropped and counted) while
 * the event loop goes on.  The parent clears O_NONBLOCK on its stdout, as
 * it is free to: a backend that relied on that flag would block in write()
 * here, and the test's timeout fails it.
 */
static void stuck_shared_stdout(int fd, int reader, bool pipe_end, bool hide_proc)
{
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(null, 0);
    int save0 = dup(0), save1 = dup(1);
    cr_assert_eq(dup2(null, 0), 0);
    cr_assert_eq(dup2(fd, 1), 1);
    struct chardev *cd;
    struct errbuf err = {0};
    /* Only around the open: the sanitizers' leak check needs /proc at exit. */
    if (hide_proc)
        cr_assert_eq(mount("none", "/proc", "tmpfs", 0, NULL), 0, "%s", strerror(errno));
    bool proc_hidden = access("/proc/self/fd/1", F_OK) < 0;
    int r = chardev_open_stdio(&cd, &err);
    if (hide_proc)
        cr_assert_eq(umount2("/proc", MNT_DETACH), 0, "%s", strerror(errno));
    dup2(save0, 0);
    dup2(save1, 1);
    close(save0);
    close(save1);
    close(null);
    cr_assert_eq(r, 0, "%s", err.msg);
    cr_assert_eq(proc_hidden, hide_proc);
    cr_assert_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0, "the caller's stdout stays blocking");

    fill_blocking(fd, pipe_end);
    int fl = fcntl(fd, F_GETFL);
    cr_assert_eq(fcntl(fd, F_SETFL, fl & ~O_NONBLOCK), 0); /* what a parent may do */

    struct virtio_dev *d;
    struct virtio_console_config cfg = {.id = "console0"};
    cr_assert_eq(virtio_console_create_with_chardev(&cfg, cd, NULL, &h.loop, &d, &err), 0);
    net_harness_start(&h, d, 2, 256, VIRTIO_BIT(VIRTIO_F_VERSION_1));
    net_harness_settle(&h, 0);
    /* More than the device's output buffer (VIRTIO_CONSOLE_TX_BUF). */
    char line[1025];
    memset(line, 'x', sizeof(line) - 1);
    line[sizeof(line) - 1] = '\0';
    for (unsigned i = 0; i < VIRTIO_CONSOLE_TX_BUF / 1024 + 4; i++) {
        guest_write(line);
        net_harness_settle(&h, 5);
    }
    struct virtio_console_stats st = stats();
    cr_assert_eq(st.tx_bytes, 0, "nothing fits in a full stdout");
    cr_assert_gt(st.tx_dropped, 0, "output beyond the buffer is dropped and counted");
    cr_assert_eq(h.needs_reset, 0);

    /* Once the reader drains it, the buffered output follows. */
    static char sink[1 << 16];
    while (recv(reader, sink, sizeof(sink), MSG_DONTWAIT) > 0 ||
           (pipe_end && read(reader, sink, sizeof(sink)) > 0))
        ;
    net_harness_settle(&h, 20);
    cr_assert_gt(stats().tx_bytes, 0, "output resumes when the reader reads");
}

Test(console_socket, stdio_socket_nobody_reads, .timeout = 10)
{
    int sv[2];
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    stuck_shared_stdout(sv[0], sv[1], false, false);
    close(sv[0]);
    close(sv[1]);
}

/*
 * A pipe with no /proc to reopen it through (as in a jail): a mount
 * namespace of this test process with an empty tmpfs on /proc.
 */
Test(console_socket, stdio_pipe_without_proc_nobody_reads, .timeout = 10)
{
    int p[2];
    signal(SIGPIPE, SIG_IGN);
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        cr_skip_test("needs a private mount namespace (root): %s", strerror(errno));
    cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    /* The pipe's read end must not block the drain below; its write end is blocking. */
    cr_assert_eq(fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) & ~O_NONBLOCK), 0);
    stuck_shared_stdout(p[1], p[0], true, true);
    close(p[0]);
    close(p[1]);
}
