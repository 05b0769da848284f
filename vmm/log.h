/*
 * Logging to stderr, or to the file of --log-path / PUT /logger.  Every
 * line is prefixed with "wisp: " and a level.  Messages a guest can trigger
 * must use log_ratelimited(), which allows a burst of 10 lines per call
 * site per 5 seconds and counts what it drops, so a hostile guest cannot
 * flood the host's logs.  The level can change while the VM runs (PATCH
 * /logger): every check reads it atomically.
 */
#ifndef VMM_LOG_H
#define VMM_LOG_H

#include <stdatomic.h>
#include <stdint.h>

#include "vmm/util.h"

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/*
 * Messages above this level are dropped.  Default LOG_WARN; set from
 * --log-level, and at run time by PATCH /logger (any thread may store it).
 */
extern _Atomic(enum log_level) log_threshold;

/*
 * Send log lines to `path` from now on: opened O_WRONLY | O_APPEND |
 * O_NONBLOCK | O_CREAT (0600), never through a symlink; a regular file or
 * a FIFO (which must have a reader: ENXIO otherwise).  A line the file does
 * not take at once (a full FIFO) is dropped and counted in the metrics'
 * logger.write_fails; no log call ever waits.  0 or -errno (nothing
 * changed on error).  Setup only: call before other threads log.
 */
int log_set_path(const char *path) __must_check;

/* Back to stderr, closing a log file (tests, teardown). */
void log_reset_path(void);

void log_msg(enum log_level lvl, const char *fmt, ...) __printf(2, 3);

/* Per-call-site rate-limit state; lives in a static at each call site. */
struct log_rl {
    _Atomic uint64_t window_start_ns;
    _Atomic uint32_t in_window;
    _Atomic uint64_t dropped;
};

/* Returns true if the caller may log now (and accounts the line). */
bool log_rl_allow(struct log_rl *rl);

/* Total lines dropped by all rate limiters (for statistics and tests). */
uint64_t log_rl_dropped_total(void);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#define log_ratelimited(lvl, ...)                                                                  \
    do {                                                                                           \
        static struct log_rl rl_site_;                                                             \
        if ((lvl) <= log_threshold && log_rl_allow(&rl_site_))                                     \
            log_msg((lvl), __VA_ARGS__);                                                           \
    } while (0)

/*
 * An internal invariant is broken: print the message and abort.  Never used
 * for anything a guest or a user can cause.
 */
_Noreturn void vmm_fatal(const char *fmt, ...) __printf(1, 2);

#endif /* VMM_LOG_H */
