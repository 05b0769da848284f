/*
 * x86_cpuid_apply(), x86_cpuid_find() and x86_cpuid_dup() on hand-made
 * tables (Intel- and AMD-like): topology, OS-state bits, and what hiding
 * features clears, down to leaf 0xD's XSAVE state.  Policies come from
 * parse_ok() (test_cpuid.c); KVM's real table is tested there too.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/cpuid.h"
#include "tests/unit/arch/x86_64/test_cpuid.h"

#define SIG KVM_CPUID_FLAG_SIGNIFCANT_INDEX

TestSuite(x86_cpuid, .init = reset_err);

/* ---- apply on synthetic tables ---- */

struct fake {
    struct kvm_cpuid2 hdr;
    struct kvm_cpuid_entry2 e[48];
};

static struct kvm_cpuid_entry2 *add(struct fake *f, uint32_t leaf, uint32_t sub, uint32_t flags,
                                    uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
    cr_assert_lt(f->hdr.nent, ARRAY_SIZE(f->e));
    struct kvm_cpuid_entry2 *e = &f->e[f->hdr.nent++];
    memset(e, 0, sizeof(*e));
    e->function = leaf;
    e->index = sub;
    e->flags = flags;
    e->eax = a;
    e->ebx = b;
    e->ecx = c;
    e->edx = d;
    return e;
}

/* Vendor strings in leaf 0 register order EBX, EDX, ECX. */
static void add_vendor(struct fake *f, const char *v, uint32_t max)
{
    uint32_t r[3];
    memcpy(r, v, 12);
    add(f, 0, 0, 0, max, r[0], r[2], r[1]);
}

/*
 * An Intel-like table with every feature bit set and a topology that is
 * clearly not ours (host-like APIC id, 16 logical processors, shared caches).
 */
static void intel_table(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    add_vendor(f, "GenuineIntel", 0x1f);
    add(f, 1, 0, 0, 0x000806f8, 0x2a100800, 0xfffffffe & ~(1U << 31), 0xffffffff);
    /* L1d, L1i, L2, L3 and the null terminator. */
    add(f, 4, 0, SIG, 0x7c004121, 0x02c0003f, 0x3f, 0);
    add(f, 4, 1, SIG, 0x7c004122, 0x01c0003f, 0x3f, 0);
    add(f, 4, 2, SIG, 0x7c004143, 0x03c0003f, 0x7ff, 0);
    add(f, 4, 3, SIG, 0x7c07c163, 0x04c0003f, 0x3fff, 0);
    add(f, 4, 4, SIG, 0, 0, 0, 0);
    add(f, 6, 0, 0, 0x4, 0, 0, 0);
    add(f, 7, 0, SIG, 1, 0xffffffff, 0xffffffff, 0xffffffff);
    add(f, 7, 1, SIG, 0x30, 0, 0, 0);
    add(f, 0xb, 0, SIG, 1, 2, 0x100, 7);
    add(f, 0xb, 1, SIG, 5, 16, 0x201, 7);
    add(f, 0xb, 2, SIG, 0, 0, 2, 7);
    /* x87|SSE|AVX|opmask|ZMM_Hi256|Hi16_ZMM|PKRU; sizes as on real hardware. */
    add(f, 0xd, 0, SIG, 0x2e7, 0xa88, 0xa88, 0);
    add(f, 0xd, 1, SIG, 0xf, 0, 0x100, 0);
    add(f, 0xd, 2, SIG, 0x100, 0x240, 0, 0);
    add(f, 0xd, 5, SIG, 0x40, 0x440, 0, 0);
    add(f, 0xd, 6, SIG, 0x200, 0x480, 0, 0);
    add(f, 0xd, 7, SIG, 0x400, 0x680, 0, 0);
    add(f, 0xd, 8, SIG, 0x80, 0, 1, 0); /* PT: supervisor (XSS) */
    add(f, 0xd, 9, SIG, 0x8, 0xa80, 0, 0);
    add(f, 0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d);
    add(f, 0x80000000, 0, 0, 0x80000008, 0, 0, 0);
    add(f, 0x80000001, 0, 0, 0, 0, 0x121, 0x2c100800);
    add(f, 0x80000008, 0, 0, 0x3027, 0, 0, 0);
}

