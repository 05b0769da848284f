/*
 * test=pcidev: drive a passed-through PCI function the way a small driver
 * would, with only what wisp put on bus 0: find it by ids through conf1,
 * read the BAR0 address wisp assigned, enable memory decode and bus
 * mastering, and exercise it.  Why in the test guest and not Linux: every
 * step is checked and named, so a failure says which part of the
 * passthrough path broke (config space, BAR access, DMA at IOVA = GPA,
 * MSI routing).
 *
 * Devices known: QEMU's edu (1234:11e8; ID, liveness, factorial, DMA into
 * its buffer and back, MSI) and wisp's vfio-user test server (1b36:10f7;
 * ID, scratch, DMA engine with checksum, MSI-X vector 0; with loop=1 a
 * DMA loop that never ends, for live migration).  The config
 * space it found is printed first (dump_cfg), so host tests can check that
 * a layout file gave the guest exactly what it says.
 */
#include "guest.h"
#include "virtio.h"

#define CONF1_ADDR   0xCF8
#define CONF1_DATA   0xCFC
#define CONF1_ENABLE 0x80000000u

#define EDU_ID     0x11e81234u
#define WISPDEV_ID 0x10f71b36u
#define CAP_MSI    0x05
#define CAP_MSIX   0x11
#define BUF_LEN    256

static u8 src_buf[4096] __attribute__((aligned(4096)));
static u8 dst_buf[4096] __attribute__((aligned(4096)));
static volatile u32 msi_count;

static u32 cfg_read(u32 devfn, u32 reg)
{
    outl(CONF1_ADDR, CONF1_ENABLE | devfn << 8 | (reg & 0xfc));
    return inl(CONF1_DATA);
}

static void cfg_write(u32 devfn, u32 reg, u32 v)
{
    outl(CONF1_ADDR, CONF1_ENABLE | devfn << 8 | (reg & 0xfc));
    outl(CONF1_DATA, v);
}

static void cfg_write16(u32 devfn, u32 reg, u16 v)
{
    outl(CONF1_ADDR, CONF1_ENABLE | devfn << 8 | (reg & 0xfc));
    outw((u16)(CONF1_DATA + (reg & 2)), v);
}

static u32 find_cap(u32 devfn, u8 id)
{
    if (!(cfg_read(devfn, 4) >> 16 & 0x10))
        return 0;
    u32 p = cfg_read(devfn, 0x34) & 0xfc;
    for (int hops = 0; p >= 0x40 && hops < 48; hops++) {
        u32 w = cfg_read(devfn, p);
        if ((w & 0xff) == id)
            return p;
        p = w >> 8 & 0xfc;
    }
    return 0;
}

static void on_msi(void *arg)
{
    (void)arg;
    msi_count++;
}

/* Wait until (read32(addr) & mask) == want, at most ms milliseconds. */
static bool wait_reg(u64 addr, u32 mask, u32 want, u32 ms)
{
    u64 start = rdtsc(), limit = vticks_ms() * ms;
    while ((mmio_read32(addr) & mask) != want)
        if (rdtsc() - start > limit)
            return false;
    return true;
}

static bool wait_msi(u32 before, u32 ms)
{
    u64 start = rdtsc(), limit = vticks_ms() * ms;
    while (msi_count == before && rdtsc() - start < limit)
        irq_window();
    return msi_count != before;
}

static void fill(void)
{
    for (u32 i = 0; i < BUF_LEN; i++) {
        src_buf[i] = (u8)(i * 7 + 3);
        dst_buf[i] = 0;
    }
}

static bool same(void)
{
    for (u32 i = 0; i < BUF_LEN; i++)
        if (src_buf[i] != dst_buf[i])
            return false;
    return true;
}

