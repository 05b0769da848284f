/*
 * ELF64 vmlinux loader (see elf.h).  Two passes: the first validates every
 * header and records the loadable segments, the second copies them, so a bad
 * image leaves guest memory untouched.  Header structs are our own, pinned
 * to the ELF64 layout with _Static_assert and filled with memcpy, because the
 * image buffer has no alignment guarantee.
 */
#include "arch/x86_64/elf.h"

#include <errno.h>
#include <string.h>

#include "arch/x86_64/bootparams.h"
#include "arch/x86_64/layout.h"

struct elf64_ehdr {
    uint8_t ident[16];
    uint16_t type;
    uint16_t machine;
    uint32_t version;
    uint64_t entry;
    uint64_t phoff;
    uint64_t shoff;
    uint32_t flags;
    uint16_t ehsize;
    uint16_t phentsize;
    uint16_t phnum;
    uint16_t shentsize;
    uint16_t shnum;
    uint16_t shstrndx;
};
_Static_assert(offsetof(struct elf64_ehdr, type) == 16, "e_type");
_Static_assert(offsetof(struct elf64_ehdr, machine) == 18, "e_machine");
_Static_assert(offsetof(struct elf64_ehdr, entry) == 24, "e_entry");
_Static_assert(offsetof(struct elf64_ehdr, phoff) == 32, "e_phoff");
_Static_assert(offsetof(struct elf64_ehdr, phentsize) == 54, "e_phentsize");
_Static_assert(offsetof(struct elf64_ehdr, phnum) == 56, "e_phnum");
_Static_assert(sizeof(struct elf64_ehdr) == 64, "ELF64 header size");

struct elf64_phdr {
    uint32_t type;
    uint32_t flags;
    uint64_t offset;
    uint64_t vaddr;
    uint64_t paddr;
    uint64_t filesz;
    uint64_t memsz;
    uint64_t align;
};
_Static_assert(offsetof(struct elf64_phdr, offset) == 8, "p_offset");
_Static_assert(offsetof(struct elf64_phdr, paddr) == 24, "p_paddr");
_Static_assert(offsetof(struct elf64_phdr, filesz) == 32, "p_filesz");
_Static_assert(offsetof(struct elf64_phdr, memsz) == 40, "p_memsz");
_Static_assert(sizeof(struct elf64_phdr) == 56, "ELF64 program header size");

#define EI_CLASS      4
#define EI_DATA       5
#define EI_VERSION    6
#define ELFCLASS32    1
#define ELFCLASS64    2
#define ELFDATA2LSB   1
#define EV_CURRENT    1
#define ET_EXEC       2
#define ET_DYN        3
#define EM_X86_64     62
#define PT_LOAD       1
#define PT_NOTE       4
#define NOTE_HDR_SIZE 12 /* namesz, descsz, type */

static const uint8_t elf_magic[4] = {0x7f, 'E', 'L', 'F'};

/* One validated PT_LOAD segment, kept between the two passes. */
struct seg {
    unsigned idx; /* program header index, for messages */
    uint64_t offset, filesz, paddr, memsz;
};

bool x86_elf_detect(const uint8_t *img, size_t len)
{
    return len >= sizeof(elf_magic) && memcmp(img, elf_magic, sizeof(elf_magic)) == 0;
}

/* Is [off, off+size) inside the image?  An empty range always is. */
static bool in_file(uint64_t off, uint64_t size, size_t len)
{
    uint64_t end;
    if (size == 0)
        return true;
    return range_end(off, size, &end) && end <= len;
}

static int check_ident(const struct elf64_ehdr *eh, size_t len, struct errbuf *err)
{
    if (eh->ident[EI_CLASS] == ELFCLASS32)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "ELF image is 32-bit (ELFCLASS32); wisp loads only ELF64 x86-64 kernels");
    if (eh->ident[EI_CLASS] != ELFCLASS64)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "ELF image has an invalid class (%u)",
                       eh->ident[EI_CLASS]);
    if (eh->ident[EI_DATA] != ELFDATA2LSB)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "ELF image is not little-endian (EI_DATA %u); x86-64 kernels are",
                       eh->ident[EI_DATA]);
    if (eh->ident[EI_VERSION] != EV_CURRENT || eh->version != EV_CURRENT)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "ELF image has an unknown version (%u/%u)",
                       eh->ident[EI_VERSION], eh->version);
    if (eh->machine != EM_X86_64)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "ELF image is for machine %u, not x86-64 (%u)",
                       eh->machine, EM_X86_64);
    if (eh->type == ET_DYN)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "ELF image is position-independent (ET_DYN); wisp loads only ET_EXEC "
                       "kernels at their physical addresses");
    if (eh->type != ET_EXEC)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "ELF image type %u is not ET_EXEC", eh->type);
    if (eh->phentsize != sizeof(struct elf64_phdr))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "ELF program header size is %u bytes; expected %zu", eh->phentsize,
                       sizeof(struct elf64_phdr));
    if (eh->phnum == 0)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "ELF image has no program headers");
    if (eh->phnum > X86_ELF_MAX_PHDRS)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "ELF image has %u program headers; at most %u are supported", eh->phnum,
                       X86_ELF_MAX_PHDRS);
    /* phnum <= 128, so the table size cannot overflow; the offset still can. */
    if (!in_file(eh->phoff, (uint64_t)eh->phnum * sizeof(struct elf64_phdr), len))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "ELF program header table (%u entries at offset 0x%llx) lies outside the "
                       "%zu-byte image",
                       eh->phnum, (unsigned long long)eh->phoff, len);
    return 0;
}

