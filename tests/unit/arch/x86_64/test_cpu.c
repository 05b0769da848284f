/*
 * Boot CPU state: descriptor encoding (checked by an independent decoder
 * written from the SDM's descriptor layout), the GDT and page tables in guest
 * memory, and registers, FPU and LAPIC on real vCPUs read back from KVM.
 * No guest code runs.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/cpuid.h"
#include "arch/x86_64/layout.h"

static struct errbuf err;
static struct gmem gm;
static int kvm_fd = -1, vm_fd = -1;

static void reset_err(void)
{
    memset(&err, 0, sizeof(err));
}

static void mem_setup(void)
{
    struct gmem_range r = {0, 16 * MiB};
    reset_err();
    cr_assert_eq(gmem_create(&gm, &r, 1, false, &err), 0, "%s", err.msg);
    /* Garbage first: the writers must produce every byte they own. */
    memset(gmem_ptr(&gm, 0, 1 * MiB), 0xa5, 1 * MiB);
}

static void mem_teardown(void)
{
    gmem_destroy(&gm);
}

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

TestSuite(x86_gdt, .init = reset_err);
TestSuite(x86_boot_mem, .init = mem_setup, .fini = mem_teardown);
TestSuite(x86_vcpu_kvm, .init = kvm_open, .fini = kvm_close);

/* ---- descriptors ---- */

struct decoded {
    uint32_t base, limit; /* limit as stored (20 bits) */
    unsigned type, s, dpl, p, avl, l, db, g;
};

