/* Programs on a pseudo-terminal, for the terminal tests (see pty.h). */
#include "tests/lib/pty.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pty_start(struct pty_proc *p, char *const argv[], const char *env_var)
{
    memset(p, 0, sizeof(*p));
    p->master = p->slave = p->err_fd = -1;
    int errp[2] = {-1, -1};
    p->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (p->master < 0 || grantpt(p->master) < 0 || unlockpt(p->master) < 0)
        goto fail;
    p->slave = open(ptsname(p->master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (p->slave < 0 || pipe2(errp, O_CLOEXEC) < 0)
        goto fail;
    fflush(NULL);
    p->pid = fork();
    if (p->pid < 0)
        goto fail;
    if (p->pid == 0) {
        setsid();
        dup2(p->slave, STDIN_FILENO);
        dup2(p->slave, STDOUT_FILENO);
        dup2(errp[1], STDERR_FILENO);
        if (env_var)
            putenv((char *)(uintptr_t)env_var);
        execv(argv[0], argv);
        _exit(127);
    }
    close(errp[1]);
    p->err_fd = errp[0];
    return 0;
fail : {
    int e = errno ? errno : EIO;
    if (errp[0] >= 0) {
        close(errp[0]);
        close(errp[1]);
    }
    pty_close(p);
    return -e;
}
}

bool pty_is_cooked(const struct pty_proc *p)
{
    struct termios t;
    if (tcgetattr(p->slave, &t) < 0)
        return false;
    return (t.c_lflag & (ICANON | ECHO)) == (ICANON | ECHO);
}

/* Append whatever the master has now; false once it reports end or error. */
static bool read_master(struct pty_proc *p)
{
    char buf[512];
    ssize_t n = read(p->master, buf, sizeof(buf));
    if (n <= 0)
        return false;
    size_t room = sizeof(p->out) - 1 - p->out_len;
    size_t take = (size_t)n < room ? (size_t)n : room;
    memcpy(p->out + p->out_len, buf, take);
    p->out_len += take;
    p->out[p->out_len] = '\0';
    return true;
}

bool pty_expect(struct pty_proc *p, const char *needle, unsigned timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    while (!memmem(p->out, p->out_len, needle, strlen(needle))) {
        long long left = end - now_ms();
        if (left <= 0)
            return false;
        struct pollfd pf = {p->master, POLLIN, 0};
        if (poll(&pf, 1, (int)(left < 50 ? left : 50)) > 0 && !read_master(p))
            return memmem(p->out, p->out_len, needle, strlen(needle)) != NULL;
    }
    return true;
}

bool pty_type(struct pty_proc *p, const void *bytes, size_t len)
{
    return write(p->master, bytes, len) == (ssize_t)len;
}

int pty_wait(struct pty_proc *p, unsigned timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    size_t got = 0;
    int st = 0;
    bool killed = false;
    for (;;) {
        pid_t w = waitpid(p->pid, &st, WNOHANG);
        if (w == p->pid)
            break;
        if (!killed && now_ms() > end) {
            kill(p->pid, SIGKILL);
            killed = true;
        }
        struct pollfd pf[2] = {{p->master, POLLIN, 0}, {p->err_fd, POLLIN, 0}};
        if (poll(pf, 2, 10) <= 0)
            continue;
        if (pf[0].revents & POLLIN)
            read_master(p);
        if (pf[1].revents & (POLLIN | POLLHUP) && got < sizeof(p->err) - 1) {
            ssize_t n = read(p->err_fd, p->err + got, sizeof(p->err) - 1 - got);
            if (n > 0)
                got += (size_t)n;
        }
    }
    /* Whatever stderr still holds. */
    ssize_t n;
    while (got < sizeof(p->err) - 1 &&
           (n = read(p->err_fd, p->err + got, sizeof(p->err) - 1 - got)) > 0)
        got += (size_t)n;
    p->err[got] = '\0';
    p->pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void pty_close(struct pty_proc *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = -1;
    }
    if (p->master >= 0)
        close(p->master);
    if (p->slave >= 0)
        close(p->slave);
    if (p->err_fd >= 0)
        close(p->err_fd);
    p->master = p->slave = p->err_fd = -1;
}
