/*
 * vhost-vdpa device control: open, identity, features, status, config,
 * queues, start, suspend/resume and reset (docs/VDPA.md).
 *
 * Why it is written this way: the kernel's vhost-vdpa interface has
 * ordering rules it does not always enforce (virtio.md §2.4, §2.6): status
 * bits cannot be cleared, features are fixed at FEATURES_OK, rings are
 * fixed at DRIVER_OK unless the device is suspended, queues are enabled
 * before DRIVER_OK, and a running device's ring base is not reliable.  The
 * layer keeps its own view of the device and refuses out-of-order calls
 * itself instead of relying on the kernel.  Everything the kernel reports
 * is bounded before use.  IOTLB mapping lives in vdpa_iotlb.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "devices/vhost/vdpa.h"
#include "devices/vhost/vdpa_uapi.h"

static int vioctl(struct vdpa_dev *d, unsigned long req, uintptr_t arg)
{
    return d->ops->ioctl(d->ctx, d->fd, req, arg);
}

const char *vdpa_type_name(uint32_t device_id)
{
    switch (device_id) {
    case 1:
        return "net";
    case 2:
        return "blk";
    case 3:
        return "console";
    case 4:
        return "rng";
    case 9:
        return "9p";
    case 19:
        return "vsock";
    case 26:
        return "fs";
    default:
        return "unknown";
    }
}

/* Read what the device reports and bound it; `err` says which answer was wrong. */
static int read_identity(struct vdpa_dev *d, const char *path, struct errbuf *err)
{
    uint32_t u32 = 0;
    uint16_t u16 = 0;
    uint64_t u64 = 0;
    struct vhost_vdpa_iova_range range = {0};
    int rc;

    rc = vioctl(d, VHOST_VDPA_GET_DEVICE_ID, (uintptr_t)&u32);
    if (rc < 0)
        return err_set(err, WISP_EXIT_HOST, -rc, "vdpa: %s: GET_DEVICE_ID failed", path);
    if (u32 == 0 || u32 > 63)
        return err_set(err, WISP_EXIT_HOST, EINVAL, "vdpa: %s: device id %u is not a virtio type",
                       path, u32);
    d->device_id = u32;

    rc = vioctl(d, VHOST_GET_FEATURES, (uintptr_t)&u64);
    if (rc < 0)
        return err_set(err, WISP_EXIT_HOST, -rc, "vdpa: %s: GET_FEATURES failed", path);
    if (!(u64 & (1ull << VDPA_F_VERSION_1)))
        return err_set(err, WISP_EXIT_HOST, EINVAL,
                       "vdpa: %s: the device does not offer VERSION_1 (features %#llx)", path,
                       (unsigned long long)u64);
    d->dev_features = u64;
    d->guest_offered = u64 & ~VDPA_GUEST_HIDDEN;

    u32 = 0;
    rc = vioctl(d, VHOST_VDPA_GET_VQS_COUNT, (uintptr_t)&u32);
    if (rc < 0)
        return err_set(err, WISP_EXIT_HOST, -rc, "vdpa: %s: GET_VQS_COUNT failed", path);
    if (u32 == 0 || u32 > VDPA_MAX_QUEUES)
        return err_set(err, WISP_EXIT_HOST, EINVAL,
                       "vdpa: %s: the device reports %u queues (1..%u accepted)", path, u32,
                       VDPA_MAX_QUEUES);
    d->nqueues = u32;

    rc = vioctl(d, VHOST_VDPA_GET_VRING_NUM, (uintptr_t)&u16);
    if (rc < 0)
        return err_set(err, WISP_EXIT_HOST, -rc, "vdpa: %s: GET_VRING_NUM failed", path);
    if (u16 == 0 || u16 > VDPA_MAX_VRING_NUM)
        return err_set(err, WISP_EXIT_HOST, EINVAL,
                       "vdpa: %s: the device reports queue size %u (1..%u accepted)", path, u16,
                       VDPA_MAX_VRING_NUM);
    d->vring_max = u16;

    u32 = 0;
    rc = vioctl(d, VHOST_VDPA_GET_CONFIG_SIZE, (uintptr_t)&u32);
    if (rc < 0)
        return err_set(err, WISP_EXIT_HOST, -rc, "vdpa: %s: GET_CONFIG_SIZE failed", path);
    if (u32 > VDPA_MAX_CONFIG)
        return err_set(err, WISP_EXIT_HOST, EINVAL,
                       "vdpa: %s: config space of %u bytes (at most %u accepted)", path, u32,
                       VDPA_MAX_CONFIG);
    d->config_size = u32;

    rc = vioctl(d, VHOST_VDPA_GET_IOVA_RANGE, (uintptr_t)&range);
    if (rc < 0)
        return err_set(err, WISP_EXIT_HOST, -rc, "vdpa: %s: GET_IOVA_RANGE failed", path);
    if (range.first > range.last)
        return err_set(err, WISP_EXIT_HOST, EINVAL, "vdpa: %s: empty IOVA range [%#llx, %#llx]",
                       path, (unsigned long long)range.first, (unsigned long long)range.last);
    d->iova_first = range.first;
    d->iova_last = range.last;
    return 0;
}

