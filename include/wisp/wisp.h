/*
 * libwisp: the wisp virtual machine monitor as a C library, for programs
 * that run microVMs themselves instead of starting the wisp binary.  The
 * library runs the same code the command line runs (option parser, device
 * parser, VM build, run loop, snapshot and migration); this header is its
 * whole public interface and stays free of wisp's internal types.
 *
 * Error model: every function that can fail returns 0 or a negative errno
 * value and, when `err` is not NULL, fills it with the same code and one
 * line of text (docs/LIBWISP.md).  Handles are opaque.  Threads and
 * signals: see docs/LIBWISP.md, "Threading model".
 *
 * Versioning: symbols carry the version node WISP_0.1; the soname is
 * libwisp.so.0 and changes only when an existing function changes.
 */
#ifndef WISP_WISP_H
#define WISP_WISP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest error text, including the terminating NUL. */
#define WISP_ERROR_MSG_MAX 512

/* What a failed call reports: code is the negative errno the call returned. */
struct wisp_error {
    int code;
    char msg[WISP_ERROR_MSG_MAX];
};

/* A machine description being built (kernel, memory, devices, ...). */
struct wisp_config;
/* A created virtual machine. */
struct wisp_vm;

/* The library's version, "MAJOR.MINOR.PATCH" (the same as `wisp --version`). */
const char *wisp_version(void);

/* ---- configuration ---------------------------------------------------- */

/*
 * Allocate a configuration with the command line's defaults (256 MiB,
 * 1 vCPU, serial console on stdio) except the sandbox: seccomp and Landlock
 * are off until wisp_config_set_sandbox() turns them on.  0 or -ENOMEM.
 */
int wisp_config_new(struct wisp_config **out, struct wisp_error *err);

/* Free a configuration (NULL is ignored).  VMs created from it keep their own copy. */
void wisp_config_free(struct wisp_config *cfg);

/*
 * Set any option `wisp run` takes, by its long name without dashes, e.g.
 * ("serial", "file:/tmp/console.log"), ("boot", "pvh"), ("debug-exit", NULL),
 * ("snapshot-dir", "/srv/snap").  value NULL means "on" for a switch.
 * -EINVAL with the command line's message for an unknown key or bad value.
 */
int wisp_config_set(struct wisp_config *cfg, const char *key, const char *value,
                    struct wisp_error *err);

/* The guest kernel image (ELF or bzImage).  Checked by wisp_vm_create(): -ENOENT if missing. */
int wisp_config_set_kernel(struct wisp_config *cfg, const char *path, struct wisp_error *err);

/* The kernel command line. */
int wisp_config_set_cmdline(struct wisp_config *cfg, const char *cmdline, struct wisp_error *err);

/* An initial ramdisk. */
int wisp_config_set_initrd(struct wisp_config *cfg, const char *path, struct wisp_error *err);

/* Guest memory in bytes.  -EINVAL for 0 or more than the command line allows. */
int wisp_config_set_memory(struct wisp_config *cfg, uint64_t bytes, struct wisp_error *err);

/* Number of vCPUs (at least 1). */
int wisp_config_set_vcpus(struct wisp_config *cfg, unsigned vcpus, struct wisp_error *err);

/*
 * Add a device from the string `--device` takes ("blk,path=disk.img",
 * "net,tap=tap0", "rng", "vsock,cid=3,uds_path=/run/v.sock", ...), parsed by
 * the command line's parser.  -EINVAL with its message for a bad spec.
 */
int wisp_config_add_device(struct wisp_config *cfg, const char *spec, struct wisp_error *err);

/* Merge a wisp JSON configuration file (`wisp run --config`, docs/CONFIG.md). */
int wisp_config_load_json(struct wisp_config *cfg, const char *path, struct wisp_error *err);

/* Merge a file in Firecracker's `--config-file` layout (`wisp run --config-file`). */
int wisp_config_load_firecracker(struct wisp_config *cfg, const char *path, struct wisp_error *err);

