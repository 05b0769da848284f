/*
 * The simulated iommufd + VFIO cdev kernel of fake_iommufd.h.  Every refusal
 * names the rule it enforces (last_reject) and cites where the kernel
 * documents it: vfio.md is /work/shared/reference/vfio.md; "uAPI" is the
 * kernel's own description of the structs (include/uapi/linux/iommufd.h,
 * vfio.h) and its Documentation/userspace-api/iommufd.rst.
 */
#include "tests/lib/fake_iommufd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/vfio/iommufd_uapi.h"

#define OBJ_IOAS   1
#define OBJ_HWPT   2
#define MAX_STRUCT 256 /* larger `size` claims are refused as E2BIG */

static void ev(struct fake_iommufd *f, const char *what)
{
    size_t n = strlen(f->log);
    snprintf(f->log + n, sizeof(f->log) - n, "%s%s", n ? " " : "", what);
}

__attribute__((format(printf, 3, 4))) static int reject(struct fake_iommufd *f, int rc,
                                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->last_reject, sizeof(f->last_reject), fmt, ap);
    va_end(ap);
    f->rejections++;
    return rc;
}

void fake_iommufd_init(struct fake_iommufd *f)
{
    memset(f, 0, sizeof(*f));
    fake_vfio_init(&f->v);
    f->iommu_fd = f->cdev_fd = -1;
    f->nranges = 2;
    f->ranges[0] = (struct fake_iommufd_range){0, 0xfedfffffull};
    f->ranges[1] = (struct fake_iommufd_range){0xfef00000ull, (1ull << 48) - 1};
    f->align = 4096;
}

unsigned fake_iommufd_live_objs(const struct fake_iommufd *f)
{
    unsigned n = f->nareas;
    for (unsigned i = 0; i < FAKE_IOMMUFD_MAX_OBJS; i++)
        n += f->objs[i].kind != 0;
    return n;
}

/*
 * Copy the caller's struct in the kernel's way (uAPI, vfio.md §1.3): the
 * leading u32 is the caller's size; below `min` is EINVAL; bytes beyond
 * what the kernel knows must be zero, else E2BIG.
 */
static int take(struct fake_iommufd *f, uintptr_t arg, void *out, size_t known, size_t min,
                const char *what)
{
    uint32_t size;
    memcpy(&size, (const void *)arg, sizeof(size));
    if (size < min)
        return reject(f, -EINVAL, "%s: size %u below %zu", what, size, min);
    if (size > MAX_STRUCT)
        return reject(f, -E2BIG, "%s: size %u", what, size);
    for (uint32_t i = (uint32_t)known; i < size; i++)
        if (((const uint8_t *)arg)[i] != 0)
            return reject(f, -E2BIG, "%s: unknown non-zero byte %u", what, i);
    memset(out, 0, known);
    memcpy(out, (const void *)arg, size < known ? size : known);
    return 0;
}

static void give(uintptr_t arg, const void *in, size_t known)
{
    uint32_t size;
    memcpy(&size, (const void *)arg, sizeof(size));
    memcpy((void *)arg, in, size < known ? size : known);
}

static struct fake_iommufd_obj *obj(struct fake_iommufd *f, uint32_t id, int kind)
{
    if (id == 0 || id > FAKE_IOMMUFD_MAX_OBJS || f->objs[id - 1].kind == 0)
        return NULL;
    if (kind != 0 && f->objs[id - 1].kind != kind)
        return NULL;
    return &f->objs[id - 1];
}

static uint32_t new_obj(struct fake_iommufd *f, int kind, uint32_t ioas)
{
    for (uint32_t i = 0; i < FAKE_IOMMUFD_MAX_OBJS; i++) {
        if (f->objs[i].kind == 0) {
            f->objs[i] = (struct fake_iommufd_obj){.kind = kind, .ioas = ioas};
            return i + 1;
        }
    }
    return 0;
}

static bool in_ranges(const struct fake_iommufd *f, uint64_t iova, uint64_t len)
{
    uint64_t last = iova + len - 1;
    if (last < iova)
        return false;
    for (unsigned i = 0; i < f->nranges && i < FAKE_IOMMUFD_MAX_RANGES; i++)
        if (iova >= f->ranges[i].start && last <= f->ranges[i].last)
            return true;
    return false;
}

