/*
 * acpi.c - the test guest's ACPI reader and tests (see acpi.h).
 *
 * A guest-side view of wisp's tables: the unit tests check them against the
 * specification and iasl on the host, this checks that a guest booted by
 * wisp finds them where the boot protocol says, with good checksums, and
 * that what they describe (CPUs, devices, power-off and reset registers)
 * is really there.
 */
#include "acpi.h"
#include "virtio.h"

#define BIOS_SCAN_START 0xE0000ul
#define BIOS_SCAN_END   0x100000ul

#define FADT_FLAGS         112
#define FADT_RESET_REG     116
#define FADT_RESET_VALUE   128
#define FADT_X_DSDT        140
#define FADT_SLEEP_CTL_REG 244
#define FADT_SLEEP_STS_REG 256
#define FADT_HW_REDUCED    (1u << 20)
#define FADT_RESET_REG_SUP (1u << 10)

static struct {
    bool done, ok;
    u64 rsdp;
    const u8 *xsdt, *fadt, *madt, *dsdt, *mcfg;
} t;

static u32 rd32(const u8 *p)
{
    return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

static u64 rd64(const u8 *p)
{
    return rd32(p) | (u64)rd32(p + 4) << 32;
}

static u8 sum8(const u8 *p, u32 n)
{
    u8 s = 0;
    for (u32 i = 0; i < n; i++)
        s = (u8)(s + p[i]);
    return s;
}

/* A table header at `addr` with signature `sig`, sane length, good checksum. */
static const u8 *table_at(u64 addr, const char *sig)
{
    if (!addr || addr >= (4ull << 30))
        return 0;
    const u8 *p = phys(addr);
    u32 len = rd32(p + 4);
    if (memcmp(p, sig, 4) != 0 || len < 36 || len > (1u << 20)) {
        SAY("acpi: no valid %s at 0x%lx", sig, addr);
        return 0;
    }
    if (sum8(p, len) != 0) {
        SAY("acpi: %s checksum is wrong", sig);
        return 0;
    }
    return p;
}

static u64 scan_rsdp(void)
{
    for (u64 a = BIOS_SCAN_START; a < BIOS_SCAN_END; a += 16)
        if (memcmp(phys(a), "RSD PTR ", 8) == 0 && sum8(phys(a), 20) == 0)
            return a;
    return 0;
}

/* The RSDP address the boot protocol gave (zero page or PVH start info). */
static u64 boot_rsdp(void)
{
    return boot.rsdp;
}

bool acpi_init(void)
{
    if (t.done)
        return t.ok;
    t.done = true;
    t.rsdp = boot_rsdp() ? boot_rsdp() : scan_rsdp();
    if (!t.rsdp)
        return false;
    const u8 *r = phys(t.rsdp);
    if (memcmp(r, "RSD PTR ", 8) != 0 || sum8(r, 20) != 0 || r[15] < 2 || rd32(r + 20) < 36 ||
        sum8(r, rd32(r + 20)) != 0) {
        SAY("acpi: bad RSDP at 0x%lx", t.rsdp);
        return false;
    }
    t.xsdt = table_at(rd64(r + 24), "XSDT");
    if (!t.xsdt)
        return false;
    u32 n = (rd32(t.xsdt + 4) - 36) / 8;
    for (u32 i = 0; i < n; i++) {
        u64 a = rd64(t.xsdt + 36 + 8 * i);
        const u8 *h = phys(a);
        if (memcmp(h, "FACP", 4) == 0)
            t.fadt = table_at(a, "FACP");
        else if (memcmp(h, "APIC", 4) == 0)
            t.madt = table_at(a, "APIC");
        else if (memcmp(h, "MCFG", 4) == 0)
            t.mcfg = table_at(a, "MCFG");
    }
    if (!t.fadt || !t.madt || rd32(t.fadt + 4) < 276)
        return false;
    t.dsdt = table_at(rd64(t.fadt + FADT_X_DSDT), "DSDT");
    t.ok = t.dsdt != 0;
    return t.ok;
}

/* Decode an AML PkgLength at p; returns its byte count, *len the value. */
static u32 pkglen(const u8 *p, u32 *len)
{
    u32 extra = p[0] >> 6;
    if (!extra) {
        *len = p[0] & 0x3f;
        return 1;
    }
    u32 v = p[0] & 0x0f;
    for (u32 i = 0; i < extra; i++)
        v |= (u32)p[1 + i] << (4 + 8 * i);
    *len = v;
    return 1 + extra;
}

int acpi_virtio_devices(struct acpi_mmio_dev *out, int max)
{
    if (!acpi_init())
        return 0;
    static const u8 hid[] = {0x0d, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0};
    const u8 *d = t.dsdt;
    u32 len = rd32(d + 4);
    int n = 0;
    for (u32 i = 36; i + sizeof hid < len && n < max; i++) {
        if (memcmp(d + i, hid, sizeof hid) != 0)
            continue;
        struct acpi_mmio_dev dev = {0};
        bool mem = false, irq = false;
        /* The device's _CRS follows within its own small Device scope. */
        for (u32 j = i + sizeof hid; j + 12 < len && j < i + 128; j++) {
            if (!mem && d[j] == 0x86 && d[j + 1] == 9 && d[j + 2] == 0) {
                dev.base = rd32(d + j + 4);
                dev.size = rd32(d + j + 8);
                mem = true;
            } else if (mem && !irq && d[j] == 0x89 && d[j + 1] == 6 && d[j + 2] == 0 &&
                       d[j + 4] == 1) {
                dev.gsi = rd32(d + j + 5);
                irq = true;
                break;
            }
        }
        if (!mem || !irq) {
            SAY("acpi: LNRO0005 device %d without Memory32Fixed + Interrupt", n);
            continue;
        }
        out[n++] = dev;
    }
    return n;
}

/* The SLP_TYP of \_S5: Name (_S5_, Package () { typ, ... }). */
static bool s5_slp_typ(u8 *typ)
{
    const u8 *d = t.dsdt;
    u32 len = rd32(d + 4);
    for (u32 i = 36; i + 10 < len; i++) {
        if (d[i] != 0x08 || memcmp(d + i + 1, "_S5_", 4) != 0 || d[i + 5] != 0x12)
            continue;
        u32 plen;
        u32 k = i + 6 + pkglen(d + i + 6, &plen) + 1; /* + NumElements */
        if (d[k] == 0x00 || d[k] == 0x01) {
            *typ = d[k];
            return true;
        }
        if (d[k] == 0x0a) {
            *typ = d[k + 1];
            return true;
        }
        return false;
    }
    return false;
}

/* An 8-bit System I/O generic address structure at p; returns the port or 0. */
static u16 gas_port(const u8 *p)
{
    if (p[0] != 1 || p[1] != 8)
        return 0;
    u64 a = rd64(p + 4);
    return a < 0x10000 ? (u16)a : 0;
}

void test_acpi(void)
{
    char v[24];
    u64 want_cpus = 1, want_devs = 0, want_acpi = 1;
    if (cmdline_get(boot.cmdline, "cpus", v, sizeof v))
        parse_u64(v, &want_cpus);
    if (cmdline_get(boot.cmdline, "devices", v, sizeof v))
        parse_u64(v, &want_devs);
    if (cmdline_get(boot.cmdline, "acpi", v, sizeof v))
        parse_u64(v, &want_acpi);

    bool ok = acpi_init();
    if (!want_acpi) {
        check("acpi_absent", !boot.rsdp && !scan_rsdp(), "boot pointer 0x%lx, scan 0x%lx",
              boot.rsdp, scan_rsdp());
        return;
    }
    check("acpi_rsdp_pointer", boot.rsdp != 0 && boot.rsdp == scan_rsdp(),
          "boot protocol 0x%lx, BIOS-area scan 0x%lx", boot.rsdp, scan_rsdp());
    if (!check("acpi_tables", ok, "RSDP, XSDT, FADT, MADT, DSDT with good checksums"))
        return;

    u32 flags = rd32(t.fadt + FADT_FLAGS);
    u16 slp = gas_port(t.fadt + FADT_SLEEP_CTL_REG), sts = gas_port(t.fadt + FADT_SLEEP_STS_REG);
    u16 rst = gas_port(t.fadt + FADT_RESET_REG);
    check("acpi_fadt",
          (flags & FADT_HW_REDUCED) && (flags & FADT_RESET_REG_SUP) && slp && sts && rst,
          "flags 0x%x sleep ctl 0x%x sts 0x%x reset 0x%x value 0x%x", flags, slp, sts, rst,
          t.fadt[FADT_RESET_VALUE]);

    /* MADT: count enabled local APICs, find the IOAPIC and the overrides. */
    u32 len = rd32(t.madt + 4), lapics = 0, ioapics = 0, ioapic_addr = 0;
    int iso_pin[16];
    for (int i = 0; i < 16; i++)
        iso_pin[i] = i == 2 ? -1 : i; /* ISA IRQ n is GSI n unless overridden */
    for (u32 o = 44; o + 2 <= len;) {
        const u8 *e = t.madt + o;
        if (e[1] < 2 || o + e[1] > len)
            break;
        if (e[0] == 0 && e[1] == 8 && (rd32(e + 4) & 1))
            lapics++;
        else if (e[0] == 1 && e[1] == 12) {
            ioapics++;
            ioapic_addr = rd32(e + 4);
        } else if (e[0] == 2 && e[1] == 10 && e[3] < 16)
            iso_pin[e[3]] = (int)rd32(e + 4);
        o += e[1];
    }
    check("acpi_madt_cpus", lapics == want_cpus, "%u enabled local APICs, want %lu", lapics,
          want_cpus);
    check("acpi_madt_ioapic", ioapics == 1 && ioapic_addr == 0xFEC00000u, "%u at 0x%x", ioapics,
          ioapic_addr);
    /* The MADT and the MP table describe one wiring. */
    int bad = -1;
    for (int irq = 0; irq < 16; irq++)
        if (irq != 2 && mp_isa_irq_pin((u32)irq) >= 0 && mp_isa_irq_pin((u32)irq) != iso_pin[irq])
            bad = irq;
    check("acpi_madt_isa_wiring", bad < 0, "IRQ0 -> GSI %d%s", iso_pin[0],
          bad < 0 ? ", all ISA IRQs as in the MP table" : ", an IRQ disagrees with the MP table");

    struct acpi_mmio_dev devs[32];
    int n = acpi_virtio_devices(devs, 32), alive = 0;
    for (int i = 0; i < n; i++)
        alive += mmio_read32(devs[i].base) == 0x74726976; /* "virt" */
    check("acpi_dsdt_virtio", (u64)n == want_devs && alive == n,
          "%d LNRO0005 devices (want %lu), %d answer with the virtio magic", n, want_devs, alive);
    u8 typ = 0xff;
    check("acpi_dsdt_s5", s5_slp_typ(&typ) && typ <= 7, "SLP_TYP %u", typ);
}

static void wait_for_vmm(const char *what)
{
    /* A VMM may act on the request asynchronously: give it time. */
    u64 start = rdtsc(), limit = vticks_ms() * 500;
    while (rdtsc() - start < limit)
        cpu_relax();
    SAY("%s: still running", what);
}

void test_acpi_poweroff(void)
{
    u8 typ;
    u16 port = 0;
    if (acpi_init() && s5_slp_typ(&typ))
        port = gas_port(t.fadt + FADT_SLEEP_CTL_REG);
    if (!check("acpi_poweroff_regs", port != 0, "sleep control port 0x%x", port))
        return;
    SAY("acpi-poweroff: writing SLP_TYP %u | SLP_EN to port 0x%x", typ, port);
    outb(port, (u8)((typ & 7) << 2 | 0x20));
    wait_for_vmm("acpi-poweroff");
    any_failed = true;
}

void test_acpi_reset(void)
{
    u16 port = 0;
    if (acpi_init() && (rd32(t.fadt + FADT_FLAGS) & FADT_RESET_REG_SUP))
        port = gas_port(t.fadt + FADT_RESET_REG);
    if (!check("acpi_reset_regs", port != 0, "reset port 0x%x", port))
        return;
    SAY("acpi-reset: writing 0x%x to port 0x%x", t.fadt[FADT_RESET_VALUE], port);
    outb(port, t.fadt[FADT_RESET_VALUE]);
    wait_for_vmm("acpi-reset");
    any_failed = true;
}

bool acpi_mcfg_bus0(u64 *ecam)
{
    if (!acpi_init() || !t.mcfg)
        return false;
    /* MCFG: 36-byte header, 8 reserved, then 16-byte allocations: base
     * (8), segment (2), start bus, end bus, 4 reserved. */
    u32 n = (rd32(t.mcfg + 4) - 44) / 16;
    for (u32 i = 0; i < n; i++) {
        const u8 *a = t.mcfg + 44 + 16 * i;
        if (a[8] == 0 && a[9] == 0 && a[10] == 0) {
            *ecam = rd64(a);
            return true;
        }
    }
    return false;
}
