/*
 * x86_boot_load() tests: format detection, protocol choice, command line and
 * initrd placement, the zero page and PVH start info contents, the BIOS data
 * area words.  Garbage and mutated images are in test_boot_fuzz.c.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/boot.h"
#include "arch/x86_64/bootparams.h"
#include "arch/x86_64/layout.h"
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

TestSuite(x86_boot, .init = setup, .fini = teardown);

static const struct x86_img_seg segs[] = {
    {.paddr = 2 * MiB, .filesz = 0x2000, .memsz = 0x10000},
    {.paddr = 4 * MiB, .filesz = 0x100, .memsz = 0x1000},
};

static uint8_t *elf_image(bool pvh, size_t *len)
{
    struct x86_img_elf o = {
        .segs = segs, .nsegs = 2, .entry = 2 * MiB + 0x200, .pvh = pvh, .pvh_entry = 2 * MiB};
    return x86_img_elf_build(&o, len);
}

static struct x86_boot_input input(const uint8_t *k, size_t len, const char *cmdline)
{
    return (struct x86_boot_input){
        .kernel = k, .kernel_len = len, .cmdline = cmdline, .proto = BOOT_AUTO, .nvcpus = 1};
}

static int boot(const struct x86_boot_input *in, struct x86_boot_result *res)
{
    memset(&err, 0, sizeof(err));
    memset(res, 0xCC, sizeof(*res));
    return x86_boot_load(&gm, in, res, &err);
}

static const uint8_t *zero_page(void)
{
    return gmem_ptr(&gm, X86_ZERO_PAGE_GPA, X86_ZERO_PAGE_SIZE);
}

static void check_zp_e820(const uint8_t *zp, uint64_t ram_end)
{
    const uint8_t *t = zp + X86_BP_E820_TABLE;
    cr_assert_eq(zp[X86_BP_E820_ENTRIES], 3);
    cr_assert_eq(le64_get(t), 0);
    cr_assert_eq(le64_get(t + 8), X86_EBDA_GPA);
    cr_assert_eq(le32_get(t + 16), X86_E820_RAM);
    cr_assert_eq(le64_get(t + 20), X86_EBDA_GPA);
    cr_assert_eq(le32_get(t + 36), X86_E820_RESERVED);
    cr_assert_eq(le64_get(t + 40), 1 * MiB);
    cr_assert_eq(le64_get(t + 48), ram_end - 1 * MiB);
    cr_assert_eq(le32_get(t + 56), X86_E820_RAM);
    cr_assert_eq(le64_get(t + 60), 0, "nothing after the last entry");
}

static void check_low_tables(void)
{
    uint16_t seg, kib;
    cr_assert_eq(gmem_read(&gm, X86_BDA_EBDA_SEG, &seg, 2), 0);
    cr_assert_eq(gmem_read(&gm, X86_BDA_BASEMEM_KIB, &kib, 2), 0);
    cr_assert_eq(seg, X86_EBDA_GPA >> 4);
    cr_assert_eq(kib, 639);
    cr_assert_eq(memcmp(gmem_ptr(&gm, X86_EBDA_GPA, 4), "_MP_", 4), 0);
    cr_assert_eq(memcmp(gmem_ptr(&gm, X86_MPTABLE_GPA, 4), "PCMP", 4), 0);
}

Test(x86_boot, elf_linux64_zero_page)
{
    size_t len;
    uint8_t *img = elf_image(false, &len);
    struct x86_boot_input in = input(img, len, "console=ttyS0 quiet");
    struct x86_boot_result r;
    memset(gmem_ptr(&gm, X86_ZERO_PAGE_GPA, 4096), 0x77, 4096);
    memset(gmem_ptr(&gm, X86_CMDLINE_GPA, X86_CMDLINE_AREA), 0x77, X86_CMDLINE_AREA);

    cr_assert_eq(boot(&in, &r), 0, "%s", err.msg);
    cr_assert_str_eq(r.format, "elf");
    cr_assert_eq(r.mode, X86_ENTRY_LINUX64);
    cr_assert_eq(r.entry, 2 * MiB + 0x200);
    cr_assert_eq(r.boot_info, X86_ZERO_PAGE_GPA);
    cr_assert_eq(r.kernel_start, 2 * MiB);
    cr_assert_eq(r.kernel_end, 4 * MiB + 0x1000);
    cr_assert_eq(r.initrd_gpa, 0);
    cr_assert_eq(r.initrd_size, 0);
    cr_assert_eq(r.cmdline_gpa, X86_CMDLINE_GPA);
    cr_assert_eq(r.cmdline_size, strlen("console=ttyS0 quiet") + 1);
    cr_assert_str_eq((const char *)gmem_ptr(&gm, X86_CMDLINE_GPA, 32), "console=ttyS0 quiet");
    cr_assert_eq(*(uint8_t *)gmem_ptr(&gm, X86_CMDLINE_GPA + 100, 1), 0, "area cleared");

    const uint8_t *zp = zero_page();
    cr_assert_eq(zp[0], 0, "zero page cleared");
    cr_assert_eq(zp[4095], 0);
    cr_assert_eq(zp[X86_HDR_SETUP_SECTS], 0);
    cr_assert_eq(le16_get(zp + X86_HDR_BOOT_FLAG), 0xAA55);
    cr_assert_eq(le32_get(zp + X86_HDR_HEADER), 0x53726448);
    cr_assert_eq(le16_get(zp + X86_HDR_VERSION), 0x020F);
    cr_assert_eq(zp[X86_HDR_TYPE_OF_LOADER], 0xFF);
    cr_assert_eq(zp[X86_HDR_LOADFLAGS], X86_LOADED_HIGH);
    cr_assert_eq(le32_get(zp + X86_HDR_KERNEL_ALIGNMENT), 0x200000);
    cr_assert_eq(le32_get(zp + X86_HDR_CMDLINE_SIZE), 2047);
    cr_assert_eq(le32_get(zp + X86_HDR_CMD_LINE_PTR), X86_CMDLINE_GPA);
    cr_assert_eq(le32_get(zp + X86_BP_EXT_CMD_LINE_PTR), 0);
    cr_assert_eq(le32_get(zp + X86_HDR_RAMDISK_IMAGE), 0);
    cr_assert_eq(le32_get(zp + X86_HDR_RAMDISK_SIZE), 0);
    check_zp_e820(zp, 64 * MiB);
    check_low_tables();
    free(img);
}

Test(x86_boot, elf_pvh_start_info)
{
    size_t len;
    uint8_t *img = elf_image(true, &len);
    static uint8_t initrd[5000];
    for (size_t i = 0; i < sizeof(initrd); i++)
        initrd[i] = (uint8_t)(i * 7 + 3);
    struct x86_boot_input in = input(img, len, "root=/dev/vda");
    in.initrd = initrd;
    in.initrd_len = sizeof(initrd);
    in.nvcpus = 4;
    struct x86_boot_result r;
    memset(gmem_ptr(&gm, X86_PVH_INFO_GPA, X86_PVH_INFO_MAX), 0x77, X86_PVH_INFO_MAX);

    cr_assert_eq(boot(&in, &r), 0, "%s", err.msg);
    cr_assert_eq(r.mode, X86_ENTRY_PVH);
    cr_assert_eq(r.entry, 2 * MiB);
    cr_assert_eq(r.boot_info, X86_PVH_INFO_GPA);

    struct x86_pvh_start_info si;
    cr_assert_eq(gmem_read(&gm, X86_PVH_INFO_GPA, &si, sizeof(si)), 0);
    cr_assert_eq(si.magic, 0x336ec578);
    cr_assert_eq(si.version, 1);
    cr_assert_eq(si.flags, 0);
    cr_assert_eq(si.cmdline_paddr, X86_CMDLINE_GPA);
    cr_assert_eq(si.rsdp_paddr, 0);
    cr_assert_eq(si.memmap_entries, 3);
    cr_assert_eq(si.nr_modules, 1);
    cr_assert_eq(si.reserved, 0);
    cr_assert_gt(si.memmap_paddr, X86_PVH_INFO_GPA);
    cr_assert_gt(si.modlist_paddr, si.memmap_paddr);
    cr_assert_leq(si.modlist_paddr + 32, X86_PVH_INFO_GPA + X86_PVH_INFO_MAX);
    cr_assert_eq(si.memmap_paddr % 8, 0);
    cr_assert_eq(si.modlist_paddr % 8, 0);

    struct x86_pvh_memmap_entry mm[3];
    cr_assert_eq(gmem_read(&gm, si.memmap_paddr, mm, sizeof(mm)), 0);
    cr_assert_eq(mm[0].addr, 0);
    cr_assert_eq(mm[0].size, X86_EBDA_GPA);
    cr_assert_eq(mm[0].type, X86_E820_RAM);
    cr_assert_eq(mm[1].type, X86_E820_RESERVED);
    cr_assert_eq(mm[2].addr, 1 * MiB);
    cr_assert_eq(mm[2].size, 63 * MiB);
    cr_assert_eq(mm[2].reserved, 0);

    struct x86_pvh_module mod;
    cr_assert_eq(gmem_read(&gm, si.modlist_paddr, &mod, sizeof(mod)), 0);
    cr_assert_eq(mod.paddr, r.initrd_gpa);
    cr_assert_eq(mod.size, sizeof(initrd));
    cr_assert_eq(mod.cmdline_paddr, 0);
    cr_assert_eq(mod.reserved, 0);
    cr_assert_eq(memcmp(gmem_ptr(&gm, r.initrd_gpa, sizeof(initrd)), initrd, sizeof(initrd)), 0);
    cr_assert_eq(r.initrd_gpa, 64 * MiB - 2 * PAGE_SIZE, "highest page-aligned spot");
    check_low_tables();
    free(img);
}

Test(x86_boot, elf_pvh_without_initrd_has_no_modules)
{
    size_t len;
    uint8_t *img = elf_image(true, &len);
    struct x86_boot_input in = input(img, len, "");
    struct x86_boot_result r;
    cr_assert_eq(boot(&in, &r), 0, "%s", err.msg);
    struct x86_pvh_start_info si;
    cr_assert_eq(gmem_read(&gm, X86_PVH_INFO_GPA, &si, sizeof(si)), 0);
    cr_assert_eq(si.nr_modules, 0);
    cr_assert_eq(si.modlist_paddr, 0);
    cr_assert_eq(r.cmdline_size, 1);
    free(img);
}

Test(x86_boot, protocol_choice)
{
    size_t len;
    uint8_t *img = elf_image(true, &len);
    struct x86_boot_input in = input(img, len, "");
    struct x86_boot_result r;

    in.proto = BOOT_LINUX64;
    cr_assert_eq(boot(&in, &r), 0, "%s", err.msg);
    cr_assert_eq(r.mode, X86_ENTRY_LINUX64);
    cr_assert_eq(r.entry, 2 * MiB + 0x200);
    cr_assert_eq(r.boot_info, X86_ZERO_PAGE_GPA);

    in.proto = BOOT_PVH;
    cr_assert_eq(boot(&in, &r), 0, "%s", err.msg);
    cr_assert_eq(r.mode, X86_ENTRY_PVH);
    free(img);

    img = elf_image(false, &len);
    in = input(img, len, "");
    in.proto = BOOT_PVH;
    X86_IMG_EXPECT_ERR(boot(&in, &r), err, "boot protocol pvh needs a PVH entry note");

    in.proto = (enum boot_proto)7;
    X86_IMG_EXPECT_ERR(boot(&in, &r), err, "unknown boot protocol 7");

    /* Linux64 needs e_entry to be real code. */
    le64_put(img + X86_IMG_E_ENTRY, 8 * MiB);
    in.proto = BOOT_AUTO;
    X86_IMG_EXPECT_ERR(boot(&in, &r), err, "ELF entry point 0x800000 is not inside");
    free(img);
}

