/*
 * Guest memory (see gmem.h).  Layout of each region in our address space:
 *
 *   [guard page PROT_NONE][ region, memfd MAP_SHARED ][guard page PROT_NONE]
 *
 * The reservation is made first as one PROT_NONE anonymous mapping, then the
 * memfd is mapped over its middle with MAP_FIXED, so the guards cannot be
 * taken by another mapping in between.
 */
#include "vmm/gmem.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/memfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HUGE_2M (2ULL * MiB)

/*
 * Map region i over a fresh guarded reservation: from `fd` at the region's
 * fd_offset with `flags` (MAP_SHARED or MAP_PRIVATE), or anonymous when fd
 * is -1.
 */
static int map_region(struct gmem *gm, unsigned i, int fd, int flags, struct errbuf *err)
{
    struct gmem_region *r = &gm->regions[i];
    size_t guard = (size_t)gm->page_size;
    size_t len = (size_t)r->size + 2 * guard;

    void *resv = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (resv == MAP_FAILED)
        return err_set(err, WISP_EXIT_HOST, errno, "cannot reserve %llu MiB of address space: %s",
                       (unsigned long long)(r->size / MiB), strerror(errno));
    gm->resv[i] = resv;
    gm->resv_len[i] = len;

    if (fd < 0)
        flags |= MAP_ANONYMOUS;
    void *p = mmap((uint8_t *)resv + guard, (size_t)r->size, PROT_READ | PROT_WRITE,
                   flags | MAP_FIXED, fd, fd < 0 ? 0 : (off_t)r->fd_offset);
    if (p == MAP_FAILED)
        return err_set(err, WISP_EXIT_HOST, errno, "cannot map guest memory: %s", strerror(errno));
    r->hva = p;
    /* Guest RAM stays out of core dumps of the VMM. */
    (void)madvise(p, (size_t)r->size, MADV_DONTDUMP);
    return 0;
}

/* Check the requested ranges; *total gets their sum. */
static int check_ranges(const struct gmem *gm, const struct gmem_range *ranges, unsigned n,
                        bool hugepages, uint64_t *total_out, struct errbuf *err)
{
    if (n == 0 || n > GMEM_MAX_REGIONS)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "guest memory needs 1 to %d regions",
                       GMEM_MAX_REGIONS);

    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        uint64_t end;
        if (!range_end(ranges[i].gpa, ranges[i].size, &end) ||
            !is_aligned(ranges[i].gpa | ranges[i].size, gm->page_size))
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "guest memory region %u (0x%llx+0x%llx) is empty or not %s aligned", i,
                           (unsigned long long)ranges[i].gpa, (unsigned long long)ranges[i].size,
                           hugepages ? "2 MiB" : "page");
        if (i > 0 && ranges[i].gpa < ranges[i - 1].gpa + ranges[i - 1].size)
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "guest memory regions overlap");
        if (__builtin_add_overflow(total, ranges[i].size, &total))
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "guest memory size overflows");
    }
    *total_out = total;
    return 0;
}

/* Lay out the regions back to back in the backing file and map each one. */
static int map_all(struct gmem *gm, const struct gmem_range *ranges, unsigned n, uint64_t total,
                   int fd, int flags, struct errbuf *err)
{
    uint64_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        gm->regions[i].gpa = ranges[i].gpa;
        gm->regions[i].size = ranges[i].size;
        gm->regions[i].fd_offset = off;
        gm->nregions = i + 1;
        off += ranges[i].size;
        int ret = map_region(gm, i, fd, flags, err);
        if (ret < 0) {
            gmem_destroy(gm);
            return ret;
        }
    }
    gm->total = total;
    return 0;
}

int gmem_create(struct gmem *gm, const struct gmem_range *ranges, unsigned n, bool hugepages,
                struct errbuf *err)
{
    memset(gm, 0, sizeof(*gm));
    gm->fd = -1;
    gm->page_size = hugepages ? HUGE_2M : PAGE_SIZE;
    uint64_t total;
    int cr = check_ranges(gm, ranges, n, hugepages, &total, err);
    if (cr < 0)
        return cr;

    unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
    if (hugepages)
        flags |= MFD_HUGETLB | MFD_HUGE_2MB;
    gm->fd = memfd_create("wisp-guest-ram", flags);
    if (gm->fd < 0) {
        int e = errno;
        gm->fd = -1;
        if (hugepages)
            return err_set(err, WISP_EXIT_HOST, e,
                           "huge pages requested but not usable (memfd_create: %s)", strerror(e));
        return err_set(err, WISP_EXIT_HOST, e, "memfd_create failed: %s", strerror(e));
    }
    if (ftruncate(gm->fd, (off_t)total) < 0) {
        int e = errno;
        gmem_destroy(gm);
        return err_set(err, WISP_EXIT_HOST, e, "cannot size guest memory to %llu MiB: %s%s",
                       (unsigned long long)(total / MiB), strerror(e),
                       e == EFBIG ? " (the file-size limit, RLIMIT_FSIZE, is below the memory "
                                    "size; guest RAM is a memfd)"
                                  : "");
    }
    if (hugepages) {
        /* hugetlbfs does not reserve at ftruncate; fallocate makes "no huge
         * pages available" an error now instead of a SIGBUS in the guest. */
        if (fallocate(gm->fd, 0, 0, (off_t)total) < 0) {
            int e = errno;
            gmem_destroy(gm);
            return err_set(err, WISP_EXIT_HOST, e,
                           "not enough free 2 MiB huge pages for %llu MiB of guest memory "
                           "(see /proc/sys/vm/nr_hugepages): %s",
                           (unsigned long long)(total / MiB), strerror(e));
        }
    }
    /* The size is fixed from here on: a shrink would SIGBUS us. */
    (void)fcntl(gm->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);

    return map_all(gm, ranges, n, total, gm->fd, MAP_SHARED, err);
}

/*
 * A snapshot's memory file must be a regular file holding all `total`
 * bytes of guest RAM: a mapping past its end would SIGBUS when the guest
 * touches it, a copy would come up short.  0 or -errno with err.
 */
static int mem_file_check(int mem_fd, uint64_t total, struct errbuf *err)
{
    struct stat st;
    if (fstat(mem_fd, &st) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "snapshot memory file: %s", strerror(errno));
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < total)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "snapshot memory file holds %llu bytes, the guest's memory is %llu",
                       (unsigned long long)st.st_size, (unsigned long long)total);
    return 0;
}

int gmem_create_restore(struct gmem *gm, const struct gmem_range *ranges, unsigned n, int mem_fd,
                        bool lazy, struct errbuf *err)
{
    memset(gm, 0, sizeof(*gm));
    gm->fd = -1;
    gm->page_size = PAGE_SIZE;
    uint64_t total;
    int cr = check_ranges(gm, ranges, n, false, &total, err);
    if (cr < 0)
        return cr;
    cr = mem_file_check(mem_fd, total, err);
    if (cr < 0)
        return cr;
    return map_all(gm, ranges, n, total, lazy ? -1 : mem_fd, MAP_PRIVATE, err);
}

static void log_free(struct gmem *gm);

void gmem_destroy(struct gmem *gm)
{
    log_free(gm);
    for (unsigned i = 0; i < GMEM_MAX_REGIONS; i++) {
        if (gm->resv[i])
            munmap(gm->resv[i], gm->resv_len[i]);
        gm->resv[i] = NULL;
        gm->regions[i].hva = NULL;
    }
    if (gm->fd >= 0)
        close(gm->fd);
    gm->fd = -1;
    gm->nregions = 0;
    gm->total = 0;
}

const struct gmem_region *gmem_region_of(const struct gmem *gm, gpa_t gpa)
{
    /* Few regions: a linear scan is both simplest and fastest. */
    for (unsigned i = 0; i < gm->nregions; i++) {
        const struct gmem_region *r = &gm->regions[i];
        if (gpa >= r->gpa && gpa - r->gpa < r->size)
            return r;
    }
    return NULL;
}