static void drop_areas(struct fake_iommufd *f, uint32_t ioas)
{
    for (unsigned i = 0; i < f->nareas;)
        if (f->areas[i].ioas == ioas)
            f->areas[i] = f->areas[--f->nareas];
        else
            i++;
}

static int ioas_map(struct fake_iommufd *f, uintptr_t arg)
{
    struct iommu_ioas_map m;
    int rc = take(f, arg, &m, sizeof(m), sizeof(m), "IOAS_MAP");
    if (rc < 0)
        return rc;
    const uint32_t known =
        IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
    /* uAPI: unknown flags or a non-zero __reserved are EOPNOTSUPP. */
    if ((m.flags & ~known) || m.__reserved)
        return reject(f, -EOPNOTSUPP, "IOAS_MAP: unknown flags 0x%x / reserved", m.flags);
    /* vfio.md §1.3: ENOENT = bad id. */
    if (obj(f, m.ioas_id, OBJ_IOAS) == NULL)
        return reject(f, -ENOENT, "IOAS_MAP: no IOAS %u", m.ioas_id);
    if (!(m.flags & IOMMU_IOAS_MAP_FIXED_IOVA))
        return reject(f, -EOPNOTSUPP, "IOAS_MAP: IOVA allocation is not simulated");
    /* uAPI: iova, length and user_va aligned to out_iova_alignment; length non-zero. */
    if (m.length == 0 || ((m.iova | m.length | m.user_va) & (f->align - 1)))
        return reject(f, -EINVAL, "IOAS_MAP: 0x%llx + 0x%llx unaligned or empty",
                      (unsigned long long)m.iova, (unsigned long long)m.length);
    /* uAPI: a fixed IOVA must lie in the allowed ranges (IOVA_RANGES), else EINVAL. */
    if (!in_ranges(f, m.iova, m.length))
        return reject(f, -EINVAL, "IOAS_MAP: 0x%llx + 0x%llx outside the allowed IOVAs",
                      (unsigned long long)m.iova, (unsigned long long)m.length);
    /* uAPI: a fixed IOVA overlapping an existing mapping is EEXIST. */
    for (unsigned i = 0; i < f->nareas; i++) {
        const struct fake_iommufd_area *a = &f->areas[i];
        if (a->ioas == m.ioas_id && m.iova < a->iova + a->length && a->iova < m.iova + m.length)
            return reject(f, -EEXIST, "IOAS_MAP: 0x%llx overlaps a mapping",
                          (unsigned long long)m.iova);
    }
    if (f->nareas >= FAKE_IOMMUFD_MAX_AREAS)
        return -ENOMEM;
    f->areas[f->nareas++] =
        (struct fake_iommufd_area){m.iova, m.length, m.user_va, m.ioas_id, m.flags};
    f->last_map_flags = m.flags;
    ev(f, "map");
    give(arg, &m, sizeof(m));
    return 0;
}

static int ioas_unmap(struct fake_iommufd *f, uintptr_t arg)
{
    struct iommu_ioas_unmap u;
    int rc = take(f, arg, &u, sizeof(u), sizeof(u), "IOAS_UNMAP");
    if (rc < 0)
        return rc;
    if (obj(f, u.ioas_id, OBJ_IOAS) == NULL)
        return reject(f, -ENOENT, "IOAS_UNMAP: no IOAS %u", u.ioas_id);
    uint64_t done = 0;
    if (u.iova == 0 && u.length == UINT64_MAX) { /* vfio.md §1.3: everything */
        for (unsigned i = 0; i < f->nareas; i++)
            done += f->areas[i].ioas == u.ioas_id ? f->areas[i].length : 0;
        drop_areas(f, u.ioas_id);
    } else {
        uint64_t last = u.iova + u.length - 1;
        /* vfio.md §1.3: whole earlier mappings only; ENOENT = bad IOVA. */
        for (unsigned i = 0; i < f->nareas; i++) {
            const struct fake_iommufd_area *a = &f->areas[i];
            uint64_t alast = a->iova + a->length - 1;
            if (a->ioas != u.ioas_id || alast < u.iova || a->iova > last)
                continue;
            if (a->iova < u.iova || alast > last)
                return reject(f, -ENOENT, "IOAS_UNMAP: cuts the mapping at 0x%llx",
                              (unsigned long long)a->iova);
        }
        for (unsigned i = 0; i < f->nareas;) {
            const struct fake_iommufd_area *a = &f->areas[i];
            if (a->ioas == u.ioas_id && a->iova >= u.iova && a->iova + a->length - 1 <= last) {
                done += a->length;
                f->areas[i] = f->areas[--f->nareas];
            } else {
                i++;
            }
        }
        if (done == 0)
            return reject(f, -ENOENT, "IOAS_UNMAP: nothing mapped at 0x%llx",
                          (unsigned long long)u.iova);
    }
    u.length = done;
    ev(f, "unmap");
    give(arg, &u, sizeof(u));
    return 0;
}

