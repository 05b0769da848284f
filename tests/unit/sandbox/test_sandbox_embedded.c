/*
 * The seccomp programs wisp embeds (compiled at build time by
 * sandbox/gen/sandbox_gen.c): each must be exactly what sandbox_build() makes of
 * the rule table for the same pid, and sandbox_check_prog() must refuse a
 * damaged program (security.md B2).
 */
#include "sandbox/sandbox.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool uses_self_pid(enum sandbox_role role, const struct sandbox_opts *o)
{
    const struct sandbox_rule *r[SANDBOX_MAX_RULES];
    int n = sandbox_role_rules(role, o, r, SANDBOX_MAX_RULES);
    cr_assert_gt(n, 0);
    for (int i = 0; i < n; i++)
        for (unsigned a = 0; a < r[i]->nargs; a++)
            if (r[i]->args[a].datum_a == SANDBOX_SELF_PID)
                return true;
    return false;
}

static unsigned count_k(const struct sock_fprog *p, uint32_t k)
{
    unsigned n = 0;
    for (unsigned i = 0; i < p->len; i++)
        n += p->filter[i].code == (BPF_JMP | BPF_JEQ | BPF_K) && p->filter[i].k == k;
    return n;
}

Test(sandbox_embedded, equals_a_fresh_build_of_the_table)
{
    pid_t pid = getpid();
    for (int m = 0; m < 2; m++)
        for (int st = 0; st < 8; st++)
            for (int r = 0; r < SANDBOX_NROLES; r++) {
                /* st: bit 0 --stats, bit 1 passthrough, bit 2 vhost-vsock */
                struct sandbox_opts o = {.mode = m ? SECCOMP_LOG : SECCOMP_KILL,
                                         .stats = (st & 1) != 0,
                                         .passthrough = (st & 2) != 0,
                                         .vhost_vsock = (st & 4) != 0,
                                         .self_pid = pid};
                struct sock_fprog built, embedded;
                struct errbuf err = {0};
                cr_assert_eq(sandbox_build((enum sandbox_role)r, &o, &built, &err), 0, "%s",
                             err.msg);
                cr_assert_eq(sandbox_load_embedded((enum sandbox_role)r, &o, pid, &embedded, &err),
                             0, "%s", err.msg);
                cr_assert_eq(embedded.len, built.len, "role %d mode %d stats %d", r, m, st);
                cr_assert_eq(
                    memcmp(embedded.filter, built.filter, built.len * sizeof(*built.filter)), 0,
                    "role %d mode %d stats %d: the embedded program is stale", r, m, st);
                free(built.filter);
                free(embedded.filter);
            }
}

Test(sandbox_embedded, pid_is_patched_in)
{
    pid_t pid = getpid();
    for (int r = 0; r < SANDBOX_NROLES; r++) {
        struct sandbox_opts o = {.mode = SECCOMP_KILL};
        const struct sandbox_embedded *e = &sandbox_embedded_progs[0][0][0][0][r];
        struct sock_fprog raw = {.len = e->len,
                                 .filter = (struct sock_filter *)(uintptr_t)e->insns};
        struct sock_fprog p;
        struct errbuf err = {0};
        cr_assert_eq(sandbox_load_embedded((enum sandbox_role)r, &o, pid, &p, &err), 0, "%s",
                     err.msg);
        unsigned slots = count_k(&raw, SANDBOX_GEN_PID);
        cr_assert_eq(slots > 0, uses_self_pid((enum sandbox_role)r, &o), "role %d", r);
        cr_assert_eq(count_k(&p, SANDBOX_GEN_PID), 0, "role %d: placeholder left", r);
        cr_assert_geq(count_k(&p, (uint32_t)pid), slots, "role %d", r);
        free(p.filter);
    }
}

