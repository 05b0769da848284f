/*
 * Exit codes and error reports.  Setup code deep in the stack (a loader, a
 * device, KVM setup) describes a failure once, in one line, together with the
 * exit code class it belongs to; main() prints it and exits.  Nothing below
 * main() prints the final error or calls exit().
 */
#ifndef VMM_ERROR_H
#define VMM_ERROR_H

#include "vmm/util.h"

/* Documented process exit codes (see `wisp --help` and README.md). */
enum wisp_exit {
    WISP_EXIT_OK = 0,      /* guest powered off or reset */
    WISP_EXIT_FAILURE = 1, /* VMM failure at run time (KVM error, emulation failure, I/O) */
    WISP_EXIT_USAGE = 2,   /* bad command line, config file, kernel/initrd image or VM layout */
    WISP_EXIT_HOST = 3,    /* host cannot run the VM: /dev/kvm missing/denied, KVM too old, no huge
                              pages, no    IOMMUFD (/dev/iommu) for a VFIO cdev device */
};

struct errbuf {
    int exit_code; /* enum wisp_exit */
    char msg[512]; /* one line, no trailing newline */
};

/*
 * Record an error in `e` (if it has none yet: the first, most specific report
 * wins) and return -err so callers can write `return err_set(e, ...)`.
 * `err` is a positive errno value.
 */
int err_set(struct errbuf *e, int exit_code, int err, const char *fmt, ...) __printf(4, 5);

/* True if an error was recorded. */
static inline bool err_isset(const struct errbuf *e)
{
    return e->msg[0] != '\0';
}

#endif /* VMM_ERROR_H */
