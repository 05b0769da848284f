/*
 * The simulated vhost-vdpa kernel device of fake_vdpa.h: the rules the
 * kernel enforces answered with its errno values, the ones it does not
 * enforce counted as violations, and a tiny split-ring engine that reads
 * rings through the IOTLB the layer programmed.
 */
#include "tests/lib/fake_vdpa.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "devices/vhost/vdpa_uapi.h"

static void violation(struct fake_vdpa *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->violation, sizeof(f->violation), fmt, ap);
    va_end(ap);
    f->violations++;
}

static void device_reset(struct fake_vdpa *f)
{
    f->status = 0;
    f->acked = 0;
    f->features_set = false;
    f->suspended = false;
    /*
     * Like the kernel, SET_STATUS(0) keeps vhost-vdpa's own IOTLB (an UPDATE
     * of the same IOVAs is then EEXIST); only open and close empty it.
     */
    for (unsigned i = 0; i < FAKE_VDPA_MAX_VQS; i++)
        f->vq[i] = (struct fake_vdpa_vq){.kick = -1, .call = -1};
    f->resets++;
}

void fake_vdpa_init(struct fake_vdpa *f)
{
    memset(f, 0, sizeof(*f));
    f->device_id = 2;
    f->features = 0x331006644ull;
    f->backend_offered = 0xe;
    f->vqs = 1;
    f->vring_num = 256;
    f->config_size = 60;
    uint64_t cap = 32768;
    memcpy(f->config, &cap, sizeof(cap));
    f->iova_first = 0;
    f->iova_last = UINT64_MAX;
    device_reset(f);
    f->resets = 0;
}

/* Host pointer for [iova, iova + len) if one mapping covers it. */
static void *translate(const struct fake_vdpa *f, uint64_t iova, uint64_t len)
{
    for (unsigned i = 0; i < f->nmaps; i++) {
        const struct fake_vdpa_map *m = &f->maps[i];
        if (iova >= m->iova && iova - m->iova < m->size && len <= m->size - (iova - m->iova))
            return (void *)(uintptr_t)(m->uaddr + (iova - m->iova));
    }
    return NULL;
}

static bool running(const struct fake_vdpa *f)
{
    return (f->status & VDPA_S_DRIVER_OK) && !f->suspended;
}

static bool backend(const struct fake_vdpa *f, unsigned bit)
{
    return (f->backend_acked >> bit) & 1;
}

static bool rings_mapped(const struct fake_vdpa *f, const struct fake_vdpa_vq *v)
{
    return translate(f, v->desc, 16ull * v->num) && translate(f, v->avail, 6 + 2ull * v->num) &&
           translate(f, v->used, 6 + 8ull * v->num);
}

static int set_status(struct fake_vdpa *f, uint8_t s)
{
    if (s == 0) {
        device_reset(f);
        return 0;
    }
    if (f->status & ~s)
        return -EINVAL; /* vhost-vdpa cannot clear status bits */
    uint8_t add = s & ~f->status;
    if ((add & VDPA_S_FEATURES_OK) && (!f->features_set || f->refuse_features_ok))
        s &= (uint8_t)~VDPA_S_FEATURES_OK; /* the device does not accept */
    if (add & VDPA_S_DRIVER_OK) {
        if (!(s & VDPA_S_FEATURES_OK)) {
            violation(f, "DRIVER_OK without FEATURES_OK");
            return -EINVAL;
        }
        for (unsigned i = 0; i < f->vqs && i < FAKE_VDPA_MAX_VQS; i++)
            if (f->vq[i].enabled && !rings_mapped(f, &f->vq[i]))
                violation(f, "DRIVER_OK with queue %u's rings outside the IOTLB", i);
        if (f->needs_reset_on_start)
            s |= VDPA_S_NEEDS_RESET;
    }
    f->status = s;
    return 0;
}

/* The vring ioctls' index check, and the "not while running" rule. */
static struct fake_vdpa_vq *vring(struct fake_vdpa *f, unsigned index)
{
    if (index >= f->vqs || index >= FAKE_VDPA_MAX_VQS)
        return NULL;
    return &f->vq[index];
}

