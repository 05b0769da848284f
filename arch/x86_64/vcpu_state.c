/*
 * Reading and loading a vCPU's state through KVM (see vcpu_state.h): the
 * ioctl side only, so the byte format (vcpu_state_codec.c) can be tested and
 * fuzzed without /dev/kvm.
 */
#include "arch/x86_64/vcpu_state.h"
#include "arch/x86_64/msr.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/log.h"

#define XSAVE_LEGACY_SIZE 4096U /* struct kvm_xsave */
#define MSR_TSC_DEADLINE  0x6e0U

/* KVM_GET_MSRS / KVM_SET_MSRS argument: the header and up to `n` entries. */
struct msr_batch {
    struct kvm_msrs hdr;
    struct kvm_msr_entry e[X86_VCPU_STATE_MAX_MSRS];
};

static int kvm_fail(struct errbuf *err, const char *what)
{
    int e = errno ? errno : EIO;
    return err_set(err, WISP_EXIT_FAILURE, e, "%s", what);
}

int x86_msr_list_get(int kvm_fd, struct x86_msr_list *out, struct errbuf *err)
{
    const struct kvm_msr_list *l;
    int ret = x86_msr_index_list(kvm_fd, &l, err);
    if (ret)
        return ret;
    if (l->nmsrs > X86_VCPU_STATE_MAX_MSRS)
        return err_set(err, WISP_EXIT_FAILURE, E2BIG,
                       "KVM lists %u MSRs to save, more than the %u wisp handles", l->nmsrs,
                       X86_VCPU_STATE_MAX_MSRS);
    out->n = l->nmsrs;
    memcpy(out->index, l->indices, l->nmsrs * sizeof(l->indices[0]));
    /* The MTRRs are emulated but unlisted (msr.h): a guest that programmed them must find them
     * again. */
    for (size_t i = 0; i < X86_MSR_MTRR_COUNT; i++) {
        bool listed = false;
        for (uint32_t k = 0; k < l->nmsrs; k++)
            listed = listed || l->indices[k] == x86_msr_mtrrs[i];
        if (listed)
            continue;
        if (out->n >= X86_VCPU_STATE_MAX_MSRS)
            return err_set(err, WISP_EXIT_FAILURE, E2BIG, "too many MSRs to save");
        out->index[out->n++] = x86_msr_mtrrs[i];
    }
    return 0;
}

/*
 * KVM_GET_MSRS stops at the first MSR it cannot read and returns how many
 * it read.  Read in batches, skip each unreadable MSR (one KVM lists but
 * this vCPU's CPUID does not enable) and go on after it.
 */
static int get_msrs(int vcpu_fd, const struct x86_msr_list *list, struct x86_vcpu_state *s,
                    struct errbuf *err)
{
    struct msr_batch *b = calloc(1, sizeof(*b));
    if (!b)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "no memory for the MSR list");
    uint32_t pos = 0;
    s->nmsrs = 0;
    while (pos < list->n) {
        uint32_t n = list->n - pos;
        b->hdr.nmsrs = n;
        for (uint32_t i = 0; i < n; i++)
            b->e[i] = (struct kvm_msr_entry){.index = list->index[pos + i]};
        int got = ioctl(vcpu_fd, KVM_GET_MSRS, b);
        if (got < 0 || (uint32_t)got > n) {
            int ret = kvm_fail(err, "KVM_GET_MSRS");
            free(b);
            return ret;
        }
        for (int i = 0; i < got; i++)
            s->msrs[s->nmsrs++] = (struct x86_msr_value){b->e[i].index, b->e[i].data};
        pos += (uint32_t)got + ((uint32_t)got < n ? 1 : 0); /* skip the unreadable one */
    }
    free(b);
    return 0;
}

/*
 * Load the saved MSRs whose index is (`deadline` true) or is not (false)
 * IA32_TSC_DEADLINE.  KVM drops a TSC deadline written while the LAPIC
 * timer is not in TSC-deadline mode, so that one goes in after the LAPIC.
 */