/* Validate PT_LOAD number `idx` against the image, guest RAM and the segments seen so far. */
static int check_load(const struct gmem *gm, const struct elf64_phdr *ph, unsigned idx, size_t len,
                      const struct seg *segs, unsigned nseg, struct errbuf *err)
{
    uint64_t end;
    if (ph->filesz > ph->memsz)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "ELF segment %u: file size 0x%llx exceeds memory size 0x%llx", idx,
                       (unsigned long long)ph->filesz, (unsigned long long)ph->memsz);
    if (ph->memsz == 0)
        return 0; /* occupies nothing; the caller skips it */
    if (!in_file(ph->offset, ph->filesz, len))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "ELF segment %u: file bytes at offset 0x%llx size 0x%llx lie outside the "
                       "%zu-byte image",
                       idx, (unsigned long long)ph->offset, (unsigned long long)ph->filesz, len);
    if (!range_end(ph->paddr, ph->memsz, &end))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "ELF segment %u at 0x%llx size 0x%llx wraps the address space", idx,
                       (unsigned long long)ph->paddr, (unsigned long long)ph->memsz);
    if (ph->paddr < X86_HIGH_MEM_START)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "ELF segment %u at 0x%llx overlaps the boot structures below 1 MiB", idx,
                       (unsigned long long)ph->paddr);
    if (!gmem_range_ok(gm, ph->paddr, ph->memsz))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "ELF segment %u [0x%llx, 0x%llx) is not inside one guest RAM region "
                       "(guest RAM ends at 0x%llx)",
                       idx, (unsigned long long)ph->paddr, (unsigned long long)end,
                       (unsigned long long)gmem_end(gm));
    for (unsigned i = 0; i < nseg; i++) {
        if (ranges_overlap(ph->paddr, ph->memsz, segs[i].paddr, segs[i].memsz))
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "ELF segments %u and %u overlap in guest memory", segs[i].idx, idx);
    }
    return 0;
}

/*
 * Walk the notes of PT_NOTE number `idx` looking for the PVH entry note.
 * Notes are {namesz, descsz, type, name, desc} with name and desc padded to
 * the note alignment: 4 bytes normally, 8 when the segment says so (some
 * toolchains emit 8-aligned notes in ELF64).  Every length comes from the
 * image, so each step is bounded by the segment size.
 */
static int scan_notes(const uint8_t *img, const struct elf64_phdr *ph, unsigned idx,
                      struct x86_elf_info *info, struct errbuf *err)
{
    const uint64_t size = ph->filesz;
    /* An empty segment may carry any offset: never form img + offset for it (UB). */
    if (size == 0)
        return 0;
    const uint8_t *p = img + ph->offset; /* range checked by the caller */
    const uint64_t align = ph->align == 8 ? 8 : 4;
    uint64_t off = 0;

    while (off < size) {
        uint64_t name_off, name_end, desc_off, desc_end;
        if (size - off < NOTE_HDR_SIZE)
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "ELF note segment %u is malformed: truncated note header at offset "
                           "0x%llx",
                           idx, (unsigned long long)off);
        uint32_t namesz = le32_get(p + off);
        uint32_t descsz = le32_get(p + off + 4);
        uint32_t type = le32_get(p + off + 8);
        /* Sizes are 32-bit and off <= size < 2^63, so none of these sums can wrap. */
        name_off = off + NOTE_HDR_SIZE;
        name_end = name_off + namesz;
        if (!align_up_checked(name_end, align, &desc_off) || desc_off > size ||
            (desc_end = desc_off + descsz) > size)
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "ELF note segment %u is malformed: note at offset 0x%llx (name %u "
                           "bytes, descriptor %u bytes) runs past the segment end",
                           idx, (unsigned long long)off, namesz, descsz);

        if (namesz == 4 && memcmp(p + name_off, "Xen", 4) == 0 &&
            type == X86_XEN_ELFNOTE_PHYS32_ENTRY && !info->has_pvh) {
            uint64_t entry;
            if (descsz == 4)
                entry = le32_get(p + desc_off);
            else if (descsz == 8)
                entry = le64_get(p + desc_off);
            else
                return err_set(err, WISP_EXIT_USAGE, EINVAL,
                               "ELF PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) has a %u-byte "
                               "descriptor; expected 4 or 8",
                               descsz);
            if (entry >= 0x100000000ULL)
                return err_set(err, WISP_EXIT_USAGE, EINVAL,
                               "ELF PVH entry point 0x%llx is not below 4 GiB",
                               (unsigned long long)entry);
            info->has_pvh = true;
            info->pvh_entry = (uint32_t)entry;
        }
        /* The last note may end without padding: stop instead of failing. */
        if (!align_up_checked(desc_end, align, &off))
            break;
    }
    return 0;
}

