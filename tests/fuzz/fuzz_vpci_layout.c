/*
 * Fuzz target: the vPCI layout parser (devices/vfio/vpci_layout.c,
 * vpci_layout_cap.c) and its canonical form (vpci_layout_out.c).
 *
 * Why: a layout file is operator input that decides what every guest of an
 * instance type sees, and everything later (applying it to a device, the
 * migration stream) trusts the struct the parser returns.  So the parser
 * must refuse, without reading past the input, whatever breaks the rules of
 * docs/VPCI_LAYOUT.md, and what it accepts must obey them.
 *
 * The input is the file's bytes.  Checked, for every accepted input: the
 * error buffer is empty; the struct obeys the rules (BARs, capabilities
 * inside 0x40..0xff without dword overlaps, fields inside their capability
 * and off wisp's emulated bytes, hidden ranges off the capabilities, MSI-X
 * table and PBA in memory BARs); the canonical form is written, parses
 * again into the same layout, and writes the same bytes with the same
 * digest.  For every refused
 * input: -EINVAL and exactly one line of error naming the file.
 */
#include "tests/fuzz/fuzz.h"

#include <errno.h>

#include "devices/vfio/vpci_cfg.h"
#include "devices/vfio/vpci_layout.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static void check_bars(const struct vpci_layout *l)
{
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        const struct vpci_layout_bar *b = &l->bars[i];
        if (b->type == PCI_BAR_NONE) {
            FZ_CHECK(!b->size && !b->nmmap, "absent bar %u has contents", i);
            continue;
        }
        FZ_CHECK(is_pow2(b->size), "bar %u size", i);
        FZ_CHECK(b->type != PCI_BAR_MEM64 || (i < 5 && l->bars[i + 1].type == PCI_BAR_NONE),
                 "mem64 bar %u", i);
        FZ_CHECK(b->nmmap <= VPCI_LAYOUT_MAX_MMAP, "bar %u areas", i);
        for (unsigned k = 0; k < b->nmmap; k++) {
            const struct vpci_layout_area *a = &b->mmap[k];
            FZ_CHECK(a->len && a->off < b->size && a->len <= b->size - a->off, "area outside");
            FZ_CHECK(k == 0 || b->mmap[k - 1].off + b->mmap[k - 1].len <= a->off,
                     "areas unsorted or overlapping");
        }
    }
}

static void check_caps(const struct vpci_layout *l)
{
    uint8_t used[VPCI_LAYOUT_CFG_END] = {0};
    FZ_CHECK(l->ncaps <= VPCI_LAYOUT_MAX_CAPS && l->nfields <= VPCI_LAYOUT_MAX_FIELDS &&
                 l->nhidden <= VPCI_LAYOUT_MAX_HIDDEN,
             "counts");
    for (unsigned i = 0; i < l->ncaps; i++) {
        const struct vpci_layout_cap *c = &l->caps[i];
        unsigned ext = (c->len + 3U) & ~3U;
        FZ_CHECK(c->off >= 0x40 && c->off % 4 == 0 && c->len >= 2 &&
                     c->off + ext <= VPCI_LAYOUT_CFG_END,
                 "cap %u at 0x%x+0x%x", i, c->off, c->len);
        for (unsigned k = c->off; k < c->off + ext; k++)
            FZ_CHECK(!used[k]++, "cap %u overlaps", i);
        for (unsigned j = 0; j < i; j++)
            FZ_CHECK(l->caps[j].id != c->id, "duplicate id 0x%x", c->id);
        bool irq = c->id == VPCI_CAP_ID_MSI || c->id == VPCI_CAP_ID_MSIX;
        FZ_CHECK(irq == (c->policy == VPCI_LAYOUT_EMULATED), "policy of 0x%x", c->id);
        FZ_CHECK(!c->nfields || c->policy == VPCI_LAYOUT_PASSTHROUGH, "fields on cap %u", i);
        if (c->id == VPCI_CAP_ID_MSIX) {
            const struct vpci_layout_bar *t = &l->bars[c->table_bir], *p = &l->bars[c->pba_bir];
            FZ_CHECK(t->type == PCI_BAR_MEM32 || t->type == PCI_BAR_MEM64, "table bar");
            FZ_CHECK(p->type == PCI_BAR_MEM32 || p->type == PCI_BAR_MEM64, "pba bar");
            FZ_CHECK(c->table_off + 16ULL * c->vectors <= t->size, "table outside");
            FZ_CHECK(c->vectors >= 1 && c->vectors <= VPCI_LAYOUT_MSIX_MAX, "msix vectors");
        }
        if (c->id == VPCI_CAP_ID_MSI)
            FZ_CHECK(is_pow2(c->vectors) && c->vectors <= 32, "msi vectors");
    }
    for (unsigned i = 0; i < l->nfields; i++) {
        const struct vpci_layout_field *f = &l->fields[i];
        FZ_CHECK(f->cap < l->ncaps, "field %u cap", i);
        const struct vpci_layout_cap *c = &l->caps[f->cap];
        FZ_CHECK(f->rel >= 2 && f->len >= 1 && f->rel + f->len <= c->len, "field %u", i);
        FZ_CHECK(i >= c->first_field && i < c->first_field + c->nfields, "field %u grouping", i);
        if (c->id == VPCI_CAP_ID_PM)
            FZ_CHECK(f->rel >= 6 || f->rel + f->len <= 2, "field over PM's emulated bytes");
    }
    for (unsigned i = 0; i < l->nhidden; i++) {
        const struct vpci_layout_range *h = &l->hidden[i];
        FZ_CHECK(h->off >= 0x40 && h->len >= 1 && h->off + h->len <= VPCI_LAYOUT_CFG_END,
                 "hidden %u", i);
        for (unsigned k = h->off; k < h->off + h->len; k++)
            FZ_CHECK(!used[k]++, "hidden %u overlaps", i);
    }
}

