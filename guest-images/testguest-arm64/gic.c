/*
 * gic.c - interrupts, the timer and the secondary vCPUs of the arm64 test
 * guest: the GICv3 set up through its distributor, this CPU's
 * redistributor (found by affinity) and the ICC system registers; the
 * virtual timer's PPI taken from the device tree and ticked five times;
 * every other CPU of the tree started with PSCI CPU_ON and stopped again
 * with CPU_OFF.
 */
#include "a64.h"

/* Distributor registers. */
#define GICD_CTLR       0x0000
#define GICD_TYPER      0x0004
#define GICD_IGROUPR    0x0080
#define GICD_ISENABLER  0x0100
#define GICD_IPRIORITYR 0x0400
#define GICD_ICFGR      0x0c00
#define GICD_IROUTER    0x6000
#define GICD_PIDR2      0xffe8
#define GICD_CTLR_RWP   (1u << 31)
/* Redistributor: RD frame, then the SGI frame 64 KiB above. */
#define GICR_TYPER      0x0008
#define GICR_WAKER      0x0014
#define GICR_SGI        0x10000
#define GICR_FRAME      0x20000
#define GICR_TYPER_LAST (1u << 4)

#define ICC_IAR1_EL1    "S3_0_C12_C12_0"
#define ICC_EOIR1_EL1   "S3_0_C12_C12_1"
#define ICC_SRE_EL1     "S3_0_C12_C12_5"
#define ICC_IGRPEN1_EL1 "S3_0_C12_C12_7"
#define ICC_PMR_EL1     "S3_0_C4_C6_0"

#define PSCI_VERSION       0x84000000u
#define PSCI_CPU_OFF       0x84000002u
#define PSCI_CPU_ON        0xc4000003u
#define PSCI_AFFINITY_INFO 0xc4000004u

#define MAX_INTID 160
static struct {
    void (*fn)(void *);
    void *arg;
} handlers[MAX_INTID];
static volatile u32 spurious;
static u64 gicr_rd; /* this CPU's redistributor */

static u64 mpidr_aff(u64 mpidr)
{
    return mpidr & 0xff00ffffffull;
}

static bool wait_rwp(void)
{
    for (int i = 0; i < 100000; i++)
        if (!(mmio_read32(dt.gicd + GICD_CTLR) & GICD_CTLR_RWP))
            return true;
    return false;
}

bool gic_init(const char **why)
{
    u32 arch = (mmio_read32(dt.gicd + GICD_PIDR2) >> 4) & 0xf;
    if (arch != 3 && arch != 4) {
        *why = "GICD_PIDR2 does not say GICv3";
        return false;
    }
    /* Affinity routing, group 1 on (KVM's GIC has one security state). */
    mmio_write32(dt.gicd + GICD_CTLR, (1u << 4) | (1u << 1) | 1u);
    if (!wait_rwp()) {
        *why = "GICD_CTLR.RWP stuck";
        return false;
    }
    u64 me = mpidr_aff(SYSREG_READ("mpidr_el1"));
    u32 want = (u32)((me & 0xffffff) | ((me >> 32) & 0xff) << 24);
    u32 frames = 0;
    gicr_rd = 0;
    for (u64 rd = dt.gicr; rd + GICR_FRAME <= dt.gicr + dt.gicr_size; rd += GICR_FRAME) {
        u64 typer = mmio_read64(rd + GICR_TYPER);
        frames++;
        if ((u32)(typer >> 32) == want)
            gicr_rd = rd;
        if (typer & GICR_TYPER_LAST)
            break;
    }
    check("gic_redistributors", frames == dt.ncpus, "%u frames for %u cpus", frames, dt.ncpus);
    if (!gicr_rd) {
        *why = "no redistributor has this CPU's affinity";
        return false;
    }
    u32 waker = mmio_read32(gicr_rd + GICR_WAKER);
    mmio_write32(gicr_rd + GICR_WAKER, waker & ~2u);
    for (int i = 0; i < 100000 && (mmio_read32(gicr_rd + GICR_WAKER) & 4u); i++)
        ;
    if (mmio_read32(gicr_rd + GICR_WAKER) & 4u) {
        *why = "redistributor stays asleep";
        return false;
    }
    SYSREG_WRITE(ICC_SRE_EL1, SYSREG_READ(ICC_SRE_EL1) | 1);
    isb();
    SYSREG_WRITE(ICC_PMR_EL1, 0xff);
    SYSREG_WRITE(ICC_IGRPEN1_EL1, 1);
    isb();
    *why = "";
    return true;
}