static int iova_ranges(struct fake_iommufd *f, uintptr_t arg)
{
    struct iommu_ioas_iova_ranges q;
    int rc = take(f, arg, &q, sizeof(q), sizeof(q), "IOVA_RANGES");
    if (rc < 0)
        return rc;
    if (obj(f, q.ioas_id, OBJ_IOAS) == NULL)
        return reject(f, -ENOENT, "IOVA_RANGES: no IOAS %u", q.ioas_id);
    uint32_t cap = q.num_iovas;
    for (uint32_t i = 0; i < f->nranges && i < cap; i++) {
        struct iommu_iova_range r = {f->ranges[i].start, f->ranges[i].last};
        memcpy((uint8_t *)(uintptr_t)q.allowed_iovas + i * sizeof(r), &r, sizeof(r));
    }
    q.num_iovas = f->lie_num_iovas ? f->lie_num_iovas : f->nranges;
    q.out_iova_alignment = f->align;
    give(arg, &q, sizeof(q));
    ev(f, "ranges");
    /* uAPI: more ranges than the array holds is EMSGSIZE, num_iovas = the count needed. */
    if (f->lie_num_iovas == 0 && f->nranges > cap)
        return reject(f, -EMSGSIZE, "IOVA_RANGES: %u ranges, room for %u", f->nranges, cap);
    return 0;
}

static int iommu_ioctl(struct fake_iommufd *f, unsigned long req, uintptr_t arg)
{
    switch (req) {
    case IOMMU_IOAS_ALLOC: {
        struct iommu_ioas_alloc a;
        int rc = take(f, arg, &a, sizeof(a), sizeof(a), "IOAS_ALLOC");
        if (rc < 0)
            return rc;
        if (a.flags != 0) /* uAPI: no flags defined */
            return reject(f, -EOPNOTSUPP, "IOAS_ALLOC: flags 0x%x", a.flags);
        a.out_ioas_id = new_obj(f, OBJ_IOAS, 0);
        if (a.out_ioas_id == 0)
            return -ENOMEM;
        ev(f, "ioas");
        give(arg, &a, sizeof(a));
        return 0;
    }
    case IOMMU_DESTROY: {
        struct iommu_destroy d;
        int rc = take(f, arg, &d, sizeof(d), sizeof(d), "DESTROY");
        if (rc < 0)
            return rc;
        struct fake_iommufd_obj *o = obj(f, d.id, 0);
        if (o == NULL)
            return reject(f, -ENOENT, "DESTROY: no object %u", d.id);
        /* uAPI: an object still in use (an IOAS a device is attached to) is EBUSY. */
        if (o->users != 0)
            return reject(f, -EBUSY, "DESTROY: object %u still has %u users", d.id, o->users);
        if (o->kind == OBJ_IOAS)
            drop_areas(f, d.id);
        o->kind = 0;
        ev(f, "destroy");
        return 0;
    }
    case IOMMU_IOAS_IOVA_RANGES:
        return iova_ranges(f, arg);
    case IOMMU_IOAS_MAP:
        return ioas_map(f, arg);
    case IOMMU_IOAS_UNMAP:
        return ioas_unmap(f, arg);
    default:
        return reject(f, -ENOTTY, "iommufd: unknown ioctl 0x%lx", req);
    }
}

/* The device leaves its page table: the automatic HWPT goes, the IOAS loses a user. */
static void detach(struct fake_iommufd *f)
{
    struct fake_iommufd_obj *h = obj(f, f->attached_hwpt, OBJ_HWPT);
    if (h != NULL) {
        struct fake_iommufd_obj *io = obj(f, h->ioas, OBJ_IOAS);
        if (io != NULL && io->users > 0)
            io->users--;
        h->kind = 0;
    }
    f->attached_hwpt = 0;
}

