/*
 * MSI routes for PCI functions (vmm/irq_routing.h): allocation above the
 * irqchip pins, replacement, removal that never touches the board's
 * wiring, and edits from several threads at once (vCPU threads programming
 * MSI capabilities) keeping the table consistent.
 */
#include "vmm/irq_routing.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>

static struct irq_routing *r;

static void setup(void)
{
    r = irq_routing_new();
    cr_assert_not_null(r);
    /* a board: GSIs 0..23 on IOAPIC pins */
    for (unsigned gsi = 0; gsi < 24; gsi++)
        cr_assert_eq(irq_routing_set_irqchip(r, gsi, KVM_IRQCHIP_IOAPIC, gsi), 0);
}

static void teardown(void)
{
    irq_routing_free(r);
}

TestSuite(irq_routing_msi, .init = setup, .fini = teardown);

static const struct kvm_irq_routing_entry *find(unsigned gsi)
{
    for (unsigned i = 0; i < irq_routing_count(r); i++)
        if (irq_routing_entry(r, i)->gsi == gsi)
            return irq_routing_entry(r, i);
    return NULL;
}

Test(irq_routing_msi, add_takes_free_gsis_above_the_pins)
{
    int a = irq_routing_add_msi(r, IRQ_ROUTING_MSI_FIRST, 0xfee00000, 0x4021);
    int b = irq_routing_add_msi(r, IRQ_ROUTING_MSI_FIRST, 0xfee01000, 0x4022);
    cr_assert_eq(a, 24);
    cr_assert_eq(b, 25);
    const struct kvm_irq_routing_entry *e = find(25);
    cr_assert_not_null(e);
    cr_assert_eq(e->type, KVM_IRQ_ROUTING_MSI);
    cr_assert_eq(e->u.msi.address_lo, 0xfee01000);
    cr_assert_eq(e->u.msi.data, 0x4022);
    /* from 0: the board's pins are taken, so still above them */
    cr_assert_eq(irq_routing_add_msi(r, 0, 0xfee00000, 1), 26);
    /* a freed GSI is reused */
    cr_assert_eq(irq_routing_remove_msi(r, 24), 0);
    cr_assert_eq(irq_routing_add_msi(r, IRQ_ROUTING_MSI_FIRST, 0xfee00000, 2), 24);
}

Test(irq_routing_msi, replace_keeps_one_route)
{
    int g = irq_routing_add_msi(r, IRQ_ROUTING_MSI_FIRST, 0xfee00000, 0x30);
    cr_assert_geq(g, 24);
    unsigned n = irq_routing_count(r);
    cr_assert_eq(irq_routing_set_msi(r, (unsigned)g, 0xfee02000, 0x31), 0);
    cr_assert_eq(irq_routing_count(r), n);
    cr_assert_eq(find((unsigned)g)->u.msi.data, 0x31);
    cr_assert_eq(find((unsigned)g)->u.msi.address_lo, 0xfee02000);
}

Test(irq_routing_msi, remove_never_touches_board_wiring)
{
    unsigned n = irq_routing_count(r);
    cr_assert_eq(irq_routing_remove_msi(r, 4), -EBUSY, "COM1's pin is not an MSI route");
    cr_assert_eq(irq_routing_count(r), n);
    unsigned pin;
    cr_assert(irq_routing_lookup(r, 4, KVM_IRQCHIP_IOAPIC, &pin));
    cr_assert_eq(irq_routing_remove_msi(r, 100), -ENOENT);
    cr_assert_eq(irq_routing_set_msi(r, 5, 0xfee00000, 1), -EBUSY, "no MSI over a pin route");
}

Test(irq_routing_msi, full_table)
{
    int g;
    unsigned added = 0;
    while ((g = irq_routing_add_msi(r, IRQ_ROUTING_MSI_FIRST, 0xfee00000, 0)) >= 0)
        added++;
    cr_assert(g == -ENOSPC, "%d", g);
    cr_assert_eq(irq_routing_count(r), IRQ_ROUTING_MAX_ENTRIES);
    cr_assert_eq(added, IRQ_ROUTING_MAX_ENTRIES - 24);
}

#define ROUNDS 2000

static void *churn(void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < ROUNDS; i++) {
        int g = irq_routing_add_msi(r, IRQ_ROUTING_MSI_FIRST, 0xfee00000, i);
        if (g < 0)
            return (void *)1;
        if (irq_routing_set_msi(r, (unsigned)g, 0xfee01000, i + 1) < 0)
            return (void *)2;
        if (irq_routing_remove_msi(r, (unsigned)g) < 0)
            return (void *)3;
    }
    return NULL;
}

/* Four "vCPU threads" edit at once: no lost or doubled GSI, board intact. */
Test(irq_routing_msi, concurrent_edits)
{
    pthread_t t[4];
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, churn, NULL), 0);
    for (unsigned i = 0; i < 4; i++) {
        void *ret;
        cr_assert_eq(pthread_join(t[i], &ret), 0);
        cr_assert_null(ret, "thread %u failed at step %p", i, ret);
    }
    cr_assert_eq(irq_routing_count(r), 24);
    for (unsigned i = 0; i < 24; i++)
        cr_assert_eq(irq_routing_entry(r, i)->type, KVM_IRQ_ROUTING_IRQCHIP);
}
