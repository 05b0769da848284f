/*
 * aarch64 implementation of arch.h: a "virt"-shaped board on KVM/arm64.
 * The in-kernel GICv3 and architected timer, PSCI handled by KVM (CPU_ON,
 * SYSTEM_OFF and SYSTEM_RESET reach wisp as KVM_EXIT_SYSTEM_EVENT, which
 * the generic vCPU loop already turns into a stop), a 16550 on MMIO and the
 * virtio-mmio slots, all described by the device tree (loader.c, fdt.c).
 */
#include "arch/arch.h"
#include "arch/aarch64/arch_internal.h"
#include "arch/common/arch_files.h"
#include "arch/aarch64/layout.h"
#include "devices/legacy/debug_exit.h"
#include "devices/legacy/serial.h"
#include "devices/virtio/mmio.h"
#include "vmm/config.h"
#include "vmm/irq_routing.h"
#include "vmm/kvm.h"
#include "vmm/log.h"
#include "vmm/services.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define A64_MIN_MEMORY (16 * MiB)

unsigned arch_max_vcpus(void)
{
    return A64_MAX_VCPUS;
}

uint64_t arch_min_memory(void)
{
    return A64_MIN_MEMORY;
}

int arch_virtio_slot(unsigned index, uint64_t *base, unsigned *gsi)
{
    if (index >= CONFIG_MAX_DEVICES)
        return -ENOSPC;
    *base = A64_VIRTIO_BASE + (uint64_t)index * VIRTIO_MMIO_WINDOW;
    *gsi = A64_VIRTIO_SPI_FIRST + index;
    return 0;
}

_Static_assert(A64_VIRTIO_SPI_FIRST + CONFIG_MAX_DEVICES <= A64_GIC_NR_IRQS - 32,
               "every virtio SPI exists on the VGIC");

unsigned arch_virtio_slots(const struct vm_config *cfg)
{
    (void)cfg;
    return CONFIG_MAX_DEVICES;
}

bool arch_virtio_on_cmdline(const struct vm_config *cfg)
{
    (void)cfg;
    return false; /* the device tree describes them */
}

int arch_ram_layout(uint64_t mem_size, struct gmem_range *out, unsigned *n, struct errbuf *err)
{
    if (*n < 1)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "internal: layout needs 1 range");
    out[0] = (struct gmem_range){A64_RAM_BASE, mem_size};
    *n = 1;
    return 0;
}

/* Set one VGIC attribute; `what` names it in errors. */
static int vgic_set(int fd, uint32_t group, uint64_t attr, const void *val, const char *what,
                    struct errbuf *err)
{
    struct kvm_device_attr a = {.group = group, .attr = attr, .addr = (uint64_t)(uintptr_t)val};
    if (ioctl(fd, KVM_SET_DEVICE_ATTR, &a) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "VGICv3 %s: %s", what, strerror(errno));
    return 0;
}

/* The in-kernel GICv3: created now, initialised once every vCPU exists. */
static int vgic_create(struct arch_vm *a, struct errbuf *err)
{
    struct kvm_create_device cd = {.type = KVM_DEV_TYPE_ARM_VGIC_V3};
    if (ioctl(a->host.vm_fd, KVM_CREATE_DEVICE, &cd) < 0)
        return err_set(err, WISP_EXIT_HOST, errno,
                       "cannot create the in-kernel GICv3 (KVM_CREATE_DEVICE): %s",
                       strerror(errno));
    a->vgic_fd = (int)cd.fd;
    uint64_t dist = A64_GICD_BASE, redist = A64_GICR_BASE;
    uint32_t nr_irqs = A64_GIC_NR_IRQS;
    int ret = vgic_set(a->vgic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, &dist,
                       "distributor address", err);
    if (ret == 0)
        ret = vgic_set(a->vgic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, &redist,
                       "redistributor address", err);
    if (ret == 0)
        ret =
            vgic_set(a->vgic_fd, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, &nr_irqs, "interrupt count", err);
    return ret;
}

int arch_vm_init(const struct arch_host *host, struct arch_vm **out, struct errbuf *err)
{
    struct arch_vm *a = *out = calloc(1, sizeof(*a));
    if (!a)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    a->host = *host;
    a->serial_irqfd = a->serial_out_fd = a->vgic_fd = -1;
    a->irq_routing = irq_routing_new();
    if (!a->irq_routing)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    return vgic_create(a, err);
}

/* ---- built-in devices --------------------------------------------------- */

static void serial_irq(void *opaque)
{
    struct arch_vm *a = opaque;
    kvm_irq_pulse(a->serial_irqfd);
}

static void debug_exit_cb(void *opaque, uint8_t value)
{
    const struct vm_services *svc = ((struct arch_vm *)opaque)->host.svc;
    log_info("guest wrote %u to the debug-exit register", value);
    svc->request_stop(svc->ctx, VM_STOP_DEBUG_EXIT, value);
}

