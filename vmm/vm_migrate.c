/*
 * Live migration from the VM core's side (docs/MIGRATION.md): the source's
 * job on the migration thread (connect, pre-copy rounds driven by KVM's
 * dirty log and the devices' write log, stop-and-copy, wait for the
 * destination's answer) and the destination's receive before its vCPUs
 * start.  The rounds, the stream and the checks are migration/'s; this
 * file wires them to the VM: KVM memory slots, pause and resume, the
 * device registry, and what happens on success (the source exits) and on
 * failure (the source resumes as if nothing happened).
 */
#include "migration/hooks.h"
#include "migration/precopy.h"
#include "migration/socket.h"
#include "vmm/kvm.h"
#include "vmm/log.h"
#include "vmm/metrics.h"
#include "vmm/vm.h"
#include "vmm/vm_mig.h"
#include "vmm/vm_mig_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MIG_CONNECT_TIMEOUT_MS 10000
#define MIG_NET_TIMEOUT_MS     30000 /* one transport call: a stalled peer fails the migration */
#define MIG_ACK_TIMEOUT_MS     60000 /* the destination loads devices before it answers */
#define MIG_REFUSAL_TIMEOUT_MS 2000  /* reading a refusing destination's reason */
#define MIG_LINGER_MS          1000  /* after success: let `wisp migrate` read "completed" */

/* ---- source ---- */

static int dops_set_logging(void *ctx, uint32_t slot, bool on)
{
    return kvm_slot_set_logging(ctx, slot, on);
}

static int dops_get_log(void *ctx, uint32_t slot, uint64_t *bitmap, size_t words)
{
    return kvm_slot_get_dirty_log(ctx, slot, bitmap, words);
}

static int stop_vm(void *ctx)
{
    return vm_pause(ctx, VM_PAUSE_TIMEOUT_MS);
}

static void progress(void *ctx, const struct mig_precopy_progress *p)
{
    struct vm *vm = ctx;
    struct vm_mig *g = vm->mig;
    pthread_mutex_lock(&g->lock);
    g->mstat.round = p->round;
    g->mstat.dirty_pages = p->dirty_pages;
    g->mstat.bytes_sent = p->bytes_sent;
    g->mstat.mb_per_s = p->mb_per_s;
    g->mstat.remaining_ms = p->remaining_ms;
    pthread_mutex_unlock(&g->lock);
    log_info("migration: round %u, %llu dirty pages, %.1f MB/s, ~%lld ms left", p->round,
             (unsigned long long)p->dirty_pages, p->mb_per_s,
             p->remaining_ms == UINT64_MAX ? -1LL : (long long)p->remaining_ms);
}

/*
 * The source's transport: the fd transport, but a write first looks for
 * bytes from the destination.  A destination says something only at the
 * end (its answer), so anything earlier is a refusal: stop sending and
 * read it (mig_ack_recv) instead of filling a socket nobody reads.
 */
struct early_tx {
    struct mig_transport fdt;
    int fd;
};

static int early_write(void *ctx, const void *buf, size_t len)
{
    struct early_tx *x = ctx;
    struct pollfd p = {.fd = x->fd, .events = POLLIN};
    if (poll(&p, 1, 0) == 1 && (p.revents & POLLIN))
        return -ECONNABORTED;
    return x->fdt.write(x->fdt.ctx, buf, len);
}

static ssize_t early_read(void *ctx, void *buf, size_t len)
{
    struct early_tx *x = ctx;
    return x->fdt.read(x->fdt.ctx, buf, len);
}

static void finish_status(struct vm *vm, enum vm_migrate_state st, uint64_t t0, uint64_t down_ms,
                          const char *error)
{
    struct vm_mig *g = vm->mig;
    metrics_inc(st == VM_MIGRATE_COMPLETED ? METRICS_MIGRATION_SENT : METRICS_MIGRATION_FAILED);
    pthread_mutex_lock(&g->lock);
    g->mstat.state = st;
    g->mstat.total_ms = vm_mig_now_ms() - t0;
    g->mstat.downtime_ms = down_ms;
    snprintf(g->mstat.error, sizeof(g->mstat.error), "%.399s", error ? error : "");
    pthread_mutex_unlock(&g->lock);
}

