/*
 * smp.c - find the CPUs in the MP table and start the application
 * processors with INIT/SIPI through the xAPIC, for the report test.
 */
#include "guest.h"
#include "trampoline.h"

/* MP floating pointer structure ("_MP_", 16-byte aligned). */
struct mp_float {
    u32 signature;
    u32 config_paddr;
    u8 length; /* in 16-byte units */
    u8 spec_rev;
    u8 checksum;
    u8 features[5];
};
_Static_assert(sizeof(struct mp_float) == 16, "mp float");

/* MP configuration table header ("PCMP"). */
struct mp_config {
    u32 signature;
    u16 length;
    u8 spec_rev;
    u8 checksum;
    char oem[8];
    char product[12];
    u32 oem_table;
    u16 oem_size;
    u16 entry_count;
    u32 lapic_paddr;
    u16 ext_length;
    u8 ext_checksum;
    u8 reserved;
};
_Static_assert(sizeof(struct mp_config) == 44, "mp config");
_Static_assert(__builtin_offsetof(struct mp_config, lapic_paddr) == 36, "mp config");

/* Entry type 0: one per processor; types 1-4 are 8 bytes each. */
struct mp_cpu {
    u8 type;
    u8 apic_id;
    u8 apic_version;
    u8 flags; /* bit 0 enabled, bit 1 bootstrap processor */
    u32 signature;
    u32 features;
    u32 reserved[2];
};
_Static_assert(sizeof(struct mp_cpu) == 20, "mp cpu");

#define MP_SIG   0x5f504d5fu /* "_MP_" */
#define PCMP_SIG 0x504d4350u /* "PCMP" */

#define APIC_ICR_LO       0x300
#define APIC_ICR_HI       0x310
#define ICR_BUSY          (1u << 12)
#define ICR_INIT_ASSERT   0x0000c500u /* INIT, level, assert */
#define ICR_INIT_DEASSERT 0x00008500u
#define ICR_STARTUP       0x00004600u /* | vector */

static u32 ap_ids[GUEST_MAX_CPUS];
static u32 ap_online;

static u8 sum8(const u8 *p, u32 n)
{
    u8 s = 0;
    while (n--)
        s += *p++;
    return s;
}

static const struct mp_float *mp_scan(u64 base, u64 len)
{
    for (u64 a = base; a + 16 <= base + len; a += 16) {
        const struct mp_float *f = phys(a);
        if (f->signature == MP_SIG && f->length && sum8((const u8 *)f, f->length * 16u) == 0)
            return f;
    }
    return NULL;
}

/* Where the MP spec says to look: first KiB of the EBDA, last KiB of
 * base memory, then the BIOS ROM area. */
static const struct mp_float *mp_find(void)
{
    u64 ebda = (u64) * (const volatile u16 *)phys(0x40E) << 4;
    const struct mp_float *f = NULL;
    if (ebda >= 0x400 && ebda < 0xA0000)
        f = mp_scan(ebda, 1024);
    if (!f)
        f = mp_scan(0x9FC00, 1024);
    if (!f)
        f = mp_scan(0xF0000, 0x10000);
    return f;
}

/* The valid MP configuration table, or NULL. */
static const struct mp_config *mp_config(void)
{
    const struct mp_float *f = mp_find();
    if (!f || !f->config_paddr)
        return NULL;
    const struct mp_config *c = phys(f->config_paddr);
    if (c->signature != PCMP_SIG || sum8((const u8 *)c, c->length) != 0)
        return NULL;
    return c;
}

int mp_isa_irq_pin(u32 irq)
{
    const struct mp_config *c = mp_config();
    if (!c)
        return -1;
    /* Bus ids of ISA buses (entry type 1, type string "ISA   "), at most 8. */
    u8 isa[8];
    u32 nisa = 0;
    const u8 *p = (const u8 *)(c + 1), *end = (const u8 *)c + c->length;
    while (p < end) {
        u32 len = *p == 0 ? 20 : 8;
        if (*p > 4 || p + len > end)
            break;
        if (*p == 1 && nisa < 8 && memcmp(p + 2, "ISA", 3) == 0)
            isa[nisa++] = p[1];
        if (*p == 3) {
            /* I/O interrupt: type, irq type, flags(2), bus, bus irq, apic, pin. */
            for (u32 i = 0; i < nisa; i++)
                if (p[1] == 0 && p[4] == isa[i] && p[5] == irq)
                    return p[7];
        }
        p += len;
    }
    return -1;
}

