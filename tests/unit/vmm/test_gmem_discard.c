/*
 * gmem_discard() and gmem_gpa_of(): pages given back to the host read as
 * zero and leave the memfd (its block count falls), the write log records
 * them for migration, and every bound is enforced (alignment, length 0,
 * holes, region edges, the end of RAM, wrapping, RAM without a memfd).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/gmem.h"

/* RAM [0, 1 MiB) and [2 MiB, 4 MiB): a hole in between. */
static struct gmem gm;

static void setup(void)
{
    struct gmem_range r[2] = {{0, 1 * MiB}, {2 * MiB, 2 * MiB}};
    struct errbuf err = {0};
    cr_assert_eq(gmem_create(&gm, r, 2, false, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
    gmem_destroy(&gm);
}

TestSuite(gmem_discard, .init = setup, .fini = teardown, .timeout = 30);

static long blocks(void)
{
    struct stat st;
    cr_assert_eq(fstat(gm.fd, &st), 0);
    return (long)st.st_blocks;
}

Test(gmem_discard, pages_read_zero_and_leave_the_memfd)
{
    uint8_t *p = gmem_ptr(&gm, 2 * MiB, 64 * KiB);
    memset(p, 0xab, 64 * KiB);
    long before = blocks();
    cr_assert_eq(gmem_discard(&gm, 2 * MiB + 16 * KiB, 32 * KiB), 0);
    /* Checked before reading: a read of a shmem hole allocates again. */
    cr_assert_eq(blocks(), before - (long)(32 * KiB / 512), "32 KiB left the memfd");
    for (size_t i = 0; i < 64 * KiB; i++) {
        bool hole = i >= 16 * KiB && i < 48 * KiB;
        cr_assert_eq(p[i], hole ? 0 : 0xab, "byte %zu", i);
    }
    /* A discarded page is usable again. */
    p[20 * KiB] = 7;
    cr_assert_eq(p[20 * KiB], 7);
}

Test(gmem_discard, bounds)
{
    cr_assert_eq(gmem_discard(&gm, 0, 0), -EINVAL, "empty");
    cr_assert_eq(gmem_discard(&gm, 100, 4096), -EINVAL, "unaligned start");
    cr_assert_eq(gmem_discard(&gm, 0, 100), -EINVAL, "unaligned length");
    cr_assert_eq(gmem_discard(&gm, 1 * MiB, 4096), -EFAULT, "in the hole");
    cr_assert_eq(gmem_discard(&gm, 1 * MiB - 4096, 8192), -EFAULT, "into the hole");
    cr_assert_eq(gmem_discard(&gm, 0, 3 * MiB), -EFAULT, "across the hole");
    cr_assert_eq(gmem_discard(&gm, 4 * MiB, 4096), -EFAULT, "past the end");
    cr_assert_eq(gmem_discard(&gm, 4 * MiB - 4096, 8192), -EFAULT, "over the end");
    cr_assert_eq(gmem_discard(&gm, UINT64_MAX - 4095, 8192), -EFAULT, "wraps");
    cr_assert_eq(gmem_discard(&gm, 1 * MiB - 4096, 4096), 0, "last page of region 0");
}

struct seen {
    uint64_t gpa[4];
    unsigned n;
};

static int collect(void *ctx, uint64_t gpa, uint64_t len)
{
    struct seen *s = ctx;
    cr_assert_eq(len, 4096);
    if (s->n < 4)
        s->gpa[s->n++] = gpa;
    return 0;
}

Test(gmem_discard, marks_the_write_log)
{
    cr_assert_eq(gmem_log_start(&gm), 0);
    cr_assert_eq(gmem_discard(&gm, 2 * MiB + 8192, 8192), 0);
    struct seen s = {0};
    cr_assert_eq(gmem_log_drain(&gm, collect, &s), 0);
    cr_assert_eq(s.n, 2);
    cr_assert_eq(s.gpa[0], 2 * MiB + 8192);
    cr_assert_eq(s.gpa[1], 2 * MiB + 12288);
    gmem_log_stop(&gm);
}

Test(gmem_discard, ram_without_memfd_is_left_alone)
{
    char path[] = "/tmp/wisp-gmem-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    cr_assert_eq(ftruncate(fd, 4 * MiB), 0);
    struct gmem priv;
    struct gmem_range r = {0, 4 * MiB};
    struct errbuf err = {0};
    cr_assert_eq(gmem_create_restore(&priv, &r, 1, fd, false, &err), 0, "%s", err.msg);
    cr_assert_eq(gmem_discard(&priv, 0, 4096), -EOPNOTSUPP);
    gmem_destroy(&priv);
    close(fd);
}

Test(gmem_discard, gpa_of_host_ranges)
{
    gpa_t g = 1;
    uint8_t *p = gmem_ptr(&gm, 2 * MiB, 4096);
    cr_assert_eq(gmem_gpa_of(&gm, p + 10, 100, &g), 0);
    cr_assert_eq(g, 2 * MiB + 10);
    cr_assert_eq(gmem_gpa_of(&gm, p, 2 * MiB, &g), 0, "the whole region");
    cr_assert_eq(gmem_gpa_of(&gm, p, 2 * MiB + 1, &g), -EFAULT, "one byte past the region");
    cr_assert_eq(gmem_gpa_of(&gm, p, 0, &g), -EFAULT, "empty");
    cr_assert_eq(gmem_gpa_of(&gm, p - 1, 1, &g), -EFAULT, "the guard page before");
    uint8_t local[8];
    cr_assert_eq(gmem_gpa_of(&gm, local, 8, &g), -EFAULT, "not guest RAM");
}
