/*
 * x86_64 vCPU state for snapshot and migration: everything KVM keeps about
 * one vCPU that a guest would notice losing, read out of a paused vCPU, put
 * into a blob in the project's state format (migration/vstate.h), and put
 * back into a fresh vCPU of the same CPU template.
 *
 * Three layers, so each can be tested without the others:
 *   x86_vcpu_state_get/_set    KVM ioctls only (vcpu_state.c)
 *   x86_vcpu_state_encode/_decode   the byte format only (vcpu_state_codec.c);
 *                              decode treats the blob as hostile: every count
 *                              and length is bounded before use
 *
 * What moves: general registers, special registers (segments, control
 * registers, EFER, APIC base, pending interrupt bitmap), the XSAVE area (x87,
 * SSE, AVX and whatever else the CPU template enables; KVM_GET_XSAVE2 when
 * KVM offers a larger area), XCRs, debug registers, every MSR in KVM's
 * save/restore list that this vCPU can read, the local APIC register page,
 * pending exceptions/interrupts/NMI/SMI (vCPU events), the MP state
 * (running, halted, waiting for SIPI) and the TSC frequency.  CPUID is not
 * state: it comes from the CPU template, set before x86_vcpu_state_set().
 */
#ifndef ARCH_X86_64_VCPU_STATE_H
#define ARCH_X86_64_VCPU_STATE_H

#include <stdint.h>

#include <linux/kvm.h>

#include "migration/vstate.h"
#include "vmm/error.h"
#include "vmm/util.h"

/* Bounds a blob is checked against (a real vCPU has ~50 MSRs and <= 12 KiB of XSAVE). */
#define X86_VCPU_STATE_MAX_MSRS  1024U
#define X86_VCPU_STATE_MAX_XSAVE (64U * 1024)
#define X86_VCPU_STATE_MAX_XCRS  16U /* KVM_MAX_XCRS */
#define X86_VCPU_STATE_LAPIC     1024U
#define X86_VCPU_STATE_VERSION   1U

struct x86_msr_value {
    uint32_t index;
    uint64_t data;
};

struct x86_vcpu_state {
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    uint32_t xsave_len; /* bytes of xsave in use: 4096, or KVM_CAP_XSAVE2's size */
    uint8_t xsave[X86_VCPU_STATE_MAX_XSAVE];
    uint32_t nxcrs;
    struct kvm_xcr xcrs[X86_VCPU_STATE_MAX_XCRS];
    struct kvm_debugregs debugregs;
    uint32_t nmsrs;
    struct x86_msr_value msrs[X86_VCPU_STATE_MAX_MSRS];
    uint8_t lapic[X86_VCPU_STATE_LAPIC];
    struct kvm_vcpu_events events;
    uint32_t mp_state;
    uint32_t tsc_khz;
};

/*
 * The MSRs to move, from KVM_GET_MSR_INDEX_LIST on the /dev/kvm fd: fetched
 * once per VM and shared by its vCPUs.  Some listed MSRs exist only with
 * certain CPUID bits; x86_vcpu_state_get() skips those the vCPU cannot read.
 */
struct x86_msr_list {
    uint32_t n;
    uint32_t index[X86_VCPU_STATE_MAX_MSRS];
};

/* Fill `out` from KVM.  Returns 0 or -errno (and err: WISP_EXIT_FAILURE). */
int x86_msr_list_get(int kvm_fd, struct x86_msr_list *out, struct errbuf *err) __must_check;

/*
 * Read the state of a vCPU that is not running (its thread is parked out of
 * KVM_RUN).  The caller must first let KVM complete the exit it last
 * returned for (KVM_RUN with kvm_run.immediate_exit set, which returns
 * EINTR without entering the guest): until then a port or MMIO access is
 * half done and RIP still points at its instruction.  Needs the in-kernel irqchip (for the LAPIC).
 * Returns 0 or -errno with err naming the ioctl that failed.
 */
int x86_vcpu_state_get(int kvm_fd, int vcpu_fd, const struct x86_msr_list *msrs,
                       struct x86_vcpu_state *s, struct errbuf *err) __must_check;

/*
 * Load `s` into a vCPU created with the same CPU template (CPUID set) and
 * not yet running, in the order KVM's checks need: special registers
 * before general ones, XSAVE and XCRs, MSRs, MP state, LAPIC after the APIC
 * base (then IA32_TSC_DEADLINE, which KVM only keeps once the LAPIC timer is
 * in TSC-deadline mode), events last.  The TSC frequency is set when it differs from this
 * host's (refused if KVM cannot scale it).  Returns 0 or -errno with err
 * naming what KVM refused (an MSR by index).
 */
int x86_vcpu_state_set(int kvm_fd, int vcpu_fd, const struct x86_vcpu_state *s,
                       struct errbuf *err) __must_check;

/* Append `s` as one section "x86-vcpu" to `o`.  Returns o->err. */
int x86_vcpu_state_encode(const struct x86_vcpu_state *s, struct vstate_out *o) __must_check;

/*
 * Read one "x86-vcpu" section from `in` into `s`.  Every count and length
 * is checked against the bounds above before it is used; values KVM checks
 * itself (register contents) are passed on as they are.  Returns 0 or
 * -EBADMSG / -ENOSPC / -EPROTO with a one-line message in err.
 */
int x86_vcpu_state_decode(struct vstate_in *in, struct x86_vcpu_state *s,
                          struct errbuf *err) __must_check;

#endif /* ARCH_X86_64_VCPU_STATE_H */