static void amd_table(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    add_vendor(f, "AuthenticAMD", 0x10);
    add(f, 1, 0, 0, 0x00a00f11, 0x04100800, 0x7ef8320b, 0x178bfbff);
    add(f, 7, 0, SIG, 0, 0x219c97a9, 0x0040068c, 0x10);
    add(f, 0x80000000, 0, 0, 0x80000021, 0, 0, 0);
    add(f, 0x80000001, 0, 0, 0x00a00f11, 0, 0x75c237ff, 0x2fd3fbff);
    add(f, 0x80000008, 0, 0, 0x3030, 0x7, 0x700f, 0);
    add(f, 0x8000001d, 0, SIG, 0x4121, 0x01c0003f, 0x3f, 0);
    add(f, 0x8000001d, 1, SIG, 0x4163, 0x03c0003f, 0x7ff, 0x2);
    add(f, 0x8000001d, 2, SIG, 0x3c163, 0x03c0003f, 0x7fff, 0x1);
    add(f, 0x8000001d, 3, SIG, 0, 0, 0, 0);
    add(f, 0x8000001e, 0, 0, 0x1b, 0x10d, 0x1, 0);
}

static struct kvm_cpuid_entry2 *get(struct fake *f, uint32_t leaf, uint32_t sub)
{
    struct kvm_cpuid_entry2 *e = x86_cpuid_find(&f->hdr, leaf, sub);
    cr_assert_not_null(e, "leaf 0x%x.%u missing", leaf, sub);
    return e;
}

static void apply_ok(struct fake *f, unsigned index, unsigned n, const struct x86_cpu_policy *p)
{
    cr_assert_eq(x86_cpuid_apply(&f->hdr, index, n, p), 0);
}

Test(x86_cpuid, find_matches_like_kvm)
{
    struct fake f;
    intel_table(&f);
    cr_assert_eq(get(&f, 4, 2)->index, 2);
    cr_assert_eq(get(&f, 0xd, 9)->eax, 0x8);
    cr_assert_null(x86_cpuid_find(&f.hdr, 0xd, 3));
    /* A leaf without a significant index answers every subleaf. */
    cr_assert_eq(get(&f, 1, 5)->function, 1);
    cr_assert_null(x86_cpuid_find(&f.hdr, 0x12, 0));
    cr_assert_null(x86_cpuid_find(NULL, 1, 0));
}

Test(x86_cpuid, dup_copies_everything)
{
    struct fake f;
    intel_table(&f);
    struct kvm_cpuid2 *d = x86_cpuid_dup(&f.hdr);
    cr_assert_not_null(d);
    cr_assert_eq(d->nent, f.hdr.nent);
    cr_assert_eq(memcmp(d->entries, f.e, f.hdr.nent * sizeof(f.e[0])), 0);
    d->entries[0].eax = 0;
    cr_assert_eq(f.e[0].eax, 0x1f, "the copy is independent");
    free(d);

    f.hdr.nent = X86_CPUID_MAX_ENTRIES + 1;
    cr_assert_null(x86_cpuid_dup(&f.hdr));
    cr_assert_null(x86_cpuid_dup(NULL));
}

Test(x86_cpuid, rejects_bad_arguments)
{
    struct fake f;
    intel_table(&f);
    cr_assert_eq(x86_cpuid_apply(&f.hdr, 0, 0, NULL), -EINVAL);
    cr_assert_eq(x86_cpuid_apply(&f.hdr, 2, 2, NULL), -EINVAL);
    cr_assert_eq(x86_cpuid_apply(&f.hdr, 0, X86_CPUID_MAX_VCPUS + 1, NULL), -EINVAL);
    cr_assert_eq(x86_cpuid_apply(NULL, 0, 1, NULL), -EINVAL);
    cr_assert_eq(x86_cpuid_apply(&f.hdr, X86_CPUID_MAX_VCPUS - 1, X86_CPUID_MAX_VCPUS, NULL), 0);
}