static int vring_ioctl(struct fake_vdpa *f, unsigned long req, uintptr_t arg)
{
    struct vhost_vring_state *st = (void *)arg;
    struct vhost_vring_addr *a = (void *)arg;
    struct vhost_vring_file *fl = (void *)arg;
    struct fake_vdpa_vq *v = vring(f, st->index); /* index is the first field of all three */
    if (v == NULL)
        return -ENOBUFS;
    switch (req) {
    case VHOST_SET_VRING_NUM:
        if (running(f))
            return -EBUSY;
        if (st->num == 0 || st->num > f->vring_num || (st->num & (st->num - 1)))
            return -EINVAL;
        v->num = st->num;
        return 0;
    case VHOST_SET_VRING_BASE:
        if (running(f))
            return -EBUSY;
        if (st->num > 0xffff)
            return -EINVAL;
        v->last_avail = (uint16_t)st->num;
        return 0;
    case VHOST_GET_VRING_BASE:
        if (running(f)) {
            violation(f, "GET_VRING_BASE on a running device (unreliable)");
            st->num = v->last_avail ^ 0x5a5au;
            return 0;
        }
        st->num = f->base_hostile ? 0x12345u : v->last_avail;
        return 0;
    case VHOST_SET_VRING_ADDR:
        if (running(f))
            return -EINVAL;
        v->desc = a->desc_user_addr;
        v->avail = a->avail_user_addr;
        v->used = a->used_user_addr;
        return 0;
    case VHOST_SET_VRING_KICK:
        v->kick = fl->fd;
        return 0;
    case VHOST_SET_VRING_CALL:
        v->call = fl->fd;
        return 0;
    case VHOST_VDPA_SET_VRING_ENABLE:
        if ((f->status & VDPA_S_DRIVER_OK) && !backend(f, VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK))
            violation(f, "SET_VRING_ENABLE after DRIVER_OK without ENABLE_AFTER_DRIVER_OK");
        v->enabled = st->num != 0;
        return 0;
    default:
        return -ENOTTY;
    }
}

static int config_ioctl(struct fake_vdpa *f, unsigned long req, struct vhost_vdpa_config *c)
{
    if (c->len == 0 || c->off > f->config_size || c->len > f->config_size - c->off ||
        c->off + c->len > sizeof(f->config))
        return -EINVAL;
    if (req == VHOST_VDPA_GET_CONFIG)
        memcpy(c->buf, f->config + c->off, c->len);
    else
        memcpy(f->config + c->off, c->buf, c->len);
    return 0;
}

static int fake_ioctl(void *ctx, int fd, unsigned long req, uintptr_t arg)
{
    struct fake_vdpa *f = ctx;
    if (!f->open || fd != FAKE_VDPA_FD)
        return -EBADF;
    f->ioctls++;
    if (req == f->fail_req && ++f->fail_seen == f->fail_nth)
        return -f->fail_errno;
    if (req == VHOST_SET_OWNER) {
        if (f->owner)
            return -EBUSY;
        f->owner = true;
        return 0;
    }
    if (!f->owner)
        return -EPERM;
    switch (req) {
    case VHOST_GET_FEATURES:
        *(uint64_t *)arg = f->features;
        return 0;
    case VHOST_SET_FEATURES: {
        uint64_t v = *(uint64_t *)arg;
        if (f->status & VDPA_S_FEATURES_OK)
            return -EBUSY;
        if (v & ~f->features)
            return -EINVAL;
        f->acked = v;
        f->features_set = true;
        return 0;
    }
    case VHOST_GET_BACKEND_FEATURES:
        *(uint64_t *)arg = f->backend_offered;
        return 0;
    case VHOST_SET_BACKEND_FEATURES: {
        uint64_t v = *(uint64_t *)arg;
        if (v & ~f->backend_offered)
            return -EOPNOTSUPP;
        f->backend_acked = v;
        return 0;
    }
    case VHOST_VDPA_GET_DEVICE_ID:
        *(uint32_t *)arg = f->device_id;
        return 0;
    case VHOST_VDPA_GET_VQS_COUNT:
        *(uint32_t *)arg = f->vqs;
        return 0;
    case VHOST_VDPA_GET_VRING_NUM:
        *(uint16_t *)arg = f->vring_num;
        return 0;
    case VHOST_VDPA_GET_CONFIG_SIZE:
        *(uint32_t *)arg = f->config_size;
        return 0;
    case VHOST_VDPA_GET_IOVA_RANGE: {
        struct vhost_vdpa_iova_range *r = (void *)arg;
        r->first = f->iova_first;
        r->last = f->iova_last;
        return 0;
    }
    case VHOST_VDPA_GET_STATUS:
        *(uint8_t *)arg = f->status;
        return 0;
    case VHOST_VDPA_SET_STATUS:
        return set_status(f, *(uint8_t *)arg);
    case VHOST_VDPA_GET_CONFIG:
    case VHOST_VDPA_SET_CONFIG:
        return config_ioctl(f, req, (void *)arg);
    case VHOST_VDPA_SET_CONFIG_CALL:
        f->config_calls++;
        return 0;
    case VHOST_VDPA_SUSPEND:
        if (!backend(f, VHOST_BACKEND_F_SUSPEND))
            return -EOPNOTSUPP;
        if (f->status & VDPA_S_DRIVER_OK)
            f->suspended = true; /* a no-op before DRIVER_OK */
        return 0;
    case VHOST_VDPA_RESUME:
        if (!backend(f, VHOST_BACKEND_F_RESUME))
            return -EOPNOTSUPP;
        f->suspended = false;
        return 0;
    default:
        return vring_ioctl(f, req, arg);
    }
}

