/* Child process runner for integration tests (see proc.h). */
#include "tests/lib/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CAPTURE (8u << 20)

struct sink {
    char *buf;
    size_t len, cap;
};

static void sink_add(struct sink *s, const char *p, size_t n)
{
    if (s->len + n + 1 > MAX_CAPTURE)
        n = MAX_CAPTURE - s->len - 1;
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *b = realloc(s->buf, cap);
        if (!b)
            abort();
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = '\0';
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int proc_run(char *const argv[], char *const env[], const char *input, size_t input_len,
             unsigned timeout_ms, struct proc_result *r)
{
    memset(r, 0, sizeof(*r));
    int pin[2], pout[2], perr[2];
    if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC))
        return -errno;
    double start = now_s();
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        for (size_t i = 0; env && env[i]; i++)
            putenv(env[i]);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    signal(SIGPIPE, SIG_IGN);
    fcntl(pin[1], F_SETFL, O_NONBLOCK);

    struct sink out = {0}, err = {0};
    sink_add(&out, "", 0);
    sink_add(&err, "", 0);
    size_t written = 0;
    int in_fd = pin[1];
    if (!input || input_len == 0) {
        close(in_fd);
        in_fd = -1;
    }
    int open_fds = 2;
    while (open_fds > 0) {
        double left = (double)timeout_ms / 1000.0 - (now_s() - start);
        if (left <= 0) {
            kill(pid, SIGKILL);
            r->timed_out = true;
            break;
        }
        struct pollfd pf[3] = {{pout[0], POLLIN, 0}, {perr[0], POLLIN, 0}, {in_fd, POLLOUT, 0}};
        int n = poll(pf, in_fd >= 0 ? 3 : 2, (int)(left * 1000) + 1);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[4096];
            ssize_t got = read(pf[i].fd, buf, sizeof(buf));
            if (got > 0) {
                sink_add(i == 0 ? &out : &err, buf, (size_t)got);
            } else if (got == 0 || errno != EINTR) {
                close(pf[i].fd);
                if (i == 0)
                    pout[0] = -1;
                else
                    perr[0] = -1;
                open_fds--;
            }
        }
        if (in_fd >= 0 && (pf[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(in_fd, input + written, input_len - written);
            if (w > 0)
                written += (size_t)w;
            if (w < 0 && errno != EAGAIN) {
                close(in_fd);
                in_fd = -1;
            } else if (written == input_len) {
                close(in_fd);
                in_fd = -1;
            }
        }
    }
    if (in_fd >= 0)
        close(in_fd);
    if (pout[0] >= 0)
        close(pout[0]);
    if (perr[0] >= 0)
        close(perr[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    r->seconds = now_s() - start;
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r->out = out.buf;
    r->out_len = out.len;
    r->err = err.buf;
    r->err_len = err.len;
    return 0;
}

void proc_result_free(struct proc_result *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof(*r));
}
