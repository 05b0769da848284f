/*
 * Migration stream framing (migration/stream_*.c): CRC-32C vectors, round
 * trips through the memory transport, and every refusal of the reader, each
 * forged so that the check it names is the one that fires (the CRC is
 * recomputed over forged fields).
 */
#include "migration/stream.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "tests/unit/migration/test_stream.h"

/* RFC 3720 appendix B.4 (iSCSI CRC32C examples). */
Test(mig_stream, crc32c_rfc3720_vectors)
{
    uint8_t b[48];
    cr_assert_eq(mig_stream_crc32c(0, "123456789", 9), 0xE3069283u);
    memset(b, 0, 32);
    cr_assert_eq(mig_stream_crc32c(0, b, 32), 0x8A9136AAu);
    memset(b, 0xff, 32);
    cr_assert_eq(mig_stream_crc32c(0, b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    cr_assert_eq(mig_stream_crc32c(0, b, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    cr_assert_eq(mig_stream_crc32c(0, b, 32), 0x113FDB5Cu);
    /* An iSCSI read command PDU. */
    static const uint8_t pdu[48] = {
        0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
        0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    };
    cr_assert_eq(mig_stream_crc32c(0, pdu, sizeof(pdu)), 0xD9963A56u);
    /* In pieces, as the reader computes it. */
    cr_assert_eq(mig_stream_crc32c(mig_stream_crc32c(0, pdu, 13), pdu + 13, 35), 0xD9963A56u);
}

/* A stream written by the writer: header, three sections, END. */
static void write_sample(struct mig_mem_transport *m, uint8_t *big, size_t big_len)
{
    struct mig_transport t;
    struct mig_stream_writer w;
    mig_mem_transport_init(m, &t, NULL, 0, 1 << 20);
    mig_stream_writer_init(&w, &t);
    cr_assert_eq(mig_stream_write_header(&w, MIG_ARCH_X86_64, MIG_STREAM_F_SNAPSHOT), 0);
    cr_assert_eq(mig_stream_write_section(&w, TS_SEC_DEV, 3, 2, MIG_SEC_F_MANDATORY, "abc", 3), 0);
    cr_assert_eq(mig_stream_write_section(&w, TS_SEC_SMALL, 0, 1, 0, NULL, 0), 0);
    cr_assert_eq(mig_stream_write_section(&w, TS_SEC_DEV, 4, 1, 0, big, big_len), 0);
    cr_assert_eq(mig_stream_write_end(&w), 0);
}

Test(mig_stream, round_trip)
{
    struct mig_mem_transport m;
    uint8_t big[TS_DEV_CAP];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 13);
    write_sample(&m, big, sizeof(big));
    cr_assert_eq(m.out_len, MIG_STREAM_HDR_LEN + 4 * (MIG_SECTION_HDR_LEN + 4) + 3 + 0 +
                                sizeof(big) + MIG_END_LEN);

    struct errbuf err = {0};
    struct ts_reader tr;
    struct mig_section s;
    uint32_t flags = 0;
    ts_reader_init(&tr, m.out, m.out_len, &err);
    cr_assert_eq(mig_stream_read_header(&tr.r, &flags), 0);
    cr_assert_eq(flags, MIG_STREAM_F_SNAPSHOT);
    cr_assert_eq(mig_stream_read_section(&tr.r, &s), 0);
    cr_assert(s.id == TS_SEC_DEV && s.instance == 3 && s.version == 2 && s.len == 3);
    cr_assert_eq(s.flags, MIG_SEC_F_MANDATORY);
    cr_assert_str_eq(s.desc->name, "test-dev");
    cr_assert_arr_eq(s.payload, "abc", 3);
    cr_assert_eq(mig_stream_read_section(&tr.r, &s), 0);
    cr_assert(s.id == TS_SEC_SMALL && s.len == 0 && s.payload == NULL);
    cr_assert_eq(mig_stream_read_section(&tr.r, &s), 0);
    cr_assert(s.id == TS_SEC_DEV && s.instance == 4 && s.len == sizeof(big));
    cr_assert_arr_eq(s.payload, big, sizeof(big));
    cr_assert_eq(mig_stream_read_section(&tr.r, &s), 0);
    cr_assert_eq(s.id, MIG_SEC_END);
    cr_assert_eq(mig_stream_read_finish(&tr.r), 0);
    /* Nothing may be read after END. */
    cr_assert_eq(mig_stream_read_section(&tr.r, &s), -EINVAL);
    ts_reader_free(&tr);
    mig_mem_transport_free(&m);
}

Test(mig_stream, writer_refuses_what_readers_refuse)
{
    struct mig_mem_transport m;
    struct mig_transport t;
    struct mig_stream_writer w;
    mig_mem_transport_init(&m, &t, NULL, 0, 1 << 20);
    mig_stream_writer_init(&w, &t);
    cr_assert_eq(mig_stream_write_section(&w, TS_SEC_DEV, 0, 1, 0, "x", 1),
                 -EINVAL); /* no header */
    cr_assert_eq(mig_stream_write_header(&w, MIG_ARCH_X86_64, 0x2), -EINVAL);
    cr_assert_eq(mig_stream_write_header(&w, MIG_ARCH_X86_64, 0), 0);
    cr_assert_eq(mig_stream_write_header(&w, MIG_ARCH_X86_64, 0), -EINVAL);
    cr_assert_eq(mig_stream_write_section(&w, 0, 0, 1, 0, "x", 1), -EINVAL);
    cr_assert_eq(mig_stream_write_section(&w, MIG_SEC_END, 0, 1, 0, "x", 1), -EINVAL);
    cr_assert_eq(mig_stream_write_section(&w, TS_SEC_DEV, 0, 1, 0x4, "x", 1), -EINVAL);
    cr_assert_eq(
        mig_stream_write_section(&w, TS_SEC_DEV, 0, 1, 0, "x", (size_t)MIG_STREAM_MAX_SECTION + 1),
        -E2BIG);
    cr_assert_eq(mig_stream_write_end(&w), 0);
    cr_assert_eq(mig_stream_write_end(&w), -EINVAL);
    cr_assert_eq(mig_stream_write_section(&w, TS_SEC_DEV, 0, 1, 0, "x", 1), -EINVAL);
    mig_mem_transport_free(&m);
}

/* Read only the header of a forged stream. */
static int header_only(struct ts_forge *f, struct errbuf *err)
{
    struct ts_reader tr;
    ts_reader_init(&tr, f->o.buf, f->o.len, err);
    int e = mig_stream_read_header(&tr.r, NULL);
    ts_reader_free(&tr);
    return e;
}

Test(mig_stream, header_refusals)
{
    struct ts_forge f;
    struct errbuf err = {0};

    ts_forge_init(&f);
    ts_good_header(&f);
    f.o.buf[0] = 'X';
    cr_assert_eq(header_only(&f, &err), -EBADMSG);
    cr_assert_str_eq(err.msg, "migration stream: not a wisp migration stream (bad magic)");
    ts_forge_free(&f);

    memset(&err, 0, sizeof(err));
    ts_forge_init(&f);
    ts_header(&f, MIG_STREAM_VERSION + 1, MIG_ARCH_X86_64, 0);
    cr_assert_eq(header_only(&f, &err), -EPROTO);
    cr_assert_str_eq(err.msg, "migration stream: format version 2 is newer than this wisp (max 1)");
    ts_forge_free(&f);

    memset(&err, 0, sizeof(err));
    ts_forge_init(&f);
    ts_header(&f, 0, MIG_ARCH_X86_64, 0);
    cr_assert_eq(header_only(&f, &err), -EPROTO);
    cr_assert(ts_err_has(&err, "format version 0 is older than this wisp reads (min 1)"));
    ts_forge_free(&f);

    memset(&err, 0, sizeof(err));
    ts_forge_init(&f);
    ts_header(&f, MIG_STREAM_VERSION, MIG_ARCH_AARCH64, 0);
    cr_assert_eq(header_only(&f, &err), -EPROTO);
    cr_assert_str_eq(err.msg, "migration stream: the stream is for architecture aarch64 (2), "
                              "this wisp runs x86_64");
    ts_forge_free(&f);

    memset(&err, 0, sizeof(err));
    ts_forge_init(&f);
    ts_header(&f, MIG_STREAM_VERSION, MIG_ARCH_X86_64, 0x80000002u);
    cr_assert_eq(header_only(&f, &err), -EPROTO);
    cr_assert_str_eq(err.msg, "migration stream: unknown stream flags 0x80000002");
    ts_forge_free(&f);

    /* A flipped flag bit with the stale CRC is corruption, not an unknown flag. */
    memset(&err, 0, sizeof(err));
    ts_forge_init(&f);
    ts_good_header(&f);
    f.o.buf[12] ^= 0x2;
    cr_assert_eq(header_only(&f, &err), -EBADMSG);
    cr_assert(ts_err_has(&err, "header checksum mismatch"));
    ts_forge_free(&f);

    for (size_t len = 0; len < MIG_STREAM_HDR_LEN; len++) {
        memset(&err, 0, sizeof(err));
        ts_forge_init(&f);
        ts_good_header(&f);
        f.o.len = len;
        cr_assert_eq(header_only(&f, &err), -EBADMSG, "len %zu", len);
        cr_assert(ts_err_has(&err, "the stream ends inside the stream header"), "%s", err.msg);
        ts_forge_free(&f);
    }
}

Test(mig_stream, unknown_sections)
{
    struct ts_forge f;
    struct errbuf err = {0};
    unsigned n;

    /* Optional: skipped (the END count includes it), the rest is delivered. */
    ts_forge_init(&f);
    ts_good_header(&f);
    ts_section(&f, 0x7777, 1, 9, 0, "later feature", 13);
    ts_section(&f, TS_SEC_DEV, 0, 1, MIG_SEC_F_MANDATORY, "x", 1);
    ts_end(&f, 2);
    cr_assert_eq(ts_read_all(f.o.buf, f.o.len, &err, &n), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    ts_forge_free(&f);

    /* Mandatory: refused by id. */
    ts_forge_init(&f);
    ts_good_header(&f);
    ts_section(&f, 0x7777, 1, 9, MIG_SEC_F_MANDATORY, "later feature", 13);
    ts_end(&f, 1);
    cr_assert_eq(ts_read_all(f.o.buf, f.o.len, &err, &n), -EPROTO);
    cr_assert_str_eq(err.msg, "migration stream: section 0x00007777 instance 1: unknown "
                              "mandatory section (version 9, 13 bytes)");
    ts_forge_free(&f);

    /* A skipped section still has its checksum checked. */
    memset(&err, 0, sizeof(err));
    ts_forge_init(&f);
    ts_good_header(&f);
    ts_section(&f, 0x7777, 1, 9, 0, "later feature", 13);
    f.o.buf[MIG_STREAM_HDR_LEN + MIG_SECTION_HDR_LEN + 2] ^= 1;
    ts_end(&f, 1);
    cr_assert_eq(ts_read_all(f.o.buf, f.o.len, &err, &n), -EBADMSG);
    cr_assert(ts_err_has(&err, "section 0x00007777 instance 1: checksum mismatch"), "%s", err.msg);
    ts_forge_free(&f);
}

Test(mig_stream, section_version_and_flags)
{
    struct ts_forge f;
    struct errbuf err = {0};

    ts_forge_init(&f);
    ts_good_header(&f);
    ts_section(&f, TS_SEC_DEV, 0, 3, MIG_SEC_F_MANDATORY, "x", 1);
    ts_end(&f, 1);
    cr_assert_eq(ts_read_all(f.o.buf, f.o.len, &err, NULL), -EPROTO);
    cr_assert_str_eq(err.msg, "migration stream: section \"test-dev\" instance 0: version 3 is "
                              "newer than this wisp (max 2)");
    ts_forge_free(&f);

    memset(&err, 0, sizeof(err));
    ts_forge_init(&f);
    ts_good_header(&f);
    ts_section(&f, TS_SEC_DEV, 5, 0, MIG_SEC_F_MANDATORY, "x", 1);
    ts_end(&f, 1);
    cr_assert_eq(ts_read_all(f.o.buf, f.o.len, &err, NULL), -EPROTO);
    cr_assert_str_eq(err.msg, "migration stream: section \"test-dev\" instance 5: version 0 is "
                              "older than this wisp reads (min 1)");
    ts_forge_free(&f);

    memset(&err, 0, sizeof(err));
    ts_forge_init(&f);
    ts_good_header(&f);
    ts_section(&f, TS_SEC_DEV, 0, 1, MIG_SEC_F_MANDATORY | 0x100, "x", 1);
    ts_end(&f, 1);
    cr_assert_eq(ts_read_all(f.o.buf, f.o.len, &err, NULL), -EPROTO);
    cr_assert_str_eq(err.msg, "migration stream: section \"test-dev\" instance 0: unknown "
                              "section flags 0x0100");
    ts_forge_free(&f);

    /* Unknown flags on an unknown optional section are refused too. */
    memset(&err, 0, sizeof(err));
    ts_forge_init(&f);
    ts_good_header(&f);
    ts_section(&f, 0x7777, 0, 1, 0x8000, "x", 1);
    ts_end(&f, 1);
    cr_assert_eq(ts_read_all(f.o.buf, f.o.len, &err, NULL), -EPROTO);
    cr_assert(ts_err_has(&err, "unknown section flags 0x8000"), "%s", err.msg);
    ts_forge_free(&f);
}

Test(mig_stream, id_zero_and_reads_after_a_refusal)
{
    struct ts_forge f;
    struct errbuf err = {0};
    struct ts_reader tr;
    struct mig_section s;
    ts_forge_init(&f);
    ts_good_header(&f);
    ts_section(&f, 0, 0, 1, 0, "x", 1);
    ts_section(&f, TS_SEC_DEV, 0, 1, MIG_SEC_F_MANDATORY, "x", 1);
    ts_end(&f, 2);
    ts_reader_init(&tr, f.o.buf, f.o.len, &err);
    cr_assert_eq(mig_stream_read_header(&tr.r, NULL), 0);
    cr_assert_eq(mig_stream_read_section(&tr.r, &s), -EBADMSG);
    cr_assert_str_eq(err.msg, "migration stream: section 0x00000000 instance 0: section id 0 is "
                              "invalid");
    /* The stream is over: the good section behind it is not delivered. */
    cr_assert_eq(mig_stream_read_section(&tr.r, &s), -EINVAL);
    cr_assert_eq(mig_stream_read_header(&tr.r, NULL), -EINVAL);
    ts_reader_free(&tr);
    ts_forge_free(&f);
}

Test(mig_stream, crc_mismatch)
{
    struct ts_forge f;
    struct errbuf err = {0};
    ts_forge_init(&f);
    ts_good_header(&f);
    ts_section(&f, TS_SEC_DEV, 2, 1, MIG_SEC_F_MANDATORY, "payload", 7);
    ts_end(&f, 1);
    f.o.buf[MIG_STREAM_HDR_LEN + MIG_SECTION_HDR_LEN + 3] ^= 0x40;
    cr_assert_eq(ts_read_all(f.o.buf, f.o.len, &err, NULL), -EBADMSG);
    cr_assert(ts_err_has(&err, "section \"test-dev\" instance 2: checksum mismatch (stored 0x"),
              "%s", err.msg);
    ts_forge_free(&f);
}

/* Allocation recorder: the reader must never ask for a capped-out size. */
static size_t biggest_alloc;
static void *recording_realloc(void *p, size_t n)
{
    if (n > biggest_alloc)
        biggest_alloc = n;
    return realloc(p, n);
}

static int read_one_recorded(struct ts_forge *f, struct errbuf *err)
{
    struct ts_reader tr;
    struct mig_section s;
    biggest_alloc = 0;
    ts_reader_init(&tr, f->o.buf, f->o.len, err);
    tr.r.realloc_fn = recording_realloc;
    int e = mig_stream_read_header(&tr.r, NULL);
    if (e == 0)
        e = mig_stream_read_section(&tr.r, &s);
    ts_reader_free(&tr);
    return e;
}

Test(mig_stream, length_caps_before_allocation)
{
    struct ts_forge f;
    struct errbuf err = {0};
    static uint8_t payload[TS_DEV_CAP + 1];

    /* Over the global cap: refused from the header alone, nothing allocated. */
    ts_forge_init(&f);
    ts_good_header(&f);
    ts_section_raw(&f, TS_SEC_DEV, 0, 1, MIG_SEC_F_MANDATORY, 0xFFFFFFF0u, "x", 1);
    cr_assert_eq(read_one_recorded(&f, &err), -E2BIG);
    cr_assert_eq(biggest_alloc, 0);
    cr_assert_str_eq(err.msg, "migration stream: section \"test-dev\" instance 0: length "
                              "4294967280 exceeds the stream's cap of 33554432");
    ts_forge_free(&f);

    /* Over the section's own cap, with the whole payload present and a valid CRC. */
    memset(&err, 0, sizeof(err));
    ts_forge_init(&f);
    ts_good_header(&f);
    ts_section(&f, TS_SEC_DEV, 0, 1, MIG_SEC_F_MANDATORY, payload, TS_DEV_CAP + 1);
    ts_end(&f, 1);
    cr_assert_eq(read_one_recorded(&f, &err), -E2BIG);
    cr_assert_eq(biggest_alloc, 0);
    cr_assert_str_eq(err.msg, "migration stream: section \"test-dev\" instance 0: length 1025 "
                              "exceeds this section's cap of 1024");
    ts_forge_free(&f);

    /* Exactly at the cap: accepted, one allocation of that size. */
    memset(&err, 0, sizeof(err));
    ts_forge_init(&f);
    ts_good_header(&f);
    ts_section(&f, TS_SEC_DEV, 0, 1, MIG_SEC_F_MANDATORY, payload, TS_DEV_CAP);
    ts_end(&f, 1);
    cr_assert_eq(read_one_recorded(&f, &err), 0, "%s", err.msg);
    cr_assert_eq(biggest_alloc, TS_DEV_CAP);
    ts_forge_free(&f);

    /* An unknown optional section is not skipped past the global cap. */
    memset(&err, 0, sizeof(err));
    ts_forge_init(&f);
    ts_good_header(&f);
    ts_section_raw(&f, 0x7777, 0, 1, 0, MIG_STREAM_MAX_SECTION + 1, "x", 1);
    cr_assert_eq(read_one_recorded(&f, &err), -E2BIG);
    cr_assert_eq(biggest_alloc, 0);
    ts_forge_free(&f);
}

/* A header promising a full RAM section followed by a few bytes costs one chunk, not 16 MiB. */
Test(mig_stream, buffer_grows_with_arriving_bytes)
{
    struct ts_forge f;
    struct errbuf err = {0};
    ts_forge_init(&f);
    ts_good_header(&f);
    ts_section_raw(&f, MIG_SEC_RAM, 0, 1, MIG_SEC_F_MANDATORY, MIG_RAM_MAX_LEN, "tiny", 4);
    cr_assert_eq(read_one_recorded(&f, &err), -EBADMSG);
    cr_assert_leq(biggest_alloc, MIG_STREAM_READ_CHUNK);
    cr_assert(ts_err_has(&err, "section \"ram\" instance 0: the stream ends inside the payload"),
              "%s", err.msg);
    ts_forge_free(&f);
}

/* The sample stream, forged: header, 3 sections, END. */
static void forge_sample(struct ts_forge *f)
{
    ts_forge_init(f);
    ts_good_header(f);
    ts_section(f, TS_SEC_DEV, 0, 1, MIG_SEC_F_MANDATORY, "first", 5);
    ts_section(f, 0x7777, 0, 1, 0, "skipped", 7);
    ts_section(f, TS_SEC_SMALL, 9, 1, MIG_SEC_F_MANDATORY, "8 bytes!", 8);
    ts_end(f, 3);
}

Test(mig_stream, truncated_at_every_offset)
{
    struct ts_forge f;
    forge_sample(&f);
    struct errbuf err = {0};
    cr_assert_eq(ts_read_all(f.o.buf, f.o.len, &err, NULL), 0, "%s", err.msg);
    for (size_t len = 0; len < f.o.len; len++) {
        memset(&err, 0, sizeof(err));
        cr_assert_eq(ts_read_all(f.o.buf, len, &err, NULL), -EBADMSG, "len %zu", len);
        cr_assert(ts_err_has(&err, "the stream ends"), "len %zu: %s", len, err.msg);
    }
    ts_forge_free(&f);
}

Test(mig_stream, trailing_bytes_after_end)
{
    struct ts_forge f;
    struct errbuf err = {0};
    forge_sample(&f);
    vstate_put_u8(&f.o, 0);
    cr_assert_eq(ts_read_all(f.o.buf, f.o.len, &err, NULL), -EBADMSG);
    cr_assert_str_eq(err.msg, "migration stream: trailing bytes after the end marker");
    ts_forge_free(&f);
}

Test(mig_stream, end_marker_checked)
{
    struct ts_forge f;
    struct errbuf err = {0};

    /* A whole section cut out: the count no longer matches. */
    ts_forge_init(&f);
    ts_good_header(&f);
    ts_section(&f, TS_SEC_DEV, 0, 1, MIG_SEC_F_MANDATORY, "x", 1);
    ts_end(&f, 2);
    cr_assert_eq(ts_read_all(f.o.buf, f.o.len, &err, NULL), -EBADMSG);
    cr_assert_str_eq(err.msg, "migration stream: section \"end\" instance 0: the end marker "
                              "counts 2 sections, the stream had 1");
    ts_forge_free(&f);

    memset(&err, 0, sizeof(err));
    ts_forge_init(&f);
    ts_good_header(&f);
    ts_section(&f, MIG_SEC_END, 0, 1, MIG_SEC_F_MANDATORY, "1234", 4);
    cr_assert_eq(ts_read_all(f.o.buf, f.o.len, &err, NULL), -EBADMSG);
    cr_assert(ts_err_has(&err, "length 4, must be 8"), "%s", err.msg);
    ts_forge_free(&f);

    memset(&err, 0, sizeof(err));
    ts_forge_init(&f);
    ts_good_header(&f);
    ts_section(&f, MIG_SEC_END, 0, 2, MIG_SEC_F_MANDATORY, "\0\0\0\0\0\0\0\0", 8);
    cr_assert_eq(ts_read_all(f.o.buf, f.o.len, &err, NULL), -EBADMSG);
    cr_assert(ts_err_has(&err, "malformed end marker"), "%s", err.msg);
    ts_forge_free(&f);

    /* No END at all. */
    memset(&err, 0, sizeof(err));
    ts_forge_init(&f);
    ts_good_header(&f);
    ts_section(&f, TS_SEC_DEV, 0, 1, MIG_SEC_F_MANDATORY, "x", 1);
    cr_assert_eq(ts_read_all(f.o.buf, f.o.len, &err, NULL), -EBADMSG);
    cr_assert_str_eq(err.msg, "migration stream: the stream ends after 1 sections, without an "
                              "end marker");
    ts_forge_free(&f);
}

/* security.md G2: every single-bit flip of a stream is refused. */
Test(mig_stream, every_bit_flip_refused)
{
    struct ts_forge f;
    forge_sample(&f);
    for (size_t i = 0; i < f.o.len * 8; i++) {
        struct errbuf err = {0};
        f.o.buf[i / 8] ^= (uint8_t)(1u << (i % 8));
        int e = ts_read_all(f.o.buf, f.o.len, &err, NULL);
        f.o.buf[i / 8] ^= (uint8_t)(1u << (i % 8));
        cr_assert_lt(e, 0, "bit %zu accepted", i);
        cr_assert(err_isset(&err) && !strchr(err.msg, '\n'), "bit %zu", i);
    }
    ts_forge_free(&f);
}
