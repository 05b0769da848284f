/*
 * A passed-through function's vPCI state for migration (vpci_cfg.h,
 * vpci_cfg_state_*): what the guest programmed into wisp's view of the
 * function, saved in wisp's own format and loaded on the destination.
 *
 * Why here and why replayed: the view is wisp's, not the device's, so the
 * device's opaque blob cannot carry it; and the stream is hostile, so the
 * load goes through the same write paths a guest uses (vpci_cfg_write,
 * the MSI-X table's BAR writes, vpci_cfg_rom_write, vpci_cfg_signal).  A
 * stream can then put the view only into a state a guest could have put
 * it in, and every vector it enables is checked and routed exactly as a
 * guest's would be.
 */
#include "devices/vfio/vpci_cfg_internal.h"

#include <errno.h>
#include <string.h>

#define CFG_BYTES (VPCI_CFG_LEGACY - PCI_CFG_HEADER_END)

static unsigned msix_nvec(const struct vpci_cfg *v)
{
    return v->has_msix ? v->msix.nvec : 0;
}

size_t vpci_cfg_state_size(const struct vpci_cfg *v)
{
    unsigned n = msix_nvec(v);
    return VPCI_CFG_STATE_FIXED + (size_t)n * VPCI_MSIX_ENTRY_SIZE + (n + 7U) / 8U;
}

int vpci_cfg_state_save(struct vpci_cfg *v, uint8_t *buf, size_t cap, size_t *len)
{
    size_t need = vpci_cfg_state_size(v);
    if (cap < need)
        return -ENOSPC;
    uint8_t *p = buf;
    for (unsigned off = PCI_CFG_HEADER_END; off < VPCI_CFG_LEGACY; off += 4, p += 4)
        le32_put(p, vpci_cfg_read(v, off, 4));
    le32_put(p, vpci_cfg_rom_read(v));
    p += 4;
    unsigned n = msix_nvec(v);
    le32_put(p, n);
    p += 4;
    for (unsigned i = 0; i < n; i++, p += VPCI_MSIX_ENTRY_SIZE) {
        uint64_t at = v->msix.table_off + (uint64_t)i * VPCI_MSIX_ENTRY_SIZE;
        for (unsigned d = 0; d < 4; d++)
            if (!vpci_msix_bar_read(&v->msix, v->msix.bir, at + 4U * d, p + 4 * d, 4))
                memset(p + 4 * d, 0xff, 4); /* cannot happen: the table is in its BAR */
    }
    memset(p, 0, (n + 7U) / 8U);
    for (unsigned i = 0; i < n; i++)
        if (vpci_msix_pending(&v->msix, i))
            p[i / 8] |= (uint8_t)(1U << (i % 8));
    p += (n + 7U) / 8U;
    uint32_t msi_pend = 0;
    for (unsigned i = 0; v->has_msi && i < VPCI_MSI_MAX_VECTORS; i++)
        if (vpci_msi_pending(&v->msi, i))
            msi_pend |= 1U << i;
    le32_put(p, msi_pend);
    p += 4;
    *len = (size_t)(p - buf);
    return 0;
}

/* The dword holding an MSI or MSI-X capability's id, next and message
 * control: written last, so the vectors are programmed before enabling. */
static bool is_ctrl_dword(const struct vpci_cfg *v, unsigned off)
{
    for (unsigned i = 0; i < v->ncaps; i++)
        if ((v->caps[i].id == VPCI_CAP_ID_MSI || v->caps[i].id == VPCI_CAP_ID_MSIX) &&
            v->caps[i].off == off)
            return true;
    return false;
}

int vpci_cfg_state_load(struct vpci_cfg *v, const uint8_t *buf, size_t len, const char *id,
                        struct errbuf *err)
{
    if (len < VPCI_CFG_STATE_FIXED)
        return err_set(err, WISP_EXIT_USAGE, EBADMSG,
                       "device %s: vPCI state of %zu bytes is truncated (at least %u)", id, len,
                       VPCI_CFG_STATE_FIXED);
    uint32_t n = le32_get(buf + CFG_BYTES + 4);
    if (n != msix_nvec(v))
        return err_set(err, WISP_EXIT_USAGE, EPROTO,
                       "device %s: the stream has %u MSI-X vectors, this destination %u", id, n,
                       msix_nvec(v));
    if (len != vpci_cfg_state_size(v))
        return err_set(err, WISP_EXIT_USAGE, EBADMSG,
                       "device %s: vPCI state is %zu bytes, expected %zu", id, len,
                       vpci_cfg_state_size(v));
    const uint8_t *tab = buf + CFG_BYTES + 8;
    const uint8_t *pend = tab + (size_t)n * VPCI_MSIX_ENTRY_SIZE;
    uint32_t msi_pend = le32_get(pend + (n + 7U) / 8U);

    for (unsigned i = 0; i < n; i++) {
        uint64_t at = v->msix.table_off + (uint64_t)i * VPCI_MSIX_ENTRY_SIZE;
        for (unsigned d = 0; d < 4; d++)
            (void)vpci_msix_bar_write(&v->msix, v->msix.bir, at + 4U * d,
                                      tab + (size_t)i * VPCI_MSIX_ENTRY_SIZE + 4U * d, 4);
    }
    for (unsigned off = PCI_CFG_HEADER_END; off < VPCI_CFG_LEGACY; off += 4)
        if (!is_ctrl_dword(v, off))
            vpci_cfg_write(v, off, 4, le32_get(buf + off - PCI_CFG_HEADER_END));
    for (unsigned off = PCI_CFG_HEADER_END; off < VPCI_CFG_LEGACY; off += 4)
        if (is_ctrl_dword(v, off))
            vpci_cfg_write(v, off + 2, 2, le32_get(buf + off - PCI_CFG_HEADER_END) >> 16);
    vpci_cfg_rom_write(v, le32_get(buf + CFG_BYTES));
    for (unsigned i = 0; i < n; i++)
        if (pend[i / 8] & (1U << (i % 8)))
            (void)vpci_cfg_signal(v, VPCI_IRQ_MSIX, i);
    for (unsigned i = 0; v->has_msi && i < VPCI_MSI_MAX_VECTORS; i++)
        if (msi_pend & (1U << i))
            (void)vpci_cfg_signal(v, VPCI_IRQ_MSI, i);
    return 0;
}
