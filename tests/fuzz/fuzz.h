/*
 * Shared helpers for the libFuzzer targets in tests/fuzz/ and for the seed
 * generator (seedgen.c), which must agree on how a target reads its input.
 *
 * Why a shared input format: the targets do not hand the raw bytes to one
 * parser; they interpret them as a small program (register accesses, ring
 * layouts, load/save steps) so the fuzzer reaches deep device states.  The
 * encoding below is that program's instruction set, and seedgen.c writes
 * meaningful programs in it.
 *
 * Fuzz builds are never shippable: everything here requires -DWISP_FUZZING
 * and refuses a release build.
 */
#ifndef TESTS_FUZZ_FUZZ_H
#define TESTS_FUZZ_FUZZ_H

#ifndef WISP_FUZZING
#error "tests/fuzz is built only with -DWISP_FUZZING (make fuzz-build)"
#endif
#ifdef WISP_RELEASE
#error "fuzzing builds are never release builds"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/error.h"
#include "vmm/util.h"

/* The libFuzzer entry points (declared here for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/*
 * A property of the code under test does not hold: report it and abort, which
 * libFuzzer records as a crash with the input that caused it.
 */
#define FZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz: check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Bounded reader over the fuzz input; reads past the end yield zeros. */
struct fz_in {
    const uint8_t *p;
    size_t len;
    size_t pos;
};

static inline void fz_init(struct fz_in *in, const uint8_t *p, size_t len)
{
    in->p = p;
    in->len = len;
    in->pos = 0;
}

static inline size_t fz_left(const struct fz_in *in)
{
    return in->len - in->pos;
}

/* Up to `n` bytes from the input: returns a pointer and stores how many in *got. */
static inline const uint8_t *fz_take(struct fz_in *in, size_t n, size_t *got)
{
    const uint8_t *p = in->p + in->pos;
    *got = MIN(n, fz_left(in));
    in->pos += *got;
    return p;
}

static inline uint8_t fz_u8(struct fz_in *in)
{
    return fz_left(in) ? in->p[in->pos++] : 0;
}

static inline uint16_t fz_u16(struct fz_in *in)
{
    uint16_t v = fz_u8(in);
    return (uint16_t)(v | (uint16_t)fz_u8(in) << 8);
}

static inline uint32_t fz_u32(struct fz_in *in)
{
    uint32_t v = fz_u16(in);
    return v | (uint32_t)fz_u16(in) << 16;
}

static inline uint64_t fz_u64(struct fz_in *in)
{
    uint64_t v = fz_u32(in);
    return v | (uint64_t)fz_u32(in) << 32;
}

/*
 * Register-access programs (serial, i8042, virtio-mmio).  One operation:
 *   u8 op | le16 offset | u8 len | (write only) len value bytes
 * op bits 0-1 kind (FZ_OP_*), bits 2-3 selector (which port or queue),
 * bit 4 "far" (the offset becomes UINT64_MAX - offset, to test overflow
 * checks), bits 5-7 an argument for FZ_OP_DEV / FZ_OP_STATE.
 * len is taken modulo 9 (0..8 bytes; 0 is legal for the callee to see).
 */
enum { FZ_OP_READ = 0, FZ_OP_WRITE = 1, FZ_OP_DEV = 2, FZ_OP_STATE = 3 };
#define FZ_OP_SEL(s)  ((unsigned)(s) << 2)
#define FZ_OP_FAR     0x10U
#define FZ_OP_ARG(a)  ((unsigned)(a) << 5)
#define FZ_OP_HDR     4U /* op, offset, len */
#define FZ_ACCESS_MAX 8U

struct fz_op {
    unsigned kind;
    unsigned sel;
    unsigned arg;
    uint16_t off16;  /* raw offset field */
    uint64_t offset; /* effective offset (far applied) */
    unsigned len;
    uint8_t val[FZ_ACCESS_MAX]; /* write data (zero-padded) */
};

