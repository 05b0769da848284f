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
#include "vmm/control.h"
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
struct api_server;
struct vm_mig;

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
    /* Device memory slots in use (kvm_dev_slot_add): bit i = slot KVM_SLOT_DEVICE_FIRST + i. */
    _Atomic uint32_t dev_slots;

    unsigned kvm_max_vcpus;
    char *cmdline;       /* what the guest gets: the user's plus device descriptions */
    struct devmgr *devs; /* virtio devices and their transports */

    /* The console UART (arch_serial); the arch code owns it. */
    struct serial *serial;

    /* Main-loop state for console input. */
    int serial_room_efd; /* written when the UART can take input again */
    int signal_fd;       /* SIGINT, SIGTERM, SIGHUP */
    int metrics_tfd;     /* periodic metrics flush (timerfd); -1 without a metrics sink */
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

    /*
     * Pause protocol (vm_pause, vm_resume, vm_park_vcpu).  A controller sets
     * pause_requested and kicks every vCPU out of KVM_RUN; each vCPU sees the
     * flag at the top of its loop and parks on pause_cond, counted in
     * nparked; the controller waits on the same condition until all have
     * parked.  The flag is also read without the lock (the vCPU loop's fast
     * path); everything else is under pause_lock.  Stopping wakes everyone
     * (vm_run broadcasts after the stop request), so a stop while paused
     * still ends the vCPU threads.
     */
    pthread_mutex_t pause_lock;
    pthread_cond_t pause_cond; /* CLOCK_MONOTONIC, for the bounded wait */
    bool pause_inited;
    _Atomic bool pause_requested;
    bool paused;      /* the last vm_pause() succeeded and no resume came since */
    unsigned nparked; /* vCPU threads waiting in vm_park_vcpu() */

    /* What the control API may do (vmm/control.h); ctx is this vm. */
    struct vm_control ctl;
    struct api_server *api; /* --api-sock: the control API server, or NULL */
    struct vm_mig *mig;     /* snapshots and migration (vm_mig.c) */

    /* An embedder's (vmm/libwisp/) cue that vm_run() reached its main loop:
     * called once on the main thread with every VM thread running.  Set
     * after vm_create(); NULL for the wisp binary. */
    void (*on_running)(void *ctx);
    void *on_running_ctx;
};

/* Build the VM described by `cfg`.  On failure nothing is left behind. */
int vm_create(struct vm *vm, const struct vm_config *cfg, struct errbuf *err) __must_check;

/*
 * vm_create() in two steps, for the pre-boot phase, which answers
 * InstanceStart only once the machine is built while its own API server
 * still holds the socket: vm_build() is everything but the control API
 * server; vm_open_api() then creates that server on cfg->api_sock (taking
 * over the pre-boot server's handed-over socket; nothing without
 * --api-sock).  Each leaves nothing behind on failure (vm_open_api
 * destroys the built VM then).
 */
int vm_build(struct vm *vm, const struct vm_config *cfg, struct errbuf *err) __must_check;
int vm_open_api(struct vm *vm, struct errbuf *err) __must_check;

/* The seccomp options vm_run() prepares the sandbox with for `cfg`. */
struct sandbox_opts;
void vm_sandbox_opts(const struct vm_config *cfg, struct sandbox_opts *o);

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

/*
 * Pause and resume every vCPU (vmm/control.h has the contract; the API
 * reaches them through vm->ctl).  Any thread but a vCPU's.
 */
int vm_pause(struct vm *vm, unsigned timeout_ms);
int vm_resume(struct vm *vm);
enum vm_run_state vm_state(struct vm *vm);

/*
 * Called by a vCPU thread, outside KVM_RUN, when it sees pause_requested:
 * wait until the VM is resumed or stops.
 */
void vm_park_vcpu(struct vm *vm);

static inline bool vm_stopping(struct vm *vm)
{
    return atomic_load_explicit(&vm->stop_reason, memory_order_acquire) != VM_RUNNING;
}

/*
 * vm_control's balloon members (vm_balloon.c): find the VM's balloon among
 * its devices and ask it.  `ctx` is the struct vm.  See vmm/control.h.
 */
int vm_balloon_get(void *ctx, struct vm_balloon *b);
int vm_balloon_set(void *ctx, uint32_t amount_mib);
int vm_balloon_set_interval(void *ctx, uint32_t s);

#endif /* VMM_VM_H */
