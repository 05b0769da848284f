/*
 * main.c - boot-path entry points (PVH, Linux 64-bit), the shared start-up
 * sequence and the simple tests (report, exit, echo, reset, triple, badio).
 */
#include "guest.h"
#include "boot.h"
#include "virtio.h"
#include "acpi.h"
#include "vdrivers.h"

struct boot_info boot;

extern u8 image_head[];

/* test=exit must cost as few (emulated) instructions as possible: it runs
 * before .bss is cleared, so it may only use the stack. */
static void early_exit(const char *cl)
{
    char v[24];
    u64 code = 0;
    if (!cmdline_get(cl, "test", v, sizeof v) || !streq(v, "exit"))
        return;
    if (cmdline_get(cl, "code", v, sizeof v))
        parse_u64(v, &code);
    /* mark=1: one byte on COM1 just before the exit, so a benchmark can time
     * "guest reached its exit" under a VMM it cannot instrument (QEMU). The
     * 8250's THR takes a write without any set-up (LCR.DLAB is 0 at reset). */
    if (cmdline_get(cl, "mark", v, sizeof v) && streq(v, "1"))
        outb(0x3F8, '!');
    guest_exit((u32)code);
}

static void copy_cmdline(const char *cl)
{
    size_t n = 0;
    while (cl[n] && n < sizeof boot.cmdline - 1)
        n++;
    memcpy(boot.cmdline, cl, n);
}

/* True if the MTRRs leave all memory uncacheable: disabled, or enabled
 * with an uncached default and no variable range (fixed ranges only
 * cover the first MiB). */
static bool mtrr_all_uncached(u64 def)
{
    u64 cap, mask;
    if (!(def & (1u << 11)))
        return true;
    if ((def & 0xff) != 0)
        return false;
    if (!rdmsr_safe(0xFE, &cap))
        return true;
    for (u32 i = 0; i < (cap & 0xff); i++)
        if (rdmsr_safe(0x201 + 2 * i, &mask) && (mask & (1u << 11)))
            return false;
    return true;
}

/* Let the rest run cached: a VMM may leave the MTRRs disabled, which
 * makes all memory uncacheable (slow on real hardware and some VMMs).
 * MMIO stays uncached through the page tables (pvh32.S). Only touched
 * when CPUID says MTRR/PAT exist; MSR accesses are #GP-safe. */
static void mtrr_setup(void)
{
    u32 r[4];
    u64 cr0;
    cpuid(1, 0, r);
    if (r[3] & (1u << 16))
        rdmsr_safe(0x277, &boot.pat);
    if ((r[3] & (1u << 12)) && rdmsr_safe(0x2FF, &boot.mtrr_def_type) &&
        mtrr_all_uncached(boot.mtrr_def_type))
        boot.mtrr_fixed = wrmsr_safe(0x2FF, 0x806); /* enabled, default WB */
    /* CR0.CD/NW would disable caching as well (PVH/INIT leave them set). */
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    if (cr0 & 0x60000000)
        __asm__ volatile("mov %0, %%cr0" ::"r"(cr0 & ~0x60000000ull));
}

/* ---------------- tests ---------------- */

static u64 ram_total(void)
{
    u64 sum = 0;
    for (u32 i = 0; i < boot.nr_map; i++)
        if (boot.map[i].type == E820_RAM)
            sum += boot.map[i].size;
    return sum;
}

bool lazy_ready(void)
{
    static int state; /* 0 unknown, 1 ok, -1 not usable */
    u64 a = (u64)__lazy_start, b = (u64)__lazy_end;
    if (state)
        return state > 0;
    state = -1;
    bool in_ram = false;
    for (u32 i = 0; i < boot.nr_map; i++)
        if (boot.map[i].type == E820_RAM && boot.map[i].addr <= a &&
            b <= boot.map[i].addr + boot.map[i].size)
            in_ram = true;
    if (!in_ram) {
        SAY("lazy memory 0x%lx-0x%lx is not inside one RAM range", a, b);
        return false;
    }
    if (boot.have_initrd && boot.initrd_addr < b && a < boot.initrd_addr + boot.initrd_size) {
        SAY("lazy memory 0x%lx-0x%lx overlaps the initrd at 0x%lx", a, b, boot.initrd_addr);
        return false;
    }
    state = 1;
    return true;
}

static __attribute__((noreturn)) void finish(void)
{
    SAY("RESULT %s", any_failed ? "FAIL" : "PASS");
    guest_exit(any_failed ? GUEST_FAIL : GUEST_PASS);
}

