/*
 * The capability chain of a vPCI layout file (docs/VPCI_LAYOUT.md): `cap`
 * with its policies and the MSI/MSI-X forms, `field ... fixed`, `hidden`,
 * and the checks that need the whole file.  Split from vpci_layout.c only
 * to keep files small; see vpci_layout_internal.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devices/vfio/vpci_cfg.h"
#include "devices/vfio/vpci_layout_internal.h"
#include "devices/vfio/vpci_msix.h"

/* Capability ids that have a name in layout files. */
static const struct {
    uint8_t id;
    const char *name;
} lp_cap_names[] = {
    {VPCI_CAP_ID_PM, "pm"},    {VPCI_CAP_ID_MSI, "msi"},   {VPCI_CAP_ID_VNDR, "vendor"},
    {VPCI_CAP_ID_EXP, "pcie"}, {VPCI_CAP_ID_MSIX, "msix"},
};

const char *vpci_layout_cap_name(uint8_t id)
{
    for (unsigned i = 0; i < ARRAY_SIZE(lp_cap_names); i++)
        if (lp_cap_names[i].id == id)
            return lp_cap_names[i].name;
    return NULL;
}

/*
 * Bytes of a passthrough capability wisp always emulates (docs/VPCI.md,
 * "Fields wisp always emulates"): a fixed field must not touch them.
 */
static bool lp_emulated_byte(uint8_t id, unsigned rel)
{
    if (id == VPCI_CAP_ID_PM)
        return rel >= 2 && rel < 6;
    if (id == VPCI_CAP_ID_EXP)
        return (rel >= 4 && rel < 12) || rel == 0x10 || rel == 0x11 || rel == 0x28 || rel == 0x29;
    return false;
}

/* The dword-rounded extent of capability c: [off, off + len rounded up to 4). */
static unsigned lp_cap_extent(const struct vpci_layout_cap *c)
{
    return (c->len + 3U) & ~3U;
}

/* Does [off, off + len) collide with a capability or a hidden range? */
static int lp_collides(struct vpci_layout_parser *p, const char *what, unsigned off, unsigned len)
{
    const struct vpci_layout *l = p->l;
    for (unsigned i = 0; i < l->ncaps; i++)
        if (ranges_overlap(off, len, l->caps[i].off, lp_cap_extent(&l->caps[i])))
            return vpci_layout_err(p, "%s overlaps cap 0x%02x (line %u)", what, l->caps[i].off,
                                   p->cap_line[i]);
    for (unsigned i = 0; i < l->nhidden; i++)
        if (ranges_overlap(off, len, l->hidden[i].off, l->hidden[i].len))
            return vpci_layout_err(p, "%s overlaps hidden 0x%02x+0x%x", what, l->hidden[i].off,
                                   l->hidden[i].len);
    return 0;
}

/* msi options: vectors=N [64bit] [maskable]; LEN must match. */
static int lp_msi(struct vpci_layout_parser *p, struct vpci_layout_cap *c)
{
    uint64_t v = 0;
    for (unsigned k = 5; k < p->ntok; k++) {
        const char *s = vpci_layout_kv(p->tok[k], "vectors");
        if (s && !v) {
            if (!vpci_layout_num(s, VPCI_LAYOUT_MSI_MAX, &v) || !is_pow2(v))
                return vpci_layout_err(p, "msi: vectors '%s' is not 1, 2, 4, 8, 16 or 32", s);
        } else if (!strcmp(p->tok[k], "64bit") && !c->msi_64bit) {
            c->msi_64bit = true;
        } else if (!strcmp(p->tok[k], "maskable") && !c->msi_maskable) {
            c->msi_maskable = true;
        } else {
            return vpci_layout_err(p, "msi: '%s' is not allowed here", p->tok[k]);
        }
    }
    if (!v)
        return vpci_layout_err(p, "msi: vectors=N missing");
    c->vectors = (unsigned)v;
    uint16_t ctrl = (uint16_t)((c->msi_64bit ? VPCI_MSI_CTRL_64BIT : 0) |
                               (c->msi_maskable ? VPCI_MSI_CTRL_MASKBIT : 0));
    if (c->len != vpci_msi_cap_len(ctrl))
        return vpci_layout_err(p, "msi: length 0x%x, this form is 0x%x long", c->len,
                               vpci_msi_cap_len(ctrl));
    return 0;
}

