/*
 * x86_64 implementation of arch.h: the PC-like parts of a microVM.  Glue
 * between the VM core and the x86 modules (loaders, CPU setup, legacy
 * devices); the policy lives in those modules, not here.
 */
#include "arch/arch.h"
#include "arch/x86_64/arch_internal.h"
#include "arch/common/arch_files.h"
#include "arch/x86_64/acpi.h"
#include "arch/x86_64/boot.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/cpuid.h"
#include "arch/x86_64/irqmap.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/cpu_template.h"
#include "arch/x86_64/mptable.h"
#include "arch/x86_64/msr.h"
#include "arch/x86_64/pci_host.h"
#include "devices/legacy/acpi_pm.h"
#include "devices/virtio/mmio.h"
#include "devices/legacy/debug_exit.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial.h"
#include "vmm/config.h"
#include "vmm/irq_routing.h"
#include "vmm/kvm.h"
#include "vmm/log.h"
#include "vmm/services.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define X86_MAX_VCPUS  254 /* xAPIC ids 0..253 for CPUs; 255 is broadcast (see mptable.h) */
#define X86_MIN_MEMORY (16 * MiB)

unsigned arch_max_vcpus(void)
{
    return X86_MAX_VCPUS;
}

uint64_t arch_min_memory(void)
{
    return X86_MIN_MEMORY;
}

/*
 * Interrupt lines for virtio-mmio devices, one per device, edge-triggered
 * (what an irqfd pulse delivers) and never shared.  First the ISA lines no
 * PC device uses: not the PIT (0), i8042 (1, 12), cascade (2), COM2/COM1
 * (3, 4), RTC (8), FPU (13); irqmap.h wires ISA IRQ n to IOAPIC pin n for
 * these, and with --acpi off they are all the kernel command line can name,
 * because Linux maps a bare IRQ number to a pin only for ISA IRQs the MP
 * table lists.  With ACPI the DSDT gives each device its GSI directly, so
 * the IOAPIC's other pins, 16..23, serve eight more.  KVM's in-kernel IOAPIC
 * has 24 pins and no second IOAPIC, hence 16 devices; more would need shared
 * level-triggered lines or MSI (virtio-pci).
 */
static const unsigned virtio_gsis[] = {5, 6, 7, 9, 10, 11, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23};
#define VIRTIO_ISA_SLOTS 8U
_Static_assert(sizeof(virtio_gsis) / sizeof(virtio_gsis[0]) <= CONFIG_MAX_DEVICES,
               "every slot fits the configuration");

int arch_virtio_slot(unsigned index, uint64_t *base, unsigned *gsi)
{
    if (index >= ARRAY_SIZE(virtio_gsis))
        return -ENOSPC;
    *base = X86_VIRTIO_MMIO_BASE + (uint64_t)index * VIRTIO_MMIO_WINDOW;
    *gsi = virtio_gsis[index];
    return 0;
}

_Static_assert(X86_PCI_INTX_GSI + X86_PCI_INTX_GSIS == X86_IOAPIC_PINS &&
                   ARRAY_SIZE(virtio_gsis) - X86_PCI_INTX_GSIS > VIRTIO_ISA_SLOTS,
               "PCI INTx takes the last virtio slots' GSIs (20-23), never an ISA slot's");

unsigned arch_virtio_slots(const struct vm_config *cfg)
{
    if (!cfg->acpi)
        return VIRTIO_ISA_SLOTS;
    /* With PCI on, the last four GSIs carry PCI INTx (pci_host.h). */
    return (unsigned)ARRAY_SIZE(virtio_gsis) - (cfg->pci ? X86_PCI_INTX_GSIS : 0);
}

bool arch_virtio_on_cmdline(const struct vm_config *cfg)
{
    return !cfg->acpi;
}

