/*
 * virtio-balloon: inflated pages are given back (read zero, leave the
 * memfd), deflated ones are left alone, PFNs outside RAM or in a hole are
 * counted and ignored, oversized and odd-length PFN arrays, the target and
 * `actual` in config space, the stats buffer held and returned each
 * interval (tags bounded, unknown ones ignored), free page reporting, queue
 * numbering by features, and the state section (round trip and refusals).
 *
 * The harness gives every ring its own RAM; the balloon's guest RAM is a
 * separate gmem with a hole ([0, 1 MiB) and [2 MiB, 4 MiB)), except for
 * reporting, whose buffers are themselves the pages and so must be in it.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "devices/virtio/balloon.h"
#include "tests/lib/net_harness.h"

static struct net_harness h;
static struct gmem ram;

static void setup(void)
{
    struct gmem_range r[2] = {{0, 1 * MiB}, {2 * MiB, 2 * MiB}};
    struct errbuf err = {0};
    cr_assert_eq(gmem_create(&ram, r, 2, false, &err), 0, "%s", err.msg);
    net_harness_init(&h);
}

static void teardown(void)
{
    net_harness_fini(&h);
    gmem_destroy(&ram);
}

TestSuite(virtio_balloon, .init = setup, .fini = teardown, .timeout = 30);

#define F(b) VIRTIO_BIT(VIRTIO_BALLOON_F_##b)

static struct virtio_dev *make(const struct balloon_config *cfg)
{
    struct virtio_dev *d;
    struct errbuf err = {0};
    cr_assert_eq(balloon_create(cfg, &ram, &h.loop, &d, &err), 0, "%s", err.msg);
    return d;
}

static void start(const struct balloon_config *cfg, uint64_t features)
{
    net_harness_start(&h, make(cfg), BALLOON_NUM_QUEUES, 256,
                      VIRTIO_BIT(VIRTIO_F_VERSION_1) | features);
    net_harness_settle(&h, 0);
}

static struct balloon_info info(void)
{
    struct balloon_info i;
    balloon_get_info(h.d, &i);
    return i;
}

/* Send `n` PFNs as one readable buffer on queue q. */
static void send_pfns(unsigned q, const uint32_t *pfns, unsigned n, uint32_t len)
{
    gpa_t a = vqb_alloc(&h.q[q], n * 4 + 4, 0);
    memcpy(vqb_host(&h.q[q], a, n * 4 + 4), pfns, n * 4);
    struct vqb_buf b = {a, len, false};
    vqb_add_chain(&h.q[q], &b, 1);
    net_harness_kick(&h, (uint16_t)q);
}

static uint8_t *page(uint32_t pfn)
{
    return gmem_ptr(&ram, (gpa_t)pfn * 4096, 4096);
}

static long ram_blocks(void)
{
    struct stat st;
    cr_assert_eq(fstat(ram.fd, &st), 0);
    return (long)st.st_blocks;
}

Test(virtio_balloon, inflate_gives_pages_back)
{
    struct balloon_config cfg = {.id = "b0"};
    start(&cfg, 0);
    uint32_t pfns[] = {0, 1, 2, 600};
    for (unsigned i = 0; i < 4; i++)
        memset(page(pfns[i]), 0x5a, 4096);
    memset(page(3), 0x5a, 4096);
    long before = ram_blocks();
    send_pfns(0, pfns, 4, sizeof(pfns));
    cr_assert_eq(vqb_used_idx(&h.q[0]), 1);
    /* Before reading them: a read of a shmem hole allocates a page again. */
    cr_assert_eq(ram_blocks(), before - 4 * 8, "four pages left the memfd: %ld -> %ld", before,
                 ram_blocks());
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(page(pfns[i])[100], 0, "pfn %u reads zero", pfns[i]);
    cr_assert_eq(page(3)[100], 0x5a, "the neighbour is untouched");
    struct balloon_info i = info();
    cr_assert_eq(i.c.inflated, 4);
    cr_assert_eq(i.c.bad_pfns, 0);
    cr_assert_eq(i.c.discard_errors, 0);
    cr_assert_eq(h.used_irqs, 1);
}

