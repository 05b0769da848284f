/*
 * CPUID policy and per-vCPU CPUID tables (see cpuid.h).
 *
 * The feature table below is the single list of names a user may write in a
 * feature mask.  Each row says where the feature lives (leaf, subleaf,
 * register, bit), which feature it depends on (hidden with it), which XSAVE
 * state components exist only for it, or why it may not be hidden at all.
 * Bit numbers follow the Intel SDM and AMD APM CPUID chapters.
 */
#include "arch/x86_64/cpuid.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>

enum { EAX, EBX, ECX, EDX };

#define LEAF_VENDOR     0x0U
#define LEAF_FEATURES   0x1U
#define LEAF_CACHE      0x4U
#define LEAF_EXT_FEAT   0x7U
#define LEAF_TOPOLOGY   0xbU
#define LEAF_XSAVE      0xdU
#define LEAF_TOPOLOGY2  0x1fU
#define LEAF_EXT_BASIC  0x80000001U
#define LEAF_ADDR_SIZES 0x80000008U
#define LEAF_AMD_CACHE  0x8000001dU
#define LEAF_AMD_TOPO   0x8000001eU

/* Leaf 1. */
#define L1_EBX_APIC_ID_SHIFT  24
#define L1_EBX_NLOGICAL_SHIFT 16
#define L1_ECX_VMX            (1U << 5)
#define L1_ECX_OSXSAVE        (1U << 27)
#define L1_ECX_HYPERVISOR     (1U << 31)
#define L1_EDX_HTT            (1U << 28)
/* Leaf 1 EDX bits that AMD repeats in leaf 0x80000001 EDX (fpu..pse36 except 10, 11; mmx, fxsr). */
#define AMD_EDX_MIRROR 0x0183f3ffU

/* Leaf 4 and AMD leaf 0x8000001D. */
#define CACHE_TYPE_MASK     0x1fU
#define CACHE_LEVEL(eax)    (((eax) >> 5) & 0x7U)
#define CACHE_SHARING_SHIFT 14
#define CACHE_SHARING_MASK  (0xfffU << CACHE_SHARING_SHIFT)
#define CACHE_CORES_SHIFT   26
#define CACHE_CORES_MASK    (0x3fU << CACHE_CORES_SHIFT)

/* Leaf 7.0 ECX: "OS has set CR4.PKE". */
#define L7_ECX_OSPKE (1U << 4)

/* Leaves 0xB / 0x1F: level types in ECX[15:8]. */
#define TOPO_LEVEL_SMT  1U
#define TOPO_LEVEL_CORE 2U

/* Leaf 0x80000001 ECX. */
#define EXT_ECX_SVM (1U << 2)

/* Leaf 0x80000008 ECX: NC (cores - 1) in [7:0], ApicIdSize in [15:12]. */
#define ADDR_ECX_NC_MASK      0xffU
#define ADDR_ECX_IDSIZE_SHIFT 12
#define ADDR_ECX_IDSIZE_MASK  (0xfU << ADDR_ECX_IDSIZE_SHIFT)

/* XSAVE: legacy region plus header, the smallest area (x87 and SSE only). */
#define XSAVE_MIN_SIZE 576U
#define XSTATE(n)      (1ULL << (n))

struct feature {
    const char *name;
    uint32_t leaf;
    uint32_t subleaf;
    uint8_t reg;
    uint8_t bit;
    const char *parent; /* hidden whenever the parent is */
    uint64_t xstate;    /* XCR0 state components that exist only for this feature */
    const char *fixed;  /* why it cannot be hidden; NULL if it can */
};

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