static int migrate_job(struct vm *vm, void *arg, char *why, size_t whylen)
{
    struct vm_mig *g = vm->mig;
    (void)arg;
    struct errbuf err = {0};
    uint64_t t0 = vm_mig_now_ms();
    struct mig_uri u;
    int fd = -1;
    struct mig_registry *reg = calloc(1, sizeof(*reg));
    struct mig_machine *m = calloc(1, sizeof(*m));
    struct mig_dirty *dirty = calloc(1, sizeof(*dirty));
    struct mig_precopy_stats stats = {0};
    bool dirty_inited = false, dirty_started = false, logging = false;
    /* A VM the user paused stays paused if the migration fails. */
    bool was_paused = vm_state(vm) == VM_STATE_PAUSED;
    int e = reg && m && dirty ? 0 : err_set(&err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    if (e == 0)
        e = mig_uri_parse(g->migrate_to, &u, &err);
    if (e == 0)
        e = mig_connect(&u, MIG_CONNECT_TIMEOUT_MS, &fd, &err);
    if (e == 0)
        e = vm_mig_describe(vm, reg, m, &err);
    struct mig_fd_transport ft;
    struct early_tx x = {.fd = fd};
    struct mig_transport t = {.read = early_read, .write = early_write, .ctx = &x};
    struct mig_stream_writer w;
    if (e == 0 && (e = mig_fd_transport_init(&ft, &x.fdt, fd, MIG_NET_TIMEOUT_MS)) < 0)
        err_set(&err, WISP_EXIT_FAILURE, -e, "migration: socket: %s", strerror(-e));
    if (e == 0) {
        mig_stream_writer_init(&w, &t);
        e = mig_save_begin(reg, &w, m, 0, &err);
    }
    if (e == 0) {
        e = gmem_log_start(&vm->mem);
        logging = e == 0;
        if (e < 0)
            err_set(&err, WISP_EXIT_FAILURE, -e, "migration: device write log: %s", strerror(-e));
    }
    struct mig_dirty_slot slots[GMEM_MAX_REGIONS];
    struct mig_precopy_ram ram[GMEM_MAX_REGIONS];
    for (unsigned i = 0; i < vm->mem.nregions; i++) {
        slots[i] = (struct mig_dirty_slot){i, vm->mem.regions[i].gpa, vm->mem.regions[i].size};
        ram[i] = (struct mig_precopy_ram){vm->mem.regions[i].gpa, vm->mem.regions[i].size,
                                          vm->mem.regions[i].hva};
    }
    const struct mig_dirty_ops dops = {
        .ctx = vm, .set_logging = dops_set_logging, .get_log = dops_get_log};
    if (e == 0) {
        e = mig_dirty_init(dirty, &dops, slots, vm->mem.nregions, &err);
        dirty_inited = e == 0;
    }
    if (e == 0) {
        e = mig_dirty_start(dirty, &err);
        dirty_started = e == 0;
    }
    /* Pages the guest never touched are holes in the memfd and zero on the
     * destination's fresh memory: do not send them.  Logging is on, so a
     * write from now on is still seen. */
    for (unsigned i = 0; e == 0 && vm->mem.fd >= 0 && i < vm->mem.nregions; i++) {
        const struct gmem_region *rg = &vm->mem.regions[i];
        uint64_t off = rg->fd_offset, end = rg->fd_offset + rg->size;
        while (off < end) {
            off_t data = lseek(vm->mem.fd, (off_t)off, SEEK_DATA);
            if (data < 0 && errno != ENXIO)
                break; /* cannot tell: send everything that is left */
            /* ENXIO: no data after off at all. */
            uint64_t d = data < 0 || (uint64_t)data > end ? end : (uint64_t)data;
            if (d > off)
                mig_dirty_clear(dirty, rg->gpa + (off - rg->fd_offset), d - off);
            if (d >= end)
                break;
            off_t hole = lseek(vm->mem.fd, (off_t)d, SEEK_HOLE);
            off = hole < 0 ? end : (uint64_t)hole;
        }
    }
    if (e == 0) {
        struct vm_migrate_req *q = &g->migrate_req;
        struct mig_precopy_args a = {
            .w = &w,
            .reg = reg,
            .dirty = dirty,
            .ram = ram,
            .nram = vm->mem.nregions,
            .limits = {.downtime_ms = q->downtime_ms ? q->downtime_ms : VM_MIGRATE_DOWNTIME_MS,
                       .max_rounds = q->max_rounds ? q->max_rounds : VM_MIGRATE_MAX_ROUNDS,
                       .bandwidth = q->bandwidth},
            .ops = {.ctx = vm, .stop_vm = stop_vm, .progress = progress},
            .cancel = &g->migrate_cancel,
        };
        e = mig_precopy_run(&a, &stats, &err);
    }
    if (e == 0) {
        /* END is out: tell the peer nothing more comes, then wait for its answer. */
        (void)shutdown(fd, SHUT_WR);
        e = mig_ack_recv(fd, MIG_ACK_TIMEOUT_MS, &err);
    } else if (fd >= 0 && (e == -EPIPE || e == -ECONNRESET || e == -ECONNABORTED)) {
        /* The destination hung up: it may have said why before it did. */
        struct errbuf why_dst = {0};
        if (mig_ack_recv(fd, MIG_REFUSAL_TIMEOUT_MS, &why_dst) == -EPROTO) {
            memset(&err, 0, sizeof(err));
            err_set(&err, WISP_EXIT_FAILURE, EPROTO, "%s", why_dst.msg);
        }
    }
    if (dirty_started) {
        struct errbuf e2 = {0};
        if (mig_dirty_stop(dirty, &e2) < 0)
            log_warn("%s", e2.msg);
    }
    if (dirty_inited)
        mig_dirty_free(dirty);
    if (logging)
        gmem_log_stop(&vm->mem);
    if (fd >= 0)
        close(fd);
    uint64_t down_ms = stats.downtime_ns / 1000000ULL;
    if (e == 0) {
        log_info("migration: completed in %llu ms, %u passes, %llu bytes, guest paused %llu ms",
                 (unsigned long long)(vm_mig_now_ms() - t0), stats.rounds,
                 (unsigned long long)stats.bytes, (unsigned long long)down_ms);
        finish_status(vm, VM_MIGRATE_COMPLETED, t0, down_ms, NULL);
        /* The destination runs the VM: this one must never run it again. */
        for (unsigned i = 0; i < MIG_LINGER_MS / 10; i++) {
            pthread_mutex_lock(&g->lock);
            bool seen = g->mstat_seen;
            pthread_mutex_unlock(&g->lock);
            if (seen)
                break;
            usleep(10000);
        }
        vm_request_stop(vm, VM_STOP_MOVED, WISP_EXIT_OK);
    } else {
        bool cancelled = e == -ECANCELED;
        if (stats.vm_stopped) {
            mig_resume_devices(reg);
            if (!was_paused)
                (void)vm_resume(vm);
        }
        const char *msg = cancelled ? "cancelled" : err.msg[0] ? err.msg : strerror(-e);
        log_warn("migration %s; the VM keeps running here", cancelled ? "cancelled" : "failed");
        if (!cancelled)
            log_warn("%s", msg);
        finish_status(vm, cancelled ? VM_MIGRATE_CANCELLED : VM_MIGRATE_FAILED, t0, 0, msg);
        snprintf(why, whylen, "%s", msg);
    }
    free(reg);
    free(m);
    free(dirty);
    return e;
}

int vm_mig_migrate_start(void *ctx, const struct vm_migrate_req *req, char *why, size_t whylen)
{
    struct vm *vm = ctx;
    struct vm_mig *g = vm->mig;
    struct errbuf err = {0};
    struct mig_uri u;
    if (mig_uri_parse(req->to, &u, &err) < 0) {
        snprintf(why, whylen, "%s", err.msg);
        return -EINVAL;
    }
    if (req->max_rounds > MIG_PRECOPY_MAX_ROUNDS) {
        snprintf(why, whylen, "max_rounds must be 1 to %u", MIG_PRECOPY_MAX_ROUNDS);
        return -EINVAL;
    }
    pthread_mutex_lock(&g->lock);
    if (g->mstat.state == VM_MIGRATE_ACTIVE || g->job) {
        pthread_mutex_unlock(&g->lock);
        snprintf(why, whylen, "another snapshot or migration is in progress");
        return -EBUSY;
    }
    snprintf(g->migrate_to, sizeof(g->migrate_to), "%s", req->to);
    g->migrate_req = *req;
    g->migrate_req.to = g->migrate_to;
    memset(&g->mstat, 0, sizeof(g->mstat));
    g->mstat.state = VM_MIGRATE_ACTIVE;
    g->mstat.remaining_ms = UINT64_MAX;
    g->mstat_seen = false;
    g->mstat_t0 = vm_mig_now_ms();
    atomic_store(&g->migrate_cancel, false);
    pthread_mutex_unlock(&g->lock);
    int e = vm_mig_run_job(vm, migrate_job, NULL, 0, true, why, whylen);
    if (e < 0) {
        pthread_mutex_lock(&g->lock);
        g->mstat.state = VM_MIGRATE_FAILED;
        snprintf(g->mstat.error, sizeof(g->mstat.error), "%s", why);
        pthread_mutex_unlock(&g->lock);
    } else {
        log_info("migration to %s started", g->migrate_to);
    }
    return e;
}

void vm_mig_migrate_status(void *ctx, struct vm_migrate_status *st)
{
    struct vm *vm = ctx;
    struct vm_mig *g = vm->mig;
    pthread_mutex_lock(&g->lock);
    *st = g->mstat;
    if (st->state == VM_MIGRATE_ACTIVE && g->mstat_t0)
        st->total_ms = vm_mig_now_ms() - g->mstat_t0;
    if (st->state == VM_MIGRATE_COMPLETED)
        g->mstat_seen = true;
    pthread_mutex_unlock(&g->lock);
}

int vm_mig_migrate_cancel(void *ctx)
{
    struct vm *vm = ctx;
    struct vm_mig *g = vm->mig;
    pthread_mutex_lock(&g->lock);
    bool active = g->mstat.state == VM_MIGRATE_ACTIVE;
    if (active)
        atomic_store(&g->migrate_cancel, true);
    pthread_mutex_unlock(&g->lock);
    return active ? 0 : -ENOENT;
}

/* ---- destination ---- */

/*
 * After a refusal: the source is still sending.  Closing now with unread
 * data would reset the connection (TCP), and the reset may discard our
 * answer before the source reads it; so stop reading only at its end of
 * stream or after a short, bounded wait.
 */
static void drain(int fd)
{
    (void)shutdown(fd, SHUT_WR);
    uint64_t end = vm_mig_now_ms() + 2000;
    char buf[16384];
    while (vm_mig_now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(end - vm_mig_now_ms())) <= 0)
            break;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            break;
    }
}

