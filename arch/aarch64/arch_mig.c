/*
 * aarch64 snapshot and migration hooks (arch.h: arch_mig_register), in the
 * order a destination loads them:
 *
 *   vcpu N  every register KVM lists for vCPU N (KVM_GET_REG_LIST: core,
 *           system, timer and firmware registers) and its power state
 *   vm      the in-kernel GICv3: distributor, each vCPU's redistributor and
 *           its CPU interface registers; after the vCPUs, whose MPIDRs the
 *           redistributor and CPU-interface attributes name
 *   serial  the 16550 UART, through its device_ops
 *
 * Why a file of its own: arch.c builds the board; this file only moves
 * state between KVM and the stream.  The register list is KVM's, not ours,
 * so a newer kernel's registers travel without code changes; a destination
 * that lacks one of them refuses the stream with the register's id.
 *
 * Payloads (vstate sections, version 1):
 *   "a64-vcpu": u32 mp_state | u32 n | n * (u64 id | value, as many bytes
 *               as the id's size field says)
 *   "a64-vgic": u32 n | n * (u32 group | u64 attr | u64 value)
 */
#include "arch/aarch64/arch_internal.h"
#include "arch/aarch64/layout.h"
#include "arch/common/arch_mig_dev.h"
#include "devices/device.h"
#include "devices/legacy/serial.h"
#include "migration/hooks.h"
#include "migration/stream.h"
#include "migration/vstate.h"
#include "vmm/config.h"
#include "vmm/log.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define A64_MIG_VERSION 1U
#define MAX_REGS        4096U /* KVM lists a few hundred today */
#define MAX_REG_BYTES   256U  /* the largest ONE_REG size (2048 bits) */
#define MAX_VGIC_ATTRS  8192U

/* GICv3 register offsets the state covers (SPIs: INTID 32..A64_GIC_NR_IRQS-1). */
#define GICD_CTLR       0x0000
#define GICD_IGROUPR    0x0080
#define GICD_ISENABLER  0x0100
#define GICD_ISPENDR    0x0200
#define GICD_ISACTIVER  0x0300
#define GICD_IPRIORITYR 0x0400
#define GICD_ICFGR      0x0c00
#define GICD_IGRPMODR   0x0d00
#define GICD_IROUTER    0x6000
#define GICR_CTLR       0x0000
#define GICR_SGI        0x10000

struct a64_mig_vcpu {
    struct arch_vm *a;
    int fd;
    unsigned index;
};

struct a64_mig {
    unsigned nvcpus;
    struct a64_mig_vcpu *vcpus;
    struct arch_mig_dev serial;
};

void a64_mig_free(struct arch_vm *a)
{
    if (!a->mig)
        return;
    free(a->mig->vcpus);
    free(a->mig);
    a->mig = NULL;
}

static size_t reg_bytes(uint64_t id)
{
    return (size_t)1 << ((id & KVM_REG_SIZE_MASK) >> KVM_REG_SIZE_SHIFT);
}

/* KVM's register list for a vCPU (malloc'd), or NULL with errno. */
static struct kvm_reg_list *reg_list(int fd)
{
    struct kvm_reg_list probe = {.n = 0};
    if (ioctl(fd, KVM_GET_REG_LIST, &probe) == 0 || errno != E2BIG)
        return NULL;
    if (probe.n > MAX_REGS) {
        errno = E2BIG;
        return NULL;
    }
    struct kvm_reg_list *l = malloc(sizeof(*l) + probe.n * sizeof(uint64_t));
    if (!l)
        return NULL;
    l->n = probe.n;
    if (ioctl(fd, KVM_GET_REG_LIST, l) < 0) {
        free(l);
        return NULL;
    }
    return l;
}

/* ---- vCPUs ---- */

static int vcpu_save(void *dev, struct vstate_out *out)
{
    struct a64_mig_vcpu *v = dev;
    struct kvm_mp_state mp;
    if (ioctl(v->fd, KVM_GET_MP_STATE, &mp) < 0) {
        log_error("snapshot: vCPU %u: KVM_GET_MP_STATE: %s", v->index, strerror(errno));
        return -errno;
    }
    struct kvm_reg_list *l = reg_list(v->fd);
    if (!l) {
        log_error("snapshot: vCPU %u: KVM_GET_REG_LIST: %s", v->index, strerror(errno));
        return -errno;
    }
    int e = 0;
    uint8_t val[MAX_REG_BYTES];
    vstate_begin(out, "a64-vcpu", A64_MIG_VERSION);
    vstate_put_u32(out, mp.mp_state);
    vstate_put_u32(out, (uint32_t)l->n);
    for (uint64_t i = 0; e == 0 && i < l->n; i++) {
        size_t n = reg_bytes(l->reg[i]);
        struct kvm_one_reg r = {.id = l->reg[i], .addr = (uint64_t)(uintptr_t)val};
        if (n > sizeof(val)) {
            log_error("snapshot: vCPU %u: register 0x%llx is %zu bytes", v->index,
                      (unsigned long long)l->reg[i], n);
            e = -E2BIG;
        } else if (ioctl(v->fd, KVM_GET_ONE_REG, &r) < 0) {
            e = -errno;
            log_error("snapshot: vCPU %u: reading register 0x%llx: %s", v->index,
                      (unsigned long long)l->reg[i], strerror(errno));
        } else {
            vstate_put_u64(out, l->reg[i]);
            vstate_put_bytes(out, val, n);
        }
    }
    free(l);
    if (e < 0)
        return e;
    return vstate_end(out);
}