static bool policy_test(const struct x86_cpu_policy *p, unsigned i)
{
    return (p->hidden[i / 64] >> (i % 64)) & 1;
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

/* ---- tables ---- */

static struct kvm_cpuid2 *table_alloc(unsigned cap)
{
    return calloc(1, sizeof(struct kvm_cpuid2) + (size_t)cap * sizeof(struct kvm_cpuid_entry2));
}

struct kvm_cpuid2 *x86_cpuid_dup(const struct kvm_cpuid2 *c)
{
    if (!c || c->nent > X86_CPUID_MAX_ENTRIES)
        return NULL;
    size_t size = sizeof(*c) + (size_t)c->nent * sizeof(c->entries[0]);
    struct kvm_cpuid2 *d = malloc(size);
    if (d)
        memcpy(d, c, size);
    return d;
}

struct kvm_cpuid_entry2 *x86_cpuid_find(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t subleaf)
{
    if (!c)
        return NULL;
    for (uint32_t i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->function != leaf)
            continue;
        if (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == subleaf)
            return e;
    }
    return NULL;
}

/* Entry for exactly (leaf, subleaf), whatever its flags say. */
static struct kvm_cpuid_entry2 *find_exact(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t subleaf)
{
    for (uint32_t i = 0; i < c->nent; i++)
        if (c->entries[i].function == leaf && c->entries[i].index == subleaf)
            return &c->entries[i];
    return NULL;
}

/* Topology leaves KVM reports as a bare subleaf 0 (see cpuid.h). */
static const uint32_t topology_leaves[] = {LEAF_TOPOLOGY, LEAF_TOPOLOGY2};

int x86_cpuid_get_supported(int kvm_fd, struct kvm_cpuid2 **out, struct errbuf *err)
{
    const unsigned spare = ARRAY_SIZE(topology_leaves);
    struct kvm_cpuid2 *c = NULL;
    unsigned n = 64;

    *out = NULL;
    for (;;) {
        free(c);
        c = table_alloc(n + spare);
        if (!c)
            return err_set(err, WISP_EXIT_HOST, ENOMEM, "out of memory for the CPUID table");
        c->nent = n;
        if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
            break;
        int e = errno;
        if (e != E2BIG || n >= X86_CPUID_MAX_ENTRIES) {
            free(c);
            if (e == E2BIG)
                return err_set(err, WISP_EXIT_HOST, e, "KVM reports more than %u CPUID entries",
                               X86_CPUID_MAX_ENTRIES);
            return err_set(err, WISP_EXIT_HOST, e, "KVM_GET_SUPPORTED_CPUID failed: %s",
                           strerror(e));
        }
        n *= 2;
    }
    if (c->nent > n) { /* KVM never does this; do not trust it with our buffer size either */
        free(c);
        return err_set(err, WISP_EXIT_HOST, EPROTO, "KVM_GET_SUPPORTED_CPUID returned a bad count");
    }

    for (unsigned i = 0; i < ARRAY_SIZE(topology_leaves); i++) {
        uint32_t leaf = topology_leaves[i];
        if (!find_exact(c, leaf, 0) || find_exact(c, leaf, 1))
            continue;
        struct kvm_cpuid_entry2 *e = &c->entries[c->nent++];
        memset(e, 0, sizeof(*e));
        e->function = leaf;
        e->index = 1;
        e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    }
    *out = c;
    return 0;
}

/* ---- per-vCPU adjustments ---- */

static uint32_t *reg_ptr(struct kvm_cpuid_entry2 *e, unsigned reg)
{
    switch (reg) {
    case EAX:
        return &e->eax;
    case EBX:
        return &e->ebx;
    case ECX:
        return &e->ecx;
    default:
        return &e->edx;
    }
}

static void clear_mask(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t subleaf, unsigned reg,
                       uint32_t mask)
{
    struct kvm_cpuid_entry2 *e = x86_cpuid_find(c, leaf, subleaf);
    if (e)
        *reg_ptr(e, reg) &= ~mask;
}

/* Smallest s with 2^s >= n: the APIC id bits needed to number n vCPUs. */
static unsigned id_bits(unsigned n)
{
    unsigned s = 0;
    while ((1U << s) < n)
        s++;
    return s;
}

