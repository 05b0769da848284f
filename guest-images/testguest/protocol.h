/*
 * protocol.h - contract between the wisp test guest and whoever runs it.
 *
 * Plain constants only, so the VMM's test suite (hosted C) and the guest
 * (freestanding C and assembly) can both include this file.
 */
#ifndef WISP_GUEST_PROTOCOL_H
#define WISP_GUEST_PROTOCOL_H

/* Exit status written with outl to GUEST_EXIT_PORT. Under wisp the VMM exits
 * with (value & 0xff); under QEMU's isa-debug-exit with (value << 1) | 1,
 * i.e. 161 for PASS and 163 for FAIL. */
#define GUEST_PASS      0x50
#define GUEST_FAIL      0x51
#define GUEST_EXIT_PORT 0xF4

/* Every line the guest prints starts with this prefix. */
#define GUEST_LINE_PREFIX "wisp-guest: "

/* COM1, 8250-compatible UART. */
#define GUEST_SERIAL_PORT   0x3F8
#define GUEST_SERIAL_IRQ    4    /* IOAPIC pin used by serial-irq */
#define GUEST_SERIAL_VECTOR 0x24 /* IDT vector for that pin */

/* virtio tests (README.md, "virtio-mmio"): test=blk fills word j of sector
 * s with pattern ^ (s << 16) ^ j (little-endian u64), pattern from
 * blk_pattern= or this default; test=net and bench-net send 60-byte frames
 * of this ethertype with payload "wisp", u32 sequence, u32 count (big
 * endian). */
#define GUEST_BLK_PATTERN   0x77697370u
#define GUEST_NET_ETHERTYPE 0x88B5
#define GUEST_NET_FRAME_LEN 60

/* Image layout: one ELF linked at 2 MiB. The PVH 32-bit entry is the image
 * base, the Linux 64-bit entry (and ELF e_entry) is base + 0x200. */
#define GUEST_IMAGE_BASE     0x200000u
#define GUEST_LINUX64_OFFSET 0x200u
#define GUEST_LINUX64_ENTRY  (GUEST_IMAGE_BASE + GUEST_LINUX64_OFFSET)

/* Where the application-processor trampoline is copied (SIPI vector 0x10). */
#define GUEST_TRAMPOLINE_ADDR 0x10000u
#define GUEST_SIPI_VECTOR     (GUEST_TRAMPOLINE_ADDR >> 12)

/* Upper bound on vCPUs the guest can bring up (stack slots). */
#define GUEST_MAX_CPUS 64

/* initrd_sum= is the 32-bit FNV-1a hash of the initrd bytes. */
#define GUEST_FNV_OFFSET 0x811c9dc5u
#define GUEST_FNV_PRIME  0x01000193u

/* PVH: start-info magic and the ELF note that announces the 32-bit entry. */
#define PVH_START_MAGIC       0x336ec578u
#define PVH_NOTE_PHYS32_ENTRY 18 /* XEN_ELFNOTE_PHYS32_ENTRY */

/* bzImage header values written by tools/mkbzimage. */
#define BZ_SETUP_SECTS     4
#define BZ_BOOT_FLAG       0xAA55
#define BZ_HDRS_MAGIC      0x53726448u /* "HdrS" little-endian */
#define BZ_VERSION         0x020F
#define BZ_LOADED_HIGH     0x01
#define BZ_XLF_KERNEL_64   0x01
#define BZ_XLF_ABOVE_4G    0x02
#define BZ_KERNEL_ALIGN    0x200000u
#define BZ_CMDLINE_SIZE    2047u
#define BZ_INITRD_ADDR_MAX 0x7fffffffu

#endif
