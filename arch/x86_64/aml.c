/*
 * AML encoder (see aml.h).  Encodings follow ACPI 6.3: chapter 20 for the
 * grammar (names, data objects, PkgLength) and 6.4 for the resource
 * descriptors that go inside a ResourceTemplate buffer.
 */
#include "arch/x86_64/aml.h"

#include <errno.h>
#include <string.h>

/* Opcodes and prefixes, ACPI 6.3 20.3. */
#define AML_ZERO_OP         0x00
#define AML_ONE_OP          0x01
#define AML_NAME_OP         0x08
#define AML_BYTE_PREFIX     0x0A
#define AML_WORD_PREFIX     0x0B
#define AML_DWORD_PREFIX    0x0C
#define AML_STRING_PREFIX   0x0D
#define AML_QWORD_PREFIX    0x0E
#define AML_SCOPE_OP        0x10
#define AML_BUFFER_OP       0x11
#define AML_PACKAGE_OP      0x12
#define AML_METHOD_OP       0x14
#define AML_DUAL_NAME       0x2E
#define AML_MULTI_NAME      0x2F
#define AML_EXT_OP          0x5B
#define AML_DEVICE_OP       0x82 /* after AML_EXT_OP */
#define AML_ROOT_CHAR       '\\'
#define AML_PARENT_CHAR     '^'
#define AML_NULL_NAME       0x00
#define AML_MAX_NAME_SEGS   255U /* MultiNamePrefix's SegCount is one byte */
#define AML_METHOD_MAX_ARGS 7U
#define AML_PKG_MAX_ELEMS   255U /* Package's NumElements is one byte */

/* Resource descriptor tags, ACPI 6.3 6.4.2 (small) and 6.4.3 (large). */
#define AML_RES_IRQ_NOFLAGS 0x22 /* small item 0x04, length 2 */
#define AML_RES_IO          0x47 /* small item 0x08, length 7 */
#define AML_RES_END_TAG     0x79 /* small item 0x0F, length 1 */
#define AML_RES_MEM32_FIXED 0x86
#define AML_RES_DWORD_ADDR  0x87
#define AML_RES_WORD_ADDR   0x88
#define AML_RES_EXT_IRQ     0x89
#define AML_RES_QWORD_ADDR  0x8A
#define AML_RES_IO_DECODE16 0x01
#define AML_RES_RW          0x01

/* Address space descriptor fields, ACPI 6.3 6.4.3.5. */
#define AML_ADDR_TYPE_MEMORY 0
#define AML_ADDR_TYPE_IO     1
#define AML_ADDR_TYPE_BUS    2
#define AML_ADDR_GEN_CONSUMER                                                                      \
    0x01 /* bit 0: set by ASL's ResourceConsumer, clear for ResourceProducer */
#define AML_ADDR_GEN_MIN_FIXED 0x04
#define AML_ADDR_GEN_MAX_FIXED 0x08
#define AML_ADDR_IO_ENTIRE     0x03 /* _RNG: both ISA and non-ISA ranges */
#define AML_ADDR_MEM_RW        0x01
#define AML_ADDR_MEM_CACHE_SH  1 /* _MEM is bits 2:1 */

static void fail(struct aml_buf *b, int err)
{
    if (b->err == 0)
        b->err = err;
}

void aml_init(struct aml_buf *b, uint8_t *data, size_t cap)
{
    memset(b, 0, sizeof(*b));
    b->data = data;
    b->cap = data ? cap : 0;
}

int aml_finish(struct aml_buf *b)
{
    if (b->depth != 0)
        fail(b, -EINVAL);
    return b->err;
}

/*
 * Account for `n` more bytes at the end and return where they go, or NULL
 * if they must not be written (an earlier error, or no room: -ENOSPC).
 */
static uint8_t *reserve(struct aml_buf *b, size_t n)
{
    if (n > SIZE_MAX - b->len) {
        fail(b, -ENOSPC);
        return NULL;
    }
    size_t at = b->len;
    b->len += n;
    if (b->err == 0 && b->len > b->cap)
        fail(b, -ENOSPC);
    return b->err == 0 ? b->data + at : NULL;
}

