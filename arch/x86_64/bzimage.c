/*
 * bzImage loader (see bzimage.h).  Fields are read with le*_get() at the
 * protocol's byte offsets (bootparams.h): the file has no alignment
 * guarantee and a 4 KiB struct would mostly describe fields we never use.
 */
#include "arch/x86_64/bzimage.h"

#include <errno.h>
#include <string.h>

#include "arch/x86_64/bootparams.h"
#include "arch/x86_64/layout.h"

#define SECTOR_SIZE          512U
#define DEFAULT_SETUP_SECTS  4U /* setup_sects 0 means 4, for ancient kernels */
#define MIN_KERNEL_ALIGNMENT 4096U
#define FOUR_GIB             0x100000000ULL

/* The smallest setup area (1 + 1 sectors) already holds every field wisp reads. */
_Static_assert(2 * SECTOR_SIZE >= X86_HDR_END_V2_12, "header fields lie in the setup area");

bool x86_bzimage_detect(const uint8_t *img, size_t len)
{
    return len >= X86_HDR_HEADER + 4 && le16_get(img + X86_HDR_BOOT_FLAG) == X86_BOOT_FLAG_MAGIC &&
           le32_get(img + X86_HDR_HEADER) == X86_HDR_MAGIC;
}

/* Size of the real-mode part (boot sector + setup sectors) that the payload follows. */
static uint64_t setup_size(const uint8_t *img)
{
    unsigned sects = img[X86_HDR_SETUP_SECTS];
    if (sects == 0)
        sects = DEFAULT_SETUP_SECTS;
    return (uint64_t)(sects + 1) * SECTOR_SIZE;
}

static int check_header(const uint8_t *img, size_t len, struct errbuf *err)
{
    if (len < X86_HDR_VERSION + 2)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "bzImage is %zu bytes: too short for a setup header", len);
    if (le16_get(img + X86_HDR_BOOT_FLAG) != X86_BOOT_FLAG_MAGIC)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "bzImage has no boot sector signature 0xAA55 at offset 0x%x",
                       X86_HDR_BOOT_FLAG);
    if (le32_get(img + X86_HDR_HEADER) != X86_HDR_MAGIC)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "bzImage has no \"HdrS\" setup header magic at offset 0x%x", X86_HDR_HEADER);
    uint16_t version = le16_get(img + X86_HDR_VERSION);
    if (version < X86_HDR_MIN_VERSION)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "bzImage boot protocol %u.%02u is too old: need 2.12 or later for the "
                       "64-bit entry",
                       version >> 8, version & 0xff);
    uint64_t setup = setup_size(img);
    if (setup >= len)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "bzImage is truncated: its setup area is %llu bytes but the file is only "
                       "%zu bytes, leaving no kernel payload",
                       (unsigned long long)setup, len);
    /* From here on every header field lies inside the file (see the _Static_assert). */
    if (!(img[X86_HDR_LOADFLAGS] & X86_LOADED_HIGH))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "bzImage does not load high (LOADED_HIGH not set); wisp needs a kernel "
                       "that runs from 1 MiB or above");
    if (!(le16_get(img + X86_HDR_XLOADFLAGS) & X86_XLF_KERNEL_64))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "bzImage has no 64-bit entry point (XLF_KERNEL_64 not set)");
    if (len - setup <= X86_BZIMAGE_ENTRY64_OFFSET)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "bzImage payload is only %llu bytes: the 64-bit entry at +0x%x lies "
                       "beyond it",
                       (unsigned long long)(len - setup), X86_BZIMAGE_ENTRY64_OFFSET);
    return 0;
}

int x86_bzimage_check(const uint8_t *img, size_t len, struct errbuf *err)
{
    return check_header(img, len, err);
}

/* Choose the load address per relocatable_kernel, pref_address and kernel_alignment. */
static int place(const struct gmem *gm, const uint8_t *img, uint64_t need, uint64_t *addr_out,
                 struct errbuf *err)
{
    uint64_t pref = le64_get(img + X86_HDR_PREF_ADDRESS);
    uint64_t addr, end;

