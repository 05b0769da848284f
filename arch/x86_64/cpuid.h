/*
 * CPUID for x86_64 guests: what each vCPU is told about the processor it
 * runs on, and a policy of features to hide from it.
 *
 * The starting point is KVM_GET_SUPPORTED_CPUID (what KVM can virtualise on
 * this host).  For each vCPU a copy of that table is adjusted: topology
 * (APIC ids, core counts, cache sharing) is rewritten to describe `nvcpus`
 * single-threaded cores in one package, bits that describe OS state (OSXSAVE,
 * OSPKE) start clear, the hypervisor bit is set, nested virtualisation is
 * never offered, and the features named in a policy are removed.
 *
 * The policy is the first step toward CPU templates for migration: a guest
 * that may move between hosts must only see features all of them have.  It
 * is also practical on hosts that cannot virtualise an instruction well (a
 * `-xsave` policy keeps guests off XSAVE/XRSTOR).  Only removal is supported:
 * adding a feature the host lacks cannot work.
 *
 * Hiding a feature removes it from CPUID, which every well-behaved guest
 * honours.  Where KVM can also make the instructions fault it does so from
 * the guest's CPUID (XSAVE state components via XCR0, CR4-controlled features
 * such as pcid, fsgsbase, smep, smap, umip, pku, la57, and VMX-controlled ones
 * such as rdpid, invpcid, waitpkg); plain instructions (popcnt, aes, bmi, ...)
 * keep working for a guest that ignores CPUID.
 */
#ifndef ARCH_X86_64_CPUID_H
#define ARCH_X86_64_CPUID_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "vmm/error.h"
#include "vmm/util.h"

/*
 * Most vCPUs the CPUID topology can describe: leaf 1 carries the APIC id and
 * the logical processor count in 8-bit fields.
 */
#define X86_CPUID_MAX_VCPUS 255U

/* Largest table wisp accepts from KVM (KVM itself allows 256 entries). */
#define X86_CPUID_MAX_ENTRIES 4096U

/* Room for this many table features (one bit each). */
#define X86_CPU_POLICY_WORDS 4

/*
 * Features to hide.  Bit i of `hidden` stands for feature i of the table in
 * cpuid_features.c (see x86_cpu_feature_name()).  All zeroes hides nothing, so a
 * zero-initialised policy is valid.  x86_cpu_policy_parse() stores the
 * closure: features that depend on a hidden feature are hidden too.
 */
struct x86_cpu_policy {
    uint64_t hidden[X86_CPU_POLICY_WORDS];
};

/*
 * Parse a feature mask such as "-xsave,-avx2" into `p`, replacing what `p`
 * held.  Items are separated by commas; blanks around an item are ignored;
 * names are case-insensitive and also accept common Linux /proc/cpuinfo
 * spellings (pni, sha_ni, lzcnt, ...).  NULL or "" hides nothing.
 *
 * Refused, with WISP_EXIT_USAGE and a message naming the item: "+name"
 * (adding features is not supported), a name without '-', an unknown name,
 * an empty item, and features that cannot be hidden (the message says why;
 * e.g. lm, nx, the x86-64 baseline).  On failure `p` is left unchanged.
 *
 * Hiding a feature also hides those that depend on it; in particular "-xsave"
 * hides osxsave, avx and everything built on it (avx2, fma, f16c, avx512*,
 * vaes, vpclmulqdq, amx*), mpx, pku, xsaveopt, xsavec, xgetbv1, xsaves, and
 * x86_cpuid_apply() then clears leaf 0xD entirely.
 */
int x86_cpu_policy_parse(const char *spec, struct x86_cpu_policy *p,
                         struct errbuf *err) __must_check;

/* Does `p` hide the feature called `name` (aliases accepted)?  False for unknown names. */
bool x86_cpu_policy_hides(const struct x86_cpu_policy *p, const char *name);

/*
 * Name of table feature `i` (0, 1, ...), or NULL past the end.  Lets help
 * text and tests walk every known feature.
 */
const char *x86_cpu_feature_name(unsigned i);

/* Why feature `i` cannot be hidden, or NULL if it can (or `i` is past the end). */
const char *x86_cpu_feature_fixed_reason(unsigned i);

