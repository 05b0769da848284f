/*
 * RAM sections of the migration stream (stream_sections.h): guest pages as
 * (gpa, page count, flags) records, written in rounds and applied on the
 * destination only inside its own RAM.
 *
 * Why the loader checks a whole section before writing a page: a record's
 * gpa and length come from another host.  Writing outside guest RAM would be
 * a host memory write (the CVE-2014-7840 class), and writing half a section
 * before finding a bad record leaves the destination's memory in a state no
 * source ever had.  So every record is validated against the destination's
 * layout (aligned, inside one range, no overflow, data present) and only then
 * are the pages handed to the sink.
 */
#include "migration/stream_sections.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PFX "migration stream: section \"ram\" instance %u: "

int mig_mem_layout_check(const struct mig_mem_layout *l, char *why, size_t whylen)
{
    char dummy[1];
    if (!why || !whylen) {
        why = dummy;
        whylen = sizeof(dummy);
    }
    if (l->n == 0 || l->n > MIG_MAX_MEM_RANGES) {
        snprintf(why, whylen, "%u memory ranges (1 to %u allowed)", l->n, MIG_MAX_MEM_RANGES);
        return -EINVAL;
    }
    for (uint32_t i = 0; i < l->n; i++) {
        const struct mig_mem_range *m = &l->r[i];
        uint64_t end;
        if (!range_end(m->gpa, m->size, &end) || !is_aligned(m->gpa, MIG_PAGE_SIZE) ||
            !is_aligned(m->size, MIG_PAGE_SIZE)) {
            snprintf(why, whylen,
                     "memory range %u (0x%llx, 0x%llx bytes) is empty, unaligned or wraps", i,
                     (unsigned long long)m->gpa, (unsigned long long)m->size);
            return -EINVAL;
        }
        if (i && m->gpa < l->r[i - 1].gpa + l->r[i - 1].size) {
            snprintf(why, whylen, "memory range %u overlaps or precedes range %u", i, i - 1);
            return -EINVAL;
        }
    }
    return 0;
}

/* Is [gpa, gpa + len) inside one range?  len > 0 and no overflow already checked. */
static bool in_layout(const struct mig_mem_layout *l, uint64_t gpa, uint64_t len)
{
    for (uint32_t i = 0; i < l->n; i++) {
        const struct mig_mem_range *m = &l->r[i];
        if (gpa >= m->gpa && gpa - m->gpa <= m->size && len <= m->size - (gpa - m->gpa))
            return true;
    }
    return false;
}

/* One parsed record. */
struct ram_rec {
    uint64_t gpa;
    uint64_t len; /* bytes */
    uint32_t flags;
    const uint8_t *data; /* NULL for ZERO */
};

/*
 * Parse the record at *pos and check it; advances *pos.  0, or -errno with
 * the message recorded.
 */
static int next_rec(const struct mig_section *s, const struct mig_mem_layout *l, size_t *pos,
                    unsigned idx, struct ram_rec *rec, struct errbuf *err)
{
    size_t left = s->len - *pos;
    if (left < MIG_RAM_REC_HDR)
        return err_set(err, WISP_EXIT_USAGE, EBADMSG,
                       PFX "record %u: header cut short (%zu of %u bytes)", s->instance, idx, left,
                       MIG_RAM_REC_HDR);
    const uint8_t *h = s->payload + *pos;
    uint64_t gpa = le64_get(h);
    uint32_t npages = le32_get(h + 8), flags = le32_get(h + 12);
    *pos += MIG_RAM_REC_HDR;
    left -= MIG_RAM_REC_HDR;

    if (flags & ~MIG_RAM_F_KNOWN)
        return err_set(err, WISP_EXIT_USAGE, EBADMSG, PFX "record %u: unknown flags 0x%x",
                       s->instance, idx, flags & ~MIG_RAM_F_KNOWN);
    if (npages == 0)
        return err_set(err, WISP_EXIT_USAGE, EBADMSG, PFX "record %u: no pages", s->instance, idx);
    if (!is_aligned(gpa, MIG_PAGE_SIZE))
        return err_set(err, WISP_EXIT_USAGE, ERANGE,
                       PFX "record %u: gpa 0x%llx is not page aligned", s->instance, idx,
                       (unsigned long long)gpa);
    /* npages < 2^32 and the page size is 2^12: the product fits in 64 bits. */
    uint64_t len = (uint64_t)npages * MIG_PAGE_SIZE, end;
    if (!range_end(gpa, len, &end))
        return err_set(err, WISP_EXIT_USAGE, ERANGE,
                       PFX "record %u: 0x%llx + %u pages wraps the address space", s->instance, idx,
                       (unsigned long long)gpa, npages);
    if (!in_layout(l, gpa, len))
        return err_set(err, WISP_EXIT_USAGE, ERANGE,
                       PFX "record %u: 0x%llx + %u pages is outside the destination's RAM",
                       s->instance, idx, (unsigned long long)gpa, npages);
    rec->gpa = gpa;
    rec->len = len;
    rec->flags = flags;
    rec->data = NULL;
    if (!(flags & MIG_RAM_F_ZERO)) {
        if (len > left)
            return err_set(err, WISP_EXIT_USAGE, EBADMSG,
                           PFX "record %u: %u pages of data, only %zu bytes left", s->instance, idx,
                           npages, left);
        rec->data = s->payload + *pos;
        *pos += (size_t)len;
    }
    return 0;
}

