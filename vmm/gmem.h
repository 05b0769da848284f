/*
 * Guest memory: the one module that owns guest-physical -> host translation.
 *
 * Guest RAM is one memfd (so it can later be shared with vhost-user and
 * vfio-user servers and with a migration helper), mapped MAP_SHARED as one or
 * more regions at fixed guest-physical addresses.  A VM restored from a
 * snapshot instead maps the snapshot's memory file privately
 * (gmem_create_restore).  Every mapping is framed by
 * PROT_NONE guard pages so an overrun faults instead of touching host data.
 *
 * Every access goes through a checked (gpa, len) translation: the whole range
 * must lie inside ONE region, and the arithmetic is overflow-checked.  A range
 * that touches a hole, crosses from one region into the next or wraps is
 * refused.  No function here returns a pointer without a length.
 */
#ifndef VMM_GMEM_H
#define VMM_GMEM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"
#include "vmm/util.h"

typedef uint64_t gpa_t;

#define GMEM_MAX_REGIONS 8

struct gmem_region {
    gpa_t gpa;          /* guest-physical base, page aligned */
    uint64_t size;      /* bytes, page aligned, > 0 */
    uint64_t fd_offset; /* offset of this region in the memfd */
    uint8_t *hva;       /* host mapping of [gpa, gpa + size) */
};

struct gmem {
    int fd;            /* memfd backing all regions, -1 if none */
    uint64_t total;    /* sum of region sizes */
    unsigned nregions; /* regions sorted by gpa, non-overlapping */
    struct gmem_region regions[GMEM_MAX_REGIONS];
    uint64_t page_size; /* 4 KiB, or 2 MiB with huge pages */
    /* Whole reservation per region including guard pages, for munmap. */
    void *resv[GMEM_MAX_REGIONS];
    size_t resv_len[GMEM_MAX_REGIONS];
    /*
     * Write log for live migration (gmem_log_*): one bit per 4 KiB page of
     * each region, set by device emulation (the virtio queues) when it
     * writes guest memory.  KVM's dirty log sees only the guest's own
     * writes; these are the VMM's.  NULL when not logging.
     */
    uint64_t *log[GMEM_MAX_REGIONS]; /* accessed with __atomic builtins */
    atomic_bool logging;
};

/* One requested RAM range. */
struct gmem_range {
    gpa_t gpa;
    uint64_t size;
};

/*
 * Create guest RAM for `n` ranges (sorted, non-overlapping, page aligned).
 * With `hugepages`, the memfd uses 2 MiB huge pages and every range must be
 * 2 MiB aligned; if the host has none available the call fails with a clear
 * message and exit code WISP_EXIT_HOST.  Memory is marked MADV_DONTDUMP.
 * On failure nothing is left allocated and gm->fd is -1.
 */
int gmem_create(struct gmem *gm, const struct gmem_range *ranges, unsigned n, bool hugepages,
                struct errbuf *err) __must_check;

/*
 * Guest RAM for a snapshot restore, laid out like gmem_create()'s (regions
 * back to back in the snapshot's memory file, in gpa order).  The file
 * must be a regular file of at least the total size (else a one-line
 * error, WISP_EXIT_USAGE).  Without `lazy` each region is a private
 * (copy-on-write) mapping of the file: nothing is copied, pages are read
 * from the page cache when first touched, and the guest's writes stay in
 * this process, so one file serves many clones.  With `lazy` the regions
 * are empty anonymous private mappings for userfaultfd to fill on demand
 * (migration/uffd.h).  Either way gm->fd is -1: this RAM cannot be shared
 * with another process (vhost-user), and 4 KiB pages are used.
 */
int gmem_create_restore(struct gmem *gm, const struct gmem_range *ranges, unsigned n, int mem_fd,
                        bool lazy, struct errbuf *err) __must_check;

/*
 * Replace the contents of guest RAM created by gmem_create() with a
 * private (copy-on-write) mapping of a snapshot's memory file, in place:
 * the same host addresses, so KVM's memory slots stay valid.  The memfd is
 * closed (gm->fd becomes -1).  The file must be a regular file of at least
 * the total size.  Only while no vCPU runs.  0 or -errno with err.
 */