    if (img[X86_HDR_RELOCATABLE_KERNEL]) {
        uint32_t align = le32_get(img + X86_HDR_KERNEL_ALIGNMENT);
        if (!is_pow2(align) || align < MIN_KERNEL_ALIGNMENT)
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "bzImage kernel_alignment 0x%x is not a power of two of at least "
                           "4 KiB",
                           align);
        /* A relocatable kernel can move up, never into the boot structures below 1 MiB. */
        if (!align_up_checked(MAX(pref, X86_HIGH_MEM_START), align, &addr))
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "bzImage pref_address 0x%llx cannot be aligned to 0x%x",
                           (unsigned long long)pref, align);
    } else {
        addr = pref;
        if (addr < X86_HIGH_MEM_START)
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "bzImage is not relocatable and must load at 0x%llx, below 1 MiB "
                           "where the boot structures live",
                           (unsigned long long)addr);
    }
    bool fits = range_end(addr, need, &end) && end <= FOUR_GIB && gmem_range_ok(gm, addr, need);
    if (!fits && img[X86_HDR_RELOCATABLE_KERNEL]) {
        /* Linux's pref_address is 16 MiB; small VMs can still run it from the
         * lowest aligned address above the boot structures. */
        uint32_t align = le32_get(img + X86_HDR_KERNEL_ALIGNMENT);
        if (align_up_checked(X86_HIGH_MEM_START, align, &addr))
            fits = range_end(addr, need, &end) && end <= FOUR_GIB && gmem_range_ok(gm, addr, need);
    }
    if (!fits)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "bzImage needs %llu KiB of memory at 0x%llx (init_size or payload), which "
                       "does not fit in guest RAM of %llu MiB below 4 GiB",
                       (unsigned long long)((need + KiB - 1) / KiB), (unsigned long long)addr,
                       (unsigned long long)(gm->total / MiB));
    *addr_out = addr;
    return 0;
}

int x86_bzimage_load(const struct gmem *gm, const uint8_t *img, size_t len,
                     struct x86_bzimage_info *info, struct errbuf *err)
{
    memset(info, 0, sizeof(*info));
    int ret = check_header(img, len, err);
    if (ret < 0)
        return ret;

    const uint64_t setup = setup_size(img);
    const uint64_t payload_len = len - setup;
    /* init_size covers decompression and bss; the payload itself must fit regardless. */
    const uint64_t need = MAX((uint64_t)le32_get(img + X86_HDR_INIT_SIZE), payload_len);
    uint64_t addr = 0;
    ret = place(gm, img, need, &addr, err);
    if (ret < 0)
        return ret;

    if (gmem_write(gm, addr, img + setup, payload_len) < 0)
        return err_set(err, WISP_EXIT_USAGE, EFAULT, "bzImage payload copy failed");

    info->load_addr = addr;
    info->entry = addr + X86_BZIMAGE_ENTRY64_OFFSET;
    info->end = addr + need;
    info->payload_len = payload_len;
    info->cmdline_max = le32_get(img + X86_HDR_CMDLINE_SIZE);
    info->initrd_limit = (uint64_t)le32_get(img + X86_HDR_INITRD_ADDR_MAX) + 1;
    info->version = le16_get(img + X86_HDR_VERSION);
    return 0;
}

int x86_bzimage_fill_zero_page(const uint8_t *img, size_t len, const struct x86_bzimage_info *info,
                               uint8_t *zp)
{
    if (len < X86_HDR_END_V2_12)
        return -EINVAL;
    /* The jump's displacement byte tells how long this kernel's header is. */
    uint64_t end = (uint64_t)X86_HDR_JUMP_BASE + img[X86_HDR_JUMP_LEN_BYTE];
    end = MIN(end, setup_size(img));
    end = MIN(end, (uint64_t)len);
    end = MIN(end, (uint64_t)X86_ZERO_PAGE_SIZE);
    memcpy(zp + X86_HDR_START, img + X86_HDR_START, end - X86_HDR_START);

    zp[X86_HDR_TYPE_OF_LOADER] = X86_LOADER_TYPE_UNDEFINED;
    zp[X86_HDR_LOADFLAGS] = (uint8_t)(img[X86_HDR_LOADFLAGS] | X86_CAN_USE_HEAP);
    le16_put(zp + X86_HDR_HEAP_END_PTR, X86_HEAP_END_PTR);
    /* place() keeps the kernel below 4 GiB, so this is exact. */
    le32_put(zp + X86_HDR_CODE32_START, (uint32_t)info->load_addr);
    return 0;
}
