/*
 * virtio-balloon (memory balloon, virtio 1.2 section 5.5): lets the host
 * take memory back from a running guest.  The host sets a target (config
 * num_pages, 4 KiB pages); the driver gives pages up on the inflate queue
 * and takes them back on the deflate queue, and writes how many it holds
 * into config `actual`.  Optional parts, each offered only when asked for:
 *   - STATS_VQ: the driver hands one buffer of {le16 tag, le64 value}
 *     entries; the device keeps it and gives it back every polling
 *     interval, so the driver refills it with fresh statistics;
 *   - DEFLATE_ON_OOM: the driver may deflate on its own under memory
 *     pressure;
 *   - REPORTING: the driver reports runs of free pages on the reporting
 *     queue.
 * Inflated and reported pages are returned to the host through
 * gmem_discard() (a hole punched in the RAM memfd; they read as zero when
 * the guest touches them again).  A deflated page needs nothing: it is
 * simply usable again.  FREE_PAGE_HINT, PAGE_POISON and MUST_TELL_HOST are
 * never offered.
 *
 * Queue numbering follows the negotiated features, as Linux's driver does
 * it: inflate 0, deflate 1, then stats (if STATS_VQ), then reporting (if
 * REPORTING), with no index kept for a queue whose feature is off.
 *
 * The guest is hostile (security.md): a PFN outside guest RAM or in a hole
 * is counted and ignored, never acted on; a chain is read only up to
 * BALLOON_CHAIN_MAX bytes (a longer one completes unread); the stats buffer
 * is read up to BALLOON_STATS_MAX entries and unknown tags are ignored;
 * `actual` is reported clamped to the size of RAM; at most BALLOON_BUDGET
 * chains or about BALLOON_EVENT_PFNS PFNs (one chain may overshoot) are
 * handled per event, the rest rescheduled, so a guest sending scattered
 * pages cannot hold the device lock for long.
 *
 * State: a "virtio-balloon" section, version 1 (target, actual, stats
 * interval and the head of the held stats buffer); load checks each field
 * against this device's configuration.
 */
#ifndef DEVICES_VIRTIO_BALLOON_H
#define DEVICES_VIRTIO_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtio.h"
#include "vmm/error.h"

/* Feature bits (virtio 1.2 section 5.5.3). */
#define VIRTIO_BALLOON_F_MUST_TELL_HOST 0
#define VIRTIO_BALLOON_F_STATS_VQ       1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2
#define VIRTIO_BALLOON_F_FREE_PAGE_HINT 3
#define VIRTIO_BALLOON_F_PAGE_POISON    4
#define VIRTIO_BALLOON_F_REPORTING      5

#define BALLOON_PAGE_SIZE    4096U
#define BALLOON_QUEUE_SIZE   256
#define BALLOON_NUM_QUEUES   4            /* inflate, deflate, stats, reporting */
#define BALLOON_CHAIN_MAX    (64U * 1024) /* bytes of PFNs read per chain (16384 pages) */
#define BALLOON_BUDGET       64           /* chains per event */
#define BALLOON_EVENT_PFNS   16384        /* PFNs per event (each may be a syscall) */
#define BALLOON_STATS_MAX    32           /* stats entries read per buffer */
#define BALLOON_MAX_INTERVAL (24U * 3600) /* stats_polling_interval_s upper bound */

/* Statistics tags (virtio 1.2 section 5.5.6.3). */
enum balloon_stat_tag {
    BALLOON_S_SWAP_IN,
    BALLOON_S_SWAP_OUT,
    BALLOON_S_MAJFLT,
    BALLOON_S_MINFLT,
    BALLOON_S_MEMFREE,
    BALLOON_S_MEMTOT,
    BALLOON_S_AVAIL,
    BALLOON_S_CACHES,
    BALLOON_S_HTLB_PGALLOC,
    BALLOON_S_HTLB_PGFAIL,
    BALLOON_S_NR /* tags at or above are ignored */
};

struct balloon_config {
    const char *id;            /* instance id; NULL: "balloon" */
    uint32_t amount_mib;       /* initial target, <= guest RAM */
    bool deflate_on_oom;       /* offer DEFLATE_ON_OOM */
    uint32_t stats_interval_s; /* > 0: offer STATS_VQ, poll this often */
    bool free_page_reporting;  /* offer REPORTING */
};

/* Counters for tests and GET /balloon; not migrated. */
struct balloon_counters {
    uint64_t inflated;       /* valid PFNs received on the inflate queue */
    uint64_t deflated;       /* valid PFNs received on the deflate queue */
    uint64_t bad_pfns;       /* PFNs outside RAM or in a hole, ignored */
    uint64_t discard_errors; /* gmem_discard() refusals or failures */
    uint64_t reported_bytes; /* bytes of reported free pages discarded */
    uint64_t bad_ranges;     /* reported ranges not in RAM, ignored */
    uint64_t oversize;       /* chains over BALLOON_CHAIN_MAX, completed unread */
    uint64_t odd_lengths;    /* PFN arrays whose length is not a multiple of 4 */
    uint64_t stats_updates;  /* stats buffers received */
    uint64_t unknown_tags;   /* stats entries with a tag >= BALLOON_S_NR */
};

/* What GET /balloon and GET /balloon/statistics show. */
struct balloon_info {
    uint32_t amount_mib; /* current target */
    bool deflate_on_oom;
    uint32_t stats_interval_s;
    uint32_t target_pages;
    uint32_t actual_pages; /* as the driver wrote it, clamped to RAM */
    bool has_stat[BALLOON_S_NR];
    uint64_t stat[BALLOON_S_NR]; /* last values the driver sent, per tag */
    struct balloon_counters c;
};

/*
 * Create a balloon.  `mem` and `loop` must outlive it; `loop` must be
 * initialised (an eventfd, and a 1 s timerfd when stats are on, are
 * registered here).  Errors: WISP_EXIT_USAGE for amount_mib beyond RAM or
 * an interval above BALLOON_MAX_INTERVAL; WISP_EXIT_FAILURE for resources.
 * One line in `err`.  Returns 0 or -errno.
 */
int balloon_create(const struct balloon_config *cfg, const struct gmem *mem, struct evloop *loop,
                   struct virtio_dev **out, struct errbuf *err) __must_check;

/*
 * Set the target to `mib` MiB and raise a configuration-change interrupt if
 * the driver is running.  -EINVAL if mib exceeds guest RAM.  Any thread.
 */
int balloon_set_target(struct virtio_dev *d, uint32_t mib) __must_check;

/*
 * Change the stats polling interval.  -EINVAL if `s` is 0 or above
 * BALLOON_MAX_INTERVAL, or if the device was created without statistics
 * (the feature cannot appear after the driver saw the offer).  Any thread.
 */
int balloon_set_stats_interval(struct virtio_dev *d, uint32_t s) __must_check;

/* Snapshot of the settings, statistics and counters.  Any thread. */
void balloon_get_info(struct virtio_dev *d, struct balloon_info *info);

/* One polling tick (what the 1 s timer does), for tests. */
void balloon_tick(struct virtio_dev *d);

/* Is `d` a balloon made by balloon_create()? */
bool balloon_is(const struct virtio_dev *d);

#endif /* DEVICES_VIRTIO_BALLOON_H */
