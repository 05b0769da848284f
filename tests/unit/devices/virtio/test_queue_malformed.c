/*
 * Split virtqueue against a hostile driver (security.md D1/D2): every
 * malformed ring must give a specific negative errno, mark the queue broken,
 * leave last_avail alone, and touch nothing outside guest RAM.
 */
#include "devices/virtio/queue.h"

#include <criterion/criterion.h>
#include <errno.h>

#include "tests/lib/virtq_builder.h"

#define SIZE 16

static struct vqb b;
static struct virtq_chain c;
static gpa_t buf; /* a valid 4 KiB buffer */

static void setup(enum vqb_layout layout)
{
    vqb_init(&b, layout, SIZE, 256);
    cr_assert_eq(vqb_activate(&b, false, false), 0);
    buf = vqb_alloc(&b, 4096, 0x5a);
}

static void setup_one(void)
{
    setup(VQB_ONE_REGION);
}

static void setup_two(void)
{
    setup(VQB_TWO_REGIONS);
}

static void fini(void)
{
    vqb_fini(&b);
}

/* Pop must fail with `err`, break the queue, consume nothing, and stay broken. */
static void expect_broken(int err)
{
    uint16_t last = b.q.last_avail;

    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), err);
    cr_assert(b.q.broken);
    cr_assert_eq(b.q.last_avail, last, "nothing consumed");
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), -EIO, "stays broken");
    cr_assert_not(virtq_has_avail(&b.q));
    cr_assert_eq(vqb_used_idx(&b), 0, "nothing completed");
}

/* Publish a one-descriptor chain {addr, len, flags} at descriptor 0. */
static void publish_one(uint64_t addr, uint32_t len, uint16_t flags)
{
    vqb_set_desc(&b, 0, addr, len, flags, 0);
    vqb_publish(&b, 0);
}

TestSuite(virtq_bad, .init = setup_one, .fini = fini);

Test(virtq_bad, loop_a_b_a)
{
    vqb_set_desc(&b, 3, buf, 8, VIRTQ_DESC_F_NEXT, 7);
    vqb_set_desc(&b, 7, buf, 8, VIRTQ_DESC_F_NEXT, 3);
    vqb_publish(&b, 3);
    expect_broken(-ELOOP);
}

Test(virtq_bad, self_loop)
{
    vqb_set_desc(&b, 5, buf, 8, VIRTQ_DESC_F_NEXT, 5);
    vqb_publish(&b, 5);
    expect_broken(-ELOOP);
}

Test(virtq_bad, self_loop_of_empty_descriptors)
{
    /* Zero-length descriptors still count, or this would spin forever. */
    vqb_set_desc(&b, 5, 0, 0, VIRTQ_DESC_F_NEXT, 5);
    vqb_publish(&b, 5);
    expect_broken(-ELOOP);
}

Test(virtq_bad, loop_into_the_middle)
{
    /* 0 -> 1 -> 2 -> 3 -> 1: a rho-shaped chain. */
    for (uint16_t i = 0; i < 4; i++)
        vqb_set_desc(&b, i, buf, 8, VIRTQ_DESC_F_NEXT, i == 3 ? 1 : (uint16_t)(i + 1));
    vqb_publish(&b, 0);
    expect_broken(-ELOOP);
}

Test(virtq_bad, next_equals_size)
{
    vqb_set_desc(&b, 0, buf, 8, VIRTQ_DESC_F_NEXT, SIZE);
    vqb_publish(&b, 0);
    expect_broken(-EINVAL);
}

Test(virtq_bad, next_is_0xffff)
{
    vqb_set_desc(&b, 0, buf, 8, VIRTQ_DESC_F_NEXT, 0xffff);
    vqb_publish(&b, 0);
    expect_broken(-EINVAL);
}

Test(virtq_bad, head_equals_size)
{
    vqb_publish(&b, SIZE);
    expect_broken(-EINVAL);
}

Test(virtq_bad, head_is_0xffff)
{
    vqb_publish(&b, 0xffff);
    expect_broken(-EINVAL);
}

