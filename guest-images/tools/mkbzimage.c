/*
 * mkbzimage - wrap the wisp test guest ELF into a bzImage.
 *
 *   mkbzimage IN.elf OUT.bzImage    build (and verify the result)
 *   mkbzimage --verify IN.bzImage   check an existing image's header
 *
 * The bzImage is a setup area of (setup_sects + 1) * 512 bytes holding the
 * Linux boot-protocol header, followed by the protected-mode payload: the
 * ELF's PT_LOAD segments flattened from the lowest physical address (the
 * image base). Loaders place the payload at pref_address and enter it
 * through the 64-bit entry at payload offset 0x200. There is no real-mode
 * setup code: the 16-bit entry just halts.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot.h"
#include "protocol.h"

/* The ELF64 subset we read, little-endian x86-64 only. */
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
_Static_assert(sizeof(struct elf64_ehdr) == 64, "ehdr");
_Static_assert(offsetof(struct elf64_ehdr, phoff) == 32, "ehdr");
_Static_assert(offsetof(struct elf64_ehdr, phnum) == 56, "ehdr");

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
_Static_assert(sizeof(struct elf64_phdr) == 56, "phdr");
_Static_assert(offsetof(struct elf64_phdr, paddr) == 24, "phdr");

#define ET_EXEC    2
#define EM_X86_64  62
#define PT_LOAD    1
#define SETUP_SIZE ((BZ_SETUP_SECTS + 1) * 512)
#define MAX_IMAGE  (64u << 20) /* sanity bound for a test guest */

static const char *prog = "mkbzimage";

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf)
            die("out of memory");
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        if (cap >= MAX_IMAGE)
            die("%s: larger than %u MiB", path, MAX_IMAGE >> 20);
        cap *= 2;
        buf = realloc(buf, cap);
    }
    if (ferror(f))
        die("%s: read error", path);
    fclose(f);
    *len = n;
    return buf;
}

/* Validate the ELF; return the flattened payload and its layout. */
static uint8_t *flatten(const uint8_t *elf, size_t len, const char *path, uint64_t *base_out,
                        size_t *payload_len, uint64_t *mem_len)
{
    struct elf64_ehdr eh;
    if (len < sizeof eh)
        die("%s: too small to be an ELF file", path);
    memcpy(&eh, elf, sizeof eh);
    if (memcmp(eh.ident, "\177ELF", 4) != 0)
        die("%s: not an ELF file (bad magic)", path);
    if (eh.ident[4] != 2 || eh.ident[5] != 1)
        die("%s: not a little-endian 64-bit ELF", path);
    if (eh.type != ET_EXEC || eh.machine != EM_X86_64)
        die("%s: not an x86-64 executable (type %u machine %u)", path, eh.type, eh.machine);
    if (eh.phentsize != sizeof(struct elf64_phdr) || eh.phnum == 0 || eh.phoff > len ||
        (len - eh.phoff) / sizeof(struct elf64_phdr) < eh.phnum)
        die("%s: bad program header table", path);

    uint64_t lo = UINT64_MAX, hi_file = 0, hi_mem = 0;
    int nload = 0;
    for (unsigned i = 0; i < eh.phnum; i++) {
        struct elf64_phdr ph;
        memcpy(&ph, elf + eh.phoff + i * sizeof ph, sizeof ph);
        if (ph.type != PT_LOAD)
            continue;
        nload++;
        if (ph.filesz > ph.memsz || ph.offset > len || len - ph.offset < ph.filesz)
            die("%s: PT_LOAD %u lies outside the file", path, i);
        if (ph.memsz > MAX_IMAGE || ph.paddr > UINT32_MAX)
            die("%s: PT_LOAD %u is not a small segment below 4 GiB", path, i);
        if (ph.paddr < lo)
            lo = ph.paddr;
        if (ph.paddr + ph.filesz > hi_file)
            hi_file = ph.paddr + ph.filesz;
        if (ph.paddr + ph.memsz > hi_mem)
            hi_mem = ph.paddr + ph.memsz;
    }
    if (!nload)
        die("%s: no PT_LOAD segments", path);
    if (lo % BZ_KERNEL_ALIGN)
        die("%s: load base 0x%llx is not 2 MiB aligned", path, (unsigned long long)lo);
    if (eh.entry != lo + GUEST_LINUX64_OFFSET)
        die("%s: entry 0x%llx is not base + 0x200 (0x%llx)", path, (unsigned long long)eh.entry,
            (unsigned long long)(lo + GUEST_LINUX64_OFFSET));
    if (hi_mem - lo > MAX_IMAGE)
        die("%s: image spans more than %u MiB", path, MAX_IMAGE >> 20);

    /* Payload: file bytes of every segment at paddr - base, gaps zeroed,
     * padded to 16 bytes so syssize is exact. */
    size_t plen = (size_t)((hi_file - lo + 15) & ~15ull);
    uint8_t *out = calloc(1, plen ? plen : 16);
    uint8_t *seen = calloc(1, plen ? plen : 16);
    if (!out || !seen)
        die("out of memory");
    for (unsigned i = 0; i < eh.phnum; i++) {
        struct elf64_phdr ph;
        memcpy(&ph, elf + eh.phoff + i * sizeof ph, sizeof ph);
        if (ph.type != PT_LOAD)
            continue;
        size_t at = (size_t)(ph.paddr - lo);
        for (size_t j = 0; j < ph.filesz; j++)
            if (seen[at + j]++)
                die("%s: PT_LOAD segments overlap at 0x%llx", path,
                    (unsigned long long)(ph.paddr + j));
        memcpy(out + at, elf + ph.offset, ph.filesz);
    }
    free(seen);
    *base_out = lo;
    *payload_len = plen;
    *mem_len = hi_mem - lo;
    return out;
}

