/*
 * Intel MultiProcessor Specification 1.4 tables: how a guest without ACPI
 * learns its CPUs, its IOAPIC and how ISA interrupts are wired.
 */
#ifndef ARCH_X86_64_MPTABLE_H
#define ARCH_X86_64_MPTABLE_H

#include "vmm/error.h"
#include "vmm/gmem.h"

/*
 * APIC ids 0..nvcpus-1 go to the CPUs and nvcpus to the IOAPIC; 255 is the
 * broadcast id, so at most 254 CPUs can be described.
 */
#define X86_MPTABLE_MAX_VCPUS 254U

/*
 * Write the MP floating pointer at X86_EBDA_GPA and the configuration table
 * at X86_MPTABLE_GPA (both areas are zeroed first).  The table lists, in
 * order: `nvcpus` processors (APIC id = index, CPU 0 the BSP), one ISA bus,
 * the IOAPIC (id nvcpus at X86_IOAPIC_GPA), I/O interrupt entries for ISA
 * IRQs 0..15 except 2 (IRQ 0 on pin 2, IRQ n on pin n: KVM's default GSI
 * routing) and the ExtINT/NMI local interrupt entries.
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
