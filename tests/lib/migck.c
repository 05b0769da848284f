/* Host-side checks of a test=migck guest (migck.h). */
#include "tests/lib/migck.h"
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void migck_scan(const char *serial, struct migck *m)
{
    size_t len;
    char *text = read_file(serial, &len);
    memset(m, 0, sizeof(*m));
    m->first = m->last = m->blk_s = m->blk_k = -1;
    /* A restored clone's file may start in the middle of a line (the
     * snapshot caught the guest printing): look for "migck " anywhere. */
    for (char *p = text; p && (p = strstr(p, "migck ")) != NULL; p += 6) {
        char *end;
        if (!strncmp(p + 6, "FAIL", 4)) {
            m->fail = true;
            snprintf(m->fail_line, sizeof(m->fail_line), "%.*s", (int)strcspn(p, "\n"), p);
            continue;
        }
        long s, k;
        if (sscanf(p + 6, "blk sector %ld k %ld\n", &s, &k) == 2) {
            m->blk_s = s;
            m->blk_k = k;
            continue;
        }
        long n = strtol(p + 6, &end, 10);
        if (end == p + 6 || strncmp(end, " ok ", 4) != 0 || !strchr(end, '\n'))
            continue;
        if (m->first < 0)
            m->first = n;
        cr_assert_gt(n, m->last, "%s: migck went from %ld to %ld", serial, m->last, n);
        m->last = n;
        m->lines++;
    }
    if (text && strstr(text, "RESULT FAIL")) {
        m->fail = true;
        if (!m->fail_line[0])
            snprintf(m->fail_line, sizeof(m->fail_line), "RESULT FAIL");
    }
    free(text);
}

/*
 * The migck disk records (guest-images/README.md, "migck"): every sector
 * 0..63 is either never written (zero) or a self-consistent record for
 * itself, and every record's k is below `max_k` (the last N printed).  If the guest printed a
 * "migck blk sector S k K" line, sector S holds K or a later record.
 * Returns the number of records.
 */
int migck_check_disk(const char *img, long max_k, const struct migck *m)
{
    size_t len;
    uint8_t *d = (uint8_t *)read_file(img, &len);
    cr_assert_not_null(d, "%s", img);
    cr_assert_eq(len, MIGCK_DISK_BYTES, "%s", img);
    int records = 0;
    static const uint8_t zero[512];
    for (unsigned s = 0; s < MIGCK_DISK_SECTORS; s++) {
        const uint8_t *b = d + 512 * s;
        if (!memcmp(b, zero, 512))
            continue;
        uint64_t w[64];
        memcpy(w, b, 512);
        cr_assert(!memcmp(b, "MIGCK\0\0\0", 8), "%s: sector %u: no MIGCK record", img, s);
        cr_assert_eq(w[2], s, "%s: sector %u holds the record of sector %llu", img, s,
                     (unsigned long long)w[2]);
        uint32_t sum;
        memcpy(&sum, b + 504, 4);
        cr_assert_eq(sum, fnv1a(b, 504), "%s: sector %u: checksum", img, s);
        for (unsigned i = 3; i < 63; i++)
            cr_assert_eq(w[i], w[1] ^ ((uint64_t)s << 8) ^ (i * 0x100000001B3ull),
                         "%s: sector %u word %u", img, s, i);
        cr_assert_lt((long)w[1], max_k, "%s: sector %u: k %llu not below the last N %ld", img, s,
                     (unsigned long long)w[1], max_k);
        cr_assert_eq(w[1] % MIGCK_DISK_SECTORS, s, "%s: sector %u: k %llu", img, s,
                     (unsigned long long)w[1]);
        records++;
    }
    if (m && m->blk_s >= 0) {
        uint64_t k;
        memcpy(&k, d + 512 * m->blk_s + 8, 8);
        cr_assert_geq((long)k, m->blk_k, "%s: sector %ld: k %llu, the guest wrote %ld", img,
                      m->blk_s, (unsigned long long)k, m->blk_k);
    }
    free(d);
    return records;
}