/* "BAR:OFFSET" of the MSI-X table or PBA. */
static int lp_bir(struct vpci_layout_parser *p, const char *what, const char *s, uint8_t *bir,
                  uint32_t *off)
{
    uint64_t b, o;
    const char *colon = strchr(s, ':');
    char num[8];
    if (!colon || colon - s >= (long)sizeof(num))
        return vpci_layout_err(p, "msix: %s '%s' is not BAR:OFFSET", what, s);
    memcpy(num, s, (size_t)(colon - s));
    num[colon - s] = '\0';
    if (!vpci_layout_num(num, PCI_NUM_BARS - 1, &b) || !vpci_layout_num(colon + 1, UINT32_MAX, &o))
        return vpci_layout_err(p, "msix: %s '%s' is not BAR:OFFSET", what, s);
    if (o % 8)
        return vpci_layout_err(p, "msix: %s offset 0x%llx is not a multiple of 8", what,
                               (unsigned long long)o);
    *bir = (uint8_t)b;
    *off = (uint32_t)o;
    return 0;
}

/* msix options: vectors=N table=BAR:OFF pba=BAR:OFF. */
static int lp_msix(struct vpci_layout_parser *p, struct vpci_layout_cap *c)
{
    uint64_t v = 0;
    bool table = false, pba = false;
    int rc;
    for (unsigned k = 5; k < p->ntok; k++) {
        const char *s;
        if ((s = vpci_layout_kv(p->tok[k], "vectors")) && !v) {
            if (!vpci_layout_num(s, VPCI_LAYOUT_MSIX_MAX, &v) || !v)
                return vpci_layout_err(p, "msix: vectors '%s' is not 1 to %u", s,
                                       VPCI_LAYOUT_MSIX_MAX);
        } else if ((s = vpci_layout_kv(p->tok[k], "table")) && !table) {
            if ((rc = lp_bir(p, "table", s, &c->table_bir, &c->table_off)) < 0)
                return rc;
            table = true;
        } else if ((s = vpci_layout_kv(p->tok[k], "pba")) && !pba) {
            if ((rc = lp_bir(p, "pba", s, &c->pba_bir, &c->pba_off)) < 0)
                return rc;
            pba = true;
        } else {
            return vpci_layout_err(p, "msix: '%s' is not allowed here", p->tok[k]);
        }
    }
    if (!v || !table || !pba)
        return vpci_layout_err(p, "msix: needs vectors=N table=BAR:OFFSET pba=BAR:OFFSET");
    if (c->len != VPCI_MSIX_CAP_LEN)
        return vpci_layout_err(p, "msix: length 0x%x, the capability is 0x%x long", c->len,
                               VPCI_MSIX_CAP_LEN);
    c->vectors = (unsigned)v;
    return 0;
}

