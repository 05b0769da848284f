/*
 * The PCI bus's state, shared by pci.c (config space: conf1, ECAM, the
 * generic type-0 header) and pci_bar.c (BAR registers, the BAR map in the
 * windows, the boot-time allocator).  Private to devices/pci/.
 */
#ifndef DEVICES_PCI_PCI_INTERNAL_H
#define DEVICES_PCI_PCI_INTERNAL_H

#include <pthread.h>

#include "devices/pci/pci.h"

#define PCI_MAX_FUNCS (PCI_DEVICES * PCI_FUNCS)

struct pci_func {
    bool present;
    struct pci_func_desc d;
    const struct pci_func_ops *ops;
    void *opaque;
    uint16_t command;
    uint8_t cacheline, intline;
    uint32_t bar_reg[PCI_NUM_BARS]; /* the address bits the guest wrote */
    bool mapped[PCI_NUM_BARS];
    uint64_t map_gpa[PCI_NUM_BARS];
    bool refused[PCI_NUM_BARS]; /* the last refusal, so it is logged once */
    uint64_t refused_gpa[PCI_NUM_BARS];
};

/* The opaque of one claimed window (pci_window_handle). */
struct pci_window_h {
    struct pci_bus *bus;
    enum pci_space space;
    uint64_t base;
};

struct pci_bus {
    pthread_mutex_t lock;
    struct pci_windows w;
    uint32_t conf1_addr;
    uint64_t refused;
    struct pci_window_h wh[3];
    unsigned nwh;
    struct pci_func f[PCI_MAX_FUNCS];
};

/* BAR register `bar` of `f` as the guest reads it (size mask and flag bits). */
uint32_t pci_bar_reg_read(const struct pci_func *f, unsigned bar);
/* The guest wrote `val` to BAR register `bar`: keep the writable bits. */
void pci_bar_reg_write(struct pci_func *f, unsigned bar, uint32_t val);
/* Bring the BAR map in line with every function's registers and command
 * (unmaps first, then maps what fits; notifies the functions).  Lock held. */
void pci_bars_update(struct pci_bus *b);
/* Check a desc's BARs: 0 or -EINVAL. */
int pci_bars_check(const struct pci_func_desc *d);

#endif /* DEVICES_PCI_PCI_INTERNAL_H */
