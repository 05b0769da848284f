/* Device manager (see devmgr.h). */
#include "vmm/devmgr.h"
#include "arch/arch.h"
#include "devices/backends/chardev.h"
#include "devices/vfio/vfio_pci.h"
#include "devices/vhost/vdpa_dp.h"
#include "devices/vhost/vhost_user_dp.h"
#include "devices/vhost/vhost_vsock.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/console.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/balloon.h"
#include "devices/virtio/virtio_dp.h"
#include "devices/virtio/vsock.h"
#include "vmm/kvm.h"
#include "vmm/log.h"
#include "vmm/metrics.h"
#include "sandbox/sandbox.h"
#include "vmm/vm.h"

#include <errno.h>
#include <sys/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- host services handed to the transports ------------------------------- */

static int host_ioeventfd(void *opaque, uint64_t addr, uint32_t datamatch, int fd, bool assign)
{
    return kvm_ioeventfd(opaque, addr, 4, datamatch, fd, assign);
}

static int host_irqfd(void *opaque, unsigned gsi, int *fd)
{
    struct errbuf tmp = {0};
    int ret = kvm_irqfd_create(opaque, gsi, fd, &tmp);
    if (ret < 0)
        log_error("%s", tmp.msg);
    return ret;
}

int devmgr_plan(struct vm *vm, char **cmdline, struct errbuf *err)
{
    const struct vm_config *cfg = vm->cfg;
    struct devmgr *dm = calloc(1, sizeof(*dm));
    if (!dm)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    vm->devs = dm;

    const char *user = cfg->cmdline ? cfg->cmdline : "";
    size_t cap = strlen(user) + 1 + cfg->ndevices * 64;
    char *line = malloc(cap);
    if (!line)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    size_t off = (size_t)snprintf(line, cap, "%s", user);
    unsigned nvirtio = 0;
    for (unsigned i = 0; i < cfg->ndevices; i++) {
        struct devmgr_entry *e = &dm->dev[i];
        e->spec = &cfg->devices[i];
        dm->n = i + 1;
        if (DEV_IS_PCI(e->spec->type))
            continue; /* on the PCI bus, not in a virtio slot */
        if (arch_virtio_slot(nvirtio++, &e->base, &e->gsi) < 0) {
            free(line);
            return err_set(err, WISP_EXIT_USAGE, ENOSPC, "too many devices: no slot for %s",
                           e->spec->id);
        }
        if (!arch_virtio_on_cmdline(cfg))
            continue;
        char frag[64];
        int n = virtio_mmio_cmdline(e->base, e->gsi, frag, sizeof(frag));
        if (n < 0 || (size_t)n >= sizeof(frag)) {
            free(line);
            return err_set(err, WISP_EXIT_FAILURE, EINVAL, "internal: command line fragment");
        }
        off += (size_t)snprintf(line + off, cap - off, "%s%s", off ? " " : "", frag);
    }
    *cmdline = line;
    return 0;
}

/* Input filter of a stdio console: the VM's terminal escape. */
static size_t console_escape(void *ctx, uint8_t *buf, size_t len)
{
    return vm_filter_input(ctx, buf, len);
}

