/*
 * The x86 interrupt wiring: the GSI routing wisp installs in KVM, and its
 * agreement with what the MP table tells the guest for every ISA IRQ and
 * every virtio-mmio slot.  A disagreement here is a guest that never sees
 * its timer (Linux: "APIC timer disabled due to verification failure").
 */
#include <criterion/criterion.h>
#include <string.h>

#include "arch/arch.h"
#include "vmm/config.h"
#include "arch/x86_64/irqmap.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"
#include "tests/lib/x86_images.h"

static struct irq_routing *r;

static void setup(void)
{
    r = irq_routing_new();
    cr_assert_not_null(r);
    cr_assert_eq(x86_irq_routing_default(r), 0);
}

static void teardown(void)
{
    irq_routing_free(r);
}

TestSuite(x86_irqmap, .init = setup, .fini = teardown);

static bool route(unsigned gsi, unsigned chip, unsigned *pin)
{
    return irq_routing_lookup(r, gsi, chip, pin);
}

Test(x86_irqmap, pit_on_ioapic_pin_2_and_pic_pin_0)
{
    unsigned pin;
    cr_assert(route(0, KVM_IRQCHIP_IOAPIC, &pin));
    cr_assert_eq(pin, 2, "the PIT (GSI 0) must reach IOAPIC pin 2, as the MP table says");
    cr_assert(route(0, KVM_IRQCHIP_PIC_MASTER, &pin));
    cr_assert_eq(pin, 0, "and the master PIC's pin 0 (noapic guests)");
    cr_assert_not(route(0, KVM_IRQCHIP_PIC_SLAVE, &pin));
}

Test(x86_irqmap, cascade_has_no_route)
{
    unsigned pin;
    cr_assert_not(route(2, KVM_IRQCHIP_IOAPIC, &pin));
    cr_assert_not(route(2, KVM_IRQCHIP_PIC_MASTER, &pin));
    cr_assert_eq(x86_isa_irq_ioapic_pin(2), -1);
    cr_assert_eq(x86_isa_irq_ioapic_pin(16), -1);
}

Test(x86_irqmap, every_entry)
{
    unsigned pin;
    for (unsigned gsi = 1; gsi < 16; gsi++) {
        if (gsi == 2)
            continue;
        unsigned pic = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
        cr_assert(route(gsi, pic, &pin), "GSI %u on its PIC", gsi);
        cr_assert_eq(pin, gsi % 8);
        cr_assert(route(gsi, KVM_IRQCHIP_IOAPIC, &pin), "GSI %u on the IOAPIC", gsi);
        cr_assert_eq(pin, gsi);
        cr_assert_eq(x86_isa_irq_ioapic_pin(gsi), (int)gsi);
    }
    for (unsigned gsi = 16; gsi < 24; gsi++) {
        cr_assert(route(gsi, KVM_IRQCHIP_IOAPIC, &pin), "GSI %u", gsi);
        cr_assert_eq(pin, gsi);
        cr_assert_not(route(gsi, KVM_IRQCHIP_PIC_MASTER, &pin));
        cr_assert_not(route(gsi, KVM_IRQCHIP_PIC_SLAVE, &pin));
    }
    /* 14 ISA IRQs on both chips, the PIT on both, 8 IOAPIC-only pins. */
    cr_assert_eq(irq_routing_count(r), 14 * 2 + 2 + 8);
    cr_assert_eq(irq_routing_free_gsi(r, 3), 24, "GSI 2 is free, 24 is the first for MSI");

    /* Only irqchip routes, pins in range, each pin used once (KVM's rules). */
    bool used[3][24] = {{false}};
    for (unsigned i = 0; i < irq_routing_count(r); i++) {
        const struct kvm_irq_routing_entry *e = irq_routing_entry(r, i);
        cr_assert_eq(e->type, KVM_IRQ_ROUTING_IRQCHIP);
        cr_assert_lt(e->u.irqchip.irqchip, 3);
        cr_assert_lt(e->u.irqchip.pin, e->u.irqchip.irqchip == KVM_IRQCHIP_IOAPIC ? 24 : 8);
        cr_assert_not(used[e->u.irqchip.irqchip][e->u.irqchip.pin]);
        used[e->u.irqchip.irqchip][e->u.irqchip.pin] = true;
    }
    cr_assert_not(used[KVM_IRQCHIP_IOAPIC][0], "IOAPIC pin 0 is the 8259 output on a PC");
}

