/*
 * vhost-vdpa data plane (see vdpa_dp.h): virtio_dataplane_ops over a
 * vdpa_dev, with every device call after creation made by one worker
 * thread, so no vCPU waits on a VDUSE server.
 */
#include "devices/vhost/vdpa_dp.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "devices/vhost/vdpa_uapi.h"
#include "vmm/log.h"

#define VDPA_DP_MAX_QUEUES 8
#define VDPA_DP_STOP_MS    10000 /* how long a save waits for the reset */

struct vdpa_dp {
    struct vdpa_dev d; /* the worker's alone once it runs */
    const struct gmem *mem;
    int (*enter)(void);
    char path[64]; /* for log lines */
    int done_fd;   /* eventfd: the worker failed (the main loop's watch fd) */
    pthread_t thread;
    bool thread_ok;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* work queued, or work done */
    bool quit, busy;
    bool reset_pending;
    bool start_pending;
    uint64_t features;
    unsigned n;
    struct virtio_dp_queue q[VDPA_DP_MAX_QUEUES];
    uint32_t cfg_lo, cfg_hi;      /* bytes of cfg[] the device has not been sent (lo >= hi: none) */
    int failed;                   /* first failure (-errno), 0 while fine */
    uint8_t cfg[VDPA_MAX_CONFIG]; /* the config space as the driver sees it */
};

/* Worker: the DRIVER_OK sequence of vdpa.h, in the kernel's order. */
static int dp_start(struct vdpa_dp *v, uint64_t features, const struct virtio_dp_queue *q,
                    unsigned n)
{
    struct vdpa_dev *d = &v->d;
    const char *step = "reset";
    int rc = d->status ? vdpa_reset(d) : 0;
    if (rc < 0)
        goto fail;
    step = "ACKNOWLEDGE";
    rc = vdpa_status_set(d, VDPA_S_ACKNOWLEDGE);
    if (rc == 0) {
        step = "DRIVER";
        rc = vdpa_status_set(d, VDPA_S_ACKNOWLEDGE | VDPA_S_DRIVER);
    }
    if (rc == 0) {
        step = "FEATURES_OK";
        rc = vdpa_features_set(d, features);
    }
    if (rc < 0)
        goto fail;
    struct errbuf err = {0};
    rc = vdpa_map_gmem(d, v->mem, &err);
    if (rc < 0) {
        log_warn("vdpa %s: %s", v->path, err.msg);
        return rc;
    }
    for (unsigned i = 0; i < n; i++) {
        struct vdpa_queue_cfg c = {.num = q[i].size,
                                   .base = q[i].next_avail,
                                   .desc = q[i].desc,
                                   .avail = q[i].avail,
                                   .used = q[i].used,
                                   .kick_fd = q[i].kick_fd,
                                   .call_fd = q[i].call_fd};
        step = "queue setup";
        rc = vdpa_queue_setup(d, q[i].index, &c);
        if (rc == 0) {
            step = "queue enable";
            rc = vdpa_queue_enable(d, q[i].index, true);
        }
        if (rc < 0)
            goto fail;
    }
    step = "DRIVER_OK";
    rc = vdpa_start(d);
    if (rc < 0)
        goto fail;
    /*
     * The driver may have kicked before the kick eventfd was the device's
     * (DRIVER_OK returned to the guest before this ran).  vhost polls the
     * eventfd from SET_VRING_KICK on, but a parent that only looks at the
     * ring when kicked would miss it: kick once more (spurious kicks are
     * harmless by the virtio rules).
     */
    for (unsigned i = 0; i < n; i++) {
        uint64_t one = 1;
        ssize_t w __unused = write(q[i].kick_fd, &one, sizeof(one));
    }
    return 0;
fail:
    log_warn("vdpa %s: %s failed: %s", v->path, step, strerror(-rc));
    return rc;
}

/* Worker: record the first failure and tell the main loop. */
static void dp_fail(struct vdpa_dp *v, int rc)
{
    if (!v->failed)
        v->failed = rc < 0 ? rc : -EIO;
    uint64_t one = 1;
    ssize_t w __unused = write(v->done_fd, &one, sizeof(one));
}

static bool dp_pending(const struct vdpa_dp *v)
{
    return v->reset_pending || v->start_pending || v->cfg_lo < v->cfg_hi;
}