Test(virtq_bad, avail_idx_jumps_size_plus_one)
{
    vqb_set_avail_idx(&b, SIZE + 1);
    cr_assert(virtq_has_avail(&b.q), "a bogus index still looks non-empty");
    expect_broken(-EPROTO);
}

Test(virtq_bad, avail_idx_jumps_0x8000)
{
    vqb_set_avail_idx(&b, 0x8000);
    expect_broken(-EPROTO);
}

Test(virtq_bad, avail_idx_goes_backwards)
{
    publish_one(buf, 8, 0);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    vqb_set_avail_idx(&b, 0); /* 65535 entries "ahead" of last_avail 1 */
    expect_broken(-EPROTO);
}

Test(virtq_bad, avail_idx_jump_after_wrap)
{
    /* Near the wrap, last_avail + size + 1 crosses 65535. */
    b.q.last_avail = 65530; /* as a restore would set it; activation keeps it */
    cr_assert_eq(vqb_activate(&b, false, false), 0);
    vqb_set_avail_idx(&b, (uint16_t)(65530 + SIZE + 1));
    expect_broken(-EPROTO);
}

Test(virtq_bad, buffer_outside_ram)
{
    publish_one(1ULL << 40, 8, 0);
    expect_broken(-EFAULT);
}

Test(virtq_bad, buffer_past_end_of_ram)
{
    publish_one(VQB_RAM_END - 8, 16, VIRTQ_DESC_F_WRITE);
    expect_broken(-EFAULT);
}

Test(virtq_bad, buffer_wraps_the_address_space)
{
    publish_one(UINT64_MAX - 7, 16, 0);
    expect_broken(-EFAULT);
}

Test(virtq_bad, buffer_len_0xffffffff)
{
    publish_one(buf, 0xffffffff, 0);
    expect_broken(-EFAULT);
}

Test(virtq_bad, bad_buffer_later_in_the_chain)
{
    vqb_set_desc(&b, 0, buf, 8, VIRTQ_DESC_F_NEXT, 1);
    vqb_set_desc(&b, 1, buf, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
    vqb_set_desc(&b, 2, VQB_RAM_END, 1, VIRTQ_DESC_F_WRITE, 0);
    vqb_publish(&b, 0);
    expect_broken(-EFAULT);
}

Test(virtq_bad, readable_after_writable)
{
    vqb_set_desc(&b, 0, buf, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
    vqb_set_desc(&b, 1, buf, 8, 0, 0);
    vqb_publish(&b, 0);
    expect_broken(-EINVAL);
}

Test(virtq_bad, empty_readable_after_writable)
{
    vqb_set_desc(&b, 0, buf, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
    vqb_set_desc(&b, 1, 0, 0, 0, 0);
    vqb_publish(&b, 0);
    expect_broken(-EINVAL);
}

Test(virtq_bad, indirect_not_negotiated)
{
    gpa_t table = vqb_alloc(&b, 16, 0);
    vqb_set_table_desc(&b, table, 0, buf, 8, 0, 0);
    publish_one(table, 16, VIRTQ_DESC_F_INDIRECT);
    expect_broken(-EINVAL);
}

Test(virtq_bad, broken_queue_stays_broken_until_reset)
{
    vqb_publish(&b, SIZE);
    expect_broken(-EINVAL);

    /* The driver "fixes" the ring: still nothing until a reset. */
    vqb_set_avail_ring(&b, 0, 0);
    vqb_set_desc(&b, 0, buf, 8, 0, 0);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), -EIO);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), -EIO);

    /* Device reset, driver re-initialises the rings, activates again. */
    virtq_reset(&b.q);
    cr_assert_not(b.q.broken);
    vqb_set_avail_idx(&b, 0);
    b.q.cfg.size = SIZE;
    b.q.cfg.desc_gpa = VQB_DESC_GPA;
    b.q.cfg.avail_gpa = VQB_AVAIL_GPA;
    b.q.cfg.used_gpa = VQB_USED_GPA;
    cr_assert_eq(vqb_activate(&b, false, false), 0);
    publish_one(buf, 8, 0);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    cr_assert_eq(c.head, 0);
}

