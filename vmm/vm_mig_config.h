/*
 * A VM's configuration carried in its snapshot (migration/stream_config.h):
 * vm_config to (key, value) pairs when a snapshot is written, and back when
 * a snapshot is loaded by a process that was given no machine options (the
 * Firecracker-style PUT /snapshot/load before any configuration).
 *
 * Why in the core: only vmm/ knows the option keys; the pairs are applied
 * with config_set(), the one parser every front end uses.
 */
#ifndef VMM_VM_MIG_CONFIG_H
#define VMM_VM_MIG_CONFIG_H

#include "migration/stream_config.h"
#include "vmm/config.h"

/*
 * Fill `out` (initialised, empty) with what rebuilds `c`'s machine: memory,
 * vcpus, cpu-template and cpu-features when set, acpi, pci, serial,
 * debug-exit, and one "device" entry per --device in its canonical text
 * (config_device_spec).  Host settings that are not the machine (sockets of
 * the API, logs, metrics, sandbox, hugepages) are not carried.  0, or
 * -EINVAL / -ENOSPC / -ENOMEM with one line in err naming what cannot be
 * carried (e.g. a path holding ','); `out` may then hold some entries.
 */
int vm_mig_config_from(const struct vm_config *c, struct mig_config *out,
                       struct errbuf *err) __must_check;

/*
 * Apply a snapshot's pairs to `c` with config_set(), in order.  Only the
 * keys vm_mig_config_from() writes are accepted (the file is hostile: a key
 * such as "kernel" or "api-sock" is refused), and each value goes through
 * the option's own checks.  0, or -EINVAL with one line in err
 * ("snapshot configuration: ..."); `c` may then be partly changed and
 * must be discarded by the caller.
 */
int vm_mig_config_apply(const struct mig_config *in, struct vm_config *c,
                        struct errbuf *err) __must_check;

#endif /* VMM_VM_MIG_CONFIG_H */