static int cdev_ioctl(struct fake_iommufd *f, int fd, unsigned long req, uintptr_t arg)
{
    switch (req) {
    case VFIO_DEVICE_BIND_IOMMUFD: {
        struct vfio_device_bind_iommufd b;
        memcpy(&b, (const void *)arg, sizeof(b));
        /* Kernel: argsz below the struct or any flag is EINVAL. */
        if (b.argsz < sizeof(b) || b.flags != 0)
            return reject(f, -EINVAL, "BIND: argsz %u flags 0x%x", b.argsz, b.flags);
        /* Kernel ("one device cannot be bound twice"): EINVAL. */
        if (f->bound)
            return reject(f, -EINVAL, "BIND: already bound");
        if (b.iommufd != f->iommu_fd || f->iommu_fd < 0)
            return reject(f, -EBADF, "BIND: %d is not an iommufd", b.iommufd);
        if (!f->kvm_added)
            f->kvm_after_bind = true; /* vfio.md §1.7: FILE_ADD first */
        f->bound = true;
        b.out_devid = 0x42;
        memcpy((void *)arg, &b, sizeof(b));
        ev(f, "bind");
        return 0;
    }
    case VFIO_DEVICE_ATTACH_IOMMUFD_PT: {
        struct vfio_device_attach_iommufd_pt a;
        memcpy(&a, (const void *)arg, sizeof(a));
        if (a.argsz < sizeof(a) || a.flags != 0)
            return reject(f, -EINVAL, "ATTACH: argsz %u flags 0x%x", a.argsz, a.flags);
        /* vfio.md §1.3: the cdev is useless until bound; the kernel answers EINVAL. */
        if (!f->bound)
            return reject(f, -EINVAL, "ATTACH before BIND");
        struct fake_iommufd_obj *io = obj(f, a.pt_id, OBJ_IOAS);
        if (io == NULL)
            return reject(f, -ENOENT, "ATTACH: no IOAS %u", a.pt_id);
        detach(f); /* a second attach replaces the first */
        io->users++;
        uint32_t h = new_obj(f, OBJ_HWPT, a.pt_id);
        if (h == 0)
            return -ENOMEM;
        f->objs[h - 1].users = 1;
        f->attached_hwpt = h;
        a.pt_id = h; /* uAPI: out = the HWPT made for the IOAS */
        memcpy((void *)arg, &a, sizeof(a));
        ev(f, "attach");
        return 0;
    }
    case VFIO_DEVICE_DETACH_IOMMUFD_PT: {
        struct vfio_device_detach_iommufd_pt d;
        memcpy(&d, (const void *)arg, sizeof(d));
        if (d.argsz < sizeof(d) || d.flags != 0)
            return reject(f, -EINVAL, "DETACH: argsz %u flags 0x%x", d.argsz, d.flags);
        if (!f->bound)
            return reject(f, -EINVAL, "DETACH before BIND");
        /* The kernel's detach of an unattached device is a no-op. */
        if (f->attached_hwpt) {
            /* Keep the HWPT's user count honest before it goes. */
            f->objs[f->attached_hwpt - 1].users = 0;
            detach(f);
        }
        ev(f, "detach");
        return 0;
    }
    default:
        /* vfio.md §1.3: the device ioctls answer EINVAL until BIND. */
        if (!f->bound)
            return reject(f, -EINVAL, "device ioctl 0x%lx before BIND", req);
        return fake_vfio_ops.ioctl(&f->v, fd, req, arg);
    }
}

static int fi_open(void *ctx, const char *path, int flags)
{
    struct fake_iommufd *f = ctx;
    (void)flags;
    if (strcmp(path, "/dev/iommu") == 0) {
        if (f->no_iommufd)
            return -ENOENT;
        if (f->iommu_fd >= 0)
            abort(); /* one iommufd per simulator */
        f->iommu_fd = fake_vfio_new_fd(&f->v, false);
        ev(f, "iommu");
        return f->iommu_fd;
    }
    if (strcmp(path, FAKE_IOMMUFD_CDEV) == 0) {
        if (f->cdev_fd >= 0)
            abort();
        f->cdev_fd = fake_vfio_new_fd(&f->v, true);
        f->bound = f->kvm_added = false;
        ev(f, "cdev");
        return f->cdev_fd;
    }
    return -ENOENT;
}

