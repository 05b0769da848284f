/*
 * MSI and MSI-X emulation for passed-through functions (see vpci_msix.h):
 * the guest's capability registers, MSI-X table and PBA live here, and
 * each vector's route follows "enabled, unmasked, valid address" through
 * the passthrough function's vpci_irq_ops.  Everything the device
 * declares (table size, BIR, offsets, MSI control) is untrusted and
 * checked once in the init functions.
 */
#include "devices/vfio/vpci_msix.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/log.h"

#define MSIX_BIR_MASK  0x7U
#define MSIX_CTRL_MASK 0x1U /* vector control: masked */

/* Bytes [off, off + len) of a little-endian byte array as a value. */
static uint32_t bytes_get(const uint8_t *p, unsigned size, unsigned off, unsigned len)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < len && i < 4; i++)
        if (off + i < size)
            v |= (uint32_t)p[off + i] << (8 * i);
    return v;
}

static void bytes_put(uint8_t *p, unsigned size, unsigned off, unsigned len, uint32_t v)
{
    for (unsigned i = 0; i < len && i < 4; i++)
        if (off + i < size)
            p[off + i] = (uint8_t)(v >> (8 * i));
}

static bool addr_ok(const struct vpci_msi_window *w, uint64_t a)
{
    if (a == 0 || (a & 3U))
        return false;
    return w->size == 0 || (a >= w->base && a - w->base < w->size);
}

/*
 * Bring vector `i`'s route in line with what the guest programmed: `want`
 * (enabled and unmasked) with a valid address -> installed with the
 * current (addr, data), else removed.  A pending vector that gets
 * installed fires once.  Caller holds the object's lock.
 */
static void vec_sync(const struct vpci_irq_ops *ops, void *opaque, const struct vpci_msi_window *w,
                     enum vpci_irq_kind kind, unsigned i, struct vpci_vec *v, bool want,
                     uint64_t addr, uint32_t data)
{
    if (!want || !addr_ok(w, addr)) {
        if (v->installed) {
            ops->vector_remove(opaque, kind, i);
            v->installed = false;
        }
        return;
    }
    if (v->installed && v->inst_addr == addr && v->inst_data == data)
        return;
    int rc = ops->vector_install(opaque, kind, i, addr, data);
    if (rc < 0) {
        if (v->installed)
            ops->vector_remove(opaque, kind, i);
        v->installed = false;
        log_ratelimited(LOG_WARN, "vpci: %s vector %u not routed (%d)",
                        kind == VPCI_IRQ_MSIX ? "MSI-X" : "MSI", i, rc);
        return;
    }
    v->installed = true;
    v->inst_addr = addr;
    v->inst_data = data;
    if (v->pending) {
        v->pending = false;
        if (ops->vector_fire)
            ops->vector_fire(opaque, kind, i);
    }
}

static void set_mode(const struct vpci_irq_ops *ops, void *opaque, enum vpci_irq_kind kind,
                     unsigned nvec)
{
    if (!ops->mode)
        return;
    int rc = ops->mode(opaque, kind, nvec);
    if (rc < 0)
        log_ratelimited(LOG_WARN, "vpci: %s mode %u vectors failed (%d)",
                        kind == VPCI_IRQ_MSIX ? "MSI-X" : "MSI", nvec, rc);
}

/* ---- MSI-X ---- */

static uint64_t pba_len(unsigned nvec)
{
    return (nvec + 63ULL) / 64 * 8;
}

/* [off, off + len) lies inside a memory BAR of the given size. */
static bool in_bar(const struct pci_bar_desc *bd, uint64_t off, uint64_t len)
{
    if (bd->type != PCI_BAR_MEM32 && bd->type != PCI_BAR_MEM64)
        return false;
    return off <= bd->size && len <= bd->size - off;
}