/* KVM's IOAPIC resets to id 0; give it the id the MP table names (x86_ioapic_id). */
static int set_ioapic_id(int vm_fd, unsigned id, struct errbuf *err)
{
    struct kvm_irqchip chip;
    memset(&chip, 0, sizeof(chip));
    chip.chip_id = KVM_IRQCHIP_IOAPIC;
    if (ioctl(vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "KVM_GET_IRQCHIP (IOAPIC): %s", strerror(errno));
    chip.chip.ioapic.id = (uint8_t)id;
    if (ioctl(vm_fd, KVM_SET_IRQCHIP, &chip) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "KVM_SET_IRQCHIP (IOAPIC): %s", strerror(errno));
    return 0;
}

/*
 * Replace KVM's default GSI routing with the wiring the MP table describes
 * (irqmap.h): KVM's default puts the PIT on IOAPIC pin 0, the table and
 * every PC on pin 2.  vm->irq_routing stays for later routes (MSI).
 */
static int install_irq_routing(struct arch_vm *a, struct errbuf *err)
{
    a->irq_routing = irq_routing_new();
    if (!a->irq_routing)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    int ret = x86_irq_routing_default(a->irq_routing);
    if (ret < 0)
        return err_set(err, WISP_EXIT_FAILURE, -ret, "internal: bad default GSI routing: %s",
                       strerror(-ret));
    ret = irq_routing_commit(a->irq_routing, a->host.vm_fd);
    if (ret < 0)
        return err_set(err, WISP_EXIT_HOST, -ret, "KVM_SET_GSI_ROUTING: %s", strerror(-ret));
    return 0;
}

int arch_ram_layout(uint64_t mem_size, struct gmem_range *out, unsigned *n, struct errbuf *err)
{
    if (*n < 2)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "internal: layout needs 2 ranges");
    /* RAM runs up to the 32-bit MMIO hole; the rest continues at 4 GiB. */
    uint64_t low = MIN(mem_size, X86_MMIO_HOLE_START);
    out[0] = (struct gmem_range){0, low};
    *n = 1;
    if (mem_size > low) {
        out[1] = (struct gmem_range){X86_MMIO_HOLE_END, mem_size - low};
        *n = 2;
    }
    return 0;
}

