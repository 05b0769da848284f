/*
 * The x86 interrupt wiring (see irqmap.h), as a function the MP table and
 * the KVM routing table both call.
 */
#include "arch/x86_64/irqmap.h"

#include <linux/kvm.h>

int x86_isa_irq_ioapic_pin(unsigned irq)
{
    if (irq >= X86_ISA_IRQS || irq == X86_PIC_CASCADE)
        return -1;
    return irq == X86_PIT_IRQ ? (int)X86_PIT_IOAPIC_PIN : (int)irq;
}

int x86_irq_routing_default(struct irq_routing *r)
{
    for (unsigned gsi = 0; gsi < X86_IOAPIC_PINS; gsi++) {
        int ret = 0;
        if (gsi < X86_ISA_IRQS) {
            int pin = x86_isa_irq_ioapic_pin(gsi);
            if (pin < 0)
                continue;
            unsigned pic = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
            ret = irq_routing_set_irqchip(r, gsi, pic, gsi % 8);
            if (ret == 0)
                ret = irq_routing_set_irqchip(r, gsi, KVM_IRQCHIP_IOAPIC, (unsigned)pin);
        } else {
            ret = irq_routing_set_irqchip(r, gsi, KVM_IRQCHIP_IOAPIC, gsi);
        }
        if (ret < 0)
            return ret;
    }
    return 0;
}