static struct decoded decode(uint64_t d)
{
    struct decoded x;
    x.limit = (uint32_t)((d & 0xffff) | (((d >> 48) & 0xf) << 16));
    x.base = (uint32_t)(((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24));
    x.type = (d >> 40) & 0xf;
    x.s = (d >> 44) & 1;
    x.dpl = (d >> 45) & 3;
    x.p = (d >> 47) & 1;
    x.avl = (d >> 52) & 1;
    x.l = (d >> 53) & 1;
    x.db = (d >> 54) & 1;
    x.g = (d >> 55) & 1;
    return x;
}

Test(x86_gdt, known_encodings)
{
    /* The flat descriptors every x86 boot loader uses. */
    cr_assert_eq(x86_gdt_entry(0xc09b, 0, 0xfffff), 0x00cf9b000000ffffULL);
    cr_assert_eq(x86_gdt_entry(0xa09b, 0, 0xfffff), 0x00af9b000000ffffULL);
    cr_assert_eq(x86_gdt_entry(0xc093, 0, 0xfffff), 0x00cf93000000ffffULL);
    cr_assert_eq(x86_gdt_entry(0x008b, 0, 0x67), 0x00008b0000000067ULL);
    /* Bits 8-11 of flags are ignored. */
    cr_assert_eq(x86_gdt_entry(0xcf9b, 0, 0xfffff), 0x00cf9b000000ffffULL);
}

Test(x86_gdt, base_and_limit_fields)
{
    uint16_t flags = X86_DESC_P | X86_DESC_S | X86_DESC_DPL(3) | X86_DESC_AVL |
                     X86_DESC_TYPE(X86_SEG_TYPE_DATA_RW);
    struct decoded x = decode(x86_gdt_entry(flags, 0x12345678, 0xabcde));
    cr_assert_eq(x.base, 0x12345678);
    cr_assert_eq(x.limit, 0xabcde);
    cr_assert_eq(x.type, 3);
    cr_assert_eq(x.s, 1);
    cr_assert_eq(x.dpl, 3);
    cr_assert_eq(x.p, 1);
    cr_assert_eq(x.avl, 1);
    cr_assert_eq(x.l + x.db + x.g, 0);
    /* Limit bits above 20 do not leak into the flags. */
    x = decode(x86_gdt_entry(flags, 0, 0xffffffff));
    cr_assert_eq(x.limit, 0xfffff);
    cr_assert_eq(x.g + x.l + x.db, 0);
}

Test(x86_gdt, segment_matches_descriptor)
{
    struct kvm_segment s = x86_gdt_segment(0x10, 0xa09b, 0, 0xfffff);
    cr_assert_eq(s.selector, 0x10);
    cr_assert_eq(s.base, 0);
    cr_assert_eq(s.limit, 0xffffffff);
    cr_assert_eq(s.type, 0xb);
    cr_assert_eq(s.present, 1);
    cr_assert_eq(s.s, 1);
    cr_assert_eq(s.l, 1);
    cr_assert_eq(s.db, 0);
    cr_assert_eq(s.g, 1);
    cr_assert_eq(s.unusable, 0);

    s = x86_gdt_segment(0x20, 0x008b, 0x1000, 0x67);
    cr_assert_eq(s.limit, 0x67, "byte granular");
    cr_assert_eq(s.base, 0x1000);
    cr_assert_eq(s.s, 0);

    s = x86_gdt_segment(0, 0, 0, 0);
    cr_assert_eq(s.unusable, 1, "not present means unusable");

    struct kvm_segment b;
    cr_assert_eq(x86_boot_segment(0x28, &b), -ENOENT);
    cr_assert_eq(x86_boot_segment(0, &b), -ENOENT);
}

/* ---- guest memory ---- */

static uint64_t mem64(uint64_t gpa)
{
    uint64_t v;
    cr_assert_eq(gmem_read(&gm, gpa, &v, sizeof(v)), 0);
    return v;
}

static void check_slot(uint16_t sel, unsigned type, unsigned s, unsigned l, unsigned db,
                       uint32_t limit, unsigned g)
{
    struct decoded x = decode(mem64(X86_GDT_GPA + sel));
    cr_assert_eq(x.base, 0, "sel 0x%x", sel);
    cr_assert_eq(x.limit, limit, "sel 0x%x", sel);
    cr_assert_eq(x.type, type, "sel 0x%x", sel);
    cr_assert_eq(x.s, s, "sel 0x%x", sel);
    cr_assert_eq(x.dpl, 0, "sel 0x%x", sel);
    cr_assert_eq(x.p, 1, "sel 0x%x", sel);
    cr_assert_eq(x.l, l, "sel 0x%x", sel);
    cr_assert_eq(x.db, db, "sel 0x%x", sel);
    cr_assert_eq(x.g, g, "sel 0x%x", sel);

    /* The cached register the vCPU gets says the same. */
    struct kvm_segment seg;
    cr_assert_eq(x86_boot_segment(sel, &seg), 0);
    cr_assert_eq(seg.selector, sel);
    cr_assert_eq(seg.base, x.base);
    cr_assert_eq(seg.limit, x.g ? (x.limit << 12) | 0xfff : x.limit);
    cr_assert_eq(seg.type, x.type);
    cr_assert_eq(seg.s, x.s);
    cr_assert_eq(seg.dpl, x.dpl);
    cr_assert_eq(seg.present, x.p);
    cr_assert_eq(seg.l, x.l);
    cr_assert_eq(seg.db, x.db);
    cr_assert_eq(seg.g, x.g);
    cr_assert_eq(seg.avl, x.avl);
}

Test(x86_boot_mem, gdt)
{
    cr_assert_eq(x86_write_boot_gdt(&gm), 0);
    cr_assert_eq(mem64(X86_GDT_GPA), 0, "null descriptor");
    check_slot(X86_SEL_CODE32, 0xb, 1, 0, 1, 0xfffff, 1);
    check_slot(X86_SEL_CODE64, 0xb, 1, 1, 0, 0xfffff, 1);
    check_slot(X86_SEL_DATA, 0x3, 1, 0, 1, 0xfffff, 1);
    check_slot(X86_SEL_TSS, 0xb, 0, 0, 0, 0x67, 0);
    cr_assert_eq(mem64(X86_GDT_GPA + X86_SEL_TSS + 8), 0, "TSS base[63:32]");
    /* Nothing written past the GDT. */
    cr_assert_eq(mem64(X86_GDT_GPA + X86_BOOT_GDT_SIZE), 0xa5a5a5a5a5a5a5a5ULL);
}

Test(x86_boot_mem, pagetables)
{
    cr_assert_eq(x86_write_boot_pagetables(&gm), 0);
    const uint64_t flags = X86_PTE_P | X86_PTE_RW;

    cr_assert_eq(mem64(X86_PML4_GPA), X86_PDPT_GPA | flags);
    for (unsigned i = 1; i < 512; i++)
        cr_assert_eq(mem64(X86_PML4_GPA + 8 * i), 0, "PML4[%u]", i);
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(mem64(X86_PDPT_GPA + 8 * i), (X86_PD_GPA + i * PAGE_SIZE) | flags);
    for (unsigned i = 4; i < 512; i++)
        cr_assert_eq(mem64(X86_PDPT_GPA + 8 * i), 0, "PDPT[%u]", i);

    /* Every 2 MiB page below 4 GiB, identity mapped. */
    for (uint64_t n = 0; n < 2048; n++) {
        uint64_t pde = mem64(X86_PD_GPA + 8 * n);
        cr_assert_eq(pde, (n << 21) | flags | X86_PTE_PS, "PDE %llu", (unsigned long long)n);
    }
    cr_assert_eq(X86_PD_GPA + 4 * PAGE_SIZE, X86_PAGETABLE_END);
    cr_assert_eq(mem64(X86_PAGETABLE_END), 0xa5a5a5a5a5a5a5a5ULL, "wrote past the tables");
}

Test(x86_boot_mem, refuses_missing_ram)
{
    struct gmem high;
    struct gmem_range r = {1 * MiB, 1 * MiB};
    cr_assert_eq(gmem_create(&high, &r, 1, false, &err), 0, "%s", err.msg);
    cr_assert_eq(x86_write_boot_gdt(&high), -EFAULT);
    cr_assert_eq(x86_write_boot_pagetables(&high), -EFAULT);
    gmem_destroy(&high);
}

/* ---- vCPUs ---- */

static int new_vcpu(unsigned id)
{
    int vcpu = ioctl(vm_fd, KVM_CREATE_VCPU, id);
    cr_assert_geq(vcpu, 0, "KVM_CREATE_VCPU: %s", strerror(errno));
    struct kvm_cpuid2 *sup = NULL;
    cr_assert_eq(x86_cpuid_get_supported(kvm_fd, &sup, &err), 0, "%s", err.msg);
    cr_assert_eq(x86_cpuid_apply(sup, id, 2, NULL), 0);
    cr_assert_eq(ioctl(vcpu, KVM_SET_CPUID2, sup), 0, "KVM_SET_CPUID2: %s", strerror(errno));
    free(sup);
    return vcpu;
}

static void get_state(int vcpu, struct kvm_sregs *s, struct kvm_regs *r)
{
    cr_assert_eq(ioctl(vcpu, KVM_GET_SREGS, s), 0);
    cr_assert_eq(ioctl(vcpu, KVM_GET_REGS, r), 0);
}

static void check_common(const struct kvm_sregs *s, const struct kvm_regs *r, uint64_t entry)
{
    cr_assert_eq(r->rip, entry);
    cr_assert_eq(r->rflags, 0x2);
    cr_assert_eq(s->ds.selector, X86_SEL_DATA);
    cr_assert_eq(s->ss.selector, X86_SEL_DATA);
    cr_assert_eq(s->es.selector, X86_SEL_DATA);
    cr_assert_eq(s->fs.selector, X86_SEL_DATA);
    cr_assert_eq(s->gs.selector, X86_SEL_DATA);
    cr_assert_eq(s->ds.limit, 0xffffffff);
    cr_assert_eq(s->ss.db, 1);
    cr_assert_eq(s->tr.selector, X86_SEL_TSS);
    cr_assert_eq(s->tr.type, X86_SEG_TYPE_TSS_BUSY);
    cr_assert_eq(s->tr.present, 1);
    cr_assert(s->ldt.unusable || !s->ldt.present);
    cr_assert_eq(s->gdt.base, X86_GDT_GPA);
    cr_assert_eq(s->gdt.limit, X86_BOOT_GDT_SIZE - 1);
    cr_assert_eq(s->idt.base, X86_IDT_GPA);
}

Test(x86_vcpu_kvm, linux64_regs)
{
    int vcpu = new_vcpu(0);
    struct kvm_sregs s;
    struct kvm_regs r;

    cr_assert_eq(x86_vcpu_setup_regs(vcpu, X86_ENTRY_LINUX64, 0x1000000, X86_ZERO_PAGE_GPA, &err),
                 0, "%s", err.msg);
    get_state(vcpu, &s, &r);
    check_common(&s, &r, 0x1000000);
    cr_assert_eq(s.cr0 & (X86_CR0_PE | X86_CR0_PG | X86_CR0_NE),
                 X86_CR0_PE | X86_CR0_PG | X86_CR0_NE, "CR0 0x%llx", (unsigned long long)s.cr0);
    cr_assert_eq(s.cr0 & ((1ULL << 30) | (1ULL << 29)), 0, "caches enabled (CD, NW clear)");
    cr_assert_eq(s.cr3, X86_PML4_GPA);
    cr_assert_eq(s.cr4, X86_CR4_PAE);
    cr_assert_eq(s.efer & (X86_EFER_LME | X86_EFER_LMA), X86_EFER_LME | X86_EFER_LMA);
    cr_assert_eq(s.cs.selector, X86_SEL_CODE64);
    cr_assert_eq(s.cs.l, 1);
    cr_assert_eq(s.cs.db, 0);
    cr_assert_eq(r.rsi, X86_ZERO_PAGE_GPA);
    cr_assert_eq(r.rsp, X86_BOOT_STACK_GPA);
    cr_assert_eq(s.apic_base & X86_APIC_BASE_BSP, X86_APIC_BASE_BSP, "APIC base kept");
    close(vcpu);
}

Test(x86_vcpu_kvm, pvh_regs)
{
    int vcpu = new_vcpu(0);
    struct kvm_sregs s;
    struct kvm_regs r;

    cr_assert_eq(x86_vcpu_setup_regs(vcpu, X86_ENTRY_PVH, 0x1000123, X86_PVH_INFO_GPA, &err), 0,
                 "%s", err.msg);
    get_state(vcpu, &s, &r);
    check_common(&s, &r, 0x1000123);
    cr_assert(s.cr0 & X86_CR0_PE);
    cr_assert_not(s.cr0 & X86_CR0_PG);
    cr_assert_eq(s.cr4, 0);
    cr_assert_eq(s.efer & (X86_EFER_LME | X86_EFER_LMA), 0);
    cr_assert_eq(s.cs.selector, X86_SEL_CODE32);
    cr_assert_eq(s.cs.l, 0);
    cr_assert_eq(s.cs.db, 1);
    cr_assert_eq(s.cs.limit, 0xffffffff);
    cr_assert_eq(r.rbx, X86_PVH_INFO_GPA);
    close(vcpu);
}

Test(x86_vcpu_kvm, mode_switch_both_ways)
{
    /* The same vCPU can be set up twice (e.g. a reset), in either order. */
    int vcpu = new_vcpu(0);
    struct kvm_sregs s;
    struct kvm_regs r;
    cr_assert_eq(x86_vcpu_setup_regs(vcpu, X86_ENTRY_LINUX64, 0x200000, 0x7000, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(x86_vcpu_setup_regs(vcpu, X86_ENTRY_PVH, 0x100000, 0x6000, &err), 0, "%s",
                 err.msg);
    get_state(vcpu, &s, &r);
    cr_assert_eq(s.efer & X86_EFER_LMA, 0);
    cr_assert_eq(r.rsi, 0, "no stale 64-bit registers");
    cr_assert_eq(x86_vcpu_setup_regs(vcpu, X86_ENTRY_LINUX64, 0x200000, 0x7000, &err), 0, "%s",
                 err.msg);
    get_state(vcpu, &s, &r);
    cr_assert_eq(s.cs.l, 1);
    cr_assert_eq(r.rbx, 0);
    close(vcpu);
}

Test(x86_vcpu_kvm, refuses_entry_above_4g)
{
    int vcpu = new_vcpu(0);
    cr_assert_eq(x86_vcpu_setup_regs(vcpu, X86_ENTRY_PVH, 0x100000000ULL, 0x6000, &err), -EINVAL);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    reset_err();
    cr_assert_eq(x86_vcpu_setup_regs(vcpu, X86_ENTRY_LINUX64, 0x1000, 0x100000000ULL, &err),
                 -EINVAL);
    reset_err();
    cr_assert_lt(x86_vcpu_setup_regs(-1, X86_ENTRY_LINUX64, 0x1000, 0x7000, &err), 0);
    cr_assert_eq(err.exit_code, WISP_EXIT_FAILURE);
    cr_assert(strstr(err.msg, "KVM_GET_SREGS"), "%s", err.msg);
    close(vcpu);
}

Test(x86_vcpu_kvm, fpu)
{
    int vcpu = new_vcpu(0);
    struct kvm_fpu fpu;

    /* Dirty state first, so the read-back proves the write. */
    memset(&fpu, 0, sizeof(fpu));
    fpu.fcw = 0x27f;
    fpu.mxcsr = 0x1f00;
    fpu.fsw = 0x3800;
    cr_assert_eq(ioctl(vcpu, KVM_SET_FPU, &fpu), 0);
    memset(&fpu, 0, sizeof(fpu));
    cr_assert_eq(ioctl(vcpu, KVM_GET_FPU, &fpu), 0);
    cr_assert_eq(fpu.fcw, 0x27f);
    /* Some KVM implementations (this CI host's among them) do not report MXCSR here. */
    bool reports_mxcsr = fpu.mxcsr == 0x1f00;

    cr_assert_eq(x86_vcpu_setup_fpu(vcpu, &err), 0, "%s", err.msg);
    memset(&fpu, 0, sizeof(fpu));
    cr_assert_eq(ioctl(vcpu, KVM_GET_FPU, &fpu), 0);
    cr_assert_eq(fpu.fcw, 0x37f);
    cr_assert_eq(fpu.fsw, 0);
    cr_assert_eq(fpu.ftwx, 0);
    if (reports_mxcsr)
        cr_assert_eq(fpu.mxcsr, 0x1f80);
    else
        cr_log_info("KVM_GET_FPU does not report MXCSR on this host; not checked");
    close(vcpu);
}

static uint32_t lvt(int vcpu, unsigned reg)
{
    struct kvm_lapic_state l;
    cr_assert_eq(ioctl(vcpu, KVM_GET_LAPIC, &l), 0);
    return le32_get((uint8_t *)l.regs + reg);
}

/* Give both LINT pins a state setup must change: masked, fixed delivery. */
static void dirty_lints(int vcpu)
{
    struct kvm_lapic_state l;
    cr_assert_eq(ioctl(vcpu, KVM_GET_LAPIC, &l), 0);
    le32_put((uint8_t *)l.regs + X86_APIC_LVT_LINT0, X86_APIC_LVT_MASKED | 0x30);
    le32_put((uint8_t *)l.regs + X86_APIC_LVT_LINT1, X86_APIC_LVT_MASKED | 0x31);
    cr_assert_eq(ioctl(vcpu, KVM_SET_LAPIC, &l), 0);
}

Test(x86_vcpu_kvm, lapic_virtual_wire)
{
    cr_assert_eq(ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0), 0, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
    int bsp = new_vcpu(0), ap = new_vcpu(1);

    dirty_lints(bsp);
    dirty_lints(ap);
    cr_assert_eq(x86_vcpu_setup_lapic(bsp, &err), 0, "%s", err.msg);
    cr_assert_eq(x86_vcpu_setup_lapic(ap, &err), 0, "%s", err.msg);

    uint32_t l0 = lvt(bsp, X86_APIC_LVT_LINT0), l1 = lvt(bsp, X86_APIC_LVT_LINT1);
    cr_assert_eq(l0 & X86_APIC_LVT_DM_MASK, X86_APIC_LVT_DM_EXTINT);
    cr_assert_not(l0 & X86_APIC_LVT_MASKED, "BSP takes PIC interrupts");
    cr_assert_eq(l1 & X86_APIC_LVT_DM_MASK, X86_APIC_LVT_DM_NMI);
    cr_assert_not(l1 & X86_APIC_LVT_MASKED);

    l0 = lvt(ap, X86_APIC_LVT_LINT0);
    l1 = lvt(ap, X86_APIC_LVT_LINT1);
    cr_assert_eq(l0 & X86_APIC_LVT_DM_MASK, X86_APIC_LVT_DM_EXTINT);
    cr_assert(l0 & X86_APIC_LVT_MASKED, "APs leave PIC interrupts to the BSP");
    cr_assert_eq(l1 & X86_APIC_LVT_DM_MASK, X86_APIC_LVT_DM_NMI);
    cr_assert_not(l1 & X86_APIC_LVT_MASKED);

    /* The AP is still waiting for SIPI: nothing here gave it registers. */
    struct kvm_mp_state mp;
    cr_assert_eq(ioctl(ap, KVM_GET_MP_STATE, &mp), 0);
    cr_assert(mp.mp_state == KVM_MP_STATE_UNINITIALIZED ||
                  mp.mp_state == KVM_MP_STATE_INIT_RECEIVED,
              "AP mp_state %u", mp.mp_state);
    cr_assert_eq(ioctl(bsp, KVM_GET_MP_STATE, &mp), 0);
    cr_assert_eq(mp.mp_state, KVM_MP_STATE_RUNNABLE);
    close(bsp);
    close(ap);
}

Test(x86_vcpu_kvm, lapic_needs_irqchip)
{
    int vcpu = new_vcpu(0);
    cr_assert_lt(x86_vcpu_setup_lapic(vcpu, &err), 0);
    cr_assert_eq(err.exit_code, WISP_EXIT_FAILURE);
    cr_assert(strstr(err.msg, "KVM_GET_LAPIC"), "%s", err.msg);
    close(vcpu);
}