bool gic_enable(u32 intid, bool edge, void (*fn)(void *), void *arg)
{
    if (intid < 16 || intid >= MAX_INTID)
        return false;
    handlers[intid].fn = fn;
    handlers[intid].arg = arg;
    u32 bit = 1u << (intid % 32);
    if (intid < 32) { /* PPI: this CPU's SGI frame */
        u64 sgi = gicr_rd + GICR_SGI;
        mmio_write32(sgi + GICD_IGROUPR, mmio_read32(sgi + GICD_IGROUPR) | bit);
        mmio_write8(sgi + GICD_IPRIORITYR + intid, 0xa0);
        mmio_write32(sgi + GICD_ISENABLER, bit);
        return true;
    }
    u64 d = dt.gicd;
    u32 word = 4 * (intid / 32), cfg = d + GICD_ICFGR + 4 * (intid / 16);
    mmio_write32(d + GICD_IGROUPR + word, mmio_read32(d + GICD_IGROUPR + word) | bit);
    u32 shift = 2 * (intid % 16) + 1;
    u32 v = mmio_read32(cfg);
    mmio_write32(cfg, edge ? v | (1u << shift) : v & ~(1u << shift));
    mmio_write8(d + GICD_IPRIORITYR + intid, 0xa0);
    mmio_write64(d + GICD_IROUTER + 8ull * intid, mpidr_aff(SYSREG_READ("mpidr_el1")));
    mmio_write32(d + GICD_ISENABLER + word, bit);
    return wait_rwp();
}

void irq_dispatch(void)
{
    for (;;) {
        u32 iar = (u32)SYSREG_READ(ICC_IAR1_EL1) & 0xffffff;
        if (iar >= 1020)
            return;
        if (iar < MAX_INTID && handlers[iar].fn)
            handlers[iar].fn(handlers[iar].arg);
        else
            spurious++;
        SYSREG_WRITE(ICC_EOIR1_EL1, iar);
        isb();
    }
}

void a64_fault(u64 kind, u64 esr, u64 elr, u64 far)
{
    SAY("check exception FAIL vector %u esr=0x%lx elr=0x%lx far=0x%lx", (unsigned)kind, esr, elr,
        far);
    guest_exit(GUEST_FAIL);
}

/* ---- the virtual timer ---- */
#define TIMER_TICKS 5
static volatile u32 ticks, early;
static u64 period, deadline;

static void timer_irq(void *arg)
{
    (void)arg;
    u64 now = counter();
    if (now < deadline)
        early++;
    if (++ticks < TIMER_TICKS) {
        deadline += period;
        SYSREG_WRITE("cntv_cval_el0", deadline);
    } else {
        SYSREG_WRITE("cntv_ctl_el0", 2); /* masked, off */
    }
    isb();
}

void timer_test(void)
{
    u64 hz = counter_hz();
    check("timer_freq", hz >= 1000000, "CNTFRQ_EL0 %lu Hz", hz);
    check("dt_timer",
          dt.ntimer == 4 && dt.timer_ppi[0] == 13 && dt.timer_ppi[1] == 14 &&
              dt.timer_ppi[2] == 11 && dt.timer_ppi[3] == 10,
          "%u PPIs: %u %u %u %u", dt.ntimer, dt.timer_ppi[0], dt.timer_ppi[1], dt.timer_ppi[2],
          dt.timer_ppi[3]);
    if (dt.ntimer < 3 || !hz)
        return;
    u32 intid = 16 + dt.timer_ppi[2]; /* the virtual timer */
    if (!check("timer_irq_enable", gic_enable(intid, false, timer_irq, 0), "INTID %u", intid))
        return;
    period = hz / 100; /* 10 ms */
    u64 start = counter();
    deadline = start + period;
    SYSREG_WRITE("cntv_cval_el0", deadline);
    SYSREG_WRITE("cntv_ctl_el0", 1);
    isb();
    u64 limit = start + 5 * hz; /* 5 s: generous for a nested, emulated host */
    while (ticks < TIMER_TICKS && counter() < limit) {
        /* IRQs open while polling: a timer that never fires is a FAIL, not a hang. */
        __asm__ volatile("msr daifclr, #2\n\tisb\n\tyield\n\tmsr daifset, #2" ::: "memory");
    }
    u64 ms = (counter() - start) * 1000 / hz;
    check("timer_ticks", ticks == TIMER_TICKS && !early, "%u ticks of 10 ms in %lu ms, %u early",
          ticks, ms, early);
    check("timer_elapsed", ms >= TIMER_TICKS * 10, "%lu ms", ms);
}

