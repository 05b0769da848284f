/*
 * RAM sections (migration/stream_ram.c): the writer's records, and the
 * loader's checks against the destination's layout, tested on a fake guest
 * memory.  Each refusal test also checks that nothing was written.
 */
#include "migration/stream_sections.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/migration/test_stream.h"

/* Two RAM ranges with a hole between them: [0, 64K) and [1M, 1M + 32K). */
#define LO_SIZE (64U * 1024)
#define HI_BASE (1024U * 1024)
#define HI_SIZE (32U * 1024)

struct fake_mem {
    uint8_t lo[LO_SIZE];
    uint8_t hi[HI_SIZE];
    unsigned writes;
};

static const struct mig_mem_layout layout = {
    .n = 2,
    .r = {{0, LO_SIZE}, {HI_BASE, HI_SIZE}},
};

/* The sink: the loader promised [gpa, gpa + len) is inside one range. */
static int fake_sink(void *ctx, uint64_t gpa, const void *data, uint64_t len)
{
    struct fake_mem *m = ctx;
    uint8_t *dst;
    if (gpa + len <= LO_SIZE)
        dst = m->lo + gpa;
    else if (gpa >= HI_BASE && gpa - HI_BASE + len <= HI_SIZE)
        dst = m->hi + (gpa - HI_BASE);
    else
        cr_assert_fail("sink called outside RAM: 0x%llx + 0x%llx", (unsigned long long)gpa,
                       (unsigned long long)len);
    if (data)
        memcpy(dst, data, len);
    else
        memset(dst, 0, len);
    m->writes++;
    return 0;
}

Test(mig_ram, layout_check)
{
    struct mig_mem_layout l = layout;
    char why[128];
    cr_assert_eq(mig_mem_layout_check(&l, why, sizeof(why)), 0);
    l.n = 0;
    cr_assert_eq(mig_mem_layout_check(&l, why, sizeof(why)), -EINVAL);
    l = layout;
    l.r[1].gpa = LO_SIZE - 4096; /* overlaps */
    cr_assert_eq(mig_mem_layout_check(&l, why, sizeof(why)), -EINVAL);
    cr_assert_str_eq(why, "memory range 1 overlaps or precedes range 0");
    l = layout;
    l.r[0].size = 100;
    cr_assert_eq(mig_mem_layout_check(&l, NULL, 0), -EINVAL);
    l = layout;
    l.r[1].gpa = UINT64_MAX - 4095;
    l.r[1].size = 8192;
    cr_assert_eq(mig_mem_layout_check(&l, why, sizeof(why)), -EINVAL);
}

/* Write pages of `src` through a RAM writer into a memory stream; read every section back. */
static void ram_round_trip(struct fake_mem *src, struct fake_mem *dst, struct mig_ram_writer *out)
{
    struct mig_mem_transport m;
    struct mig_transport t;
    struct mig_stream_writer w;
    mig_mem_transport_init(&m, &t, NULL, 0, 64 << 20);
    mig_stream_writer_init(&w, &t);
    cr_assert_eq(mig_stream_write_header(&w, MIG_ARCH_X86_64, 0), 0);
    mig_ram_writer_init(out, &w);
    cr_assert_eq(mig_ram_put(out, 0, src->lo, LO_SIZE / MIG_PAGE_SIZE), 0);
    cr_assert_eq(mig_ram_put(out, HI_BASE, src->hi, HI_SIZE / MIG_PAGE_SIZE), 0);
    cr_assert_eq(mig_ram_flush(out), 0);
    /* A second round re-sends one page, as after the guest dirtied it. */
    src->lo[5 * 4096 + 7] = 0x99;
    cr_assert_eq(mig_ram_put(out, 5 * 4096, src->lo + 5 * 4096, 1), 0);
    cr_assert_eq(mig_ram_flush(out), 0);
    cr_assert_eq(mig_ram_flush(out), 0); /* nothing buffered: no empty section */
    cr_assert_eq(mig_stream_write_end(&w), 0);
    mig_ram_writer_free(out);

    struct errbuf err = {0};
    struct ts_reader tr;
    struct mig_section s;
    ts_reader_init(&tr, m.out, m.out_len, &err);
    cr_assert_eq(mig_stream_read_header(&tr.r, NULL), 0);
    for (;;) {
        cr_assert_eq(mig_stream_read_section(&tr.r, &s), 0, "%s", err.msg);
        if (s.id == MIG_SEC_END)
            break;
        cr_assert_eq(s.id, MIG_SEC_RAM);
        cr_assert_eq(mig_ram_load(&s, &layout, fake_sink, dst, &err), 0, "%s", err.msg);
    }
    cr_assert_eq(mig_stream_read_finish(&tr.r), 0);
    ts_reader_free(&tr);
    mig_mem_transport_free(&m);
}

