/*
 * Restoring a snapshot from the VM core's side (vm_mig.h): eager restore
 * before any vCPU runs, the lazy restore's userfaultfd page server, and the
 * --restore-wait path that waits for PUT /snapshot/load.
 * Why apart from vm_mig.c: taking a snapshot and restoring one share the
 * registry but nothing else; each half stays readable on its own.
 */
#include "vmm/vm_mig.h"
#include "vmm/vm_mig_internal.h"
#include "arch/arch.h"
#include "devices/virtio/virtio_mig.h"
#include "migration/hooks.h"
#include "migration/snapshot.h"
#include "migration/socket.h"
#include "migration/uffd.h"
#include "sandbox/sandbox.h"
#include "vmm/devmgr.h"
#include "vmm/log.h"
#include "vmm/metrics.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "vmm/vm_mig_config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- restore ---- */

static void *uffd_thread(void *arg)
{
    struct vm *vm = arg;
    pthread_setname_np(pthread_self(), "wisp-uffd");
    sandbox_thread_signals(0);
    struct errbuf err = {0};
    if (sandbox_enter(SANDBOX_UFFD, &err) < 0) {
        log_error("userfaultfd server: %s", err.msg);
        vm_request_stop(vm, VM_STOP_ERROR, err.exit_code);
        return NULL;
    }
    int e = mig_uffd_serve(vm->mig->uffd);
    if (e < 0) {
        /* Faulting threads would wait forever: stop the VM. */
        log_error("userfaultfd server failed: %s; stopping the VM", strerror(-e));
        vm_request_stop(vm, VM_STOP_ERROR, WISP_EXIT_FAILURE);
    }
    return NULL;
}

/* Guest memory is empty: start the server that fills it on demand. */
static int start_lazy(struct vm *vm, struct errbuf *err)
{
    struct vm_mig *g = vm->mig;
    struct mig_uffd_region r[GMEM_MAX_REGIONS];
    for (unsigned i = 0; i < vm->mem.nregions; i++)
        r[i] = (struct mig_uffd_region){vm->mem.regions[i].hva, vm->mem.regions[i].size,
                                        vm->mem.regions[i].fd_offset};
    int e = mig_uffd_available(err);
    if (e == 0)
        e = mig_uffd_create(&g->uffd, g->restore_mem_fd, r, vm->mem.nregions, err);
    if (e < 0)
        return e;
    e = pthread_create(&g->uffd_thread, NULL, uffd_thread, vm);
    if (e)
        return err_set(err, WISP_EXIT_HOST, e, "cannot start the userfaultfd thread: %s",
                       strerror(e));
    g->uffd_started = true;
    return 0;
}

void vm_mig_stop_lazy(struct vm *vm)
{
    struct vm_mig *g = vm->mig;
    if (!g || !g->uffd)
        return;
    if (g->uffd_started) {
        mig_uffd_stop(g->uffd);
        pthread_join(g->uffd_thread, NULL);
        g->uffd_started = false;
    }
    struct mig_uffd_stats st;
    mig_uffd_get_stats(g->uffd, &st);
    log_info("lazy restore: %llu pages copied on demand, %llu zero, %llu faults",
             (unsigned long long)st.pages_copied, (unsigned long long)st.pages_zero,
             (unsigned long long)st.faults);
    mig_uffd_destroy(g->uffd);
    g->uffd = NULL;
}

int vm_mig_restore(struct vm *vm, struct errbuf *err)
{
    struct vm_mig *g = vm->mig;
    struct mig_registry *reg = calloc(1, sizeof(*reg));
    struct mig_machine *m = calloc(1, sizeof(*m));
    int e = reg && m ? 0 : err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    uint64_t t0 = vm_mig_now_ms();
    if (e == 0)
        e = vm_mig_describe(vm, reg, m, err);
    /* An external data plane reads guest RAM through its own mapping, which
     * the page server does not see: it would read pages not loaded yet. */
    for (unsigned i = 0; e == 0 && vm->cfg->restore_lazy && i < reg->n; i++)
        if (reg->devs[i].plane == MIG_PLANE_VHOST_USER || reg->devs[i].plane == MIG_PLANE_VDPA)
            e = err_set(err, WISP_EXIT_USAGE, EOPNOTSUPP,
                        "lazy restore refused: device %s %u has an external data plane (%s), "
                        "which would read guest memory not loaded yet; restore without "
                        "restore-lazy",
                        reg->devs[i].ops->type, reg->devs[i].instance,
                        mig_plane_name(reg->devs[i].plane));
    if (e == 0 && vm->cfg->restore_lazy)
        e = start_lazy(vm, err);
    if (e == 0)
        e = mig_snapshot_read_state(g->restore_fd, reg, m, err);
    if (e == 0)
        log_info("restored %s in %llu ms", vm->cfg->restore,
                 (unsigned long long)(vm_mig_now_ms() - t0));
    free(reg);
    free(m);
    return e;
}

/* ---- --restore-wait: PUT /snapshot/load ---- */

