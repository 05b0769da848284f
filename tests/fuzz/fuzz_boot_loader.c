/*
 * Fuzz target: x86_boot_load() over arbitrary kernel images, initrds and
 * command lines (ELF64 with PVH notes, bzImage, garbage).
 *
 * Why: the kernel image is the first untrusted input the VMM parses, before
 * any sandbox exists (security.md I, "kernel_loader").  Input layout (see
 * fuzz.h): an 8-byte header choosing the protocol, vCPU count and the sizes
 * of the command line and initrd slices, then those slices, then the kernel.
 * Each slice is copied into an exactly sized heap buffer so ASan sees any
 * overread.  Guest memory is a small memfd-backed gmem with a hole: 16 MiB at
 * 0 and 2 MiB at 4 GiB, created once and reused.
 *
 * Checked on success: entry point in RAM, kernel above 1 MiB, protocol
 * choice respected, command line and initrd present in guest memory
 * byte-for-byte, initrd above the kernel and page aligned, the zero page
 * pointing at them.  On failure: a one-line WISP_EXIT_USAGE error.
 */
#include "tests/fuzz/fuzz.h"

#include "arch/x86_64/boot.h"
#include "arch/x86_64/bootparams.h"
#include "arch/x86_64/layout.h"
#include "vmm/gmem.h"
#include "vmm/log.h"

#define FZ_RAM_LOW  (16 * MiB)
#define FZ_RAM_HIGH (2 * MiB)

static struct gmem fz_gm;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    struct gmem_range r[2] = {{0, FZ_RAM_LOW}, {4 * GiB, FZ_RAM_HIGH}};
    struct errbuf err = {0};
    if (gmem_create(&fz_gm, r, 2, false, &err) < 0) {
        fprintf(stderr, "fuzz_boot_loader: gmem_create: %s\n", err.msg);
        abort();
    }
    return 0;
}

/* Compare guest memory at gpa with a host buffer. */
static bool fz_guest_equals(gpa_t gpa, const void *p, size_t len)
{
    const void *g = gmem_ptr(&fz_gm, gpa, len);
    return g && memcmp(g, p, len) == 0;
}

static void fz_check_success(const struct x86_boot_input *in, const struct x86_boot_result *r)
{
    FZ_CHECK(r->format && (!strcmp(r->format, "elf") || !strcmp(r->format, "bzimage")), "format");
    FZ_CHECK(gmem_range_ok(&fz_gm, r->entry, 1), "entry 0x%llx not in RAM",
             (unsigned long long)r->entry);
    FZ_CHECK(r->kernel_start >= X86_HIGH_MEM_START, "kernel at 0x%llx overlaps the boot area",
             (unsigned long long)r->kernel_start);
    FZ_CHECK(r->kernel_end >= r->kernel_start, "kernel end below start");
    if (in->proto == BOOT_PVH)
        FZ_CHECK(r->mode == X86_ENTRY_PVH, "pvh requested, got another entry mode");
    if (r->mode == X86_ENTRY_PVH) {
        FZ_CHECK(in->proto != BOOT_LINUX64 && !strcmp(r->format, "elf"), "unexpected PVH entry");
        FZ_CHECK(r->entry < 4 * GiB, "PVH entry above 4 GiB");
        FZ_CHECK(r->boot_info == X86_PVH_INFO_GPA, "PVH start info address");
    } else {
        FZ_CHECK(r->boot_info == X86_ZERO_PAGE_GPA, "zero page address");
    }

    size_t clen = strlen(in->cmdline);
    FZ_CHECK(r->cmdline_size == clen + 1, "cmdline size %u for %zu bytes", r->cmdline_size, clen);
    FZ_CHECK(fz_guest_equals(r->cmdline_gpa, in->cmdline, clen + 1), "cmdline not in guest RAM");

    if (in->initrd_len) {
        FZ_CHECK(r->initrd_size == in->initrd_len, "initrd size");
        FZ_CHECK(r->initrd_gpa % PAGE_SIZE == 0, "initrd not page aligned");
        FZ_CHECK(r->initrd_gpa >= r->kernel_end, "initrd at 0x%llx below kernel end 0x%llx",
                 (unsigned long long)r->initrd_gpa, (unsigned long long)r->kernel_end);
        FZ_CHECK(fz_guest_equals(r->initrd_gpa, in->initrd, in->initrd_len),
                 "initrd not in guest RAM");
    } else {
        FZ_CHECK(r->initrd_gpa == 0 && r->initrd_size == 0, "initrd without input");
    }

    if (r->mode == X86_ENTRY_LINUX64) {
        const uint8_t *zp = gmem_ptr(&fz_gm, X86_ZERO_PAGE_GPA, X86_ZERO_PAGE_SIZE);
        FZ_CHECK(zp, "zero page not in RAM");
        FZ_CHECK(le32_get(zp + X86_HDR_CMD_LINE_PTR) == r->cmdline_gpa, "zero page cmdline");
        FZ_CHECK(le32_get(zp + X86_HDR_RAMDISK_IMAGE) == (uint32_t)r->initrd_gpa,
                 "zero page initrd");
        FZ_CHECK(le32_get(zp + X86_HDR_RAMDISK_SIZE) == (uint32_t)r->initrd_size,
                 "zero page initrd size");
    }
}

static void fz_boot_one(const struct x86_boot_input *in)
{
    struct x86_boot_result r;
    struct errbuf err;
    memset(&r, 0, sizeof(r));
    memset(&err, 0, sizeof(err));
    int ret = x86_boot_load(&fz_gm, in, &r, &err);
    if (ret < 0) {
        FZ_CHECK(fz_one_line(&err), "error is not one line: '%s'", err.msg);
        FZ_CHECK(err.exit_code == WISP_EXIT_USAGE, "exit code %d for '%s'", err.exit_code, err.msg);
        return;
    }
    FZ_CHECK(ret == 0 && !err_isset(&err), "success with an error: '%s'", err.msg);
    fz_check_success(in, &r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in;
    size_t got;
    fz_init(&in, data, size);

    unsigned flags = fz_u8(&in);
    unsigned nvcpus = fz_u8(&in);
    size_t clen = fz_u16(&in);
    size_t ilen = fz_u32(&in);

    const uint8_t *c = fz_take(&in, clen, &got);
    char *cmdline = malloc(got + 1);
    memcpy(cmdline, c, got);
    cmdline[got] = '\0';

    const uint8_t *i = fz_take(&in, ilen, &got);
    uint8_t *initrd = NULL;
    if (flags & FZ_BOOT_INITRD) {
        initrd = malloc(got ? got : 1);
        memcpy(initrd, i, got);
    }

    /* The kernel is the tail of the fuzz buffer, which libFuzzer sizes exactly. */
    struct x86_boot_input bin = {
        .kernel = fz_left(&in) ? data + in.pos : NULL,
        .kernel_len = fz_left(&in),
        .initrd = initrd,
        .initrd_len = initrd ? got : 0,
        .cmdline = cmdline,
        .nvcpus = nvcpus,
    };
    unsigned proto = flags & 3;
    for (unsigned p = 0; p < 3; p++) {
        if (proto != FZ_BOOT_ALL_PROTOS && p != proto)
            continue;
        bin.proto = (enum boot_proto)p;
        fz_boot_one(&bin);
    }
    free(initrd);
    free(cmdline);
    return 0;
}