/* Ack the backend features we understand; IOTLB_MSG_V2 is required. */
static int negotiate_backend(struct vdpa_dev *d, const char *path, struct errbuf *err)
{
    uint64_t offered = 0;
    int rc = vioctl(d, VHOST_GET_BACKEND_FEATURES, (uintptr_t)&offered);
    if (rc < 0)
        return err_set(err, WISP_EXIT_HOST, -rc, "vdpa: %s: GET_BACKEND_FEATURES failed", path);
    if (!(offered & (1ull << VHOST_BACKEND_F_IOTLB_MSG_V2)))
        return err_set(err, WISP_EXIT_HOST, EOPNOTSUPP,
                       "vdpa: %s: the device does not offer IOTLB_MSG_V2 (backend features "
                       "%#llx)",
                       path, (unsigned long long)offered);
    uint64_t ack = offered & VDPA_BACKEND_WANTED;
    rc = vioctl(d, VHOST_SET_BACKEND_FEATURES, (uintptr_t)&ack);
    if (rc < 0)
        return err_set(err, WISP_EXIT_HOST, -rc, "vdpa: %s: SET_BACKEND_FEATURES(%#llx) failed",
                       path, (unsigned long long)ack);
    d->backend_offered = offered;
    d->backend = ack;
    return 0;
}

int vdpa_open(struct vdpa_dev *d, const struct vhost_sys_ops *ops, void *ctx, const char *path,
              struct errbuf *err)
{
    int rc;
    memset(d, 0, sizeof(*d));
    d->ops = ops != NULL ? ops : &vhost_sys_kernel;
    d->ctx = ctx;
    d->fd = d->ops->open(d->ctx, path, O_RDWR);
    if (d->fd < 0) {
        rc = d->fd;
        d->fd = -1;
        return err_set(err, WISP_EXIT_HOST, -rc, "vdpa: cannot open %s%s", path,
                       rc == -EBUSY ? " (in use: the device is exclusive)" : "");
    }
    rc = vioctl(d, VHOST_SET_OWNER, 0);
    if (rc < 0) {
        err_set(err, WISP_EXIT_HOST, -rc, "vdpa: %s: SET_OWNER failed", path);
        goto fail;
    }
    rc = read_identity(d, path, err);
    if (rc < 0)
        goto fail;
    rc = negotiate_backend(d, path, err);
    if (rc < 0)
        goto fail;
    rc = vdpa_status_get(d, &d->status);
    if (rc < 0) {
        err_set(err, WISP_EXIT_HOST, -rc, "vdpa: %s: GET_STATUS failed", path);
        goto fail;
    }
    if (d->status != 0) {
        /* Open resets the device; anything else is a device we do not understand. */
        err_set(err, WISP_EXIT_HOST, EBUSY, "vdpa: %s: status %#x after open (expected 0)", path,
                d->status);
        rc = -EBUSY;
        goto fail;
    }
    return 0;
fail:
    d->ops->close(d->ctx, d->fd);
    d->fd = -1;
    return rc;
}

void vdpa_close(struct vdpa_dev *d)
{
    if (d->fd < 0)
        return;
    if (vdpa_reset(d) < 0) {
        /* Closing resets the device anyway; nothing more to do. */
    }
    d->ops->close(d->ctx, d->fd);
    d->fd = -1;
}

int vdpa_status_get(struct vdpa_dev *d, uint8_t *out)
{
    uint8_t s = 0;
    int rc = vioctl(d, VHOST_VDPA_GET_STATUS, (uintptr_t)&s);
    if (rc < 0)
        return rc;
    d->status = s;
    if (out != NULL)
        *out = s;
    return 0;
}

/* SET_STATUS then read back; the caller checks what it needs to see. */
static int status_write(struct vdpa_dev *d, uint8_t s)
{
    int rc = vioctl(d, VHOST_VDPA_SET_STATUS, (uintptr_t)&s);
    if (rc < 0)
        return rc;
    return vdpa_status_get(d, NULL);
}

int vdpa_status_set(struct vdpa_dev *d, uint8_t s)
{
    if (s == 0)
        return vdpa_reset(d);
    if ((s & d->status) != d->status)
        return -EINVAL; /* the kernel cannot clear status bits */
    if ((s & ~d->status) & (VDPA_S_FEATURES_OK | VDPA_S_DRIVER_OK))
        return -EINVAL; /* through vdpa_features_set / vdpa_start */
    return status_write(d, s);
}