Test(sandbox_embedded, every_embedded_program_passes_the_check)
{
    for (int m = 0; m < 2; m++)
        for (int st = 0; st < 8; st++)
            for (int r = 0; r < SANDBOX_NROLES; r++) {
                const struct sandbox_embedded *e =
                    &sandbox_embedded_progs[m][st & 1][(st >> 1) & 1][st >> 2][r];
                struct sock_fprog p = {.len = e->len,
                                       .filter = (struct sock_filter *)(uintptr_t)e->insns};
                const char *why;
                cr_assert_eq(sandbox_check_prog(&p, &why), 0, "%d/%d/%d: %s", m, st, r, why);
            }
}

/* A copy of the main role's program to damage. */
static struct sock_fprog copy_main(void)
{
    const struct sandbox_embedded *e = &sandbox_embedded_progs[0][0][0][0][SANDBOX_MAIN];
    struct sock_fprog p = {.len = e->len, .filter = malloc(e->len * sizeof(struct sock_filter))};
    cr_assert_not_null(p.filter);
    memcpy(p.filter, e->insns, e->len * sizeof(struct sock_filter));
    return p;
}

/* Index of the first instruction of class `cls` (a conditional jump for BPF_JMP). */
static unsigned first_of(const struct sock_fprog *p, unsigned cls)
{
    for (unsigned i = 0; i < p->len; i++)
        if (BPF_CLASS(p->filter[i].code) == cls &&
            (cls != BPF_JMP || BPF_OP(p->filter[i].code) != BPF_JA))
            return i;
    cr_assert_fail("no instruction of class %#x", cls);
    return 0;
}

static void assert_refused(const struct sock_fprog *p, const char *what)
{
    const char *why = NULL;
    cr_assert_eq(sandbox_check_prog(p, &why), -EINVAL, "%s was accepted", what);
    cr_assert_not_null(why);
}

Test(sandbox_embedded, damaged_programs_are_refused)
{
    struct sock_fprog p = copy_main();
    unsigned j = first_of(&p, BPF_JMP), l = first_of(&p, BPF_LD);

    p.filter[j].jt = (uint8_t)(p.len - j - 1); /* one past the end */
    assert_refused(&p, "a jump past the end");
    free(p.filter);

    p = copy_main();
    p.filter[l].k = sizeof(struct seccomp_data);
    assert_refused(&p, "a load beyond seccomp_data");
    p.filter[l].k = 2;
    assert_refused(&p, "a misaligned load");
    p.filter[l].k = 0;
    p.filter[l].code = BPF_LD | BPF_H | BPF_ABS;
    assert_refused(&p, "a 16-bit load");
    free(p.filter);

    p = copy_main();
    p.filter[p.len - 1] = p.filter[l];
    assert_refused(&p, "a program that does not end with a return");
    free(p.filter);

    p = copy_main();
    p.filter[j].code = BPF_JMP | BPF_JEQ | BPF_X;
    assert_refused(&p, "a jump on the X register");
    p.filter[j].code = BPF_LDX | BPF_W | BPF_MEM;
    assert_refused(&p, "an LDX instruction");
    p.filter[j].code = BPF_ALU | BPF_ADD | BPF_K;
    assert_refused(&p, "an ADD");
    p.filter[j].code = BPF_RET | BPF_A;
    assert_refused(&p, "a return of the accumulator");
    p.filter[j] = (struct sock_filter){BPF_JMP | BPF_JA, 0, 0, p.len};
    assert_refused(&p, "an unconditional jump out of the program");
    free(p.filter);

    struct sock_fprog empty = {.len = 0, .filter = NULL};
    assert_refused(&empty, "an empty program");
}

Test(sandbox_embedded, no_program_for_mode_off)
{
    struct sandbox_opts o = {.mode = SECCOMP_OFF};
    struct sock_fprog p;
    struct errbuf err = {0};
    cr_assert_eq(sandbox_load_embedded(SANDBOX_MAIN, &o, getpid(), &p, &err), -EINVAL);
    cr_assert_eq(err.exit_code, WISP_EXIT_FAILURE);
}