static int iotlb_update(struct fake_vdpa *f, const struct vhost_iotlb_msg *m)
{
    uint64_t last = m->iova + m->size - 1;
    if (m->size == 0 || last < m->iova || m->iova < f->iova_first || last > f->iova_last)
        return -EINVAL;
    if (m->perm < VHOST_ACCESS_RO || m->perm > VHOST_ACCESS_RW)
        return -EINVAL;
    for (unsigned i = 0; i < f->nmaps; i++)
        if (m->iova <= f->maps[i].iova + f->maps[i].size - 1 && f->maps[i].iova <= last)
            return -EEXIST;
    if (f->nmaps == FAKE_VDPA_MAX_MAPS)
        return -ENOMEM;
    if (backend(f, VHOST_BACKEND_F_IOTLB_BATCH) && !f->in_batch)
        f->unbatched++;
    f->maps[f->nmaps++] = (struct fake_vdpa_map){m->iova, m->size, m->uaddr, m->perm};
    f->updates++;
    return 0;
}

static void iotlb_invalidate(struct fake_vdpa *f, const struct vhost_iotlb_msg *m)
{
    uint64_t last = m->iova + m->size - 1;
    for (unsigned i = 0; i < f->nmaps;) {
        const struct fake_vdpa_map *x = &f->maps[i];
        if (x->iova >= m->iova && x->iova + x->size - 1 <= last)
            f->maps[i] = f->maps[--f->nmaps];
        else
            i++;
    }
    f->invalidates++;
}

static ssize_t fake_write(void *ctx, int fd, const void *buf, size_t len)
{
    struct fake_vdpa *f = ctx;
    struct vhost_msg_v2 m;
    if (!f->open || fd != FAKE_VDPA_FD)
        return -EBADF;
    if (len != sizeof(m))
        return -EINVAL;
    memcpy(&m, buf, sizeof(m));
    f->iotlb_msgs++;
    if (m.type != VHOST_IOTLB_MSG_V2 || !backend(f, VHOST_BACKEND_F_IOTLB_MSG_V2) || m.asid != 0)
        return -EINVAL;
    if (m.iotlb.type == VHOST_IOTLB_UPDATE && f->fail_req == 1 && ++f->fail_seen == f->fail_nth)
        return -f->fail_errno;
    int rc = 0;
    switch (m.iotlb.type) {
    case VHOST_IOTLB_UPDATE:
        rc = iotlb_update(f, &m.iotlb);
        break;
    case VHOST_IOTLB_INVALIDATE:
        iotlb_invalidate(f, &m.iotlb);
        break;
    case VHOST_IOTLB_BATCH_BEGIN:
    case VHOST_IOTLB_BATCH_END:
        if (!backend(f, VHOST_BACKEND_F_IOTLB_BATCH))
            return -EINVAL;
        f->in_batch = m.iotlb.type == VHOST_IOTLB_BATCH_BEGIN;
        if (f->in_batch)
            f->batch_begins++;
        else
            f->batch_ends++;
        break;
    default:
        return -EINVAL;
    }
    if (rc < 0)
        return rc;
    return f->short_write ? (ssize_t)len - 1 : (ssize_t)len;
}

static int fake_open(void *ctx, const char *path, int flags)
{
    struct fake_vdpa *f = ctx;
    (void)path;
    (void)flags;
    if (f->open)
        return -EBUSY; /* vhost-vdpa is exclusive */
    f->open = true;
    f->owner = false;
    f->opens++;
    f->backend_acked = 0;
    f->nmaps = 0;
    f->in_batch = false;
    device_reset(f); /* open resets the device */
    return FAKE_VDPA_FD;
}

static int fake_close(void *ctx, int fd)
{
    struct fake_vdpa *f = ctx;
    if (!f->open || fd != FAKE_VDPA_FD)
        return -EBADF;
    device_reset(f); /* so does close, and the IOTLB goes with the fd */
    f->nmaps = 0;
    f->in_batch = false;
    f->open = false;
    f->closes++;
    return 0;
}

const struct vhost_sys_ops fake_vdpa_ops = {
    .open = fake_open,
    .ioctl = fake_ioctl,
    .write = fake_write,
    .close = fake_close,
};

int fake_vdpa_process(struct fake_vdpa *f, unsigned q)
{
    struct fake_vdpa_vq *v = vring(f, q);
    if (v == NULL || !v->enabled || !running(f) || !rings_mapped(f, v)) {
        violation(f, "process: queue %u not running or its rings not mapped", q);
        return -1;
    }
    uint16_t *avail = translate(f, v->avail, 4 + 2ull * v->num);
    uint8_t *used = translate(f, v->used, 4 + 8ull * v->num);
    uint16_t avail_idx = __atomic_load_n(&avail[1], __ATOMIC_ACQUIRE);
    int n = 0;
    while (v->last_avail != avail_idx) {
        uint32_t head = avail[2 + v->last_avail % v->num];
        uint32_t elem[2] = {head, 0};
        memcpy(used + 4 + 8 * (v->used_idx % v->num), elem, sizeof(elem));
        v->last_avail++;
        v->used_idx++;
        n++;
    }
    __atomic_store_n((uint16_t *)(used + 2), v->used_idx, __ATOMIC_RELEASE);
    return n;
}