Test(x86_cpuid, leaf1_identity_and_flags)
{
    struct fake f;
    intel_table(&f);
    apply_ok(&f, 3, 4, NULL);
    struct kvm_cpuid_entry2 *e = get(&f, 1, 0);
    cr_assert(e->ecx & (1U << 31), "hypervisor bit");
    cr_assert_not(e->ecx & (1U << 27), "OSXSAVE starts clear");
    cr_assert_not(e->ecx & (1U << 5), "no nested VMX");
    cr_assert(e->ecx & (1U << 26), "XSAVE itself stays");
    cr_assert_eq(e->ebx >> 24, 3, "APIC id");
    cr_assert_eq((e->ebx >> 16) & 0xff, 4, "logical processor count");
    cr_assert_eq(e->ebx & 0xffff, 0x0800, "CLFLUSH size kept");
    cr_assert(e->edx & (1U << 28), "HTT with 4 vCPUs");
    cr_assert_eq(e->eax, 0x000806f8, "signature untouched");
    cr_assert_not(get(&f, 7, 0)->ecx & (1U << 4), "OSPKE starts clear");

    intel_table(&f);
    apply_ok(&f, 0, 1, NULL);
    e = get(&f, 1, 0);
    cr_assert_not(e->edx & (1U << 28), "no HTT with one vCPU");
    cr_assert_eq(e->ebx >> 24, 0);
    cr_assert_eq((e->ebx >> 16) & 0xff, 1);
}

Test(x86_cpuid, apic_ids_differ_per_vcpu)
{
    for (unsigned i = 0; i < 5; i++) {
        struct fake f;
        intel_table(&f);
        apply_ok(&f, i, 5, NULL);
        cr_assert_eq(get(&f, 1, 0)->ebx >> 24, i);
        for (uint32_t sub = 0; sub < 3; sub++)
            cr_assert_eq(get(&f, 0xb, sub)->edx, i, "leaf 0xB.%u EDX", sub);
    }
}

Test(x86_cpuid, extended_topology)
{
    struct fake f;
    intel_table(&f);
    apply_ok(&f, 2, 6, NULL);
    struct kvm_cpuid_entry2 *smt = get(&f, 0xb, 0), *core = get(&f, 0xb, 1), *inv = get(&f, 0xb, 2);
    cr_assert_eq(smt->eax, 0);
    cr_assert_eq(smt->ebx, 1);
    cr_assert_eq(smt->ecx, 0x100);
    cr_assert_eq(core->eax, 3, "6 vCPUs need 3 id bits");
    cr_assert_eq(core->ebx, 6);
    cr_assert_eq(core->ecx, 0x201);
    cr_assert_eq(inv->eax, 0);
    cr_assert_eq(inv->ebx, 0);
    cr_assert_eq(inv->ecx, 2);

    const unsigned n[] = {1, 2, 3, 4, 5, 8, 9, 255};
    const unsigned bits[] = {0, 1, 2, 2, 3, 3, 4, 8};
    for (size_t i = 0; i < ARRAY_SIZE(n); i++) {
        intel_table(&f);
        apply_ok(&f, 0, n[i], NULL);
        cr_assert_eq(get(&f, 0xb, 1)->eax, bits[i], "%u vCPUs", n[i]);
        cr_assert_eq(get(&f, 0xb, 1)->ebx, n[i]);
    }
}