void aml_bytes(struct aml_buf *b, const void *p, size_t n)
{
    uint8_t *dst = reserve(b, n);
    if (dst && n)
        memcpy(dst, p, n);
}

void aml_byte(struct aml_buf *b, uint8_t v)
{
    aml_bytes(b, &v, 1);
}

static void put_le16(struct aml_buf *b, uint16_t v)
{
    uint8_t x[2];
    le16_put(x, v);
    aml_bytes(b, x, sizeof(x));
}

static void put_le32(struct aml_buf *b, uint32_t v)
{
    uint8_t x[4];
    le32_put(x, v);
    aml_bytes(b, x, sizeof(x));
}

static void put_le64(struct aml_buf *b, uint64_t v)
{
    uint8_t x[8];
    le64_put(x, v);
    aml_bytes(b, x, sizeof(x));
}

/*
 * PkgLength, ACPI 6.3 20.2.4: the lead byte's bits 7:6 count the bytes that
 * follow (0..3).  With none, bits 5:0 hold the length (up to 63); otherwise
 * bits 3:0 hold its low nibble, bits 5:4 are zero and each following byte
 * holds the next 8 bits, so 2, 3 and 4 bytes reach 2^12-1, 2^20-1 and
 * 2^28-1.  The value includes the PkgLength's own bytes.
 */
unsigned aml_pkglength_encode(size_t body, uint8_t out[AML_PKGLENGTH_BYTES])
{
    static const uint32_t max_for[AML_PKGLENGTH_BYTES + 1] = {0, 0x3F, 0xFFF, 0xFFFFF,
                                                              AML_PKGLENGTH_MAX};
    for (unsigned n = 1; n <= AML_PKGLENGTH_BYTES; n++) {
        if (body > max_for[n] - n)
            continue;
        uint32_t v = (uint32_t)body + n;
        if (n == 1) {
            out[0] = (uint8_t)v;
            return 1;
        }
        out[0] = (uint8_t)(((n - 1) << 6) | (v & 0x0F));
        for (unsigned i = 1; i < n; i++)
            out[i] = (uint8_t)(v >> (4 + 8 * (i - 1)));
        return n;
    }
    return 0;
}

static bool lead_char(char c)
{
    return (c >= 'A' && c <= 'Z') || c == '_';
}

static bool name_char(char c)
{
    return lead_char(c) || (c >= '0' && c <= '9');
}

int aml_nameseg(const char *name, size_t len, uint8_t out[4])
{
    if (len < 1 || len > 4 || !lead_char(name[0]))
        return -EINVAL;
    for (size_t i = 0; i < 4; i++) {
        if (i < len && !name_char(name[i]))
            return -EINVAL;
        out[i] = (uint8_t)(i < len ? name[i] : '_');
    }
    return 0;
}

/*
 * NameString, ACPI 6.3 20.2.2: prefix, then NullName (no segment), one
 * NameSeg, DualNamePrefix and two, or MultiNamePrefix, a count and the
 * segments.  The path is validated completely before anything is written.
 */
void aml_name(struct aml_buf *b, const char *path)
{
    uint8_t segs[AML_MAX_NAME_SEGS][4];
    unsigned nsegs = 0;
    const char *p = path;

    if (*p == AML_ROOT_CHAR)
        p++;
    else
        while (*p == AML_PARENT_CHAR)
            p++;
    size_t prefix = (size_t)(p - path);
    if (prefix > AML_MAX_NAME_SEGS) {
        fail(b, -EINVAL);
        return;
    }

    while (*p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (nsegs == AML_MAX_NAME_SEGS || aml_nameseg(p, n, segs[nsegs]) < 0) {
            fail(b, -EINVAL);
            return;
        }
        nsegs++;
        p += n;
        if (dot && !*++p) { /* a trailing '.' */
            fail(b, -EINVAL);
            return;
        }
    }
    if (nsegs == 0 && prefix == 0) {
        fail(b, -EINVAL); /* "" is no name */
        return;
    }

    aml_bytes(b, path, prefix);
    if (nsegs == 0) {
        aml_byte(b, AML_NULL_NAME);
    } else if (nsegs == 2) {
        aml_byte(b, AML_DUAL_NAME);
    } else if (nsegs > 2) {
        aml_byte(b, AML_MULTI_NAME);
        aml_byte(b, (uint8_t)nsegs);
    }
    aml_bytes(b, segs, (size_t)nsegs * 4);
}

