/*
 * x86_64 boot processor state: the GDT and identity page tables wisp writes
 * into guest memory, and the registers, FPU and local APIC of a vCPU at the
 * kernel's entry point.  wisp has no firmware, so this file does what a
 * bootloader would have done by the time it jumps to the kernel.
 *
 * Only the boot processor (vCPU 0) gets registers.  Application processors
 * are left as KVM creates them, in the wait-for-SIPI state: the guest wakes
 * them with INIT/SIPI through its local APIC, as Linux does after reading
 * the MP table, and they start in real mode at the SIPI vector.  They still
 * need CPUID, MSRs, FPU and LAPIC setup.
 *
 * Order for every vCPU: KVM_SET_CPUID2 first (KVM checks CR4 and MSR
 * writes against the guest's CPUID), then MSRs, registers, FPU and LAPIC.
 */
#ifndef ARCH_X86_64_CPU_H
#define ARCH_X86_64_CPU_H

#include <stdint.h>

#include <linux/kvm.h>

#include "arch/x86_64/boot.h"
#include "vmm/error.h"
#include "vmm/gmem.h"
#include "vmm/util.h"

/*
 * Segment descriptor flags for x86_gdt_entry(): bits 0-7 are the access byte
 * (type, S, DPL, P) and bits 12-15 AVL, L, D/B, G, at the positions they take
 * in bits 40-55 of a descriptor.  Bits 8-11, where the descriptor keeps
 * limit[19:16], are ignored.
 */
#define X86_DESC_TYPE(t) ((uint16_t)((t)&0xfU))
#define X86_DESC_S       0x0010U /* code or data (clear: system segment) */
#define X86_DESC_DPL(d)  ((uint16_t)(((d)&3U) << 5))
#define X86_DESC_P       0x0080U
#define X86_DESC_AVL     0x1000U
#define X86_DESC_L       0x2000U /* 64-bit code */
#define X86_DESC_DB      0x4000U /* 32-bit code/stack */
#define X86_DESC_G       0x8000U /* limit in 4 KiB units */

/* Segment types used by the boot GDT. */
#define X86_SEG_TYPE_DATA_RW  0x3U /* read/write, accessed */
#define X86_SEG_TYPE_CODE_XR  0xbU /* execute/read, accessed */
#define X86_SEG_TYPE_TSS_BUSY 0xbU /* system: busy 32/64-bit TSS */
#define X86_SEG_TYPE_LDT      0x2U

/*
 * The boot GDT: null, 32-bit code, 64-bit code, data, TSS.  In long mode a
 * TSS descriptor takes two slots (the second holds base[63:32]), so the GDT
 * is 6 slots, 48 bytes.
 */
#define X86_BOOT_GDT_SLOTS 6U
#define X86_BOOT_GDT_SIZE  (X86_BOOT_GDT_SLOTS * 8U)
#define X86_BOOT_TSS_LIMIT 0x67U /* smallest 32/64-bit TSS */

/* Control register and EFER bits. */
#define X86_CR0_PE          (1ULL << 0)
#define X86_CR0_ET          (1ULL << 4)
#define X86_CR0_NE          (1ULL << 5)
#define X86_CR0_PG          (1ULL << 31)
#define X86_CR4_PAE         (1ULL << 5)
#define X86_EFER_LME        (1ULL << 8)
#define X86_EFER_LMA        (1ULL << 10)
#define X86_RFLAGS_RESERVED 0x2ULL /* bit 1 always reads as 1; IF clear */

/* Page table entry bits. */
#define X86_PTE_P  (1ULL << 0)
#define X86_PTE_RW (1ULL << 1)
#define X86_PTE_PS (1ULL << 7)

/* Local APIC. */
#define X86_APIC_BASE_BSP      (1ULL << 8) /* IA32_APIC_BASE: this is the boot processor */
#define X86_APIC_LVT_LINT0     0x350U
#define X86_APIC_LVT_LINT1     0x360U
#define X86_APIC_LVT_DM_MASK   (7U << 8)
#define X86_APIC_LVT_DM_NMI    (4U << 8)
#define X86_APIC_LVT_DM_EXTINT (7U << 8)
#define X86_APIC_LVT_MASKED    (1U << 16)

/* x87 and SSE state at reset: all exceptions masked, round to nearest. */
#define X86_FPU_FCW_RESET   0x37fU
#define X86_FPU_MXCSR_RESET 0x1f80U

/*
 * Encode a segment descriptor: `flags` as above, `base`, and the 20-bit
 * `limit` in bytes or, with X86_DESC_G, in 4 KiB units (higher bits ignored).
 */
