/*
 * virtio-rng: random bytes written into writable buffers with the used
 * length reported, the 64 KiB per-request cap, chains without a writable
 * part, the per-event budget, requests queued before DRIVER_OK, a malformed
 * ring, and the (empty) state section.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "devices/virtio/rng.h"
#include "tests/lib/net_harness.h"

static struct net_harness h;

static void setup(void)
{
    net_harness_init(&h);
}

static void teardown(void)
{
    net_harness_fini(&h);
}

TestSuite(virtio_rng, .init = setup, .fini = teardown, .timeout = 30);

static struct virtio_dev *make(void)
{
    struct virtio_dev *d;
    struct errbuf err = {0};
    struct virtio_rng_config cfg = {.id = "rng0"};
    cr_assert_eq(virtio_rng_create(&cfg, NULL, &h.loop, &d, &err), 0, "%s", err.msg);
    return d;
}

static void start(void)
{
    net_harness_start(&h, make(), 1, 256, VIRTIO_BIT(VIRTIO_F_VERSION_1));
    net_harness_settle(&h, 0);
}

static struct virtio_rng_stats stats(void)
{
    struct virtio_rng_stats st;
    virtio_rng_get_stats(h.d, &st);
    return st;
}

/* How many of the n bytes at p still equal `fill`. */
static size_t count_fill(const uint8_t *p, size_t n, uint8_t fill)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += p[i] == fill;
    return k;
}

static void used(uint16_t slot, uint32_t *id, uint32_t *len)
{
    vqb_used_elem(&h.q[0], slot, id, len);
}

Test(virtio_rng, fills_writable_buffers)
{
    start();
    struct vqb *q = &h.q[0];
    gpa_t a = vqb_alloc(q, 100, 0), b = vqb_alloc(q, 200, 0);
    struct vqb_buf bufs[2] = {{a, 100, true}, {b, 200, true}};
    uint16_t head = vqb_add_chain(q, bufs, 2);
    net_harness_kick(&h, 0);
    cr_assert_eq(vqb_used_idx(q), 1);
    uint32_t id, len;
    used(0, &id, &len);
    cr_assert_eq(id, head);
    cr_assert_eq(len, 300);
    /* 300 random bytes: a run of zeros this long would be astronomically unlikely. */
    cr_assert_lt(count_fill(vqb_host(q, a, 100), 100, 0), 20);
    cr_assert_lt(count_fill(vqb_host(q, b, 200), 200, 0), 30);
    cr_assert_eq(h.used_irqs, 1);
    cr_assert_eq(stats().bytes, 300);
    cr_assert_eq(h.d->ops->config_size, 0);
    cr_assert_eq(h.d->ops->device_id, VIRTIO_ID_RNG);
}

Test(virtio_rng, request_cap_respected)
{
    start();
    struct vqb *q = &h.q[0];
    /* 100 KiB offered in two buffers: only the first 64 KiB are written. */
    gpa_t a = vqb_alloc(q, 60 * 1024, 0xa5), b = vqb_alloc(q, 40 * 1024, 0xa5);
    struct vqb_buf bufs[2] = {{a, 60 * 1024, true}, {b, 40 * 1024, true}};
    vqb_add_chain(q, bufs, 2);
    net_harness_kick(&h, 0);
    uint32_t id, len;
    used(0, &id, &len);
    cr_assert_eq(len, VIRTIO_RNG_REQ_MAX);
    const uint8_t *pb = vqb_host(q, b, 40 * 1024);
    size_t written_in_b = VIRTIO_RNG_REQ_MAX - 60 * 1024;
    cr_assert_lt(count_fill(pb, written_in_b, 0xa5), written_in_b / 16, "written part is random");
    cr_assert_eq(count_fill(pb + written_in_b, 40 * 1024 - written_in_b, 0xa5),
                 40 * 1024 - written_in_b, "beyond the cap nothing is touched");
}

Test(virtio_rng, zero_length_and_readable_only_chains)
{
    start();
    struct vqb *q = &h.q[0];
    gpa_t a = vqb_alloc(q, 64, 0x11);
    struct vqb_buf zero = {a, 0, true};
    struct vqb_buf ro = {a, 64, false};
    uint16_t h0 = vqb_add_chain(q, &zero, 1);
    uint16_t h1 = vqb_add_chain(q, &ro, 1);
    net_harness_kick(&h, 0);
    cr_assert_eq(vqb_used_idx(q), 2, "both completed");
    uint32_t id, len;
    used(0, &id, &len);
    cr_assert_eq(id, h0);
    cr_assert_eq(len, 0);
    used(1, &id, &len);
    cr_assert_eq(id, h1);
    cr_assert_eq(len, 0);
    cr_assert_eq(count_fill(vqb_host(q, a, 64), 64, 0x11), 64, "a readable buffer is not written");
    cr_assert_eq(h.needs_reset, 0);

    /* Readable first, then writable: only the writable part is filled. */
    gpa_t r = vqb_alloc(q, 32, 0x22), w = vqb_alloc(q, 32, 0);
    struct vqb_buf mixed[2] = {{r, 32, false}, {w, 32, true}};
    vqb_add_chain(q, mixed, 2);
    net_harness_kick(&h, 0);
    used(2, &id, &len);
    cr_assert_eq(len, 32);
    cr_assert_eq(count_fill(vqb_host(q, r, 32), 32, 0x22), 32);
}