void aml_integer(struct aml_buf *b, uint64_t v)
{
    if (v == 0) {
        aml_byte(b, AML_ZERO_OP);
    } else if (v == 1) {
        aml_byte(b, AML_ONE_OP);
    } else if (v <= UINT8_MAX) {
        aml_byte(b, AML_BYTE_PREFIX);
        aml_byte(b, (uint8_t)v);
    } else if (v <= UINT16_MAX) {
        aml_byte(b, AML_WORD_PREFIX);
        put_le16(b, (uint16_t)v);
    } else if (v <= UINT32_MAX) {
        aml_byte(b, AML_DWORD_PREFIX);
        put_le32(b, (uint32_t)v);
    } else {
        aml_byte(b, AML_QWORD_PREFIX);
        put_le64(b, v);
    }
}

void aml_string(struct aml_buf *b, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] > 0x7F) {
            fail(b, -EINVAL);
            return;
        }
    }
    aml_byte(b, AML_STRING_PREFIX);
    aml_bytes(b, s, n + 1); /* with the NUL terminator */
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * The ASL EISAID macro (ACPI 6.3, chapter 19): each letter becomes 5 bits (A = 1), packed
 * into the first two bytes big-endian as 0|l1|l2|l3, followed by the four
 * hex digits as two bytes; the 4 bytes in that order are the value's
 * little-endian memory image.
 */
int aml_eisaid_value(const char *id, uint32_t *out)
{
    if (strnlen(id, 8) != 7)
        return -EINVAL;
    unsigned l[3];
    for (unsigned i = 0; i < 3; i++) {
        if (id[i] < 'A' || id[i] > 'Z')
            return -EINVAL;
        l[i] = (unsigned)(id[i] - 'A' + 1);
    }
    unsigned h[4];
    for (unsigned i = 0; i < 4; i++) {
        int d = hex_digit(id[3 + i]);
        if (d < 0)
            return -EINVAL;
        h[i] = (unsigned)d;
    }
    uint16_t letters = (uint16_t)((l[0] << 10) | (l[1] << 5) | l[2]);
    uint8_t bytes[4] = {
        (uint8_t)(letters >> 8),
        (uint8_t)letters,
        (uint8_t)((h[0] << 4) | h[1]),
        (uint8_t)((h[2] << 4) | h[3]),
    };
    *out = le32_get(bytes);
    return 0;
}

void aml_eisaid(struct aml_buf *b, const char *id)
{
    uint32_t v;
    if (aml_eisaid_value(id, &v) < 0) {
        fail(b, -EINVAL);
        return;
    }
    aml_integer(b, v);
}

void aml_name_decl(struct aml_buf *b, const char *name)
{
    aml_byte(b, AML_NAME_OP);
    aml_name(b, name);
}

void aml_name_integer(struct aml_buf *b, const char *name, uint64_t v)
{
    aml_name_decl(b, name);
    aml_integer(b, v);
}

void aml_name_string(struct aml_buf *b, const char *name, const char *s)
{
    aml_name_decl(b, name);
    aml_string(b, s);
}

/* Record an open object whose PkgLength starts here and reserve its first byte. */
static void open_obj(struct aml_buf *b, enum aml_kind kind)
{
    if (b->depth == AML_MAX_DEPTH) {
        fail(b, -EINVAL);
        return;
    }
    b->open[b->depth].pos = b->len;
    b->open[b->depth].kind = kind;
    b->depth++;
    aml_byte(b, 0);
}

void aml_scope_open(struct aml_buf *b, const char *path)
{
    aml_byte(b, AML_SCOPE_OP);
    open_obj(b, AML_KIND_SCOPE);
    aml_name(b, path);
}

void aml_device_open(struct aml_buf *b, const char *name)
{
    aml_byte(b, AML_EXT_OP);
    aml_byte(b, AML_DEVICE_OP);
    open_obj(b, AML_KIND_DEVICE);
    aml_name(b, name);
}

