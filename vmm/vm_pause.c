/*
 * Pausing and resuming a VM's vCPUs (vm_pause, vm_resume, vm_park_vcpu:
 * declared in vm.h), and the vm_control table the control API and libwisp
 * drive the VM through (vmm/control.h).  Why its own file: the pause
 * protocol is the one piece of the VM core every controller (API thread,
 * migration thread, signal handling) shares, and vm.c keeps the lifecycle.
 */
#include "vmm/vm_pause.h"
#include "arch/arch.h"
#include "vmm/log.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "vmm/vm_mig.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int vm_pause_init(struct vm *vm)
{
    pthread_condattr_t a;
    int ret = pthread_condattr_init(&a);
    if (ret)
        return -ret;
    ret = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    if (!ret)
        ret = pthread_cond_init(&vm->pause_cond, &a);
    pthread_condattr_destroy(&a);
    if (ret)
        return -ret;
    ret = pthread_mutex_init(&vm->pause_lock, NULL);
    if (ret) {
        pthread_cond_destroy(&vm->pause_cond);
        return -ret;
    }
    vm->pause_inited = true;
    return 0;
}

/* Wake every parked vCPU and every waiting controller to re-check their
 * conditions (after a stop request or a resume). */
void vm_pause_broadcast(struct vm *vm)
{
    if (!vm->pause_inited)
        return;
    pthread_mutex_lock(&vm->pause_lock);
    pthread_cond_broadcast(&vm->pause_cond);
    pthread_mutex_unlock(&vm->pause_lock);
}

void vm_park_vcpu(struct vm *vm)
{
    pthread_mutex_lock(&vm->pause_lock);
    vm->nparked++;
    pthread_cond_broadcast(&vm->pause_cond); /* the controller counts us */
    while (atomic_load(&vm->pause_requested) && !vm_stopping(vm))
        pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
    vm->nparked--;
    pthread_mutex_unlock(&vm->pause_lock);
}

int vm_pause(struct vm *vm, unsigned timeout_ms)
{
    int ret = 0;
    pthread_mutex_lock(&vm->pause_lock);
    if (vm_stopping(vm)) {
        ret = -ESHUTDOWN;
        goto out;
    }
    if (vm->paused)
        goto out;
    atomic_store(&vm->pause_requested, true);
    /* Kicking takes no lock a vCPU holds, so doing it here is safe; a vCPU
     * between the flag check and KVM_RUN gets immediate_exit, one inside
     * KVM_RUN the signal (vcpu.c). */
    for (unsigned i = 0; i < vm->nvcpus; i++)
        vcpu_kick(&vm->vcpus[i]);
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ULL;
    struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000ULL),
                          .tv_nsec = (long)(deadline % 1000000000ULL)};
    while (vm->nparked < vm->nvcpus && !vm_stopping(vm))
        if (pthread_cond_timedwait(&vm->pause_cond, &vm->pause_lock, &ts) == ETIMEDOUT)
            break;
    if (vm_stopping(vm)) {
        ret = -ESHUTDOWN;
    } else if (vm->nparked < vm->nvcpus) {
        log_warn("pause: only %u of %u vCPUs stopped within %u ms; resuming", vm->nparked,
                 vm->nvcpus, timeout_ms);
        ret = -ETIMEDOUT;
    } else {
        vm->paused = true;
        log_info("paused %u vCPUs", vm->nvcpus);
    }
    if (ret < 0) {
        atomic_store(&vm->pause_requested, false);
        pthread_cond_broadcast(&vm->pause_cond);
    }
out:
    pthread_mutex_unlock(&vm->pause_lock);
    return ret;
}

int vm_resume(struct vm *vm)
{
    pthread_mutex_lock(&vm->pause_lock);
    int ret = vm_stopping(vm) ? -ESHUTDOWN : 0;
    if (ret == 0 && vm->paused) {
        vm->paused = false;
        atomic_store(&vm->pause_requested, false);
        pthread_cond_broadcast(&vm->pause_cond);
        log_info("resumed");
    }
    pthread_mutex_unlock(&vm->pause_lock);
    return ret;
}

enum vm_run_state vm_state(struct vm *vm)
{
    if (vm_stopping(vm))
        return VM_STATE_STOPPING;
    pthread_mutex_lock(&vm->pause_lock);
    bool paused = vm->paused;
    pthread_mutex_unlock(&vm->pause_lock);
    return paused ? VM_STATE_PAUSED : VM_STATE_RUNNING;
}

static int ctl_pause(void *ctx, unsigned timeout_ms)
{
    return vm_pause(ctx, timeout_ms);
}

static int ctl_resume(void *ctx)
{
    /* A snapshot or migration paused the VM to save it: it resumes it. */
    if (vm_mig_busy(ctx))
        return -EBUSY;
    return vm_resume(ctx);
}

static enum vm_run_state ctl_state(void *ctx)
{
    return vm_state(ctx);
}

static int ctl_send_ctrl_alt_del(void *ctx)
{
    struct vm *vm = ctx;
    if (vm_state(vm) == VM_STATE_STOPPING)
        return -ESHUTDOWN;
    return arch_send_ctrl_alt_del(vm->arch);
}

void vm_control_init(struct vm *vm)
{
    vm->ctl = (struct vm_control){
        .ctx = vm,
        .pause = ctl_pause,
        .resume = ctl_resume,
        .state = ctl_state,
        .send_ctrl_alt_del = ctl_send_ctrl_alt_del,
        .snapshot_create = vm_mig_snapshot,
        .snapshot_load = vm_mig_snapshot_load,
        .migrate_start = vm_mig_migrate_start,
        .migrate_status = vm_mig_migrate_status,
        .migrate_cancel = vm_mig_migrate_cancel,
        .balloon_get = vm_balloon_get,
        .balloon_set = vm_balloon_set,
        .balloon_set_interval = vm_balloon_set_interval,
        .vcpus = vm->cfg->vcpus,
        .mem_bytes = vm->cfg->memory,
    };
}
