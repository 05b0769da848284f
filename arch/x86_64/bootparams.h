/*
 * Boot-protocol data layouts the x86_64 loaders write into guest memory: the
 * Linux zero page (struct boot_params with its embedded setup header) and the
 * PVH hvm_start_info with its module list and memory map.
 *
 * Written from the protocol descriptions (Linux Documentation/arch/x86/boot.rst
 * and zero-page.rst, Xen's PVH start-info ABI), not from kernel headers.  The
 * zero page is 4 KiB of mostly irrelevant fields, so it is described only by
 * the byte offsets wisp touches and filled through le*_put() on a byte buffer;
 * the small PVH structures are plain naturally aligned structs.  Every offset
 * that matters is pinned with _Static_assert so a typo breaks the build
 * instead of the guest.
 */
#ifndef ARCH_X86_64_BOOTPARAMS_H
#define ARCH_X86_64_BOOTPARAMS_H

#include <stddef.h>
#include <stdint.h>

/* ---- Linux zero page (struct boot_params) ---- */

#define X86_ZERO_PAGE_SIZE 4096U

/* boot_params fields outside the setup header. */
#define X86_BP_ACPI_RSDP_ADDR    0x070U /* u64: the RSDP's address (boot protocol 2.14) */
#define X86_BP_EXT_RAMDISK_IMAGE 0x0C0U /* u32: bits 63..32 of ramdisk_image */
#define X86_BP_EXT_RAMDISK_SIZE  0x0C4U /* u32: bits 63..32 of ramdisk_size */
#define X86_BP_EXT_CMD_LINE_PTR  0x0C8U /* u32: bits 63..32 of cmd_line_ptr */
#define X86_BP_E820_ENTRIES      0x1E8U /* u8: number of e820 table entries */
#define X86_BP_E820_TABLE        0x2D0U /* X86_BP_E820_MAX entries of X86_BP_E820_ENTRY_SIZE */
#define X86_BP_E820_MAX          128U
#define X86_BP_E820_ENTRY_SIZE   20U    /* {u64 addr, u64 size, u32 type}, packed */
#define X86_BP_E820_TABLE_END    0xCD0U /* the boot_params tail starts here */

/* Setup header fields (at the same offsets in the bzImage file and the zero page). */
#define X86_HDR_START              0x1F1U /* first byte of the setup header */
#define X86_HDR_SETUP_SECTS        0x1F1U /* u8: 512-byte setup sectors; 0 means 4 */
#define X86_HDR_SYSSIZE            0x1F4U /* u32: payload size in 16-byte units */
#define X86_HDR_BOOT_FLAG          0x1FEU /* u16: X86_BOOT_FLAG_MAGIC */
#define X86_HDR_JUMP               0x200U /* u16: short jump; byte 0x201 = header end - 0x202 */
#define X86_HDR_JUMP_LEN_BYTE      0x201U
#define X86_HDR_JUMP_BASE          0x202U /* the jump offset counts from here */
#define X86_HDR_HEADER             0x202U /* u32: X86_HDR_MAGIC */
#define X86_HDR_VERSION            0x206U /* u16: boot protocol version, major << 8 | minor */
#define X86_HDR_TYPE_OF_LOADER     0x210U /* u8 */
#define X86_HDR_LOADFLAGS          0x211U /* u8 */
#define X86_HDR_CODE32_START       0x214U /* u32 */
#define X86_HDR_RAMDISK_IMAGE      0x218U /* u32 */
#define X86_HDR_RAMDISK_SIZE       0x21CU /* u32 */
#define X86_HDR_HEAP_END_PTR       0x224U /* u16 */
#define X86_HDR_CMD_LINE_PTR       0x228U /* u32 */
#define X86_HDR_INITRD_ADDR_MAX    0x22CU /* u32: highest address the initrd may occupy */
#define X86_HDR_KERNEL_ALIGNMENT   0x230U /* u32 */
#define X86_HDR_RELOCATABLE_KERNEL 0x234U /* u8 */
#define X86_HDR_MIN_ALIGNMENT      0x235U /* u8: log2 */
#define X86_HDR_XLOADFLAGS         0x236U /* u16 */
#define X86_HDR_CMDLINE_SIZE       0x238U /* u32: longest command line, excluding the NUL */
#define X86_HDR_PREF_ADDRESS       0x258U /* u64 */
#define X86_HDR_INIT_SIZE          0x260U /* u32: memory the kernel needs from its load address */
#define X86_HDR_END_V2_12          0x264U /* one past the last field wisp reads */

