/*
 * vhost-vdpa as a data plane (devices/virtio/virtio_dataplane.h): a vDPA
 * device (hardware, or VDUSE in the testbed) behind the interface the
 * generic device model (devices/virtio/virtio_dp.c) drives, so the guest
 * sees the same virtio-mmio device as with wisp's own emulation
 * (`--device vdpa,path=/dev/vhost-vdpa-N`, docs/VDPA.md).
 *
 * Why a worker thread: with VDUSE, the kernel answers SET_STATUS, IOTLB
 * updates and ring-state reads only after the userspace server has, and
 * waits for it up to the device's message timeout (30 s by default).  A
 * vCPU must not wait on that, and the vhost-vdpa fd's mutex makes any
 * other call on it wait behind a slow one.  So after creation every call
 * into the device is made by one worker thread per device, in order:
 * DRIVER_OK (the whole status sequence, guest RAM mapping, rings, enable,
 * start), guest resets and config writes are queued and the vCPU returns
 * at once.  A failure is reported through the watch fd (an eventfd): the
 * main loop's check() returns it and the device model sets
 * DEVICE_NEEDS_RESET.  Work that piles up while the worker is busy is
 * merged (a reset cancels a start not yet begun), so a guest cannot grow
 * the queue.
 *
 * The worker thread is started by the core once the sandbox is prepared
 * and Landlock is in force (vdpa_dp_start_worker, like the vCPU threads),
 * and calls the `enter` hook the core hands over (seccomp role "vdpa")
 * first thing, before any device call.
 * Queue positions are not read back (stop() with positions is refused):
 * a device on this data plane cannot migrate yet, and says so.
 */
#ifndef DEVICES_VHOST_VDPA_DP_H
#define DEVICES_VHOST_VDPA_DP_H

#include <stdint.h>

#include "devices/vhost/vdpa.h"
#include "devices/virtio/virtio_dataplane.h"
#include "vmm/error.h"
#include "vmm/gmem.h"

extern const struct virtio_dataplane_ops vdpa_dp_ops;

/* What the core hands the data plane. */
struct vdpa_dp_env {
    const struct vhost_sys_ops *sys; /* NULL: the real kernel */
    void *sys_ctx;
    /*
     * Run by the worker first thing (the core: enter the "vdpa" seccomp
     * role).  0 or -errno; a failure fails the device and the worker never
     * touches it.  NULL: nothing to do (unit tests).
     */
    int (*enter)(void);
};

/*
 * Open the vDPA device at `path` (vdpa_open: owner, identity, backend
 * features) and read its config space once.  `mem` must outlive the data
 * plane.  On success *out is the data plane for vdpa_dp_ops and
 * *device_id the virtio device type it serves; its work waits until
 * vdpa_dp_start_worker.  Errors: one line naming the path, WISP_EXIT_HOST
 * (cannot open, bad answers), WISP_EXIT_FAILURE (out of memory).
 */
int vdpa_dp_create(const char *path, const struct vdpa_dp_env *env, const struct gmem *mem,
                   void **out, uint32_t *device_id, struct errbuf *err) __must_check;

/*
 * Start the worker thread (signals blocked, named wisp-vdpa).  Call it from
 * a thread whose restrictions the worker should inherit and before any
 * vCPU runs.  0, or -errno with WISP_EXIT_HOST in `err`.  Idempotent.
 */
int vdpa_dp_start_worker(void *dp, struct errbuf *err) __must_check;

/* The device as opened (identity, queue limits); valid for the data plane's life. */
const struct vdpa_dev *vdpa_dp_dev(void *dp);

/*
 * Wait up to `timeout_ms` until the worker has no queued or running work.
 * 0, -ETIMEDOUT, or the worker's first failure (-errno).  For tests and
 * orderly teardown; never called on a thread that serves the guest.
 */
int vdpa_dp_wait_idle(void *dp, int timeout_ms);

#endif /* DEVICES_VHOST_VDPA_DP_H */
