/*
 * x86_64 VM-wide state KVM keeps in the kernel, for snapshot and migration:
 * the two 8259 PICs, the IOAPIC, the PIT (i8254) and the kvmclock base.  Like
 * vcpu_state.h, the ioctl side (x86_vm_state_get/_set) and the byte format
 * (x86_vm_state_encode/_decode, one vstate section "x86-vm") are separate,
 * and decode treats its input as hostile.  The GSI routing table is not
 * here: the VM core rebuilds it from the configuration.
 */
#ifndef ARCH_X86_64_VM_STATE_H
#define ARCH_X86_64_VM_STATE_H

#include <stdint.h>

#include <linux/kvm.h>

#include "migration/vstate.h"
#include "vmm/error.h"
#include "vmm/util.h"

#define X86_VM_STATE_VERSION     1U
#define X86_VM_STATE_IOAPIC_PINS 24U /* KVM_IOAPIC_NUM_PINS */

struct x86_vm_state {
    struct kvm_pic_state pic[2]; /* master, slave */
    struct kvm_ioapic_state ioapic;
    struct kvm_pit_state2 pit;
    uint64_t clock_ns; /* kvmclock at the time of saving */
};

/* Read the in-kernel irqchip, PIT and clock of a VM whose vCPUs are all
 * parked.  Returns 0 or -errno with err naming the ioctl. */
int x86_vm_state_get(int vm_fd, struct x86_vm_state *s, struct errbuf *err) __must_check;

/* Load `s` into a VM that has its irqchip and PIT created and no vCPU
 * running yet.  Returns 0 or -errno with err naming what KVM refused. */
int x86_vm_state_set(int vm_fd, const struct x86_vm_state *s, struct errbuf *err) __must_check;

/* Append `s` as the section "x86-vm".  Returns o->err. */
int x86_vm_state_encode(const struct x86_vm_state *s, struct vstate_out *o) __must_check;

/* Read one "x86-vm" section.  Returns 0 or -errno with a one-line message. */
int x86_vm_state_decode(struct vstate_in *in, struct x86_vm_state *s,
                        struct errbuf *err) __must_check;

#endif /* ARCH_X86_64_VM_STATE_H */
