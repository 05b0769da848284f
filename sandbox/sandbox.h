/*
 * Per-thread seccomp filters (security.md B, style.md 2.9).
 *
 * Every wisp thread belongs to a role (main event loop, vCPU, and later the
 * control API, migration and device I/O workers) and runs under exactly one
 * allow-list filter: the one for its role.  The filters are compiled at build
 * time (sandbox_build(), run by sandbox/gen/sandbox_gen.c) and embedded;
 * sandbox_prepare() loads and checks them once, before any thread starts;
 * each thread then installs its own with sandbox_enter() before it touches
 * guest data.
 *
 * Inheritance: a thread inherits the filters of the thread that creates it,
 * and filters stack.  So every thread must be created BEFORE its creator
 * enters its own sandbox: vm_run() starts the vCPU threads (each enters the
 * vCPU role before its first KVM_RUN) and only then puts the main thread in
 * the main role.  No role may create threads (clone is not allowed), which
 * enforces the rule.
 *
 * Modes (--seccomp): kill (default) traps a forbidden syscall into a SIGSYS
 * handler that writes one line naming the thread and the syscall, restores
 * the terminal and exits with SANDBOX_EXIT_STATUS; log lets the syscall run
 * and has the kernel log it (audit); off installs nothing and warns.
 *
 * The rule tables live in sandbox_rules.c, one line per rule with the reason; the
 * same tables are documented in docs/SECURITY.md ("Seccomp filters").
 */
#ifndef SANDBOX_SANDBOX_H
#define SANDBOX_SANDBOX_H

#include <linux/filter.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "vmm/config.h"
#include "vmm/error.h"

/*
 * Exit status after a forbidden syscall under --seccomp kill (Firecracker's
 * value).  128 + SIGSYS (159) instead means the kernel killed wisp: a
 * forbidden syscall inside the SIGSYS handler, or a foreign syscall ABI.
 */
#define SANDBOX_EXIT_STATUS 148

/* Placeholder for an argument that must equal wisp's own pid (tgkill's tgid). */
#define SANDBOX_SELF_PID ((scmp_datum_t)0x5e1f5e1f00000000ULL)

enum sandbox_role {
    SANDBOX_MAIN,      /* main thread: event loop, device back ends, teardown */
    SANDBOX_VCPU,      /* one per vCPU: KVM_RUN and the exit handlers */
    SANDBOX_API,       /* control API server (wisp-api, vmm/api/) */
    SANDBOX_MIGRATION, /* snapshots and migration (wisp-mig, vmm/vm_mig.c) */
    SANDBOX_IO_WORKER, /* device I/O worker (no thread yet) */
    SANDBOX_UFFD,      /* lazy restore: the userfaultfd page server (wisp-uffd) */
    SANDBOX_VDPA,      /* a vDPA device's worker (wisp-vdpa, devices/vhost/vdpa_dp.c) */
    SANDBOX_NROLES
};

/*
 * One allow-list entry: syscall `nr` is allowed when all `nargs` argument
 * comparisons hold.  With `err` > 0 the syscall does not run and fails with
 * that errno instead (a soft refusal, for calls libraries may probe).
 */
struct sandbox_rule {
    int nr; /* SCMP_SYS(name) */
    const char *name;
    unsigned nargs; /* 0..2 */
    struct scmp_arg_cmp args[2];
    int err;
    const char *why; /* who needs it; also the docs/SECURITY.md reason */
};

struct sandbox_opts {
    enum seccomp_mode mode;
    bool stats;       /* --stats: the main thread reads /proc/self/status at exit */
    bool passthrough; /* a PCI passthrough device: the main and vCPU roles need more */
    bool vhost_vsock; /* a vsock device on /dev/vhost-vsock: its ioctls on vCPUs and main */
    unsigned roles;   /* roles sandbox_prepare() builds (1u << role); 0: SANDBOX_THREAD_ROLES */
    pid_t self_pid;   /* sandbox_build(): the pid SANDBOX_SELF_PID stands for; 0: getpid() */
};

/*
 * Roles that have threads today: what sandbox_prepare() builds by default.
 * A new kind of thread adds its bit here.
 */
#define SANDBOX_THREAD_ROLES                                                                       \
    ((1u << SANDBOX_MAIN) | (1u << SANDBOX_VCPU) | (1u << SANDBOX_API) |                           \
     (1u << SANDBOX_MIGRATION) | (1u << SANDBOX_UFFD) | (1u << SANDBOX_VDPA))

/* Upper bound on the rules one role can have (common + role + extras). */
#define SANDBOX_MAX_RULES 128

/*
 * Load the embedded filters of opts->roles (by default SANDBOX_THREAD_ROLES)
 * with wisp's pid in place (sandbox_load_embedded()) and install the SIGSYS
 * handler.  Call once per process, from the main thread, before creating
 * any thread that will call sandbox_enter().  With mode off it only logs a
 * warning.
 * Returns 0, or -errno with `err` set (WISP_EXIT_FAILURE: a damaged embedded
 * program; WISP_EXIT_HOST: the handler could not be installed).
 */
