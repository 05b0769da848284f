/*
 * The strict parser of vPCI layout files (vpci_layout.h,
 * docs/VPCI_LAYOUT.md).  One pass over the lines, one handler per
 * directive, every number bounded where it is read, every overlap checked
 * when the second range arrives, and the checks that need the whole file
 * (required directives, MSI-X table and PBA against the BARs) at the end.
 * The first error stops the parse with one line naming file:line.
 */
#include "devices/vfio/vpci_layout.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "devices/vfio/vpci_layout_internal.h"

int vpci_layout_err(struct vpci_layout_parser *p, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (p->line)
        return err_set(p->err, WISP_EXIT_USAGE, EINVAL, "vpci layout %s:%u: %s", p->name, p->line,
                       msg);
    return err_set(p->err, WISP_EXIT_USAGE, EINVAL, "vpci layout %s: %s", p->name, msg);
}

/* A decimal or 0x-hex number, at most `max`. */
bool vpci_layout_num(const char *s, uint64_t max, uint64_t *v)
{
    unsigned base = 10;
    uint64_t r = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = (unsigned)(*s - '0');
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            d = (unsigned)(*s - 'a' + 10);
        else if (base == 16 && *s >= 'A' && *s <= 'F')
            d = (unsigned)(*s - 'A' + 10);
        else
            return false;
        if (__builtin_mul_overflow(r, base, &r) || __builtin_add_overflow(r, d, &r))
            return false;
    }
    if (r > max)
        return false;
    *v = r;
    return true;
}

/* Token `i` as a number in [min, max], or an error naming `what`. */
int vpci_layout_tok_num(struct vpci_layout_parser *p, unsigned i, const char *what, uint64_t min,
                        uint64_t max, uint64_t *v)
{
    if (!vpci_layout_num(p->tok[i], max, v) || *v < min)
        return vpci_layout_err(p, "%s: '%s' is not a number from 0x%llx to 0x%llx", what, p->tok[i],
                               (unsigned long long)min, (unsigned long long)max);
    return 0;
}

/* Exactly 2*n hex digits into out[n]. */
bool vpci_layout_hex(const char *s, uint8_t *out, size_t n)
{
    if (strlen(s) != 2 * n)
        return false;
    for (size_t i = 0; i < 2 * n; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return false;
        out[i / 2] = (uint8_t)(i % 2 ? (out[i / 2] << 4) | d : d);
    }
    return true;
}

/* `tok` is "key=value": the value, else NULL. */
const char *vpci_layout_kv(const char *tok, const char *key)
{
    size_t n = strlen(key);
    return strncmp(tok, key, n) == 0 && tok[n] == '=' ? tok + n + 1 : NULL;
}

int vpci_layout_argc(struct vpci_layout_parser *p, unsigned n)
{
    if (p->ntok != n)
        return vpci_layout_err(p, "'%s' takes %u argument%s", p->tok[0], n - 1, n == 2 ? "" : "s");
    return 0;
}

/* A directive that appears once: mark it, or an error if seen. */
static int lp_once(struct vpci_layout_parser *p, unsigned bit)
{
    if (p->seen & bit)
        return vpci_layout_err(p, "'%s' appears twice", p->tok[0]);
    p->seen |= bit;
    return 0;
}

static int lp_header(struct vpci_layout_parser *p)
{
    uint64_t v;
    int rc = vpci_layout_argc(p, 2);
    if (rc < 0)
        return rc;
    if (!vpci_layout_num(p->tok[1], UINT32_MAX, &v) || v != VPCI_LAYOUT_VERSION)
        return vpci_layout_err(p, "version '%s' is not supported (only %u)", p->tok[1],
                               VPCI_LAYOUT_VERSION);
    return lp_once(p, LP_HDR);
}

/* id, subsystem, revision, class, intx, rom. */
static int lp_scalar(struct vpci_layout_parser *p)
{
    struct vpci_layout *l = p->l;
    const char *d = p->tok[0];
    uint64_t a = 0, b = 0;
    int rc;
    if (!strcmp(d, "id") || !strcmp(d, "subsystem")) {
        bool id = !strcmp(d, "id");
        if ((rc = vpci_layout_argc(p, 3)) < 0 ||
            (rc = vpci_layout_tok_num(p, 1, d, 0, 0xffff, &a)) < 0 ||
            (rc = vpci_layout_tok_num(p, 2, d, 0, 0xffff, &b)) < 0)
            return rc;
        if (id && a == 0xffff)
            return vpci_layout_err(p, "vendor 0xffff means no function");
        if (id) {
            l->vendor = (uint16_t)a;
            l->device = (uint16_t)b;
        } else {
            l->subsys_vendor = (uint16_t)a;
            l->subsys_id = (uint16_t)b;
        }
        return lp_once(p, id ? LP_ID : LP_SUBSYS);
    }
    if ((rc = vpci_layout_argc(p, 2)) < 0)
        return rc;
    if (!strcmp(d, "revision")) {
        if ((rc = vpci_layout_tok_num(p, 1, d, 0, 0xff, &a)) < 0)
            return rc;
        l->revision = (uint8_t)a;
        return lp_once(p, LP_REV);
    }
    if (!strcmp(d, "class")) {
        if ((rc = vpci_layout_tok_num(p, 1, d, 0, 0xffffff, &a)) < 0)
            return rc;
        l->class_code = (uint32_t)a;
        return lp_once(p, LP_CLASS);
    }
    if (!strcmp(d, "intx")) {
        if ((rc = vpci_layout_tok_num(p, 1, d, 0, 4, &a)) < 0)
            return rc;
        l->intx_pin = (uint8_t)a;
        return lp_once(p, LP_INTX);
    }
    /* rom */
    if (strcmp(p->tok[1], "absent") != 0) {
        if ((rc = vpci_layout_tok_num(p, 1, d, 0x800, 1ULL << 31, &a)) < 0)
            return rc;
        if (!is_pow2(a))
            return vpci_layout_err(p, "rom: size 0x%llx is not a power of two",
                                   (unsigned long long)a);
    }
    l->rom_size = a;
    return lp_once(p, LP_ROM);
}