/*
 * AMD's topology leaves (0x80000008 ECX, 0x8000001D/E) only mean something
 * on AMD and Hygon processors; elsewhere they are reserved.  The vendor in
 * leaf 0 is the host's: KVM passes it through.
 */
static bool vendor_is_amd(struct kvm_cpuid2 *c)
{
    struct kvm_cpuid_entry2 *e = x86_cpuid_find(c, LEAF_VENDOR, 0);
    char v[12];

    if (!e)
        return false;
    memcpy(v, &e->ebx, 4);
    memcpy(v + 4, &e->edx, 4);
    memcpy(v + 8, &e->ecx, 4);
    return memcmp(v, "AuthenticAMD", 12) == 0 || memcmp(v, "HygonGenuine", 12) == 0;
}

static void set_leaf1(struct kvm_cpuid2 *c, unsigned index, unsigned nvcpus)
{
    struct kvm_cpuid_entry2 *e = x86_cpuid_find(c, LEAF_FEATURES, 0);
    if (!e)
        return;
    /* Keep the CLFLUSH line size and brand index in EBX[15:0]. */
    e->ebx = (e->ebx & 0xffffU) | ((uint32_t)index << L1_EBX_APIC_ID_SHIFT) |
             ((uint32_t)MIN(nvcpus, 255U) << L1_EBX_NLOGICAL_SHIFT);
    /* HTT says "EBX[23:16] is valid": only meaningful with more than one vCPU. */
    if (nvcpus > 1)
        e->edx |= L1_EDX_HTT;
    else
        e->edx &= ~L1_EDX_HTT;
    e->ecx |= L1_ECX_HYPERVISOR;
    /*
     * OSXSAVE mirrors CR4.OSXSAVE.  KVM recomputes it whenever the guest
     * writes CR4; what we hand in is the value at reset, when CR4 is 0.
     */
    e->ecx &= ~L1_ECX_OSXSAVE;
    /*
     * No nested virtualisation: it exposes KVM's large nested-VMX/SVM
     * emulation to the guest (security.md L8) and there is no way to ask for
     * it yet.  KVM then also refuses CR4.VMXE.
     */
    e->ecx &= ~L1_ECX_VMX;
}

/*
 * Deterministic cache parameters (Intel leaf 4, AMD leaf 0x8000001D).  Each
 * vCPU is a core with one thread, so L1 and L2 are private (no other
 * logical processor shares them) and the L3 is shared by the whole package.
 * Saying the L3 is private would make Linux build a scheduling domain per
 * vCPU for its last-level cache and stop waking tasks on idle siblings.
 * Cache sizes and geometry stay as the host reports them.
 */
static void set_cache_leaf(struct kvm_cpuid2 *c, uint32_t leaf, unsigned nvcpus, bool intel)
{
    for (uint32_t i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->function != leaf || (e->eax & CACHE_TYPE_MASK) == 0)
            continue;
        uint32_t sharing = CACHE_LEVEL(e->eax) >= 3 ? nvcpus - 1 : 0;
        e->eax = (e->eax & ~CACHE_SHARING_MASK) | (sharing << CACHE_SHARING_SHIFT);
        if (intel) {
            /* Cores per package - 1, a 6-bit field: leaf 0xB describes larger VMs. */
            uint32_t cores = MIN(nvcpus - 1, 63U);
            e->eax = (e->eax & ~CACHE_CORES_MASK) | (cores << CACHE_CORES_SHIFT);
        }
    }
}

/*
 * Extended topology (leaf 0xB, and 0x1F which adds levels we do not use):
 * subleaf 0 is the SMT level, 1 thread per core, so shifting the x2APIC id
 * by 0 bits gives the core; subleaf 1 is the core level, `shift` bits number
 * all vCPUs, shifting by them gives the package (always 0).  Later subleaves
 * are invalid (type 0, ECX[7:0] echoes the subleaf).  EDX is the x2APIC id in
 * every subleaf, also the ones KVM synthesises for subleaves not in the
 * table.  KVM considers the leaf implemented only if subleaf 1 exists;
 * without it the leaf is zeroed so guests use leaves 1 and 4 instead of
 * seeing an SMT level and nothing above it.
 */
