/*
 * Split virtqueue: activation checks, well-formed chains, push, copies in
 * and out of chains, index wraparound, reset and restore.  Malformed rings
 * are in test_queue_malformed.c, indirect tables in test_queue_indirect.c,
 * notifications in test_queue_notify.c.
 */
#include "devices/virtio/queue.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "tests/lib/virtq_builder.h"

static struct vqb b;
static struct virtq_chain c;

static void fini(void)
{
    vqb_fini(&b);
}

TestSuite(virtq_activate, .fini = fini);

Test(virtq_activate, accepts_valid_rings)
{
    vqb_init(&b, VQB_ONE_REGION, 256, 256);
    cr_assert_eq(vqb_activate(&b, false, false), 0);
    cr_assert(b.q.active);
    cr_assert_not(b.q.broken);
    cr_assert_eq(b.q.num, 256);
    cr_assert_eq(b.q.last_avail, 0);
    cr_assert_eq(b.q.used_idx, 0);
    cr_assert_eq(b.q.desc, vqb_host(&b, VQB_DESC_GPA, 1));
    cr_assert_eq(b.q.avail, vqb_host(&b, VQB_AVAIL_GPA, 1));
    cr_assert_eq(b.q.used, vqb_host(&b, VQB_USED_GPA, 1));
}

Test(virtq_activate, accepts_size_one_and_the_maximum)
{
    vqb_init(&b, VQB_ONE_REGION, 1, 32768);
    cr_assert_eq(vqb_activate(&b, true, true), 0);
    b.q.cfg.size = 32768;
    cr_assert_eq(vqb_activate(&b, true, true), 0);
    cr_assert_eq(b.q.num, 32768);
}

Test(virtq_activate, refuses_bad_sizes)
{
    vqb_init(&b, VQB_ONE_REGION, 0, 256);
    cr_assert_eq(vqb_activate(&b, false, false), -EINVAL, "size 0");
    cr_assert_not(b.q.active);
    b.q.cfg.size = 3;
    cr_assert_eq(vqb_activate(&b, false, false), -EINVAL, "size 3");
    b.q.cfg.size = 384;
    cr_assert_eq(vqb_activate(&b, false, false), -EINVAL, "not a power of two");
    b.q.cfg.size = 512;
    cr_assert_eq(vqb_activate(&b, false, false), -EINVAL, "size > max");
    b.q.cfg.size = 256;
    b.q.max_size = 0;
    cr_assert_eq(vqb_activate(&b, false, false), -EINVAL, "queue absent (max 0)");
    b.q.max_size = 65535;
    cr_assert_eq(vqb_activate(&b, false, false), -EINVAL, "device max not a power of two");
    cr_assert_not(b.q.active);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 0, "an inactive queue pops nothing");
}

Test(virtq_activate, refuses_misaligned_rings)
{
    vqb_init(&b, VQB_ONE_REGION, 16, 256);
    b.q.cfg.desc_gpa = VQB_DESC_GPA + 8;
    cr_assert_eq(vqb_activate(&b, false, false), -EINVAL, "descriptor table not 16-aligned");
    b.q.cfg.desc_gpa = VQB_DESC_GPA;
    b.q.cfg.avail_gpa = VQB_AVAIL_GPA + 1;
    cr_assert_eq(vqb_activate(&b, false, false), -EINVAL, "avail not 2-aligned");
    b.q.cfg.avail_gpa = VQB_AVAIL_GPA + 2;
    b.q.cfg.used_gpa = VQB_USED_GPA + 2;
    cr_assert_eq(vqb_activate(&b, false, false), -EINVAL, "used not 4-aligned");
    b.q.cfg.used_gpa = VQB_USED_GPA + 4;
    cr_assert_eq(vqb_activate(&b, false, false), 0, "minimal alignments are enough");
    cr_assert(b.q.active);
}