int arch_vm_init(const struct arch_host *host, struct arch_vm **out, struct errbuf *err)
{
    struct arch_vm *a = *out = calloc(1, sizeof(*a));
    if (!a)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    a->host = *host;
    a->serial_irqfd = a->serial_out_fd = a->i8042_irqfd = -1;
    int vm_fd = host->vm_fd;

    /* VMX needs three pages for the real-mode TSS and one for the identity
     * map; both sit in the MMIO hole, where they cannot hide guest RAM. */
    if (ioctl(vm_fd, KVM_SET_TSS_ADDR, (unsigned long)X86_KVM_TSS_GPA) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "KVM_SET_TSS_ADDR: %s", strerror(errno));
    uint64_t ident = X86_KVM_IDENTITY_GPA;
    if (ioctl(vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "KVM_SET_IDENTITY_MAP_ADDR: %s",
                       strerror(errno));
    /* In-kernel PIC, IOAPIC and local APICs, and the PIT: interrupt delivery
     * and timers never leave the kernel. */
    if (ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
    int ret = set_ioapic_id(vm_fd, x86_ioapic_id(host->cfg->vcpus), err);
    if (ret < 0)
        return ret;
    ret = install_irq_routing(a, err);
    if (ret < 0)
        return ret;
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(vm_fd, KVM_CREATE_PIT2, &pit) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "KVM_CREATE_PIT2: %s", strerror(errno));

    ret = x86_cpu_policy_parse(host->cfg->cpu_features, &a->policy, err);
    if (ret < 0)
        return ret;
    ret = x86_cpuid_get_supported(host->kvm_fd, &a->supported, err);
    if (ret < 0)
        return ret;
    /* A template hides what is not on its list; --cpu-features may hide more. */
    struct x86_cpu_policy tp;
    ret = x86_cpu_template_policy(host->cfg->cpu_template, a->supported, &tp, err);
    if (ret < 0)
        return ret;
    for (unsigned i = 0; i < X86_CPU_POLICY_WORDS; i++)
        a->policy.hidden[i] |= tp.hidden[i];
    return 0;
}

/* ---- built-in devices --------------------------------------------------- */

static void serial_irq(void *opaque)
{
    struct arch_vm *a = opaque;
    kvm_irq_pulse(a->serial_irqfd);
}

static void i8042_irq_cb(void *opaque)
{
    struct arch_vm *a = opaque;
    kvm_irq_pulse(a->i8042_irqfd);
}

static void i8042_reset_cb(void *opaque)
{
    const struct vm_services *svc = ((struct arch_vm *)opaque)->host.svc;
    log_info("guest reset through the i8042 controller");
    svc->request_stop(svc->ctx, VM_STOP_RESET, WISP_EXIT_OK);
}

static void debug_exit_cb(void *opaque, uint8_t value)
{
    const struct vm_services *svc = ((struct arch_vm *)opaque)->host.svc;
    log_info("guest wrote %u to the debug-exit port", value);
    svc->request_stop(svc->ctx, VM_STOP_DEBUG_EXIT, value);
}

static void acpi_poweroff_cb(void *opaque)
{
    const struct vm_services *svc = ((struct arch_vm *)opaque)->host.svc;
    svc->request_stop(svc->ctx, VM_STOP_POWEROFF, WISP_EXIT_OK);
}

static void acpi_reset_cb(void *opaque)
{
    const struct vm_services *svc = ((struct arch_vm *)opaque)->host.svc;
    svc->request_stop(svc->ctx, VM_STOP_RESET, WISP_EXIT_OK);
}

/* The FADT's three registers are the acpi_pm block, in its order. */
_Static_assert(X86_ACPI_SLEEP_STS_PORT == X86_ACPI_SLEEP_CTL_PORT + ACPI_PM_SLEEP_STS &&
                   X86_ACPI_RESET_PORT == X86_ACPI_SLEEP_CTL_PORT + ACPI_PM_RESET &&
                   X86_ACPI_SLP_EN == ACPI_PM_SLP_EN &&
                   X86_ACPI_SLP_TYP_SHIFT == ACPI_PM_SLP_TYP_SHIFT,
               "FADT registers and the acpi_pm block agree");

static const struct acpi_pm_ops acpi_pm_ops = {.poweroff = acpi_poweroff_cb,
                                               .reset = acpi_reset_cb};

int arch_create_devices(struct arch_vm *a, struct errbuf *err)
{
    const struct vm_services *svc = a->host.svc;
    int ret = archf_open_serial_output(a->host.cfg, &a->serial_out_fd, &a->serial_out_owned, err);
    if (ret < 0)
        return ret;
    ret = svc->irqfd_create(svc->ctx, X86_COM1_IRQ, &a->serial_irqfd, err);
    if (ret < 0)
        return ret;
    a->serial = serial_create(a->serial_out_fd, serial_irq, a);
    if (!a->serial)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "cannot create serial device");
    svc->register_pio(svc->ctx, X86_COM1_PORT, 8, "com1", serial_pio_read, serial_pio_write,
                      a->serial);

    ret = svc->irqfd_create(svc->ctx, X86_I8042_IRQ, &a->i8042_irqfd, err);
    if (ret < 0)
        return ret;
    static const struct i8042_ops i8042_ops = {.reset = i8042_reset_cb, .irq = i8042_irq_cb};
    a->i8042 = i8042_create(&i8042_ops, a);
    if (!a->i8042)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "cannot create i8042 device");
    svc->register_pio(svc->ctx, X86_I8042_DATA_PORT, 1, "i8042-data", i8042_data_read,
                      i8042_data_write, a->i8042);
    svc->register_pio(svc->ctx, X86_I8042_CMD_PORT, 1, "i8042-cmd", i8042_cmd_read, i8042_cmd_write,
                      a->i8042);

    if (a->host.cfg->acpi) {
        /* The FADT's sleep control, sleep status and reset registers. */
        a->acpi_pm = acpi_pm_create(&acpi_pm_ops, a, X86_ACPI_S5_SLP_TYP, X86_ACPI_RESET_VALUE);
        if (!a->acpi_pm)
            return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "cannot create ACPI PM registers");
        svc->register_pio(svc->ctx, X86_ACPI_SLEEP_CTL_PORT, ACPI_PM_LEN, "acpi-pm",
                          acpi_pm_pio_read, acpi_pm_pio_write, a->acpi_pm);
    }

    if (a->host.cfg->pci) {
        ret = x86_pci_create(svc, a->host.cfg->memory, &a->pci, err);
        if (ret < 0)
            return ret;
    }

    if (a->host.cfg->debug_exit) {
        a->debug_exit = debug_exit_create(debug_exit_cb, a);
        if (!a->debug_exit)
            return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "cannot create debug-exit device");
        svc->register_pio(svc->ctx, X86_DEBUG_EXIT_PORT, X86_DEBUG_EXIT_LEN, "debug-exit",
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
    return a && a->i8042 ? i8042_send_ctrl_alt_del(a->i8042) : -ENODEV;
}

