/*
 * MP table writer (see mptable.h).  Linux finds the floating pointer by
 * scanning the first KiB of the EBDA (whose segment the BIOS data area
 * announces), follows it to the configuration table and from there learns
 * the CPUs and the interrupt wiring.  The table is built in a host buffer
 * from fixed-size structs, checksummed, then copied into guest memory once.
 */
#include "arch/x86_64/mptable.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "arch/x86_64/irqmap.h"
#include "arch/x86_64/layout.h"

/* Layouts from MP spec 1.4 chapter 4; all naturally aligned, so no packing is needed. */
struct mp_floating {
    char signature[4]; /* "_MP_" */
    uint32_t config_paddr;
    uint8_t length; /* in 16-byte units */
    uint8_t spec_rev;
    uint8_t checksum;
    uint8_t feature[5]; /* all 0: a configuration table is present */
};
_Static_assert(offsetof(struct mp_floating, config_paddr) == 4, "mpf paddr");
_Static_assert(offsetof(struct mp_floating, checksum) == 10, "mpf checksum");
_Static_assert(sizeof(struct mp_floating) == 16, "mpf size");

struct mp_config {
    char signature[4]; /* "PCMP" */
    uint16_t base_length;
    uint8_t spec_rev;
    uint8_t checksum;
    char oem_id[8];
    char product_id[12];
    uint32_t oem_table_ptr;
    uint16_t oem_table_size;
    uint16_t entry_count;
    uint32_t lapic_addr;
    uint16_t ext_length;
    uint8_t ext_checksum;
    uint8_t reserved;
};
_Static_assert(offsetof(struct mp_config, checksum) == 7, "mpc checksum");
_Static_assert(offsetof(struct mp_config, oem_id) == 8, "mpc oem");
_Static_assert(offsetof(struct mp_config, product_id) == 16, "mpc product");
_Static_assert(offsetof(struct mp_config, oem_table_ptr) == 28, "mpc oem ptr");
_Static_assert(offsetof(struct mp_config, entry_count) == 34, "mpc count");
_Static_assert(offsetof(struct mp_config, lapic_addr) == 36, "mpc lapic");
_Static_assert(offsetof(struct mp_config, ext_length) == 40, "mpc ext length");
_Static_assert(sizeof(struct mp_config) == 44, "mpc size");

struct mp_processor {
    uint8_t type; /* MP_ENTRY_PROCESSOR */
    uint8_t apic_id;
    uint8_t apic_version;
    uint8_t cpu_flags;
    uint32_t cpu_signature;
    uint32_t feature_flags;
    uint32_t reserved[2];
};
_Static_assert(offsetof(struct mp_processor, cpu_signature) == 4, "mpp signature");
_Static_assert(sizeof(struct mp_processor) == 20, "mpp size");

struct mp_bus {
    uint8_t type; /* MP_ENTRY_BUS */
    uint8_t bus_id;
    char bus_type[6];
};
_Static_assert(sizeof(struct mp_bus) == 8, "mp bus size");

struct mp_ioapic {
    uint8_t type; /* MP_ENTRY_IOAPIC */
    uint8_t id;
    uint8_t version;
    uint8_t flags;
    uint32_t addr;
};
_Static_assert(offsetof(struct mp_ioapic, addr) == 4, "mp ioapic addr");
_Static_assert(sizeof(struct mp_ioapic) == 8, "mp ioapic size");

/* Shared by I/O (type 3) and local (type 4) interrupt assignment entries. */
struct mp_intsrc {
    uint8_t type;
    uint8_t irq_type;
    uint16_t irq_flags;
    uint8_t src_bus;
    uint8_t src_bus_irq;
    uint8_t dst_apic;
    uint8_t dst_pin;
};
_Static_assert(offsetof(struct mp_intsrc, irq_flags) == 2, "mp intsrc flags");
_Static_assert(offsetof(struct mp_intsrc, dst_pin) == 7, "mp intsrc pin");
_Static_assert(sizeof(struct mp_intsrc) == 8, "mp intsrc size");

