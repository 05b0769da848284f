/*
 * Lazy snapshot restore: the userfaultfd page server (see uffd.h).
 *
 * Kept apart from the stream code because it is a different kind of thing:
 * not a parser of untrusted bytes but a long-running thread answering the
 * kernel, with its own syscall set for the sandbox.  The server allocates
 * nothing after mig_uffd_create(): its page buffer is made there.
 */
#include "migration/uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vmm/log.h"

#define PFX "lazy restore: "

/* Fault messages read per read(2). */
#define MSG_BATCH 16

struct mig_uffd {
    int uffd;   /* the userfaultfd, non-blocking */
    int mem_fd; /* our duplicate of the memory file */
    int evfd;   /* stop request, non-blocking eventfd */
    unsigned n;
    struct mig_uffd_region regions[MIG_UFFD_MAX_REGIONS];
    uint64_t page_size;
    uint8_t *page; /* one page, page aligned: the copy source */
    _Atomic uint64_t faults, pages_copied, pages_zero, eexist, bad_addr;
};

/* ---- Opening a userfaultfd ---- */

/*
 * A userfaultfd that also reports kernel-mode faults (no UFFD_USER_MODE_ONLY:
 * KVM touches guest pages from the kernel).  The syscall is refused without
 * CAP_SYS_PTRACE when vm.unprivileged_userfaultfd is 0, and a seccomp filter
 * may refuse it outright; /dev/userfaultfd is then the other door.
 * Returns the fd, or -1 with the errno of each attempt in sys_err and
 * dev_err (0 if that door was not tried).
 */
static int uffd_open(int *sys_err, int *dev_err)
{
    int flags = O_CLOEXEC | O_NONBLOCK;
    *sys_err = *dev_err = 0;
    int fd = (int)syscall(SYS_userfaultfd, flags);
    if (fd >= 0)
        return fd;
    *sys_err = errno;
    if (errno != EPERM && errno != EACCES && errno != ENOSYS)
        return -1;
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev < 0) {
        *dev_err = errno;
        return -1;
    }
    fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
    *dev_err = errno;
    close(dev);
    return fd;
}

/* Open and handshake; on failure record why (WISP_EXIT_HOST). */
static int uffd_open_api(struct errbuf *err)
{
    int sys_err, dev_err;
    int fd = uffd_open(&sys_err, &dev_err);
    if (fd < 0 && !dev_err)
        return err_set(err, WISP_EXIT_HOST, sys_err, PFX "userfaultfd(2) failed: %s",
                       strerror(sys_err));
    if (fd < 0)
        return err_set(err, WISP_EXIT_HOST, dev_err,
                       PFX "cannot open a userfaultfd (syscall: %s; /dev/userfaultfd: %s); "
                           "run with CAP_SYS_PTRACE, set vm.unprivileged_userfaultfd=1, or give "
                           "access to /dev/userfaultfd",
                       strerror(sys_err), strerror(dev_err));
    struct uffdio_api api = {.api = UFFD_API, .features = 0};
    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        int e = errno;
        close(fd);
        return err_set(err, WISP_EXIT_HOST, e, PFX "userfaultfd API handshake failed: %s",
                       strerror(e));
    }
    if (!(api.ioctls & (1ULL << _UFFDIO_REGISTER))) {
        close(fd);
        return err_set(err, WISP_EXIT_HOST, ENOTSUP,
                       PFX "this kernel's userfaultfd cannot register memory");
    }
    return fd;
}

