/*
 * Seccomp filters (sandbox/sandbox.c, sandbox/sandbox_rules.c), checked without the
 * kernel: each role's BPF program, as libseccomp compiled it, runs in a small
 * BPF interpreter against the rule table's own meaning (every rule's
 * arguments pass; each argument perturbed, every other syscall, a foreign ABI
 * and x32 numbers do not).  Also the policy that must never change by
 * accident, the tables' form, the --seccomp key, and docs/SECURITY.md.
 *
 * Forked children that enter a role for real are in test_sandbox_child.c and
 * test_sandbox_modes.c (same "sandbox" suite).
 */
#include "vmm/config.h"
#include "devices/vfio/iommufd_uapi.h"
#include "sandbox/sandbox.h"
#include "tests/lib/sandbox_proc.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/kvm.h>
#include <linux/vhost.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* Seccomp action words as the kernel reads them (SECCOMP_RET_ALLOW, ...). */
#define ACT_ALLOW    0x7fff0000u
#define ACT_TRAP     0x00030000u
#define ACT_LOG      0x7ffc0000u
#define ACT_KILLP    0x80000000u
#define ACT_ERRNO(e) (0x00050000u | (uint32_t)(e))

static const struct sandbox_opts kill_opts = {.mode = SECCOMP_KILL};

/* ---- what the rule table says ----------------------------------------------------------- */

struct role_set {
    const struct sandbox_rule *r[SANDBOX_MAX_RULES];
    int n;
    struct sock_fprog prog;
};

static void role_load(struct role_set *s, enum sandbox_role role, const struct sandbox_opts *o)
{
    struct errbuf err = {0};
    s->n = sandbox_role_rules(role, o, s->r, SANDBOX_MAX_RULES);
    cr_assert_gt(s->n, 0, "role %d", role);
    cr_assert_eq(sandbox_build(role, o, &s->prog, &err), 0, "%s", err.msg);
}

static uint64_t datum(scmp_datum_t v)
{
    return v == SANDBOX_SELF_PID ? (uint64_t)getpid() : v;
}

static bool cond_holds(const struct scmp_arg_cmp *c, uint64_t v)
{
    switch (c->op) {
    case SCMP_CMP_EQ:
        return v == datum(c->datum_a);
    case SCMP_CMP_MASKED_EQ:
        return (v & c->datum_a) == c->datum_b;
    default:
        cr_assert_fail("comparison %d is not modelled by this test", c->op);
        return false;
    }
}

/* The action the table means for `d`. */
static uint32_t table_action(const struct role_set *s, const struct seccomp_data *d, uint32_t dflt)
{
    for (int i = 0; i < s->n; i++) {
        const struct sandbox_rule *r = s->r[i];
        bool ok = r->nr == d->nr;
        for (unsigned a = 0; ok && a < r->nargs; a++)
            ok = cond_holds(&r->args[a], d->args[r->args[a].arg]);
        if (ok)
            return r->err ? ACT_ERRNO(r->err) : ACT_ALLOW;
    }
    return dflt;
}

static struct seccomp_data sys(int nr)
{
    return (struct seccomp_data){.nr = nr, .arch = AUDIT_ARCH_X86_64};
}

/* Arguments that satisfy every condition of `r`, with bits outside masks set. */
static struct seccomp_data satisfying(const struct sandbox_rule *r)
{
    struct seccomp_data d = sys(r->nr);
    for (unsigned a = 0; a < r->nargs; a++) {
        const struct scmp_arg_cmp *c = &r->args[a];
        d.args[c->arg] =
            c->op == SCMP_CMP_EQ ? datum(c->datum_a) : c->datum_b | (~c->datum_a & 0x3);
    }
    return d;
}

static void check(const struct role_set *s, const struct seccomp_data *d, uint32_t dflt,
                  const char *what)
{
    uint32_t want = table_action(s, d, dflt), got = sandbox_proc_bpf_run(&s->prog, d);
    cr_assert_eq(got, want, "%s: nr %d args %#llx %#llx %#llx: filter says %#x, table %#x", what,
                 d->nr, (unsigned long long)d->args[0], (unsigned long long)d->args[1],
                 (unsigned long long)d->args[2], got, want);
}

/* ---- per-rule validation ---------------------------------------------------------------- */

struct role_case {
    int role;
    bool log;
    bool stats;
};

