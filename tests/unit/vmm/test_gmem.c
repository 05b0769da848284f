/* Guest memory: checked translation, region edges, guard pages, huge pages. */
#include "vmm/gmem.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <unistd.h>

static struct gmem gm;

static void two_regions(void)
{
    /* [0, 1 MiB) and [4 MiB, 6 MiB): a hole between them. */
    struct gmem_range r[] = {{0, 1 * MiB}, {4 * MiB, 2 * MiB}};
    struct errbuf err = {0};
    cr_assert_eq(gmem_create(&gm, r, 2, false, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
    gmem_destroy(&gm);
}

TestSuite(gmem, .init = two_regions, .fini = teardown);

Test(gmem, translate_inside_regions)
{
    cr_assert_eq(gm.nregions, 2);
    cr_assert_eq(gm.total, 3 * MiB);
    cr_assert_not_null(gmem_ptr(&gm, 0, 1));
    cr_assert_not_null(gmem_ptr(&gm, 0, 1 * MiB));
    cr_assert_not_null(gmem_ptr(&gm, 4 * MiB, 2 * MiB));
    cr_assert_eq((uint8_t *)gmem_ptr(&gm, 4 * MiB + 10, 1) - (uint8_t *)gmem_ptr(&gm, 4 * MiB, 1),
                 10);
    cr_assert_eq(gmem_end(&gm), 6 * MiB);
}

Test(gmem, refuses_bad_ranges)
{
    cr_assert_null(gmem_ptr(&gm, 0, 0), "zero length");
    cr_assert_null(gmem_ptr(&gm, 1 * MiB - 1, 2), "crosses region end into hole");
    cr_assert_null(gmem_ptr(&gm, 2 * MiB, 1), "inside the hole");
    cr_assert_null(gmem_ptr(&gm, 4 * MiB - 1, 2), "starts in hole, ends in region");
    cr_assert_null(gmem_ptr(&gm, 6 * MiB - 4, 8), "crosses the end of RAM");
    cr_assert_null(gmem_ptr(&gm, UINT64_MAX - 3, 8), "wraps");
    cr_assert_null(gmem_ptr(&gm, 8, UINT64_MAX), "length wraps");
    cr_assert_null(gmem_ptr(&gm, 0, 6 * MiB), "spans both regions and the hole");
    cr_assert_not(gmem_range_ok(&gm, 1 * MiB, 1));
}

Test(gmem, adjacent_regions_are_not_one_range)
{
    gmem_destroy(&gm);
    struct gmem_range r[] = {{0, 1 * MiB}, {1 * MiB, 1 * MiB}};
    struct errbuf err = {0};
    cr_assert_eq(gmem_create(&gm, r, 2, false, &err), 0);
    /* Contiguous in guest-physical space but two mappings: must be refused. */
    cr_assert_null(gmem_ptr(&gm, 1 * MiB - 8, 16));
    cr_assert_not_null(gmem_ptr(&gm, 1 * MiB - 8, 8));
}

Test(gmem, read_write_zero)
{
    uint8_t buf[16] = "hello, guest!!!";
    uint8_t out[16] = {0};
    cr_assert_eq(gmem_write(&gm, 4 * MiB + 100, buf, sizeof(buf)), 0);
    cr_assert_eq(gmem_read(&gm, 4 * MiB + 100, out, sizeof(out)), 0);
    cr_assert_arr_eq(buf, out, sizeof(buf));
    cr_assert_eq(gmem_zero(&gm, 4 * MiB + 100, 5), 0);
    cr_assert_eq(gmem_read(&gm, 4 * MiB + 100, out, sizeof(out)), 0);
    cr_assert_eq(out[0], 0);
    cr_assert_eq(out[5], ',');
    cr_assert_eq(gmem_write(&gm, 1 * MiB - 4, buf, 8), -EFAULT);
    cr_assert_eq(gmem_read(&gm, 3 * MiB, out, 1), -EFAULT);
}

Test(gmem, memory_is_shared_memfd)
{
    /* Writes through the mapping are visible through the fd (vhost-user and
     * migration helpers depend on this). */
    cr_assert_geq(gm.fd, 0);
    uint32_t v = 0xdeadbeef, r = 0;
    cr_assert_eq(gmem_write(&gm, 4 * MiB + 8, &v, 4), 0);
    /* Region 1 starts at fd offset 1 MiB. */
    cr_assert_eq(pread(gm.fd, &r, 4, 1 * MiB + 8), 4);
    cr_assert_eq(r, v);
}

Test(gmem, guard_page_after_region, .signal = SIGSEGV)
{
    volatile uint8_t *p = gmem_ptr(&gm, 1 * MiB - 1, 1);
    p[1] = 1; /* one past the region: the guard page must fault */
}

Test(gmem, guard_page_before_region, .signal = SIGSEGV)
{
    volatile uint8_t *p = gmem_ptr(&gm, 0, 1);
    (void)p[-1];
}

Test(gmem, create_rejects_bad_layouts)
{
    gmem_destroy(&gm);
    struct errbuf err = {0};
    struct gmem_range unaligned[] = {{0, 4096 + 1}};
    cr_assert_lt(gmem_create(&gm, unaligned, 1, false, &err), 0);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    cr_assert_eq(gm.fd, -1);
    struct errbuf err2 = {0};
    struct gmem_range overlap[] = {{0, 2 * MiB}, {1 * MiB, 2 * MiB}};
    cr_assert_lt(gmem_create(&gm, overlap, 2, false, &err2), 0);
    cr_assert(strstr(err2.msg, "overlap"));
    struct errbuf err3 = {0};
    cr_assert_lt(gmem_create(&gm, overlap, 0, false, &err3), 0);
    struct errbuf err4 = {0};
    struct gmem_range empty[] = {{0, 0}};
    cr_assert_lt(gmem_create(&gm, empty, 1, false, &err4), 0);
}

Test(gmem, hugepages_clear_error_or_work)
{
    gmem_destroy(&gm);
    struct errbuf err = {0};
    struct gmem_range r[] = {{0, 4 * MiB}};
    int ret = gmem_create(&gm, r, 1, true, &err);
    if (ret < 0) {
        /* No huge pages on this host: the error must say so, as a host problem. */
        cr_assert_eq(err.exit_code, WISP_EXIT_HOST);
        cr_assert(strstr(err.msg, "huge pages"), "message: %s", err.msg);
        cr_assert_eq(gm.fd, -1);
    } else {
        cr_assert_eq(gm.page_size, 2 * MiB);
        cr_assert_not_null(gmem_ptr(&gm, 0, 4 * MiB));
    }
    struct errbuf err2 = {0};
    struct gmem_range small[] = {{0, 1 * MiB}};
    gmem_destroy(&gm);
    cr_assert_lt(gmem_create(&gm, small, 1, true, &err2), 0, "1 MiB is not 2 MiB aligned");
}
