/*
 * head.S - the arm64 test guest's entry points: the Image header wisp's
 * loader parses, the boot CPU's entry (x0 = device tree), the secondary
 * entry PSCI CPU_ON jumps to (x0 = context id: stack slot | flags), the MMU
 * switch, the HVC/SMC conduits and the EL1 vector table.
 */
#include "protocol.h"

#define STACK_SIZE 16384 /* A64_STACK_SIZE */

    .section .head, "ax"
    .globl _head
_head:
    b       primary_entry           /* code0 */
    .long   0                       /* code1 */
    .quad   0                       /* text_offset: the image sits at RAM base */
    .quad   _image_size             /* image_size, bss and stacks included (guest.ld) */
    .quad   0xa                     /* flags: little endian, 4 KiB pages, anywhere */
    .quad   0, 0, 0                 /* res2..res4 */
    .ascii  "ARM\x64"               /* magic at offset 56 */
    .long   0                       /* res5 */

    .text
primary_entry:
    msr     daifset, #0xf
    mov     x19, x0                 /* device tree */
    orr     x20, x1, x2
    orr     x20, x20, x3            /* booting.rst: x1..x3 are zero */
    /* Linked at the load address: absolute addresses must match. */
    adr     x1, _head
    ldr     x2, =_head
    cmp     x1, x2
    b.ne    wrong_place
    ldr     x1, =boot_stack_top
    mov     sp, x1
    ldr     x1, =__bss_start
    ldr     x2, =__bss_end
1:  cmp     x1, x2
    b.hs    2f
    str     xzr, [x1], #8
    b       1b
2:  ldr     x1, =a64_vectors
    msr     vbar_el1, x1
    isb
    mov     x0, x19
    mov     x1, x20
    mrs     x2, CurrentEL
    bl      a64_main
3:  wfi
    b       3b

wrong_place:
    movz    x1, #0x0900, lsl #16    /* debug-exit register, 0x09001000 */
    movk    x1, #0x1000
    mov     w2, #GUEST_FAIL
    str     w2, [x1]
4:  wfi
    b       4b

    .globl secondary_entry
secondary_entry:
    msr     daifset, #0xf
    mov     x19, x0                 /* context id: slot | flags (a64.h) */
    ldr     x1, =ap_stacks
    and     x2, x19, #0xff
    add     x2, x2, #1
    mov     x3, #STACK_SIZE
    madd    x1, x2, x3, x1
    mov     sp, x1
    ldr     x1, =a64_vectors
    msr     vbar_el1, x1
    isb
    ldr     x1, =mmu_ttbr
    ldr     x0, [x1]
    ldr     x1, =mmu_tcr
    ldr     x1, [x1]
    bl      mmu_enable
    mov     x0, x19
    bl      secondary_main
5:  wfi
    b       5b

/* mmu_enable(ttbr, tcr): attribute 0 Device-nGnRnE, attribute 1 Normal
 * write-back; the tables are the boot CPU's (cleaned to the PoC). */
    .globl mmu_enable
mmu_enable:
    mov     x2, #0xff00
    msr     mair_el1, x2
    msr     tcr_el1, x1
    msr     ttbr0_el1, x0
    isb
    tlbi    vmalle1
    ic      iallu
    dsb     nsh
    isb
    mrs     x2, sctlr_el1
    orr     x2, x2, #(1 << 0)       /* M */
    orr     x2, x2, #(1 << 2)       /* C */
    orr     x2, x2, #(1 << 12)      /* I */
    bic     x2, x2, #(1 << 1)       /* A: no alignment faults on Normal memory */
    msr     sctlr_el1, x2
    isb
    ret

    .globl psci_hvc
psci_hvc:
    hvc     #0
    ret

    .globl psci_smc
psci_smc:
    smc     #0
    ret

/* ---- vector table: EL1 with SP_EL1 takes IRQs; everything else fails ---- */
.macro ventry target, kind
    .balign 128
    mov     x0, #\kind
    b       \target
.endm

    .balign 2048
    .globl a64_vectors
a64_vectors:
    ventry  fault_entry, 0          /* current EL, SP0: sync */
    ventry  fault_entry, 1          /* irq */
    ventry  fault_entry, 2          /* fiq */
    ventry  fault_entry, 3          /* serror */
    ventry  fault_entry, 4          /* current EL, SPx: sync */
    .balign 128                     /* irq */
    b       irq_entry
    ventry  fault_entry, 6          /* fiq */
    ventry  fault_entry, 7          /* serror */
    ventry  fault_entry, 8          /* lower EL, AArch64 */
    ventry  fault_entry, 9
    ventry  fault_entry, 10
    ventry  fault_entry, 11
    ventry  fault_entry, 12         /* lower EL, AArch32 */
    ventry  fault_entry, 13
    ventry  fault_entry, 14
    ventry  fault_entry, 15

fault_entry:
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    bl      a64_fault               /* reports and exits: no return */
6:  wfi
    b       6b

/* Caller-saved registers only: irq_dispatch is a C function. */
irq_entry:
    sub     sp, sp, #176
    str     x0, [sp, #160]
    stp     x1, x2, [sp, #0]
    stp     x3, x4, [sp, #16]
    stp     x5, x6, [sp, #32]
    stp     x7, x8, [sp, #48]
    stp     x9, x10, [sp, #64]
    stp     x11, x12, [sp, #80]
    stp     x13, x14, [sp, #96]
    stp     x15, x16, [sp, #112]
    stp     x17, x18, [sp, #128]
    stp     x29, x30, [sp, #144]
    bl      irq_dispatch
    ldp     x1, x2, [sp, #0]
    ldp     x3, x4, [sp, #16]
    ldp     x5, x6, [sp, #32]
    ldp     x7, x8, [sp, #48]
    ldp     x9, x10, [sp, #64]
    ldp     x11, x12, [sp, #80]
    ldp     x13, x14, [sp, #96]
    ldp     x15, x16, [sp, #112]
    ldp     x17, x18, [sp, #128]
    ldp     x29, x30, [sp, #144]
    ldr     x0, [sp, #160]
    add     sp, sp, #176
    eret

    .section .noinit, "aw", %nobits
    .balign 16
    .space  STACK_SIZE
boot_stack_top:
    .globl ap_stacks
ap_stacks:
    .space  STACK_SIZE * 8