Test(virtio_balloon, deflate_leaves_pages_alone)
{
    struct balloon_config cfg = {0};
    start(&cfg, 0);
    memset(page(5), 0x77, 4096);
    uint32_t pfn = 5;
    send_pfns(1, &pfn, 1, 4);
    cr_assert_eq(vqb_used_idx(&h.q[1]), 1);
    cr_assert_eq(page(5)[0], 0x77);
    cr_assert_eq(info().c.deflated, 1);
    cr_assert_eq(info().c.inflated, 0);
}

Test(virtio_balloon, pfns_outside_ram_are_ignored)
{
    struct balloon_config cfg = {0};
    start(&cfg, 0);
    /* In the hole, at the end of RAM, far beyond; then one valid page. */
    uint32_t pfns[] = {256, 300, 1024, 0xffffffffu, 7};
    memset(page(7), 1, 4096);
    send_pfns(0, pfns, 5, sizeof(pfns));
    send_pfns(1, pfns, 4, 16);
    struct balloon_info i = info();
    cr_assert_eq(i.c.bad_pfns, 8);
    cr_assert_eq(i.c.inflated, 1);
    cr_assert_eq(i.c.deflated, 0);
    cr_assert_eq(i.c.discard_errors, 0, "nothing outside RAM reached gmem_discard");
    cr_assert_eq(page(7)[0], 0);
    cr_assert_eq(h.needs_reset, 0, "bad PFNs do not break the device");
}

Test(virtio_balloon, odd_length_reads_whole_pfns_only)
{
    struct balloon_config cfg = {0};
    start(&cfg, 0);
    uint32_t pfns[] = {10, 11, 12};
    memset(page(12), 3, 4096);
    send_pfns(0, pfns, 3, 10); /* two PFNs and two stray bytes */
    struct balloon_info i = info();
    cr_assert_eq(i.c.inflated, 2);
    cr_assert_eq(i.c.odd_lengths, 1);
    cr_assert_eq(page(12)[0], 3, "the third PFN was not in the array");
}

Test(virtio_balloon, huge_chain_completes_unread)
{
    struct balloon_config cfg = {0};
    start(&cfg, 0);
    memset(page(0), 9, 4096);
    gpa_t a = vqb_alloc(&h.q[0], BALLOON_CHAIN_MAX + 4, 0); /* all PFN 0 */
    struct vqb_buf b = {a, BALLOON_CHAIN_MAX + 4, false};
    uint16_t head = vqb_add_chain(&h.q[0], &b, 1);
    net_harness_kick(&h, 0);
    uint32_t id, len;
    cr_assert_eq(vqb_used_idx(&h.q[0]), 1);
    vqb_used_elem(&h.q[0], 0, &id, &len);
    cr_assert_eq(id, head);
    cr_assert_eq(len, 0);
    cr_assert_eq(info().c.oversize, 1);
    cr_assert_eq(info().c.inflated, 0);
    cr_assert_eq(page(0)[0], 9);
}

Test(virtio_balloon, inflate_beyond_target_is_harmless)
{
    struct balloon_config cfg = {.amount_mib = 0};
    start(&cfg, 0);
    uint32_t pfns[64];
    for (unsigned i = 0; i < 64; i++)
        pfns[i] = 512 + i;
    send_pfns(0, pfns, 64, sizeof(pfns));
    cr_assert_eq(info().c.inflated, 64);
    cr_assert_eq(info().target_pages, 0);
    /* The driver claims more than RAM: reported clamped. */
    uint32_t actual = 0xfffffff0u;
    h.d->ops->config_write(h.d, 4, &actual, 4);
    cr_assert_eq(info().actual_pages, 1024 - 256, "RAM is 3 MiB");
}

Test(virtio_balloon, target_and_actual_in_config)
{
    struct balloon_config cfg = {.amount_mib = 2};
    start(&cfg, 0);
    uint32_t v[4];
    h.d->ops->config_read(h.d, 0, v, 16);
    cr_assert_eq(v[0], 512);
    cr_assert_eq(v[1], 0);
    cr_assert_eq(balloon_set_target(h.d, 1), 0);
    cr_assert_eq(h.config_irqs, 1);
    h.d->ops->config_read(h.d, 0, v, 4);
    cr_assert_eq(v[0], 256);
    cr_assert_eq(balloon_set_target(h.d, 4), -EINVAL, "more than RAM (3 MiB)");
    uint32_t actual = 200;
    h.d->ops->config_write(h.d, 4, &actual, 4);
    uint32_t junk = 0xdead;
    h.d->ops->config_write(h.d, 0, &junk, 4); /* num_pages is the host's */
    h.d->ops->config_write(h.d, 2, &junk, 4); /* straddles: ignored */
    h.d->ops->config_read(h.d, 0, v, 8);
    cr_assert_eq(v[0], 256);
    cr_assert_eq(v[1], 200);
    cr_assert_eq(info().actual_pages, 200);
    cr_assert_eq(info().amount_mib, 1);
}

