/*
 * CPUID policy and per-vCPU tables: parsing of feature masks, then KVM's real
 * supported table, installed on real vCPUs with KVM_SET_CPUID2.  No guest
 * code runs.  x86_cpuid_apply() on hand-made tables is in test_cpuid_apply.c.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/x86_64/cpuid.h"
#include "tests/unit/arch/x86_64/test_cpuid.h"

static struct errbuf err;

void reset_err(void)
{
    memset(&err, 0, sizeof(err));
}

TestSuite(x86_cpu_policy, .init = reset_err);
TestSuite(x86_cpuid_kvm, .init = reset_err);

/* ---- policy parsing ---- */

struct x86_cpu_policy parse_ok(const char *spec)
{
    struct x86_cpu_policy p;
    memset(&p, 0xff, sizeof(p));
    int ret = x86_cpu_policy_parse(spec, &p, &err);
    cr_assert_eq(ret, 0, "'%s': %s", spec ? spec : "(null)", err.msg);
    return p;
}

static void parse_fails(const char *spec, const char *needle)
{
    struct x86_cpu_policy p, before;
    memset(&p, 0x5a, sizeof(p));
    before = p;
    reset_err();
    int ret = x86_cpu_policy_parse(spec, &p, &err);
    cr_assert_eq(ret, -EINVAL, "'%s' should be refused", spec);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    cr_assert(strstr(err.msg, needle), "'%s': message '%s' lacks '%s'", spec, err.msg, needle);
    cr_assert(strncmp(err.msg, "cpu-features: ", 14) == 0, "message: %s", err.msg);
    cr_assert_eq(memcmp(&p, &before, sizeof(p)), 0, "policy changed on failure");
}

static bool policy_empty(const struct x86_cpu_policy *p)
{
    for (int i = 0; i < X86_CPU_POLICY_WORDS; i++)
        if (p->hidden[i])
            return false;
    return true;
}

Test(x86_cpu_policy, null_and_empty_hide_nothing)
{
    struct x86_cpu_policy p = parse_ok(NULL);
    cr_assert(policy_empty(&p));
    p = parse_ok("");
    cr_assert(policy_empty(&p));
}

Test(x86_cpu_policy, valid_lists)
{
    struct x86_cpu_policy p = parse_ok("-avx2,-sse3");
    cr_assert(x86_cpu_policy_hides(&p, "avx2"));
    cr_assert(x86_cpu_policy_hides(&p, "sse3"));
    cr_assert_not(x86_cpu_policy_hides(&p, "avx"));
    cr_assert_not(x86_cpu_policy_hides(&p, "popcnt"));
    cr_assert_not(x86_cpu_policy_hides(&p, "nosuch"));

    /* Blanks around items, case, aliases from /proc/cpuinfo. */
    p = parse_ok(" -POPCNT ,\t-pni, -sha_ni,-lzcnt ");
    cr_assert(x86_cpu_policy_hides(&p, "popcnt"));
    cr_assert(x86_cpu_policy_hides(&p, "sse3"));
    cr_assert(x86_cpu_policy_hides(&p, "pni"));
    cr_assert(x86_cpu_policy_hides(&p, "sha"));
    cr_assert(x86_cpu_policy_hides(&p, "abm"));

    /* Repeats are harmless; a new parse replaces the old policy. */
    p = parse_ok("-aes,-aes");
    cr_assert(x86_cpu_policy_hides(&p, "aes"));
    cr_assert_not(x86_cpu_policy_hides(&p, "popcnt"));
}

Test(x86_cpu_policy, refuses_adding)
{
    parse_fails("+avx", "cpu-features: adding features is not supported (only -name)");
    parse_fails("-sse3,+avx", "adding features is not supported");
}

Test(x86_cpu_policy, refuses_unknown_and_bare_names)
{
    parse_fails("-nosuchfeature", "unknown feature 'nosuchfeature'");
    parse_fails("-avx2,-frobnicate", "'frobnicate'");
    parse_fails("avx", "'avx' should be '-avx'");
    parse_fails("-", "without a feature name");
    /* A very long name is quoted back truncated, not overflowing anything. */
    char longname[600];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[0] = '-';
    longname[sizeof(longname) - 1] = '\0';
    parse_fails(longname, "unknown feature 'xxxx");
}

Test(x86_cpu_policy, refuses_empty_items)
{
    parse_fails("-xsave,,-avx", "empty item");
    parse_fails("-xsave,", "empty item");
    parse_fails(",-xsave", "empty item");
    parse_fails(" ", "empty item");
    parse_fails(",", "empty item");
}