static bool listed(const struct kvm_reg_list *l, uint64_t id)
{
    for (uint64_t i = 0; i < l->n; i++)
        if (l->reg[i] == id)
            return true;
    return false;
}

static int vcpu_load(void *dev, uint16_t version, const uint8_t *buf, size_t len,
                     struct errbuf *err)
{
    struct a64_mig_vcpu *v = dev;
    (void)version;
    struct vstate_in in;
    uint16_t ver;
    vstate_in_init(&in, buf, len);
    if (vstate_enter(&in, "a64-vcpu", 1, A64_MIG_VERSION, &ver) < 0)
        return err_set(err, WISP_EXIT_USAGE, EBADMSG, "vCPU %u: malformed state", v->index);
    uint32_t mp = vstate_get_u32(&in), n = vstate_get_u32(&in);
    if (in.err || n > MAX_REGS || (mp != KVM_MP_STATE_RUNNABLE && mp != KVM_MP_STATE_STOPPED))
        return err_set(err, WISP_EXIT_USAGE, EBADMSG,
                       "vCPU %u: malformed state (%u registers, power state %u)", v->index, n, mp);
    struct kvm_reg_list *l = reg_list(v->fd);
    if (!l)
        return err_set(err, WISP_EXIT_HOST, errno, "vCPU %u: KVM_GET_REG_LIST: %s", v->index,
                       strerror(errno));
    int e = 0;
    uint8_t val[MAX_REG_BYTES];
    for (uint32_t i = 0; e == 0 && i < n; i++) {
        uint64_t id = vstate_get_u64(&in);
        size_t sz = reg_bytes(id);
        if (in.err || sz > sizeof(val)) {
            e = err_set(err, WISP_EXIT_USAGE, EBADMSG, "vCPU %u: malformed register %u", v->index,
                        i);
            break;
        }
        vstate_get_bytes(&in, val, sz);
        if (in.err) {
            e = err_set(err, WISP_EXIT_USAGE, EBADMSG, "vCPU %u: register %u is truncated",
                        v->index, i);
        } else if (!listed(l, id)) {
            e = err_set(err, WISP_EXIT_USAGE, ENOENT,
                        "vCPU %u: register 0x%llx of the stream does not exist on this host",
                        v->index, (unsigned long long)id);
        } else {
            struct kvm_one_reg r = {.id = id, .addr = (uint64_t)(uintptr_t)val};
            if (ioctl(v->fd, KVM_SET_ONE_REG, &r) < 0)
                e = err_set(err, WISP_EXIT_USAGE, errno, "vCPU %u: KVM refused register 0x%llx: %s",
                            v->index, (unsigned long long)id, strerror(errno));
        }
    }
    free(l);
    if (e == 0 && (vstate_leave(&in) < 0 || in.pos != len))
        e = err_set(err, WISP_EXIT_USAGE, EBADMSG, "vCPU %u: malformed state", v->index);
    struct kvm_mp_state st = {.mp_state = mp};
    if (e == 0 && ioctl(v->fd, KVM_SET_MP_STATE, &st) < 0)
        e = err_set(err, WISP_EXIT_HOST, errno, "vCPU %u: KVM_SET_MP_STATE: %s", v->index,
                    strerror(errno));
    return e;
}

static const struct mig_device_ops vcpu_mig_ops = {
    .type = "vcpu",
    .section_id = MIG_SEC_VCPU,
    .version = A64_MIG_VERSION,
    .min_version = A64_MIG_VERSION,
    .save = vcpu_save,
    .load = vcpu_load,
};

/* ---- the GICv3 ---- */

/* A vCPU's affinity in the VGIC attributes' format (Aff3.Aff2.Aff1.Aff0). */
static int vcpu_affinity(int fd, uint64_t *aff)
{
    uint64_t mpidr;
    struct kvm_one_reg r = {.id = KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM64_SYSREG |
                                  (3ULL << KVM_REG_ARM64_SYSREG_OP0_SHIFT) |
                                  (5ULL << KVM_REG_ARM64_SYSREG_OP2_SHIFT), /* MPIDR_EL1 */
                            .addr = (uint64_t)(uintptr_t)&mpidr};
    if (ioctl(fd, KVM_GET_ONE_REG, &r) < 0)
        return -errno;
    *aff = (mpidr & 0xffffffULL) | ((mpidr >> 32) & 0xffULL) << 24;
    return 0;
}

