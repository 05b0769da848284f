/*
 * Regressions found by fuzzing the kernel loader (tests/fuzz/fuzz_boot_loader.c).
 * Each test names the fuzz finding it pins down; the minimised fuzz input is
 * kept in tests/fuzz/corpus/boot_loader/ under the same name.
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

TestSuite(x86_elf_regress, .init = setup, .fini = teardown);

static const struct x86_img_seg seg = {.paddr = 2 * MiB, .filesz = 0x1000, .memsz = 0x2000};

/*
 * regress-elf-empty-note-offset: a PT_NOTE with p_filesz 0 passes the
 * "inside the file" check whatever its p_offset, and the note scanner formed
 * img + p_offset before looking at the size: pointer overflow (UB, reported
 * by UBSan) for p_offset near 2^64.  An empty note segment is now skipped.
 */
Test(x86_elf_regress, empty_note_with_wild_offset)
{
    static const uint64_t offsets[] = {UINT64_MAX, UINT64_MAX - 0x40, 1ULL << 63, 0x7fffffff};
    for (size_t k = 0; k < sizeof(offsets) / sizeof(offsets[0]); k++) {
        struct x86_img_elf o = {
            .segs = &seg, .nsegs = 1, .entry = 2 * MiB, .pvh = true, .pvh_entry = 2 * MiB};
        size_t len;
        uint8_t *img = x86_img_elf_build(&o, &len);
        uint8_t *ph = img + X86_IMG_PHDR(1); /* the note's program header */
        le64_put(ph + X86_IMG_P_OFFSET, offsets[k]);
        le64_put(ph + X86_IMG_P_FILESZ, 0);

        struct x86_elf_info info;
        memset(&err, 0, sizeof(err));
        cr_assert_eq(x86_elf_load(&gm, img, len, &info, &err), 0, "%s", err.msg);
        cr_assert_not(info.has_pvh, "an empty note segment has no PVH note");
        cr_assert(info.entry_loaded);
        free(img);
    }
}