static void build_header(uint8_t *s, uint64_t base, size_t plen, uint64_t mem_len)
{
    memset(s, 0, SETUP_SIZE);
    s[ZP_SETUP_SECTS] = BZ_SETUP_SECTS;
    zp_put(s, 0x1FA, 2, 0xFFFF); /* vid_mode: normal */
    zp_put(s, ZP_SYSSIZE, 4, (plen + 15) / 16);
    zp_put(s, ZP_BOOT_FLAG, 2, BZ_BOOT_FLAG);
    s[ZP_JUMP] = 0xEB;                              /* jmp short ... */
    s[ZP_JUMP + 1] = ZP_HEADER_END - (ZP_JUMP + 2); /* ... past the header */
    zp_put(s, ZP_HEADER, 4, BZ_HDRS_MAGIC);
    zp_put(s, ZP_VERSION, 2, BZ_VERSION);
    s[ZP_LOADFLAGS] = BZ_LOADED_HIGH;
    zp_put(s, ZP_CODE32_START, 4, base);
    zp_put(s, ZP_INITRD_ADDR_MAX, 4, BZ_INITRD_ADDR_MAX);
    zp_put(s, ZP_KERNEL_ALIGNMENT, 4, BZ_KERNEL_ALIGN);
    s[ZP_RELOCATABLE_KERNEL] = 0;
    s[ZP_RELOCATABLE_KERNEL + 1] = 21; /* min_alignment: 2 MiB */
    zp_put(s, ZP_XLOADFLAGS, 2, BZ_XLF_KERNEL_64 | BZ_XLF_ABOVE_4G);
    zp_put(s, ZP_CMDLINE_SIZE, 4, BZ_CMDLINE_SIZE);
    zp_put(s, ZP_PREF_ADDRESS, 8, base);
    zp_put(s, ZP_INIT_SIZE, 4, (mem_len + 4095) & ~4095ull);
    /* Real-mode entry (setup + 0x200 jumps here): there is no 16-bit
     * setup code, so halt forever: cli; hlt; jmp back to the hlt. */
    static const uint8_t halt16[] = {0xFA, 0xF4, 0xEB, 0xFD};
    memcpy(s + ZP_HEADER_END, halt16, sizeof halt16);
}