static int set_msrs(int vcpu_fd, const struct x86_vcpu_state *s, bool deadline, struct errbuf *err)
{
    struct msr_batch *b = calloc(1, sizeof(*b));
    if (!b)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "no memory for the MSR list");
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->nmsrs; i++)
        if ((s->msrs[i].index == MSR_TSC_DEADLINE) == deadline)
            b->e[n++] = (struct kvm_msr_entry){.index = s->msrs[i].index, .data = s->msrs[i].data};
    b->hdr.nmsrs = n;
    int put = n ? ioctl(vcpu_fd, KVM_SET_MSRS, b) : 0;
    int ret = 0;
    if (put < 0)
        ret = kvm_fail(err, "KVM_SET_MSRS");
    else if ((uint32_t)put != n)
        ret = err_set(err, WISP_EXIT_FAILURE, EINVAL,
                      "KVM refused MSR 0x%x = 0x%llx (this host's CPU or template lacks it?)",
                      b->e[put].index, (unsigned long long)b->e[put].data);
    free(b);
    return ret;
}

/* The XSAVE area size KVM uses for this VM: KVM_CAP_XSAVE2's, at least 4096. */
static uint32_t xsave_size(int kvm_fd)
{
    int n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
    if (n <= (int)XSAVE_LEGACY_SIZE)
        return XSAVE_LEGACY_SIZE;
    return (uint32_t)n;
}

static int get_xsave(int kvm_fd, int vcpu_fd, struct x86_vcpu_state *s, struct errbuf *err)
{
    uint32_t len = xsave_size(kvm_fd);
    if (len > X86_VCPU_STATE_MAX_XSAVE)
        return err_set(err, WISP_EXIT_FAILURE, E2BIG, "KVM's XSAVE area is %u bytes, over %u", len,
                       X86_VCPU_STATE_MAX_XSAVE);
    /* struct kvm_xsave is a 4096-byte header; KVM_GET_XSAVE2 writes `len` bytes. */
    void *buf = calloc(1, len);
    if (!buf)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "no memory for XSAVE");
    unsigned long req = len > XSAVE_LEGACY_SIZE ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
    int ret = 0;
    if (ioctl(vcpu_fd, req, buf) < 0)
        ret = kvm_fail(err, len > XSAVE_LEGACY_SIZE ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE");
    else {
        memcpy(s->xsave, buf, len);
        s->xsave_len = len;
    }
    free(buf);
    return ret;
}

static int set_xsave(int kvm_fd, int vcpu_fd, const struct x86_vcpu_state *s, struct errbuf *err)
{
    uint32_t len = xsave_size(kvm_fd);
    if (s->xsave_len > len)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                       "the saved XSAVE area is %u bytes; this host's KVM takes %u", s->xsave_len,
                       len);
    void *buf = calloc(1, len);
    if (!buf)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "no memory for XSAVE");
    memcpy(buf, s->xsave, s->xsave_len);
    int ret = 0;
    if (ioctl(vcpu_fd, KVM_SET_XSAVE, buf) < 0)
        ret = kvm_fail(err, "KVM_SET_XSAVE (the CPU template enables features this host lacks?)");
    free(buf);
    return ret;
}

int x86_vcpu_state_get(int kvm_fd, int vcpu_fd, const struct x86_msr_list *msrs,
                       struct x86_vcpu_state *s, struct errbuf *err)
{
    memset(s, 0, sizeof(*s));
    if (ioctl(vcpu_fd, KVM_GET_REGS, &s->regs) < 0)
        return kvm_fail(err, "KVM_GET_REGS");
    if (ioctl(vcpu_fd, KVM_GET_SREGS, &s->sregs) < 0)
        return kvm_fail(err, "KVM_GET_SREGS");
    int ret = get_xsave(kvm_fd, vcpu_fd, s, err);
    if (ret < 0)
        return ret;
    struct kvm_xcrs xcrs;
    memset(&xcrs, 0, sizeof(xcrs));
    if (ioctl(vcpu_fd, KVM_GET_XCRS, &xcrs) < 0)
        return kvm_fail(err, "KVM_GET_XCRS");
    if (xcrs.nr_xcrs > X86_VCPU_STATE_MAX_XCRS)
        return err_set(err, WISP_EXIT_FAILURE, E2BIG, "KVM_GET_XCRS: %u XCRs", xcrs.nr_xcrs);
    s->nxcrs = xcrs.nr_xcrs;
    memcpy(s->xcrs, xcrs.xcrs, s->nxcrs * sizeof(s->xcrs[0]));
    if (ioctl(vcpu_fd, KVM_GET_DEBUGREGS, &s->debugregs) < 0)
        return kvm_fail(err, "KVM_GET_DEBUGREGS");
    ret = get_msrs(vcpu_fd, msrs, s, err);
    if (ret < 0)
        return ret;
    struct kvm_lapic_state lapic;
    if (ioctl(vcpu_fd, KVM_GET_LAPIC, &lapic) < 0)
        return kvm_fail(err, "KVM_GET_LAPIC");
    memcpy(s->lapic, lapic.regs, sizeof(s->lapic));
    if (ioctl(vcpu_fd, KVM_GET_VCPU_EVENTS, &s->events) < 0)
        return kvm_fail(err, "KVM_GET_VCPU_EVENTS");
    struct kvm_mp_state mp;
    if (ioctl(vcpu_fd, KVM_GET_MP_STATE, &mp) < 0)
        return kvm_fail(err, "KVM_GET_MP_STATE");
    s->mp_state = mp.mp_state;
    int khz = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);
    if (khz <= 0)
        return kvm_fail(err, "KVM_GET_TSC_KHZ");
    s->tsc_khz = (uint32_t)khz;
    return 0;
}

