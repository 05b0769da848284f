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
#include "vmm/services.h"
#include "vmm/term.h"

struct kvm_run;
struct arch_vm;
struct serial;
struct vcpu;
struct devmgr;

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

    struct arch_vm *arch; /* also owns the built-in devices (arch_create_devices) */
    /* What arch code may ask of the VM (vmm/services.h); ctx is this vm. */
    struct vm_services svc;

    unsigned kvm_max_vcpus;
    char *cmdline;       /* what the guest gets: the user's plus device descriptions */
    struct devmgr *devs; /* virtio devices and their transports */

    /* The console UART (arch_serial); the arch code owns it. */
    struct serial *serial;

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

#endif /* VMM_VM_H */
