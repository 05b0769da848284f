/*
 * Versioned state buffers: how a device or vCPU writes its state for
 * snapshot and migration, and reads it back.  `migration/` owns the byte
 * format; devices only call these typed put/get helpers, so the encoding is
 * explicit little-endian fields, never a raw struct dump.
 *
 * A state blob is a sequence of sections:
 *   le32 magic 'WSEC' | le16 version | le16 reserved | le32 length | payload
 * Readers are defensive: every get is bounds-checked against the section,
 * a short read or a trailing byte is an error, and sizes are capped.
 */
#ifndef MIGRATION_VSTATE_H
#define MIGRATION_VSTATE_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/util.h"

#define VSTATE_MAX_SECTION (16U * 1024 * 1024)

/* Growable output buffer.  On allocation failure `err` sticks at -ENOMEM. */
struct vstate_out {
    uint8_t *buf;
    size_t len;
    size_t cap;
    int err;
    size_t section_start; /* offset of the open section header, or SIZE_MAX */
};

/* Bounded input view. */
struct vstate_in {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    int err;    /* sticky: first error (-EBADMSG, -ENOSPC, ...) */
    size_t end; /* end of the current section payload */
};

void vstate_out_init(struct vstate_out *o);
void vstate_out_free(struct vstate_out *o);

/* Open a section with `name` (up to 16 bytes, for error messages) and version. */
void vstate_begin(struct vstate_out *o, const char *name, uint16_t version);
/* Close the open section (fills in its length).  Returns o->err. */
int vstate_end(struct vstate_out *o) __must_check;

void vstate_put_u8(struct vstate_out *o, uint8_t v);
void vstate_put_u16(struct vstate_out *o, uint16_t v);
void vstate_put_u32(struct vstate_out *o, uint32_t v);
void vstate_put_u64(struct vstate_out *o, uint64_t v);
void vstate_put_bytes(struct vstate_out *o, const void *p, size_t n);

void vstate_in_init(struct vstate_in *in, const void *buf, size_t len);

/*
 * Enter the next section, which must be called `name`; its version must be in
 * [min_version, max_version].  Stores the version in *version.
 */
int vstate_enter(struct vstate_in *in, const char *name, uint16_t min_version, uint16_t max_version,
                 uint16_t *version) __must_check;
/* Leave the section; -EBADMSG if payload bytes were left unread. */
int vstate_leave(struct vstate_in *in) __must_check;

uint8_t vstate_get_u8(struct vstate_in *in);
uint16_t vstate_get_u16(struct vstate_in *in);
uint32_t vstate_get_u32(struct vstate_in *in);
uint64_t vstate_get_u64(struct vstate_in *in);
void vstate_get_bytes(struct vstate_in *in, void *p, size_t n);

#endif /* MIGRATION_VSTATE_H */
