/*
 * libwisp's VM calls (include/wisp/wisp.h).  A struct wisp_vm is the
 * struct vm the wisp binary builds, made by the same steps as vmm/main.c
 * (config_validate, preflight_check, vm_create) and run by vm_run() on a
 * thread of the library's ("wisp-vm", the VM's main thread), so the
 * embedding program keeps its own.  Pause, resume, snapshot and migration
 * go through vm->ctl, the same vm_control functions the control API's
 * handlers call.
 *
 * One VM per process at a time: wisp keeps process-wide state (the
 * sandbox's prepared filters, the log threshold, the vCPU kick signal).
 */
#include "vmm/libwisp/libwisp_internal.h"

#include "sandbox/sandbox.h"
#include "vmm/log.h"
#include "vmm/preboot.h"
#include "vmm/preflight.h"
#include "vmm/vm.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct wisp_vm {
    struct vm_config cfg; /* the VM's own copy: vm->cfg points here */
    struct vm vm;
    pthread_t thread;
    bool started; /* the thread exists (joined by wisp_vm_destroy) */
    /* Under lock: what the VM thread reports. */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    bool running;        /* vm_run reached its main loop */
    bool exited;         /* vm_run returned: status and run_err are final */
    int status;
    struct errbuf run_err;
};

/* Set while a VM exists in this process (see the file comment). */
static atomic_bool lw_vm_exists;

/* The internal exit class as an errno for a start that failed. */
static int class_errno(int exit_code)
{
    switch (exit_code) {
    case WISP_EXIT_USAGE:
        return EINVAL;
    case WISP_EXIT_HOST:
        return ENODEV;
    default:
        return EIO;
    }
}