int vpci_msix_init(struct vpci_msix *m, const uint8_t cap[VPCI_MSIX_CAP_LEN], unsigned max_vec,
                   const struct pci_bar_desc bars[PCI_NUM_BARS], const struct vpci_msi_window *win,
                   const struct vpci_irq_ops *ops, void *opaque)
{
    memset(m, 0, sizeof(*m));
    uint16_t ctrl = le16_get(cap + 2);
    m->table_reg = le32_get(cap + 4);
    m->pba_reg = le32_get(cap + 8);
    m->dev_nvec = (ctrl & VPCI_MSIX_CTRL_QSIZE) + 1U;
    m->nvec = MIN(m->dev_nvec, MIN(max_vec, VPCI_MSIX_MAX_VECTORS));
    m->bir = m->table_reg & MSIX_BIR_MASK;
    m->pba_bir = m->pba_reg & MSIX_BIR_MASK;
    m->table_off = m->table_reg & ~MSIX_BIR_MASK;
    m->pba_off = m->pba_reg & ~MSIX_BIR_MASK;
    if (m->nvec == 0 || m->bir >= PCI_NUM_BARS || m->pba_bir >= PCI_NUM_BARS || !ops ||
        !ops->vector_install || !ops->vector_remove)
        return -EINVAL;
    uint64_t tlen = (uint64_t)m->dev_nvec * VPCI_MSIX_ENTRY_SIZE, plen = pba_len(m->dev_nvec);
    if (!in_bar(&bars[m->bir], m->table_off, tlen) || !in_bar(&bars[m->pba_bir], m->pba_off, plen))
        return -EINVAL;
    if (m->bir == m->pba_bir && ranges_overlap(m->table_off, tlen, m->pba_off, plen))
        return -EINVAL;
    m->vec = calloc(m->nvec, sizeof(*m->vec));
    if (!m->vec)
        return -ENOMEM;
    for (unsigned i = 0; i < m->nvec; i++)
        m->vec[i].ctrl = MSIX_CTRL_MASK; /* masked at reset */
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m->vec);
        m->vec = NULL;
        return -ENOMEM;
    }
    m->ops = ops;
    m->opaque = opaque;
    m->win = *win;
    m->table_bar_size = bars[m->bir].size;
    m->pba_bar_size = bars[m->pba_bir].size;
    return 0;
}

void vpci_msix_destroy(struct vpci_msix *m)
{
    if (!m->vec)
        return;
    for (unsigned i = 0; i < m->nvec; i++)
        if (m->vec[i].installed)
            m->ops->vector_remove(m->opaque, VPCI_IRQ_MSIX, i);
    pthread_mutex_destroy(&m->lock);
    free(m->vec);
    m->vec = NULL;
}

/* Sync vector i of MSI-X.  Lock held. */
static void msix_sync(struct vpci_msix *m, unsigned i)
{
    struct vpci_vec *v = &m->vec[i];
    bool want = m->enabled && !m->fmask && !(v->ctrl & MSIX_CTRL_MASK);
    vec_sync(m->ops, m->opaque, &m->win, VPCI_IRQ_MSIX, i, v, want, v->addr, v->data);
}

static uint16_t msix_ctrl(const struct vpci_msix *m)
{
    return (uint16_t)((m->nvec - 1U) | (m->enabled ? VPCI_MSIX_CTRL_ENABLE : 0) |
                      (m->fmask ? VPCI_MSIX_CTRL_FMASK : 0));
}

uint32_t vpci_msix_cap_read(struct vpci_msix *m, unsigned off, unsigned len)
{
    uint8_t b[VPCI_MSIX_CAP_LEN] = {0};
    pthread_mutex_lock(&m->lock);
    le16_put(b + 2, msix_ctrl(m));
    le32_put(b + 4, m->table_reg);
    le32_put(b + 8, m->pba_reg);
    pthread_mutex_unlock(&m->lock);
    return bytes_get(b, sizeof(b), off, len); /* bytes 0-1 read 0 here */
}

