/*
 * trampoline.S - application-processor start-up code.
 *
 * A SIPI with vector V starts the AP in real mode at CS=V<<8, IP=0. This
 * code is copied to GUEST_TRAMPOLINE_ADDR at run time, so it uses only
 * offsets from tramp_start plus the segment base it computes from CS;
 * everything absolute lives in the data block (trampoline.h) that the BSP
 * fills in the copy.
 */
#include "protocol.h"
#include "trampoline.h"

#define OFF(sym)    ((sym) - tramp_start)
#define DATA(f)     (OFF(tramp_data) + (f))

    .section .rodata.tramp, "a"
    .code16
    .globl tramp_start, tramp_pm32, tramp_lm64, tramp_data, tramp_end
tramp_start:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    movzwl %ax, %ebx
    shl $4, %ebx                    /* EBX = linear base, kept to 64-bit */
    lgdtl DATA(TD_GDTR)
    mov $0x31, %eax                 /* PE|ET|NE; clears CD/NW left by INIT */
    mov %eax, %cr0
    ljmpl *DATA(TD_PM32)

    .code32
tramp_pm32:
    mov $0x18, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %cr4, %eax
    or $0x20, %eax                  /* PAE */
    mov %eax, %cr4
    mov DATA(TD_CR3)(%ebx), %eax    /* the BSP's page tables */
    mov %eax, %cr3
    mov $0xC0000080, %ecx           /* EFER.LME */
    rdmsr
    or $0x100, %eax
    wrmsr
    mov $0x80010031, %eax           /* PG|WP|NE|ET|PE */
    mov %eax, %cr0
    ljmpl *DATA(TD_LM64)(%ebx)

    .code64
tramp_lm64:
    mov $0x18, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    mov $1, %eax
    lock xaddl %eax, DATA(TD_NEXT_SLOT)(%rbx)
    cmp DATA(TD_MAX_SLOTS)(%rbx), %eax
    jae 2f                          /* no stack left for this AP */
    mov %eax, %edi                  /* ap_main(slot) */
    lea 1(%rax), %rax
    imul DATA(TD_STACK_SIZE)(%rbx), %rax
    add DATA(TD_STACK_BASE)(%rbx), %rax
    mov %rax, %rsp
    call *DATA(TD_ENTRY)(%rbx)
2:  cli
    hlt
    jmp 2b

    .balign 16
tramp_data:
    .skip TD_SIZE
tramp_end:

    .section .note.GNU-stack, "", @progbits
