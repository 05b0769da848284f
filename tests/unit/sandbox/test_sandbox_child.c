/*
 * Seccomp filters in forked children that enter a role for real: every
 * role's allowed calls work, forbidden ones end with the documented status
 * and one line naming thread and syscall, abort() and vmm_fatal() still end
 * in SIGABRT (security.md B6), and an ASan report gets out in full.  Defines
 * the run_child() fixture (test_sandbox.h).
 *
 * Children _exit() so that neither Criterion nor LeakSanitizer runs under a
 * filter.
 */
#include "vmm/config.h"
#include "vmm/log.h"
#include "sandbox/sandbox.h"
#include "vmm/term.h"
#include "tests/unit/sandbox/test_sandbox.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <linux/userfaultfd.h>
#include <linux/vhost.h>
#include <termios.h>
#include <unistd.h>
#include <time.h>
#include <unistd.h>

struct child_fds fds;
bool child_raw_term;

/* See test_sandbox.h. */
void run_child(int role, enum seccomp_mode mode, child_body body, int arg, struct child_result *res)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    fds.null = open("/dev/null", O_RDWR | O_CLOEXEC);
    fds.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    fds.ep = epoll_create1(EPOLL_CLOEXEC);
    fds.listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    cr_assert(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0);
    fds.pty = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds.pair), 0);
    cr_assert(fds.null >= 0 && fds.efd >= 0 && fds.ep >= 0 && fds.listener >= 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1, "wisp-sandbox-%d", getpid());
    cr_assert_eq(bind(fds.listener, (struct sockaddr *)&sun, sizeof(sun)), 0);
    cr_assert_eq(listen(fds.listener, 1), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(p[1], STDERR_FILENO);
        prctl(PR_SET_NAME, "t-worker", 0, 0, 0);
        signal(SIGUSR1, SIG_IGN); /* the main role may send itself the kick */
        fds.status = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
        if (child_raw_term && !term_raw_enable(fds.pty))
            _exit(97);
        struct errbuf err = {0};
        /* role -2: prepare with the default roles, as wisp does */
        struct sandbox_opts o = {.mode = mode,
                                 .roles = role == -2 ? 0 : (1u << SANDBOX_NROLES) - 1};
        if (sandbox_prepare(&o, &err) < 0 ||
            (role >= 0 && sandbox_enter((enum sandbox_role)role, &err) < 0)) {
            ssize_t w __unused = write(STDERR_FILENO, err.msg, strlen(err.msg));
            _exit(99);
        }
        body(role, arg);
        _exit(0);
    }
    close(p[1]);
    size_t got = 0;
    ssize_t n;
    while ((n = read(p[0], res->err + got, sizeof(res->err) - 1 - got)) > 0)
        got += (size_t)n;
    res->err[got] = '\0';
    close(p[0]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    res->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    close(fds.null);
    close(fds.efd);
    close(fds.ep);
    close(fds.listener);
    close(fds.pty);
    close(fds.pair[0]);
    close(fds.pair[1]);
    close(master);
}

_Noreturn void must_fail(int line)
{
    char msg[64];
    int n = snprintf(msg, sizeof(msg), "check at line %d failed (errno %d)", line, errno);
    ssize_t w __unused = write(STDERR_FILENO, msg, (size_t)n);
    _exit(1);
}

