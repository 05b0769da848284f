/*
 * Compiling a role's allow-list (sandbox_rules.c) to a BPF program with
 * libseccomp.  This runs at build time, not in wisp: sandbox/gen/sandbox_gen.c
 * calls sandbox_build() for every role, mode and option set and embeds the
 * programs in wisp (security.md B2), and the tests call it to compare the
 * embedded programs with the table.  wisp itself does not link libseccomp.
 */
#include "sandbox/sandbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- target architecture ---------------------------------------------------------------- */

#ifdef SANDBOX_TARGET_AARCH64
/*
 * The aarch64 build's generator runs on the (x86) build host: the rules
 * carry host syscall numbers, which libseccomp translates by name for a
 * filter whose only architecture is aarch64.  A few calls do not exist there
 * at all; glibc issues their successors instead, which the filter allows in
 * their place (none of these rules compares arguments, whose positions
 * differ).
 */
static const struct {
    const char *name, *instead;
} absent[] = {
    {"epoll_wait", "epoll_pwait"},
    {"poll", "ppoll"},
    {"unlink", "unlinkat"},
};

/* The host number to add for rule `r`, or -1 to leave it out; -EINVAL if unknown. */
static int target_nr(const struct sandbox_rule *r)
{
    if (seccomp_syscall_resolve_name_arch(SCMP_ARCH_AARCH64, r->name) >= 0)
        return r->nr;
    for (size_t i = 0; i < ARRAY_SIZE(absent); i++)
        if (strcmp(absent[i].name, r->name) == 0)
            return r->nargs ? -EINVAL : seccomp_syscall_resolve_name(absent[i].instead);
    return -EINVAL;
}

static int target_arch(scmp_filter_ctx ctx)
{
    int ret = seccomp_arch_add(ctx, SCMP_ARCH_AARCH64);
    return ret < 0 ? ret : seccomp_arch_remove(ctx, SCMP_ARCH_NATIVE);
}
#else
static int target_nr(const struct sandbox_rule *r)
{
    return r->nr;
}

static int target_arch(scmp_filter_ctx ctx)
{
    (void)ctx;
    return 0;
}
#endif

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
    ret = target_arch(ctx);
    if (ret < 0) {
        err_set(err, WISP_EXIT_HOST, -ret, "seccomp: cannot select the target architecture: %s",
                strerror(-ret));
        goto out;
    }
    pid_t self = opts->self_pid ? opts->self_pid : getpid();
    for (int i = 0; i < n; i++) {
        const struct sandbox_rule *r = rules[i];
        int nr = target_nr(r);
        if (nr < 0) {
            ret = err_set(err, WISP_EXIT_FAILURE, EINVAL,
                          "seccomp: %s (%s filter) does not exist on the target", r->name, rname);
            goto out;
        }
        struct scmp_arg_cmp args[2];
        for (unsigned a = 0; a < r->nargs && a < 2; a++) {
            args[a] = r->args[a];
            if (args[a].datum_a == SANDBOX_SELF_PID)
                args[a].datum_a = (scmp_datum_t)self;
        }
        uint32_t action = r->err ? SCMP_ACT_ERRNO((uint32_t)r->err) : SCMP_ACT_ALLOW;
        ret = seccomp_rule_add_exact_array(ctx, action, nr, r->nargs, args);
        /* Earlier rules are hotter: ask libseccomp to test them first. */
        bool first = true;
        for (int j = 0; j < i; j++)
            first &= target_nr(rules[j]) != nr;
        if (!ret && first)
            ret = seccomp_syscall_priority(ctx, nr, (uint8_t)(255 - MIN(i, 255)));
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
