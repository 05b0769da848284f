/*
 * CPU templates (see cpu_template.h): allow-lists over the named feature
 * table, turned into a hide policy after checking that this host's KVM can
 * offer every listed feature.  Kept apart from the feature table so the two
 * lists a reviewer compares with the x86-64 psABI's levels are here, short.
 */
#include "arch/x86_64/cpu_template.h"

#include <errno.h>
#include <string.h>

#include "arch/x86_64/cpuid_internal.h"

/* KVM emulates the x2APIC on every host. */
#define KVM_EMULATED "x2apic"

/*
 * Legacy features every x86-64 processor and KVM offer.  VME is left out:
 * a 64-bit guest has no use for it and KVM does not always offer it (not in
 * the nested testbed, for one).
 */
#define LEGACY "de", "mce", "sep", "mtrr", "mca", "pat", "pse36", "clflush"

/* x86-64-v2 (psABI): CMPXCHG16B, LAHF-SAHF, POPCNT, SSE3, SSE4_1, SSE4_2, SSSE3. */
#define V2 "cx16", "lahf_lm", "popcnt", "sse3", "sse4_1", "sse4_2", "ssse3"

/* x86-64-v3 adds AVX, AVX2, BMI1, BMI2, F16C, FMA, LZCNT (abm), MOVBE, XSAVE (OSXSAVE). */
#define V3 "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave", "osxsave"

/*
 * Shown but not required of the host: wisp derives HTT from the vCPU count.
 * Everything else a template lists must be in KVM's supported table.
 */
static const char *const synthesised[] = {"ht", NULL};

static const char *const v2_features[] = {LEGACY, KVM_EMULATED, V2, NULL};
static const char *const v3_features[] = {LEGACY, KVM_EMULATED, V2, V3, NULL};

static const struct {
    const char *name;
    const char *const *features;
} templates[] = {
    {"x86-64-v2", v2_features},
    {"x86-64-v3", v3_features},
};

const char *x86_cpu_template_name(unsigned i)
{
    return i < ARRAY_SIZE(templates) ? templates[i].name : NULL;
}

bool x86_cpu_template_known(const char *name)
{
    if (!name || !strcmp(name, "host"))
        return true;
    for (size_t i = 0; i < ARRAY_SIZE(templates); i++)
        if (!strcmp(name, templates[i].name))
            return true;
    return false;
}

static bool listed(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (!strcmp(*list, name))
            return true;
    return false;
}

/* Does the supported table have feature row `f`'s bit?  (OS-state bits count as present.) */
static bool host_has(const struct kvm_cpuid2 *supported, const struct feature *f)
{
    if (!strcmp(f->name, "osxsave"))
        return true; /* set by the guest OS through CR4, never by KVM */
    struct kvm_cpuid2 *c = (struct kvm_cpuid2 *)(uintptr_t)supported;
    const struct kvm_cpuid_entry2 *e = x86_cpuid_find(c, f->leaf, f->subleaf);
    if (!e)
        return false;
    uint32_t regs[] = {e->eax, e->ebx, e->ecx, e->edx};
    return (regs[f->reg] >> f->bit) & 1;
}

int x86_cpu_template_policy(const char *name, const struct kvm_cpuid2 *supported,
                            struct x86_cpu_policy *p, struct errbuf *err)
{
    if (!name || !strcmp(name, "host")) {
        memset(p, 0, sizeof(*p));
        return 0;
    }
    const char *const *allow = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(templates); i++)
        if (!strcmp(name, templates[i].name))
            allow = templates[i].features;
    if (!allow)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "cpu-template: unknown template '%.64s' (host, x86-64-v2 or x86-64-v3)",
                       name);

    struct x86_cpu_policy np;
    memset(&np, 0, sizeof(np));
    for (unsigned i = 0; i < x86_cpuid_nfeatures; i++) {
        const struct feature *f = &x86_cpuid_features[i];
        if (f->fixed)
            continue;
        if (listed(synthesised, f->name))
            continue;
        if (!listed(allow, f->name)) {
            np.hidden[i / 64] |= 1ULL << (i % 64);
            continue;
        }
        if (!host_has(supported, f))
            return err_set(err, WISP_EXIT_HOST, ENOTSUP,
                           "cpu-template %s needs %s, which this host's KVM does not offer", name,
                           f->name);
    }
    *p = np;
    return 0;
}
