/*
 * Input checks that run before wisp touches the host: every file, path and
 * value the configuration names is checked before /dev/kvm is opened, so a
 * user with a mistyped path hears about the path (exit 2), even on a machine
 * where the VM could not run anyway (exit 3).  The checks are a first pass:
 * the code that later opens each file still checks what it gets, because
 * files can change in between.
 */
#ifndef VMM_PREFLIGHT_H
#define VMM_PREFLIGHT_H

#include "vmm/config.h"
#include "vmm/error.h"

/*
 * Check `cfg` (already through config_validate()) against the file system
 * and the architecture's limits, acquiring nothing:
 *   - the vCPU count and memory size: arch_check_config();
 *   - kernel: opens, is a non-empty regular file no larger than
 *     CONFIG_MAX_MEMORY, and arch_check_kernel() accepts its format;
 *   - initrd: opens, is a non-empty regular file that fits in guest memory;
 *   - each blk device: the image opens read-only or read-write as
 *     configured, is a regular file of at least one 512-byte sector or a
 *     block device;
 *   - serial file:PATH and console socket=PATH: the directory exists
 *     (nothing is created).
 * Files are opened without blocking (a FIFO cannot hang wisp) and closed
 * again.  Returns 0 or -errno with a one-line message naming the path, all
 * WISP_EXIT_USAGE.
 */
int preflight_check(const struct vm_config *cfg, struct errbuf *err) __must_check;

#endif /* VMM_PREFLIGHT_H */
