/*
 * The reading half of the migration stream (stream.h).
 *
 * Why it is careful: the stream comes from another host, which may be
 * compromised, or from a file anyone may have edited.  The reader trusts no
 * length: the global cap and the section's own cap are checked before a
 * byte of the payload is read or a buffer allocated, a payload is handed to
 * its owner only once its CRC matches, the payload buffer grows only with
 * bytes that have arrived, and everything the header says
 * (flags, version, whether the id is known) is judged only after the CRC has
 * vouched for it, so a corrupted byte is reported as corruption.  Each
 * refusal is one line that names the section.
 */
#include "migration/stream.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PFX "migration stream: "

static void *default_realloc(void *p, size_t n)
{
    return realloc(p, n);
}

void mig_stream_reader_init(struct mig_stream_reader *r, const struct mig_transport *t,
                            const struct mig_section_desc *known, size_t nknown, uint16_t arch,
                            struct errbuf *err)
{
    memset(r, 0, sizeof(*r));
    r->t = *t;
    r->known = known;
    r->nknown = known ? nknown : 0;
    r->arch = arch;
    r->err = err;
    r->realloc_fn = default_realloc;
}

void mig_stream_reader_free(struct mig_stream_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->buf_cap = 0;
}

static const struct mig_section_desc *find_desc(const struct mig_stream_reader *r, uint32_t id)
{
    for (size_t i = 0; i < r->nknown; i++)
        if (r->known[i].id == id)
            return &r->known[i];
    return NULL;
}

const char *mig_stream_section_name(const struct mig_stream_reader *r, uint32_t id)
{
    if (id == MIG_SEC_END)
        return "end";
    const struct mig_section_desc *d = find_desc(r, id);
    return d ? d->name : NULL;
}

static const char *arch_name(uint16_t arch)
{
    switch (arch) {
    case MIG_ARCH_X86_64:
        return "x86_64";
    case MIG_ARCH_AARCH64:
        return "aarch64";
    default:
        return "unknown";
    }
}

/* Record "migration stream: section "NAME" instance I: <what>" and return -err. */
static int sec_fail(struct mig_stream_reader *r, uint32_t id, uint32_t instance, int err,
                    const char *fmt, ...) __printf(5, 6);