#define X86_BOOT_FLAG_MAGIC 0xAA55U
#define X86_HDR_MAGIC       0x53726448U /* "HdrS" read as a little-endian u32 */
#define X86_HDR_MIN_VERSION 0x020CU     /* 2.12: xloadflags, hence XLF_KERNEL_64 */
#define X86_HDR_ELF_VERSION 0x020FU     /* what wisp claims in a synthesized header */

/* loadflags */
#define X86_LOADED_HIGH   0x01U
#define X86_KEEP_SEGMENTS 0x40U
#define X86_CAN_USE_HEAP  0x80U

/* xloadflags */
#define X86_XLF_KERNEL_64              0x0001U
#define X86_XLF_CAN_BE_LOADED_ABOVE_4G 0x0002U

/* type_of_loader 0xFF: "undefined" loader, the value the protocol reserves for us. */
#define X86_LOADER_TYPE_UNDEFINED 0xFFU
/* heap_end_ptr: end of the setup heap relative to the real-mode code (protocol example). */
#define X86_HEAP_END_PTR 0xFE00U

_Static_assert(X86_BP_E820_TABLE + X86_BP_E820_MAX * X86_BP_E820_ENTRY_SIZE ==
                   X86_BP_E820_TABLE_END,
               "e820 table must end where the boot_params tail starts");
_Static_assert(X86_BP_E820_TABLE_END <= X86_ZERO_PAGE_SIZE, "e820 table inside the zero page");
_Static_assert(X86_HDR_END_V2_12 == X86_HDR_INIT_SIZE + 4, "init_size is the last field read");
_Static_assert(X86_HDR_JUMP_BASE + 0xFF < X86_ZERO_PAGE_SIZE,
               "the largest setup header fits in the zero page");

/* e820 entry types. */
#define X86_E820_RAM      1U
#define X86_E820_RESERVED 2U

/* ---- PVH start info (passed in EBX at the 32-bit entry) ---- */

#define X86_PVH_START_MAGIC   0x336ec578U
#define X86_PVH_START_VERSION 1U /* version 1 adds memmap_paddr/memmap_entries */

/* XEN_ELFNOTE_PHYS32_ENTRY: the note that announces a PVH entry point. */
#define X86_XEN_ELFNOTE_PHYS32_ENTRY 18U

struct x86_pvh_start_info {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;
    uint32_t memmap_entries;
    uint32_t reserved;
};
_Static_assert(offsetof(struct x86_pvh_start_info, version) == 4, "pvh version");
_Static_assert(offsetof(struct x86_pvh_start_info, flags) == 8, "pvh flags");
_Static_assert(offsetof(struct x86_pvh_start_info, nr_modules) == 12, "pvh nr_modules");
_Static_assert(offsetof(struct x86_pvh_start_info, modlist_paddr) == 16, "pvh modlist");
_Static_assert(offsetof(struct x86_pvh_start_info, cmdline_paddr) == 24, "pvh cmdline");
_Static_assert(offsetof(struct x86_pvh_start_info, rsdp_paddr) == 32, "pvh rsdp");
_Static_assert(offsetof(struct x86_pvh_start_info, memmap_paddr) == 40, "pvh memmap");
_Static_assert(offsetof(struct x86_pvh_start_info, memmap_entries) == 48, "pvh memmap n");
_Static_assert(sizeof(struct x86_pvh_start_info) == 56, "pvh start info size");

struct x86_pvh_module {
    uint64_t paddr;
    uint64_t size;
    uint64_t cmdline_paddr;
    uint64_t reserved;
};
_Static_assert(offsetof(struct x86_pvh_module, size) == 8, "pvh module size");
_Static_assert(offsetof(struct x86_pvh_module, cmdline_paddr) == 16, "pvh module cmdline");
_Static_assert(sizeof(struct x86_pvh_module) == 32, "pvh module entry size");

struct x86_pvh_memmap_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
};
_Static_assert(offsetof(struct x86_pvh_memmap_entry, type) == 16, "pvh memmap type");
_Static_assert(sizeof(struct x86_pvh_memmap_entry) == 24, "pvh memmap entry size");

#endif /* ARCH_X86_64_BOOTPARAMS_H */
