/*
 * The Firecracker-compatible pre-boot phase (docs/API.md, "Firecracker
 * compatibility"): `wisp run --api-sock PATH` without --kernel serves the
 * API, collects the machine through PUT requests into the struct
 * vm_config the command line would have filled, and returns to main() on
 * InstanceStart, which then builds and runs the VM exactly as for the
 * command line.
 */
#ifndef VMM_PREBOOT_H
#define VMM_PREBOOT_H

#include <stdbool.h>

#include "vmm/config.h"
#include "vmm/error.h"

/* Does `cfg` ask for the pre-boot phase (an API socket and nothing to boot)? */
bool preboot_wanted(const struct vm_config *cfg);

/*
 * Serve the pre-boot phase on cfg->api_sock until an InstanceStart has been
 * accepted (the collected configuration passed config_validate() and
 * preflight_check()) and answered.  Prepares the seccomp filters
 * (vm_run() then skips that) and hands the listening socket over to the
 * server vm_create() makes.  Blocks the calling (main) thread.  0 with
 * *cfg complete, or -errno with `err` set.
 */
int preboot_run(struct vm_config *cfg, struct errbuf *err) __must_check;

#endif /* VMM_PREBOOT_H */
