/*
 * Unit tests for the vhost-vdpa data plane (devices/vhost/vdpa_dp.c)
 * against the simulated kernel device of tests/lib/fake_vdpa: the
 * DRIVER_OK sequence runs on the worker with no rule violated, a guest
 * reset takes the device back to status 0 and a second start maps guest
 * RAM again; the caller (a vCPU in wisp) never waits for the device, even
 * while the device hangs in SET_STATUS; work queued meanwhile is merged;
 * failures come back through the watch fd, and a worker whose sandbox
 * entry failed never touches the device.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "devices/vhost/vdpa_dp.h"
#include "devices/vhost/vdpa_uapi.h"
#include "tests/lib/fake_vdpa.h"
#include "tests/lib/virtq_builder.h"

#define QN 16

/* The fake kernel, with a gate that can hold the worker inside DRIVER_OK. */
struct gated {
    struct fake_vdpa f;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool hold;    /* DRIVER_OK waits while set */
    bool holding; /* the worker is waiting at the gate */
};

static struct gated g;
static struct vqb b;
static struct errbuf err;
static void *dp;
static int kick, call;

static int gated_open(void *ctx, const char *path, int flags)
{
    return fake_vdpa_ops.open(&((struct gated *)ctx)->f, path, flags);
}

static int gated_ioctl(void *ctx, int fd, unsigned long req, uintptr_t arg)
{
    struct gated *x = ctx;
    if (req == VHOST_VDPA_SET_STATUS && (*(uint8_t *)arg & VDPA_S_DRIVER_OK)) {
        pthread_mutex_lock(&x->mu);
        x->holding = true;
        pthread_cond_broadcast(&x->cv);
        while (x->hold)
            pthread_cond_wait(&x->cv, &x->mu);
        x->holding = false;
        pthread_mutex_unlock(&x->mu);
    }
    return fake_vdpa_ops.ioctl(&x->f, fd, req, arg);
}

static ssize_t gated_write(void *ctx, int fd, const void *buf, size_t len)
{
    return fake_vdpa_ops.write(&((struct gated *)ctx)->f, fd, buf, len);
}

static int gated_close(void *ctx, int fd)
{
    return fake_vdpa_ops.close(&((struct gated *)ctx)->f, fd);
}

static const struct vhost_sys_ops gated_ops = {gated_open, gated_ioctl, gated_write, gated_close};

static void gate(bool hold)
{
    pthread_mutex_lock(&g.mu);
    g.hold = hold;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
}

/* Wait until the worker sits at the gate (bounded). */
static void wait_holding(void)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&g.mu);
    int rc = 0;
    while (!g.holding && rc == 0)
        rc = pthread_cond_timedwait(&g.cv, &g.mu, &until);
    bool at = g.holding;
    pthread_mutex_unlock(&g.mu);
    cr_assert(at, "the worker reached DRIVER_OK");
}

static void init(void)
{
    memset(&g, 0, sizeof(g));
    fake_vdpa_init(&g.f);
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    memset(&err, 0, sizeof(err));
    vqb_init(&b, VQB_ONE_REGION, QN, QN);
    kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    call = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    dp = NULL;
}

static void fini(void)
{
    gate(false);
    if (dp)
        vdpa_dp_ops.destroy(dp);
    cr_assert(!g.f.open, "the device is closed at teardown");
    close(kick);
    close(call);
    vqb_fini(&b);
}

TestSuite(vdpa_dp, .init = init, .fini = fini);

static int enter_fails(void)
{
    return -EPERM;
}

