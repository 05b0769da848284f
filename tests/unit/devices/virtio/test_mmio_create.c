/*
 * virtio-mmio transport lifetime: what create binds (irqfd, one ioeventfd
 * and event-loop handler per queue, the bus window), that every failure on
 * the way leaves nothing behind (no bindings, handlers or file descriptors),
 * that destroy undoes it all, and a two-thread smoke test of the locking
 * between register accesses (vCPU side) and kick handlers (main loop side).
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "tests/lib/fake_virtio.h"
#include "vmm/log.h"

static struct gmem mem;
static struct fake_host host;
static struct fake_virtio dev;

static void setup(void)
{
    struct gmem_range r = {0, 1 * MiB};
    struct errbuf err = {0};
    log_threshold = LOG_ERROR;
    cr_assert_eq(gmem_create(&mem, &r, 1, false, &err), 0, "%s", err.msg);
    fake_host_init(&host);
    fake_virtio_init(&dev, &mem, &host.loop);
}

static void teardown(void)
{
    fake_virtio_fini(&dev);
    fake_host_fini(&host);
    gmem_destroy(&mem);
}

TestSuite(virtio_mmio_create, .init = setup, .fini = teardown, .timeout = 30);

static unsigned open_fds(void)
{
    unsigned n = 0;
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static unsigned loop_handlers(void)
{
    unsigned n = 0;
    for (unsigned i = 0; i < EVLOOP_MAX_HANDLERS; i++)
        n += host.loop.handlers[i].fd >= 0;
    return n;
}

Test(virtio_mmio_create, create_and_destroy)
{
    unsigned fds = open_fds();
    struct virtio_mmio *t = NULL;
    struct errbuf err = {0};
    cr_assert_eq(virtio_mmio_create(&dev.dev, &host.host, 0xd0001000, 7, &t, &err), 0, "%s",
                 err.msg);
    cr_expect_eq(fake_host_bound(&host), FAKE_VIRTIO_QUEUES);
    cr_expect_eq(loop_handlers(), FAKE_VIRTIO_QUEUES);
    cr_expect_eq(host.gsi, 7);
    cr_expect_eq(host.bus.n, 1);
    cr_expect_eq(host.bus.ranges[0].base, 0xd0001000);
    cr_expect_eq(host.bus.ranges[0].len, VIRTIO_MMIO_WINDOW);
    cr_expect_eq(dev.dev.transport, t);
    cr_expect_not_null(dev.dev.tops);
    /* A second transport for the same device is refused. */
    struct virtio_mmio *t2 = NULL;
    struct errbuf err2 = {0};
    cr_expect_eq(virtio_mmio_create(&dev.dev, &host.host, 0xd0002000, 8, &t2, &err2), -EBUSY);

    virtio_mmio_destroy(t);
    cr_expect_eq(fake_host_bound(&host), 0, "ioeventfds unbound");
    cr_expect_eq(loop_handlers(), 0);
    cr_expect_null(dev.dev.transport);
    cr_expect_null(dev.dev.tops);
    /* The fake keeps a dup of the irqfd; everything else is closed. */
    cr_expect_eq(open_fds(), fds + 1);
    virtio_mmio_destroy(NULL);
}

static void expect_clean_failure(int r, unsigned fds, const struct errbuf *err)
{
    cr_expect_lt(r, 0);
    cr_expect(err_isset(err));
    cr_expect_eq(fake_host_bound(&host), 0);
    cr_expect_eq(loop_handlers(), 0);
    cr_expect_null(dev.dev.transport);
    cr_expect_null(dev.dev.tops);
    cr_expect_leq(open_fds(), fds + 1); /* at most the fake's irqfd dup */
}

Test(virtio_mmio_create, irqfd_failure)
{
    unsigned fds = open_fds();
    struct virtio_mmio *t = NULL;
    struct errbuf err = {0};
    host.fail_irqfd = -ENOSYS;
    int r = virtio_mmio_create(&dev.dev, &host.host, 0xd0000000, 5, &t, &err);
    expect_clean_failure(r, fds, &err);
    cr_expect_eq(r, -ENOSYS);
    cr_expect_eq(host.ncalls, 0);
    cr_expect_not_null(strstr(err.msg, "fake0"), "error names the device: %s", err.msg);
}

