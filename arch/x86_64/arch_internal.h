/*
 * The x86_64 arch state shared by arch.c (board setup) and arch_mig.c (its
 * snapshot and migration hooks).  Private to arch/x86_64/.
 */
#ifndef ARCH_X86_64_ARCH_INTERNAL_H
#define ARCH_X86_64_ARCH_INTERNAL_H

#include <stdbool.h>

#include "arch/arch.h"
#include "arch/x86_64/boot.h"
#include "arch/x86_64/cpuid.h"

struct serial;
struct i8042;
struct debug_exit;
struct acpi_pm;
struct pci_bus;
struct irq_routing;
struct x86_mig;

struct arch_vm {
    struct arch_host host;        /* what the core handed us (arch_vm_init) */
    struct kvm_cpuid2 *supported; /* KVM_GET_SUPPORTED_CPUID, shared by all vCPUs */
    struct x86_cpu_policy policy;
    struct x86_boot_result boot;

    /* Built-in legacy devices (created by arch_create_devices). */
    struct serial *serial;
    struct i8042 *i8042;
    struct debug_exit *debug_exit;
    struct acpi_pm *acpi_pm; /* with ACPI only */
    struct pci_bus *pci;     /* with --pci on only (pci_host.h) */
    /* KVM's GSI routing (vmm/irq_routing.h), the one table: arch_vm_init
     * installs the board's wiring; later routes (MSI) extend it through
     * arch_irq_routing() and re-commit. */
    struct irq_routing *irq_routing;
    int serial_irqfd;      /* KVM irqfd for the UART's interrupt line */
    int i8042_irqfd;       /* KVM irqfd for the keyboard's line (ISA IRQ 1) */
    int serial_out_fd;     /* where guest console output goes, -1 = discarded */
    bool serial_out_owned; /* serial_out_fd was opened by us (file:PATH) */
    bool guest_loaded;     /* arch_load_guest() ran: the boot vCPU gets entry registers */

    /* Snapshot and migration (arch_mig.c), allocated on first registration. */
    struct x86_mig *mig;
};

/* Free what arch_mig.c allocated (arch_vm_destroy). */
void x86_mig_free(struct arch_vm *a);

#endif /* ARCH_X86_64_ARCH_INTERNAL_H */