static struct role_case role_cases[] = {
    {SANDBOX_MAIN, false, false},      {SANDBOX_MAIN, false, true},
    {SANDBOX_MAIN, true, false},       {SANDBOX_VCPU, false, false},
    {SANDBOX_VCPU, true, false},       {SANDBOX_API, false, false},
    {SANDBOX_MIGRATION, false, false}, {SANDBOX_IO_WORKER, false, false},
    {SANDBOX_UFFD, false, false},      {SANDBOX_VDPA, false, false},
};

ParameterizedTestParameters(sandbox, filter_matches_table)
{
    return cr_make_param_array(struct role_case, role_cases, ARRAY_SIZE(role_cases));
}

ParameterizedTest(struct role_case *c, sandbox, filter_matches_table)
{
    struct sandbox_opts o = {.mode = c->log ? SECCOMP_LOG : SECCOMP_KILL, .stats = c->stats};
    uint32_t dflt = c->log ? ACT_LOG : ACT_TRAP;
    struct role_set s;
    role_load(&s, (enum sandbox_role)c->role, &o);
    for (int i = 0; i < s.n; i++) {
        const struct sandbox_rule *r = s.r[i];
        struct seccomp_data d = satisfying(r);
        uint32_t want = r->err ? ACT_ERRNO(r->err) : ACT_ALLOW;
        cr_assert_eq(sandbox_proc_bpf_run(&s.prog, &d), want, "%s: rule %s (%s) does not pass",
                     sandbox_role_name(c->role), r->name, r->why);
        /* Each condition broken in turn (other rules may still allow the result). */
        for (unsigned a = 0; a < r->nargs; a++) {
            const struct scmp_arg_cmp *cmp = &r->args[a];
            uint64_t base = d.args[cmp->arg];
            uint64_t bad[] = {base ^ 1, base + 1, base | (1ULL << 32), base ^ 0x80000000u,
                              cmp->op == SCMP_CMP_MASKED_EQ ? base ^ cmp->datum_a : ~base};
            for (size_t b = 0; b < ARRAY_SIZE(bad); b++) {
                struct seccomp_data p = d;
                p.args[cmp->arg] = bad[b];
                check(&s, &p, dflt, r->name);
            }
        }
    }
    /* Every syscall number, with zero and with pseudo-random arguments. */
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (int nr = 0; nr < 512; nr++) {
        struct seccomp_data d = sys(nr);
        check(&s, &d, dflt, "zero args");
        for (int k = 0; k < 4; k++) {
            for (int a = 0; a < 6; a++) {
                seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                d.args[a] = k & 1 ? seed >> (seed & 63) : seed;
            }
            check(&s, &d, dflt, "random args");
        }
    }
    /* Other ABIs never reach the table: x32 numbers and 32-bit x86. */
    struct seccomp_data x32 = sys(SCMP_SYS(write) | 0x40000000);
    cr_assert_eq(sandbox_proc_bpf_run(&s.prog, &x32), ACT_KILLP);
    struct seccomp_data i386 = sys(SCMP_SYS(write));
    i386.arch = AUDIT_ARCH_I386;
    cr_assert_eq(sandbox_proc_bpf_run(&s.prog, &i386), ACT_KILLP);
    free(s.prog.filter);
}

/* ---- the policy itself (what must never change by accident) ----------------------------- */

static uint32_t verdict(enum sandbox_role role, const struct sandbox_opts *o, int nr, uint64_t a0,
                        uint64_t a1, uint64_t a2)
{
    struct role_set s;
    role_load(&s, role, o);
    struct seccomp_data d = sys(nr);
    d.args[0] = a0;
    d.args[1] = a1;
    d.args[2] = a2;
    uint32_t v = sandbox_proc_bpf_run(&s.prog, &d);
    free(s.prog.filter);
    return v;
}