Test(virtio_rng, work_is_bounded_per_event)
{
    start();
    for (int i = 0; i < 40; i++)
        net_harness_add_buf(&h, 0, 16, true, 0, NULL);
    net_harness_kick(&h, 0);
    cr_assert_eq(vqb_used_idx(&h.q[0]), VIRTIO_RNG_BUDGET);
    net_harness_settle(&h, 0);
    cr_assert_eq(vqb_used_idx(&h.q[0]), 40, "the rest is served from the loop");
    cr_assert_eq(stats().requests, 40);
}

Test(virtio_rng, bytes_per_event_are_bounded)
{
    start();
    for (int i = 0; i < 8; i++)
        net_harness_add_buf(&h, 0, VIRTIO_RNG_REQ_MAX, true, 0, NULL);
    net_harness_kick(&h, 0);
    cr_assert_eq(vqb_used_idx(&h.q[0]), VIRTIO_RNG_EVENT_BYTES / VIRTIO_RNG_REQ_MAX);
    net_harness_settle(&h, 0);
    cr_assert_eq(vqb_used_idx(&h.q[0]), 8);
}

Test(virtio_rng, requests_before_driver_ok_are_served)
{
    struct virtio_dev *d = make();
    /* Start without pumping: the buffers were queued "before DRIVER_OK". */
    net_harness_start(&h, d, 1, 256, VIRTIO_BIT(VIRTIO_F_VERSION_1));
    net_harness_add_buf(&h, 0, 8, true, 0, NULL);
    net_harness_settle(&h, 0);
    cr_assert_eq(vqb_used_idx(&h.q[0]), 1);
}

Test(virtio_rng, malformed_ring_fails_device)
{
    start();
    vqb_set_desc(&h.q[0], 0, VQB_DATA_GPA, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
    vqb_publish(&h.q[0], 0); /* a descriptor that loops to itself */
    net_harness_kick(&h, 0);
    cr_assert_eq(h.needs_reset, 1);
    cr_assert_eq(vqb_used_idx(&h.q[0]), 0);
    net_harness_add_buf(&h, 0, 16, true, 0, NULL);
    net_harness_kick(&h, 0);
    cr_assert_eq(vqb_used_idx(&h.q[0]), 0, "nothing served until reset");
}

Test(virtio_rng, state_round_trip_and_refusal)
{
    start();
    struct vstate_out o = net_harness_save(h.d);
    cr_assert_eq(net_harness_load(h.d, o.buf, o.len), 0);
    for (size_t n = 0; n < o.len; n++)
        cr_assert_neq(net_harness_load(h.d, o.buf, n), 0, "truncated to %zu", n);
    vstate_out_free(&o);

    struct vstate_out bad;
    vstate_out_init(&bad);
    vstate_begin(&bad, "virtio-rng", 1);
    vstate_put_u8(&bad, 0);
    cr_assert_eq(vstate_end(&bad), 0);
    cr_assert_neq(net_harness_load(h.d, bad.buf, bad.len), 0, "trailing byte");
    vstate_out_free(&bad);

    vstate_out_init(&bad);
    vstate_begin(&bad, "virtio-rng", 2);
    cr_assert_eq(vstate_end(&bad), 0);
    cr_assert_neq(net_harness_load(h.d, bad.buf, bad.len), 0, "newer version");
    vstate_out_free(&bad);

    vstate_out_init(&bad);
    vstate_begin(&bad, "virtio-net", 1);
    cr_assert_eq(vstate_end(&bad), 0);
    cr_assert_neq(net_harness_load(h.d, bad.buf, bad.len), 0, "another device's section");
    vstate_out_free(&bad);
}

Test(virtio_rng, reset_then_reactivate)
{
    start();
    net_harness_add_buf(&h, 0, 16, true, 0, NULL);
    net_harness_kick(&h, 0);
    pthread_mutex_lock(&h.d->lock);
    h.d->status = 0;
    h.d->ops->reset(h.d);
    virtq_reset(&h.d->vq[0]);
    pthread_mutex_unlock(&h.d->lock);
    net_harness_kick(&h, 0); /* ignored: not live */
    cr_assert_eq(vqb_used_idx(&h.q[0]), 1);
}
