/*
 * x86_64 implementation of arch.h: the PC-like parts of a microVM.  Glue
 * between the VM core and the x86 modules (loaders, CPU setup, legacy
 * devices); the policy lives in those modules, not here.
 */
#include "arch/arch.h"
#include "arch/x86_64/boot.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/cpuid.h"
#include "arch/x86_64/irqmap.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"
#include "arch/x86_64/msr.h"
#include "devices/legacy/debug_exit.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial.h"
#include "vmm/irq_routing.h"
#include "vmm/kvm.h"
#include "vmm/log.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

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

struct arch_vm {
    struct kvm_cpuid2 *supported; /* KVM_GET_SUPPORTED_CPUID, shared by all vCPUs */
    struct x86_cpu_policy policy;
    struct x86_boot_result boot;
};

unsigned arch_max_vcpus(void)
{
    return X86_MAX_VCPUS;
}

uint64_t arch_min_memory(void)
{
    return X86_MIN_MEMORY;
}

/*
 * ISA interrupt lines free for virtio-mmio devices: not the PIT (0), i8042
 * (1, 12), cascade (2), COM2/COM1 (3, 4), RTC (8), FPU (13).  irqmap.h wires
 * ISA IRQ n to IOAPIC pin n for these, in KVM's routing and the MP table
 * alike, edge-triggered, which is what an irqfd pulse delivers.  More
 * devices will need ACPI and more pins.
 */
static const unsigned virtio_gsis[] = {5, 6, 7, 9, 10, 11, 14, 15};

int arch_virtio_slot(unsigned index, uint64_t *base, unsigned *gsi)
{
    if (index >= ARRAY_SIZE(virtio_gsis))
        return -ENOSPC;
    *base = X86_VIRTIO_MMIO_BASE + (uint64_t)index * 0x1000;
    *gsi = virtio_gsis[index];
    return 0;
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
static int install_irq_routing(struct vm *vm, struct errbuf *err)
{
    vm->irq_routing = irq_routing_new();
    if (!vm->irq_routing)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    int ret = x86_irq_routing_default(vm->irq_routing);
    if (ret < 0)
        return err_set(err, WISP_EXIT_FAILURE, -ret, "internal: bad default GSI routing: %s",
                       strerror(-ret));
    ret = irq_routing_commit(vm->irq_routing, vm->vm_fd);
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

int arch_vm_init(struct vm *vm, struct errbuf *err)
{
    vm->arch = calloc(1, sizeof(*vm->arch));
    if (!vm->arch)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");

    /* VMX needs three pages for the real-mode TSS and one for the identity
     * map; both sit in the MMIO hole, where they cannot hide guest RAM. */
    if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)X86_KVM_TSS_GPA) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "KVM_SET_TSS_ADDR: %s", strerror(errno));
    uint64_t ident = X86_KVM_IDENTITY_GPA;
    if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "KVM_SET_IDENTITY_MAP_ADDR: %s",
                       strerror(errno));
    /* In-kernel PIC, IOAPIC and local APICs, and the PIT: interrupt delivery
     * and timers never leave the kernel. */
    if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
    int ret = set_ioapic_id(vm->vm_fd, x86_ioapic_id(vm->cfg->vcpus), err);
    if (ret < 0)
        return ret;
    ret = install_irq_routing(vm, err);
    if (ret < 0)
        return ret;
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "KVM_CREATE_PIT2: %s", strerror(errno));

    ret = x86_cpu_policy_parse(vm->cfg->cpu_features, &vm->arch->policy, err);
    if (ret < 0)
        return ret;
    return x86_cpuid_get_supported(vm->kvm_fd, &vm->arch->supported, err);
}

/* ---- built-in devices --------------------------------------------------- */

static void serial_irq(void *opaque)
{
    struct vm *vm = opaque;
    kvm_irq_pulse(vm->serial_irqfd);
}

