/*
 * pvh32.S - PVH 32-bit entry, our GDT and the 4 GiB identity map.
 *
 * Shared by the test guest and the QEMU test shim (both are linked at
 * fixed addresses, so the absolute references resolve per image).
 * PVH enters here in flat 32-bit protected mode, paging off, with EBX
 * pointing at hvm_start_info. We load our page tables, turn on long mode
 * and call pvh_main(start_info) in C.
 *
 * The identity map (PML4, PDPT, 4 PDs of 2 MiB pages = 4 GiB) is built by
 * the assembler into .data rather than by a loop at run time: on hosts
 * that interpret CPL0 code (~1 us per instruction) filling 2048 entries
 * costs several milliseconds of every boot, including test=exit.
 */
#include "protocol.h"

#define PTE_P       0x001
#define PTE_RW      0x002
#define PTE_PWT     0x008
#define PTE_PCD     0x010
#define PTE_PS      0x080           /* 2 MiB page in a PD entry */
#define CR0_LM      0x80010031      /* PG|WP|NE|ET|PE; CD and NW clear so caching is on */
#define CR4_PAE     0x20
#define MSR_EFER    0xC0000080
#define EFER_LME    0x100

    .section .text32, "ax"
    .code32
    .globl pvh_entry32
pvh_entry32:
    cld
    /* The 32-bit Linux protocol would also land here (code32_start), but
     * with ESI=boot_params: we do not support it, so refuse loudly. */
    cmpl $PVH_START_MAGIC, (%ebx)
    jne 9f
    mov %ebx, %esi

    mov %cr4, %eax
    or $CR4_PAE, %eax
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $MSR_EFER, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr
    lgdt gdt_desc
    mov $CR0_LM, %eax
    mov %eax, %cr0
    ljmp $0x10, $pvh_entry64

9:  mov $GUEST_FAIL, %eax
    mov $GUEST_EXIT_PORT, %dx
    outl %eax, %dx
8:  cli
    hlt
    jmp 8b

    .text
    .code64
pvh_entry64:
    mov $0x18, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    mov $boot_stack_top, %rsp
    mov %esi, %edi
    call pvh_main
1:  cli
    hlt
    jmp 1b

/* load_gdt_and_cr3(cr3): used by the Linux 64-bit path to leave the VMM's
 * GDT and page tables (whose memory we do not own) for ours. */
    .globl load_gdt_and_cr3
load_gdt_and_cr3:
    lgdt gdt_desc(%rip)
    mov %rdi, %cr3
    mov $0x18, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    pushq $0x10
    lea 1f(%rip), %rax
    push %rax
    lretq
1:  ret

    .data
    .balign 16
/* Selectors match the Linux 64-bit boot protocol: CS=0x10, DS=0x18. */
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff        /* 0x08: flat 32-bit code */
    .quad 0x00af9a000000ffff        /* 0x10: 64-bit code */
    .quad 0x00cf92000000ffff        /* 0x18: flat data */
gdt_end:
    .balign 8
gdt_desc:
    .word gdt_end - gdt - 1
    .quad gdt

/* Identity map of 0..4 GiB, complete at link time (see the top). Kept
 * out of .bss, which C clears only after the early test=exit check. */
    .section .pgtables, "aw"
    .balign 4096
    .globl pml4, pdpt, pd
pml4:
    .quad pdpt + PTE_P + PTE_RW
    .fill 511, 8, 0
pdpt:
    .quad pd + 0 * 4096 + PTE_P + PTE_RW
    .quad pd + 1 * 4096 + PTE_P + PTE_RW
    .quad pd + 2 * 4096 + PTE_P + PTE_RW
    .quad pd + 3 * 4096 + PTE_P + PTE_RW
    .fill 508, 8, 0
/* The 32-bit MMIO hole, 3-4 GiB (virtio-mmio windows at 0xD0000000 under
 * wisp, 0xFEB00000 under QEMU microvm, IOAPIC, LAPIC, firmware), is mapped
 * uncached so MMIO stays uncached even after we switch the MTRR default to
 * write-back. wisp's layout puts no RAM there (RAM above 3 GiB moves
 * above 4 GiB, which this map does not cover). */
pd:
    .set page, 0
    .rept 2048
    .if page >= 0xC0000000
    .quad page + PTE_P + PTE_RW + PTE_PS + PTE_PWT + PTE_PCD
    .else
    .quad page + PTE_P + PTE_RW + PTE_PS
    .endif
    .set page, page + 0x200000
    .endr

    .section .noinit, "aw", @nobits
    .balign 16
    .globl boot_stack_top
boot_stack:
    .skip 16384
boot_stack_top:

    .section .note.GNU-stack, "", @progbits
