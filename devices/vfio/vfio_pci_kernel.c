/*
 * The kernel VFIO transport of the passthrough function (vfio_pci.h): a
 * sysfs path becomes a group, a container with guest RAM mapped at
 * IOVA = GPA, the VM's kvm-vfio device and the device fd; a cdev path
 * (/dev/vfio/devices/vfioN) takes the iommufd route instead (an IOAS in
 * place of the container, the cdev as the device fd).  Why the sysfs
 * path and not the group: users know the PCI address; the group is the
 * kernel's business and is resolved (and checked) here.
 */
#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/vfio/vfio.h"
#include "devices/vfio/vfio_pci.h"
#include "vmm/log.h"

struct kern {
    struct vfio_container c;
    struct vfio_device d;
    int kvm_dev_fd;
};

static int k_read(void *t, unsigned index, uint64_t off, void *buf, size_t len)
{
    struct kern *k = t;
    int ret = vfio_region_read(&k->d, index, off, buf, len);
    if (ret < 0)
        memset(buf, 0xff, len);
    return ret;
}

static int k_write(void *t, unsigned index, uint64_t off, const void *buf, size_t len)
{
    struct kern *k = t;
    return vfio_region_write(&k->d, index, off, buf, len);
}

static int k_set_irqs(void *t, unsigned index, uint32_t start, uint32_t count, const int *fds)
{
    struct kern *k = t;
    if (count == 0)
        return vfio_irq_disable(&k->d, index);
    return vfio_irq_set_eventfds(&k->d, index, start, count, fds);
}

static int k_mmap(void *t, unsigned index, unsigned area, void **addr, size_t *len)
{
    struct kern *k = t;
    return vfio_region_mmap(&k->d, index, area, addr, len);
}

static void k_destroy(void *t)
{
    struct kern *k = t;
    if (!k)
        return;
    if (k->d.fd >= 0)
        vfio_device_close(&k->d);
    if (k->kvm_dev_fd >= 0) /* made after the container: its ops are set */
        k->c.ops->close(k->c.ctx, k->kvm_dev_fd);
    if (k->c.fd >= 0)
        vfio_container_close(&k->c);
    free(k);
}

static const struct vfio_pci_transport kern_ops = {
    .name = "vfio",
    .region_read = k_read,
    .region_write = k_write,
    .set_irqs = k_set_irqs,
    .mmap = k_mmap,
    .destroy = k_destroy,
};

int vfio_pci_sysfs_group(const char *sysfs, char *group_path, size_t cap, struct errbuf *err)
{
    char link[PATH_MAX], target[PATH_MAX];
    snprintf(link, sizeof(link), "%s/iommu_group", sysfs);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n < 0)
        return err_set(err, WISP_EXIT_USAGE, errno,
                       "vfio device %s: no IOMMU group (%s: %s); is it a PCI device with an "
                       "IOMMU?",
                       sysfs, link, strerror(errno));
    target[n] = '\0';
    const char *g = strrchr(target, '/');
    g = g ? g + 1 : target;
    if (!g[0] || strspn(g, "0123456789") != strlen(g) || strlen(g) > 10)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "vfio device %s: odd IOMMU group '%s'", sysfs,
                       target);
    char num[12];
    memcpy(num, g, strlen(g) + 1); /* target is reused for the driver link */
    snprintf(link, sizeof(link), "%s/driver", sysfs);
    n = readlink(link, target, sizeof(target) - 1);
    const char *drv = NULL;
    if (n >= 0) {
        target[n] = '\0';
        drv = strrchr(target, '/');
        drv = drv ? drv + 1 : target;
    }
    if (!drv || strcmp(drv, "vfio-pci") != 0)
        return err_set(err, WISP_EXIT_USAGE, ENODEV,
                       "vfio device %s is bound to %s, not vfio-pci (bind it to vfio-pci first)",
                       sysfs, drv ? drv : "no driver");
    int w = snprintf(group_path, cap, "/dev/vfio/%s", num);
    if (w < 0 || (size_t)w >= cap)
        return err_set(err, WISP_EXIT_USAGE, ENAMETOOLONG, "vfio device %s: group path", sysfs);
    return 0;
}

/*
 * Resolve `sysfs`, open the container and the device and read region and
 * IRQ info.  With `h` (a VM): the kvm-vfio device, guest RAM mapped and a
 * device reset first; without (derive): none of those, nothing changes on
 * the device.  0 and *out, or -errno with `err`.
 */