Test(sandbox, never_allowed_anywhere)
{
    for (int r = 0; r < SANDBOX_NROLES; r++) {
        const char *n = sandbox_role_name(r);
        cr_assert_eq(verdict(r, &kill_opts, SCMP_SYS(execve), 0, 0, 0), ACT_TRAP, "%s", n);
        cr_assert_eq(verdict(r, &kill_opts, SCMP_SYS(execveat), 0, 0, 0), ACT_TRAP, "%s", n);
        cr_assert_eq(verdict(r, &kill_opts, SCMP_SYS(fork), 0, 0, 0), ACT_TRAP, "%s", n);
        cr_assert_eq(verdict(r, &kill_opts, SCMP_SYS(clone3), 0, 0, 0), ACT_TRAP, "%s", n);
        cr_assert_eq(verdict(r, &kill_opts, SCMP_SYS(process_vm_readv), 0, 0, 0), ACT_TRAP);
        cr_assert_eq(verdict(r, &kill_opts, SCMP_SYS(process_vm_writev), 0, 0, 0), ACT_TRAP);
        cr_assert_eq(verdict(r, &kill_opts, SCMP_SYS(mmap), 0, 4096, PROT_READ | PROT_EXEC),
                     ACT_TRAP, "%s", n);
        cr_assert_eq(verdict(r, &kill_opts, SCMP_SYS(mprotect), 0, 4096, PROT_EXEC), ACT_TRAP);
        cr_assert_eq(verdict(r, &kill_opts, SCMP_SYS(mmap), 0, 4096, PROT_READ | PROT_WRITE),
                     ACT_ALLOW, "%s", n);
        cr_assert_eq(verdict(r, &kill_opts, SCMP_SYS(ioctl), 0, KVM_CREATE_VCPU, 0), ACT_TRAP);
        cr_assert_eq(verdict(r, &kill_opts, SCMP_SYS(ioctl), 0, TCSETS, 0), ACT_ALLOW, "%s", n);
        cr_assert_eq(verdict(r, &kill_opts, SCMP_SYS(tgkill), getpid(), 1, SIGABRT), ACT_ALLOW);
        cr_assert_eq(verdict(r, &kill_opts, SCMP_SYS(tgkill), 1, 1, SIGABRT), ACT_TRAP, "%s", n);
        cr_assert_eq(verdict(r, &kill_opts, SCMP_SYS(kill), 1, SIGKILL, 0), ACT_TRAP, "%s", n);
        /* The migration thread opens snapshot files; Landlock confines it to
         * --snapshot-dir (test_landlock.c, test_snapshot.c). */
        cr_assert_eq(verdict(r, &kill_opts, SCMP_SYS(openat), AT_FDCWD, 0, O_RDONLY),
                     r == SANDBOX_MIGRATION ? ACT_ALLOW : ACT_ERRNO(ENOENT), "%s", n);
        if (!sandbox_sanitizer_build()) { /* LeakSanitizer needs these (see san_rules) */
            cr_assert_eq(verdict(r, &kill_opts, SCMP_SYS(clone), 0, 0, 0), ACT_TRAP, "%s", n);
            cr_assert_eq(verdict(r, &kill_opts, SCMP_SYS(ptrace), 0, 0, 0), ACT_TRAP, "%s", n);
        }
    }
}

Test(sandbox, role_specific_rules)
{
    const struct sandbox_opts stats = {.mode = SECCOMP_KILL, .stats = true};
    /* Only vCPU threads run the guest; only the main thread reaches the console socket. */
    cr_assert_eq(verdict(SANDBOX_VCPU, &kill_opts, SCMP_SYS(ioctl), 5, KVM_RUN, 0), ACT_ALLOW);
    cr_assert_eq(verdict(SANDBOX_MAIN, &kill_opts, SCMP_SYS(ioctl), 5, KVM_RUN, 0), ACT_TRAP);
    cr_assert_eq(verdict(SANDBOX_VCPU, &kill_opts, SCMP_SYS(socket), AF_UNIX, SOCK_STREAM, 0),
                 ACT_TRAP);
    cr_assert_eq(
        verdict(SANDBOX_MAIN, &kill_opts, SCMP_SYS(socket), AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0),
        ACT_ALLOW);
    cr_assert_eq(verdict(SANDBOX_MAIN, &kill_opts, SCMP_SYS(socket), AF_INET, SOCK_STREAM, 0),
                 ACT_TRAP);
    cr_assert_eq(verdict(SANDBOX_MAIN, &kill_opts, SCMP_SYS(socket), AF_UNIX, SOCK_DGRAM, 0),
                 ACT_TRAP);
    cr_assert_eq(verdict(SANDBOX_MIGRATION, &kill_opts, SCMP_SYS(socket), AF_INET6, SOCK_STREAM, 0),
                 ACT_ALLOW);
    cr_assert_eq(verdict(SANDBOX_API, &kill_opts, SCMP_SYS(socket), AF_UNIX, SOCK_STREAM, 0),
                 ACT_TRAP);
    cr_assert_eq(verdict(SANDBOX_VCPU, &kill_opts, SCMP_SYS(epoll_ctl), 0, 0, 0), ACT_TRAP);
    if (!sandbox_sanitizer_build()) /* ASan's reports read /proc files from any thread */
        cr_assert_eq(verdict(SANDBOX_VCPU, &kill_opts, SCMP_SYS(read), 0, 0, 0), ACT_TRAP);
    cr_assert_eq(verdict(SANDBOX_MAIN, &kill_opts, SCMP_SYS(io_uring_enter), 0, 0, 0), ACT_ALLOW);
    cr_assert_eq(verdict(SANDBOX_IO_WORKER, &kill_opts, SCMP_SYS(io_uring_setup), 0, 0, 0),
                 ACT_TRAP);
    /* Only vcpu_kick() signals other threads. */
    cr_assert_eq(verdict(SANDBOX_MAIN, &kill_opts, SCMP_SYS(tgkill), getpid(), 2, SIGUSR1),
                 ACT_ALLOW);
    cr_assert_eq(verdict(SANDBOX_VCPU, &kill_opts, SCMP_SYS(tgkill), getpid(), 2, SIGUSR1),
                 ACT_TRAP);
    /* --stats opens /proc/self/status read-only, never for writing. */
    cr_assert_eq(verdict(SANDBOX_MAIN, &stats, SCMP_SYS(openat), AT_FDCWD, 0, O_RDONLY | O_CLOEXEC),
                 ACT_ALLOW);
    cr_assert_eq(verdict(SANDBOX_MAIN, &stats, SCMP_SYS(openat), AT_FDCWD, 0, O_WRONLY), ACT_TRAP);
    cr_assert_eq(verdict(SANDBOX_MAIN, &stats, SCMP_SYS(openat), AT_FDCWD, 0, O_RDONLY | O_CREAT),
                 ACT_TRAP);
}

