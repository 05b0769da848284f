/*
 * The PCI bus's guest-programmed state for snapshots and migration
 * (pci.h, pci_bus_state_*): the conf1 address latch and, per function
 * with a generic header, what the guest wrote to the type-0 header
 * (command, cache line size, interrupt line, the six BAR registers).
 *
 * Why replayed through pci_cfg_write: the stream is hostile, and a BAR
 * placed by it must pass the same checks as one placed by the guest
 * (inside a window, over no RAM and no other BAR).  Writing the BARs
 * first and the command register last maps them exactly as the guest's
 * own enable did, and forwards decode and bus master to a passthrough
 * function on the destination.
 *
 * Format (little-endian): le32 conf1 address | le32 n | n records of
 *   u8 devfn | le16 command | u8 cache line | u8 interrupt line |
 *   6 x le32 BAR registers as the guest reads them
 */
#include "devices/pci/pci_internal.h"

#include <errno.h>
#include <string.h>

#define REC_LEN (1U + 2U + 1U + 1U + 4U * PCI_NUM_BARS)

static bool saved(const struct pci_bus *b, unsigned devfn)
{
    return b->f[devfn].present && b->f[devfn].d.generic_header;
}

size_t pci_bus_state_size(const struct pci_bus *b)
{
    size_t n = 0;
    for (unsigned i = 0; i < PCI_MAX_FUNCS; i++)
        n += saved(b, i);
    return 8 + n * REC_LEN;
}

int pci_bus_state_save(struct pci_bus *b, uint8_t *buf, size_t cap, size_t *len)
{
    size_t need = pci_bus_state_size(b);
    if (cap < need)
        return -ENOSPC;
    pthread_mutex_lock(&b->lock);
    le32_put(buf, b->conf1_addr);
    pthread_mutex_unlock(&b->lock);
    uint8_t *p = buf + 8;
    uint32_t n = 0;
    for (unsigned i = 0; i < PCI_MAX_FUNCS; i++) {
        if (!saved(b, i))
            continue;
        p[0] = (uint8_t)i;
        le16_put(p + 1, (uint16_t)pci_cfg_read(b, i, PCI_CFG_COMMAND, 2));
        p[3] = (uint8_t)pci_cfg_read(b, i, 0x0c, 1);
        p[4] = (uint8_t)pci_cfg_read(b, i, 0x3c, 1);
        for (unsigned k = 0; k < PCI_NUM_BARS; k++)
            le32_put(p + 5 + 4 * k, pci_cfg_read(b, i, PCI_CFG_BAR0 + 4 * k, 4));
        p += REC_LEN;
        n++;
    }
    le32_put(buf + 4, n);
    *len = (size_t)(p - buf);
    return 0;
}

int pci_bus_state_load(struct pci_bus *b, const uint8_t *buf, size_t len, struct errbuf *err)
{
    if (len < 8 || len != pci_bus_state_size(b))
        return err_set(err, WISP_EXIT_USAGE, EBADMSG,
                       "PCI bus state is %zu bytes, this bus's is %zu (other functions?)", len,
                       pci_bus_state_size(b));
    /* The same functions at the same places, before anything is written. */
    const uint8_t *p = buf + 8;
    for (unsigned i = 0; i < PCI_MAX_FUNCS; i++) {
        if (!saved(b, i))
            continue;
        if (p[0] != i)
            return err_set(err, WISP_EXIT_USAGE, EPROTO,
                           "PCI bus state: function %02x.%u in the stream, %02x.%u here", p[0] >> 3,
                           p[0] & 7U, i >> 3, i & 7U);
        p += REC_LEN;
    }
    p = buf + 8;
    for (unsigned i = 0; i < PCI_MAX_FUNCS; i++) {
        if (!saved(b, i))
            continue;
        for (unsigned k = 0; k < PCI_NUM_BARS; k++)
            pci_cfg_write(b, i, PCI_CFG_BAR0 + 4 * k, 4, le32_get(p + 5 + 4 * k));
        pci_cfg_write(b, i, 0x0c, 1, p[3]);
        pci_cfg_write(b, i, 0x3c, 1, p[4]);
        pci_cfg_write(b, i, PCI_CFG_COMMAND, 2, (uint32_t)p[1] | (uint32_t)p[2] << 8);
        p += REC_LEN;
    }
    uint32_t a = le32_get(buf);
    pci_conf1_write(b, 0, &a, 4);
    return 0;
}
