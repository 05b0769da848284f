/*
 * Helpers shared by the seed generator's files (seedgen.c, seedgen_virtio.c):
 * a growable byte buffer that writes the targets' input encodings (fuzz.h)
 * and stores a finished seed as OUTDIR/<target>/seed-<name>.
 */
#ifndef TESTS_FUZZ_SEEDGEN_H
#define TESTS_FUZZ_SEEDGEN_H

#include <stddef.h>
#include <stdint.h>

struct sg_buf {
    uint8_t *p;
    size_t len;
    size_t cap;
};

/* Append bytes / little-endian integers / a string without its NUL.  Exits on ENOMEM. */
void sg_put(struct sg_buf *b, const void *p, size_t n);
void sg_u8(struct sg_buf *b, uint8_t v);
void sg_u16(struct sg_buf *b, uint16_t v);
void sg_u32(struct sg_buf *b, uint32_t v);
void sg_u64(struct sg_buf *b, uint64_t v);
void sg_str(struct sg_buf *b, const char *s);

/*
 * Append one register-access operation (fuzz.h): kind FZ_OP_*, flags a mix
 * of FZ_OP_SEL(), FZ_OP_FAR and FZ_OP_ARG(); for writes, the low `len`
 * bytes of `val` follow.
 */
void sg_op(struct sg_buf *b, unsigned kind, unsigned flags, uint16_t off, unsigned len,
           uint64_t val);

/* Write the buffer as seed `name` of `target`, then empty it.  Exits on I/O errors. */
void sg_emit(const char *target, const char *name, struct sg_buf *b);

/* Release the buffer. */
void sg_free(struct sg_buf *b);

/* Append a whole file; 0, or -1 after printing why. */
int sg_read_file(const char *path, struct sg_buf *b);

/* Seeds of the virtio targets (seedgen_virtio.c). */
void sg_virtio_seeds(void);

/* Seeds of the x86 state target (seedgen_x86.c). */
void sg_x86_state_seeds(void);

/* Seeds of the migration stream target (seedgen_stream.c). */
void sg_stream_seeds(void);

/* Seeds of the passthrough config space target (seedgen_vpci.c). */
void sg_vpci_seeds(void);

/* Seeds of the vPCI layout parser target (seedgen_vpci.c). */
void sg_vpci_layout_seeds(void);

#endif /* TESTS_FUZZ_SEEDGEN_H */
