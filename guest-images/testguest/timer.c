/*
 * timer.c - the report test's timer checks: does the PIT reach the CPU
 * through the IOAPIC pin the MP table names for ISA IRQ 0, and does the
 * TSC-deadline LAPIC timer work when CPUID offers it.  These are the two
 * timers Linux relies on to calibrate and run its clock events: a VMM whose
 * interrupt routing disagrees with its MP table boots Linux into user
 * space with no timer tick ("APIC timer disabled due to verification
 * failure"), and no other check here would notice.
 */
#include "guest.h"

#define PIT_CH0        0x40
#define PIT_CMD        0x43
#define PIT_HZ         1193182u
#define PIT_RATE_HZ    100u
#define PIT_WANT_TICKS 5u /* of ~100 in the wait: only "it ticks at all" is checked */
#define PIT_WAIT_MS    1000u

#define APIC_LVT_TIMER   0x320
#define LVT_MASKED       (1u << 16)
#define LVT_TSC_DEADLINE (2u << 17)
#define MSR_TSC_DEADLINE 0x6E0
#define TSCDL_DELAY_MS   5u
#define TSCDL_WAIT_MS    1000u
#define CPUID1_ECX_TSCDL (1u << 24)

static volatile u32 pit_ticks;

static void pit_tick(void *arg)
{
    (void)arg;
    pit_ticks++;
}

/* PIT channel 0 as a rate generator (mode 2) at `hz`, or stopped (mode 0
 * with the longest count: one edge 55 ms later, then nothing). */
static void pit_program(u32 hz)
{
    u32 div = hz ? PIT_HZ / hz : 0;
    outb(PIT_CMD, hz ? 0x34 : 0x30); /* channel 0, lobyte/hibyte, mode 2 or 0 */
    outb(PIT_CH0, (u8)div);
    outb(PIT_CH0, (u8)(div >> 8));
}

static void check_ioapic_timer(void)
{
    int pin = mp_isa_irq_pin(0);
    if (pin < 0) {
        check("ioapic_timer", false, "the MP table names no IOAPIC pin for ISA IRQ 0");
        return;
    }
    /* PICs masked: a tick can only come through the IOAPIC and LAPIC. */
    if (irq_route_gsi((u32)pin, pit_tick, NULL) < 0) {
        check("ioapic_timer", false, "pin %d cannot be routed", pin);
        return;
    }
    const char *src;
    u64 khz = tsc_khz(&src), start = rdtsc(), limit = khz * PIT_WAIT_MS;
    pit_program(PIT_RATE_HZ);
    /* The LAPIC watchdog (100 ms) ends every hlt even if the PIT is silent. */
    while (pit_ticks < PIT_WANT_TICKS && rdtsc() - start < limit)
        irq_wait();
    u64 ms = (rdtsc() - start) / (khz ? khz : 1);
    pit_program(0);
    irq_mask_pin((u32)pin);
    check("ioapic_timer", pit_ticks >= PIT_WANT_TICKS,
          "isa_irq0_pin=%d ticks=%u in %lu ms (want %u at %u Hz)", pin, pit_ticks, ms,
          PIT_WANT_TICKS, PIT_RATE_HZ);
}

/*
 * tsc_deadline=1|0 on the command line says whether the host offers the
 * TSC-deadline timer (the VMM's tests know); without it, the bit is only
 * reported.  If the bit is set the timer must fire.
 */
static void check_tsc_deadline(void)
{
    u32 r[4];
    cpuid(1, 0, r);
    bool have = (r[2] & CPUID1_ECX_TSCDL) != 0;
    char v[8];
    u64 want;
    if (cmdline_get(boot.cmdline, "tsc_deadline", v, sizeof v) && parse_u64(v, &want))
        check("tsc_deadline_cpuid", have == (want != 0), "cpuid=%d expected=%lu", have, want);
    else
        SAY("tsc_deadline cpuid=%d", have);
    if (!have)
        return;

    u64 lapic = irq_lapic();
    const char *src;
    u64 khz = tsc_khz(&src);
    irq_tscdl_count = 0;
    /* Polled with interrupt windows, not hlt: the watchdog tick is off while
     * the LVT timer is in TSC-deadline mode. */
    mmio_write32(lapic + APIC_LVT_TIMER, LVT_TSC_DEADLINE | IRQ_TSCDL_VECTOR);
    u64 start = rdtsc(), limit = khz * TSCDL_WAIT_MS;
    bool armed = wrmsr_safe(MSR_TSC_DEADLINE, start + khz * TSCDL_DELAY_MS);
    while (armed && irq_tscdl_count == 0 && rdtsc() - start < limit)
        irq_window();
    u64 ms = (rdtsc() - start) / (khz ? khz : 1);
    mmio_write32(lapic + APIC_LVT_TIMER, LVT_MASKED);
    irq_watchdog_restart();
    check("tsc_deadline_timer", armed && irq_tscdl_count > 0, "%s fired=%u after %lu ms",
          armed ? "armed" : "wrmsr 0x6e0 faulted", irq_tscdl_count, ms);
}

void timer_report(void)
{
    check_ioapic_timer();
    check_tsc_deadline();
}