int vpci_layout_cap_dir(struct vpci_layout_parser *p)
{
    static const char *const pol[] = {[VPCI_LAYOUT_PASSTHROUGH] = "passthrough",
                                      [VPCI_LAYOUT_EMULATED] = "emulated",
                                      [VPCI_LAYOUT_SYNTHESISED] = "synthesised"};
    struct vpci_layout *l = p->l;
    uint64_t off, id = 0, len;
    char what[16];
    int rc;
    if (p->ntok < 5)
        return vpci_layout_err(p, "'cap' needs OFFSET ID LENGTH POLICY");
    if ((rc = vpci_layout_tok_num(p, 1, "cap offset", PCI_CFG_HEADER_END, 0xfc, &off)) < 0)
        return rc;
    if (off % 4)
        return vpci_layout_err(p, "cap offset 0x%llx is not a multiple of 4",
                               (unsigned long long)off);
    for (unsigned i = 0; i < ARRAY_SIZE(lp_cap_names); i++)
        if (!strcmp(p->tok[2], lp_cap_names[i].name))
            id = lp_cap_names[i].id;
    if (!id && (rc = vpci_layout_tok_num(p, 2, "cap id", 1, 0xff, &id)) < 0)
        return rc;
    if ((rc = vpci_layout_tok_num(p, 3, "cap length", 2, VPCI_LAYOUT_CFG_END - off, &len)) < 0)
        return rc;
    if (l->ncaps >= VPCI_LAYOUT_MAX_CAPS)
        return vpci_layout_err(p, "more than %u capabilities", VPCI_LAYOUT_MAX_CAPS);
    for (unsigned i = 0; i < l->ncaps; i++)
        if (l->caps[i].id == id)
            return vpci_layout_err(p, "cap id 0x%02llx appears twice (line %u)",
                                   (unsigned long long)id, p->cap_line[i]);
    snprintf(what, sizeof(what), "cap 0x%02llx", (unsigned long long)off);
    struct vpci_layout_cap *c = &l->caps[l->ncaps];
    *c = (struct vpci_layout_cap){.off = (uint8_t)off, .id = (uint8_t)id, .len = (uint8_t)len};
    if ((rc = lp_collides(p, what, c->off, lp_cap_extent(c))) < 0)
        return rc;
    for (unsigned k = VPCI_LAYOUT_PASSTHROUGH; k <= VPCI_LAYOUT_SYNTHESISED; k++)
        if (!strcmp(p->tok[4], pol[k]))
            c->policy = (enum vpci_layout_policy)k;
    if (!c->policy)
        return vpci_layout_err(p, "%s: policy '%s' is not passthrough, emulated or synthesised",
                               what, p->tok[4]);
    bool irq = id == VPCI_CAP_ID_MSI || id == VPCI_CAP_ID_MSIX;
    if (irq != (c->policy == VPCI_LAYOUT_EMULATED))
        return vpci_layout_err(p, "%s: msi and msix must be emulated, and only they can be", what);
    if (id == VPCI_CAP_ID_MSI)
        rc = lp_msi(p, c);
    else if (id == VPCI_CAP_ID_MSIX)
        rc = lp_msix(p, c);
    else if (c->policy == VPCI_LAYOUT_SYNTHESISED) {
        const char *d = p->ntok == 6 ? vpci_layout_kv(p->tok[5], "data") : NULL;
        if (!d || !vpci_layout_hex(d, c->data + 2, len - 2))
            rc = vpci_layout_err(p, "%s: synthesised needs data= with %u bytes in hex", what,
                                 (unsigned)len - 2);
    } else if (p->ntok != 5) {
        rc = vpci_layout_err(p, "%s: '%s' is not allowed here", what, p->tok[5]);
    }
    if (rc < 0)
        return rc;
    p->cap_line[l->ncaps] = p->line;
    c->first_field = l->nfields;
    l->ncaps++;
    if (c->policy == VPCI_LAYOUT_PASSTHROUGH)
        p->field_cap = (int)(l->ncaps - 1);
    return 0;
}

/* field REL LENGTH fixed HEX, right after a passthrough cap or its fields. */
int vpci_layout_field_dir(struct vpci_layout_parser *p)
{
    struct vpci_layout *l = p->l;
    uint64_t rel, len;
    int rc;
    if (p->field_cap < 0)
        return vpci_layout_err(p, "'field' must follow a passthrough cap or its fields");
    struct vpci_layout_cap *c = &l->caps[p->field_cap];
    if ((rc = vpci_layout_argc(p, 5)) < 0)
        return rc;
    if ((rc = vpci_layout_tok_num(p, 1, "field offset", 2, c->len - 1U, &rel)) < 0 ||
        (rc = vpci_layout_tok_num(p, 2, "field length", 1, c->len - rel, &len)) < 0)
        return rc;
    if (strcmp(p->tok[3], "fixed") != 0)
        return vpci_layout_err(p, "field policy '%s' is not fixed", p->tok[3]);
    if (l->nfields >= VPCI_LAYOUT_MAX_FIELDS)
        return vpci_layout_err(p, "more than %u fields", VPCI_LAYOUT_MAX_FIELDS);
    for (unsigned i = (unsigned)rel; i < rel + len; i++) {
        if (c->fixed[i])
            return vpci_layout_err(p, "field 0x%x+%u overlaps another field", (unsigned)rel,
                                   (unsigned)len);
        if (lp_emulated_byte(c->id, i))
            return vpci_layout_err(p, "field 0x%x+%u touches byte 0x%x, which wisp emulates",
                                   (unsigned)rel, (unsigned)len, i);
    }
    if (!vpci_layout_hex(p->tok[4], c->data + rel, len))
        return vpci_layout_err(p, "field 0x%x+%u: '%s' is not %u bytes in hex", (unsigned)rel,
                               (unsigned)len, p->tok[4], (unsigned)len);
    for (unsigned i = (unsigned)rel; i < rel + len; i++)
        c->fixed[i] = true;
    /* keep this capability's fields (the tail of the array) sorted by rel */
    unsigned k = l->nfields;
    while (k > c->first_field && l->fields[k - 1].rel > rel) {
        l->fields[k] = l->fields[k - 1];
        k--;
    }
    l->fields[k] = (struct vpci_layout_field){
        .cap = (uint8_t)p->field_cap, .rel = (uint8_t)rel, .len = (uint8_t)len};
    l->nfields++;
    c->nfields++;
    return 0;
}