static void test_edu(u32 devfn, u64 bar)
{
    u32 id = mmio_read32(bar);
    check("edu_id", (id & 0xff0000ffu) == 0x010000edu, "ID register 0x%08x", id);
    mmio_write32(bar + 4, 0x12345678u);
    u32 live = mmio_read32(bar + 4);
    check("edu_liveness", live == ~0x12345678u, "wrote 0x12345678, read 0x%08x", live);
    mmio_write32(bar + 8, 10);
    bool done = wait_reg(bar + 0x20, 1, 0, 2000);
    u32 fact = mmio_read32(bar + 8);
    check("edu_factorial", done && fact == 3628800u, "10! = %u", fact);

    /* DMA: guest RAM -> edu's buffer (0x40000) -> another guest buffer. */
    fill();
    mmio_write32(bar + 0x80, (u32)(u64)src_buf);
    mmio_write32(bar + 0x88, 0x40000);
    mmio_write32(bar + 0x90, BUF_LEN);
    mmio_write32(bar + 0x98, 1);
    bool d1 = wait_reg(bar + 0x98, 1, 0, 3000);
    mmio_write32(bar + 0x80, 0x40000);
    mmio_write32(bar + 0x88, (u32)(u64)dst_buf);
    mmio_write32(bar + 0x90, BUF_LEN);
    mmio_write32(bar + 0x98, 1 | 2);
    bool d2 = wait_reg(bar + 0x98, 1, 0, 3000);
    check("edu_dma", d1 && d2 && same(),
          "to device %s, back %s; dst[0..3] %02x %02x %02x %02x (src %02x %02x %02x %02x)",
          d1 ? "done" : "stuck", d2 ? "done" : "stuck", dst_buf[0], dst_buf[1], dst_buf[2],
          dst_buf[3], src_buf[0], src_buf[1], src_buf[2], src_buf[3]);

    /* MSI: one vector to the BSP; edu raises it on a write to 0x60. */
    u32 cap = find_cap(devfn, CAP_MSI);
    if (!check("edu_msi_cap", cap != 0, "MSI capability at 0x%x", cap))
        return;
    u32 apic;
    int vec = irq_msi_vector(on_msi, 0, &apic);
    u32 ctrl = cfg_read(devfn, cap) >> 16;
    bool is64 = ctrl & 0x80;
    cfg_write(devfn, cap + 4, 0xfee00000u | apic << 12);
    if (is64)
        cfg_write(devfn, cap + 8, 0);
    cfg_write16(devfn, cap + (is64 ? 12 : 8), (u16)vec);
    cfg_write16(devfn, cap + 2, (u16)((ctrl & ~0x70u) | 1));
    u32 before = msi_count;
    mmio_write32(bar + 0x60, 0x1);
    bool got = wait_msi(before, 2000);
    u32 status = mmio_read32(bar + 0x24);
    mmio_write32(bar + 0x64, status);
    check("edu_msi", got, "vector 0x%x to APIC %u: %u interrupt(s), irq status was 0x%x", vec, apic,
          msi_count - before, status);
    /* Once more, so a vector that only fires once is caught. */
    before = msi_count;
    mmio_write32(bar + 0x60, 0x2);
    got = wait_msi(before, 2000);
    mmio_write32(bar + 0x64, mmio_read32(bar + 0x24));
    check("edu_msi_again", got, "%u interrupt(s)", msi_count - before);
}

/* gone=1: the host kills the server while we poll; the BAR must then read
 * all-ones and the VM keep running. */
static void wispdev_gone(u64 bar)
{
    u64 start = rdtsc(), limit = vticks_ms() * 30000;
    u32 id = 0;
    while ((id = mmio_read32(bar)) == 0x77697370u && rdtsc() - start < limit)
        for (int i = 0; i < 1000; i++)
            cpu_relax();
    mmio_write32(bar + 8, 1); /* dropped, must not stop the VM */
    check("wispdev_gone", id == 0xffffffffu && mmio_read32(bar + 8) == 0xffffffffu,
          "after the server died: ID 0x%08x", id);
}

/*
 * loop=1: DMA forever (for live migration): iteration i fills the source
 * buffer with pattern(i) and has the device copy it into ring slot i % 8.
 * Each iteration checks the copy, the device's checksum against the
 * guest's own FNV-1a, that the MSI-X interrupt arrived, and that every
 * other slot still holds what an earlier iteration copied there: data
 * copied before a migration must be intact after it.  "pcidev: loop N ok"
 * every 64 iterations; a failure ends the loop with a failed check.
 */
