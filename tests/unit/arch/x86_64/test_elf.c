/*
 * ELF64 loader tests: a valid image loads byte for byte with its bss
 * cleared, and every malformed header field or hostile segment layout is
 * refused with a one-line message before guest memory is touched.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/elf.h"
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

TestSuite(x86_elf, .init = setup, .fini = teardown);

static const struct x86_img_seg two_segs[] = {
    {.paddr = 2 * MiB, .filesz = 0x1800, .memsz = 0x4000},
    {.paddr = 4 * MiB, .filesz = 0x300, .memsz = 0x300},
};

static uint8_t *build(const struct x86_img_seg *segs, unsigned n, size_t *len)
{
    struct x86_img_elf o = {.segs = segs, .nsegs = n, .entry = segs[0].paddr + 0x200};
    return x86_img_elf_build(&o, len);
}

static int load(const uint8_t *img, size_t len, struct x86_elf_info *info)
{
    return x86_elf_load(&gm, img, len, info, &err);
}

Test(x86_elf, valid_segments_copied_bss_zeroed)
{
    size_t len;
    uint8_t *img = build(two_segs, 2, &len);
    struct x86_elf_info info;
    uint8_t *ram = gmem_ptr(&gm, 0, 64 * MiB);
    memset(ram + 2 * MiB, 0xCC, 8 * MiB); /* stale contents the bss must not keep */

    cr_assert_eq(load(img, len, &info), 0, "%s", err.msg);
    cr_assert(x86_elf_detect(img, len));
    for (uint64_t j = 0; j < 0x1800; j++)
        cr_assert_eq(ram[2 * MiB + j], x86_img_byte(0, j), "seg 0 byte %llu",
                     (unsigned long long)j);
    for (uint64_t j = 0x1800; j < 0x4000; j++)
        cr_assert_eq(ram[2 * MiB + j], 0, "bss byte %llu", (unsigned long long)j);
    cr_assert_eq(ram[2 * MiB + 0x4000], 0xCC, "nothing past p_memsz is written");
    for (uint64_t j = 0; j < 0x300; j++)
        cr_assert_eq(ram[4 * MiB + j], x86_img_byte(1, j));
    cr_assert_eq(info.entry, 2 * MiB + 0x200);
    cr_assert(info.entry_loaded);
    cr_assert_not(info.has_pvh);
    cr_assert_eq(info.start, 2 * MiB);
    cr_assert_eq(info.end, 4 * MiB + 0x300);
    free(img);
}

Test(x86_elf, entry_outside_segments_is_reported)
{
    struct x86_img_elf o = {.segs = two_segs, .nsegs = 2, .entry = 0x3000000};
    size_t len;
    uint8_t *img = x86_img_elf_build(&o, &len);
    struct x86_elf_info info;
    cr_assert_eq(load(img, len, &info), 0, "%s", err.msg);
    cr_assert_not(info.entry_loaded);
    free(img);
}

Test(x86_elf, pvh_note_8_and_4_bytes)
{
    for (uint32_t d = 4; d <= 8; d += 4) {
        struct x86_img_elf o = {.segs = two_segs,
                                .nsegs = 2,
                                .entry = 2 * MiB + 0x200,
                                .pvh = true,
                                .pvh_entry = 2 * MiB + 0x10,
                                .pvh_descsz = d};
        size_t len;
        uint8_t *img = x86_img_elf_build(&o, &len);
        struct x86_elf_info info;
        cr_assert_eq(load(img, len, &info), 0, "%s", err.msg);
        cr_assert(info.has_pvh);
        cr_assert_eq(info.pvh_entry, 2 * MiB + 0x10);
        free(img);
    }
}

