/*
 * vhost-vsock data plane (see vhost_vsock.h): virtio_dataplane_ops over the
 * kernel's /dev/vhost-vsock.
 *
 * Why it is written this way: the kernel refuses some out-of-order calls
 * (ring changes while running: EBUSY; anything before SET_OWNER: EPERM) but
 * silently accepts others whose result is wrong (a ring position read while
 * running, SET_RUNNING before the rings or the memory table are set, which
 * fails only on the first kick).  The layer keeps its own view (running or
 * not, which queues are programmed) and issues the calls in one fixed
 * order, so the kernel never sees a sequence it would have to judge.
 */
#include "devices/vhost/vhost_vsock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/util.h"

struct vhv {
    const struct vhost_sys_ops *ops;
    void *ctx;
    int fd;
    uint64_t features; /* the kernel's offer (VHOST_GET_FEATURES) */
    uint64_t cid;
    const struct gmem *mem;
    bool running;
    unsigned kicks_set; /* bit per queue whose kick and call the kernel holds */
};

static int vhv_ioctl(struct vhv *v, unsigned long req, uintptr_t arg)
{
    return v->ops->ioctl(v->ctx, v->fd, req, arg);
}

static uint64_t vhv_features(void *dp)
{
    return ((struct vhv *)dp)->features;
}

/* The config space is the guest's CID, le64 (virtio 1.2 §5.10.4); x86 is little-endian. */
static int vhv_config_read(void *dp, uint32_t off, void *buf, uint32_t len)
{
    struct vhv *v = dp;
    uint64_t cid = v->cid;
    if (off > sizeof(cid) || len > sizeof(cid) - off)
        return -EINVAL;
    memcpy(buf, (const uint8_t *)&cid + off, len);
    return 0;
}

/* Detach queue q's kick and call eventfds (best effort: the fds go back to the VMM). */
static void vhv_detach(struct vhv *v, unsigned q)
{
    struct vhost_vring_file f = {.index = q, .fd = -1};
    if (!(v->kicks_set & (1u << q)))
        return;
    (void)vhv_ioctl(v, VHOST_SET_VRING_KICK, (uintptr_t)&f);
    (void)vhv_ioctl(v, VHOST_SET_VRING_CALL, (uintptr_t)&f);
    v->kicks_set &= ~(1u << q);
}

/* SET_MEM_TABLE: every guest RAM region at wisp's host address. */
static int vhv_set_mem_table(struct vhv *v)
{
    const struct gmem *gm = v->mem;
    /* struct vhost_memory ends in a flexible array: a buffer with room for every region. */
    uint64_t
        buf[(sizeof(struct vhost_memory) + GMEM_MAX_REGIONS * sizeof(struct vhost_memory_region)) /
                sizeof(uint64_t) +
            1];
    struct vhost_memory *m = (struct vhost_memory *)buf;
    if (gm->nregions == 0 || gm->nregions > GMEM_MAX_REGIONS)
        return -EINVAL;
    memset(buf, 0, sizeof(buf));
    m->nregions = gm->nregions;
    for (unsigned i = 0; i < gm->nregions; i++)
        m->regions[i] = (struct vhost_memory_region){
            .guest_phys_addr = gm->regions[i].gpa,
            .memory_size = gm->regions[i].size,
            .userspace_addr = (uint64_t)(uintptr_t)gm->regions[i].hva,
        };
    return vhv_ioctl(v, VHOST_SET_MEM_TABLE, (uintptr_t)m);
}