void *gmem_ptr(const struct gmem *gm, gpa_t gpa, uint64_t len)
{
    uint64_t end;
    if (!range_end(gpa, len, &end))
        return NULL;
    const struct gmem_region *r = gmem_region_of(gm, gpa);
    if (!r)
        return NULL;
    /* end - 1 is the last byte; it must be in the same region. */
    if (end - 1 - r->gpa >= r->size)
        return NULL;
    return r->hva + (gpa - r->gpa);
}

bool gmem_range_ok(const struct gmem *gm, gpa_t gpa, uint64_t len)
{
    return gmem_ptr(gm, gpa, len) != NULL;
}

int gmem_read(const struct gmem *gm, gpa_t gpa, void *dst, size_t len)
{
    void *p = gmem_ptr(gm, gpa, len);
    if (!p)
        return -EFAULT;
    memcpy(dst, p, len);
    return 0;
}

int gmem_write(const struct gmem *gm, gpa_t gpa, const void *src, size_t len)
{
    void *p = gmem_ptr(gm, gpa, len);
    if (!p)
        return -EFAULT;
    memcpy(p, src, len);
    return 0;
}

int gmem_zero(const struct gmem *gm, gpa_t gpa, size_t len)
{
    void *p = gmem_ptr(gm, gpa, len);
    if (!p)
        return -EFAULT;
    memset(p, 0, len);
    return 0;
}

int gmem_discard(const struct gmem *gm, gpa_t gpa, uint64_t len)
{
    if (len == 0 || !is_aligned(gpa | len, gm->page_size ? gm->page_size : PAGE_SIZE))
        return -EINVAL;
    if (!gmem_range_ok(gm, gpa, len))
        return -EFAULT;
    if (gm->fd < 0)
        return -EOPNOTSUPP;
    const struct gmem_region *r = gmem_region_of(gm, gpa);
    off_t off = (off_t)(r->fd_offset + (gpa - r->gpa));
    if (fallocate(gm->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, (off_t)len) < 0)
        return -errno;
    /* The page now reads as zero: a copy already sent must be replaced. */
    gmem_log_mark(gm, gpa, len);
    return 0;
}

int gmem_gpa_of(const struct gmem *gm, const void *p, uint64_t len, gpa_t *gpa)
{
    uintptr_t a = (uintptr_t)p;
    for (unsigned i = 0; i < gm->nregions; i++) {
        const struct gmem_region *r = &gm->regions[i];
        uintptr_t base = (uintptr_t)r->hva;
        if (!r->hva || a < base || a - base >= r->size)
            continue;
        if (len == 0 || len > r->size - (a - base))
            return -EFAULT;
        *gpa = r->gpa + (a - base);
        return 0;
    }
    return -EFAULT;
}

gpa_t gmem_end(const struct gmem *gm)
{
    if (gm->nregions == 0)
        return 0;
    const struct gmem_region *r = &gm->regions[gm->nregions - 1];
    return r->gpa + r->size;
}

int gmem_remap_private(struct gmem *gm, int mem_fd, struct errbuf *err)
{
    int e = mem_file_check(mem_fd, gm->total, err);
    if (e < 0)
        return e;
    for (unsigned i = 0; i < gm->nregions; i++) {
        struct gmem_region *r = &gm->regions[i];
        void *p = mmap(r->hva, (size_t)r->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED,
                       mem_fd, (off_t)r->fd_offset);
        if (p == MAP_FAILED)
            return err_set(err, WISP_EXIT_HOST, errno, "cannot map the snapshot memory file: %s",
                           strerror(errno));
        (void)madvise(p, (size_t)r->size, MADV_DONTDUMP);
    }
    if (gm->fd >= 0)
        close(gm->fd);
    gm->fd = -1;
    return 0;
}

