/*
 * What the virtqueue reports to live migration's device write log
 * (gmem_log_*): KVM's dirty log sees only the guest's writes, so every
 * guest page a device may write -- its device-writable buffers, at pop and
 * again when the chain is completed, and the used ring -- must be marked,
 * and nothing the device only reads.  And a paused queue hands out nothing.
 */
#include "devices/virtio/queue.h"

#include <criterion/criterion.h>
#include <string.h>

#include "tests/lib/virtq_builder.h"

static struct vqb b;
static struct virtq_chain c;

#define MAX_RUNS 64
static uint64_t runs[MAX_RUNS];
static unsigned nruns;

static int collect(void *ctx, uint64_t gpa, uint64_t len)
{
    (void)ctx;
    cr_assert_eq(len, 4096);
    cr_assert_lt(nruns, MAX_RUNS);
    runs[nruns++] = gpa;
    return 0;
}

static bool marked(uint64_t gpa)
{
    for (unsigned i = 0; i < nruns; i++)
        if (runs[i] == (gpa & ~4095ull))
            return true;
    return false;
}

static void drain(void)
{
    nruns = 0;
    cr_assert_eq(gmem_log_drain(&b.mem, collect, NULL), 0);
}

static void fini(void)
{
    gmem_log_stop(&b.mem);
    vqb_fini(&b);
}

TestSuite(virtq_dirty, .fini = fini);

Test(virtq_dirty, writable_buffers_and_used_ring_are_logged)
{
    vqb_init(&b, VQB_ONE_REGION, 16, 256);
    cr_assert_eq(vqb_activate(&b, false, false), 0);
    gpa_t out = vqb_alloc(&b, 64, 0), in = vqb_alloc(&b, 3 * 4096, 0);
    in = (in + 4095) & ~4095ull; /* page aligned, spans three pages below */
    struct vqb_buf bufs[] = {{out, 64, false}, {in, 2 * 4096 + 1, true}};
    vqb_add_chain(&b, bufs, 2);

    /* Not logging: nothing is recorded. */
    cr_assert_eq(virtq_pop(&b.q, &c, 1 << 20), 1);
    virtq_push(&b.q, c.head, 0);
    drain();
    cr_assert_eq(nruns, 0);

    cr_assert_eq(gmem_log_start(&b.mem), 0);
    vqb_add_chain(&b, bufs, 2);
    cr_assert_eq(virtq_pop(&b.q, &c, 1 << 20), 1);
    drain();
    cr_assert(marked(in) && marked(in + 4096) && marked(in + 8192), "writable pages at pop");
    cr_assert_not(marked(out), "a device-readable buffer is not device-written");
    /* The device writes after a pass took the marks: completing marks again. */
    virtq_push(&b.q, c.head, 100);
    drain();
    cr_assert(marked(in) && marked(in + 8192), "writable pages at push");
    cr_assert(marked(VQB_USED_GPA), "the used ring");
    cr_assert_not(marked(out));
    drain();
    cr_assert_eq(nruns, 0, "a drain clears the log");
}

Test(virtq_dirty, paused_queue_hands_out_nothing)
{
    vqb_init(&b, VQB_ONE_REGION, 16, 256);
    cr_assert_eq(vqb_activate(&b, false, false), 0);
    gpa_t in = vqb_alloc(&b, 512, 0);
    struct vqb_buf buf = {in, 512, true};
    vqb_add_chain(&b, &buf, 1);
    b.q.paused = true;
    cr_assert_eq(virtq_pop(&b.q, &c, 1 << 20), 0);
    b.q.paused = false;
    cr_assert_eq(virtq_pop(&b.q, &c, 1 << 20), 1, "the chain waited, it was not lost");
}
