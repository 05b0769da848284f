/*
 * test=pci: find PCI bus 0 the way a kernel does without firmware help
 * (conf1 probing on ports 0xCF8/0xCFC) and through ECAM (the MCFG's
 * address, or ecam=ADDR on the command line with --acpi off), enumerate
 * it both ways, and check that both reach one config space: the same
 * functions, the host bridge's ids and class, all-ones from absent
 * functions, a write through one visible through the other.
 * pci=0: the VMM has no PCI bus; conf1 must not answer.
 */
#include "acpi.h"
#include "guest.h"

#define CONF1_ADDR   0xCF8
#define CONF1_DATA   0xCFC
#define CONF1_ENABLE 0x80000000u
#define HOST_ID      0x00081b36u /* device 0x0008, vendor 0x1b36 */
#define HOST_CLASS   0x060000u

static u32 conf1_read(u32 devfn, u32 reg)
{
    outl(CONF1_ADDR, CONF1_ENABLE | devfn << 8 | (reg & 0xfc));
    return inl(CONF1_DATA);
}

static u16 conf1_read16(u32 devfn, u32 reg)
{
    outl(CONF1_ADDR, CONF1_ENABLE | devfn << 8 | (reg & 0xfc));
    return inw((u16)(CONF1_DATA + (reg & 2)));
}

static void conf1_write16(u32 devfn, u32 reg, u16 v)
{
    outl(CONF1_ADDR, CONF1_ENABLE | devfn << 8 | (reg & 0xfc));
    outw((u16)(CONF1_DATA + (reg & 2)), v);
}

static u32 ecam_read(u64 ecam, u32 devfn, u32 reg)
{
    return mmio_read32(ecam + ((u64)devfn << 12) + reg);
}

static u8 ecam_read8(u64 ecam, u32 devfn, u32 reg)
{
    return *(volatile u8 *)(ecam + ((u64)devfn << 12) + reg);
}

/* Linux's pci_check_type1(): the address register must hold what it got. */
static bool conf1_present(void)
{
    u32 save = inl(CONF1_ADDR);
    outl(CONF1_ADDR, CONF1_ENABLE);
    bool ok = inl(CONF1_ADDR) == CONF1_ENABLE;
    outl(CONF1_ADDR, save);
    return ok;
}

/* Functions on bus 0 (the usual walk: functions 1-7 only for a
 * multi-function device 0); their ids in ids[devfn]. */
static int enumerate(u64 ecam, bool use_ecam, u32 *ids)
{
    int n = 0;
    for (u32 dev = 0; dev < 32; dev++) {
        for (u32 fn = 0; fn < 8; fn++) {
            u32 devfn = dev << 3 | fn;
            u32 id = use_ecam ? ecam_read(ecam, devfn, 0) : conf1_read(devfn, 0);
            ids[devfn] = id;
            if (id == 0xffffffffu) {
                if (fn == 0)
                    break;
                continue;
            }
            n++;
            u32 hdr = use_ecam ? ecam_read(ecam, devfn, 0x0c) : conf1_read(devfn, 0x0c);
            if (fn == 0 && !(hdr >> 16 & 0x80))
                break;
        }
    }
    return n;
}

void test_pci(void)
{
    char v[24];
    bool expect = !(cmdline_get(boot.cmdline, "pci", v, sizeof v) && streq(v, "0"));
    bool conf1 = conf1_present();
    if (!expect) {
        check("pci_absent", !conf1 && conf1_read(0, 0) == 0xffffffffu,
              "conf1 address register %s, 00.0 reads 0x%x", conf1 ? "answers" : "does not answer",
              conf1_read(0, 0));
        return;
    }
    if (!check("pci_conf1_present", conf1, "the address register holds 0x80000000"))
        return;

    static u32 ids_c[256], ids_e[256];
    int nc = enumerate(0, false, ids_c);
    u32 id = conf1_read(0, 0), cls = conf1_read(0, 8) >> 8, hdr = conf1_read(0, 0x0c) >> 16 & 0x7f;
    SAY("pci conf1: %d function(s); 00.0 %04x:%04x class %06x header %u", nc, id & 0xffff, id >> 16,
        cls, hdr);
    check("pci_host_bridge_conf1", id == HOST_ID && cls == HOST_CLASS && hdr == 0,
          "00.0 id 0x%08x class 0x%06x header type %u", id, cls, hdr);
    check("pci_absent_conf1",
          conf1_read(1 << 3, 0) == 0xffffffffu && conf1_read(0x1f << 3, 0) == 0xffffffffu,
          "devices 01 and 1f read all-ones");

    u64 ecam = 0;
    const char *src = "MCFG";
    if (!acpi_mcfg_bus0(&ecam)) {
        src = "command line";
        if (!cmdline_get(boot.cmdline, "ecam", v, sizeof v) || !parse_u64(v, &ecam))
            ecam = 0;
    }
    if (!check("pci_ecam_found", ecam != 0, "ECAM at 0x%lx from the %s", ecam, src))
        return;
    int ne = enumerate(ecam, true, ids_e);
    bool same = ne == nc;
    for (u32 i = 0; i < 256; i++)
        same = same && ids_c[i] == ids_e[i];
    SAY("pci ecam: %d function(s) at 0x%lx", ne, ecam);
    check("pci_ecam_matches_conf1", same, "conf1 %d function(s), ECAM %d", nc, ne);
    u32 eid = ecam_read(ecam, 0, 0), ecls = ecam_read(ecam, 0, 8) >> 8;
    check("pci_host_bridge_ecam",
          eid == HOST_ID && ecls == HOST_CLASS && ecam_read8(ecam, 0, 0x0b) == 6,
          "00.0 id 0x%08x class 0x%06x", eid, ecls);
    check("pci_absent_ecam",
          ecam_read(ecam, 1 << 3, 0) == 0xffffffffu && ecam_read8(ecam, 2 << 3, 0) == 0xff,
          "devices 01 and 02 read all-ones");
    /* Extended space exists only through ECAM; the bridge has none: 0. */
    check("pci_ecam_extended", ecam_read(ecam, 0, 0x100) == 0, "00.0 offset 0x100 reads 0x%x",
          ecam_read(ecam, 0, 0x100));

    /* One config space: set the bridge's SERR# enable through conf1, see it
     * through ECAM, clear it through ECAM, see that through conf1. */
    u16 cmd = conf1_read16(0, 4);
    conf1_write16(0, 4, (u16)(cmd | 0x100));
    u32 via_e = ecam_read(ecam, 0, 4) & 0xffff;
    mmio_write32(ecam + 4, cmd);
    u16 via_c = conf1_read16(0, 4);
    check("pci_one_config_space", via_e == (u32)(cmd | 0x100) && via_c == cmd,
          "command 0x%x -> conf1 write 0x%x -> ECAM read 0x%x -> ECAM write back -> conf1 0x%x",
          cmd, cmd | 0x100, via_e, via_c);
    /* No BARs on the bridge: sizing reads back 0. */
    outl(CONF1_ADDR, CONF1_ENABLE | 0x10);
    outl(CONF1_DATA, 0xffffffffu);
    check("pci_host_bridge_no_bars", conf1_read(0, 0x10) == 0, "BAR0 after sizing: 0x%x",
          conf1_read(0, 0x10));
}
