/*
 * The arm64 Image header checks (arch/aarch64/image.c) against good and
 * hostile headers: the loader trusts nothing the file says before these.
 */
#include "arch/aarch64/image.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

TestSuite(a64_image);

#define MiB_ (1024ULL * 1024)

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A header like Debian's 6.1 kernel: text_offset 0, image_size `size`. */
static void make_header(uint8_t *h, uint64_t text_offset, uint64_t size, uint64_t flags)
{
    memset(h, 0, 4096);
    put64(h + 8, text_offset);
    put64(h + 16, size);
    put64(h + 24, flags);
    memcpy(h + 56, "ARM\x64", 4);
}

static uint8_t img[4096];
static struct a64_image im;
static struct errbuf err;

/* Parse the first `len` bytes of img with `max` bytes of room; a fresh errbuf each time. */
static int parse(size_t len, uint64_t max)
{
    memset(&err, 0, sizeof(err));
    return a64_image_parse(img, len, max, &im, &err);
}

Test(a64_image, accepts_a_good_header)
{
    make_header(img, 0, 32 * MiB_, 0xa); /* LE, 4K pages, anywhere */
    cr_assert_eq(parse(sizeof(img), 256 * MiB_), 0, "%s", err.msg);
    cr_assert_eq(im.text_offset, 0);
    cr_assert_eq(im.image_size, 32 * MiB_);
    make_header(img, 0x80000, 8 * MiB_, 0);
    cr_assert_eq(parse(sizeof(img), 256 * MiB_), 0, "%s", err.msg);
    cr_assert_eq(im.text_offset, 0x80000);
}

Test(a64_image, refuses_bad_magic_and_short_files)
{
    make_header(img, 0, 32 * MiB_, 0);
    img[59] = 0x65;
    cr_assert_eq(parse(sizeof(img), 256 * MiB_), -EINVAL);
    cr_assert(strstr(err.msg, "magic"), "%s", err.msg);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    make_header(img, 0, 32 * MiB_, 0);
    cr_assert_eq(parse(63, 256 * MiB_), -EINVAL);
    cr_assert(strstr(err.msg, "too short"), "%s", err.msg);
}

Test(a64_image, refuses_misaligned_text_offset)
{
    make_header(img, 0x80010, 32 * MiB_, 0);
    cr_assert_eq(parse(sizeof(img), 256 * MiB_), -EINVAL);
    cr_assert(strstr(err.msg, "text_offset"), "%s", err.msg);
    /* At or past 2 MiB the kernel would not start on the 2 MiB base it assumes. */
    make_header(img, 2 * MiB_, 32 * MiB_, 0);
    cr_assert_eq(parse(sizeof(img), 256 * MiB_), -EINVAL);
    make_header(img, UINT64_MAX & ~0xfffULL, 32 * MiB_, 0);
    cr_assert_eq(parse(sizeof(img), 256 * MiB_), -EINVAL);
}

Test(a64_image, refuses_sizes_that_do_not_fit)
{
    make_header(img, 0, 300 * MiB_, 0);
    cr_assert_eq(parse(sizeof(img), 256 * MiB_), -EFBIG);
    cr_assert(strstr(err.msg, "room"), "%s", err.msg);
    /* text_offset + image_size past the room, and the overflowing sum. */
    make_header(img, 0x1ff000, 256 * MiB_ - 0x1000, 0);
    cr_assert_eq(parse(sizeof(img), 256 * MiB_), -EFBIG);
    make_header(img, 0x1000, UINT64_MAX - 0x10, 0);
    cr_assert_eq(parse(sizeof(img), UINT64_MAX), -EFBIG);
    /* image_size smaller than the file itself, or absent (pre-3.17). */
    make_header(img, 0, 1024, 0);
    cr_assert_eq(parse(sizeof(img), 256 * MiB_), -EINVAL);
    make_header(img, 0, 0, 0);
    cr_assert_eq(parse(sizeof(img), 256 * MiB_), -EINVAL);
}

Test(a64_image, refuses_big_endian)
{
    make_header(img, 0, 32 * MiB_, 1);
    cr_assert_eq(parse(sizeof(img), 256 * MiB_), -EINVAL);
    cr_assert(strstr(err.msg, "big-endian"), "%s", err.msg);
}