int mig_ram_load(const struct mig_section *s, const struct mig_mem_layout *layout,
                 mig_ram_sink_fn sink, void *ctx, struct errbuf *err)
{
    struct ram_rec rec;
    size_t pos;
    unsigned idx;
    int e;

    if (s->id != MIG_SEC_RAM || (s->len && !s->payload))
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "migration stream: not a RAM section");
    /* Pass 1: everything checked, nothing written. */
    for (pos = 0, idx = 0; pos < s->len; idx++) {
        e = next_rec(s, layout, &pos, idx, &rec, err);
        if (e < 0)
            return e;
    }
    /* Pass 2: the same records, now known to be good. */
    for (pos = 0, idx = 0; pos < s->len; idx++) {
        e = next_rec(s, layout, &pos, idx, &rec, err);
        if (e == 0)
            e = sink(ctx, rec.gpa, rec.data, rec.len);
        if (e < 0)
            return err_set(err, WISP_EXIT_FAILURE, -e,
                           PFX "record %u: writing 0x%llx + 0x%llx failed: %s", s->instance, idx,
                           (unsigned long long)rec.gpa, (unsigned long long)rec.len, strerror(-e));
    }
    return 0;
}

/* ---- Writer ---- */

void mig_ram_writer_init(struct mig_ram_writer *rw, struct mig_stream_writer *w)
{
    memset(rw, 0, sizeof(*rw));
    rw->w = w;
    rw->rec = SIZE_MAX;
}

void mig_ram_writer_free(struct mig_ram_writer *rw)
{
    free(rw->buf);
    rw->buf = NULL;
}

int mig_ram_flush(struct mig_ram_writer *rw)
{
    if (rw->len == 0)
        return 0;
    int e = mig_stream_write_section(rw->w, MIG_SEC_RAM, 0, MIG_RAM_VERSION, MIG_SEC_F_MANDATORY,
                                     rw->buf, rw->len);
    rw->len = 0;
    rw->rec = SIZE_MAX;
    if (e == 0)
        rw->sections++;
    return e;
}

static bool page_is_zero(const uint8_t *p)
{
    uint64_t acc = 0;
    for (size_t i = 0; i < MIG_PAGE_SIZE; i += 8)
        acc |= le64_get(p + i);
    return acc == 0;
}

/* Append one page, extending the open record when it is contiguous and of the same kind. */
static int put_page(struct mig_ram_writer *rw, uint64_t gpa, const uint8_t *page)
{
    bool zero = page_is_zero(page);
    uint32_t flags = zero ? MIG_RAM_F_ZERO : 0;

    if (zero)
        rw->zero_pages++;
    else
        rw->data_pages++;

    if (rw->rec != SIZE_MAX) {
        uint8_t *h = rw->buf + rw->rec;
        uint32_t n = le32_get(h + 8);
        if (rw->rec_next == gpa && le32_get(h + 12) == flags && n < UINT32_MAX &&
            (zero || rw->len + MIG_PAGE_SIZE <= MIG_RAM_MAX_LEN)) {
            le32_put(h + 8, n + 1);
            if (!zero) {
                memcpy(rw->buf + rw->len, page, MIG_PAGE_SIZE);
                rw->len += MIG_PAGE_SIZE;
            }
            rw->rec_next = gpa + MIG_PAGE_SIZE;
            return 0;
        }
    }
    size_t need = MIG_RAM_REC_HDR + (zero ? 0 : MIG_PAGE_SIZE);
    if (rw->len + need > MIG_RAM_MAX_LEN) {
        int e = mig_ram_flush(rw);
        if (e < 0)
            return e;
    }
    if (!rw->buf) {
        rw->buf = malloc(MIG_RAM_MAX_LEN);
        if (!rw->buf)
            return -ENOMEM;
    }
    uint8_t *h = rw->buf + rw->len;
    le64_put(h, gpa);
    le32_put(h + 8, 1);
    le32_put(h + 12, flags);
    rw->rec = rw->len;
    rw->len += MIG_RAM_REC_HDR;
    if (!zero) {
        memcpy(rw->buf + rw->len, page, MIG_PAGE_SIZE);
        rw->len += MIG_PAGE_SIZE;
    }
    rw->rec_next = gpa + MIG_PAGE_SIZE;
    return 0;
}

int mig_ram_put(struct mig_ram_writer *rw, uint64_t gpa, const void *host, uint64_t npages)
{
    uint64_t len, end;
    if (!is_aligned(gpa, MIG_PAGE_SIZE) || npages == 0 || !host ||
        __builtin_mul_overflow(npages, (uint64_t)MIG_PAGE_SIZE, &len) || !range_end(gpa, len, &end))
        return -EINVAL;
    const uint8_t *p = host;
    for (uint64_t i = 0; i < npages; i++) {
        int e = put_page(rw, gpa + i * MIG_PAGE_SIZE, p + i * MIG_PAGE_SIZE);
        if (e < 0)
            return e;
    }
    return 0;
}
