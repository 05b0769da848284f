/*
 * vhost-user as a data plane (devices/virtio/virtio_dataplane.h): the
 * frontend connection of vhost_user.h behind the interface the generic
 * device model (devices/virtio/virtio_dp.c) drives.
 *
 * Why a separate file: vhost_user.c speaks the protocol and knows nothing
 * of devices; this file maps the device's life onto it: connect and
 * handshake at creation (before the sandbox and the vCPUs), SET_FEATURES,
 * the memory table, the inflight area and the rings at DRIVER_OK,
 * GET_VRING_BASE at reset, and a cheap liveness check for the main loop.
 * Rings are passed as wisp's host addresses of the guest's ring GPAs,
 * translated through guest RAM.
 *
 * Backend restart (`reconnect`, for devices whose requests may be taken
 * again: blk, not fs): when the backend offers INFLIGHT_SHMFD, wisp asks it
 * for the inflight area at DRIVER_OK and keeps that fd while the rings run.
 * If the backend dies (EOF on the socket), the device does not fail: the
 * main loop retries the socket path every VHU_DP_RETRY_MS for up to
 * VHU_DP_RECONNECT_MS; a new backend gets the handshake, the features, the
 * memory table, the same inflight area (so it takes back what was in
 * flight and nothing that completed) and each ring at its used index, then
 * one kick.  Without an inflight area (qemu-storage-daemon 7.2 offers
 * none) the same resume is safe only if the old backend completed requests
 * in the order they were made available, which wisp checks in guest memory
 * (vhu_dp_resume_point); otherwise, past the window, or if the new backend
 * lacks a feature the guest uses, the device fails (DEVICE_NEEDS_RESET).
 * The retries run on the main loop, each request with the usual deadline.
 */
#ifndef DEVICES_VHOST_VHOST_USER_DP_H
#define DEVICES_VHOST_VHOST_USER_DP_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtio_dataplane.h"
#include "vmm/error.h"
#include "vmm/gmem.h"

extern const struct virtio_dataplane_ops vhu_dp_ops;

#define VHU_DP_RETRY_MS     100   /* how often the socket is tried while the backend is away */
#define VHU_DP_RECONNECT_MS 30000 /* how long a backend may be away before the device fails */

/*
 * Can a ring be resumed at its used index by a backend that has no record
 * of what was in flight?  `avail` and `used` are the split ring's two
 * rings (flags, idx, entries) of `size` entries in guest memory; `start`
 * is the avail position the ring started at.  *base receives the used
 * index.  0 if every completion still visible names the head of the same
 * avail position (requests were completed in order, so positions [used,
 * avail) are exactly the ones not completed); -EPROTONOSUPPORT with the
 * first mismatching position in *bad otherwise; -ERANGE if the rings claim
 * more outstanding requests than the ring holds; -EINVAL for size 0.
 * Reads each index once; the guest may be writing the rings meanwhile.
 */
int vhu_dp_resume_check(const uint8_t *avail, const uint8_t *used, uint16_t size, uint16_t start,
                        uint16_t *base, uint16_t *bad);

/* How many times the backend came back (tests, metrics). */
unsigned vhu_dp_reconnects(void *dp);

/* The largest config space wisp builds for a backend (virtio-fs: 40 bytes). */
#define VHU_DP_MAX_OWN_CONFIG 64

/*
 * Connect to the backend at `path` and run the handshake.  `config` NULL:
 * the device's config space comes from the backend, which must offer the
 * CONFIG protocol feature.  Otherwise wisp serves `config_len` bytes of
 * `config` (<= VHU_DP_MAX_OWN_CONFIG) itself, read-only, as QEMU does for
 * backends such as virtiofsd that have no config space of their own.
 * `reconnect`: a backend that dies may be replaced (see above).
 * `mem` must be memfd-backed (gmem_create) and outlive the data plane.
 * timeout_ms <= 0: VHU_DEFAULT_TIMEOUT_MS per request.  On success *out is
 * the data plane for vhu_dp_ops.  Errors, one line naming the socket:
 * WISP_EXIT_HOST (cannot connect, handshake failed, no CONFIG, guest RAM
 * not shareable), WISP_EXIT_FAILURE (out of memory, config too large).
 */
int vhu_dp_create(const char *path, const struct gmem *mem, int timeout_ms, const void *config,
                  uint32_t config_len, bool reconnect, void **out, struct errbuf *err) __must_check;

#endif /* DEVICES_VHOST_VHOST_USER_DP_H */
