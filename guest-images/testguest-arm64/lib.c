/*
 * lib.c - the arm64 test guest's freestanding support: byte-loop memcpy and
 * memset (built with -fno-tree-loop-distribute-patterns so gcc does not
 * turn them back into calls to themselves), the 16550 console on MMIO, the
 * debug exit, cache maintenance and bounded waits.
 */
#include "a64.h"

#define UART_THR        0
#define UART_LSR        5
#define LSR_THRE        0x20
#define PSCI_SYSTEM_OFF 0x84000008u

/* The virt layout's UART until the device tree names one. */
static u64 uart_base = 0x09000000ull;

void *memcpy(void *d, const void *s, size_t n)
{
    u8 *dp = d;
    const u8 *sp = s;
    while (n--)
        *dp++ = *sp++;
    return d;
}

void *memset(void *d, int c, size_t n)
{
    u8 *dp = d;
    while (n--)
        *dp++ = (u8)c;
    return d;
}

void uart_init(u64 base)
{
    uart_base = base;
}

void serial_putc(char c)
{
    /* Bounded: a UART whose LSR never says THRE must not hang the guest. */
    for (int i = 0; i < 1000 && !(mmio_read8(uart_base + UART_LSR) & LSR_THRE); i++)
        __asm__ volatile("yield");
    mmio_write8(uart_base + UART_THR, (u8)c);
}

/* wisp's debug-exit register ends the VM with the status; without it,
 * PSCI SYSTEM_OFF (which wisp reports as a clean exit), then park. */
void guest_exit(u32 status)
{
    mmio_write32(A64_DEBUG_EXIT, status);
    psci_hvc(PSCI_SYSTEM_OFF, 0, 0, 0);
    for (;;)
        __asm__ volatile("wfi");
}

void dcache_clean_inval(const void *p, u64 n)
{
    u64 ctr = SYSREG_READ("ctr_el0");
    u64 line = 4ull << ((ctr >> 16) & 0xf);
    u64 a = (u64)p & ~(line - 1), end = (u64)p + n;
    for (; a < end; a += line)
        __asm__ volatile("dc civac, %0" ::"r"(a) : "memory");
    dsb_sy();
}

bool wait_flag(volatile u32 *flag, u64 ms)
{
    u64 start = counter(), limit = counter_hz() / 1000 * ms;
    while (!*flag) {
        if (counter() - start > limit)
            return false;
        __asm__ volatile("yield" ::: "memory");
    }
    return true;
}