/* Runs on each AP, on its own stack, once it reached long mode. */
void ap_main(u32 slot)
{
    u32 r[4];
    cpuid(1, 0, r);
    ap_ids[slot] = r[1] >> 24;
    __atomic_fetch_add(&ap_online, 1, __ATOMIC_RELEASE);
}

static void icr_send(u64 lapic, u32 apic_id, u32 low)
{
    mmio_write32(lapic + APIC_ICR_HI, apic_id << 24);
    mmio_write32(lapic + APIC_ICR_LO, low);
    for (int i = 0; i < 10000 && (mmio_read32(lapic + APIC_ICR_LO) & ICR_BUSY); i++)
        cpu_relax();
}

static void delay_us(u64 us)
{
    const char *src;
    u64 start = rdtsc(), ticks = tsc_khz(&src) * us / 1000;
    while (rdtsc() - start < ticks)
        cpu_relax();
}

/* Informational: the trampoline overwrites this page whatever the map
 * says, but a VMM that reserves it would deserve a warning. */
static bool tramp_page_is_ram(void)
{
    for (u32 i = 0; i < boot.nr_map; i++)
        if (boot.map[i].type == 1 && boot.map[i].addr <= GUEST_TRAMPOLINE_ADDR &&
            boot.map[i].addr + boot.map[i].size >= GUEST_TRAMPOLINE_ADDR + 4096)
            return true;
    return false;
}

/* Copy the trampoline to low memory and fill its data block. */
static bool tramp_install(void)
{
    u64 cr3;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    if (cr3 >> 32)
        return false; /* the 32-bit part loads CR3 */
    u8 *t = phys(GUEST_TRAMPOLINE_ADDR);
    memcpy(t, tramp_start, tramp_end - tramp_start);
    u32 base = GUEST_TRAMPOLINE_ADDR;
    struct tramp_data *td = (void *)(t + (tramp_data - tramp_start));
    td->gdt[0] = 0;
    td->gdt[1] = 0x00cf9a000000ffffull; /* 0x08 flat 32-bit code */
    td->gdt[2] = 0x00af9a000000ffffull; /* 0x10 64-bit code */
    td->gdt[3] = 0x00cf92000000ffffull; /* 0x18 flat data */
    td->gdtr_limit = sizeof td->gdt - 1;
    td->gdtr_base = base + (u32)(tramp_data - tramp_start);
    td->pm32_off = base + (u32)(tramp_pm32 - tramp_start);
    td->pm32_sel = 0x08;
    td->lm64_off = base + (u32)(tramp_lm64 - tramp_start);
    td->lm64_sel = 0x10;
    td->cr3 = (u32)cr3;
    td->next_slot = 0;
    td->max_slots = GUEST_MAX_CPUS;
    td->stack_base = (u64)ap_stacks;
    td->stack_size = 4096;
    td->entry = (u64)ap_main;
    return true;
}