static void *dp_worker(void *arg)
{
    struct vdpa_dp *v = arg;
    pthread_setname_np(pthread_self(), "wisp-vdpa"); /* before the filter: its log name */
    int rc = v->enter ? v->enter() : 0; /* under its own filter before any device call */
    bool filtered = rc == 0;
    pthread_mutex_lock(&v->mu);
    v->busy = false; /* set by vdpa_dp_start_worker: entering counts as work */
    if (rc < 0)
        dp_fail(v, rc);
    pthread_cond_broadcast(&v->cv);
    for (;;) {
        while (!v->quit && !dp_pending(v))
            pthread_cond_wait(&v->cv, &v->mu);
        if (v->quit)
            break;
        if (v->failed) { /* the device is dead until replaced: drop the work */
            v->reset_pending = v->start_pending = false;
            v->cfg_lo = v->cfg_hi = 0;
            pthread_cond_broadcast(&v->cv);
            continue;
        }
        rc = 0;
        v->busy = true;
        if (v->reset_pending) {
            v->reset_pending = false;
            pthread_mutex_unlock(&v->mu);
            if (v->d.status || v->d.nmaps)
                rc = vdpa_reset(&v->d);
            if (rc < 0)
                log_warn("vdpa %s: reset failed: %s", v->path, strerror(-rc));
        } else if (v->cfg_lo < v->cfg_hi) {
            uint32_t lo = v->cfg_lo, len = v->cfg_hi - v->cfg_lo;
            uint8_t buf[VDPA_MAX_CONFIG];
            memcpy(buf, v->cfg + lo, len);
            v->cfg_lo = v->cfg_hi = 0;
            pthread_mutex_unlock(&v->mu);
            rc = vdpa_config_write(&v->d, lo, buf, len);
            if (rc < 0)
                log_warn("vdpa %s: config write failed: %s", v->path, strerror(-rc));
        } else {
            struct virtio_dp_queue q[VDPA_DP_MAX_QUEUES];
            unsigned n = v->n;
            uint64_t features = v->features;
            memcpy(q, v->q, sizeof(q));
            v->start_pending = false;
            pthread_mutex_unlock(&v->mu);
            rc = dp_start(v, features, q, n);
        }
        pthread_mutex_lock(&v->mu);
        v->busy = false;
        if (rc < 0)
            dp_fail(v, rc);
        pthread_cond_broadcast(&v->cv);
    }
    pthread_mutex_unlock(&v->mu);
    /* Status 0 and close, under the worker's filter (without it: never touched; exit closes it). */
    if (filtered)
        vdpa_close(&v->d);
    return NULL;
}

/* Queue work for the worker: 0, or the worker's failure. */
static int dp_queue(struct vdpa_dp *v)
{
    int rc = v->failed;
    pthread_cond_signal(&v->cv);
    pthread_mutex_unlock(&v->mu);
    return rc;
}

static uint64_t vdpa_dp_features(void *dp)
{
    return ((struct vdpa_dp *)dp)->d.guest_offered;
}

static int vdpa_dp_config_read(void *dp, uint32_t off, void *buf, uint32_t len)
{
    struct vdpa_dp *v = dp;
    if (off > v->d.config_size || len > v->d.config_size - off)
        return -EINVAL;
    pthread_mutex_lock(&v->mu);
    memcpy(buf, v->cfg + off, len);
    pthread_mutex_unlock(&v->mu);
    return 0;
}

static int vdpa_dp_config_write(void *dp, uint32_t off, const void *buf, uint32_t len)
{
    struct vdpa_dp *v = dp;
    if (off > v->d.config_size || len > v->d.config_size - off)
        return -EINVAL;
    if (len == 0)
        return 0;
    pthread_mutex_lock(&v->mu);
    memcpy(v->cfg + off, buf, len);
    if (v->cfg_lo >= v->cfg_hi) {
        v->cfg_lo = off;
        v->cfg_hi = off + len;
    } else {
        v->cfg_lo = off < v->cfg_lo ? off : v->cfg_lo;
        v->cfg_hi = off + len > v->cfg_hi ? off + len : v->cfg_hi;
    }
    return dp_queue(v);
}

static int vdpa_dp_start(void *dp, uint64_t features, const struct virtio_dp_queue *q, unsigned n)
{
    struct vdpa_dp *v = dp;
    if (n == 0 || n > VDPA_DP_MAX_QUEUES)
        return -EINVAL;
    for (unsigned i = 0; i < n; i++)
        if (q[i].index >= v->d.nqueues)
            return -EINVAL;
    pthread_mutex_lock(&v->mu);
    v->features = features;
    v->n = n;
    memcpy(v->q, q, n * sizeof(*q));
    v->start_pending = true;
    return dp_queue(v);
}

/*
 * A guest reset (next NULL) is queued for the worker.  A stop for a save
 * (next set) is the same reset, waited for: the caller has drained the
 * rings (virtio_dp_quiesce) and knows the positions, so the device's own,
 * which only a SUSPENDed device could report, are not read; after the
 * reset it can no longer write guest memory.  Bounded by VDPA_DP_STOP_MS.
 */