/* Program one ring: NUM, BASE, ADDR (wisp's host addresses), then KICK and CALL. */
static int vhv_vring_setup(struct vhv *v, const struct virtio_dp_queue *q)
{
    uint64_t n = q->size;
    if (n == 0 || n > VHV_MAX_VRING_NUM || (n & (n - 1)) != 0)
        return -EINVAL;
    if (q->kick_fd < 0 || q->call_fd < 0)
        return -EBADF;
    /* Split ring sizes (virtio 1.2 §2.7): 16 per descriptor, 6 + 2n and 6 + 8n bytes. */
    void *desc = gmem_ptr(v->mem, q->desc, 16 * n);
    void *avail = gmem_ptr(v->mem, q->avail, 6 + 2 * n);
    void *used = gmem_ptr(v->mem, q->used, 6 + 8 * n);
    if (!desc || !avail || !used)
        return -EFAULT;
    struct vhost_vring_state st = {.index = q->index, .num = (unsigned)n};
    int rc = vhv_ioctl(v, VHOST_SET_VRING_NUM, (uintptr_t)&st);
    if (rc < 0)
        return rc;
    st.num = q->next_avail;
    rc = vhv_ioctl(v, VHOST_SET_VRING_BASE, (uintptr_t)&st);
    if (rc < 0)
        return rc;
    struct vhost_vring_addr a = {.index = q->index,
                                 .desc_user_addr = (uint64_t)(uintptr_t)desc,
                                 .avail_user_addr = (uint64_t)(uintptr_t)avail,
                                 .used_user_addr = (uint64_t)(uintptr_t)used};
    rc = vhv_ioctl(v, VHOST_SET_VRING_ADDR, (uintptr_t)&a);
    if (rc < 0)
        return rc;
    struct vhost_vring_file f = {.index = q->index, .fd = q->kick_fd};
    rc = vhv_ioctl(v, VHOST_SET_VRING_KICK, (uintptr_t)&f);
    if (rc < 0)
        return rc;
    v->kicks_set |= 1u << q->index;
    f.fd = q->call_fd;
    return vhv_ioctl(v, VHOST_SET_VRING_CALL, (uintptr_t)&f);
}

static int vhv_start(void *dp, uint64_t features, const struct virtio_dp_queue *q, unsigned n)
{
    struct vhv *v = dp;
    unsigned seen = 0;
    if (v->running)
        return -EBUSY;
    if (features & ~v->features)
        return -EINVAL;
    /* The kernel starts both rings at once: both must be there, each once. */
    if (n != VHV_NQUEUES)
        return -EINVAL;
    for (unsigned i = 0; i < n; i++) {
        if (q[i].index >= VHV_NQUEUES || (seen & (1u << q[i].index)))
            return -EINVAL;
        seen |= 1u << q[i].index;
    }
    int rc = vhv_ioctl(v, VHOST_SET_FEATURES, (uintptr_t)&features);
    if (rc < 0)
        return rc;
    rc = vhv_set_mem_table(v);
    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < n; i++) {
        rc = vhv_vring_setup(v, &q[i]);
        if (rc < 0)
            goto fail;
    }
    int one = 1;
    rc = vhv_ioctl(v, VHOST_VSOCK_SET_RUNNING, (uintptr_t)&one);
    if (rc < 0)
        goto fail;
    v->running = true;
    return 0;
fail:
    for (unsigned i = 0; i < VHV_NQUEUES; i++)
        vhv_detach(v, i);
    return rc;
}

static int vhv_stop(void *dp, const struct virtio_dp_queue *q, unsigned n, uint16_t *next)
{
    struct vhv *v = dp;
    int zero = 0;
    if (v->running) {
        int rc = vhv_ioctl(v, VHOST_VSOCK_SET_RUNNING, (uintptr_t)&zero);
        if (rc < 0)
            return rc;
        v->running = false;
    }
    /* Stopped: the kernel no longer moves the rings, so the positions are final. */
    for (unsigned i = 0; i < n; i++) {
        if (q[i].index >= VHV_NQUEUES)
            return -EINVAL;
        struct vhost_vring_state st = {.index = q[i].index, .num = 0};
        int rc = vhv_ioctl(v, VHOST_GET_VRING_BASE, (uintptr_t)&st);
        if (rc < 0)
            return rc;
        if (st.num > 0xffff)
            return -EIO; /* split ring: last_avail_idx is 16 bits */
        if (next)
            next[i] = (uint16_t)st.num;
    }
    for (unsigned i = 0; i < VHV_NQUEUES; i++)
        vhv_detach(v, i);
    return 0;
}

