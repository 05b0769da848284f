/*
 * vhost-vdpa: a vDPA device (hardware, VDUSE or a simulator) driven through
 * the kernel's /dev/vhost-vdpa-N interface (docs/VDPA.md).
 *
 * Why a layer of its own: a virtio device model whose data plane is a vDPA
 * device needs features, config, status, guest-RAM mapping and queue setup
 * without knowing ioctls or the kernel's ordering rules.  Every kernel call
 * goes through an injectable table (struct vhost_sys_ops, vhost_sys.h) so a simulated
 * kernel (tests/lib/fake_vdpa) can stand in for it in the unit tests.  What
 * the kernel answers is bounded before use: config size, queue count and
 * size, IOVA range, the status read back and the ring base.
 *
 * Order of use (the kernel's rules, /work/shared/reference/virtio.md §2.4):
 *   vdpa_open          open, SET_OWNER, device id/features/queues/config
 *                      size/IOVA range, backend features negotiated
 *   vdpa_status_set    ACKNOWLEDGE, DRIVER (each read back)
 *   vdpa_features_set  the guest's acked features -> FEATURES_OK
 *   vdpa_map_gmem      guest RAM by IOTLB v2 messages, IOVA = GPA
 *   vdpa_queue_setup   per queue: num, base, ring GPAs, kick and call fds
 *   vdpa_queue_enable  before DRIVER_OK (unless ENABLE_AFTER_DRIVER_OK)
 *   vdpa_start         DRIVER_OK, read back
 *   vdpa_suspend, vdpa_vring_base_get, vdpa_resume   (stop / read positions)
 *   vdpa_reset, vdpa_close
 * Not thread-safe: one owner thread.  The calls wait only in the kernel,
 * but there a VDUSE device's status, feature, IOTLB and ring calls wait for
 * the userspace server's reply, up to the device's message timeout (30 s by
 * default in drivers/vdpa/vdpa_user/vduse_dev.c): a thread that serves the
 * guest must not make them (see docs/VDPA.md).
 */
#ifndef DEVICES_VHOST_VDPA_H
#define DEVICES_VHOST_VDPA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "devices/vhost/vhost_sys.h"
#include "vmm/error.h"
#include "vmm/gmem.h"

#define VDPA_MAX_QUEUES    64   /* more than the kernel reports is refused */
#define VDPA_MAX_CONFIG    4096 /* largest config space we accept */
#define VDPA_MAX_VRING_NUM 32768
#define VDPA_MAX_MAPS      GMEM_MAX_REGIONS

/*
 * Virtio features never shown to the guest even if the device offers them:
 * vhost-private bits, ACCESS_PLATFORM (no vIOMMU: the VMM forces it towards
 * the device instead), NOTIFICATION_DATA / NOTIF_CONFIG_DATA (mmio kicks
 * carry the queue index only), RING_RESET, ADMIN_VQ, SUSPEND (transport
 * features of a transport we do not have) and packed rings (the layer
 * reads split-ring bases only).
 */
#define VDPA_GUEST_HIDDEN                                                                          \
    ((1ull << 26) | (1ull << 30) | (1ull << 33) | (1ull << 34) | (1ull << 38) | (1ull << 39) |     \
     (1ull << 40) | (1ull << 41) | (1ull << 43))

/* Backend features the layer understands and acks when offered. */
#define VDPA_BACKEND_WANTED                                                                        \
    ((1ull << 1) /* IOTLB_MSG_V2 */ | (1ull << 2) /* IOTLB_BATCH */ | (1ull << 4) /* SUSPEND */ |  \
     (1ull << 5) /* RESUME */ | (1ull << 6) /* ENABLE_AFTER_DRIVER_OK */)

struct vdpa_map {
    uint64_t iova, size;
};

struct vdpa_dev {
    const struct vhost_sys_ops *ops;
    void *ctx;
    int fd;                   /* -1 when closed */
    uint32_t device_id;       /* virtio device type (2 = blk) */
    uint64_t dev_features;    /* the device's offer (VHOST_GET_FEATURES) */
    uint64_t guest_offered;   /* what the guest may see: dev_features & ~VDPA_GUEST_HIDDEN */
    uint64_t guest_acked;     /* what the guest acked (subset of guest_offered) */
    uint64_t backend_acked;   /* sent with VHOST_SET_FEATURES (guest_acked + forced bits) */
    uint64_t backend_offered; /* VHOST_GET_BACKEND_FEATURES */
    uint64_t backend;         /* negotiated: backend_offered & VDPA_BACKEND_WANTED */
    uint32_t config_size;
    uint32_t nqueues;               /* GET_VQS_COUNT, 1..VDPA_MAX_QUEUES */
    uint16_t vring_max;             /* GET_VRING_NUM, 1..VDPA_MAX_VRING_NUM */
    uint64_t iova_first, iova_last; /* inclusive */
    uint8_t status;                 /* last status read back */
    bool suspended;
    unsigned nmaps;
    struct vdpa_map maps[VDPA_MAX_MAPS];
    uint64_t queues_set; /* bit per queue with rings programmed */
};

/* Is backend feature `bit` (VHOST_BACKEND_F_*) negotiated? */
static inline bool vdpa_has_backend(const struct vdpa_dev *d, unsigned bit)
{
    return bit < 64 && (d->backend >> bit) & 1;
}

