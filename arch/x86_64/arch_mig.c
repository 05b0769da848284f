/*
 * x86_64 snapshot and migration hooks (arch.h: arch_mig_register): the state
 * this architecture owns, wired to the migration registry
 * (migration/hooks.h) in the order a destination must load it:
 *
 *   vm      PICs, IOAPIC, PIT, kvmclock (vm_state.h): before any vCPU, since
 *           a vCPU's LAPIC and pending events refer to the irqchip
 *   vcpu N  every vCPU (vcpu_state.h), instance = index
 *   serial, i8042, acpi-pm   the built-in devices, through their device_ops
 *
 * Why a file of its own: arch.c builds the board; this file only adapts
 * state that other modules encode (vm_state.c, vcpu_state*.c, the legacy
 * devices) to the registry's hook signatures, and keeps the small per-hook
 * contexts alive as long as the arch VM.
 */
#include "arch/arch.h"
#include "arch/common/arch_mig_dev.h"
#include "arch/x86_64/arch_internal.h"
#include "arch/x86_64/vcpu_state.h"
#include "arch/x86_64/vm_state.h"
#include "devices/device.h"
#include "devices/legacy/acpi_pm.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial.h"
#include "devices/pci/pci.h"
#include "migration/hooks.h"
#include "vmm/config.h"
#include "vmm/log.h"

#include <errno.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARCH_MIG_STATE_VERSION 1U /* the wrapper version of every section below */
#define ARCH_MIG_MAX_LEGACY    3U

struct x86_mig_vcpu {
    struct arch_vm *a;
    int fd;
    unsigned index;
};

struct x86_mig {
    struct x86_msr_list msrs; /* what every vCPU saves, fetched once */
    bool have_msrs;
    unsigned nvcpus;
    struct x86_mig_vcpu *vcpus;
    struct arch_mig_dev legacy[ARCH_MIG_MAX_LEGACY];
};

void x86_mig_free(struct arch_vm *a)
{
    if (!a->mig)
        return;
    free(a->mig->vcpus);
    free(a->mig);
    a->mig = NULL;
}

/* ---- VM-wide state ---- */

static int vm_save(void *dev, struct vstate_out *out)
{
    struct arch_vm *a = dev;
    struct errbuf err = {0};
    struct x86_vm_state s;
    int e = x86_vm_state_get(a->host.vm_fd, &s, &err);
    if (e < 0) {
        log_error("snapshot: %s", err.msg);
        return e;
    }
    return x86_vm_state_encode(&s, out);
}

static int vm_load(void *dev, uint16_t version, const uint8_t *buf, size_t len, struct errbuf *err)
{
    struct arch_vm *a = dev;
    (void)version;
    struct x86_vm_state s;
    struct vstate_in in;
    vstate_in_init(&in, buf, len);
    int e = x86_vm_state_decode(&in, &s, err);
    if (e == 0 && in.pos != len)
        e = err_set(err, WISP_EXIT_USAGE, EBADMSG, "vm state: %zu trailing bytes", len - in.pos);
    if (e == 0)
        e = x86_vm_state_set(a->host.vm_fd, &s, err);
    return e;
}

static const struct mig_device_ops vm_mig_ops = {
    .type = "vm",
    .section_id = MIG_SEC_VM,
    .version = ARCH_MIG_STATE_VERSION,
    .min_version = ARCH_MIG_STATE_VERSION,
    .save = vm_save,
    .load = vm_load,
};

/* ---- vCPUs ---- */

static int vcpu_save(void *dev, struct vstate_out *out)
{
    struct x86_mig_vcpu *v = dev;
    struct errbuf err = {0};
    struct x86_vcpu_state *s = malloc(sizeof(*s)); /* tens of KiB: not on the stack */
    if (!s)
        return -ENOMEM;
    int e = x86_vcpu_state_get(v->a->host.kvm_fd, v->fd, &v->a->mig->msrs, s, &err);
    if (e < 0)
        log_error("snapshot: vCPU %u: %s", v->index, err.msg);
    else
        e = x86_vcpu_state_encode(s, out);
    free(s);
    return e;
}