Test(mig_ram, round_trip_zero_and_data_pages)
{
    static struct fake_mem src, dst;
    struct mig_ram_writer rw;
    memset(&src, 0, sizeof(src));
    memset(&dst, 0xee, sizeof(dst)); /* zero pages must really be zeroed */
    for (int i = 0; i < 4096; i++) {
        src.lo[4096 + i] = (uint8_t)i;           /* page 1 */
        src.lo[2 * 4096 + i] = (uint8_t)(i * 3); /* page 2: contiguous with 1 */
        src.hi[3 * 4096 + i] = 0x42;
    }
    ram_round_trip(&src, &dst, &rw);
    cr_assert_eq(memcmp(src.lo, dst.lo, LO_SIZE), 0);
    cr_assert_eq(memcmp(src.hi, dst.hi, HI_SIZE), 0);
    cr_assert_eq(rw.sections, 2);
    /* lo: zero, data(1-2), zero(3-15); hi: zero(0-2), data(3), zero(4-7); then page 5 as data. */
    cr_assert_eq(rw.data_pages, 4);
    cr_assert_eq(rw.zero_pages, 14 + 7);
}

Test(mig_ram, large_rounds_split_into_sections, .timeout = 60)
{
    size_t npages = MIG_RAM_MAX_PAGES + 10;
    uint8_t *src = malloc(npages * MIG_PAGE_SIZE);
    cr_assert_not_null(src);
    for (size_t i = 0; i < npages * MIG_PAGE_SIZE; i += 4096)
        memset(src + i, (int)(1 + i / 4096 % 250), 4096);
    struct mig_mem_transport m;
    struct mig_transport t;
    struct mig_stream_writer w;
    struct mig_ram_writer rw;
    mig_mem_transport_init(&m, &t, NULL, 0, 64 << 20);
    mig_stream_writer_init(&w, &t);
    cr_assert_eq(mig_stream_write_header(&w, MIG_ARCH_X86_64, 0), 0);
    mig_ram_writer_init(&rw, &w);
    cr_assert_eq(mig_ram_put(&rw, 0, src, npages), 0);
    cr_assert_eq(mig_ram_flush(&rw), 0);
    cr_assert_eq(rw.sections, 2);
    cr_assert_eq(mig_stream_write_end(&w), 0);
    mig_ram_writer_free(&rw);
    /* Every section is within the reader's cap: the whole stream reads back. */
    struct errbuf err = {0};
    unsigned n;
    cr_assert_eq(ts_read_all(m.out, m.out_len, &err, &n), 0, "%s", err.msg);
    cr_assert_eq(n, 2);
    mig_mem_transport_free(&m);
    free(src);
}

Test(mig_ram, writer_refuses_bad_ranges)
{
    struct mig_ram_writer rw;
    uint8_t page[4096] = {0};
    mig_ram_writer_init(&rw, NULL);
    cr_assert_eq(mig_ram_put(&rw, 100, page, 1), -EINVAL);
    cr_assert_eq(mig_ram_put(&rw, 0, page, 0), -EINVAL);
    cr_assert_eq(mig_ram_put(&rw, UINT64_MAX - 4095, page, 1), -EINVAL);
    mig_ram_writer_free(&rw);
}

/* ---- Forged RAM payloads, checked by mig_ram_load itself ---- */

static void rec(struct vstate_out *o, uint64_t gpa, uint32_t npages, uint32_t flags, bool with_data)
{
    vstate_put_u64(o, gpa);
    vstate_put_u32(o, npages);
    vstate_put_u32(o, flags);
    if (with_data)
        for (uint32_t i = 0; i < npages * MIG_PAGE_SIZE; i++)
            vstate_put_u8(o, 0xab);
}

