/*
 * guest.h - internal interfaces of the wisp test guest (freestanding).
 */
#ifndef WISP_GUEST_H
#define WISP_GUEST_H

#include "gstr.h"
#include "protocol.h"

/* ---- port and MMIO access ---- */
static inline void outb(u16 port, u8 v)
{
    __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port));
}
static inline void outw(u16 port, u16 v)
{
    __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port));
}
static inline void outl(u16 port, u32 v)
{
    __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port));
}
static inline u8 inb(u16 port)
{
    u8 v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline u16 inw(u16 port)
{
    u16 v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline u32 inl(u16 port)
{
    u32 v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline u32 mmio_read32(u64 addr)
{
    return *(volatile u32 *)addr;
}
static inline void mmio_write32(u64 addr, u32 v)
{
    *(volatile u32 *)addr = v;
}

static inline void cpuid(u32 leaf, u32 sub, u32 r[4])
{
    __asm__ volatile("cpuid"
                     : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                     : "a"(leaf), "c"(sub));
}

static inline u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

/* Physical address -> pointer. The asm hides the constant from gcc,
 * which otherwise warns about dereferencing addresses below 4 KiB. */
static inline void *phys(u64 addr)
{
    __asm__("" : "+r"(addr));
    return (void *)addr;
}

/* Large per-test state goes to the .lazy section after the image: in no
 * ELF segment, so loaders neither zero nor count it, and not cleared at
 * boot. Only tests behind lazy_ready() may use it, and they initialise
 * what they use. */
#define LAZY __attribute__((section(".lazy.state")))

static inline void cpu_relax(void)
{
    __asm__ volatile("pause" ::: "memory");
}

/* ---- entry.S ---- */
/* rdmsr/wrmsr that return false instead of dying on #GP (needs the IDT;
 * before the IDT is up they behave like plain rdmsr/wrmsr). */
bool rdmsr_safe(u32 msr, u64 *val);
bool wrmsr_safe(u32 msr, u64 val);
void load_gdt_and_cr3(u64 cr3); /* switch to our GDT + page tables */
void load_idt(const void *base, u16 limit);
extern u8 isr_stub_base[]; /* vector v enters at +16*v */
extern u8 rdmsr_fault_ip[], wrmsr_fault_ip[], msr_fault_fixup[];
extern u8 tramp_start[], tramp_pm32[], tramp_lm64[], tramp_data[], tramp_end[];
extern u8 _image_start[], _image_end[], __bss_start[], __bss_end[];
extern u8 __lazy_start[], __lazy_end[]; /* testguest.ld: after the image, not loaded */
extern u8 ap_stacks[];
extern u64 pml4[512];           /* link-time identity map, pvh32.S */
extern u64 pdpt[512], pd[2048]; /* its PDPT and 2 MiB page directories */

/* ---- lib.c (the rest is in ../common/gstr.h) ---- */
int serial_getc_poll(void); /* -1 if no byte waiting */
__attribute__((noreturn)) void guest_exit(u32 status);
u64 tsc_khz(const char **source);

/* ---- main.c: what the boot path found ---- */
struct boot_info {
    const char *protocol; /* "pvh" or "linux64" */
    char cmdline[2048];
    u32 nr_map;
    struct {
        u64 addr, size;
        u32 type;
    } map[128];
    bool have_initrd;
    u64 initrd_addr, initrd_size;
    /* linux64 only: setup header fields */
    u16 hdr_version;
    u8 setup_sects, type_of_loader, loadflags;
    u32 code32_start;
    u64 boot_struct; /* zero page or hvm_start_info address */
    u32 pvh_version; /* PVH only */
    u64 rsdp;
    u64 mtrr_def_type, pat; /* as found at entry */
    bool mtrr_fixed;
};
extern struct boot_info boot;
/* Is [__lazy_start, __lazy_end) inside one RAM range of the memory map and
 * clear of the initrd? Checked once; says why on the console if not. */
bool lazy_ready(void);

/* ---- dirty.c ---- */
/* test=dirty: tick while writing memory at a set rate (migration benchmark). */
__attribute__((noreturn)) void test_dirty(void);

/* ---- smp.c ---- */
void smp_report(u64 expect_cpus, bool have_expect);
/* The IOAPIC pin the MP table gives ISA IRQ `irq`, or -1 (no table, no
 * entry). Bus entries are listed before interrupt entries (MP spec 4.3). */
int mp_isa_irq_pin(u32 irq);

/* ---- timer.c ---- */
/* report: the PIT through the IOAPIC pin the MP table names for IRQ 0, and
 * the TSC-deadline LAPIC timer (checks ioapic_timer, tsc_deadline*). */
void timer_report(void);
void ap_main(u32 slot);

/* ---- irq.c ---- */
struct irq_frame {
    u64 r15, r14, r13, r12, r11, r10, r9, r8;
    u64 rbp, rdi, rsi, rdx, rcx, rbx, rax;
    u64 vector, error;
    u64 rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};
void idt_init(void);
void isr_dispatch(struct irq_frame *f);
__attribute__((noreturn)) void test_serial_irq(void);
/* Route IOAPIC pin `gsi` (< 24) to a free vector with handler fn(arg),
 * enabling the LAPIC (and its 100 ms watchdog tick) first. Returns the
 * vector or -1. The handler runs with interrupts off; EOI is sent. */
int irq_route_gsi(u32 gsi, void (*fn)(void *), void *arg);
/* Sleep until the next interrupt (sti; hlt; cli). */
void irq_wait(void);
/* A vector for an MSI (no IOAPIC pin): `fn` runs on it; *apic_id gets the
 * BSP's APIC id for the message address.  -1 if none is left. */
int irq_msi_vector(void (*fn)(void *), void *arg, u32 *apic_id);
/* ---- pcidev.c ---- */
void test_pcidev(void);
/* Let pending interrupts in (sti; nop; cli). */
void irq_window(void);
u32 lapic_base(void);
/* Mask IOAPIC pin `pin` (< 24) again. */
void irq_mask_pin(u32 pin);
/* The BSP's LAPIC address, after irq_route_gsi()'s set-up (PICs masked,
 * 100 ms watchdog tick running). */
u64 irq_lapic(void);
/* Restart the 100 ms periodic watchdog tick (after another LVT timer mode). */
void irq_watchdog_restart(void);
/* Vector of the TSC-deadline test and how often it fired. */
#define IRQ_TSCDL_VECTOR 0x31
extern volatile u32 irq_tscdl_count;

#endif
