/*
 * The arm64 Linux `Image` header (Documentation/arch/arm64/booting.rst):
 * parsed and checked here, free of KVM headers so the unit tests run on any
 * host.  The file is untrusted input: every field is bounded before use.
 */
#ifndef ARCH_AARCH64_IMAGE_H
#define ARCH_AARCH64_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"

#define A64_IMAGE_HEADER_LEN 64
#define A64_IMAGE_ALIGN      0x200000ULL /* the Image goes at a 2 MiB aligned base + text_offset */

struct a64_image {
    uint64_t text_offset; /* from the 2 MiB aligned base */
    uint64_t image_size;  /* bytes the kernel uses from its load address, bss included */
};

/*
 * Check the header of the `len`-byte file `img`: magic, little-endian,
 * text_offset (4 KiB aligned, below 2 MiB), image_size (set, at least the
 * file, at most `max_size`).  0, or -EINVAL with the reason in `err`
 * (WISP_EXIT_USAGE).
 */
int a64_image_parse(const uint8_t *img, size_t len, uint64_t max_size, struct a64_image *out,
                    struct errbuf *err) __must_check;

#endif /* ARCH_AARCH64_IMAGE_H */
