/*
 * The VM control interface: what a controller outside the VM core (the
 * control API server in vmm/api/) may ask of a running VM.  Like
 * vmm/services.h for the layers below, it is a struct of function pointers
 * with an opaque context that vm.c fills (vm_control_init), so the API layer
 * never sees struct vm, vCPU threads or locks, and its unit tests can pass
 * fakes.  This header must not include vmm/vm.h.
 */
#ifndef VMM_CONTROL_H
#define VMM_CONTROL_H

#include <stdint.h>

/* What a controller sees of the VM's run state. */
enum vm_run_state {
    VM_STATE_RUNNING = 0, /* vCPUs run (or may run) guest code */
    VM_STATE_PAUSED,      /* every vCPU is parked outside KVM_RUN */
    VM_STATE_STOPPING,    /* a stop was requested; the VM is going away */
};

/* How long vm_pause() waits for every vCPU to leave KVM_RUN and park. */
#define VM_PAUSE_TIMEOUT_MS 2000

struct vm_control {
    void *ctx; /* passed back to every function below */
    /*
     * Stop every vCPU outside KVM_RUN and wait (at most timeout_ms) until
     * each one has parked.  Any thread but a vCPU thread.  0 once paused
     * (also if it already was); -ETIMEDOUT if a vCPU did not acknowledge in
     * time (the VM is then resumed, as before the call); -ESHUTDOWN if the
     * VM is stopping.  Device back ends on the main thread keep serving
     * requests already in flight; the guest submits no new ones.
     */
    int (*pause)(void *ctx, unsigned timeout_ms);
    /* Let parked vCPUs run again.  0 (also if not paused); -ESHUTDOWN if stopping. */
    int (*resume)(void *ctx);
    enum vm_run_state (*state)(void *ctx);
    /* Static facts for instance and machine information. */
    unsigned vcpus;
    uint64_t mem_bytes;
};

/* "Running", "Paused", "Stopping" (Firecracker's spelling for the first two). */
static inline const char *vm_run_state_name(enum vm_run_state s)
{
    return s == VM_STATE_PAUSED ? "Paused" : s == VM_STATE_STOPPING ? "Stopping" : "Running";
}

#endif /* VMM_CONTROL_H */