int vdpa_features_set(struct vdpa_dev *d, uint64_t guest_acked)
{
    if (d->status & VDPA_S_FEATURES_OK)
        return -EBUSY;
    if (!(d->status & VDPA_S_DRIVER))
        return -EINVAL;
    if (guest_acked & ~d->guest_offered)
        return -EINVAL;
    uint64_t backend_acked = guest_acked;
    /* No vIOMMU: IOVA = GPA, which is what ACCESS_PLATFORM asks the device to use. */
    if (d->dev_features & (1ull << VDPA_F_ACCESS_PLATFORM))
        backend_acked |= 1ull << VDPA_F_ACCESS_PLATFORM;
    int rc = vioctl(d, VHOST_SET_FEATURES, (uintptr_t)&backend_acked);
    if (rc < 0)
        return rc;
    rc = status_write(d, (uint8_t)(d->status | VDPA_S_FEATURES_OK));
    if (rc < 0)
        return rc;
    if (!(d->status & VDPA_S_FEATURES_OK))
        return -EPROTO;
    d->guest_acked = guest_acked;
    d->backend_acked = backend_acked;
    return 0;
}

/* Is [off, off + len) inside the config space? */
static bool config_ok(const struct vdpa_dev *d, uint32_t off, uint32_t len)
{
    return len > 0 && off <= d->config_size && len <= d->config_size - off;
}

/* GET/SET_CONFIG take a header followed by the bytes. */
struct config_buf {
    struct vhost_vdpa_config hdr;
    uint8_t data[VDPA_MAX_CONFIG];
};

int vdpa_config_read(struct vdpa_dev *d, uint32_t off, void *buf, uint32_t len)
{
    struct config_buf cb;
    if (!config_ok(d, off, len))
        return -EINVAL;
    memset(&cb, 0, sizeof(cb.hdr) + len);
    cb.hdr.off = off;
    cb.hdr.len = len;
    int rc = vioctl(d, VHOST_VDPA_GET_CONFIG, (uintptr_t)&cb);
    if (rc < 0)
        return rc;
    memcpy(buf, cb.hdr.buf, len);
    return 0;
}

int vdpa_config_write(struct vdpa_dev *d, uint32_t off, const void *buf, uint32_t len)
{
    struct config_buf cb;
    if (!config_ok(d, off, len))
        return -EINVAL;
    cb.hdr.off = off;
    cb.hdr.len = len;
    memcpy(cb.hdr.buf, buf, len);
    return vioctl(d, VHOST_VDPA_SET_CONFIG, (uintptr_t)&cb);
}

int vdpa_config_call(struct vdpa_dev *d, int fd)
{
    int v = fd < 0 ? -1 : fd;
    return vioctl(d, VHOST_VDPA_SET_CONFIG_CALL, (uintptr_t)&v);
}

/* Is [gpa, gpa + len) inside one mapping made by vdpa_map_gmem? */
static bool mapped(const struct vdpa_dev *d, uint64_t gpa, uint64_t len)
{
    if (len == 0 || gpa + len - 1 < gpa)
        return false;
    for (unsigned i = 0; i < d->nmaps; i++) {
        const struct vdpa_map *m = &d->maps[i];
        if (gpa >= m->iova && gpa - m->iova <= m->size && len <= m->size - (gpa - m->iova))
            return true;
    }
    return false;
}

/* May rings be (re)programmed now? */
static bool rings_writable(const struct vdpa_dev *d)
{
    if (!(d->status & VDPA_S_FEATURES_OK))
        return false;
    return !(d->status & VDPA_S_DRIVER_OK) || d->suspended;
}

int vdpa_queue_setup(struct vdpa_dev *d, unsigned q, const struct vdpa_queue_cfg *c)
{
    if (q >= d->nqueues)
        return -EINVAL;
    if (!rings_writable(d))
        return -EBUSY;
    if (c->num == 0 || c->num > d->vring_max || (c->num & (c->num - 1)) != 0)
        return -EINVAL;
    /* Split ring sizes (virtio 1.2 §2.7): 16 per descriptor, 6 + 2n and 6 + 8n bytes. */
    if ((c->desc & 15) || (c->avail & 1) || (c->used & 3) || !mapped(d, c->desc, 16ull * c->num) ||
        !mapped(d, c->avail, 6 + 2ull * c->num) || !mapped(d, c->used, 6 + 8ull * c->num))
        return -EFAULT;
    if (c->kick_fd < 0 || c->call_fd < 0)
        return -EBADF;

    struct vhost_vring_state st = {.index = q, .num = c->num};
    int rc = vioctl(d, VHOST_SET_VRING_NUM, (uintptr_t)&st);
    if (rc < 0)
        return rc;
    st.num = c->base;
    rc = vioctl(d, VHOST_SET_VRING_BASE, (uintptr_t)&st);
    if (rc < 0)
        return rc;
    /* IOVAs (= GPAs), never host addresses: the device reads through the IOTLB. */
    struct vhost_vring_addr a = {.index = q,
                                 .desc_user_addr = c->desc,
                                 .avail_user_addr = c->avail,
                                 .used_user_addr = c->used};
    rc = vioctl(d, VHOST_SET_VRING_ADDR, (uintptr_t)&a);
    if (rc < 0)
        return rc;
    struct vhost_vring_file f = {.index = q, .fd = c->kick_fd};
    rc = vioctl(d, VHOST_SET_VRING_KICK, (uintptr_t)&f);
    if (rc < 0)
        return rc;
    f.fd = c->call_fd;
    rc = vioctl(d, VHOST_SET_VRING_CALL, (uintptr_t)&f);
    if (rc < 0)
        return rc;
    d->queues_set |= 1ull << q;
    return 0;
}