#define RING 8
/* One page per slot, written only by the device: KVM's dirty log never
 * sees those writes, so only the device's own dirty report (or wisp's
 * "all DMA-mapped memory" fallback) gets them to a destination. */
static u8 ring[RING][4096] __attribute__((aligned(4096)));

static u8 pattern(u32 i, u32 k)
{
    return (u8)(i * 31u + k * 7u + (i >> 8));
}

static void wispdev_loop(u64 bar)
{
    for (u32 i = 0;; i++) {
        for (u32 k = 0; k < BUF_LEN; k++)
            src_buf[k] = pattern(i, k);
        u32 before = msi_count;
        mmio_write32(bar + 0x10, (u32)(u64)src_buf);
        mmio_write32(bar + 0x14, 0);
        mmio_write32(bar + 0x18, (u32)(u64)ring[i % RING]);
        mmio_write32(bar + 0x1c, 0);
        mmio_write32(bar + 0x20, BUF_LEN);
        mmio_write32(bar + 0x24, 1); /* synchronous: done when the write returns */
        u32 status = mmio_read32(bar + 0x28), sum = mmio_read32(bar + 0x2c);
        u32 want = fnv1a(src_buf, BUF_LEN);
        bool irq = wait_msi(before, 2000);
        u32 bad = RING;
        for (u32 s = 0; s < RING && s <= i && bad == RING; s++) {
            u32 j = i - ((i - s) % RING); /* the last iteration that wrote slot s */
            for (u32 k = 0; k < BUF_LEN; k++)
                if (ring[s][k] != pattern(j, k)) {
                    bad = s;
                    break;
                }
        }
        if (status != 1 || sum != want || !irq || bad != RING) {
            check("wispdev_loop", false,
                  "iteration %u: status 0x%x, checksum 0x%08x (want 0x%08x), interrupt %s, "
                  "slot %u %s",
                  i, status, sum, want, irq ? "yes" : "no", bad, bad == RING ? "ok" : "corrupt");
            return;
        }
        if (i % 64 == 63)
            SAY("pcidev: loop %u ok", i + 1);
    }
}

static void test_wispdev(u32 devfn, u64 bar)
{
    u32 id = mmio_read32(bar);
    check("wispdev_id", id == 0x77697370u, "ID register 0x%08x", id);
    char v[8];
    if (cmdline_get(boot.cmdline, "gone", v, sizeof v) && streq(v, "1")) {
        SAY("pcidev: waiting for the server to go");
        wispdev_gone(bar);
        return;
    }
    mmio_write32(bar + 8, 0xa5a5f00du);
    u32 scratch = mmio_read32(bar + 8);
    check("wispdev_scratch", scratch == 0xa5a5f00du, "scratch 0x%08x", scratch);

    /* MSI-X vector 0 to the BSP before the DMA, which signals it. */
    u32 cap = find_cap(devfn, CAP_MSIX);
    u32 apic = 0;
    int vec = -1;
    u64 entry = 0;
    if (check("wispdev_msix_cap", cap != 0, "MSI-X capability at 0x%x", cap)) {
        u32 table = cfg_read(devfn, cap + 4);
        entry = bar + (table & ~7u);
        vec = irq_msi_vector(on_msi, 0, &apic);
        mmio_write32(entry, 0xfee00000u | apic << 12);
        mmio_write32(entry + 4, 0);
        mmio_write32(entry + 8, (u32)vec);
        mmio_write32(entry + 12, 0); /* unmasked */
        u32 ctrl = cfg_read(devfn, cap) >> 16;
        cfg_write16(devfn, cap + 2, (u16)((ctrl & ~0x4000u) | 0x8000u));
    }
    fill();
    u32 before = msi_count;
    mmio_write32(bar + 0x10, (u32)(u64)src_buf);
    mmio_write32(bar + 0x14, 0);
    mmio_write32(bar + 0x18, (u32)(u64)dst_buf);
    mmio_write32(bar + 0x1c, 0);
    mmio_write32(bar + 0x20, BUF_LEN);
    mmio_write32(bar + 0x24, 1);
    bool done = wait_reg(bar + 0x28, 0xffffffffu, 1, 3000);
    check("wispdev_dma", done && same(), "status 0x%x; dst[0..1] %02x %02x (src %02x %02x)",
          mmio_read32(bar + 0x28), dst_buf[0], dst_buf[1], src_buf[0], src_buf[1]);
    if (vec >= 0) {
        bool got = wait_msi(before, 2000);
        check("wispdev_msix", got, "vector 0x%x to APIC %u: %u interrupt(s)", vec, apic,
              msi_count - before);
        /* Masked: the interrupt is held, not lost, and arrives on unmask. */
        mmio_write32(entry + 12, 1);
        before = msi_count;
        u32 raised = mmio_read32(bar + 0x30);
        mmio_write32(bar + 0x24, 1);
        bool quiet = !wait_msi(before, 300);
        u32 raised2 = mmio_read32(bar + 0x30);
        mmio_write32(entry + 12, 0);
        got = wait_msi(before, 2000);
        check("wispdev_msix_pending", quiet && got && raised2 == raised + 1,
              "masked: %s; device raised %u -> %u; after unmask %u interrupt(s)",
              quiet ? "quiet" : "delivered anyway", raised, raised2, msi_count - before);
        char v[8];
        if (cmdline_get(boot.cmdline, "loop", v, sizeof v) && streq(v, "1"))
            wispdev_loop(bar);
    }
}

