/*
 * Unit tests for the VFIO capability-chain parsers (devices/vfio/vfio_caps.c)
 * with hand-built answers, hostile ones above all: links that go backwards,
 * into themselves or past argsz, counts far beyond the buffer, areas outside
 * the region, chains too long.  Every one must be refused, none may read
 * past the buffer (run under ASan by `make test`).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/vfio/vfio.h"

#define REGION_SIZE 0x100000ull

/* A REGION_INFO answer built in a heap buffer of exactly `len` bytes (ASan sees overreads). */
static uint8_t *answer;
static uint32_t alen;

static void region_answer(uint32_t len, uint32_t flags, uint32_t cap_offset)
{
    free(answer);
    answer = calloc(1, len);
    cr_assert_not_null(answer);
    alen = len;
    struct vfio_region_info ri = {
        .argsz = len, .flags = flags, .cap_offset = cap_offset, .size = REGION_SIZE, .offset = 0};
    memcpy(answer, &ri, sizeof(ri));
}

static void put_hdr(uint32_t at, uint16_t id, uint32_t next)
{
    struct vfio_info_cap_header h = {.id = id, .version = 1, .next = next};
    memcpy(answer + at, &h, sizeof(h));
}

static void put_sparse(uint32_t at, uint32_t next, uint32_t nr, const struct vfio_area *areas,
                       unsigned nwrite)
{
    struct vfio_region_info_cap_sparse_mmap sp = {
        .header = {.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP, .version = 1, .next = next},
        .nr_areas = nr};
    memcpy(answer + at, &sp, sizeof(sp));
    for (unsigned i = 0; i < nwrite; i++) {
        struct vfio_region_sparse_mmap_area a = {areas[i].offset, areas[i].size};
        memcpy(answer + at + sizeof(sp) + i * sizeof(a), &a, sizeof(a));
    }
}

static const uint32_t RW_MMAP_CAPS = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                                     VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS;

/* The last refusal's reason: each hostile case must be caught by its own bound. */
static struct errbuf err;

static int parse(struct vfio_region *r)
{
    memset(&err, 0, sizeof(err));
    int rc = vfio_parse_region_caps(answer, alen, r, &err);
    if (rc < 0)
        cr_assert(err_isset(&err), "a refusal says why");
    return rc;
}

static void fini(void)
{
    free(answer);
    answer = NULL;
}

TestSuite(vfio_caps, .fini = fini);

Test(vfio_caps, sparse_type_and_msix_chain)
{
    struct vfio_area areas[2] = {{0, 0x1000}, {0x3000, 0xfd000}};
    region_answer(32 + 48 + 16 + 8, RW_MMAP_CAPS, 32);
    put_sparse(32, 80, 2, areas, 2);
    struct vfio_region_info_cap_type t = {
        .header = {.id = VFIO_REGION_INFO_CAP_TYPE, .version = 1, .next = 96},
        .type = 7,
        .subtype = 9};
    memcpy(answer + 80, &t, sizeof(t));
    put_hdr(96, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 0);

    struct vfio_region r;
    cr_assert_eq(parse(&r), 0);
    cr_assert(r.sparse);
    cr_assert_eq(r.nareas, 2);
    cr_assert_eq(r.areas[1].offset, 0x3000);
    cr_assert_eq(r.areas[1].size, 0xfd000);
    cr_assert(r.has_type);
    cr_assert_eq(r.type, 7);
    cr_assert_eq(r.subtype, 9);
    cr_assert(r.msix_mappable);
    cr_assert_eq(r.size, REGION_SIZE);
}

Test(vfio_caps, mmap_without_sparse_is_one_whole_area)
{
    region_answer(32, RW_MMAP_CAPS & ~VFIO_REGION_INFO_FLAG_CAPS, 0);
    struct vfio_region r;
    cr_assert_eq(parse(&r), 0);
    cr_assert_eq(r.nareas, 1);
    cr_assert_eq(r.areas[0].size, REGION_SIZE);
}

Test(vfio_caps, no_mmap_flag_means_no_areas)
{
    struct vfio_area a = {0, 0x1000};
    region_answer(32 + 32, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_CAPS, 32);
    put_sparse(32, 0, 1, &a, 1);
    struct vfio_region r;
    cr_assert_eq(parse(&r), 0);
    cr_assert_eq(r.nareas, 0);
}

Test(vfio_caps, unknown_caps_are_skipped)
{
    region_answer(32 + 16 + 8, RW_MMAP_CAPS, 32);
    put_hdr(32, 0x7777, 48);
    put_hdr(48, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 0);
    struct vfio_region r;
    cr_assert_eq(parse(&r), 0);
    cr_assert(r.msix_mappable);
}

Test(vfio_caps, next_pointing_backwards)
{
    region_answer(32 + 16 + 8, RW_MMAP_CAPS, 48);
    put_hdr(48, 0x7777, 32);
    put_hdr(32, 0x7777, 48); /* would loop 32 -> 48 -> 32 ... */
    struct vfio_region r;
    cr_assert_eq(parse(&r), -EINVAL);
    cr_assert(strstr(err.msg, "links back") != NULL, "%s", err.msg);
}

