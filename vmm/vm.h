/*
 * VM lifecycle: one `struct vm` per process.  vm_create() acquires every host
 * resource (KVM fds, guest memory, devices, loaded kernel) and reports the
 * first problem as a one-line error; vm_run() starts the vCPU threads and
 * serves I/O until the guest powers off, resets or fails; vm_destroy()
 * releases everything in reverse order.
 */
#ifndef VMM_VM_H
#define VMM_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "vmm/bus.h"
#include "vmm/config.h"
#include "vmm/error.h"
#include "vmm/evloop.h"
#include "vmm/gmem.h"
#include "vmm/term.h"

struct kvm_run;
struct arch_vm;
struct irq_routing;
struct serial;
struct i8042;
struct debug_exit;
struct vcpu;
struct devmgr;

/* Why the VM stopped. */
enum vm_stop_reason {
    VM_RUNNING = 0,
    VM_STOP_POWEROFF,   /* guest asked to power off */
    VM_STOP_RESET,      /* guest reset (i8042, triple fault, system event) */
    VM_STOP_DEBUG_EXIT, /* guest wrote the debug-exit port */
    VM_STOP_ERROR,      /* VMM or KVM failure */
    VM_STOP_SIGNAL,     /* host asked us to stop (SIGTERM, SIGINT, SIGHUP) */
};

struct vm {
    const struct vm_config *cfg;

    int kvm_fd;
    int vm_fd;
    int vcpu_mmap_size;

    struct gmem mem;
    struct bus pio;
    struct bus mmio;
    struct evloop loop;

    unsigned nvcpus;
    struct vcpu *vcpus;

    struct arch_vm *arch;
    /* KVM's GSI routing (vmm/irq_routing.h): arch_vm_init installs the
     * architecture's wiring; later routes (MSI) extend it and re-commit. */
    struct irq_routing *irq_routing;

    unsigned kvm_max_vcpus;
    char *cmdline;       /* what the guest gets: the user's plus device descriptions */
    struct devmgr *devs; /* virtio devices and their transports */

    /* Built-in legacy devices (created by arch_create_devices). */
    struct serial *serial;
    struct i8042 *i8042;
    struct debug_exit *debug_exit;
    int serial_irqfd;      /* KVM irqfd for the UART's interrupt line */
    int serial_out_fd;     /* where guest console output goes, -1 = discarded */
    bool serial_out_owned; /* serial_out_fd was opened by us (file:PATH) */

    /* Main-loop state for console input. */
    int serial_room_efd; /* written when the UART can take input again */
    int signal_fd;       /* SIGINT, SIGTERM, SIGHUP */
    bool term_raw;       /* stdin is a terminal in raw mode (serial or console on stdio) */
    bool stdin_paused;   /* not reading stdin until the UART has room */
    bool stdin_eof;
    struct term_escape escape; /* Ctrl-A escape state of stdin (one reader at a time) */
    uint64_t stdin_dropped;    /* host input bytes the UART could not take */

    /* Stop protocol: the first vm_request_stop() wins and wakes the main loop. */
    _Atomic int stop_reason;
    _Atomic int exit_code;
    uint64_t stop_ns; /* CLOCK_MONOTONIC when the first stop request came (for --stats) */
    int stop_efd;
};

/* Build the VM described by `cfg`.  On failure nothing is left behind. */
int vm_create(struct vm *vm, const struct vm_config *cfg, struct errbuf *err) __must_check;

/* Run until the guest stops; returns the process exit code (enum wisp_exit or debug-exit value). */
int vm_run(struct vm *vm, struct errbuf *err);

void vm_destroy(struct vm *vm);

/*
 * Ask the VM to stop (any thread, async-signal-safe).  The first caller's
 * reason and exit code win; later calls are ignored.
 */
void vm_request_stop(struct vm *vm, enum vm_stop_reason reason, int exit_code);

/*
 * Host keyboard input on its way to the guest's console (serial or virtio):
 * on a raw terminal, apply the Ctrl-A escape in place (term_escape_filter).
 * Ctrl-A x stops the VM as SIGINT would (exit status 128 + SIGINT) and
 * drops the rest.  Returns the bytes left for the guest.  Main thread.
 */
size_t vm_filter_input(struct vm *vm, uint8_t *buf, size_t len);

static inline bool vm_stopping(struct vm *vm)
{
    return atomic_load_explicit(&vm->stop_reason, memory_order_acquire) != VM_RUNNING;
}

/* Register a device range on the PIO or MMIO bus; aborts on a layout conflict (a wisp bug). */
void vm_register_pio(struct vm *vm, uint16_t base, uint16_t len, const char *name, bus_read_fn read,
                     bus_write_fn write, void *opaque);
void vm_register_mmio(struct vm *vm, uint64_t base, uint64_t len, const char *name,
                      bus_read_fn read, bus_write_fn write, void *opaque);

#endif /* VMM_VM_H */
