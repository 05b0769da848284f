/*
 * CPU templates: the policy each template yields on a host that has
 * everything, refusal on a host that lacks one feature (named), and the
 * templates' own consistency (no listed feature depends on a hidden one).
 * The same policy then goes through x86_cpuid_apply() on a table, as a VM's
 * vCPUs get it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/cpu_template.h"
#include "arch/x86_64/cpuid.h"

static struct errbuf err;

static void reset_err(void)
{
    memset(&err, 0, sizeof(err));
}

TestSuite(x86_cpu_template, .init = reset_err);

/* A host that offers every bit of the feature leaves. */
static struct kvm_cpuid2 *full_host(void)
{
    static const uint32_t leaves[][2] = {{0, 0},   {1, 0},          {7, 0},
                                         {0xd, 0}, {0x80000000, 0}, {0x80000001, 0}};
    size_t n = sizeof(leaves) / sizeof(leaves[0]);
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
    cr_assert(c);
    c->nent = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        e->function = leaves[i][0];
        e->index = leaves[i][1];
        e->eax = e->ebx = e->ecx = e->edx = 0xffffffffU;
        if (e->function == 7 || e->function == 0xd)
            e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    }
    c->entries[0].eax = 0xd;
    c->entries[4].eax = 0x80000001U;
    return c;
}

static struct x86_cpu_policy policy_of(const char *name)
{
    struct kvm_cpuid2 *host = full_host();
    struct x86_cpu_policy p;
    cr_assert_eq(x86_cpu_template_policy(name, host, &p, &err), 0, "%s", err.msg);
    free(host);
    return p;
}

Test(x86_cpu_template, host_hides_nothing)
{
    struct x86_cpu_policy p = policy_of("host"), q = policy_of(NULL);
    for (unsigned i = 0; i < X86_CPU_POLICY_WORDS; i++) {
        cr_assert_eq(p.hidden[i], 0);
        cr_assert_eq(q.hidden[i], 0);
    }
}

Test(x86_cpu_template, v2_is_the_v2_level)
{
    struct x86_cpu_policy p = policy_of("x86-64-v2");
    const char *seen[] = {"sse3", "ssse3",   "sse4_1", "sse4_2", "popcnt",
                          "cx16", "lahf_lm", "x2apic", "pat",    "ht"};
    const char *hidden[] = {"avx",    "avx2",    "bmi1", "bmi2", "fma",          "f16c",
                            "xsave",  "movbe",   "abm",  "aes",  "pclmulqdq",    "rdrand",
                            "rdseed", "avx512f", "sha",  "pcid", "fsgsbase",     "smep",
                            "smap",   "la57",    "pku",  "rtm",  "tsc_deadline", "vme"};
    for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++)
        cr_assert_not(x86_cpu_policy_hides(&p, seen[i]), "v2 hides %s", seen[i]);
    for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++)
        cr_assert(x86_cpu_policy_hides(&p, hidden[i]), "v2 shows %s", hidden[i]);
}

Test(x86_cpu_template, v3_adds_avx2_level)
{
    struct x86_cpu_policy p = policy_of("x86-64-v3");
    const char *seen[] = {"sse4_2", "avx",  "avx2",  "bmi1", "bmi2",
                          "fma",    "f16c", "movbe", "abm",  "xsave"};
    const char *hidden[] = {"avx512f",  "avx512vl", "aes", "sha",     "rdseed",
                            "xsaveopt", "xsaves",   "pku", "amx_tile"};
    for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++)
        cr_assert_not(x86_cpu_policy_hides(&p, seen[i]), "v3 hides %s", seen[i]);
    for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++)
        cr_assert(x86_cpu_policy_hides(&p, hidden[i]), "v3 shows %s", hidden[i]);
}

/* Every named template is closed: nothing it shows depends on something it hides. */
Test(x86_cpu_template, templates_are_closed)
{
    for (unsigned t = 0; x86_cpu_template_name(t); t++) {
        struct x86_cpu_policy p = policy_of(x86_cpu_template_name(t));
        char spec[2048] = "";
        /* Re-parse the hidden set as a user mask: parsing computes the closure. */
        for (unsigned i = 0; x86_cpu_feature_name(i); i++) {
            if (!x86_cpu_policy_hides(&p, x86_cpu_feature_name(i)))
                continue;
            strcat(spec, spec[0] ? ",-" : "-");
            strcat(spec, x86_cpu_feature_name(i));
        }
        struct x86_cpu_policy closed;
        cr_assert_eq(x86_cpu_policy_parse(spec, &closed, &err), 0, "%s", err.msg);
        cr_assert_eq(memcmp(&closed, &p, sizeof(p)), 0, "%s is not closed",
                     x86_cpu_template_name(t));
    }
}

Test(x86_cpu_template, host_without_a_feature_is_refused_by_name)
{
    struct kvm_cpuid2 *host = full_host();
    host->entries[2].ebx &= ~(1U << 5); /* leaf 7 EBX bit 5: AVX2 */
    struct x86_cpu_policy p;
    memset(&p, 0xa5, sizeof(p));
    struct x86_cpu_policy before = p;
    int ret = x86_cpu_template_policy("x86-64-v3", host, &p, &err);
    cr_assert_eq(ret, -ENOTSUP);
    cr_assert_eq(err.exit_code, WISP_EXIT_HOST);
    cr_assert_str_eq(err.msg, "cpu-template x86-64-v3 needs avx2, which this host's KVM does not "
                              "offer");
    cr_assert_eq(memcmp(&p, &before, sizeof(p)), 0, "policy left unchanged");
    /* v2 does not need AVX2. */
    reset_err();
    cr_assert_eq(x86_cpu_template_policy("x86-64-v2", host, &p, &err), 0, "%s", err.msg);
    free(host);
}

Test(x86_cpu_template, unknown_name)
{
    struct kvm_cpuid2 *host = full_host();
    struct x86_cpu_policy p;
    cr_assert_eq(x86_cpu_template_policy("T2", host, &p, &err), -EINVAL);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    cr_assert(strstr(err.msg, "unknown template 'T2'"), "%s", err.msg);
    cr_assert(x86_cpu_template_known("host"));
    cr_assert(x86_cpu_template_known(NULL));
    cr_assert(x86_cpu_template_known("x86-64-v3"));
    cr_assert_not(x86_cpu_template_known("x86-64-v4"));
    free(host);
}

/* Through x86_cpuid_apply, as a vCPU gets it: leaf 7 loses AVX2, keeps nothing v2 lacks. */
Test(x86_cpu_template, applied_table)
{
    struct kvm_cpuid2 *host = full_host();
    struct x86_cpu_policy p;
    cr_assert_eq(x86_cpu_template_policy("x86-64-v2", host, &p, &err), 0, "%s", err.msg);
    cr_assert_eq(x86_cpuid_apply(host, 0, 1, &p), 0);
    struct kvm_cpuid_entry2 *l1 = x86_cpuid_find(host, 1, 0), *l7 = x86_cpuid_find(host, 7, 0);
    cr_assert(l1 && l7);
    cr_assert(l1->ecx & (1U << 20), "SSE4.2 kept");
    cr_assert_eq(l1->ecx & (1U << 28), 0, "AVX cleared");
    cr_assert_eq(l1->ecx & (1U << 26), 0, "XSAVE cleared");
    cr_assert_eq(l7->ebx & (1U << 5), 0, "AVX2 cleared");
    cr_assert_eq(l7->ebx & (1U << 3), 0, "BMI1 cleared");
    free(host);
}
