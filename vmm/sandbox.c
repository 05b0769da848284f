/*
 * Per-thread seccomp filters (see sandbox.h): each role's allow-list compiled
 * to BPF with libseccomp, installation, and the SIGSYS handler.
 *
 * Why TRAP and not KILL_PROCESS: a killed process says nothing, and an
 * operator needs to know which thread made which call.  The handler is
 * async-signal-safe: thread labels are copied to thread-local storage when a
 * thread enters its sandbox, syscall names are resolved into a static table
 * in sandbox_prepare(), numbers are formatted by hand, and the only syscalls
 * it makes (write, ioctl TCSETS/TCGETS via term_restore, exit_group) are
 * allowed in every role.  A forbidden call inside the handler itself finds SIGSYS
 * blocked, so the kernel kills wisp with SIGSYS (status 159): it fails closed.
 *
 * The rule tables themselves, and how a role's list is put together, are in
 * sandbox_rules.c.
 */
#include "vmm/sandbox.h"
#include "vmm/log.h"
#include "vmm/term.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
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

#define SI_SECCOMP 1   /* si_code of a seccomp trap (SYS_SECCOMP in asm-generic/siginfo.h) */
#define NAME_TABLE 512 /* syscall numbers the handler can name (x86_64 has ~460) */
#define NAME_LEN   28

/* ---- compilation ------------------------------------------------------------------------ */

/* libseccomp can only write a program to an fd: go through a memfd. */
static int export_prog(scmp_filter_ctx ctx, struct sock_fprog *prog)
{
    int fd = memfd_create("wisp-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct sock_filter *insns = NULL;
    int ret = seccomp_export_bpf(ctx, fd);
    if (ret < 0)
        goto out;
    off_t len = lseek(fd, 0, SEEK_CUR);
    if (len <= 0 || len % (off_t)sizeof(*insns) || len / (off_t)sizeof(*insns) > BPF_MAXINSNS) {
        ret = -E2BIG;
        goto out;
    }
    insns = malloc((size_t)len);
    if (!insns) {
        ret = -ENOMEM;
        goto out;
    }
    for (off_t got = 0; got < len;) {
        ssize_t n = pread(fd, (char *)insns + got, (size_t)(len - got), got);
        if (n <= 0) {
            ret = n < 0 ? -errno : -EIO;
            goto out;
        }
        got += n;
    }
    prog->len = (unsigned short)(len / (off_t)sizeof(*insns));
    prog->filter = insns;
    insns = NULL;
    ret = 0;
out:
    free(insns);
    close(fd);
    return ret;
}

int sandbox_build(enum sandbox_role role, const struct sandbox_opts *opts, struct sock_fprog *prog,
                  struct errbuf *err)
{
    const struct sandbox_rule *rules[SANDBOX_MAX_RULES];
    const char *rname = sandbox_role_name(role);
    if (opts->mode != SECCOMP_KILL && opts->mode != SECCOMP_LOG)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "internal: no seccomp filter in mode off");
    int n = sandbox_role_rules(role, opts, rules, ARRAY_SIZE(rules));
    if (n < 0)
        return err_set(err, WISP_EXIT_FAILURE, -n, "internal: bad seccomp role %s", rname);
    scmp_filter_ctx ctx = seccomp_init(opts->mode == SECCOMP_LOG ? SCMP_ACT_LOG : SCMP_ACT_TRAP);
    if (!ctx)
        return err_set(err, WISP_EXIT_HOST, ENOMEM, "seccomp: cannot create a filter");
    /* A syscall through another ABI (int 0x80, x32) gets no say at all. */
    int ret = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (ret < 0) {
        err_set(err, WISP_EXIT_HOST, -ret, "seccomp: cannot set the bad-ABI action: %s",
                strerror(-ret));
        goto out;
    }
    pid_t self = getpid();
    for (int i = 0; i < n; i++) {
        const struct sandbox_rule *r = rules[i];
        struct scmp_arg_cmp args[2];
        for (unsigned a = 0; a < r->nargs && a < 2; a++) {
            args[a] = r->args[a];
            if (args[a].datum_a == SANDBOX_SELF_PID)
                args[a].datum_a = (scmp_datum_t)self;
        }
        uint32_t action = r->err ? SCMP_ACT_ERRNO((uint32_t)r->err) : SCMP_ACT_ALLOW;
        ret = seccomp_rule_add_exact_array(ctx, action, r->nr, r->nargs, args);
        /* Earlier rules are hotter: ask libseccomp to test them first. */
        bool first = true;
        for (int j = 0; j < i; j++)
            first &= rules[j]->nr != r->nr;
        if (!ret && first)
            ret = seccomp_syscall_priority(ctx, r->nr, (uint8_t)(255 - MIN(i, 255)));
        if (ret < 0) {
            err_set(err, WISP_EXIT_HOST, -ret, "seccomp: cannot add %s to the %s filter: %s",
                    r->name, rname, strerror(-ret));
            goto out;
        }
    }
    ret = export_prog(ctx, prog);
    if (ret < 0)
        err_set(err, WISP_EXIT_HOST, -ret, "seccomp: cannot compile the %s filter: %s", rname,
                strerror(-ret));
out:
    seccomp_release(ctx);
    return ret;
}

/* ---- the SIGSYS handler ----------------------------------------------------------------- */

static struct {
    bool prepared;
    enum seccomp_mode mode;
    struct sock_fprog prog[SANDBOX_NROLES];
} sb;

static char syscall_names[NAME_TABLE][NAME_LEN]; /* "" = unknown */
static _Thread_local char thread_label[16];      /* set by sandbox_enter() */
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
    const char *name =
        nr >= 0 && nr < NAME_TABLE && syscall_names[nr][0] ? syscall_names[nr] : "syscall";
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

/* The handler cannot call libseccomp (it allocates): resolve every name now. */
static void resolve_names(void)
{
    for (int nr = 0; nr < NAME_TABLE; nr++) {
        char *s = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        if (!s)
            continue;
        size_t len = strlen(s);
        if (len < NAME_LEN)
            memcpy(syscall_names[nr], s, len + 1);
        free(s);
    }
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
    /* Only roles that have threads: each filter costs ~0.15 ms of start-up. */
    unsigned want = opts->roles ? opts->roles : SANDBOX_THREAD_ROLES;
    int ret = 0;
    for (unsigned r = 0; r < SANDBOX_NROLES && !ret; r++)
        if (want & (1u << r))
            ret = sandbox_build((enum sandbox_role)r, opts, &sb.prog[r], err);
    if (ret < 0)
        goto fail;
    if (opts->mode == SECCOMP_KILL) {
        resolve_names();
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
