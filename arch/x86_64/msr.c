/* Boot-time MSR values for x86_64 vCPUs (see msr.h). */
#include "arch/x86_64/msr.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

static const struct {
    uint32_t index;
    uint64_t value;
    const char *name;
} boot_msrs[] = {
    /* No fast system calls until the guest kernel installs its entry points. */
    {X86_MSR_IA32_SYSENTER_CS, 0, "IA32_SYSENTER_CS"},
    {X86_MSR_IA32_SYSENTER_ESP, 0, "IA32_SYSENTER_ESP"},
    {X86_MSR_IA32_SYSENTER_EIP, 0, "IA32_SYSENTER_EIP"},
    {X86_MSR_STAR, 0, "STAR"},
    {X86_MSR_LSTAR, 0, "LSTAR"},
    {X86_MSR_CSTAR, 0, "CSTAR"},
    {X86_MSR_SYSCALL_MASK, 0, "SYSCALL_MASK"},
    {X86_MSR_KERNEL_GS_BASE, 0, "KERNEL_GS_BASE"},
    /*
     * TSC 0 on every vCPU.  KVM treats a host write of 0 as "synchronise with
     * the other vCPUs", so all vCPUs keep one time base.
     */
    {X86_MSR_IA32_TSC, 0, "IA32_TSC"},
    /* Firmware enables fast REP MOVS/STOS; guests expect it on. */
    {X86_MSR_IA32_MISC_ENABLE, X86_MISC_ENABLE_FAST_STRING, "IA32_MISC_ENABLE"},
    /*
     * MTRRs on, default type write-back, no variable ranges: all RAM is
     * cacheable.  At reset MTRRs are off, which means uncached memory for a
     * guest that takes the MTRRs at their word.  The MMIO hole needs no UC
     * range: KVM emulates those accesses whatever the memory type.
     */
    {X86_MSR_IA32_MTRR_DEF_TYPE, X86_MTRR_DEF_TYPE_BOOT, "IA32_MTRR_DEF_TYPE"},
    {X86_MSR_IA32_PAT, X86_PAT_POWER_ON, "IA32_PAT"},
};

_Static_assert(ARRAY_SIZE(boot_msrs) <= X86_MSR_DEFAULTS_MAX, "raise X86_MSR_DEFAULTS_MAX");

unsigned x86_msr_defaults(struct kvm_msr_entry *out, unsigned cap)
{
    for (unsigned i = 0; i < ARRAY_SIZE(boot_msrs) && i < cap; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        out[i].index = boot_msrs[i].index;
        out[i].data = boot_msrs[i].value;
    }
    return ARRAY_SIZE(boot_msrs);
}

const char *x86_msr_name(uint32_t index)
{
    for (unsigned i = 0; i < ARRAY_SIZE(boot_msrs); i++)
        if (boot_msrs[i].index == index)
            return boot_msrs[i].name;
    return "MSR";
}

/*
 * KVM_GET_MSR_INDEX_LIST depends only on the KVM module, so one copy serves
 * every VM and vCPU of the process.  Kept until exit.
 */
static pthread_mutex_t index_list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kvm_msr_list *index_list;

/* Upper bound on the list size we accept from KVM (it reports a few hundred at most). */
#define MSR_LIST_MAX 16384U

static int load_index_list(int kvm_fd, struct errbuf *err)
{
    /* First ask with room for nothing: KVM answers E2BIG and writes the count. */
    uint32_t n = 0;

    for (int tries = 0; tries < 4; tries++) {
        struct kvm_msr_list *l = calloc(1, sizeof(*l) + (size_t)n * sizeof(l->indices[0]));
        if (!l)
            return err_set(err, WISP_EXIT_HOST, ENOMEM, "out of memory for the MSR list");
        l->nmsrs = n;
        if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l) == 0) {
            if (l->nmsrs > n) {
                free(l);
                return err_set(err, WISP_EXIT_HOST, EPROTO,
                               "KVM_GET_MSR_INDEX_LIST returned a bad count");
            }
            index_list = l;
            return 0;
        }
        int e = errno;
        uint32_t want = l->nmsrs;
        free(l);
        if (e != E2BIG)
            return err_set(err, WISP_EXIT_HOST, e, "KVM_GET_MSR_INDEX_LIST failed: %s",
                           strerror(e));
        if (want > MSR_LIST_MAX)
            return err_set(err, WISP_EXIT_HOST, E2BIG, "KVM lists too many MSRs (%u)", want);
        n = want;
    }
    return err_set(err, WISP_EXIT_HOST, EAGAIN, "KVM_GET_MSR_INDEX_LIST keeps changing size");
}