int vpci_layout_hidden_dir(struct vpci_layout_parser *p)
{
    struct vpci_layout *l = p->l;
    uint64_t off, len;
    char what[24];
    int rc;
    if ((rc = vpci_layout_argc(p, 3)) < 0 ||
        (rc = vpci_layout_tok_num(p, 1, "hidden offset", PCI_CFG_HEADER_END, 0xff, &off)) < 0 ||
        (rc = vpci_layout_tok_num(p, 2, "hidden length", 1, VPCI_LAYOUT_CFG_END - off, &len)) < 0)
        return rc;
    if (l->nhidden >= VPCI_LAYOUT_MAX_HIDDEN)
        return vpci_layout_err(p, "more than %u hidden ranges", VPCI_LAYOUT_MAX_HIDDEN);
    snprintf(what, sizeof(what), "hidden 0x%02x+0x%x", (unsigned)off, (unsigned)len);
    if ((rc = lp_collides(p, what, (unsigned)off, (unsigned)len)) < 0)
        return rc;
    unsigned k = l->nhidden;
    while (k > 0 && l->hidden[k - 1].off > off) {
        l->hidden[k] = l->hidden[k - 1];
        k--;
    }
    l->hidden[k] = (struct vpci_layout_range){.off = (uint8_t)off, .len = (uint16_t)len};
    l->nhidden++;
    return 0;
}

/* The MSI-X table or PBA [off, off + len) of `bir`: inside a memory BAR,
 * not on a page an mmap area maps. */
static int lp_msix_place(struct vpci_layout_parser *p, const char *what, unsigned bir, uint64_t off,
                         uint64_t len)
{
    const struct vpci_layout_bar *b = &p->l->bars[bir];
    if (b->type != PCI_BAR_MEM32 && b->type != PCI_BAR_MEM64)
        return vpci_layout_err(p, "msix: %s is in bar %u, which is not a memory BAR", what, bir);
    if (off >= b->size || len > b->size - off)
        return vpci_layout_err(p, "msix: %s 0x%llx+0x%llx does not fit bar %u (0x%llx)", what,
                               (unsigned long long)off, (unsigned long long)len, bir,
                               (unsigned long long)b->size);
    uint64_t pg = align_down(off, LP_PAGE), end = off + len, pend;
    if (!align_up_checked(end, LP_PAGE, &pend))
        pend = end;
    for (unsigned i = 0; i < b->nmmap; i++)
        if (ranges_overlap(pg, pend - pg, b->mmap[i].off, b->mmap[i].len))
            return vpci_layout_err(
                p, "msix: %s shares a page with mmap area 0x%llx+0x%llx of bar %u", what,
                (unsigned long long)b->mmap[i].off, (unsigned long long)b->mmap[i].len, bir);
    return 0;
}

/* Checks that need the whole file. */
int vpci_layout_finish(struct vpci_layout_parser *p)
{
    static const struct {
        unsigned bit;
        const char *name;
    } req[] = {{LP_HDR, "wisp-vpci-layout"},
               {LP_ID, "id"},
               {LP_SUBSYS, "subsystem"},
               {LP_REV, "revision"},
               {LP_CLASS, "class"},
               {LP_INTX, "intx"},
               {LP_ROM, "rom"}};
    for (unsigned i = 0; i < ARRAY_SIZE(req); i++)
        if (!(p->seen & req[i].bit))
            return vpci_layout_err(p, "missing '%s' directive", req[i].name);
    for (unsigned i = 0; i < p->l->ncaps; i++) {
        const struct vpci_layout_cap *c = &p->l->caps[i];
        int rc;
        if (c->id != VPCI_CAP_ID_MSIX)
            continue;
        p->line = p->cap_line[i];
        uint64_t tlen = 16ULL * c->vectors, plen = 8ULL * ((c->vectors + 63) / 64);
        if ((rc = lp_msix_place(p, "table", c->table_bir, c->table_off, tlen)) < 0 ||
            (rc = lp_msix_place(p, "pba", c->pba_bir, c->pba_off, plen)) < 0)
            return rc;
        if (c->table_bir == c->pba_bir && ranges_overlap(c->table_off, tlen, c->pba_off, plen))
            return vpci_layout_err(p, "msix: table and pba overlap");
    }
    return 0;
}
