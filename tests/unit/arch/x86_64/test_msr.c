/*
 * Boot MSRs: the default list, then x86_msrs_setup() on real vCPUs with the
 * values read back through KVM_GET_MSRS.  No guest code runs.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/x86_64/cpuid.h"
#include "arch/x86_64/msr.h"

static struct errbuf err;
static int kvm_fd = -1, vm_fd = -1;
static struct kvm_cpuid2 *sup;

static void reset_err(void)
{
    memset(&err, 0, sizeof(err));
}

static void kvm_open(void)
{
    reset_err();
    kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    cr_assert_geq(kvm_fd, 0, "/dev/kvm: %s", strerror(errno));
    vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
    cr_assert_geq(vm_fd, 0, "KVM_CREATE_VM: %s", strerror(errno));
    cr_assert_eq(x86_cpuid_get_supported(kvm_fd, &sup, &err), 0, "%s", err.msg);
}

static void kvm_close(void)
{
    free(sup);
    sup = NULL;
    if (vm_fd >= 0)
        close(vm_fd);
    if (kvm_fd >= 0)
        close(kvm_fd);
}

TestSuite(x86_msr, .init = reset_err);
TestSuite(x86_msr_kvm, .init = kvm_open, .fini = kvm_close);

static uint64_t default_of(const struct kvm_msr_entry *e, unsigned n, uint32_t index)
{
    for (unsigned i = 0; i < n; i++)
        if (e[i].index == index)
            return e[i].data;
    cr_assert_fail("MSR 0x%x not among the defaults", index);
    return 0;
}

Test(x86_msr, defaults)
{
    struct kvm_msr_entry e[X86_MSR_DEFAULTS_MAX];
    unsigned n = x86_msr_defaults(e, X86_MSR_DEFAULTS_MAX);

    cr_assert_eq(n, x86_msr_defaults(NULL, 0));
    cr_assert_eq(n, 12);
    cr_assert_eq(default_of(e, n, X86_MSR_IA32_MTRR_DEF_TYPE), 0x806);
    cr_assert_eq(default_of(e, n, X86_MSR_IA32_PAT), 0x0007040600070406ULL);
    cr_assert_eq(default_of(e, n, X86_MSR_IA32_MISC_ENABLE), 1);
    const uint32_t zero[] = {X86_MSR_IA32_SYSENTER_CS,
                             X86_MSR_IA32_SYSENTER_ESP,
                             X86_MSR_IA32_SYSENTER_EIP,
                             X86_MSR_STAR,
                             X86_MSR_LSTAR,
                             X86_MSR_CSTAR,
                             X86_MSR_SYSCALL_MASK,
                             X86_MSR_KERNEL_GS_BASE,
                             X86_MSR_IA32_TSC};
    for (size_t i = 0; i < ARRAY_SIZE(zero); i++)
        cr_assert_eq(default_of(e, n, zero[i]), 0, "MSR 0x%x", zero[i]);
    for (unsigned i = 0; i < n; i++)
        cr_assert_eq(e[i].reserved, 0);
}

Test(x86_msr, defaults_respect_capacity)
{
    struct kvm_msr_entry e[4];
    memset(e, 0xa5, sizeof(e));
    cr_assert_eq(x86_msr_defaults(e, 2), 12);
    cr_assert_eq(e[0].index, X86_MSR_IA32_SYSENTER_CS);
    cr_assert_eq(e[2].index, 0xa5a5a5a5, "wrote past the capacity");
}

Test(x86_msr, names)
{
    cr_assert_str_eq(x86_msr_name(X86_MSR_IA32_MTRR_DEF_TYPE), "IA32_MTRR_DEF_TYPE");
    cr_assert_str_eq(x86_msr_name(X86_MSR_LSTAR), "LSTAR");
    cr_assert_str_eq(x86_msr_name(0x12345), "MSR");
}

static int new_vcpu(unsigned id, const char *policy)
{
    struct x86_cpu_policy p;
    cr_assert_eq(x86_cpu_policy_parse(policy, &p, &err), 0, "%s", err.msg);
    int vcpu = ioctl(vm_fd, KVM_CREATE_VCPU, id);
    cr_assert_geq(vcpu, 0, "KVM_CREATE_VCPU: %s", strerror(errno));
    struct kvm_cpuid2 *c = x86_cpuid_dup(sup);
    cr_assert_not_null(c);
    cr_assert_eq(x86_cpuid_apply(c, id, 2, &p), 0);
    cr_assert_eq(ioctl(vcpu, KVM_SET_CPUID2, c), 0, "KVM_SET_CPUID2: %s", strerror(errno));
    free(c);
    return vcpu;
}

static uint64_t read_msr(int vcpu, uint32_t index)
{
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e;
    } b;
    memset(&b, 0, sizeof(b));
    b.hdr.nmsrs = 1;
    b.e.index = index;
    cr_assert_eq(ioctl(vcpu, KVM_GET_MSRS, &b), 1, "KVM_GET_MSRS 0x%x", index);
    return b.e.data;
}

static void write_msr(int vcpu, uint32_t index, uint64_t value)
{
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e;
    } b;
    memset(&b, 0, sizeof(b));
    b.hdr.nmsrs = 1;
    b.e.index = index;
    b.e.data = value;
    cr_assert_eq(ioctl(vcpu, KVM_SET_MSRS, &b), 1, "KVM_SET_MSRS 0x%x", index);
}

Test(x86_msr_kvm, setup_and_read_back)
{
    int vcpu = new_vcpu(0, NULL);
    uint64_t misc_before = read_msr(vcpu, X86_MSR_IA32_MISC_ENABLE);

    /* Dirty the MSRs first so the read-back proves we wrote them. */
    write_msr(vcpu, X86_MSR_IA32_PAT, 0x0606060606060606ULL);
    write_msr(vcpu, X86_MSR_LSTAR, 0xffffffff81000000ULL);

    cr_assert_eq(x86_msrs_setup(kvm_fd, vcpu, &err), 0, "%s", err.msg);
    cr_assert_eq(read_msr(vcpu, X86_MSR_IA32_MTRR_DEF_TYPE), 0x806);
    cr_assert_eq(read_msr(vcpu, X86_MSR_IA32_PAT), X86_PAT_POWER_ON);
    cr_assert_eq(read_msr(vcpu, X86_MSR_LSTAR), 0);
    cr_assert_eq(read_msr(vcpu, X86_MSR_STAR), 0);
    cr_assert_eq(read_msr(vcpu, X86_MSR_IA32_SYSENTER_CS), 0);
    uint64_t misc = read_msr(vcpu, X86_MSR_IA32_MISC_ENABLE);
    cr_assert(misc & X86_MISC_ENABLE_FAST_STRING);
    const uint64_t ro = X86_MISC_ENABLE_BTS_UNAVAIL | X86_MISC_ENABLE_PEBS_UNAVAIL;
    cr_assert_eq(misc & ro, misc_before & ro, "KVM's read-only bits are kept");
    close(vcpu);
}

