/*
 * The VM control interface: what a controller outside the VM core (the
 * control API server in vmm/api/) may ask of a running VM.  Like
 * vmm/services.h for the layers below, it is a struct of function pointers
 * with an opaque context that vm.c fills (vm_control_init), so the API layer
 * never sees struct vm, vCPU threads or locks, and its unit tests can pass
 * fakes.  This header must not include vmm/vm.h.
 */
#ifndef VMM_CONTROL_H
#define VMM_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a controller sees of the VM's run state. */
enum vm_run_state {
    VM_STATE_RUNNING = 0, /* vCPUs run (or may run) guest code */
    VM_STATE_PAUSED,      /* every vCPU is parked outside KVM_RUN */
    VM_STATE_STOPPING,    /* a stop was requested; the VM is going away */
};

/* How long vm_pause() waits for every vCPU to leave KVM_RUN and park. */
#define VM_PAUSE_TIMEOUT_MS 2000

/* PUT /snapshot/create (docs/SNAPSHOT.md). */
struct vm_snapshot_req {
    const char *state_name; /* file names inside --snapshot-dir */
    const char *mem_name;
    bool stop; /* end wisp (status 0) once written, instead of carrying on */
};

/* PUT /snapshot/load into a wisp started with --restore-wait. */
struct vm_snapshot_load_req {
    const char *state_name; /* file names inside --snapshot-dir */
    const char *mem_name;
    bool resume; /* run the vCPUs at once; else the VM stays paused (PATCH /vm Resumed) */
};

struct vm_snapshot_result {
    uint64_t paused_ms;      /* how long the guest was stopped */
    uint64_t state_bytes;    /* size of the state file */
    uint64_t mem_bytes;      /* guest memory described by the memory file */
    uint64_t mem_data_pages; /* pages written; the rest are holes (zero) */
};

/* Longest a snapshot may take before the API gives up waiting (it still completes). */
#define VM_SNAPSHOT_TIMEOUT_MS 600000

/* PUT /migration (docs/MIGRATION.md). */
struct vm_migrate_req {
    const char *to;       /* "tcp:HOST:PORT" or "unix:PATH" */
    uint32_t downtime_ms; /* target guest pause; 0 = VM_MIGRATE_DOWNTIME_MS */
    uint32_t max_rounds;  /* live rounds; 0 = VM_MIGRATE_MAX_ROUNDS */
    uint64_t bandwidth;   /* bytes/s for the live rounds; 0 = no limit */
};

#define VM_MIGRATE_DOWNTIME_MS 300
#define VM_MIGRATE_MAX_ROUNDS  30

enum vm_migrate_state {
    VM_MIGRATE_NONE = 0,  /* never started */
    VM_MIGRATE_ACTIVE,    /* sending */
    VM_MIGRATE_COMPLETED, /* the destination runs the VM; this wisp is exiting */
    VM_MIGRATE_FAILED,    /* the VM runs here as before; `error` says why */
    VM_MIGRATE_CANCELLED, /* cancelled by the user; the VM runs here as before */
};

/* GET /migration. */
struct vm_migrate_status {
    enum vm_migrate_state state;
    uint32_t round;
    uint64_t dirty_pages; /* left to send */
    uint64_t bytes_sent;
    double mb_per_s;
    uint64_t remaining_ms; /* estimate; UINT64_MAX when unknown */
    uint64_t total_ms;     /* since the start */
    uint64_t downtime_ms;  /* once completed: how long the guest was paused */
    char error[400];
};

static inline const char *vm_migrate_state_name(enum vm_migrate_state s)
{
    static const char *const n[] = {"none", "active", "completed", "failed", "cancelled"};
    return (unsigned)s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}

/* GET /balloon and /balloon/statistics (docs/BALLOON.md). */
#define VM_BALLOON_NSTATS 10 /* virtio's statistics tags 0-9, in tag order */
struct vm_balloon {
    uint32_t amount_mib; /* current target */
    bool deflate_on_oom;
    uint32_t stats_polling_interval_s; /* 0: statistics off */
    uint32_t target_pages;
    uint32_t actual_pages; /* as the guest reports it, at most guest RAM */
    bool has_stat[VM_BALLOON_NSTATS];
    uint64_t stat[VM_BALLOON_NSTATS];
};