/* Register [hva, hva+size) in MISSING mode and check COPY and ZEROPAGE are offered. */
static int uffd_register(int fd, void *hva, uint64_t size, struct errbuf *err)
{
    struct uffdio_register reg = {
        .range = {.start = (uintptr_t)hva, .len = size},
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };
    if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
        int e = errno;
        return err_set(err, WISP_EXIT_HOST, e,
                       PFX "cannot register %#llx+%#llx with userfaultfd (it must be an anonymous "
                           "private mapping): %s",
                       (unsigned long long)(uintptr_t)hva, (unsigned long long)size, strerror(e));
    }
    uint64_t need = (1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_ZEROPAGE) | (1ULL << _UFFDIO_WAKE);
    if ((reg.ioctls & need) != need) {
        struct uffdio_range rg = reg.range;
        (void)ioctl(fd, UFFDIO_UNREGISTER, &rg);
        return err_set(err, WISP_EXIT_HOST, ENOTSUP,
                       PFX "userfaultfd offers no page copy for %#llx+%#llx",
                       (unsigned long long)(uintptr_t)hva, (unsigned long long)size);
    }
    return 0;
}

static void uffd_unregister(int fd, void *hva, uint64_t size)
{
    struct uffdio_range rg = {.start = (uintptr_t)hva, .len = size};
    (void)ioctl(fd, UFFDIO_UNREGISTER, &rg); /* gone already if the mapping was unmapped */
}

int mig_uffd_available(struct errbuf *err)
{
    int fd = uffd_open_api(err);
    if (fd < 0)
        return fd;
    uint64_t ps = (uint64_t)sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        close(fd);
        return err_set(err, WISP_EXIT_HOST, e, PFX "probe mapping failed: %s", strerror(e));
    }
    int r = uffd_register(fd, p, ps, err);
    if (r == 0)
        uffd_unregister(fd, p, ps);
    munmap(p, ps);
    close(fd);
    return r;
}

/* ---- Creating a server ---- */

/* Check the regions against each other and against a file of `fsize` bytes. */
static int check_regions(const struct mig_uffd_region *r, unsigned n, uint64_t ps, uint64_t fsize,
                         struct errbuf *err)
{
    if (!r || n == 0 || n > MIG_UFFD_MAX_REGIONS)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, PFX "%u RAM regions (1 to %u allowed)", n,
                       MIG_UFFD_MAX_REGIONS);
    for (unsigned i = 0; i < n; i++) {
        uint64_t hva = (uintptr_t)r[i].hva, hend, fend;
        if (!is_aligned(hva, ps) || !is_aligned(r[i].size, ps) || !is_aligned(r[i].file_offset, ps))
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           PFX "region %u (%#llx+%#llx at file offset %#llx) is not page aligned",
                           i, (unsigned long long)hva, (unsigned long long)r[i].size,
                           (unsigned long long)r[i].file_offset);
        if (hva == 0 || !range_end(hva, r[i].size, &hend) ||
            !range_end(r[i].file_offset, r[i].size, &fend))
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           PFX "region %u is empty, at address 0 or wraps around", i);
        if (fend > fsize)
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           PFX "region %u (file bytes %#llx-%#llx) extends beyond the memory "
                               "file (%#llx bytes)",
                           i, (unsigned long long)r[i].file_offset, (unsigned long long)fend,
                           (unsigned long long)fsize);
        for (unsigned j = 0; j < i; j++) {
            if (ranges_overlap(hva, r[i].size, (uintptr_t)r[j].hva, r[j].size))
                return err_set(err, WISP_EXIT_USAGE, EINVAL,
                               PFX "regions %u and %u overlap in host memory", j, i);
            if (ranges_overlap(r[i].file_offset, r[i].size, r[j].file_offset, r[j].size))
                return err_set(err, WISP_EXIT_USAGE, EINVAL,
                               PFX "regions %u and %u overlap in the memory file", j, i);
        }
    }
    return 0;
}

static void uffd_free(struct mig_uffd *u)
{
    if (u->uffd >= 0)
        close(u->uffd);
    if (u->evfd >= 0)
        close(u->evfd);
    if (u->mem_fd >= 0)
        close(u->mem_fd);
    free(u->page);
    free(u);
}

