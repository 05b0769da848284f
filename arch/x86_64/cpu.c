/* Boot-time GDT, page tables and vCPU register state for x86_64 (see cpu.h). */
#include "arch/x86_64/cpu.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86_64/layout.h"

#define FLAT_LIMIT 0xfffffU /* with G: 4 GiB */

#define CODE_FLAGS (X86_DESC_P | X86_DESC_S | X86_DESC_G | X86_DESC_TYPE(X86_SEG_TYPE_CODE_XR))
#define DATA_FLAGS                                                                                 \
    (X86_DESC_P | X86_DESC_S | X86_DESC_G | X86_DESC_DB | X86_DESC_TYPE(X86_SEG_TYPE_DATA_RW))
/*
 * The TSS is only there because VMX needs a usable, busy TR.  Nothing reads
 * it before the guest loads its own: interrupts are off and there is no
 * privilege change or IST use, so it may sit at 0 over the real-mode IVT.
 * It is busy in memory too, as after LTR, so memory matches the cached TR.
 */
#define TSS_FLAGS (X86_DESC_P | X86_DESC_TYPE(X86_SEG_TYPE_TSS_BUSY))

/* The one description of the boot GDT: written to memory and loaded into registers. */
static const struct {
    uint16_t selector;
    uint16_t flags;
    uint32_t base;
    uint32_t limit;
} boot_gdt[] = {
    {X86_SEL_CODE32, CODE_FLAGS | X86_DESC_DB, 0, FLAT_LIMIT},
    {X86_SEL_CODE64, CODE_FLAGS | X86_DESC_L, 0, FLAT_LIMIT},
    {X86_SEL_DATA, DATA_FLAGS, 0, FLAT_LIMIT},
    {X86_SEL_TSS, TSS_FLAGS, 0, X86_BOOT_TSS_LIMIT},
};

/* The 64-bit TSS descriptor's second slot must fit too. */
_Static_assert(X86_SEL_TSS / 8 + 1 < X86_BOOT_GDT_SLOTS, "boot GDT too small");
_Static_assert(X86_SEL_CODE32 / 8 < X86_BOOT_GDT_SLOTS && X86_SEL_CODE64 / 8 < X86_BOOT_GDT_SLOTS &&
                   X86_SEL_DATA / 8 < X86_BOOT_GDT_SLOTS,
               "boot GDT too small");
_Static_assert(X86_PD_GPA + 4 * PAGE_SIZE <= X86_PAGETABLE_END, "page tables overflow their area");

uint64_t x86_gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
    return (uint64_t)(limit & 0xffffU) |              /* limit[15:0]  -> bits 0-15 */
           ((uint64_t)(base & 0xffffffU) << 16) |     /* base[23:0]   -> bits 16-39 */
           ((uint64_t)(flags & 0xffU) << 40) |        /* access byte  -> bits 40-47 */
           ((uint64_t)((limit >> 16) & 0xfU) << 48) | /* limit[19:16] -> bits 48-51 */
           ((uint64_t)((flags >> 12) & 0xfU) << 52) | /* AVL L DB G   -> bits 52-55 */
           ((uint64_t)((base >> 24) & 0xffU) << 56);  /* base[31:24]  -> bits 56-63 */
}

struct kvm_segment x86_gdt_segment(uint16_t selector, uint16_t flags, uint32_t base, uint32_t limit)
{
    struct kvm_segment s;
    memset(&s, 0, sizeof(s));

    limit &= FLAT_LIMIT;
    s.base = base;
    s.limit = (flags & X86_DESC_G) ? (limit << 12) | 0xfffU : limit;
    s.selector = selector;
    s.type = flags & 0xfU;
    s.s = !!(flags & X86_DESC_S);
    s.dpl = (flags >> 5) & 3U;
    s.present = !!(flags & X86_DESC_P);
    s.avl = !!(flags & X86_DESC_AVL);
    s.l = !!(flags & X86_DESC_L);
    s.db = !!(flags & X86_DESC_DB);
    s.g = !!(flags & X86_DESC_G);
    s.unusable = !s.present;
    return s;
}

