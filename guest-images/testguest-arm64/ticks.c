/*
 * ticks.c - ticks=N, the arm64 test guest's long-running phase: something
 * for a snapshot or a live migration to cut through and for the restored
 * guest to prove intact.  vCPU 1 is started again to spin on a counter (its
 * registers must survive); the boot CPU takes a virtual-timer interrupt
 * every 100 ms (the GIC and timer state must survive), checks that the
 * spinner moved, that the counter never went back and that a 1 MiB pattern
 * is intact, and prints "tick N".  After the last tick blk reads back what
 * it wrote before and rng answers (device state), then the run ends.
 */
#include "a64.h"

#define PSCI_CPU_ON 0xc4000003u
#define PATTERN_MB  1
#define TICK_MS     100

static u64 pattern[PATTERN_MB << 17] __attribute__((section(".noinit")));
static volatile u32 fired;

static void tick_irq(void *arg)
{
    (void)arg;
    fired++;
    SYSREG_WRITE("cntv_ctl_el0", 2); /* masked until the next tick arms it */
    isb();
}

static u64 pattern_at(u64 i)
{
    return 0x9e3779b97f4a7c15ull * (i + 1);
}

void ticks_run(u64 n)
{
    u64 words = sizeof pattern / 8;
    for (u64 i = 0; i < words; i++)
        pattern[i] = pattern_at(i);
    bool spinner = dt.ncpus > 1;
    if (spinner) {
        extern u8 ap_stacks[];
        dcache_clean_inval(ap_stacks + A64_STACK_SIZE, 2 * A64_STACK_SIZE);
        int64_t rc =
            (int64_t)psci_hvc(PSCI_CPU_ON, dt.cpu_mpidr[1], (u64)secondary_entry, 1 | A64_CPU_SPIN);
        check("ticks_spinner_on", rc == 0, "rc=%ld", (long)rc);
    }
    u32 intid = 16 + dt.timer_ppi[2];
    if (!check("ticks_irq", dt.ntimer >= 3 && gic_enable(intid, false, tick_irq, 0), "INTID %u",
               intid))
        return;
    u64 hz = counter_hz(), last = counter();
    u32 missed = 0, stalled = 0, backwards = 0, corrupt = 0;
    for (u64 t = 1; t <= n; t++) {
        u64 spin0 = a64_spin_count, f0 = fired;
        SYSREG_WRITE("cntv_cval_el0", counter() + hz / 1000 * TICK_MS);
        SYSREG_WRITE("cntv_ctl_el0", 1);
        isb();
        u64 start = counter();
        while (fired == f0 && counter() - start < 5 * hz)
            __asm__ volatile("msr daifclr, #2\n\tisb\n\tyield\n\tmsr daifset, #2" ::: "memory");
        missed += fired == f0;
        u64 now = counter();
        backwards += now < last;
        last = now;
        stalled += spinner && a64_spin_count == spin0;
        u64 slice = words / 16, from = (t % 16) * slice;
        for (u64 i = from; i < from + slice; i++)
            corrupt += pattern[i] != pattern_at(i);
        SAY("tick %lu", t);
    }
    check("ticks_timer", missed == 0, "%u of %lu ticks without the timer interrupt", missed, n);
    check("ticks_counter", backwards == 0, "the virtual counter went back %u times", backwards);
    check("ticks_spinner", !spinner || stalled == 0, "vCPU 1 stalled over %u ticks", stalled);
    check("ticks_memory", corrupt == 0, "%u words of the pattern changed", corrupt);
    virtio_recheck();
}