Test(x86_cpuid, cache_leaf)
{
    struct fake f, orig;
    intel_table(&f);
    orig = f;
    apply_ok(&f, 1, 4, NULL);
    for (uint32_t sub = 0; sub < 4; sub++) {
        uint32_t eax = get(&f, 4, sub)->eax;
        unsigned level = (eax >> 5) & 7;
        cr_assert_eq(eax >> 26, 3, "cores per package - 1");
        cr_assert_eq((eax >> 14) & 0xfff, level >= 3 ? 3U : 0U, "sharing of L%u", level);
        cr_assert_eq(eax & 0x3fff, get(&orig, 4, sub)->eax & 0x3fff, "type/level kept");
    }
    cr_assert_eq(get(&f, 4, 3)->ebx, 0x04c0003f, "geometry kept");
    cr_assert_eq(get(&f, 4, 4)->eax, 0, "terminator untouched");

    /* The 6-bit core field saturates; leaf 0xB carries the real count. */
    intel_table(&f);
    apply_ok(&f, 0, 200, NULL);
    cr_assert_eq(get(&f, 4, 0)->eax >> 26, 63);
    cr_assert_eq((get(&f, 4, 3)->eax >> 14) & 0xfff, 199);
}

Test(x86_cpuid, other_leaves_untouched)
{
    struct fake f, orig;
    intel_table(&f);
    orig = f;
    apply_ok(&f, 0, 2, NULL);
    const uint32_t same[] = {0, 6, 0xd, 0x40000000, 0x80000000, 0x80000008};
    for (uint32_t i = 0; i < f.hdr.nent; i++) {
        for (size_t j = 0; j < ARRAY_SIZE(same); j++)
            if (f.e[i].function == same[j])
                cr_assert_eq(memcmp(&f.e[i], &orig.e[i], sizeof(f.e[i])), 0, "leaf 0x%x.%u changed",
                             f.e[i].function, f.e[i].index);
    }
    cr_assert_eq(get(&f, 7, 0)->ebx, 0xffffffff);
    cr_assert_eq(get(&f, 7, 0)->edx, 0xffffffff);
    cr_assert_eq(get(&f, 0x80000001, 0)->edx, 0x2c100800);
}

/* Registers that differ between two tables of the same shape, as (entry, reg, xor) triples. */
static unsigned diff_bits(const struct fake *a, const struct fake *b, uint32_t leaf, uint32_t sub,
                          int reg)
{
    cr_assert_eq(a->hdr.nent, b->hdr.nent);
    for (uint32_t i = 0; i < a->hdr.nent; i++) {
        if (a->e[i].function != leaf || a->e[i].index != sub)
            continue;
        const uint32_t ra[4] = {a->e[i].eax, a->e[i].ebx, a->e[i].ecx, a->e[i].edx};
        const uint32_t rb[4] = {b->e[i].eax, b->e[i].ebx, b->e[i].ecx, b->e[i].edx};
        return ra[reg] ^ rb[reg];
    }
    cr_assert_fail("leaf 0x%x.%u missing", leaf, sub);
    return 0;
}

static unsigned count_diffs(const struct fake *a, const struct fake *b)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < a->hdr.nent; i++)
        n += memcmp(&a->e[i], &b->e[i], sizeof(a->e[i])) != 0;
    return n;
}

Test(x86_cpuid, masked_bits_cleared_others_untouched)
{
    struct fake plain, masked;
    struct x86_cpu_policy p = parse_ok("-popcnt,-rdpid,-lahf_lm,-xsaveopt");
    intel_table(&plain);
    intel_table(&masked);
    apply_ok(&plain, 1, 2, NULL);
    apply_ok(&masked, 1, 2, &p);

    cr_assert_eq(diff_bits(&plain, &masked, 1, 0, 2), 1U << 23);
    cr_assert_not(get(&masked, 1, 0)->ecx & (1U << 23));
    cr_assert_eq(diff_bits(&plain, &masked, 7, 0, 2), 1U << 22);
    cr_assert_eq(diff_bits(&plain, &masked, 0x80000001, 0, 2), 1U << 0);
    cr_assert_eq(diff_bits(&plain, &masked, 0xd, 1, 0), 1U << 0);
    cr_assert_eq(count_diffs(&plain, &masked), 4, "only the four entries change");
}

