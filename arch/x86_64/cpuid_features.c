/*
 * CPUID feature policy (see cpuid.h): the named feature table and the parser
 * of user feature masks.  It is kept apart from cpuid.c, which applies a
 * policy to each vCPU's table, because this is the part users and reviewers
 * read: the list of names, what each depends on, and why some features can
 * never be hidden.
 *
 * The feature table below is the single list of names a user may write in a
 * feature mask.  Each row says where the feature lives (leaf, subleaf,
 * register, bit), which feature it depends on (hidden with it), which XSAVE
 * state components exist only for it, or why it may not be hidden at all.
 * Bit numbers follow the Intel SDM and AMD APM CPUID chapters.
 */
#include "arch/x86_64/cpuid_internal.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

/* XCR0 bit of XSAVE state component n. */
#define XSTATE(n) (1ULL << (n))

/*
 * Reasons for the features that stay visible.  Hiding a feature only helps
 * if the guest can live without it and the claim does not contradict state
 * wisp itself sets up; these fail one or the other.
 */
#define WHY_BASELINE                                                                               \
    "it is part of the x86-64 baseline that 64-bit kernels and compilers assume; "                 \
    "hiding it would not remove it and guests would refuse to boot"
#define WHY_APIC       "wisp sets up and describes a local APIC per vCPU (LINT0/LINT1, MP table)"
#define WHY_HYPERVISOR "guests rely on it to find KVM's paravirtual clock and to choose mitigations"
#define WHY_LM                                                                                     \
    "wisp enters 64-bit kernels in long mode, and KVM refuses long mode (EFER.LME) to a "          \
    "guest whose CPUID lacks it"
#define WHY_SYSCALL                                                                                \
    "every 64-bit kernel enters from user space with SYSCALL (KVM then refuses EFER.SCE)"
#define WHY_NX                                                                                     \
    "the guest would lose no-execute page protection (KVM then refuses EFER.NXE), "                \
    "a security downgrade"
#define WHY_PDPE1GB                                                                                \
    "with EPT/NPT the processor still honours 1 GiB pages in guest page tables while "             \
    "KVM's emulator would treat them as reserved, so the guest would see "                         \
    "inconsistent page faults"
#define WHY_RDTSCP                                                                                 \
    "KVM enables RDTSCP and RDPID with one control and 64-bit Linux reads its CPU "                \
    "number through them, so hiding it alone is not enforced"

/* clang-format off */
#define FEAT(n, l, s, r, b, par, xs) {n, l, s, r, b, par, xs, NULL}
#define FIXED(n, l, s, r, b, why)    {n, l, s, r, b, NULL, 0, why}
/* clang-format on */

