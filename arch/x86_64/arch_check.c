/*
 * x86_64 arch_check_config() and arch_check_kernel() (arch.h): the limits
 * and the kernel format check that need no KVM, run before /dev/kvm is opened so that a mistyped
 * option is not reported as a host problem.  Kept out of arch.c, which
 * acquires host resources; this file only reads the configuration, and
 * (arch_check_kvm) asks /dev/kvm for the capabilities only x86 needs.
 */
#include "arch/arch.h"
#include "arch/x86_64/boot.h"
#include "arch/x86_64/cpu_template.h"
#include "vmm/config.h"

#include <errno.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>

const char *arch_run_help_note(void)
{
    return "This wisp is built for x86_64: the options above apply as written.\n";
}

static const struct arch_run_help run_help = {
    .kernel = "  --kernel PATH        ELF vmlinux (PVH or 64-bit entry) or bzImage (required\n"
              "                       unless --restore, --incoming, --restore-wait or the\n"
              "                       pre-boot API phase)\n",
    .machine = "  --boot PROTO         auto (default), linux64 or pvh: how to enter an ELF kernel\n"
               "  --cpu-features LIST  hide CPU features from the guest, e.g. -xsave,-avx2\n"
               "  --cpu-template NAME  host (default), x86-64-v2 or x86-64-v3: a fixed feature\n"
               "                       set, so the VM can migrate to any host that has it\n",
    .devices = "  --device SPEC        add a virtio-mmio device (repeatable; at most 16, or 8\n"
               "                       with --acpi off):\n",
    .passthrough =
        "                       or pass a PCI function through (needs --pci on;\n"
        "                       MSI/MSI-X, no INTx; such a VM cannot be snapshotted):\n"
        "                         vfio,path=/sys/bus/pci/devices/DDDD:BB:DD.F[,id=NAME]\n"
        "                           (bound to vfio-pci; wisp needs /dev/vfio/N)\n"
        "                         vfio,path=/dev/vfio/devices/vfioN[,id=NAME]\n"
        "                           (the same through iommufd: needs /dev/iommu)\n"
        "                         vfio-user,socket=PATH[,id=NAME]  (a vfio-user server)\n"
        "                       either with ,layout=FILE: the guest sees exactly that vPCI\n"
        "                       layout (docs/VPCI_LAYOUT.md); exit 2 if the device\n"
        "                       cannot honour it\n"
        "  --acpi on|off        describe the machine in ACPI tables (default on: stock\n"
        "                       distribution kernels find the devices there, and\n"
        "                       poweroff and reboot reach wisp); off: MP table and\n"
        "                       virtio_mmio.device= on the kernel command line only\n"
        "  --pci on|off         a PCI host bridge at 00:00.0, reached through ports\n"
        "                       0xCF8/0xCFC and ECAM (in the MCFG with ACPI); default\n"
        "                       off; vfio and vfio-user devices need it on. With\n"
        "                       PCI and ACPI, at most 12 virtio devices: GSIs 20-23\n"
        "                       carry PCI INTx\n",
};

const struct arch_run_help *arch_run_help(void)
{
    return &run_help;
}

int arch_check_config(const struct vm_config *cfg, struct errbuf *err)
{
    /* vm_create() repeats the vCPU check with KVM's own limit. */
    if (cfg->vcpus > arch_max_vcpus())
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "%u vCPUs requested; at most %u supported",
                       cfg->vcpus, arch_max_vcpus());
    if (cfg->memory < arch_min_memory())
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "memory size %llu KiB is too small; at least %llu MiB is needed",
                       (unsigned long long)(cfg->memory / KiB),
                       (unsigned long long)(arch_min_memory() / MiB));
    unsigned slots = arch_virtio_slots(cfg);
    unsigned nvirtio = config_virtio_devices(cfg);
    if (nvirtio > slots)
        return err_set(err, WISP_EXIT_USAGE, ENOSPC,
                       cfg->acpi
                           ? "%u devices configured; at most %u fit the interrupt lines of the "
                             "IOAPIC"
                           : "%u devices configured; at most %u with --acpi off (the kernel "
                             "command line can only name ISA interrupt lines)",
                       nvirtio, slots);
    if (!x86_cpu_template_known(cfg->cpu_template))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "cpu-template: unknown template '%.64s' (host, x86-64-v2 or x86-64-v3)",
                       cfg->cpu_template);
    return 0;
}

int arch_check_kernel(const uint8_t *img, size_t len, struct errbuf *err)
{
    return x86_boot_probe(img, len, err);
}

int arch_check_kvm(int kvm_fd, struct errbuf *err)
{
    static const struct {
        int cap;
        const char *name;
    } caps[] = {
        {KVM_CAP_PIT2, "in-kernel PIT"},
        {KVM_CAP_EXT_CPUID, "extended CPUID"},
        {KVM_CAP_SET_TSS_ADDR, "TSS address"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(caps); i++)
        if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, caps[i].cap) <= 0)
            return err_set(err, WISP_EXIT_HOST, ENOTSUP, "KVM lacks a required feature: %s",
                           caps[i].name);
    return 0;
}
