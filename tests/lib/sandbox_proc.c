/* Background processes and a seccomp BPF interpreter for the sandbox tests (see sandbox_proc.h). */
#include "tests/lib/sandbox_proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CAPTURE (4u << 20)

static int now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

int sandbox_proc_start(struct sandbox_proc *p, char *const argv[], char *const env[])
{
    memset(p, 0, sizeof(*p));
    p->in_fd = p->out_fd = p->err_fd = -1;
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
        return -errno; /* a test aborts on this; the leaked pipe does not matter */
    fflush(NULL);
    p->pid = fork();
    if (p->pid < 0)
        return -errno;
    if (p->pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        for (size_t i = 0; env && env[i]; i++)
            putenv(env[i]);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    signal(SIGPIPE, SIG_IGN);
    p->in_fd = in[1];
    p->out_fd = out[0];
    p->err_fd = err[0];
    p->out = calloc(1, 1);
    p->err = calloc(1, 1);
    return p->out && p->err ? 0 : -ENOMEM;
}

static void append(char **buf, size_t *len, const char *data, size_t n)
{
    if (*len + n > MAX_CAPTURE)
        n = MAX_CAPTURE - *len;
    char *b = realloc(*buf, *len + n + 1);
    if (!b)
        abort();
    memcpy(b + *len, data, n);
    *len += n;
    b[*len] = '\0';
    *buf = b;
}

/* Read what is available within `wait_ms`; false once both outputs are closed. */
static bool pump(struct sandbox_proc *p, int wait_ms)
{
    struct pollfd pf[2] = {{p->out_fd, POLLIN, 0}, {p->err_fd, POLLIN, 0}};
    if (p->out_fd < 0 && p->err_fd < 0)
        return false;
    if (poll(pf, 2, wait_ms) <= 0)
        return true;
    for (int i = 0; i < 2; i++) {
        if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        char buf[4096];
        ssize_t n = read(pf[i].fd, buf, sizeof(buf));
        if (n > 0) {
            if (i == 0)
                append(&p->out, &p->out_len, buf, (size_t)n);
            else
                append(&p->err, &p->err_len, buf, (size_t)n);
        } else if (n == 0 || errno != EINTR) {
            close(pf[i].fd);
            *(i == 0 ? &p->out_fd : &p->err_fd) = -1;
        }
    }
    return true;
}

bool sandbox_proc_wait_for(struct sandbox_proc *p, const char *needle, unsigned timeout_ms)
{
    int end = now_ms() + (int)timeout_ms;
    while (!strstr(p->out, needle)) {
        int left = end - now_ms();
        if (left <= 0 || !pump(p, left) || p->out_fd < 0)
            return strstr(p->out, needle) != NULL;
    }
    return true;
}

void sandbox_proc_finish(struct sandbox_proc *p, const char *input, unsigned timeout_ms,
                         struct proc_result *r)
{
    memset(r, 0, sizeof(*r));
    if (p->in_fd >= 0) {
        size_t len = input ? strlen(input) : 0;
        while (len) {
            ssize_t w = write(p->in_fd, input, len);
            if (w <= 0)
                break;
            input += w;
            len -= (size_t)w;
        }
        close(p->in_fd);
        p->in_fd = -1;
    }
    int end = now_ms() + (int)timeout_ms;
    while (pump(p, 100)) {
        if (now_ms() > end) {
            kill(p->pid, SIGKILL);
            r->timed_out = true;
            break;
        }
    }
    int st = 0;
    waitpid(p->pid, &st, 0);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    for (int *fd = &p->out_fd; fd <= &p->err_fd; fd++)
        if (*fd >= 0)
            close(*fd);
    r->out = p->out;
    r->out_len = p->out_len;
    r->err = p->err;
    r->err_len = p->err_len;
    memset(p, 0, sizeof(*p));
}

int sandbox_proc_threads(pid_t pid, pid_t *tids, int max)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max)
        if (e->d_name[0] != '.')
            tids[n++] = (pid_t)atoi(e->d_name);
    closedir(d);
    return n;
}

/* ---- seccomp BPF ------------------------------------------------------------------------ */

uint32_t sandbox_proc_bpf_run(const struct sock_fprog *p, const struct seccomp_data *d)
{
    uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {0};
    for (unsigned pc = 0; pc < p->len; pc++) {
        const struct sock_filter *f = &p->filter[pc];
        uint32_t k = f->k, src = BPF_SRC(f->code) == BPF_X ? x : k;
        switch (f->code) {
        case BPF_LD | BPF_W | BPF_ABS:
            if (k % 4 || k > sizeof(*d) - 4)
                return SANDBOX_BPF_BAD;
            memcpy(&a, (const char *)d + k, 4);
            continue;
        case BPF_LD | BPF_IMM:
            a = k;
            continue;
        case BPF_LDX | BPF_IMM:
            x = k;
            continue;
        case BPF_LD | BPF_MEM:
        case BPF_LDX | BPF_MEM:
        case BPF_ST:
        case BPF_STX:
            if (k >= BPF_MEMWORDS)
                return SANDBOX_BPF_BAD;
            if (f->code == BPF_ST || f->code == BPF_STX)
                mem[k] = f->code == BPF_ST ? a : x;
            else if (BPF_CLASS(f->code) == BPF_LD)
                a = mem[k];
            else
                x = mem[k];
            continue;
        case BPF_MISC | BPF_TAX:
            x = a;
            continue;
        case BPF_MISC | BPF_TXA:
            a = x;
            continue;
        case BPF_RET | BPF_K:
            return k;
        case BPF_RET | BPF_A:
            return a;
        case BPF_JMP | BPF_JA:
            pc += k;
            continue;
        }
        if (BPF_CLASS(f->code) == BPF_ALU && BPF_OP(f->code) == BPF_AND) {
            a &= src;
            continue;
        }
        if (BPF_CLASS(f->code) == BPF_ALU && BPF_OP(f->code) == BPF_OR) {
            a |= src;
            continue;
        }
        if (BPF_CLASS(f->code) != BPF_JMP)
            return SANDBOX_BPF_BAD;
        bool taken;
        switch (BPF_OP(f->code)) {
        case BPF_JEQ:
            taken = a == src;
            break;
        case BPF_JGT:
            taken = a > src;
            break;
        case BPF_JGE:
            taken = a >= src;
            break;
        case BPF_JSET:
            taken = (a & src) != 0;
            break;
        default:
            return SANDBOX_BPF_BAD;
        }
        pc += taken ? f->jt : f->jf;
    }
    return SANDBOX_BPF_BAD; /* fell off the end: the kernel would refuse such a program */
}
