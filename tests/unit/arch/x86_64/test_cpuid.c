/*
 * CPUID policy and per-vCPU tables: parsing of feature masks, x86_cpuid_apply()
 * on hand-made tables (Intel- and AMD-like), then on KVM's real supported
 * table, installed on real vCPUs with KVM_SET_CPUID2.  No guest code runs.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/x86_64/cpuid.h"

#define SIG KVM_CPUID_FLAG_SIGNIFCANT_INDEX

static struct errbuf err;

static void reset_err(void)
{
    memset(&err, 0, sizeof(err));
}

TestSuite(x86_cpu_policy, .init = reset_err);
TestSuite(x86_cpuid, .init = reset_err);
TestSuite(x86_cpuid_kvm, .init = reset_err);

/* ---- policy parsing ---- */

static struct x86_cpu_policy parse_ok(const char *spec)
{
    struct x86_cpu_policy p;
    memset(&p, 0xff, sizeof(p));
    int ret = x86_cpu_policy_parse(spec, &p, &err);
    cr_assert_eq(ret, 0, "'%s': %s", spec ? spec : "(null)", err.msg);
    return p;
}

static void parse_fails(const char *spec, const char *needle)
{
    struct x86_cpu_policy p, before;
    memset(&p, 0x5a, sizeof(p));
    before = p;
    reset_err();
    int ret = x86_cpu_policy_parse(spec, &p, &err);
    cr_assert_eq(ret, -EINVAL, "'%s' should be refused", spec);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    cr_assert(strstr(err.msg, needle), "'%s': message '%s' lacks '%s'", spec, err.msg, needle);
    cr_assert(strncmp(err.msg, "cpu-features: ", 14) == 0, "message: %s", err.msg);
    cr_assert_eq(memcmp(&p, &before, sizeof(p)), 0, "policy changed on failure");
}

static bool policy_empty(const struct x86_cpu_policy *p)
{
    for (int i = 0; i < X86_CPU_POLICY_WORDS; i++)
        if (p->hidden[i])
            return false;
    return true;
}

Test(x86_cpu_policy, null_and_empty_hide_nothing)
{
    struct x86_cpu_policy p = parse_ok(NULL);
    cr_assert(policy_empty(&p));
    p = parse_ok("");
    cr_assert(policy_empty(&p));
}

Test(x86_cpu_policy, valid_lists)
{
    struct x86_cpu_policy p = parse_ok("-avx2,-sse3");
    cr_assert(x86_cpu_policy_hides(&p, "avx2"));
    cr_assert(x86_cpu_policy_hides(&p, "sse3"));
    cr_assert_not(x86_cpu_policy_hides(&p, "avx"));
    cr_assert_not(x86_cpu_policy_hides(&p, "popcnt"));
    cr_assert_not(x86_cpu_policy_hides(&p, "nosuch"));

    /* Blanks around items, case, aliases from /proc/cpuinfo. */
    p = parse_ok(" -POPCNT ,\t-pni, -sha_ni,-lzcnt ");
    cr_assert(x86_cpu_policy_hides(&p, "popcnt"));
    cr_assert(x86_cpu_policy_hides(&p, "sse3"));
    cr_assert(x86_cpu_policy_hides(&p, "pni"));
    cr_assert(x86_cpu_policy_hides(&p, "sha"));
    cr_assert(x86_cpu_policy_hides(&p, "abm"));

    /* Repeats are harmless; a new parse replaces the old policy. */
    p = parse_ok("-aes,-aes");
    cr_assert(x86_cpu_policy_hides(&p, "aes"));
    cr_assert_not(x86_cpu_policy_hides(&p, "popcnt"));
}

Test(x86_cpu_policy, refuses_adding)
{
    parse_fails("+avx", "cpu-features: adding features is not supported (only -name)");
    parse_fails("-sse3,+avx", "adding features is not supported");
}

Test(x86_cpu_policy, refuses_unknown_and_bare_names)
{
    parse_fails("-nosuchfeature", "unknown feature 'nosuchfeature'");
    parse_fails("-avx2,-frobnicate", "'frobnicate'");
    parse_fails("avx", "'avx' should be '-avx'");
    parse_fails("-", "without a feature name");
    /* A very long name is quoted back truncated, not overflowing anything. */
    char longname[600];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[0] = '-';
    longname[sizeof(longname) - 1] = '\0';
    parse_fails(longname, "unknown feature 'xxxx");
}

Test(x86_cpu_policy, refuses_empty_items)
{
    parse_fails("-xsave,,-avx", "empty item");
    parse_fails("-xsave,", "empty item");
    parse_fails(",-xsave", "empty item");
    parse_fails(" ", "empty item");
    parse_fails(",", "empty item");
}