static void serial_room(void *opaque)
{
    struct vm *vm = opaque;
    uint64_t one = 1;
    ssize_t r __unused = write(vm->serial_room_efd, &one, sizeof(one));
}

static void i8042_reset_cb(void *opaque)
{
    log_info("guest reset through the i8042 controller");
    vm_request_stop(opaque, VM_STOP_RESET, WISP_EXIT_OK);
}

static void debug_exit_cb(void *opaque, uint8_t value)
{
    log_info("guest wrote %u to the debug-exit port", value);
    vm_request_stop(opaque, VM_STOP_DEBUG_EXIT, value);
}

static int open_serial_output(struct vm *vm, struct errbuf *err)
{
    switch (vm->cfg->serial) {
    case SERIAL_STDIO:
        vm->serial_out_fd = STDOUT_FILENO;
        return 0;
    case SERIAL_NONE:
        vm->serial_out_fd = -1;
        return 0;
    case SERIAL_FILE:
        vm->serial_out_fd =
            open(vm->cfg->serial_path,
                 O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
        if (vm->serial_out_fd < 0)
            return err_set(err, WISP_EXIT_USAGE, errno, "cannot open serial output file %s: %s",
                           vm->cfg->serial_path, strerror(errno));
        vm->serial_out_owned = true;
        return 0;
    }
    return err_set(err, WISP_EXIT_USAGE, EINVAL, "bad serial mode");
}

int arch_create_devices(struct vm *vm, struct errbuf *err)
{
    int ret = open_serial_output(vm, err);
    if (ret < 0)
        return ret;
    ret = kvm_irqfd_create(vm, X86_COM1_IRQ, &vm->serial_irqfd, err);
    if (ret < 0)
        return ret;
    vm->serial = serial_create(vm->serial_out_fd, serial_irq, vm);
    if (!vm->serial)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "cannot create serial device");
    serial_set_rx_notify(vm->serial, serial_room, vm);
    vm_register_pio(vm, X86_COM1_PORT, 8, "com1", serial_pio_read, serial_pio_write, vm->serial);

    vm->i8042 = i8042_create(i8042_reset_cb, vm);
    if (!vm->i8042)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "cannot create i8042 device");
    vm_register_pio(vm, X86_I8042_DATA_PORT, 1, "i8042-data", i8042_data_read, i8042_data_write,
                    vm->i8042);
    vm_register_pio(vm, X86_I8042_CMD_PORT, 1, "i8042-cmd", i8042_cmd_read, i8042_cmd_write,
                    vm->i8042);

    if (vm->cfg->debug_exit) {
        vm->debug_exit = debug_exit_create(debug_exit_cb, vm);
        if (!vm->debug_exit)
            return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "cannot create debug-exit device");
        vm_register_pio(vm, X86_DEBUG_EXIT_PORT, X86_DEBUG_EXIT_LEN, "debug-exit",
                        debug_exit_pio_read, debug_exit_pio_write, vm->debug_exit);
    }
    return 0;
}

/* ---- guest image -------------------------------------------------------- */

struct mapped_file {
    void *data;
    size_t len;
};

/* Map a kernel or initrd read-only; `what` names it in errors. */
static int map_file(const char *path, const char *what, struct mapped_file *f, struct errbuf *err)
{
    f->data = NULL;
    f->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) /* a FIFO must not block us */;
    if (fd < 0)
        return err_set(err, WISP_EXIT_USAGE, errno, "cannot open %s %s: %s", what, path,
                       strerror(errno));
    struct stat st;
    int ret = 0;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "%s %s is not a regular file", what, path);
        goto out;
    }
    if (st.st_size == 0) {
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "%s %s is empty", what, path);
        goto out;
    }
    if ((uint64_t)st.st_size > CONFIG_MAX_MEMORY) {
        ret = err_set(err, WISP_EXIT_USAGE, EFBIG, "%s %s is too large", what, path);
        goto out;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        ret = err_set(err, WISP_EXIT_USAGE, errno, "cannot read %s %s: %s", what, path,
                      strerror(errno));
        goto out;
    }
    f->data = p;
    f->len = (size_t)st.st_size;