static void set_topology_leaf(struct kvm_cpuid2 *c, uint32_t leaf, unsigned index, unsigned nvcpus,
                              unsigned shift)
{
    bool complete = find_exact(c, leaf, 0) && find_exact(c, leaf, 1);

    for (uint32_t i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->function != leaf)
            continue;
        if (!complete) {
            e->eax = e->ebx = e->ecx = e->edx = 0;
            continue;
        }
        /* Each entry describes one subleaf only. */
        e->flags |= KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
        e->edx = index;
        switch (e->index) {
        case 0:
            e->eax = 0;
            e->ebx = 1;
            e->ecx = (TOPO_LEVEL_SMT << 8) | 0;
            break;
        case 1:
            e->eax = shift;
            e->ebx = nvcpus;
            e->ecx = (TOPO_LEVEL_CORE << 8) | 1;
            break;
        default:
            e->eax = 0;
            e->ebx = 0;
            e->ecx = e->index & 0xffU;
            break;
        }
    }
}

/*
 * AMD: 0x80000008 ECX gives the core count (NC) and the APIC id bits used
 * for cores; 0x8000001E gives each vCPU's extended APIC id and core id, one
 * thread per core and one node.  Linux uses these instead of leaf 4/0xB.
 */
static void set_amd_topology(struct kvm_cpuid2 *c, unsigned index, unsigned nvcpus, unsigned shift)
{
    struct kvm_cpuid_entry2 *e = x86_cpuid_find(c, LEAF_ADDR_SIZES, 0);
    if (e)
        e->ecx = (e->ecx & ~(ADDR_ECX_NC_MASK | ADDR_ECX_IDSIZE_MASK)) |
                 ((nvcpus - 1) & ADDR_ECX_NC_MASK) | (shift << ADDR_ECX_IDSIZE_SHIFT);

    e = x86_cpuid_find(c, LEAF_AMD_TOPO, 0);
    if (e) {
        e->eax = index;        /* extended APIC id */
        e->ebx = index & 0xff; /* core id; EBX[15:8] = threads per core - 1 = 0 */
        e->ecx = 0;            /* node 0 of 1 */
        e->edx = 0;
    }
    set_cache_leaf(c, LEAF_AMD_CACHE, nvcpus, false);
}

/* Zero the leaf 0xD subleaves describing the state components in `mask`. */
static void zero_xstate_components(struct kvm_cpuid2 *c, uint64_t mask)
{
    for (uint32_t i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->function == LEAF_XSAVE && e->index >= 2 && e->index < 64 && ((mask >> e->index) & 1))
            e->eax = e->ebx = e->ecx = e->edx = 0;
    }
}

/*
 * Leaf 0xD.0 ECX: size of an XSAVE area holding every component in `xcr0`,
 * from each component's offset and size.  If a component's subleaf is
 * missing the size cannot be computed and KVM's value (`old`) stays.
 */
static uint32_t xsave_area_size(struct kvm_cpuid2 *c, uint64_t xcr0, uint32_t old)
{
    uint64_t size = XSAVE_MIN_SIZE;
    for (unsigned i = 2; i < 64; i++) {
        if (!((xcr0 >> i) & 1))
            continue;
        struct kvm_cpuid_entry2 *e = find_exact(c, LEAF_XSAVE, i);
        if (!e || e->eax == 0)
            return old;
        size = MAX(size, (uint64_t)e->ebx + e->eax);
    }
    return size <= old ? (uint32_t)size : old;
}

/*
 * Remove XSAVE state components of hidden features.  Guests size XSAVE
 * areas and enable XCR0 bits from leaf 0xD, and KVM refuses XSETBV with bits
 * outside it: dropping AVX-512's components makes AVX-512 unusable, not just
 * unadvertised, which a CPU template for migration needs.
 */