Test(x86_cpuid, ht_hidden_wins_over_topology)
{
    struct fake f;
    struct x86_cpu_policy p = parse_ok("-ht");
    intel_table(&f);
    apply_ok(&f, 0, 4, &p);
    cr_assert_not(get(&f, 1, 0)->edx & (1U << 28));
}

Test(x86_cpuid, hide_xsave_clears_dependents_and_leaf_d)
{
    struct fake plain, f;
    struct x86_cpu_policy p = parse_ok("-xsave");
    intel_table(&plain);
    intel_table(&f);
    apply_ok(&plain, 0, 1, NULL);
    apply_ok(&f, 0, 1, &p);

    /* xsave, osxsave (already clear), avx, fma, f16c. */
    cr_assert_eq(diff_bits(&plain, &f, 1, 0, 2), (1U << 26) | (1U << 28) | (1U << 12) | (1U << 29));
    uint32_t ebx7 = get(&f, 7, 0)->ebx;
    cr_assert_not(ebx7 & (1U << 5), "avx2");
    cr_assert_not(ebx7 & (1U << 16), "avx512f");
    cr_assert_not(ebx7 & (1U << 31), "avx512vl");
    cr_assert_not(ebx7 & (1U << 14), "mpx");
    cr_assert(ebx7 & (1U << 3), "bmi1 stays");
    cr_assert(ebx7 & (1U << 29), "sha stays");
    cr_assert_not(get(&f, 7, 0)->ecx & (1U << 3), "pku");
    cr_assert(get(&f, 7, 0)->ecx & (1U << 8), "gfni stays");
    cr_assert_not(get(&f, 7, 1)->eax & (1U << 4), "avx_vnni");
    cr_assert(get(&f, 1, 0)->ecx & (1U << 20), "sse4_2 stays");
    cr_assert(get(&f, 1, 0)->ecx & (1U << 25), "aes stays");

    for (uint32_t i = 0; i < f.hdr.nent; i++) {
        const struct kvm_cpuid_entry2 *e = &f.e[i];
        if (e->function == 0xd)
            cr_assert(!e->eax && !e->ebx && !e->ecx && !e->edx, "0xD.%u not cleared", e->index);
    }
}

Test(x86_cpuid, hide_avx512_trims_xsave_state)
{
    struct fake f;
    struct x86_cpu_policy p = parse_ok("-avx512f");
    intel_table(&f);
    apply_ok(&f, 0, 1, &p);
    struct kvm_cpuid_entry2 *d0 = get(&f, 0xd, 0);
    cr_assert_eq(d0->eax, 0x207, "x87|SSE|AVX|PKRU remain");
    cr_assert_eq(d0->ecx, 0xa88, "PKRU at 0xa80 + 8 is still the end");
    cr_assert_eq(get(&f, 0xd, 5)->eax, 0);
    cr_assert_eq(get(&f, 0xd, 7)->ebx, 0);
    cr_assert_eq(get(&f, 0xd, 2)->eax, 0x100, "AVX component kept");
    cr_assert(get(&f, 7, 0)->ebx & (1U << 5), "avx2 kept");

    /* Hiding PKRU's owner too shrinks the area to AVX's end. */
    intel_table(&f);
    p = parse_ok("-avx512f,-pku");
    apply_ok(&f, 0, 1, &p);
    cr_assert_eq(get(&f, 0xd, 0)->eax, 0x7);
    cr_assert_eq(get(&f, 0xd, 0)->ecx, 0x340);

    /* xsaves takes the supervisor components with it. */
    intel_table(&f);
    p = parse_ok("-xsaves");
    apply_ok(&f, 0, 1, &p);
    cr_assert_eq(get(&f, 0xd, 1)->eax, 0x7);
    cr_assert_eq(get(&f, 0xd, 1)->ecx, 0);
    cr_assert_eq(get(&f, 0xd, 8)->eax, 0, "PT component");
    cr_assert_eq(get(&f, 0xd, 0)->eax, 0x2e7, "user components stay");
}