out:
    close(fd);
    return ret;
}

static void unmap_file(struct mapped_file *f)
{
    if (f->data)
        munmap(f->data, f->len);
    f->data = NULL;
}

int arch_load_guest(struct vm *vm, struct errbuf *err)
{
    struct mapped_file kernel = {0}, initrd = {0};
    int ret = map_file(vm->cfg->kernel, "kernel", &kernel, err);
    if (ret < 0)
        goto out;
    if (vm->cfg->initrd) {
        ret = map_file(vm->cfg->initrd, "initrd", &initrd, err);
        if (ret < 0)
            goto out;
    }
    struct x86_boot_input in = {
        .kernel = kernel.data,
        .kernel_len = kernel.len,
        .initrd = initrd.data,
        .initrd_len = initrd.len,
        .cmdline = vm->cmdline ? vm->cmdline : "",
        .proto = vm->cfg->boot,
        .nvcpus = vm->cfg->vcpus,
    };
    ret = x86_boot_load(&vm->mem, &in, &vm->arch->boot, err);
    if (ret < 0)
        goto out;
    ret = x86_write_boot_gdt(&vm->mem);
    if (ret == 0)
        ret = x86_write_boot_pagetables(&vm->mem);
    if (ret < 0) {
        err_set(err, WISP_EXIT_FAILURE, -ret, "cannot write boot page tables");
        goto out;
    }
    const struct x86_boot_result *b = &vm->arch->boot;
    log_info("loaded %s kernel 0x%llx-0x%llx, entry 0x%llx (%s)", b->format,
             (unsigned long long)b->kernel_start, (unsigned long long)b->kernel_end,
             (unsigned long long)b->entry, b->mode == X86_ENTRY_PVH ? "PVH" : "64-bit");
out:
    unmap_file(&kernel);
    unmap_file(&initrd);
    return ret;
}

int arch_vcpu_init(struct vm *vm, struct vcpu *vcpu, struct errbuf *err)
{
    struct kvm_cpuid2 *cpuid = x86_cpuid_dup(vm->arch->supported);
    if (!cpuid)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    int ret = x86_cpuid_apply(cpuid, vcpu->index, vm->cfg->vcpus, &vm->arch->policy);
    if (ret < 0) {
        err_set(err, WISP_EXIT_FAILURE, -ret, "cannot build CPUID for vCPU %u", vcpu->index);
        goto out;
    }
    if (ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid) < 0) {
        ret = err_set(err, WISP_EXIT_HOST, errno, "KVM_SET_CPUID2 on vCPU %u: %s", vcpu->index,
                      strerror(errno));
        goto out;
    }
    ret = x86_msrs_setup(vm->kvm_fd, vcpu->fd, err);
    if (ret == 0)
        ret = x86_vcpu_setup_fpu(vcpu->fd, err);
    if (ret == 0)
        ret = x86_vcpu_setup_lapic(vcpu->fd, err);
    /* Only the boot processor gets registers; the others wait for INIT/SIPI. */
    if (ret == 0 && vcpu->index == 0)
        ret = x86_vcpu_setup_regs(vcpu->fd, vm->arch->boot.mode, vm->arch->boot.entry,
                                  vm->arch->boot.boot_info, err);
out:
    free(cpuid);
    return ret;
}

void arch_vm_destroy(struct vm *vm)
{
    if (vm->debug_exit)
        debug_exit_destroy(vm->debug_exit);
    if (vm->i8042)
        i8042_destroy(vm->i8042);
    if (vm->serial)
        serial_destroy(vm->serial);
    vm->serial = NULL;
    vm->i8042 = NULL;
    vm->debug_exit = NULL;
    irq_routing_free(vm->irq_routing);
    vm->irq_routing = NULL;
    if (!vm->arch)
        return;
    free(vm->arch->supported);
    free(vm->arch);
    vm->arch = NULL;
}