Test(x86_cpu_policy, refuses_fixed_features)
{
    const char *fixed[] = {"-lm",   "-nx",  "-pdpe1gb", "-rdtscp", "-syscall",
                           "-sse2", "-fpu", "-pae",     "-apic",   "-hypervisor"};
    for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
        parse_fails(fixed[i], "cannot be hidden");
    parse_fails("-lm", "'lm' cannot be hidden: ");
}

Test(x86_cpu_policy, every_feature_is_either_hideable_or_explained)
{
    unsigned n = 0, fixed = 0;
    for (unsigned i = 0; x86_cpu_feature_name(i); i++, n++) {
        char spec[64];
        snprintf(spec, sizeof(spec), "-%s", x86_cpu_feature_name(i));
        if (x86_cpu_feature_fixed_reason(i)) {
            fixed++;
            parse_fails(spec, "cannot be hidden");
        } else {
            reset_err();
            struct x86_cpu_policy p = parse_ok(spec);
            cr_assert(x86_cpu_policy_hides(&p, x86_cpu_feature_name(i)));
        }
    }
    cr_assert_gt(n, 100);
    cr_assert_gt(fixed, 5);
    cr_assert_null(x86_cpu_feature_name(n));
    cr_assert_null(x86_cpu_feature_fixed_reason(n));
}

Test(x86_cpu_policy, xsave_takes_its_dependents)
{
    struct x86_cpu_policy p = parse_ok("-xsave");
    const char *gone[] = {"xsave",      "osxsave",     "avx",         "avx2",        "fma",
                          "f16c",       "avx512f",     "avx512dq",    "avx512bw",    "avx512vl",
                          "avx512cd",   "avx512_vnni", "avx512_fp16", "avx512_bf16", "vaes",
                          "vpclmulqdq", "avx_vnni",    "xsaveopt",    "xsavec",      "xgetbv1",
                          "xsaves",     "mpx",         "pku",         "amx_tile",    "amx_int8",
                          "xop",        "fma4"};
    for (size_t i = 0; i < ARRAY_SIZE(gone); i++)
        cr_assert(x86_cpu_policy_hides(&p, gone[i]), "-xsave should hide %s", gone[i]);
    const char *kept[] = {"sse4_2", "aes", "pclmulqdq", "gfni", "sha", "bmi1", "popcnt", "x2apic"};
    for (size_t i = 0; i < ARRAY_SIZE(kept); i++)
        cr_assert_not(x86_cpu_policy_hides(&p, kept[i]), "-xsave should keep %s", kept[i]);
}

Test(x86_cpu_policy, partial_dependents)
{
    struct x86_cpu_policy p = parse_ok("-avx512f");
    cr_assert(x86_cpu_policy_hides(&p, "avx512vl"));
    cr_assert(x86_cpu_policy_hides(&p, "avx512_vpopcntdq"));
    cr_assert_not(x86_cpu_policy_hides(&p, "avx2"));
    cr_assert_not(x86_cpu_policy_hides(&p, "xsave"));

    p = parse_ok("-avx2");
    cr_assert(x86_cpu_policy_hides(&p, "avx512f"));
    cr_assert(x86_cpu_policy_hides(&p, "avx_vnni"));
    cr_assert_not(x86_cpu_policy_hides(&p, "avx"));
    cr_assert_not(x86_cpu_policy_hides(&p, "fma"));
}

/* ---- KVM's real table and real vCPUs ---- */

static int kvm_fd = -1, vm_fd = -1;

static void kvm_open(void)
{
    reset_err();
    kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    cr_assert_geq(kvm_fd, 0, "/dev/kvm: %s", strerror(errno));
    vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
    cr_assert_geq(vm_fd, 0, "KVM_CREATE_VM: %s", strerror(errno));
}

static void kvm_close(void)
{
    if (vm_fd >= 0)
        close(vm_fd);
    if (kvm_fd >= 0)
        close(kvm_fd);
}

static struct kvm_cpuid2 *supported(void)
{
    struct kvm_cpuid2 *c = NULL;
    cr_assert_eq(x86_cpuid_get_supported(kvm_fd, &c, &err), 0, "%s", err.msg);
    cr_assert_not_null(c);
    return c;
}

static void set_cpuid(int vcpu, const struct kvm_cpuid2 *c, const char *what)
{
    cr_assert_eq(ioctl(vcpu, KVM_SET_CPUID2, c), 0, "KVM_SET_CPUID2 (%s): %s", what,
                 strerror(errno));
}

