/*
 * The writing half of the migration stream (stream.h): header, sections and
 * the END marker, each field encoded on its own in little-endian.  The writer
 * refuses what the reader would refuse (unknown flags, oversized sections),
 * so a wisp never produces a stream another wisp of the same version cannot
 * read.
 */
#include "migration/stream.h"

#include <errno.h>
#include <string.h>

void mig_stream_writer_init(struct mig_stream_writer *w, const struct mig_transport *t)
{
    memset(w, 0, sizeof(*w));
    w->t = *t;
}

int mig_stream_write_header(struct mig_stream_writer *w, uint16_t arch, uint32_t flags)
{
    uint8_t h[MIG_STREAM_HDR_LEN];
    if (w->started || (flags & ~MIG_STREAM_F_KNOWN) || arch == 0)
        return -EINVAL;
    memcpy(h, MIG_STREAM_MAGIC, MIG_STREAM_MAGIC_LEN);
    le16_put(h + 8, MIG_STREAM_VERSION);
    le16_put(h + 10, arch);
    le32_put(h + 12, flags);
    le32_put(h + 16, mig_stream_crc32c(0, h, 16));
    int r = w->t.write(w->t.ctx, h, sizeof(h));
    if (r == 0)
        w->started = true;
    return r;
}

/* Header, payload and CRC of one section; the caller has checked the fields. */
static int put_section(struct mig_stream_writer *w, uint32_t id, uint32_t instance,
                       uint16_t version, uint16_t flags, const void *payload, size_t len)
{
    uint8_t h[MIG_SECTION_HDR_LEN], c[MIG_SECTION_CRC_LEN];
    le32_put(h, id);
    le32_put(h + 4, instance);
    le16_put(h + 8, version);
    le16_put(h + 10, flags);
    le32_put(h + 12, (uint32_t)len);
    uint32_t crc = mig_stream_crc32c(0, h, sizeof(h));
    if (len)
        crc = mig_stream_crc32c(crc, payload, len);
    le32_put(c, crc);

    int r = w->t.write(w->t.ctx, h, sizeof(h));
    if (r == 0 && len)
        r = w->t.write(w->t.ctx, payload, len);
    if (r == 0)
        r = w->t.write(w->t.ctx, c, sizeof(c));
    return r;
}

int mig_stream_write_section(struct mig_stream_writer *w, uint32_t id, uint32_t instance,
                             uint16_t version, uint16_t flags, const void *payload, size_t len)
{
    if (!w->started || w->ended || id == 0 || id == MIG_SEC_END || (flags & ~MIG_SEC_F_KNOWN))
        return -EINVAL;
    if (len > MIG_STREAM_MAX_SECTION)
        return -E2BIG;
    if (len && !payload)
        return -EINVAL;
    int r = put_section(w, id, instance, version, flags, payload, len);
    if (r == 0)
        w->sections++;
    return r;
}

int mig_stream_write_end(struct mig_stream_writer *w)
{
    uint8_t p[MIG_END_LEN];
    if (!w->started || w->ended)
        return -EINVAL;
    le64_put(p, w->sections);
    int r = put_section(w, MIG_SEC_END, 0, 1, MIG_SEC_F_MANDATORY, p, sizeof(p));
    if (r == 0)
        w->ended = true;
    return r;
}