void vpci_msix_cap_write(struct vpci_msix *m, unsigned off, unsigned len, uint32_t val)
{
    uint8_t b[VPCI_MSIX_CAP_LEN] = {0};
    pthread_mutex_lock(&m->lock);
    le16_put(b + 2, msix_ctrl(m));
    bytes_put(b, sizeof(b), off, len, val); /* only the control word is looked at */
    uint16_t ctrl = le16_get(b + 2);
    bool en = ctrl & VPCI_MSIX_CTRL_ENABLE, fm = ctrl & VPCI_MSIX_CTRL_FMASK;
    if (en == m->enabled && fm == m->fmask)
        goto out;
    bool turn_on = en && !m->enabled, turn_off = !en && m->enabled;
    m->enabled = en;
    m->fmask = fm;
    if (turn_on)
        set_mode(m->ops, m->opaque, VPCI_IRQ_MSIX, m->nvec);
    for (unsigned i = 0; i < m->nvec; i++)
        msix_sync(m, i);
    if (turn_off)
        set_mode(m->ops, m->opaque, VPCI_IRQ_MSIX, 0);
out:
    pthread_mutex_unlock(&m->lock);
}

static uint64_t page_down(uint64_t v)
{
    return v & ~(PAGE_SIZE - 1);
}

/* [off, off + len) widened to pages, clipped to a BAR of `size` bytes. */
static struct vpci_trap_range trap_pages(uint64_t off, uint64_t len, uint64_t size)
{
    uint64_t start = page_down(off), end = page_down(off + len - 1) + PAGE_SIZE;
    if (end > size)
        end = size;
    return (struct vpci_trap_range){.off = start, .len = end - start};
}

unsigned vpci_msix_trap(const struct vpci_msix *m, struct vpci_trap_range r[2], unsigned bar_of[2])
{
    struct vpci_trap_range t =
        trap_pages(m->table_off, (uint64_t)m->dev_nvec * VPCI_MSIX_ENTRY_SIZE, m->table_bar_size);
    struct vpci_trap_range p = trap_pages(m->pba_off, pba_len(m->dev_nvec), m->pba_bar_size);
    if (m->bir != m->pba_bir) {
        r[0] = t;
        bar_of[0] = m->bir;
        r[1] = p;
        bar_of[1] = m->pba_bir;
        return 2;
    }
    bar_of[0] = bar_of[1] = m->bir;
    if (p.off < t.off) {
        struct vpci_trap_range x = t;
        t = p;
        p = x;
    }
    if (p.off <= t.off + t.len) { /* touching or sharing a page: one range */
        uint64_t end = MAX(t.off + t.len, p.off + p.len);
        r[0] = (struct vpci_trap_range){.off = t.off, .len = end - t.off};
        return 1;
    }
    r[0] = t;
    r[1] = p;
    return 2;
}

/* Is [off, off + len) wholly inside [start, start + size)? */
static bool inside(uint64_t off, uint64_t len, uint64_t start, uint64_t size)
{
    return off >= start && off - start <= size && len <= size - (off - start);
}

/* A 4- or 8-byte naturally aligned access. */
static bool good_access(uint64_t off, unsigned len)
{
    return (len == 4 || len == 8) && off % len == 0;
}

/* Which of table / PBA the access touches: 0 neither, else 1 (table) or
 * 2 (PBA) or 3 (bad: both or partly). *rel is the offset into it. */
enum hit { HIT_NONE, HIT_TABLE, HIT_PBA, HIT_BAD };

