/*
 * Snapshots from the VM core's side (vm_mig.h): the migration thread and
 * its one-job queue, the registry of the VM's state, snapshot create and
 * restore.  The format, the order of sections and every check of the bytes
 * are migration/'s; this file decides when the guest stops and what is
 * saved.
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

#define MIG_FILE_TIMEOUT_MS 60000 /* one write of a file transport (a local file) */

uint64_t vm_mig_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000ULL + (uint64_t)ts.tv_nsec / 1000000ULL;
}

/* ---- set-up and teardown ---- */

static int open_ro(const char *path, const char *what, int *fd, struct errbuf *err)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (*fd < 0) {
        *fd = -1;
        return err_set(err, WISP_EXIT_USAGE, errno, "%s %s: %s", what, path, strerror(errno));
    }
    return 0;
}

int vm_mig_open(struct vm *vm, struct errbuf *err)
{
    const struct vm_config *cfg = vm->cfg;
    struct vm_mig *g = calloc(1, sizeof(*g));
    if (!g)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    g->snap_dir_fd = g->restore_fd = g->restore_mem_fd = g->incoming_fd = g->load_efd = -1;
    vm->mig = g;
    if (pthread_mutex_init(&g->lock, NULL) != 0 || pthread_cond_init(&g->cond, NULL) != 0)
        return err_set(err, WISP_EXIT_HOST, EAGAIN, "cannot create the migration lock");
    g->sync_inited = true;
    if (cfg->snapshot_dir) {
        g->snap_dir_fd = open(cfg->snapshot_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (g->snap_dir_fd < 0) {
            g->snap_dir_fd = -1;
            return err_set(err, WISP_EXIT_USAGE, errno, "snapshot directory %s: %s",
                           cfg->snapshot_dir, strerror(errno));
        }
    }
    int ret = 0;
    if (cfg->restore_wait) {
        g->load_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (g->load_efd < 0)
            return err_set(err, WISP_EXIT_HOST, errno, "eventfd: %s", strerror(errno));
    }
    if (cfg->incoming) {
        /* Listen now, before Landlock: the source connects once wisp runs. */
        struct mig_uri u;
        ret = mig_uri_parse(cfg->incoming, &u, err);
        if (ret == 0)
            ret = mig_listen(&u, &g->incoming_fd, err);
        if (ret < 0)
            return ret;
    }
    if (cfg->restore) {
        ret = open_ro(cfg->restore, "snapshot state file", &g->restore_fd, err);
        if (ret == 0)
            ret = open_ro(cfg->restore_mem, "snapshot memory file", &g->restore_mem_fd, err);
    }
    return ret;
}

int vm_mig_restore_mem_fd(const struct vm *vm)
{
    return vm->mig ? vm->mig->restore_mem_fd : -1;
}

void vm_mig_destroy(struct vm *vm)
{
    struct vm_mig *g = vm->mig;
    if (!g)
        return;
    vm_mig_stop(vm);
    vm_mig_stop_lazy(vm);
    int *fds[] = {&g->snap_dir_fd, &g->restore_fd, &g->restore_mem_fd, &g->incoming_fd,
                  &g->load_efd};
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        if (*fds[i] >= 0)
            close(*fds[i]);
    if (g->sync_inited) {
        pthread_cond_destroy(&g->cond);
        pthread_mutex_destroy(&g->lock);
    }
    free(g);
    vm->mig = NULL;
}

/* ---- what is saved ---- */

int vm_mig_describe(struct vm *vm, struct mig_registry *reg, struct mig_machine *m,
                    struct errbuf *err)
{
    mig_registry_init(reg);
    memset(m, 0, sizeof(*m));
    int *fds = calloc(vm->nvcpus ? vm->nvcpus : 1, sizeof(*fds));
    if (!fds)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    for (unsigned i = 0; i < vm->nvcpus; i++)
        fds[i] = vm->vcpus[i].fd;
    int e = arch_mig_register(vm->arch, fds, vm->nvcpus, reg, err);
    free(fds);
    for (unsigned i = 0; e == 0 && i < vm->devs->n; i++) {
        struct devmgr_entry *d = &vm->devs->dev[i];
        if (d->pci)
            e = vfio_mig_register(&vm->mig->vfio[i], d->pci, i, reg, err);
        else if (d->dev)
            e = virtio_mig_register(&vm->mig->virtio[i], d->dev, d->mmio, &vm->mem, i, reg, err);
    }
    if (e < 0)
        return e;
    arch_mig_describe(vm->arch, m);
    m->vcpus = vm->nvcpus;
    m->mem.n = vm->mem.nregions;
    for (unsigned i = 0; i < vm->mem.nregions; i++)
        m->mem.r[i] = (struct mig_mem_range){vm->mem.regions[i].gpa, vm->mem.regions[i].size};
    return 0;
}

/* ---- the migration thread ---- */

static void *mig_thread(void *arg)
{
    struct vm *vm = arg;
    struct vm_mig *g = vm->mig;
    pthread_setname_np(pthread_self(), "wisp-mig");
    /* Process-directed signals belong to the main thread (signalfd). */
    sandbox_thread_signals(0);
    struct errbuf err = {0};
    if (sandbox_enter(SANDBOX_MIGRATION, &err) < 0) {
        log_error("migration thread: %s", err.msg);
        vm_request_stop(vm, VM_STOP_ERROR, err.exit_code);
        return NULL;
    }
    pthread_mutex_lock(&g->lock);
    for (;;) {
        while (!g->stopping && (!g->job || g->job->done))
            pthread_cond_wait(&g->cond, &g->lock);
        if (g->stopping)
            break;
        struct mig_job *j = g->job;
        pthread_mutex_unlock(&g->lock);
        j->ret = j->fn(vm, j->arg, j->why, sizeof(j->why));
        pthread_mutex_lock(&g->lock);
        j->done = true;
        g->job = NULL;
        if (j->abandoned)
            free(j);
        pthread_cond_broadcast(&g->cond);
    }
    /* A job queued but not started when stopping: its waiter sees -ESHUTDOWN. */
    if (g->job) {
        g->job->ret = -ESHUTDOWN;
        snprintf(g->job->why, sizeof(g->job->why), "the VM is stopping");
        g->job->done = true;
        if (g->job->abandoned)
            free(g->job);
        g->job = NULL;
        pthread_cond_broadcast(&g->cond);
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

bool vm_mig_busy(struct vm *vm)
{
    struct vm_mig *g = vm->mig;
    if (!g || !g->sync_inited)
        return false;
    pthread_mutex_lock(&g->lock);
    bool busy = g->job != NULL;
    pthread_mutex_unlock(&g->lock);
    return busy;
}

int vm_mig_start(struct vm *vm, struct errbuf *err)
{
    struct vm_mig *g = vm->mig;
    int ret = pthread_create(&g->thread, NULL, mig_thread, vm);
    if (ret)
        return err_set(err, WISP_EXIT_HOST, ret, "cannot start the migration thread: %s",
                       strerror(ret));
    g->thread_started = true;
    return 0;
}

void vm_mig_stop(struct vm *vm)
{
    struct vm_mig *g = vm->mig;
    if (!g || !g->thread_started)
        return;
    pthread_mutex_lock(&g->lock);
    g->stopping = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->thread, NULL);
    g->thread_started = false;
}

/*
 * Run fn on the migration thread and wait up to timeout_ms for it.  One job
 * at a time: -EBUSY while another is queued or running.
 */
int vm_mig_run_job(struct vm *vm, int (*fn)(struct vm *, void *, char *, size_t), void *arg,
                   unsigned timeout_ms, bool detach, char *why, size_t whylen)
{
    struct vm_mig *g = vm->mig;
    struct mig_job *j = calloc(1, sizeof(*j));
    if (!j) {
        snprintf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&g->lock);
    if (!g->thread_started || g->stopping) {
        pthread_mutex_unlock(&g->lock);
        free(j);
        snprintf(why, whylen, "the VM is not running");
        return -ESHUTDOWN;
    }
    if (g->job) {
        pthread_mutex_unlock(&g->lock);
        free(j);
        snprintf(why, whylen, "another snapshot or migration is in progress");
        return -EBUSY;
    }
    g->job = j;
    j->abandoned = detach; /* a detached job is the thread's to free */
    pthread_cond_broadcast(&g->cond);
    if (detach) {
        pthread_mutex_unlock(&g->lock);
        return 0;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(timeout_ms / 1000);
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (!j->done)
        if (pthread_cond_timedwait(&g->cond, &g->lock, &ts) == ETIMEDOUT)
            break;
    int ret;
    if (j->done) {
        ret = j->ret;
        snprintf(why, whylen, "%s", j->why);
        free(j);
    } else {
        j->abandoned = true; /* the thread frees it */
        ret = -ETIMEDOUT;
        snprintf(why, whylen, "still running after %u ms; it will complete on its own", timeout_ms);
    }
    pthread_mutex_unlock(&g->lock);
    return ret;
}

/* ---- snapshot create ---- */

struct snap_job {
    const struct vm_snapshot_req *req;
    struct vm_snapshot_result *res;
};

bool vm_mig_name_ok(const char *n)
{
    size_t len = n ? strlen(n) : 0;
    if (len == 0 || len > 255 || !strcmp(n, ".") || !strcmp(n, ".."))
        return false;
    for (size_t i = 0; i < len; i++)
        if (n[i] == '/' || (unsigned char)n[i] < 0x20 || n[i] == 0x7f)
            return false;
    return true;
}

static int open_out(struct vm *vm, const char *name, int *fd, char *why, size_t whylen)
{
    *fd = openat(vm->mig->snap_dir_fd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (*fd >= 0)
        return 0;
    int e = errno;
    snprintf(why, whylen, "cannot create %s in %s: %s", name, vm->cfg->snapshot_dir, strerror(e));
    return -e;
}

static int snapshot_job(struct vm *vm, void *arg, char *why, size_t whylen)
{
    struct snap_job *sj = arg;
    struct errbuf err = {0};
    int state_fd = -1, mem_fd = -1;
    struct mig_registry *reg = calloc(1, sizeof(*reg));
    struct mig_machine *m = calloc(1, sizeof(*m));
    struct mig_config *cfg = NULL;
    struct mig_ram_host ram[GMEM_MAX_REGIONS];
    struct mig_snapshot_stats st = {0};
    bool was_paused = vm_state(vm) == VM_STATE_PAUSED, quiesced = false;
    int e = reg && m ? 0 : -ENOMEM;
    if (e == 0)
        e = open_out(vm, sj->req->state_name, &state_fd, why, whylen);
    if (e == 0)
        e = open_out(vm, sj->req->mem_name, &mem_fd, why, whylen);
    if (e < 0)
        goto out;
    uint64_t t0 = vm_mig_now_ms();
    e = vm_pause(vm, VM_PAUSE_TIMEOUT_MS);
    if (e < 0) {
        snprintf(why, whylen, "cannot pause the VM: %s", strerror(-e));
        goto out;
    }
    e = vm_mig_describe(vm, reg, m, &err);
    if (e == 0)
        e = mig_registry_check(reg, &err);
    /* No passthrough function: a restore is lazy (userfaultfd), and a device
     * server's own mapping of guest memory would DMA from unloaded pages. */
    for (unsigned i = 0; e == 0 && i < reg->n; i++)
        if (reg->devs[i].plane == MIG_PLANE_VFIO)
            e = err_set(&err, WISP_EXIT_USAGE, EOPNOTSUPP,
                        "snapshot refused: device %s %u is a passthrough function (live "
                        "migration moves it; a lazy restore would let it DMA unloaded memory)",
                        reg->devs[i].ops->type, reg->devs[i].instance);
    if (e == 0) {
        quiesced = true;
        e = mig_quiesce(reg, &err);
    }
    for (unsigned i = 0; i < vm->mem.nregions; i++)
        ram[i] =
            (struct mig_ram_host){vm->mem.regions[i].gpa, vm->mem.regions[i].size,
                                  vm->mem.regions[i].hva, vm->mem.fd, vm->mem.regions[i].fd_offset};
    if (e == 0)
        e = mig_snapshot_write_mem(mem_fd, ram, vm->mem.nregions, &st, &err);
    /* The options that rebuild this machine go with it (PUT /snapshot/load
     * in a bare process); one that cannot be carried fails the snapshot. */
    if (e == 0 && !(cfg = calloc(1, sizeof(*cfg))))
        e = err_set(&err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    if (e == 0)
        e = vm_mig_config_from(vm->cfg, cfg, &err);
    if (e == 0)
        e = mig_snapshot_write_state(state_fd, reg, m, cfg, &st, &err);
    if (cfg)
        mig_config_free(cfg);
    free(cfg);
    if (quiesced)
        mig_resume_devices(reg);
    sj->res->paused_ms = vm_mig_now_ms() - t0;
    if (e < 0)
        snprintf(why, whylen, "%s", err.msg[0] ? err.msg : strerror(-e));
    if (e == 0 && sj->req->stop) {
        log_info("snapshot written; stopping as asked");
        vm_request_stop(vm, VM_STOP_MOVED, WISP_EXIT_OK);
    } else if (!was_paused) {
        (void)vm_resume(vm);
    }
    if (e == 0) {
        sj->res->state_bytes = st.state_bytes;
        sj->res->mem_bytes = st.mem_bytes;
        sj->res->mem_data_pages = st.data_pages;
        log_info("snapshot: %s + %s, %llu data pages of %llu, guest paused %llu ms",
                 sj->req->state_name, sj->req->mem_name, (unsigned long long)st.data_pages,
                 (unsigned long long)(st.mem_bytes / MIG_PAGE_SIZE),
                 (unsigned long long)sj->res->paused_ms);
    }
out:
    if (e == -ENOMEM && !why[0])
        snprintf(why, whylen, "out of memory");
    if (state_fd >= 0)
        close(state_fd);
    if (mem_fd >= 0)
        close(mem_fd);
    free(reg);
    free(m);
    return e;
}

int vm_mig_snapshot(void *ctx, const struct vm_snapshot_req *req, struct vm_snapshot_result *res,
                    char *why, size_t whylen)
{
    struct vm *vm = ctx;
    memset(res, 0, sizeof(*res));
    if (!vm->mig || vm->mig->snap_dir_fd < 0) {
        snprintf(why, whylen, "snapshots are off: start wisp with --snapshot-dir DIR");
        return -ENOTSUP;
    }
    if (!vm_mig_name_ok(req->state_name) || !vm_mig_name_ok(req->mem_name) ||
        !strcmp(req->state_name, req->mem_name)) {
        snprintf(why, whylen,
                 "snapshot file names must be two different plain names inside "
                 "the snapshot directory (no '/')");
        return -EINVAL;
    }
    struct snap_job sj = {.req = req, .res = res};
    int ret = vm_mig_run_job(vm, snapshot_job, &sj, VM_SNAPSHOT_TIMEOUT_MS, false, why, whylen);
    metrics_inc(ret < 0 ? METRICS_SNAPSHOT_FAILED : METRICS_SNAPSHOT_CREATED);
    return ret;
}