struct vm_control {
    void *ctx; /* passed back to every function below */
    /*
     * Stop every vCPU outside KVM_RUN and wait (at most timeout_ms) until
     * each one has parked.  Any thread but a vCPU thread.  0 once paused
     * (also if it already was); -ETIMEDOUT if a vCPU did not acknowledge in
     * time (the VM is then resumed, as before the call); -ESHUTDOWN if the
     * VM is stopping.  Device back ends on the main thread keep serving
     * requests already in flight; the guest submits no new ones.
     */
    int (*pause)(void *ctx, unsigned timeout_ms);
    /* Let parked vCPUs run again.  0 (also if not paused); -ESHUTDOWN if
     * stopping; -EBUSY while a snapshot or migration runs (it resumes). */
    int (*resume)(void *ctx);
    enum vm_run_state (*state)(void *ctx);
    /*
     * Press Ctrl+Alt+Del on the guest's keyboard (arch_send_ctrl_alt_del);
     * NULL behaves as -ENOTSUP.  Any thread; does not block.  0 once queued
     * (a paused guest sees it when resumed); -ESHUTDOWN, -ENOTSUP, -ENODEV,
     * -EAGAIN as arch_send_ctrl_alt_del says.
     */
    int (*send_ctrl_alt_del)(void *ctx);
    /*
     * Write a snapshot (pause, device and vCPU state, memory, then resume
     * unless the VM was paused before or req->stop).  Runs on the VM's
     * migration thread; the caller waits.  0, or -errno with one line in
     * `why`: -ENOTSUP without --snapshot-dir, -EINVAL for a bad file name,
     * -EBUSY while another snapshot or migration runs, -ESHUTDOWN when the
     * VM is stopping, or the error that stopped the snapshot (the VM then
     * carries on as before).
     */
    int (*snapshot_create)(void *ctx, const struct vm_snapshot_req *req,
                           struct vm_snapshot_result *res, char *why, size_t whylen);
    /*
     * Start a live migration to req->to on the migration thread and return
     * at once.  0, or -errno with one line in `why`: -EINVAL (address,
     * limits), -EBUSY (a snapshot or migration runs), -ESHUTDOWN.
     */
    int (*migrate_start)(void *ctx, const struct vm_migrate_req *req, char *why, size_t whylen);
    /*
     * Load a snapshot into a wisp that waits for one (--restore-wait) and
     * start it.  0, or -errno with one line in `why`: -EALREADY when this
     * wisp is not waiting (it booted, or already loaded), -EINVAL for bad
     * names, -EBUSY while a load runs, or the load's error (wisp then
     * exits with status 2, as a failed --restore does).
     */
    int (*snapshot_load)(void *ctx, const struct vm_snapshot_load_req *req, char *why,
                         size_t whylen);
    /* Progress of the current or last migration. */
    void (*migrate_status)(void *ctx, struct vm_migrate_status *st);
    /* Ask a running migration to stop; the VM carries on here.  0 or -ENOENT. */
    int (*migrate_cancel)(void *ctx);
    /*
     * The balloon (--device balloon; NULL members behave as "no balloon").
     * Any thread; none blocks.  balloon_get: 0 or -ENODEV.  balloon_set:
     * new target in MiB, the guest is told at once; -ENODEV, or -EINVAL
     * above guest RAM.  balloon_set_interval: -ENODEV, or -EINVAL if
     * statistics are off (they cannot be turned on at run time) or s is 0
     * or too long.
     */
    int (*balloon_get)(void *ctx, struct vm_balloon *b);
    int (*balloon_set)(void *ctx, uint32_t amount_mib);
    int (*balloon_set_interval)(void *ctx, uint32_t s);
    /* Static facts for instance and machine information. */
    unsigned vcpus;
    uint64_t mem_bytes;
};

/* "Running", "Paused", "Stopping" (Firecracker's spelling for the first two). */
static inline const char *vm_run_state_name(enum vm_run_state s)
{
    return s == VM_STATE_PAUSED ? "Paused" : s == VM_STATE_STOPPING ? "Stopping" : "Running";
}

#endif /* VMM_CONTROL_H */
