/*
 * ELF64 vmlinux loader.  An uncompressed kernel (or the test guest) is an
 * ET_EXEC x86-64 image whose PT_LOAD segments are copied to their physical
 * addresses (p_paddr).  PT_NOTE segments are scanned for the Xen PVH note
 * that announces a 32-bit entry point.
 *
 * ET_DYN (position-independent) images are refused: wisp does not apply
 * relocations, and loading one at its link-time addresses would only work by
 * accident.  Every header field is untrusted and checked before any byte is
 * written to guest memory.
 */
#ifndef ARCH_X86_64_ELF_H
#define ARCH_X86_64_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"
#include "vmm/gmem.h"

#define X86_ELF_MAX_PHDRS 128U

struct x86_elf_info {
    uint64_t entry;     /* e_entry: the Linux 64-bit entry (physical for vmlinux) */
    bool entry_loaded;  /* e_entry lies in the file-backed bytes of a PT_LOAD segment */
    bool has_pvh;       /* a valid XEN_ELFNOTE_PHYS32_ENTRY note was found */
    uint32_t pvh_entry; /* its entry point (< 4 GiB, inside a loaded segment) */
    uint64_t start;     /* lowest loaded guest-physical address */
    uint64_t end;       /* one past the highest loaded byte, bss included */
};

/* Does the image start with the ELF magic?  (A format sniff, nothing validated.) */
bool x86_elf_detect(const uint8_t *img, size_t len);

/*
 * Check the ELF header alone (no guest memory needed): the identity,
 * machine, type and program header table checks of x86_elf_load() below.
 * Returns 0 or -EINVAL (WISP_EXIT_USAGE).
 */
int x86_elf_check(const uint8_t *img, size_t len, struct errbuf *err) __must_check;

/*
 * Validate an ELF64 image and load it into guest memory.
 *
 * Checks: identity (ELFCLASS64, little-endian, version 1), EM_X86_64,
 * ET_EXEC, e_phentsize 56, 1..X86_ELF_MAX_PHDRS program headers inside the
 * file; per PT_LOAD: p_filesz <= p_memsz, file bytes inside the image, the
 * memory range wholly inside one RAM region at or above X86_HIGH_MEM_START,
 * no overlap with another PT_LOAD; at least one non-empty PT_LOAD; PT_NOTE
 * segments inside the file and well formed; a PVH note's descriptor 4 or 8
 * bytes, its entry below 4 GiB and inside a loaded segment.  Only when all
 * of that passes are the segments copied (file bytes, then zeroes up to
 * p_memsz).
 *
 * @gm:   guest memory
 * @img:  the image, `len` bytes (host memory, not guest-shared)
 * @info: filled in on success
 * @err:  receives a one-line message on failure
 * Returns 0 or -EINVAL (malformed or unloadable image, WISP_EXIT_USAGE).
 */
int x86_elf_load(const struct gmem *gm, const uint8_t *img, size_t len, struct x86_elf_info *info,
                 struct errbuf *err) __must_check;

#endif /* ARCH_X86_64_ELF_H */