/* ---- guest image -------------------------------------------------------- */

/* Describe the machine in ACPI tables (arch/x86_64/acpi.h): CPUs, IOAPIC,
 * COM1, the virtio-mmio slots in device order, the PM registers. */
static int write_acpi(struct arch_vm *a, uint64_t *rsdp_gpa, struct errbuf *err)
{
    const struct vm_config *cfg = a->host.cfg;
    struct x86_acpi_mmio_dev virtio[CONFIG_MAX_DEVICES];
    unsigned nvirtio = config_virtio_devices(cfg);
    for (unsigned i = 0; i < nvirtio; i++) {
        uint64_t base;
        unsigned gsi;
        if (arch_virtio_slot(i, &base, &gsi) < 0)
            return err_set(err, WISP_EXIT_USAGE, ENOSPC, "too many devices for ACPI");
        virtio[i] =
            (struct x86_acpi_mmio_dev){.base = base, .size = VIRTIO_MMIO_WINDOW, .gsi = gsi};
    }
    struct x86_acpi_pci pci;
    if (cfg->pci)
        x86_pci_acpi_desc(cfg->memory, &pci);
    struct x86_acpi_desc d = {
        .nvcpus = cfg->vcpus,
        .ioapic_id = x86_ioapic_id(cfg->vcpus),
        .virtio = virtio,
        .nvirtio = nvirtio,
        .pci = cfg->pci ? &pci : NULL,
    };
    return x86_acpi_write(a->host.mem, &d, rsdp_gpa, err);
}

int arch_load_guest(struct arch_vm *a, const char *cmdline, struct errbuf *err)
{
    const struct vm_config *cfg = a->host.cfg;
    struct archf_map kernel = {0}, initrd = {0};
    int ret = archf_map_file(cfg->kernel, "kernel", &kernel, err);
    if (ret < 0)
        goto out;
    if (cfg->initrd) {
        ret = archf_map_file(cfg->initrd, "initrd", &initrd, err);
        if (ret < 0)
            goto out;
    }
    struct x86_boot_input in = {
        .kernel = kernel.data,
        .kernel_len = kernel.len,
        .initrd = initrd.data,
        .initrd_len = initrd.len,
        .cmdline = cmdline ? cmdline : "",
        .proto = cfg->boot,
        .nvcpus = cfg->vcpus,
    };
    if (cfg->pci) {
        /* Linux wants the ECAM window reserved before it trusts the MCFG. */
        in.reserved_gpa = X86_PCI_ECAM_BASE;
        in.reserved_size = PCI_ECAM_BUS_LEN;
    }
    if (cfg->acpi) {
        ret = write_acpi(a, &in.rsdp_gpa, err);
        if (ret < 0)
            goto out;
    }
    ret = x86_boot_load(a->host.mem, &in, &a->boot, err);
    if (ret < 0)
        goto out;
    ret = x86_write_boot_gdt(a->host.mem);
    if (ret == 0)
        ret = x86_write_boot_pagetables(a->host.mem);
    if (ret < 0) {
        err_set(err, WISP_EXIT_FAILURE, -ret, "cannot write boot page tables");
        goto out;
    }
    a->guest_loaded = true;
    const struct x86_boot_result *b = &a->boot;
    log_info("loaded %s kernel 0x%llx-0x%llx, entry 0x%llx (%s)", b->format,
             (unsigned long long)b->kernel_start, (unsigned long long)b->kernel_end,
             (unsigned long long)b->entry, b->mode == X86_ENTRY_PVH ? "PVH" : "64-bit");
out:
    archf_unmap_file(&kernel);
    archf_unmap_file(&initrd);
    return ret;
}