static int sec_fail(struct mig_stream_reader *r, uint32_t id, uint32_t instance, int err,
                    const char *fmt, ...)
{
    char what[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    const char *name = mig_stream_section_name(r, id);
    int code =
        err == EIO || err == ETIMEDOUT || err == ENOMEM ? WISP_EXIT_FAILURE : WISP_EXIT_USAGE;
    if (name)
        return err_set(r->err, code, err, PFX "section \"%s\" instance %u: %s", name, instance,
                       what);
    return err_set(r->err, code, err, PFX "section 0x%08x instance %u: %s", id, instance, what);
}

/*
 * Read exactly len bytes.  A short read is the end of the stream; `where`
 * says what was cut.  Transport errors keep their errno.
 */
static int read_exact(struct mig_stream_reader *r, void *buf, size_t len, uint32_t id,
                      uint32_t instance, const char *where)
{
    ssize_t n = r->t.read(r->t.ctx, buf, len);
    if (n < 0) {
        if (id == 0)
            return err_set(r->err, WISP_EXIT_FAILURE, (int)-n, PFX "%s: %s", where,
                           strerror((int)-n));
        return sec_fail(r, id, instance, (int)-n, "%s: %s", where, strerror((int)-n));
    }
    if ((size_t)n != len) {
        if (id == 0)
            return err_set(r->err, WISP_EXIT_USAGE, EBADMSG, PFX "the stream ends inside %s",
                           where);
        return sec_fail(r, id, instance, EBADMSG, "the stream ends inside the %s", where);
    }
    return 0;
}

static int read_header(struct mig_stream_reader *r, uint32_t *flags)
{
    uint8_t h[MIG_STREAM_HDR_LEN];
    if (r->started)
        return err_set(r->err, WISP_EXIT_FAILURE, EINVAL, PFX "header read twice");
    int e = read_exact(r, h, sizeof(h), 0, 0, "the stream header");
    if (e < 0)
        return e;
    if (memcmp(h, MIG_STREAM_MAGIC, MIG_STREAM_MAGIC_LEN) != 0)
        return err_set(r->err, WISP_EXIT_USAGE, EBADMSG,
                       PFX "not a wisp migration stream (bad magic)");
    uint32_t crc = le32_get(h + 16), want = mig_stream_crc32c(0, h, 16);
    if (crc != want)
        return err_set(r->err, WISP_EXIT_USAGE, EBADMSG,
                       PFX "header checksum mismatch (stored 0x%08x, computed 0x%08x)", crc, want);
    uint16_t version = le16_get(h + 8), arch = le16_get(h + 10);
    uint32_t fl = le32_get(h + 12);
    if (version > MIG_STREAM_VERSION)
        return err_set(r->err, WISP_EXIT_USAGE, EPROTO,
                       PFX "format version %u is newer than this wisp (max %u)", version,
                       MIG_STREAM_VERSION);
    if (version < MIG_STREAM_VERSION_MIN)
        return err_set(r->err, WISP_EXIT_USAGE, EPROTO,
                       PFX "format version %u is older than this wisp reads (min %u)", version,
                       MIG_STREAM_VERSION_MIN);
    if (arch != r->arch)
        return err_set(r->err, WISP_EXIT_USAGE, EPROTO,
                       PFX "the stream is for architecture %s (%u), this wisp runs %s",
                       arch_name(arch), arch, arch_name(r->arch));
    if (fl & ~MIG_STREAM_F_KNOWN)
        return err_set(r->err, WISP_EXIT_USAGE, EPROTO, PFX "unknown stream flags 0x%08x",
                       fl & ~MIG_STREAM_F_KNOWN);
    r->started = true;
    if (flags)
        *flags = fl;
    return 0;
}

/* Read and checksum a payload without keeping it (unknown or END sections). */
static int skim_payload(struct mig_stream_reader *r, uint32_t id, uint32_t instance, uint32_t len,
                        uint32_t *crc, uint8_t *keep, size_t keep_len)
{
    uint8_t chunk[4096];
    while (len) {
        uint32_t n = MIN(len, (uint32_t)sizeof(chunk));
        int e = read_exact(r, chunk, n, id, instance, "payload");
        if (e < 0)
            return e;
        *crc = mig_stream_crc32c(*crc, chunk, n);
        if (keep && keep_len) {
            size_t k = MIN(keep_len, (size_t)n);
            memcpy(keep, chunk, k);
            keep += k;
            keep_len -= k;
        }
        len -= n;
    }
    return 0;
}

/*
 * Read a payload of `len` (already capped) into r->buf.  The buffer grows
 * with the bytes that actually arrive, MIG_STREAM_READ_CHUNK at a time, so a
 * header that promises 16 MiB and sends nothing costs at most one chunk.
 */
static int read_payload(struct mig_stream_reader *r, uint32_t id, uint32_t instance, uint32_t len)
{
    size_t done = 0;
    while (done < len) {
        size_t step = MIN((size_t)len - done, (size_t)MIG_STREAM_READ_CHUNK);
        if (done + step > r->buf_cap) {
            size_t cap = MAX(done + step, MIN((size_t)len, r->buf_cap * 2));
            uint8_t *b = r->realloc_fn(r->buf, cap);
            if (!b)
                return sec_fail(r, id, instance, ENOMEM, "no memory for %zu bytes", cap);
            r->buf = b;
            r->buf_cap = cap;
        }
        int e = read_exact(r, r->buf + done, step, id, instance, "payload");
        if (e < 0)
            return e;
        done += step;
    }
    return 0;
}

static int check_crc(struct mig_stream_reader *r, uint32_t id, uint32_t instance, uint32_t want)
{
    uint8_t c[MIG_SECTION_CRC_LEN];
    int e = read_exact(r, c, sizeof(c), id, instance, "checksum");
    if (e < 0)
        return e;
    uint32_t crc = le32_get(c);
    if (crc != want)
        return sec_fail(r, id, instance, EBADMSG,
                        "checksum mismatch (stored 0x%08x, computed 0x%08x)", crc, want);
    return 0;
}

/* The END marker: 8 bytes, le64 count of the sections before it. */
static int read_end(struct mig_stream_reader *r, uint32_t instance, uint16_t version,
                    uint16_t flags, uint32_t len, uint32_t crc)
{
    uint8_t p[MIG_END_LEN] = {0};
    if (len != MIG_END_LEN)
        return sec_fail(r, MIG_SEC_END, instance, EBADMSG, "length %u, must be %u", len,
                        MIG_END_LEN);
    int e = skim_payload(r, MIG_SEC_END, instance, len, &crc, p, sizeof(p));
    if (e == 0)
        e = check_crc(r, MIG_SEC_END, instance, crc);
    if (e < 0)
        return e;
    if (instance != 0 || version != 1 || flags != MIG_SEC_F_MANDATORY)
        return sec_fail(r, MIG_SEC_END, instance, EBADMSG,
                        "malformed end marker (version %u, flags 0x%x)", version, flags);
    uint64_t count = le64_get(p);
    if (count != r->sections)
        return sec_fail(r, MIG_SEC_END, instance, EBADMSG,
                        "the end marker counts %llu sections, the stream had %llu",
                        (unsigned long long)count, (unsigned long long)r->sections);
    r->ended = true;
    return 0;
}

static int read_section(struct mig_stream_reader *r, struct mig_section *s)
{
    for (;;) {
        uint8_t h[MIG_SECTION_HDR_LEN];
        ssize_t n = r->t.read(r->t.ctx, h, sizeof(h));
        if (n == 0)
            return err_set(r->err, WISP_EXIT_USAGE, EBADMSG,
                           PFX "the stream ends after %llu sections, without an end marker",
                           (unsigned long long)r->sections);
        if (n > 0 && (size_t)n != sizeof(h))
            return err_set(r->err, WISP_EXIT_USAGE, EBADMSG,
                           PFX "the stream ends inside the header of section %llu",
                           (unsigned long long)r->sections + 1);
        if (n < 0)
            return err_set(r->err, WISP_EXIT_FAILURE, (int)-n, PFX "reading section %llu: %s",
                           (unsigned long long)r->sections + 1, strerror((int)-n));

        uint32_t id = le32_get(h), instance = le32_get(h + 4), len = le32_get(h + 12);
        uint16_t version = le16_get(h + 8), flags = le16_get(h + 10);
        uint32_t crc = mig_stream_crc32c(0, h, sizeof(h));

        if (id == MIG_SEC_END) {
            int e = read_end(r, instance, version, flags, len, crc);
            if (e < 0)
                return e;
            *s = (struct mig_section){.id = MIG_SEC_END, .version = version, .flags = flags};
            return 0;
        }

        /* Caps first: nothing is read or allocated for an oversized section. */
        const struct mig_section_desc *d = find_desc(r, id);
        if (len > MIG_STREAM_MAX_SECTION)
            return sec_fail(r, id, instance, E2BIG, "length %u exceeds the stream's cap of %u", len,
                            MIG_STREAM_MAX_SECTION);
        if (d && len > d->max_len)
            return sec_fail(r, id, instance, E2BIG, "length %u exceeds this section's cap of %u",
                            len, d->max_len);

        int e;
        if (!d) {
            /* Unknown: checksum it in chunks, then skip it if it is optional. */
            e = skim_payload(r, id, instance, len, &crc, NULL, 0);
            if (e == 0)
                e = check_crc(r, id, instance, crc);
            if (e < 0)
                return e;
            r->sections++;
            if (id == 0)
                return sec_fail(r, id, instance, EBADMSG, "section id 0 is invalid");
            if (flags & ~MIG_SEC_F_KNOWN)
                return sec_fail(r, id, instance, EPROTO, "unknown section flags 0x%04x",
                                flags & ~MIG_SEC_F_KNOWN);
            if (flags & MIG_SEC_F_MANDATORY)
                return sec_fail(r, id, instance, EPROTO,
                                "unknown mandatory section (version %u, %u bytes)", version, len);
            r->skipped++;
            continue;
        }

        e = read_payload(r, id, instance, len);
        if (e < 0)
            return e;
        if (len)
            crc = mig_stream_crc32c(crc, r->buf, len);
        e = check_crc(r, id, instance, crc);
        if (e < 0)
            return e;
        r->sections++;
        if (flags & ~MIG_SEC_F_KNOWN)
            return sec_fail(r, id, instance, EPROTO, "unknown section flags 0x%04x",
                            flags & ~MIG_SEC_F_KNOWN);
        if (version > d->max_version)
            return sec_fail(r, id, instance, EPROTO, "version %u is newer than this wisp (max %u)",
                            version, d->max_version);
        if (version < d->min_version)
            return sec_fail(r, id, instance, EPROTO,
                            "version %u is older than this wisp reads (min %u)", version,
                            d->min_version);
        *s = (struct mig_section){
            .id = id,
            .instance = instance,
            .version = version,
            .flags = flags,
            .len = len,
            .payload = len ? r->buf : NULL,
            .desc = d,
        };
        return 0;
    }
}

int mig_stream_read_header(struct mig_stream_reader *r, uint32_t *flags)
{
    if (r->failed)
        return err_set(r->err, WISP_EXIT_FAILURE, EINVAL, PFX "read after a refusal");
    int e = read_header(r, flags);
    r->failed = e < 0;
    return e;
}

int mig_stream_read_section(struct mig_stream_reader *r, struct mig_section *s)
{
    if (r->failed || !r->started || r->ended)
        return err_set(r->err, WISP_EXIT_FAILURE, EINVAL, PFX "section read %s",
                       r->failed    ? "after a refusal"
                       : r->started ? "after the end marker"
                                    : "before the header");
    int e = read_section(r, s);
    r->failed = e < 0;
    return e;
}

int mig_stream_read_finish(struct mig_stream_reader *r)
{
    uint8_t b;
    if (!r->ended)
        return err_set(r->err, WISP_EXIT_FAILURE, EINVAL, PFX "finish before the end marker");
    ssize_t n = r->t.read(r->t.ctx, &b, 1);
    if (n < 0)
        return err_set(r->err, WISP_EXIT_FAILURE, (int)-n, PFX "after the end marker: %s",
                       strerror((int)-n));
    if (n > 0)
        return err_set(r->err, WISP_EXIT_USAGE, EBADMSG, PFX "trailing bytes after the end marker");
    return 0;
}