static void trim_xstate(struct kvm_cpuid2 *c, uint64_t xcr0_drop, bool drop_xss)
{
    struct kvm_cpuid_entry2 *d0 = find_exact(c, LEAF_XSAVE, 0);
    struct kvm_cpuid_entry2 *d1 = find_exact(c, LEAF_XSAVE, 1);

    if (d0 && xcr0_drop) {
        uint64_t xcr0 = d0->eax | ((uint64_t)d0->edx << 32);
        uint64_t gone = xcr0 & xcr0_drop;
        if (gone) {
            xcr0 &= ~gone;
            d0->eax = (uint32_t)xcr0;
            d0->edx = (uint32_t)(xcr0 >> 32);
            zero_xstate_components(c, gone);
            d0->ecx = xsave_area_size(c, xcr0, d0->ecx);
        }
    }
    /* Supervisor components (IA32_XSS) are only reachable through XSAVES. */
    if (d1 && drop_xss) {
        uint64_t xss = d1->ecx | ((uint64_t)d1->edx << 32);
        d1->ecx = d1->edx = 0;
        zero_xstate_components(c, xss);
    }
}

static void apply_policy(struct kvm_cpuid2 *c, const struct x86_cpu_policy *p)
{
    uint64_t xcr0_drop = 0;

    for (unsigned i = 0; i < ARRAY_SIZE(features); i++) {
        const struct feature *f = &features[i];
        if (!policy_test(p, i) || f->fixed)
            continue;
        clear_mask(c, f->leaf, f->subleaf, f->reg, 1U << f->bit);
        /* AMD repeats many leaf 1 EDX bits in 0x80000001 EDX (reserved on Intel). */
        if (f->leaf == LEAF_FEATURES && f->reg == EDX && ((AMD_EDX_MIRROR >> f->bit) & 1))
            clear_mask(c, LEAF_EXT_BASIC, 0, EDX, 1U << f->bit);
        xcr0_drop |= f->xstate;
    }

    if (policy_hides_index(p, feature_index("xsave"))) {
        /* Without XSAVE there is no XSAVE state to enumerate: clear leaf 0xD entirely. */
        for (uint32_t i = 0; i < c->nent; i++) {
            struct kvm_cpuid_entry2 *e = &c->entries[i];
            if (e->function == LEAF_XSAVE)
                e->eax = e->ebx = e->ecx = e->edx = 0;
        }
        return;
    }
    trim_xstate(c, xcr0_drop, policy_hides_index(p, feature_index("xsaves")));
}

int x86_cpuid_apply(struct kvm_cpuid2 *c, unsigned index, unsigned nvcpus,
                    const struct x86_cpu_policy *p)
{
    if (!c || c->nent > X86_CPUID_MAX_ENTRIES || nvcpus == 0 || nvcpus > X86_CPUID_MAX_VCPUS ||
        index >= nvcpus)
        return -EINVAL;

    unsigned shift = id_bits(nvcpus);

    set_leaf1(c, index, nvcpus);
    set_cache_leaf(c, LEAF_CACHE, nvcpus, true);
    /* OSPKE mirrors CR4.PKE, which is clear at reset (see OSXSAVE in set_leaf1). */
    clear_mask(c, LEAF_EXT_FEAT, 0, ECX, L7_ECX_OSPKE);
    /* Nested virtualisation stays off on AMD too (see set_leaf1); reserved on Intel. */
    clear_mask(c, LEAF_EXT_BASIC, 0, ECX, EXT_ECX_SVM);
    for (unsigned i = 0; i < ARRAY_SIZE(topology_leaves); i++)
        set_topology_leaf(c, topology_leaves[i], index, nvcpus, shift);
    if (vendor_is_amd(c))
        set_amd_topology(c, index, nvcpus, shift);

    /* Last, so a hidden feature stays hidden whatever the steps above set (e.g. ht). */
    if (p)
        apply_policy(c, p);
    return 0;
}
