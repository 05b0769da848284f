/* Split virtqueue: indirect descriptor tables, well formed and hostile. */
#include "devices/virtio/queue.h"

#include <criterion/criterion.h>
#include <errno.h>

#include "tests/lib/virtq_builder.h"

#define SIZE 8

static struct vqb b;
static struct virtq_chain c;
static gpa_t buf;   /* a valid 4 KiB buffer */
static gpa_t table; /* room for a 2 * SIZE entry table */

static void setup(enum vqb_layout layout)
{
    vqb_init(&b, layout, SIZE, 256);
    cr_assert_eq(vqb_activate(&b, false, true), 0);
    buf = vqb_alloc(&b, 4096, 0x11);
    table = vqb_alloc(&b, 2 * SIZE * 16 + 16, 0);
}

static void setup_one(void)
{
    setup(VQB_ONE_REGION);
}

static void fini(void)
{
    vqb_fini(&b);
}

static void expect_broken(int err)
{
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), err);
    cr_assert(b.q.broken);
    cr_assert_eq(b.q.last_avail, 0);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), -EIO);
}

/* Publish descriptor 0 = {addr, len, flags} as the whole chain. */
static void publish_indirect(uint64_t addr, uint32_t len, uint16_t flags)
{
    vqb_set_desc(&b, 0, addr, len, flags, 1);
    vqb_publish(&b, 0);
}

TestSuite(virtq_indirect, .init = setup_one, .fini = fini);

Test(virtq_indirect, table_with_readable_and_writable_entries)
{
    struct vqb_buf bufs[] = {{buf, 10, false}, {buf + 100, 20, false}, {buf + 200, 30, true}};
    uint16_t head = vqb_add_indirect(&b, table, bufs, 3);

    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    cr_assert_eq(c.head, head);
    cr_assert_eq(c.n_out, 2);
    cr_assert_eq(c.n_in, 1);
    cr_assert_eq(c.out_len, 30);
    cr_assert_eq(c.in_len, 30);
    cr_assert_eq(c.iov[1].iov_base, vqb_host(&b, buf + 100, 1));
    cr_assert_eq(c.iov[2].iov_len, 30);
    virtq_push(&b.q, c.head, 30);
    cr_assert_eq(vqb_used_idx(&b), 1);
}

Test(virtq_indirect, table_longer_than_the_ring_is_refused)
{
    publish_indirect(table, (SIZE + 1) * 16, VIRTQ_DESC_F_INDIRECT);
    expect_broken(-EINVAL);
}

Test(virtq_indirect, table_of_exactly_size_entries)
{
    struct vqb_buf bufs[SIZE];

    for (unsigned i = 0; i < SIZE; i++)
        bufs[i] = (struct vqb_buf){buf + 8 * i, 8, i >= 5};
    vqb_add_indirect(&b, table, bufs, SIZE);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    cr_assert_eq(c.n_out, 5);
    cr_assert_eq(c.n_in, 3);
}

Test(virtq_indirect, direct_descriptors_then_an_indirect_one)
{
    /* virtio 1.2 2.7.5.3.2: the device must accept normal descriptors before the indirect one. */
    vqb_set_table_desc(&b, table, 0, buf + 16, 16, VIRTQ_DESC_F_WRITE, 0);
    vqb_set_desc(&b, 2, buf, 16, VIRTQ_DESC_F_NEXT, 5);
    vqb_set_desc(&b, 5, table, 16, VIRTQ_DESC_F_INDIRECT, 0);
    vqb_publish(&b, 2);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    cr_assert_eq(c.head, 2);
    cr_assert_eq(c.n_out, 1);
    cr_assert_eq(c.n_in, 1);
    cr_assert_eq(c.iov[1].iov_base, vqb_host(&b, buf + 16, 1));
}

