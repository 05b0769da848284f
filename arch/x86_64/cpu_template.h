/*
 * CPU templates: a named, fixed set of CPU features a guest sees, whatever
 * the host has beyond it, so a VM can move between hosts whose CPUs differ.
 * A VM started with template T on host A may migrate to host B exactly when
 * B can offer every feature of T; the destination checks that by building
 * the same template (x86_cpu_template_policy) before it accepts any state.
 *
 * A template is an allow-list over the named feature table of
 * cpuid_features.c: every feature that can be hidden and is not on the list
 * is hidden.  Features that cannot be hidden (the x86-64 baseline, the
 * APIC, ...) are in every template.  "host" is no template: the guest sees
 * all KVM offers.
 *
 *   x86-64-v2  the x86-64-v2 ISA level (SSE3, SSSE3, SSE4.1/4.2, POPCNT,
 *              CMPXCHG16B, LAHF/SAHF), the x2APIC KVM emulates everywhere,
 *              and the legacy features every x86-64 host has (PAT, MTRR,
 *              CLFLUSH, MCE/MCA, SEP, DE, PSE-36)
 *   x86-64-v3  v2 plus AVX, AVX2, BMI1/2, F16C, FMA, LZCNT, MOVBE and XSAVE
 *
 * The TSC-deadline timer is hidden: KVM offers it only where the host CPU
 * has it (not on most AMD hosts), and a guest that loses it after a move
 * would lose its timer; Linux then uses the LAPIC's one-shot mode.
 *
 * Bits outside the feature table (mainly speculation-control and
 * vulnerability enumeration bits such as SPEC_CTRL and SSBD) keep the
 * host's values: hiding a mitigation control from a guest is a security
 * downgrade, and KVM reports only what the host can back.  The vendor,
 * family and model strings also stay the host's.
 */
#ifndef ARCH_X86_64_CPU_TEMPLATE_H
#define ARCH_X86_64_CPU_TEMPLATE_H

#include <linux/kvm.h>

#include "arch/x86_64/cpuid.h"
#include "vmm/error.h"
#include "vmm/util.h"

/* Name of template `i` (0, 1, ...), NULL past the end; "host" is not listed. */
const char *x86_cpu_template_name(unsigned i);

/* Is `name` "host" or a known template? */
bool x86_cpu_template_known(const char *name);

/*
 * The policy of template `name` on a host whose KVM offers `supported`: the
 * features it hides.  NULL or "host" hides nothing.  Errors:
 * WISP_EXIT_USAGE for an unknown name (the message lists the templates),
 * WISP_EXIT_HOST when the host lacks a feature of the template (the message
 * names the first one), with `p` unchanged.
 */
int x86_cpu_template_policy(const char *name, const struct kvm_cpuid2 *supported,
                            struct x86_cpu_policy *p, struct errbuf *err) __must_check;

#endif /* ARCH_X86_64_CPU_TEMPLATE_H */