Test(virtq_activate, refuses_rings_outside_one_region)
{
    vqb_init(&b, VQB_TWO_REGIONS, 16, 256);
    /* Each ring in turn ends 2 bytes past the end of region 0, in the hole. */
    b.q.cfg.desc_gpa = VQB_HOLE_START - 16 * 16 + 16;
    cr_assert_eq(vqb_activate(&b, false, false), -EINVAL, "desc straddles the hole");
    b.q.cfg.desc_gpa = VQB_HOLE_START - 16 * 16;
    cr_assert_eq(vqb_activate(&b, false, false), 0, "desc ends exactly at the region end");
    b.q.cfg.avail_gpa = VQB_HOLE_START - (6 + 2 * 16) + 2;
    cr_assert_eq(vqb_activate(&b, false, false), -EINVAL, "avail straddles the hole");
    cr_assert_not(b.q.active, "a failed activation leaves the queue inactive");
    b.q.cfg.avail_gpa = VQB_HOLE_START - (6 + 2 * 16);
    b.q.cfg.used_gpa = VQB_HOLE_START - 132; /* 4-aligned, 134 bytes: 2 in the hole */
    cr_assert_eq(vqb_activate(&b, false, false), -EINVAL, "used straddles the hole");
    b.q.cfg.used_gpa = VQB_HOLE_END - 4;
    cr_assert_eq(vqb_activate(&b, false, false), -EINVAL, "used starts in the hole");
    b.q.cfg.used_gpa = VQB_RAM_END - 8;
    cr_assert_eq(vqb_activate(&b, false, false), -EINVAL, "used runs past the end of RAM");
    b.q.cfg.used_gpa = VQB_USED_GPA;
    b.q.cfg.avail_gpa = UINT64_MAX - 7; /* 2^64 - 8: aligned, but 6 + 2n bytes wrap */
    cr_assert_eq(vqb_activate(&b, false, false), -EINVAL, "avail at 2^64-8");
    b.q.cfg.avail_gpa = VQB_AVAIL_GPA;
    b.q.cfg.used_gpa = UINT64_MAX - 7;
    cr_assert_eq(vqb_activate(&b, false, false), -EINVAL, "used at 2^64-8");
    b.q.cfg.used_gpa = VQB_USED_GPA;
    b.q.cfg.desc_gpa = UINT64_MAX - 15;
    cr_assert_eq(vqb_activate(&b, false, false), -EINVAL, "desc at 2^64-16");
}

Test(virtq_activate, reset_clears_all_but_max_size)
{
    vqb_init(&b, VQB_ONE_REGION, 64, 128);
    cr_assert_eq(vqb_activate(&b, true, true), 0);
    b.q.last_avail = 7;
    b.q.used_idx = 5;
    b.q.broken = true;
    virtq_reset(&b.q);
    cr_assert_eq(b.q.max_size, 128);
    cr_assert_not(b.q.active);
    cr_assert_not(b.q.broken);
    cr_assert_not(b.q.event_idx);
    cr_assert_eq(b.q.last_avail, 0);
    cr_assert_eq(b.q.used_idx, 0);
    cr_assert_eq(b.q.cfg.size, 0);
    cr_assert_null(b.q.desc);
    cr_assert_eq(virtq_avail_idx(&b.q), 0);
    cr_assert_eq(virtq_used_idx_guest(&b.q), 0);
}

TestSuite(virtq_pop);

static void setup_pop(uint16_t size)
{
    vqb_init(&b, VQB_ONE_REGION, size, 256);
    cr_assert_eq(vqb_activate(&b, false, false), 0);
}

Test(virtq_pop, empty_ring_pops_nothing, .fini = fini)
{
    setup_pop(16);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 0);
    cr_assert_not(virtq_has_avail(&b.q));
    cr_assert_eq(b.q.last_avail, 0);
}

Test(virtq_pop, single_readable_descriptor, .fini = fini)
{
    setup_pop(16);
    gpa_t buf = vqb_alloc(&b, 100, 0xab);
    struct vqb_buf bufs[] = {{buf, 100, false}};
    uint16_t head = vqb_add_chain(&b, bufs, 1);

    cr_assert(virtq_has_avail(&b.q));
    cr_assert_eq(virtq_avail_idx(&b.q), 1);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    cr_assert_eq(c.head, head);
    cr_assert_eq(c.n_out, 1);
    cr_assert_eq(c.n_in, 0);
    cr_assert_eq(c.out_len, 100);
    cr_assert_eq(c.in_len, 0);
    cr_assert_eq(c.iov[0].iov_base, vqb_host(&b, buf, 100));
    cr_assert_eq(c.iov[0].iov_len, 100);
    cr_assert_eq(b.q.last_avail, 1);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 0, "consumed once");
}

Test(virtq_pop, readable_then_writable_chain, .fini = fini)
{
    setup_pop(16);
    gpa_t hdr = vqb_alloc(&b, 16, 1), data = vqb_alloc(&b, 512, 2);
    gpa_t in1 = vqb_alloc(&b, 300, 0), in2 = vqb_alloc(&b, 1, 0);
    struct vqb_buf bufs[] = {
        {hdr, 16, false}, {data, 512, false}, {in1, 300, true}, {in2, 1, true}};
    uint16_t head = vqb_add_chain(&b, bufs, 4);

    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    cr_assert_eq(c.head, head);
    cr_assert_eq(c.n_out, 2);
    cr_assert_eq(c.n_in, 2);
    cr_assert_eq(c.out_len, 528);
    cr_assert_eq(c.in_len, 301);
    cr_assert_eq(c.iov[1].iov_base, vqb_host(&b, data, 1));
    cr_assert_eq(c.iov[2].iov_base, vqb_host(&b, in1, 1));
    cr_assert_eq(c.iov[3].iov_len, 1);
}