Test(x86_elf, foreign_note_is_ignored)
{
    struct x86_img_elf o = {
        .segs = two_segs, .nsegs = 2, .entry = 2 * MiB, .pvh = true, .pvh_entry = 2 * MiB};
    size_t len;
    uint8_t *img = x86_img_elf_build(&o, &len);
    memcpy(img + x86_img_elf_note_offset(&o) + 12, "GNU", 4);
    struct x86_elf_info info;
    cr_assert_eq(load(img, len, &info), 0, "%s", err.msg);
    cr_assert_not(info.has_pvh);
    free(img);
}

static void expect_pvh_error(uint64_t entry, uint32_t descsz, const char *needle)
{
    struct x86_img_elf o = {.segs = two_segs,
                            .nsegs = 2,
                            .entry = 2 * MiB,
                            .pvh = true,
                            .pvh_entry = entry,
                            .pvh_descsz = descsz};
    size_t len;
    uint8_t *img = x86_img_elf_build(&o, &len);
    struct x86_elf_info info;
    memset(&err, 0, sizeof(err));
    X86_IMG_EXPECT_ERR(load(img, len, &info), err, needle);
    free(img);
}

Test(x86_elf, pvh_note_malformed)
{
    expect_pvh_error(2 * MiB, 2, "2-byte descriptor");
    expect_pvh_error(2 * MiB, 16, "16-byte descriptor");
    expect_pvh_error(0x100000000ULL + 2 * MiB, 8, "not below 4 GiB");
    expect_pvh_error(8 * MiB, 8, "not inside a loaded segment");
    /* Inside the bss, not the file bytes: no code there. */
    expect_pvh_error(2 * MiB + 0x2000, 8, "not inside a loaded segment");
}

Test(x86_elf, pvh_note_overruns_segment)
{
    struct x86_img_elf o = {
        .segs = two_segs, .nsegs = 2, .entry = 2 * MiB, .pvh = true, .pvh_entry = 2 * MiB};
    size_t len, noff = x86_img_elf_note_offset(&o);
    uint8_t *img = x86_img_elf_build(&o, &len);
    struct x86_elf_info info;

    le32_put(img + noff, 0xFFFFFFFF); /* namesz */
    X86_IMG_EXPECT_ERR(load(img, len, &info), err, "runs past the segment end");

    memset(&err, 0, sizeof(err));
    le32_put(img + noff, 4);
    le32_put(img + noff + 4, 0xFFFFFFF8); /* descsz */
    X86_IMG_EXPECT_ERR(load(img, len, &info), err, "runs past the segment end");

    memset(&err, 0, sizeof(err));
    le32_put(img + noff + 4, 8);
    le64_put(img + X86_IMG_PHDR(2) + X86_IMG_P_FILESZ, 20); /* cuts the descriptor */
    X86_IMG_EXPECT_ERR(load(img, len, &info), err, "runs past the segment end");

    memset(&err, 0, sizeof(err));
    le64_put(img + X86_IMG_PHDR(2) + X86_IMG_P_FILESZ, 8); /* cuts the note header */
    X86_IMG_EXPECT_ERR(load(img, len, &info), err, "truncated note header");

    memset(&err, 0, sizeof(err));
    le64_put(img + X86_IMG_PHDR(2) + X86_IMG_P_FILESZ, len); /* past EOF */
    X86_IMG_EXPECT_ERR(load(img, len, &info), err, "note segment 2");
    free(img);
}

/* Build the two-segment image, apply one corruption, expect a message. */
static void expect_corrupt(size_t off, unsigned width, uint64_t val, const char *needle)
{
    size_t len;
    uint8_t *img = build(two_segs, 2, &len);
    struct x86_elf_info info;
    uint8_t *ram = gmem_ptr(&gm, 2 * MiB, 1);
    if (width == 1)
        img[off] = (uint8_t)val;
    else if (width == 2)
        le16_put(img + off, (uint16_t)val);
    else if (width == 4)
        le32_put(img + off, (uint32_t)val);
    else
        le64_put(img + off, val);
    memset(&err, 0, sizeof(err));
    *ram = 0xEE;
    X86_IMG_EXPECT_ERR(load(img, len, &info), err, needle);
    cr_assert_eq(*ram, 0xEE, "guest memory untouched on error (%s)", needle);
    free(img);
}