static const struct feature features[] = {
    /* Leaf 1 ECX. */
    FEAT("sse3", 1, 0, ECX, 0, NULL, 0),
    FEAT("pclmulqdq", 1, 0, ECX, 1, NULL, 0),
    FEAT("vmx", 1, 0, ECX, 5, NULL, 0),
    FEAT("smx", 1, 0, ECX, 6, NULL, 0),
    FEAT("est", 1, 0, ECX, 7, NULL, 0),
    FEAT("ssse3", 1, 0, ECX, 9, NULL, 0),
    FEAT("fma", 1, 0, ECX, 12, "avx", 0),
    FEAT("cx16", 1, 0, ECX, 13, NULL, 0),
    FEAT("pcid", 1, 0, ECX, 17, NULL, 0),
    FEAT("sse4_1", 1, 0, ECX, 19, NULL, 0),
    FEAT("sse4_2", 1, 0, ECX, 20, NULL, 0),
    FEAT("x2apic", 1, 0, ECX, 21, NULL, 0),
    FEAT("movbe", 1, 0, ECX, 22, NULL, 0),
    FEAT("popcnt", 1, 0, ECX, 23, NULL, 0),
    FEAT("tsc_deadline", 1, 0, ECX, 24, NULL, 0),
    FEAT("aes", 1, 0, ECX, 25, NULL, 0),
    FEAT("xsave", 1, 0, ECX, 26, NULL, 0),
    FEAT("osxsave", 1, 0, ECX, 27, "xsave", 0),
    /* AVX state (YMM upper halves) is XSAVE component 2. */
    FEAT("avx", 1, 0, ECX, 28, "xsave", XSTATE(2)),
    /* F16C and the other VEX-only extensions need the YMM state AVX brings. */
    FEAT("f16c", 1, 0, ECX, 29, "avx", 0),
    FEAT("rdrand", 1, 0, ECX, 30, NULL, 0),
    FIXED("hypervisor", 1, 0, ECX, 31, WHY_HYPERVISOR),

    /* Leaf 1 EDX. */
    FIXED("fpu", 1, 0, EDX, 0, WHY_BASELINE),
    FEAT("vme", 1, 0, EDX, 1, NULL, 0),
    FEAT("de", 1, 0, EDX, 2, NULL, 0),
    FIXED("pse", 1, 0, EDX, 3, WHY_BASELINE),
    FIXED("tsc", 1, 0, EDX, 4, WHY_BASELINE),
    FIXED("msr", 1, 0, EDX, 5, WHY_BASELINE),
    FIXED("pae", 1, 0, EDX, 6, WHY_BASELINE),
    FEAT("mce", 1, 0, EDX, 7, NULL, 0),
    FIXED("cx8", 1, 0, EDX, 8, WHY_BASELINE),
    FIXED("apic", 1, 0, EDX, 9, WHY_APIC),
    FEAT("sep", 1, 0, EDX, 11, NULL, 0),
    FEAT("mtrr", 1, 0, EDX, 12, NULL, 0),
    FIXED("pge", 1, 0, EDX, 13, WHY_BASELINE),
    FEAT("mca", 1, 0, EDX, 14, NULL, 0),
    FIXED("cmov", 1, 0, EDX, 15, WHY_BASELINE),
    FEAT("pat", 1, 0, EDX, 16, NULL, 0),
    FEAT("pse36", 1, 0, EDX, 17, NULL, 0),
    FEAT("clflush", 1, 0, EDX, 19, NULL, 0),
    FIXED("mmx", 1, 0, EDX, 23, WHY_BASELINE),
    FIXED("fxsr", 1, 0, EDX, 24, WHY_BASELINE),
    FIXED("sse", 1, 0, EDX, 25, WHY_BASELINE),
    FIXED("sse2", 1, 0, EDX, 26, WHY_BASELINE),
    FEAT("ht", 1, 0, EDX, 28, NULL, 0),

    /* Leaf 7.0 EBX. */
    FEAT("fsgsbase", 7, 0, EBX, 0, NULL, 0),
    FEAT("bmi1", 7, 0, EBX, 3, NULL, 0),
    FEAT("hle", 7, 0, EBX, 4, NULL, 0),
    FEAT("avx2", 7, 0, EBX, 5, "avx", 0),
    FEAT("smep", 7, 0, EBX, 7, NULL, 0),
    FEAT("bmi2", 7, 0, EBX, 8, NULL, 0),
    FEAT("erms", 7, 0, EBX, 9, NULL, 0),
    FEAT("invpcid", 7, 0, EBX, 10, NULL, 0),
    FEAT("rtm", 7, 0, EBX, 11, NULL, 0),
    /* MPX bound registers are XSAVE components 3 and 4. */
    FEAT("mpx", 7, 0, EBX, 14, "xsave", XSTATE(3) | XSTATE(4)),
    /*
     * AVX-512 state is components 5-7.  avx512f hangs off avx2 rather than
     * avx: no processor has one without the other and ISA-level checks
     * (x86-64-v4 implies v3) would misjudge a CPU that did.
     */
    FEAT("avx512f", 7, 0, EBX, 16, "avx2", XSTATE(5) | XSTATE(6) | XSTATE(7)),
    FEAT("avx512dq", 7, 0, EBX, 17, "avx512f", 0),
    FEAT("rdseed", 7, 0, EBX, 18, NULL, 0),
    FEAT("adx", 7, 0, EBX, 19, NULL, 0),
    FEAT("smap", 7, 0, EBX, 20, NULL, 0),
    FEAT("avx512ifma", 7, 0, EBX, 21, "avx512f", 0),
    FEAT("clflushopt", 7, 0, EBX, 23, NULL, 0),
    FEAT("clwb", 7, 0, EBX, 24, NULL, 0),
    FEAT("avx512pf", 7, 0, EBX, 26, "avx512f", 0),
    FEAT("avx512er", 7, 0, EBX, 27, "avx512f", 0),
    FEAT("avx512cd", 7, 0, EBX, 28, "avx512f", 0),
    FEAT("sha", 7, 0, EBX, 29, NULL, 0),
    FEAT("avx512bw", 7, 0, EBX, 30, "avx512f", 0),
    FEAT("avx512vl", 7, 0, EBX, 31, "avx512f", 0),

    /* Leaf 7.0 ECX. */
    FEAT("avx512vbmi", 7, 0, ECX, 1, "avx512f", 0),
    FEAT("umip", 7, 0, ECX, 2, NULL, 0),
    /* PKRU is XSAVE component 9; kernels switch it with XSAVE. */
    FEAT("pku", 7, 0, ECX, 3, "xsave", XSTATE(9)),
    FEAT("waitpkg", 7, 0, ECX, 5, NULL, 0),
    FEAT("avx512_vbmi2", 7, 0, ECX, 6, "avx512f", 0),
    FEAT("gfni", 7, 0, ECX, 8, NULL, 0), /* has SSE encodings: no AVX needed */
    FEAT("vaes", 7, 0, ECX, 9, "avx", 0),
    FEAT("vpclmulqdq", 7, 0, ECX, 10, "avx", 0),
    FEAT("avx512_vnni", 7, 0, ECX, 11, "avx512f", 0),
    FEAT("avx512_bitalg", 7, 0, ECX, 12, "avx512f", 0),
    FEAT("avx512_vpopcntdq", 7, 0, ECX, 14, "avx512f", 0),
    FEAT("la57", 7, 0, ECX, 16, NULL, 0),
    FEAT("rdpid", 7, 0, ECX, 22, NULL, 0),
    FEAT("cldemote", 7, 0, ECX, 25, NULL, 0),
    FEAT("movdiri", 7, 0, ECX, 27, NULL, 0),
    FEAT("movdir64b", 7, 0, ECX, 28, NULL, 0),

    /* Leaf 7.0 EDX. */
    FEAT("avx512_4vnniw", 7, 0, EDX, 2, "avx512f", 0),
    FEAT("avx512_4fmaps", 7, 0, EDX, 3, "avx512f", 0),
    FEAT("fsrm", 7, 0, EDX, 4, NULL, 0),
    FEAT("avx512_vp2intersect", 7, 0, EDX, 8, "avx512f", 0),
    FEAT("md_clear", 7, 0, EDX, 10, NULL, 0),
    FEAT("serialize", 7, 0, EDX, 14, NULL, 0),
    FEAT("tsxldtrk", 7, 0, EDX, 16, NULL, 0),
    FEAT("amx_bf16", 7, 0, EDX, 22, "amx_tile", 0),
    FEAT("avx512_fp16", 7, 0, EDX, 23, "avx512f", 0),
    /* AMX tile configuration and data are XSAVE components 17 and 18. */
    FEAT("amx_tile", 7, 0, EDX, 24, "xsave", XSTATE(17) | XSTATE(18)),
    FEAT("amx_int8", 7, 0, EDX, 25, "amx_tile", 0),
    FEAT("arch_capabilities", 7, 0, EDX, 29, NULL, 0),

    /* Leaf 7.1 EAX. */
    FEAT("avx_vnni", 7, 1, EAX, 4, "avx2", 0),
    FEAT("avx512_bf16", 7, 1, EAX, 5, "avx512f", 0),

    /* Leaf 0xD.1 EAX: XSAVE variants. */
    FEAT("xsaveopt", 0xd, 1, EAX, 0, "xsave", 0),
    FEAT("xsavec", 0xd, 1, EAX, 1, "xsave", 0),
    FEAT("xgetbv1", 0xd, 1, EAX, 2, "xsave", 0),
    FEAT("xsaves", 0xd, 1, EAX, 3, "xsave", 0),

    /* Leaf 0x80000001 ECX. */
    FEAT("lahf_lm", LEAF_EXT_BASIC, 0, ECX, 0, NULL, 0),
    FEAT("svm", LEAF_EXT_BASIC, 0, ECX, 2, NULL, 0),
    FEAT("abm", LEAF_EXT_BASIC, 0, ECX, 5, NULL, 0),
    FEAT("sse4a", LEAF_EXT_BASIC, 0, ECX, 6, NULL, 0),
    FEAT("misalignsse", LEAF_EXT_BASIC, 0, ECX, 7, NULL, 0),
    FEAT("prefetchw", LEAF_EXT_BASIC, 0, ECX, 8, NULL, 0),
    FEAT("xop", LEAF_EXT_BASIC, 0, ECX, 11, "avx", 0),
    FEAT("fma4", LEAF_EXT_BASIC, 0, ECX, 16, "avx", 0),
    FEAT("tbm", LEAF_EXT_BASIC, 0, ECX, 21, NULL, 0),
    FEAT("topoext", LEAF_EXT_BASIC, 0, ECX, 22, NULL, 0),

    /* Leaf 0x80000001 EDX: what a 64-bit guest and wisp's boot state rely on. */
    FIXED("syscall", LEAF_EXT_BASIC, 0, EDX, 11, WHY_SYSCALL),
    FIXED("nx", LEAF_EXT_BASIC, 0, EDX, 20, WHY_NX),
    FIXED("pdpe1gb", LEAF_EXT_BASIC, 0, EDX, 26, WHY_PDPE1GB),
    FIXED("rdtscp", LEAF_EXT_BASIC, 0, EDX, 27, WHY_RDTSCP),
    FIXED("lm", LEAF_EXT_BASIC, 0, EDX, 29, WHY_LM),
};