Test(x86_boot, bzimage_zero_page)
{
    struct x86_img_bz o;
    x86_img_bz_defaults(&o);
    size_t len;
    uint8_t *img = x86_img_bz_build(&o, &len);
    static uint8_t initrd[3 * 4096 + 1];
    memset(initrd, 0x42, sizeof(initrd));
    struct x86_boot_input in = input(img, len, "console=ttyS0");
    in.initrd = initrd;
    in.initrd_len = sizeof(initrd);
    struct x86_boot_result r;

    cr_assert_eq(boot(&in, &r), 0, "%s", err.msg);
    cr_assert_str_eq(r.format, "bzimage");
    cr_assert_eq(r.mode, X86_ENTRY_LINUX64);
    cr_assert_eq(r.entry, 16 * MiB + 0x200);
    cr_assert_eq(r.kernel_start, 16 * MiB);
    cr_assert_eq(r.kernel_end, 24 * MiB);
    cr_assert_eq(r.boot_info, X86_ZERO_PAGE_GPA);

    const uint8_t *zp = zero_page();
    cr_assert_eq(le16_get(zp + X86_HDR_VERSION), 0x020F);
    cr_assert_eq(zp[X86_HDR_TYPE_OF_LOADER], 0xFF);
    cr_assert_eq(le32_get(zp + X86_HDR_CODE32_START), 16 * MiB);
    cr_assert_eq(le32_get(zp + X86_HDR_INIT_SIZE), 8 * MiB, "copied from the file");
    cr_assert_eq(le32_get(zp + X86_HDR_CMD_LINE_PTR), X86_CMDLINE_GPA);
    cr_assert_eq(le32_get(zp + X86_HDR_RAMDISK_IMAGE), r.initrd_gpa);
    cr_assert_eq(le32_get(zp + X86_HDR_RAMDISK_SIZE), sizeof(initrd));
    cr_assert_eq(le32_get(zp + X86_BP_EXT_RAMDISK_IMAGE), 0);
    cr_assert_eq(le32_get(zp + X86_BP_EXT_RAMDISK_SIZE), 0);
    check_zp_e820(zp, 64 * MiB);
    cr_assert_eq(r.initrd_gpa, 64 * MiB - 4 * PAGE_SIZE);
    cr_assert_eq(memcmp(gmem_ptr(&gm, r.initrd_gpa, sizeof(initrd)), initrd, sizeof(initrd)), 0);
    check_low_tables();

    in.proto = BOOT_PVH;
    X86_IMG_EXPECT_ERR(boot(&in, &r), err, "a bzImage boots only with the linux64 protocol");
    free(img);
}