Test(virtio_mmio_create, ioeventfd_failure_unwinds)
{
    unsigned fds = open_fds();
    struct virtio_mmio *t = NULL;
    struct errbuf err = {0};
    host.fail_assign = 2; /* the second queue's binding fails */
    int r = virtio_mmio_create(&dev.dev, &host.host, 0xd0000000, 5, &t, &err);
    expect_clean_failure(r, fds, &err);
    cr_expect_eq(r, -ENOSPC);
    cr_expect_eq(host.ncalls, 2, "queue 0 bound, then unbound");
    cr_expect_not(host.calls[1].assign);
    cr_expect_eq(host.calls[1].datamatch, 0);
}

Test(virtio_mmio_create, bus_conflict_unwinds)
{
    unsigned fds = open_fds();
    cr_assert_eq(bus_register(&host.bus, 0xd0000800, 0x100, "other", NULL, NULL, NULL), 0);
    struct virtio_mmio *t = NULL;
    struct errbuf err = {0};
    int r = virtio_mmio_create(&dev.dev, &host.host, 0xd0000000, 5, &t, &err);
    expect_clean_failure(r, fds, &err);
    cr_expect_eq(r, -EEXIST);
    cr_expect_eq(host.bus.n, 1);
}

Test(virtio_mmio_create, bad_base_refused)
{
    const uint64_t bases[] = {0xd0000800, 0xd0000004, UINT64_MAX & ~0xfffULL};
    for (size_t i = 0; i < ARRAY_SIZE(bases); i++) {
        struct virtio_mmio *t = NULL;
        struct errbuf err = {0};
        cr_expect_eq(virtio_mmio_create(&dev.dev, &host.host, bases[i], 5, &t, &err), -EINVAL,
                     "base 0x%llx", (unsigned long long)bases[i]);
        cr_expect_eq(host.irqfd_calls, 0);
    }
}

/* ---- locking smoke test ------------------------------------------------------- */

static struct virtio_mmio *tport;
static atomic_bool stop;

static void *vcpu_thread(void *arg)
{
    (void)arg;
    uint32_t i = 0;
    while (!atomic_load(&stop)) {
        /* What a driver's interrupt handler and a chatty driver do. */
        uint32_t st = fake_mmio_rd(tport, FAKE_MMIO_INT_STATUS);
        fake_mmio_wr(tport, FAKE_MMIO_INT_ACK, st);
        fake_mmio_wr(tport, FAKE_MMIO_QUEUE_NOTIFY, i++ & 1);
        (void)fake_mmio_rd(tport, FAKE_MMIO_CONFIG_GEN);
    }
    return NULL;
}

Test(virtio_mmio_create, concurrent_registers_and_kicks)
{
    struct errbuf err = {0};
    cr_assert_eq(virtio_mmio_create(&dev.dev, &host.host, 0xd0000000, 5, &tport, &err), 0);
    struct fake_ring r0, r1;
    fake_ring_init(&r0, &mem, 0x10000, 0x11000, 0x12000, 64);
    fake_ring_init(&r1, &mem, 0x20000, 0x21000, 0x22000, 64);
    cr_assert_eq(fake_mmio_negotiate(tport, VIRTIO_BIT(VIRTIO_F_VERSION_1)), 11);
    fake_mmio_setup_queue(tport, 0, &r0);
    fake_mmio_setup_queue(tport, 1, &r1);
    fake_mmio_wr(tport, FAKE_MMIO_STATUS, 15);
    cr_assert_eq(fake_mmio_rd(tport, FAKE_MMIO_STATUS), 15);

    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, vcpu_thread, NULL), 0);
    for (unsigned i = 0; i < 2000; i++) {
        /* This thread is the driver filling the rings while the other one
         * makes the device pop them through MMIO notifies. */
        fake_ring_add(i & 1 ? &r1 : &r0, 0x30000 + 16 * (i % 256), 16, true);
        fake_host_kick(&host, i & 1);
    }
    atomic_store(&stop, true);
    pthread_join(th, NULL);
    cr_expect_eq(dev.chains[0] + dev.chains[1], 2000);
    cr_expect_eq(fake_ring_used_idx(&r0), 1000);
    cr_expect_eq(fake_ring_used_idx(&r1), 1000);
    cr_expect_eq(fake_mmio_rd(tport, FAKE_MMIO_STATUS), 15);
    virtio_mmio_destroy(tport);
}
