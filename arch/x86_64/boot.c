/*
 * x86_boot_load() (see boot.h): the one entry point that turns a kernel
 * image, an initrd and a command line into a bootable guest memory image.
 * Format detection, protocol choice, command line and initrd placement and
 * the boot information structures live here; the format parsers (elf.c,
 * bzimage.c) and the firmware-like pieces (e820.c, mptable.c, reset_vector.c) are separate
 * so each can be tested and fuzzed on its own.
 */
#include "arch/x86_64/boot.h"

#include <errno.h>
#include <string.h>

#include "arch/x86_64/bootparams.h"
#include "arch/x86_64/bzimage.h"
#include "arch/x86_64/e820.h"
#include "arch/x86_64/elf.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"
#include "arch/x86_64/reset_vector.h"

#define FOUR_GIB 0x100000000ULL
/* What a synthesized (ELF boot) setup header tells the kernel. */
#define ELF_HDR_KERNEL_ALIGNMENT 0x200000U
#define ELF_HDR_CMDLINE_SIZE     (X86_CMDLINE_MAX_DEFAULT - 1)

/* PVH area: start info, then the memory map, then the module list, all 8-byte aligned. */
#define PVH_MEMMAP_GPA (X86_PVH_INFO_GPA + sizeof(struct x86_pvh_start_info))
#define PVH_MODLIST_GPA                                                                            \
    (PVH_MEMMAP_GPA + X86_E820_MAX_ENTRIES * sizeof(struct x86_pvh_memmap_entry))
_Static_assert(sizeof(struct x86_pvh_start_info) % 8 == 0, "memmap stays 8-byte aligned");
_Static_assert(sizeof(struct x86_pvh_memmap_entry) % 8 == 0, "modlist stays 8-byte aligned");
_Static_assert(PVH_MODLIST_GPA + sizeof(struct x86_pvh_module) <=
                   X86_PVH_INFO_GPA + X86_PVH_INFO_MAX,
               "PVH start info, memory map and module list fit their area");
_Static_assert(X86_E820_MAX_ENTRIES <= X86_BP_E820_MAX, "e820 map fits the zero page");
_Static_assert(X86_CMDLINE_MAX_DEFAULT <= X86_CMDLINE_AREA, "default command line fits");
_Static_assert(X86_CMDLINE_GPA + X86_CMDLINE_AREA <= X86_EBDA_GPA, "command line below the EBDA");

/* What the format-specific loaders tell the common code. */
struct kernel {
    bool bzimage;
    struct x86_bzimage_info bz;
    enum x86_entry_mode mode;
    uint64_t entry;
    uint64_t start, end;
    uint32_t cmdline_max;  /* longest command line, excluding the NUL */
    uint64_t initrd_limit; /* the initrd must end at or below this */
};

static unsigned long long mib_up(uint64_t bytes)
{
    return (unsigned long long)(bytes / MiB + (bytes % MiB != 0));
}

/* Name the format problem precisely: "not a kernel" has many causes. */
static int unknown_format(const uint8_t *img, size_t len, struct errbuf *err)
{
    if (len == 0)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "kernel image is empty");
    if (len >= X86_HDR_BOOT_FLAG + 2 && le16_get(img + X86_HDR_BOOT_FLAG) == X86_BOOT_FLAG_MAGIC)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "kernel image has a boot sector but no \"HdrS\" setup header: not a "
                       "bzImage with boot protocol 2.00 or later");
    if (len < X86_HDR_HEADER + 4)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "kernel image is only %zu bytes: too short for an ELF64 vmlinux or a "
                       "bzImage",
                       len);
    return err_set(err, WISP_EXIT_USAGE, EINVAL,
                   "kernel image is neither an ELF64 vmlinux nor a bzImage");
}

int x86_boot_probe(const uint8_t *img, size_t len, struct errbuf *err)
{
    if (len && x86_elf_detect(img, len))
        return x86_elf_check(img, len, err);
    if (len && x86_bzimage_detect(img, len))
        return x86_bzimage_check(img, len, err);
    return unknown_format(img, len, err);
}

static int load_elf(const struct gmem *gm, const struct x86_boot_input *in, struct kernel *k,
                    struct errbuf *err)
{
    struct x86_elf_info info;
    int ret = x86_elf_load(gm, in->kernel, in->kernel_len, &info, err);
    if (ret < 0)
        return ret;

