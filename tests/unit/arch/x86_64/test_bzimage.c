/*
 * bzImage loader tests: header validation, placement (pref_address,
 * kernel_alignment, relocatable or not, init_size) and the setup header copy
 * into the zero page.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/bootparams.h"
#include "arch/x86_64/bzimage.h"
#include "tests/lib/x86_images.h"

static struct gmem gm;
static struct errbuf err;

static void setup(void)
{
    memset(&err, 0, sizeof(err));
    x86_img_gmem(&gm, 64 * MiB);
}

static void teardown(void)
{
    gmem_destroy(&gm);
}

TestSuite(x86_bzimage, .init = setup, .fini = teardown);

static int load_opts(const struct x86_img_bz *o, struct x86_bzimage_info *info)
{
    size_t len;
    uint8_t *img = x86_img_bz_build(o, &len);
    memset(&err, 0, sizeof(err));
    int ret = x86_bzimage_load(&gm, img, len, info, &err);
    free(img);
    return ret;
}

static void expect_opts_err(const struct x86_img_bz *o, const char *needle)
{
    struct x86_bzimage_info info;
    X86_IMG_EXPECT_ERR(load_opts(o, &info), err, needle);
}

Test(x86_bzimage, valid_at_pref_address)
{
    struct x86_img_bz o;
    x86_img_bz_defaults(&o);
    size_t len;
    uint8_t *img = x86_img_bz_build(&o, &len);
    struct x86_bzimage_info info;

    cr_assert(x86_bzimage_detect(img, len));
    cr_assert_eq(x86_bzimage_load(&gm, img, len, &info, &err), 0, "%s", err.msg);
    cr_assert_eq(info.load_addr, 16 * MiB);
    cr_assert_eq(info.entry, 16 * MiB + 0x200);
    cr_assert_eq(info.end, 16 * MiB + 8 * MiB);
    cr_assert_eq(info.payload_len, 64 * KiB);
    cr_assert_eq(info.cmdline_max, 2047);
    cr_assert_eq(info.initrd_limit, 0x80000000ULL);
    cr_assert_eq(info.version, 0x020F);
    const uint8_t *k = gmem_ptr(&gm, 16 * MiB, 64 * KiB);
    for (size_t j = 0; j < 64 * KiB; j++)
        cr_assert_eq(k[j], x86_img_byte(0, j), "payload byte %zu", j);
    free(img);
}

Test(x86_bzimage, zero_page_header_copy)
{
    struct x86_img_bz o;
    x86_img_bz_defaults(&o);
    size_t len;
    uint8_t *img = x86_img_bz_build(&o, &len);
    struct x86_bzimage_info info;
    uint8_t zp[X86_ZERO_PAGE_SIZE];
    memset(zp, 0, sizeof(zp));

    cr_assert_eq(x86_bzimage_load(&gm, img, len, &info, &err), 0, "%s", err.msg);
    cr_assert_eq(x86_bzimage_fill_zero_page(img, len, &info, zp), 0);
    /* Bytes 0x1F1..0x268 come from the file, except the loader-owned fields. */
    for (size_t i = 0x1F1; i < 0x268; i++) {
        if (i == 0x210 || i == 0x211 || (i >= 0x214 && i < 0x218) || (i >= 0x224 && i < 0x226))
            continue;
        cr_assert_eq(zp[i], img[i], "header byte 0x%zx", i);
    }
    cr_assert_eq(zp[0x268], 0, "header copy stops at 0x202 + img[0x201]");
    cr_assert_eq(zp[0x1F0], 0);
    cr_assert_eq(zp[0x210], 0xFF, "type_of_loader");
    cr_assert_eq(zp[0x211], 0x81, "LOADED_HIGH | CAN_USE_HEAP");
    cr_assert_eq(le32_get(zp + 0x214), 16 * MiB, "code32_start");
    cr_assert_eq(le16_get(zp + 0x224), 0xFE00, "heap_end_ptr");
    cr_assert_eq(le32_get(zp + 0x202), 0x53726448);
    free(img);
}

