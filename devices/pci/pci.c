/*
 * PCI configuration space (see pci.h): the bus's functions, the two ways a
 * guest reaches their config space (conf1 ports, ECAM) funnelled into
 * pci_cfg_read/pci_cfg_write, the generic type-0 header, and the host
 * bridge at 00:00.0.  BARs live in pci_bar.c.
 */
#include "devices/pci/pci_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/log.h"

/* Command bits the generic header lets the guest set. */
#define CMD_WRITABLE                                                                               \
    (PCI_CMD_IO | PCI_CMD_MEMORY | PCI_CMD_MASTER | PCI_CMD_PARITY | PCI_CMD_SERR |                \
     PCI_CMD_INTX_DISABLE)
/* conf1 address register: enable, bus, device, function, dword register. */
#define CONF1_ADDR_MASK 0x80fffffcU

/* [base, base + size) fits below `limit`; an empty window always does. */
static bool window_ok(uint64_t base, uint64_t size, uint64_t limit)
{
    uint64_t end;
    return size == 0 || (range_end(base, size, &end) && end <= limit);
}

static bool windows_ok(const struct pci_windows *w)
{
    if (!window_ok(w->mmio32_base, w->mmio32_size, 1ULL << 32) ||
        !window_ok(w->mmio64_base, w->mmio64_size, UINT64_MAX) ||
        !window_ok(w->io_base, w->io_size, 0x10000))
        return false;
    return !(w->mmio32_size && w->mmio64_size &&
             ranges_overlap(w->mmio32_base, w->mmio32_size, w->mmio64_base, w->mmio64_size));
}

struct pci_bus *pci_bus_new(const struct pci_windows *w)
{
    if (!windows_ok(w))
        return NULL;
    struct pci_bus *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        free(b);
        return NULL;
    }
    b->w = *w;
    return b;
}

void pci_bus_free(struct pci_bus *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->lock);
    free(b);
}

int pci_bus_add(struct pci_bus *b, unsigned devfn, const struct pci_func_desc *d,
                const struct pci_func_ops *ops, void *opaque)
{
    if (devfn >= PCI_MAX_FUNCS || !ops || d->irq_pin > 4 || (d->cap_ptr && d->cap_ptr < 0x40) ||
        d->class_code > 0xffffffU || pci_bars_check(d) < 0)
        return -EINVAL;
    struct pci_func *f = &b->f[devfn];
    if (f->present)
        return -EEXIST;
    memset(f, 0, sizeof(*f));
    f->d = *d;
    f->ops = ops;
    f->opaque = opaque;
    f->present = true;
    return 0;
}

/* Function 0 says "multi-function" when its device has other functions. */
static bool multifunction(const struct pci_bus *b, unsigned devfn)
{
    if (devfn % PCI_FUNCS)
        return false;
    for (unsigned fn = 1; fn < PCI_FUNCS; fn++)
        if (b->f[devfn + fn].present)
            return true;
    return false;
}

static uint32_t header_dword(const struct pci_bus *b, unsigned devfn, unsigned reg)
{
    const struct pci_func *f = &b->f[devfn];
    const struct pci_func_desc *d = &f->d;
    switch (reg) {
    case 0x00:
        return (uint32_t)d->device << 16 | d->vendor;
    case 0x04:
        return (uint32_t)(d->cap_ptr ? PCI_STATUS_CAP_LIST : 0) << 16 | f->command;
    case 0x08:
        return d->class_code << 8 | d->revision;
    case 0x0c:
        return (uint32_t)(multifunction(b, devfn) ? PCI_HEADER_MULTIFUNCTION : 0) << 16 |
               f->cacheline;
    case 0x10:
    case 0x14:
    case 0x18:
    case 0x1c:
    case 0x20:
    case 0x24:
        return pci_bar_reg_read(f, (reg - PCI_CFG_BAR0) / 4);
    case 0x2c:
        return (uint32_t)d->subsys_id << 16 | d->subsys_vendor;
    case 0x34:
        return d->cap_ptr;
    case 0x3c:
        return (uint32_t)d->irq_pin << 8 | f->intline;
    default:
        return 0; /* CardBus CIS, expansion ROM (none), reserved */
    }
}

/* A write of bytes `mask` (already merged into `val`) to header dword `reg`. */
static void header_write(struct pci_bus *b, unsigned devfn, unsigned reg, uint32_t val,
                         uint32_t mask)
{
    struct pci_func *f = &b->f[devfn];
    switch (reg) {
    case 0x04:
        if (mask & 0xffffU) { /* status is read-only here (no error bits to clear) */
            f->command = (uint16_t)(val & CMD_WRITABLE);
            if (f->ops->cmd_write)
                f->ops->cmd_write(f->opaque, f->command);
            pci_bars_update(b);
        }
        break;
    case 0x0c:
        if (mask & 0xffU)
            f->cacheline = (uint8_t)val;
        break;
    case 0x10:
    case 0x14:
    case 0x18:
    case 0x1c:
    case 0x20:
    case 0x24:
        pci_bar_reg_write(f, (reg - PCI_CFG_BAR0) / 4, val);
        pci_bars_update(b);
        break;
    case 0x3c:
        if (mask & 0xffU)
            f->intline = (uint8_t)val;
        break;
    default:
        break; /* read-only */
    }
}

static uint32_t len_mask(unsigned len)
{
    return len == 4 ? 0xffffffffU : (1U << (len * 8)) - 1;
}

