/*
 * a64.h - internal interfaces of the arm64 wisp test guest (freestanding).
 *
 * The guest is an arm64 Image that wisp (make ARCH=aarch64) boots at
 * 0x40000000: it checks the device tree it is handed, turns its MMU on,
 * starts every vCPU through PSCI CPU_ON, takes the architected timer's
 * interrupt through the GICv3, drives virtio blk/rng/console over mmio,
 * and reports each result as "wisp-guest: check NAME ok|FAIL detail" on
 * the 16550 UART, ending with the debug-exit register (GUEST_PASS/FAIL).
 */
#ifndef WISP_GUEST_A64_H
#define WISP_GUEST_A64_H

#include "gstr.h"
#include "protocol.h"

#define A64_GUEST_BASE 0x40000000ull /* where wisp loads a text_offset 0 Image */
#define A64_DEBUG_EXIT 0x09001000ull /* wisp --debug-exit on aarch64 */
#define A64_MAX_CPUS   8
#define A64_STACK_SIZE 16384

#define SYSREG_READ(name)                                                                          \
    ({                                                                                             \
        u64 v_;                                                                                    \
        __asm__ volatile("mrs %0, " name : "=r"(v_));                                              \
        v_;                                                                                        \
    })
#define SYSREG_WRITE(name, v) __asm__ volatile("msr " name ", %0" ::"r"((u64)(v)) : "memory")

static inline void isb(void)
{
    __asm__ volatile("isb" ::: "memory");
}
static inline void dsb_sy(void)
{
    __asm__ volatile("dsb sy" ::: "memory");
}
static inline u32 mmio_read32(u64 a)
{
    u32 v;
    __asm__ volatile("ldr %w0, [%1]" : "=r"(v) : "r"(a) : "memory");
    return v;
}
static inline void mmio_write32(u64 a, u32 v)
{
    __asm__ volatile("str %w0, [%1]" ::"r"(v), "r"(a) : "memory");
}
static inline u64 mmio_read64(u64 a)
{
    u64 v;
    __asm__ volatile("ldr %0, [%1]" : "=r"(v) : "r"(a) : "memory");
    return v;
}
static inline void mmio_write64(u64 a, u64 v)
{
    __asm__ volatile("str %0, [%1]" ::"r"(v), "r"(a) : "memory");
}
static inline u8 mmio_read8(u64 a)
{
    u8 v;
    __asm__ volatile("ldrb %w0, [%1]" : "=r"(v) : "r"(a) : "memory");
    return v;
}
static inline void mmio_write8(u64 a, u8 v)
{
    __asm__ volatile("strb %w0, [%1]" ::"r"(v), "r"(a) : "memory");
}
static inline void *phys(u64 addr)
{
    __asm__("" : "+r"(addr));
    return (void *)addr;
}
/* The virtual counter and its frequency. */
static inline u64 counter(void)
{
    isb();
    return SYSREG_READ("cntvct_el0");
}
static inline u64 counter_hz(void)
{
    return SYSREG_READ("cntfrq_el0");
}

/* ---- head.S ---- */
extern u8 _head[], __bss_start[], __bss_end[], _image_end[];
extern u8 a64_vectors[];
void secondary_entry(void);
/* Program MAIR/TCR/TTBR0 and set SCTLR_EL1.{M,C,I}; tables at ttbr. */
void mmu_enable(u64 ttbr, u64 tcr);
/* HVC/SMC call with three arguments (x0 = function id); returns x0. */
u64 psci_hvc(u64 fn, u64 a1, u64 a2, u64 a3);
u64 psci_smc(u64 fn, u64 a1, u64 a2, u64 a3);

/* ---- lib.c ---- */
void uart_init(u64 base); /* console from the device tree's stdout-path */
__attribute__((noreturn)) void guest_exit(u32 status);
/* Clean and invalidate [p, p + n) to the point of coherency. */
void dcache_clean_inval(const void *p, u64 n);
/* Wait up to ms milliseconds (counter) for *flag to become nonzero. */
bool wait_flag(volatile u32 *flag, u64 ms);

/* ---- dt.c: what the device tree told us ---- */
struct dt_info {
    u64 mem_base, mem_size;
    u32 ncpus;
    u32 cpu_mpidr[A64_MAX_CPUS];
    bool psci_hvc, psci_smc; /* the psci node's method */
    bool psci_compat;        /* compatible lists arm,psci-0.2 or later */
    u64 gicd, gicd_size, gicr, gicr_size;
    u32 gic_phandle;
    u32 timer_ppi[4]; /* secure phys, phys, virt, hyp: PPI numbers */
    u32 ntimer;
    u64 uart;
    u32 uart_spi;
    u32 nvirtio;
    struct {
        u64 base, size;
        u32 spi, flags;
    } virtio[16];
    char bootargs[512];
    bool have_stdout;
    u64 initrd_start, initrd_end;
    u32 interrupt_parent; /* the root's, as a phandle */
};
extern struct dt_info dt;
/* Walk the flattened tree at fdt; false (and a reason) if it is unusable. */
bool dt_parse(const void *fdt, const char **why);

/* ---- gic.c ---- */
/* The GICv3 distributor, this CPU's redistributor and CPU interface. */
bool gic_init(const char **why);
/* Enable INTID `intid` (PPI or SPI; edge or level) with handler fn(arg). */
bool gic_enable(u32 intid, bool edge, void (*fn)(void *), void *arg);
void irq_dispatch(void); /* from the vector table */
void timer_test(void);
void smp_test(void);
/* PSCI CPU_ON context id: the stack slot in bits 7:0, flags above. */
#define A64_CPU_SPIN (1u << 8) /* spin on a64_spin_count instead of CPU_OFF */
void secondary_main(u64 ctx);
extern volatile u64 a64_spin_count;

/* ---- ticks.c ---- */
/* ticks=N: the long-running phase a snapshot or migration cuts through. */
void ticks_run(u64 n);

/* ---- virtio.c ---- */
void virtio_tests(u64 blk_sectors);
/* After a restore: blk reads back what virtio_tests wrote, rng answers. */
void virtio_recheck(void);

#endif
