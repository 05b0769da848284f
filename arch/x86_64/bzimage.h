/*
 * bzImage loader: the Linux x86 boot protocol (Documentation/arch/x86/boot.rst)
 * entered through the 64-bit entry point, which needs protocol 2.12 or later
 * with XLF_KERNEL_64.  The real-mode setup code is never run: wisp copies the
 * protected-mode payload (everything after the setup sectors) into high
 * memory and hands the kernel a zero page holding a copy of the setup header.
 *
 * The whole file is untrusted: setup_sects, init_size, pref_address,
 * kernel_alignment, the header length byte and the limits are all checked.
 */
#ifndef ARCH_X86_64_BZIMAGE_H
#define ARCH_X86_64_BZIMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"
#include "vmm/gmem.h"

#define X86_BZIMAGE_ENTRY64_OFFSET 0x200U /* 64-bit entry relative to the load address */

struct x86_bzimage_info {
    uint64_t load_addr;    /* where the protected-mode payload was copied */
    uint64_t entry;        /* load_addr + X86_BZIMAGE_ENTRY64_OFFSET */
    uint64_t end;          /* load_addr + max(init_size, payload length) */
    uint64_t payload_len;  /* bytes copied */
    uint32_t cmdline_max;  /* header cmdline_size: longest command line, excluding the NUL */
    uint64_t initrd_limit; /* header initrd_addr_max + 1: the initrd must end at or below it */
    uint16_t version;      /* boot protocol version */
};

/* Boot sector flag 0xAA55 and the "HdrS" magic present?  (A format sniff.) */
bool x86_bzimage_detect(const uint8_t *img, size_t len);

/*
 * Check the setup header alone (no guest memory needed): magic, boot
 * protocol >= 2.12, LOADED_HIGH, XLF_KERNEL_64, a payload holding the
 * 64-bit entry.  Returns 0 or -EINVAL (WISP_EXIT_USAGE).
 */
int x86_bzimage_check(const uint8_t *img, size_t len, struct errbuf *err) __must_check;

/*
 * Validate a bzImage, choose its load address and copy the payload there.
 *
 * Placement: a relocatable kernel goes at max(pref_address, 1 MiB) rounded
 * up to kernel_alignment (a power of two >= 4 KiB); a non-relocatable one
 * exactly at pref_address, which must be >= 1 MiB.  Either way
 * [addr, addr + max(init_size, payload)) must lie in one RAM region below
 * 4 GiB.  Nothing is written to guest memory unless every check passes.
 *
 * @gm:   guest memory
 * @img:  the file, `len` bytes
 * @info: filled in on success
 * @err:  receives a one-line message on failure
 * Returns 0 or -EINVAL (WISP_EXIT_USAGE).
 */
int x86_bzimage_load(const struct gmem *gm, const uint8_t *img, size_t len,
                     struct x86_bzimage_info *info, struct errbuf *err) __must_check;

/*
 * Copy the setup header of an image accepted by x86_bzimage_load() into a
 * zero page buffer (bytes 0x1F1 up to 0x202 + img[0x201], bounded by the
 * setup area and the page) and set the loader-owned fields: type_of_loader
 * 0xFF, code32_start, CAN_USE_HEAP with heap_end_ptr.  The caller owns the
 * command line, ramdisk and e820 fields.
 *
 * @img, @len: the same image
 * @info:      the result of x86_bzimage_load()
 * @zp:        X86_ZERO_PAGE_SIZE bytes, already zeroed by the caller
 * Returns 0, or -EINVAL if the image is too short for a header (not validated).
 */
int x86_bzimage_fill_zero_page(const uint8_t *img, size_t len, const struct x86_bzimage_info *info,
                               uint8_t *zp) __must_check;

#endif /* ARCH_X86_64_BZIMAGE_H */