static int create_model(struct vm *vm, const struct device_spec *s, struct virtio_dev **out,
                        struct errbuf *err)
{
    switch (s->type) {
    case DEV_BLK: {
        if (s->socket) { /* the queues are served by a vhost-user backend */
            void *dp;
            int ret = vhu_dp_create(s->socket, &vm->mem, 0, NULL, 0, true, &dp, err);
            if (ret < 0)
                return ret;
            return virtio_dp_create(&virtio_dp_blk, s->id, &vhu_dp_ops, dp, &vm->mem, &vm->loop,
                                    out, err);
        }
        struct virtio_blk_config c = {.id = s->id, .path = s->path, .read_only = s->readonly};
        return virtio_blk_create(&c, &vm->mem, &vm->loop, out, err);
    }
    case DEV_NET: {
        if (s->socket) { /* rx and tx served by a vhost-user backend (e.g. DPDK's net_vhost) */
            uint8_t mac[6], cfg[VIRTIO_NET_DP_CONFIG_SIZE];
            if (s->has_mac) {
                memcpy(mac, s->mac, 6);
            } else if (getrandom(mac, 6, 0) != 6) {
                return err_set(err, WISP_EXIT_HOST, errno, "net %s: getrandom: %s", s->id,
                               strerror(errno));
            } else {
                mac[0] = (uint8_t)((mac[0] & 0xfc) | 0x02); /* unicast, locally administered */
            }
            virtio_dp_net_config(mac, cfg);
            void *dp;
            int ret = vhu_dp_create(s->socket, &vm->mem, 0, cfg, sizeof(cfg), false, &dp, err);
            if (ret < 0)
                return ret;
            return virtio_dp_create(&virtio_dp_net, s->id, &vhu_dp_ops, dp, &vm->mem, &vm->loop,
                                    out, err);
        }
        struct virtio_net_config c = {.id = s->id, .tap = s->tap, .has_mac = s->has_mac};
        memcpy(c.mac, s->mac, sizeof(c.mac));
        return virtio_net_create(&c, &vm->mem, &vm->loop, out, err);
    }
    case DEV_RNG: {
        struct virtio_rng_config c = {.id = s->id};
        return virtio_rng_create(&c, &vm->mem, &vm->loop, out, err);
    }
    case DEV_BALLOON: {
        struct balloon_config c = {
            .id = s->id,
            .amount_mib = s->amount_mib,
            .deflate_on_oom = s->deflate_on_oom,
            .stats_interval_s = s->stats_interval_s,
            .free_page_reporting = s->free_page_reporting,
        };
        return balloon_create(&c, &vm->mem, &vm->loop, out, err);
    }
    case DEV_VSOCK: {
        if (s->vhost) { /* rx and tx served by the kernel's vhost-vsock */
            void *dp;
            int ret = vhv_create(NULL, s->cid, &vm->mem, NULL, NULL, &dp, err);
            if (ret < 0)
                return ret;
            return virtio_dp_create(&virtio_dp_vsock, s->id, &vhv_dp_ops, dp, &vm->mem, &vm->loop,
                                    out, err);
        }
        struct virtio_vsock_config c = {.id = s->id, .guest_cid = s->cid, .uds_path = s->socket};
        return virtio_vsock_create(&c, &vm->mem, &vm->loop, out, err);
    }
    case DEV_VFIO:
    case DEV_VFIO_USER:
        break; /* create_pci() */
    case DEV_VDPA:
        break;     /* create_vdpa() */
    case DEV_FS: { /* virtiofsd has no config space: wisp builds it from the tag */
        uint8_t cfg[VIRTIO_FS_CONFIG_SIZE];
        if (virtio_dp_fs_config(s->tag, cfg) < 0)
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "fs tag must be 1 to 36 bytes");
        void *dp;
        int ret = vhu_dp_create(s->socket, &vm->mem, 0, cfg, sizeof(cfg), false, &dp, err);
        if (ret < 0)
            return ret;
        return virtio_dp_create(&virtio_dp_fs, s->id, &vhu_dp_ops, dp, &vm->mem, &vm->loop, out,
                                err);
    }
    case DEV_CONSOLE: {
        struct virtio_console_config c = {
            .id = s->id,
            .mode = s->socket ? VIRTIO_CONSOLE_SOCKET : VIRTIO_CONSOLE_STDIO,
            .socket_path = s->socket,
        };
        if (s->socket)
            return virtio_console_create(&c, &vm->mem, &vm->loop, out, err);
        /* On stdio the VMM owns the terminal: raw mode (vm_run) and the
         * Ctrl-A escape, filtered before the device sees the input. */
        struct chardev *cd;
        int ret = chardev_open_stdio(&cd, err);
        if (ret < 0)
            return ret;
        chardev_set_input_filter(cd, console_escape, vm);
        return virtio_console_create_with_chardev(&c, cd, &vm->mem, &vm->loop, out, err);
    }
    }
    return err_set(err, WISP_EXIT_USAGE, EINVAL, "unknown device type %d", (int)s->type);
}

/* A vDPA device's worker, first thing: its own seccomp role (docs/SECURITY.md). */
static int vdpa_worker_enter(void)
{
    struct errbuf err = {0};
    int ret = sandbox_enter(SANDBOX_VDPA, &err);
    if (ret < 0)
        log_error("%s", err.msg);
    return ret;
}

/* --device vdpa: the device model for the type the vDPA device reports, over it. */
static int create_vdpa(struct vm *vm, struct devmgr_entry *e, struct errbuf *err)
{
    const struct device_spec *s = e->spec;
    struct vdpa_dp_env env = {.enter = vdpa_worker_enter};
    void *dp;
    uint32_t type;
    int ret = vdpa_dp_create(s->path, &env, &vm->mem, &dp, &type, err);
    if (ret < 0)
        return ret;
    const struct virtio_dp_type *t = type == VIRTIO_ID_BLOCK ? &virtio_dp_blk : NULL;
    const struct vdpa_dev *d = vdpa_dp_dev(dp);
    if (!t)
        ret = err_set(err, WISP_EXIT_USAGE, ENOTSUP,
                      "vdpa %s: a virtio-%s device (type %u); wisp serves only blk over vDPA",
                      s->path, vdpa_type_name(type), type);
    else if (d->vring_max < t->ops->queue_max_size)
        ret = err_set(err, WISP_EXIT_HOST, ENOTSUP,
                      "vdpa %s: queues of at most %u entries; the %s transport offers %u", s->path,
                      d->vring_max, t->ops->type, t->ops->queue_max_size);
    if (ret < 0) {
        vdpa_dp_ops.destroy(dp);
        return ret;
    }
    ret = virtio_dp_create(t, s->id, &vdpa_dp_ops, dp, &vm->mem, &vm->loop, &e->dev, err);
    if (ret == 0)
        e->vdpa = dp;
    return ret;
}

