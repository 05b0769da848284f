/*
 * Lazy snapshot restore through userfaultfd.
 *
 * Why this exists: restoring a snapshot by reading all of guest RAM before
 * the first vCPU runs costs time proportional to the RAM size.  A lazy
 * restore maps guest RAM empty (one MAP_PRIVATE|MAP_ANONYMOUS mapping per RAM
 * region, at host addresses the caller chose) and registers it with a
 * userfaultfd in MISSING mode.  The first touch of a page, by a vCPU or by
 * KVM itself, blocks the toucher and sends a fault message; a server thread
 * answers it by copying that one page from the snapshot's memory file
 * (UFFDIO_COPY).  Pages are fetched on demand only: there is no prefetch.
 *
 * The memory file is a regular file holding the RAM regions' contents
 * concatenated; each region names its offset in it.  The file is trusted
 * like the rest of the snapshot, but its geometry is still checked: every
 * region must lie inside the file when mig_uffd_create() runs.  If the file
 * shrinks later, pages past its end are served as zeros (UFFDIO_ZEROPAGE)
 * and a page cut in the middle is zero-padded; both are counted.
 *
 * Kernel-mode faults: KVM reaches guest memory from kernel mode
 * (get_user_pages, copy_to/from_user), so the userfaultfd must be created
 * WITHOUT UFFD_USER_MODE_ONLY.  Such an fd needs either CAP_SYS_PTRACE, or
 * vm.unprivileged_userfaultfd = 1, or access to /dev/userfaultfd (Linux 6.1+,
 * governed by its file mode only).  mig_uffd_create() tries the
 * userfaultfd(2) syscall first and falls back to /dev/userfaultfd (which must
 * then exist inside the jail).  mig_uffd_available() probes all of this so
 * the VMM can refuse --restore-lazy with one clear line up front.
 *
 * Threads: one thread runs mig_uffd_serve(); any thread may call
 * mig_uffd_stop() and mig_uffd_get_stats().  Stopping does NOT populate the
 * pages never touched: once mig_uffd_destroy() unregisters the regions, an
 * untouched page reads as zeros.  Stop the server only when nothing will
 * touch guest RAM again (the VM is torn down), or after every page has been
 * touched.
 *
 * Syscalls made by the server thread (mig_uffd_serve), for its seccomp role:
 *   poll            on the userfaultfd and the stop eventfd (glibc poll(), which
 *                   is SYS_poll on x86_64 and SYS_ppoll on arm64)
 *   read            fault messages from the userfaultfd
 *   pread64         one page of the memory file
 *   ioctl           UFFDIO_COPY, UFFDIO_ZEROPAGE, UFFDIO_WAKE on the userfaultfd
 *   write           log lines to stderr (rate limited), clock_gettime (vDSO)
 * mig_uffd_stop() makes one write(2) on an eventfd, from the caller's thread.
 * mig_uffd_destroy() makes ioctl(UFFDIO_UNREGISTER) and close(2) on the
 * caller's thread.  mig_uffd_create() and mig_uffd_available() are setup-time
 * calls (userfaultfd or openat + ioctl(USERFAULTFD_IOC_NEW), ioctl(UFFDIO_API),
 * ioctl(UFFDIO_REGISTER), fstat, fcntl(F_DUPFD_CLOEXEC), eventfd2, mmap,
 * munmap) and belong before the sandbox is entered.
 *
 * Every function returns 0 or a negative errno value; setup failures also
 * record one line in a `struct errbuf`.
 */
#ifndef MIGRATION_UFFD_H
#define MIGRATION_UFFD_H

#include <stdint.h>

#include "vmm/error.h"
#include "vmm/util.h"

/* The most RAM regions one server handles. */
#define MIG_UFFD_MAX_REGIONS 16U

/* How often the server retries a copy the kernel refused with EAGAIN. */
#define MIG_UFFD_EAGAIN_RETRIES 64U

/* One guest RAM region to serve. */
struct mig_uffd_region {
    void *hva;            /* host address of an anonymous private mapping, page aligned */
    uint64_t size;        /* bytes, page aligned, > 0 */
    uint64_t file_offset; /* where its contents start in the memory file, page aligned */
};

/* Counters, all since mig_uffd_create(). */
struct mig_uffd_stats {
    uint64_t faults;       /* page-fault messages received */
    uint64_t pages_copied; /* pages populated with UFFDIO_COPY */
    uint64_t pages_zero;   /* pages populated with UFFDIO_ZEROPAGE (past the file's end) */
    uint64_t eexist;       /* faults on pages already populated by an earlier answer */
    uint64_t bad_addr;     /* faults outside every region (an internal error) */
};

struct mig_uffd;

/*
 * Probe whether this host lets wisp serve guest RAM through userfaultfd with
 * kernel-mode faults: open a userfaultfd as mig_uffd_create() would, do the
 * API handshake, register one scratch page in MISSING mode and check that
 * UFFDIO_COPY and UFFDIO_ZEROPAGE are offered.  Returns 0, or a negative
 * errno with a line in `err` (exit code WISP_EXIT_HOST) that names the knob
 * to turn (vm.unprivileged_userfaultfd, /dev/userfaultfd).
 */
int mig_uffd_available(struct errbuf *err) __must_check;

/*
 * Open a userfaultfd (close-on-exec, non-blocking, kernel faults included),
 * do the API handshake and register the `n` regions `r` (1 <= n <=
 * MIG_UFFD_MAX_REGIONS; page aligned; no two overlapping in host memory or in
 * the file) in MISSING mode.  `mem_fd` must be a regular file at least as
 * long as every region's end in it; it is duplicated, so the caller may close
 * its own copy.  The regions are copied.  On success *out holds the server;
 * on failure nothing is left registered or open, *out is NULL, and `err`
 * says why in one line (WISP_EXIT_USAGE for bad geometry, WISP_EXIT_HOST when
 * userfaultfd is unavailable).
 */
int mig_uffd_create(struct mig_uffd **out, int mem_fd, const struct mig_uffd_region *r, unsigned n,
                    struct errbuf *err) __must_check;

/*
 * Serve page faults until mig_uffd_stop() is called; meant to be the body of
 * a thread of its own, and only one thread may serve a given `u`.  Each fault
 * is answered with the page read from the memory file (UFFDIO_COPY), or a
 * zero page past the file's end.  A page another answer already populated
 * (two threads faulting on it) is not an error; a copy refused with EAGAIN is
 * retried up to MIG_UFFD_EAGAIN_RETRIES times.  A fault outside every region
 * (impossible unless the regions changed under us) is counted and logged,
 * never fatal, and left unanswered.  Faults still queued when the stop
 * request arrives are left unanswered too.  Returns 0 once stopped (stop is
 * sticky: a later call returns 0 at once), or a negative errno on a fatal
 * error (the memory file cannot be read, the kernel refuses a copy), which is
 * logged; faulting threads then stay blocked until the regions are
 * unregistered or the VM is torn down.
 */
int mig_uffd_serve(struct mig_uffd *u) __must_check;

/* Ask mig_uffd_serve() to return.  Any thread; one write(2) to an eventfd. */
void mig_uffd_stop(struct mig_uffd *u);

/* Copy the counters into *st (each read atomically; any thread). */
void mig_uffd_get_stats(const struct mig_uffd *u, struct mig_uffd_stats *st);

/*
 * Unregister the regions, close every fd and free `u` (NULL is fine).  Call
 * only after the serving thread has returned.  Faulting threads still
 * blocked are woken and then see zero pages (see the top of this file).
 */
void mig_uffd_destroy(struct mig_uffd *u);

#endif /* MIGRATION_UFFD_H */
