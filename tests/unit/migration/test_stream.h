/*
 * Fixtures shared by the migration stream tests (test_stream*.c): a forger
 * that writes stream bytes field by field, with any value a hostile source
 * could choose, and recomputes the CRC the way the writer does, so a test
 * that forges a bad length or version reaches the check it names instead of
 * being stopped by the checksum; and a reader set up over those bytes.
 */
#ifndef TESTS_UNIT_MIGRATION_TEST_STREAM_H
#define TESTS_UNIT_MIGRATION_TEST_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migration/stream.h"
#include "migration/vstate.h"

/* Section ids the test reader knows (besides MACHINE and RAM). */
#define TS_SEC_DEV   0x300U /* "test-dev", versions 1..2, cap 1024 */
#define TS_SEC_SMALL 0x301U /* "tiny", version 1, cap 8 */
#define TS_DEV_CAP   1024U

extern const struct mig_section_desc ts_known[];
extern const size_t ts_nknown;

/* A forged stream (a vstate_out used as a byte buffer). */
struct ts_forge {
    struct vstate_out o;
};

void ts_forge_init(struct ts_forge *f);
void ts_forge_free(struct ts_forge *f);
/* A header with any field; its CRC is correct. */
void ts_header(struct ts_forge *f, uint16_t version, uint16_t arch, uint32_t flags);
/* The header this wisp writes (version 1, x86_64, no flags). */
void ts_good_header(struct ts_forge *f);
/*
 * A section whose header says `declared_len` while `len` payload bytes
 * follow, with a CRC computed over what was written (header and payload).
 */
void ts_section_raw(struct ts_forge *f, uint32_t id, uint32_t instance, uint16_t version,
                    uint16_t flags, uint32_t declared_len, const void *payload, size_t len);
/* A consistent section. */
void ts_section(struct ts_forge *f, uint32_t id, uint32_t instance, uint16_t version,
                uint16_t flags, const void *payload, size_t len);
/* An END marker counting `count` sections. */
void ts_end(struct ts_forge *f, uint64_t count);

/* A reader over bytes, with the test's known sections and the errbuf given. */
struct ts_reader {
    struct mig_mem_transport m;
    struct mig_transport t;
    struct mig_stream_reader r;
};
void ts_reader_init(struct ts_reader *tr, const void *buf, size_t len, struct errbuf *err);
void ts_reader_free(struct ts_reader *tr);

/*
 * Read a whole stream (header, sections, finish): 0 or the first error.
 * Counts the sections delivered in *delivered (may be NULL).
 */
int ts_read_all(const void *buf, size_t len, struct errbuf *err, unsigned *delivered);

/* err holds one printable line containing `needle`. */
bool ts_err_has(const struct errbuf *err, const char *needle);

#endif /* TESTS_UNIT_MIGRATION_TEST_STREAM_H */