/* A good record first, then the bad one: the good one must not be written either. */
static int load_forged(void (*bad)(struct vstate_out *o), struct errbuf *err, unsigned *writes)
{
    static struct fake_mem mem;
    struct vstate_out o;
    vstate_out_init(&o);
    rec(&o, 0, 1, 0, true);
    bad(&o);
    cr_assert_eq(o.err, 0);
    struct mig_section s = {
        .id = MIG_SEC_RAM, .version = 1, .len = (uint32_t)o.len, .payload = o.buf};
    memset(&mem, 0, sizeof(mem));
    int e = mig_ram_load(&s, &layout, fake_sink, &mem, err);
    *writes = mem.writes;
    vstate_out_free(&o);
    return e;
}

static void bad_in_hole(struct vstate_out *o)
{
    rec(o, LO_SIZE, 1, MIG_RAM_F_ZERO, false);
}
static void bad_straddles(struct vstate_out *o)
{
    rec(o, HI_BASE + HI_SIZE - 4096, 2, 0, true);
}
static void bad_unaligned(struct vstate_out *o)
{
    rec(o, 4096 + 8, 1, 0, true);
}
static void bad_wraps(struct vstate_out *o)
{
    rec(o, UINT64_MAX - 4095, 2, MIG_RAM_F_ZERO, false);
}
static void bad_huge_count(struct vstate_out *o)
{
    rec(o, 0, UINT32_MAX, MIG_RAM_F_ZERO, false);
}
static void bad_no_pages(struct vstate_out *o)
{
    rec(o, 0, 0, 0, false);
}
static void bad_flags(struct vstate_out *o)
{
    rec(o, 0, 1, 0x4 | MIG_RAM_F_ZERO, false);
}
static void bad_short_data(struct vstate_out *o)
{
    rec(o, 4096, 2, 0, false);
    vstate_put_bytes(o, "only a little", 13);
}
static void bad_cut_header(struct vstate_out *o)
{
    vstate_put_u64(o, 4096);
}

Test(mig_ram, refusals_write_nothing)
{
    static const struct {
        void (*fn)(struct vstate_out *o);
        int err;
        const char *msg;
    } cases[] = {
        {bad_in_hole, -ERANGE, "record 1: 0x10000 + 1 pages is outside the destination's RAM"},
        {bad_straddles, -ERANGE, "record 1: 0x107000 + 2 pages is outside the destination's RAM"},
        {bad_unaligned, -ERANGE, "record 1: gpa 0x1008 is not page aligned"},
        {bad_wraps, -ERANGE, "record 1: 0xfffffffffffff000 + 2 pages wraps the address space"},
        {bad_huge_count, -ERANGE, "record 1: 0x0 + 4294967295 pages is outside"},
        {bad_no_pages, -EBADMSG, "record 1: no pages"},
        {bad_flags, -EBADMSG, "record 1: unknown flags 0x4"},
        {bad_short_data, -EBADMSG, "record 1: 2 pages of data, only 13 bytes left"},
        {bad_cut_header, -EBADMSG, "record 1: header cut short (8 of 16 bytes)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct errbuf err = {0};
        unsigned writes;
        cr_assert_eq(load_forged(cases[i].fn, &err, &writes), cases[i].err, "case %zu", i);
        cr_assert_eq(writes, 0, "case %zu wrote", i);
        cr_assert(ts_err_has(&err, "migration stream: section \"ram\" instance 0: "), "%s",
                  err.msg);
        cr_assert(ts_err_has(&err, cases[i].msg), "case %zu: %s", i, err.msg);
    }
}

static int failing_sink(void *ctx, uint64_t gpa, const void *data, uint64_t len)
{
    (void)ctx;
    (void)gpa;
    (void)data;
    (void)len;
    return -EIO;
}

Test(mig_ram, sink_error_is_reported)
{
    struct vstate_out o;
    struct errbuf err = {0};
    vstate_out_init(&o);
    rec(&o, 0, 1, MIG_RAM_F_ZERO, false);
    struct mig_section s = {.id = MIG_SEC_RAM, .len = (uint32_t)o.len, .payload = o.buf};
    cr_assert_eq(mig_ram_load(&s, &layout, failing_sink, NULL, &err), -EIO);
    cr_assert(ts_err_has(&err, "record 0: writing 0x0 + 0x1000 failed"), "%s", err.msg);
    vstate_out_free(&o);
}