/*
 * What the guest sees of the function's config space, for the host's
 * checks of layout files (docs/VPCI_LAYOUT.md): subsystem and class, the
 * capability chain as the guest walks it, and every dword of 0x40-0xff.
 */
static void dump_cfg(u32 devfn)
{
    u32 ss = cfg_read(devfn, 0x2c);
    SAY("pcidev: subsystem %04x:%04x class %06x", ss & 0xffff, ss >> 16, cfg_read(devfn, 8) >> 8);
    u32 p = cfg_read(devfn, 4) >> 16 & 0x10 ? cfg_read(devfn, 0x34) & 0xff : 0;
    for (int hops = 0; p >= 0x40 && p < 0x100 && !(p & 3) && hops < 48; hops++) {
        u32 w = cfg_read(devfn, p);
        SAY("pcidev: cap 0x%02x id 0x%02x", p, w & 0xff);
        p = w >> 8 & 0xff;
    }
    for (u32 off = 0x40; off < 0x100; off += 16)
        SAY("pcidev: cfg 0x%02x: %08x %08x %08x %08x", off, cfg_read(devfn, off),
            cfg_read(devfn, off + 4), cfg_read(devfn, off + 8), cfg_read(devfn, off + 12));
}

void test_pcidev(void)
{
    for (u32 devfn = 0; devfn < 256; devfn++) {
        u32 id = cfg_read(devfn, 0);
        if (id != EDU_ID && id != WISPDEV_ID)
            continue;
        u32 bar0 = cfg_read(devfn, 0x10);
        u64 bar = bar0 & ~0xfu;
        if ((bar0 & 6) == 4)
            bar |= (u64)cfg_read(devfn, 0x14) << 32;
        SAY("pcidev: %04x:%04x at 00:%02x.%u, BAR0 0x%lx", id & 0xffff, id >> 16, devfn >> 3,
            devfn & 7, bar);
        dump_cfg(devfn);
        if (!check("pcidev_bar0", bar != 0 && !(bar0 & 1), "BAR0 register 0x%08x", bar0))
            return;
        u32 cmd = cfg_read(devfn, 4) & 0xffff;
        cfg_write16(devfn, 4, (u16)(cmd | 0x2 | 0x4)); /* memory decode, bus master */
        if (id == EDU_ID)
            test_edu(devfn, bar);
        else
            test_wispdev(devfn, bar);
        return;
    }
    check("pcidev_found", false, "no edu (1234:11e8) or wisp test device (1b36:10f7) on bus 0");
}