#define MP_SPEC_REV        4 /* 1.4 */
#define MP_ENTRY_PROCESSOR 0
#define MP_ENTRY_BUS       1
#define MP_ENTRY_IOAPIC    2
#define MP_ENTRY_IOINT     3
#define MP_ENTRY_LOCALINT  4
#define MP_CPU_ENABLED     0x01
#define MP_CPU_BSP         0x02
#define MP_LAPIC_VERSION   0x14 /* integrated xAPIC, what KVM reports */
#define MP_IOAPIC_VERSION  0x11 /* 82093AA-compatible, what KVM emulates */
#define MP_IOAPIC_ENABLED  0x01
#define MP_CPU_SIGNATURE   0x600 /* family 6 */
#define MP_CPU_FEATURES    0x201 /* FPU | APIC */
#define MP_INT_INT         0
#define MP_INT_NMI         1
#define MP_INT_EXTINT      3
#define MP_ISA_IRQS        X86_ISA_IRQS
#define MP_ALL_APICS       0xFF

/* Entries besides the CPUs and I/O interrupts: bus, IOAPIC, 2 local interrupts. */
#define MP_FIXED_ENTRIES 4U
/* Worst-case table size, so the host buffer is fixed and cannot overflow. */
#define MP_TABLE_MAX_BYTES                                                                         \
    (sizeof(struct mp_config) + X86_MPTABLE_MAX_VCPUS * sizeof(struct mp_processor) +              \
     sizeof(struct mp_bus) + sizeof(struct mp_ioapic) +                                            \
     (MP_ISA_IRQS + 2) * sizeof(struct mp_intsrc))
_Static_assert(MP_TABLE_MAX_BYTES <= X86_MPTABLE_MAX, "MP table fits its reserved area");
_Static_assert(MP_TABLE_MAX_BYTES <= UINT16_MAX, "base_length is 16 bits");
_Static_assert(sizeof(struct mp_floating) <= X86_EBDA_SIZE, "floating pointer fits the EBDA");
_Static_assert(X86_MPTABLE_GPA + X86_MPTABLE_MAX <= 0x100000000ULL, "config_paddr is 32 bits");
_Static_assert(X86_MPTABLE_MAX_VCPUS < MP_ALL_APICS, "the IOAPIC id must not be 0xFF");

/* The value that makes the bytes of [p, p+len) sum to zero mod 256. */
static uint8_t mp_checksum(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + p[i]);
    return (uint8_t)(0x100 - sum);
}

/* Append one entry; the buffer size was proven sufficient above, so this cannot overrun. */
static void put(uint8_t *buf, size_t *off, const void *entry, size_t len)
{
    memcpy(buf + *off, entry, len);
    *off += len;
}

static void put_intsrc(uint8_t *buf, size_t *off, uint8_t type, uint8_t irq_type, uint8_t src_irq,
                       uint8_t dst_apic, uint8_t dst_pin)
{
    struct mp_intsrc e = {
        .type = type,
        .irq_type = irq_type,
        .irq_flags = 0, /* polarity and trigger conform to the bus (ISA: high, edge) */
        .src_bus = 0,
        .src_bus_irq = src_irq,
        .dst_apic = dst_apic,
        .dst_pin = dst_pin,
    };
    put(buf, off, &e, sizeof(e));
}

