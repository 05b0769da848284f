/*
 * Thin KVM helpers shared by the VM core and architecture code: opening
 * /dev/kvm with clear errors, capability checks, memory slots and irqfds.
 */
#ifndef VMM_KVM_H
#define VMM_KVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"

struct vm;

/*
 * Open /dev/kvm, check the API version and the capabilities wisp relies on,
 * create the VM.  Fills vm->kvm_fd, vm_fd, vcpu_mmap_size, kvm_max_vcpus.
 * Errors are WISP_EXIT_HOST ("cannot open /dev/kvm: Permission denied", ...).
 */
int kvm_open_vm(struct vm *vm, struct errbuf *err) __must_check;

/* Register every guest memory region as a KVM memory slot. */
int kvm_map_memory(struct vm *vm, struct errbuf *err) __must_check;

/*
 * Dirty logging of memory slot `slot` (= guest memory region index): turn
 * KVM_MEM_LOG_DIRTY_PAGES on or off, and fetch-and-clear the bitmap of
 * pages written since the last fetch (`words` must be the slot's page count
 * rounded up to 64 bits).  0 or -errno.  Any thread.
 */
int kvm_slot_set_logging(struct vm *vm, unsigned slot, bool on) __must_check;
int kvm_slot_get_dirty_log(struct vm *vm, unsigned slot, uint64_t *bitmap,
                           size_t words) __must_check;

/*
 * Device memory slots (vmm/services.h mem_slot_add): KVM slots numbered
 * from KVM_SLOT_DEVICE_FIRST (after every guest RAM region), at most
 * KVM_SLOTS_DEVICE of them.  Add maps [hva, hva + size) at `gpa` (page
 * aligned, not over guest RAM) and returns the slot in *slot; remove
 * deletes it (size 0).  0 or -errno (-ENOSPC: all taken).  Any thread.
 */
#define KVM_SLOT_DEVICE_FIRST 32U
#define KVM_SLOTS_DEVICE      32U
int kvm_dev_slot_add(struct vm *vm, uint64_t gpa, uint64_t size, void *hva,
                     unsigned *slot) __must_check;
void kvm_dev_slot_remove(struct vm *vm, unsigned slot);

/* Bind (assign) or unbind an existing eventfd to `gsi` (KVM_IRQFD). 0 or -errno. */
int kvm_irqfd_bind(struct vm *vm, int fd, unsigned gsi, bool assign) __must_check;

/* Create an eventfd bound to `gsi` with KVM_IRQFD; *fd receives it. */
int kvm_irqfd_create(struct vm *vm, unsigned gsi, int *fd, struct errbuf *err) __must_check;

/*
 * Bind (assign = true) or unbind eventfd `fd` to guest MMIO writes of `len`
 * bytes (1, 2, 4 or 8) at guest-physical `addr` whose value equals
 * `datamatch` (KVM_IOEVENTFD with DATAMATCH): KVM completes such a write by
 * signalling the eventfd, without an exit to user space.  Other writes to
 * the address exit as ordinary MMIO.  Unbinding needs the same addr, len,
 * datamatch and fd as the binding; closing the fd does not unbind it.
 * Returns 0 or -errno: -EINVAL (bad len or fd), -EEXIST (already bound),
 * -ENOENT (unbinding something not bound), -ENOSPC (KVM's limit reached).
 */
int kvm_ioeventfd(struct vm *vm, uint64_t addr, unsigned len, uint64_t datamatch, int fd,
                  bool assign) __must_check;

/* Pulse the line behind an irqfd (edge-triggered interrupt). */
void kvm_irq_pulse(int irqfd);

/* Path of the KVM device; tests may override it with WISP_KVM_DEV. */
const char *kvm_device_path(void);

#endif /* VMM_KVM_H */