uint64_t x86_gdt_entry(uint16_t flags, uint32_t base, uint32_t limit);

/*
 * The KVM segment register image of the same descriptor loaded with
 * `selector`: what the processor caches after loading it.  The limit is
 * expanded to bytes (with G: limit * 4096 + 4095).  A descriptor without P
 * gives an unusable segment.
 */
struct kvm_segment x86_gdt_segment(uint16_t selector, uint16_t flags, uint32_t base,
                                   uint32_t limit);

/*
 * The cached segment for boot GDT selector `selector` (X86_SEL_CODE32,
 * X86_SEL_CODE64, X86_SEL_DATA, X86_SEL_TSS), built from the same table
 * x86_write_boot_gdt() writes.  Returns 0, or -ENOENT for other selectors.
 */
int x86_boot_segment(uint16_t selector, struct kvm_segment *out) __must_check;

/*
 * Write the boot GDT (X86_BOOT_GDT_SIZE bytes) at X86_GDT_GPA.  There is no
 * IDT to write: IDTR is {X86_IDT_GPA, limit 0}, so no gate is readable and an
 * exception before the guest loads its own IDT shuts the VM down instead of
 * jumping through whatever memory holds.  Returns 0 or -EFAULT if the range
 * is not guest RAM.
 */
int x86_write_boot_gdt(const struct gmem *gm) __must_check;

/*
 * Identity-map the first 4 GiB with 2 MiB pages, read/write, supervisor:
 * PML4 at X86_PML4_GPA -> PDPT at X86_PDPT_GPA -> 4 page directories at
 * X86_PD_GPA.  Enough for the 64-bit entry, whose kernel, boot data and
 * stack all lie below 4 GiB; the kernel builds its own tables at once.
 * Returns 0 or -EFAULT if the tables are not in guest RAM.
 */
int x86_write_boot_pagetables(const struct gmem *gm) __must_check;

/*
 * Registers of the boot processor at the kernel entry point `entry`, with
 * `boot_info` the guest-physical address of the boot data.  Both must be
 * below 4 GiB (WISP_EXIT_USAGE otherwise).  Interrupts are off (RFLAGS 0x2),
 * GDTR covers the boot GDT, TR is the busy boot TSS (VMX requires a usable
 * TR) and LDTR is unusable.
 *
 *   X86_ENTRY_LINUX64: long mode with paging (CR0 PE|ET|NE|PG, CR3 =
 *       X86_PML4_GPA, CR4 PAE, EFER LME|LMA), CS = X86_SEL_CODE64, other data
 *       segments X86_SEL_DATA, RIP = entry, RSI = boot_info (the zero page),
 *       RSP = X86_BOOT_STACK_GPA.  Needs the boot GDT and page tables.
 *   X86_ENTRY_PVH: 32-bit protected mode, paging off (CR0 PE|ET, CR4 0, EFER
 *       0), CS = X86_SEL_CODE32 (D/B set), flat 4 GiB data segments, EIP =
 *       entry, EBX = boot_info (hvm_start_info), as the PVH boot ABI says.
 * Errors from KVM: WISP_EXIT_FAILURE.
 */
int x86_vcpu_setup_regs(int vcpu_fd, enum x86_entry_mode mode, uint64_t entry, uint64_t boot_info,
                        struct errbuf *err) __must_check;

/*
 * x87 and SSE registers at their reset values (FCW 0x37F, MXCSR 0x1F80, tags
 * empty), as firmware would leave them.  Errors: WISP_EXIT_FAILURE.
 */
int x86_vcpu_setup_fpu(int vcpu_fd, struct errbuf *err) __must_check;

/*
 * Program the local APIC's LINT pins as a PC's firmware does (MP spec
 * "virtual wire" mode): LINT0 delivers ExtINT, so a guest that leaves the
 * APIC alone gets legacy PIC interrupts, and LINT1 delivers NMI.  LINT0 is
 * unmasked on the boot processor only, so one CPU takes PIC interrupts;
 * LINT1 is unmasked everywhere.  (KVM's reset state already has the BSP's
 * LINT0 as ExtINT while its LINT0_REENABLED quirk is on; writing it keeps
 * wisp independent of that quirk.)  Needs KVM's in-kernel irqchip.
 * Errors: WISP_EXIT_FAILURE.
 */
int x86_vcpu_setup_lapic(int vcpu_fd, struct errbuf *err) __must_check;

#endif /* ARCH_X86_64_CPU_H */
