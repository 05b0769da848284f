/*
 * AML encoder tests.  Expected bytes are written out from the ACPI 6.3
 * encodings (chapter 20 for the grammar, 6.4 for resource descriptors),
 * and PkgLength is checked with a decoder written here from the spec, so
 * the encoder is never its own oracle.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/aml.h"

TestSuite(x86_aml);

#define CAP 512
static uint8_t out[CAP + 16];
static struct aml_buf b;

static void start(void)
{
    memset(out, 0xA5, sizeof(out));
    aml_init(&b, out, CAP);
}

/* The encoding so far must be exactly `want`. */
static void expect_bytes(const uint8_t *want, size_t n)
{
    cr_assert_eq(b.err, 0, "encoder error %d", b.err);
    cr_assert_eq(b.len, n, "length %zu, want %zu", b.len, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(out[i], want[i], "byte %zu: 0x%02x, want 0x%02x", i, out[i], want[i]);
}
#define EXPECT(...)                                                                                \
    do {                                                                                           \
        const uint8_t want_[] = {__VA_ARGS__};                                                     \
        expect_bytes(want_, sizeof(want_));                                                        \
    } while (0)

/* PkgLength decoder (ACPI 6.3 20.2.4), independent of the encoder. */
static uint32_t pkglen_decode(const uint8_t *p, unsigned *nbytes)
{
    unsigned follow = p[0] >> 6;
    *nbytes = follow + 1;
    if (follow == 0)
        return p[0] & 0x3F;
    cr_assert_eq(p[0] & 0x30, 0, "bits 5:4 of a multi-byte lead byte are zero");
    uint32_t v = p[0] & 0x0F;
    for (unsigned i = 1; i <= follow; i++)
        v |= (uint32_t)p[i] << (4 + 8 * (i - 1));
    return v;
}

static void pkglen_is(size_t body, const uint8_t *want, unsigned n)
{
    uint8_t enc[AML_PKGLENGTH_BYTES];
    cr_assert_eq(aml_pkglength_encode(body, enc), n, "body %zu: %u bytes", body, n);
    cr_assert_eq(memcmp(enc, want, n), 0, "body %zu encoding", body);
}

Test(x86_aml, pkglength_boundaries)
{
    /* The value counts the PkgLength itself: 62 + 1 = 63 is the last one-byte form. */
    pkglen_is(0, (const uint8_t[]){0x01}, 1);
    pkglen_is(62, (const uint8_t[]){0x3F}, 1);
    /* 63 + 1 = 64 does not fit 6 bits, so two bytes: 63 + 2 = 65 = 0x041. */
    pkglen_is(63, (const uint8_t[]){0x41, 0x04}, 2);
    pkglen_is(4093, (const uint8_t[]){0x4F, 0xFF}, 2);                    /* 4095 = 0xFFF */
    pkglen_is(4094, (const uint8_t[]){0x81, 0x00, 0x01}, 3);              /* 4097 = 0x1001 */
    pkglen_is(0xFFFFF - 3, (const uint8_t[]){0x8F, 0xFF, 0xFF}, 3);       /* 1 MiB - 1 */
    pkglen_is(0xFFFFF - 2, (const uint8_t[]){0xC1, 0x00, 0x00, 0x01}, 4); /* 1 MiB + 1 */
    pkglen_is(AML_PKGLENGTH_MAX - 4, (const uint8_t[]){0xCF, 0xFF, 0xFF, 0xFF}, 4);

    uint8_t enc[AML_PKGLENGTH_BYTES];
    cr_assert_eq(aml_pkglength_encode(AML_PKGLENGTH_MAX - 3, enc), 0, "2^28 is too long");
    cr_assert_eq(aml_pkglength_encode(SIZE_MAX, enc), 0);
}

/* Every length up to beyond the 2-byte limit, and around 1 MiB: decodes back, minimal. */
Test(x86_aml, pkglength_sweep)
{
    static const size_t ranges[][2] = {{0, 70000}, {0xFFFFF - 300, 0xFFFFF + 300}};
    for (size_t r = 0; r < 2; r++) {
        for (size_t body = ranges[r][0]; body <= ranges[r][1]; body++) {
            uint8_t enc[AML_PKGLENGTH_BYTES];
            unsigned n = aml_pkglength_encode(body, enc), dn;
            cr_assert_neq(n, 0);
            cr_assert_eq(pkglen_decode(enc, &dn), body + n, "body %zu", body);
            cr_assert_eq(dn, n);
            unsigned minimal = body + 1 <= 0x3F      ? 1
                               : body + 2 <= 0xFFF   ? 2
                               : body + 3 <= 0xFFFFF ? 3
                                                     : 4;
            cr_assert_eq(n, minimal, "body %zu: %u bytes, %u needed", body, n, minimal);
        }
    }
}

/*
 * A Scope whose body (name + filler) is `body` bytes, built through
 * open/close, so the reserved byte must grow by memmove at each boundary.
 */
static void scope_of(size_t body)
{
    size_t cap = body + 16;
    uint8_t *buf = malloc(cap);
    cr_assert_not_null(buf);
    struct aml_buf s;
    aml_init(&s, buf, cap);
    aml_scope_open(&s, "ABCD");
    for (size_t i = 4; i < body; i++)
        aml_byte(&s, (uint8_t)(i * 7));
    aml_close(&s);
    cr_assert_eq(aml_finish(&s), 0);

    cr_assert_eq(buf[0], 0x10, "ScopeOp");
    unsigned n;
    uint32_t v = pkglen_decode(buf + 1, &n);
    cr_assert_eq(v, body + n, "body %zu", body);
    cr_assert_eq(s.len, 1 + n + body);
    cr_assert_eq(memcmp(buf + 1 + n, "ABCD", 4), 0, "name moved with the body");
    for (size_t i = 4; i < body; i++)
        cr_assert_eq(buf[1 + n + i], (uint8_t)(i * 7), "body byte %zu after the move", i);
    free(buf);
}

Test(x86_aml, close_at_every_boundary)
{
    const size_t bodies[] = {4, 62, 63, 64, 4093, 4094, 4095, 0xFFFFF - 3, 0xFFFFF - 2, 0xFFFFF};
    for (size_t i = 0; i < ARRAY_SIZE(bodies); i++)
        scope_of(bodies[i]);
}

/* Inner and outer objects both grow: the outer length must count the inner growth. */
Test(x86_aml, nested_growth)
{
    static uint8_t big[8192];
    struct aml_buf s;
    aml_init(&s, big, sizeof(big));
    aml_device_open(&s, "OUTR");
    aml_buffer_open(&s);
    for (unsigned i = 0; i < 100; i++)
        aml_byte(&s, (uint8_t)i);
    aml_close(&s);
    aml_close(&s);
    cr_assert_eq(aml_finish(&s), 0);
    /* Buffer: size 0x0A 0x64 (2) + 100 bytes, PkgLength 2 bytes: 104 = 0x068. */
    const uint8_t buf_hdr[] = {0x11, 0x48, 0x06, 0x0A, 0x64};
    /* Device: name 4 + buffer 105 = 109, two bytes -> 111 = 0x06F. */
    const uint8_t dev_hdr[] = {0x5B, 0x82, 0x4F, 0x06, 'O', 'U', 'T', 'R'};
    cr_assert_eq(s.len, sizeof(dev_hdr) + sizeof(buf_hdr) + 100);
    cr_assert_eq(memcmp(big, dev_hdr, sizeof(dev_hdr)), 0);
    cr_assert_eq(memcmp(big + sizeof(dev_hdr), buf_hdr, sizeof(buf_hdr)), 0);
    for (unsigned i = 0; i < 100; i++)
        cr_assert_eq(big[sizeof(dev_hdr) + sizeof(buf_hdr) + i], i);
}

Test(x86_aml, integers_smallest_form)
{
    start();
    aml_integer(&b, 0);
    aml_integer(&b, 1);
    aml_integer(&b, 2);
    aml_integer(&b, 0xFF);
    aml_integer(&b, 0x100);
    aml_integer(&b, 0xFFFF);
    aml_integer(&b, 0x10000);
    aml_integer(&b, 0xFFFFFFFF);
    aml_integer(&b, 0x100000000ULL);
    aml_integer(&b, UINT64_MAX);
    EXPECT(0x00, 0x01, 0x0A, 0x02, 0x0A, 0xFF, 0x0B, 0x00, 0x01, 0x0B, 0xFF, 0xFF, 0x0C, 0x00, 0x00,
           0x01, 0x00, 0x0C, 0xFF, 0xFF, 0xFF, 0xFF, 0x0E, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
           0x00, 0x0E, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF);
}

Test(x86_aml, nameseg_validation)
{
    uint8_t s[4];
    cr_assert_eq(aml_nameseg("_SB", 3, s), 0);
    cr_assert_eq(memcmp(s, "_SB_", 4), 0, "padded with _");
    cr_assert_eq(aml_nameseg("A", 1, s), 0);
    cr_assert_eq(memcmp(s, "A___", 4), 0);
    cr_assert_eq(aml_nameseg("PCI0", 4, s), 0);
    cr_assert_eq(memcmp(s, "PCI0", 4), 0);
    cr_assert_eq(aml_nameseg("_S5", 3, s), 0);

    const char *bad[] = {"", "ABCDE", "1ABC", "a", "AbC", "AB-C", "AB C", "\\ABC", "^A"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        cr_assert_eq(aml_nameseg(bad[i], strlen(bad[i]), s), -EINVAL, "'%s' accepted", bad[i]);
}

Test(x86_aml, name_strings)
{
    start();
    aml_name(&b, "\\_SB_.PCI0");
    aml_name(&b, "\\");
    aml_name(&b, "^^FOO");
    aml_name(&b, "A.B.C");
    aml_name(&b, "\\_SB");
    EXPECT('\\', 0x2E, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', /* root, DualNamePrefix */
           '\\', 0x00,                                         /* root, NullName */
           '^', '^', 'F', 'O', 'O', '_',                       /* two parent prefixes */
           0x2F, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_', /* MultiName */
           '\\', '_', 'S', 'B', '_');
}

/* A bad name is refused with the sticky error; nothing is written then or later. */
Test(x86_aml, bad_names_refused)
{
    const char *bad[] = {"", "\\_SB.", ".A", "A..B", "\\^A", "_SB.1ABC", "lower", "\\_SB.TOOLONG"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        start();
        aml_name(&b, bad[i]);
        cr_assert_eq(b.err, -EINVAL, "'%s' accepted", bad[i]);
        cr_assert_eq(out[0], 0xA5, "'%s': nothing written", bad[i]);
        aml_integer(&b, 7);
        cr_assert_eq(out[0], 0xA5, "sticky: later calls write nothing");
        cr_assert_eq(aml_finish(&b), -EINVAL);
    }
}

Test(x86_aml, strings)
{
    start();
    aml_string(&b, "LNRO0005");
    aml_string(&b, "");
    EXPECT(0x0D, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0x00, 0x0D, 0x00);
    aml_string(&b, "caf\xc3\xa9");
    cr_assert_eq(b.err, -EINVAL, "non-ASCII refused");
}

Test(x86_aml, eisaid_values)
{
    uint32_t v;
    cr_assert_eq(aml_eisaid_value("PNP0501", &v), 0);
    cr_assert_eq(v, 0x0105D041);
    cr_assert_eq(aml_eisaid_value("PNP0A08", &v), 0);
    cr_assert_eq(v, 0x080AD041);
    cr_assert_eq(aml_eisaid_value("PNP0A03", &v), 0);
    cr_assert_eq(v, 0x030AD041);
    cr_assert_eq(aml_eisaid_value("PNP0C02", &v), 0);
    cr_assert_eq(v, 0x020CD041);
    /* A=1, B=2, C=3: 0 00001 00010 00011 = 0x0443, then 0x12 0x34. */
    cr_assert_eq(aml_eisaid_value("ABC1234", &v), 0);
    cr_assert_eq(v, 0x34124304);

    const char *bad[] = {"pnp0501", "PNP050", "PNP05011", "PNP050G", "PNP050a", "P1P0501", ""};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        cr_assert_eq(aml_eisaid_value(bad[i], &v), -EINVAL, "'%s' accepted", bad[i]);

    start();
    aml_name_decl(&b, "_HID");
    aml_eisaid(&b, "PNP0501");
    EXPECT(0x08, '_', 'H', 'I', 'D', 0x0C, 0x41, 0xD0, 0x05, 0x01);
    aml_eisaid(&b, "PNP05O1");
    cr_assert_eq(b.err, -EINVAL);
}

Test(x86_aml, named_objects)
{
    start();
    aml_device_open(&b, "COM1");
    aml_close(&b);
    aml_name_integer(&b, "_UID", 0);
    aml_name_string(&b, "_HID", "AB");
    aml_package_open(&b, 2);
    aml_integer(&b, 5);
    aml_integer(&b, 0);
    aml_close(&b);
    aml_method_open(&b, "_STA", 0, false);
    aml_byte(&b, 0xA4); /* ReturnOp */
    aml_integer(&b, 0x0F);
    aml_close(&b);
    aml_method_open(&b, "M2", 2, true);
    aml_close(&b);
    cr_assert_eq(aml_finish(&b), 0);
    EXPECT(0x5B, 0x82, 0x05, 'C', 'O', 'M', '1',                   /* Device, empty */
           0x08, '_', 'U', 'I', 'D', 0x00,                         /* Name (_UID, Zero) */
           0x08, '_', 'H', 'I', 'D', 0x0D, 'A', 'B', 0x00,         /* Name (_HID, "AB") */
           0x12, 0x05, 0x02, 0x0A, 0x05, 0x00,                     /* Package (2) {5, 0} */
           0x14, 0x09, '_', 'S', 'T', 'A', 0x00, 0xA4, 0x0A, 0x0F, /* Method, 0 args */
           0x14, 0x06, 'M', '2', '_', '_', 0x0A);                  /* 2 args, Serialized */
}

Test(x86_aml, misuse_refused)
{
    start();
    aml_close(&b);
    cr_assert_eq(b.err, -EINVAL, "close with nothing open");

    start();
    aml_method_open(&b, "M", 8, false);
    cr_assert_eq(b.err, -EINVAL, "8 arguments");

    start();
    aml_package_open(&b, 256);
    cr_assert_eq(b.err, -EINVAL, "256 elements need VarPackageOp");

    start();
    aml_scope_open(&b, "A");
    cr_assert_eq(aml_finish(&b), -EINVAL, "left open");

    start();
    for (unsigned i = 0; i <= AML_MAX_DEPTH; i++)
        aml_buffer_open(&b);
    cr_assert_eq(b.err, -EINVAL, "too deep");
}

Test(x86_aml, buffers)
{
    start();
    aml_buffer_open(&b);
    aml_close(&b);
    aml_buffer_open(&b);
    aml_bytes(&b, "xyz", 3);
    aml_close(&b);
    EXPECT(0x11, 0x02, 0x00,                       /* Buffer (Zero) {} */
           0x11, 0x06, 0x0A, 0x03, 'x', 'y', 'z'); /* PkgLength 1 + size 2 + 3 */

    /* 300 bytes: size is a WordPrefix (3 bytes), PkgLength 2 + 3 + 300 = 305 = 0x131. */
    static uint8_t big[400];
    struct aml_buf s;
    aml_init(&s, big, sizeof(big));
    aml_buffer_open(&s);
    for (unsigned i = 0; i < 300; i++)
        aml_byte(&s, (uint8_t)i);
    aml_close(&s);
    cr_assert_eq(aml_finish(&s), 0);
    const uint8_t hdr[] = {0x11, 0x41, 0x13, 0x0B, 0x2C, 0x01};
    cr_assert_eq(s.len, sizeof(hdr) + 300);
    cr_assert_eq(memcmp(big, hdr, sizeof(hdr)), 0);
    for (unsigned i = 0; i < 300; i++)
        cr_assert_eq(big[sizeof(hdr) + i], (uint8_t)i);
}

/* Descriptor layouts: ACPI 6.3 6.4.2.5 (IO), 6.4.2.1 (IRQ), 6.4.3.4 (Memory32Fixed),
 * 6.4.3.6 (Extended Interrupt), 6.4.3.5.1-3 (QWord, DWord, Word address space). */
Test(x86_aml, resource_templates)
{
    start();
    aml_restemplate_open(&b);
    aml_res_io16(&b, 0x3F8, 0x3F8, 0, 8);
    aml_res_irq_noflags(&b, 1U << 4);
    aml_close(&b);
    EXPECT(0x11, 0x10, 0x0A, 0x0D,                         /* Buffer, size 13 */
           0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x00, 0x08, /* IO (Decode16, ...) */
           0x22, 0x10, 0x00,                               /* IRQNoFlags () {4} */
           0x79, 0x00);                                    /* End Tag, checksum 0 */
}

Test(x86_aml, memory_and_interrupt_descriptors)
{
    start();
    aml_res_memory32_fixed(&b, true, 0xD0000000, 0x1000);
    aml_res_memory32_fixed(&b, false, 0x12345678, 0x9ABCDEF0);
    const uint32_t gsi5 = 5, two[] = {9, 10};
    aml_res_interrupt(&b, AML_INT_CONSUMER | AML_INT_EDGE, &gsi5, 1);
    aml_res_interrupt(&b, AML_INT_CONSUMER | AML_INT_ACTIVE_LOW | AML_INT_SHARED, two, 2);
    EXPECT(0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xD0, 0x00, 0x10, 0x00, 0x00, /* RW */
           0x86, 0x09, 0x00, 0x00, 0x78, 0x56, 0x34, 0x12, 0xF0, 0xDE, 0xBC, 0x9A, /* RO */
           0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00, /* Edge, ActiveHigh, Excl */
           0x89, 0x0A, 0x00, 0x0D, 0x02, 0x09, 0x00, 0x00, 0x00, 0x0A, 0x00, 0x00, 0x00);

    start();
    aml_res_interrupt(&b, AML_INT_EDGE, &gsi5, 0);
    cr_assert_eq(b.err, -EINVAL, "no interrupt");
    start();
    aml_res_interrupt(&b, 0x20, &gsi5, 1);
    cr_assert_eq(b.err, -EINVAL, "reserved flag bit");
    start();
    aml_res_irq_noflags(&b, 0);
    cr_assert_eq(b.err, -EINVAL, "empty IRQ mask");
    start();
    aml_res_io16(&b, 0x400, 0x3FF, 0, 1);
    cr_assert_eq(b.err, -EINVAL, "min > max");
}

Test(x86_aml, address_space_descriptors)
{
    start();
    /* WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0xFF, 0, 0x100) */
    aml_res_word_bus_number(&b, 0x00, 0xFF);
    EXPECT(0x88, 0x0D, 0x00, 0x02, 0x0C, 0x00, /* bus numbers, producer, fixed */
           0x00, 0x00, 0x00, 0x00, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x01);

    start();
    /* WordIO (..., EntireRange, 0, 0x1000, 0xFFFF, 0, 0xF000) */
    aml_res_word_io(&b, 0x1000, 0xFFFF);
    EXPECT(0x88, 0x0D, 0x00, 0x01, 0x0C, 0x03, /* I/O, producer, fixed, EntireRange */
           0x00, 0x00, 0x00, 0x10, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0xF0);

    start();
    aml_res_dword_memory(&b, AML_MEM_NONCACHEABLE, 0xC0000000, 0xCFFFFFFF);
    EXPECT(0x87, 0x17, 0x00, 0x00, 0x0C, 0x01, /* memory, producer, NonCacheable ReadWrite */
           0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xC0, 0xFF, 0xFF, 0xFF, 0xCF, 0x00, 0x00, 0x00,
           0x00, 0x00, 0x00, 0x00, 0x10);

    start();
    aml_res_qword_memory(&b, AML_ADDR_CONSUMER | AML_MEM_PREFETCHABLE, 0x8000000000ULL,
                         0x8FFFFFFFFFULL);
    EXPECT(0x8A, 0x2B, 0x00, 0x00, 0x0D, 0x07,              /* consumer, Prefetchable ReadWrite */
           0, 0, 0, 0, 0, 0, 0, 0,                          /* granularity */
           0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00,  /* min */
           0xFF, 0xFF, 0xFF, 0xFF, 0x8F, 0x00, 0x00, 0x00,  /* max */
           0, 0, 0, 0, 0, 0, 0, 0,                          /* translation */
           0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00); /* length */

    start();
    aml_res_word_io(&b, 0, 0xFFFF);
    cr_assert_eq(b.err, -EINVAL, "a length of 0x10000 does not fit a Word descriptor");
    start();
    aml_res_qword_memory(&b, 0, 0, UINT64_MAX);
    cr_assert_eq(b.err, -EINVAL, "2^64 bytes");
    start();
    aml_res_dword_memory(&b, 0x40, 0, 1);
    cr_assert_eq(b.err, -EINVAL, "unknown option");
    start();
    aml_res_qword_memory(&b, 0, 2, 1);
    cr_assert_eq(b.err, -EINVAL, "min > max");
}

/* Something DSDT-shaped, with every kind of object and a PkgLength that grows. */
static void sample(struct aml_buf *s)
{
    aml_scope_open(s, "_SB");
    aml_device_open(s, "DEV0");
    aml_name_decl(s, "_HID");
    aml_eisaid(s, "PNP0501");
    aml_name_decl(s, "_CRS");
    aml_restemplate_open(s);
    for (uint32_t i = 0; i < 6; i++)
        aml_res_memory32_fixed(s, true, 0xD0000000 + i * 0x1000, 0x1000);
    aml_close(s);
    aml_close(s);
    aml_close(s);
    aml_name_decl(s, "_S5");
    aml_package_open(s, 2);
    aml_integer(s, 5);
    aml_integer(s, 0);
    aml_close(s);
}

/*
 * For every capacity short of the full size: -ENOSPC, not one byte past
 * the capacity touched, and `len` still the full size.  At the full size
 * the bytes equal an unconstrained encoding.
 */
Test(x86_aml, overflow_never_writes_past_the_end)
{
    static uint8_t ref[1024], small[1024 + 64];
    struct aml_buf s;
    aml_init(&s, ref, sizeof(ref));
    sample(&s);
    cr_assert_eq(aml_finish(&s), 0);
    const size_t full = s.len;
    cr_assert_gt(full, 64, "the sample crosses the 1-byte PkgLength limit");

    for (size_t cap = 0; cap <= full; cap++) {
        memset(small, 0xEE, sizeof(small));
        aml_init(&s, small, cap);
        sample(&s);
        cr_assert_eq(s.len, full, "cap %zu: counted %zu of %zu", cap, s.len, full);
        if (cap < full)
            cr_assert_eq(aml_finish(&s), -ENOSPC, "cap %zu", cap);
        else
            cr_assert_eq(aml_finish(&s), 0);
        for (size_t i = cap; i < sizeof(small); i++)
            cr_assert_eq(small[i], 0xEE, "cap %zu: byte %zu written", cap, i);
    }
    cr_assert_eq(memcmp(small, ref, full), 0);

    /* No array at all: only counting. */
    aml_init(&s, NULL, 100);
    sample(&s);
    cr_assert_eq(s.cap, 0);
    cr_assert_eq(s.len, full);
    cr_assert_eq(aml_finish(&s), -ENOSPC);
}
