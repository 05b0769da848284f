/*
 * The data-plane interface: what a virtio device needs from whatever
 * serves its queues when that is not wisp's own emulation (docs/VHOST.md).
 *
 * Why: a virtio-mmio device's rings can be served by wisp (the built-in
 * models, devices/virtio/<dev>.c), by a vhost-user backend process
 * (devices/vhost/vhost_user_dp.c) or by a vDPA device
 * (devices/vhost/vdpa_dp.c).  The guest
 * must see the same virtio-mmio device either way, so the transport
 * (mmio.c) must not change per data plane.  An external data plane is
 * wrapped by one generic device model (virtio_dp.c) that implements
 * struct virtio_dev_ops on top of this interface: features and config
 * space come from the data plane, DRIVER_OK starts it, a reset stops it,
 * and its notifications are relayed to the transport.
 *
 * Calls are made with the device's lock held, from a vCPU thread (status
 * writes) or the main loop; an implementation talking to another process
 * must bound every wait (vhost-user: VHU_DEFAULT_TIMEOUT_MS per request) or
 * hand the work to a thread of its own (vhost-vdpa: start, guest resets and
 * config writes run on its worker, failures come back through watch_fd).
 *
 * Queue positions: stop() reports each queue's next available index, the
 * position a data plane resumes from.  In-flight requests: stop() returns
 * only when the data plane has finished them (vhost-user GET_VRING_BASE
 * drains), so nothing is in flight after it.  save/load of the data
 * plane's own state is not implemented yet: a device over a data plane that
 * has no portable state says so in `unmigratable` and migration refuses.
 */
#ifndef DEVICES_VIRTIO_VIRTIO_DATAPLANE_H
#define DEVICES_VIRTIO_VIRTIO_DATAPLANE_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/gmem.h"

/* One active queue, as the driver configured it. */
struct virtio_dp_queue {
    uint16_t index;
    uint16_t size;
    uint16_t next_avail; /* where the data plane starts reading the avail ring */
    gpa_t desc, avail, used;
    int kick_fd; /* eventfd signalled when the driver notifies (the transport's ioeventfd) */
    int call_fd; /* eventfd the data plane signals when it used buffers */
};

struct virtio_dataplane_ops {
    const char *kind; /* "vhost-user", "vDPA", "vhost-vsock" */
    /* Features the data plane offers (device-specific and transport bits). */
    uint64_t (*features)(void *dp);
    /* Read / write `len` bytes of the device's config space at `off`.  0 or -errno. */
    int (*config_read)(void *dp, uint32_t off, void *buf, uint32_t len);
    int (*config_write)(void *dp, uint32_t off, const void *buf, uint32_t len);
    /*
     * DRIVER_OK: start serving the `n` queues q[] with the driver's acked
     * `features`.  0 or -errno (the device then needs a reset).
     */
    int (*start)(void *dp, uint64_t features, const struct virtio_dp_queue *q, unsigned n);
    /*
     * Stop serving every started queue; next_avail[i] receives queue
     * q[i].index's resume position.  Nothing is in flight afterwards.
     * next_avail NULL: the caller needs no positions (a guest reset), and
     * the data plane may finish the stop later, on a thread of its own, as
     * long as it finishes before its next start (vhost-vdpa, whose kernel
     * calls may wait for a userspace VDUSE server).  0 or -errno (the data
     * plane is then considered dead).
     */
    int (*stop)(void *dp, const struct virtio_dp_queue *q, unsigned n, uint16_t *next_avail);
    /* An fd the main loop watches for the data plane's death (-1: none). */
    int (*watch_fd)(void *dp);
    /*
     * The watch fd fired: 0 if the data plane is fine (or still recovering),
     * 1 if it has just recovered (a restarted backend took the rings over),
     * -errno if it is gone.
     */
    int (*check)(void *dp);
    /* Non-NULL: why a device on this data plane cannot migrate or snapshot now. */
    const char *unmigratable;
    void (*destroy)(void *dp);
};

#endif /* DEVICES_VIRTIO_VIRTIO_DATAPLANE_H */