Test(x86_boot, initrd_below_initrd_addr_max)
{
    struct x86_img_bz o;
    x86_img_bz_defaults(&o);
    o.initrd_addr_max = 32 * MiB - 1;
    size_t len;
    uint8_t *img = x86_img_bz_build(&o, &len);
    uint8_t *initrd = malloc(MiB + 123);
    for (size_t i = 0; i < MiB + 123; i++)
        initrd[i] = (uint8_t)(i ^ (i >> 8));
    struct x86_boot_input in = input(img, len, "");
    in.initrd = initrd;
    in.initrd_len = MiB + 123;
    struct x86_boot_result r;

    cr_assert_eq(boot(&in, &r), 0, "%s", err.msg);
    cr_assert_eq(r.initrd_gpa % PAGE_SIZE, 0);
    cr_assert_leq(r.initrd_gpa + r.initrd_size, 32 * MiB);
    cr_assert_gt(r.initrd_gpa + r.initrd_size, 32 * MiB - PAGE_SIZE, "as high as allowed");
    cr_assert_geq(r.initrd_gpa, r.kernel_end);
    cr_assert_eq(memcmp(gmem_ptr(&gm, r.initrd_gpa, MiB + 123), initrd, MiB + 123), 0);

    /* The limit now falls below the kernel end: no room. */
    free(img);
    o.initrd_addr_max = 20 * MiB - 1;
    img = x86_img_bz_build(&o, &len);
    in.kernel = img;
    X86_IMG_EXPECT_ERR(boot(&in, &r), err,
                       "initrd (2 MiB) does not fit in guest memory between the kernel end "
                       "0x1800000 and 0x1400000");
    free(img);
    free(initrd);
}