/* Does `addr` lie in the file-backed part of a loaded segment (i.e. real code)? */
static bool in_loaded(const struct seg *segs, unsigned nseg, uint64_t addr)
{
    for (unsigned i = 0; i < nseg; i++) {
        if (addr >= segs[i].paddr && addr - segs[i].paddr < segs[i].filesz)
            return true;
    }
    return false;
}

/* Copy out and check the ELF header (x86_elf_check). */
static int read_header(const uint8_t *img, size_t len, struct elf64_ehdr *eh, struct errbuf *err)
{
    if (len < sizeof(*eh))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "ELF header truncated: the image is %zu bytes, the header needs %zu", len,
                       sizeof(*eh));
    memcpy(eh, img, sizeof(*eh));
    if (memcmp(eh->ident, elf_magic, sizeof(elf_magic)) != 0)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "image does not start with the ELF magic");
    return check_ident(eh, len, err);
}

int x86_elf_check(const uint8_t *img, size_t len, struct errbuf *err)
{
    struct elf64_ehdr eh;
    return read_header(img, len, &eh, err);
}

int x86_elf_load(const struct gmem *gm, const uint8_t *img, size_t len, struct x86_elf_info *info,
                 struct errbuf *err)
{
    struct elf64_ehdr eh;
    struct seg segs[X86_ELF_MAX_PHDRS];
    unsigned nseg = 0;
    int ret;

    memset(info, 0, sizeof(*info));
    ret = read_header(img, len, &eh, err);
    if (ret < 0)
        return ret;

    /* Pass 1: validate everything, touch nothing. */
    for (unsigned i = 0; i < eh.phnum; i++) {
        struct elf64_phdr ph;
        memcpy(&ph, img + eh.phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
        if (ph.type == PT_LOAD) {
            ret = check_load(gm, &ph, i, len, segs, nseg, err);
            if (ret < 0)
                return ret;
            if (ph.memsz == 0)
                continue; /* nothing to load; harmless */
            segs[nseg++] = (struct seg){i, ph.offset, ph.filesz, ph.paddr, ph.memsz};
        } else if (ph.type == PT_NOTE) {
            if (!in_file(ph.offset, ph.filesz, len))
                return err_set(err, WISP_EXIT_USAGE, EINVAL,
                               "ELF note segment %u at offset 0x%llx size 0x%llx lies outside "
                               "the %zu-byte image",
                               i, (unsigned long long)ph.offset, (unsigned long long)ph.filesz,
                               len);
            ret = scan_notes(img, &ph, i, info, err);
            if (ret < 0)
                return ret;
        }
    }
    if (nseg == 0)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "ELF image has no loadable (PT_LOAD) segment");
    if (info->has_pvh && !in_loaded(segs, nseg, info->pvh_entry))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "ELF PVH entry point 0x%x is not inside a loaded segment", info->pvh_entry);

    info->entry = eh.entry;
    info->entry_loaded = in_loaded(segs, nseg, eh.entry);
    info->start = UINT64_MAX;
    for (unsigned i = 0; i < nseg; i++) {
        info->start = MIN(info->start, segs[i].paddr);
        info->end = MAX(info->end, segs[i].paddr + segs[i].memsz);
    }

    /* Pass 2: copy file bytes and clear the rest (bss).  Ranges were checked in pass 1. */
    for (unsigned i = 0; i < nseg; i++) {
        const struct seg *s = &segs[i];
        if (s->filesz && gmem_write(gm, s->paddr, img + s->offset, s->filesz) < 0)
            goto fault;
        if (s->memsz > s->filesz && gmem_zero(gm, s->paddr + s->filesz, s->memsz - s->filesz) < 0)
            goto fault;
    }
    return 0;

fault:
    /* Unreachable after pass 1; kept so a future change cannot turn it into silence. */
    return err_set(err, WISP_EXIT_USAGE, EFAULT, "ELF segment copy into guest memory failed");
}