Test(x86_cpu_policy, refuses_fixed_features)
{
    const char *fixed[] = {"-lm",   "-nx",  "-pdpe1gb", "-rdtscp", "-syscall",
                           "-sse2", "-fpu", "-pae",     "-apic",   "-hypervisor"};
    for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
        parse_fails(fixed[i], "cannot be hidden");
    parse_fails("-lm", "'lm' cannot be hidden: ");
}

Test(x86_cpu_policy, every_feature_is_either_hideable_or_explained)
{
    unsigned n = 0, fixed = 0;
    for (unsigned i = 0; x86_cpu_feature_name(i); i++, n++) {
        char spec[64];
        snprintf(spec, sizeof(spec), "-%s", x86_cpu_feature_name(i));
        if (x86_cpu_feature_fixed_reason(i)) {
            fixed++;
            parse_fails(spec, "cannot be hidden");
        } else {
            reset_err();
            struct x86_cpu_policy p = parse_ok(spec);
            cr_assert(x86_cpu_policy_hides(&p, x86_cpu_feature_name(i)));
        }
    }
    cr_assert_gt(n, 100);
    cr_assert_gt(fixed, 5);
    cr_assert_null(x86_cpu_feature_name(n));
    cr_assert_null(x86_cpu_feature_fixed_reason(n));
}

Test(x86_cpu_policy, xsave_takes_its_dependents)
{
    struct x86_cpu_policy p = parse_ok("-xsave");
    const char *gone[] = {"xsave",      "osxsave",     "avx",         "avx2",        "fma",
                          "f16c",       "avx512f",     "avx512dq",    "avx512bw",    "avx512vl",
                          "avx512cd",   "avx512_vnni", "avx512_fp16", "avx512_bf16", "vaes",
                          "vpclmulqdq", "avx_vnni",    "xsaveopt",    "xsavec",      "xgetbv1",
                          "xsaves",     "mpx",         "pku",         "amx_tile",    "amx_int8",
                          "xop",        "fma4"};
    for (size_t i = 0; i < ARRAY_SIZE(gone); i++)
        cr_assert(x86_cpu_policy_hides(&p, gone[i]), "-xsave should hide %s", gone[i]);
    const char *kept[] = {"sse4_2", "aes", "pclmulqdq", "gfni", "sha", "bmi1", "popcnt", "x2apic"};
    for (size_t i = 0; i < ARRAY_SIZE(kept); i++)
        cr_assert_not(x86_cpu_policy_hides(&p, kept[i]), "-xsave should keep %s", kept[i]);
}

Test(x86_cpu_policy, partial_dependents)
{
    struct x86_cpu_policy p = parse_ok("-avx512f");
    cr_assert(x86_cpu_policy_hides(&p, "avx512vl"));
    cr_assert(x86_cpu_policy_hides(&p, "avx512_vpopcntdq"));
    cr_assert_not(x86_cpu_policy_hides(&p, "avx2"));
    cr_assert_not(x86_cpu_policy_hides(&p, "xsave"));

    p = parse_ok("-avx2");
    cr_assert(x86_cpu_policy_hides(&p, "avx512f"));
    cr_assert(x86_cpu_policy_hides(&p, "avx_vnni"));
    cr_assert_not(x86_cpu_policy_hides(&p, "avx"));
    cr_assert_not(x86_cpu_policy_hides(&p, "fma"));
}

/* ---- apply on synthetic tables ---- */

struct fake {
    struct kvm_cpuid2 hdr;
    struct kvm_cpuid_entry2 e[48];
};

static struct kvm_cpuid_entry2 *add(struct fake *f, uint32_t leaf, uint32_t sub, uint32_t flags,
                                    uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
    cr_assert_lt(f->hdr.nent, ARRAY_SIZE(f->e));
    struct kvm_cpuid_entry2 *e = &f->e[f->hdr.nent++];
    memset(e, 0, sizeof(*e));
    e->function = leaf;
    e->index = sub;
    e->flags = flags;
    e->eax = a;
    e->ebx = b;
    e->ecx = c;
    e->edx = d;
    return e;
}

/* Vendor strings in leaf 0 register order EBX, EDX, ECX. */
static void add_vendor(struct fake *f, const char *v, uint32_t max)
{
    uint32_t r[3];
    memcpy(r, v, 12);
    add(f, 0, 0, 0, max, r[0], r[2], r[1]);
}

/*
 * An Intel-like table with every feature bit set and a topology that is
 * clearly not ours (host-like APIC id, 16 logical processors, shared caches).
 */