/* What every thread does: libc, memory, locks, the terminal restore, the abort path's setup. */
static void allowed_calls(int role, int arg)
{
    (void)arg;
    MUST(write(fds.null, "x", 1) == 1);
    MUST(getpid() > 0 && syscall(SYS_gettid) > 0);
    void *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    MUST(m != MAP_FAILED);
    MUST(mprotect(m, 4096, PROT_READ) == 0);
    MUST(madvise(m, 8192, MADV_DONTNEED) == 0);
    MUST(munmap(m, 8192) == 0);
    struct timespec ts;
    MUST(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts) == 0);
    int word = 0;
    MUST(syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) == 0);
    MUST(pthread_sigmask(SIG_BLOCK, NULL, NULL) == 0);
    struct termios t = {0};
    MUST(ioctl(fds.null, TCSETS, &t) < 0 && errno == ENOTTY); /* allowed: the kernel answered */
    if (role != SANDBOX_MIGRATION) /* it may open (Landlock confines it) */
        MUST(openat(AT_FDCWD, "/etc/hostname", O_RDONLY) < 0 && errno == ENOENT);
    char buf[16];
    struct iovec iov = {buf, sizeof(buf)};
    struct epoll_event ev;
    switch (role) {
    case SANDBOX_MAIN:
        MUST(epoll_wait(fds.ep, &ev, 1, 0) == 0);
        MUST(read(fds.efd, buf, 8) < 0 && errno == EAGAIN);
        MUST(readv(fds.null, &iov, 1) == 0);
        MUST(getrandom(buf, sizeof(buf), 0) == sizeof(buf));
        MUST(accept4(fds.listener, NULL, NULL, SOCK_NONBLOCK) < 0 && errno == EAGAIN);
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        MUST(s >= 0 && close(s) == 0);
        struct winsize ws;
        MUST(ioctl(fds.null, TIOCGWINSZ, &ws) < 0 && errno == ENOTTY);
        MUST(syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGUSR1) == 0);
        break;
    case SANDBOX_VCPU:
        MUST(ioctl(fds.null, KVM_RUN, 0) < 0 && errno == ENOTTY);
        MUST(syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0) < 0 && errno == EBADF);
        MUST(nanosleep(&(struct timespec){0, 1000}, NULL) == 0);
        break;
    case SANDBOX_API: {
        /* What libmicrohttpd does with a client: recv, send, sendmsg, shutdown, close. */
        MUST(epoll_wait(fds.ep, &ev, 1, 0) == 0);
        MUST(accept4(fds.listener, NULL, NULL, SOCK_NONBLOCK) < 0 && errno == EAGAIN);
        MUST(send(fds.pair[0], "ab", 2, MSG_NOSIGNAL) == 2);
        struct msghdr mh = {.msg_iov = &(struct iovec){"c", 1}, .msg_iovlen = 1};
        MUST(sendmsg(fds.pair[0], &mh, MSG_NOSIGNAL) == 1);
        MUST(recv(fds.pair[1], buf, sizeof(buf), 0) == 3);
        MUST(shutdown(fds.pair[0], SHUT_WR) == 0);
        MUST(syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGUSR1) == 0);
        MUST(close(fds.pair[1]) == 0);
        break;
    }
    case SANDBOX_MIGRATION: {
        int inet = socket(AF_INET, SOCK_STREAM, 0);
        MUST(inet >= 0 && close(inet) == 0);
        struct timespec zero = {0};
        MUST(ppoll(NULL, 0, &zero, NULL) == 0);
        /* Snapshot files: open, write at an offset, size, sync; state ioctls. */
        int f = openat(AT_FDCWD, "/dev/null", O_RDWR | O_CLOEXEC);
        MUST(f >= 0);
        MUST(pwrite(f, buf, 1, 4096) == 1);
        MUST(ftruncate(f, 0) < 0 && errno == EINVAL); /* allowed: the kernel answered */
        MUST(fdatasync(f) < 0 && errno == EINVAL);
        MUST(ioctl(f, KVM_GET_REGS, NULL) < 0 && errno == ENOTTY);
        MUST(close(f) == 0);
        break;
    }
    case SANDBOX_IO_WORKER:
        MUST(preadv(fds.null, &iov, 1, 0) == 0);
        MUST(syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0) < 0 && errno == EBADF);
        break;
    case SANDBOX_UFFD: {
        struct pollfd p = {.fd = fds.null, .events = POLLIN};
        MUST(poll(&p, 1, 0) == 1);
        MUST(pread(fds.null, buf, sizeof(buf), 0) == 0);
        MUST(ioctl(fds.null, UFFDIO_COPY, NULL) < 0 && errno == ENOTTY);
        MUST(ioctl(fds.null, UFFDIO_WAKE, NULL) < 0 && errno == ENOTTY);
        break;
    }
    case SANDBOX_VDPA: {
        /* The worker's device calls reach the kernel (ENOTTY on /dev/null), and close. */
        uint8_t st = 0;
        MUST(ioctl(fds.null, VHOST_VDPA_SET_STATUS, &st) < 0 && errno == ENOTTY);
        MUST(ioctl(fds.null, VHOST_SET_VRING_KICK, NULL) < 0 && errno == ENOTTY);
        MUST(close(-1) < 0 && errno == EBADF);
        break;
    }
    }
}

ParameterizedTestParameters(sandbox, child_allowed_calls)
{
    static int roles[] = {SANDBOX_MAIN,      SANDBOX_VCPU, SANDBOX_API, SANDBOX_MIGRATION,
                          SANDBOX_IO_WORKER, SANDBOX_UFFD, SANDBOX_VDPA};
    return cr_make_param_array(int, roles, ARRAY_SIZE(roles));
}

ParameterizedTest(int *role, sandbox, child_allowed_calls)
{
    struct child_result r;
    run_child(*role, SECCOMP_KILL, allowed_calls, 0, &r);
    cr_assert_eq(r.status, 0, "%s: status %d, stderr: %s", sandbox_role_name(*role), r.status,
                 r.err);
    cr_assert_str_empty(r.err);
}

enum forbidden { F_EXECVE, F_INET_SOCKET, F_EXEC_MMAP, F_EXEC_MPROTECT, F_KVM_IOCTL, F_FORK };

static void forbidden_call(int role, int which)
{
    (void)role;
    switch (which) {
    case F_EXECVE: {
        char *const argv[] = {"true", NULL};
        execve("/bin/true", argv, argv + 1);
        break;
    }
    case F_INET_SOCKET:
        socket(AF_INET, SOCK_STREAM, 0);
        break;
    case F_EXEC_MMAP:
        mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        break;
    case F_EXEC_MPROTECT: {
        void *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        mprotect(m, 4096, PROT_READ | PROT_EXEC);
        break;
    }
    case F_KVM_IOCTL:
        ioctl(fds.null, KVM_CREATE_VM, 0);
        break;
    case F_FORK:
        syscall(SYS_fork);
        break;
    }
    _exit(0); /* the call went through: the test fails */
}