Test(x86_bzimage, zero_page_long_header_is_bounded)
{
    struct x86_img_bz o;
    x86_img_bz_defaults(&o);
    o.setup_sects = 1; /* setup area 1024 bytes; header claims up to 0x301 */
    o.hdr_len = 0xFF;
    size_t len;
    uint8_t *img = x86_img_bz_build(&o, &len);
    struct x86_bzimage_info info;
    uint8_t zp[X86_ZERO_PAGE_SIZE];
    memset(zp, 0, sizeof(zp));
    cr_assert_eq(x86_bzimage_load(&gm, img, len, &info, &err), 0, "%s", err.msg);
    cr_assert_eq(x86_bzimage_fill_zero_page(img, len, &info, zp), 0);
    cr_assert_eq(zp[0x300], 0x5A);
    cr_assert_eq(zp[0x301], 0);
    free(img);
}

Test(x86_bzimage, alignment_rounds_up)
{
    struct x86_img_bz o;
    struct x86_bzimage_info info;
    x86_img_bz_defaults(&o);
    o.pref_address = 16 * MiB + 1;
    cr_assert_eq(load_opts(&o, &info), 0, "%s", err.msg);
    cr_assert_eq(info.load_addr, 18 * MiB);

    /* A relocatable kernel asking for low memory is moved up to 1 MiB, then aligned. */
    o.pref_address = 0x8000;
    cr_assert_eq(load_opts(&o, &info), 0, "%s", err.msg);
    cr_assert_eq(info.load_addr, 2 * MiB);
    o.kernel_alignment = 0x1000;
    cr_assert_eq(load_opts(&o, &info), 0, "%s", err.msg);
    cr_assert_eq(info.load_addr, 1 * MiB);
}

Test(x86_bzimage, setup_sects_zero_means_four)
{
    struct x86_img_bz o;
    x86_img_bz_defaults(&o);
    o.setup_sects = 0;
    size_t len;
    uint8_t *img = x86_img_bz_build(&o, &len);
    struct x86_bzimage_info info;
    cr_assert_eq(len, 5 * 512 + 64 * KiB);
    cr_assert_eq(x86_bzimage_load(&gm, img, len, &info, &err), 0, "%s", err.msg);
    cr_assert_eq(info.payload_len, 64 * KiB);
    cr_assert_eq(*(uint8_t *)gmem_ptr(&gm, info.load_addr, 1), x86_img_byte(0, 0));
    free(img);
}

Test(x86_bzimage, old_protocol_refused)
{
    struct x86_img_bz o;
    x86_img_bz_defaults(&o);
    o.version = 0x0209;
    expect_opts_err(&o, "bzImage boot protocol 2.09 is too old: need 2.12 or later");
}

Test(x86_bzimage, no_kernel64_refused)
{
    struct x86_img_bz o;
    x86_img_bz_defaults(&o);
    o.xloadflags = 0x02;
    expect_opts_err(&o, "bzImage has no 64-bit entry point (XLF_KERNEL_64 not set)");
}

Test(x86_bzimage, not_loaded_high_refused)
{
    struct x86_img_bz o;
    x86_img_bz_defaults(&o);
    o.loadflags = 0;
    expect_opts_err(&o, "LOADED_HIGH not set");
}

Test(x86_bzimage, missing_magic)
{
    struct x86_img_bz o;
    x86_img_bz_defaults(&o);
    size_t len;
    uint8_t *img = x86_img_bz_build(&o, &len);
    struct x86_bzimage_info info;

    memcpy(img + 0x202, "HdrT", 4);
    cr_assert_not(x86_bzimage_detect(img, len));
    X86_IMG_EXPECT_ERR(x86_bzimage_load(&gm, img, len, &info, &err), err, "\"HdrS\"");
    memcpy(img + 0x202, "HdrS", 4);
    img[0x1FE] = 0;
    memset(&err, 0, sizeof(err));
    X86_IMG_EXPECT_ERR(x86_bzimage_load(&gm, img, len, &info, &err), err, "0xAA55");
    memset(&err, 0, sizeof(err));
    X86_IMG_EXPECT_ERR(x86_bzimage_load(&gm, img, 0x100, &info, &err), err, "too short");
    free(img);
}

