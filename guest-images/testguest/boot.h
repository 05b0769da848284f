/*
 * boot.h - boot-protocol data layouts (PVH start info, Linux zero page).
 *
 * Written from the protocol descriptions; every offset the guest or
 * mkbzimage relies on is pinned with _Static_assert so a layout mistake
 * fails the build instead of misreading memory at run time.
 * Usable from hosted C (mkbzimage) and freestanding C (the guest).
 */
#ifndef WISP_GUEST_BOOT_H
#define WISP_GUEST_BOOT_H

#include <stddef.h>
#include <stdint.h>

/* ---- PVH (hvm_start_info, passed in EBX) ---- */
struct pvh_start_info {
    uint32_t magic;   /* PVH_START_MAGIC */
    uint32_t version; /* >= 1 has the memory map fields */
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;
    uint32_t memmap_entries;
    uint32_t reserved;
};
_Static_assert(offsetof(struct pvh_start_info, nr_modules) == 12, "pvh");
_Static_assert(offsetof(struct pvh_start_info, modlist_paddr) == 16, "pvh");
_Static_assert(offsetof(struct pvh_start_info, cmdline_paddr) == 24, "pvh");
_Static_assert(offsetof(struct pvh_start_info, memmap_paddr) == 40, "pvh");
_Static_assert(offsetof(struct pvh_start_info, memmap_entries) == 48, "pvh");
_Static_assert(sizeof(struct pvh_start_info) == 56, "pvh");

struct pvh_module {
    uint64_t paddr;
    uint64_t size;
    uint64_t cmdline_paddr;
    uint64_t reserved;
};
_Static_assert(sizeof(struct pvh_module) == 32, "pvh module");

struct pvh_memmap_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
};
_Static_assert(sizeof(struct pvh_memmap_entry) == 24, "pvh memmap");

/* ---- Linux zero page (struct boot_params, 4 KiB) ----
 * Only the fields we touch, as byte offsets; the page is read through
 * the helpers below so no 4 KiB struct with padding is needed. */
#define ZP_SIZE               4096
#define ZP_ACPI_RSDP_ADDR     0x070 /* u64, the RSDP address (boot protocol 2.14) */
#define ZP_EXT_RAMDISK_IMAGE  0x0C0 /* u32, high half of ramdisk_image */
#define ZP_EXT_RAMDISK_SIZE   0x0C4 /* u32, high half of ramdisk_size */
#define ZP_EXT_CMD_LINE_PTR   0x0C8 /* u32, high half of cmd_line_ptr */
#define ZP_E820_ENTRIES       0x1E8 /* u8 */
#define ZP_SETUP_SECTS        0x1F1 /* u8: start of the setup header */
#define ZP_SYSSIZE            0x1F4 /* u32, payload size / 16 */
#define ZP_BOOT_FLAG          0x1FE /* u16, 0xAA55 */
#define ZP_JUMP               0x200 /* 2-byte short jmp over the header */
#define ZP_HEADER             0x202 /* u32 "HdrS" */
#define ZP_VERSION            0x206 /* u16 */
#define ZP_TYPE_OF_LOADER     0x210 /* u8 */
#define ZP_LOADFLAGS          0x211 /* u8 */
#define ZP_CODE32_START       0x214 /* u32 */
#define ZP_RAMDISK_IMAGE      0x218 /* u32 */
#define ZP_RAMDISK_SIZE       0x21C /* u32 */
#define ZP_CMD_LINE_PTR       0x228 /* u32 */
#define ZP_INITRD_ADDR_MAX    0x22C /* u32 */
#define ZP_KERNEL_ALIGNMENT   0x230 /* u32 */
#define ZP_RELOCATABLE_KERNEL 0x234 /* u8 */
#define ZP_XLOADFLAGS         0x236 /* u16 */
#define ZP_CMDLINE_SIZE       0x238 /* u32 */
#define ZP_PREF_ADDRESS       0x258 /* u64 */
#define ZP_INIT_SIZE          0x260 /* u32 */
#define ZP_HEADER_END         0x268 /* first byte after init_size */
#define ZP_E820_TABLE         0x2D0 /* 20-byte entries */
#define ZP_E820_MAX           128

struct e820_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
} __attribute__((packed));
_Static_assert(sizeof(struct e820_entry) == 20, "e820 entry");
_Static_assert(ZP_E820_TABLE + ZP_E820_MAX * sizeof(struct e820_entry) <= 0xCD0,
               "e820 table must end before the boot_params tail");

#define E820_RAM 1

/* Little-endian field access on a byte buffer (zero page, bzImage). */
static inline uint32_t zp_get(const uint8_t *zp, unsigned off, unsigned width)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < width; i++)
        v |= (uint32_t)zp[off + i] << (8 * i);
    return v;
}

static inline void zp_put(uint8_t *zp, unsigned off, unsigned width, uint64_t v)
{
    for (unsigned i = 0; i < width; i++)
        zp[off + i] = (uint8_t)(v >> (8 * i));
}

#endif
