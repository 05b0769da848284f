/*
 * Per-thread seccomp filters (see sandbox.h): loading the programs compiled
 * at build time (sandbox_build.c, sandbox/gen/sandbox_gen.c), installation, and
 * the SIGSYS handler.
 *
 * Why TRAP and not KILL_PROCESS: a killed process says nothing, and an
 * operator needs to know which thread made which call.  The handler is
 * async-signal-safe: thread labels are copied to thread-local storage when a
 * thread enters its sandbox, syscall names come from a table generated at
 * build time, numbers are formatted by hand, and the only syscalls
 * it makes (write, ioctl TCSETS/TCGETS via term_restore, exit_group) are
 * allowed in every role.  A forbidden call inside the handler itself finds SIGSYS
 * blocked, so the kernel kills wisp with SIGSYS (status 159): it fails closed.
 *
 * The rule tables themselves, and how a role's list is put together, are in
 * sandbox_rules.c.
 */
#include "sandbox/sandbox.h"
#include "vmm/log.h"
#include "vmm/term.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SI_SECCOMP 1 /* si_code of a seccomp trap (SYS_SECCOMP in asm-generic/siginfo.h) */

/* ---- the SIGSYS handler ----------------------------------------------------------------- */

static struct {
    bool prepared;
    enum seccomp_mode mode;
    struct sock_fprog prog[SANDBOX_NROLES];
} sb;

static _Thread_local char thread_label[16]; /* set by sandbox_enter() */
static atomic_int trapped;
static atomic_int trapped_spoken; /* set once the first trapping thread wrote its line */

static size_t put_str(char *buf, size_t off, size_t cap, const char *s)
{
    while (*s && off + 1 < cap)
        buf[off++] = *s++;
    return off;
}

static size_t put_uint(char *buf, size_t off, size_t cap, unsigned long v)
{
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && off + 1 < cap)
        buf[off++] = digits[--n];
    return off;
}

static void sigsys_handler(int sig, siginfo_t *si, void *uctx)
{
    (void)sig;
    (void)uctx;
    /* Restore first: term_restore() lets one thread do it and makes any other
     * wait until it is done, so no thread's _exit() can end the process while
     * the terminal is still raw (a raw terminal would also print our line
     * without a carriage return). */
    term_restore();
    /* Two threads may trap at once: the first one speaks, the others wait
     * (bounded, no syscalls) until its line is out, then all exit. */
    if (atomic_exchange(&trapped, 1)) {
        for (unsigned long spin = 0; spin < 200000000UL && atomic_load(&trapped_spoken) == 0;
             spin++)
            __asm__ volatile("" ::: "memory");
        _exit(SANDBOX_EXIT_STATUS);
    }
    char line[160];
    size_t n = 0;
    if (si->si_code != SI_SECCOMP) {
        n = put_str(line, n, sizeof(line), "wisp: fatal: SIGSYS not raised by seccomp\n");
        ssize_t w __unused = write(STDERR_FILENO, line, n);
        atomic_store(&trapped_spoken, 1);
        _exit(128 + SIGSYS);
    }
    int nr = si->si_syscall;
    const char *name = nr >= 0 && nr < SANDBOX_NAME_TABLE && sandbox_embedded_names[nr][0]
                           ? sandbox_embedded_names[nr]
                           : "syscall";
    n = put_str(line, n, sizeof(line), "wisp: fatal: seccomp: thread ");
    n = put_str(line, n, sizeof(line), thread_label[0] ? thread_label : "unknown");
    n = put_str(line, n, sizeof(line), " made forbidden syscall ");
    n = put_str(line, n, sizeof(line), name);
    n = put_str(line, n, sizeof(line), "(");
    n = put_uint(line, n, sizeof(line), (unsigned long)(unsigned)nr);
    n = put_str(line, n, sizeof(line), ")");
    line[n++] = '\n';
    ssize_t w __unused = write(STDERR_FILENO, line, n);
    atomic_store(&trapped_spoken, 1);
    _exit(SANDBOX_EXIT_STATUS);
}

/* ---- embedded programs ----------------------------------------------------------------- */