int gmem_remap_private(struct gmem *gm, int mem_fd, struct errbuf *err) __must_check;

/*
 * Copy a snapshot's memory file (laid out as for gmem_create_restore) into
 * guest RAM created by gmem_create(), which stays the shared memfd: for a
 * VM whose devices map RAM in another process.  Holes in the file are
 * skipped (the fresh memfd reads as zero there).  Only while no vCPU runs.
 * 0 or -errno with err.
 */
int gmem_copy_in(struct gmem *gm, int mem_fd, struct errbuf *err) __must_check;

/* Unmap everything and close the memfd.  Safe on a zeroed or failed gmem. */
void gmem_destroy(struct gmem *gm);

/*
 * Translate [gpa, gpa + len) to a host pointer.  Returns NULL if len is 0,
 * the range wraps, or it is not wholly inside one region.
 */
void *gmem_ptr(const struct gmem *gm, gpa_t gpa, uint64_t len);

/* Region containing gpa, or NULL. */
const struct gmem_region *gmem_region_of(const struct gmem *gm, gpa_t gpa);

/* Is [gpa, gpa + len) wholly inside one region? */
bool gmem_range_ok(const struct gmem *gm, gpa_t gpa, uint64_t len);

/* Copy between guest and host; 0 or -EFAULT if the range is not valid RAM. */
int gmem_read(const struct gmem *gm, gpa_t gpa, void *dst, size_t len) __must_check;
int gmem_write(const struct gmem *gm, gpa_t gpa, const void *src, size_t len) __must_check;
int gmem_zero(const struct gmem *gm, gpa_t gpa, size_t len) __must_check;

/*
 * Device write log (see struct gmem).  gmem_log_start allocates (once) and
 * clears it (0 or -ENOMEM); gmem_log_stop turns marking off (the bitmaps
 * live until gmem_destroy, so a racing marker never touches freed memory).
 * gmem_log_mark records that [gpa, gpa + len) was written (any thread,
 * lock-free; ranges outside RAM are ignored; a no-op when not logging).
 * gmem_log_drain hands each run of marked pages to `fn` and clears them;
 * it stops at and returns fn's first error.
 */
int gmem_log_start(struct gmem *gm) __must_check;
void gmem_log_stop(struct gmem *gm);
void gmem_log_mark(const struct gmem *gm, gpa_t gpa, uint64_t len);
int gmem_log_drain(struct gmem *gm, int (*fn)(void *ctx, uint64_t gpa, uint64_t len), void *ctx);

static inline bool gmem_logging(const struct gmem *gm)
{
    return atomic_load_explicit(&gm->logging, memory_order_relaxed);
}

/*
 * Give the host back the pages of [gpa, gpa + len) (virtio-balloon: inflated
 * and reported free pages): a hole is punched in the memfd
 * (fallocate(PUNCH_HOLE | KEEP_SIZE)), so the range reads as zero afterwards
 * and is filled again, with zeros, when the guest next touches it.  The range
 * must be non-empty, aligned to gm->page_size (4 KiB, or 2 MiB with huge
 * pages) and wholly inside one region (-EINVAL / -EFAULT otherwise).  RAM
 * without a memfd (restored from a snapshot: a private mapping) is left
 * alone: -EOPNOTSUPP.  The range is marked in the device write log, so a
 * migration in progress sends the zeros (the destination must not keep a
 * copy taken before the discard).  Other errors: fallocate's -errno.  Any
 * thread; the caller serialises against nothing (the kernel does).
 */
int gmem_discard(const struct gmem *gm, gpa_t gpa, uint64_t len) __must_check;

/*
 * Guest-physical address of the host range [p, p + len), which must lie
 * wholly inside one region: 0 with *gpa set, or -EFAULT.  For devices that
 * hold a buffer as an iovec (virtq_pop() output) and need to act on its
 * guest pages.
 */
int gmem_gpa_of(const struct gmem *gm, const void *p, uint64_t len, gpa_t *gpa) __must_check;

/* Highest guest-physical address + 1 covered by RAM. */
gpa_t gmem_end(const struct gmem *gm);

#endif /* VMM_GMEM_H */
