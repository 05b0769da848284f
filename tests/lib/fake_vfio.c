/*
 * The simulated kernel VFIO of fake_vfio.h: enough of the container, group,
 * device and kvm-vfio ioctls for devices/vfio/ to run every path, with fd
 * and mapping counts so the tests can see leaks.
 */
#include "tests/lib/fake_vfio.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>

#define FD_BASE 100

enum fd_kind { FD_NONE, FD_CONTAINER, FD_GROUP, FD_DEVICE, FD_KVMDEV, FD_OTHER };

static void region_fixed(struct fake_vfio *f, unsigned index, struct vfio_region_info *ri)
{
    memcpy(ri, f->region[index], sizeof(*ri));
}

void fake_vfio_region(struct fake_vfio *f, unsigned index, uint32_t flags, uint64_t size,
                      uint64_t offset)
{
    if (index >= VFIO_MAX_REGIONS)
        abort();
    struct vfio_region_info ri = {
        .argsz = sizeof(ri), .flags = flags, .index = index, .size = size, .offset = offset};
    memset(f->region[index], 0, FAKE_VFIO_ANSWER);
    memcpy(f->region[index], &ri, sizeof(ri));
    f->region_len[index] = sizeof(ri);
}

/* Append `cap` to the chain in buf (fixed part `fixed` bytes, cap_offset at `link`). */
static void append_cap(uint8_t *buf, uint32_t *len, uint32_t link, const void *cap, uint32_t clen)
{
    uint32_t at = (*len + 7) & ~7u;
    if (at + clen > FAKE_VFIO_ANSWER || clen < sizeof(struct vfio_info_cap_header))
        abort();
    memcpy(buf + at, cap, clen);
    struct vfio_info_cap_header h;
    memcpy(&h, buf + at, sizeof(h));
    h.next = 0;
    memcpy(buf + at, &h, sizeof(h));
    uint32_t off;
    memcpy(&off, buf + link, sizeof(off));
    if (off == 0) {
        memcpy(buf + link, &at, sizeof(at));
    } else {
        for (;;) {
            memcpy(&h, buf + off, sizeof(h));
            if (h.next == 0)
                break;
            off = h.next;
        }
        h.next = at;
        memcpy(buf + off, &h, sizeof(h));
    }
    *len = at + clen;
    memcpy(buf, len, sizeof(*len)); /* argsz */
}

void fake_vfio_region_cap(struct fake_vfio *f, unsigned index, const void *cap, uint32_t len)
{
    struct vfio_region_info ri;
    region_fixed(f, index, &ri);
    ri.flags |= VFIO_REGION_INFO_FLAG_CAPS;
    memcpy(f->region[index], &ri, sizeof(ri));
    append_cap(f->region[index], &f->region_len[index],
               offsetof(struct vfio_region_info, cap_offset), cap, len);
}

void fake_vfio_iommu_cap(struct fake_vfio *f, const void *cap, uint32_t len)
{
    struct vfio_iommu_type1_info ii;
    memcpy(&ii, f->iommu, sizeof(ii));
    ii.flags |= VFIO_IOMMU_INFO_CAPS;
    memcpy(f->iommu, &ii, sizeof(ii));
    append_cap(f->iommu, &f->iommu_len, offsetof(struct vfio_iommu_type1_info, cap_offset), cap,
               len);
}

void fake_vfio_init(struct fake_vfio *f)
{
    memset(f, 0, sizeof(*f));
    f->api_version = VFIO_API_VERSION;
    f->type1v2 = 1;
    f->viable = true;
    f->device_flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
    f->num_regions = VFIO_PCI_NUM_REGIONS;
    f->num_irqs = VFIO_PCI_NUM_IRQS;
    for (unsigned i = 0; i < VFIO_PCI_VGA_REGION_INDEX; i++)
        fake_vfio_region(f, i, 0, 0, (uint64_t)i << 40);
    fake_vfio_region(f, VFIO_PCI_BAR0_REGION_INDEX,
                     VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                         VFIO_REGION_INFO_FLAG_MMAP,
                     0x100000, 0);
    fake_vfio_region(f, VFIO_PCI_CONFIG_REGION_INDEX,
                     VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE, 256, 7ull << 40);
    /* VGA (8) stays absent: the kernel answers EINVAL for it. */
    struct vfio_iommu_type1_info ii = {
        .argsz = sizeof(ii), .flags = VFIO_IOMMU_INFO_PGSIZES, .iova_pgsizes = 0x40201000};
    memcpy(f->iommu, &ii, sizeof(ii));
    f->iommu_len = sizeof(ii);
    for (unsigned i = 0; i < VFIO_MAX_IRQS; i++)
        f->irqs[i] = (struct vfio_irq_info){.argsz = sizeof(f->irqs[i]), .index = i};
    f->irqs[VFIO_PCI_INTX_IRQ_INDEX].flags =
        VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
    f->irqs[VFIO_PCI_INTX_IRQ_INDEX].count = 1;
    f->irqs[VFIO_PCI_MSI_IRQ_INDEX].flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
    f->irqs[VFIO_PCI_MSI_IRQ_INDEX].count = 1;
    f->irqs[VFIO_PCI_MSIX_IRQ_INDEX].flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
}

