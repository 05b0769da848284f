/*
 * entry.S - image head, PVH note, interrupt stubs and MSR helpers.
 *
 * Image layout at the link base (GUEST_IMAGE_BASE):
 *   +0x000  PVH 32-bit entry (a jump to pvh_entry32 in pvh32.S)
 *   +0x200  Linux 64-bit boot protocol entry; also the ELF e_entry.
 * A bzImage payload is this image flattened, so the same offsets hold.
 */
#include "protocol.h"

    .section .head, "ax"
    .code32
    .globl image_head
image_head:
    jmp pvh_entry32
    .org GUEST_LINUX64_OFFSET, 0xcc

    .code64
    .globl linux64_entry
/* Long mode, VMM paging, CS=0x10, DS=0x18, IF=0, RSI = zero page. */
linux64_entry:
    cld
    mov $boot_stack_top, %rsp
    mov %rsi, %rdi
    call linux64_main
1:  cli
    hlt
    jmp 1b

/* PVH: ELF note "Xen", type XEN_ELFNOTE_PHYS32_ENTRY, desc = entry. */
    .section .note.wisp, "a", @note
    .balign 4
    .long 4                         /* namesz */
    .long 4                         /* descsz */
    .long PVH_NOTE_PHYS32_ENTRY
    .asciz "Xen"
    .long image_head

    .text
/* Interrupt stubs: one 16-byte slot per vector at isr_stub_base + 16*v.
 * Vectors without a CPU error code push a dummy 0 so every frame looks
 * the same (struct irq_frame in guest.h). */
    .macro ISR_STUB v
    .org isr_stub_base + 16 * (\v), 0xcc    /* errors if a stub overflows */
    .if ((\v) == 8) || (((\v) >= 10) && ((\v) <= 14)) || ((\v) == 17) || ((\v) == 21) || ((\v) == 29) || ((\v) == 30)
    .else
    pushq $0
    .endif
    pushq $(\v)
    jmp isr_common
    .endm

    .balign 16
    .globl isr_stub_base
isr_stub_base:
    .irp hi, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    .irp lo, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    ISR_STUB (\hi * 16 + \lo)
    .endr
    .endr
    .org isr_stub_base + 4096, 0xcc

isr_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    cld
    call isr_dispatch
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp                   /* vector + error code */
    iretq

/* load_idt(base, limit) */
    .globl load_idt
load_idt:
    sub $16, %rsp
    mov %si, (%rsp)
    mov %rdi, 2(%rsp)
    lidt (%rsp)
    add $16, %rsp
    ret

/* bool rdmsr_safe(u32 msr, u64 *val) / bool wrmsr_safe(u32 msr, u64 val).
 * isr_dispatch redirects a #GP at the *_fault_ip labels to msr_fault_fixup,
 * which returns false: unknown MSRs then cannot kill the report. */
    .globl rdmsr_safe, wrmsr_safe, rdmsr_fault_ip, wrmsr_fault_ip, msr_fault_fixup
rdmsr_safe:
    mov %edi, %ecx
rdmsr_fault_ip:
    rdmsr
    mov %eax, %eax
    shl $32, %rdx
    or %rax, %rdx
    mov %rdx, (%rsi)
    mov $1, %eax
    ret
wrmsr_safe:
    mov %edi, %ecx
    mov %esi, %eax
    mov %rsi, %rdx
    shr $32, %rdx
wrmsr_fault_ip:
    wrmsr
    mov $1, %eax
    ret
msr_fault_fixup:
    xor %eax, %eax
    ret

/* Per-AP stacks, handed out by the trampoline with lock xadd. Not in
 * .bss so clearing .bss stays cheap under instruction emulation. */
    .section .noinit, "aw", @nobits
    .balign 4096
    .globl ap_stacks
ap_stacks:
    .skip GUEST_MAX_CPUS * 4096

    .section .note.GNU-stack, "", @progbits
