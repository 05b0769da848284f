/*
 * Snapshot files (snapshot.h): the sparse memory file and the state file,
 * which is an ordinary migration stream written to and read from a file.
 */
#include "migration/snapshot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PFX                      "snapshot: "
#define SNAPSHOT_FILE_TIMEOUT_MS 60000 /* one call of the fd transport on a local file */

static bool page_is_zero(const uint8_t *p)
{
    const uint64_t *w = (const uint64_t *)(const void *)p;
    for (size_t i = 0; i < MIG_PAGE_SIZE / sizeof(*w); i++)
        if (w[i])
            return false;
    return true;
}

static int pwrite_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int mig_snapshot_write_mem(int fd, const struct mig_ram_host *r, unsigned n,
                           struct mig_snapshot_stats *st, struct errbuf *err)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        if (r[i].size % MIG_PAGE_SIZE || __builtin_add_overflow(total, r[i].size, &total))
            return err_set(err, WISP_EXIT_FAILURE, EINVAL, PFX "bad RAM range %u", i);
    }
    /* Truncate to 0 first: pages of an older, larger file must not survive as data. */
    if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)total) < 0)
        return err_set(err, WISP_EXIT_FAILURE, errno, PFX "cannot size the memory file: %s",
                       strerror(errno));
    st->mem_bytes = total;
    st->data_pages = 0;
    uint64_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        uint64_t pages = r[i].size / MIG_PAGE_SIZE;
        uint64_t run = 0; /* start page of the current run of data pages */
        bool in_run = false;
        uint64_t next_data = 0; /* pages before this (from the file's holes) are zero */
        for (uint64_t p = 0; p <= pages; p++) {
            if (p < pages && p >= next_data && r[i].fd >= 0 && !in_run) {
                /* Skip the file's holes without reading them: never touched. */
                uint64_t at = r[i].fd_offset + p * MIG_PAGE_SIZE;
                off_t d = lseek(r[i].fd, (off_t)at, SEEK_DATA);
                if (d < 0 && errno == ENXIO)
                    break; /* no data left in this range */
                if (d >= 0 && (uint64_t)d > at) {
                    p = MIN(pages, ((uint64_t)d - r[i].fd_offset) / MIG_PAGE_SIZE);
                    if (p == pages)
                        break;
                }
                off_t h = d < 0 ? -1 : lseek(r[i].fd, d, SEEK_HOLE);
                next_data = h < 0 ? pages
                                  : MIN(pages, ((uint64_t)h - r[i].fd_offset + MIG_PAGE_SIZE - 1) /
                                                   MIG_PAGE_SIZE);
            }
            bool data = p < pages && !page_is_zero(r[i].hva + p * MIG_PAGE_SIZE);
            if (data && !in_run) {
                run = p;
                in_run = true;
            } else if (!data && in_run) {
                int e = pwrite_all(fd, r[i].hva + run * MIG_PAGE_SIZE,
                                   (size_t)((p - run) * MIG_PAGE_SIZE), off + run * MIG_PAGE_SIZE);
                if (e < 0)
                    return err_set(err, WISP_EXIT_FAILURE, -e, PFX "writing the memory file: %s",
                                   strerror(-e));
                st->data_pages += p - run;
                in_run = false;
            }
        }
        off += r[i].size;
    }
    if (fdatasync(fd) < 0)
        return err_set(err, WISP_EXIT_FAILURE, errno, PFX "syncing the memory file: %s",
                       strerror(errno));
    return 0;
}

int mig_snapshot_write_state(int fd, struct mig_registry *reg, const struct mig_machine *m,
                             const struct mig_config *cfg, struct mig_snapshot_stats *st,
                             struct errbuf *err)
{
    if (ftruncate(fd, 0) < 0)
        return err_set(err, WISP_EXIT_FAILURE, errno, PFX "cannot truncate the state file: %s",
                       strerror(errno));
    struct mig_fd_transport ft;
    struct mig_transport t;
    int e = mig_fd_transport_init(&ft, &t, fd, SNAPSHOT_FILE_TIMEOUT_MS);
    if (e < 0)
        return err_set(err, WISP_EXIT_FAILURE, -e, PFX "state file: %s", strerror(-e));
    struct mig_stream_writer w;
    mig_stream_writer_init(&w, &t);
    e = mig_save_begin(reg, &w, m, MIG_STREAM_F_SNAPSHOT, err);
    if (e == 0 && cfg)
        e = mig_config_write(&w, cfg, err);
    if (e == 0)
        e = mig_save_finish(reg, &w, err);
    if (e < 0)
        return e;
    struct stat sb;
    if (fdatasync(fd) < 0 || fstat(fd, &sb) < 0)
        return err_set(err, WISP_EXIT_FAILURE, errno, PFX "syncing the state file: %s",
                       strerror(errno));
    st->state_bytes = (uint64_t)sb.st_size;
    return 0;
}