static void intel_table(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    add_vendor(f, "GenuineIntel", 0x1f);
    add(f, 1, 0, 0, 0x000806f8, 0x2a100800, 0xfffffffe & ~(1U << 31), 0xffffffff);
    /* L1d, L1i, L2, L3 and the null terminator. */
    add(f, 4, 0, SIG, 0x7c004121, 0x02c0003f, 0x3f, 0);
    add(f, 4, 1, SIG, 0x7c004122, 0x01c0003f, 0x3f, 0);
    add(f, 4, 2, SIG, 0x7c004143, 0x03c0003f, 0x7ff, 0);
    add(f, 4, 3, SIG, 0x7c07c163, 0x04c0003f, 0x3fff, 0);
    add(f, 4, 4, SIG, 0, 0, 0, 0);
    add(f, 6, 0, 0, 0x4, 0, 0, 0);
    add(f, 7, 0, SIG, 1, 0xffffffff, 0xffffffff, 0xffffffff);
    add(f, 7, 1, SIG, 0x30, 0, 0, 0);
    add(f, 0xb, 0, SIG, 1, 2, 0x100, 7);
    add(f, 0xb, 1, SIG, 5, 16, 0x201, 7);
    add(f, 0xb, 2, SIG, 0, 0, 2, 7);
    /* x87|SSE|AVX|opmask|ZMM_Hi256|Hi16_ZMM|PKRU; sizes as on real hardware. */
    add(f, 0xd, 0, SIG, 0x2e7, 0xa88, 0xa88, 0);
    add(f, 0xd, 1, SIG, 0xf, 0, 0x100, 0);
    add(f, 0xd, 2, SIG, 0x100, 0x240, 0, 0);
    add(f, 0xd, 5, SIG, 0x40, 0x440, 0, 0);
    add(f, 0xd, 6, SIG, 0x200, 0x480, 0, 0);
    add(f, 0xd, 7, SIG, 0x400, 0x680, 0, 0);
    add(f, 0xd, 8, SIG, 0x80, 0, 1, 0); /* PT: supervisor (XSS) */
    add(f, 0xd, 9, SIG, 0x8, 0xa80, 0, 0);
    add(f, 0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d);
    add(f, 0x80000000, 0, 0, 0x80000008, 0, 0, 0);
    add(f, 0x80000001, 0, 0, 0, 0, 0x121, 0x2c100800);
    add(f, 0x80000008, 0, 0, 0x3027, 0, 0, 0);
}

static void amd_table(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    add_vendor(f, "AuthenticAMD", 0x10);
    add(f, 1, 0, 0, 0x00a00f11, 0x04100800, 0x7ef8320b, 0x178bfbff);
    add(f, 7, 0, SIG, 0, 0x219c97a9, 0x0040068c, 0x10);
    add(f, 0x80000000, 0, 0, 0x80000021, 0, 0, 0);
    add(f, 0x80000001, 0, 0, 0x00a00f11, 0, 0x75c237ff, 0x2fd3fbff);
    add(f, 0x80000008, 0, 0, 0x3030, 0x7, 0x700f, 0);
    add(f, 0x8000001d, 0, SIG, 0x4121, 0x01c0003f, 0x3f, 0);
    add(f, 0x8000001d, 1, SIG, 0x4163, 0x03c0003f, 0x7ff, 0x2);
    add(f, 0x8000001d, 2, SIG, 0x3c163, 0x03c0003f, 0x7fff, 0x1);
    add(f, 0x8000001d, 3, SIG, 0, 0, 0, 0);
    add(f, 0x8000001e, 0, 0, 0x1b, 0x10d, 0x1, 0);
}

static struct kvm_cpuid_entry2 *get(struct fake *f, uint32_t leaf, uint32_t sub)
{
    struct kvm_cpuid_entry2 *e = x86_cpuid_find(&f->hdr, leaf, sub);
    cr_assert_not_null(e, "leaf 0x%x.%u missing", leaf, sub);
    return e;
}

static void apply_ok(struct fake *f, unsigned index, unsigned n, const struct x86_cpu_policy *p)
{
    cr_assert_eq(x86_cpuid_apply(&f->hdr, index, n, p), 0);
}

Test(x86_cpuid, find_matches_like_kvm)
{
    struct fake f;
    intel_table(&f);
    cr_assert_eq(get(&f, 4, 2)->index, 2);
    cr_assert_eq(get(&f, 0xd, 9)->eax, 0x8);
    cr_assert_null(x86_cpuid_find(&f.hdr, 0xd, 3));
    /* A leaf without a significant index answers every subleaf. */
    cr_assert_eq(get(&f, 1, 5)->function, 1);
    cr_assert_null(x86_cpuid_find(&f.hdr, 0x12, 0));
    cr_assert_null(x86_cpuid_find(NULL, 1, 0));
}

