/*
 * The host files every architecture opens for a guest: the kernel and
 * initrd it loads, and the file the serial console writes to.  The
 * x86_64 and aarch64 loaders had each grown a copy of these; the rules
 * (no blocking on a FIFO, no following a symlink, an append on restore so a
 * refused stream does not wipe the log) belong in one place.
 */
#ifndef ARCH_COMMON_ARCH_FILES_H
#define ARCH_COMMON_ARCH_FILES_H

#include <stdbool.h>
#include <stddef.h>

#include "vmm/error.h"

struct vm_config;

/* A guest image mapped read-only and private. */
struct archf_map {
    void *data;
    size_t len;
};

/*
 * Map the regular, non-empty file `path` read-only into *f; `what`
 * ("kernel", "initrd") names it in errors.  A FIFO or device is refused
 * without blocking; a file larger than the largest guest RAM is -EFBIG.
 * Returns 0 or a negative errno with `err` set (exit class WISP_EXIT_USAGE).
 */
int archf_map_file(const char *path, const char *what, struct archf_map *f, struct errbuf *err);

/* Unmap what archf_map_file mapped; safe on a zeroed or already unmapped *f. */
void archf_unmap_file(struct archf_map *f);

/*
 * Open where the serial console writes, as cfg->serial says: stdout, nothing
 * (-1) or a file created 0600, never through a symlink, non-blocking, and
 * appended to (not truncated) when the VM continues a restore or an incoming
 * migration.  *owned says whether the caller must close *fd.  Returns 0 or a
 * negative errno with `err` set.
 */
int archf_open_serial_output(const struct vm_config *cfg, int *fd, bool *owned, struct errbuf *err);

#endif /* ARCH_COMMON_ARCH_FILES_H */
