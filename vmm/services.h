/*
 * What the VM core offers the layers below it.  Architecture code and
 * built-in devices need a few things from the VM (put a device on a bus,
 * stop the VM, an interrupt line) but must not call vm.c: that would make
 * the layers a circle, and those layers could then not be built or tested
 * without the whole VM.  vm.c fills one struct vm_services and hands it
 * down (arch_vm_init); callers see only function pointers and an opaque
 * context, so a test can pass fakes.
 *
 * This header is the upward boundary: arch/ and devices/ may include it,
 * and it must never include vmm/vm.h.
 */
#ifndef VMM_SERVICES_H
#define VMM_SERVICES_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/bus.h"
#include "vmm/error.h"

/* Why the VM stopped. */
enum vm_stop_reason {
    VM_RUNNING = 0,
    VM_STOP_POWEROFF,   /* guest asked to power off */
    VM_STOP_RESET,      /* guest reset (i8042, triple fault, system event) */
    VM_STOP_DEBUG_EXIT, /* guest wrote the debug-exit port */
    VM_STOP_ERROR,      /* VMM or KVM failure */
    VM_STOP_SIGNAL,     /* host asked us to stop (SIGTERM, SIGINT, SIGHUP) */
    VM_STOP_MOVED,      /* the VM's state went elsewhere (snapshot and stop, migration done) */
};

struct vm_services {
    /* Passed back as the first argument of every function below. */
    void *ctx;
    /*
     * Claim guest port range [base, base + len) for a device: accesses call
     * `read`/`write` with `opaque` and the offset into the range.  Only
     * before any vCPU runs.  `name` must be a static string.  A range that
     * overlaps another one is a wisp bug: the VMM aborts (vmm_fatal).
     */
    void (*register_pio)(void *ctx, uint16_t base, uint16_t len, const char *name, bus_read_fn read,
                         bus_write_fn write, void *opaque);
    /* The same for guest-physical MMIO range [base, base + len). */
    void (*register_mmio)(void *ctx, uint64_t base, uint64_t len, const char *name,
                          bus_read_fn read, bus_write_fn write, void *opaque);
    /*
     * Ask the VM to stop; any thread, async-signal-safe.  The first caller's
     * reason and exit code win, later calls are ignored.
     */
    void (*request_stop)(void *ctx, enum vm_stop_reason reason, int exit_code);
    /*
     * Create an eventfd that raises interrupt line `gsi` (edge) when
     * written, bound with KVM_IRQFD; *fd receives it and the caller owns
     * (closes) it.  0 or -errno, with the reason in `err`.
     */
    int (*irqfd_create)(void *ctx, unsigned gsi, int *fd, struct errbuf *err);
    /*
     * Bind (assign) or unbind the caller's eventfd `fd` to `gsi` with
     * KVM_IRQFD; a bind of an eventfd already signalled injects once.  Any
     * thread.  0 or -errno.
     */
    int (*irqfd_bind)(void *ctx, int fd, unsigned gsi, bool assign);
    /*
     * Map host memory [hva, hva + size) at guest-physical `gpa` as a KVM
     * memory slot (a passthrough BAR's mmap-able part): page aligned, never
     * over guest RAM.  The core owns the slot numbers and bounds how many
     * devices may hold (KVM_SLOTS_DEVICE); *slot receives the one used.
     * Any thread (a vCPU moves a BAR).  0 or -errno (-ENOSPC: none free).
     */
    int (*mem_slot_add)(void *ctx, uint64_t gpa, uint64_t size, void *hva, unsigned *slot);
    /* Remove a slot mem_slot_add made (guest accesses there exit again). */
    void (*mem_slot_remove)(void *ctx, unsigned slot);
};

#endif /* VMM_SERVICES_H */