Test(x86_cpuid, dup_copies_everything)
{
    struct fake f;
    intel_table(&f);
    struct kvm_cpuid2 *d = x86_cpuid_dup(&f.hdr);
    cr_assert_not_null(d);
    cr_assert_eq(d->nent, f.hdr.nent);
    cr_assert_eq(memcmp(d->entries, f.e, f.hdr.nent * sizeof(f.e[0])), 0);
    d->entries[0].eax = 0;
    cr_assert_eq(f.e[0].eax, 0x1f, "the copy is independent");
    free(d);

    f.hdr.nent = X86_CPUID_MAX_ENTRIES + 1;
    cr_assert_null(x86_cpuid_dup(&f.hdr));
    cr_assert_null(x86_cpuid_dup(NULL));
}

Test(x86_cpuid, rejects_bad_arguments)
{
    struct fake f;
    intel_table(&f);
    cr_assert_eq(x86_cpuid_apply(&f.hdr, 0, 0, NULL), -EINVAL);
    cr_assert_eq(x86_cpuid_apply(&f.hdr, 2, 2, NULL), -EINVAL);
    cr_assert_eq(x86_cpuid_apply(&f.hdr, 0, X86_CPUID_MAX_VCPUS + 1, NULL), -EINVAL);
    cr_assert_eq(x86_cpuid_apply(NULL, 0, 1, NULL), -EINVAL);
    cr_assert_eq(x86_cpuid_apply(&f.hdr, X86_CPUID_MAX_VCPUS - 1, X86_CPUID_MAX_VCPUS, NULL), 0);
}

Test(x86_cpuid, leaf1_identity_and_flags)
{
    struct fake f;
    intel_table(&f);
    apply_ok(&f, 3, 4, NULL);
    struct kvm_cpuid_entry2 *e = get(&f, 1, 0);
    cr_assert(e->ecx & (1U << 31), "hypervisor bit");
    cr_assert_not(e->ecx & (1U << 27), "OSXSAVE starts clear");
    cr_assert_not(e->ecx & (1U << 5), "no nested VMX");
    cr_assert(e->ecx & (1U << 26), "XSAVE itself stays");
    cr_assert_eq(e->ebx >> 24, 3, "APIC id");
    cr_assert_eq((e->ebx >> 16) & 0xff, 4, "logical processor count");
    cr_assert_eq(e->ebx & 0xffff, 0x0800, "CLFLUSH size kept");
    cr_assert(e->edx & (1U << 28), "HTT with 4 vCPUs");
    cr_assert_eq(e->eax, 0x000806f8, "signature untouched");
    cr_assert_not(get(&f, 7, 0)->ecx & (1U << 4), "OSPKE starts clear");

    intel_table(&f);
    apply_ok(&f, 0, 1, NULL);
    e = get(&f, 1, 0);
    cr_assert_not(e->edx & (1U << 28), "no HTT with one vCPU");
    cr_assert_eq(e->ebx >> 24, 0);
    cr_assert_eq((e->ebx >> 16) & 0xff, 1);
}

Test(x86_cpuid, apic_ids_differ_per_vcpu)
{
    for (unsigned i = 0; i < 5; i++) {
        struct fake f;
        intel_table(&f);
        apply_ok(&f, i, 5, NULL);
        cr_assert_eq(get(&f, 1, 0)->ebx >> 24, i);
        for (uint32_t sub = 0; sub < 3; sub++)
            cr_assert_eq(get(&f, 0xb, sub)->edx, i, "leaf 0xB.%u EDX", sub);
    }
}

Test(x86_cpuid, extended_topology)
{
    struct fake f;
    intel_table(&f);
    apply_ok(&f, 2, 6, NULL);
    struct kvm_cpuid_entry2 *smt = get(&f, 0xb, 0), *core = get(&f, 0xb, 1), *inv = get(&f, 0xb, 2);
    cr_assert_eq(smt->eax, 0);
    cr_assert_eq(smt->ebx, 1);
    cr_assert_eq(smt->ecx, 0x100);
    cr_assert_eq(core->eax, 3, "6 vCPUs need 3 id bits");
    cr_assert_eq(core->ebx, 6);
    cr_assert_eq(core->ecx, 0x201);
    cr_assert_eq(inv->eax, 0);
    cr_assert_eq(inv->ebx, 0);
    cr_assert_eq(inv->ecx, 2);

    const unsigned n[] = {1, 2, 3, 4, 5, 8, 9, 255};
    const unsigned bits[] = {0, 1, 2, 2, 3, 3, 4, 8};
    for (size_t i = 0; i < ARRAY_SIZE(n); i++) {
        intel_table(&f);
        apply_ok(&f, 0, n[i], NULL);
        cr_assert_eq(get(&f, 0xb, 1)->eax, bits[i], "%u vCPUs", n[i]);
        cr_assert_eq(get(&f, 0xb, 1)->ebx, n[i]);
    }
}

