/*
 * virtio_snapshot with virtio-balloon behind the real mmio transport: the
 * target, the driver's `actual`, the stats interval and the stats buffer
 * the device holds move to a fresh device; the new device gives that
 * buffer back at its next interval, and a destination configured without
 * statistics refuses the state; a quiesced device keeps the buffer.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "devices/virtio/balloon.h"
#include "tests/unit/devices/virtio/test_snapshot.h"

#define RING(q, part) (1 * MiB + (uint64_t)(q)*0x30000 + (uint64_t)(part)*0x10000)
#define BUF           (4 * MiB)
#define QSIZE         16
#define FEATURES      (VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_BALLOON_F_STATS_VQ))

static struct gmem mem;
static struct snap_side a, b;
static struct fake_ring rings[3];

static struct virtio_dev *new_balloon(struct snap_side *s, uint32_t interval)
{
    struct balloon_config cfg = {.id = "balloon0", .amount_mib = 1, .stats_interval_s = interval};
    struct errbuf err = {0};
    struct virtio_dev *d;
    cr_assert_eq(balloon_create(&cfg, &mem, &s->host.loop, &d, &err), 0, "%s", err.msg);
    return d;
}

static void setup(void)
{
    struct gmem_range r = {0, 8 * MiB};
    struct errbuf err = {0};
    cr_assert_eq(gmem_create(&mem, &r, 1, false, &err), 0, "%s", err.msg);
    snap_side_init(&a);
    snap_side_init(&b);
    snap_side_attach(&a, new_balloon(&a, 5));
    for (unsigned q = 0; q < 3; q++)
        fake_ring_init(&rings[q], &mem, RING(q, 0), RING(q, 1), RING(q, 2), QSIZE);
}

static void teardown(void)
{
    snap_side_fini(&a);
    snap_side_fini(&b);
    gmem_destroy(&mem);
}

TestSuite(virtio_snapshot_balloon, .init = setup, .fini = teardown, .timeout = 30);

Test(virtio_snapshot_balloon, state_and_held_stats_buffer_move)
{
    snap_side_attach(&b, new_balloon(&b, 5));
    snap_bring_up(&a, rings, 3, FEATURES);
    /* One stats entry: MEMFREE = 1234. */
    uint8_t e[10] = {BALLOON_S_MEMFREE, 0, 0xd2, 0x04};
    cr_assert_eq(gmem_write(&mem, BUF, e, sizeof(e)), 0);
    fake_ring_add(&rings[2], BUF, sizeof(e), false);
    fake_host_kick(&a.host, 2);
    cr_assert_eq(fake_ring_used_idx(&rings[2]), 0, "held by the source");
    cr_assert_eq(balloon_set_target(a.d, 3), 0);
    fake_mmio_wr(a.t, FAKE_MMIO_CONFIG + 4, 300); /* the driver's actual */
    /* One inflated page, so the used-buffer interrupt the restore raises
     * is already pending on the source and save(load(x)) == x holds. */
    uint32_t pfn = 7;
    cr_assert_eq(gmem_write(&mem, BUF + 64, &pfn, 4), 0);
    fake_ring_add(&rings[0], BUF + 64, 4, false);
    fake_host_kick(&a.host, 0);
    cr_assert_eq(fake_ring_used_idx(&rings[0]), 1);

    struct vstate_out x;
    snap_migrate(&a, &b, &x);
    snap_assert_stream(&b, &x);
    struct balloon_info i;
    balloon_get_info(b.d, &i);
    cr_assert_eq(i.target_pages, 768);
    cr_assert_eq(i.actual_pages, 300);
    cr_assert_eq(i.stats_interval_s, 5);
    cr_assert_eq(fake_mmio_rd(b.t, FAKE_MMIO_CONFIG), 768, "num_pages in config space");

    for (int t = 0; t < 5; t++)
        balloon_tick(b.d);
    cr_assert_eq(fake_ring_used_idx(&rings[2]), 1, "the destination returned the held buffer");
    vstate_out_free(&x);
}

Test(virtio_snapshot_balloon, destination_without_stats_refuses)
{
    snap_side_attach(&b, new_balloon(&b, 0));
    snap_bring_up(&a, rings, 3, FEATURES);
    struct virtio_state st;
    char why[256] = "";
    snap_save_state(&a, &st);
    cr_assert_neq(virtio_snapshot_load(b.d, b.t, &st, why, sizeof(why)), 0);
    virtio_state_free(&st);
}

static void pause_queues(struct virtio_dev *d, bool paused)
{
    pthread_mutex_lock(&d->lock);
    for (unsigned q = 0; q < 3; q++)
        d->vq[q].paused = paused;
    pthread_mutex_unlock(&d->lock);
}

/* Quiesced for a snapshot, the device must not return the held stats buffer:
 * guest memory (the used ring) would change after the state was taken, and
 * the restore would find the guest's used index ahead of the saved one. */
Test(virtio_snapshot_balloon, paused_queue_keeps_the_stats_buffer)
{
    snap_bring_up(&a, rings, 3, FEATURES);
    uint8_t e[10] = {BALLOON_S_MEMFREE, 0, 1};
    cr_assert_eq(gmem_write(&mem, BUF, e, sizeof(e)), 0);
    fake_ring_add(&rings[2], BUF, sizeof(e), false);
    fake_host_kick(&a.host, 2);
    pause_queues(a.d, true);
    for (int t = 0; t < 10; t++)
        balloon_tick(a.d);
    cr_assert_eq(fake_ring_used_idx(&rings[2]), 0, "returned while paused");
    pause_queues(a.d, false);
    balloon_tick(a.d);
    cr_assert_eq(fake_ring_used_idx(&rings[2]), 1, "returned once resumed");
}
