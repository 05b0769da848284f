/*
 * The only architecture interface generic code (vmm/) includes.  Each
 * architecture folder implements these functions; the Makefile picks the
 * folder, so generic code carries no #ifdef __x86_64__.
 */
#ifndef ARCH_ARCH_H
#define ARCH_ARCH_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"
#include "vmm/gmem.h"

struct vm;
struct vcpu;
struct vm_config;

/* Largest vCPU count the architecture code can describe to a guest. */
unsigned arch_max_vcpus(void);

/* Smallest guest RAM size the layout supports. */
uint64_t arch_min_memory(void);

/*
 * Split `mem_size` bytes of guest RAM into guest-physical ranges around the
 * architecture's holes.  `*n` is the capacity of `out` on entry, the count on exit.
 */
int arch_ram_layout(uint64_t mem_size, struct gmem_range *out, unsigned *n,
                    struct errbuf *err) __must_check;

/*
 * Where virtio-mmio device `index` lives: a page-exclusive MMIO window and
 * an interrupt line (GSI).  Decided here once, in a form the kernel command
 * line, ACPI tables and a device tree can all describe.  -ENOSPC if `index`
 * is beyond the slots the architecture has.
 */
int arch_virtio_slot(unsigned index, uint64_t *base, unsigned *gsi);

/*
 * Before any host resource exists (KVM included), what the architecture can
 * judge from the configuration alone, so that a user's mistake is reported
 * as such even on a host that could not run the VM (vmm/preflight.c).
 * arch_check_config: the vCPU count and memory size against the
 * architecture's limits.  arch_check_kernel: is the kernel file (`len`
 * bytes) in a format the architecture boots, as far as its headers tell.
 * Errors are WISP_EXIT_USAGE.
 */
int arch_check_config(const struct vm_config *cfg, struct errbuf *err) __must_check;
int arch_check_kernel(const uint8_t *img, size_t len, struct errbuf *err) __must_check;

/* VM-wide setup after guest memory exists: interrupt controllers, timers. */
int arch_vm_init(struct vm *vm, struct errbuf *err) __must_check;

/*
 * Create the architecture's built-in devices (on x86: COM1, i8042, the
 * debug-exit port) and register them on the VM's buses.
 */
int arch_create_devices(struct vm *vm, struct errbuf *err) __must_check;

/* Load kernel, initrd and command line and build the boot-time tables. */
int arch_load_guest(struct vm *vm, struct errbuf *err) __must_check;

/* Per-vCPU setup: CPUID, MSRs, registers, FPU.  Runs before the vCPU thread starts. */
int arch_vcpu_init(struct vm *vm, struct vcpu *vcpu, struct errbuf *err) __must_check;

/* Free what arch_vm_init, arch_create_devices and arch_load_guest made.  Safe to call twice. */
void arch_vm_destroy(struct vm *vm);

#endif /* ARCH_ARCH_H */