Test(x86_cpuid, cache_leaf)
{
    struct fake f, orig;
    intel_table(&f);
    orig = f;
    apply_ok(&f, 1, 4, NULL);
    for (uint32_t sub = 0; sub < 4; sub++) {
        uint32_t eax = get(&f, 4, sub)->eax;
        unsigned level = (eax >> 5) & 7;
        cr_assert_eq(eax >> 26, 3, "cores per package - 1");
        cr_assert_eq((eax >> 14) & 0xfff, level >= 3 ? 3U : 0U, "sharing of L%u", level);
        cr_assert_eq(eax & 0x3fff, get(&orig, 4, sub)->eax & 0x3fff, "type/level kept");
    }
    cr_assert_eq(get(&f, 4, 3)->ebx, 0x04c0003f, "geometry kept");
    cr_assert_eq(get(&f, 4, 4)->eax, 0, "terminator untouched");

    /* The 6-bit core field saturates; leaf 0xB carries the real count. */
    intel_table(&f);
    apply_ok(&f, 0, 200, NULL);
    cr_assert_eq(get(&f, 4, 0)->eax >> 26, 63);
    cr_assert_eq((get(&f, 4, 3)->eax >> 14) & 0xfff, 199);
}

Test(x86_cpuid, other_leaves_untouched)
{
    struct fake f, orig;
    intel_table(&f);
    orig = f;
    apply_ok(&f, 0, 2, NULL);
    const uint32_t same[] = {0, 6, 0xd, 0x40000000, 0x80000000, 0x80000008};
    for (uint32_t i = 0; i < f.hdr.nent; i++) {
        for (size_t j = 0; j < ARRAY_SIZE(same); j++)
            if (f.e[i].function == same[j])
                cr_assert_eq(memcmp(&f.e[i], &orig.e[i], sizeof(f.e[i])), 0, "leaf 0x%x.%u changed",
                             f.e[i].function, f.e[i].index);
    }
    cr_assert_eq(get(&f, 7, 0)->ebx, 0xffffffff);
    cr_assert_eq(get(&f, 7, 0)->edx, 0xffffffff);
    cr_assert_eq(get(&f, 0x80000001, 0)->edx, 0x2c100800);
}

/* Registers that differ between two tables of the same shape, as (entry, reg, xor) triples. */
static unsigned diff_bits(const struct fake *a, const struct fake *b, uint32_t leaf, uint32_t sub,
                          int reg)
{
    cr_assert_eq(a->hdr.nent, b->hdr.nent);
    for (uint32_t i = 0; i < a->hdr.nent; i++) {
        if (a->e[i].function != leaf || a->e[i].index != sub)
            continue;
        const uint32_t ra[4] = {a->e[i].eax, a->e[i].ebx, a->e[i].ecx, a->e[i].edx};
        const uint32_t rb[4] = {b->e[i].eax, b->e[i].ebx, b->e[i].ecx, b->e[i].edx};
        return ra[reg] ^ rb[reg];
    }
    cr_assert_fail("leaf 0x%x.%u missing", leaf, sub);
    return 0;
}

static unsigned count_diffs(const struct fake *a, const struct fake *b)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < a->hdr.nent; i++)
        n += memcmp(&a->e[i], &b->e[i], sizeof(a->e[i])) != 0;
    return n;
}

Test(x86_cpuid, masked_bits_cleared_others_untouched)
{
    struct fake plain, masked;
    struct x86_cpu_policy p = parse_ok("-popcnt,-rdpid,-lahf_lm,-xsaveopt");
    intel_table(&plain);
    intel_table(&masked);
    apply_ok(&plain, 1, 2, NULL);
    apply_ok(&masked, 1, 2, &p);

    cr_assert_eq(diff_bits(&plain, &masked, 1, 0, 2), 1U << 23);
    cr_assert_not(get(&masked, 1, 0)->ecx & (1U << 23));
    cr_assert_eq(diff_bits(&plain, &masked, 7, 0, 2), 1U << 22);
    cr_assert_eq(diff_bits(&plain, &masked, 0x80000001, 0, 2), 1U << 0);
    cr_assert_eq(diff_bits(&plain, &masked, 0xd, 1, 0), 1U << 0);
    cr_assert_eq(count_diffs(&plain, &masked), 4, "only the four entries change");
}

