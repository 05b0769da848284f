/*
 * Simulated /dev/vhost-vsock for the unit tests (see fake_vhost_vsock.h):
 * the kernel's answers where it enforces an order, a violation count where
 * it silently accepts a wrong one.
 */
#include "tests/lib/fake_vhost_vsock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void fake_vhv_init(struct fake_vhv *f)
{
    memset(f, 0, sizeof(*f));
    /* 6.12: VHOST_FEATURES (NOTIFY_ON_EMPTY, INDIRECT_DESC, EVENT_IDX, LOG_ALL, ANY_LAYOUT,
     * VERSION_1) | ACCESS_PLATFORM | VIRTIO_VSOCK_F_SEQPACKET. */
    f->features = (1ull << 24) | (1ull << 28) | (1ull << 29) | (1ull << 26) | (1ull << 27) |
                  (1ull << 32) | (1ull << 33) | (1ull << 1);
    for (unsigned i = 0; i < 2; i++)
        f->vq[i].kick = f->vq[i].call = -1;
}

int fake_vhv_first(const struct fake_vhv *f, unsigned long req)
{
    for (unsigned i = 0; i < f->nlog; i++)
        if (f->log[i] == req)
            return (int)i;
    return -1;
}

static void violate(struct fake_vhv *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->violation, sizeof(f->violation), fmt, ap);
    va_end(ap);
    f->violations++;
}

static int fake_open(void *ctx, const char *path, int flags)
{
    struct fake_vhv *f = ctx;
    (void)path;
    (void)flags;
    if (f->open_errno)
        return -f->open_errno;
    if (f->open)
        return -EBUSY; /* the layer opens once */
    f->open = true;
    f->opens++;
    return FAKE_VHV_FD;
}

/* Is [hva, hva + len) inside one region of the memory table? */
static bool in_table(const struct fake_vhv *f, uint64_t hva, uint64_t len)
{
    for (unsigned i = 0; i < f->nregions; i++)
        if (hva >= f->reg_hva[i] && hva - f->reg_hva[i] <= f->reg_size[i] &&
            len <= f->reg_size[i] - (hva - f->reg_hva[i]))
            return true;
    return false;
}

static int start(struct fake_vhv *f)
{
    if (!f->features_set)
        violate(f, "SET_RUNNING before SET_FEATURES");
    if (!f->nregions)
        violate(f, "SET_RUNNING before SET_MEM_TABLE");
    if (!f->cid)
        violate(f, "SET_RUNNING before SET_GUEST_CID");
    for (unsigned i = 0; i < 2; i++) {
        const struct fake_vhv_vq *q = &f->vq[i];
        if (!q->addr_set || !q->num)
            return -EFAULT; /* vhost_vq_access_ok() */
        if (q->kick < 0 || q->call < 0)
            violate(f, "SET_RUNNING with queue %u's kick or call unset", i);
        if (!in_table(f, q->desc, 16ull * q->num) || !in_table(f, q->avail, 6 + 2ull * q->num) ||
            !in_table(f, q->used, 6 + 8ull * q->num))
            violate(f, "queue %u's rings are outside the memory table", i);
    }
    f->running = true;
    return 0;
}