Test(vfio_caps, next_pointing_into_itself)
{
    region_answer(32 + 8, RW_MMAP_CAPS, 32);
    put_hdr(32, 0x7777, 32);
    struct vfio_region r;
    cr_assert_eq(parse(&r), -EINVAL);
    cr_assert(strstr(err.msg, "links back") != NULL, "%s", err.msg);
}

Test(vfio_caps, next_past_argsz)
{
    region_answer(32 + 8, RW_MMAP_CAPS, 32);
    put_hdr(32, 0x7777, 4096);
    struct vfio_region r;
    cr_assert_eq(parse(&r), -EINVAL);
    cr_assert(strstr(err.msg, "links past argsz") != NULL, "%s", err.msg);
}

Test(vfio_caps, first_cap_past_argsz_or_straddling_it)
{
    struct vfio_region r;
    region_answer(32 + 8, RW_MMAP_CAPS, 0x10000);
    cr_assert_eq(parse(&r), -EINVAL);
    region_answer(32 + 8, RW_MMAP_CAPS, 36); /* header would end 4 bytes past argsz */
    cr_assert_eq(parse(&r), -EINVAL);
    region_answer(32 + 8, RW_MMAP_CAPS, 0xfffffffc); /* off + header wraps in 32 bits */
    cr_assert_eq(parse(&r), -EINVAL);
}

Test(vfio_caps, first_cap_inside_the_fixed_part)
{
    region_answer(32 + 8, RW_MMAP_CAPS, 8);
    struct vfio_region r;
    cr_assert_eq(parse(&r), -EINVAL);
}

Test(vfio_caps, unaligned_cap)
{
    region_answer(32 + 16, RW_MMAP_CAPS, 34);
    struct vfio_region r;
    cr_assert_eq(parse(&r), -EINVAL);
}

Test(vfio_caps, huge_nr_areas)
{
    struct vfio_area a = {0, 0x1000};
    region_answer(32 + 32, RW_MMAP_CAPS, 32);
    put_sparse(32, 0, 0xffffffff, &a, 1);
    struct vfio_region r;
    cr_assert_eq(parse(&r), -EINVAL);
    cr_assert(strstr(err.msg, "room for 1") != NULL, "%s", err.msg);
}

Test(vfio_caps, nr_areas_one_more_than_the_buffer_holds)
{
    struct vfio_area a[2] = {{0, 0x1000}, {0x2000, 0x1000}};
    region_answer(32 + 16 + 32, RW_MMAP_CAPS, 32);
    put_sparse(32, 0, 3, a, 2);
    struct vfio_region r;
    cr_assert_eq(parse(&r), -EINVAL);
}

Test(vfio_caps, areas_may_not_run_into_the_next_cap)
{
    /* nr_areas 2 fits argsz, but the second area would overlap the cap at 64. */
    struct vfio_area a[1] = {{0, 0x1000}};
    region_answer(32 + 16 + 32 + 8, RW_MMAP_CAPS, 32);
    put_sparse(32, 64, 2, a, 1);
    put_hdr(64, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 0);
    struct vfio_region r;
    cr_assert_eq(parse(&r), -EINVAL);
}

Test(vfio_caps, more_areas_than_supported)
{
    struct vfio_area a[VFIO_MAX_SPARSE + 1];
    for (unsigned i = 0; i <= VFIO_MAX_SPARSE; i++)
        a[i] = (struct vfio_area){i * 0x1000ull, 0x1000};
    region_answer(32 + 16 + 16 * (VFIO_MAX_SPARSE + 1), RW_MMAP_CAPS, 32);
    put_sparse(32, 0, VFIO_MAX_SPARSE + 1, a, VFIO_MAX_SPARSE + 1);
    struct vfio_region r;
    cr_assert_eq(parse(&r), -EINVAL);
}

Test(vfio_caps, area_outside_the_region)
{
    struct vfio_area bad[] = {{REGION_SIZE - 0x1000, 0x2000}, {~0ull - 0xfff, 0x2000}};
    struct vfio_region r;
    for (unsigned i = 0; i < 2; i++) {
        region_answer(32 + 32, RW_MMAP_CAPS, 32);
        put_sparse(32, 0, 1, &bad[i], 1);
        cr_assert_eq(parse(&r), -EINVAL, "area %u", i);
    }
}

Test(vfio_caps, truncated_sparse_and_type_caps)
{
    struct vfio_region r;
    region_answer(32 + 12, RW_MMAP_CAPS, 32);
    put_hdr(32, VFIO_REGION_INFO_CAP_SPARSE_MMAP, 0);
    cr_assert_eq(parse(&r), -EINVAL);
    region_answer(32 + 12, RW_MMAP_CAPS, 32);
    put_hdr(32, VFIO_REGION_INFO_CAP_TYPE, 0);
    cr_assert_eq(parse(&r), -EINVAL);
}

