/*
 * x86_64 implementation of arch.h: the PC-like parts of a microVM.  Glue
 * between the VM core and the x86 modules (loaders, CPU setup, legacy
 * devices); the policy lives in those modules, not here.
 */
#include "arch/arch.h"
#include "arch/x86_64/boot.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/cpuid.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"
#include "arch/x86_64/msr.h"
#include "devices/legacy/debug_exit.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial.h"
#include "vmm/config.h"
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

struct arch_vm {
    struct arch_host host;        /* what the core handed us (arch_vm_init) */
    struct kvm_cpuid2 *supported; /* KVM_GET_SUPPORTED_CPUID, shared by all vCPUs */
    struct x86_cpu_policy policy;
    struct x86_boot_result boot;

    /* Built-in legacy devices (created by arch_create_devices). */
    struct serial *serial;
    struct i8042 *i8042;
    struct debug_exit *debug_exit;
    int serial_irqfd;      /* KVM irqfd for the UART's interrupt line */
    int serial_out_fd;     /* where guest console output goes, -1 = discarded */
    bool serial_out_owned; /* serial_out_fd was opened by us (file:PATH) */
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
 * (1, 12), cascade (2), COM2/COM1 (3, 4), RTC (8), FPU (13).  The MP table
 * already routes ISA IRQ n to IOAPIC pin n, edge-triggered, which is what an
 * irqfd pulse delivers.  More devices will need ACPI and more pins.
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
    a->serial_irqfd = a->serial_out_fd = -1;
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
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(vm_fd, KVM_CREATE_PIT2, &pit) < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "KVM_CREATE_PIT2: %s", strerror(errno));

    ret = x86_cpu_policy_parse(host->cfg->cpu_features, &a->policy, err);
    if (ret < 0)
        return ret;
    return x86_cpuid_get_supported(host->kvm_fd, &a->supported, err);
}

/* ---- built-in devices --------------------------------------------------- */

static void serial_irq(void *opaque)
{
    struct arch_vm *a = opaque;
    kvm_irq_pulse(a->serial_irqfd);
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

static int open_serial_output(struct arch_vm *a, struct errbuf *err)
{
    const struct vm_config *cfg = a->host.cfg;
    switch (cfg->serial) {
    case SERIAL_STDIO:
        a->serial_out_fd = STDOUT_FILENO;
        return 0;
    case SERIAL_NONE:
        a->serial_out_fd = -1;
        return 0;
    case SERIAL_FILE:
        a->serial_out_fd =
            open(cfg->serial_path,
                 O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
        if (a->serial_out_fd < 0)
            return err_set(err, WISP_EXIT_USAGE, errno, "cannot open serial output file %s: %s",
                           cfg->serial_path, strerror(errno));
        a->serial_out_owned = true;
        return 0;
    }
    return err_set(err, WISP_EXIT_USAGE, EINVAL, "bad serial mode");
}

int arch_create_devices(struct arch_vm *a, struct errbuf *err)
{
    const struct vm_services *svc = a->host.svc;
    int ret = open_serial_output(a, err);
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

    a->i8042 = i8042_create(i8042_reset_cb, a);
    if (!a->i8042)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "cannot create i8042 device");
    svc->register_pio(svc->ctx, X86_I8042_DATA_PORT, 1, "i8042-data", i8042_data_read,
                      i8042_data_write, a->i8042);
    svc->register_pio(svc->ctx, X86_I8042_CMD_PORT, 1, "i8042-cmd", i8042_cmd_read, i8042_cmd_write,
                      a->i8042);

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

int arch_load_guest(struct arch_vm *a, const char *cmdline, struct errbuf *err)
{
    const struct vm_config *cfg = a->host.cfg;
    struct mapped_file kernel = {0}, initrd = {0};
    int ret = map_file(cfg->kernel, "kernel", &kernel, err);
    if (ret < 0)
        goto out;
    if (cfg->initrd) {
        ret = map_file(cfg->initrd, "initrd", &initrd, err);
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
    const struct x86_boot_result *b = &a->boot;
    log_info("loaded %s kernel 0x%llx-0x%llx, entry 0x%llx (%s)", b->format,
             (unsigned long long)b->kernel_start, (unsigned long long)b->kernel_end,
             (unsigned long long)b->entry, b->mode == X86_ENTRY_PVH ? "PVH" : "64-bit");
out:
    unmap_file(&kernel);
    unmap_file(&initrd);
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
    if (ret == 0 && index == 0)
        ret = x86_vcpu_setup_regs(vcpu_fd, a->boot.mode, a->boot.entry, a->boot.boot_info, err);
out:
    free(cpuid);
    return ret;
}

void arch_vm_destroy(struct arch_vm *a)
{
    if (!a)
        return;
    if (a->debug_exit)
        debug_exit_destroy(a->debug_exit);
    if (a->i8042)
        i8042_destroy(a->i8042);
    if (a->serial)
        serial_destroy(a->serial);
    if (a->serial_irqfd >= 0)
        close(a->serial_irqfd);
    if (a->serial_out_owned && a->serial_out_fd >= 0)
        close(a->serial_out_fd);
    free(a->supported);
    free(a);
}