static void test_report(void)
{
    char v[64];
    u64 n;

    SAY("boot=%s", boot.protocol);
    u32 l1[4], l7[4];
    cpuid(1, 0, l1);
    cpuid(7, 0, l7);
    /* The feature words a CPU template or --cpu-features shapes. */
    SAY("cpuid 1.ecx=0x%08x 1.edx=0x%08x 7.ebx=0x%08x 7.ecx=0x%08x", l1[2], l1[3], l7[1], l7[2]);
    if (streq(boot.protocol, "pvh"))
        SAY("pvh start_info=0x%lx version=%u rsdp=0x%lx", boot.boot_struct, boot.pvh_version,
            boot.rsdp);
    if (streq(boot.protocol, "linux64")) {
        u64 load;
        __asm__("lea image_head(%%rip), %0" : "=r"(load));
        SAY("linux64 hdr_version=0x%04x setup_sects=%u type_of_loader=0x%02x "
            "loadflags=0x%02x code32_start=0x%x load_addr=0x%lx zero_page=0x%lx",
            boot.hdr_version, boot.setup_sects, boot.type_of_loader, boot.loadflags,
            boot.code32_start, load, boot.boot_struct);
    }
    SAY("cmdline=%s", boot.cmdline);

    SAY("memmap entries=%u", boot.nr_map);
    for (u32 i = 0; i < boot.nr_map; i++)
        SAY("memmap %u addr=0x%016lx size=0x%016lx type=%u", i, boot.map[i].addr, boot.map[i].size,
            boot.map[i].type);
    u64 ram = ram_total();
    SAY("ram_total=%lu KiB (%lu MiB)", ram >> 10, ram >> 20);
    if (cmdline_get(boot.cmdline, "mem", v, sizeof v) && parse_u64(v, &n)) {
        /* The VMM may keep a little low memory back: allow 2 MiB. */
        u64 want = n << 20, slack = 2ull << 20;
        check("mem", boot.nr_map && ram <= want && ram + slack >= want,
              "expected=%lu MiB found=%lu KiB", n, ram >> 10);
    }

    bool want_sum = cmdline_get(boot.cmdline, "initrd_sum", v, sizeof v);
    if (boot.have_initrd) {
        /* Hashing costs a few emulated instructions per byte: do it when
         * asked to, or when the initrd is small. */
        if (want_sum || boot.initrd_size <= 65536) {
            u32 h = fnv1a((const u8 *)boot.initrd_addr, boot.initrd_size);
            SAY("initrd addr=0x%lx size=%lu fnv1a=0x%08x", boot.initrd_addr, boot.initrd_size, h);
            if (want_sum && parse_u64(v, &n))
                check("initrd_sum", h == n, "expected=0x%08lx found=0x%08x", n, h);
        } else {
            SAY("initrd addr=0x%lx size=%lu fnv1a=skipped", boot.initrd_addr, boot.initrd_size);
        }
    } else {
        SAY("initrd none");
        if (want_sum)
            check("initrd_sum", false, "no initrd");
    }
    if (cmdline_get(boot.cmdline, "initrd_size", v, sizeof v) && parse_u64(v, &n))
        check("initrd_size", boot.have_initrd && boot.initrd_size == n, "expected=%lu found=%lu", n,
              boot.have_initrd ? boot.initrd_size : 0);

    SAY("msr mtrr_def_type=0x%lx pat=0x%lx%s", boot.mtrr_def_type, boot.pat,
        boot.mtrr_fixed ? " (mtrr_def_type set to 0x806)" : "");

    u32 r[4];
    cpuid(1, 0, r);
    bool hv = r[2] >> 31;
    char sig[13] = "";
    u32 hv_max = 0;
    if (hv) {
        cpuid(0x40000000, 0, r);
        hv_max = r[0];
        memcpy(sig, &r[1], 4);
        memcpy(sig + 4, &r[2], 4);
        memcpy(sig + 8, &r[3], 4);
        sig[12] = 0;
    }
    const char *src;
    u64 khz = tsc_khz(&src);
    SAY("cpuid hypervisor=%d signature=\"%s\" max_leaf=0x%x tsc_khz=%lu (%s)", hv, sig, hv_max, khz,
        src);

    bool have_cpus = cmdline_get(boot.cmdline, "cpus", v, sizeof v) && parse_u64(v, &n);
    smp_report(have_cpus ? n : 0, have_cpus);
    timer_report();
    finish();
}

/* Wait budget in TSC ticks for a number of milliseconds. */
static u64 ticks_ms(u64 ms)
{
    const char *src;
    return tsc_khz(&src) * ms;
}