Test(vfio_caps, two_sparse_caps)
{
    struct vfio_area a = {0, 0x1000};
    region_answer(32 + 32 + 32, RW_MMAP_CAPS, 32);
    put_sparse(32, 64, 1, &a, 1);
    put_sparse(64, 0, 1, &a, 1);
    struct vfio_region r;
    cr_assert_eq(parse(&r), -EINVAL);
}

Test(vfio_caps, chain_longer_than_the_hop_limit)
{
    unsigned n = VFIO_MAX_CAP_HOPS + 1;
    region_answer(32 + 8 * n, RW_MMAP_CAPS, 32);
    for (unsigned i = 0; i < n; i++)
        put_hdr(32 + 8 * i, 0x7777, i + 1 < n ? 32 + 8 * (i + 1) : 0);
    struct vfio_region r;
    cr_assert_eq(parse(&r), -EINVAL);
    /* One fewer is fine. */
    region_answer(32 + 8 * (n - 1), RW_MMAP_CAPS, 32);
    for (unsigned i = 0; i < n - 1; i++)
        put_hdr(32 + 8 * i, 0x7777, i + 2 < n ? 32 + 8 * (i + 1) : 0);
    cr_assert_eq(parse(&r), 0);
}

Test(vfio_caps, short_answer_and_wrapping_region)
{
    struct vfio_region r;
    region_answer(32, 0, 0);
    cr_assert_eq(vfio_parse_region_caps(answer, 16, &r, &(struct errbuf){0}), -EINVAL);
    struct vfio_region_info ri = {.argsz = 32, .size = 0x2000, .offset = ~0ull - 0xfff};
    memcpy(answer, &ri, sizeof(ri));
    cr_assert_eq(parse(&r), -EINVAL);
}

/* IOMMU_GET_INFO answers. */
static void iommu_answer(uint32_t len, uint32_t cap_offset)
{
    free(answer);
    answer = calloc(1, len);
    cr_assert_not_null(answer);
    alen = len;
    struct vfio_iommu_type1_info ii = {.argsz = len,
                                       .flags = VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS,
                                       .iova_pgsizes = 0x1000,
                                       .cap_offset = cap_offset};
    memcpy(answer, &ii, sizeof(ii));
}

static void put_ranges(uint32_t at, uint32_t next, uint32_t nr, unsigned nwrite)
{
    struct vfio_iommu_type1_info_cap_iova_range ir = {
        .header = {.id = VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, .version = 1, .next = next},
        .nr_iovas = nr};
    memcpy(answer + at, &ir, sizeof(ir));
    for (unsigned i = 0; i < nwrite; i++) {
        struct vfio_iova_range rg = {i * 0x100000000ull, i * 0x100000000ull + 0xfedfffff};
        memcpy(answer + at + sizeof(ir) + i * sizeof(rg), &rg, sizeof(rg));
    }
}

Test(vfio_caps, iommu_ranges_and_dma_avail)
{
    iommu_answer(24 + 16 + 32 + 16, 24);
    put_ranges(24, 72, 2, 2);
    struct vfio_iommu_type1_info_dma_avail da = {
        .header = {.id = VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, .version = 1}, .avail = 17};
    memcpy(answer + 72, &da, sizeof(da));
    struct vfio_container c = {0};
    cr_assert_eq(vfio_parse_iommu_caps(answer, alen, &c, &(struct errbuf){0}), 0);
    cr_assert_eq(c.nranges, 2);
    cr_assert_eq(c.ranges[1].start, 0x100000000ull);
    cr_assert(c.have_dma_avail);
    cr_assert_eq(c.dma_avail, 17);
    cr_assert_eq(c.iova_pgsizes, 0x1000);
    cr_assert(vfio_iova_ok(&c, 0x1000, 0x1000));
    cr_assert_not(vfio_iova_ok(&c, 0xfee00000, 0x1000));
    cr_assert_not(vfio_iova_ok(&c, 0xfe000000, 0x2000000), "straddles the end of a range");
}

Test(vfio_caps, iommu_hostile_range_counts)
{
    struct vfio_container c = {0};
    iommu_answer(24 + 16 + 16, 24);
    put_ranges(24, 0, 0x7fffffff, 1);
    cr_assert_eq(vfio_parse_iommu_caps(answer, alen, &c, &(struct errbuf){0}), -EINVAL);
    iommu_answer(24 + 16 + 16, 24);
    put_ranges(24, 0, 0, 0);
    cr_assert_eq(vfio_parse_iommu_caps(answer, alen, &c, &(struct errbuf){0}), -EINVAL);
    iommu_answer(24 + 16 + 16, 24);
    put_ranges(24, 24, 1, 1); /* links to itself */
    cr_assert_eq(vfio_parse_iommu_caps(answer, alen, &c, &(struct errbuf){0}), -EINVAL);
}