/* ISA IRQ -> IOAPIC pin as the guest's MP table states it (-1: no entry). */
static void mptable_pins(unsigned nvcpus, int pins[16])
{
    struct gmem gm;
    struct errbuf err = {0};
    x86_img_gmem(&gm, 2 * MiB);
    cr_assert_eq(x86_mptable_write(&gm, nvcpus, &err), 0, "%s", err.msg);
    const uint8_t *c = gmem_ptr(&gm, X86_MPTABLE_GPA, X86_MPTABLE_MAX);
    uint16_t len = le16_get(c + 4);
    for (unsigned i = 0; i < 16; i++)
        pins[i] = -1;
    for (size_t off = 44; off < len;) {
        if (c[off] == 0) {
            off += 20;
            continue;
        }
        if (c[off] == 3 && c[off + 4] == 0) {
            cr_assert_lt(c[off + 5], 16);
            cr_assert_eq(pins[c[off + 5]], -1, "one entry per IRQ");
            pins[c[off + 5]] = c[off + 7];
        }
        off += 8;
    }
    gmem_destroy(&gm);
}

Test(x86_irqmap, mptable_agrees_with_the_routing)
{
    int pins[16];
    mptable_pins(2, pins);
    for (unsigned irq = 0; irq < 16; irq++) {
        unsigned pin;
        bool routed = route(irq, KVM_IRQCHIP_IOAPIC, &pin);
        cr_assert_eq(routed, pins[irq] >= 0, "ISA IRQ %u: routed=%d, MP table pin %d", irq, routed,
                     pins[irq]);
        if (routed)
            cr_assert_eq((int)pin, pins[irq], "ISA IRQ %u: KVM pin %u, MP table pin %d", irq, pin,
                         pins[irq]);
    }
}

Test(x86_irqmap, virtio_slots_and_the_uart_are_described_and_routed)
{
    int pins[16];
    mptable_pins(1, pins);
    struct vm_config cfg;
    config_init(&cfg);
    cfg.acpi = false;
    unsigned isa_slots = arch_virtio_slots(&cfg);
    cfg.acpi = true;
    unsigned acpi_slots = arch_virtio_slots(&cfg);
    cr_assert_eq(isa_slots, 8);
    cr_assert_eq(acpi_slots, 16);
    unsigned gsis[32], n = 0;
    uint64_t base;
    unsigned gsi;
    while (arch_virtio_slot(n, &base, &gsi) == 0) {
        cr_assert_lt(n, 24);
        gsis[n++] = gsi;
    }
    cr_assert_eq(n, acpi_slots, "every slot ACPI can describe exists, and no more");
    gsis[n++] = X86_COM1_IRQ;
    for (unsigned i = 0; i < n; i++) {
        unsigned pin;
        bool cmdline = i < isa_slots || i == n - 1;
        cr_assert_neq(gsis[i], X86_PIT_IRQ);
        cr_assert(route(gsis[i], KVM_IRQCHIP_IOAPIC, &pin), "GSI %u", gsis[i]);
        /* GSI n is IOAPIC pin n: what the DSDT names is what KVM raises. */
        cr_assert_eq(pin, gsis[i]);
        if (cmdline) {
            /* Without ACPI the guest finds the line in the MP table, by ISA IRQ. */
            cr_assert_lt(gsis[i], 16, "slot %u: an ISA IRQ the MP table lists", i);
            cr_assert_eq((int)pin, pins[gsis[i]], "GSI %u", gsis[i]);
        } else {
            cr_assert_geq(gsis[i], 16, "slot %u: an IOAPIC pin no ISA device claims", i);
            cr_assert_lt(gsis[i], X86_IOAPIC_PINS);
        }
        for (unsigned j = 0; j < i; j++)
            cr_assert_neq(gsis[i], gsis[j], "no two devices share a line");
    }
    config_free(&cfg);
}