/* MethodFlags, ACPI 6.3 20.2.5.2: bits 2:0 ArgCount, bit 3 SerializeFlag, 7:4 SyncLevel. */
void aml_method_open(struct aml_buf *b, const char *name, unsigned nargs, bool serialized)
{
    if (nargs > AML_METHOD_MAX_ARGS) {
        fail(b, -EINVAL);
        return;
    }
    aml_byte(b, AML_METHOD_OP);
    open_obj(b, AML_KIND_METHOD);
    aml_name(b, name);
    aml_byte(b, (uint8_t)(nargs | (serialized ? 0x08 : 0)));
}

void aml_package_open(struct aml_buf *b, unsigned nelems)
{
    if (nelems > AML_PKG_MAX_ELEMS) {
        fail(b, -EINVAL);
        return;
    }
    aml_byte(b, AML_PACKAGE_OP);
    open_obj(b, AML_KIND_PACKAGE);
    aml_byte(b, (uint8_t)nelems);
}

void aml_buffer_open(struct aml_buf *b)
{
    aml_byte(b, AML_BUFFER_OP);
    open_obj(b, AML_KIND_BUFFER);
}

void aml_restemplate_open(struct aml_buf *b)
{
    aml_byte(b, AML_BUFFER_OP);
    open_obj(b, AML_KIND_RESTEMPLATE);
}

/* The encoding of aml_integer(v) into out[9]; returns its length. */
static size_t integer_bytes(uint64_t v, uint8_t out[9])
{
    struct aml_buf t;
    aml_init(&t, out, 9);
    aml_integer(&t, v);
    return t.len;
}

/*
 * Close the innermost object: its body is everything after the reserved
 * byte.  A Buffer's body is preceded by its size (an integer), which, like
 * a PkgLength longer than the reserved byte, is inserted by moving the body
 * up.  With an earlier error nothing moves, but `len` still grows by the
 * header so it keeps counting what the encoding needs.
 */
void aml_close(struct aml_buf *b)
{
    if (b->depth == 0) {
        fail(b, -EINVAL);
        return;
    }
    b->depth--;
    const size_t pos = b->open[b->depth].pos;
    const enum aml_kind kind = b->open[b->depth].kind;

    if (kind == AML_KIND_RESTEMPLATE) {
        aml_byte(b, AML_RES_END_TAG);
        aml_byte(b, 0); /* checksum 0: "treated as if the checksum operation succeeded" */
    }

    const size_t body_start = pos + 1;
    const size_t body = b->len - body_start;
    uint8_t hdr[AML_PKGLENGTH_BYTES + 9];
    size_t size_len = 0;
    uint8_t size_enc[9];
    if (kind == AML_KIND_BUFFER || kind == AML_KIND_RESTEMPLATE)
        size_len = integer_bytes(body, size_enc);
    if (body > SIZE_MAX - size_len) {
        fail(b, -EINVAL);
        return;
    }
    unsigned pl = aml_pkglength_encode(body + size_len, hdr);
    if (pl == 0) {
        fail(b, -EINVAL); /* longer than any PkgLength can say */
        return;
    }
    memcpy(hdr + pl, size_enc, size_len);
    const size_t hdr_len = pl + size_len;
    const size_t grow = hdr_len - 1;

    if (reserve(b, grow) == NULL)
        return; /* len counts the header; nothing may be written */
    memmove(b->data + body_start + grow, b->data + body_start, body);
    memcpy(b->data + pos, hdr, hdr_len);
}

void aml_res_io16(struct aml_buf *b, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
    if (min > max) {
        fail(b, -EINVAL);
        return;
    }
    aml_byte(b, AML_RES_IO);
    aml_byte(b, AML_RES_IO_DECODE16);
    put_le16(b, min);
    put_le16(b, max);
    aml_byte(b, align);
    aml_byte(b, len);
}

void aml_res_irq_noflags(struct aml_buf *b, uint16_t mask)
{
    if (mask == 0) {
        fail(b, -EINVAL);
        return;
    }
    aml_byte(b, AML_RES_IRQ_NOFLAGS);
    put_le16(b, mask);
}

void aml_res_memory32_fixed(struct aml_buf *b, bool writable, uint32_t base, uint32_t len)
{
    aml_byte(b, AML_RES_MEM32_FIXED);
    put_le16(b, 9); /* bytes after the length field */
    aml_byte(b, writable ? AML_RES_RW : 0);
    put_le32(b, base);
    put_le32(b, len);
}