Test(virtq_pop, writable_only_chain_and_zero_length_skipped, .fini = fini)
{
    setup_pop(8);
    gpa_t in = vqb_alloc(&b, 64, 0);
    struct vqb_buf bufs[] = {{in, 0, true}, {in, 64, true}, {in, 0, true}};

    vqb_add_chain(&b, bufs, 3);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    cr_assert_eq(c.n_out, 0);
    cr_assert_eq(c.n_in, 1, "empty descriptors produce no iovec");
    cr_assert_eq(c.in_len, 64);
}

Test(virtq_pop, chain_as_long_as_the_ring, .fini = fini)
{
    struct vqb_buf bufs[8];

    setup_pop(8);
    for (unsigned i = 0; i < 8; i++)
        bufs[i] = (struct vqb_buf){vqb_alloc(&b, 8, (uint8_t)i), 8, i >= 4};
    vqb_add_chain(&b, bufs, 8);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    cr_assert_eq(c.n_out, 4);
    cr_assert_eq(c.n_in, 4);
}

Test(virtq_pop, push_writes_used_element_and_index, .fini = fini)
{
    setup_pop(4);
    gpa_t buf = vqb_alloc(&b, 32, 0);
    struct vqb_buf bufs[] = {{buf, 32, true}};

    for (unsigned i = 0; i < 6; i++) {
        uint16_t head = vqb_add_chain(&b, bufs, 1);
        uint32_t id, len;
        cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
        virtq_push(&b.q, c.head, 10 + i);
        cr_assert_eq(vqb_used_idx(&b), i + 1);
        cr_assert_eq(virtq_used_idx_guest(&b.q), i + 1);
        vqb_used_elem(&b, (uint16_t)i, &id, &len);
        cr_assert_eq(id, head);
        cr_assert_eq(len, 10 + i);
    }
    cr_assert_eq(b.q.used_idx, 6);
}

Test(virtq_pop, several_chains_in_flight_complete_out_of_order, .fini = fini)
{
    setup_pop(8);
    gpa_t buf = vqb_alloc(&b, 8, 0);
    struct vqb_buf bufs[] = {{buf, 8, false}, {buf, 8, true}};
    uint16_t heads[3], popped[3];
    uint32_t id, len;

    for (unsigned i = 0; i < 3; i++)
        heads[i] = vqb_add_chain(&b, bufs, 2);
    for (unsigned i = 0; i < 3; i++) {
        cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
        popped[i] = c.head;
        cr_assert_eq(popped[i], heads[i]);
    }
    virtq_push(&b.q, popped[2], 3);
    virtq_push(&b.q, popped[0], 1);
    vqb_used_elem(&b, 0, &id, &len);
    cr_assert_eq(id, heads[2]);
    vqb_used_elem(&b, 1, &id, &len);
    cr_assert_eq(id, heads[0]);
    cr_assert_eq(len, 1);
}

Test(virtq_pop, indices_wrap_at_65535, .fini = fini)
{
    /* A restored queue: indices set before activation are kept. */
    vqb_init(&b, VQB_ONE_REGION, 4, 256);
    b.q.last_avail = 65534;
    b.q.used_idx = 65534;
    b.avail_idx = 65534;
    vqb_set_avail_idx(&b, 65534);
    cr_assert_eq(vqb_activate(&b, false, false), 0);
    cr_assert_eq(b.q.last_avail, 65534, "activation keeps restored indices");
    cr_assert_eq(b.q.used_idx, 65534);

    gpa_t buf = vqb_alloc(&b, 8, 0);
    struct vqb_buf bufs[] = {{buf, 8, true}};
    for (unsigned i = 0; i < 5; i++) {
        uint16_t head = vqb_add_chain(&b, bufs, 1);
        uint32_t id, len;
        cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1, "pop %u", i);
        cr_assert_eq(c.head, head);
        virtq_push(&b.q, c.head, i);
        vqb_used_elem(&b, (uint16_t)(65534 + i), &id, &len);
        cr_assert_eq(id, head);
        cr_assert_eq(len, i);
    }
    cr_assert_eq(b.q.last_avail, 3);
    cr_assert_eq(vqb_used_idx(&b), 3);
}

