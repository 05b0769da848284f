/*
 * GSI routing table: the KVM rules it enforces while being edited (one
 * route per GSI and irqchip, one GSI per pin, MSI and irqchip routes never
 * mixed on a GSI), replacement, removal and GSI allocation.
 */
#include "vmm/irq_routing.h"

#include <criterion/criterion.h>
#include <errno.h>

static struct irq_routing *r;

static void setup(void)
{
    r = irq_routing_new();
    cr_assert_not_null(r);
}

static void teardown(void)
{
    irq_routing_free(r);
}

TestSuite(irq_routing, .init = setup, .fini = teardown);

Test(irq_routing, empty)
{
    unsigned pin;
    cr_assert_eq(irq_routing_count(r), 0);
    cr_assert_null(irq_routing_entry(r, 0));
    cr_assert_not(irq_routing_lookup(r, 0, KVM_IRQCHIP_IOAPIC, &pin));
    cr_assert_eq(irq_routing_free_gsi(r, 0), 0);
    irq_routing_free(NULL);
}

Test(irq_routing, one_gsi_on_two_chips)
{
    unsigned pin;
    cr_assert_eq(irq_routing_set_irqchip(r, 0, KVM_IRQCHIP_PIC_MASTER, 0), 0);
    cr_assert_eq(irq_routing_set_irqchip(r, 0, KVM_IRQCHIP_IOAPIC, 2), 0);
    cr_assert_eq(irq_routing_count(r), 2);
    cr_assert(irq_routing_lookup(r, 0, KVM_IRQCHIP_IOAPIC, &pin));
    cr_assert_eq(pin, 2);
    cr_assert(irq_routing_lookup(r, 0, KVM_IRQCHIP_PIC_MASTER, &pin));
    cr_assert_eq(pin, 0);
    const struct kvm_irq_routing_entry *e = irq_routing_entry(r, 1);
    cr_assert_eq(e->gsi, 0);
    cr_assert_eq(e->type, KVM_IRQ_ROUTING_IRQCHIP);
    cr_assert_eq(e->u.irqchip.irqchip, KVM_IRQCHIP_IOAPIC);
    cr_assert_eq(e->u.irqchip.pin, 2);
}

Test(irq_routing, same_chip_again_replaces_the_pin)
{
    unsigned pin;
    cr_assert_eq(irq_routing_set_irqchip(r, 5, KVM_IRQCHIP_IOAPIC, 5), 0);
    cr_assert_eq(irq_routing_set_irqchip(r, 5, KVM_IRQCHIP_IOAPIC, 7), 0);
    cr_assert_eq(irq_routing_count(r), 1);
    cr_assert(irq_routing_lookup(r, 5, KVM_IRQCHIP_IOAPIC, &pin));
    cr_assert_eq(pin, 7);
}

/* KVM maps an acknowledged pin back to a single GSI: sharing it loses one. */
Test(irq_routing, pin_taken_by_another_gsi)
{
    cr_assert_eq(irq_routing_set_irqchip(r, 0, KVM_IRQCHIP_IOAPIC, 2), 0);
    cr_assert_eq(irq_routing_set_irqchip(r, 2, KVM_IRQCHIP_IOAPIC, 2), -EEXIST);
    /* The same pin number on another chip is a different pin. */
    cr_assert_eq(irq_routing_set_irqchip(r, 2, KVM_IRQCHIP_PIC_MASTER, 2), 0);
    cr_assert_eq(irq_routing_count(r), 2);
}

Test(irq_routing, msi_and_irqchip_do_not_mix)
{
    cr_assert_eq(irq_routing_set_irqchip(r, 4, KVM_IRQCHIP_IOAPIC, 4), 0);
    cr_assert_eq(irq_routing_set_msi(r, 4, 0xfee00000, 0x41), -EBUSY);
    cr_assert_eq(irq_routing_set_msi(r, 24, 0xfee00000, 0x41), 0);
    cr_assert_eq(irq_routing_set_irqchip(r, 24, KVM_IRQCHIP_IOAPIC, 20), -EBUSY);
    cr_assert_eq(irq_routing_count(r), 2);
}

Test(irq_routing, msi_replace)
{
    cr_assert_eq(irq_routing_set_msi(r, 30, 0x1fee00000ULL, 0x41), 0);
    cr_assert_eq(irq_routing_set_msi(r, 30, 0xfee01000, 0x42), 0);
    cr_assert_eq(irq_routing_count(r), 1);
    const struct kvm_irq_routing_entry *e = irq_routing_entry(r, 0);
    cr_assert_eq(e->type, KVM_IRQ_ROUTING_MSI);
    cr_assert_eq(e->u.msi.address_lo, 0xfee01000);
    cr_assert_eq(e->u.msi.address_hi, 0);
    cr_assert_eq(e->u.msi.data, 0x42);
}

Test(irq_routing, remove_and_reuse)
{
    unsigned pin;
    cr_assert_eq(irq_routing_set_irqchip(r, 0, KVM_IRQCHIP_PIC_MASTER, 0), 0);
    cr_assert_eq(irq_routing_set_irqchip(r, 0, KVM_IRQCHIP_IOAPIC, 2), 0);
    cr_assert_eq(irq_routing_set_irqchip(r, 1, KVM_IRQCHIP_IOAPIC, 1), 0);
    cr_assert_eq(irq_routing_remove(r, 0), 2);
    cr_assert_eq(irq_routing_remove(r, 0), 0);
    cr_assert_eq(irq_routing_count(r), 1);
    cr_assert(irq_routing_lookup(r, 1, KVM_IRQCHIP_IOAPIC, &pin));
    /* Pin 2 is free again. */
    cr_assert_eq(irq_routing_set_irqchip(r, 2, KVM_IRQCHIP_IOAPIC, 2), 0);
}

Test(irq_routing, free_gsi)
{
    for (unsigned gsi = 0; gsi < 24; gsi++)
        cr_assert_eq(irq_routing_set_irqchip(r, gsi, KVM_IRQCHIP_IOAPIC, gsi), 0);
    cr_assert_eq(irq_routing_free_gsi(r, 0), 24);
    cr_assert_eq(irq_routing_set_msi(r, 24, 0xfee00000, 0), 0);
    cr_assert_eq(irq_routing_free_gsi(r, 10), 25);
    cr_assert_eq(irq_routing_free_gsi(r, IRQ_ROUTING_MAX_GSI), -ENOSPC);
}

Test(irq_routing, limits)
{
    cr_assert_eq(irq_routing_set_irqchip(r, IRQ_ROUTING_MAX_GSI, KVM_IRQCHIP_IOAPIC, 0), -EINVAL);
    cr_assert_eq(irq_routing_set_msi(r, IRQ_ROUTING_MAX_GSI, 0, 0), -EINVAL);
    for (unsigned gsi = 0; gsi < IRQ_ROUTING_MAX_ENTRIES; gsi++)
        cr_assert_eq(irq_routing_set_msi(r, gsi, 0xfee00000, gsi), 0);
    cr_assert_eq(irq_routing_count(r), IRQ_ROUTING_MAX_ENTRIES);
}

Test(irq_routing, commit_needs_a_vm)
{
    cr_assert_lt(irq_routing_commit(r, -1), 0);
}
