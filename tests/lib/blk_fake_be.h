/*
 * A block backend for tests that controls when requests finish: it accepts
 * requests and holds them until the test releases them, and its drain() can
 * play a disk that never answers (it waits out the timeout it is given, then
 * gives up).  It also counts what the device asked of it, so a test can show
 * that a request was refused before it reached any backend.  Data is not
 * moved: held requests finish with the result the test chooses.
 */
#ifndef TESTS_LIB_BLK_FAKE_BE_H
#define TESTS_LIB_BLK_FAKE_BE_H

#include <stdbool.h>

#include "devices/backends/blk_backend.h"

#define FAKE_BE_MAX 64

struct fake_be {
    struct blk_backend be; /* first: the device only sees this */
    unsigned submits;      /* requests accepted */
    unsigned drains;       /* drain() calls */
    unsigned last_timeout_ms;
    bool hang;    /* drain() waits its timeout and returns -ETIMEDOUT */
    bool release; /* complete() finishes every held request */
    int release_result;
    struct blk_io *held[FAKE_BE_MAX];
    unsigned nheld;
};

/* A writable `size`-byte disk accepting `max_inflight` (<= FAKE_BE_MAX) requests at once. */
struct fake_be *fake_be_new(uint64_t size, unsigned max_inflight);
/* Finish every held request with `result` the next time complete() runs (signals event_fd). */
void fake_be_release(struct fake_be *f, int result);

#endif /* TESTS_LIB_BLK_FAKE_BE_H */