    if (in->proto == BOOT_PVH && !info.has_pvh)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "boot protocol pvh needs a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); "
                       "this ELF image has none");
    if (info.has_pvh && in->proto != BOOT_LINUX64) {
        k->mode = X86_ENTRY_PVH;
        k->entry = info.pvh_entry;
    } else {
        if (!info.entry_loaded)
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "ELF entry point 0x%llx is not inside a loaded segment",
                           (unsigned long long)info.entry);
        k->mode = X86_ENTRY_LINUX64;
        k->entry = info.entry;
    }
    k->start = info.start;
    k->end = info.end;
    k->cmdline_max = X86_CMDLINE_MAX_DEFAULT - 1;
    k->initrd_limit = FOUR_GIB;
    return 0;
}

static int load_bzimage(const struct gmem *gm, const struct x86_boot_input *in, struct kernel *k,
                        struct errbuf *err)
{
    if (in->proto == BOOT_PVH)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "boot protocol pvh needs an ELF vmlinux with a PVH note; a bzImage boots "
                       "only with the linux64 protocol");
    int ret = x86_bzimage_load(gm, in->kernel, in->kernel_len, &k->bz, err);
    if (ret < 0)
        return ret;
    k->bzimage = true;
    k->mode = X86_ENTRY_LINUX64;
    k->entry = k->bz.entry;
    k->start = k->bz.load_addr;
    k->end = k->bz.end;
    /* The command line area bounds what we can store, whatever the kernel claims. */
    k->cmdline_max = (uint32_t)MIN((uint64_t)k->bz.cmdline_max, X86_CMDLINE_AREA - 1);
    k->initrd_limit = k->bz.initrd_limit;
    return 0;
}

static int write_cmdline(const struct gmem *gm, const char *cmdline, const struct kernel *k,
                         uint32_t *size, struct errbuf *err)
{
    size_t len = strlen(cmdline);
    if (len > k->cmdline_max)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "kernel command line is %zu bytes; this kernel accepts at most %u", len,
                       k->cmdline_max);
    if (gmem_zero(gm, X86_CMDLINE_GPA, X86_CMDLINE_AREA) < 0 ||
        gmem_write(gm, X86_CMDLINE_GPA, cmdline, len + 1) < 0)
        return err_set(err, WISP_EXIT_USAGE, EFAULT, "cannot write the kernel command line");
    *size = (uint32_t)(len + 1);
    return 0;
}

/*
 * Put the initrd page-aligned as high as possible in region 0, below the
 * kernel's limit and above the kernel: high, so the kernel's own early
 * allocations above its image do not have to step around it.
 */
static int place_initrd(const struct gmem *gm, const struct x86_boot_input *in,
                        const struct kernel *k, uint64_t *gpa, struct errbuf *err)
{
    const struct gmem_region *r0 = &gm->regions[0];
    uint64_t size = in->initrd_len;
    uint64_t top = MIN(r0->gpa + r0->size, k->initrd_limit);
    uint64_t low, addr;

    if (size > gm->total)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "initrd is %llu MiB but guest RAM is only %llu MiB", mib_up(size),
                       (unsigned long long)(gm->total / MiB));
    if (!align_up_checked(MAX(k->end, X86_HIGH_MEM_START), PAGE_SIZE, &low))
        low = UINT64_MAX;
    if (size > top || (addr = align_down(top - size, PAGE_SIZE)) < low)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "initrd (%llu MiB) does not fit in guest memory between the kernel end "
                       "0x%llx and 0x%llx",
                       mib_up(size), (unsigned long long)k->end, (unsigned long long)top);
    if (gmem_write(gm, addr, in->initrd, size) < 0)
        return err_set(err, WISP_EXIT_USAGE, EFAULT, "cannot copy the initrd into guest memory");
    *gpa = addr;
    return 0;
}

/* The two BIOS data area words a guest uses to find the EBDA (and the MP table in it). */
static int write_bda(const struct gmem *gm, struct errbuf *err)
{
    uint8_t seg[2], kib[2];
    le16_put(seg, (uint16_t)(X86_EBDA_GPA >> 4));
    le16_put(kib, (uint16_t)(X86_EBDA_GPA / KiB));
    if (gmem_write(gm, X86_BDA_EBDA_SEG, seg, sizeof(seg)) < 0 ||
        gmem_write(gm, X86_BDA_BASEMEM_KIB, kib, sizeof(kib)) < 0)
        return err_set(err, WISP_EXIT_USAGE, EFAULT, "cannot write the BIOS data area");
    return 0;
}

