/*
 * vCPU threads and the exit loop (see vcpu.h).
 *
 * Stopping: vcpu_kick() sets kvm_run.immediate_exit and sends SIGUSR1 to the
 * thread.  If the thread is inside KVM_RUN the signal makes it return EINTR;
 * if it is about to enter, immediate_exit makes KVM_RUN return at once.  Both
 * orders are covered, so a stop request can never be lost.
 *
 * Pausing (vm_pause in vm.c) uses the same kick: the thread leaves KVM_RUN,
 * sees vm->pause_requested at the top of its loop and parks in
 * vm_park_vcpu() until resumed or stopped.  A stale immediate_exit left by
 * the kick only makes the next KVM_RUN return EINTR once.
 */
#include "vmm/vcpu.h"
#include "vmm/log.h"
#include "vmm/metrics.h"
#include "sandbox/sandbox.h"
#include "vmm/vm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define VCPU_KICK_SIGNAL SIGUSR1

static void kick_handler(int sig)
{
    (void)sig; /* only there to interrupt KVM_RUN */
}

int vcpu_signals_init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kick_handler;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: KVM_RUN must come back with EINTR. */
    return sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0 ? -errno : 0;
}

int vcpu_create(struct vm *vm, struct vcpu *v, unsigned index, struct errbuf *err)
{
    memset(v, 0, sizeof(*v));
    v->vm = vm;
    v->index = index;
    v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
    if (v->fd < 0) {
        v->fd = -1;
        return err_set(err, WISP_EXIT_HOST, errno, "cannot create vCPU %u: %s", index,
                       strerror(errno));
    }
    void *p = mmap(NULL, (size_t)vm->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        close(v->fd);
        v->fd = -1;
        return err_set(err, WISP_EXIT_HOST, e, "cannot map vCPU %u run area: %s", index,
                       strerror(e));
    }
    v->run = p;
    return 0;
}

/* Port I/O exit; "rep ins/outs" arrive with count > 1. */
static void handle_io(struct vcpu *v)
{
    struct kvm_run *run = v->run;
    unsigned size = run->io.size;
    uint32_t count = run->io.count;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    /* KVM hands at most one page of data; never trust the product blindly. */
    if (size == 0 || size > 4 || (uint64_t)size * count > 4096 ||
        run->io.data_offset + (uint64_t)size * count > (uint64_t)v->vm->vcpu_mmap_size)
        vmm_fatal("vCPU %u: impossible I/O exit (size %u count %u)", v->index, size, count);
    for (uint32_t i = 0; i < count; i++, data += size) {
        if (run->io.direction == KVM_EXIT_IO_OUT) {
            if (!bus_write(&v->vm->pio, run->io.port, data, size))
                log_ratelimited(LOG_DEBUG, "vCPU %u: write to unassigned port 0x%x", v->index,
                                run->io.port);
        } else if (!bus_read(&v->vm->pio, run->io.port, data, size)) {
            memset(data, 0xff, size); /* an empty ISA bus floats high */
            log_ratelimited(LOG_DEBUG, "vCPU %u: read from unassigned port 0x%x", v->index,
                            run->io.port);
        }
    }
}

static void handle_mmio(struct vcpu *v)
{
    struct kvm_run *run = v->run;
    unsigned len = run->mmio.len;
    if (len == 0 || len > sizeof(run->mmio.data))
        vmm_fatal("vCPU %u: impossible MMIO exit (len %u)", v->index, len);
    if (run->mmio.is_write) {
        if (!bus_write(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data, len))
            log_ratelimited(LOG_DEBUG, "vCPU %u: write to unassigned MMIO 0x%llx", v->index,
                            (unsigned long long)run->mmio.phys_addr);
    } else if (!bus_read(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data, len)) {
        memset(run->mmio.data, 0, len);
        log_ratelimited(LOG_DEBUG, "vCPU %u: read from unassigned MMIO 0x%llx", v->index,
                        (unsigned long long)run->mmio.phys_addr);
    }
}

static void handle_system_event(struct vcpu *v)
{
    switch (v->run->system_event.type) {
    case KVM_SYSTEM_EVENT_SHUTDOWN:
        log_info("vCPU %u: guest powered off", v->index);
        vm_request_stop(v->vm, VM_STOP_POWEROFF, WISP_EXIT_OK);
        break;
    case KVM_SYSTEM_EVENT_RESET:
        log_info("vCPU %u: guest reset", v->index);
        vm_request_stop(v->vm, VM_STOP_RESET, WISP_EXIT_OK);
        break;
    default:
        log_error("vCPU %u: guest system event %u (crash)", v->index, v->run->system_event.type);
        vm_request_stop(v->vm, VM_STOP_ERROR, WISP_EXIT_FAILURE);
        break;
    }
}

static void report_internal_error(struct vcpu *v)
{
    char extra[160] = "";
    size_t off = 0;
    uint32_t n = MIN(v->run->internal.ndata, 4u);
    for (uint32_t i = 0; i < n && off < sizeof(extra); i++)
        off += (size_t)snprintf(extra + off, sizeof(extra) - off, " 0x%llx",
                                (unsigned long long)v->run->internal.data[i]);
    log_error("vCPU %u: KVM internal error, suberror %u%s%s (the host could not emulate a guest "
              "instruction)",
              v->index, v->run->internal.suberror, n ? ", data" : "", extra);
}