Test(x86_elf, bad_identity)
{
    expect_corrupt(4, 1, 1, "32-bit");
    expect_corrupt(4, 1, 7, "invalid class");
    expect_corrupt(5, 1, 2, "not little-endian");
    expect_corrupt(6, 1, 0, "unknown version");
    expect_corrupt(20, 4, 2, "unknown version");
    expect_corrupt(X86_IMG_E_MACHINE, 2, 3, "machine 3");
    expect_corrupt(X86_IMG_E_TYPE, 2, 3, "ET_DYN");
    expect_corrupt(X86_IMG_E_TYPE, 2, 1, "not ET_EXEC");
    expect_corrupt(X86_IMG_E_PHENTSIZE, 2, 32, "program header size is 32");
    expect_corrupt(X86_IMG_E_PHNUM, 2, 0, "no program headers");
    expect_corrupt(X86_IMG_E_PHNUM, 2, 129, "129 program headers");
    expect_corrupt(X86_IMG_E_PHNUM, 2, 0xFFFF, "65535 program headers");
}

Test(x86_elf, phdr_table_outside_file)
{
    expect_corrupt(X86_IMG_E_PHOFF, 8, 0x100000, "program header table");
    expect_corrupt(X86_IMG_E_PHOFF, 8, 0xFFFFFFFFFFFFFFF0ULL, "program header table");
    expect_corrupt(X86_IMG_E_PHNUM, 2, 128, "program header table");
}

Test(x86_elf, truncated_header)
{
    size_t len;
    uint8_t *img = build(two_segs, 2, &len);
    struct x86_elf_info info;
    X86_IMG_EXPECT_ERR(load(img, 63, &info), err, "ELF header truncated");
    memset(&err, 0, sizeof(err));
    /* Cut inside the program header table. */
    X86_IMG_EXPECT_ERR(load(img, X86_IMG_PHDR(1) + 10, &info), err, "program header table");
    free(img);
}

Test(x86_elf, segment_file_range)
{
    const size_t p0 = X86_IMG_PHDR(0);
    expect_corrupt(p0 + X86_IMG_P_OFFSET, 8, 0x10000000, "lie outside the");
    expect_corrupt(p0 + X86_IMG_P_OFFSET, 8, 0xFFFFFFFFFFFFF000ULL, "lie outside the");
    expect_corrupt(p0 + X86_IMG_P_FILESZ, 8, 0x3FFF, "lie outside the");
    expect_corrupt(p0 + X86_IMG_P_FILESZ, 8, 0x5000, "exceeds memory size");
}

Test(x86_elf, segment_memory_range)
{
    const size_t p0 = X86_IMG_PHDR(0), p1 = X86_IMG_PHDR(1);
    expect_corrupt(p0 + X86_IMG_P_PADDR, 8, 0x9000, "overlaps the boot structures below 1 MiB");
    expect_corrupt(p0 + X86_IMG_P_PADDR, 8, 0, "segment 0 at 0x0 overlaps the boot structures");
    expect_corrupt(p0 + X86_IMG_P_PADDR, 8, 0xFF000, "below 1 MiB");
    expect_corrupt(p1 + X86_IMG_P_PADDR, 8, 64 * MiB - 0x100, "segment 1");
    expect_corrupt(p1 + X86_IMG_P_PADDR, 8, 128 * MiB, "not inside one guest RAM region");
    expect_corrupt(p1 + X86_IMG_P_MEMSZ, 8, 0xFFFFFFFFFFFFF000ULL, "wraps the address space");
    expect_corrupt(p1 + X86_IMG_P_MEMSZ, 8, 0xFFFFFFFFFFC00000ULL, "wraps the address space");
    expect_corrupt(p1 + X86_IMG_P_MEMSZ, 8, 62 * MiB, "not inside one guest RAM region");
}

