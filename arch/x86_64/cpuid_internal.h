/*
 * Private to the CPUID code: what cpuid.c (per-vCPU tables, applying a
 * policy) and cpuid_features.c (the named feature table, policy parsing)
 * share.  Nothing outside arch/x86_64/cpuid*.c includes this.
 */
#ifndef ARCH_X86_64_CPUID_INTERNAL_H
#define ARCH_X86_64_CPUID_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/x86_64/cpuid.h"

/* Output registers of a CPUID leaf, as the feature table names them. */
enum { EAX, EBX, ECX, EDX };

/* Leaves wisp reads or rewrites. */
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

/* One row of the feature table: a name a user may hide, and where its bit lives. */
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
 * The feature table of cpuid_features.c, x86_cpuid_nfeatures rows; row i is
 * bit i of x86_cpu_policy.hidden.  x86_cpuid_apply() walks it to clear the
 * bits of hidden features.
 */
extern const struct feature *const x86_cpuid_features;
extern const unsigned x86_cpuid_nfeatures;

/* Does `p` hide table feature `i`?  (`i` must be a valid row.) */
static inline bool policy_test(const struct x86_cpu_policy *p, unsigned i)
{
    return (p->hidden[i / 64] >> (i % 64)) & 1;
}

#endif /* ARCH_X86_64_CPUID_INTERNAL_H */