_Static_assert(ARRAY_SIZE(features) <= X86_CPU_POLICY_WORDS * 64,
               "struct x86_cpu_policy is too small for the feature table");

/* Other spellings users meet, mostly from Linux's /proc/cpuinfo. */
static const struct {
    const char *alias;
    const char *name;
} aliases[] = {
    {"pni", "sse3"},
    {"sse4.1", "sse4_1"},
    {"sse4.2", "sse4_2"},
    {"tsc_deadline_timer", "tsc_deadline"},
    {"sha_ni", "sha"},
    {"lzcnt", "abm"},
    {"3dnowprefetch", "prefetchw"},
};

static bool name_eq(const char *name, const char *s, size_t len)
{
    return strlen(name) == len && strncasecmp(name, s, len) == 0;
}

/* Table index of the feature called s[0..len), or -1. */
static int feature_lookup(const char *s, size_t len)
{
    for (size_t i = 0; i < ARRAY_SIZE(aliases); i++) {
        if (name_eq(aliases[i].alias, s, len)) {
            s = aliases[i].name;
            len = strlen(s);
            break;
        }
    }
    for (size_t i = 0; i < ARRAY_SIZE(features); i++)
        if (name_eq(features[i].name, s, len))
            return (int)i;
    return -1;
}

static int feature_index(const char *name)
{
    return feature_lookup(name, strlen(name));
}

