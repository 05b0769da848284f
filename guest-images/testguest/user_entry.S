/*
 * user_entry.S - enter ring 3 and come back once.
 *
 * Why: on hosts that interpret guest CPL0 code, only CPL3 code runs at
 * native speed, so the benchmark loops run in user mode (user.c sets up
 * the GDT, TSS and user-accessible pages).
 *
 * user_call(fn, arg, stack_top) saves the callee-saved registers and the
 * kernel stack pointer, then IRETQs to user_trampoline at CPL3 with
 * IF=0 and IOPL=0, which calls fn(arg) and comes back by executing ud2 at
 * user_exit (result in rax). isr_dispatch recognises that #UD (vector 6,
 * from CPL3, at user_exit) and calls user_return(rax) on the TSS.RSP0
 * stack, which abandons that stack, restores the saved context and
 * returns the value from user_call. Not re-entrant (one saved context),
 * which is all we need.
 *
 * Why an exception rather than `int $0x80` or SYSCALL: on the project's
 * development host (kvm_pvm, which interprets guest CPL0 code) a software
 * interrupt from ring 3 raised #UD instead of using the DPL-3 gate, and
 * after SYSCALL the interpreted kernel code faulted on port I/O. Exception
 * delivery from ring 3 through the IDT works there as on hardware.
 */
#define KERNEL_DS   0x18
#define USER_DS     0x23        /* GDT slot 4, RPL 3 */
#define USER_CS     0x2B        /* GDT slot 5, RPL 3 */

    .text
    .globl user_call, user_return

/* u64 user_call(u64 (*fn)(void *), void *arg, void *stack_top) */
user_call:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, user_kernel_rsp(%rip)
    pushq $USER_DS                  /* SS */
    push %rdx                       /* RSP */
    pushq $0x2                      /* RFLAGS: IF=0, IOPL=0 */
    pushq $USER_CS                  /* CS */
    lea user_trampoline(%rip), %rax
    push %rax                       /* RIP */
    iretq

/* CPL3 from here: rdi = fn, rsi = arg, rsp = 16-byte aligned stack top. */
user_trampoline:
    mov %rdi, %rax
    mov %rsi, %rdi
    call *%rax
    .globl user_exit
user_exit:
    ud2                             /* result in rax; see the top */
1:  pause
    jmp 1b

/* void user_return(u64 value), noreturn: back to user_call's caller. */
user_return:
    mov user_kernel_rsp(%rip), %rsp
    mov $KERNEL_DS, %ecx
    mov %ecx, %ds
    mov %ecx, %es
    mov %ecx, %ss                   /* the CPU loaded a null SS on the way in */
    mov %rdi, %rax
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret

    .bss
    .balign 8
user_kernel_rsp:
    .quad 0

    .section .note.GNU-stack, "", @progbits
