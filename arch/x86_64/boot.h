/*
 * x86_64 kernel loading and boot-time tables.  Input is an in-memory kernel
 * image (so the loaders are unit-testable and fuzzable without files or KVM)
 * and guest memory; output is where and how to enter the guest.
 *
 * Formats:
 *   - ELF64 vmlinux: PT_LOAD segments at their physical addresses; entered
 *     through the Linux 64-bit boot protocol (zero page in RSI), or through
 *     the PVH 32-bit entry if the image carries a XEN_ELFNOTE_PHYS32_ENTRY
 *     note and the protocol is AUTO or PVH.
 *   - bzImage: Linux boot protocol >= 2.12 with XLF_KERNEL_64; protected-mode
 *     part placed per pref_address/kernel_alignment/init_size, entered at
 *     load address + 0x200 in 64-bit mode.
 * Every field of the image is untrusted: sizes, offsets and addresses are
 * bounds- and overflow-checked, and a segment may not overlap the boot
 * structures below 1 MiB or fall outside RAM.
 */
#ifndef ARCH_X86_64_BOOT_H
#define ARCH_X86_64_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/config.h"
#include "vmm/error.h"
#include "vmm/gmem.h"

enum x86_entry_mode {
    X86_ENTRY_LINUX64, /* long mode, paging on, RSI = zero page */
    X86_ENTRY_PVH,     /* 32-bit protected mode, paging off, EBX = hvm_start_info */
};

struct x86_boot_input {
    const uint8_t *kernel;
    size_t kernel_len;
    const uint8_t *initrd; /* NULL if none */
    size_t initrd_len;
    const char *cmdline; /* never NULL; may be "" */
    enum boot_proto proto;
    unsigned nvcpus; /* for the MP table */
    /* Where the ACPI tables' RSDP is (written before x86_boot_load), 0 if
     * none: given to the guest in the zero page or the PVH start info. */
    uint64_t rsdp_gpa;
    /* A device range the memory map reports as reserved (the PCI ECAM
     * window), size 0 if none. */
    uint64_t reserved_gpa, reserved_size;
};

struct x86_boot_result {
    enum x86_entry_mode mode;
    const char *format;    /* "elf", "bzimage" */
    uint64_t entry;        /* guest-physical entry point (RIP / EIP) */
    uint64_t boot_info;    /* zero page GPA (linux64) or hvm_start_info GPA (pvh) */
    uint64_t kernel_start; /* lowest loaded byte */
    uint64_t kernel_end;   /* one past the highest byte incl. bss / init_size */
    uint64_t initrd_gpa;   /* 0 if none */
    uint64_t initrd_size;
    uint64_t cmdline_gpa;
    uint32_t cmdline_size; /* bytes including NUL */
};

/*
 * Is `img` (`len` bytes) a kernel x86_boot_load() can boot, as far as its
 * headers tell without guest memory?  An ELF64 x86-64 ET_EXEC image or a
 * bzImage with the 64-bit entry; segment placement and sizes are checked
 * at load time.  Errors are WISP_EXIT_USAGE, worded as the loader's.
 */
int x86_boot_probe(const uint8_t *img, size_t len, struct errbuf *err) __must_check;

/*
 * Load kernel, initrd and command line into `gm` and write the zero page or
 * PVH start info, the e820 map, the MP table, BIOS data area words and the
 * real-mode reset stub (reset_vector.h).
 * Errors are WISP_EXIT_USAGE with a message naming the problem.
 */
int x86_boot_load(const struct gmem *gm, const struct x86_boot_input *in,
                  struct x86_boot_result *out, struct errbuf *err) __must_check;

#endif /* ARCH_X86_64_BOOT_H */
