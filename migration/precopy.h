/*
 * The sender side of live migration's pre-copy: RAM in rounds while the
 * guest runs, then a short stop-and-copy.
 *
 * Why here: the round loop (what to send, when to stop iterating, how long
 * the guest will be paused) is policy over the stream (stream.h), the device
 * registry (hooks.h) and the dirty tracker (dirty.h), none of which know
 * the VM core.  The core hands this module plain data (RAM ranges with host
 * pointers) and callbacks (stop the vCPUs, report progress), so it is tested
 * without KVM and includes nothing of vmm/ but error.h and util.h.
 *
 * The rounds:
 *   round 0        every page (the tracker starts with all pages dirty;
 *                  the RAM writer turns zero pages into ZERO records), and
 *                  each device's pre-copy data (mig_save_precopy)
 *   sync           the kernel's dirty log and the devices' (mig_dirty_log)
 *   decide         stop iterating when the dirty bytes would go out within
 *                  the downtime target at the throughput measured in the
 *                  last round (and every device's pre-copy has converged),
 *                  or after max_rounds, or when the dirty set has not
 *                  shrunk below its smallest size for stall_rounds rounds
 *   round n        the dirty pages, device pre-copy data; back to sync
 *   stop-and-copy  stop_vm, mig_quiesce, a last sync (kernel and devices),
 *                  the remaining pages, mig_save_finish (device states, END)
 */
#ifndef MIGRATION_PRECOPY_H
#define MIGRATION_PRECOPY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "migration/dirty.h"
#include "migration/hooks.h"
#include "migration/stream.h"

#define MIG_PRECOPY_MAX_ROUNDS   64U  /* live rounds, round 0 included */
#define MIG_PRECOPY_CHUNK_PAGES  256U /* pages between two cancel checks (1 MiB) */
#define MIG_PRECOPY_STALL_ROUNDS 5U   /* default for limits.stall_rounds */

/* One guest RAM range and where its pages are read from. */
struct mig_precopy_ram {
    uint64_t gpa; /* page aligned */
    uint64_t size;
    const void *host; /* size bytes, readable while the migration runs */
};

struct mig_precopy_limits {
    uint32_t downtime_ms;  /* target pause of the guest */
    uint32_t max_rounds;   /* live rounds, 1..MIG_PRECOPY_MAX_ROUNDS */
    uint64_t bandwidth;    /* bytes/s for the live rounds, 0 = no limit */
    uint32_t stall_rounds; /* 0 = MIG_PRECOPY_STALL_ROUNDS */
};

/* Reported after each sync. */
struct mig_precopy_progress {
    uint32_t round;        /* live rounds sent so far */
    uint64_t dirty_pages;  /* to send now */
    uint64_t pages_sent;   /* in the last round */
    uint64_t bytes_sent;   /* the whole stream so far */
    uint64_t bytes_per_s;  /* throughput measured in the last round */
    double mb_per_s;       /* the same in MB/s (10^6 bytes) */
    uint64_t remaining_ms; /* dirty pages at that throughput (UINT64_MAX: unknown) */
};

/*
 * Time, injectable for tests.  now_ns: a monotonic clock in ns.  sleep_ns:
 * wait that long.  Both NULL: CLOCK_MONOTONIC and nanosleep().
 */
struct mig_precopy_clock {
    void *ctx;
    uint64_t (*now_ns)(void *ctx);
    void (*sleep_ns)(void *ctx, uint64_t ns);
};

/* What the VM core provides. */
struct mig_precopy_ops {
    void *ctx;
    /* Pause every vCPU; called at most once, for stop-and-copy.  0 or -errno. */
    int (*stop_vm)(void *ctx);
    /* Optional. */
    void (*progress)(void *ctx, const struct mig_precopy_progress *p);
};

enum mig_precopy_end {
    MIG_PRECOPY_CONVERGED = 1, /* the dirty set fitted in the downtime target */
    MIG_PRECOPY_MAX_ROUNDS_HIT,
    MIG_PRECOPY_STALLED, /* the dirty set stopped shrinking */
};

struct mig_precopy_stats {
    uint32_t rounds;                            /* RAM passes, stop-and-copy included */
    uint64_t pages[MIG_PRECOPY_MAX_ROUNDS + 1]; /* pages sent in each pass */
    uint64_t bytes;                             /* stream bytes written during the call */
    uint64_t downtime_ns;                       /* stop_vm called .. END written */
    uint64_t total_ns;                          /* the whole call */
    uint64_t expected_downtime_ms;              /* the estimate when iteration ended */
    enum mig_precopy_end end;                   /* why iteration ended (0 if it did not) */
    bool downtime_exceeded; /* the estimate was above the target when the VM stopped */
    bool vm_stopped;        /* stop_vm was called (whether or not it succeeded) */
};

/* Everything a migration needs; all pointers are borrowed for the call. */
struct mig_precopy_args {
    struct mig_stream_writer *w; /* header and MACHINE written (mig_save_begin) */
    struct mig_registry *reg;
    struct mig_dirty *dirty; /* started (mig_dirty_start: every page dirty) */
    const struct mig_precopy_ram *ram;
    uint32_t nram; /* 1..MIG_MAX_MEM_RANGES, ascending, not overlapping */
    struct mig_precopy_limits limits;
    struct mig_precopy_ops ops;
    struct mig_precopy_clock clock;
    atomic_bool *cancel; /* may be NULL; checked between chunks of pages */
};

/*
 * Run pre-copy and stop-and-copy to the END marker.  *stats is filled as
 * far as the run went, on failure too.
 *
 * Before any RAM is sent, every device is asked again whether it can
 * migrate (-EOPNOTSUPP) and every dirty-tracker slot must be covered by
 * `ram` (-EINVAL).  Errors: -EINVAL (arguments), -ECANCELED (*cancel set),
 * the error of stop_vm, of a device hook, of the tracker or of the
 * transport, each with one line in `err`.
 *
 * This function never resumes the VM and never stops the tracker: on
 * failure the caller resumes the VM if stats->vm_stopped says it was
 * stopped, and calls mig_dirty_stop() in every case, success included.
 */
int mig_precopy_run(const struct mig_precopy_args *a, struct mig_precopy_stats *stats,
                    struct errbuf *err) __must_check;

#endif /* MIGRATION_PRECOPY_H */