Test(x86_msr_kvm, second_vcpu_uses_cached_list)
{
    int v0 = new_vcpu(0, NULL);
    int v1 = new_vcpu(1, NULL);
    cr_assert_eq(x86_msrs_setup(kvm_fd, v0, &err), 0, "%s", err.msg);
    /* The index list is cached: even a bad /dev/kvm fd works now. */
    cr_assert_eq(x86_msrs_setup(-1, v1, &err), 0, "%s", err.msg);
    cr_assert_eq(read_msr(v1, X86_MSR_IA32_MTRR_DEF_TYPE), 0x806);
    close(v0);
    close(v1);
}

Test(x86_msr_kvm, works_with_hidden_features)
{
    int vcpu = new_vcpu(0, "-mtrr,-pat,-xsave,-sep");
    cr_assert_eq(x86_msrs_setup(kvm_fd, vcpu, &err), 0, "%s", err.msg);
    cr_assert_eq(read_msr(vcpu, X86_MSR_IA32_MTRR_DEF_TYPE), 0x806);
    close(vcpu);
}

Test(x86_msr_kvm, errors_are_reported)
{
    cr_assert_lt(x86_msrs_setup(-1, -1, &err), 0);
    cr_assert(err.msg[0] != '\0');
    /* kvm_fd is not a vCPU: KVM refuses the ioctl. */
    reset_err();
    cr_assert_lt(x86_msrs_setup(kvm_fd, kvm_fd, &err), 0);
    cr_assert_eq(err.exit_code, WISP_EXIT_FAILURE);
    cr_assert(strstr(err.msg, "KVM_"), "%s", err.msg);
}

/* The MTRR set a saved vCPU carries: every one an MTRR MSR, none twice. */
Test(x86_msr, mtrr_set_is_in_range_and_distinct)
{
    for (unsigned i = 0; i < X86_MSR_MTRR_COUNT; i++) {
        cr_assert(x86_msr_mtrrs[i] >= X86_MSR_MTRR_FIRST && x86_msr_mtrrs[i] <= X86_MSR_MTRR_LAST,
                  "0x%x", x86_msr_mtrrs[i]);
        for (unsigned k = 0; k < i; k++)
            cr_assert_neq(x86_msr_mtrrs[i], x86_msr_mtrrs[k], "0x%x twice", x86_msr_mtrrs[i]);
    }
    cr_assert_eq(x86_msr_mtrrs[0], X86_MSR_IA32_MTRR_DEF_TYPE);
}