Test(virtio_balloon, create_refusals)
{
    struct virtio_dev *d;
    struct errbuf err = {0};
    struct balloon_config big = {.amount_mib = 4};
    cr_assert_eq(balloon_create(&big, &ram, &h.loop, &d, &err), -EINVAL);
    cr_assert(strstr(err.msg, "amount_mib"), "%s", err.msg);
    struct balloon_config slow = {.stats_interval_s = BALLOON_MAX_INTERVAL + 1};
    cr_assert_eq(balloon_create(&slow, &ram, &h.loop, &d, &err), -EINVAL);
}

Test(virtio_balloon, features_follow_options)
{
    struct balloon_config none = {0};
    struct virtio_dev *d = make(&none);
    uint64_t dev_bits = d->host_features & 0xffffffffu;
    cr_assert_eq(dev_bits & (F(STATS_VQ) | F(DEFLATE_ON_OOM) | F(REPORTING) | F(MUST_TELL_HOST) |
                             F(FREE_PAGE_HINT) | F(PAGE_POISON)),
                 0);
    d->ops->destroy(d);
    struct balloon_config all = {
        .deflate_on_oom = true, .stats_interval_s = 1, .free_page_reporting = true};
    d = make(&all);
    cr_assert_eq(d->host_features & 0x3f, F(STATS_VQ) | F(DEFLATE_ON_OOM) | F(REPORTING));
    cr_assert_eq(d->ops->device_id, VIRTIO_ID_BALLOON);
    d->ops->destroy(d);
}

/* A stats buffer of `n` entries {tag, value} on queue q. */
static uint16_t send_stats(unsigned q, const uint16_t *tags, const uint64_t *vals, unsigned n)
{
    gpa_t a = vqb_alloc(&h.q[q], n * 10 + 1, 0);
    uint8_t *p = vqb_host(&h.q[q], a, n * 10 + 1);
    for (unsigned i = 0; i < n; i++) {
        memcpy(p + i * 10, &tags[i], 2);
        memcpy(p + i * 10 + 2, &vals[i], 8);
    }
    struct vqb_buf b = {a, n * 10 + 1, false}; /* one stray byte at the end */
    uint16_t head = vqb_add_chain(&h.q[q], &b, 1);
    net_harness_kick(&h, (uint16_t)q);
    return head;
}

Test(virtio_balloon, stats_held_and_returned_each_interval)
{
    struct balloon_config cfg = {.stats_interval_s = 2};
    start(&cfg, F(STATS_VQ));
    uint16_t tags[] = {BALLOON_S_MEMFREE, BALLOON_S_MEMTOT, 77, BALLOON_S_HTLB_PGFAIL};
    uint64_t vals[] = {1000, 4000, 5, 9};
    uint16_t head = send_stats(2, tags, vals, 4);
    cr_assert_eq(vqb_used_idx(&h.q[2]), 0, "the buffer is held");
    struct balloon_info i = info();
    cr_assert(i.has_stat[BALLOON_S_MEMFREE] && i.stat[BALLOON_S_MEMFREE] == 1000);
    cr_assert_eq(i.stat[BALLOON_S_MEMTOT], 4000);
    cr_assert_eq(i.stat[BALLOON_S_HTLB_PGFAIL], 9);
    cr_assert(!i.has_stat[BALLOON_S_SWAP_IN]);
    cr_assert_eq(i.c.unknown_tags, 1);
    balloon_tick(h.d);
    cr_assert_eq(vqb_used_idx(&h.q[2]), 0, "one second of two");
    balloon_tick(h.d);
    cr_assert_eq(vqb_used_idx(&h.q[2]), 1, "returned after the interval");
    uint32_t id, len;
    vqb_used_elem(&h.q[2], 0, &id, &len);
    cr_assert_eq(id, head);
    balloon_tick(h.d);
    balloon_tick(h.d);
    cr_assert_eq(vqb_used_idx(&h.q[2]), 1, "nothing held, nothing returned");
    cr_assert_eq(balloon_set_stats_interval(h.d, 1), 0);
    vals[0] = 2000;
    send_stats(2, tags, vals, 4);
    cr_assert_eq(info().stat[BALLOON_S_MEMFREE], 2000);
    balloon_tick(h.d);
    cr_assert_eq(vqb_used_idx(&h.q[2]), 2);
}

