/*
 * The VM core's side of snapshots and migration: it knows the VM (vCPUs,
 * guest memory, the device manager, pause and resume) and drives the
 * format code in migration/ through the device registry.
 *
 * Threads: a snapshot or migration runs on the VM's migration thread
 * ("wisp-mig", seccomp role "migration"), started by vm_run() with the
 * vCPUs.  The API thread hands it a job and waits (vm_mig_snapshot); the
 * main thread keeps serving device back ends meanwhile, so a blk device
 * can drain its requests while the vCPUs are parked.
 *
 * Files: a running wisp cannot open paths once Landlock is on, except in
 * --snapshot-dir, which is opened (and granted) at start; a snapshot names
 * plain files inside it.  A restore opens its two files in vm_create(),
 * before any restriction.
 */
#ifndef VMM_VM_MIG_H
#define VMM_VM_MIG_H

#include "vmm/control.h"
#include "vmm/error.h"

struct vm;
struct mig_registry;
struct mig_machine;

/* Open what --snapshot-dir and --restore name (vm_create).  0 or -errno with err. */
int vm_mig_open(struct vm *vm, struct errbuf *err) __must_check;

/* The --restore-mem file for gmem_create_restore(), or -1 without --restore. */
int vm_mig_restore_mem_fd(const struct vm *vm);

/*
 * Build the registry of everything that has state, in load order (arch:
 * VM-wide state, vCPUs, built-in devices; then the virtio devices), and the
 * machine description a destination compares (arch, vCPUs, CPU template,
 * memory layout, devices).  Both are the caller's (zeroed by this call).
 */
int vm_mig_describe(struct vm *vm, struct mig_registry *reg, struct mig_machine *m,
                    struct errbuf *err) __must_check;

/*
 * --restore: load the snapshot's state into the freshly created VM (its
 * memory already maps the snapshot's memory file).  Runs in vm_run() before
 * any vCPU thread starts.  With --restore-lazy it first starts the
 * userfaultfd server that fills guest memory on demand.  0 or -errno with
 * one line in err (a mismatch names what differs).
 */
int vm_mig_restore(struct vm *vm, struct errbuf *err) __must_check;

/* Is a snapshot or migration job queued or running? */
bool vm_mig_busy(struct vm *vm);

/* Start the migration thread (vm_run, after the vCPUs, before the main filter). */
int vm_mig_start(struct vm *vm, struct errbuf *err) __must_check;

/* Stop and join the migration thread and the userfaultfd server (vm_run's end). */
void vm_mig_stop(struct vm *vm);

/*
 * --restore-lazy: stop the userfaultfd server, log how many pages it
 * served, unregister guest memory.  Only once nothing touches guest memory
 * any more (vm_run, after the vCPU threads are joined): a fault without a
 * server would wait forever.
 */
void vm_mig_stop_lazy(struct vm *vm);

/* Release what vm_mig_open() and the restore made (vm_destroy). */
void vm_mig_destroy(struct vm *vm);

/*
 * --incoming: accept the source's connection (or give up on SIGINT/SIGTERM),
 * read and check the stream into this VM, and answer the source.  Runs in
 * vm_run() before any vCPU thread starts, like a restore.  0 or -errno
 * with one line in err (the source gets the same line and keeps the VM).
 */
int vm_mig_incoming(struct vm *vm, struct errbuf *err) __must_check;

/* vm_control.migrate_start / migrate_status / migrate_cancel (control.h). */
int vm_mig_migrate_start(void *ctx, const struct vm_migrate_req *req, char *why, size_t whylen);
void vm_mig_migrate_status(void *ctx, struct vm_migrate_status *st);
int vm_mig_migrate_cancel(void *ctx);

/*
 * --restore-wait: wait (main thread, before any vCPU thread exists) until
 * PUT /snapshot/load names a snapshot in --snapshot-dir, map its memory file
 * over guest memory (private, copy-on-write), load its state, answer the
 * API, and return.  SIGINT/SIGTERM end the wait.  0 or -errno with err.
 */
int vm_mig_await_load(struct vm *vm, struct errbuf *err) __must_check;

/* vm_control.snapshot_load (control.h); ctx is the vm. */
int vm_mig_snapshot_load(void *ctx, const struct vm_snapshot_load_req *req, char *why,
                         size_t whylen);

/* vm_control.snapshot_create (control.h); ctx is the vm. */
int vm_mig_snapshot(void *ctx, const struct vm_snapshot_req *req, struct vm_snapshot_result *res,
                    char *why, size_t whylen);

#endif /* VMM_VM_MIG_H */