static int vcpu_load(void *dev, uint16_t version, const uint8_t *buf, size_t len,
                     struct errbuf *err)
{
    struct x86_mig_vcpu *v = dev;
    (void)version;
    struct x86_vcpu_state *s = malloc(sizeof(*s));
    if (!s)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    struct vstate_in in;
    vstate_in_init(&in, buf, len);
    int e = x86_vcpu_state_decode(&in, s, err);
    if (e == 0 && in.pos != len)
        e = err_set(err, WISP_EXIT_USAGE, EBADMSG, "vCPU %u state: %zu trailing bytes", v->index,
                    len - in.pos);
    if (e == 0)
        e = x86_vcpu_state_set(v->a->host.kvm_fd, v->fd, s, err);
    free(s);
    return e;
}

static const struct mig_device_ops vcpu_mig_ops = {
    .type = "vcpu",
    .section_id = MIG_SEC_VCPU,
    .version = ARCH_MIG_STATE_VERSION,
    .min_version = ARCH_MIG_STATE_VERSION,
    .save = vcpu_save,
    .load = vcpu_load,
};

/* ---- TSC and kvmclock, together ---- */

/*
 * Why a section of its own: the guest reads time from two sources that
 * must stay in step, kvmclock (the VM section) and each vCPU's TSC (its
 * MSRs).  Saved and restored separately, each is off by however long the
 * ioctls between them took, and Linux then finds the TSC skewed against
 * kvmclock and marks it unstable.  KVM's documented remedy (the vCPU
 * attribute KVM_VCPU_TSC_OFFSET with KVM_GET_CLOCK's host TSC): save
 * kvmclock with the host TSC of the same instant and every vCPU's TSC
 * offset; after everything else is loaded, read the destination's clock
 * and host TSC and set each offset so that the guest's TSC advanced
 * exactly as its kvmclock did.  Registered after the vCPUs, so its load
 * runs last.  Where KVM lacks either feature, or the TSC rates differ,
 * the record says so and the load leaves the TSCs as the MSRs set them.
 *
 * Payload (vstate section "x86-tsc", version 1): u8 valid | u32 tsc_khz |
 * u64 clock_ns | u64 host_tsc | u32 n | n * u64 offset.
 */
#define TSC_SECTION_VERSION 1U

static int tsc_offset_attr(int vcpu_fd, unsigned long req, uint64_t *ofs)
{
    struct kvm_device_attr a = {
        .group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET, .addr = (uint64_t)(uintptr_t)ofs};
    return ioctl(vcpu_fd, req, &a) < 0 ? -errno : 0;
}

static int tsc_save(void *dev, struct vstate_out *out)
{
    struct arch_vm *a = dev;
    struct x86_mig *m = a->mig;
    struct kvm_clock_data clk = {0};
    bool valid = ioctl(a->host.vm_fd, KVM_GET_CLOCK, &clk) == 0 && (clk.flags & KVM_CLOCK_HOST_TSC);
    int khz = valid && m->nvcpus ? ioctl(m->vcpus[0].fd, KVM_GET_TSC_KHZ, 0) : -1;
    valid = valid && khz > 0;
    uint64_t *ofs = calloc(m->nvcpus ? m->nvcpus : 1, sizeof(*ofs));
    if (!ofs)
        return -ENOMEM;
    for (unsigned i = 0; valid && i < m->nvcpus; i++)
        valid = tsc_offset_attr(m->vcpus[i].fd, KVM_GET_DEVICE_ATTR, &ofs[i]) == 0;
    vstate_begin(out, "x86-tsc", TSC_SECTION_VERSION);
    vstate_put_u8(out, valid);
    vstate_put_u32(out, valid ? (uint32_t)khz : 0);
    vstate_put_u64(out, valid ? clk.clock : 0);
    vstate_put_u64(out, valid ? clk.host_tsc : 0);
    vstate_put_u32(out, m->nvcpus);
    for (unsigned i = 0; i < m->nvcpus; i++)
        vstate_put_u64(out, valid ? ofs[i] : 0);
    free(ofs);
    return vstate_end(out);
}