Test(x86_cpuid, ht_hidden_wins_over_topology)
{
    struct fake f;
    struct x86_cpu_policy p = parse_ok("-ht");
    intel_table(&f);
    apply_ok(&f, 0, 4, &p);
    cr_assert_not(get(&f, 1, 0)->edx & (1U << 28));
}

Test(x86_cpuid, hide_xsave_clears_dependents_and_leaf_d)
{
    struct fake plain, f;
    struct x86_cpu_policy p = parse_ok("-xsave");
    intel_table(&plain);
    intel_table(&f);
    apply_ok(&plain, 0, 1, NULL);
    apply_ok(&f, 0, 1, &p);

    /* xsave, osxsave (already clear), avx, fma, f16c. */
    cr_assert_eq(diff_bits(&plain, &f, 1, 0, 2), (1U << 26) | (1U << 28) | (1U << 12) | (1U << 29));
    uint32_t ebx7 = get(&f, 7, 0)->ebx;
    cr_assert_not(ebx7 & (1U << 5), "avx2");
    cr_assert_not(ebx7 & (1U << 16), "avx512f");
    cr_assert_not(ebx7 & (1U << 31), "avx512vl");
    cr_assert_not(ebx7 & (1U << 14), "mpx");
    cr_assert(ebx7 & (1U << 3), "bmi1 stays");
    cr_assert(ebx7 & (1U << 29), "sha stays");
    cr_assert_not(get(&f, 7, 0)->ecx & (1U << 3), "pku");
    cr_assert(get(&f, 7, 0)->ecx & (1U << 8), "gfni stays");
    cr_assert_not(get(&f, 7, 1)->eax & (1U << 4), "avx_vnni");
    cr_assert(get(&f, 1, 0)->ecx & (1U << 20), "sse4_2 stays");
    cr_assert(get(&f, 1, 0)->ecx & (1U << 25), "aes stays");

    for (uint32_t i = 0; i < f.hdr.nent; i++) {
        const struct kvm_cpuid_entry2 *e = &f.e[i];
        if (e->function == 0xd)
            cr_assert(!e->eax && !e->ebx && !e->ecx && !e->edx, "0xD.%u not cleared", e->index);
    }
}

Test(x86_cpuid, hide_avx512_trims_xsave_state)
{
    struct fake f;
    struct x86_cpu_policy p = parse_ok("-avx512f");
    intel_table(&f);
    apply_ok(&f, 0, 1, &p);
    struct kvm_cpuid_entry2 *d0 = get(&f, 0xd, 0);
    cr_assert_eq(d0->eax, 0x207, "x87|SSE|AVX|PKRU remain");
    cr_assert_eq(d0->ecx, 0xa88, "PKRU at 0xa80 + 8 is still the end");
    cr_assert_eq(get(&f, 0xd, 5)->eax, 0);
    cr_assert_eq(get(&f, 0xd, 7)->ebx, 0);
    cr_assert_eq(get(&f, 0xd, 2)->eax, 0x100, "AVX component kept");
    cr_assert(get(&f, 7, 0)->ebx & (1U << 5), "avx2 kept");

    /* Hiding PKRU's owner too shrinks the area to AVX's end. */
    intel_table(&f);
    p = parse_ok("-avx512f,-pku");
    apply_ok(&f, 0, 1, &p);
    cr_assert_eq(get(&f, 0xd, 0)->eax, 0x7);
    cr_assert_eq(get(&f, 0xd, 0)->ecx, 0x340);

    /* xsaves takes the supervisor components with it. */
    intel_table(&f);
    p = parse_ok("-xsaves");
    apply_ok(&f, 0, 1, &p);
    cr_assert_eq(get(&f, 0xd, 1)->eax, 0x7);
    cr_assert_eq(get(&f, 0xd, 1)->ecx, 0);
    cr_assert_eq(get(&f, 0xd, 8)->eax, 0, "PT component");
    cr_assert_eq(get(&f, 0xd, 0)->eax, 0x2e7, "user components stay");
}