int vm_mig_snapshot_load(void *ctx, const struct vm_snapshot_load_req *req, char *why,
                         size_t whylen)
{
    struct vm *vm = ctx;
    struct vm_mig *g = vm->mig;
    if (!vm_mig_name_ok(req->state_name) || !vm_mig_name_ok(req->mem_name) ||
        !strcmp(req->state_name, req->mem_name)) {
        snprintf(why, whylen,
                 "snapshot file names must be two different plain names inside "
                 "the snapshot directory (no '/')");
        return -EINVAL;
    }
    pthread_mutex_lock(&g->lock);
    int ret = 0;
    if (!g->awaiting) {
        snprintf(why, whylen,
                 "this VM is already running; start wisp with --restore-wait to "
                 "load a snapshot through the API, or with --restore STATE "
                 "--restore-mem MEM");
        ret = -EALREADY;
    } else if (g->load_pending) {
        snprintf(why, whylen, "a snapshot is being loaded");
        ret = -EBUSY;
    }
    if (ret < 0) {
        pthread_mutex_unlock(&g->lock);
        return ret;
    }
    snprintf(g->load_state, sizeof(g->load_state), "%s", req->state_name);
    snprintf(g->load_mem, sizeof(g->load_mem), "%s", req->mem_name);
    g->load_resume = req->resume;
    g->load_pending = true;
    g->load_done = false;
    uint64_t one = 1;
    ssize_t w __unused = write(g->load_efd, &one, sizeof(one));
    /* Bounded: the main thread answers at once unless the files are huge or
     * slow; past the bound the load still completes on its own. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += VM_SNAPSHOT_TIMEOUT_MS / 1000;
    while (!g->load_done)
        if (pthread_cond_timedwait(&g->cond, &g->lock, &ts) == ETIMEDOUT)
            break;
    if (g->load_done) {
        ret = g->load_ret;
        snprintf(why, whylen, "%s", g->load_why);
    } else {
        ret = -ETIMEDOUT;
        snprintf(why, whylen, "still loading after %u ms; it will complete on its own",
                 VM_SNAPSHOT_TIMEOUT_MS);
    }
    pthread_mutex_unlock(&g->lock);
    return ret;
}

/* Open, map and load the requested snapshot (main thread, no vCPU yet). */
static int load_requested(struct vm *vm, struct errbuf *err)
{
    struct vm_mig *g = vm->mig;
    int mem_fd = openat(g->snap_dir_fd, g->load_mem, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (mem_fd < 0)
        return err_set(err, WISP_EXIT_USAGE, errno, "snapshot memory file %s: %s", g->load_mem,
                       strerror(errno));
    g->restore_fd = openat(g->snap_dir_fd, g->load_state, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int e = g->restore_fd < 0 ? err_set(err, WISP_EXIT_USAGE, errno, "snapshot state file %s: %s",
                                        g->load_state, strerror(errno))
            : config_shares_ram(vm->cfg) ? gmem_copy_in(&vm->mem, mem_fd, err)
                                         : gmem_remap_private(&vm->mem, mem_fd, err);
    close(mem_fd);
    if (e == 0)
        e = vm_mig_restore(vm, err);
    return e;
}

int vm_mig_await_load(struct vm *vm, struct errbuf *err)
{
    struct vm_mig *g = vm->mig;
    pthread_mutex_lock(&g->lock);
    g->awaiting = true;
    pthread_mutex_unlock(&g->lock);
    log_info("waiting for PUT /snapshot/load on %s", vm->cfg->api_sock);
    for (;;) {
        struct pollfd p[2] = {{.fd = g->load_efd, .events = POLLIN},
                              {.fd = vm->signal_fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return err_set(err, WISP_EXIT_HOST, errno, "poll: %s", strerror(errno));
        }
        if (p[1].revents) {
            struct signalfd_siginfo si;
            int sig = read(vm->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)
                          ? (int)si.ssi_signo
                          : SIGTERM;
            pthread_mutex_lock(&g->lock);
            g->awaiting = false;
            if (g->load_pending) {
                /* A request raced the signal: answer it, or it waits out its bound. */
                g->load_pending = false;
                g->load_ret = -ECANCELED;
                snprintf(g->load_why, sizeof(g->load_why), "wisp is exiting (signal %d)", sig);
                g->load_done = true;
                pthread_cond_broadcast(&g->cond);
            }
            pthread_mutex_unlock(&g->lock);
            return err_set(err, 128 + sig, EINTR,
                           "stopped by signal %d while waiting for a "
                           "snapshot to load",
                           sig);
        }
        uint64_t v;
        if (read(g->load_efd, &v, sizeof(v)) == (ssize_t)sizeof(v))
            break;
    }
    int e = load_requested(vm, err);
    pthread_mutex_lock(&g->lock);
    bool resume = g->load_resume; /* fixed while load_pending */
    pthread_mutex_unlock(&g->lock);
    /* Paused before the API thread answers 204: a GET / right after the
     * answer must already see "Paused".  The vCPUs park as soon as they
     * start; PATCH /vm Resumed runs them. */
    if (e == 0 && !resume) {
        pthread_mutex_lock(&vm->pause_lock);
        atomic_store(&vm->pause_requested, true);
        vm->paused = true;
        pthread_mutex_unlock(&vm->pause_lock);
    }
    pthread_mutex_lock(&g->lock);
    g->load_ret = e;
    snprintf(g->load_why, sizeof(g->load_why), "%.399s", e < 0 ? err->msg : "");
    g->load_done = true;
    g->awaiting = false;
    g->load_pending = false;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
    if (e == 0)
        log_info("snapshot %s loaded through the API", g->load_state);
    return e;
}