Test(x86_boot, initrd_too_large)
{
    size_t len;
    uint8_t *img = elf_image(false, &len);
    size_t big = 65 * MiB;
    uint8_t *initrd = calloc(1, big); /* untouched pages cost nothing */
    struct x86_boot_input in = input(img, len, "");
    in.initrd = initrd;
    in.initrd_len = big;
    struct x86_boot_result r;
    X86_IMG_EXPECT_ERR(boot(&in, &r), err, "initrd is 65 MiB but guest RAM is only 64 MiB");

    /* Smaller than RAM but larger than the room above the kernel. */
    in.initrd_len = 62 * MiB;
    X86_IMG_EXPECT_ERR(boot(&in, &r), err,
                       "initrd (62 MiB) does not fit in guest memory between the kernel end "
                       "0x401000 and 0x4000000");

    uint8_t empty = 0;
    in.initrd = &empty;
    in.initrd_len = 0;
    X86_IMG_EXPECT_ERR(boot(&in, &r), err, "initrd is empty");
    free(initrd);
    free(img);
}

Test(x86_boot, cmdline_limits)
{
    char *line = malloc(70000);
    size_t len;
    uint8_t *img = elf_image(false, &len);
    struct x86_boot_input in = input(img, len, line);
    struct x86_boot_result r;

    memset(line, 'a', 2047);
    line[2047] = '\0';
    cr_assert_eq(boot(&in, &r), 0, "%s", err.msg);
    cr_assert_eq(r.cmdline_size, 2048);
    cr_assert_eq(*(char *)gmem_ptr(&gm, X86_CMDLINE_GPA + 2047, 1), '\0');
    memset(line, 'a', 2048);
    line[2048] = '\0';
    X86_IMG_EXPECT_ERR(boot(&in, &r), err,
                       "kernel command line is 2048 bytes; this kernel accepts at most 2047");
    free(img);

    struct x86_img_bz o;
    x86_img_bz_defaults(&o);
    o.cmdline_size = 100;
    img = x86_img_bz_build(&o, &len);
    in = input(img, len, line);
    memset(line, 'b', 100);
    line[100] = '\0';
    cr_assert_eq(boot(&in, &r), 0, "%s", err.msg);
    cr_assert_eq(r.cmdline_size, 101);
    line[100] = 'b';
    line[101] = '\0';
    X86_IMG_EXPECT_ERR(boot(&in, &r), err,
                       "kernel command line is 101 bytes; this kernel accepts at most 100");
    free(img);

    /* A kernel claiming a huge limit is held to the command line area. */
    o.cmdline_size = 0xFFFFFFFF;
    img = x86_img_bz_build(&o, &len);
    in.kernel = img;
    memset(line, 'c', 65535);
    line[65535] = '\0';
    cr_assert_eq(boot(&in, &r), 0, "%s", err.msg);
    line[65535] = 'c';
    line[65536] = '\0';
    X86_IMG_EXPECT_ERR(boot(&in, &r), err, "accepts at most 65535");
    free(img);
    free(line);
}

