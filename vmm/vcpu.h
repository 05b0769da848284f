/*
 * vCPU threads.  Each vCPU has its own thread running KVM_RUN and handling
 * the exits that reach user space (port I/O, MMIO, shutdown, system events,
 * failures).  The loop fails closed: an exit it does not understand stops
 * the VM with an error rather than being skipped.
 */
#ifndef VMM_VCPU_H
#define VMM_VCPU_H

#include <pthread.h>
#include <stdbool.h>

#include "vmm/error.h"

struct vm;
struct kvm_run;

struct vcpu {
    struct vm *vm;
    unsigned index; /* 0 = boot processor */
    int fd;
    struct kvm_run *run; /* shared page(s) with KVM, vm->vcpu_mmap_size bytes */
    pthread_t thread;
    bool thread_started;
};

/* Create the KVM vCPU and map its run area; arch setup is separate. */
int vcpu_create(struct vm *vm, struct vcpu *v, unsigned index, struct errbuf *err) __must_check;

/* Start the vCPU thread. */
int vcpu_start(struct vcpu *v, struct errbuf *err) __must_check;

/* Make a running vCPU leave KVM_RUN promptly (used when the VM stops). */
void vcpu_kick(struct vcpu *v);

/* Join the thread (if started), unmap and close. */
void vcpu_destroy(struct vcpu *v);

/* Install the signal used by vcpu_kick(); call once before starting vCPUs. */
int vcpu_signals_init(void) __must_check;

#endif /* VMM_VCPU_H */