static enum hit classify(const struct vpci_msix *m, unsigned bar, uint64_t off, unsigned len,
                         uint64_t *rel)
{
    uint64_t tlen = (uint64_t)m->dev_nvec * VPCI_MSIX_ENTRY_SIZE, plen = pba_len(m->dev_nvec);
    if (len && off > UINT64_MAX - len)
        return HIT_BAD; /* wraps: never forwarded, never emulated */
    bool t = bar == m->bir && len && ranges_overlap(off, len, m->table_off, tlen);
    bool p = bar == m->pba_bir && len && ranges_overlap(off, len, m->pba_off, plen);
    if (!t && !p)
        return HIT_NONE;
    if (t && !p && inside(off, len, m->table_off, tlen) && good_access(off, len)) {
        *rel = off - m->table_off;
        return HIT_TABLE;
    }
    if (p && !t && inside(off, len, m->pba_off, plen) && good_access(off, len)) {
        *rel = off - m->pba_off;
        return HIT_PBA;
    }
    return HIT_BAD;
}

static uint32_t table_dword(const struct vpci_msix *m, uint64_t rel)
{
    uint64_t e = rel / VPCI_MSIX_ENTRY_SIZE;
    if (e >= m->nvec)
        return 0; /* entries the guest was not offered */
    const struct vpci_vec *v = &m->vec[e];
    switch (rel % VPCI_MSIX_ENTRY_SIZE) {
    case 0:
        return (uint32_t)v->addr;
    case 4:
        return (uint32_t)(v->addr >> 32);
    case 8:
        return v->data;
    default:
        return v->ctrl;
    }
}

static uint32_t pba_dword(const struct vpci_msix *m, uint64_t rel)
{
    uint32_t v = 0;
    for (unsigned b = 0; b < 32; b++) {
        uint64_t i = rel * 8 + b;
        if (i < m->nvec && m->vec[i].pending)
            v |= 1U << b;
    }
    return v;
}

bool vpci_msix_bar_read(struct vpci_msix *m, unsigned bar, uint64_t off, void *data, unsigned len)
{
    uint64_t rel = 0;
    pthread_mutex_lock(&m->lock);
    enum hit h = classify(m, bar, off, len, &rel);
    if (h == HIT_NONE) {
        pthread_mutex_unlock(&m->lock);
        return false;
    }
    memset(data, 0xff, len);
    if (h != HIT_BAD) {
        for (unsigned d = 0; d < len / 4; d++) {
            uint32_t v = h == HIT_TABLE ? table_dword(m, rel + 4U * d) : pba_dword(m, rel + 4U * d);
            le32_put((uint8_t *)data + 4 * d, v);
        }
    }
    pthread_mutex_unlock(&m->lock);
    return true;
}

/* The guest wrote dword `rel` of the table. Lock held. */
static void table_write(struct vpci_msix *m, uint64_t rel, uint32_t val)
{
    uint64_t e = rel / VPCI_MSIX_ENTRY_SIZE;
    if (e >= m->nvec)
        return;
    struct vpci_vec *v = &m->vec[e];
    switch (rel % VPCI_MSIX_ENTRY_SIZE) {
    case 0:
        v->addr = (v->addr & ~0xffffffffULL) | val;
        break;
    case 4:
        v->addr = (v->addr & 0xffffffffULL) | (uint64_t)val << 32;
        break;
    case 8:
        v->data = val;
        break;
    default:
        v->ctrl = val & MSIX_CTRL_MASK; /* the other bits are reserved */
        break;
    }
    msix_sync(m, (unsigned)e);
}

bool vpci_msix_bar_write(struct vpci_msix *m, unsigned bar, uint64_t off, const void *data,
                         unsigned len)
{
    uint64_t rel = 0;
    pthread_mutex_lock(&m->lock);
    enum hit h = classify(m, bar, off, len, &rel);
    if (h == HIT_TABLE)
        for (unsigned d = 0; d < len / 4; d++)
            table_write(m, rel + 4U * d, le32_get((const uint8_t *)data + 4 * d));
    /* PBA: read-only; HIT_BAD: dropped */
    pthread_mutex_unlock(&m->lock);
    return h != HIT_NONE;
}

bool vpci_msix_enabled(struct vpci_msix *m)
{
    pthread_mutex_lock(&m->lock);
    bool en = m->enabled;
    pthread_mutex_unlock(&m->lock);
    return en;
}