/*
 * Confine the VM's threads with wisp's seccomp filters (kill mode) and
 * Landlock (where the kernel has it) when `on` is non-zero, as the wisp
 * binary does; off by default.  The filters bind only the threads the
 * library starts (the calling thread stays free), but a SIGSYS handler is
 * installed for the whole process (docs/LIBWISP.md).
 */
int wisp_config_set_sandbox(struct wisp_config *cfg, int on, struct wisp_error *err);

/* ---- virtual machines ------------------------------------------------- */

/*
 * Check `cfg` as `wisp run` does and build the VM (KVM, guest memory,
 * devices, the loaded kernel); it does not run yet.  One VM at a time per
 * process: -EBUSY while another exists.  -ENOENT for a missing kernel,
 * initrd, image or /dev/kvm, -EINVAL for a bad configuration.
 */
int wisp_vm_create(const struct wisp_config *cfg, struct wisp_vm **out, struct wisp_error *err);

/*
 * Create a VM from a snapshot (wisp_vm_snapshot) instead of booting: `cfg`
 * describes the same machine (memory, vCPUs, devices; no kernel needed),
 * state_path and mem_path are the snapshot's two files.  The snapshot is
 * loaded by wisp_vm_start(), which reports a mismatch.
 */
int wisp_vm_restore(const struct wisp_config *cfg, const char *state_path, const char *mem_path,
                    struct wisp_vm **out, struct wisp_error *err);

/*
 * Run the VM on threads of the library's own.  Returns once the VM runs
 * (or failed to start: then the error, and wisp_vm_wait() has the status).
 * -EALREADY if it was started before.
 */
int wisp_vm_start(struct wisp_vm *vm, struct wisp_error *err);

/* Stop every vCPU (0 also if already paused).  -ESHUTDOWN once the VM is stopping. */
int wisp_vm_pause(struct wisp_vm *vm, struct wisp_error *err);

/* Let paused vCPUs run again.  -EBUSY while a snapshot or migration runs. */
int wisp_vm_resume(struct wisp_vm *vm, struct wisp_error *err);

/*
 * Write a snapshot into the configured "snapshot-dir" as two plain file
 * names (no '/'), then go on as before (a paused VM stays paused).  -ENOTSUP
 * without a snapshot directory, -EINVAL for bad names, -EBUSY while another
 * snapshot or migration runs.  Blocks until written.
 */
int wisp_vm_snapshot(struct wisp_vm *vm, const char *state_name, const char *mem_name,
                     struct wisp_error *err);

/*
 * Live-migrate the VM to a wisp receiving with --incoming at `dest`
 * ("tcp:HOST:PORT" or "unix:PATH") and wait up to timeout_ms (0: no limit)
 * for the outcome.  0 once the destination runs the VM: this VM then ends,
 * and wisp_vm_wait() reports status 0.  On failure the VM runs here as before.
 * -ETIMEDOUT leaves the migration running.
 */
int wisp_vm_migrate(struct wisp_vm *vm, const char *dest, unsigned timeout_ms,
                    struct wisp_error *err);

/* Ask a running VM to stop, as SIGTERM stops wisp (status 128 + SIGTERM). */
int wisp_vm_stop(struct wisp_vm *vm, struct wisp_error *err);

/*
 * Wait up to timeout_ms (negative: forever) for the VM to end and store its
 * exit status in *status: what `wisp run` would exit with (0 powered off,
 * the guest's debug-exit value, 1 VMM failure, 128+N stopped by signal N
 * or wisp_vm_stop()).  -ETIMEDOUT if it still runs, -EINVAL if never started.
 */
int wisp_vm_wait(struct wisp_vm *vm, int timeout_ms, int *status, struct wisp_error *err);

/* Stop the VM if it runs, wait for it and free everything (NULL is ignored). */
void wisp_vm_destroy(struct wisp_vm *vm);

#ifdef __cplusplus
}
#endif

#endif /* WISP_WISP_H */
