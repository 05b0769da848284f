/*
 * vhost-vsock as a data plane (devices/virtio/virtio_dataplane.h): the
 * host kernel's /dev/vhost-vsock serves a virtio-vsock device's rx and tx
 * queues, and host programs reach the guest with ordinary AF_VSOCK
 * sockets to its CID (docs/VSOCK.md, "vhost-vsock").
 *
 * Why a layer of its own: the device model (virtio_dp.c with the
 * virtio_dp_vsock type) must not know which data plane serves it, and the
 * kernel's ordering rules (SET_OWNER before anything, the memory table and
 * every ring before SET_RUNNING, no ring change while running, positions
 * read only once stopped) are kept here, in one place, by the layer itself
 * rather than left to the kernel.  Every kernel call goes through struct
 * vhost_sys_ops, so tests/lib/fake_vhost_vsock.c stands in for the kernel
 * in the unit tests.  What the kernel answers is bounded before use
 * (features, ring positions).
 *
 * Life: vhv_create (open, SET_OWNER, GET_FEATURES, SET_GUEST_CID: a CID
 * clash is known before the guest starts); at DRIVER_OK start
 * (SET_FEATURES, SET_MEM_TABLE with wisp's mapping of guest RAM, per queue
 * SET_VRING_NUM/BASE/ADDR/KICK/CALL, SET_RUNNING 1); at reset stop
 * (SET_RUNNING 0, GET_VRING_BASE, kick and call detached); destroy closes.
 * The event queue (2) stays with the VMM.  Not thread-safe: the device
 * lock serialises every call.  The calls wait only in the kernel (no peer
 * process), so they may run on a vCPU thread.
 */
#ifndef DEVICES_VHOST_VHOST_VSOCK_H
#define DEVICES_VHOST_VHOST_VSOCK_H

#include <stdint.h>

#include "devices/vhost/vhost_sys.h"
#include "devices/virtio/virtio_dataplane.h"
#include "vmm/error.h"
#include "vmm/gmem.h"

/* The kernel's device node. */
#define VHV_DEV_PATH "/dev/vhost-vsock"

/* Queues the kernel serves: rx (0) and tx (1); the event queue (2) is the VMM's. */
#define VHV_NQUEUES 2

/* Largest ring the layer programs (the kernel takes up to 65535; virtio_dp_vsock offers 256). */
#define VHV_MAX_VRING_NUM 32768

extern const struct virtio_dataplane_ops vhv_dp_ops;

/*
 * Open `path` (NULL: VHV_DEV_PATH) through `ops` (NULL: the real kernel;
 * `ctx` is its state), take ownership, read the features, and give the
 * guest `cid` (3 .. 2^32 - 2).  `mem` must outlive the data plane (the
 * kernel reads guest RAM through wisp's own mapping of it: no memfd is
 * needed).  On success *out is the data plane for vhv_dp_ops.  Errors,
 * one line naming the device: WISP_EXIT_HOST (no /dev/vhost-vsock or no
 * permission, the kernel refused an ioctl, the CID is in use by another VM
 * (EADDRINUSE) or is one of this host's own (EADDRNOTAVAIL)),
 * WISP_EXIT_USAGE (a CID out of range), WISP_EXIT_FAILURE (out of memory).
 * Returns 0 or -errno.
 */
int vhv_create(const char *path, uint64_t cid, const struct gmem *mem,
               const struct vhost_sys_ops *ops, void *ctx, void **out,
               struct errbuf *err) __must_check;

/* Is the data plane running (SET_RUNNING 1 succeeded and no stop since)?  Tests. */
bool vhv_running(const void *dp);

#endif /* DEVICES_VHOST_VHOST_VSOCK_H */