static bool access_ok(unsigned devfn, unsigned off, unsigned len)
{
    return devfn < PCI_MAX_FUNCS && (len == 1 || len == 2 || len == 4) && off % len == 0 &&
           off + len <= PCI_CFG_SIZE;
}

uint32_t pci_cfg_read(struct pci_bus *b, unsigned devfn, unsigned off, unsigned len)
{
    if (!access_ok(devfn, off, len))
        return 0xffffffffU;
    uint32_t v = 0xffffffffU;
    pthread_mutex_lock(&b->lock);
    const struct pci_func *f = &b->f[devfn];
    if (!f->present) {
        /* no device: the host bridge ends the transaction with all-ones */
    } else if (f->d.generic_header && off < PCI_CFG_HEADER_END) {
        v = header_dword(b, devfn, off & ~3U) >> ((off & 3U) * 8);
    } else {
        v = f->ops->cfg_read ? f->ops->cfg_read(f->opaque, off, len) : 0;
    }
    pthread_mutex_unlock(&b->lock);
    return v & len_mask(len);
}

void pci_cfg_write(struct pci_bus *b, unsigned devfn, unsigned off, unsigned len, uint32_t val)
{
    if (!access_ok(devfn, off, len))
        return;
    pthread_mutex_lock(&b->lock);
    struct pci_func *f = &b->f[devfn];
    if (!f->present) {
        /* dropped */
    } else if (f->d.generic_header && off < PCI_CFG_HEADER_END) {
        unsigned reg = off & ~3U, shift = (off & 3U) * 8;
        uint32_t mask = len_mask(len) << shift;
        uint32_t merged = (header_dword(b, devfn, reg) & ~mask) | ((val << shift) & mask);
        header_write(b, devfn, reg, merged, mask);
    } else if (f->ops->cfg_write) {
        f->ops->cfg_write(f->opaque, off, len, val & len_mask(len));
    }
    pthread_mutex_unlock(&b->lock);
}

static void put_le(void *data, unsigned len, uint32_t v)
{
    uint8_t *p = data;
    for (unsigned i = 0; i < len; i++)
        p[i] = i < 4 ? (uint8_t)(v >> (8 * i)) : 0xff;
}

static uint32_t get_le(const void *data, unsigned len)
{
    const uint8_t *p = data;
    uint32_t v = 0;
    for (unsigned i = 0; i < len && i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

/* The (devfn, register) the conf1 address selects for data port byte `n`;
 * false if config cycles are disabled or aimed at another bus. */
static bool conf1_target(struct pci_bus *b, unsigned n, unsigned *devfn, unsigned *reg)
{
    pthread_mutex_lock(&b->lock);
    uint32_t a = b->conf1_addr;
    pthread_mutex_unlock(&b->lock);
    if (!(a & PCI_CONF1_ENABLE) || ((a >> 16) & 0xffU) != 0)
        return false;
    *devfn = (a >> 8) & 0xffU;
    *reg = (a & 0xfcU) + n;
    return true;
}

void pci_conf1_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct pci_bus *b = opaque;
    uint32_t v = 0xffffffffU;
    unsigned devfn, reg;
    if (off == 0 && len == 4) {
        pthread_mutex_lock(&b->lock);
        v = b->conf1_addr;
        pthread_mutex_unlock(&b->lock);
    } else if (off >= 4 && len <= 4 && conf1_target(b, (unsigned)off - 4, &devfn, &reg)) {
        v = pci_cfg_read(b, devfn, reg, len);
    }
    put_le(data, len, v);
}

void pci_conf1_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
    struct pci_bus *b = opaque;
    unsigned devfn, reg;
    if (off == 0 && len == 4) {
        pthread_mutex_lock(&b->lock);
        b->conf1_addr = get_le(data, len) & CONF1_ADDR_MASK;
        pthread_mutex_unlock(&b->lock);
    } else if (off >= 4 && len <= 4 && conf1_target(b, (unsigned)off - 4, &devfn, &reg)) {
        pci_cfg_write(b, devfn, reg, len, get_le(data, len));
    }
    /* other accesses to 0xCF8-0xCFB (e.g. byte writes) are ignored */
}

void pci_ecam_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    uint32_t v = 0xffffffffU;
    if (off < PCI_ECAM_BUS_LEN && len <= 4)
        v = pci_cfg_read(opaque, (unsigned)(off >> 12), (unsigned)(off & 0xfffU), len);
    put_le(data, len, v);
}

void pci_ecam_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
    if (off < PCI_ECAM_BUS_LEN && len <= 4)
        pci_cfg_write(opaque, (unsigned)(off >> 12), (unsigned)(off & 0xfffU), len,
                      get_le(data, len));
}

static const struct pci_func_ops host_bridge_ops = {0};

int pci_bus_add_host_bridge(struct pci_bus *b)
{
    const struct pci_func_desc d = {
        .vendor = PCI_HOST_VENDOR,
        .device = PCI_HOST_DEVICE,
        .class_code = PCI_HOST_CLASS,
        .generic_header = true,
    };
    return pci_bus_add(b, PCI_DEVFN(0, 0), &d, &host_bridge_ops, NULL);
}

uint64_t pci_bus_refused(struct pci_bus *b)
{
    pthread_mutex_lock(&b->lock);
    uint64_t n = b->refused;
    pthread_mutex_unlock(&b->lock);
    return n;
}
