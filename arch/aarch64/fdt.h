/*
 * The device tree wisp hands an aarch64 guest, built with libfdt from a
 * plain description of the machine.  No KVM or Arm headers: the unit tests
 * build trees on an x86 host and decompile them with dtc.
 */
#ifndef ARCH_AARCH64_FDT_H
#define ARCH_AARCH64_FDT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"

/* One MMIO device with one SPI (edge-triggered: irqfd pulses). */
struct a64_fdt_mmio {
    uint64_t base, size;
    unsigned spi;
};

struct a64_fdt_desc {
    uint64_t mem_base, mem_size;
    unsigned nvcpus;
    uint64_t gicd_base, gicd_size;
    uint64_t gicr_base, gicr_size; /* all redistributors, one region */
    struct a64_fdt_mmio uart;      /* ns16550a, byte registers */
    uint32_t uart_clock;
    const struct a64_fdt_mmio *virtio; /* virtio-mmio devices, in slot order */
    unsigned nvirtio;
    const char *bootargs; /* NULL: none */
    bool initrd;          /* initrd_start/end describe one */
    uint64_t initrd_start, initrd_end;
};

/* The GIC's phandle: every interrupt specifier goes through it. */
#define A64_FDT_GIC_PHANDLE 1

/* DT interrupt specifier values (bindings/interrupt-controller/arm,gic-v3.yaml). */
#define A64_FDT_IRQ_SPI        0
#define A64_FDT_IRQ_PPI        1
#define A64_FDT_IRQ_EDGE_RISE  1
#define A64_FDT_IRQ_LEVEL_HIGH 4

/*
 * Build the tree for `d` into `buf` (`size` bytes), finished and packed.
 * 0, or -errno with the reason in `err` (-ENOSPC: does not fit; -EINVAL: a
 * bad description).
 */
int a64_fdt_build(const struct a64_fdt_desc *d, void *buf, size_t size,
                  struct errbuf *err) __must_check;

#endif /* ARCH_AARCH64_FDT_H */