Test(sandbox, tables_are_well_formed)
{
    for (int role = 0; role < SANDBOX_NROLES; role++) {
        const struct sandbox_rule *r[SANDBOX_MAX_RULES];
        struct sandbox_opts o = {.mode = SECCOMP_KILL, .stats = true};
        int n = sandbox_role_rules(role, &o, r, ARRAY_SIZE(r));
        cr_assert_gt(n, 0);
        for (int i = 0; i < n; i++) {
            cr_assert_geq(r[i]->nr, 0, "%s is not an x86_64 syscall", r[i]->name);
            cr_assert_eq(seccomp_syscall_resolve_name(r[i]->name), r[i]->nr, "%s", r[i]->name);
            cr_assert(r[i]->why && strlen(r[i]->why) > 10, "%s needs a reason", r[i]->name);
            cr_assert_leq(r[i]->nargs, 2);
            /* No rule another one already covers: a redundant line hides a dead one. */
            for (int j = 0; j < i && !sandbox_sanitizer_build(); j++) {
                bool same_args =
                    r[j]->nargs == r[i]->nargs &&
                    !memcmp(r[j]->args, r[i]->args, r[i]->nargs * sizeof(r[i]->args[0]));
                cr_assert_not(r[j]->nr == r[i]->nr &&
                                  (r[j]->nargs == 0 || r[i]->nargs == 0 || same_args),
                              "%s: %s is listed twice", sandbox_role_name(role), r[i]->name);
            }
        }
        cr_assert_eq(sandbox_role_rules(role, &o, r, 3), -ENOSPC);
    }
    cr_assert_eq(sandbox_role_rules(SANDBOX_NROLES, &kill_opts, NULL, 0), -EINVAL);
    cr_assert_str_eq(sandbox_role_name(SANDBOX_NROLES), "?");
    struct sock_fprog p;
    struct errbuf err = {0};
    struct sandbox_opts off = {.mode = SECCOMP_OFF};
    cr_assert_lt(sandbox_build(SANDBOX_MAIN, &off, &p, &err), 0);
}

/* ---- configuration and documentation ---------------------------------------------------- */

