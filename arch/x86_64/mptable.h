/*
 * Intel MultiProcessor Specification 1.4 tables: how a guest without ACPI
 * learns its CPUs, its IOAPIC and how ISA interrupts are wired.
 */
#ifndef ARCH_X86_64_MPTABLE_H
#define ARCH_X86_64_MPTABLE_H

#include "vmm/error.h"
#include "vmm/gmem.h"

/*
 * APIC ids 0..nvcpus-1 go to the CPUs; 255 is the broadcast id, so at most
 * 254 CPUs can be described.
 */
#define X86_MPTABLE_MAX_VCPUS 254U

/*
 * The IOAPIC's id: the table must name the id the IOAPIC itself reports in
 * its ID register, and KVM's register holds 4 bits (82093AA).  With up to 15
 * vCPUs this is nvcpus, the first id no CPU uses, as the MP specification
 * asks; with more no free 4-bit id exists and it is 0, which is what ACPI
 * machines use and what Linux on x86_64 accepts (it only needs the IOAPIC
 * ids to differ from each other).  The VMM programs KVM's IOAPIC with the
 * same value (see x86 arch setup).
 */
static inline unsigned x86_ioapic_id(unsigned nvcpus)
{
    return nvcpus < 16 ? nvcpus : 0;
}

/*
 * Write the MP floating pointer at X86_EBDA_GPA and the configuration table
 * at X86_MPTABLE_GPA (both areas are zeroed first).  The table lists, in
 * order: `nvcpus` processors (APIC id = index, CPU 0 the BSP), one ISA bus,
 * the IOAPIC (id x86_ioapic_id(nvcpus) at X86_IOAPIC_GPA), I/O interrupt entries for ISA
 * IRQs 0..15 except 2 (IRQ 0 on pin 2, IRQ n on pin n: the wiring of
 * irqmap.h, which arch setup also installs as KVM's GSI routing) and the ExtINT/NMI local interrupt
 * entries.
 *
 * @gm:     guest memory; [X86_EBDA_GPA, +X86_EBDA_SIZE) and
 *          [X86_MPTABLE_GPA, +X86_MPTABLE_MAX) must be RAM
 * @nvcpus: 1..X86_MPTABLE_MAX_VCPUS
 * @err:    receives a one-line message on failure
 * Returns 0, or -EINVAL (bad vCPU count) / -EFAULT (areas not in RAM), both
 * reported as WISP_EXIT_USAGE.
 */
int x86_mptable_write(const struct gmem *gm, unsigned nvcpus, struct errbuf *err) __must_check;

#endif /* ARCH_X86_64_MPTABLE_H */
