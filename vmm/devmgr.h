/*
 * Device manager: turns the configured --device list into virtio devices on
 * virtio-mmio transports.  It decides each device's slot (MMIO window and
 * interrupt line, from the architecture), describes the devices on the
 * kernel command line, creates device models and transports, and gives the
 * transports the KVM services they need (ioeventfd, irqfd) without letting
 * device code issue KVM ioctls.
 */
#ifndef VMM_DEVMGR_H
#define VMM_DEVMGR_H

#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "vmm/config.h"
#include "vmm/error.h"

struct vm;
struct vfio_pci;

struct devmgr_entry {
    const struct device_spec *spec;
    uint64_t base; /* MMIO window */
    unsigned gsi;
    struct virtio_dev *dev;
    struct virtio_mmio *mmio;
    struct vfio_pci *pci; /* a passthrough function (DEV_IS_PCI) instead of the above */
    void *vdpa;           /* DEV_VDPA: its data plane (devices/vhost/vdpa_dp.h), owned by dev */
};

struct devmgr {
    unsigned n;
    struct devmgr_entry dev[CONFIG_MAX_DEVICES];
    struct virtio_mmio_host host;
};

/*
 * Assign slots to the configured devices and build the guest command line:
 * the user's command line followed by one "virtio_mmio.device=" token per
 * device.  *cmdline is malloc'd.  Nothing is opened yet.
 */
int devmgr_plan(struct vm *vm, char **cmdline, struct errbuf *err) __must_check;

/* Open backends, create the device models and their transports. */
int devmgr_create(struct vm *vm, struct errbuf *err) __must_check;

/*
 * Start the devices' own threads (a vDPA device's worker).  vm_run calls it
 * once the sandbox is prepared and Landlock applies, before the vCPUs run
 * and before the main thread's filter, so each thread inherits Landlock and
 * then enters its own seccomp role.  0 or -errno with `err` set.
 */
int devmgr_start_threads(struct vm *vm, struct errbuf *err) __must_check;

/* Tear down transports, then devices.  vCPUs must be stopped.  Safe if partly created. */
void devmgr_destroy(struct vm *vm);

#endif /* VMM_DEVMGR_H */
