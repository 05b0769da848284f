/*
 * vhost-vdpa kernel interface values that Debian 12's <linux/vhost.h> and
 * <linux/vhost_types.h> (Linux 6.1) do not have yet.
 *
 * Why this file exists: the testbed's L1 kernel is 6.12 and real vDPA
 * parents may offer newer features (RESUME, ENABLE_AFTER_DRIVER_OK,
 * IOTLB_PERSIST), but we build against the 6.1 headers.  Every value here
 * was written by us from the numbers in the project's reference
 * (/work/shared/reference/virtio.md §2.1, the ioctl table and the backend
 * feature bit numbers), each behind an #ifndef so a newer header wins.
 * Also the virtio feature and status bits the layer needs by name.
 */
#ifndef DEVICES_VHOST_VDPA_UAPI_H
#define DEVICES_VHOST_VDPA_UAPI_H

#include <linux/vhost.h>
#include <linux/vhost_types.h>

/* Backend feature bit numbers (VHOST_GET/SET_BACKEND_FEATURES): 6.1 knows 1-4. */
#ifndef VHOST_BACKEND_F_RESUME
#define VHOST_BACKEND_F_RESUME 0x5 /* VHOST_VDPA_RESUME works */
#endif
#ifndef VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK
#define VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK 0x6 /* SET_VRING_ENABLE after DRIVER_OK */
#endif
#ifndef VHOST_BACKEND_F_IOTLB_PERSIST
#define VHOST_BACKEND_F_IOTLB_PERSIST 0x8 /* mappings survive SET_STATUS(0) */
#endif

/* Resume a suspended device: _IO(0xAF, 0x7E). */
#ifndef VHOST_VDPA_RESUME
#define VHOST_VDPA_RESUME _IO(VHOST_VIRTIO, 0x7E)
#endif

/* Virtio device status bits (virtio 1.2 §2.1). */
#define VDPA_S_ACKNOWLEDGE 0x01u
#define VDPA_S_DRIVER      0x02u
#define VDPA_S_DRIVER_OK   0x04u
#define VDPA_S_FEATURES_OK 0x08u
#define VDPA_S_NEEDS_RESET 0x40u
#define VDPA_S_FAILED      0x80u

/* Virtio feature bits the layer treats specially (virtio 1.2 §6). */
#define VDPA_F_LOG_ALL           26 /* vhost-private */
#define VDPA_F_PROTOCOL_FEATURES 30 /* vhost-user-private */
#define VDPA_F_VERSION_1         32
#define VDPA_F_ACCESS_PLATFORM   33
#define VDPA_F_RING_PACKED       34
#define VDPA_F_NOTIFICATION_DATA 38
#define VDPA_F_NOTIF_CONFIG_DATA 39
#define VDPA_F_RING_RESET        40
#define VDPA_F_ADMIN_VQ          41
#define VDPA_F_SUSPEND           43

#endif /* DEVICES_VHOST_VDPA_UAPI_H */