int x86_boot_segment(uint16_t selector, struct kvm_segment *out)
{
    for (size_t i = 0; i < ARRAY_SIZE(boot_gdt); i++) {
        if (boot_gdt[i].selector == selector) {
            *out =
                x86_gdt_segment(selector, boot_gdt[i].flags, boot_gdt[i].base, boot_gdt[i].limit);
            return 0;
        }
    }
    return -ENOENT;
}

int x86_write_boot_gdt(const struct gmem *gm)
{
    uint8_t gdt[X86_BOOT_GDT_SIZE];

    /* Slot 0 is the null descriptor; the TSS's second slot (base[63:32]) stays 0. */
    memset(gdt, 0, sizeof(gdt));
    for (size_t i = 0; i < ARRAY_SIZE(boot_gdt); i++)
        le64_put(gdt + (boot_gdt[i].selector & ~7U),
                 x86_gdt_entry(boot_gdt[i].flags, boot_gdt[i].base, boot_gdt[i].limit));
    return gmem_write(gm, X86_GDT_GPA, gdt, sizeof(gdt));
}

int x86_write_boot_pagetables(const struct gmem *gm)
{
    uint8_t page[PAGE_SIZE];
    int ret;

    memset(page, 0, sizeof(page));
    le64_put(page, X86_PDPT_GPA | X86_PTE_P | X86_PTE_RW);
    ret = gmem_write(gm, X86_PML4_GPA, page, sizeof(page));
    if (ret)
        return ret;

    memset(page, 0, sizeof(page));
    for (uint64_t i = 0; i < 4; i++)
        le64_put(page + 8 * i, (X86_PD_GPA + i * PAGE_SIZE) | X86_PTE_P | X86_PTE_RW);
    ret = gmem_write(gm, X86_PDPT_GPA, page, sizeof(page));
    if (ret)
        return ret;

    /* Page directory d maps [d GiB, d+1 GiB) in 512 pages of 2 MiB. */
    for (uint64_t d = 0; d < 4; d++) {
        for (uint64_t j = 0; j < 512; j++) {
            uint64_t addr = (d * 512 + j) * (2 * MiB);
            le64_put(page + 8 * j, addr | X86_PTE_P | X86_PTE_RW | X86_PTE_PS);
        }
        ret = gmem_write(gm, X86_PD_GPA + d * PAGE_SIZE, page, sizeof(page));
        if (ret)
            return ret;
    }
    return 0;
}

static int kvm_fail(struct errbuf *err, const char *what)
{
    int e = errno;
    return err_set(err, WISP_EXIT_FAILURE, e, "%s failed: %s", what, strerror(e));
}

int x86_vcpu_setup_regs(int vcpu_fd, enum x86_entry_mode mode, uint64_t entry, uint64_t boot_info,
                        struct errbuf *err)
{
    struct kvm_sregs sregs;
    struct kvm_regs regs;
    struct kvm_segment code, data, tss;
    const uint64_t limit = 4 * GiB;
    bool lm = mode == X86_ENTRY_LINUX64;

