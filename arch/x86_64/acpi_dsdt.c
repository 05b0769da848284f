/*
 * The DSDT's AML: the devices a guest cannot discover by probing.  In ASL
 * terms it is
 *
 *   Scope (\_SB) {
 *       Device (COM1) { _HID PNP0501, _UID 0, _CRS IO 0x3F8/8 + IRQNoFlags {4} }
 *       Device (KBD0) { _HID PNP0303, _UID 0, _CRS IO 0x60/1 + IO 0x64/1 + IRQNoFlags {1} }
 *       Device (VRxx) { _HID "LNRO0005", _UID xx, _CRS Memory32Fixed + Interrupt }
 *       Device (PCI0) { _HID PNP0A08, _CID PNP0A03, _SEG, _BBN, _UID, _CRS windows,
 *                       _PRT INTx -> GSI (if given) }
 *       Device (ECAM) { _HID PNP0C02, _UID 0, _CRS the ECAM range }   (PCI only)
 *   }
 *   Name (_S5, Package () { X86_ACPI_S5_SLP_TYP, 0 })
 *
 * KBD0 is the i8042 and its keyboard: a hardware-reduced guest finds a PS/2
 * controller only through a PNP0303 device (Linux's i8042 driver asks ACPI
 * PnP first), and SendCtrlAltDel needs the guest's keyboard driver bound.
 * "LNRO0005" is the id Linux's virtio_mmio driver matches.  A hardware-
 * reduced guest powers off by writing _S5's first element (SLP_TYPa) to the
 * FADT's sleep control register; the second (SLP_TYPb) is unused there.
 */
#include <stdio.h>

#include "arch/x86_64/acpi_internal.h"
#include "arch/x86_64/layout.h"

#define VIRTIO_MMIO_HID    "LNRO0005"
#define PCI_ECAM_BUS_SHIFT 20
#define PCI_PRT_DEVICES    32U

/* A legacy port range: IO (Decode16, base, base, 0, len). */
struct isa_io {
    uint16_t base;
    uint8_t len;
};

/* Device (name) { _HID EISAID(hid), _UID 0, _CRS the port ranges + IRQNoFlags {irq} } */
static void isa_dev(struct aml_buf *b, const char *name, const char *hid, const struct isa_io *io,
                    unsigned nio, unsigned irq)
{
    aml_device_open(b, name);
    aml_name_decl(b, "_HID");
    aml_eisaid(b, hid);
    aml_name_integer(b, "_UID", 0);
    aml_name_decl(b, "_CRS");
    aml_restemplate_open(b);
    for (unsigned i = 0; i < nio; i++)
        aml_res_io16(b, io[i].base, io[i].base, 0, io[i].len);
    aml_res_irq_noflags(b, (uint16_t)(1U << irq));
    aml_close(b);
    aml_close(b);
}

static void com1(struct aml_buf *b)
{
    const struct isa_io io[] = {{X86_COM1_PORT, 8}};
    isa_dev(b, "COM1", "PNP0501", io, 1, X86_COM1_IRQ);
}

static void kbd(struct aml_buf *b)
{
    const struct isa_io io[] = {{X86_I8042_DATA_PORT, 1}, {X86_I8042_CMD_PORT, 1}};
    isa_dev(b, "KBD0", "PNP0303", io, 2, X86_I8042_IRQ);
}

static void virtio_dev(struct aml_buf *b, unsigned i, const struct x86_acpi_mmio_dev *v)
{
    char name[5];
    snprintf(name, sizeof(name), "VR%02X", i & 0xFFU);
    aml_device_open(b, name);
    aml_name_string(b, "_HID", VIRTIO_MMIO_HID);
    aml_name_integer(b, "_UID", i);
    aml_name_decl(b, "_CRS");
    aml_restemplate_open(b);
    aml_res_memory32_fixed(b, true, (uint32_t)v->base, v->size);
    aml_res_interrupt(b, AML_INT_CONSUMER | AML_INT_EDGE, &v->gsi, 1);
    aml_close(b);
    aml_close(b);
}