static void test_echo(void)
{
    char line[201];
    size_t n = 0;
    u64 start = rdtsc(), limit = ticks_ms(60000);

    SAY("echo ready");
    for (;;) {
        int c = serial_getc_poll();
        if (c < 0) {
            if (rdtsc() - start > limit) {
                SAY("echo timeout after %zu bytes", n);
                any_failed = true;
                finish();
            }
            cpu_relax();
            continue;
        }
        if (c == '\n' || n == sizeof line - 1)
            break;
        if (c == '\r')
            continue;
        line[n++] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : (char)c;
    }
    line[n] = 0;
    SAY("echo %s", line);
    finish();
}

/*
 * tick: print "tick N" every tick_ms (default 20) until tick_count lines
 * (default 3000), then PASS.  A steady, countable stream on COM1, so a host
 * test can see when the vCPU stops running (pause) and starts again.
 */
static void test_tick(void)
{
    char v[24];
    u64 every = 20, count = 3000, n;
    if (cmdline_get(boot.cmdline, "tick_ms", v, sizeof v) && parse_u64(v, &n) && n > 0)
        every = n;
    if (cmdline_get(boot.cmdline, "tick_count", v, sizeof v) && parse_u64(v, &n) && n > 0)
        count = n;
    u64 wait = ticks_ms(every);
    for (u64 i = 0; i < count; i++) {
        SAY("tick %lu", i);
        u64 start = rdtsc();
        while (rdtsc() - start < wait)
            cpu_relax();
    }
    finish();
}

static void test_reset(void)
{
    SAY("reset: writing 0xfe to port 0x64");
    outb(0x64, 0xFE);
    /* A VMM may act on the request asynchronously: give it time before
     * reporting that nothing happened. */
    u64 start = rdtsc(), limit = ticks_ms(500);
    while (rdtsc() - start < limit)
        cpu_relax();
    SAY("reset: still running");
    any_failed = true;
    finish();
}

static void test_triple(void)
{
    static const u8 none[16];
    SAY("triple: empty IDT, then ud2");
    load_idt(none, 0);
    __asm__ volatile("ud2");
    SAY("triple: still running");
    any_failed = true;
    finish();
}

/* Accesses nothing should claim. The VMM must complete them (reads
 * typically return all-ones or zero) instead of stopping the guest. */
static void test_badio(void)
{
    SAY("badio: port 0x80 in=0x%02x", inb(0x80));
    outb(0x80, 0x55);
    u32 acc = 0;
    for (u16 p = 0x2F8; p <= 0x2FF; p++) {
        acc = (acc << 1) ^ inb(p);
        outb(p, 0);
    }
    SAY("badio: ports 0x2f8-0x2ff in-xor=0x%x", acc);
    /* Under QEMU 0x510-0x51b is fw_cfg; writes to its DMA registers
     * (0x514-0x51b) would start a transfer, so only read those. */
    acc = 0;
    for (u16 p = 0x510; p <= 0x51F; p++) {
        acc = (acc << 1) ^ inb(p);
        if (p < 0x514 || p > 0x51B)
            outb(p, 0);
    }
    SAY("badio: ports 0x510-0x51f in-xor=0x%x inw(0x51e)=0x%x inl(0x51c)=0x%x", acc, inw(0x51E),
        inl(0x51C));
    outw(0x51E, 0xBEEF);
    outl(0x51C, 0xDEADBEEF);

    static const u64 mmio[] = {0xD0000000ull, 0xFE000000ull};
    for (size_t i = 0; i < sizeof mmio / sizeof mmio[0]; i++) {
        u32 before = mmio_read32(mmio[i]);
        mmio_write32(mmio[i], 0xDEADBEEF);
        u32 after = mmio_read32(mmio[i]);
        SAY("badio: mmio 0x%lx read=0x%08x after-write=0x%08x", mmio[i], before, after);
    }
    SAY("badio survived");
    finish();
}

/* ---------------- start-up ---------------- */