Test(virtq_bad, empty_descriptor_with_bogus_address_is_skipped)
{
    /* len 0 maps nothing, so its address is never used: accepted. */
    vqb_set_desc(&b, 0, UINT64_MAX, 0, VIRTQ_DESC_F_NEXT, 1);
    vqb_set_desc(&b, 1, buf, 8, 0, 0);
    vqb_publish(&b, 0);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    cr_assert_eq(c.n_out, 1);
    cr_assert_eq(c.out_len, 8);
}

Test(virtq_bad, chain_one_longer_than_the_ring)
{
    /* 16 distinct descriptors then a 17th step back to the start. */
    for (uint16_t i = 0; i < SIZE; i++)
        vqb_set_desc(&b, i, buf, 8, VIRTQ_DESC_F_NEXT, (uint16_t)((i + 1) % SIZE));
    vqb_publish(&b, 0);
    expect_broken(-ELOOP);
}

TestSuite(virtq_bad_hole, .init = setup_two, .fini = fini);

Test(virtq_bad_hole, buffer_across_region_edge_into_hole)
{
    publish_one(VQB_HOLE_START - 8, 16, 0);
    expect_broken(-EFAULT);
}

Test(virtq_bad_hole, buffer_inside_the_hole)
{
    publish_one(VQB_HOLE_START + 4096, 8, VIRTQ_DESC_F_WRITE);
    expect_broken(-EFAULT);
}

Test(virtq_bad_hole, buffer_from_hole_into_region)
{
    publish_one(VQB_HOLE_END - 8, 16, 0);
    expect_broken(-EFAULT);
}

Test(virtq_bad_hole, buffer_spanning_both_regions)
{
    publish_one(VQB_HOLE_START - 8, (uint32_t)(VQB_HOLE_END - VQB_HOLE_START + 16), 0);
    expect_broken(-EFAULT);
}

Test(virtq_bad_hole, buffers_up_to_the_edges_are_fine)
{
    vqb_set_desc(&b, 0, VQB_HOLE_START - 8, 8, VIRTQ_DESC_F_NEXT, 1);
    vqb_set_desc(&b, 1, VQB_HOLE_END, 8, 0, 0);
    vqb_publish(&b, 0);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    cr_assert_eq(c.n_out, 2);
}

/* More buffers than VIRTQ_MAX_IOV in a (legal) chain on a large ring. */
TestSuite(virtq_iov_limit, .fini = fini);

static void long_chain(unsigned n)
{
    vqb_init(&b, VQB_ONE_REGION, 512, 512);
    cr_assert_eq(vqb_activate(&b, false, false), 0);
    buf = vqb_alloc(&b, 4096, 0);
    for (unsigned i = 0; i < n; i++)
        vqb_set_desc(&b, (uint16_t)i, buf + i, 1, i + 1 < n ? VIRTQ_DESC_F_NEXT : 0,
                     (uint16_t)(i + 1));
    vqb_publish(&b, 0);
}

Test(virtq_iov_limit, exactly_max_iov_is_fine)
{
    long_chain(VIRTQ_MAX_IOV);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    cr_assert_eq(c.n_out, VIRTQ_MAX_IOV);
    cr_assert_eq(c.iov[VIRTQ_MAX_IOV - 1].iov_base, vqb_host(&b, buf + VIRTQ_MAX_IOV - 1, 1));
}

Test(virtq_iov_limit, one_more_is_refused_without_breaking)
{
    long_chain(VIRTQ_MAX_IOV + 1);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), -E2BIG);
    cr_assert_eq(c.head, 0);
    cr_assert_eq(c.n_out + c.n_in, 0);
    cr_assert_not(b.q.broken);
    cr_assert_eq(b.q.last_avail, 1);
    virtq_push(&b.q, c.head, 0);
    cr_assert_eq(vqb_used_idx(&b), 1);
}

Test(virtq_iov_limit, malformed_tail_beyond_the_limit_still_breaks)
{
    /* The walk goes on validating past VIRTQ_MAX_IOV: a loop there is still a loop. */
    long_chain(VIRTQ_MAX_IOV + 10);
    vqb_set_desc(&b, VIRTQ_MAX_IOV + 9, buf, 1, VIRTQ_DESC_F_NEXT, 0);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), -ELOOP);
    cr_assert(b.q.broken);
}
