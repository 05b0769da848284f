/*
 * A small encoder for ACPI Machine Language (ACPI 6.3, chapter 20), enough
 * for the DSDT wisp gives x86 guests: names, integers, strings, EISA ids,
 * Scope/Device/Method/Package/Buffer and the resource descriptors of
 * chapter 6.4.  It exists because stock kernels find virtio-mmio devices
 * only through ACPI, and writing the bytes by hand in the table builder
 * would hide the nested length encoding in every caller.
 *
 * Output goes to a byte array the caller owns, with a fixed capacity.  The
 * encoder never writes past it: the first failure is recorded in `err`
 * (sticky) and every later call is a no-op for the array.  After -ENOSPC,
 * `len` still counts the bytes the complete encoding needs, so a caller can
 * say how much room it would have taken.
 *
 * Nested objects are open/close pairs.  An open records where the object's
 * PkgLength goes and reserves one byte for it; aml_close() encodes the
 * final length and, if it needs more bytes (or a Buffer needs its size
 * prefix), moves the body up.  Callers therefore never compute a length.
 */
#ifndef ARCH_X86_64_AML_H
#define ARCH_X86_64_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/util.h"

/* Deepest nesting of open objects (\_SB -> device -> _CRS buffer needs 3). */
#define AML_MAX_DEPTH 16U

/* The largest PkgLength value (28 bits), which includes its own 4 bytes. */
#define AML_PKGLENGTH_MAX 0x0FFFFFFFU

/* A PkgLength of at most 4 bytes; aml_pkglength_encode() fills one. */
#define AML_PKGLENGTH_BYTES 4U

/* Kinds of open object; aml_close() finishes each its own way. */
enum aml_kind {
    AML_KIND_SCOPE,
    AML_KIND_DEVICE,
    AML_KIND_METHOD,
    AML_KIND_PACKAGE,
    AML_KIND_BUFFER,
    AML_KIND_RESTEMPLATE, /* a Buffer that ends with an End Tag */
};

struct aml_buf {
    uint8_t *data; /* caller's array, may be NULL when cap is 0 */
    size_t cap;    /* bytes available in data */
    size_t len;    /* bytes the encoding needs so far (all in data while err == 0) */
    int err;       /* 0, or the first failure: -ENOSPC (cap too small) or -EINVAL */
    unsigned depth;
    struct {
        size_t pos; /* offset of the reserved PkgLength byte */
        enum aml_kind kind;
    } open[AML_MAX_DEPTH];
};

/* Start an empty encoding into data[0, cap). */
void aml_init(struct aml_buf *b, uint8_t *data, size_t cap);

/*
 * Check a finished encoding: 0 if every byte fit and every object was
 * closed, else the recorded error (-EINVAL for objects left open).
 */
int aml_finish(struct aml_buf *b) __must_check;

/* Raw bytes, for callers that encode something this module does not know. */
void aml_byte(struct aml_buf *b, uint8_t v);
void aml_bytes(struct aml_buf *b, const void *p, size_t n);

/*
 * The PkgLength for an object whose remaining bytes (after the PkgLength)
 * number `body`: the smallest of the 1..4 byte forms, whose value counts
 * the PkgLength's own bytes.  Writes it to `out` and returns its size, or
 * returns 0 if the object is longer than AML_PKGLENGTH_MAX.
 */
unsigned aml_pkglength_encode(size_t body, uint8_t out[AML_PKGLENGTH_BYTES]);

/*
 * Validate one NameSeg of 1-4 characters (first A-Z or '_', the rest A-Z,
 * 0-9 or '_'; `len` excludes any terminator) and write it padded with '_'
 * to `out`.  Returns 0 or -EINVAL.
 */
int aml_nameseg(const char *name, size_t len, uint8_t out[4]) __must_check;

/*
 * A NameString: an optional root ('\') or parent prefixes ('^'), then zero
 * or more NameSegs separated by '.', e.g. "\\_SB_.PCI0", "_S5", "\\".
 * Segments are padded, so "\\_SB" is the same name as "\\_SB_".
 */
void aml_name(struct aml_buf *b, const char *path);

/* An integer in its smallest form: ZeroOp, OneOp, Byte/Word/DWord/QWordPrefix. */
void aml_integer(struct aml_buf *b, uint64_t v);