Test(virtio_balloon, stats_entries_bounded)
{
    struct balloon_config cfg = {.stats_interval_s = 1};
    start(&cfg, F(STATS_VQ));
    enum { N = BALLOON_STATS_MAX + 8 };
    uint16_t tags[N];
    uint64_t vals[N];
    for (unsigned i = 0; i < N; i++) {
        tags[i] = i < BALLOON_STATS_MAX ? 99 : BALLOON_S_SWAP_IN;
        vals[i] = i;
    }
    send_stats(2, tags, vals, N);
    cr_assert_eq(info().c.unknown_tags, BALLOON_STATS_MAX);
    cr_assert(!info().has_stat[BALLOON_S_SWAP_IN], "entries past the cap are not read");
    /* A second buffer while one is held: the first goes back. */
    send_stats(2, tags, vals, 1);
    cr_assert_eq(vqb_used_idx(&h.q[2]), 1);
    cr_assert_eq(balloon_set_stats_interval(h.d, 0), -EINVAL);
    cr_assert_eq(balloon_set_stats_interval(h.d, BALLOON_MAX_INTERVAL + 1), -EINVAL);
}

Test(virtio_balloon, stats_interval_needs_stats)
{
    struct balloon_config cfg = {0};
    start(&cfg, 0);
    cr_assert_eq(balloon_set_stats_interval(h.d, 5), -EINVAL);
}

/* Report a page-aligned run of `pages` pages (+ `extra` bytes) on queue q;
 * the device's RAM is that ring's RAM.  Returns the run's gpa. */
static gpa_t report(unsigned q, unsigned pages, uint32_t extra, uint8_t fill)
{
    gpa_t a = vqb_alloc(&h.q[q], (pages + 1) * 4096 + extra, fill);
    a = (a + 4095) & ~4095ULL;
    struct vqb_buf b = {a, pages * 4096 + extra, true};
    vqb_add_chain(&h.q[q], &b, 1);
    net_harness_kick(&h, (uint16_t)q);
    return a;
}

Test(virtio_balloon, reporting_gives_free_pages_back)
{
    struct balloon_config cfg = {.free_page_reporting = true};
    start(&cfg, F(REPORTING));
    h.d->mem = &h.q[2].mem; /* reporting is queue 2 without stats */
    gpa_t a = report(2, 4, 100, 0xee);
    cr_assert_eq(vqb_used_idx(&h.q[2]), 1);
    uint8_t *p = vqb_host(&h.q[2], a, 5 * 4096);
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(p[i * 4096 + 7], 0, "page %u given back", i);
    cr_assert_eq(p[4 * 4096 + 7], 0xee, "the partial page stays");
    cr_assert_eq(info().c.reported_bytes, 4 * 4096);
}

Test(virtio_balloon, reporting_after_stats_is_queue_3)
{
    struct balloon_config cfg = {.free_page_reporting = true, .stats_interval_s = 1};
    start(&cfg, F(REPORTING) | F(STATS_VQ));
    h.d->mem = &h.q[3].mem;
    report(3, 2, 0, 0xee);
    cr_assert_eq(info().c.reported_bytes, 2 * 4096);
}

Test(virtio_balloon, reported_range_outside_ram_is_ignored)
{
    struct balloon_config cfg = {.free_page_reporting = true};
    start(&cfg, F(REPORTING));
    /* The device's RAM is `ram`: the ring's buffers are not in it. */
    gpa_t a = report(2, 2, 0, 0xee);
    cr_assert_eq(vqb_used_idx(&h.q[2]), 1);
    cr_assert_eq(info().c.bad_ranges, 1);
    cr_assert_eq(info().c.reported_bytes, 0);
    cr_assert_eq(((uint8_t *)vqb_host(&h.q[2], a, 4096))[0], 0xee);
}

