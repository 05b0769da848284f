/* Logging and the per-call-site rate limiter (see log.h for the policy). */
#include "vmm/log.h"
#include "vmm/metrics.h"
#include "vmm/term.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

_Atomic(enum log_level) log_threshold = LOG_WARN;

/* Where lines go; set during setup (log.h), atomic so a reader never tears it. */
static _Atomic int log_fd = STDERR_FILENO;

#define RL_WINDOW_NS (5ULL * 1000000000ULL)
#define RL_BURST     10

static _Atomic uint64_t rl_dropped_total;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

static void vlog_line(const char *level, const char *fmt, va_list ap)
{
    /* Format into one buffer and write it with one write(2) so lines from
     * several threads do not interleave. */
    char buf[1024];
    int n = snprintf(buf, sizeof(buf), "wisp: %s: ", level);
    if (n < 0)
        return;
    int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(buf) - 2)
        len = sizeof(buf) - 2;
    buf[len++] = '\n';
    /* log_fd is O_NONBLOCK when it is a file of ours: a full FIFO drops the line. */
    if (write(atomic_load_explicit(&log_fd, memory_order_relaxed), buf, len) != (ssize_t)len)
        metrics_inc(METRICS_LOG_WRITE_FAILS);
}

int log_set_path(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_NONBLOCK | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 ||
        !(S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))) {
        close(fd);
        return -EINVAL;
    }
    int old = atomic_exchange(&log_fd, fd);
    if (old != STDERR_FILENO)
        close(old);
    return 0;
}

void log_reset_path(void)
{
    int old = atomic_exchange(&log_fd, STDERR_FILENO);
    if (old != STDERR_FILENO)
        close(old);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    if (lvl > atomic_load_explicit(&log_threshold, memory_order_relaxed))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog_line(level_names[lvl], fmt, ap);
    va_end(ap);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

bool log_rl_allow(struct log_rl *rl)
{
    uint64_t now = now_ns();
    uint64_t start = atomic_load(&rl->window_start_ns);
    if (start == 0 || now - start >= RL_WINDOW_NS) {
        /* New window; a race here only lets a couple of extra lines through. */
        uint64_t dropped = atomic_exchange(&rl->dropped, 0);
        atomic_store(&rl->window_start_ns, now);
        atomic_store(&rl->in_window, 0);
        if (dropped)
            log_msg(LOG_WARN, "(%llu similar messages suppressed)", (unsigned long long)dropped);
    }
    if (atomic_fetch_add(&rl->in_window, 1) < RL_BURST)
        return true;
    atomic_fetch_add(&rl->dropped, 1);
    atomic_fetch_add(&rl_dropped_total, 1);
    return false;
}

uint64_t log_rl_dropped_total(void)
{
    return atomic_load(&rl_dropped_total);
}

void vmm_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog_line("fatal", fmt, ap);
    va_end(ap);
    /* Restore the terminal before abort(): once one thread's SIGABRT handler
     * has run (SA_RESETHAND), a second thread's abort() would end the process
     * at once, possibly while the first is still restoring. term_restore()
     * makes a concurrent caller wait until the restore is done. */
    term_restore();
    abort();
}