/* Independent re-reading of a bzImage: returns the number of problems. */
static int verify(const uint8_t *img, size_t len, const char *path)
{
    int bad = 0;
#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            bad++;                                                                                 \
            fprintf(stderr, "%s: %s: ", prog, path);                                               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)
    if (len < SETUP_SIZE + 0x210 || zp_get(img, ZP_HEADER, 4) != BZ_HDRS_MAGIC) {
        fprintf(stderr, "%s: %s: not a bzImage (too short or no HdrS)\n", prog, path);
        return 1;
    }
    uint32_t sects = img[ZP_SETUP_SECTS];
    size_t poff = (sects + 1) * 512;
    uint32_t syssize = zp_get(img, ZP_SYSSIZE, 4);
    uint64_t pref = zp_get(img, ZP_PREF_ADDRESS, 4) | (uint64_t)zp_get(img, ZP_PREF_ADDRESS + 4, 4)
                                                          << 32;
    EXPECT(sects == BZ_SETUP_SECTS, "setup_sects %u", sects);
    EXPECT(zp_get(img, ZP_BOOT_FLAG, 2) == BZ_BOOT_FLAG, "boot_flag");
    EXPECT(zp_get(img, ZP_HEADER, 4) == BZ_HDRS_MAGIC, "no HdrS magic");
    EXPECT(zp_get(img, ZP_VERSION, 2) == BZ_VERSION, "version 0x%x", zp_get(img, ZP_VERSION, 2));
    EXPECT(img[ZP_JUMP] == 0xEB && ZP_JUMP + 2 + img[ZP_JUMP + 1] == ZP_HEADER_END,
           "jump at 0x200");
    EXPECT(img[ZP_LOADFLAGS] == BZ_LOADED_HIGH, "loadflags 0x%x", img[ZP_LOADFLAGS]);
    EXPECT(img[ZP_RELOCATABLE_KERNEL] == 0, "relocatable_kernel");
    EXPECT(zp_get(img, ZP_KERNEL_ALIGNMENT, 4) == BZ_KERNEL_ALIGN, "kernel_alignment");
    EXPECT(zp_get(img, ZP_XLOADFLAGS, 2) == (BZ_XLF_KERNEL_64 | BZ_XLF_ABOVE_4G), "xloadflags");
    EXPECT(zp_get(img, ZP_CMDLINE_SIZE, 4) == BZ_CMDLINE_SIZE, "cmdline_size");
    EXPECT(zp_get(img, ZP_INITRD_ADDR_MAX, 4) == BZ_INITRD_ADDR_MAX, "initrd_addr_max");
    EXPECT(pref == GUEST_IMAGE_BASE, "pref_address 0x%llx", (unsigned long long)pref);
    EXPECT(zp_get(img, ZP_CODE32_START, 4) == pref, "code32_start");
    EXPECT(len == poff + (size_t)syssize * 16, "file size %zu != setup %zu + syssize*16 %u", len,
           poff, syssize * 16);
    uint32_t init = zp_get(img, ZP_INIT_SIZE, 4);
    EXPECT(init % 4096 == 0 && init >= (size_t)syssize * 16, "init_size 0x%x", init);
    EXPECT(len > poff + GUEST_LINUX64_OFFSET + 8 && img[poff + GUEST_LINUX64_OFFSET] != 0xcc &&
               img[poff + GUEST_LINUX64_OFFSET] != 0,
           "no code at payload + 0x200");
#undef EXPECT
    if (!bad)
        printf("%s: %s ok: version 0x%04x, setup %zu bytes, payload %u bytes at 0x%llx, "
               "init_size 0x%x, 64-bit entry 0x%llx\n",
               prog, path, zp_get(img, ZP_VERSION, 2), poff, syssize * 16, (unsigned long long)pref,
               init, (unsigned long long)(pref + GUEST_LINUX64_OFFSET));
    return bad;
}

int main(int argc, char **argv)
{
    size_t len;
    if (argc == 3 && strcmp(argv[1], "--verify") == 0) {
        uint8_t *img = read_file(argv[2], &len);
        int bad = verify(img, len, argv[2]);
        free(img);
        return bad ? 1 : 0;
    }
    if (argc != 3 || argv[1][0] == '-')
        die("usage: mkbzimage IN.elf OUT.bzImage | mkbzimage --verify IMAGE");

    uint8_t *elf = read_file(argv[1], &len);
    uint64_t base, mem_len;
    size_t plen;
    uint8_t *payload = flatten(elf, len, argv[1], &base, &plen, &mem_len);
    if (base != GUEST_IMAGE_BASE)
        die("%s: load base 0x%llx, expected 0x%x", argv[1], (unsigned long long)base,
            GUEST_IMAGE_BASE);

    size_t total = SETUP_SIZE + plen;
    uint8_t *img = malloc(total);
    if (!img)
        die("out of memory");
    build_header(img, base, plen, mem_len);
    memcpy(img + SETUP_SIZE, payload, plen);
    if (verify(img, total, argv[2]))
        die("internal error: generated header failed verification");

    FILE *f = fopen(argv[2], "wb");
    if (!f)
        die("%s: %s", argv[2], strerror(errno));
    if (fwrite(img, 1, total, f) != total || fclose(f) != 0) {
        remove(argv[2]);
        die("%s: write failed", argv[2]);
    }
    free(img);
    free(payload);
    free(elf);
    return 0;
}
