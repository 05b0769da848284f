/*
 * The Firecracker-compatible pre-boot phase (docs/API.md, "Firecracker
 * compatibility"): `wisp run --api-sock PATH` without --kernel serves the
 * API, collects the machine through PUT requests into the struct
 * vm_config the command line would have filled, builds the machine on
 * InstanceStart (or a snapshot load) through the caller's hook before it
 * answers, as Firecracker does, and returns to main(), which runs the VM
 * exactly as for the command line.
 */
#ifndef VMM_PREBOOT_H
#define VMM_PREBOOT_H

#include <stdbool.h>

#include "vmm/config.h"
#include "vmm/error.h"

/* Does `cfg` ask for the pre-boot phase (an API socket and nothing to boot)? */
bool preboot_wanted(const struct vm_config *cfg);

/*
 * What the pre-boot phase asks of its caller, on the calling (main) thread,
 * while the API thread waits to answer InstanceStart or a snapshot load.
 *   build:   the configuration is complete and passed config_validate()
 *            and preflight_check(): build the machine (vm_build).  0, or
 *            -errno with `err` set and nothing left built: the request is
 *            then answered 400 with that line (InstanceStart: the pre-boot
 *            phase goes on, the client may fix the configuration and start
 *            again; a load: wisp ends, as for any failed load).
 *   unbuild: undo a successful build whose request was already answered
 *            with a timeout (the build took too long).
 */
struct preboot_hooks {
    int (*build)(void *ctx, struct errbuf *err);
    void (*unbuild)(void *ctx);
    void *ctx;
};

/*
 * Serve the pre-boot phase on cfg->api_sock until an InstanceStart or a
 * load has been accepted (checked, and built by hooks->build) and
 * answered.  Prepares the seccomp filters (vm_run() then skips that) and
 * hands the listening socket over to the server vm_open_api() makes.
 * Blocks the calling (main) thread.  0 with *cfg complete and the machine
 * built, or -errno with `err` set (nothing built).
 */
int preboot_run(struct vm_config *cfg, const struct preboot_hooks *hooks,
                struct errbuf *err) __must_check;

#endif /* VMM_PREBOOT_H */