int arch_vcpu_init(struct arch_vm *a, int vcpu_fd, unsigned index, struct errbuf *err)
{
    unsigned nvcpus = a->host.cfg->vcpus;
    struct kvm_cpuid2 *cpuid = x86_cpuid_dup(a->supported);
    if (!cpuid)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    int ret = x86_cpuid_apply(cpuid, index, nvcpus, &a->policy);
    if (ret < 0) {
        err_set(err, WISP_EXIT_FAILURE, -ret, "cannot build CPUID for vCPU %u", index);
        goto out;
    }
    if (ioctl(vcpu_fd, KVM_SET_CPUID2, cpuid) < 0) {
        ret = err_set(err, WISP_EXIT_HOST, errno, "KVM_SET_CPUID2 on vCPU %u: %s", index,
                      strerror(errno));
        goto out;
    }
    ret = x86_msrs_setup(a->host.kvm_fd, vcpu_fd, err);
    if (ret == 0)
        ret = x86_vcpu_setup_fpu(vcpu_fd, err);
    if (ret == 0)
        ret = x86_vcpu_setup_lapic(vcpu_fd, err);
    /* Only the boot processor gets registers; the others wait for INIT/SIPI. */
    if (ret == 0 && index == 0 && a->guest_loaded)
        ret = x86_vcpu_setup_regs(vcpu_fd, a->boot.mode, a->boot.entry, a->boot.boot_info, err);
out:
    free(cpuid);
    return ret;
}

void arch_vm_destroy(struct arch_vm *a)
{
    if (!a)
        return;
    x86_mig_free(a);
    if (a->debug_exit)
        debug_exit_destroy(a->debug_exit);
    pci_bus_free(a->pci);
    if (a->acpi_pm)
        acpi_pm_destroy(a->acpi_pm);
    if (a->i8042)
        i8042_destroy(a->i8042);
    if (a->serial) {
        struct serial_stats st;
        serial_get_stats(a->serial, &st);
        /* Dropped console output is otherwise invisible: say so once. */
        if (st.lost_bytes)
            log_msg(LOG_WARN,
                    "serial: %llu of %llu console output bytes were dropped (output not read fast "
                    "enough)",
                    (unsigned long long)st.lost_bytes, (unsigned long long)st.tx_bytes);
        serial_destroy(a->serial);
    }
    if (a->serial_irqfd >= 0)
        close(a->serial_irqfd);
    if (a->i8042_irqfd >= 0)
        close(a->i8042_irqfd);
    if (a->serial_out_owned && a->serial_out_fd >= 0)
        close(a->serial_out_fd);
    irq_routing_free(a->irq_routing);
    free(a->supported);
    free(a);
}

struct pci_bus *arch_pci_bus(struct arch_vm *a)
{
    return a ? a->pci : NULL;
}

struct irq_routing *arch_irq_routing(struct arch_vm *a)
{
    return a->irq_routing;
}