Test(x86_cpuid, missing_leaves_tolerated)
{
    struct fake f;
    struct x86_cpu_policy p = parse_ok("-xsave,-ht,-popcnt,-avx512f");
    memset(&f, 0, sizeof(f));
    apply_ok(&f, 0, 1, &p); /* empty table */
    add_vendor(&f, "GenuineIntel", 1);
    add(&f, 1, 0, 0, 0, 0, 0x04800000, 0x10000000);
    apply_ok(&f, 1, 2, &p);
    cr_assert_eq(f.hdr.nent, 2, "nothing appended");
    cr_assert_eq(get(&f, 1, 0)->ebx >> 24, 1);
    cr_assert_eq(get(&f, 1, 0)->ecx, 0x80000000U, "popcnt and xsave hidden, hypervisor set");
}

Test(x86_cpuid, topology_leaf_without_subleaf1_is_zeroed)
{
    struct fake f;
    memset(&f, 0, sizeof(f));
    add_vendor(&f, "GenuineIntel", 0xb);
    add(&f, 0xb, 0, SIG, 1, 2, 0x100, 5);
    apply_ok(&f, 1, 2, NULL);
    struct kvm_cpuid_entry2 *e = get(&f, 0xb, 0);
    cr_assert(!e->eax && !e->ebx && !e->ecx && !e->edx);
}

Test(x86_cpuid, amd_topology)
{
    struct fake f;
    struct x86_cpu_policy p = parse_ok("-pat");
    amd_table(&f);
    apply_ok(&f, 2, 3, &p);

    cr_assert_eq(get(&f, 1, 0)->ebx >> 24, 2);
    uint32_t ecx8 = get(&f, 0x80000008, 0)->ecx;
    cr_assert_eq(ecx8 & 0xff, 2, "NC = nvcpus - 1");
    cr_assert_eq((ecx8 >> 12) & 0xf, 2, "ApicIdSize");
    cr_assert_eq(get(&f, 0x80000008, 0)->eax, 0x3030, "address sizes kept");
    struct kvm_cpuid_entry2 *t = get(&f, 0x8000001e, 0);
    cr_assert_eq(t->eax, 2);
    cr_assert_eq(t->ebx, 2, "core id 2, one thread per core");
    cr_assert_eq(t->ecx, 0);
    cr_assert_eq((get(&f, 0x8000001d, 0)->eax >> 14) & 0xfff, 0, "L1 private");
    cr_assert_eq((get(&f, 0x8000001d, 2)->eax >> 14) & 0xfff, 2, "L3 shared");
    cr_assert_eq(get(&f, 0x8000001d, 2)->eax >> 26, 0, "reserved on AMD");
    cr_assert_not(get(&f, 0x80000001, 0)->ecx & (1U << 2), "no nested SVM");
    cr_assert_not(get(&f, 1, 0)->edx & (1U << 16), "pat");
    cr_assert_not(get(&f, 0x80000001, 0)->edx & (1U << 16), "pat mirror");
    cr_assert(get(&f, 0x80000001, 0)->edx & (1U << 17), "pse36 mirror kept");
}

Test(x86_cpuid, intel_table_ignores_amd_leaves)
{
    struct fake f;
    intel_table(&f);
    add(&f, 0x8000001e, 0, 0, 0x11, 0x22, 0x33, 0x44);
    apply_ok(&f, 1, 2, NULL);
    cr_assert_eq(get(&f, 0x80000008, 0)->ecx, 0);
    cr_assert_eq(get(&f, 0x8000001e, 0)->eax, 0x11);
}

/* ---- KVM's real table and real vCPUs ---- */

static int kvm_fd = -1, vm_fd = -1;

static void kvm_open(void)
{
    reset_err();
    kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    cr_assert_geq(kvm_fd, 0, "/dev/kvm: %s", strerror(errno));
    vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
    cr_assert_geq(vm_fd, 0, "KVM_CREATE_VM: %s", strerror(errno));
}

static void kvm_close(void)
{
    if (vm_fd >= 0)
        close(vm_fd);
    if (kvm_fd >= 0)
        close(kvm_fd);
}

static struct kvm_cpuid2 *supported(void)
{
    struct kvm_cpuid2 *c = NULL;
    cr_assert_eq(x86_cpuid_get_supported(kvm_fd, &c, &err), 0, "%s", err.msg);
    cr_assert_not_null(c);
    return c;
}

static void set_cpuid(int vcpu, const struct kvm_cpuid2 *c, const char *what)
{
    cr_assert_eq(ioctl(vcpu, KVM_SET_CPUID2, c), 0, "KVM_SET_CPUID2 (%s): %s", what,
                 strerror(errno));
}

