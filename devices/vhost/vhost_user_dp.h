/*
 * vhost-user as a data plane (devices/virtio/virtio_dataplane.h): the
 * frontend connection of vhost_user.h behind the interface the generic
 * device model (devices/virtio/virtio_dp.c) drives.
 *
 * Why a separate file: vhost_user.c speaks the protocol and knows nothing
 * of devices; this file maps the device's life onto it: connect and
 * handshake at creation (before the sandbox and the vCPUs), SET_FEATURES,
 * the memory table and the rings at DRIVER_OK, GET_VRING_BASE at reset,
 * and a cheap liveness check for the main loop.  Rings are passed as wisp's
 * host addresses of the guest's ring GPAs, translated through guest RAM.
 */
#ifndef DEVICES_VHOST_VHOST_USER_DP_H
#define DEVICES_VHOST_VHOST_USER_DP_H

#include "devices/virtio/virtio_dataplane.h"
#include "vmm/error.h"
#include "vmm/gmem.h"

extern const struct virtio_dataplane_ops vhu_dp_ops;

/* The largest config space wisp builds for a backend (virtio-fs: 40 bytes). */
#define VHU_DP_MAX_OWN_CONFIG 64

/*
 * Connect to the backend at `path` and run the handshake.  `config` NULL:
 * the device's config space comes from the backend, which must offer the
 * CONFIG protocol feature.  Otherwise wisp serves `config_len` bytes of
 * `config` (<= VHU_DP_MAX_OWN_CONFIG) itself, read-only, as QEMU does for
 * backends such as virtiofsd that have no config space of their own.
 * `mem` must be memfd-backed (gmem_create) and outlive the data plane.
 * timeout_ms <= 0: VHU_DEFAULT_TIMEOUT_MS per request.  On success *out is
 * the data plane for vhu_dp_ops.  Errors, one line naming the socket:
 * WISP_EXIT_HOST (cannot connect, handshake failed, no CONFIG, guest RAM
 * not shareable), WISP_EXIT_FAILURE (out of memory, config too large).
 */
int vhu_dp_create(const char *path, const struct gmem *mem, int timeout_ms, const void *config,
                  uint32_t config_len, void **out, struct errbuf *err) __must_check;

#endif /* DEVICES_VHOST_VHOST_USER_DP_H */