Test(x86_elf, segments_overlap)
{
    const size_t p1 = X86_IMG_PHDR(1);
    expect_corrupt(p1 + X86_IMG_P_PADDR, 8, 2 * MiB + 0x3FFF, "segments 0 and 1 overlap");
    expect_corrupt(p1 + X86_IMG_P_PADDR, 8, 2 * MiB - 0x100, "segments 0 and 1 overlap");
    expect_corrupt(p1 + X86_IMG_P_PADDR, 8, 2 * MiB, "segments 0 and 1 overlap");
}

Test(x86_elf, adjacent_segments_ok)
{
    const struct x86_img_seg s[] = {
        {.paddr = 2 * MiB, .filesz = 0x100, .memsz = 0x1000},
        {.paddr = 2 * MiB + 0x1000, .filesz = 0x100, .memsz = 0x100},
    };
    size_t len;
    uint8_t *img = build(s, 2, &len);
    struct x86_elf_info info;
    cr_assert_eq(load(img, len, &info), 0, "%s", err.msg);
    free(img);
}

Test(x86_elf, segment_crossing_region_end)
{
    /* Adjacent regions: contiguous addresses, but two host mappings. */
    gmem_destroy(&gm);
    x86_img_gmem2(&gm, 0, 16 * MiB, 16 * MiB, 16 * MiB);
    const struct x86_img_seg s[] = {{.paddr = 16 * MiB - 0x1000, .filesz = 0x10, .memsz = 0x2000}};
    size_t len;
    uint8_t *img = build(s, 1, &len);
    struct x86_elf_info info;
    X86_IMG_EXPECT_ERR(load(img, len, &info), err, "not inside one guest RAM region");

    /* The same segment wholly inside region 1 is fine. */
    memset(&err, 0, sizeof(err));
    le64_put(img + X86_IMG_PHDR(0) + X86_IMG_P_PADDR, 16 * MiB);
    le64_put(img + X86_IMG_E_ENTRY, 16 * MiB);
    cr_assert_eq(load(img, len, &info), 0, "%s", err.msg);
    cr_assert_eq(*(uint8_t *)gmem_ptr(&gm, 16 * MiB, 1), x86_img_byte(0, 0));
    free(img);
}

Test(x86_elf, no_loadable_segment)
{
    const struct x86_img_seg s[] = {{.paddr = 2 * MiB, .filesz = 0, .memsz = 0}};
    size_t len;
    uint8_t *img = build(s, 1, &len);
    struct x86_elf_info info;
    X86_IMG_EXPECT_ERR(load(img, len, &info), err, "no loadable (PT_LOAD) segment");

    memset(&err, 0, sizeof(err));
    le32_put(img + X86_IMG_PHDR(0) + X86_IMG_P_TYPE, 6); /* PT_PHDR: ignored */
    X86_IMG_EXPECT_ERR(load(img, len, &info), err, "no loadable (PT_LOAD) segment");
    free(img);
}

Test(x86_elf, many_segments)
{
    struct x86_img_seg s[128];
    for (unsigned i = 0; i < 128; i++)
        s[i] = (struct x86_img_seg){.paddr = 2 * MiB + i * 0x1000, .filesz = 16, .memsz = 0x1000};
    size_t len;
    uint8_t *img = build(s, 128, &len);
    struct x86_elf_info info;
    cr_assert_eq(load(img, len, &info), 0, "%s", err.msg);
    cr_assert_eq(info.end, 2 * MiB + 128 * 0x1000);
    free(img);
}

Test(x86_elf, detect)
{
    cr_assert_not(x86_elf_detect((const uint8_t *)"\x7f"
                                                  "EL",
                                 3));
    cr_assert_not(x86_elf_detect((const uint8_t *)"MZ\0\0", 4));
    cr_assert(x86_elf_detect((const uint8_t *)"\x7f"
                                              "ELF",
                             4));
}