static __attribute__((noreturn)) void common_main(void)
{
    char test[32] = "report";
    cmdline_get(boot.cmdline, "test", test, sizeof test);

    idt_init();
    mtrr_setup();

    if (streq(test, "report"))
        test_report();
    else if (streq(test, "echo"))
        test_echo();
    else if (streq(test, "tick"))
        test_tick();
    else if (streq(test, "dirty"))
        test_dirty();
    else if (streq(test, "serial-irq"))
        test_serial_irq();
    else if (streq(test, "reset"))
        test_reset();
    else if (streq(test, "triple"))
        test_triple();
    else if (streq(test, "badio"))
        test_badio();
    else if (streq(test, "migck"))
        test_migck();
    else if (streq(test, "pcidev")) {
        test_pcidev();
        finish();
    } else if (streq(test, "pci")) {
        test_pci();
        finish();
    } else if (streq(test, "acpi") || streq(test, "acpi-poweroff") || streq(test, "acpi-reset")) {
        if (streq(test, "acpi"))
            test_acpi();
        else if (streq(test, "acpi-poweroff"))
            test_acpi_poweroff();
        else
            test_acpi_reset();
        finish();
    }
    virtio_tests(test); /* returns only for names it does not know */
    SAY("unknown test=%s", test);
    any_failed = true;
    finish();
}

/* PVH: called from pvh32.S in long mode on our own page tables. */
void pvh_main(const struct pvh_start_info *si)
{
    const char *cl = si->cmdline_paddr ? (const char *)si->cmdline_paddr : "";
    early_exit(cl);
    memset(__bss_start, 0, __bss_end - __bss_start);

    boot.protocol = "pvh";
    boot.boot_struct = (u64)si;
    boot.pvh_version = si->version;
    boot.rsdp = si->rsdp_paddr;
    copy_cmdline(cl);
    if (si->version >= 1 && si->memmap_paddr) {
        const struct pvh_memmap_entry *m = (const void *)si->memmap_paddr;
        for (u32 i = 0; i < si->memmap_entries && i < 128; i++) {
            boot.map[i].addr = m[i].addr;
            boot.map[i].size = m[i].size;
            boot.map[i].type = m[i].type;
            boot.nr_map = i + 1;
        }
    }
    if (si->nr_modules && si->modlist_paddr) {
        const struct pvh_module *mod = (const void *)si->modlist_paddr;
        boot.have_initrd = mod->size != 0;
        boot.initrd_addr = mod->paddr;
        boot.initrd_size = mod->size;
    }
    common_main();
}

/* Linux 64-bit boot protocol: called from linux64_entry on the VMM's
 * page tables with the zero page. Everything needed is copied out
 * before we switch to our own GDT and page tables, because we do not
 * know which low memory the VMM used for them (the AP trampoline is
 * written to 0x10000). The initrd is read later and must lie below
 * 4 GiB (initrd_addr_max says 2 GiB). */
void linux64_main(const u8 *zp)
{
    u64 clp = zp_get(zp, ZP_CMD_LINE_PTR, 4) | (u64)zp_get(zp, ZP_EXT_CMD_LINE_PTR, 4) << 32;
    const char *cl = clp ? (const char *)clp : "";
    early_exit(cl);
    memset(__bss_start, 0, __bss_end - __bss_start);

    boot.protocol = "linux64";
    boot.boot_struct = (u64)zp;
    copy_cmdline(cl);
    u32 n = zp[ZP_E820_ENTRIES];
    const struct e820_entry *e = (const void *)(zp + ZP_E820_TABLE);
    for (u32 i = 0; i < n && i < ZP_E820_MAX; i++) {
        boot.map[i].addr = e[i].addr;
        boot.map[i].size = e[i].size;
        boot.map[i].type = e[i].type;
        boot.nr_map = i + 1;
    }
    boot.initrd_addr = zp_get(zp, ZP_RAMDISK_IMAGE, 4) | (u64)zp_get(zp, ZP_EXT_RAMDISK_IMAGE, 4)
                                                             << 32;
    boot.initrd_size = zp_get(zp, ZP_RAMDISK_SIZE, 4) | (u64)zp_get(zp, ZP_EXT_RAMDISK_SIZE, 4)
                                                            << 32;
    boot.have_initrd = boot.initrd_size != 0;
    boot.rsdp = zp_get(zp, ZP_ACPI_RSDP_ADDR, 4) | (u64)zp_get(zp, ZP_ACPI_RSDP_ADDR + 4, 4) << 32;
    boot.hdr_version = zp_get(zp, ZP_VERSION, 2);
    boot.setup_sects = zp[ZP_SETUP_SECTS];
    boot.type_of_loader = zp[ZP_TYPE_OF_LOADER];
    boot.loadflags = zp[ZP_LOADFLAGS];
    boot.code32_start = zp_get(zp, ZP_CODE32_START, 4);

    /* pml4 is our link-time identity map of 0..4 GiB (pvh32.S). */
    load_gdt_and_cr3((u64)pml4);
    common_main();
}