/* A snapshot's RAM is in its memory file: a RAM section here is refused. */
static int no_ram(void *ctx, uint64_t gpa, const void *data, uint64_t len)
{
    (void)gpa;
    (void)data;
    (void)len;
    /* The first message wins: this one, not the RAM loader's generic one. */
    return err_set(ctx, WISP_EXIT_USAGE, EPROTO,
                   PFX "the state file carries RAM (a migration stream, not a snapshot)");
}

int mig_snapshot_read_state(int fd, struct mig_registry *reg, const struct mig_machine *local,
                            struct errbuf *err)
{
    struct mig_fd_transport ft;
    struct mig_transport t;
    int e = mig_fd_transport_init(&ft, &t, fd, SNAPSHOT_FILE_TIMEOUT_MS);
    if (e < 0)
        return err_set(err, WISP_EXIT_FAILURE, -e, PFX "state file: %s", strerror(-e));
    struct mig_stream_reader r;
    struct mig_machine *stream_m = calloc(1, sizeof(*stream_m));
    if (!stream_m)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    mig_registry_reader_init(reg, &r, &t, local->arch, err);
    e = mig_load_begin(reg, &r, local, stream_m, err);
    if (e == 0)
        e = mig_load_rest(reg, &r, local, no_ram, err, err);
    if (e < 0 && !err->msg[0])
        err_set(err, WISP_EXIT_USAGE, -e, PFX "state file: %s", strerror(-e));
    mig_stream_reader_free(&r);
    free(stream_m);
    return e;
}

int mig_snapshot_read_config(int fd, uint16_t arch, struct mig_config *cfg, struct errbuf *err)
{
    static const struct mig_section_desc known[] = {
        {MIG_SEC_MACHINE, "machine", MIG_MACHINE_VERSION, MIG_MACHINE_VERSION, MIG_MACHINE_MAX_LEN},
        {MIG_SEC_CONFIG, "config", MIG_CONFIG_VERSION, MIG_CONFIG_VERSION, MIG_CONFIG_MAX_LEN},
    };
    struct mig_fd_transport ft;
    struct mig_transport t;
    int e = mig_fd_transport_init(&ft, &t, fd, SNAPSHOT_FILE_TIMEOUT_MS);
    if (e < 0)
        return err_set(err, WISP_EXIT_FAILURE, -e, PFX "state file: %s", strerror(-e));
    struct mig_stream_reader r;
    struct mig_section s;
    struct errbuf rerr = {0}; /* the reader's own words, kept when they say more */
    mig_stream_reader_init(&r, &t, known, ARRAY_SIZE(known), arch, &rerr);
    e = mig_stream_read_header(&r, NULL);
    if (e == 0)
        e = mig_stream_read_section(&r, &s);
    if (e == 0 && s.id != MIG_SEC_MACHINE)
        e = err_set(&rerr, WISP_EXIT_USAGE, EBADMSG,
                    PFX "the state file does not start with "
                        "its machine section");
    if (e < 0) {
        err_set(err, WISP_EXIT_USAGE, -e, "%s",
                rerr.msg[0] ? rerr.msg : PFX "state file unreadable");
        goto out;
    }
    /* The next section: CONFIG, or (an older wisp's file) a device's
     * mandatory state, which this reader refuses, or END. */
    e = mig_stream_read_section(&r, &s);
    if (e == 0 && s.id == MIG_SEC_CONFIG) {
        e = mig_config_decode(&s, cfg, err);
        goto out;
    }
    bool older = e == 0 || (e == -EPROTO && strstr(rerr.msg, "unknown mandatory section"));
    if (e < 0 && !older) {
        err_set(err, WISP_EXIT_USAGE, -e, "%s",
                rerr.msg[0] ? rerr.msg : PFX "state file unreadable");
        goto out;
    }
    e = err_set(err, WISP_EXIT_USAGE, ENOENT,
                PFX "the state file carries no machine configuration (written by an older "
                    "wisp); restore it with --restore and the options it was taken with");
out:
    mig_stream_reader_free(&r);
    return e;
}