/* A setup header for kernels that came without one (ELF vmlinux). */
static void synth_header(uint8_t *zp)
{
    zp[X86_HDR_SETUP_SECTS] = 0;
    le16_put(zp + X86_HDR_BOOT_FLAG, X86_BOOT_FLAG_MAGIC);
    le32_put(zp + X86_HDR_HEADER, X86_HDR_MAGIC);
    le16_put(zp + X86_HDR_VERSION, X86_HDR_ELF_VERSION);
    zp[X86_HDR_TYPE_OF_LOADER] = X86_LOADER_TYPE_UNDEFINED;
    zp[X86_HDR_LOADFLAGS] = X86_LOADED_HIGH;
    le32_put(zp + X86_HDR_KERNEL_ALIGNMENT, ELF_HDR_KERNEL_ALIGNMENT);
    le32_put(zp + X86_HDR_CMDLINE_SIZE, ELF_HDR_CMDLINE_SIZE);
}

static int write_zero_page(const struct gmem *gm, const struct x86_boot_input *in,
                           const struct kernel *k, const struct x86_boot_result *res,
                           const struct x86_e820_entry *map, unsigned nmap, struct errbuf *err)
{
    uint8_t zp[X86_ZERO_PAGE_SIZE];
    memset(zp, 0, sizeof(zp));

    if (k->bzimage) {
        if (x86_bzimage_fill_zero_page(in->kernel, in->kernel_len, &k->bz, zp) < 0)
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "bzImage setup header is truncated");
    } else {
        synth_header(zp);
    }
    le32_put(zp + X86_HDR_CMD_LINE_PTR, (uint32_t)res->cmdline_gpa);
    le32_put(zp + X86_BP_EXT_CMD_LINE_PTR, (uint32_t)(res->cmdline_gpa >> 32));
    le32_put(zp + X86_HDR_RAMDISK_IMAGE, (uint32_t)res->initrd_gpa);
    le32_put(zp + X86_BP_EXT_RAMDISK_IMAGE, (uint32_t)(res->initrd_gpa >> 32));
    le32_put(zp + X86_HDR_RAMDISK_SIZE, (uint32_t)res->initrd_size);
    le32_put(zp + X86_BP_EXT_RAMDISK_SIZE, (uint32_t)(res->initrd_size >> 32));
    /* Linux also scans 0xe0000-0xfffff for the RSDP; the pointer saves the scan. */
    le64_put(zp + X86_BP_ACPI_RSDP_ADDR, in->rsdp_gpa);

    zp[X86_BP_E820_ENTRIES] = (uint8_t)nmap;
    for (unsigned i = 0; i < nmap; i++) {
        uint8_t *e = zp + X86_BP_E820_TABLE + i * X86_BP_E820_ENTRY_SIZE;
        le64_put(e, map[i].addr);
        le64_put(e + 8, map[i].size);
        le32_put(e + 16, map[i].type);
    }
    if (gmem_write(gm, X86_ZERO_PAGE_GPA, zp, sizeof(zp)) < 0)
        return err_set(err, WISP_EXIT_USAGE, EFAULT, "cannot write the zero page");
    return 0;
}

static int write_pvh_info(const struct gmem *gm, const struct x86_boot_input *in,
                          const struct x86_boot_result *res, const struct x86_e820_entry *map,
                          unsigned nmap, struct errbuf *err)
{
    struct x86_pvh_start_info si = {
        .magic = X86_PVH_START_MAGIC,
        .rsdp_paddr = in->rsdp_gpa,
        .version = X86_PVH_START_VERSION,
        .cmdline_paddr = res->cmdline_gpa,
        .memmap_paddr = PVH_MEMMAP_GPA,
        .memmap_entries = nmap,
    };
    struct x86_pvh_memmap_entry mm[X86_E820_MAX_ENTRIES];
    memset(mm, 0, sizeof(mm));
    for (unsigned i = 0; i < nmap; i++) {
        mm[i].addr = map[i].addr;
        mm[i].size = map[i].size;
        mm[i].type = map[i].type;
    }

    if (gmem_zero(gm, X86_PVH_INFO_GPA, X86_PVH_INFO_MAX) < 0 ||
        gmem_write(gm, PVH_MEMMAP_GPA, mm, nmap * sizeof(mm[0])) < 0)
        goto fault;
    if (res->initrd_size) {
        struct x86_pvh_module mod = {.paddr = res->initrd_gpa, .size = res->initrd_size};
        si.nr_modules = 1;
        si.modlist_paddr = PVH_MODLIST_GPA;
        if (gmem_write(gm, PVH_MODLIST_GPA, &mod, sizeof(mod)) < 0)
            goto fault;
    }
    if (gmem_write(gm, X86_PVH_INFO_GPA, &si, sizeof(si)) < 0)
        goto fault;
    return 0;
fault:
    return err_set(err, WISP_EXIT_USAGE, EFAULT, "cannot write the PVH start info");
}

