/*
 * Racing mutator (security.md D3): a second thread keeps flipping bytes of
 * the descriptor table, both rings, an indirect table and the data buffers
 * while this thread plays driver and device (publish, pop, copy, push,
 * notify, reset on error).  Whatever the guest does, the queue must not
 * crash, hang, or hand out an iovec outside guest RAM.  Run it under ASan
 * too (make SAN=1): guard pages catch overruns of the RAM mappings.
 */
#include "devices/virtio/queue.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "tests/lib/virtq_builder.h"

#define SIZE     16
#define RUN_NS   400000000LL /* 0.4 s of racing */
#define BUF_SIZE 256

static struct vqb b;
static struct virtq_chain c;
static gpa_t bufs_gpa, table_gpa;
static atomic_bool stop;

/* Guest-shared areas the mutator attacks: [gpa, gpa + len). */
static struct {
    gpa_t gpa;
    uint64_t len;
} targets[5];

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64: fast and good enough to pick bytes. */
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *mutator(void *arg)
{
    uint64_t s = (uintptr_t)arg | 1;

    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint64_t r = rng_next(&s);
        unsigned t = (unsigned)(r % ARRAY_SIZE(targets));
        uint64_t off = (r >> 8) % targets[t].len;
        uint8_t *p = vqb_host(&b, targets[t].gpa + off, 1);
        /* Mostly flip a bit; sometimes write a small value (indices, flags). */
        uint8_t v = (r >> 40) & 1 ? (uint8_t)(*p ^ (1u << ((r >> 41) & 7))) : (uint8_t)(r >> 48);
        __atomic_store_n(p, v, __ATOMIC_RELAXED);
    }
    return NULL;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Every iovec must lie wholly inside one RAM mapping. */
static void check_chain(const struct virtq_chain *ch)
{
    uint64_t sum = 0;

    cr_assert_leq(ch->n_out + ch->n_in, VIRTQ_MAX_IOV);
    for (unsigned k = 0; k < ch->n_out + ch->n_in; k++) {
        const uint8_t *p = ch->iov[k].iov_base;
        bool inside = false;
        for (unsigned i = 0; i < b.mem.nregions; i++) {
            const struct gmem_region *r = &b.mem.regions[i];
            if (p >= r->hva && ch->iov[k].iov_len <= r->size &&
                (uint64_t)(p - r->hva) <= r->size - ch->iov[k].iov_len)
                inside = true;
        }
        cr_assert(inside, "iovec %u outside guest RAM", k);
        cr_assert_gt(ch->iov[k].iov_len, 0);
        sum += ch->iov[k].iov_len;
    }
    cr_assert_eq(sum, ch->out_len + ch->in_len);
}

/* The driver resets the device after DEVICE_NEEDS_RESET and sets the queue up again. */
static void driver_reset(void)
{
    virtq_reset(&b.q);
    b.q.cfg.size = SIZE;
    b.q.cfg.desc_gpa = VQB_DESC_GPA;
    b.q.cfg.avail_gpa = VQB_AVAIL_GPA;
    b.q.cfg.used_gpa = VQB_USED_GPA;
    b.next_desc = 0;
    vqb_set_avail_idx(&b, 0);
    cr_assert_eq(vqb_activate(&b, true, true), 0);
}

/* Publish one chain, direct or indirect, of 1..4 buffers. */
static void driver_add(uint64_t r)
{
    struct vqb_buf v[4];
    unsigned n = 1 + (unsigned)(r % 4);

    for (unsigned i = 0; i < n; i++)
        v[i] = (struct vqb_buf){bufs_gpa + i * BUF_SIZE, BUF_SIZE, i >= n / 2};
    if ((r >> 4) & 1)
        vqb_add_indirect(&b, table_gpa, v, n);
    else
        vqb_add_chain(&b, v, n);
}

Test(virtq_race, mutator_flips_ring_and_buffer_bytes, .timeout = 30)
{
    pthread_t th;
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    unsigned popped = 0, refused = 0, broken = 0, empty = 0;
    uint8_t scratch[BUF_SIZE * 4];

    vqb_init(&b, VQB_ONE_REGION, SIZE, SIZE);
    cr_assert_eq(vqb_activate(&b, true, true), 0);
    bufs_gpa = vqb_alloc(&b, 4 * BUF_SIZE, 0);
    table_gpa = vqb_alloc(&b, SIZE * 16, 0);
    targets[0].gpa = VQB_DESC_GPA, targets[0].len = SIZE * 16;
    targets[1].gpa = VQB_AVAIL_GPA, targets[1].len = 6 + 2 * SIZE;
    targets[2].gpa = VQB_USED_GPA, targets[2].len = 6 + 8 * SIZE;
    targets[3].gpa = table_gpa, targets[3].len = SIZE * 16;
    targets[4].gpa = bufs_gpa, targets[4].len = 4 * BUF_SIZE;

    cr_assert_eq(pthread_create(&th, NULL, mutator, (void *)(uintptr_t)0x1234567), 0);
    int64_t end = now_ns() + RUN_NS;
    while (now_ns() < end) {
        uint64_t r = rng_next(&s);
        int ret;

        driver_add(r);
        if ((r >> 8) % 7 == 0)
            virtq_set_notification(&b.q, (r >> 12) & 1);
        for (int k = 0; k < 4; k++) {
            ret = virtq_pop(&b.q, &c, (r >> 16) % 5 == 0 ? 300 : UINT64_MAX);
            if (ret == 1) {
                check_chain(&c);
                size_t got = virtq_chain_read(&c, (r >> 20) % 64, scratch, sizeof(scratch));
                cr_assert_leq(got, c.out_len);
                size_t put = virtq_chain_write(&c, (r >> 26) % 64, scratch, sizeof(scratch));
                cr_assert_leq(put, c.in_len);
                virtq_push(&b.q, c.head, (uint32_t)put);
                popped++;
            } else if (ret == -E2BIG) {
                cr_assert_eq(c.n_out + c.n_in, 0);
                cr_assert_lt(c.head, SIZE);
                virtq_push(&b.q, c.head, 0);
                refused++;
            } else if (ret < 0) {
                cr_assert(b.q.broken);
                cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), -EIO);
                broken++;
                driver_reset();
                break;
            } else {
                empty++;
                break;
            }
        }
        (void)virtq_should_notify(&b.q);
        (void)virtq_has_avail(&b.q);
        (void)virtq_used_idx_guest(&b.q);
    }
    atomic_store(&stop, true);
    pthread_join(th, NULL);
    cr_log_info("racing: %u popped, %u refused, %u broken, %u empty", popped, refused, broken,
                empty);
    cr_assert_gt(popped + refused + broken, 0);
    vqb_fini(&b);
}