/* Handle one exit; returns false when the loop must end. */
static bool handle_exit(struct vcpu *v)
{
    struct kvm_run *run = v->run;
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        metrics_inc(METRICS_VCPU_EXIT_IO);
        handle_io(v);
        return true;
    case KVM_EXIT_MMIO:
        metrics_inc(METRICS_VCPU_EXIT_MMIO);
        handle_mmio(v);
        return true;
    case KVM_EXIT_INTR:
        metrics_inc(METRICS_VCPU_EXIT_INTR);
        return true;
    case KVM_EXIT_HLT:
        metrics_inc(METRICS_VCPU_EXIT_HLT);
        /* Only seen without an in-kernel local APIC: nothing can wake us. */
        log_info("vCPU %u: halted with no way to wake up; stopping", v->index);
        vm_request_stop(v->vm, VM_STOP_POWEROFF, WISP_EXIT_OK);
        return false;
    case KVM_EXIT_SHUTDOWN:
        metrics_inc(METRICS_VCPU_EXIT_SHUTDOWN);
        /* Triple fault: on a PC this resets the machine. */
        /* A warning: Linux reaches this only when its other reset paths
         * failed, and a crashing guest reaches it by accident. */
        log_warn("vCPU %u: triple fault (shutdown); treating it as a reset", v->index);
        vm_request_stop(v->vm, VM_STOP_RESET, WISP_EXIT_OK);
        return false;
    case KVM_EXIT_SYSTEM_EVENT:
        metrics_inc(METRICS_VCPU_EXIT_SYSTEM_EVENT);
        handle_system_event(v);
        return false;
    case KVM_EXIT_INTERNAL_ERROR:
        metrics_inc(METRICS_VCPU_FAILURES);
        report_internal_error(v);
        vm_request_stop(v->vm, VM_STOP_ERROR, WISP_EXIT_FAILURE);
        return false;
    case KVM_EXIT_FAIL_ENTRY:
        metrics_inc(METRICS_VCPU_FAILURES);
        log_error("vCPU %u: VM entry failed, hardware reason 0x%llx", v->index,
                  (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        vm_request_stop(v->vm, VM_STOP_ERROR, WISP_EXIT_FAILURE);
        return false;
    default:
        metrics_inc(METRICS_VCPU_FAILURES);
        /* Fail closed on anything we do not understand. */
        log_error("vCPU %u: unexpected KVM exit reason %u", v->index, run->exit_reason);
        vm_request_stop(v->vm, VM_STOP_ERROR, WISP_EXIT_FAILURE);
        return false;
    }
}

/*
 * Before parking: let KVM finish the exit handled last without entering the
 * guest.  A port or MMIO read is only complete once KVM has copied our data
 * into the guest's register on the next KVM_RUN, and a string I/O has its
 * remaining iterations; with immediate_exit set, KVM_RUN does exactly that
 * and returns EINTR.  A parked vCPU's state (snapshot, migration) is then
 * whole: RIP past the instruction, the register loaded.
 */
static void complete_exit(struct vcpu *v)
{
    WRITE_ONCE(v->run->immediate_exit, 1);
    if (ioctl(v->fd, KVM_RUN, 0) == 0)
        /* KVM entered no guest code, but if it reports an exit, serve it
         * rather than drop it: the next KVM_RUN completes it. */
        (void)handle_exit(v);
    WRITE_ONCE(v->run->immediate_exit, 0);
}

static void *vcpu_thread(void *arg)
{
    struct vcpu *v = arg;
    char name[16];
    snprintf(name, sizeof(name), "wisp-vcpu%u", v->index);
    pthread_setname_np(pthread_self(), name);

    /* Process-directed signals go to the main thread; we take only the kick. */
    sandbox_thread_signals(VCPU_KICK_SIGNAL);

    /* Our own filter, before the guest runs; the thread was named first so a
     * seccomp report can say which vCPU it was. */
    struct errbuf err = {0};
    if (sandbox_enter(SANDBOX_VCPU, &err) < 0) {
        log_error("vCPU %u: %s", v->index, err.msg);
        vm_request_stop(v->vm, VM_STOP_ERROR, err.exit_code);
        return NULL;
    }

    while (!vm_stopping(v->vm)) {
        if (atomic_load_explicit(&v->vm->pause_requested, memory_order_acquire)) {
            complete_exit(v);
            vm_park_vcpu(v->vm);
            continue;
        }
        if (ioctl(v->fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                WRITE_ONCE(v->run->immediate_exit, 0);
                continue;
            }
            metrics_inc(METRICS_VCPU_FAILURES);
            log_error("vCPU %u: KVM_RUN failed: %s", v->index, strerror(errno));
            vm_request_stop(v->vm, VM_STOP_ERROR, WISP_EXIT_FAILURE);
            break;
        }
        if (!handle_exit(v))
            break;
    }
    return NULL;
}

int vcpu_start(struct vcpu *v, struct errbuf *err)
{
    int ret = pthread_create(&v->thread, NULL, vcpu_thread, v);
    if (ret)
        return err_set(err, WISP_EXIT_HOST, ret, "cannot start vCPU %u thread: %s", v->index,
                       strerror(ret));
    v->thread_started = true;
    return 0;
}

void vcpu_kick(struct vcpu *v)
{
    if (v->run)
        WRITE_ONCE(v->run->immediate_exit, 1);
    if (v->thread_started)
        pthread_kill(v->thread, VCPU_KICK_SIGNAL);
}

void vcpu_destroy(struct vcpu *v)
{
    if (v->thread_started) {
        pthread_join(v->thread, NULL);
        v->thread_started = false;
    }
    if (v->run)
        munmap(v->run, (size_t)v->vm->vcpu_mmap_size);
    v->run = NULL;
    if (v->fd >= 0)
        close(v->fd);
    v->fd = -1;
}