int mig_uffd_create(struct mig_uffd **out, int mem_fd, const struct mig_uffd_region *r, unsigned n,
                    struct errbuf *err)
{
    *out = NULL;
    struct stat st;
    if (fstat(mem_fd, &st) < 0) {
        int e = errno;
        return err_set(err, WISP_EXIT_USAGE, e, PFX "memory file: %s", strerror(e));
    }
    if (!S_ISREG(st.st_mode))
        return err_set(err, WISP_EXIT_USAGE, EINVAL, PFX "the memory file is not a regular file");
    uint64_t ps = (uint64_t)sysconf(_SC_PAGESIZE);
    int rc = check_regions(r, n, ps, (uint64_t)st.st_size, err);
    if (rc)
        return rc;

    struct mig_uffd *u = calloc(1, sizeof(*u));
    if (!u)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, PFX "out of memory");
    u->uffd = u->evfd = u->mem_fd = -1;
    u->page_size = ps;
    u->n = n;
    memcpy(u->regions, r, n * sizeof(*r));
    u->page = aligned_alloc(ps, ps);
    if (!u->page) {
        uffd_free(u);
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, PFX "out of memory");
    }
    u->mem_fd = fcntl(mem_fd, F_DUPFD_CLOEXEC, 0);
    u->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (u->mem_fd < 0 || u->evfd < 0) {
        int e = errno;
        uffd_free(u);
        return err_set(err, WISP_EXIT_FAILURE, e, PFX "cannot create server fds: %s", strerror(e));
    }
    u->uffd = uffd_open_api(err);
    if (u->uffd < 0) {
        rc = u->uffd;
        uffd_free(u);
        return rc;
    }
    for (unsigned i = 0; i < n; i++) {
        rc = uffd_register(u->uffd, r[i].hva, r[i].size, err);
        if (rc) {
            while (i-- > 0)
                uffd_unregister(u->uffd, r[i].hva, r[i].size);
            uffd_free(u);
            return rc;
        }
    }
    *out = u;
    return 0;
}

void mig_uffd_destroy(struct mig_uffd *u)
{
    if (!u)
        return;
    for (unsigned i = 0; i < u->n; i++)
        uffd_unregister(u->uffd, u->regions[i].hva, u->regions[i].size);
    uffd_free(u);
}

/* ---- Serving ---- */

void mig_uffd_stop(struct mig_uffd *u)
{
    uint64_t one = 1;
    /* EAGAIN only if the counter is about to overflow: it is readable anyway. */
    ssize_t w __unused = write(u->evfd, &one, sizeof(one));
}

void mig_uffd_get_stats(const struct mig_uffd *u, struct mig_uffd_stats *st)
{
    st->faults = atomic_load_explicit(&u->faults, memory_order_relaxed);
    st->pages_copied = atomic_load_explicit(&u->pages_copied, memory_order_relaxed);
    st->pages_zero = atomic_load_explicit(&u->pages_zero, memory_order_relaxed);
    st->eexist = atomic_load_explicit(&u->eexist, memory_order_relaxed);
    st->bad_addr = atomic_load_explicit(&u->bad_addr, memory_order_relaxed);
}

static void count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static const struct mig_uffd_region *find_region(const struct mig_uffd *u, uint64_t addr)
{
    for (unsigned i = 0; i < u->n; i++) {
        uint64_t base = (uintptr_t)u->regions[i].hva;
        if (addr >= base && addr - base < u->regions[i].size)
            return &u->regions[i];
    }
    return NULL;
}

/*
 * Read the page at file offset `off` into u->page.  Returns the number of
 * bytes the file had (0 past its end; the rest of the page is zeroed), or
 * -errno.
 */