int x86_boot_load(const struct gmem *gm, const struct x86_boot_input *in,
                  struct x86_boot_result *out, struct errbuf *err)
{
    struct x86_e820_entry map[X86_E820_MAX_ENTRIES];
    struct x86_boot_result res;
    struct kernel k;
    unsigned nmap = 0;
    int ret;

    memset(&res, 0, sizeof(res));
    memset(&k, 0, sizeof(k));
    if (!in->cmdline || (!in->kernel && in->kernel_len) || (!in->initrd && in->initrd_len))
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "boot input is missing a buffer");
    if (in->proto != BOOT_AUTO && in->proto != BOOT_LINUX64 && in->proto != BOOT_PVH)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "unknown boot protocol %d", (int)in->proto);
    if (in->initrd && in->initrd_len == 0)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "initrd is empty");

    /* Also proves region 0 holds the low boot structures, so later writes there cannot fail. */
    ret = x86_e820_build(gm, map, X86_E820_MAX_ENTRIES, &nmap);
    if (ret < 0)
        return err_set(err, WISP_EXIT_USAGE, -ret,
                       "guest RAM must start at address 0 and cover at least the first 1 MiB");
    if (in->reserved_size) {
        ret =
            x86_e820_reserve(map, X86_E820_MAX_ENTRIES, &nmap, in->reserved_gpa, in->reserved_size);
        if (ret < 0)
            return err_set(err, WISP_EXIT_USAGE, -ret,
                           "cannot reserve 0x%llx-0x%llx in the memory map",
                           (unsigned long long)in->reserved_gpa,
                           (unsigned long long)(in->reserved_gpa + in->reserved_size - 1));
    }

    if (in->kernel_len && x86_elf_detect(in->kernel, in->kernel_len)) {
        res.format = "elf";
        ret = load_elf(gm, in, &k, err);
    } else if (in->kernel_len && x86_bzimage_detect(in->kernel, in->kernel_len)) {
        res.format = "bzimage";
        ret = load_bzimage(gm, in, &k, err);
    } else {
        ret = unknown_format(in->kernel, in->kernel_len, err);
    }
    if (ret < 0)
        return ret;

    res.mode = k.mode;
    res.entry = k.entry;
    res.kernel_start = k.start;
    res.kernel_end = k.end;
    res.cmdline_gpa = X86_CMDLINE_GPA;
    ret = write_cmdline(gm, in->cmdline, &k, &res.cmdline_size, err);
    if (ret < 0)
        return ret;
    if (in->initrd_len) {
        ret = place_initrd(gm, in, &k, &res.initrd_gpa, err);
        if (ret < 0)
            return ret;
        res.initrd_size = in->initrd_len;
    }
    ret = write_bda(gm, err);
    if (ret == 0)
        ret = x86_mptable_write(gm, in->nvcpus, err);
    if (ret == 0 && x86_reset_vector_write(gm) < 0)
        ret = err_set(err, WISP_EXIT_FAILURE, EFAULT, "cannot write the reset vector");
    if (ret < 0)
        return ret;

    if (k.mode == X86_ENTRY_PVH) {
        res.boot_info = X86_PVH_INFO_GPA;
        ret = write_pvh_info(gm, in, &res, map, nmap, err);
    } else {
        res.boot_info = X86_ZERO_PAGE_GPA;
        ret = write_zero_page(gm, in, &k, &res, map, nmap, err);
    }
    if (ret < 0)
        return ret;
    *out = res;
    return 0;
}