/* mmap=OFF+LEN of BAR `b` (index i), inserted in offset order. */
static int lp_mmap(struct vpci_layout_parser *p, unsigned i, struct vpci_layout_bar *b,
                   const char *v)
{
    char num[32];
    const char *plus = strchr(v, '+');
    uint64_t off, len;
    if (!plus || (size_t)(plus - v) >= sizeof(num))
        return vpci_layout_err(p, "bar %u: mmap '%s' is not OFFSET+LENGTH", i, v);
    memcpy(num, v, (size_t)(plus - v));
    num[plus - v] = '\0';
    if (!vpci_layout_num(num, UINT64_MAX, &off) || !vpci_layout_num(plus + 1, UINT64_MAX, &len))
        return vpci_layout_err(p, "bar %u: mmap '%s' is not OFFSET+LENGTH", i, v);
    if (b->type == PCI_BAR_IO)
        return vpci_layout_err(p, "bar %u: an io BAR cannot be mapped", i);
    if (!len || !is_aligned(off, LP_PAGE) || !is_aligned(len, LP_PAGE))
        return vpci_layout_err(p, "bar %u: mmap area 0x%llx+0x%llx is not whole 4 KiB pages", i,
                               (unsigned long long)off, (unsigned long long)len);
    if (off >= b->size || len > b->size - off)
        return vpci_layout_err(p, "bar %u: mmap area 0x%llx+0x%llx is outside the BAR", i,
                               (unsigned long long)off, (unsigned long long)len);
    if (b->nmmap >= VPCI_LAYOUT_MAX_MMAP)
        return vpci_layout_err(p, "bar %u: more than %u mmap areas", i, VPCI_LAYOUT_MAX_MMAP);
    unsigned k = b->nmmap;
    for (unsigned j = 0; j < b->nmmap; j++)
        if (ranges_overlap(off, len, b->mmap[j].off, b->mmap[j].len))
            return vpci_layout_err(p, "bar %u: mmap area 0x%llx+0x%llx overlaps another", i,
                                   (unsigned long long)off, (unsigned long long)len);
    while (k > 0 && b->mmap[k - 1].off > off) {
        b->mmap[k] = b->mmap[k - 1];
        k--;
    }
    b->mmap[k] = (struct vpci_layout_area){.off = off, .len = len};
    b->nmmap++;
    return 0;
}

static int lp_bar(struct vpci_layout_parser *p)
{
    static const char *const types[] = {
        [PCI_BAR_IO] = "io", [PCI_BAR_MEM32] = "mem32", [PCI_BAR_MEM64] = "mem64"};
    static const uint64_t lo[] = {[PCI_BAR_IO] = 4, [PCI_BAR_MEM32] = 16, [PCI_BAR_MEM64] = 16};
    static const uint64_t hi[] = {
        [PCI_BAR_IO] = 256, [PCI_BAR_MEM32] = 1ULL << 30, [PCI_BAR_MEM64] = 1ULL << 40};
    uint64_t idx, size;
    int rc;
    if (p->ntok < 4)
        return vpci_layout_err(p, "'bar' needs INDEX TYPE SIZE");
    if ((rc = vpci_layout_tok_num(p, 1, "bar index", 0, PCI_NUM_BARS - 1, &idx)) < 0)
        return rc;
    unsigned i = (unsigned)idx;
    struct vpci_layout_bar *b = &p->l->bars[i];
    enum pci_bar_type t = PCI_BAR_NONE;
    for (unsigned k = PCI_BAR_IO; k <= PCI_BAR_MEM64; k++)
        if (!strcmp(p->tok[2], types[k]))
            t = (enum pci_bar_type)k;
    if (t == PCI_BAR_NONE)
        return vpci_layout_err(p, "bar %u: type '%s' is not io, mem32 or mem64", i, p->tok[2]);
    if (p->bars_declared & (1U << i))
        return vpci_layout_err(p, "bar %u appears twice", i);
    if (i > 0 && p->l->bars[i - 1].type == PCI_BAR_MEM64)
        return vpci_layout_err(p, "bar %u is the upper half of mem64 bar %u", i, i - 1);
    if (t == PCI_BAR_MEM64 && (i + 1 >= PCI_NUM_BARS || (p->bars_declared & (1U << (i + 1)))))
        return vpci_layout_err(p, "bar %u: a mem64 BAR needs bar %u free", i, i + 1);
    if ((rc = vpci_layout_tok_num(p, 3, "bar size", lo[t], hi[t], &size)) < 0)
        return rc;
    if (!is_pow2(size))
        return vpci_layout_err(p, "bar %u: size 0x%llx is not a power of two", i,
                               (unsigned long long)size);
    *b = (struct vpci_layout_bar){.type = t, .size = size};
    p->bars_declared |= 1U << i;
    for (unsigned k = 4; k < p->ntok; k++) {
        const char *v = vpci_layout_kv(p->tok[k], "mmap");
        if (!strcmp(p->tok[k], "prefetchable") && !b->prefetchable && t != PCI_BAR_IO)
            b->prefetchable = true;
        else if (v && (rc = lp_mmap(p, i, b, v)) < 0)
            return rc;
        else if (!v)
            return vpci_layout_err(p, "bar %u: '%s' is not allowed here", i, p->tok[k]);
    }
    return 0;
}