static int vdpa_dp_stop(void *dp, const struct virtio_dp_queue *q, unsigned n, uint16_t *next)
{
    struct vdpa_dp *v = dp;
    (void)q;
    (void)n;
    pthread_mutex_lock(&v->mu);
    v->start_pending = false; /* not begun: nothing to undo */
    v->reset_pending = true;
    if (!next)
        return dp_queue(v);
    pthread_cond_broadcast(&v->cv);
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += VDPA_DP_STOP_MS / 1000;
    int rc = 0;
    while (!v->failed && (dp_pending(v) || v->busy) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&v->cv, &v->mu, &end);
    int failed = v->failed;
    bool done = !dp_pending(v) && !v->busy;
    pthread_mutex_unlock(&v->mu);
    if (failed)
        return failed;
    return done ? 0 : -ETIMEDOUT;
}

static int vdpa_dp_watch_fd(void *dp)
{
    return ((struct vdpa_dp *)dp)->done_fd;
}

static int vdpa_dp_check(void *dp)
{
    struct vdpa_dp *v = dp;
    uint64_t n;
    ssize_t r __unused = read(v->done_fd, &n, sizeof(n));
    pthread_mutex_lock(&v->mu);
    int rc = v->failed;
    pthread_mutex_unlock(&v->mu);
    return rc;
}

static void vdpa_dp_destroy(void *dp)
{
    struct vdpa_dp *v = dp;
    if (!v)
        return;
    if (v->thread_ok) {
        pthread_mutex_lock(&v->mu);
        v->quit = true;
        pthread_cond_signal(&v->cv);
        pthread_mutex_unlock(&v->mu);
        pthread_join(v->thread, NULL); /* its call in progress ends within the kernel's timeout */
    } else {
        vdpa_close(&v->d);
    }
    if (v->done_fd >= 0)
        close(v->done_fd);
    pthread_cond_destroy(&v->cv);
    pthread_mutex_destroy(&v->mu);
    free(v);
}

const struct virtio_dataplane_ops vdpa_dp_ops = {
    .kind = "vDPA",
    .features = vdpa_dp_features,
    .config_read = vdpa_dp_config_read,
    .config_write = vdpa_dp_config_write,
    .start = vdpa_dp_start,
    .stop = vdpa_dp_stop,
    .watch_fd = vdpa_dp_watch_fd,
    .check = vdpa_dp_check,
    .destroy = vdpa_dp_destroy,
};

int vdpa_dp_create(const char *path, const struct vdpa_dp_env *env, const struct gmem *mem,
                   void **out, uint32_t *device_id, struct errbuf *err)
{
    struct vdpa_dp *v = calloc(1, sizeof(*v));
    if (!v)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    v->mem = mem;
    v->enter = env ? env->enter : NULL;
    v->done_fd = -1;
    v->d.fd = -1;
    snprintf(v->path, sizeof(v->path), "%s", path);
    pthread_mutex_init(&v->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&v->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = vdpa_open(&v->d, env ? env->sys : NULL, env ? env->sys_ctx : NULL, path, err);
    if (rc < 0)
        goto fail;
    /* Read once here; afterwards only the worker calls the device. */
    rc = vdpa_config_read(&v->d, 0, v->cfg, v->d.config_size);
    if (rc < 0) {
        err_set(err, WISP_EXIT_HOST, -rc, "vdpa %s: cannot read the config space: %s", path,
                strerror(-rc));
        goto fail;
    }
    v->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (v->done_fd < 0) {
        rc = -errno;
        err_set(err, WISP_EXIT_HOST, errno, "vdpa %s: eventfd: %s", path, strerror(errno));
        goto fail;
    }
    *out = v;
    *device_id = v->d.device_id;
    return 0;
fail:
    vdpa_dp_destroy(v);
    return rc;
}

int vdpa_dp_start_worker(void *dp, struct errbuf *err)
{
    struct vdpa_dp *v = dp;
    if (v->thread_ok)
        return 0;
    /* Signals blocked: process-directed ones are the main thread's. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_mutex_lock(&v->mu);
    v->busy = true;
    pthread_mutex_unlock(&v->mu);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = -pthread_create(&v->thread, NULL, dp_worker, v);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0)
        v->busy = false;
    if (rc < 0)
        return err_set(err, WISP_EXIT_HOST, -rc, "vdpa %s: cannot start its worker thread: %s",
                       v->path, strerror(-rc));
    v->thread_ok = true;
    return 0;
}

int vdpa_dp_wait_idle(void *dp, int timeout_ms)
{
    struct vdpa_dp *v = dp;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    pthread_mutex_lock(&v->mu);
    while (!v->failed && (v->busy || dp_pending(v)) && rc == 0)
        rc = pthread_cond_timedwait(&v->cv, &v->mu, &until);
    int out = v->failed ? v->failed : (v->busy || dp_pending(v)) ? -ETIMEDOUT : 0;
    pthread_mutex_unlock(&v->mu);
    return out;
}

const struct vdpa_dev *vdpa_dp_dev(void *dp)
{
    return &((struct vdpa_dp *)dp)->d;
}
