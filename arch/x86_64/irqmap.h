/*
 * How interrupt lines are wired in a wisp x86 guest: the one place that
 * says which PIC and IOAPIC pins a KVM GSI reaches.  The MP table
 * (mptable.c) describes this wiring to the guest and arch setup programs
 * KVM's GSI routing from it, so the two cannot disagree.
 *
 * KVM GSI numbers are ISA IRQ numbers for 0..15 (the in-kernel PIT raises
 * GSI 0; the UART's and virtio devices' irqfds use their ISA IRQ) and IOAPIC
 * pin numbers for 16..23.  The wiring is the PC's: ISA IRQ 0 (the PIT)
 * reaches IOAPIC pin 2, as on every chipset with an IOAPIC and as ACPI
 * firmware describes it with an interrupt source override; IOAPIC pin 0 is
 * where a PC's 8259 output would be and gets nothing; every other ISA IRQ
 * n reaches IOAPIC pin n.  The 8259s see ISA IRQ n on pin n % 8 of the
 * master (n < 8) or slave, so a guest that uses the PIC (Linux with
 * `noapic`) gets its timer on IRQ 0 as well.  IRQ 2 is the slave PIC's
 * cascade: no source raises it and it has no route.
 *
 * KVM's built-in default routing sends GSI 0 to IOAPIC pin 0, not 2; wisp
 * replaces the whole table (KVM_SET_GSI_ROUTING) rather than describe pin 0
 * to guests, because pin 2 is what guests and future ACPI tables assume and
 * because MSI routes will need a table wisp owns anyway.
 */
#ifndef ARCH_X86_64_IRQMAP_H
#define ARCH_X86_64_IRQMAP_H

#include "vmm/irq_routing.h"

#define X86_ISA_IRQS       16U
#define X86_IOAPIC_PINS    24U /* KVM's IOAPIC, an 82093AA */
#define X86_PIT_IRQ        0U
#define X86_PIC_CASCADE    2U /* the slave PIC's input on the master: not a source */
#define X86_PIT_IOAPIC_PIN 2U

/*
 * The IOAPIC pin ISA IRQ `irq` arrives on, or -1 if it has none (the
 * cascade, IRQ 2, and numbers >= X86_ISA_IRQS).
 */
int x86_isa_irq_ioapic_pin(unsigned irq);

/*
 * Add the routes described above to `r`: GSIs 0..15 except 2 to their PIC
 * pin and IOAPIC pin, GSIs 16..23 to IOAPIC pins 16..23.  Returns 0 or the
 * -errno of irq_routing_set_irqchip().
 */
int x86_irq_routing_default(struct irq_routing *r) __must_check;

#endif /* ARCH_X86_64_IRQMAP_H */
