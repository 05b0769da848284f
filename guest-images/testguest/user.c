/*
 * user.c - a minimal ring 3 for the benchmark loops.
 *
 * Why: hosts that interpret guest CPL0 code (~1 us per instruction) still
 * run CPL3 code natively, so a virtqueue driven from user mode measures
 * the VMM rather than the guest. Set-up, done once:
 *   - our own GDT: the boot selectors (0x08, 0x10, 0x18) unchanged, user
 *     data 0x20 and 64-bit user code 0x28 (DPL 3), and a 64-bit TSS at
 *     0x30 whose RSP0 is a private kernel stack (interrupts from ring 3
 *     switch to it) and no I/O bitmap (port I/O faults at CPL3);
 *   - the way back is a ud2 at user_exit, which isr_dispatch turns into
 *     user_return() (user_entry.S explains why not int 0x80 or SYSCALL);
 *   - the U/S bit on the PML4/PDPT entries and on the 2 MiB PD entries that
 *     cover the image and the lazy memory after it (virtio pool, stacks,
 *     device state; testguest.ld) and any MMIO window a
 *     benchmark passes to user_map(); CR4.SMEP/SMAP/TSD cleared so the
 *     kernel may still use those pages and ring 3 may read the TSC.
 * The page tables are the link-time identity map in .data (pvh32.S); they
 * are changed in place and CR3 is reloaded to flush the TLB.
 */
#include "guest.h"
#include "user.h"

#define PTE_US   0x4ull
#define CR4_TSD  (1ull << 2)
#define CR4_SMEP (1ull << 20)
#define CR4_SMAP (1ull << 21)
#define SEL_TSS  0x30

struct tss64 {
    u32 reserved0;
    u64 rsp[3];
    u64 reserved1;
    u64 ist[7];
    u64 reserved2;
    u16 reserved3;
    u16 iomap_base;
} __attribute__((packed));
_Static_assert(sizeof(struct tss64) == 104, "tss");
_Static_assert(__builtin_offsetof(struct tss64, rsp) == 4, "tss rsp0");

static struct tss64 tss __attribute__((aligned(16)));
static u64 gdt[8] __attribute__((aligned(16)));
static bool ready;

/* Kernel stack for traps from ring 3 and the user stack, in lazy memory
 * (testguest.ld), so boots that never enter ring 3 do not pay for them. */
static u8 kstack[16384] __attribute__((section(".lazy.kstack"), aligned(16)));
static u8 ustack[65536] __attribute__((section(".lazy.ustack"), aligned(16)));

u64 user_call(u64 (*fn)(void *), void *arg, void *stack_top);

static void flush_tlb(void)
{
    u64 cr3;
    __asm__ volatile("mov %%cr3, %0; mov %0, %%cr3" : "=r"(cr3)::"memory");
}

void user_map(u64 addr, u64 len)
{
    if (len == 0)
        return;
    u64 last = addr + len - 1;
    if (last < addr || last >= (4ull << 30))
        last = (4ull << 30) - 1; /* the identity map ends at 4 GiB */
    for (u64 i = addr >> 21; i <= last >> 21; i++)
        pd[i] |= PTE_US;
    flush_tlb();
}

static void user_init(void)
{
    if (ready)
        return;
    gdt[0] = 0;
    gdt[1] = 0x00cf9a000000ffffull; /* 0x08 flat 32-bit code (as pvh32.S) */
    gdt[2] = 0x00af9a000000ffffull; /* 0x10 64-bit code */
    gdt[3] = 0x00cf92000000ffffull; /* 0x18 flat data */
    gdt[4] = 0x00cff2000000ffffull; /* 0x20 user data, DPL 3 */
    gdt[5] = 0x00affa000000ffffull; /* 0x28 user 64-bit code, DPL 3 */
    u64 base = (u64)&tss, limit = sizeof tss - 1;
    gdt[6] = (limit & 0xffff) | (base & 0xffffff) << 16 | 0x89ull << 40 |
             ((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
    gdt[7] = base >> 32; /* 0x30: 16-byte TSS descriptor */
    tss.rsp[0] = (u64)(kstack + sizeof kstack);
    tss.iomap_base = sizeof tss; /* no bitmap: all ports fault at CPL3 */

    struct __attribute__((packed)) {
        u16 limit;
        u64 base;
    } gdtr = {sizeof gdt - 1, (u64)gdt};
    __asm__ volatile("lgdt %0" ::"m"(gdtr));
    __asm__ volatile("ltr %w0" ::"r"(SEL_TSS));

    u64 cr4;
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    if (cr4 & (CR4_TSD | CR4_SMEP | CR4_SMAP))
        __asm__ volatile("mov %0, %%cr4" ::"r"(cr4 & ~(CR4_TSD | CR4_SMEP | CR4_SMAP)));
    pml4[0] |= PTE_US;
    for (int i = 0; i < 4; i++)
        pdpt[i] |= PTE_US;
    user_map((u64)_image_start, (u64)(__lazy_end - _image_start)); /* image + lazy */
    ready = true;
}

u64 user_run(u64 (*fn)(void *), void *arg)
{
    user_init();
    return user_call(fn, arg, ustack + sizeof ustack);
}