static int vring(struct fake_vhv *f, unsigned long req, uintptr_t arg)
{
    unsigned idx = *(const unsigned *)arg; /* every vring struct starts with its index */
    if (idx >= 2)
        return -ENOBUFS;
    struct fake_vhv_vq *q = &f->vq[idx];
    if (req == VHOST_SET_VRING_NUM || req == VHOST_SET_VRING_BASE || req == VHOST_SET_VRING_ADDR) {
        if (f->running)
            return -EBUSY;
    }
    if (req == VHOST_SET_VRING_NUM) {
        const struct vhost_vring_state *s = (const void *)arg;
        if (!s->num || s->num > 0xffff || (s->num & (s->num - 1)))
            return -EINVAL;
        q->num = s->num;
    } else if (req == VHOST_SET_VRING_BASE) {
        const struct vhost_vring_state *s = (const void *)arg;
        if (s->num > 0xffff)
            return -EINVAL;
        q->base = s->num;
    } else if (req == VHOST_SET_VRING_ADDR) {
        const struct vhost_vring_addr *a = (const void *)arg;
        if ((a->desc_user_addr & 15) || (a->avail_user_addr & 1) || (a->used_user_addr & 3))
            return -EINVAL;
        q->desc = a->desc_user_addr;
        q->avail = a->avail_user_addr;
        q->used = a->used_user_addr;
        q->addr_set = true;
    } else if (req == VHOST_SET_VRING_KICK || req == VHOST_SET_VRING_CALL) {
        const struct vhost_vring_file *fl = (const void *)arg;
        if (fl->fd < -1)
            return -EBADF;
        *(req == VHOST_SET_VRING_KICK ? &q->kick : &q->call) = fl->fd;
    } else if (req == VHOST_GET_VRING_BASE) {
        struct vhost_vring_state *s = (void *)arg;
        if (f->running)
            violate(f, "GET_VRING_BASE on queue %u while running", idx);
        s->num = f->hostile_base ? f->hostile_base : q->base;
    }
    return 0;
}

static int fake_ioctl(void *ctx, int fd, unsigned long req, uintptr_t arg)
{
    struct fake_vhv *f = ctx;
    if (!f->open || fd != FAKE_VHV_FD)
        return -EBADF;
    if (f->nlog < FAKE_VHV_LOG)
        f->log[f->nlog++] = req;
    if (f->fail_req == req)
        return -f->fail_errno;
    switch (req) {
    case VHOST_SET_OWNER:
        if (f->owner)
            return -EBUSY;
        f->owner = true;
        return 0;
    case VHOST_GET_FEATURES:
        *(uint64_t *)arg = f->features;
        return 0;
    case VHOST_VSOCK_SET_GUEST_CID: {
        uint64_t cid = *(const uint64_t *)arg;
        if (cid < 3 || cid > 0xfffffffeULL)
            return -EINVAL;
        if (cid == f->taken_cid)
            return -EADDRINUSE;
        f->cid = cid;
        return 0;
    }
    default:
        break;
    }
    if (!f->owner)
        return -EPERM; /* vhost_dev_check_owner() */
    switch (req) {
    case VHOST_SET_FEATURES: {
        uint64_t v = *(const uint64_t *)arg;
        if (v & ~f->features)
            return -EOPNOTSUPP;
        f->acked = v;
        f->features_set = true;
        return 0;
    }
    case VHOST_SET_MEM_TABLE: {
        const struct vhost_memory *m = (const void *)arg;
        if (m->nregions > FAKE_VHV_MAX_REGS)
            return -E2BIG;
        for (unsigned i = 0; i < m->nregions; i++) {
            f->reg_gpa[i] = m->regions[i].guest_phys_addr;
            f->reg_size[i] = m->regions[i].memory_size;
            f->reg_hva[i] = m->regions[i].userspace_addr;
        }
        f->nregions = m->nregions;
        return 0;
    }
    case VHOST_VSOCK_SET_RUNNING: {
        int on = *(const int *)arg;
        if (!on) {
            f->running = false;
            return 0;
        }
        return start(f);
    }
    case VHOST_SET_VRING_NUM:
    case VHOST_SET_VRING_BASE:
    case VHOST_SET_VRING_ADDR:
    case VHOST_SET_VRING_KICK:
    case VHOST_SET_VRING_CALL:
    case VHOST_GET_VRING_BASE:
        return vring(f, req, arg);
    default:
        return -ENOTTY;
    }
}

static ssize_t fake_write(void *ctx, int fd, const void *buf, size_t len)
{
    (void)ctx;
    (void)fd;
    (void)buf;
    (void)len;
    return -EINVAL; /* vhost-vsock takes no messages */
}

static int fake_close(void *ctx, int fd)
{
    struct fake_vhv *f = ctx;
    if (!f->open || fd != FAKE_VHV_FD)
        return -EBADF;
    f->open = false;
    f->owner = false;
    f->running = false;
    f->closes++;
    return 0;
}

const struct vhost_sys_ops fake_vhv_ops = {
    .open = fake_open,
    .ioctl = fake_ioctl,
    .write = fake_write,
    .close = fake_close,
};
