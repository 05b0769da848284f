/*
 * The TSC-deadline timer bit (CPUID.1:ECX[24]): offered exactly when KVM
 * says it emulates the timer (KVM_CAP_TSC_DEADLINE_TIMER), whatever
 * KVM_GET_SUPPORTED_CPUID reported, and hidden by "-tsc_deadline" like any
 * other named feature.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/x86_64/cpuid.h"
#include "tests/unit/arch/x86_64/test_cpuid.h"

#define TSCDL (1U << 24)

struct table {
    struct kvm_cpuid2 hdr;
    struct kvm_cpuid_entry2 e[2];
};

/* Leaf 0 and leaf 1, with leaf 1 ECX = `ecx1`. */
static void make(struct table *t, uint32_t ecx1)
{
    memset(t, 0, sizeof(*t));
    t->hdr.nent = 2;
    t->e[0].function = 0;
    t->e[0].eax = 1;
    t->e[1].function = 1;
    t->e[1].ecx = ecx1;
    t->e[1].edx = 1U << 9; /* apic */
}

TestSuite(x86_cpuid_tsc, .init = reset_err);

Test(x86_cpuid_tsc, cap_present_sets_the_bit)
{
    struct table t;
    make(&t, 1U << 0);
    x86_cpuid_offer_tsc_deadline(&t.hdr, true);
    cr_assert_eq(t.e[1].ecx, (1U << 0) | TSCDL, "ecx 0x%x", t.e[1].ecx);
    cr_assert_eq(t.e[0].ecx, 0, "other leaves untouched");
}

Test(x86_cpuid_tsc, cap_absent_clears_the_bit)
{
    struct table t;
    make(&t, TSCDL | (1U << 0));
    x86_cpuid_offer_tsc_deadline(&t.hdr, false);
    cr_assert_eq(t.e[1].ecx, 1U << 0, "ecx 0x%x", t.e[1].ecx);
    make(&t, 0);
    x86_cpuid_offer_tsc_deadline(&t.hdr, false);
    cr_assert_eq(t.e[1].ecx, 0);
}

Test(x86_cpuid_tsc, no_leaf_1_is_left_alone)
{
    struct table t;
    make(&t, 0);
    t.hdr.nent = 1;
    x86_cpuid_offer_tsc_deadline(&t.hdr, true);
    cr_assert_eq(t.e[0].ecx, 0);
    cr_assert_eq(t.e[1].ecx, 0, "beyond nent");
}

Test(x86_cpuid_tsc, policy_hides_it_by_name_and_alias)
{
    const char *specs[] = {"-tsc_deadline", "-TSC_DEADLINE_TIMER"};
    for (size_t i = 0; i < 2; i++) {
        struct table t;
        make(&t, 0);
        x86_cpuid_offer_tsc_deadline(&t.hdr, true);
        struct x86_cpu_policy p = parse_ok(specs[i]);
        cr_assert(x86_cpu_policy_hides(&p, "tsc_deadline"));
        cr_assert_eq(x86_cpuid_apply(&t.hdr, 0, 1, &p), 0);
        cr_assert_eq(t.e[1].ecx & TSCDL, 0, "%s", specs[i]);
    }
    /* Hiding something else leaves it. */
    struct table t;
    make(&t, 0);
    x86_cpuid_offer_tsc_deadline(&t.hdr, true);
    struct x86_cpu_policy p = parse_ok("-x2apic");
    cr_assert_eq(x86_cpuid_apply(&t.hdr, 0, 1, &p), 0);
    cr_assert_eq(t.e[1].ecx & TSCDL, TSCDL);
}

/* On this host's KVM (a *_kvm suite: make test runs it where KVM works,
 * natively or in the nested testbed): the supported table carries the bit
 * iff KVM has the capability. */
TestSuite(x86_cpuid_tsc_kvm, .init = reset_err);

Test(x86_cpuid_tsc_kvm, supported_table_follows_the_capability)
{
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    cr_assert_geq(kvm, 0, "/dev/kvm: %s", strerror(errno));
    int cap = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
    struct kvm_cpuid2 *c = NULL;
    struct errbuf err = {0};
    cr_assert_eq(x86_cpuid_get_supported(kvm, &c, &err), 0, "%s", err.msg);
    struct kvm_cpuid_entry2 *e = x86_cpuid_find(c, 1, 0);
    cr_assert_not_null(e);
    cr_assert_eq((e->ecx & TSCDL) != 0, cap, "cap %d ecx 0x%x", cap, e->ecx);
    free(c);
    close(kvm);
}
