/*
 * arm64 Image header checks (image.h).  Separate from the loader so that the
 * unit tests on an x86 host can feed it hostile headers.
 */
#include "arch/aarch64/image.h"

#include <errno.h>
#include <string.h>

#define IMAGE_MAGIC     0x644d5241U /* "ARM\x64", little-endian, at offset 56 */
#define IMAGE_FLAG_BE   0x1ULL      /* flags bit 0: big-endian kernel */
#define IMAGE_PAGE_SIZE 0x1000ULL

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int a64_image_parse(const uint8_t *img, size_t len, uint64_t max_size, struct a64_image *out,
                    struct errbuf *err)
{
    if (len < A64_IMAGE_HEADER_LEN)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "kernel: too short for an arm64 Image header (%zu bytes)", len);
    if (le32(img + 56) != IMAGE_MAGIC)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "kernel: not an arm64 Image (no \"ARM\\x64\" magic at offset 56)");
    uint64_t text_offset = le64(img + 8);
    uint64_t image_size = le64(img + 16);
    uint64_t flags = le64(img + 24);
    if (flags & IMAGE_FLAG_BE)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "kernel: big-endian arm64 Image");
    if (image_size == 0)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "kernel: arm64 Image without image_size (older than Linux 3.17)");
    if (text_offset % IMAGE_PAGE_SIZE || text_offset >= A64_IMAGE_ALIGN)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "kernel: arm64 Image text_offset 0x%llx is not a 4 KiB aligned offset "
                       "below 2 MiB",
                       (unsigned long long)text_offset);
    if (image_size < len)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "kernel: arm64 Image image_size %llu is smaller than the file (%zu bytes)",
                       (unsigned long long)image_size, len);
    /* No wrap-around: image_size comes from the file. */
    if (image_size > max_size || text_offset > max_size - image_size)
        return err_set(err, WISP_EXIT_USAGE, EFBIG,
                       "kernel: arm64 Image needs %llu bytes; guest RAM has room for %llu",
                       (unsigned long long)image_size, (unsigned long long)max_size);
    out->text_offset = text_offset;
    out->image_size = image_size;
    return 0;
}
