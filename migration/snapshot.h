/*
 * Snapshot files (docs/SNAPSHOT.md): a snapshot is two files.
 *
 *   state file   a migration stream (stream.h) with the SNAPSHOT flag:
 *                header, MACHINE, every registered device's final state,
 *                END; no RAM sections
 *   memory file  the guest's RAM ranges back to back in gpa order, raw;
 *                pages that read as zero are holes (the file is sparse)
 *
 * Why two files: the memory file is laid out so that a restore maps it
 * (privately, copy-on-write) instead of reading it, which is what makes a
 * restore take milliseconds and lets many clones share one page cache;
 * the state file is small and carries everything that is checked.
 *
 * The memory file is not checksummed: it is the host's own file, and
 * whoever can write it can write the guest anyway.  The state file is
 * parsed as hostile input like any stream.
 */
#ifndef MIGRATION_SNAPSHOT_H
#define MIGRATION_SNAPSHOT_H

#include <stdint.h>

#include "migration/hooks.h"
#include "migration/stream_config.h"

/* One RAM range as the source sees it. */
struct mig_ram_host {
    uint64_t gpa;
    uint64_t size; /* multiple of MIG_PAGE_SIZE */
    const uint8_t *hva;
    int fd;             /* the file hva maps (a memfd), or -1: holes in it are skipped */
    uint64_t fd_offset; /* where the range starts in fd */
};

struct mig_snapshot_stats {
    uint64_t mem_bytes;  /* sum of the ranges: the memory file's size */
    uint64_t data_pages; /* pages written; the others are holes */
    uint64_t state_bytes;
};

/*
 * Write the memory file: truncate `fd` to the total size (so unwritten
 * pages are holes), then write every page that is not all zero at its
 * offset (ranges back to back).  0 or -errno with one line in err.
 */
int mig_snapshot_write_mem(int fd, const struct mig_ram_host *r, unsigned n,
                           struct mig_snapshot_stats *st, struct errbuf *err) __must_check;

/*
 * Write the state file to `fd` (a regular file, truncated first): the
 * header with MIG_STREAM_F_SNAPSHOT, MACHINE (`m` plus the registry's
 * devices), CONFIG (`cfg`, the machine's options; none when NULL) and every
 * device's state.  The devices must be quiesced and the vCPUs parked.  0 or
 * -errno with one line in err.
 */
int mig_snapshot_write_state(int fd, struct mig_registry *reg, const struct mig_machine *m,
                             const struct mig_config *cfg, struct mig_snapshot_stats *st,
                             struct errbuf *err) __must_check;

/*
 * Read only the configuration of a state file from `fd` (read from its
 * current offset): the header (this wisp's `arch`), MACHINE, which must come
 * first, then the CONFIG section that follows it, decoded into `cfg`
 * (initialised, empty).  A state file without one (written by a wisp older
 * than the section) gives -ENOENT with a line saying how to restore it.
 * Nothing else is read; the caller reopens or rewinds the file for the
 * restore itself.  0 or -errno with one line in err.
 */
int mig_snapshot_read_config(int fd, uint16_t arch, struct mig_config *cfg,
                             struct errbuf *err) __must_check;

/*
 * Read a state file from `fd` into the registered devices: header and
 * MACHINE checked against `local` (nothing is touched before that passes),
 * then every device's state, then END.  A RAM section is refused (a
 * snapshot's memory is in its memory file).  0 or -errno with one line in
 * err.
 */
int mig_snapshot_read_state(int fd, struct mig_registry *reg, const struct mig_machine *local,
                            struct errbuf *err) __must_check;

#endif /* MIGRATION_SNAPSHOT_H */