int sandbox_check_prog(const struct sock_fprog *p, const char **why)
{
    *why = NULL;
    if (!p->filter || p->len == 0 || p->len > BPF_MAXINSNS)
        *why = "empty or too long";
    for (unsigned i = 0; !*why && i < p->len; i++) {
        const struct sock_filter *f = &p->filter[i];
        unsigned left = p->len - i - 1; /* instructions after this one */
        switch (BPF_CLASS(f->code)) {
        case BPF_LD:
            if (f->code != (BPF_LD | BPF_W | BPF_ABS) || f->k % 4 ||
                f->k >= sizeof(struct seccomp_data))
                *why = "a load that is not a 32-bit field of seccomp_data";
            break;
        case BPF_ALU:
            if (f->code != (BPF_ALU | BPF_AND | BPF_K))
                *why = "an ALU operation other than AND with a constant";
            break;
        case BPF_JMP:
            if (BPF_OP(f->code) == BPF_JA) {
                if (f->code != (BPF_JMP | BPF_JA) || f->k >= left)
                    *why = "a jump out of the program";
            } else if ((BPF_OP(f->code) != BPF_JEQ && BPF_OP(f->code) != BPF_JGT &&
                        BPF_OP(f->code) != BPF_JGE && BPF_OP(f->code) != BPF_JSET) ||
                       BPF_SRC(f->code) != BPF_K) {
                *why = "a conditional jump that is not on a constant";
            } else if (f->jt >= left || f->jf >= left) {
                *why = "a jump out of the program";
            }
            break;
        case BPF_RET:
            if (f->code != (BPF_RET | BPF_K))
                *why = "a return of something other than a constant";
            break;
        default:
            *why = "an instruction class seccomp programs here never use";
        }
    }
    if (!*why && BPF_CLASS(p->filter[p->len - 1].code) != BPF_RET)
        *why = "it does not end with a return";
    return *why ? -EINVAL : 0;
}

int sandbox_load_embedded(enum sandbox_role role, const struct sandbox_opts *opts, pid_t pid,
                          struct sock_fprog *prog, struct errbuf *err)
{
    const char *rname = sandbox_role_name(role);
    if ((unsigned)role >= SANDBOX_NROLES ||
        (opts->mode != SECCOMP_KILL && opts->mode != SECCOMP_LOG))
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "internal: no embedded %s filter", rname);
    const struct sandbox_embedded *e =
        &sandbox_embedded_progs[opts->mode == SECCOMP_LOG][opts->stats ? 1 : 0]
                               [opts->passthrough ? 1 : 0][opts->vhost_vsock ? 1 : 0][role];
    if (!e->insns || !e->len || e->len > BPF_MAXINSNS)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                       "seccomp: the embedded %s filter is missing; rebuild wisp", rname);
    struct sock_fprog p = {.len = e->len, .filter = malloc(e->len * sizeof(struct sock_filter))};
    if (!p.filter)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory for the %s filter", rname);
    memcpy(p.filter, e->insns, e->len * sizeof(*p.filter));
    for (unsigned i = 0; i < p.len; i++)
        if (p.filter[i].code == (BPF_JMP | BPF_JEQ | BPF_K) && p.filter[i].k == SANDBOX_GEN_PID)
            p.filter[i].k = (uint32_t)pid;
    const char *why;
    if (sandbox_check_prog(&p, &why) < 0) {
        free(p.filter);
        return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                       "seccomp: the embedded %s filter is damaged (%s); rebuild wisp", rname, why);
    }
    *prog = p;
    return 0;
}

/* ---- installation ----------------------------------------------------------------------- */

int sandbox_prepare(const struct sandbox_opts *opts, struct errbuf *err)
{
    if (sb.prepared)
        return err_set(err, WISP_EXIT_FAILURE, EBUSY, "internal: sandbox prepared twice");
    sb.mode = opts->mode;
    if (opts->mode == SECCOMP_OFF) {
        log_warn("seccomp is off: threads run without syscall filters (never do this in "
                 "production)");
        sb.prepared = true;
        return 0;
    }
    if (opts->mode == SECCOMP_LOG)
        log_warn("seccomp is in log mode: forbidden syscalls are logged by the kernel, not "
                 "stopped");
    /* Only roles that have threads: the others are never installed. */
    unsigned want = opts->roles ? opts->roles : SANDBOX_THREAD_ROLES;
    int ret = 0;
    for (unsigned r = 0; r < SANDBOX_NROLES && !ret; r++)
        if (want & (1u << r))
            ret = sandbox_load_embedded((enum sandbox_role)r, opts, getpid(), &sb.prog[r], err);
    if (ret < 0)
        goto fail;
    if (opts->mode == SECCOMP_KILL) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = sigsys_handler;
        sa.sa_flags = SA_SIGINFO;
        sigfillset(&sa.sa_mask); /* nothing else runs on top of a dying thread */
        if (sigaction(SIGSYS, &sa, NULL) < 0) {
            ret = err_set(err, WISP_EXIT_HOST, errno, "cannot install the SIGSYS handler: %s",
                          strerror(errno));
            goto fail;
        }
    }
    sb.prepared = true;
    return 0;