Test(sandbox, seccomp_config_key)
{
    struct vm_config c;
    struct errbuf err = {0};
    config_init(&c);
    cr_assert_eq(c.seccomp, SECCOMP_KILL, "kill is the default");
    cr_assert(config_key_known("seccomp"));
    cr_assert_not(config_key_is_flag("seccomp"));
    cr_assert_eq(config_set(&c, "seccomp", "log", &err), 0);
    cr_assert_eq(c.seccomp, SECCOMP_LOG);
    cr_assert_eq(config_set(&c, "seccomp", "off", &err), 0);
    cr_assert_eq(c.seccomp, SECCOMP_OFF);
    cr_assert_eq(config_set(&c, "seccomp", "kill", &err), 0);
    cr_assert_eq(c.seccomp, SECCOMP_KILL);
    cr_assert_lt(config_set(&c, "seccomp", "trap", &err), 0);
    cr_assert_str_eq(err.msg, "seccomp must be kill, log or off, not 'trap'");
    memset(&err, 0, sizeof(err));
    const char *json = "{\"seccomp\": \"log\"}";
    cr_assert_eq(config_parse_json(&c, json, strlen(json), &err), 0, "%s", err.msg);
    cr_assert_eq(c.seccomp, SECCOMP_LOG);
    json = "{\"seccomp\": false}"; /* JSON false reads as "off" */
    cr_assert_eq(config_parse_json(&c, json, strlen(json), &err), 0, "%s", err.msg);
    cr_assert_eq(c.seccomp, SECCOMP_OFF);
    config_free(&c);
}

/* docs/SECURITY.md documents every rule (unit tests run from the repository root). */
Test(sandbox, every_rule_is_documented)
{
    FILE *f = fopen("docs/SECURITY.md", "re");
    if (!f)
        cr_skip_test("docs/SECURITY.md not found from %s", getenv("PWD"));
    static char doc[65536];
    size_t n = fread(doc, 1, sizeof(doc) - 1, f);
    fclose(f);
    doc[n] = '\0';
    const char *sec = strstr(doc, "\n## Seccomp filters");
    cr_assert_not_null(sec, "no \"## Seccomp filters\" section");
    const char *end = strstr(sec + 1, "\n## ");
    size_t len = end ? (size_t)(end - sec) : strlen(sec);
    for (int role = 0; role < SANDBOX_NROLES; role++) {
        char head[64];
        snprintf(head, sizeof(head), "### Role `%s`", sandbox_role_name(role));
        cr_assert(memmem(sec, len, head, strlen(head)), "no \"%s\" heading", head);
        const struct sandbox_rule *r[SANDBOX_MAX_RULES];
        struct sandbox_opts o = {.mode = SECCOMP_KILL, .stats = true};
        int cnt = sandbox_role_rules(role, &o, r, ARRAY_SIZE(r));
        for (int i = 0; i < cnt; i++) {
            char name[64];
            snprintf(name, sizeof(name), "| `%s", r[i]->name);
            cr_assert(memmem(sec, len, name, strlen(name)), "%s (role %s) is not documented",
                      r[i]->name, sandbox_role_name(role));
        }
    }
}

/* The vhost-vsock ioctls are in the vCPU and main filters only of a VM with such a device. */
Test(sandbox, vhost_vsock_rules_only_with_vhost_vsock)
{
    const struct sandbox_opts vv = {.mode = SECCOMP_KILL, .vhost_vsock = true};
    const struct sandbox_opts pt = {.mode = SECCOMP_KILL, .passthrough = true};
    const unsigned long vcpu_ioctls[] = {
        VHOST_SET_FEATURES,   VHOST_SET_MEM_TABLE,     VHOST_SET_VRING_NUM,
        VHOST_SET_VRING_BASE, VHOST_SET_VRING_ADDR,    VHOST_SET_VRING_KICK,
        VHOST_SET_VRING_CALL, VHOST_VSOCK_SET_RUNNING, VHOST_GET_VRING_BASE};
    for (unsigned i = 0; i < ARRAY_SIZE(vcpu_ioctls); i++) {
        cr_assert_eq(verdict(SANDBOX_VCPU, &vv, SCMP_SYS(ioctl), 5, vcpu_ioctls[i], 0), ACT_ALLOW,
                     "0x%lx", vcpu_ioctls[i]);
        cr_assert_eq(verdict(SANDBOX_VCPU, &kill_opts, SCMP_SYS(ioctl), 5, vcpu_ioctls[i], 0),
                     ACT_TRAP, "0x%lx", vcpu_ioctls[i]);
        cr_assert_eq(verdict(SANDBOX_VCPU, &pt, SCMP_SYS(ioctl), 5, vcpu_ioctls[i], 0), ACT_TRAP,
                     "0x%lx", vcpu_ioctls[i]);
        cr_assert_eq(verdict(SANDBOX_API, &vv, SCMP_SYS(ioctl), 5, vcpu_ioctls[i], 0), ACT_TRAP,
                     "0x%lx", vcpu_ioctls[i]);
    }
    cr_assert_eq(verdict(SANDBOX_VCPU, &vv, SCMP_SYS(epoll_ctl), 5, 0, 0), ACT_ALLOW);
    cr_assert_eq(verdict(SANDBOX_VCPU, &kill_opts, SCMP_SYS(epoll_ctl), 5, 0, 0), ACT_TRAP);
    /* Teardown: stop and detach only; the setup calls stay out of the main filter. */
    cr_assert_eq(verdict(SANDBOX_MAIN, &vv, SCMP_SYS(ioctl), 5, VHOST_VSOCK_SET_RUNNING, 0),
                 ACT_ALLOW);
    cr_assert_eq(verdict(SANDBOX_MAIN, &vv, SCMP_SYS(ioctl), 5, VHOST_GET_VRING_BASE, 0),
                 ACT_ALLOW);
    cr_assert_eq(verdict(SANDBOX_MAIN, &kill_opts, SCMP_SYS(ioctl), 5, VHOST_VSOCK_SET_RUNNING, 0),
                 ACT_TRAP);
    cr_assert_eq(verdict(SANDBOX_MAIN, &vv, SCMP_SYS(ioctl), 5, VHOST_SET_MEM_TABLE, 0), ACT_TRAP);
    cr_assert_eq(verdict(SANDBOX_MAIN, &vv, SCMP_SYS(ioctl), 5, VHOST_VSOCK_SET_GUEST_CID, 0),
                 ACT_TRAP);
    /* Nothing of the passthrough set comes with it. */
    cr_assert_eq(verdict(SANDBOX_VCPU, &vv, SCMP_SYS(sendmsg), 5, 0, 0), ACT_TRAP);
    cr_assert_eq(verdict(SANDBOX_VCPU, &vv, SCMP_SYS(ioctl), 5, KVM_IRQFD, 0), ACT_TRAP);
}