/* ICC_* system register encodings (op0 3, op1 0), in restore order: SRE
 * and CTLR before the active-priority registers CTLR sizes. */
#define ICC(crn, crm, op2) ((3U << 14) | ((crn) << 7) | ((crm) << 3) | (op2))
static const uint32_t icc_regs[] = {
    ICC(12, 12, 5),                                              /* ICC_SRE_EL1 */
    ICC(12, 12, 4),                                              /* ICC_CTLR_EL1 */
    ICC(4, 6, 0),                                                /* ICC_PMR_EL1 */
    ICC(12, 8, 3),                                               /* ICC_BPR0_EL1 */
    ICC(12, 12, 3),                                              /* ICC_BPR1_EL1 */
    ICC(12, 8, 4),  ICC(12, 8, 5), ICC(12, 8, 6), ICC(12, 8, 7), /* ICC_AP0R0..3_EL1 */
    ICC(12, 9, 0),  ICC(12, 9, 1), ICC(12, 9, 2), ICC(12, 9, 3), /* ICC_AP1R0..3_EL1 */
    ICC(12, 12, 6),                                              /* ICC_IGRPEN0_EL1 */
    ICC(12, 12, 7),                                              /* ICC_IGRPEN1_EL1 */
};

struct vgic_out {
    int fd;
    struct vstate_out *out;
    uint32_t n;
    int err;
};

/* Save one attribute; absent ones (a CPU-interface register this GIC lacks) are skipped. */
static void vgic_put(struct vgic_out *o, uint32_t group, uint64_t attr)
{
    uint64_t v64 = 0;
    uint32_t v32 = 0;
    bool wide = group == KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS;
    struct kvm_device_attr a = {.group = group,
                                .attr = attr,
                                .addr =
                                    wide ? (uint64_t)(uintptr_t)&v64 : (uint64_t)(uintptr_t)&v32};
    if (o->err)
        return;
    if (ioctl(o->fd, KVM_GET_DEVICE_ATTR, &a) < 0) {
        if (wide && (errno == EINVAL || errno == ENXIO))
            return;
        o->err = -errno;
        log_error("snapshot: VGIC group %u attribute 0x%llx: %s", group, (unsigned long long)attr,
                  strerror(errno));
        return;
    }
    vstate_put_u32(o->out, group);
    vstate_put_u64(o->out, attr);
    vstate_put_u64(o->out, wide ? v64 : v32);
    o->n++;
}

static int vgic_save(void *dev, struct vstate_out *out)
{
    struct arch_vm *a = dev;
    struct a64_mig *m = a->mig;
    /* The count goes first: gather into a scratch stream, then copy. */
    struct vstate_out body;
    vstate_out_init(&body);
    struct vgic_out o = {.fd = a->vgic_fd, .out = &body};
    const uint32_t D = KVM_DEV_ARM_VGIC_GRP_DIST_REGS, R = KVM_DEV_ARM_VGIC_GRP_REDIST_REGS;
    vgic_put(&o, D, GICD_CTLR);
    for (uint32_t k = 1; k < A64_GIC_NR_IRQS / 32; k++) {
        const uint32_t bits[] = {GICD_IGROUPR, GICD_ISENABLER, GICD_ISPENDR, GICD_ISACTIVER,
                                 GICD_IGRPMODR};
        for (size_t b = 0; b < sizeof(bits) / sizeof(bits[0]); b++)
            vgic_put(&o, D, bits[b] + 4 * k);
    }
    for (uint32_t w = 32 / 4; w < A64_GIC_NR_IRQS / 4; w++)
        vgic_put(&o, D, GICD_IPRIORITYR + 4 * w);
    for (uint32_t w = 32 / 16; w < A64_GIC_NR_IRQS / 16; w++)
        vgic_put(&o, D, GICD_ICFGR + 4 * w);
    for (uint32_t i = 32; i < A64_GIC_NR_IRQS; i++) {
        vgic_put(&o, D, GICD_IROUTER + 8 * i);
        vgic_put(&o, D, GICD_IROUTER + 8 * i + 4);
    }
    for (unsigned c = 0; c < m->nvcpus && !o.err; c++) {
        uint64_t aff = 0;
        o.err = vcpu_affinity(m->vcpus[c].fd, &aff);
        uint64_t hi = aff << KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT;
        vgic_put(&o, R, hi | GICR_CTLR);
        const uint32_t sgi[] = {0x080, 0x100, 0x200, 0x300, 0xc00, 0xc04, 0xd00};
        for (size_t s = 0; s < sizeof(sgi) / sizeof(sgi[0]); s++)
            vgic_put(&o, R, hi | (GICR_SGI + sgi[s]));
        for (uint32_t w = 0; w < 8; w++)
            vgic_put(&o, R, hi | (GICR_SGI + 0x400 + 4 * w));
        for (size_t s = 0; s < sizeof(icc_regs) / sizeof(icc_regs[0]); s++)
            vgic_put(&o, KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS, hi | icc_regs[s]);
    }
    int e = o.err ? o.err : body.err;
    if (e == 0) {
        vstate_begin(out, "a64-vgic", A64_MIG_VERSION);
        vstate_put_u32(out, o.n);
        vstate_put_bytes(out, body.buf, body.len);
        e = vstate_end(out);
    }
    vstate_out_free(&body);
    return e;
}