struct forbid_case {
    int role;
    int which;
};

static struct forbid_case forbid_cases[] = {
    {SANDBOX_MAIN, F_EXECVE},      {SANDBOX_MAIN, F_INET_SOCKET},
    {SANDBOX_MAIN, F_EXEC_MMAP},   {SANDBOX_MAIN, F_EXEC_MPROTECT},
    {SANDBOX_MAIN, F_KVM_IOCTL},   {SANDBOX_MAIN, F_FORK},
    {SANDBOX_VCPU, F_EXECVE},      {SANDBOX_VCPU, F_INET_SOCKET},
    {SANDBOX_VCPU, F_EXEC_MMAP},   {SANDBOX_VCPU, F_KVM_IOCTL},
    {SANDBOX_API, F_INET_SOCKET},  {SANDBOX_API, F_EXECVE},
    {SANDBOX_MIGRATION, F_EXECVE}, {SANDBOX_MIGRATION, F_EXEC_MMAP},
    {SANDBOX_IO_WORKER, F_EXECVE}, {SANDBOX_IO_WORKER, F_INET_SOCKET},
};

ParameterizedTestParameters(sandbox, child_forbidden_call)
{
    return cr_make_param_array(struct forbid_case, forbid_cases, ARRAY_SIZE(forbid_cases));
}

ParameterizedTest(struct forbid_case *c, sandbox, child_forbidden_call)
{
    static const struct {
        const char *name;
        int nr;
    } calls[] = {[F_EXECVE] = {"execve", SCMP_SYS(execve)},
                 [F_INET_SOCKET] = {"socket", SCMP_SYS(socket)},
                 [F_EXEC_MMAP] = {"mmap", SCMP_SYS(mmap)},
                 [F_EXEC_MPROTECT] = {"mprotect", SCMP_SYS(mprotect)},
                 [F_KVM_IOCTL] = {"ioctl", SCMP_SYS(ioctl)},
                 [F_FORK] = {"fork", SCMP_SYS(fork)}};
    struct child_result r;
    run_child(c->role, SECCOMP_KILL, forbidden_call, c->which, &r);
    char want[160];
    snprintf(want, sizeof(want), "wisp: fatal: seccomp: thread %s made forbidden syscall %s(%d)\n",
             c->role == SANDBOX_MAIN ? "main" : "t-worker", calls[c->which].name,
             calls[c->which].nr);
    cr_assert_eq(r.status, SANDBOX_EXIT_STATUS, "%s/%s: status %d, stderr: %s",
                 sandbox_role_name(c->role), calls[c->which].name, r.status, r.err);
    cr_assert_str_eq(r.err, want, "exactly one line");
}

static void do_abort(int role, int how)
{
    (void)role;
    if (how)
        vmm_fatal("broken invariant %d", 42);
    abort();
}

ParameterizedTestParameters(sandbox, abort_is_sigabrt)
{
    static struct forbid_case cases[] = {
        {SANDBOX_MAIN, 0}, {SANDBOX_MAIN, 1},      {SANDBOX_VCPU, 0},     {SANDBOX_VCPU, 1},
        {SANDBOX_API, 1},  {SANDBOX_MIGRATION, 1}, {SANDBOX_IO_WORKER, 1}};
    return cr_make_param_array(struct forbid_case, cases, ARRAY_SIZE(cases));
}

/* security.md B6: abort() and vmm_fatal() end in SIGABRT, not in a seccomp kill. */
ParameterizedTest(struct forbid_case *c, sandbox, abort_is_sigabrt)
{
    struct child_result r;
    run_child(c->role, SECCOMP_KILL, do_abort, c->which, &r);
    cr_assert_eq(r.status, 128 + SIGABRT, "%s: status %d, stderr: %s", sandbox_role_name(c->role),
                 r.status, r.err);
    cr_assert_null(strstr(r.err, "seccomp"), "%s", r.err);
    if (c->which)
        cr_assert_str_eq(r.err, "wisp: fatal: broken invariant 42\n");
}

static void use_after_free(int role, int arg)
{
    (void)role;
    char *volatile p = malloc(8);
    free(p);
    ((volatile char *)p)[arg] = 1; /* use after free: for ASan, not UBSan, to report */
}

/* ASan builds: a sanitizer report from a filtered thread is printed in full, then aborts. */
Test(sandbox, asan_report_under_filter)
{
    if (!sandbox_sanitizer_build())
        cr_skip_test("not an ASan build");
    for (int role = SANDBOX_MAIN; role <= SANDBOX_VCPU; role++) {
        struct child_result r;
        run_child(role, SECCOMP_KILL, use_after_free, 0, &r);
        cr_assert(strstr(r.err, "ERROR: AddressSanitizer: heap-use-after-free"), "status %d: %s",
                  r.status, r.err);
        cr_assert(strstr(r.err, "SUMMARY: AddressSanitizer"), "report cut short: %s", r.err);
        cr_assert_null(strstr(r.err, "seccomp"), "%s", r.err);
        cr_assert(r.status == 128 + SIGABRT || r.status == 1, "status %d", r.status);
    }
}