bool vpci_msix_signal(struct vpci_msix *m, unsigned vec)
{
    bool set = false;
    pthread_mutex_lock(&m->lock);
    if (vec < m->nvec && !m->vec[vec].installed) {
        m->vec[vec].pending = true;
        set = true;
    }
    pthread_mutex_unlock(&m->lock);
    return set;
}

bool vpci_msix_pending(struct vpci_msix *m, unsigned vec)
{
    pthread_mutex_lock(&m->lock);
    bool p = vec < m->nvec && m->vec[vec].pending;
    pthread_mutex_unlock(&m->lock);
    return p;
}

bool vpci_msix_installed(struct vpci_msix *m, unsigned vec)
{
    pthread_mutex_lock(&m->lock);
    bool p = vec < m->nvec && m->vec[vec].installed;
    pthread_mutex_unlock(&m->lock);
    return p;
}

/* ---- MSI ---- */

unsigned vpci_msi_cap_len(uint16_t dev_ctrl)
{
    unsigned len = (dev_ctrl & VPCI_MSI_CTRL_64BIT) ? 14 : 10;
    return (dev_ctrl & VPCI_MSI_CTRL_MASKBIT) ? len + 10 : len;
}

int vpci_msi_init(struct vpci_msi *m, uint16_t dev_ctrl, unsigned max_vec,
                  const struct vpci_msi_window *win, const struct vpci_irq_ops *ops, void *opaque)
{
    memset(m, 0, sizeof(*m));
    if (max_vec == 0 || !ops || !ops->vector_install || !ops->vector_remove)
        return -EINVAL;
    unsigned dev_mmc = (dev_ctrl & VPCI_MSI_CTRL_MMC) >> 1, cap = 0;
    if (dev_mmc > 5)
        dev_mmc = 5; /* 110b and 111b are reserved: at most 32 vectors */
    while (cap < 5 && (2U << cap) <= max_vec)
        cap++;
    m->mmc = MIN(dev_mmc, cap);
    m->is64 = dev_ctrl & VPCI_MSI_CTRL_64BIT;
    m->maskable = dev_ctrl & VPCI_MSI_CTRL_MASKBIT;
    if (pthread_mutex_init(&m->lock, NULL) != 0)
        return -ENOMEM;
    m->ops = ops;
    m->opaque = opaque;
    m->win = *win;
    return 0;
}

void vpci_msi_destroy(struct vpci_msi *m)
{
    if (!m->ops)
        return;
    for (unsigned i = 0; i < VPCI_MSI_MAX_VECTORS; i++)
        if (m->vec[i].installed)
            m->ops->vector_remove(m->opaque, VPCI_IRQ_MSI, i);
    pthread_mutex_destroy(&m->lock);
    m->ops = NULL;
}

/* The capability as the guest reads it (24 bytes cover the longest). */
static void msi_image(const struct vpci_msi *m, uint8_t b[24])
{
    memset(b, 0, 24);
    uint16_t ctrl =
        (uint16_t)((m->enabled ? VPCI_MSI_CTRL_ENABLE : 0) | m->mmc << 1 | m->mme << 4 |
                   (m->is64 ? VPCI_MSI_CTRL_64BIT : 0) | (m->maskable ? VPCI_MSI_CTRL_MASKBIT : 0));
    le16_put(b + 2, ctrl);
    le32_put(b + 4, (uint32_t)m->addr);
    unsigned d = m->is64 ? 12 : 8;
    if (m->is64)
        le32_put(b + 8, (uint32_t)(m->addr >> 32));
    le16_put(b + d, m->data);
    if (m->maskable) {
        uint32_t pend = 0;
        for (unsigned i = 0; i < VPCI_MSI_MAX_VECTORS; i++)
            pend |= m->vec[i].pending ? 1U << i : 0;
        le32_put(b + d + 4, m->mask);
        le32_put(b + d + 8, pend);
    }
}