static int new_fd(struct fake_vfio *f, enum fd_kind kind)
{
    for (int i = 0; i < FAKE_VFIO_MAX_FDS; i++) {
        if (!f->fd_open[i]) {
            f->fd_open[i] = true;
            f->fd_kind[i] = kind;
            f->nopen++;
            return FD_BASE + i;
        }
    }
    return -EMFILE;
}

int fake_vfio_new_fd(struct fake_vfio *f, bool device)
{
    return new_fd(f, device ? FD_DEVICE : FD_OTHER);
}

static enum fd_kind kind_of(const struct fake_vfio *f, int fd)
{
    int i = fd - FD_BASE;
    if (i < 0 || i >= FAKE_VFIO_MAX_FDS || !f->fd_open[i])
        return FD_NONE;
    return (enum fd_kind)f->fd_kind[i];
}

static int fake_open(void *ctx, const char *path, int flags)
{
    struct fake_vfio *f = ctx;
    (void)flags;
    if (++f->opens == f->fail_open_nth)
        return -ENOENT;
    return new_fd(f, strcmp(path, "/dev/vfio/vfio") == 0 ? FD_CONTAINER : FD_GROUP);
}

/* Copy an info answer of `need` bytes to a caller's buffer of argsz bytes. */
static void answer(void *arg, const uint8_t *ans, uint32_t need, uint32_t fixed, uint32_t link)
{
    uint32_t argsz;
    memcpy(&argsz, arg, sizeof(argsz));
    if (argsz >= need) {
        memcpy(arg, ans, need);
    } else {
        uint32_t zero = 0;
        memcpy(arg, ans, fixed);
        memcpy((uint8_t *)arg + link, &zero, sizeof(zero)); /* caps do not fit */
    }
    memcpy(arg, &need, sizeof(need));
}

static int device_ioctl(struct fake_vfio *f, unsigned long req, uintptr_t arg)
{
    void *p = (void *)arg;
    switch (req) {
    case VFIO_DEVICE_GET_INFO: {
        struct vfio_device_info *di = p;
        di->flags = f->device_flags;
        di->num_regions = f->num_regions;
        di->num_irqs = f->num_irqs;
        return 0;
    }
    case VFIO_DEVICE_GET_REGION_INFO: {
        struct vfio_region_info ri;
        memcpy(&ri, p, sizeof(ri));
        if (ri.index >= f->num_regions || ri.index >= VFIO_MAX_REGIONS ||
            f->region_len[ri.index] == 0)
            return -EINVAL;
        uint32_t need = f->region_len[ri.index];
        if (f->grow_argsz && ri.argsz >= need)
            need = ri.argsz + 8;
        answer(p, f->region[ri.index], need, sizeof(ri),
               offsetof(struct vfio_region_info, cap_offset));
        return 0;
    }
    case VFIO_DEVICE_GET_IRQ_INFO: {
        struct vfio_irq_info *ii = p;
        if (ii->index >= f->num_irqs || ii->index >= VFIO_MAX_IRQS)
            return -EINVAL;
        ii->flags = f->irqs[ii->index].flags;
        ii->count = f->irqs[ii->index].count;
        return 0;
    }
    case VFIO_DEVICE_SET_IRQS: {
        struct vfio_irq_set *s = p;
        f->set_irqs_calls++;
        memset(f->last_irq_set, 0, sizeof(f->last_irq_set));
        memcpy(f->last_irq_set, s,
               s->argsz < sizeof(f->last_irq_set) ? s->argsz : sizeof(f->last_irq_set));
        return 0;
    }
    case VFIO_DEVICE_RESET:
        f->reset_calls++;
        return 0;
    default:
        return -ENOTTY;
    }
}

static int container_ioctl(struct fake_vfio *f, unsigned long req, uintptr_t arg)
{
    switch (req) {
    case VFIO_GET_API_VERSION:
        return f->api_version;
    case VFIO_CHECK_EXTENSION:
        return arg == VFIO_TYPE1v2_IOMMU ? f->type1v2 : 0;
    case VFIO_SET_IOMMU:
        return arg == VFIO_TYPE1v2_IOMMU ? 0 : -EINVAL;
    case VFIO_IOMMU_GET_INFO:
        answer((void *)arg, f->iommu, f->iommu_len, sizeof(struct vfio_iommu_type1_info),
               offsetof(struct vfio_iommu_type1_info, cap_offset));
        return 0;
    case VFIO_IOMMU_MAP_DMA: {
        const struct vfio_iommu_type1_dma_map *m = (const void *)arg;
        f->map_calls++;
        if (f->nmaps >= 64)
            return -ENOSPC;
        f->maps[f->nmaps++] = (struct fake_vfio_map){m->iova, m->size, m->vaddr};
        return 0;
    }
    case VFIO_IOMMU_UNMAP_DMA: {
        const struct vfio_iommu_type1_dma_unmap *u = (const void *)arg;
        f->unmap_calls++;
        for (unsigned i = 0; i < f->nmaps; i++) {
            if (f->maps[i].iova == u->iova && f->maps[i].size == u->size) {
                f->maps[i] = f->maps[--f->nmaps];
                return 0;
            }
        }
        return -EINVAL;
    }
    default:
        return -ENOTTY;
    }
}

