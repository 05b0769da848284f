/*
 * A PCI bus (segment 0, bus 0) for microvm guests: the configuration space
 * of up to 32 devices x 8 functions, reached through the PC's conf1 ports
 * (0xCF8 address, 0xCFC-0xCFF data) and through an ECAM window, and the
 * guest-physical windows the functions' BARs are placed in.
 *
 * Why the bus dispatches BAR accesses itself: vmm/bus.c's range tables are
 * read-only once the vCPUs run (lookups take no lock), but a guest moves
 * BARs at any time.  So the arch code claims each window once
 * (pci_window_read/write on the MMIO or PIO bus) and this module keeps the
 * map of BARs inside the windows under its own lock.  A function learns
 * where its BARs are through its bar_map/bar_unmap callbacks (a passthrough
 * function can then put a KVM memory slot there; accesses a slot covers
 * never reach the bus).
 *
 * A function is a struct pci_func_desc (ids, class, BARs) plus a struct
 * pci_func_ops.  With `generic_header` the bus emulates the type-0 header
 * (0x00-0x3f): ids and class read-only, command (I/O and memory decode gate
 * the BARs), BAR sizing (write all-ones, read back the size mask), cache
 * line size and interrupt line.  The rest of config space (capabilities,
 * extended space) goes to the function's cfg_read/cfg_write.
 *
 * A BAR is mapped only when its decode bit is on, it lies wholly inside a
 * window of its kind (so never over RAM: the windows exclude it) and it
 * overlaps no mapped BAR.  Otherwise the register keeps what the guest
 * wrote and nothing is mapped (logged, rate-limited).
 *
 * Thread-safety: one mutex per bus.  The callbacks of pci_func_ops except
 * bar_read/bar_write run under it and must not call back into the bus;
 * bar_read/bar_write run without it (the function locks its own state).
 */
#ifndef DEVICES_PCI_PCI_H
#define DEVICES_PCI_PCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"
#include "vmm/util.h"

#define PCI_DEVICES      32U
#define PCI_FUNCS        8U
#define PCI_DEVFN(d, f)  ((unsigned)(((d) << 3) | (f)))
#define PCI_NUM_BARS     6U
#define PCI_CFG_SIZE     4096U /* per function: ECAM reaches all of it, conf1 the first 256 */
#define PCI_ECAM_BUS_LEN (1ULL << 20)

/* conf1: the address register at +0, data at +4..+7. */
#define PCI_CONF1_LEN    8U
#define PCI_CONF1_ENABLE 0x80000000U

/* Header offsets and bits the generic header implements. */
#define PCI_CFG_COMMAND          0x04
#define PCI_CFG_BAR0             0x10
#define PCI_CFG_HEADER_END       0x40
#define PCI_CMD_IO               0x0001U
#define PCI_CMD_MEMORY           0x0002U
#define PCI_CMD_MASTER           0x0004U
#define PCI_CMD_PARITY           0x0040U
#define PCI_CMD_SERR             0x0100U
#define PCI_CMD_INTX_DISABLE     0x0400U
#define PCI_STATUS_CAP_LIST      0x0010U
#define PCI_BAR_IO_FLAG          0x1U
#define PCI_BAR_MEM64_FLAG       0x4U
#define PCI_BAR_PREFETCH_FLAG    0x8U
#define PCI_HEADER_MULTIFUNCTION 0x80U

enum pci_bar_type {
    PCI_BAR_NONE = 0,
    PCI_BAR_IO,    /* I/O space, 4..256 bytes */
    PCI_BAR_MEM32, /* 32-bit memory, 16 bytes..1 GiB */
    PCI_BAR_MEM64, /* 64-bit memory: takes this BAR and the next one */
};

/* One BAR: a power-of-two size, a type and (memory only) prefetchable. */
struct pci_bar_desc {
    uint64_t size;
    enum pci_bar_type type;
    bool prefetchable;
};

struct pci_func_desc {
    uint16_t vendor, device;
    uint32_t class_code; /* 24 bits: class << 16 | subclass << 8 | prog-if */
    uint8_t revision;
    uint16_t subsys_vendor, subsys_id;
    uint8_t irq_pin;                        /* 0 none, 1..4 INTA#..INTD# */
    uint8_t cap_ptr;                        /* first capability (>= 0x40), 0 none */
    bool generic_header;                    /* the bus emulates 0x00-0x3f (see the top comment) */
    struct pci_bar_desc bars[PCI_NUM_BARS]; /* a MEM64 BAR leaves the next one NONE */
};

enum pci_space { PCI_SPACE_IO, PCI_SPACE_MEM };

struct pci_func_ops {
    /*
     * Config space the bus does not emulate: offsets >= 0x40 with a generic
     * header, all of it without.  `off` is aligned to `len` (1, 2 or 4) and
     * below PCI_CFG_SIZE.  NULL: reads 0, writes ignored.
     */
    uint32_t (*cfg_read)(void *opaque, unsigned off, unsigned len);
    void (*cfg_write)(void *opaque, unsigned off, unsigned len, uint32_t val);
    /* Optional: the guest wrote the command register (new value). */
    void (*cmd_write)(void *opaque, uint16_t cmd);
    /* Optional: BAR `bar` is now decoded at [gpa, gpa + size) / no longer. */
    void (*bar_map)(void *opaque, unsigned bar, enum pci_space space, uint64_t gpa, uint64_t size);
    void (*bar_unmap)(void *opaque, unsigned bar, enum pci_space space, uint64_t gpa,
                      uint64_t size);
    /* An access of `len` bytes at `off` into mapped BAR `bar`; NULL: all-ones / dropped. */
    void (*bar_read)(void *opaque, unsigned bar, uint64_t off, void *data, unsigned len);
    void (*bar_write)(void *opaque, unsigned bar, uint64_t off, const void *data, unsigned len);
};