int gmem_copy_in(struct gmem *gm, int mem_fd, struct errbuf *err)
{
    int e = mem_file_check(mem_fd, gm->total, err);
    if (e < 0)
        return e;
    for (unsigned i = 0; i < gm->nregions; i++) {
        const struct gmem_region *r = &gm->regions[i];
        uint64_t at = 0;
        while (at < r->size) {
            off_t d = lseek(mem_fd, (off_t)(r->fd_offset + at), SEEK_DATA);
            if (d < 0 && errno == ENXIO)
                break; /* only holes up to the end */
            if (d < 0)
                return err_set(err, WISP_EXIT_HOST, errno, "snapshot memory file: %s",
                               strerror(errno));
            if ((uint64_t)d >= r->fd_offset + r->size)
                break;
            off_t h = lseek(mem_fd, d, SEEK_HOLE);
            uint64_t end =
                h < 0 ? r->fd_offset + r->size : MIN((uint64_t)h, r->fd_offset + r->size);
            for (uint64_t o = (uint64_t)d; o < end;) {
                ssize_t n =
                    pread(mem_fd, (uint8_t *)r->hva + (o - r->fd_offset), end - o, (off_t)o);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0)
                    return err_set(err, WISP_EXIT_HOST, n < 0 ? errno : EIO,
                                   "cannot read the snapshot memory file: %s",
                                   n < 0 ? strerror(errno) : "short file");
                o += (uint64_t)n;
            }
            at = end - r->fd_offset;
        }
    }
    return 0;
}

/* ---- device write log ------------------------------------------------- */

int gmem_log_start(struct gmem *gm)
{
    for (unsigned i = 0; i < gm->nregions; i++) {
        size_t words = (size_t)((gm->regions[i].size / PAGE_SIZE + 63) / 64);
        if (!gm->log[i])
            gm->log[i] = calloc(words, sizeof(*gm->log[i]));
        if (!gm->log[i])
            return -ENOMEM;
        for (size_t w = 0; w < words; w++)
            __atomic_store_n(&gm->log[i][w], 0, __ATOMIC_RELAXED);
    }
    /* Release: a marker that sees the flag sees the bitmaps. */
    atomic_store_explicit(&gm->logging, true, memory_order_release);
    return 0;
}

/*
 * Stop logging.  The bitmaps stay allocated until gmem_destroy(): a device
 * thread may be inside gmem_log_mark() right now, past the flag check.
 */
void gmem_log_stop(struct gmem *gm)
{
    atomic_store(&gm->logging, false);
}

static void log_free(struct gmem *gm)
{
    atomic_store(&gm->logging, false);
    for (unsigned i = 0; i < GMEM_MAX_REGIONS; i++) {
        free(gm->log[i]);
        gm->log[i] = NULL;
    }
}

void gmem_log_mark(const struct gmem *gm, gpa_t gpa, uint64_t len)
{
    if (!atomic_load_explicit(&gm->logging, memory_order_acquire) || len == 0)
        return;
    uint64_t end;
    if (!range_end(gpa, len, &end))
        return;
    for (unsigned i = 0; i < gm->nregions; i++) {
        const struct gmem_region *r = &gm->regions[i];
        if (end <= r->gpa || gpa >= r->gpa + r->size || !gm->log[i])
            continue;
        uint64_t lo = (MAX(gpa, r->gpa) - r->gpa) / PAGE_SIZE;
        uint64_t hi = (MIN(end, r->gpa + r->size) - r->gpa + PAGE_SIZE - 1) / PAGE_SIZE;
        for (uint64_t p = lo; p < hi; p++)
            __atomic_fetch_or(&gm->log[i][p / 64], 1ULL << (p % 64), __ATOMIC_RELAXED);
    }
}

int gmem_log_drain(struct gmem *gm, int (*fn)(void *ctx, uint64_t gpa, uint64_t len), void *ctx)
{
    for (unsigned i = 0; i < gm->nregions; i++) {
        if (!gm->log[i])
            continue;
        uint64_t pages = gm->regions[i].size / PAGE_SIZE;
        for (uint64_t w = 0; w < (pages + 63) / 64; w++) {
            uint64_t bits = __atomic_exchange_n(&gm->log[i][w], 0, __ATOMIC_RELAXED);
            while (bits) {
                unsigned b = (unsigned)__builtin_ctzll(bits);
                bits &= bits - 1;
                int e = fn(ctx, gm->regions[i].gpa + (w * 64 + b) * PAGE_SIZE, PAGE_SIZE);
                if (e < 0)
                    return e;
            }
        }
    }
    return 0;
}