static int vgic_load(void *dev, uint16_t version, const uint8_t *buf, size_t len,
                     struct errbuf *err)
{
    struct arch_vm *a = dev;
    (void)version;
    struct vstate_in in;
    uint16_t ver;
    vstate_in_init(&in, buf, len);
    if (vstate_enter(&in, "a64-vgic", 1, A64_MIG_VERSION, &ver) < 0)
        return err_set(err, WISP_EXIT_USAGE, EBADMSG, "VGIC: malformed state");
    uint32_t n = vstate_get_u32(&in);
    if (in.err || n > MAX_VGIC_ATTRS)
        return err_set(err, WISP_EXIT_USAGE, EBADMSG, "VGIC: malformed state (%u attributes)", n);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t group = vstate_get_u32(&in);
        uint64_t attr = vstate_get_u64(&in), val = vstate_get_u64(&in);
        bool wide = group == KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS;
        if (in.err ||
            (!wide && group != KVM_DEV_ARM_VGIC_GRP_DIST_REGS &&
             group != KVM_DEV_ARM_VGIC_GRP_REDIST_REGS) ||
            (!wide && val > UINT32_MAX))
            return err_set(err, WISP_EXIT_USAGE, EBADMSG, "VGIC: malformed attribute %u", i);
        uint32_t v32 = (uint32_t)val;
        struct kvm_device_attr at = {.group = group,
                                     .attr = attr,
                                     .addr = wide ? (uint64_t)(uintptr_t)&val
                                                  : (uint64_t)(uintptr_t)&v32};
        if (ioctl(a->vgic_fd, KVM_SET_DEVICE_ATTR, &at) < 0)
            return err_set(err, WISP_EXIT_USAGE, errno,
                           "VGIC: KVM refused group %u attribute 0x%llx: %s", group,
                           (unsigned long long)attr, strerror(errno));
    }
    if (vstate_leave(&in) < 0 || in.pos != len)
        return err_set(err, WISP_EXIT_USAGE, EBADMSG, "VGIC: malformed state");
    return 0;
}

static const struct mig_device_ops vgic_mig_ops = {
    .type = "vgic",
    .section_id = MIG_SEC_VM,
    .version = A64_MIG_VERSION,
    .min_version = A64_MIG_VERSION,
    .save = vgic_save,
    .load = vgic_load,
};

/* ---- the UART (arch/common/arch_mig_dev.h) ---- */

static const struct mig_device_ops serial_mig_ops = {
    .type = "serial",
    .section_id = MIG_SEC_SERIAL,
    .version = A64_MIG_VERSION,
    .min_version = A64_MIG_VERSION,
    .cannot_migrate = arch_mig_dev_cannot,
    .save = arch_mig_dev_save,
    .load = arch_mig_dev_load,
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
    struct a64_mig *m = a->mig;
    if (m->nvcpus != nvcpus) {
        free(m->vcpus);
        m->nvcpus = 0;
        m->vcpus = calloc(nvcpus ? nvcpus : 1, sizeof(*m->vcpus));
        if (!m->vcpus)
            return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
        m->nvcpus = nvcpus;
    }
    int e = 0;
    for (unsigned i = 0; e == 0 && i < nvcpus; i++) {
        m->vcpus[i] = (struct a64_mig_vcpu){.a = a, .fd = vcpu_fds[i], .index = i};
        e = mig_registry_add(reg, &vcpu_mig_ops, &m->vcpus[i], i, MIG_PLANE_BUILTIN, 0, err);
    }
    if (e == 0)
        e = mig_registry_add(reg, &vgic_mig_ops, a, 0, MIG_PLANE_BUILTIN, 0, err);
    if (e == 0 && a->serial) {
        m->serial = (struct arch_mig_dev){.ops = &serial_device_ops, .dev = a->serial};
        e = mig_registry_add(reg, &serial_mig_ops, &m->serial, 0, MIG_PLANE_BUILTIN, 0, err);
    }
    return e;
}
