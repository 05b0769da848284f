/*
 * Test fixtures for the x86_64 loaders: tiny ELF64 and bzImage builders whose
 * output the tests then corrupt field by field, and guest memory helpers.
 * Everything here is test-only; the builders write the formats from the
 * offsets below, independent of the loader's own definitions, so a shared
 * mistake cannot hide itself.
 */
#ifndef TESTS_LIB_X86_IMAGES_H
#define TESTS_LIB_X86_IMAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/gmem.h"

/* ELF64 layout as the builder writes it: header, program headers, notes, data. */
#define X86_IMG_EHDR_SIZE   64U
#define X86_IMG_PHDR_SIZE   56U
#define X86_IMG_PHDR(i)     (X86_IMG_EHDR_SIZE + (i)*X86_IMG_PHDR_SIZE)
#define X86_IMG_E_TYPE      16U
#define X86_IMG_E_MACHINE   18U
#define X86_IMG_E_ENTRY     24U
#define X86_IMG_E_PHOFF     32U
#define X86_IMG_E_PHENTSIZE 54U
#define X86_IMG_E_PHNUM     56U
#define X86_IMG_P_TYPE      0U
#define X86_IMG_P_OFFSET    8U
#define X86_IMG_P_PADDR     24U
#define X86_IMG_P_FILESZ    32U
#define X86_IMG_P_MEMSZ     40U
#define X86_IMG_P_ALIGN     48U

struct x86_img_seg {
    uint64_t paddr;
    uint64_t filesz;
    uint64_t memsz;
};

struct x86_img_elf {
    const struct x86_img_seg *segs; /* PT_LOAD segments, program headers 0..nsegs-1 */
    unsigned nsegs;
    uint64_t entry;
    bool pvh; /* add a PT_NOTE (program header nsegs) with a Xen PHYS32_ENTRY note */
    uint64_t pvh_entry;
    uint32_t pvh_descsz; /* 4 or 8 (0 means 8); other values make a malformed note */
};

/*
 * Build an ELF64 x86-64 ET_EXEC image.  Segment i's file bytes are
 * x86_img_byte(i, offset).  The note (if any) is {namesz 4, descsz, 18, "Xen\0", desc}.
 * Returns a malloc'd buffer (caller frees) and its length in *len.
 */
uint8_t *x86_img_elf_build(const struct x86_img_elf *o, size_t *len);

/* File offset of the PVH note built by x86_img_elf_build (valid only with o->pvh). */
size_t x86_img_elf_note_offset(const struct x86_img_elf *o);

/* The deterministic pattern byte for segment/payload `seg` at offset `off`. */
uint8_t x86_img_byte(unsigned seg, uint64_t off);

struct x86_img_bz {
    uint8_t setup_sects; /* raw header value; 0 means 4 to the loader (and the builder) */
    size_t payload_len;
    uint16_t version;
    uint8_t loadflags;
    uint16_t xloadflags;
    uint8_t relocatable;
    uint32_t kernel_alignment;
    uint64_t pref_address;
    uint32_t init_size;
    uint32_t cmdline_size;
    uint32_t initrd_addr_max;
    uint8_t hdr_len; /* byte 0x201: the header ends at 0x202 + hdr_len */
};

/* Defaults: protocol 2.15, 4 setup sectors, 64 KiB payload, relocatable, 2 MiB alignment,
 * pref_address 16 MiB, init_size 8 MiB, cmdline_size 2047, initrd_addr_max 0x7fffffff. */
void x86_img_bz_defaults(struct x86_img_bz *o);

/* Build a bzImage; payload byte j is x86_img_byte(0, j).  malloc'd, length in *len. */
uint8_t *x86_img_bz_build(const struct x86_img_bz *o, size_t *len);

/* Byte offset of the payload in a bzImage built from `o`. */
size_t x86_img_bz_setup_size(const struct x86_img_bz *o);

/* Guest memory with one region [0, size); aborts the test on failure. */
void x86_img_gmem(struct gmem *gm, uint64_t size);

/* Guest memory with two regions. */
void x86_img_gmem2(struct gmem *gm, uint64_t gpa0, uint64_t size0, uint64_t gpa1, uint64_t size1);

/* Is `msg` a non-empty single line (what every error report must be)? */
bool x86_img_one_line(const char *msg);

/*
 * Criterion check (use from tests only) that a call failed with a usage error
 * whose one-line message contains `needle`.
 */
#define X86_IMG_EXPECT_ERR(ret, err, needle)                                                       \
    do {                                                                                           \
        cr_assert_lt((ret), 0, "expected failure, got %d", (ret));                                 \
        cr_assert(x86_img_one_line((err).msg), "not one line: '%s'", (err).msg);                   \
        cr_assert_not_null(strstr((err).msg, (needle)), "message '%s' lacks '%s'", (err).msg,      \
                           (needle));                                                              \
        cr_assert_eq((err).exit_code, WISP_EXIT_USAGE);                                            \
    } while (0)

#endif /* TESTS_LIB_X86_IMAGES_H */