/*
 * Read KVM_GET_SUPPORTED_CPUID from the /dev/kvm fd `kvm_fd` into a new
 * allocation (*out, freed by the caller with free()).  The table is grown
 * and the ioctl retried while KVM answers E2BIG.
 *
 * Recent KVM reports the topology leaves 0xB and 0x1F as a single zeroed
 * subleaf 0, leaving the topology to the VMM.  KVM treats such a leaf as
 * implemented only if subleaf 1 exists, so a zeroed subleaf 1 is appended
 * here when missing; x86_cpuid_apply() then fills both.  Leaf 1's
 * TSC-deadline bit follows KVM_CAP_TSC_DEADLINE_TIMER
 * (x86_cpuid_offer_tsc_deadline()).
 * Errors: WISP_EXIT_HOST.
 */
int x86_cpuid_get_supported(int kvm_fd, struct kvm_cpuid2 **out, struct errbuf *err) __must_check;

/*
 * The TSC-deadline LAPIC timer (leaf 1 ECX bit 24) is emulated by KVM's
 * local APIC, not a property of the host CPU, so KVM announces it with
 * KVM_CAP_TSC_DEADLINE_TIMER and may leave it out of
 * KVM_GET_SUPPORTED_CPUID.  Set the bit in `c` if `kvm_has_it`, clear it
 * otherwise; x86_cpuid_get_supported() calls this with the capability, so
 * the supported table offers it and a policy can hide it ("-tsc_deadline")
 * like any other feature.  Without it Linux calibrates its LAPIC timer
 * against the PIT.  A table without leaf 1 is left alone.
 */
void x86_cpuid_offer_tsc_deadline(struct kvm_cpuid2 *c, bool kvm_has_it);

/*
 * Copy a table (header and its `nent` entries) into a new allocation, freed
 * with free().  NULL if out of memory or if nent > X86_CPUID_MAX_ENTRIES.
 */
struct kvm_cpuid2 *x86_cpuid_dup(const struct kvm_cpuid2 *c);

/*
 * The entry for (leaf, subleaf), matched as KVM matches: `subleaf` is
 * compared only for entries flagged KVM_CPUID_FLAG_SIGNIFCANT_INDEX.
 * NULL if there is none.
 */
struct kvm_cpuid_entry2 *x86_cpuid_find(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t subleaf);

/*
 * Turn `c`, a copy of the supported table, into the CPUID of vCPU `index`
 * (its APIC id, which equals the KVM vCPU id) in a VM of `nvcpus` vCPUs, and
 * hide the features of `p` (NULL: hide nothing).  The table is modified in
 * place and never grows; leaves it does not contain are skipped.
 *
 * Topology: one package of `nvcpus` cores with one thread each.
 *   leaf 1     EBX[31:24] APIC id, EBX[23:16] nvcpus, EDX.HTT iff nvcpus > 1,
 *              ECX.hypervisor set, ECX.OSXSAVE clear, ECX.VMX clear
 *   leaf 4     per cache: EAX[31:26] nvcpus - 1 (at most 63), EAX[25:14] 0
 *              for L1/L2 (private to a core), nvcpus - 1 for L3 (shared)
 *   leaf 7     ECX.OSPKE clear
 *   leaf 0xB,  subleaf 0 SMT (shift 0, 1 thread), subleaf 1 core (shift =
 *   0x1F       bits for nvcpus ids, nvcpus), later subleaves invalid; EDX the
 *              x2APIC id everywhere.  A leaf without subleaf 1 is zeroed
 *              (guests then fall back to leaves 1 and 4).
 *   AMD hosts  0x80000008 ECX[7:0] nvcpus - 1 and ECX[15:12] id bits,
 *              0x8000001D cache sharing as leaf 4, 0x8000001E ids, SVM clear
 * Leaves 6 (power management) and 0x40000000.. (KVM signature and features)
 * are kept as KVM reports them.
 *
 * Returns 0, or -EINVAL if c is NULL, nvcpus is 0 or above
 * X86_CPUID_MAX_VCPUS, or index >= nvcpus.
 */
int x86_cpuid_apply(struct kvm_cpuid2 *c, unsigned index, unsigned nvcpus,
                    const struct x86_cpu_policy *p) __must_check;

#endif /* ARCH_X86_64_CPUID_H */