int devmgr_start_threads(struct vm *vm, struct errbuf *err)
{
    struct devmgr *dm = vm->devs;
    for (unsigned i = 0; dm && i < dm->n; i++) {
        if (!dm->dev[i].vdpa)
            continue;
        int ret = vdpa_dp_start_worker(dm->dev[i].vdpa, err);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* Passthrough functions: on the PCI bus from 00:01.0 up, then BARs assigned again. */
/* Load the device's layout= file, if any, into *out (malloc'd, or NULL). */
static int devmgr_layout_load(const struct device_spec *s, struct vpci_layout **out,
                              struct errbuf *err)
{
    *out = NULL;
    if (!s->layout)
        return 0;
    struct vpci_layout *l = malloc(sizeof(*l));
    if (!l)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    int ret = vpci_layout_load(s->layout, l, err);
    if (ret < 0) {
        free(l);
        return ret;
    }
    *out = l;
    return 0;
}

static int create_pci(struct vm *vm, struct errbuf *err)
{
    struct devmgr *dm = vm->devs;
    struct pci_bus *bus = arch_pci_bus(vm->arch);
    struct vfio_pci_host h = {
        .bus = bus,
        .routing = arch_irq_routing(vm->arch),
        .vm_fd = vm->vm_fd,
        .svc = &vm->svc,
        .mem = &vm->mem,
        .win = {ARCH_MSI_WINDOW_BASE, ARCH_MSI_WINDOW_SIZE},
    };
    unsigned dev = 1, npci = 0;
    for (unsigned i = 0; i < dm->n; i++) {
        struct devmgr_entry *e = &dm->dev[i];
        const struct device_spec *s = e->spec;
        if (!DEV_IS_PCI(s->type))
            continue;
        if (!bus) /* config_validate refuses this */
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "device %s needs --pci on", s->id);
        if (dev >= PCI_DEVICES)
            return err_set(err, WISP_EXIT_USAGE, ENOSPC, "too many PCI devices");
        struct vpci_layout *l;
        int ret = devmgr_layout_load(s, &l, err);
        if (ret < 0)
            return ret;
        struct vfio_pci_layout lay = {.layout = l, .name = s->layout};
        ret =
            s->type == DEV_VFIO
                ? vfio_pci_create_kernel(&h, s->id, s->path, &lay, PCI_DEVFN(dev, 0), &e->pci, err)
                : vfio_pci_create_user(&h, s->id, s->socket, &lay, PCI_DEVFN(dev, 0), &e->pci, err);
        free(l); /* vpci copied what it needs */
        if (ret < 0)
            return ret;
        dev++;
        npci++;
    }
    return npci ? pci_bus_assign(bus, err) : 0;
}

int devmgr_create(struct vm *vm, struct errbuf *err)
{
    struct devmgr *dm = vm->devs;
    dm->host = (struct virtio_mmio_host){
        .opaque = vm,
        .loop = &vm->loop,
        .mmio_bus = &vm->mmio,
        .ioeventfd = host_ioeventfd,
        .irqfd = host_irqfd,
    };
    int ret = create_pci(vm, err);
    if (ret < 0)
        return ret;
    for (unsigned i = 0; i < dm->n; i++) {
        struct devmgr_entry *e = &dm->dev[i];
        if (DEV_IS_PCI(e->spec->type))
            continue;
        ret = e->spec->type == DEV_VDPA ? create_vdpa(vm, e, err)
                                        : create_model(vm, e->spec, &e->dev, err);
        if (ret < 0)
            return ret;
        e->dev->metrics = metrics_dev_register(e->dev->ops->type, e->spec->id);
        ret = virtio_mmio_create(e->dev, &dm->host, e->base, e->gsi, &e->mmio, err);
        if (ret < 0)
            return ret;
        log_info("device %s: virtio-%s at 0x%llx, GSI %u", e->spec->id, e->dev->ops->type,
                 (unsigned long long)e->base, e->gsi);
    }
    return 0;
}

void devmgr_destroy(struct vm *vm)
{
    struct devmgr *dm = vm->devs;
    if (!dm)
        return;
    for (unsigned i = dm->n; i-- > 0;) {
        struct devmgr_entry *e = &dm->dev[i];
        vfio_pci_destroy(e->pci);
        e->pci = NULL;
        if (e->mmio)
            virtio_mmio_destroy(e->mmio);
        e->mmio = NULL;
        if (e->dev && e->dev->ops->destroy)
            e->dev->ops->destroy(e->dev);
        e->dev = NULL;
    }
    free(dm);
    vm->devs = NULL;
}