Test(x86_boot, two_regions)
{
    gmem_destroy(&gm);
    x86_img_gmem2(&gm, 0, 3 * GiB, 4 * GiB, 512 * MiB);
    size_t len;
    uint8_t *img = elf_image(false, &len);
    static uint8_t initrd[100];
    struct x86_boot_input in = input(img, len, "x");
    in.initrd = initrd;
    in.initrd_len = sizeof(initrd);
    struct x86_boot_result r;
    cr_assert_eq(boot(&in, &r), 0, "%s", err.msg);
    cr_assert_eq(r.initrd_gpa, 3 * GiB - PAGE_SIZE);
    const uint8_t *zp = zero_page();
    cr_assert_eq(zp[X86_BP_E820_ENTRIES], 4);
    const uint8_t *e3 = zp + X86_BP_E820_TABLE + 3 * 20;
    cr_assert_eq(le64_get(e3), 4 * GiB);
    cr_assert_eq(le64_get(e3 + 8), 512 * MiB);
    cr_assert_eq(le32_get(e3 + 16), X86_E820_RAM);
    free(img);
}

Test(x86_boot, format_errors)
{
    struct x86_boot_input in = input(NULL, 0, "");
    struct x86_boot_result r;
    X86_IMG_EXPECT_ERR(boot(&in, &r), err, "kernel image is empty");

    uint8_t buf[1024];
    memset(buf, 0x90, sizeof(buf));
    in = input(buf, 3, "");
    X86_IMG_EXPECT_ERR(boot(&in, &r), err, "kernel image is only 3 bytes");
    in.kernel_len = 300;
    X86_IMG_EXPECT_ERR(boot(&in, &r), err, "too short for an ELF64 vmlinux or a bzImage");
    in.kernel_len = sizeof(buf);
    X86_IMG_EXPECT_ERR(boot(&in, &r), err,
                       "kernel image is neither an ELF64 vmlinux nor a bzImage");
    le16_put(buf + 0x1FE, 0xAA55);
    X86_IMG_EXPECT_ERR(boot(&in, &r), err, "boot sector but no \"HdrS\"");
    memcpy(buf,
           "\x7f"
           "ELF",
           4);
    in.kernel_len = 20;
    X86_IMG_EXPECT_ERR(boot(&in, &r), err, "ELF header truncated");
    memcpy(buf + 0x202, "HdrS", 4);
    memcpy(buf, "MZ\0\0", 4);
    in.kernel_len = 0x207;
    X86_IMG_EXPECT_ERR(boot(&in, &r), err, "bzImage is 519 bytes: too short");

    struct x86_boot_input bad = input(buf, sizeof(buf), NULL);
    X86_IMG_EXPECT_ERR(boot(&bad, &r), err, "missing a buffer");
}

Test(x86_boot, bad_vcpus_and_memory)
{
    size_t len;
    uint8_t *img = elf_image(false, &len);
    struct x86_boot_input in = input(img, len, "");
    struct x86_boot_result r;
    in.nvcpus = 0;
    X86_IMG_EXPECT_ERR(boot(&in, &r), err, "0 vCPUs");
    in.nvcpus = 255;
    X86_IMG_EXPECT_ERR(boot(&in, &r), err, "255 vCPUs");

    gmem_destroy(&gm);
    x86_img_gmem2(&gm, 1 * MiB, 64 * MiB, 4 * GiB, 64 * MiB);
    in.nvcpus = 1;
    X86_IMG_EXPECT_ERR(boot(&in, &r), err, "must start at address 0");
    free(img);
}