int sandbox_prepare(const struct sandbox_opts *opts, struct errbuf *err) __must_check;

/* Has sandbox_prepare() succeeded in this process?  (The Firecracker
 * pre-boot phase prepares before the VM exists; vm_run() then skips it.) */
bool sandbox_prepared(void);

/*
 * Forget what sandbox_prepare() built, so that a later VM in the same
 * process prepares again (vmm/libwisp/, after its VM's threads have all
 * ended: filters and Landlock bind threads, so none is left in force).
 * The SIGSYS handler stays installed.  Not for the wisp binary.
 */
void sandbox_release(void);

/*
 * Put the calling thread under the filter of `role` (a no-op with mode off).
 * Call after the thread is named (pthread_setname_np) and before it handles
 * guest data.  Unblocks SIGSYS in the thread, since the trap must reach the
 * handler.  Sets PR_SET_NO_NEW_PRIVS, which seccomp requires without
 * CAP_SYS_ADMIN.
 * Returns 0; -EINVAL (WISP_EXIT_FAILURE) if sandbox_prepare() has not
 * succeeded or did not build `role`; or -errno from
 * prctl/seccomp (WISP_EXIT_HOST); `err` is set.
 */
int sandbox_enter(enum sandbox_role role, struct errbuf *err) __must_check;

/*
 * Called first thing by every helper thread (vCPUs, API, migration, uffd):
 * blocks every signal except the synchronous fatal ones (SIGSEGV, SIGBUS,
 * SIGILL, SIGFPE, SIGABRT) and `keep` (0 for none), so process-directed
 * signals reach only the main thread's signalfd.  The vCPUs keep their kick.
 */
void sandbox_thread_signals(int keep);

/* "main", "vcpu", "api", "migration", "io-worker", "uffd", "vdpa"; "?" if out of range. */
const char *sandbox_role_name(enum sandbox_role role);

/*
 * Collect the rules that make up `role` with `opts` into `out` (up to `max`),
 * in filter order: role rules, common rules, option and sanitizer extras,
 * then soft refusals not shadowed by an earlier rule for the same syscall.
 * Returns the count, or -ENOSPC if `max` is too small, -EINVAL for a bad role.
 */
int sandbox_role_rules(enum sandbox_role role, const struct sandbox_opts *opts,
                       const struct sandbox_rule **out, size_t max) __must_check;

/*
 * Build the BPF program of `role` with `opts` (default action from
 * opts->mode: TRAP for kill, LOG for log; must not be off).  The caller frees
 * prog->filter with free().  Used by sandbox_prepare() and by tests.
 * Returns 0, or -errno (libseccomp error, or a program too large) with `err` set.
 */
int sandbox_build(enum sandbox_role role, const struct sandbox_opts *opts, struct sock_fprog *prog,
                  struct errbuf *err) __must_check;

/* True in ASan builds, whose filters add what the sanitizer runtime needs. */
bool sandbox_sanitizer_build(void);

/* ---- programs compiled at build time (security.md B2) ----------------------------------- */

/*
 * wisp does not compile filters when it starts: sandbox/gen/sandbox_gen.c runs
 * sandbox_build() for every mode (kill, log), --stats setting and role at
 * build time, with SANDBOX_GEN_PID standing for the pid, and embeds the
 * programs and the syscall names.  sandbox_prepare() copies a program,
 * puts its pid in place of SANDBOX_GEN_PID and checks it before use.
 */
#define SANDBOX_GEN_PID    0x7e1f7e1fU /* never a pid: above PID_MAX_LIMIT (2^22) */
#define SANDBOX_NAME_TABLE 512         /* syscall numbers the SIGSYS line can name */
#define SANDBOX_NAME_LEN   28

struct sandbox_embedded {
    const struct sock_filter *insns;
    unsigned short len;
};

/* [mode: 0 kill, 1 log][--stats][role] and the names, from the generated file. */
extern const struct sandbox_embedded sandbox_embedded_progs[2][2][2][2][SANDBOX_NROLES];
extern const char sandbox_embedded_names[SANDBOX_NAME_TABLE][SANDBOX_NAME_LEN];

/*
 * The embedded program for `role` under `opts` (mode kill or log), copied
 * into prog (free prog->filter), with `pid` in place of SANDBOX_GEN_PID.
 * Returns 0, or -EINVAL with `err` set (WISP_EXIT_FAILURE) if there is no
 * such program or sandbox_check_prog() refuses it.
 */
int sandbox_load_embedded(enum sandbox_role role, const struct sandbox_opts *opts, pid_t pid,
                          struct sock_fprog *prog, struct errbuf *err) __must_check;

/*
 * Check that `p` is a program of the shape sandbox_build() emits, so that a
 * damaged one is refused at start-up: 1..BPF_MAXINSNS instructions; only
 * 32-bit loads from struct seccomp_data, AND with a constant, jumps on
 * constants that land inside the program, and returns of constants; the
 * last instruction a return.  Returns 0, or -EINVAL with a reason in
 * `why` (static text).
 */
int sandbox_check_prog(const struct sock_fprog *p, const char **why);

#endif /* SANDBOX_SANDBOX_H */
