/*
 * Fixtures shared by the VMSTATE-VIRTIO tests (test_virtio_state*.c):
 * fully populated and minimal device states, and a tiny editor that
 * changes bytes of an encoded stream and then repairs what a test did not
 * mean to break (enclosing DEVICE length, total_len, CRC), so each
 * rejection test hits exactly the rule it names.
 */
#ifndef TESTS_UNIT_MIGRATION_TEST_VIRTIO_STATE_H
#define TESTS_UNIT_MIGRATION_TEST_VIRTIO_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migration/virtio_state.h"

/* An encoded stream owned by a test (malloc'd). */
struct vst_buf {
    uint8_t *p;
    size_t len;
};

/* Two devices: blk (2 queues, in-flight list, BLK_STATE, mandatory opaque) and net (3 queues). */
void vst_fill_full(struct virtio_state s[2]);
/* The one-device rng state whose encoding is the golden stream. */
void vst_fill_small(struct virtio_state *s);
/* Free the blobs vst_fill_full allocated (not virtio_state_free: nothing was decoded). */
void vst_release(struct virtio_state *s, unsigned n);

/* Encodings of vst_fill_small() and vst_fill_full() into fresh buffers. */
void vst_small(struct vst_buf *b);
void vst_full(struct vst_buf *b);

/* Encode (asserting success) into a fresh buffer. */
void vst_encode(const struct virtio_state *s, unsigned n, struct vst_buf *b);
void vst_buf_free(struct vst_buf *b);

/*
 * Offset of the header of the `nth` (0-based) record of `type` in a
 * well-formed stream, searching the top level and inside DEVICE containers.
 * Fails the test if there is none.
 */
size_t vst_find(const struct vst_buf *b, uint16_t type, unsigned nth);
/* Bytes a record occupies (header, value, padding) in a well-formed stream. */
size_t vst_rec_size(const struct vst_buf *b, size_t at);

/*
 * Replace b[at, at + old_n) by new_n bytes from `src` (NULL: zeros).  The
 * DEVICE container strictly enclosing `at` grows or shrinks accordingly,
 * total_len is updated and the CRC recomputed.
 */
void vst_splice(struct vst_buf *b, size_t at, size_t old_n, const void *src, size_t new_n);
/* Value of the nth record of `type` (see vst_find). */
uint8_t *vst_val(struct vst_buf *b, uint16_t type, unsigned nth);
/* Overwrite the length field of the record at `at` (nothing else moves). */
void vst_set_len(struct vst_buf *b, size_t at, uint32_t len);
/* Remove the nth record of `type` entirely (lengths and CRC repaired). */
void vst_drop(struct vst_buf *b, uint16_t type, unsigned nth);
/*
 * What flipping bit `bit` of the well-formed stream `b` (CRC recomputed)
 * means, if a reader accepts it (docs/VIRTIO_STATE.md sections 1 and 6):
 *   VST_FLIP_IGNORED       a bit readers ignore: the stream's minor version,
 *                          the OPTIONAL flag of a record type the reader
 *                          knows (except BACKEND_OPAQUE, which keeps it), a
 *                          reserved field inside a value, or a length grown
 *                          into the zero padding of a fixed-layout record
 *                          (a newer minor's tail); it means `b` itself
 *   VST_FLIP_SKIPS_RECORD  the type of an OPTIONAL record now names a type
 *                          the reader does not know: it means `b` without
 *                          that record
 *   VST_FLIP_SHORTER       CONFIG_SPACE's len or VQ_INFLIGHT's count got
 *                          smaller: the rest of the value is a tail, so it
 *                          means the record cut after the shorter payload
 *   VST_FLIP_VALUE         anything else: it means exactly the flipped bytes
 * *want receives (malloc'd) the canonical stream of that meaning: what an
 * accepted flip must encode back to.
 */
enum vst_flip { VST_FLIP_VALUE, VST_FLIP_IGNORED, VST_FLIP_SKIPS_RECORD, VST_FLIP_SHORTER };
enum vst_flip vst_flip_meaning(const struct vst_buf *b, size_t bit, struct vst_buf *want);
/* Recompute the CRC after a test poked bytes directly. */
void vst_fix_crc(struct vst_buf *b);
/* A whole record (header + value + zero padding) of the given fields. */
size_t vst_make_rec(uint8_t *dst, uint16_t type, uint8_t flags, const uint8_t sel[8],
                    const void *val, uint32_t len);

/*
 * Decode `b` and expect failure `err` whose reason contains `needle`;
 * also checks that nothing is returned.
 */
void vst_expect_reject(const struct vst_buf *b, int err, const char *needle);
/* Decode `b`, expecting success with `n` devices, into the caller's array. */
void vst_expect_ok(const struct vst_buf *b, struct virtio_state *out, unsigned max, unsigned n);
/* Field-by-field equality of two states (including in-flight lists and blobs). */
void vst_assert_equal(const struct virtio_state *a, const struct virtio_state *b);

#endif /* TESTS_UNIT_MIGRATION_TEST_VIRTIO_STATE_H */