Test(virtq_pop, full_ring_is_not_an_error, .fini = fini)
{
    setup_pop(4);
    gpa_t buf = vqb_alloc(&b, 8, 0);
    struct vqb_buf bufs[] = {{buf, 8, false}};

    b.next_desc = 0;
    for (unsigned i = 0; i < 4; i++)
        vqb_add_chain(&b, bufs, 1);
    cr_assert_eq(virtq_avail_idx(&b.q), 4, "exactly size ahead");
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 0);
}

Test(virtq_pop, max_len_cap_consumes_and_keeps_queue, .fini = fini)
{
    setup_pop(8);
    gpa_t buf = vqb_alloc(&b, 4096, 0);
    struct vqb_buf big[] = {{buf, 4096, false}, {buf, 1, true}};
    struct vqb_buf small[] = {{buf, 4096, false}};
    uint16_t head = vqb_add_chain(&b, big, 2);

    cr_assert_eq(virtq_pop(&b.q, &c, 4096), -E2BIG);
    cr_assert_eq(c.head, head, "head valid so the device can complete it");
    cr_assert_eq(c.n_out + c.n_in, 0, "no iovecs");
    cr_assert_not(b.q.broken);
    cr_assert_eq(b.q.last_avail, 1, "consumed");
    virtq_push(&b.q, c.head, 0);
    cr_assert_eq(vqb_used_idx(&b), 1);

    vqb_add_chain(&b, small, 1);
    cr_assert_eq(virtq_pop(&b.q, &c, 4096), 1, "exactly the cap is fine");
}

Test(virtq_pop, chain_read_and_write_across_iovecs, .fini = fini)
{
    setup_pop(8);
    gpa_t o1 = vqb_alloc(&b, 3, 0), o2 = vqb_alloc(&b, 5, 0);
    gpa_t i1 = vqb_alloc(&b, 4, 0xee), i2 = vqb_alloc(&b, 4, 0xee);
    struct vqb_buf bufs[] = {{o1, 3, false}, {o2, 5, false}, {i1, 4, true}, {i2, 4, true}};
    uint8_t out[16] = {0};

    memcpy(vqb_host(&b, o1, 3), "abc", 3);
    memcpy(vqb_host(&b, o2, 5), "defgh", 5);
    vqb_add_chain(&b, bufs, 4);
    cr_assert_eq(virtq_pop(&b.q, &c, UINT64_MAX), 1);

    cr_assert_eq(virtq_chain_read(&c, 0, out, sizeof(out)), 8, "bounded by the readable part");
    cr_assert_arr_eq(out, "abcdefgh", 8);
    memset(out, 0, sizeof(out));
    cr_assert_eq(virtq_chain_read(&c, 2, out, 3), 3);
    cr_assert_arr_eq(out, "cde", 3);
    cr_assert_eq(virtq_chain_read(&c, 3, out, 2), 2, "offset on an iovec boundary");
    cr_assert_arr_eq(out, "de", 2);
    cr_assert_eq(virtq_chain_read(&c, 8, out, 4), 0, "offset at the end");
    cr_assert_eq(virtq_chain_read(&c, UINT64_MAX, out, 4), 0, "huge offset");

    cr_assert_eq(virtq_chain_write(&c, 2, "WXYZ", 4), 4);
    cr_assert_arr_eq(vqb_host(&b, i1, 4), "\xee\xeeWX", 4);
    cr_assert_arr_eq(vqb_host(&b, i2, 4), "YZ\xee\xee", 4);
    cr_assert_eq(virtq_chain_write(&c, 6, "0123", 4), 2, "bounded by the writable part");
    cr_assert_arr_eq(vqb_host(&b, i2, 4), "YZ01", 4);
    cr_assert_eq(virtq_chain_write(&c, 8, "x", 1), 0);
    cr_assert_arr_eq(vqb_host(&b, o2, 5), "defgh", 5, "readable part untouched");
}

Test(virtq_pop, push_on_inactive_queue_is_ignored, .fini = fini)
{
    vqb_init(&b, VQB_ONE_REGION, 8, 8);
    virtq_push(&b.q, 0, 1);
    virtq_set_notification(&b.q, false);
    cr_assert_not(virtq_should_notify(&b.q));
    cr_assert_not(virtq_has_avail(&b.q));
    cr_assert_eq(vqb_used_idx(&b), 0);
    cr_assert_eq(vqb_used_flags(&b), 0);
}
