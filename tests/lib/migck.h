/*
 * Reading a `test=migck` guest (guest-images/README.md, "migck") from the
 * host: its progress lines in a serial file, and its records on the disk.
 * Shared by the snapshot and the migration tests, which both check that a
 * VM that moved lost nothing.  The checks are Criterion assertions.
 */
#ifndef TESTS_LIB_MIGCK_H
#define TESTS_LIB_MIGCK_H

#include <stdbool.h>

#define MIGCK_DISK_BYTES   (1u << 20) /* the images the tests give a migck guest */
#define MIGCK_DISK_SECTORS 64         /* migck writes sectors 0..63 */

/* The progress of a migck guest in a serial file. */
struct migck {
    long first, last; /* first and last N of complete "migck N ok" lines; -1: none */
    long lines;
    bool fail;         /* a "migck FAIL" or "RESULT FAIL" line */
    long blk_s, blk_k; /* the last "migck blk sector S k K"; -1: none */
    char fail_line[200];
};

/* Scan `serial`; asserts that N only grows within the file. */
void migck_scan(const char *serial, struct migck *m);

/*
 * The disk records in image `img` (MIGCK_DISK_BYTES): every sector is zero
 * or a self-consistent record of itself with k below `max_k`; if `m` saw a
 * "blk sector S k K" line, sector S holds K or later.  Returns the number
 * of records.
 */
int migck_check_disk(const char *img, long max_k, const struct migck *m);

#endif /* TESTS_LIB_MIGCK_H */