int x86_msr_index_list(int kvm_fd, const struct kvm_msr_list **out, struct errbuf *err)
{
    int ret = 0;
    pthread_mutex_lock(&index_list_lock);
    if (!index_list)
        ret = load_index_list(kvm_fd, err);
    pthread_mutex_unlock(&index_list_lock);
    /* index_list is never freed or replaced once set: reading it unlocked is safe. */
    *out = ret ? NULL : index_list;
    return ret;
}

/* Every MTRR MSR KVM emulates: MTRRdefType, the fixed ranges, 8 variable pairs. */
const uint32_t x86_msr_mtrrs[X86_MSR_MTRR_COUNT] = {
    X86_MSR_IA32_MTRR_DEF_TYPE,
    0x250,
    0x258,
    0x259, /* fixed 64K, 16K */
    0x268,
    0x269,
    0x26a,
    0x26b,
    0x26c,
    0x26d,
    0x26e,
    0x26f, /* fixed 4K */
    0x200,
    0x201,
    0x202,
    0x203,
    0x204,
    0x205,
    0x206,
    0x207, /* variable 0-3 */
    0x208,
    0x209,
    0x20a,
    0x20b,
    0x20c,
    0x20d,
    0x20e,
    0x20f, /* variable 4-7 */
};

static bool msr_listed(uint32_t index)
{
    for (uint32_t i = 0; i < index_list->nmsrs; i++)
        if (index_list->indices[i] == index)
            return true;
    return false;
}

static bool msr_wanted(uint32_t index)
{
    /* KVM emulates the MTRRs on every host but leaves them out of the list. */
    if (index >= X86_MSR_MTRR_FIRST && index <= X86_MSR_MTRR_LAST)
        return true;
    return msr_listed(index);
}

struct msr_buf {
    struct kvm_msrs hdr;
    struct kvm_msr_entry entries[X86_MSR_DEFAULTS_MAX];
};

/* Keep KVM's read-only "unavailable" bits: they describe what the vCPU lacks. */
static int merge_misc_enable(int vcpu_fd, struct kvm_msr_entry *e, struct errbuf *err)
{
    struct msr_buf b;
    memset(&b, 0, sizeof(b));
    b.hdr.nmsrs = 1;
    b.entries[0].index = X86_MSR_IA32_MISC_ENABLE;
    int r = ioctl(vcpu_fd, KVM_GET_MSRS, &b);
    if (r != 1) {
        int en = r < 0 ? errno : EIO;
        return err_set(err, WISP_EXIT_FAILURE, en, "KVM_GET_MSRS cannot read IA32_MISC_ENABLE: %s",
                       strerror(en));
    }
    e->data |= b.entries[0].data & (X86_MISC_ENABLE_BTS_UNAVAIL | X86_MISC_ENABLE_PEBS_UNAVAIL);
    return 0;
}

int x86_msrs_setup(int kvm_fd, int vcpu_fd, struct errbuf *err)
{
    struct kvm_msr_entry defaults[X86_MSR_DEFAULTS_MAX];
    struct msr_buf b;
    unsigned n = x86_msr_defaults(defaults, X86_MSR_DEFAULTS_MAX);
    int ret = 0;

    const struct kvm_msr_list *unused;
    ret = x86_msr_index_list(kvm_fd, &unused, err);
    if (ret)
        return ret;

    memset(&b, 0, sizeof(b));
    for (unsigned i = 0; i < n; i++) {
        if (!msr_wanted(defaults[i].index))
            continue;
        struct kvm_msr_entry *e = &b.entries[b.hdr.nmsrs++];
        *e = defaults[i];
        if (e->index == X86_MSR_IA32_MISC_ENABLE) {
            ret = merge_misc_enable(vcpu_fd, e, err);
            if (ret)
                return ret;
        }
    }
    if (b.hdr.nmsrs == 0)
        return 0;

    /* KVM_SET_MSRS stops at the first MSR it refuses and returns how many it set. */
    int r = ioctl(vcpu_fd, KVM_SET_MSRS, &b);
    if (r < 0) {
        int e = errno;
        return err_set(err, WISP_EXIT_FAILURE, e, "KVM_SET_MSRS failed: %s", strerror(e));
    }
    if ((unsigned)r < b.hdr.nmsrs) {
        const struct kvm_msr_entry *bad = &b.entries[r];
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "KVM refused to set %s (0x%x) to 0x%llx",
                       x86_msr_name(bad->index), bad->index, (unsigned long long)bad->data);
    }
    return 0;
}
