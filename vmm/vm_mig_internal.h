/*
 * What vm_mig.c (snapshots, the migration thread) and vm_migrate.c (live
 * migration) share.  Private to vmm/.
 */
#ifndef VMM_VM_MIG_INTERNAL_H
#define VMM_VM_MIG_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/vfio/vfio_mig.h"
#include "devices/virtio/virtio_mig.h"
#include "vmm/config.h"
#include "vmm/control.h"

struct vm;
struct mig_uffd;

/* A job for the migration thread.  Heap-allocated: a waiter that gives up
 * leaves it to the thread, which frees it when done. */
struct mig_job {
    int (*fn)(struct vm *vm, void *arg, char *why, size_t whylen);
    void *arg;
    int ret;
    bool done;
    bool abandoned;
    char why[512];
};

struct vm_mig {
    int snap_dir_fd; /* --snapshot-dir, or -1 */
    int restore_fd;  /* --restore state file, or -1 */
    int restore_mem_fd;
    struct virtio_mig virtio[CONFIG_MAX_DEVICES];
    struct vfio_mig_dev vfio[CONFIG_MAX_DEVICES]; /* passthrough functions */

    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool sync_inited;
    pthread_t thread;
    bool thread_started;
    bool stopping;
    struct mig_job *job; /* queued or running, NULL when idle */

    /* Live migration (vm_migrate.c): the outgoing one's request, progress
     * (under `lock`) and cancel flag; the incoming one's listening socket. */
    char migrate_to[256];
    struct vm_migrate_req migrate_req;
    struct vm_migrate_status mstat;
    atomic_bool migrate_cancel;
    uint64_t mstat_t0; /* vm_mig_now_ms() at the start */
    bool mstat_seen;   /* a status read saw "completed" (the source may exit) */
    int incoming_fd;   /* --incoming: listening socket, or -1 */

    /* --restore-wait: the load request (under `lock`), the eventfd that wakes
     * the main thread, and the answer for the API thread. */
    bool awaiting, load_pending, load_done;
    char load_state[256], load_mem[256];
    bool load_resume;
    int load_ret;
    char load_why[400];
    int load_efd;

    /* --restore-lazy: the userfaultfd page server and its thread (wisp-uffd). */
    struct mig_uffd *uffd;
    pthread_t uffd_thread;
    bool uffd_started;
};

/*
 * Run fn on the migration thread.  Waits up to timeout_ms for it unless
 * `detach` (then returns 0 once queued).  One job at a time: -EBUSY while
 * another is queued or running; -ESHUTDOWN when the thread is gone.
 */
int vm_mig_run_job(struct vm *vm, int (*fn)(struct vm *, void *, char *, size_t), void *arg,
                   unsigned timeout_ms, bool detach, char *why, size_t whylen);

/* CLOCK_MONOTONIC in ms. */
uint64_t vm_mig_now_ms(void);

/* A plain file name inside --snapshot-dir: no path, no dot names (create and load). */
bool vm_mig_name_ok(const char *n);

#endif /* VMM_VM_MIG_INTERNAL_H */