Test(x86_cpuid_kvm, supported_table, .init = kvm_open, .fini = kvm_close)
{
    struct kvm_cpuid2 *c = supported();
    cr_assert_gt(c->nent, 4);
    cr_assert_not_null(x86_cpuid_find(c, 0, 0));
    cr_assert_not_null(x86_cpuid_find(c, 1, 0));
    /* Topology leaves KVM reports come with the subleaf 1 that apply() fills. */
    const uint32_t topo[] = {0xb, 0x1f};
    for (size_t i = 0; i < ARRAY_SIZE(topo); i++) {
        bool has0 = false, has1 = false;
        for (uint32_t j = 0; j < c->nent; j++) {
            has0 |= c->entries[j].function == topo[i] && c->entries[j].index == 0;
            has1 |= c->entries[j].function == topo[i] && c->entries[j].index == 1;
        }
        cr_assert(!has0 || has1, "leaf 0x%x lacks subleaf 1", topo[i]);
    }
    free(c);

    reset_err();
    struct kvm_cpuid2 *none = (struct kvm_cpuid2 *)1;
    cr_assert_lt(x86_cpuid_get_supported(-1, &none, &err), 0);
    cr_assert_null(none);
    cr_assert_eq(err.exit_code, WISP_EXIT_HOST);
    cr_assert(strstr(err.msg, "KVM_GET_SUPPORTED_CPUID"), "%s", err.msg);
}

Test(x86_cpuid_kvm, installed_on_vcpus, .init = kvm_open, .fini = kvm_close)
{
    const unsigned n = 4;
    struct kvm_cpuid2 *sup = supported();

    for (unsigned i = 0; i < n; i++) {
        int vcpu = ioctl(vm_fd, KVM_CREATE_VCPU, i);
        cr_assert_geq(vcpu, 0, "KVM_CREATE_VCPU: %s", strerror(errno));
        struct kvm_cpuid2 *c = x86_cpuid_dup(sup);
        cr_assert_not_null(c);
        cr_assert_eq(x86_cpuid_apply(c, i, n, NULL), 0);
        set_cpuid(vcpu, c, "plain");

        /* Read back what KVM stored. */
        struct {
            struct kvm_cpuid2 hdr;
            struct kvm_cpuid_entry2 e[X86_CPUID_MAX_ENTRIES / 8];
        } back;
        memset(&back, 0, sizeof(back));
        back.hdr.nent = ARRAY_SIZE(back.e);
        cr_assert_eq(ioctl(vcpu, KVM_GET_CPUID2, &back), 0, "KVM_GET_CPUID2: %s", strerror(errno));
        struct kvm_cpuid_entry2 *l1 = x86_cpuid_find(&back.hdr, 1, 0);
        cr_assert_not_null(l1);
        cr_assert_eq(l1->ebx >> 24, i);
        cr_assert(l1->ecx & (1U << 31));
        cr_assert(l1->edx & (1U << 28));
        struct kvm_cpuid_entry2 *b1 = x86_cpuid_find(&back.hdr, 0xb, 1);
        if (b1) {
            cr_assert_eq(b1->edx, i);
            cr_assert_eq(b1->ebx, n);
        }
        free(c);
        close(vcpu);
    }
    free(sup);
}

Test(x86_cpuid_kvm, every_policy_is_accepted_by_kvm, .init = kvm_open, .fini = kvm_close)
{
    struct kvm_cpuid2 *sup = supported();
    int vcpu = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
    cr_assert_geq(vcpu, 0, "KVM_CREATE_VCPU: %s", strerror(errno));

    for (unsigned i = 0; x86_cpu_feature_name(i); i++) {
        if (x86_cpu_feature_fixed_reason(i))
            continue;
        char spec[64];
        snprintf(spec, sizeof(spec), "-%s", x86_cpu_feature_name(i));
        struct x86_cpu_policy p = parse_ok(spec);
        struct kvm_cpuid2 *c = x86_cpuid_dup(sup);
        cr_assert_not_null(c);
        cr_assert_eq(x86_cpuid_apply(c, 0, 2, &p), 0);
        set_cpuid(vcpu, c, spec);
        free(c);
    }

    /* The practical mask for hosts that cannot emulate XSAVE. */
    struct x86_cpu_policy p = parse_ok("-xsave,-popcnt,-cx16");
    struct kvm_cpuid2 *c = x86_cpuid_dup(sup);
    cr_assert_eq(x86_cpuid_apply(c, 0, 2, &p), 0);
    set_cpuid(vcpu, c, "-xsave,-popcnt,-cx16");
    struct kvm_cpuid_entry2 *l1 = x86_cpuid_find(c, 1, 0);
    cr_assert_not(l1->ecx & ((1U << 26) | (1U << 28) | (1U << 23) | (1U << 13)));
    free(c);
    free(sup);
    close(vcpu);
}