static void create(int (*enter)(void))
{
    struct vdpa_dp_env env = {.sys = &gated_ops, .sys_ctx = &g, .enter = enter};
    uint32_t type = 0;
    cr_assert_eq(vdpa_dp_create("/dev/vhost-vdpa-0", &env, &b.mem, &dp, &type, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(type, 2, "blk");
    cr_assert_eq(vdpa_dp_start_worker(dp, &err), 0, "%s", err.msg);
}

static struct virtio_dp_queue queue(void)
{
    return (struct virtio_dp_queue){.index = 0,
                                    .size = QN,
                                    .next_avail = 0,
                                    .desc = VQB_DESC_GPA,
                                    .avail = VQB_AVAIL_GPA,
                                    .used = VQB_USED_GPA,
                                    .kick_fd = kick,
                                    .call_fd = call};
}

static const uint64_t version1 = 1ull << VDPA_F_VERSION_1;

Test(vdpa_dp, start_runs_the_driver_ok_sequence_on_the_worker)
{
    create(NULL);
    cr_assert_eq(vdpa_dp_ops.features(dp), g.f.features & ~VDPA_GUEST_HIDDEN);
    uint8_t cfg[8];
    cr_assert_eq(vdpa_dp_ops.config_read(dp, 0, cfg, 8), 0);
    cr_assert_eq(memcmp(cfg, g.f.config, 8), 0, "capacity read at creation");
    struct virtio_dp_queue q = queue();
    cr_assert_eq(vdpa_dp_ops.start(dp, version1, &q, 1), 0);
    cr_assert_eq(vdpa_dp_wait_idle(dp, 5000), 0);
    cr_assert_eq(g.f.status,
                 VDPA_S_ACKNOWLEDGE | VDPA_S_DRIVER | VDPA_S_FEATURES_OK | VDPA_S_DRIVER_OK);
    cr_assert_eq(g.f.acked, version1 | (1ull << VDPA_F_ACCESS_PLATFORM),
                 "the guest's features, with ACCESS_PLATFORM towards the device");
    cr_assert(g.f.vq[0].enabled);
    cr_assert_eq(g.f.vq[0].num, QN);
    cr_assert_eq(g.f.vq[0].desc, VQB_DESC_GPA, "rings by guest-physical address");
    cr_assert_eq(g.f.vq[0].kick, kick);
    cr_assert_eq(g.f.vq[0].call, call);
    cr_assert_gt(g.f.nmaps, 0, "guest RAM mapped");
    uint64_t n = 0;
    cr_assert_eq(read(kick, &n, sizeof(n)), 8, "a kick after DRIVER_OK: none is lost");
    /* A buffer the guest publishes now is used by the device through its IOTLB. */
    vqb_set_desc(&b, 0, VQB_DATA_GPA, 512, 0, 0);
    vqb_publish(&b, 0);
    cr_assert_eq(fake_vdpa_process(&g.f, 0), 1);
    cr_assert_eq(g.f.violations, 0, "%s", g.f.violation);
}

Test(vdpa_dp, guest_reset_then_second_start)
{
    create(NULL);
    struct virtio_dp_queue q = queue();
    cr_assert_eq(vdpa_dp_ops.start(dp, version1, &q, 1), 0);
    cr_assert_eq(vdpa_dp_wait_idle(dp, 5000), 0);
    cr_assert_eq(vdpa_dp_ops.stop(dp, &q, 1, NULL), 0);
    cr_assert_eq(vdpa_dp_wait_idle(dp, 5000), 0);
    cr_assert_eq(g.f.status, 0, "reset");
    cr_assert_eq(g.f.nmaps, 0, "mappings invalidated with the reset");
    cr_assert_eq(vdpa_dp_ops.start(dp, version1, &q, 1), 0);
    cr_assert_eq(vdpa_dp_wait_idle(dp, 5000), 0, "guest RAM mapped again without EEXIST");
    cr_assert(g.f.status & VDPA_S_DRIVER_OK);
    cr_assert_eq(g.f.violations, 0, "%s", g.f.violation);
}

Test(vdpa_dp, the_caller_never_waits_for_a_hung_device)
{
    create(NULL);
    gate(true);
    struct virtio_dp_queue q = queue();
    cr_assert_eq(vdpa_dp_ops.start(dp, version1, &q, 1), 0);
    wait_holding();
    /* The device hangs in DRIVER_OK: every call a vCPU makes still returns at once. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint8_t wce = 1;
    cr_assert_eq(vdpa_dp_ops.config_write(dp, 32, &wce, 1), 0);
    cr_assert_eq(vdpa_dp_ops.stop(dp, &q, 1, NULL), 0);
    cr_assert_eq(vdpa_dp_ops.start(dp, version1, &q, 1), 0);
    cr_assert_eq(vdpa_dp_ops.stop(dp, &q, 1, NULL), 0);
    cr_assert_eq(vdpa_dp_ops.start(dp, version1, &q, 1), 0);
    uint8_t c;
    cr_assert_eq(vdpa_dp_ops.config_read(dp, 32, &c, 1), 0);
    cr_assert_eq(c, 1, "the driver reads back what it wrote");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    cr_assert_lt(ms, 500, "calls took %ld ms while the device hung", ms);
    cr_assert_eq(vdpa_dp_wait_idle(dp, 100), -ETIMEDOUT, "the worker is still held");
    unsigned resets = g.f.resets;
    gate(false);
    cr_assert_eq(vdpa_dp_wait_idle(dp, 5000), 0);
    /* Merged: one reset, then the config write, then one start (not two of each). */
    cr_assert_eq(g.f.resets, resets + 1, "resets %u -> %u", resets, g.f.resets);
    cr_assert_eq(g.f.config[32], 1, "config write reached the device");
    cr_assert(g.f.status & VDPA_S_DRIVER_OK, "started again");
    cr_assert_eq(g.f.violations, 0, "%s", g.f.violation);
}

Test(vdpa_dp, a_failed_start_comes_back_through_the_watch_fd)
{
    g.f.needs_reset_on_start = true;
    create(NULL);
    int w = vdpa_dp_ops.watch_fd(dp);
    cr_assert_geq(w, 0);
    cr_assert_eq(vdpa_dp_ops.check(dp), 0, "fine before");
    struct virtio_dp_queue q = queue();
    cr_assert_eq(vdpa_dp_ops.start(dp, version1, &q, 1), 0, "returns before the device answers");
    cr_assert_eq(vdpa_dp_wait_idle(dp, 5000), -EIO);
    struct pollfd p = {.fd = w, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 1000), 1, "the main loop is woken");
    cr_assert_eq(vdpa_dp_ops.check(dp), -EIO);
    cr_assert_eq(vdpa_dp_ops.start(dp, version1, &q, 1), -EIO, "dead until replaced");
}

/*
 * A stop for a save (positions wanted) is the reset, done before stop
 * returns: afterwards the device cannot write guest memory.  The caller's
 * drained positions are left as they are (a device that is not suspended
 * has none to report).
 */
Test(vdpa_dp, a_stop_for_a_save_resets_before_it_returns)
{
    create(NULL);
    struct virtio_dp_queue q = queue();
    cr_assert_eq(vdpa_dp_ops.start(dp, version1, &q, 1), 0);
    cr_assert_eq(vdpa_dp_wait_idle(dp, 5000), 0);
    cr_assert(g.f.status & VDPA_S_DRIVER_OK);
    unsigned resets = g.f.resets;
    uint16_t next = 7;
    cr_assert_eq(vdpa_dp_ops.stop(dp, &q, 1, &next), 0);
    cr_assert_eq(g.f.resets, resets + 1, "reset done when stop returned");
    cr_assert_eq(g.f.status, 0);
    cr_assert_eq(next, 7, "the drained position stands");
    cr_assert_null(vdpa_dp_ops.unmigratable, "the device type decides");
    cr_assert_eq(g.f.violations, 0, "%s", g.f.violation);
}

Test(vdpa_dp, bad_queue_and_config_bounds)
{
    create(NULL);
    struct virtio_dp_queue q = queue();
    q.index = 1; /* the device has one queue */
    cr_assert_eq(vdpa_dp_ops.start(dp, version1, &q, 1), -EINVAL);
    uint8_t buf[8];
    cr_assert_eq(vdpa_dp_ops.config_read(dp, 56, buf, 8), -EINVAL, "past the 60 bytes");
    cr_assert_eq(vdpa_dp_ops.config_write(dp, 60, buf, 1), -EINVAL);
    cr_assert_eq(vdpa_dp_ops.config_write(dp, UINT32_MAX, buf, 2), -EINVAL, "no wrap-around");
}

Test(vdpa_dp, a_worker_outside_its_sandbox_never_touches_the_device)
{
    create(enter_fails);
    cr_assert_eq(vdpa_dp_wait_idle(dp, 5000), -EPERM);
    unsigned ioctls = g.f.ioctls;
    struct virtio_dp_queue q = queue();
    cr_assert_eq(vdpa_dp_ops.start(dp, version1, &q, 1), -EPERM);
    cr_assert_eq(vdpa_dp_ops.check(dp), -EPERM);
    cr_assert_eq(g.f.ioctls, ioctls, "no call after the failed entry");
    vdpa_dp_ops.destroy(dp);
    dp = NULL;
    cr_assert_eq(g.f.ioctls, ioctls, "not even the teardown reset");
    g.f.open = false; /* the process exit would close it */
}