/* Do a and b describe the same layout?  (Field by field: padding and
 * unused bytes are not part of a layout.) */
static bool same(const struct vpci_layout *a, const struct vpci_layout *b)
{
    if (a->vendor != b->vendor || a->device != b->device || a->subsys_vendor != b->subsys_vendor ||
        a->subsys_id != b->subsys_id || a->revision != b->revision ||
        a->class_code != b->class_code || a->intx_pin != b->intx_pin ||
        a->rom_size != b->rom_size || a->ncaps != b->ncaps || a->nfields != b->nfields ||
        a->nhidden != b->nhidden)
        return false;
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        const struct vpci_layout_bar *x = &a->bars[i], *y = &b->bars[i];
        if (x->type != y->type || x->size != y->size || x->prefetchable != y->prefetchable ||
            x->nmmap != y->nmmap || memcmp(x->mmap, y->mmap, x->nmmap * sizeof(x->mmap[0])))
            return false;
    }
    for (unsigned i = 0; i < a->ncaps; i++) {
        const struct vpci_layout_cap *x = &a->caps[i], *y = &b->caps[i];
        if (x->off != y->off || x->id != y->id || x->len != y->len || x->policy != y->policy ||
            x->vectors != y->vectors || x->msi_64bit != y->msi_64bit ||
            x->msi_maskable != y->msi_maskable || x->table_bir != y->table_bir ||
            x->pba_bir != y->pba_bir || x->table_off != y->table_off || x->pba_off != y->pba_off ||
            x->nfields != y->nfields || memcmp(x->fixed, y->fixed, sizeof(x->fixed)))
            return false;
        for (unsigned k = 2; k < x->len; k++)
            if ((x->policy == VPCI_LAYOUT_SYNTHESISED || x->fixed[k]) && x->data[k] != y->data[k])
                return false;
    }
    for (unsigned i = 0; i < a->nfields; i++)
        if (a->fields[i].cap != b->fields[i].cap || a->fields[i].rel != b->fields[i].rel ||
            a->fields[i].len != b->fields[i].len)
            return false;
    for (unsigned i = 0; i < a->nhidden; i++)
        if (a->hidden[i].off != b->hidden[i].off || a->hidden[i].len != b->hidden[i].len)
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct vpci_layout l, l2;
    static char a[VPCI_LAYOUT_MAX_FILE], b[VPCI_LAYOUT_MAX_FILE];
    struct errbuf err = {0};
    int rc = vpci_layout_parse((const char *)data, size, "f", &l, &err);
    if (rc < 0) {
        FZ_CHECK(rc == -EINVAL, "rc %d", rc);
        FZ_CHECK(err_isset(&err) && !strchr(err.msg, '\n'), "error line: '%s'", err.msg);
        FZ_CHECK(!strncmp(err.msg, "vpci layout f", 13), "error names no file: '%s'", err.msg);
        return 0;
    }
    FZ_CHECK(rc == 0 && !err_isset(&err), "accepted with error '%s'", err.msg);
    check_bars(&l);
    check_caps(&l);
    int n = vpci_layout_write(&l, a, sizeof(a));
    FZ_CHECK(n > 0, "canonical form: %d", n);
    rc = vpci_layout_parse(a, (size_t)n, "canonical", &l2, &err);
    FZ_CHECK(rc == 0, "canonical form refused: %s\n%s", err.msg, a);
    FZ_CHECK(same(&l, &l2), "canonical form parses to another layout:\n%s", a);
    int n2 = vpci_layout_write(&l2, b, sizeof(b));
    FZ_CHECK(n2 == n && !memcmp(a, b, (size_t)n), "canonical form not stable:\n%s\n--\n%s", a, b);
    FZ_CHECK(vpci_layout_digest(&l) == vpci_layout_digest(&l2), "digest differs");
    return 0;
}