static int64_t read_page(struct mig_uffd *u, uint64_t off)
{
    uint64_t got = 0;
    while (got < u->page_size) {
        ssize_t r = pread(u->mem_fd, u->page + got, u->page_size - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += (uint64_t)r;
    }
    if (got < u->page_size)
        memset(u->page + got, 0, u->page_size - got);
    return (int64_t)got;
}

/* Wake whoever waits on the page at `addr` (populated by someone else). */
static void wake_page(struct mig_uffd *u, uint64_t addr)
{
    struct uffdio_range rg = {.start = addr, .len = u->page_size};
    (void)ioctl(u->uffd, UFFDIO_WAKE, &rg);
}

/*
 * Populate the page at `addr`: copy u->page there, or map the zero page.
 * Returns 0 (done, or already populated) or -errno.
 */
static int populate(struct mig_uffd *u, uint64_t addr, bool zero)
{
    for (unsigned tries = 0; tries <= MIG_UFFD_EAGAIN_RETRIES; tries++) {
        int r;
        if (zero) {
            struct uffdio_zeropage zp = {.range = {.start = addr, .len = u->page_size}};
            r = ioctl(u->uffd, UFFDIO_ZEROPAGE, &zp);
        } else {
            struct uffdio_copy cp = {
                .dst = addr, .src = (uintptr_t)u->page, .len = u->page_size, .mode = 0};
            r = ioctl(u->uffd, UFFDIO_COPY, &cp);
        }
        if (r == 0) {
            count(zero ? &u->pages_zero : &u->pages_copied);
            return 0;
        }
        if (errno == EEXIST) {
            /* A racing fault's answer got there first; make sure nobody
             * is left waiting on it. */
            count(&u->eexist);
            wake_page(u, addr);
            return 0;
        }
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
    }
    return -EAGAIN;
}

static int serve_fault(struct mig_uffd *u, uint64_t addr)
{
    count(&u->faults);
    addr = align_down(addr, u->page_size);
    const struct mig_uffd_region *rg = find_region(u, addr);
    if (!rg) {
        count(&u->bad_addr);
        log_ratelimited(LOG_ERROR, PFX "internal error: fault at %#llx outside every region",
                        (unsigned long long)addr);
        return 0;
    }
    uint64_t off = rg->file_offset + (addr - (uintptr_t)rg->hva);
    int64_t got = read_page(u, off);
    if (got < 0) {
        log_error(PFX "reading the memory file at %#llx: %s", (unsigned long long)off,
                  strerror((int)-got));
        return (int)got;
    }
    int r = populate(u, addr, got == 0);
    if (r < 0)
        log_error(PFX "cannot populate guest page at %#llx: %s", (unsigned long long)addr,
                  strerror(-r));
    return r;
}

/* Drain the fault messages queued now.  Returns 0 or -errno (fatal). */
static int serve_messages(struct mig_uffd *u)
{
    struct uffd_msg msgs[MSG_BATCH];
    for (;;) {
        ssize_t r = read(u->uffd, msgs, sizeof(msgs));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return 0;
        if (r < 0)
            return -errno;
        if (r == 0 || (size_t)r % sizeof(msgs[0]) != 0) {
            log_error(PFX "short read of %zd bytes from the userfaultfd", r);
            return -EIO;
        }
        for (size_t i = 0; i < (size_t)r / sizeof(msgs[0]); i++) {
            if (msgs[i].event != UFFD_EVENT_PAGEFAULT) {
                /* No event features were asked for: should not happen. */
                log_ratelimited(LOG_WARN, PFX "ignoring userfaultfd event %u",
                                (unsigned)msgs[i].event);
                continue;
            }
            int e = serve_fault(u, msgs[i].arg.pagefault.address);
            if (e < 0)
                return e;
        }
    }
}

int mig_uffd_serve(struct mig_uffd *u)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = u->uffd, .events = POLLIN}, {.fd = u->evfd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            log_error(PFX "poll: %s", strerror(e));
            return -e;
        }
        if (p[1].revents)
            return 0;
        if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
            log_error(PFX "the userfaultfd reported an error (revents %#x)", p[0].revents);
            return -EIO;
        }
        if (p[0].revents & POLLIN) {
            int e = serve_messages(u);
            if (e < 0)
                return e;
        }
    }
}
