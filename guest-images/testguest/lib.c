/*
 * lib.c - the x86 test guest's freestanding support: memcpy/memset with
 * string instructions, the COM1 console, the debug exit and the TSC
 * frequency (the portable helpers are in ../common/gstr.c).
 */
#include "guest.h"

#define COM1_RBR (GUEST_SERIAL_PORT + 0)
#define COM1_THR (GUEST_SERIAL_PORT + 0)
#define COM1_LSR (GUEST_SERIAL_PORT + 5)
#define LSR_DR   0x01
#define LSR_THRE 0x20

/* gcc may emit calls to these even with -ffreestanding. String
 * instructions move 8 bytes per iteration: far fewer emulated steps than
 * a byte loop when CPL0 code is interpreted. */
void *memcpy(void *d, const void *s, size_t n)
{
    void *ret = d;
    size_t q = n / 8, r = n % 8;
    __asm__ volatile("rep movsq" : "+D"(d), "+S"(s), "+c"(q)::"memory");
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(r)::"memory");
    return ret;
}

void *memset(void *d, int c, size_t n)
{
    void *ret = d;
    u64 v = 0x0101010101010101ull * (u8)c;
    size_t q = n / 8, r = n % 8;
    __asm__ volatile("rep stosq" : "+D"(d), "+c"(q) : "a"(v) : "memory");
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(r) : "a"(v) : "memory");
    return ret;
}

void serial_putc(char c)
{
    /* Bounded wait: a VMM whose LSR never reports THRE must not hang us
     * (virtual UARTs are always ready; 1000 polls outlast a real 115200
     * baud character). */
    for (int i = 0; i < 1000 && !(inb(COM1_LSR) & LSR_THRE); i++)
        cpu_relax();
    outb(COM1_THR, (u8)c);
}

int serial_getc_poll(void)
{
    if (inb(COM1_LSR) & LSR_DR)
        return inb(COM1_RBR);
    return -1;
}

/*
 * isa-debug-exit (QEMU) / wisp exit port.  If nothing listens (wisp without
 * --debug-exit), end the VM through the keyboard controller's reset line so
 * the VMM still exits; if that is missing too, park.
 */
void guest_exit(u32 status)
{
    outl(GUEST_EXIT_PORT, status);
    outb(0x64, 0xFE);
    for (;;)
        __asm__ volatile("cli; hlt");
}

/* TSC frequency, best source first. Only used to bound waits, so a guess
 * is acceptable when the hypervisor hides every frequency leaf. */
u64 tsc_khz(const char **source)
{
    u32 r[4];
    cpuid(0x40000000, 0, r);
    if (r[0] >= 0x40000010 && r[0] < 0x40010000) {
        cpuid(0x40000010, 0, r); /* hypervisor timing leaf, kHz */
        if (r[0]) {
            *source = "cpuid.40000010";
            return r[0];
        }
    }
    cpuid(0, 0, r);
    u32 max = r[0];
    if (max >= 0x15) {
        cpuid(0x15, 0, r); /* crystal Hz * EBX / EAX */
        if (r[0] && r[1] && r[2]) {
            *source = "cpuid.15";
            return (u64)r[2] * r[1] / r[0] / 1000;
        }
    }
    if (max >= 0x16) {
        cpuid(0x16, 0, r); /* base MHz */
        if (r[0]) {
            *source = "cpuid.16";
            return (u64)r[0] * 1000;
        }
    }
    *source = "guess";
    return 3000000;
}