static int fake_ioctl(void *ctx, int fd, unsigned long req, uintptr_t arg)
{
    struct fake_vfio *f = ctx;
    if (f->fail_req != 0 && req == f->fail_req && ++f->fail_seen == f->fail_nth)
        return -f->fail_errno;
    switch (kind_of(f, fd)) {
    case FD_CONTAINER:
        return container_ioctl(f, req, arg);
    case FD_GROUP:
        if (req == VFIO_GROUP_GET_STATUS) {
            struct vfio_group_status *st = (void *)arg;
            st->flags = f->viable ? VFIO_GROUP_FLAGS_VIABLE : 0;
            return 0;
        }
        if (req == VFIO_GROUP_SET_CONTAINER)
            return kind_of(f, *(const int *)arg) == FD_CONTAINER ? 0 : -EINVAL;
        if (req == VFIO_GROUP_GET_DEVICE_FD)
            return new_fd(f, FD_DEVICE);
        return -ENOTTY;
    case FD_DEVICE:
        return device_ioctl(f, req, arg);
    case FD_KVMDEV:
        if (req == KVM_SET_DEVICE_ATTR) {
            const struct kvm_device_attr *a = (const void *)arg;
            f->kvm_attrs++;
            memcpy(&f->kvm_group_fd, (const void *)(uintptr_t)a->addr, sizeof(int32_t));
            enum fd_kind k = kind_of(f, f->kvm_group_fd);
            /* KVM_DEV_VFIO_FILE_ADD takes a group or (Linux >= 6.6) a VFIO cdev fd. */
            return k == FD_GROUP || k == FD_DEVICE ? 0 : -EBADF;
        }
        return -ENOTTY;
    case FD_NONE:
    default:
        if (req == KVM_CREATE_DEVICE) { /* any unknown fd plays the VM */
            struct kvm_create_device *cd = (void *)arg;
            if (cd->type != KVM_DEV_TYPE_VFIO)
                return -ENODEV;
            f->kvm_creates++;
            int nfd = new_fd(f, FD_KVMDEV);
            if (nfd < 0)
                return nfd;
            cd->fd = (uint32_t)nfd;
            return 0;
        }
        return -EBADF;
    }
}

#define CONFIG_OFF ((off_t)7 << 40)

/* [off, off + len) inside the simulated config space. */
static bool config_at(off_t off, size_t len)
{
    return off >= CONFIG_OFF && len <= 256 && off - CONFIG_OFF <= (off_t)(256 - len);
}

static ssize_t fake_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
    struct fake_vfio *f = ctx;
    if (kind_of(f, fd) != FD_DEVICE)
        return -EBADF;
    f->preads++;
    f->last_off = off;
    f->last_len = len;
    if (f->use_config && config_at(off, len)) {
        memcpy(buf, f->config + (off - CONFIG_OFF), len);
        return (ssize_t)len;
    }
    memset(buf, 0xab, len);
    return (ssize_t)len;
}

static ssize_t fake_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
    struct fake_vfio *f = ctx;
    if (kind_of(f, fd) != FD_DEVICE)
        return -EBADF;
    f->pwrites++;
    f->last_off = off;
    f->last_len = len;
    if (f->use_config && config_at(off, len))
        memcpy(f->config + (off - CONFIG_OFF), buf, len);
    return (ssize_t)len;
}

static int fake_mmap(void *ctx, int fd, off_t off, size_t len, int prot, void **out)
{
    struct fake_vfio *f = ctx;
    if (kind_of(f, fd) != FD_DEVICE)
        return -EBADF;
    f->live_mmaps++;
    f->last_mmap_off = off;
    f->last_mmap_len = len;
    f->last_mmap_prot = prot;
    *out = (void *)(uintptr_t)(0x10000000u + 0x100000u * (unsigned)f->live_mmaps);
    return 0;
}

static int fake_munmap(void *ctx, void *addr, size_t len)
{
    struct fake_vfio *f = ctx;
    (void)addr;
    (void)len;
    f->live_mmaps--;
    return 0;
}

static int fake_close(void *ctx, int fd)
{
    struct fake_vfio *f = ctx;
    int i = fd - FD_BASE;
    if (i < 0 || i >= FAKE_VFIO_MAX_FDS || !f->fd_open[i]) {
        f->bad_closes++;
        return -EBADF;
    }
    f->fd_open[i] = false;
    f->fd_kind[i] = FD_NONE;
    f->nopen--;
    return 0;
}

const struct vfio_sys_ops fake_vfio_ops = {
    .open = fake_open,
    .ioctl = fake_ioctl,
    .pread = fake_pread,
    .pwrite = fake_pwrite,
    .mmap = fake_mmap,
    .munmap = fake_munmap,
    .close = fake_close,
};