int x86_mptable_write(const struct gmem *gm, unsigned nvcpus, struct errbuf *err)
{
    if (nvcpus < 1 || nvcpus > X86_MPTABLE_MAX_VCPUS)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "%u vCPUs requested; the MP table describes 1 to %u", nvcpus,
                       X86_MPTABLE_MAX_VCPUS);

    uint8_t buf[MP_TABLE_MAX_BYTES];
    size_t off = sizeof(struct mp_config);
    memset(buf, 0, sizeof(buf));

    for (unsigned i = 0; i < nvcpus; i++) {
        struct mp_processor p = {
            .type = MP_ENTRY_PROCESSOR,
            .apic_id = (uint8_t)i,
            .apic_version = MP_LAPIC_VERSION,
            .cpu_flags = (uint8_t)(MP_CPU_ENABLED | (i == 0 ? MP_CPU_BSP : 0)),
            .cpu_signature = MP_CPU_SIGNATURE,
            .feature_flags = MP_CPU_FEATURES,
        };
        put(buf, &off, &p, sizeof(p));
    }

    struct mp_bus bus = {.type = MP_ENTRY_BUS, .bus_id = 0};
    memcpy(bus.bus_type, "ISA   ", sizeof(bus.bus_type));
    put(buf, &off, &bus, sizeof(bus));

    const uint8_t ioapic_id = (uint8_t)x86_ioapic_id(nvcpus);
    struct mp_ioapic io = {
        .type = MP_ENTRY_IOAPIC,
        .id = ioapic_id,
        .version = MP_IOAPIC_VERSION,
        .flags = MP_IOAPIC_ENABLED,
        .addr = (uint32_t)X86_IOAPIC_GPA,
    };
    put(buf, &off, &io, sizeof(io));

    /* Every ISA IRQ with an IOAPIC pin, on the pin KVM's routing gives it
     * (irqmap.h: the PIT's IRQ 0 on pin 2, IRQ n on pin n, no cascade). */
    unsigned n_ioint = 0;
    for (unsigned irq = 0; irq < MP_ISA_IRQS; irq++) {
        int pin = x86_isa_irq_ioapic_pin(irq);
        if (pin < 0)
            continue;
        put_intsrc(buf, &off, MP_ENTRY_IOINT, MP_INT_INT, (uint8_t)irq, ioapic_id, (uint8_t)pin);
        n_ioint++;
    }
    put_intsrc(buf, &off, MP_ENTRY_LOCALINT, MP_INT_EXTINT, 0, MP_ALL_APICS, 0);
    put_intsrc(buf, &off, MP_ENTRY_LOCALINT, MP_INT_NMI, 0, MP_ALL_APICS, 1);

    struct mp_config hdr = {
        .base_length = (uint16_t)off,
        .spec_rev = MP_SPEC_REV,
        .entry_count = (uint16_t)(nvcpus + n_ioint + MP_FIXED_ENTRIES),
        .lapic_addr = (uint32_t)X86_LAPIC_GPA,
    };
    memcpy(hdr.signature, "PCMP", sizeof(hdr.signature));
    memcpy(hdr.oem_id, "WISP    ", sizeof(hdr.oem_id));
    memcpy(hdr.product_id, "MICROVM     ", sizeof(hdr.product_id));
    memcpy(buf, &hdr, sizeof(hdr));
    buf[offsetof(struct mp_config, checksum)] = mp_checksum(buf, off);

    struct mp_floating mpf = {
        .config_paddr = (uint32_t)X86_MPTABLE_GPA,
        .length = 1,
        .spec_rev = MP_SPEC_REV,
    };
    memcpy(mpf.signature, "_MP_", sizeof(mpf.signature));
    mpf.checksum = mp_checksum((const uint8_t *)&mpf, sizeof(mpf));

    if (gmem_zero(gm, X86_EBDA_GPA, X86_EBDA_SIZE) < 0 ||
        gmem_zero(gm, X86_MPTABLE_GPA, X86_MPTABLE_MAX) < 0 ||
        gmem_write(gm, X86_EBDA_GPA, &mpf, sizeof(mpf)) < 0 ||
        gmem_write(gm, X86_MPTABLE_GPA, buf, off) < 0)
        return err_set(err, WISP_EXIT_USAGE, EFAULT,
                       "guest RAM does not cover the MP table areas at 0x%llx and 0x%llx",
                       (unsigned long long)X86_EBDA_GPA, (unsigned long long)X86_MPTABLE_GPA);
    return 0;
}