static int tsc_load(void *dev, uint16_t version, const uint8_t *buf, size_t len, struct errbuf *err)
{
    struct arch_vm *a = dev;
    struct x86_mig *m = a->mig;
    (void)version;
    struct vstate_in in;
    uint16_t v;
    vstate_in_init(&in, buf, len);
    if (vstate_enter(&in, "x86-tsc", 1, TSC_SECTION_VERSION, &v) < 0)
        return err_set(err, WISP_EXIT_USAGE, EBADMSG, "x86-tsc: malformed section");
    bool valid = vstate_get_u8(&in) == 1;
    uint32_t khz = vstate_get_u32(&in);
    uint64_t src_ns = vstate_get_u64(&in), src_tsc = vstate_get_u64(&in);
    uint32_t n = vstate_get_u32(&in);
    if (in.err || n != m->nvcpus)
        return err_set(err, WISP_EXIT_USAGE, EBADMSG, "x86-tsc: malformed section (%u vCPUs)", n);
    uint64_t *ofs = calloc(n ? n : 1, sizeof(*ofs));
    if (!ofs)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++)
        ofs[i] = vstate_get_u64(&in);
    int e = in.err || vstate_leave(&in) < 0 || in.pos != len
                ? err_set(err, WISP_EXIT_USAGE, EBADMSG, "x86-tsc: malformed section")
                : 0;
    struct kvm_clock_data clk = {0};
    int here_khz = n ? ioctl(m->vcpus[0].fd, KVM_GET_TSC_KHZ, 0) : -1;
    if (e == 0 && valid && here_khz == (int)khz && ioctl(a->host.vm_fd, KVM_GET_CLOCK, &clk) == 0 &&
        (clk.flags & KVM_CLOCK_HOST_TSC)) {
        /* Guest TSC ticks since the save: kvmclock's nanoseconds at the
         * guest's rate; host TSC ticks since then: the host's. */
        __int128 ns = (__int128)clk.clock - (__int128)src_ns; /* may be < 0: the VM section's
                                                               * clock was read a little earlier */
        int64_t guest_ticks = (int64_t)(ns * khz / 1000000);
        int64_t host_ticks = (int64_t)(clk.host_tsc - src_tsc);
        for (uint32_t i = 0; e == 0 && i < n; i++) {
            uint64_t o = ofs[i] + (uint64_t)(guest_ticks - host_ticks);
            if (tsc_offset_attr(m->vcpus[i].fd, KVM_SET_DEVICE_ATTR, &o) < 0)
                e = err_set(err, WISP_EXIT_HOST, errno, "vCPU %u: setting the TSC offset: %s", i,
                            strerror(errno));
        }
    }
    free(ofs);
    return e;
}

static const struct mig_device_ops tsc_mig_ops = {
    .type = "x86-tsc",
    .section_id = MIG_SEC_TSC,
    .version = ARCH_MIG_STATE_VERSION,
    .min_version = ARCH_MIG_STATE_VERSION,
    .save = tsc_save,
    .load = tsc_load,
};

/* ---- built-in devices (arch/common/arch_mig_dev.h) ---- */

#define LEGACY_OPS(name, id, str)                                                                  \
    static const struct mig_device_ops name = {                                                    \
        .type = str,                                                                               \
        .section_id = id,                                                                          \
        .version = ARCH_MIG_STATE_VERSION,                                                         \
        .min_version = ARCH_MIG_STATE_VERSION,                                                     \
        .cannot_migrate = arch_mig_dev_cannot,                                                     \
        .save = arch_mig_dev_save,                                                                 \
        .load = arch_mig_dev_load,                                                                 \
    }
LEGACY_OPS(serial_mig_ops, MIG_SEC_SERIAL, "serial");
LEGACY_OPS(i8042_mig_ops, MIG_SEC_I8042, "i8042");
LEGACY_OPS(acpi_pm_mig_ops, MIG_SEC_ACPI_PM, "acpi-pm");

