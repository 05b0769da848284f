/*
 * Model-specific registers a vCPU starts with.  KVM's reset values are those
 * of a processor after power-on, before firmware ran; a PC's firmware leaves
 * some MSRs set up for the OS (fast strings, MTRRs), and wisp has no
 * firmware, so it writes those itself.  The syscall and sysenter MSRs are
 * written too, so every vCPU starts from the same explicit state.
 */
#ifndef ARCH_X86_64_MSR_H
#define ARCH_X86_64_MSR_H

#include <stdint.h>

#include <linux/kvm.h>

#include "vmm/error.h"
#include "vmm/util.h"

/* MSR numbers (Intel SDM vol. 4; AMD APM vol. 2 for the syscall MSRs). */
#define X86_MSR_IA32_TSC           0x10U
#define X86_MSR_IA32_APIC_BASE     0x1bU
#define X86_MSR_IA32_SYSENTER_CS   0x174U
#define X86_MSR_IA32_SYSENTER_ESP  0x175U
#define X86_MSR_IA32_SYSENTER_EIP  0x176U
#define X86_MSR_IA32_MISC_ENABLE   0x1a0U
#define X86_MSR_IA32_PAT           0x277U
#define X86_MSR_MTRR_FIRST         0x200U /* MTRR MSRs occupy 0x200..0x2ff */
#define X86_MSR_MTRR_LAST          0x2ffU
#define X86_MSR_IA32_MTRR_DEF_TYPE 0x2ffU
#define X86_MSR_EFER               0xc0000080U
#define X86_MSR_STAR               0xc0000081U
#define X86_MSR_LSTAR              0xc0000082U
#define X86_MSR_CSTAR              0xc0000083U
#define X86_MSR_SYSCALL_MASK       0xc0000084U
#define X86_MSR_KERNEL_GS_BASE     0xc0000102U

/* IA32_MISC_ENABLE bits. */
#define X86_MISC_ENABLE_FAST_STRING  (1ULL << 0)
#define X86_MISC_ENABLE_BTS_UNAVAIL  (1ULL << 11) /* read-only on hardware */
#define X86_MISC_ENABLE_PEBS_UNAVAIL (1ULL << 12) /* read-only on hardware */

/* IA32_MTRR_DEF_TYPE: MTRRs enabled (bit 11), default memory type write-back (6). */
#define X86_MTRR_DEF_TYPE_BOOT 0x806ULL
/* IA32_PAT power-on value: WB, WT, UC-, UC in entries 0-3 and again in 4-7. */
#define X86_PAT_POWER_ON 0x0007040600070406ULL

/* Capacity that always holds every default. */
#define X86_MSR_DEFAULTS_MAX 16U

/*
 * Write the boot MSR values into out[0..cap) and return how many defaults
 * there are (which may exceed `cap`, as with snprintf; x86_msr_defaults(NULL,
 * 0) just counts).  The list: SYSENTER_CS/ESP/EIP, STAR, LSTAR, CSTAR,
 * SYSCALL_MASK, KERNEL_GS_BASE and TSC at 0; MISC_ENABLE with fast strings;
 * MTRR_DEF_TYPE 0x806 (without it the guest runs with all memory uncached);
 * PAT at its power-on value.
 */
unsigned x86_msr_defaults(struct kvm_msr_entry *out, unsigned cap);

/* Short name of an MSR wisp sets ("IA32_PAT"), or "MSR" for others; for messages. */
const char *x86_msr_name(uint32_t index);

/*
 * Program the defaults into vCPU `vcpu_fd`.  Call after KVM_SET_CPUID2.
 *
 * MSRs KVM does not list in KVM_GET_MSR_INDEX_LIST (read once from `kvm_fd`
 * and cached for the process) are skipped, so the list works on every KVM
 * version and vendor; the MTRRs are the exception: KVM always emulates them
 * but never lists them, and leaving MTRR_DEF_TYPE at 0 would make all guest
 * memory uncached.  MISC_ENABLE keeps the read-only "BTS/PEBS unavailable"
 * bits KVM set at reset.  Errors (WISP_EXIT_FAILURE) name the MSR KVM refused.
 */
int x86_msrs_setup(int kvm_fd, int vcpu_fd, struct errbuf *err) __must_check;

/*
 * KVM_GET_MSR_INDEX_LIST from `kvm_fd`, read once and cached for the process
 * (it depends only on the KVM module).  0 with *out set (never freed), or
 * -errno with `err` set (WISP_EXIT_HOST).
 */
int x86_msr_index_list(int kvm_fd, const struct kvm_msr_list **out,
                       struct errbuf *err) __must_check;

/*
 * The MTRR MSRs KVM emulates on every host but leaves out of the index list:
 * MTRRdefType, the 11 fixed-range MSRs and 8 variable base/mask pairs.  A
 * vCPU's saved state must carry them too.
 */
#define X86_MSR_MTRR_COUNT 28U
extern const uint32_t x86_msr_mtrrs[X86_MSR_MTRR_COUNT];

#endif /* ARCH_X86_64_MSR_H */