uint32_t vpci_msi_cap_read(struct vpci_msi *m, unsigned off, unsigned len)
{
    uint8_t b[24];
    pthread_mutex_lock(&m->lock);
    msi_image(m, b);
    unsigned size = vpci_msi_cap_len((uint16_t)le16_get(b + 2));
    pthread_mutex_unlock(&m->lock);
    return bytes_get(b, size, off, len); /* bytes 0-1 read 0 here */
}

/* Sync every MSI vector.  Lock held. */
static void msi_sync_all(struct vpci_msi *m)
{
    unsigned n = 1U << m->mme;
    for (unsigned i = 0; i < VPCI_MSI_MAX_VECTORS; i++) {
        bool want = m->enabled && i < n && !(m->maskable && (m->mask >> i) & 1U);
        uint32_t data = (m->data & ~(n - 1U)) | (i < n ? i : 0);
        vec_sync(m->ops, m->opaque, &m->win, VPCI_IRQ_MSI, i, &m->vec[i], want, m->addr, data);
    }
}

void vpci_msi_cap_write(struct vpci_msi *m, unsigned off, unsigned len, uint32_t val)
{
    uint8_t b[24];
    pthread_mutex_lock(&m->lock);
    msi_image(m, b);
    unsigned size = vpci_msi_cap_len((uint16_t)le16_get(b + 2));
    bytes_put(b, size, off, len, val); /* bytes 0-1 (id, next) are not looked at */
    uint16_t ctrl = le16_get(b + 2);
    unsigned d = m->is64 ? 12 : 8;
    bool en = ctrl & VPCI_MSI_CTRL_ENABLE;
    unsigned mme = MIN((ctrl & VPCI_MSI_CTRL_MME) >> 4, m->mmc);
    bool mode_change = en != m->enabled || (en && mme != m->mme);
    if (mode_change && m->enabled) { /* off, or resized: everything goes first */
        m->enabled = false;
        msi_sync_all(m);
        set_mode(m->ops, m->opaque, VPCI_IRQ_MSI, 0);
    }
    m->mme = mme;
    m->addr = (le32_get(b + 4) & ~3U) | (m->is64 ? (uint64_t)le32_get(b + 8) << 32 : 0);
    m->data = le16_get(b + d);
    if (m->maskable)
        m->mask = le32_get(b + d + 4) & (uint32_t)((1ULL << (1U << m->mmc)) - 1);
    if (mode_change && en)
        set_mode(m->ops, m->opaque, VPCI_IRQ_MSI, 1U << mme);
    m->enabled = en;
    msi_sync_all(m);
    pthread_mutex_unlock(&m->lock);
}

bool vpci_msi_enabled(struct vpci_msi *m)
{
    pthread_mutex_lock(&m->lock);
    bool en = m->enabled;
    pthread_mutex_unlock(&m->lock);
    return en;
}

bool vpci_msi_signal(struct vpci_msi *m, unsigned vec)
{
    bool set = false;
    pthread_mutex_lock(&m->lock);
    if (vec < (1U << m->mmc) && !m->vec[vec].installed) {
        m->vec[vec].pending = true;
        set = true;
    }
    pthread_mutex_unlock(&m->lock);
    return set;
}

bool vpci_msi_pending(struct vpci_msi *m, unsigned vec)
{
    pthread_mutex_lock(&m->lock);
    bool p = vec < VPCI_MSI_MAX_VECTORS && m->vec[vec].pending;
    pthread_mutex_unlock(&m->lock);
    return p;
}

bool vpci_msi_installed(struct vpci_msi *m, unsigned vec)
{
    pthread_mutex_lock(&m->lock);
    bool p = vec < VPCI_MSI_MAX_VECTORS && m->vec[vec].installed;
    pthread_mutex_unlock(&m->lock);
    return p;
}
