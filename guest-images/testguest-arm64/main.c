/*
 * main.c - the arm64 test guest's boot CPU: the device tree and boot
 * registers first (MMU still off), then its own identity map (so the rings
 * the VMM reads are in Normal cacheable memory on both sides), then the
 * PSCI, timer and virtio checks.  Expectations come from the command line
 * (bootargs): expect_cpus=, expect_mem_mib=, expect_virtio=, blk_sectors=,
 * initrd_sum=, and ticks= for a long phase a snapshot can cut through
 * (ticks.c).  Ends with GUEST_PASS or GUEST_FAIL on the debug-exit
 * register.
 */
#include "a64.h"

u64 mmu_ttbr, mmu_tcr;
u64 mmu_l1[512] __attribute__((aligned(4096)));

static u64 arg_u64(const char *key, u64 dflt)
{
    char v[32];
    u64 n;
    if (cmdline_get(dt.bootargs, key, v, sizeof v) && parse_u64(v, &n))
        return n;
    return dflt;
}

/* 39-bit identity map of 1 GiB blocks: the first GiB (GIC, UART, virtio)
 * as Device-nGnRnE, the tree's RAM as Normal write-back. */
static void mmu_on(void)
{
    const u64 af = 1ull << 10, device = 0 << 2 | af | 3ull << 53, normal = 1 << 2 | af | 3ull << 8;
    mmu_l1[0] = 0 | device | 1;
    for (u64 a = dt.mem_base & ~((1ull << 30) - 1); a < dt.mem_base + dt.mem_size; a += 1ull << 30)
        if (a >> 30 < 512 && a >> 30 > 0)
            mmu_l1[a >> 30] = a | normal | 1;
    u64 pa = SYSREG_READ("id_aa64mmfr0_el1") & 7;
    if (pa > 5)
        pa = 5;
    /* T0SZ 25, inner/outer WB WA, inner shareable, 4 KiB, no TTBR1 walks. */
    mmu_tcr = 25 | 1 << 8 | 1 << 10 | 3 << 12 | 1ull << 23 | pa << 32;
    mmu_ttbr = (u64)mmu_l1;
    dsb_sy();
    mmu_enable(mmu_ttbr, mmu_tcr);
}

void a64_main(u64 fdt, u64 x123, u64 el)
{
    const char *why = "";
    bool dt_ok = dt_parse(phys(fdt), &why);
    if (dt_ok && dt.uart)
        uart_init(dt.uart);
    SAY("arm64 test guest at 0x%lx, device tree at 0x%lx", (u64)_head, fdt);
    check("boot_el1", (el >> 2 & 3) == 1, "CurrentEL %lu", el >> 2 & 3);
    check("boot_regs", x123 == 0, "x1|x2|x3 = 0x%lx", x123);
    if (!check("dt_parse", dt_ok, "%s", why))
        guest_exit(GUEST_FAIL);
    u64 mem_end = dt.mem_base + dt.mem_size;
    check("dt_memory",
          dt.mem_base == A64_GUEST_BASE && dt.mem_size == arg_u64("expect_mem_mib", 0) << 20,
          "0x%lx + %lu MiB", dt.mem_base, dt.mem_size >> 20);
    check("dt_in_ram", fdt >= dt.mem_base && fdt < mem_end && fdt >= (u64)_image_end,
          "tree at 0x%lx, image ends at 0x%lx", fdt, (u64)_image_end);
    mmu_on();
    check("mmu", SYSREG_READ("sctlr_el1") & 1, "SCTLR_EL1 0x%lx", SYSREG_READ("sctlr_el1"));
    check("dt_cpus", dt.ncpus == arg_u64("expect_cpus", 0), "%u cpus", dt.ncpus);
    check("dt_psci", dt.psci_compat && dt.psci_hvc && !dt.psci_smc, "psci 0.2+, method hvc");
    check("dt_gic",
          dt.gicd && dt.gicr && dt.gic_phandle && dt.interrupt_parent == dt.gic_phandle &&
              dt.gicr_size >= dt.ncpus * 0x20000ull,
          "GICD 0x%lx GICR 0x%lx+0x%lx phandle %u", dt.gicd, dt.gicr, dt.gicr_size, dt.gic_phandle);
    check("dt_uart", dt.uart && dt.have_stdout && dt.uart_spi < 32, "0x%lx SPI %u", dt.uart,
          dt.uart_spi);
    check("dt_virtio", dt.nvirtio == arg_u64("expect_virtio", 0), "%u virtio-mmio nodes",
          dt.nvirtio);
    u64 want_sum = arg_u64("initrd_sum", 0);
    if (want_sum) {
        u64 n = dt.initrd_end - dt.initrd_start;
        bool in = dt.initrd_start >= (u64)_image_end && dt.initrd_end <= fdt && n > 0;
        u32 sum = in ? fnv1a(phys(dt.initrd_start), n) : 0;
        check("initrd", in && sum == want_sum, "0x%lx..0x%lx, fnv1a 0x%x", dt.initrd_start,
              dt.initrd_end, sum);
    }
    if (!check("gic_init", gic_init(&why), "%s", why))
        guest_exit(GUEST_FAIL);
    smp_test();
    timer_test();
    virtio_tests(arg_u64("blk_sectors", 0));
    u64 ticks = arg_u64("ticks", 0);
    if (ticks)
        ticks_run(ticks);
    SAY("%s", any_failed ? "FAIL" : "PASS");
    guest_exit(any_failed ? GUEST_FAIL : GUEST_PASS);
}