/* ---- secondary vCPUs through PSCI ---- */
static volatile u32 cpu_up[A64_MAX_CPUS];
static volatile u64 cpu_mpidr[A64_MAX_CPUS];

volatile u64 a64_spin_count;

void secondary_main(u64 ctx)
{
    u64 slot = ctx & 0xff;
    if (ctx & A64_CPU_SPIN) { /* vCPU state must survive a snapshot mid-loop */
        for (;;) {
            a64_spin_count++;
            __asm__ volatile("yield" ::: "memory");
        }
    }
    if (slot < A64_MAX_CPUS) {
        cpu_mpidr[slot] = mpidr_aff(SYSREG_READ("mpidr_el1"));
        dsb_sy();
        cpu_up[slot] = 1;
        dsb_sy();
    }
    psci_hvc(PSCI_CPU_OFF, 0, 0, 0);
}

void smp_test(void)
{
    u64 ver = psci_hvc(PSCI_VERSION, 0, 0, 0);
    check("psci_version", ver >= 0x00000002 && ver < 0x00100000, "%u.%u", (unsigned)(ver >> 16),
          (unsigned)(ver & 0xffff));
    u64 me = mpidr_aff(SYSREG_READ("mpidr_el1"));
    check("boot_cpu_mpidr", dt.ncpus > 0 && me == dt.cpu_mpidr[0], "MPIDR 0x%lx, tree's cpu0 0x%x",
          me, dt.cpu_mpidr[0]);
    u32 n = dt.ncpus < A64_MAX_CPUS ? dt.ncpus : A64_MAX_CPUS;
    u32 up = 1, off = 0;
    for (u32 i = 1; i < n; i++) {
        /* The secondary starts with its MMU and caches off: what it reads
         * before enabling them must be in memory, not only in our cache. */
        extern u64 mmu_ttbr, mmu_tcr, mmu_l1[512];
        extern u8 ap_stacks[];
        dcache_clean_inval(&mmu_ttbr, 8);
        dcache_clean_inval(&mmu_tcr, 8);
        dcache_clean_inval(mmu_l1, sizeof(u64) * 512);
        dcache_clean_inval(ap_stacks + (u64)i * A64_STACK_SIZE, 2 * A64_STACK_SIZE);
        int64_t rc = (int64_t)psci_hvc(PSCI_CPU_ON, dt.cpu_mpidr[i], (u64)secondary_entry, i);
        bool ok = rc == 0 && wait_flag(&cpu_up[i], 10000);
        ok = ok && cpu_mpidr[i] == dt.cpu_mpidr[i];
        if (ok)
            up++;
        check("psci_cpu_on", ok, "cpu %u (MPIDR 0x%x): rc=%ld, reported MPIDR 0x%lx", i,
              dt.cpu_mpidr[i], (long)rc, cpu_mpidr[i]);
        /* AFFINITY_INFO says OFF (1) once CPU_OFF has taken effect. */
        u64 start = counter(), limit = counter_hz() * 5;
        while (psci_hvc(PSCI_AFFINITY_INFO, dt.cpu_mpidr[i], 0, 0) != 1 &&
               counter() - start < limit)
            ;
        if (psci_hvc(PSCI_AFFINITY_INFO, dt.cpu_mpidr[i], 0, 0) == 1)
            off++;
    }
    check("smp_cpus", up == dt.ncpus, "%u of %u cpus ran", up, dt.ncpus);
    check("psci_cpu_off", off == (n ? n - 1 : 0), "%u secondaries off again", off);
}