/* The directive table: every directive and its handler. */
static int lp_directive(struct vpci_layout_parser *p)
{
    static const struct {
        const char *name;
        int (*fn)(struct vpci_layout_parser *p);
    } tab[] = {
        {"id", lp_scalar},
        {"subsystem", lp_scalar},
        {"revision", lp_scalar},
        {"class", lp_scalar},
        {"intx", lp_scalar},
        {"rom", lp_scalar},
        {"bar", lp_bar},
        {"cap", vpci_layout_cap_dir},
        {"field", vpci_layout_field_dir},
        {"hidden", vpci_layout_hidden_dir},
    };
    if (!(p->seen & LP_HDR)) {
        if (strcmp(p->tok[0], "wisp-vpci-layout") != 0)
            return vpci_layout_err(p, "the first directive must be 'wisp-vpci-layout %u'",
                                   VPCI_LAYOUT_VERSION);
        return lp_header(p);
    }
    if (!strcmp(p->tok[0], "wisp-vpci-layout"))
        return vpci_layout_err(p, "'wisp-vpci-layout' appears twice");
    for (unsigned i = 0; i < ARRAY_SIZE(tab); i++) {
        if (strcmp(p->tok[0], tab[i].name) != 0)
            continue;
        if (strcmp(p->tok[0], "field") != 0)
            p->field_cap = -1; /* fields follow their capability directly */
        return tab[i].fn(p);
    }
    return vpci_layout_err(p, "unknown directive '%s'", p->tok[0]);
}

/* Split `s` (one line without its newline) into tokens, comments cut. */
static int lp_line(struct vpci_layout_parser *p, char *s)
{
    char *hash = strchr(s, '#');
    if (hash)
        *hash = '\0';
    p->ntok = 0;
    for (char *q = s;;) {
        while (*q == ' ' || *q == '\t')
            q++;
        if (!*q)
            break;
        if (p->ntok >= LP_MAX_TOK)
            return vpci_layout_err(p, "more than %u words", LP_MAX_TOK);
        p->tok[p->ntok++] = q;
        while (*q && *q != ' ' && *q != '\t')
            q++;
        if (*q)
            *q++ = '\0';
    }
    return p->ntok ? lp_directive(p) : 0;
}

int vpci_layout_parse(const char *text, size_t len, const char *name, struct vpci_layout *out,
                      struct errbuf *err)
{
    struct vpci_layout_parser p = {
        .name = name ? name : "-", .err = err, .l = out, .field_cap = -1};
    char buf[VPCI_LAYOUT_MAX_LINE + 1];
    int rc;
    memset(out, 0, sizeof(*out));
    if (len > VPCI_LAYOUT_MAX_FILE)
        return vpci_layout_err(&p, "larger than %u bytes", VPCI_LAYOUT_MAX_FILE);
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        p.line++;
        if (n && text[pos + n - 1] == '\r')
            n--;
        if (n > VPCI_LAYOUT_MAX_LINE)
            return vpci_layout_err(&p, "line longer than %u characters", VPCI_LAYOUT_MAX_LINE);
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)text[pos + i];
            if ((c < 0x20 && c != '\t') || c >= 0x7f)
                return vpci_layout_err(&p, "byte 0x%02x is not printable ASCII", c);
        }
        memcpy(buf, text + pos, n);
        buf[n] = '\0';
        if ((rc = lp_line(&p, buf)) < 0)
            return rc;
        pos += (nl ? (size_t)(nl - (text + pos)) + 1 : len - pos);
    }
    p.line = 0;
    return vpci_layout_finish(&p);
}
