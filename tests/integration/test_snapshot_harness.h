/*
 * Shared harness of the snapshot integration tests (test_snapshot.c,
 * test_snapshot_refuse.c): a wisp process booting a migck guest (the
 * source) or restoring a snapshot (a clone), the scratch directory they
 * use, and the waits and checks every test repeats.  Everything runs under
 * the default --seccomp kill: a wisp killed by its filter (status 148)
 * fails the test.
 */
#ifndef TESTS_INTEGRATION_TEST_SNAPSHOT_HARNESS_H
#define TESTS_INTEGRATION_TEST_SNAPSHOT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

#include "tests/lib/migck.h"
#include "tests/lib/proc.h"
#include "tests/lib/sandbox_proc.h"
#include "tests/lib/wisp_run.h"

#define EXIT_SECCOMP 148
#define MEM_MIB      128
#define MEM_BYTES    ((uint64_t)MEM_MIB << 20)
#define MIGCK_MB     4 /* 1024 pages: the first touch of a page after a restore is slow nested */
#define MIGCK_PAGES  (MIGCK_MB * 256)
#define LONG_MS      120000

/* One wisp process (a source or a restored clone) and its files. */
struct vm {
    struct sandbox_proc p;
    bool running;
    char serial[160];
    char disk[160];
};

/* The test's scratch directory (a source's API socket must be on a local
 * file system: it lives in /tmp) and the snapshot directory inside it. */
struct scratch {
    char dir[64];
    char sock[96];
    char snap[96];
};

/* CLOCK_MONOTONIC in seconds; sleep `ms` milliseconds. */
double ts_now_s(void);
void ts_sleep_ms(long ms);

/* A fresh /tmp/wisp-snap-XXXXXX with api.sock and snap/ in it; removed again by cleanup. */
void ts_scratch_init(struct scratch *s);
void ts_scratch_cleanup(struct scratch *s);

/* `wisp run ARGS...` (NULL-terminated) as vm->p, under the default seccomp filters. */
void ts_start(struct vm *vm, const char *const *args);

/*
 * Boot a migck source of MEM_MIB MiB and 2 vCPUs with --api-sock (and
 * --snapshot-dir when `snap`); `disk`: a fresh 1 MiB image as its first
 * virtio-blk device (migck_blk=1).  `name` names its serial log and image.
 */
void ts_start_source(struct vm *vm, const struct scratch *s, bool snap, bool disk,
                     const char *name);

/*
 * Restore a clone from snap/SNAPNAME.state and .mem with `vcpus` and `mem`
 * (they may differ from the source's for the mismatch tests), `disk` as its
 * blk image (or NULL), and `extra` arguments (NULL-terminated, or NULL).
 */
void ts_start_clone(struct vm *vm, const struct scratch *s, const char *snapname, const char *clone,
                    const char *disk, const char *vcpus, const char *mem, const char *const *extra);

/* The last `n` bytes of a file, for failure messages (a static buffer). */
const char *ts_tail_of(const char *path, size_t n);

/* Wait up to LONG_MS for a "migck N ok" with N > `beyond`; fails on a FAIL or an early exit. */
struct migck ts_wait_migck(struct vm *vm, long beyond, const char *what);

/* Send `sig` (if not 0) once wisp blocks it, reap wisp into *r, and check it ended with
 * `want_status` and not by seccomp. */
void ts_finish(struct vm *vm, int sig, int want_status, struct proc_result *r);
/* SIGTERM, and expect the status of a wisp ended by it. */
void ts_stop(struct vm *vm);

/*
 * `wisp snapshot create --api-sock S --state NAME.state --mem NAME.mem
 * [--stop]`: checks status 0 and mem_bytes, returns mem_data_pages.
 */
long ts_cli_snapshot(const struct scratch *s, const char *name, bool stop_after);

/* Copy a file (whole, in memory). */
void ts_copy_file(const char *from, const char *to);

/* `method` `path` with `json` (or none) on the API: status `want_status` and `want` in the
 * fault message. */
void ts_api_fault(const struct scratch *s, const char *method, const char *path, const char *json,
                  int want_status, const char *want);

/* The source still answers GET / and its guest keeps counting. */
void ts_still_running(struct vm *vm);

#endif /* TESTS_INTEGRATION_TEST_SNAPSHOT_HARNESS_H */