/*
 * Open `path` (/dev/vhost-vdpa-N; the open resets the device), take
 * ownership, read and bound what the device reports, and negotiate the
 * backend features (IOTLB_MSG_V2 is required).  `ops` NULL means the real
 * kernel.  Errors are one line in `err`; on failure the fd is closed.
 */
int vdpa_open(struct vdpa_dev *d, const struct vhost_sys_ops *ops, void *ctx, const char *path,
              struct errbuf *err) __must_check;

/* Reset the device (status 0) and close it.  Safe on a closed device. */
void vdpa_close(struct vdpa_dev *d);

/* Short name of a virtio device type ("blk", "net", ...), "unknown" otherwise. */
const char *vdpa_type_name(uint32_t device_id);

/*
 * Read the status into *out (and d->status).  0 or -errno; a read-back with
 * bits the layer never set (other than NEEDS_RESET) is reported as is.
 */
int vdpa_status_get(struct vdpa_dev *d, uint8_t *out) __must_check;

/*
 * Set the status to `s` and read it back.  The kernel cannot clear bits:
 * `s` must contain every bit already set (-EINVAL otherwise), except 0,
 * which is vdpa_reset().  FEATURES_OK goes through vdpa_features_set and
 * DRIVER_OK through vdpa_start (-EINVAL here).
 */
int vdpa_status_set(struct vdpa_dev *d, uint8_t s) __must_check;

/*
 * The guest acked `guest_acked` (must be a subset of guest_offered, with
 * DRIVER set and FEATURES_OK not yet): send it plus ACCESS_PLATFORM when
 * the device offers it, set FEATURES_OK and read it back.  -EINVAL if the
 * features are not allowed, -EBUSY after FEATURES_OK, -EPROTO if the
 * device did not keep FEATURES_OK.
 */
int vdpa_features_set(struct vdpa_dev *d, uint64_t guest_acked) __must_check;

/* Read/write [off, off + len) of the config space, bounded by config_size. */
int vdpa_config_read(struct vdpa_dev *d, uint32_t off, void *buf, uint32_t len) __must_check;
int vdpa_config_write(struct vdpa_dev *d, uint32_t off, const void *buf, uint32_t len) __must_check;

/* Bind (fd >= 0) or unbind (-1) the config-change eventfd. */
int vdpa_config_call(struct vdpa_dev *d, int fd) __must_check;

/*
 * Map every RAM region of `gm` for the device at IOVA = GPA (IOTLB v2
 * UPDATE messages, read-write, in one batch when IOTLB_BATCH is
 * negotiated).  Each region must lie inside the device's IOVA range.  All
 * or nothing: on failure the regions already mapped are invalidated.
 */
int vdpa_map_gmem(struct vdpa_dev *d, const struct gmem *gm, struct errbuf *err) __must_check;

/* Invalidate every mapping made by vdpa_map_gmem.  0 or the first -errno. */
int vdpa_unmap_all(struct vdpa_dev *d) __must_check;

/* A queue's setup: ring GPAs (IOVA = GPA), size, first avail index, eventfds. */
struct vdpa_queue_cfg {
    uint16_t num;
    uint16_t base; /* last_avail_idx to start from (0, or a migrated one) */
    uint64_t desc, avail, used;
    int kick_fd, call_fd;
};

/*
 * Program queue `q`: SET_VRING_NUM (power of two <= vring_max), BASE, ADDR
 * (every ring inside one mapping made by vdpa_map_gmem), KICK, CALL.  Only
 * after FEATURES_OK and before DRIVER_OK, or while suspended.
 */
int vdpa_queue_setup(struct vdpa_dev *d, unsigned q, const struct vdpa_queue_cfg *c) __must_check;

/*
 * SET_VRING_ENABLE.  Only on a programmed queue, and before DRIVER_OK
 * unless ENABLE_AFTER_DRIVER_OK was negotiated.
 */
int vdpa_queue_enable(struct vdpa_dev *d, unsigned q, bool on) __must_check;

/*
 * DRIVER_OK: needs FEATURES_OK, guest RAM mapped and at least one queue
 * programmed.  Reads the status back: -EIO if the device shows NEEDS_RESET
 * or FAILED or did not take DRIVER_OK.
 */
int vdpa_start(struct vdpa_dev *d) __must_check;

/* VHOST_VDPA_SUSPEND on a started device.  -EOPNOTSUPP without SUSPEND. */
int vdpa_suspend(struct vdpa_dev *d) __must_check;

/* VHOST_VDPA_RESUME on a suspended device.  -EOPNOTSUPP without RESUME. */
int vdpa_resume(struct vdpa_dev *d) __must_check;

/*
 * Read queue `q`'s last_avail_idx (split ring) into *base.  Only from a
 * suspended device or one not started (a running device's answer is not
 * reliable): -EBUSY otherwise, -EOPNOTSUPP if the device cannot suspend
 * and is running.  -EIO if the kernel answers more than 16 bits.
 */
int vdpa_vring_base_get(struct vdpa_dev *d, unsigned q, uint16_t *base) __must_check;

/*
 * SET_STATUS(0), read back 0.  The device forgets features and queues; the
 * layer too, and it invalidates every IOTLB mapping (vhost-vdpa keeps its
 * own IOTLB across a reset, while the parent may have dropped its
 * mappings): vdpa_map_gmem again before the next start.
 */
int vdpa_reset(struct vdpa_dev *d) __must_check;

#endif /* DEVICES_VHOST_VDPA_H */
