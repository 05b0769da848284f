/*
 * Run-time metrics in Firecracker's style (docs/METRICS.md): counters the
 * vCPU threads, the API thread, the main loop and the devices bump with a
 * relaxed atomic add (no lock on any guest path), written as one JSON line
 * per flush to the file or FIFO of --metrics-path / PUT /metrics.  Each
 * line carries the deltas since the last line that was written, plus a UTC
 * timestamp.  Writing never blocks: the sink is opened O_NONBLOCK, and a
 * line the sink does not take at once is dropped and counted
 * (metrics.write_fails); its deltas are reported again by the next line.
 *
 * One VM per process, so the counters are process-wide.
 */
#ifndef VMM_METRICS_H
#define VMM_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "vmm/error.h"
#include "vmm/util.h"

/* The core's counters; metrics.c names each (group and field). */
enum metrics_id {
    METRICS_VCPU_EXIT_IO,
    METRICS_VCPU_EXIT_MMIO,
    METRICS_VCPU_EXIT_HLT,
    METRICS_VCPU_EXIT_SHUTDOWN,
    METRICS_VCPU_EXIT_SYSTEM_EVENT,
    METRICS_VCPU_EXIT_INTR,
    METRICS_VCPU_FAILURES,
    METRICS_API_REQUESTS,
    METRICS_API_STATUS_2XX,
    METRICS_API_STATUS_4XX,
    METRICS_API_STATUS_5XX,
    METRICS_API_PARSE_ERRORS,
    METRICS_SNAPSHOT_CREATED,
    METRICS_SNAPSHOT_FAILED,
    METRICS_MIGRATION_SENT,
    METRICS_MIGRATION_FAILED,
    METRICS_MIGRATION_RECEIVED,
    METRICS_SIGNALS_RECEIVED,
    METRICS_FLUSHES,
    METRICS_WRITE_FAILS,
    METRICS_LOG_WRITE_FAILS,
    METRICS_N
};

/* Storage of the core counters (use metrics_inc, not this). */
extern _Atomic uint64_t metrics_core[METRICS_N];

/* Add one to counter `id`: any thread, async-signal-safe, never blocks. */
static inline void metrics_inc(enum metrics_id id)
{
    if ((unsigned)id < METRICS_N)
        atomic_fetch_add_explicit(&metrics_core[id], 1, memory_order_relaxed);
}

/*
 * A device's counters.  The device manager registers one block per device
 * and hands the device a pointer (struct virtio_dev's `metrics`); the device
 * only adds to it with METRICS_ADD, which accepts a NULL block (unit tests
 * and fuzzers create devices without one).
 */
struct metrics_dev {
    _Atomic uint64_t activate_fails; /* DRIVER_OK refused: rings or device activation */
    _Atomic uint64_t queue_events;   /* guest notifications (QueueNotify) delivered */
    _Atomic uint64_t requests;       /* requests / packets / chains completed */
    _Atomic uint64_t bytes_read;     /* bytes the device gave the guest */
    _Atomic uint64_t bytes_written;  /* bytes the guest gave the device */
    _Atomic uint64_t errors;         /* requests refused or failed (bad chain, host I/O) */
    _Atomic uint64_t drops;          /* data dropped: no guest buffer, host peer gone */
    /* Devices on an external data plane (vhost-user, vDPA, vhost-vsock). */
    _Atomic uint64_t dataplane_calls;      /* used-buffer signals relayed to the guest */
    _Atomic uint64_t dataplane_failures;   /* the data plane failed: DEVICE_NEEDS_RESET */
    _Atomic uint64_t dataplane_reconnects; /* a restarted backend took the rings over */
};

#define METRICS_ADD(blk, field, n)                                                                 \
    do {                                                                                           \
        struct metrics_dev *metrics_blk_ = (blk);                                                  \
        if (metrics_blk_)                                                                          \
            atomic_fetch_add_explicit(&metrics_blk_->field, (uint64_t)(n), memory_order_relaxed);  \
    } while (0)

#define METRICS_DEV_MAX 64 /* CONFIG_MAX_DEVICES is lower; a unit test checks */

/*
 * A block for the device of virtio type `type` ("blk") and instance id `id`
 * ("blk0"), both copied (truncated to 23 bytes).  NULL when METRICS_DEV_MAX
 * are in use: the device then counts nothing.  Setup only (main thread).
 */
struct metrics_dev *metrics_dev_register(const char *type, const char *id);

/*
 * Open the sink `path` for writing: O_WRONLY | O_APPEND | O_NONBLOCK, created
 * 0600 if missing, never through a symlink.  A FIFO must have a reader
 * already: without one the kernel refuses a non-blocking open, and so do we
 * (-ENXIO, "has no reader").  Ignores SIGPIPE for the process, so a reader
 * that goes away makes writes fail (counted), not kill wisp.  Replaces an
 * earlier sink.  Errors: WISP_EXIT_USAGE with the path and reason in `err`.
 */
int metrics_open(const char *path, struct errbuf *err) __must_check;

/* Is a sink open? */
bool metrics_enabled(void);

/*
 * Write one line of deltas since the last line written (any thread; a mutex
 * serialises flushers, never the counters).  0 when written or no sink is
 * open; -EAGAIN / -errno when the sink did not take the whole line, which
 * bumps metrics.write_fails and keeps the deltas for the next flush.
 */
int metrics_flush(void);

/*
 * Format the deltas line into `buf` (`len` bytes, NUL-terminated) without
 * writing it or moving the baseline: the JSON shape, for tests.  Returns the
 * line's length or -ENOSPC.
 */
int metrics_format(char *buf, size_t len);

/*
 * A CLOCK_MONOTONIC timerfd that expires every `period_ms` (non-blocking,
 * close-on-exec), for the main loop to call metrics_on_timer on.  -errno.
 */
int metrics_timer_create(unsigned period_ms) __must_check;

/* Main loop: drain timerfd `fd` and flush (evloop_fn shape: opaque = fd as intptr). */
void metrics_on_timer(void *opaque, uint32_t events);

/* Close the sink, forget devices, zero every counter and baseline (tests, teardown). */
void metrics_reset(void);

#define METRICS_PERIOD_DEFAULT_MS 60000u
#define METRICS_PERIOD_MIN_MS     10u
#define METRICS_PERIOD_MAX_MS     3600000u

#endif /* VMM_METRICS_H */
