/*
 * Test image builders and guest memory helpers for the x86_64 loader tests
 * (see x86_images.h).  Failures here are bugs in the test, so they abort
 * through Criterion's assertions instead of returning errors.
 */
#include "tests/lib/x86_images.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/util.h"

#define NOTE_SIZE(descsz) (12U + 4U + (((descsz) + 3U) & ~3U))

uint8_t x86_img_byte(unsigned seg, uint64_t off)
{
    /* Never 0, so copied bytes are distinguishable from zeroed bss. */
    return (uint8_t)(((off * 131U) + seg * 17U) % 255U + 1U);
}

static uint32_t descsz_of(const struct x86_img_elf *o)
{
    return o->pvh_descsz ? o->pvh_descsz : 8;
}

size_t x86_img_elf_note_offset(const struct x86_img_elf *o)
{
    return X86_IMG_PHDR(o->nsegs + 1);
}

static void put_phdr(uint8_t *p, uint32_t type, uint64_t off, uint64_t paddr, uint64_t filesz,
                     uint64_t memsz, uint64_t align)
{
    le32_put(p + X86_IMG_P_TYPE, type);
    le32_put(p + 4, 5); /* R+X */
    le64_put(p + X86_IMG_P_OFFSET, off);
    le64_put(p + 16, paddr | 0xffffffff80000000ULL); /* vaddr, like a vmlinux; ignored */
    le64_put(p + X86_IMG_P_PADDR, paddr);
    le64_put(p + X86_IMG_P_FILESZ, filesz);
    le64_put(p + X86_IMG_P_MEMSZ, memsz);
    le64_put(p + X86_IMG_P_ALIGN, align);
}

uint8_t *x86_img_elf_build(const struct x86_img_elf *o, size_t *len)
{
    unsigned nph = o->nsegs + (o->pvh ? 1 : 0);
    uint32_t descsz = descsz_of(o);
    size_t note_off = X86_IMG_PHDR(nph);
    size_t note_len = o->pvh ? NOTE_SIZE(descsz) : 0;
    size_t total = note_off + note_len;
    for (unsigned i = 0; i < o->nsegs; i++)
        total += o->segs[i].filesz;

    uint8_t *img = calloc(1, total);
    cr_assert_not_null(img);
    memcpy(img,
           "\x7f"
           "ELF",
           4);
    img[4] = 2;                        /* ELFCLASS64 */
    img[5] = 1;                        /* little-endian */
    img[6] = 1;                        /* EV_CURRENT */
    le16_put(img + X86_IMG_E_TYPE, 2); /* ET_EXEC */
    le16_put(img + X86_IMG_E_MACHINE, 62);
    le32_put(img + 20, 1);
    le64_put(img + X86_IMG_E_ENTRY, o->entry);
    le64_put(img + X86_IMG_E_PHOFF, X86_IMG_EHDR_SIZE);
    le16_put(img + 52, X86_IMG_EHDR_SIZE);
    le16_put(img + X86_IMG_E_PHENTSIZE, X86_IMG_PHDR_SIZE);
    le16_put(img + X86_IMG_E_PHNUM, (uint16_t)nph);

    size_t data = note_off + note_len;
    for (unsigned i = 0; i < o->nsegs; i++) {
        const struct x86_img_seg *s = &o->segs[i];
        put_phdr(img + X86_IMG_PHDR(i), 1, data, s->paddr, s->filesz, s->memsz, 0x1000);
        for (uint64_t j = 0; j < s->filesz; j++)
            img[data + j] = x86_img_byte(i, j);
        data += s->filesz;
    }
    if (o->pvh) {
        uint8_t *n = img + note_off;
        put_phdr(img + X86_IMG_PHDR(o->nsegs), 4, note_off, 0, note_len, note_len, 4);
        le32_put(n, 4);
        le32_put(n + 4, descsz);
        le32_put(n + 8, 18);
        memcpy(n + 12, "Xen", 4);
        if (descsz == 4)
            le32_put(n + 16, (uint32_t)o->pvh_entry);
        else if (descsz >= 8)
            le64_put(n + 16, o->pvh_entry);
    }
    *len = total;
    return img;
}

void x86_img_bz_defaults(struct x86_img_bz *o)
{
    memset(o, 0, sizeof(*o));
    o->setup_sects = 4;
    o->payload_len = 64 * KiB;
    o->version = 0x020F;
    o->loadflags = 0x01;
    o->xloadflags = 0x03;
    o->relocatable = 1;
    o->kernel_alignment = 0x200000;
    o->pref_address = 16 * MiB;
    o->init_size = 8 * MiB;
    o->cmdline_size = 2047;
    o->initrd_addr_max = 0x7fffffff;
    o->hdr_len = 0x66; /* header ends at 0x268, as for current kernels */
}

size_t x86_img_bz_setup_size(const struct x86_img_bz *o)
{
    return ((size_t)(o->setup_sects ? o->setup_sects : 4) + 1) * 512;
}

uint8_t *x86_img_bz_build(const struct x86_img_bz *o, size_t *len)
{
    size_t setup = x86_img_bz_setup_size(o);
    size_t total = setup + o->payload_len;
    uint8_t *img = calloc(1, total);
    cr_assert_not_null(img);

    img[0x1F1] = o->setup_sects;
    le32_put(img + 0x1F4, (uint32_t)(o->payload_len / 16));
    le16_put(img + 0x1FE, 0xAA55);
    img[0x200] = 0xEB;
    img[0x201] = o->hdr_len;
    memcpy(img + 0x202, "HdrS", 4);
    le16_put(img + 0x206, o->version);
    img[0x211] = o->loadflags;
    le32_put(img + 0x214, 0x100000);
    le32_put(img + 0x22C, o->initrd_addr_max);
    le32_put(img + 0x230, o->kernel_alignment);
    img[0x234] = o->relocatable;
    img[0x235] = 21;
    le16_put(img + 0x236, o->xloadflags);
    le32_put(img + 0x238, o->cmdline_size);
    le64_put(img + 0x258, o->pref_address);
    le32_put(img + 0x260, o->init_size);
    /* Mark bytes past the header so the copy length can be checked. */
    for (size_t i = 0x268; i < setup && i < 0x400; i++)
        img[i] = 0x5A;
    for (size_t j = 0; j < o->payload_len; j++)
        img[setup + j] = x86_img_byte(0, j);
    *len = total;
    return img;
}

void x86_img_gmem(struct gmem *gm, uint64_t size)
{
    struct gmem_range r = {0, size};
    struct errbuf err = {0};
    cr_assert_eq(gmem_create(gm, &r, 1, false, &err), 0, "gmem_create: %s", err.msg);
}

void x86_img_gmem2(struct gmem *gm, uint64_t gpa0, uint64_t size0, uint64_t gpa1, uint64_t size1)
{
    struct gmem_range r[2] = {{gpa0, size0}, {gpa1, size1}};
    struct errbuf err = {0};
    cr_assert_eq(gmem_create(gm, r, 2, false, &err), 0, "gmem_create: %s", err.msg);
}

bool x86_img_one_line(const char *msg)
{
    return msg[0] != '\0' && strchr(msg, '\n') == NULL && strchr(msg, '\r') == NULL;
}