/* Where BARs may live: each window may be empty (size 0). */
struct pci_windows {
    uint64_t mmio32_base, mmio32_size; /* below 4 GiB */
    uint64_t mmio64_base, mmio64_size;
    uint64_t io_base, io_size; /* I/O ports, below 0x10000 */
};

struct pci_bus;

/*
 * A bus with the given windows and nothing on it; NULL if out of memory or
 * the windows are bad (overlapping, wrapping, a 32-bit window above 4 GiB).
 */
struct pci_bus *pci_bus_new(const struct pci_windows *w);
void pci_bus_free(struct pci_bus *b);

/*
 * Put a function at `devfn` on the bus (before the vCPUs run).  The desc is
 * copied; ops and opaque must outlive the bus.  0, or -EINVAL (bad devfn,
 * BAR size or type), -EEXIST (devfn taken), -ENOMEM.
 */
int pci_bus_add(struct pci_bus *b, unsigned devfn, const struct pci_func_desc *d,
                const struct pci_func_ops *ops, void *opaque) __must_check;

/*
 * Firmware's job, since wisp has no BIOS: give every BAR of every generic-
 * header function a naturally aligned address in its window (the largest
 * first; MEM64 BARs in the 64-bit window when there is one) and turn on
 * the decode bits the function needs.  0, or -ENOSPC with the reason in
 * `err` if a window is too small.
 */
int pci_bus_assign(struct pci_bus *b, struct errbuf *err) __must_check;

/* The host bridge wisp puts at 00:00.0 (class 06/00/00, no BARs). */
#define PCI_HOST_VENDOR 0x1b36U /* Red Hat, Inc.'s id for virtual hardware */
#define PCI_HOST_DEVICE 0x0008U /* its "PCIe host bridge" */
#define PCI_HOST_CLASS  0x060000U
int pci_bus_add_host_bridge(struct pci_bus *b) __must_check;

/* Config space access by (devfn, offset): what both conf1 and ECAM use.
 * Absent functions and misaligned or oversized accesses read all-ones and
 * ignore writes. */
uint32_t pci_cfg_read(struct pci_bus *b, unsigned devfn, unsigned off, unsigned len);
void pci_cfg_write(struct pci_bus *b, unsigned devfn, unsigned off, unsigned len, uint32_t val);

/* bus_read_fn/bus_write_fn for the conf1 ports: opaque is the bus, offset
 * 0 is port 0xCF8. */
void pci_conf1_read(void *opaque, uint64_t off, void *data, unsigned len);
void pci_conf1_write(void *opaque, uint64_t off, const void *data, unsigned len);

/* ... for an ECAM window of bus 0 (PCI_ECAM_BUS_LEN bytes); opaque is the bus. */
void pci_ecam_read(void *opaque, uint64_t off, void *data, unsigned len);
void pci_ecam_write(void *opaque, uint64_t off, const void *data, unsigned len);

/*
 * ... for a BAR window: claim [base, base + size) of a window with opaque
 * pci_window_handle(b, space, base).  Accesses that hit no mapped BAR read
 * all-ones and are dropped.
 */
void *pci_window_handle(struct pci_bus *b, enum pci_space space, uint64_t base);
void pci_window_read(void *opaque, uint64_t off, void *data, unsigned len);
void pci_window_write(void *opaque, uint64_t off, const void *data, unsigned len);

/* Where BAR `bar` of `devfn` is mapped: true and *gpa if it is. */
bool pci_bar_mapped(struct pci_bus *b, unsigned devfn, unsigned bar, uint64_t *gpa);

/* How many BAR mappings the guest's programming has had refused (tests). */
uint64_t pci_bus_refused(struct pci_bus *b);

/*
 * The guest-programmed state of the bus for snapshots and migration
 * (pci_state.c): the conf1 address latch and, per function with a generic
 * header, command, cache line, interrupt line and BAR registers.  What a
 * function keeps past 0x40 is its own (a passthrough function's vPCI
 * state travels with it).  Save only with the vCPUs stopped.
 */
size_t pci_bus_state_size(const struct pci_bus *b);
/* 0 and *len, or -ENOSPC when `cap` is short. */
int pci_bus_state_save(struct pci_bus *b, uint8_t *buf, size_t cap, size_t *len) __must_check;
/*
 * Replay a saved state through pci_cfg_write (BARs, then command: BAR
 * placement is checked as a guest's is).  Refused before anything is
 * written (-EBADMSG, -EPROTO, one line in `err`): another length or
 * another set of functions than this bus has.
 */
int pci_bus_state_load(struct pci_bus *b, const uint8_t *buf, size_t len,
                       struct errbuf *err) __must_check;

#endif /* DEVICES_PCI_PCI_H */