/* The kernel does not go away: nothing to watch. */
static int vhv_watch_fd(void *dp)
{
    (void)dp;
    return -1;
}

static int vhv_check(void *dp)
{
    (void)dp;
    return 0;
}

static void vhv_destroy(void *dp)
{
    struct vhv *v = dp;
    if (!v)
        return;
    if (v->fd >= 0) {
        int zero = 0;
        if (v->running)
            (void)vhv_ioctl(v, VHOST_VSOCK_SET_RUNNING, (uintptr_t)&zero);
        /* Closing releases the CID and every connection (the kernel resets them). */
        (void)v->ops->close(v->ctx, v->fd);
    }
    free(v);
}

bool vhv_running(const void *dp)
{
    return ((const struct vhv *)dp)->running;
}

const struct virtio_dataplane_ops vhv_dp_ops = {
    .kind = "vhost-vsock",
    .features = vhv_features,
    .config_read = vhv_config_read,
    .config_write = NULL, /* the vsock config space is read-only */
    .start = vhv_start,
    .stop = vhv_stop,
    .watch_fd = vhv_watch_fd,
    .check = vhv_check,
    .unmigratable = "vhost-vsock connections live in the host kernel and cannot move",
    .destroy = vhv_destroy,
};

int vhv_create(const char *path, uint64_t cid, const struct gmem *mem,
               const struct vhost_sys_ops *ops, void *ctx, void **out, struct errbuf *err)
{
    const char *p = path ? path : VHV_DEV_PATH;
    if (cid < 3 || cid > 0xfffffffeULL)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "vsock: cid %llu is out of range (3 to 4294967294)",
                       (unsigned long long)cid);
    struct vhv *v = calloc(1, sizeof(*v));
    if (!v)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    v->ops = ops ? ops : &vhost_sys_kernel;
    v->ctx = ctx;
    v->mem = mem;
    v->cid = cid;
    int rc = v->ops->open(v->ctx, p, O_RDWR);
    if (rc < 0) {
        v->fd = -1;
        err_set(err, WISP_EXIT_HOST, -rc, "vsock: cannot open %s: %s%s", p, strerror(-rc),
                rc == -ENOENT ? " (modprobe vhost_vsock?)" : "");
        goto fail;
    }
    v->fd = rc;
    rc = vhv_ioctl(v, VHOST_SET_OWNER, 0);
    if (rc < 0) {
        err_set(err, WISP_EXIT_HOST, -rc, "vsock: %s: SET_OWNER failed: %s", p, strerror(-rc));
        goto fail;
    }
    rc = vhv_ioctl(v, VHOST_GET_FEATURES, (uintptr_t)&v->features);
    if (rc < 0) {
        err_set(err, WISP_EXIT_HOST, -rc, "vsock: %s: GET_FEATURES failed: %s", p, strerror(-rc));
        goto fail;
    }
    rc = vhv_ioctl(v, VHOST_VSOCK_SET_GUEST_CID, (uintptr_t)&cid);
    if (rc == -EADDRINUSE)
        err_set(err, WISP_EXIT_HOST, EADDRINUSE,
                "vsock: cid %llu is already used by another VM on this host",
                (unsigned long long)cid);
    else if (rc == -EADDRNOTAVAIL)
        err_set(err, WISP_EXIT_HOST, EADDRNOTAVAIL, "vsock: cid %llu is one of this host's own",
                (unsigned long long)cid);
    else if (rc < 0)
        err_set(err, WISP_EXIT_HOST, -rc, "vsock: %s: SET_GUEST_CID %llu failed: %s", p,
                (unsigned long long)cid, strerror(-rc));
    if (rc < 0)
        goto fail;
    *out = v;
    return 0;
fail:
    vhv_destroy(v);
    return rc;
}
