/*
 * aarch64 checks that need no KVM (arch.h): the configuration against what
 * this port supports, the kernel header, and the KVM capabilities the port
 * needs; plus the migration stream's architecture id (the hooks are in
 * arch_mig.c).
 */
#include "arch/arch.h"
#include "arch/aarch64/image.h"
#include "arch/aarch64/layout.h"
#include "migration/stream.h"
#include "migration/stream_sections.h"
#include "vmm/config.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

/* Guest-physical addresses KVM gives a VM by default: 40 bits. */
#define A64_IPA_LIMIT (1ULL << 40)

const char *arch_run_help_note(void)
{
    return "This wisp is built for aarch64 (docs/AARCH64.md): --kernel takes an arm64\n"
           "Image (plus --initrd); the console is a 16550 UART described in the device\n"
           "tree, which also describes the machine (--acpi is ignored).  Refused here:\n"
           "--pci and passthrough devices, --cpu-features and --cpu-template other\n"
           "than host (so they are not listed above).\n";
}

static const struct arch_run_help run_help = {
    .kernel = "  --kernel PATH        arm64 Image (required unless --restore, --incoming,\n"
              "                       --restore-wait or the pre-boot API phase)\n",
    .machine = "",
    .devices = "  --device SPEC        add a virtio-mmio device (repeatable; at most 16):\n",
    .passthrough = "",
};

const struct arch_run_help *arch_run_help(void)
{
    return &run_help;
}

int arch_check_config(const struct vm_config *cfg, struct errbuf *err)
{
    if (cfg->vcpus > arch_max_vcpus())
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "%u vCPUs requested; at most %u supported",
                       cfg->vcpus, arch_max_vcpus());
    if (cfg->memory < arch_min_memory())
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "memory size %llu KiB is too small; at least %llu MiB is needed",
                       (unsigned long long)(cfg->memory / KiB),
                       (unsigned long long)(arch_min_memory() / MiB));
    if (cfg->memory > A64_IPA_LIMIT - A64_RAM_BASE)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "memory size %llu MiB is too large for a 40-bit guest address space",
                       (unsigned long long)(cfg->memory / MiB));
    if (config_virtio_devices(cfg) > arch_virtio_slots(cfg))
        return err_set(err, WISP_EXIT_USAGE, ENOSPC, "%u devices configured; at most %u",
                       config_virtio_devices(cfg), arch_virtio_slots(cfg));
    if (cfg->pci)
        return err_set(err, WISP_EXIT_USAGE, ENOTSUP, "--pci is not supported on aarch64 yet");
    if (cfg->cpu_template && strcmp(cfg->cpu_template, "host") != 0)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "cpu-template: only 'host' exists on aarch64");
    if (cfg->cpu_features)
        return err_set(err, WISP_EXIT_USAGE, ENOTSUP,
                       "--cpu-features is not supported on aarch64 yet");
    return 0;
}

int arch_check_kernel(const uint8_t *img, size_t len, struct errbuf *err)
{
    struct a64_image im;
    return a64_image_parse(img, len, A64_IPA_LIMIT, &im, err);
}

int arch_check_kvm(int kvm_fd, struct errbuf *err)
{
    if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ONE_REG) <= 0)
        return err_set(err, WISP_EXIT_HOST, ENOTSUP, "KVM lacks a required feature: ONE_REG");
    if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ARM_PSCI_0_2) <= 0)
        return err_set(err, WISP_EXIT_HOST, ENOTSUP, "KVM lacks a required feature: PSCI 0.2");
    return 0;
}

uint16_t arch_mig_id(void)
{
    return MIG_ARCH_AARCH64;
}

void arch_mig_describe(const struct arch_vm *a, struct mig_machine *m)
{
    (void)a;
    m->arch = MIG_ARCH_AARCH64;
    m->cpu_template[0] = '\0';
}