static void deadline_after(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static int vm_new(const struct vm_config *src, struct wisp_vm **out, struct wisp_error *err)
{
    bool expected = false;
    if (!atomic_compare_exchange_strong(&lw_vm_exists, &expected, true))
        return lw_fail(err, EBUSY, "another wisp VM exists in this process (one at a time)");
    struct wisp_vm *w = calloc(1, sizeof(*w));
    if (!w) {
        atomic_store(&lw_vm_exists, false);
        return lw_fail(err, ENOMEM, "out of memory");
    }
    if (lw_config_copy(&w->cfg, src) < 0) {
        free(w);
        atomic_store(&lw_vm_exists, false);
        return lw_fail(err, ENOMEM, "out of memory");
    }
    *out = w;
    return 0;
}

/* Undo vm_new (before vm_create succeeded). */
static void vm_discard(struct wisp_vm *w)
{
    config_free(&w->cfg);
    free(w);
    atomic_store(&lw_vm_exists, false);
}

/* The steps of vmm/main.c from a filled configuration to a built VM. */
static int lw_vm_build(struct wisp_vm *w, struct wisp_error *err)
{
    struct errbuf e = {0};
    int ret;
    if (preboot_wanted(&w->cfg))
        return lw_fail(err, EINVAL, "no kernel given (set one with wisp_config_set_kernel)");
    log_threshold = (enum log_level)w->cfg.log_level;
    ret = config_validate(&w->cfg, &e);
    if (ret == 0)
        ret = preflight_check(&w->cfg, &e);
    if (ret == 0)
        ret = vm_create(&w->vm, &w->cfg, &e);
    if (ret < 0)
        return lw_from_errbuf(err, ret, &e);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    ret = -pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (ret == 0 && (ret = -pthread_mutex_init(&w->lock, NULL)) < 0)
        pthread_cond_destroy(&w->cond);
    if (ret < 0) {
        vm_destroy(&w->vm);
        return lw_fail(err, ret, "cannot create the VM's lock: %s", strerror(-ret));
    }
    lw_ok(err);
    return 0;
}

int wisp_vm_create(const struct wisp_config *cfg, struct wisp_vm **out, struct wisp_error *err)
{
    if (!cfg || !out)
        return lw_fail(err, EINVAL, "wisp_vm_create: cfg or out is NULL");
    struct wisp_vm *w;
    int ret = vm_new(&cfg->cfg, &w, err);
    if (ret < 0)
        return ret;
    ret = lw_vm_build(w, err);
    if (ret < 0) {
        vm_discard(w);
        return ret;
    }
    *out = w;
    return 0;
}

int wisp_vm_restore(const struct wisp_config *cfg, const char *state_path, const char *mem_path,
                    struct wisp_vm **out, struct wisp_error *err)
{
    if (!cfg || !state_path || !mem_path || !out)
        return lw_fail(err, EINVAL, "wisp_vm_restore: an argument is NULL");
    struct wisp_vm *w;
    int ret = vm_new(&cfg->cfg, &w, err);
    if (ret < 0)
        return ret;
    /* Exactly `--restore STATE --restore-mem MEM`. */
    struct errbuf e = {0};
    ret = config_set(&w->cfg, "restore", state_path, &e);
    if (ret == 0)
        ret = config_set(&w->cfg, "restore-mem", mem_path, &e);
    ret = ret < 0 ? lw_from_errbuf(err, ret, &e) : lw_vm_build(w, err);
    if (ret < 0) {
        vm_discard(w);
        return ret;
    }
    *out = w;
    return 0;
}

static void on_running(void *ctx)
{
    struct wisp_vm *w = ctx;
    pthread_mutex_lock(&w->lock);
    w->running = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void *vm_thread(void *arg)
{
    struct wisp_vm *w = arg;
    struct errbuf e = {0};
    pthread_setname_np(pthread_self(), "wisp-vm");
    /* Created with every signal blocked: the embedder's handlers never run
     * here (vm_run reads SIGINT/SIGTERM/SIGHUP from its signalfd only if
     * the whole process blocks them); faults still kill as they should. */
    sandbox_thread_signals(0);
    int status = vm_run(&w->vm, &e);
    pthread_mutex_lock(&w->lock);
    w->status = status;
    w->run_err = e;
    w->exited = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int wisp_vm_start(struct wisp_vm *vm, struct wisp_error *err)
{
    if (!vm)
        return lw_fail(err, EINVAL, "wisp_vm_start: vm is NULL");
    if (vm->started)
        return lw_fail(err, EALREADY, "the VM was started before");
    vm->vm.on_running = on_running;
    vm->vm.on_running_ctx = vm;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int ret = pthread_create(&vm->thread, NULL, vm_thread, vm);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ret != 0)
        return lw_fail(err, ret, "cannot start the VM thread: %s", strerror(ret));
    vm->started = true;
    /* Unbounded on purpose: a restore or an incoming migration runs first. */
    pthread_mutex_lock(&vm->lock);
    while (!vm->running && !vm->exited)
        pthread_cond_wait(&vm->cond, &vm->lock);
    bool failed = !vm->running;
    struct errbuf e = vm->run_err;
    int status = vm->status;
    pthread_mutex_unlock(&vm->lock);
    if (failed)
        return lw_fail(err, class_errno(status), "%s",
                       e.msg[0] ? e.msg : "the VM ended before it ran");
    lw_ok(err);
    return 0;
}

/* Calls that need the VM's threads: refuse before start and after the end. */
static int need_running(struct wisp_vm *vm, const char *what, struct wisp_error *err)
{
    if (!vm)
        return lw_fail(err, EINVAL, "%s: vm is NULL", what);
    if (!vm->started)
        return lw_fail(err, EINVAL, "%s: the VM was not started", what);
    pthread_mutex_lock(&vm->lock);
    bool exited = vm->exited;
    pthread_mutex_unlock(&vm->lock);
    if (exited)
        return lw_fail(err, ESHUTDOWN, "%s: the VM has ended", what);
    return 0;
}

int wisp_vm_pause(struct wisp_vm *vm, struct wisp_error *err)
{
    int ret = need_running(vm, "pause", err);
    if (ret < 0)
        return ret;
    ret = vm->vm.ctl.pause(vm->vm.ctl.ctx, VM_PAUSE_TIMEOUT_MS);
    if (ret < 0)
        return lw_fail(err, ret, "cannot pause the VM: %s",
                       ret == -ETIMEDOUT ? "a vCPU did not stop in time" : strerror(-ret));
    lw_ok(err);
    return 0;
}

int wisp_vm_resume(struct wisp_vm *vm, struct wisp_error *err)
{
    int ret = need_running(vm, "resume", err);
    if (ret < 0)
        return ret;
    ret = vm->vm.ctl.resume(vm->vm.ctl.ctx);
    if (ret < 0)
        return lw_fail(err, ret, "cannot resume the VM: %s", strerror(-ret));
    lw_ok(err);
    return 0;
}

int wisp_vm_snapshot(struct wisp_vm *vm, const char *state_name, const char *mem_name,
                     struct wisp_error *err)
{
    int ret = need_running(vm, "snapshot", err);
    if (ret < 0)
        return ret;
    if (!state_name || !mem_name)
        return lw_fail(err, EINVAL, "snapshot: a file name is NULL");
    struct vm_snapshot_req req = {.state_name = state_name, .mem_name = mem_name};
    struct vm_snapshot_result res;
    char why[WISP_ERROR_MSG_MAX] = "";
    ret = vm->vm.ctl.snapshot_create(vm->vm.ctl.ctx, &req, &res, why, sizeof(why));
    if (ret < 0)
        return lw_fail(err, ret, "%s", why[0] ? why : strerror(-ret));
    lw_ok(err);
    return 0;
}

int wisp_vm_migrate(struct wisp_vm *vm, const char *dest, unsigned timeout_ms,
                    struct wisp_error *err)
{
    int ret = need_running(vm, "migrate", err);
    if (ret < 0)
        return ret;
    if (!dest)
        return lw_fail(err, EINVAL, "migrate: dest is NULL");
    struct vm_migrate_req req = {.to = dest};
    char why[WISP_ERROR_MSG_MAX] = "";
    ret = vm->vm.ctl.migrate_start(vm->vm.ctl.ctx, &req, why, sizeof(why));
    if (ret < 0)
        return lw_fail(err, ret, "%s", why[0] ? why : strerror(-ret));
    /* GET /migration's view, polled: the migration thread reports no event. */
    struct timespec end, now;
    deadline_after(&end, timeout_ms);
    struct vm_migrate_status *st = calloc(1, sizeof(*st));
    if (!st)
        return lw_fail(err, ENOMEM, "out of memory (the migration goes on)");
    for (;;) {
        vm->vm.ctl.migrate_status(vm->vm.ctl.ctx, st);
        if (st->state != VM_MIGRATE_ACTIVE)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (timeout_ms &&
            (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec))) {
            free(st);
            return lw_fail(err, ETIMEDOUT, "the migration still runs after %u ms", timeout_ms);
        }
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    if (st->state == VM_MIGRATE_COMPLETED)
        ret = 0;
    else
        ret = lw_fail(err, st->state == VM_MIGRATE_CANCELLED ? ECANCELED : EIO,
                      "migration to %s %s: %s", dest, vm_migrate_state_name(st->state),
                      st->error[0] ? st->error : "no reason given");
    free(st);
    if (ret == 0)
        lw_ok(err);
    return ret;
}

int wisp_vm_stop(struct wisp_vm *vm, struct wisp_error *err)
{
    if (!vm)
        return lw_fail(err, EINVAL, "wisp_vm_stop: vm is NULL");
    vm_request_stop(&vm->vm, VM_STOP_SIGNAL, 128 + SIGTERM);
    lw_ok(err);
    return 0;
}

int wisp_vm_wait(struct wisp_vm *vm, int timeout_ms, int *status, struct wisp_error *err)
{
    if (!vm || !status)
        return lw_fail(err, EINVAL, "wisp_vm_wait: vm or status is NULL");
    if (!vm->started)
        return lw_fail(err, EINVAL, "wisp_vm_wait: the VM was not started");
    struct timespec end;
    if (timeout_ms >= 0)
        deadline_after(&end, (unsigned)timeout_ms);
    pthread_mutex_lock(&vm->lock);
    while (!vm->exited) {
        if (timeout_ms < 0)
            pthread_cond_wait(&vm->cond, &vm->lock);
        else if (pthread_cond_timedwait(&vm->cond, &vm->lock, &end) == ETIMEDOUT)
            break;
    }
    bool exited = vm->exited;
    *status = vm->status;
    struct errbuf e = vm->run_err;
    pthread_mutex_unlock(&vm->lock);
    if (!exited)
        return lw_fail(err, ETIMEDOUT, "the VM still runs after %d ms", timeout_ms);
    /* The status is the answer; a VMM failure's line comes along in err->msg. */
    lw_ok(err);
    if (err && e.msg[0])
        snprintf(err->msg, sizeof(err->msg), "%s", e.msg);
    return 0;
}

void wisp_vm_destroy(struct wisp_vm *vm)
{
    if (!vm)
        return;
    if (vm->started) {
        vm_request_stop(&vm->vm, VM_STOP_SIGNAL, 128 + SIGTERM); /* ignored if it ended */
        pthread_join(vm->thread, NULL);
        /* Every VM thread has ended, so no filter is left in force (sandbox.h). */
        sandbox_release();
    }
    vm_destroy(&vm->vm);
    pthread_cond_destroy(&vm->cond);
    pthread_mutex_destroy(&vm->lock);
    vm_discard(vm);
}