void aml_res_interrupt(struct aml_buf *b, unsigned flags, const uint32_t *gsi, unsigned n)
{
    const unsigned known =
        AML_INT_CONSUMER | AML_INT_EDGE | AML_INT_ACTIVE_LOW | AML_INT_SHARED | AML_INT_WAKE;
    if (n == 0 || n > UINT8_MAX || (flags & ~known)) {
        fail(b, -EINVAL);
        return;
    }
    aml_byte(b, AML_RES_EXT_IRQ);
    put_le16(b, (uint16_t)(2 + 4 * n));
    aml_byte(b, (uint8_t)flags);
    aml_byte(b, (uint8_t)n);
    for (unsigned i = 0; i < n; i++)
        put_le32(b, gsi[i]);
}

/*
 * The Word, DWord and QWord Address Space Descriptors share one layout:
 * tag, 16-bit length, resource type, general flags, type-specific flags,
 * then five fields of `width` bytes: granularity, min, max, translation
 * offset, length.
 */
static void addr_space(struct aml_buf *b, unsigned width, uint8_t type, bool consumer,
                       uint8_t type_flags, uint64_t min, uint64_t max)
{
    static const uint8_t tag[9] = {
        [2] = AML_RES_WORD_ADDR, [4] = AML_RES_DWORD_ADDR, [8] = AML_RES_QWORD_ADDR};
    if (min > max || (max - min == UINT64_MAX)) {
        fail(b, -EINVAL);
        return;
    }
    const uint64_t fields[5] = {0, min, max, 0, max - min + 1};
    if (width < 8 && fields[4] >> (8 * width)) {
        fail(b, -EINVAL); /* the whole space: its length does not fit the field */
        return;
    }
    aml_byte(b, tag[width]);
    put_le16(b, (uint16_t)(3 + 5 * width));
    aml_byte(b, type);
    aml_byte(b, (uint8_t)(AML_ADDR_GEN_MIN_FIXED | AML_ADDR_GEN_MAX_FIXED |
                          (consumer ? AML_ADDR_GEN_CONSUMER : 0)));
    aml_byte(b, type_flags);
    for (unsigned i = 0; i < 5; i++) {
        if (width == 2)
            put_le16(b, (uint16_t)fields[i]);
        else if (width == 4)
            put_le32(b, (uint32_t)fields[i]);
        else
            put_le64(b, fields[i]);
    }
}

void aml_res_word_bus_number(struct aml_buf *b, uint16_t min, uint16_t max)
{
    addr_space(b, 2, AML_ADDR_TYPE_BUS, false, 0, min, max);
}

void aml_res_word_io(struct aml_buf *b, uint16_t min, uint16_t max)
{
    addr_space(b, 2, AML_ADDR_TYPE_IO, false, AML_ADDR_IO_ENTIRE, min, max);
}

/* The type-specific flags of a memory range, or -1 for unknown option bits. */
static int mem_flags(unsigned flags)
{
    if (flags & ~(AML_ADDR_CONSUMER | AML_MEM_PREFETCHABLE))
        return -1;
    return (int)(AML_ADDR_MEM_RW | ((flags & AML_MEM_PREFETCHABLE) << AML_ADDR_MEM_CACHE_SH));
}

void aml_res_dword_memory(struct aml_buf *b, unsigned flags, uint32_t min, uint32_t max)
{
    int tf = mem_flags(flags);
    if (tf < 0) {
        fail(b, -EINVAL);
        return;
    }
    addr_space(b, 4, AML_ADDR_TYPE_MEMORY, flags & AML_ADDR_CONSUMER, (uint8_t)tf, min, max);
}

void aml_res_qword_memory(struct aml_buf *b, unsigned flags, uint64_t min, uint64_t max)
{
    int tf = mem_flags(flags);
    if (tf < 0) {
        fail(b, -EINVAL);
        return;
    }
    addr_space(b, 8, AML_ADDR_TYPE_MEMORY, flags & AML_ADDR_CONSUMER, (uint8_t)tf, min, max);
}