/*
 * _PRT: Package { Package { 0xDDDDFFFF (device d, any function), pin
 * (0 = INTA#), 0 (no link device: the last element is a GSI), GSI } ... }
 * for devices 0-31 and their four pins, with the usual swizzle so that
 * single-function devices, which use INTA#, spread over the GSIs.
 */
static void pci_prt(struct aml_buf *b, const struct x86_acpi_pci *p)
{
    aml_name_decl(b, "_PRT");
    aml_package_open(b, PCI_PRT_DEVICES * 4);
    for (unsigned dev = 0; dev < PCI_PRT_DEVICES; dev++) {
        for (unsigned pin = 0; pin < 4; pin++) {
            aml_package_open(b, 4);
            aml_integer(b, (uint64_t)dev << 16 | 0xffffU);
            aml_integer(b, pin);
            aml_integer(b, 0);
            aml_integer(b, p->intx_gsi[(dev + pin) % p->nintx]);
            aml_close(b);
        }
    }
    aml_close(b);
}

static void pci_host(struct aml_buf *b, const struct x86_acpi_pci *p)
{
    aml_device_open(b, "PCI0");
    aml_name_decl(b, "_HID");
    aml_eisaid(b, "PNP0A08"); /* PCI Express root bridge */
    aml_name_decl(b, "_CID");
    aml_eisaid(b, "PNP0A03"); /* PCI root bridge, for older guests */
    aml_name_integer(b, "_SEG", p->segment);
    aml_name_integer(b, "_BBN", p->bus_start);
    aml_name_integer(b, "_UID", p->segment);
    aml_name_decl(b, "_CRS");
    aml_restemplate_open(b);
    aml_res_word_bus_number(b, p->bus_start, p->bus_end);
    if (p->conf1_port)
        aml_res_io16(b, p->conf1_port, p->conf1_port, 1, 8);
    if (p->io_size)
        aml_res_word_io(b, p->io_base, (uint16_t)(p->io_base + p->io_size - 1));
    aml_res_dword_memory(b, AML_MEM_NONCACHEABLE, p->mmio32_base,
                         (uint32_t)(p->mmio32_base + (uint64_t)p->mmio32_size - 1));
    if (p->mmio64_size)
        aml_res_qword_memory(b, AML_MEM_NONCACHEABLE, p->mmio64_base,
                             p->mmio64_base + p->mmio64_size - 1);
    aml_close(b);
    if (p->nintx)
        pci_prt(b, p);
    aml_close(b);

    /* A motherboard resource reserving the decoded ECAM part, which Linux
     * requires before it uses the MCFG. */
    const uint64_t ecam_min = p->ecam_base + ((uint64_t)p->bus_start << PCI_ECAM_BUS_SHIFT);
    const uint64_t ecam_max = p->ecam_base + ((uint64_t)(p->bus_end + 1) << PCI_ECAM_BUS_SHIFT) - 1;
    aml_device_open(b, "ECAM");
    aml_name_decl(b, "_HID");
    aml_eisaid(b, "PNP0C02");
    aml_name_integer(b, "_UID", 0);
    aml_name_decl(b, "_CRS");
    aml_restemplate_open(b);
    aml_res_qword_memory(b, AML_ADDR_CONSUMER | AML_MEM_NONCACHEABLE, ecam_min, ecam_max);
    aml_close(b);
    aml_close(b);
}

void x86_acpi_dsdt_aml(struct aml_buf *b, const struct x86_acpi_desc *d)
{
    /* _SB rather than \_SB: the same name seen from the root, and the form
     * iasl emits, so a disassembly recompiles to the same bytes. */
    aml_scope_open(b, "_SB");
    com1(b);
    kbd(b);
    for (unsigned i = 0; i < d->nvirtio; i++)
        virtio_dev(b, i, &d->virtio[i]);
    if (d->pci)
        pci_host(b, d->pci);
    aml_close(b);

    aml_name_decl(b, "_S5");
    aml_package_open(b, 2);
    aml_integer(b, X86_ACPI_S5_SLP_TYP);
    aml_integer(b, 0);
    aml_close(b);
}