int vdpa_queue_enable(struct vdpa_dev *d, unsigned q, bool on)
{
    if (q >= d->nqueues || !(d->queues_set & (1ull << q)))
        return -EINVAL;
    if ((d->status & VDPA_S_DRIVER_OK) &&
        !vdpa_has_backend(d, VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK))
        return -EBUSY;
    struct vhost_vring_state st = {.index = q, .num = on ? 1 : 0};
    return vioctl(d, VHOST_VDPA_SET_VRING_ENABLE, (uintptr_t)&st);
}

int vdpa_start(struct vdpa_dev *d)
{
    if (!(d->status & VDPA_S_FEATURES_OK) || (d->status & VDPA_S_DRIVER_OK))
        return -EINVAL;
    if (d->nmaps == 0 || d->queues_set == 0)
        return -EINVAL;
    int rc = status_write(d, (uint8_t)(d->status | VDPA_S_DRIVER_OK));
    if (rc < 0)
        return rc;
    if ((d->status & (VDPA_S_NEEDS_RESET | VDPA_S_FAILED)) || !(d->status & VDPA_S_DRIVER_OK))
        return -EIO;
    return 0;
}

int vdpa_suspend(struct vdpa_dev *d)
{
    if (!vdpa_has_backend(d, VHOST_BACKEND_F_SUSPEND))
        return -EOPNOTSUPP;
    if (!(d->status & VDPA_S_DRIVER_OK))
        return -EINVAL; /* the kernel makes it a no-op before DRIVER_OK: say so */
    if (d->suspended)
        return 0;
    int rc = vioctl(d, VHOST_VDPA_SUSPEND, 0);
    if (rc < 0)
        return rc;
    d->suspended = true;
    return 0;
}

int vdpa_resume(struct vdpa_dev *d)
{
    if (!vdpa_has_backend(d, VHOST_BACKEND_F_RESUME))
        return -EOPNOTSUPP;
    if (!d->suspended)
        return -EINVAL;
    int rc = vioctl(d, VHOST_VDPA_RESUME, 0);
    if (rc < 0)
        return rc;
    d->suspended = false;
    return 0;
}

int vdpa_vring_base_get(struct vdpa_dev *d, unsigned q, uint16_t *base)
{
    if (q >= d->nqueues)
        return -EINVAL;
    if ((d->status & VDPA_S_DRIVER_OK) && !d->suspended)
        return vdpa_has_backend(d, VHOST_BACKEND_F_SUSPEND) ? -EBUSY : -EOPNOTSUPP;
    struct vhost_vring_state st = {.index = q, .num = 0};
    int rc = vioctl(d, VHOST_GET_VRING_BASE, (uintptr_t)&st);
    if (rc < 0)
        return rc;
    if (st.num > 0xffff)
        return -EIO; /* split ring: last_avail_idx is 16 bits */
    *base = (uint16_t)st.num;
    return 0;
}

int vdpa_reset(struct vdpa_dev *d)
{
    uint8_t zero = 0;
    int rc = vioctl(d, VHOST_VDPA_SET_STATUS, (uintptr_t)&zero);
    /*
     * The parent device may have dropped its mappings, but vhost-vdpa keeps
     * its own IOTLB across SET_STATUS(0): mapping the same IOVAs again would
     * fail with EEXIST (measured on 6.12 with VDUSE).  Invalidate them all,
     * so the next start maps guest RAM afresh on both sides.
     */
    int urc = vdpa_unmap_all(d);
    d->queues_set = 0;
    d->suspended = false;
    d->guest_acked = d->backend_acked = 0;
    if (rc < 0)
        return rc;
    rc = vdpa_status_get(d, NULL);
    if (rc < 0)
        return rc;
    if (urc < 0)
        return urc;
    return d->status == 0 ? 0 : -EIO;
}