/* Decode the next operation; false at the end of the input. */
static inline bool fz_next_op(struct fz_in *in, struct fz_op *op)
{
    if (fz_left(in) < FZ_OP_HDR)
        return false;
    uint8_t b = fz_u8(in);
    op->kind = b & 3;
    op->sel = (b >> 2) & 3;
    op->arg = b >> 5;
    op->off16 = fz_u16(in);
    op->offset = (b & FZ_OP_FAR) ? UINT64_MAX - op->off16 : op->off16;
    op->len = fz_u8(in) % (FZ_ACCESS_MAX + 1);
    memset(op->val, 0, sizeof(op->val));
    if (op->kind == FZ_OP_WRITE) {
        size_t got;
        const uint8_t *v = fz_take(in, op->len, &got);
        memcpy(op->val, v, got);
    }
    return true;
}

typedef void (*fz_read_fn)(void *opaque, uint64_t offset, void *data, unsigned len);
typedef void (*fz_write_fn)(void *opaque, uint64_t offset, const void *data, unsigned len);

#define FZ_CANARY 0xa5

/*
 * Perform a read or write access, checking that a read writes no byte past
 * `len` (the bus hands devices exactly-sized buffers).  The read data is
 * stored in out (may be NULL).
 */
static inline void fz_access(const struct fz_op *op, fz_read_fn rd, fz_write_fn wr, void *opaque,
                             uint8_t out[FZ_ACCESS_MAX])
{
    uint8_t buf[FZ_ACCESS_MAX + 8];
    if (op->kind == FZ_OP_WRITE) {
        memcpy(buf, op->val, sizeof(op->val));
        wr(opaque, op->offset, buf, op->len);
        return;
    }
    memset(buf, FZ_CANARY, sizeof(buf));
    rd(opaque, op->offset, buf, op->len);
    for (size_t i = op->len; i < sizeof(buf); i++)
        FZ_CHECK(buf[i] == FZ_CANARY, "read of %u bytes at offset 0x%llx wrote byte %zu", op->len,
                 (unsigned long long)op->offset, i);
    if (out)
        memcpy(out, buf, FZ_ACCESS_MAX);
}

/* An error report must be one non-empty line (README: "Every error is a single line"). */
static inline bool fz_one_line(const struct errbuf *e)
{
    if (e->msg[0] == '\0' || memchr(e->msg, '\0', sizeof(e->msg)) == NULL)
        return false;
    for (const char *c = e->msg; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return false;
    return true;
}

/*
 * Boot loader input (fuzz_boot_loader):
 *   u8 flags | u8 nvcpus | le16 cmdline length | le32 initrd length |
 *   cmdline bytes | initrd bytes | kernel image (the rest)
 * flags bits 0-1: protocol (enum boot_proto; 3 = try all three), bit 2: pass
 * an initrd (even an empty one).
 */
#define FZ_BOOT_HDR_LEN    8U
#define FZ_BOOT_ALL_PROTOS 3U
#define FZ_BOOT_INITRD     0x04U

/*
 * Migration stream input (fuzz_migration_stream): u8 flags, then the bytes.
 * flags bits 0-1 the mode, bit 2 recompute the CRCs (modes 0 and 1).  The
 * fake destination has two RAM ranges and three devices: "fz-a" instances
 * 0 and 1 (section FZ_MIG_SEC_A, versions 1-2, builtin; instance 1 portable)
 * and "fz-pre" instance 0 (FZ_MIG_SEC_PRE, version 1, vfio, with pre-copy).
 */
#define FZ_MIG_MODE_LOAD    0U
#define FZ_MIG_MODE_READER  1U
#define FZ_MIG_MODE_RAM     2U
#define FZ_MIG_MODE_MACHINE 3U
#define FZ_MIG_F_FIX_CRC    4U
#define FZ_MIG_SEC_A        0x400U
#define FZ_MIG_SEC_PRE      0x401U
#define FZ_MIG_LO_PAGES     16U
#define FZ_MIG_HI_BASE      0xfffffffff0000000ULL
#define FZ_MIG_HI_PAGES     8U
#define FZ_MIG_VCPUS        2U

#endif /* TESTS_FUZZ_FUZZ_H */
