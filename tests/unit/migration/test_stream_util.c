/* Fixtures of the migration stream tests (see test_stream.h). */
#include "tests/unit/migration/test_stream.h"

#include <criterion/criterion.h>
#include <string.h>

const struct mig_section_desc ts_known[] = {
    {MIG_SEC_MACHINE, "machine", 1, 1, MIG_MACHINE_MAX_LEN},
    {MIG_SEC_RAM, "ram", 1, 1, MIG_RAM_MAX_LEN},
    {TS_SEC_DEV, "test-dev", 1, 2, TS_DEV_CAP},
    {TS_SEC_SMALL, "tiny", 1, 1, 8},
};
const size_t ts_nknown = sizeof(ts_known) / sizeof(ts_known[0]);

void ts_forge_init(struct ts_forge *f)
{
    vstate_out_init(&f->o);
}

void ts_forge_free(struct ts_forge *f)
{
    vstate_out_free(&f->o);
}

void ts_header(struct ts_forge *f, uint16_t version, uint16_t arch, uint32_t flags)
{
    size_t start = f->o.len;
    vstate_put_bytes(&f->o, MIG_STREAM_MAGIC, MIG_STREAM_MAGIC_LEN);
    vstate_put_u16(&f->o, version);
    vstate_put_u16(&f->o, arch);
    vstate_put_u32(&f->o, flags);
    cr_assert_eq(f->o.err, 0);
    vstate_put_u32(&f->o, mig_stream_crc32c(0, f->o.buf + start, 16));
}

void ts_good_header(struct ts_forge *f)
{
    ts_header(f, MIG_STREAM_VERSION, MIG_ARCH_X86_64, 0);
}

void ts_section_raw(struct ts_forge *f, uint32_t id, uint32_t instance, uint16_t version,
                    uint16_t flags, uint32_t declared_len, const void *payload, size_t len)
{
    size_t start = f->o.len;
    vstate_put_u32(&f->o, id);
    vstate_put_u32(&f->o, instance);
    vstate_put_u16(&f->o, version);
    vstate_put_u16(&f->o, flags);
    vstate_put_u32(&f->o, declared_len);
    vstate_put_bytes(&f->o, payload, len);
    cr_assert_eq(f->o.err, 0);
    vstate_put_u32(&f->o, mig_stream_crc32c(0, f->o.buf + start, f->o.len - start));
}

void ts_section(struct ts_forge *f, uint32_t id, uint32_t instance, uint16_t version,
                uint16_t flags, const void *payload, size_t len)
{
    ts_section_raw(f, id, instance, version, flags, (uint32_t)len, payload, len);
}

void ts_end(struct ts_forge *f, uint64_t count)
{
    uint8_t p[8];
    le64_put(p, count);
    ts_section(f, MIG_SEC_END, 0, 1, MIG_SEC_F_MANDATORY, p, sizeof(p));
}

void ts_reader_init(struct ts_reader *tr, const void *buf, size_t len, struct errbuf *err)
{
    mig_mem_transport_init(&tr->m, &tr->t, buf, len, 0);
    mig_stream_reader_init(&tr->r, &tr->t, ts_known, ts_nknown, MIG_ARCH_X86_64, err);
}

void ts_reader_free(struct ts_reader *tr)
{
    mig_stream_reader_free(&tr->r);
    mig_mem_transport_free(&tr->m);
}

int ts_read_all(const void *buf, size_t len, struct errbuf *err, unsigned *delivered)
{
    struct ts_reader tr;
    struct mig_section s;
    unsigned n = 0;
    ts_reader_init(&tr, buf, len, err);
    int e = mig_stream_read_header(&tr.r, NULL);
    while (e == 0) {
        e = mig_stream_read_section(&tr.r, &s);
        if (e < 0 || s.id == MIG_SEC_END)
            break;
        n++;
    }
    if (e == 0)
        e = mig_stream_read_finish(&tr.r);
    ts_reader_free(&tr);
    if (delivered)
        *delivered = n;
    return e;
}

bool ts_err_has(const struct errbuf *err, const char *needle)
{
    if (!err_isset(err) || strchr(err->msg, '\n'))
        return false;
    return strstr(err->msg, needle) != NULL;
}