static int fi_ioctl(void *ctx, int fd, unsigned long req, uintptr_t arg)
{
    struct fake_iommufd *f = ctx;
    /* fake_vfio's failure injection, for the ioctls answered here. */
    bool here = (fd >= 0 && fd == f->iommu_fd) ||
                (fd >= 0 && fd == f->cdev_fd &&
                 (req == VFIO_DEVICE_BIND_IOMMUFD || req == VFIO_DEVICE_ATTACH_IOMMUFD_PT ||
                  req == VFIO_DEVICE_DETACH_IOMMUFD_PT));
    if (here && f->v.fail_req != 0 && req == f->v.fail_req && ++f->v.fail_seen == f->v.fail_nth)
        return -f->v.fail_errno;
    if (fd >= 0 && fd == f->iommu_fd)
        return iommu_ioctl(f, req, arg);
    if (fd >= 0 && fd == f->cdev_fd)
        return cdev_ioctl(f, fd, req, arg);
    if (req == KVM_SET_DEVICE_ATTR) {
        const struct kvm_device_attr *a = (const void *)arg;
        int32_t file;
        memcpy(&file, (const void *)(uintptr_t)a->addr, sizeof(file));
        int rc = fake_vfio_ops.ioctl(&f->v, fd, req, arg);
        if (rc == 0 && file == f->cdev_fd && a->group == KVM_DEV_VFIO_FILE &&
            a->attr == KVM_DEV_VFIO_FILE_ADD) {
            f->kvm_added = true;
            ev(f, "kvm");
        }
        return rc;
    }
    return fake_vfio_ops.ioctl(&f->v, fd, req, arg);
}

/* Reads, writes and mmaps of the cdev: EINVAL until bound (vfio.md §1.3). */
static int gate(struct fake_iommufd *f, int fd, const char *what)
{
    if (fd == f->cdev_fd && !f->bound)
        return reject(f, -EINVAL, "%s before BIND", what);
    return 0;
}

static ssize_t fi_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
    struct fake_iommufd *f = ctx;
    int rc = gate(f, fd, "pread");
    return rc < 0 ? rc : fake_vfio_ops.pread(&f->v, fd, buf, len, off);
}

static ssize_t fi_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
    struct fake_iommufd *f = ctx;
    int rc = gate(f, fd, "pwrite");
    return rc < 0 ? rc : fake_vfio_ops.pwrite(&f->v, fd, buf, len, off);
}

static int fi_mmap(void *ctx, int fd, off_t off, size_t len, int prot, void **out)
{
    struct fake_iommufd *f = ctx;
    int rc = gate(f, fd, "mmap");
    return rc < 0 ? rc : fake_vfio_ops.mmap(&f->v, fd, off, len, prot, out);
}

static int fi_munmap(void *ctx, void *addr, size_t len)
{
    struct fake_iommufd *f = ctx;
    return fake_vfio_ops.munmap(&f->v, addr, len);
}

static int fi_close(void *ctx, int fd)
{
    struct fake_iommufd *f = ctx;
    if (fd >= 0 && fd == f->cdev_fd) {
        /* Closing the cdev detaches and unbinds the device. */
        if (f->attached_hwpt) {
            f->objs[f->attached_hwpt - 1].users = 0;
            detach(f);
        }
        f->bound = false;
        f->cdev_fd = -1;
        ev(f, "close-cdev");
    } else if (fd >= 0 && fd == f->iommu_fd) {
        /* Closing /dev/iommu frees every object left. */
        memset(f->objs, 0, sizeof(f->objs));
        f->nareas = 0;
        f->iommu_fd = -1;
        ev(f, "close-iommu");
    }
    return fake_vfio_ops.close(&f->v, fd);
}

const struct vfio_sys_ops fake_iommufd_ops = {
    .open = fi_open,
    .ioctl = fi_ioctl,
    .pread = fi_pread,
    .pwrite = fi_pwrite,
    .mmap = fi_mmap,
    .munmap = fi_munmap,
    .close = fi_close,
};