Test(x86_cpuid_kvm, supported_table, .init = kvm_open, .fini = kvm_close)
{
    struct kvm_cpuid2 *c = supported();
    cr_assert_gt(c->nent, 4);
    cr_assert_not_null(x86_cpuid_find(c, 0, 0));
    cr_assert_not_null(x86_cpuid_find(c, 1, 0));
    /* Topology leaves KVM reports come with the subleaf 1 that apply() fills. */
    const uint32_t topo[] = {0xb, 0x1f};
    for (size_t i = 0; i < ARRAY_SIZE(topo); i++) {
        bool has0 = false, has1 = false;
        for (uint32_t j = 0; j < c->nent; j++) {
            has0 |= c->entries[j].function == topo[i] && c->entries[j].index == 0;
            has1 |= c->entries[j].function == topo[i] && c->entries[j].index == 1;
        }
        cr_assert(!has0 || has1, "leaf 0x%x lacks subleaf 1", topo[i]);
    }
    free(c);

    reset_err();
    struct kvm_cpuid2 *none = (struct kvm_cpuid2 *)1;
    cr_assert_lt(x86_cpuid_get_supported(-1, &none, &err), 0);
    cr_assert_null(none);
    cr_assert_eq(err.exit_code, WISP_EXIT_HOST);
    cr_assert(strstr(err.msg, "KVM_GET_SUPPORTED_CPUID"), "%s", err.msg);
}

Test(x86_cpuid_kvm, installed_on_vcpus, .init = kvm_open, .fini = kvm_close)
{
    const unsigned n = 4;
    struct kvm_cpuid2 *sup = supported();

    for (unsigned i = 0; i < n; i++) {
        int vcpu = ioctl(vm_fd, KVM_CREATE_VCPU, i);
        cr_assert_geq(vcpu, 0, "KVM_CREATE_VCPU: %s", strerror(errno));
        struct kvm_cpuid2 *c = x86_cpuid_dup(sup);
        cr_assert_not_null(c);
        cr_assert_eq(x86_cpuid_apply(c, i, n, NULL), 0);
        set_cpuid(vcpu, c, "plain");

        /* Read back what KVM stored. */
        struct {
            struct kvm_cpuid2 hdr;
            struct kvm_cpuid_entry2 e[X86_CPUID_MAX_ENTRIES / 8];
        } back;
        memset(&back, 0, sizeof(back));
        back.hdr.nent = ARRAY_SIZE(back.e);
        cr_assert_eq(ioctl(vcpu, KVM_GET_CPUID2, &back), 0, "KVM_GET_CPUID2: %s", strerror(errno));
        struct kvm_cpuid_entry2 *l1 = x86_cpuid_find(&back.hdr, 1, 0);
        cr_assert_not_null(l1);
        cr_assert_eq(l1->ebx >> 24, i);
        cr_assert(l1->ecx & (1U << 31));
        cr_assert(l1->edx & (1U << 28));
        struct kvm_cpuid_entry2 *b1 = x86_cpuid_find(&back.hdr, 0xb, 1);
        if (b1) {
            cr_assert_eq(b1->edx, i);
            cr_assert_eq(b1->ebx, n);
        }
        free(c);
        close(vcpu);
    }
    free(sup);
}

Test(x86_cpuid_kvm, every_policy_is_accepted_by_kvm, .init = kvm_open, .fini = kvm_close)
{
    struct kvm_cpuid2 *sup = supported();
    int vcpu = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
    cr_assert_geq(vcpu, 0, "KVM_CREATE_VCPU: %s", strerror(errno));

    for (unsigned i = 0; x86_cpu_feature_name(i); i++) {
        if (x86_cpu_feature_fixed_reason(i))
            continue;
        char spec[64];
        snprintf(spec, sizeof(spec), "-%s", x86_cpu_feature_name(i));
        struct x86_cpu_policy p = parse_ok(spec);
        struct kvm_cpuid2 *c = x86_cpuid_dup(sup);
        cr_assert_not_null(c);
        cr_assert_eq(x86_cpuid_apply(c, 0, 2, &p), 0);
        set_cpuid(vcpu, c, spec);
        free(c);
    }

    /* The practical mask for hosts that cannot emulate XSAVE. */
    struct x86_cpu_policy p = parse_ok("-xsave,-popcnt,-cx16");
    struct kvm_cpuid2 *c = x86_cpuid_dup(sup);
    cr_assert_eq(x86_cpuid_apply(c, 0, 2, &p), 0);
    set_cpuid(vcpu, c, "-xsave,-popcnt,-cx16");
    struct kvm_cpuid_entry2 *l1 = x86_cpuid_find(c, 1, 0);
    cr_assert_not(l1->ecx & ((1U << 26) | (1U << 28) | (1U << 23) | (1U << 13)));
    free(c);
    free(sup);
    close(vcpu);
}