Test(virtq_indirect, write_flag_on_the_indirect_descriptor_is_ignored)
{
    vqb_set_table_desc(&b, table, 0, buf, 16, 0, 0);
    vqb_set_desc(&b, 0, buf, 16, VIRTQ_DESC_F_NEXT, 1);
    vqb_set_desc(&b, 1, table, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
    vqb_publish(&b, 0);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    cr_assert_eq(c.n_out, 2);
}

Test(virtq_indirect, entries_chained_out_of_order)
{
    vqb_set_table_desc(&b, table, 0, buf, 1, VIRTQ_DESC_F_NEXT, 2);
    vqb_set_table_desc(&b, table, 2, buf + 2, 2, VIRTQ_DESC_F_NEXT, 1);
    vqb_set_table_desc(&b, table, 1, buf + 1, 3, 0, 0);
    publish_indirect(table, 3 * 16, VIRTQ_DESC_F_INDIRECT);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    cr_assert_eq(c.n_out, 3);
    cr_assert_eq(c.iov[1].iov_len, 2);
    cr_assert_eq(c.iov[2].iov_len, 3);
}

Test(virtq_indirect, unaligned_table)
{
    struct vqb_buf bufs[] = {{buf, 7, false}, {buf + 64, 9, true}};

    vqb_add_indirect(&b, table + 3, bufs, 2);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    cr_assert_eq(c.out_len, 7);
    cr_assert_eq(c.in_len, 9);
    cr_assert_eq(c.iov[1].iov_base, vqb_host(&b, buf + 64, 1));
}

Test(virtq_indirect, nested_indirect)
{
    gpa_t inner = vqb_alloc(&b, 16, 0);

    vqb_set_table_desc(&b, inner, 0, buf, 8, 0, 0);
    vqb_set_table_desc(&b, table, 0, buf, 8, VIRTQ_DESC_F_NEXT, 1);
    vqb_set_table_desc(&b, table, 1, inner, 16, VIRTQ_DESC_F_INDIRECT, 0);
    publish_indirect(table, 2 * 16, VIRTQ_DESC_F_INDIRECT);
    expect_broken(-EINVAL);
}

Test(virtq_indirect, indirect_with_next)
{
    vqb_set_table_desc(&b, table, 0, buf, 8, 0, 0);
    vqb_set_desc(&b, 1, buf, 8, 0, 0);
    publish_indirect(table, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT);
    expect_broken(-EINVAL);
}

Test(virtq_indirect, table_len_not_a_multiple_of_16)
{
    publish_indirect(table, 24, VIRTQ_DESC_F_INDIRECT);
    expect_broken(-EINVAL);
}

Test(virtq_indirect, table_len_zero)
{
    publish_indirect(table, 0, VIRTQ_DESC_F_INDIRECT);
    expect_broken(-EINVAL);
}

Test(virtq_indirect, table_len_huge)
{
    publish_indirect(table, 0xfffffff0, VIRTQ_DESC_F_INDIRECT);
    expect_broken(-EINVAL);
}

Test(virtq_indirect, table_outside_ram)
{
    publish_indirect(VQB_RAM_END, 16, VIRTQ_DESC_F_INDIRECT);
    expect_broken(-EFAULT);
}

Test(virtq_indirect, table_wraps_the_address_space)
{
    publish_indirect(UINT64_MAX - 15, 32, VIRTQ_DESC_F_INDIRECT);
    expect_broken(-EFAULT);
}

Test(virtq_indirect, entry_next_past_the_table)
{
    /* next = 2 is inside the queue size but outside this 2-entry table. */
    vqb_set_table_desc(&b, table, 0, buf, 8, VIRTQ_DESC_F_NEXT, 1);
    vqb_set_table_desc(&b, table, 1, buf, 8, VIRTQ_DESC_F_NEXT, 2);
    vqb_set_table_desc(&b, table, 2, buf, 8, 0, 0);
    publish_indirect(table, 2 * 16, VIRTQ_DESC_F_INDIRECT);
    expect_broken(-EINVAL);
}

Test(virtq_indirect, loop_inside_the_table)
{
    vqb_set_table_desc(&b, table, 0, buf, 8, VIRTQ_DESC_F_NEXT, 1);
    vqb_set_table_desc(&b, table, 1, buf, 8, VIRTQ_DESC_F_NEXT, 0);
    publish_indirect(table, 2 * 16, VIRTQ_DESC_F_INDIRECT);
    expect_broken(-ELOOP);
}

Test(virtq_indirect, entry_buffer_outside_ram)
{
    vqb_set_table_desc(&b, table, 0, buf, 8, VIRTQ_DESC_F_NEXT, 1);
    vqb_set_table_desc(&b, table, 1, UINT64_MAX - 3, 8, VIRTQ_DESC_F_WRITE, 0);
    publish_indirect(table, 2 * 16, VIRTQ_DESC_F_INDIRECT);
    expect_broken(-EFAULT);
}

Test(virtq_indirect, readable_entry_after_writable_direct_descriptor)
{
    vqb_set_table_desc(&b, table, 0, buf, 8, 0, 0);
    vqb_set_desc(&b, 0, buf, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
    vqb_set_desc(&b, 1, table, 16, VIRTQ_DESC_F_INDIRECT, 0);
    vqb_publish(&b, 0);
    expect_broken(-EINVAL);
}

Test(virtq_indirect, readable_after_writable_inside_the_table)
{
    vqb_set_table_desc(&b, table, 0, buf, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
    vqb_set_table_desc(&b, table, 1, buf, 8, 0, 0);
    publish_indirect(table, 2 * 16, VIRTQ_DESC_F_INDIRECT);
    expect_broken(-EINVAL);
}

Test(virtq_indirect, max_len_applies_to_table_entries)
{
    struct vqb_buf bufs[] = {{buf, 4000, false}, {buf, 97, true}};

    vqb_add_indirect(&b, table, bufs, 2);
    cr_assert_eq(virtq_pop(&b.q, &c, 4096), -E2BIG);
    cr_assert_not(b.q.broken);
    cr_assert_eq(c.out_len + c.in_len, 4097);
    cr_assert_eq(b.q.last_avail, 1);
}

static void setup_two(void)
{
    setup(VQB_TWO_REGIONS);
}

TestSuite(virtq_indirect_hole, .init = setup_two, .fini = fini);

Test(virtq_indirect_hole, table_across_region_edge)
{
    vqb_set_table_desc(&b, VQB_HOLE_START - 16, 0, buf, 8, 0, 0);
    publish_indirect(VQB_HOLE_START - 16, 32, VIRTQ_DESC_F_INDIRECT);
    expect_broken(-EFAULT);
}