Test(x86_cpuid, missing_leaves_tolerated)
{
    struct fake f;
    struct x86_cpu_policy p = parse_ok("-xsave,-ht,-popcnt,-avx512f");
    memset(&f, 0, sizeof(f));
    apply_ok(&f, 0, 1, &p); /* empty table */
    add_vendor(&f, "GenuineIntel", 1);
    add(&f, 1, 0, 0, 0, 0, 0x04800000, 0x10000000);
    apply_ok(&f, 1, 2, &p);
    cr_assert_eq(f.hdr.nent, 2, "nothing appended");
    cr_assert_eq(get(&f, 1, 0)->ebx >> 24, 1);
    cr_assert_eq(get(&f, 1, 0)->ecx, 0x80000000U, "popcnt and xsave hidden, hypervisor set");
}

Test(x86_cpuid, topology_leaf_without_subleaf1_is_zeroed)
{
    struct fake f;
    memset(&f, 0, sizeof(f));
    add_vendor(&f, "GenuineIntel", 0xb);
    add(&f, 0xb, 0, SIG, 1, 2, 0x100, 5);
    apply_ok(&f, 1, 2, NULL);
    struct kvm_cpuid_entry2 *e = get(&f, 0xb, 0);
    cr_assert(!e->eax && !e->ebx && !e->ecx && !e->edx);
}

Test(x86_cpuid, amd_topology)
{
    struct fake f;
    struct x86_cpu_policy p = parse_ok("-pat");
    amd_table(&f);
    apply_ok(&f, 2, 3, &p);

    cr_assert_eq(get(&f, 1, 0)->ebx >> 24, 2);
    uint32_t ecx8 = get(&f, 0x80000008, 0)->ecx;
    cr_assert_eq(ecx8 & 0xff, 2, "NC = nvcpus - 1");
    cr_assert_eq((ecx8 >> 12) & 0xf, 2, "ApicIdSize");
    cr_assert_eq(get(&f, 0x80000008, 0)->eax, 0x3030, "address sizes kept");
    struct kvm_cpuid_entry2 *t = get(&f, 0x8000001e, 0);
    cr_assert_eq(t->eax, 2);
    cr_assert_eq(t->ebx, 2, "core id 2, one thread per core");
    cr_assert_eq(t->ecx, 0);
    cr_assert_eq((get(&f, 0x8000001d, 0)->eax >> 14) & 0xfff, 0, "L1 private");
    cr_assert_eq((get(&f, 0x8000001d, 2)->eax >> 14) & 0xfff, 2, "L3 shared");
    cr_assert_eq(get(&f, 0x8000001d, 2)->eax >> 26, 0, "reserved on AMD");
    cr_assert_not(get(&f, 0x80000001, 0)->ecx & (1U << 2), "no nested SVM");
    cr_assert_not(get(&f, 1, 0)->edx & (1U << 16), "pat");
    cr_assert_not(get(&f, 0x80000001, 0)->edx & (1U << 16), "pat mirror");
    cr_assert(get(&f, 0x80000001, 0)->edx & (1U << 17), "pse36 mirror kept");
}

Test(x86_cpuid, intel_table_ignores_amd_leaves)
{
    struct fake f;
    intel_table(&f);
    add(&f, 0x8000001e, 0, 0, 0x11, 0x22, 0x33, 0x44);
    apply_ok(&f, 1, 2, NULL);
    cr_assert_eq(get(&f, 0x80000008, 0)->ecx, 0);
    cr_assert_eq(get(&f, 0x8000001e, 0)->eax, 0x11);
}
