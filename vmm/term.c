/* Raw-mode terminal with guaranteed restore (see term.h). */
#include "vmm/term.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static struct termios saved;
static int saved_fd = -1;

/* INACTIVE -> ACTIVE (raw mode on) -> RESTORING -> INACTIVE.  Two threads can
 * die at once (e.g. every vCPU hits the same fatal error): the loser must not
 * let the process exit before the winner's tcsetattr() is done. */
enum { TERM_INACTIVE, TERM_ACTIVE, TERM_RESTORING };
static atomic_int state;

void term_restore(void)
{
    /* Async-signal-safe: atomics and tcsetattr only. */
    int expect = TERM_ACTIVE;
    if (atomic_compare_exchange_strong(&state, &expect, TERM_RESTORING)) {
        (void)tcsetattr(saved_fd, TCSANOW, &saved);
        atomic_store(&state, TERM_INACTIVE);
        return;
    }
    /* Someone else is restoring: wait (bounded; no syscalls) until it is done. */
    for (unsigned long spin = 0; spin < 200000000UL && atomic_load(&state) == TERM_RESTORING;
         spin++)
        __asm__ volatile("" ::: "memory");
}

static void fatal_signal(int sig)
{
    term_restore();
    signal(sig, SIG_DFL);
    raise(sig);
}

bool term_raw_enable(int fd)
{
    if (!isatty(fd) || tcgetattr(fd, &saved) < 0)
        return false;
    struct termios raw = saved;
    cfmakeraw(&raw);
    /* Output post-processing stays off, as on a real serial line: guest
     * consoles send "\r\n" themselves. */
    saved_fd = fd;
    if (tcsetattr(fd, TCSANOW, &raw) < 0)
        return false;
    atomic_store(&state, TERM_ACTIVE);
    atexit(term_restore);
    /* Crashes must not leave the user's terminal unusable. */
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGQUIT};
    for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = fatal_signal;
        sa.sa_flags = SA_RESETHAND;
        sigemptyset(&sa.sa_mask);
        sigaction(fatal[i], &sa, NULL);
    }
    return true;
}

size_t term_escape_filter(struct term_escape *e, uint8_t *buf, size_t len, bool *stop)
{
    size_t out = 0;
    *stop = false;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = buf[i];
        if (e->pending) {
            e->pending = false;
            if (b == 'x' || b == 'X') {
                *stop = true;
                return out;
            }
            buf[out++] = b; /* Ctrl-A Ctrl-A gives one Ctrl-A, anything else itself */
        } else if (b == TERM_ESCAPE_CHAR) {
            e->pending = true;
        } else {
            buf[out++] = b;
        }
    }
    return out;
}