fail:
    for (unsigned r = 0; r < SANDBOX_NROLES; r++)
        free(sb.prog[r].filter);
    memset(sb.prog, 0, sizeof(sb.prog));
    return ret;
}

#ifdef WISP_TEST_HOOKS
/*
 * Test-only (never in release builds; the integration tests use a wisp built
 * with -DWISP_TEST_HOOKS): WISP_TEST_FORBIDDEN_SYSCALL=<role> makes every
 * thread of that role call socket(AF_INET) - forbidden everywhere, and
 * harmless if a broken filter let it through - and WISP_TEST_ABORT=<role>
 * makes it vmm_fatal(), which must end in SIGABRT, not SIGSYS.
 */
static void test_hooks(enum sandbox_role role)
{
    const char *who = getenv("WISP_TEST_FORBIDDEN_SYSCALL");
    if (who && !strcmp(who, sandbox_role_name(role))) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0)
            close(fd);
    }
    /* WISP_TEST_OPEN=r:<path> or w:<path>: the main thread opens a file for
     * reading or writing once running and logs the outcome (with --seccomp
     * off, to see Landlock's answer). */
    const char *path = getenv("WISP_TEST_OPEN");
    if (path && role == SANDBOX_MAIN && (path[0] == 'r' || path[0] == 'w') && path[1] == ':') {
        int fd = open(path + 2, (path[0] == 'w' ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
        log_error("test hook: open %s: %s", path + 2, fd >= 0 ? "allowed" : strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    who = getenv("WISP_TEST_ABORT");
    if (who && !strcmp(who, sandbox_role_name(role)))
        vmm_fatal("test hook: abort in thread %s", thread_label);
}
#endif

void sandbox_thread_signals(int keep)
{
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    sigset_t set;
    sigfillset(&set);
    for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
        sigdelset(&set, fatal[i]);
    if (keep > 0)
        sigdelset(&set, keep);
    pthread_sigmask(SIG_SETMASK, &set, NULL);
}

bool sandbox_prepared(void)
{
    return sb.prepared;
}

void sandbox_release(void)
{
    for (unsigned r = 0; r < SANDBOX_NROLES; r++)
        free(sb.prog[r].filter);
    memset(sb.prog, 0, sizeof(sb.prog));
    sb.prepared = false;
}

int sandbox_enter(enum sandbox_role role, struct errbuf *err)
{
    if (!sb.prepared || (unsigned)role >= SANDBOX_NROLES)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "internal: sandbox not prepared");
    if (sb.mode != SECCOMP_OFF && !sb.prog[role].filter)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                       "internal: no seccomp filter built for role %s (SANDBOX_THREAD_ROLES)",
                       sandbox_role_name(role));
    /* The main thread's kernel name is the program's; call it by its role. */
    if (role == SANDBOX_MAIN || prctl(PR_GET_NAME, thread_label, 0, 0, 0) < 0)
        snprintf(thread_label, sizeof(thread_label), "%s", sandbox_role_name(role));
    if (sb.mode == SECCOMP_OFF) {
#ifdef WISP_TEST_HOOKS
        test_hooks(role);
#endif
        return 0;
    }
    /* A blocked SIGSYS would make the kernel kill us without the handler's line. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGSYS);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "cannot set no_new_privs: %s", strerror(errno));
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &sb.prog[role]) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "cannot install the %s seccomp filter: %s",
                       sandbox_role_name(role), strerror(errno));
#ifdef WISP_TEST_HOOKS
    test_hooks(role);
#endif
    return 0;
}