static int kern_open(const struct vfio_pci_host *h, const char *id, const char *sysfs,
                     struct kern **out, struct vfio_pci_region *regions, unsigned irqs[3],
                     struct errbuf *err)
{
    char group[64];
    bool cdev = vfio_cdev_path(sysfs); /* /dev/vfio/devices/vfioN: iommufd */
    int ret = cdev ? 0 : vfio_pci_sysfs_group(sysfs, group, sizeof(group), err);
    if (ret < 0)
        return ret;
    const char *name = strrchr(sysfs, '/');
    name = name ? name + 1 : sysfs;
    struct kern *k = calloc(1, sizeof(*k));
    if (!k)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    k->c.fd = k->d.fd = k->kvm_dev_fd = -1;
    /* Derive (no `h`) always talks to the real kernel. */
    const struct vfio_sys_ops *sys = h ? h->sys : NULL;
    void *sys_ctx = h ? h->sys_ctx : NULL;
    if (cdev)
        ret = vfio_iommufd_open(&k->c, sys, sys_ctx, sysfs, err);
    else
        ret = vfio_container_open(&k->c, sys, sys_ctx, group, err);
    if (ret < 0)
        goto fail;
    if (h) {
        ret = vfio_kvm_create(h->sys, h->sys_ctx, h->vm_fd, &k->kvm_dev_fd, err);
        if (ret < 0)
            goto fail;
        /* kvm-vfio learns the group or cdev before the device is bound or taken (vfio.md §1.7). */
        ret = vfio_kvm_add_group(&k->c, k->kvm_dev_fd, err);
        if (ret < 0)
            goto fail;
    }
    if (cdev) {
        ret = vfio_iommufd_attach(&k->c, err);
        if (ret < 0)
            goto fail;
    }
    if (h) {
        ret = vfio_dma_map_gmem(&k->c, h->mem, err);
        if (ret < 0)
            goto fail;
    }
    ret = vfio_device_open(&k->d, &k->c, name, err);
    if (ret < 0)
        goto fail;
    /* A clean device: the guest's driver starts from reset state. */
    if (h && vfio_device_reset(&k->d) < 0)
        log_info("device %s: no VFIO reset; it starts as the host left it", id);

    memset(regions, 0, VFIO_PCI_NREGIONS * sizeof(*regions));
    for (unsigned i = 0; i < VFIO_PCI_NREGIONS && i < VFIO_MAX_REGIONS; i++) {
        const struct vfio_region *r = &k->d.regions[i];
        if (i >= k->d.num_regions)
            break;
        regions[i].size = r->size;
        regions[i].readable = r->flags & VFIO_REGION_INFO_FLAG_READ;
        regions[i].writable = r->flags & VFIO_REGION_INFO_FLAG_WRITE;
        regions[i].nareas = r->nareas < 16 ? r->nareas : 16;
        for (unsigned a = 0; a < regions[i].nareas; a++) {
            regions[i].areas[a].off = r->areas[a].offset;
            regions[i].areas[a].size = r->areas[a].size;
        }
    }
    irqs[0] = irqs[1] = irqs[2] = 0;
    for (unsigned i = 0; i < 3 && i < k->d.num_irqs; i++)
        irqs[i] = k->d.irqs[i].flags & VFIO_IRQ_INFO_EVENTFD ? k->d.irqs[i].count : 0;
    *out = k;
    return 0;
fail:
    k_destroy(k);
    return ret;
}

int vfio_pci_create_kernel(const struct vfio_pci_host *h, const char *id, const char *sysfs,
                           const struct vfio_pci_layout *lay, unsigned devfn, struct vfio_pci **out,
                           struct errbuf *err)
{
    struct kern *k;
    struct vfio_pci_region regions[VFIO_PCI_NREGIONS];
    unsigned irqs[3];
    int ret = kern_open(h, id, sysfs, &k, regions, irqs, err);
    if (ret < 0)
        return ret;
    return vfio_pci_create(h, id, &kern_ops, k, regions, irqs, lay, devfn, out, err);
}

int vfio_pci_derive_kernel(const char *sysfs, struct vpci_layout *out, struct errbuf *err)
{
    struct kern *k;
    struct vfio_pci_region regions[VFIO_PCI_NREGIONS];
    unsigned irqs[3];
    int ret = kern_open(NULL, "derive", sysfs, &k, regions, irqs, err);
    if (ret < 0)
        return ret;
    return vfio_pci_derive(&kern_ops, k, regions, irqs, out, err);
}