static int ram_sink(void *ctx, uint64_t gpa, const void *data, uint64_t len)
{
    struct vm *vm = ctx;
    /* Checked against the layout already; gmem checks again. */
    return data ? gmem_write(&vm->mem, gpa, data, (size_t)len)
                : gmem_zero(&vm->mem, gpa, (size_t)len);
}

int vm_mig_incoming(struct vm *vm, struct errbuf *err)
{
    struct vm_mig *g = vm->mig;
    int fd = -1;
    struct mig_registry *reg = calloc(1, sizeof(*reg));
    struct mig_machine *m = calloc(1, sizeof(*m)), *sm = calloc(1, sizeof(*sm));
    if (!reg || !m || !sm) {
        free(reg);
        free(m);
        free(sm);
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    }
    log_info("waiting for the migration stream on %s", vm->cfg->incoming);
    int e = mig_accept(g->incoming_fd, vm->signal_fd, -1, &fd, err);
    close(g->incoming_fd);
    g->incoming_fd = -1;
    if (!strncmp(vm->cfg->incoming, "unix:", 5))
        (void)unlink(vm->cfg->incoming + 5); /* one stream per listener */
    uint64_t t0 = vm_mig_now_ms();
    struct mig_fd_transport ft;
    struct mig_transport t;
    struct mig_stream_reader r;
    bool reader = false;
    if (e == 0 && (e = mig_fd_transport_init(&ft, &t, fd, MIG_NET_TIMEOUT_MS)) < 0)
        err_set(err, WISP_EXIT_FAILURE, -e, "migration: socket: %s", strerror(-e));
    if (e == 0)
        e = vm_mig_describe(vm, reg, m, err);
    if (e == 0) {
        mig_registry_reader_init(reg, &r, &t, m->arch, err);
        reader = true;
        e = mig_load_begin(reg, &r, m, sm, err);
    }
    if (e == 0)
        e = mig_load_rest(reg, &r, m, ram_sink, vm, err);
    if (e < 0 && !err->msg[0])
        err_set(err, WISP_EXIT_FAILURE, -e, "migration stream: %s", strerror(-e));
    if (fd >= 0) {
        /* Answer before any vCPU runs: if the source cannot hear "running",
         * it must keep the VM, so this side must not run it. */
        int a = mig_ack_send(fd, e == 0, e == 0 ? "running" : err->msg, 5000);
        if (e == 0 && a < 0)
            e = err_set(err, WISP_EXIT_FAILURE, -a,
                        "migration: cannot confirm to the source (%s); not running the VM",
                        strerror(-a));
        if (e < 0)
            drain(fd);
        close(fd);
    }
    if (reader)
        mig_stream_reader_free(&r);
    metrics_inc(e == 0 ? METRICS_MIGRATION_RECEIVED : METRICS_MIGRATION_FAILED);
    if (e == 0)
        log_info("migration: received and loaded in %llu ms; running",
                 (unsigned long long)(vm_mig_now_ms() - t0));
    free(reg);
    free(m);
    free(sm);
    return e;
}