void smp_report(u64 expect_cpus, bool have_expect)
{
    u32 r[4];
    cpuid(1, 0, r);
    u32 bsp_id = r[1] >> 24;
    u32 ids[GUEST_MAX_CPUS + 1];
    u32 n_aps = 0, online = 1;
    u64 lapic = 0xFEE00000;

    ids[0] = bsp_id;
    const struct mp_float *f = mp_find();
    const struct mp_config *c = NULL;
    if (f && f->config_paddr) {
        c = phys(f->config_paddr);
        if (c->signature != PCMP_SIG || sum8((const u8 *)c, c->length) != 0)
            c = NULL;
    }
    if (!f || !c) {
        SAY("mptable %s", f ? "invalid config table" : "none");
    } else {
        if (c->lapic_paddr)
            lapic = c->lapic_paddr;
        SAY("mptable at 0x%lx config=0x%x length=%u entry_count=%u lapic=0x%lx", (u64)f,
            f->config_paddr, c->length, c->entry_count, lapic);
        /* Start every enabled non-BSP processor: INIT them all, then the
         * SIPIs, with the SDM's delays (10 ms, 200 us) done once. */
        u32 targets[GUEST_MAX_CPUS];
        /* Walk by table length, not entry_count: some firmware (qboot)
         * leaves entry_count at 0; Linux walks by length too. */
        const u8 *p = (const u8 *)(c + 1), *end = (const u8 *)c + c->length;
        bool have_ioapic = false;
        u8 ioapic_id = 0;
        u32 ioapic_addr = 0;
        while (p < end) {
            if (*p == 2 && p + 8 <= end && !have_ioapic) {
                /* IOAPIC entry: type, id, version, flags, address. */
                have_ioapic = true;
                ioapic_id = p[1];
                ioapic_addr = (u32)p[4] | (u32)p[5] << 8 | (u32)p[6] << 16 | (u32)p[7] << 24;
            }
            if (*p != 0) {
                if (*p > 4)
                    break; /* unknown entry type: size unknown */
                p += 8;
                continue;
            }
            const struct mp_cpu *cpu = (const void *)p;
            p += sizeof *cpu;
            if (p > end)
                break;
            SAY("mptable cpu apic_id=%u enabled=%u bsp=%u", cpu->apic_id, cpu->flags & 1,
                (cpu->flags >> 1) & 1);
            if ((cpu->flags & 1) && cpu->apic_id != bsp_id && n_aps < GUEST_MAX_CPUS - 1)
                targets[n_aps++] = cpu->apic_id;
        }
        if (have_ioapic && ioapic_addr == 0xFEC00000u) {
            /* The table must name the id the IOAPIC itself reports (register 0,
             * bits 24-27), or an OS that checks or reprograms it is misled. */
            mmio_write32(ioapic_addr, 0);
            u32 reg_id = (mmio_read32(ioapic_addr + 0x10) >> 24) & 0xF;
            char v[8];
            if (cmdline_get(boot.cmdline, "ioapic_strict", v, sizeof v) && streq(v, "0"))
                SAY("ioapic id mptable=%u register=%u (not checked: ioapic_strict=0)", ioapic_id,
                    reg_id);
            else
                check("ioapic_id", reg_id == ioapic_id, "mptable=%u register=%u", ioapic_id,
                      reg_id);
        } else {
            SAY("mptable ioapic %s", have_ioapic ? "at an unexpected address" : "missing");
        }
        if (n_aps && !tramp_page_is_ram())
            SAY("smp: warning: trampoline page 0x%x is not RAM in the memory map",
                GUEST_TRAMPOLINE_ADDR);
        if (n_aps && !tramp_install()) {
            SAY("smp: CR3 above 4 GiB, cannot start APs");
        } else if (n_aps) {
            for (u32 i = 0; i < n_aps; i++) {
                icr_send(lapic, targets[i], ICR_INIT_ASSERT);
                icr_send(lapic, targets[i], ICR_INIT_DEASSERT);
            }
            delay_us(10000);
            for (int round = 0; round < 2; round++) {
                for (u32 i = 0; i < n_aps; i++)
                    icr_send(lapic, targets[i], ICR_STARTUP | GUEST_SIPI_VECTOR);
                delay_us(200);
            }
            /* Bounded wait (~2 s) for the check-ins. */
            const char *src;
            u64 start = rdtsc(), limit = tsc_khz(&src) * 2000;
            while (__atomic_load_n(&ap_online, __ATOMIC_ACQUIRE) < n_aps && rdtsc() - start < limit)
                cpu_relax();
            u32 got = __atomic_load_n(&ap_online, __ATOMIC_ACQUIRE);
            for (u32 i = 0; i < got && i < GUEST_MAX_CPUS; i++)
                ids[online++] = ap_ids[i];
        }
    }

    /* Sorted list for stable output. */
    for (u32 i = 1; i < online; i++)
        for (u32 j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            u32 t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    char list[GUEST_MAX_CPUS * 4 + 8];
    size_t len = 0;
    for (u32 i = 0; i < online && len < sizeof list; i++)
        len += sformat(list + len, sizeof list - len, i ? ",%u" : "%u", ids[i]);
    SAY("cpus=%u online apic_ids=%s", online, list);
    if (c)
        check("ap_startup", online == n_aps + 1, "mptable_aps=%u online_aps=%u", n_aps, online - 1);
    if (have_expect)
        check("cpus", online == expect_cpus, "expected=%lu online=%u", expect_cpus, online);
}