    if (mode != X86_ENTRY_LINUX64 && mode != X86_ENTRY_PVH)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "unknown x86 entry mode %d", (int)mode);
    /* 32-bit registers in PVH; the identity map's reach for the 64-bit entry. */
    if (entry >= limit || boot_info >= limit)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "kernel entry 0x%llx or boot data 0x%llx is not below 4 GiB",
                       (unsigned long long)entry, (unsigned long long)boot_info);

    if (x86_boot_segment(lm ? X86_SEL_CODE64 : X86_SEL_CODE32, &code) ||
        x86_boot_segment(X86_SEL_DATA, &data) || x86_boot_segment(X86_SEL_TSS, &tss))
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "boot GDT lacks a selector");

    /* Start from KVM's state to keep what we do not set (APIC base, CR8). */
    if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
        return kvm_fail(err, "KVM_GET_SREGS");

    sregs.cs = code;
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
    sregs.tr = tss;
    memset(&sregs.ldt, 0, sizeof(sregs.ldt));
    sregs.ldt.type = X86_SEG_TYPE_LDT;
    sregs.ldt.unusable = 1;
    sregs.gdt.base = X86_GDT_GPA;
    sregs.gdt.limit = X86_BOOT_GDT_SIZE - 1;
    sregs.idt.base = X86_IDT_GPA;
    sregs.idt.limit = 0;
    sregs.cr2 = 0;

    if (lm) {
        /*
         * ET is hardwired to 1 on every 64-bit processor; NE selects native
         * x87 error reporting, the only kind KVM implements (and VMX wants).
         */
        sregs.cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_NE | X86_CR0_PG;
        sregs.cr3 = X86_PML4_GPA;
        sregs.cr4 = X86_CR4_PAE;
        sregs.efer = X86_EFER_LME | X86_EFER_LMA;
    } else {
        /* What the PVH ABI promises (as Xen enters it): protection on, nothing else. */
        sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
        sregs.cr3 = 0;
        sregs.cr4 = 0;
        sregs.efer = 0;
    }
    if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
        return kvm_fail(err, "KVM_SET_SREGS");

    memset(&regs, 0, sizeof(regs));
    regs.rflags = X86_RFLAGS_RESERVED;
    regs.rip = entry;
    if (lm) {
        /* Linux's 64-bit entry needs no stack, but other 64-bit kernels may push at once. */
        regs.rsp = X86_BOOT_STACK_GPA;
        regs.rsi = boot_info;
    } else {
        regs.rbx = boot_info;
    }
    if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
        return kvm_fail(err, "KVM_SET_REGS");
    return 0;
}

int x86_vcpu_setup_fpu(int vcpu_fd, struct errbuf *err)
{
    struct kvm_fpu fpu;

    /* All-zero otherwise: empty register stack (abridged tag 0), no exceptions pending. */
    memset(&fpu, 0, sizeof(fpu));
    fpu.fcw = X86_FPU_FCW_RESET;
    fpu.mxcsr = X86_FPU_MXCSR_RESET;
    if (ioctl(vcpu_fd, KVM_SET_FPU, &fpu) < 0)
        return kvm_fail(err, "KVM_SET_FPU");
    return 0;
}

static uint32_t lvt_program(uint32_t lvt, uint32_t mode, bool masked)
{
    lvt = (lvt & ~(X86_APIC_LVT_DM_MASK | X86_APIC_LVT_MASKED)) | mode;
    return masked ? lvt | X86_APIC_LVT_MASKED : lvt;
}

int x86_vcpu_setup_lapic(int vcpu_fd, struct errbuf *err)
{
    struct kvm_lapic_state lapic;
    struct kvm_sregs sregs;

    if (ioctl(vcpu_fd, KVM_GET_LAPIC, &lapic) < 0)
        return kvm_fail(err, "KVM_GET_LAPIC (needs the in-kernel irqchip)");
    /* KVM marks the boot processor in IA32_APIC_BASE, which sregs carries. */
    if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
        return kvm_fail(err, "KVM_GET_SREGS");
    bool bsp = sregs.apic_base & X86_APIC_BASE_BSP;

    /*
     * If several CPUs accepted ExtINT, whichever looked first would take a
     * PIC interrupt; firmware masks LINT0 on the APs for that reason.
     */
    uint8_t *lint0 = (uint8_t *)lapic.regs + X86_APIC_LVT_LINT0;
    uint8_t *lint1 = (uint8_t *)lapic.regs + X86_APIC_LVT_LINT1;
    le32_put(lint0, lvt_program(le32_get(lint0), X86_APIC_LVT_DM_EXTINT, !bsp));
    le32_put(lint1, lvt_program(le32_get(lint1), X86_APIC_LVT_DM_NMI, false));

    if (ioctl(vcpu_fd, KVM_SET_LAPIC, &lapic) < 0)
        return kvm_fail(err, "KVM_SET_LAPIC");
    return 0;
}