/* A String object; characters must be 0x01..0x7F. */
void aml_string(struct aml_buf *b, const char *s);

/*
 * The 32-bit compressed EISA id of "ABC1234" (three letters A-Z, four hex
 * digits 0-9/A-F): the value an ASL EISAID() produces, e.g. "PNP0501" ->
 * 0x0105D041.  Returns 0 or -EINVAL.
 */
int aml_eisaid_value(const char *id, uint32_t *out) __must_check;

/* The EISA id of `id` as an integer object. */
void aml_eisaid(struct aml_buf *b, const char *id);

/* NameOp and the name; the caller then encodes the object the name gets. */
void aml_name_decl(struct aml_buf *b, const char *name);
/* Name (name, v) and Name (name, "s"). */
void aml_name_integer(struct aml_buf *b, const char *name, uint64_t v);
void aml_name_string(struct aml_buf *b, const char *name, const char *s);

/* Scope (path) { ... }, Device (name) { ... }. */
void aml_scope_open(struct aml_buf *b, const char *path);
void aml_device_open(struct aml_buf *b, const char *name);
/* Method (name, nargs 0..7, Serialized or NotSerialized) { ... }, sync level 0. */
void aml_method_open(struct aml_buf *b, const char *name, unsigned nargs, bool serialized);
/* Package (nelems) { ... }: the caller then encodes exactly nelems objects (0..255). */
void aml_package_open(struct aml_buf *b, unsigned nelems);
/* Buffer () { bytes }: the size is filled in by aml_close(). */
void aml_buffer_open(struct aml_buf *b);
/* ResourceTemplate () { descriptors }: a Buffer; aml_close() appends the End Tag. */
void aml_restemplate_open(struct aml_buf *b);

/* Close the innermost open object, encoding its length. */
void aml_close(struct aml_buf *b);

/*
 * Resource descriptors (ACPI 6.3, 6.4.2 and 6.4.3), for use inside a
 * resource template.  Address ranges are [min, max]; the length written is
 * max - min + 1, and min > max is -EINVAL.
 */

/* IO (Decode16, min, max, align, len): 8 bytes. */
void aml_res_io16(struct aml_buf *b, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* IRQNoFlags () {irqs}: `mask` has bit n set for IRQ n (at least one). */
void aml_res_irq_noflags(struct aml_buf *b, uint16_t mask);
/* Memory32Fixed (ReadWrite or ReadOnly, base, len): 12 bytes. */
void aml_res_memory32_fixed(struct aml_buf *b, bool writable, uint32_t base, uint32_t len);

/* Extended Interrupt flags (byte 3 of the descriptor). */
#define AML_INT_CONSUMER   0x01U /* else ResourceProducer */
#define AML_INT_EDGE       0x02U /* else Level */
#define AML_INT_ACTIVE_LOW 0x04U /* else ActiveHigh */
#define AML_INT_SHARED     0x08U /* else Exclusive */
#define AML_INT_WAKE       0x10U /* wake capable */
/* Interrupt (flags...) {gsi[0], ...}: 1..255 interrupt numbers. */
void aml_res_interrupt(struct aml_buf *b, unsigned flags, const uint32_t *gsi, unsigned n);

/* Address space descriptor options (memory descriptors only). */
#define AML_ADDR_CONSUMER      0x100U /* else ResourceProducer (a bridge's window) */
#define AML_MEM_NONCACHEABLE   0x0U
#define AML_MEM_CACHEABLE      0x1U
#define AML_MEM_WRITECOMBINING 0x2U
#define AML_MEM_PREFETCHABLE   0x3U
/*
 * WordBusNumber, WordIO (EntireRange), DWordMemory and QWordMemory
 * (ReadWrite, `flags` picks the cacheability and consumer/producer): all
 * PosDecode, MinFixed, MaxFixed, granularity 0, translation offset 0.  Bus
 * and I/O windows are always ResourceProducer (a bridge decodes them).
 */
void aml_res_word_bus_number(struct aml_buf *b, uint16_t min, uint16_t max);
void aml_res_word_io(struct aml_buf *b, uint16_t min, uint16_t max);
void aml_res_dword_memory(struct aml_buf *b, unsigned flags, uint32_t min, uint32_t max);
void aml_res_qword_memory(struct aml_buf *b, unsigned flags, uint64_t min, uint64_t max);

#endif /* ARCH_X86_64_AML_H */