Test(x86_bzimage, truncated_setup)
{
    struct x86_img_bz o;
    x86_img_bz_defaults(&o);
    size_t len;
    uint8_t *img = x86_img_bz_build(&o, &len);
    struct x86_bzimage_info info;

    /* The file ends inside, or exactly at the end of, the setup area. */
    X86_IMG_EXPECT_ERR(x86_bzimage_load(&gm, img, 5 * 512, &info, &err), err, "truncated");
    memset(&err, 0, sizeof(err));
    X86_IMG_EXPECT_ERR(x86_bzimage_load(&gm, img, 0x300, &info, &err), err, "truncated");
    memset(&err, 0, sizeof(err));
    img[0x1F1] = 200; /* claims 100 KiB of setup in a 66 KiB file */
    X86_IMG_EXPECT_ERR(x86_bzimage_load(&gm, img, len, &info, &err), err, "setup area is 102912");
    memset(&err, 0, sizeof(err));
    img[0x1F1] = 4;
    X86_IMG_EXPECT_ERR(x86_bzimage_load(&gm, img, 5 * 512 + 0x200, &info, &err), err,
                       "64-bit entry at +0x200 lies beyond it");
    free(img);
}

Test(x86_bzimage, bad_kernel_alignment)
{
    static const uint32_t bad[] = {0, 0x800, 0x3000, 0x200001, 0xFFFFFFFF};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct x86_img_bz o;
        x86_img_bz_defaults(&o);
        o.kernel_alignment = bad[i];
        expect_opts_err(&o, "is not a power of two of at least 4 KiB");
    }
}

Test(x86_bzimage, non_relocatable_exact_address)
{
    struct x86_img_bz o;
    struct x86_bzimage_info info;
    x86_img_bz_defaults(&o);
    o.relocatable = 0;
    o.kernel_alignment = 0x3000; /* ignored for a fixed kernel */
    o.pref_address = 16 * MiB + 0x1000;
    cr_assert_eq(load_opts(&o, &info), 0, "%s", err.msg);
    cr_assert_eq(info.load_addr, 16 * MiB + 0x1000);

    o.pref_address = 60 * MiB; /* init_size 8 MiB: ends past 64 MiB */
    expect_opts_err(&o, "bzImage needs 8192 KiB of memory at 0x3c00000");

    o.pref_address = 0x10000;
    expect_opts_err(&o, "below 1 MiB");
}

Test(x86_bzimage, does_not_fit)
{
    struct x86_img_bz o;
    x86_img_bz_defaults(&o);
    o.init_size = 100 * MiB;
    expect_opts_err(&o, "does not fit in guest RAM of 64 MiB");

    x86_img_bz_defaults(&o);
    o.pref_address = 0xFFFFFFFFFFFFF000ULL;
    expect_opts_err(&o, "cannot be aligned");

    x86_img_bz_defaults(&o);
    o.relocatable = 0;
    o.pref_address = 0xFFFFFFFFFFFFF000ULL;
    expect_opts_err(&o, "does not fit");
}

Test(x86_bzimage, payload_larger_than_init_size)
{
    struct x86_img_bz o;
    struct x86_bzimage_info info;
    x86_img_bz_defaults(&o);
    o.init_size = 0x1000;
    cr_assert_eq(load_opts(&o, &info), 0, "%s", err.msg);
    cr_assert_eq(info.end, 16 * MiB + 64 * KiB);
}

Test(x86_bzimage, above_4g_refused)
{
    gmem_destroy(&gm);
    x86_img_gmem2(&gm, 0, 64 * MiB, 4 * GiB, 64 * MiB);
    struct x86_img_bz o;
    x86_img_bz_defaults(&o);
    o.pref_address = 4 * GiB;
    o.relocatable = 0; /* a relocatable kernel would fall back to low memory */
    expect_opts_err(&o, "below 4 GiB");
}

Test(x86_bzimage, relocatable_falls_back_below_pref_address)
{
    /* Linux asks for 16 MiB; in a 64 MiB VM with a 60 MiB init_size it must
     * still load, at the lowest aligned address above 1 MiB. */
    struct x86_img_bz o;
    x86_img_bz_defaults(&o);
    o.pref_address = 16 * MiB;
    o.init_size = 60 * MiB;
    size_t len;
    uint8_t *img = x86_img_bz_build(&o, &len);
    struct x86_bzimage_info info;
    cr_assert_eq(x86_bzimage_load(&gm, img, len, &info, &err), 0, "%s", err.msg);
    cr_assert_eq(info.load_addr, o.kernel_alignment, "loaded at 0x%llx",
                 (unsigned long long)info.load_addr);
    free(img);
}