/* The PCI bus (--pci on): its header state (devices/pci/pci_state.c); each
 * passthrough function's own state travels in its own section. */
static int pci_save(void *dev, struct vstate_out *out)
{
    struct pci_bus *b = dev;
    size_t n = pci_bus_state_size(b), len = 0;
    uint8_t *buf = malloc(n);
    if (!buf)
        return -ENOMEM;
    int e = pci_bus_state_save(b, buf, n, &len);
    if (e == 0)
        vstate_put_bytes(out, buf, len);
    free(buf);
    return e < 0 ? e : out->err;
}

static int pci_load(void *dev, uint16_t version, const uint8_t *buf, size_t len, struct errbuf *err)
{
    (void)version;
    return pci_bus_state_load(dev, buf, len, err);
}

static const struct mig_device_ops pci_mig_ops = {
    .type = "pci",
    .section_id = MIG_SEC_PCI,
    .version = ARCH_MIG_STATE_VERSION,
    .min_version = ARCH_MIG_STATE_VERSION,
    .save = pci_save,
    .load = pci_load,
};

/* ---- registration ---- */

int arch_mig_register(struct arch_vm *a, const int *vcpu_fds, unsigned nvcpus,
                      struct mig_registry *reg, struct errbuf *err)
{
    if (!a->mig) {
        a->mig = calloc(1, sizeof(*a->mig));
        if (!a->mig)
            return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    }
    struct x86_mig *m = a->mig;
    if (!m->have_msrs) {
        int e = x86_msr_list_get(a->host.kvm_fd, &m->msrs, err);
        if (e < 0)
            return e;
        m->have_msrs = true;
    }
    if (m->nvcpus != nvcpus) {
        free(m->vcpus);
        m->nvcpus = 0;
        m->vcpus = calloc(nvcpus, sizeof(*m->vcpus));
        if (!m->vcpus)
            return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
        m->nvcpus = nvcpus;
    }
    int e = mig_registry_add(reg, &vm_mig_ops, a, 0, MIG_PLANE_BUILTIN, 0, err);
    for (unsigned i = 0; e == 0 && i < nvcpus; i++) {
        m->vcpus[i] = (struct x86_mig_vcpu){.a = a, .fd = vcpu_fds[i], .index = i};
        e = mig_registry_add(reg, &vcpu_mig_ops, &m->vcpus[i], i, MIG_PLANE_BUILTIN, 0, err);
    }
    /* After the vCPUs: on load it corrects the TSC offsets their MSRs set. */
    if (e == 0)
        e = mig_registry_add(reg, &tsc_mig_ops, a, 0, MIG_PLANE_BUILTIN, 0, err);
    struct {
        const struct mig_device_ops *mops;
        const struct device_ops *ops;
        void *dev;
    } legacy[ARCH_MIG_MAX_LEGACY] = {
        {&serial_mig_ops, &serial_device_ops, a->serial},
        {&i8042_mig_ops, &i8042_device_ops, a->i8042},
        {&acpi_pm_mig_ops, &acpi_pm_device_ops, a->acpi_pm}, /* with ACPI only */
    };
    for (unsigned i = 0; e == 0 && i < ARCH_MIG_MAX_LEGACY; i++) {
        if (!legacy[i].dev)
            continue;
        m->legacy[i] = (struct arch_mig_dev){.ops = legacy[i].ops, .dev = legacy[i].dev};
        e = mig_registry_add(reg, legacy[i].mops, &m->legacy[i], 0, MIG_PLANE_BUILTIN, 0, err);
    }
    if (e == 0 && a->pci)
        e = mig_registry_add(reg, &pci_mig_ops, a->pci, 0, MIG_PLANE_BUILTIN, 0, err);
    return e;
}

uint16_t arch_mig_id(void)
{
    return MIG_ARCH_X86_64;
}

void arch_mig_describe(const struct arch_vm *a, struct mig_machine *m)
{
    m->arch = MIG_ARCH_X86_64;
    const char *t = a->host.cfg->cpu_template;
    snprintf(m->cpu_template, sizeof(m->cpu_template), "%s", t ? t : "");
}
