/*
 * The x86_64 guest-physical memory map, decided once here.  Everything that
 * places something in guest memory (loaders, tables, devices) uses these
 * names, so the e820 map, the MP table, the ACPI tables and the
 * virtio-mmio command line all describe the same layout.
 *
 *   0x0000_0000  real-mode IVT / BIOS data area (BDA at 0x400)
 *   0x0000_0500  GDT (wisp-built, 6 slots: the 64-bit TSS descriptor takes two)
 *   0x0000_0540  IDT (empty, limit 0: an early exception shuts the VM down)
 *   0x0000_6000  PVH hvm_start_info, then its memory map and module list
 *   0x0000_7000  Linux zero page (struct boot_params)
 *   0x0000_9000  boot page tables: PML4, PDPT, 4 page directories (4 GiB, 2 MiB pages)
 *   0x0002_0000  kernel command line (up to 64 KiB reserved)
 *   0x0009_fc00  EBDA: MP floating pointer
 *   0x000a_0000  legacy VGA/ROM hole (reserved in e820, still backed by RAM)
 *   0x000e_0000  ACPI tables, RSDP first (where Linux scans for "RSD PTR ")
 *   0x000f_0000  MP configuration table (BIOS area, room for 254 CPUs)
 *   0x0010_0000  high memory: kernels load at or above 1 MiB
 *   ...          initrd: as high as allowed below the top of low RAM
 *   0xc000_0000  32-bit MMIO hole (no RAM) up to 4 GiB:
 *   0xc000_0000    PCI 32-bit BAR window (256 MiB; with --pci on)
 *   0xd000_0000    virtio-mmio device windows (4 KiB each)
 *   0xe000_0000    PCI ECAM, bus 0 (1 MiB; with --pci on, reserved in e820)
 *   0xfec0_0000    IOAPIC
 *   0xfee0_0000    local APIC
 *   0xfffb_c000    KVM identity-map page and TSS (3 pages)
 *   0x1_0000_0000 RAM above 4 GiB, if memory > 3 GiB
 *   ...          PCI 64-bit BAR window (64 GiB; with --pci on) at the first
 *                1 GiB boundary at or above max(4 GiB, end of RAM)
 * I/O ports: 0xcf8-0xcff PCI conf1, 0xc000-0xcfff the PCI I/O BAR window
 * (with --pci on).  See docs/PCI.md.
 */
#ifndef ARCH_X86_64_LAYOUT_H
#define ARCH_X86_64_LAYOUT_H

#define X86_BDA_EBDA_SEG    0x40eULL /* u16: EBDA segment, read by guests looking for the MP table */
#define X86_BDA_BASEMEM_KIB 0x413ULL /* u16: base memory size in KiB */
#define X86_GDT_GPA         0x500ULL
#define X86_IDT_GPA         0x540ULL
#define X86_PVH_INFO_GPA    0x6000ULL
#define X86_PVH_INFO_MAX    0x1000ULL /* start info + memmap + module list must fit */
#define X86_ZERO_PAGE_GPA   0x7000ULL
#define X86_BOOT_STACK_GPA                                                                         \
    0x8ff0ULL /* initial RSP for the 64-bit entry (Linux does not need one) */
#define X86_PML4_GPA            0x9000ULL
#define X86_PDPT_GPA            0xa000ULL
#define X86_PD_GPA              0xb000ULL /* 4 consecutive pages */
#define X86_PAGETABLE_END       0xf000ULL
#define X86_CMDLINE_GPA         0x20000ULL
#define X86_CMDLINE_AREA        0x10000ULL
#define X86_EBDA_GPA            0x9fc00ULL
#define X86_EBDA_SIZE           0x400ULL
#define X86_ACPI_GPA            0xe0000ULL /* RSDP at the start, 16-byte aligned */
#define X86_ACPI_MAX            0x10000ULL /* up to the MP table */
#define X86_MPTABLE_GPA         0xf0000ULL
#define X86_MPTABLE_MAX         0xff00ULL   /* below the reset vector (reset_vector.h) */
#define X86_LOWMEM_RESERVED_END 0x100000ULL /* [EBDA, 1 MiB) is reserved in e820 */
#define X86_HIGH_MEM_START      0x100000ULL

#define X86_MMIO_HOLE_START  0xc0000000ULL
#define X86_MMIO_HOLE_END    0x100000000ULL
#define X86_VIRTIO_MMIO_BASE 0xd0000000ULL
#define X86_IOAPIC_GPA       0xfec00000ULL
#define X86_LAPIC_GPA        0xfee00000ULL
#define X86_KVM_IDENTITY_GPA 0xfffbc000ULL
#define X86_KVM_TSS_GPA      0xfffbd000ULL

/* PCI (devices/pci/, arch/x86_64/pci_host.c), only with --pci on. */
#define X86_PCI_MMIO32_BASE  0xc0000000ULL
#define X86_PCI_MMIO32_SIZE  0x10000000ULL /* up to the virtio-mmio windows */
#define X86_PCI_ECAM_BASE    0xe0000000ULL /* bus 0 only: 1 MiB */
#define X86_PCI_MMIO64_ALIGN 0x40000000ULL
#define X86_PCI_MMIO64_SIZE  0x1000000000ULL
#define X86_PCI_CONF1_PORT   0xcf8
#define X86_PCI_IO_BASE      0xc000
#define X86_PCI_IO_SIZE      0x1000

/* Linux's x86 COMMAND_LINE_SIZE: the limit for ELF and PVH boots. */
#define X86_CMDLINE_MAX_DEFAULT 2048U

/* Legacy I/O ports wisp emulates. */
#define X86_COM1_PORT       0x3f8
#define X86_COM1_IRQ        4
#define X86_I8042_IRQ       1
#define X86_I8042_DATA_PORT 0x60
#define X86_I8042_CMD_PORT  0x64
#define X86_DEBUG_EXIT_PORT 0xf4
#define X86_DEBUG_EXIT_LEN  4

/*
 * The ACPI registers of a hardware-reduced platform (the FADT points at
 * them): one byte each.  The guest powers off by writing
 * (X86_ACPI_S5_SLP_TYP << 2) | X86_ACPI_SLP_EN to the sleep control
 * register (the SLP_TYP the DSDT's \_S5 package gives), and resets by
 * writing X86_ACPI_RESET_VALUE to the reset register.
 */
#define X86_ACPI_SLEEP_CTL_PORT 0x600 /* SLP_TYPx bits 4:2, SLP_EN bit 5 */
#define X86_ACPI_SLEEP_STS_PORT 0x601 /* WAK_STS bit 7 */
#define X86_ACPI_RESET_PORT     0x602
#define X86_ACPI_RESET_VALUE    0x1
#define X86_ACPI_S5_SLP_TYP     5
#define X86_ACPI_SLP_TYP_SHIFT  2
#define X86_ACPI_SLP_EN         0x20
#define X86_ACPI_WAK_STS        0x80

/* GDT selectors: the Linux boot protocol fixes __BOOT_CS 0x10 and __BOOT_DS 0x18. */
#define X86_SEL_CODE32 0x08
#define X86_SEL_CODE64 0x10
#define X86_SEL_DATA   0x18
#define X86_SEL_TSS    0x20

#endif /* ARCH_X86_64_LAYOUT_H */
