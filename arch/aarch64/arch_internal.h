/*
 * The aarch64 arch_vm (opaque to generic code), shared by the files of
 * arch/aarch64/ only.
 */
#ifndef ARCH_AARCH64_ARCH_INTERNAL_H
#define ARCH_AARCH64_ARCH_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/arch.h"

struct debug_exit;
struct a64_mig;

struct arch_vm {
    struct arch_host host;
    struct irq_routing *irq_routing; /* empty: KVM's default (GSI n = SPI n) stays */
    int vgic_fd;                     /* the in-kernel GICv3 (KVM_CREATE_DEVICE) */
    struct serial *serial;
    int serial_irqfd;
    int serial_out_fd;
    bool serial_out_owned;
    struct debug_exit *debug_exit;
    bool guest_loaded;
    uint64_t entry;      /* kernel entry (its load address) */
    uint64_t fdt_gpa;    /* x0 at entry */
    struct a64_mig *mig; /* snapshot and migration hooks (arch_mig.c), once registered */
};

/*
 * Load the kernel Image, the initrd and the device tree into guest memory
 * (loader.c); sets a->entry and a->fdt_gpa.
 */
int a64_load(struct arch_vm *a, const char *cmdline, struct errbuf *err) __must_check;

/* Free what arch_mig_register allocated (arch_mig.c). */
void a64_mig_free(struct arch_vm *a);

#endif /* ARCH_AARCH64_ARCH_INTERNAL_H */