/* The passthrough calls are in the vCPU and main filters only of a VM that has such a device. */
Test(sandbox, passthrough_rules_only_with_passthrough)
{
    const struct sandbox_opts pt = {.mode = SECCOMP_KILL, .passthrough = true};
    cr_assert_eq(
        verdict(SANDBOX_VCPU, &kill_opts, SCMP_SYS(ioctl), 5, KVM_SET_USER_MEMORY_REGION, 0),
        ACT_TRAP);
    cr_assert_eq(verdict(SANDBOX_VCPU, &pt, SCMP_SYS(ioctl), 5, KVM_SET_USER_MEMORY_REGION, 0),
                 ACT_ALLOW);
    cr_assert_eq(verdict(SANDBOX_VCPU, &kill_opts, SCMP_SYS(sendmsg), 5, 0, 0), ACT_TRAP);
    cr_assert_eq(verdict(SANDBOX_VCPU, &pt, SCMP_SYS(sendmsg), 5, 0, 0), ACT_ALLOW);
    cr_assert_eq(verdict(SANDBOX_VCPU, &kill_opts, SCMP_SYS(pwrite64), 5, 0, 0), ACT_TRAP);
    cr_assert_eq(verdict(SANDBOX_MAIN, &kill_opts, SCMP_SYS(ioctl), 5, KVM_IRQFD, 0), ACT_TRAP);
    cr_assert_eq(verdict(SANDBOX_MAIN, &pt, SCMP_SYS(ioctl), 5, KVM_IRQFD, 0), ACT_ALLOW);
    /* Other roles gain nothing. */
    cr_assert_eq(verdict(SANDBOX_API, &pt, SCMP_SYS(ioctl), 5, KVM_IRQFD, 0), ACT_TRAP);
    /* The iommufd teardown (devices/vfio/vfio_iommufd.c), with the ABI header's numbers. */
    const unsigned long iommufd_teardown[] = {VFIO_DEVICE_DETACH_IOMMUFD_PT, IOMMU_IOAS_UNMAP,
                                              IOMMU_DESTROY};
    for (unsigned i = 0; i < 3; i++) {
        cr_assert_eq(verdict(SANDBOX_MAIN, &pt, SCMP_SYS(ioctl), 5, iommufd_teardown[i], 0),
                     ACT_ALLOW, "0x%lx", iommufd_teardown[i]);
        cr_assert_eq(verdict(SANDBOX_MAIN, &kill_opts, SCMP_SYS(ioctl), 5, iommufd_teardown[i], 0),
                     ACT_TRAP, "0x%lx", iommufd_teardown[i]);
        cr_assert_eq(verdict(SANDBOX_VCPU, &pt, SCMP_SYS(ioctl), 5, iommufd_teardown[i], 0),
                     ACT_TRAP, "0x%lx", iommufd_teardown[i]);
    }
}