Test(virtio_balloon, queue_without_feature_is_not_served)
{
    struct balloon_config cfg = {.free_page_reporting = true};
    start(&cfg, 0); /* REPORTING offered, not acked: queue 2 has no role */
    h.d->mem = &h.q[2].mem;
    report(2, 2, 0, 0xee);
    cr_assert_eq(vqb_used_idx(&h.q[2]), 0);
    cr_assert_eq(info().c.reported_bytes, 0);
}

Test(virtio_balloon, state_round_trip_and_refusals)
{
    struct balloon_config cfg = {.amount_mib = 1, .stats_interval_s = 3};
    start(&cfg, F(STATS_VQ));
    uint16_t tags[] = {BALLOON_S_MEMFREE};
    uint64_t vals[] = {1};
    send_stats(2, tags, vals, 1);
    uint32_t actual = 100;
    h.d->ops->config_write(h.d, 4, &actual, 4);
    struct vstate_out o = net_harness_save(h.d);

    struct virtio_dev *d2 = make(&cfg);
    cr_assert_eq(net_harness_load(d2, o.buf, o.len), 0);
    struct balloon_info i;
    balloon_get_info(d2, &i);
    cr_assert_eq(i.target_pages, 256);
    cr_assert_eq(i.actual_pages, 100);
    cr_assert_eq(i.stats_interval_s, 3);

    /* Field offsets after the section header: target, actual, interval, held, head. */
    size_t body = o.len - 15;
    uint8_t *bad = malloc(o.len);
    struct {
        size_t off;
        uint32_t v;
        unsigned n;
    } cases[] = {
        {0, 2000, 4},                     /* target beyond RAM */
        {8, BALLOON_MAX_INTERVAL + 1, 4}, /* interval too long */
        {8, 0, 4},                        /* stats off here, on there */
        {12, 2, 1},                       /* held is a bool */
        {13, BALLOON_QUEUE_SIZE, 2},      /* head beyond the ring */
    };
    for (unsigned k = 0; k < ARRAY_SIZE(cases); k++) {
        memcpy(bad, o.buf, o.len);
        memcpy(bad + body + cases[k].off, &cases[k].v, cases[k].n);
        cr_assert_eq(net_harness_load(d2, bad, o.len), -EINVAL, "case %u", k);
    }
    cr_assert_lt(net_harness_load(d2, o.buf, o.len - 1), 0, "truncated");
    free(bad);
    d2->ops->destroy(d2);

    /* A balloon without statistics does not take state that has them. */
    struct balloon_config nostats = {.amount_mib = 1};
    struct virtio_dev *d3 = make(&nostats);
    cr_assert_eq(net_harness_load(d3, o.buf, o.len), -EINVAL);
    d3->ops->destroy(d3);
    vstate_out_free(&o);
}

Test(virtio_balloon, budget_reschedules_the_rest)
{
    struct balloon_config cfg = {0};
    start(&cfg, 0);
    /* Two full-size arrays of scattered pages: one event takes the first. */
    const unsigned N = BALLOON_EVENT_PFNS;
    gpa_t a = vqb_alloc(&h.q[0], N * 4, 0), b2 = vqb_alloc(&h.q[0], N * 4, 0);
    uint32_t *pa = vqb_host(&h.q[0], a, N * 4), *pb = vqb_host(&h.q[0], b2, N * 4);
    for (unsigned i = 0; i < N; i++)
        pa[i] = pb[i] = 512 + 2 * (i % 256); /* every other page: no runs */
    struct vqb_buf bufs[2] = {{a, N * 4, false}, {b2, N * 4, false}};
    vqb_add_chain(&h.q[0], &bufs[0], 1);
    vqb_add_chain(&h.q[0], &bufs[1], 1);
    net_harness_kick(&h, 0);
    cr_assert_eq(vqb_used_idx(&h.q[0]), 1, "the second chain waits for the next event");
    net_harness_settle(&h, 0);
    cr_assert_eq(vqb_used_idx(&h.q[0]), 2, "and is served by the rescheduled one");
    cr_assert_eq(info().c.inflated, 2 * N);
}
