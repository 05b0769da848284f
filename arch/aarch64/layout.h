/*
 * The aarch64 machine's guest-physical map, in one place so that the loader,
 * the device tree and the devices agree.  Modelled on the usual "virt"
 * board shape: devices below 1 GiB, RAM from 1 GiB up.  Interrupt numbers
 * here are SPI numbers (GSI n is SPI n, INTID 32 + n: KVM's default routing
 * on Arm); the device tree names them as <GIC_SPI n flags>.
 */
#ifndef ARCH_AARCH64_LAYOUT_H
#define ARCH_AARCH64_LAYOUT_H

#define A64_GICD_BASE   0x08000000ULL /* GICv3 distributor */
#define A64_GICD_SIZE   0x10000ULL
#define A64_GICR_BASE   0x080a0000ULL /* GICv3 redistributors, 128 KiB per vCPU */
#define A64_GICR_STRIDE 0x20000ULL
#define A64_GICR_END    0x09000000ULL
/* Redistributors that fit below the UART: 123. */
#define A64_MAX_VCPUS ((unsigned)((A64_GICR_END - A64_GICR_BASE) / A64_GICR_STRIDE))

#define A64_UART_BASE  0x09000000ULL /* 16550 (ns16550a) on MMIO, one byte per register */
#define A64_UART_SIZE  0x1000ULL
#define A64_UART_SPI   1
#define A64_UART_CLOCK 1843200U

#define A64_DEBUG_EXIT_BASE 0x09001000ULL /* tests only (--debug-exit): not in the device tree */
#define A64_DEBUG_EXIT_LEN  4

#define A64_VIRTIO_BASE      0x0a000000ULL /* virtio-mmio slot i at BASE + i * VIRTIO_MMIO_WINDOW */
#define A64_VIRTIO_SPI_FIRST 16

/* SPIs the in-kernel VGIC is sized for (KVM counts the 32 private ones too). */
#define A64_GIC_NR_IRQS 128U

#define A64_RAM_BASE 0x40000000ULL /* 2 MiB aligned, as the Image protocol wants */
/* The device tree takes the last 2 MiB of RAM (booting.rst: at most 2 MiB). */
#define A64_FDT_MAX 0x200000ULL

/* Architected timer PPIs (the numbers every virt board and KVM use). */
#define A64_PPI_TIMER_SEC  13
#define A64_PPI_TIMER_PHYS 14
#define A64_PPI_TIMER_VIRT 11
#define A64_PPI_TIMER_HYP  10
#define A64_PPI_GIC_MAINT  9

#endif /* ARCH_AARCH64_LAYOUT_H */
