/*
 * In-process fuzzing of x86_boot_load(): random garbage of every length up
 * to 600 bytes and mutated valid ELF and bzImage files must either load
 * sanely or fail with a one-line message; never crash, hang or overread
 * (buffers are exactly sized so the sanitizer build catches overreads).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/boot.h"
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

TestSuite(x86_boot_fuzz, .init = setup, .fini = teardown);

static const struct x86_img_seg segs[] = {
    {.paddr = 2 * MiB, .filesz = 0x2000, .memsz = 0x10000},
    {.paddr = 4 * MiB, .filesz = 0x100, .memsz = 0x1000},
};

/* xorshift64: deterministic, so a failure reproduces. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Run one image through the loader in an exactly sized buffer (so ASan sees overreads). */
static void try_image(const uint8_t *src, size_t len, enum boot_proto proto)
{
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, src, len);
    struct x86_boot_input in = {
        .kernel = copy, .kernel_len = len, .cmdline = "console=ttyS0", .proto = proto, .nvcpus = 1};
    struct x86_boot_result r;
    memset(&err, 0, sizeof(err));
    int ret = x86_boot_load(&gm, &in, &r, &err);
    if (ret < 0) {
        cr_assert(x86_img_one_line(err.msg), "not one line: '%s'", err.msg);
    } else {
        cr_assert_geq(r.kernel_start, X86_HIGH_MEM_START);
        cr_assert(gmem_range_ok(&gm, r.entry, 1), "entry in RAM");
    }
    free(copy);
}

Test(x86_boot_fuzz, garbage_never_crashes, .timeout = 120)
{
    uint64_t s = 0x9E3779B97F4A7C15ULL;
    uint8_t buf[600];
    for (size_t len = 0; len <= sizeof(buf); len++) {
        for (unsigned variant = 0; variant < 4; variant++) {
            for (size_t i = 0; i < len; i++)
                buf[i] = (uint8_t)rnd(&s);
            /* Steer some inputs past format detection. */
            if (variant == 1 && len >= 4)
                memcpy(buf,
                       "\x7f"
                       "ELF\x02\x01\x01",
                       MIN(len, 7));
            if (variant == 2 && len >= 0x206) {
                le16_put(buf + 0x1FE, 0xAA55);
                memcpy(buf + 0x202, "HdrS", 4);
            }
            try_image(buf, len, (enum boot_proto)(variant % 3));
        }
    }
}

static void mutate_and_try(const uint8_t *img, size_t len, size_t hot, uint64_t *s)
{
    uint8_t *m = malloc(len);
    for (unsigned iter = 0; iter < 1500; iter++) {
        memcpy(m, img, len);
        unsigned flips = 1 + rnd(s) % 4;
        for (unsigned f = 0; f < flips; f++) {
            /* Mostly hit the headers, where the interesting fields are. */
            size_t pos = (rnd(s) % 4) ? rnd(s) % hot : rnd(s) % len;
            uint64_t v = rnd(s);
            switch (v % 3) {
            case 0:
                m[pos] = (uint8_t)(v >> 8);
                break;
            case 1:
                m[pos] ^= (uint8_t)(1u << ((v >> 8) % 8));
                break;
            default:
                if (pos + 8 <= len)
                    le64_put(m + pos, (v >> 3) % 2 ? UINT64_MAX - (v >> 40) : v >> 20);
            }
        }
        size_t cut = (rnd(s) % 8 == 0) ? rnd(s) % (len + 1) : len;
        try_image(m, cut, (enum boot_proto)(iter % 3));
    }
    free(m);
}

Test(x86_boot_fuzz, mutated_images_never_crash, .timeout = 240)
{
    uint64_t s = 12345;
    size_t len;
    struct x86_img_elf eo = {
        .segs = segs, .nsegs = 2, .entry = 2 * MiB + 0x200, .pvh = true, .pvh_entry = 2 * MiB};
    uint8_t *img = x86_img_elf_build(&eo, &len);
    mutate_and_try(img, len, X86_IMG_PHDR(3) + 24, &s);
    free(img);

    struct x86_img_bz o;
    x86_img_bz_defaults(&o);
    o.payload_len = 4096;
    img = x86_img_bz_build(&o, &len);
    mutate_and_try(img, len, 0x300, &s);
    free(img);
}
