/*
 * Per-vCPU CPUID tables (see cpuid.h): reading KVM's supported table, and
 * rewriting each vCPU's copy of it (topology, OS-state bits, the hypervisor
 * bit, no nested virtualisation) before the features a policy hides are
 * cleared.  The named feature table and the policy parser are in
 * cpuid_features.c.  Bit numbers follow the Intel SDM and AMD APM CPUID
 * chapters.
 */
#include "arch/x86_64/cpuid_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* Leaf 1. */
#define L1_EBX_APIC_ID_SHIFT  24
#define L1_EBX_NLOGICAL_SHIFT 16
#define L1_ECX_VMX            (1U << 5)
#define L1_ECX_TSC_DEADLINE   (1U << 24)
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
    unsigned n = 128; /* enough for current hosts in one call (76 seen); E2BIG doubles it */

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

    x86_cpuid_offer_tsc_deadline(c, ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) >
                                        0);
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

void x86_cpuid_offer_tsc_deadline(struct kvm_cpuid2 *c, bool kvm_has_it)
{
    struct kvm_cpuid_entry2 *e = x86_cpuid_find(c, LEAF_FEATURES, 0);
    if (!e)
        return;
    if (kvm_has_it)
        e->ecx |= L1_ECX_TSC_DEADLINE;
    else
        e->ecx &= ~L1_ECX_TSC_DEADLINE;
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

    for (unsigned i = 0; i < x86_cpuid_nfeatures; i++) {
        const struct feature *f = &x86_cpuid_features[i];
        if (!policy_test(p, i) || f->fixed)
            continue;
        clear_mask(c, f->leaf, f->subleaf, f->reg, 1U << f->bit);
        /* AMD repeats many leaf 1 EDX bits in 0x80000001 EDX (reserved on Intel). */
        if (f->leaf == LEAF_FEATURES && f->reg == EDX && ((AMD_EDX_MIRROR >> f->bit) & 1))
            clear_mask(c, LEAF_EXT_BASIC, 0, EDX, 1U << f->bit);
        xcr0_drop |= f->xstate;
    }

    if (x86_cpu_policy_hides(p, "xsave")) {
        /* Without XSAVE there is no XSAVE state to enumerate: clear leaf 0xD entirely. */
        for (uint32_t i = 0; i < c->nent; i++) {
            struct kvm_cpuid_entry2 *e = &c->entries[i];
            if (e->function == LEAF_XSAVE)
                e->eax = e->ebx = e->ecx = e->edx = 0;
        }
        return;
    }
    trim_xstate(c, xcr0_drop, x86_cpu_policy_hides(p, "xsaves"));
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