int x86_vcpu_state_set(int kvm_fd, int vcpu_fd, const struct x86_vcpu_state *s, struct errbuf *err)
{
    _Static_assert(sizeof(((struct kvm_lapic_state *)0)->regs) == X86_VCPU_STATE_LAPIC,
                   "KVM's LAPIC page size");
    if (s->nmsrs > X86_VCPU_STATE_MAX_MSRS || s->nxcrs > X86_VCPU_STATE_MAX_XCRS ||
        s->xsave_len > X86_VCPU_STATE_MAX_XSAVE)
        vmm_fatal("x86_vcpu_state_set: unchecked state (decode bounds it)");
    int khz = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);
    if (khz > 0 && s->tsc_khz && (uint32_t)khz != s->tsc_khz &&
        ioctl(vcpu_fd, KVM_SET_TSC_KHZ, (unsigned long)s->tsc_khz) < 0)
        return err_set(err, WISP_EXIT_FAILURE, errno ? errno : EINVAL,
                       "the guest's TSC runs at %u kHz, this host's at %d kHz, and KVM cannot "
                       "scale it",
                       s->tsc_khz, khz);
    if (ioctl(vcpu_fd, KVM_SET_SREGS, &s->sregs) < 0)
        return kvm_fail(err, "KVM_SET_SREGS");
    if (ioctl(vcpu_fd, KVM_SET_REGS, &s->regs) < 0)
        return kvm_fail(err, "KVM_SET_REGS");
    int ret = set_xsave(kvm_fd, vcpu_fd, s, err);
    if (ret < 0)
        return ret;
    struct kvm_xcrs xcrs;
    memset(&xcrs, 0, sizeof(xcrs));
    xcrs.nr_xcrs = s->nxcrs;
    memcpy(xcrs.xcrs, s->xcrs, s->nxcrs * sizeof(s->xcrs[0]));
    if (s->nxcrs && ioctl(vcpu_fd, KVM_SET_XCRS, &xcrs) < 0)
        return kvm_fail(err, "KVM_SET_XCRS");
    ret = set_msrs(vcpu_fd, s, false, err);
    if (ret < 0)
        return ret;
    struct kvm_mp_state mp = {.mp_state = s->mp_state};
    if (ioctl(vcpu_fd, KVM_SET_MP_STATE, &mp) < 0)
        return kvm_fail(err, "KVM_SET_MP_STATE");
    struct kvm_lapic_state lapic;
    memcpy(lapic.regs, s->lapic, sizeof(lapic.regs));
    if (ioctl(vcpu_fd, KVM_SET_LAPIC, &lapic) < 0)
        return kvm_fail(err, "KVM_SET_LAPIC");
    ret = set_msrs(vcpu_fd, s, true, err);
    if (ret < 0)
        return ret;
    struct kvm_vcpu_events ev = s->events;
    /* Restore what was saved, including the pending SMI and NMI fields. */
    ev.flags = s->events.flags &
               (KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
                KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM | KVM_VCPUEVENT_VALID_PAYLOAD);
    if (ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
        return kvm_fail(err, "KVM_SET_VCPU_EVENTS");
    if (ioctl(vcpu_fd, KVM_SET_DEBUGREGS, &s->debugregs) < 0)
        return kvm_fail(err, "KVM_SET_DEBUGREGS");
    return 0;
}