static void policy_set(struct x86_cpu_policy *p, unsigned i)
{
    p->hidden[i / 64] |= 1ULL << (i % 64);
}

static bool policy_hides_index(const struct x86_cpu_policy *p, int i)
{
    return p && i >= 0 && policy_test(p, (unsigned)i);
}

/* Hide every feature whose parent (transitively) is hidden. */
static void policy_close(struct x86_cpu_policy *p)
{
    bool changed;
    do {
        changed = false;
        for (unsigned i = 0; i < ARRAY_SIZE(features); i++) {
            if (policy_test(p, i) || !features[i].parent)
                continue;
            if (policy_hides_index(p, feature_index(features[i].parent))) {
                policy_set(p, i);
                changed = true;
            }
        }
    } while (changed);
}

/* Longest item quoted back in an error message. */
#define ITEM_QUOTE_MAX 64

int x86_cpu_policy_parse(const char *spec, struct x86_cpu_policy *p, struct errbuf *err)
{
    struct x86_cpu_policy np;
    memset(&np, 0, sizeof(np));

    if (spec && *spec) {
        const char *s = spec;
        for (;;) {
            const char *comma = strchr(s, ',');
            size_t len = comma ? (size_t)(comma - s) : strlen(s);
            const char *item = s;

            while (len > 0 && isblank((unsigned char)item[0])) {
                item++;
                len--;
            }
            while (len > 0 && isblank((unsigned char)item[len - 1]))
                len--;
            int qlen = (int)MIN(len, (size_t)ITEM_QUOTE_MAX);

            if (len == 0)
                return err_set(err, WISP_EXIT_USAGE, EINVAL,
                               "cpu-features: empty item in '%.*s' (expected -name,-name,...)",
                               ITEM_QUOTE_MAX, spec);
            if (item[0] == '+')
                return err_set(err, WISP_EXIT_USAGE, EINVAL,
                               "cpu-features: adding features is not supported (only -name)");
            if (item[0] != '-')
                return err_set(err, WISP_EXIT_USAGE, EINVAL,
                               "cpu-features: '%.*s' should be '-%.*s' (only removals are "
                               "supported)",
                               qlen, item, qlen, item);
            if (len == 1)
                return err_set(err, WISP_EXIT_USAGE, EINVAL,
                               "cpu-features: '-' without a feature name");

            int i = feature_lookup(item + 1, len - 1);
            if (i < 0)
                return err_set(err, WISP_EXIT_USAGE, EINVAL, "cpu-features: unknown feature '%.*s'",
                               qlen - 1, item + 1);
            if (features[i].fixed)
                return err_set(err, WISP_EXIT_USAGE, EINVAL,
                               "cpu-features: '%s' cannot be hidden: %s", features[i].name,
                               features[i].fixed);
            policy_set(&np, (unsigned)i);

            if (!comma)
                break;
            s = comma + 1;
        }
        policy_close(&np);
    }
    *p = np;
    return 0;
}

bool x86_cpu_policy_hides(const struct x86_cpu_policy *p, const char *name)
{
    return name && policy_hides_index(p, feature_index(name));
}

const char *x86_cpu_feature_name(unsigned i)
{
    return i < ARRAY_SIZE(features) ? features[i].name : NULL;
}

const char *x86_cpu_feature_fixed_reason(unsigned i)
{
    return i < ARRAY_SIZE(features) ? features[i].fixed : NULL;
}

/* The table as cpuid.c sees it (cpuid_internal.h). */
const struct feature *const x86_cpuid_features = features;
const unsigned x86_cpuid_nfeatures = ARRAY_SIZE(features);