int arch_create_devices(struct arch_vm *a, struct errbuf *err)
{
    const struct vm_services *svc = a->host.svc;
    int ret = archf_open_serial_output(a->host.cfg, &a->serial_out_fd, &a->serial_out_owned, err);
    if (ret < 0)
        return ret;
    ret = svc->irqfd_create(svc->ctx, A64_UART_SPI, &a->serial_irqfd, err);
    if (ret < 0)
        return ret;
    a->serial = serial_create(a->serial_out_fd, serial_irq, a);
    if (!a->serial)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "cannot create serial device");
    /* The same 16550 as COM1, its eight byte-wide registers on MMIO. */
    svc->register_mmio(svc->ctx, A64_UART_BASE, SERIAL_PORT_LEN, "uart", serial_pio_read,
                       serial_pio_write, a->serial);
    if (a->host.cfg->debug_exit) {
        a->debug_exit = debug_exit_create(debug_exit_cb, a);
        if (!a->debug_exit)
            return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "cannot create debug-exit device");
        svc->register_mmio(svc->ctx, A64_DEBUG_EXIT_BASE, A64_DEBUG_EXIT_LEN, "debug-exit",
                           debug_exit_pio_read, debug_exit_pio_write, a->debug_exit);
    }
    return 0;
}

struct serial *arch_serial(const struct arch_vm *a)
{
    return a ? a->serial : NULL;
}

int arch_send_ctrl_alt_del(struct arch_vm *a)
{
    (void)a;
    return -ENOTSUP; /* no PS/2 keyboard on this board */
}

int arch_load_guest(struct arch_vm *a, const char *cmdline, struct errbuf *err)
{
    return a64_load(a, cmdline ? cmdline : "", err);
}

/* ---- vCPUs -------------------------------------------------------------- */

static int set_core_reg(int vcpu_fd, uint64_t off, uint64_t val, struct errbuf *err)
{
    struct kvm_one_reg r = {.id = KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE |
                                  (off / sizeof(uint32_t)),
                            .addr = (uint64_t)(uintptr_t)&val};
    if (ioctl(vcpu_fd, KVM_SET_ONE_REG, &r) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "KVM_SET_ONE_REG (core register): %s",
                       strerror(errno));
    return 0;
}

int arch_vcpu_init(struct arch_vm *a, int vcpu_fd, unsigned index, struct errbuf *err)
{
    struct kvm_vcpu_init init;
    memset(&init, 0, sizeof(init));
    if (ioctl(a->host.vm_fd, KVM_ARM_PREFERRED_TARGET, &init) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "KVM_ARM_PREFERRED_TARGET: %s", strerror(errno));
    /* PSCI 0.2+ in the kernel; the secondaries wait, off, for CPU_ON. */
    init.features[0] |= 1U << KVM_ARM_VCPU_PSCI_0_2;
    if (index > 0)
        init.features[0] |= 1U << KVM_ARM_VCPU_POWER_OFF;
    if (ioctl(vcpu_fd, KVM_ARM_VCPU_INIT, &init) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "KVM_ARM_VCPU_INIT on vCPU %u: %s", index,
                       strerror(errno));
    int ret = 0;
    /* Boot protocol: x0 = the tree, x1..x3 = 0, at the Image's first byte;
     * KVM's reset state is EL1h with DAIF masked and the MMU off. */
    if (index == 0 && a->guest_loaded) {
        ret = set_core_reg(vcpu_fd, offsetof(struct kvm_regs, regs.pc), a->entry, err);
        if (ret == 0)
            ret = set_core_reg(vcpu_fd, offsetof(struct kvm_regs, regs.regs[0]), a->fdt_gpa, err);
    }
    /* The VGIC is initialised once every vCPU exists (the last one is here). */
    if (ret == 0 && index + 1 == a->host.cfg->vcpus)
        ret = vgic_set(a->vgic_fd, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL,
                       "initialisation (CTRL_INIT)", err);
    return ret;
}

void arch_vm_destroy(struct arch_vm *a)
{
    if (!a)
        return;
    a64_mig_free(a);
    if (a->debug_exit)
        debug_exit_destroy(a->debug_exit);
    if (a->serial)
        serial_destroy(a->serial);
    if (a->serial_irqfd >= 0)
        close(a->serial_irqfd);
    if (a->serial_out_owned && a->serial_out_fd >= 0)
        close(a->serial_out_fd);
    if (a->vgic_fd >= 0)
        close(a->vgic_fd);
    irq_routing_free(a->irq_routing);
    free(a);
}

struct pci_bus *arch_pci_bus(struct arch_vm *a)
{
    (void)a;
    return NULL;
}

struct irq_routing *arch_irq_routing(struct arch_vm *a)
{
    return a->irq_routing;
}
