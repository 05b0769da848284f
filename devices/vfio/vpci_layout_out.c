/*
 * The other ends of a vPCI layout (vpci_layout.h): reading the file from
 * disk with its size bounded, writing a parsed layout in its canonical form
 * (docs/VPCI_LAYOUT.md), so that two layouts can be compared as bytes and
 * carried in a migration stream, and the digest that names that form.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/vfio/vpci_cfg.h"
#include "devices/vfio/vpci_layout.h"

#define FNV64_OFFSET 0xcbf29ce484222325ULL
#define FNV64_PRIME  0x100000001b3ULL

/* An output buffer that remembers whether anything was cut. */
struct out {
    char *buf;
    size_t cap, len;
    bool full;
};

static void __printf(2, 3) out_put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    if (o->full)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len) {
        o->full = true;
        return;
    }
    o->len += (size_t)n;
}

static void out_hex(struct out *o, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out_put(o, "%02x", p[i]);
}

static void out_bar(struct out *o, unsigned i, const struct vpci_layout_bar *b)
{
    static const char *const types[] = {
        [PCI_BAR_IO] = "io", [PCI_BAR_MEM32] = "mem32", [PCI_BAR_MEM64] = "mem64"};
    out_put(o, "bar %u %s 0x%llx%s", i, types[b->type], (unsigned long long)b->size,
            b->prefetchable ? " prefetchable" : "");
    for (unsigned k = 0; k < b->nmmap && k < VPCI_LAYOUT_MAX_MMAP; k++)
        out_put(o, " mmap=0x%llx+0x%llx", (unsigned long long)b->mmap[k].off,
                (unsigned long long)b->mmap[k].len);
    out_put(o, "\n");
}

static void out_cap(struct out *o, const struct vpci_layout *l, const struct vpci_layout_cap *c)
{
    static const char *const pol[] = {[VPCI_LAYOUT_PASSTHROUGH] = "passthrough",
                                      [VPCI_LAYOUT_EMULATED] = "emulated",
                                      [VPCI_LAYOUT_SYNTHESISED] = "synthesised"};
    const char *name = vpci_layout_cap_name(c->id);
    out_put(o, "cap 0x%02x ", c->off);
    if (name)
        out_put(o, "%s", name);
    else
        out_put(o, "0x%02x", c->id);
    out_put(o, " 0x%02x %s", c->len, pol[c->policy]);
    if (c->id == VPCI_CAP_ID_MSI)
        out_put(o, " vectors=%u%s%s", c->vectors, c->msi_64bit ? " 64bit" : "",
                c->msi_maskable ? " maskable" : "");
    else if (c->id == VPCI_CAP_ID_MSIX)
        out_put(o, " vectors=%u table=%u:0x%x pba=%u:0x%x", c->vectors, c->table_bir, c->table_off,
                c->pba_bir, c->pba_off);
    else if (c->policy == VPCI_LAYOUT_SYNTHESISED) {
        out_put(o, " data=");
        out_hex(o, c->data + 2, c->len - 2U);
    }
    out_put(o, "\n");
    for (unsigned k = c->first_field; k < c->first_field + c->nfields && k < l->nfields; k++) {
        const struct vpci_layout_field *f = &l->fields[k];
        out_put(o, "field 0x%02x %u fixed ", f->rel, f->len);
        out_hex(o, c->data + f->rel, f->len);
        out_put(o, "\n");
    }
}

int vpci_layout_write(const struct vpci_layout *l, char *buf, size_t cap)
{
    struct out o = {.buf = buf, .cap = cap};
    if (!cap)
        return -ENOSPC;
    buf[0] = '\0';
    out_put(&o, "wisp-vpci-layout %u\n", VPCI_LAYOUT_VERSION);
    out_put(&o, "id 0x%04x 0x%04x\n", l->vendor, l->device);
    out_put(&o, "subsystem 0x%04x 0x%04x\n", l->subsys_vendor, l->subsys_id);
    out_put(&o, "revision 0x%02x\n", l->revision);
    out_put(&o, "class 0x%06x\n", l->class_code);
    out_put(&o, "intx %u\n", l->intx_pin);
    if (l->rom_size)
        out_put(&o, "rom 0x%llx\n", (unsigned long long)l->rom_size);
    else
        out_put(&o, "rom absent\n");
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        if (l->bars[i].type != PCI_BAR_NONE)
            out_bar(&o, i, &l->bars[i]);
    for (unsigned i = 0; i < l->ncaps && i < VPCI_LAYOUT_MAX_CAPS; i++)
        out_cap(&o, l, &l->caps[i]);
    for (unsigned i = 0; i < l->nhidden && i < VPCI_LAYOUT_MAX_HIDDEN; i++)
        out_put(&o, "hidden 0x%02x 0x%x\n", l->hidden[i].off, l->hidden[i].len);
    return o.full ? -ENOSPC : (int)o.len;
}

uint64_t vpci_layout_digest_text(const char *text, size_t len)
{
    uint64_t h = FNV64_OFFSET;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)text[i];
        h *= FNV64_PRIME;
    }
    return h;
}

uint64_t vpci_layout_digest(const struct vpci_layout *l)
{
    char *buf = malloc(VPCI_LAYOUT_MAX_FILE);
    if (!buf)
        return 0;
    int n = vpci_layout_write(l, buf, VPCI_LAYOUT_MAX_FILE);
    uint64_t h = n < 0 ? 0 : vpci_layout_digest_text(buf, (size_t)n);
    free(buf);
    return h;
}

int vpci_layout_load(const char *path, struct vpci_layout *out, struct errbuf *err)
{
    struct stat st;
    ssize_t n = 0;
    int rc, fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return err_set(err, WISP_EXIT_USAGE, errno, "vpci layout %s: cannot open: %s", path,
                       strerror(errno));
    char *buf = NULL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = err_set(err, WISP_EXIT_USAGE, EINVAL, "vpci layout %s: not a regular file", path);
        goto out;
    }
    /* One byte more than allowed, to see a file that grew past the limit. */
    buf = malloc(VPCI_LAYOUT_MAX_FILE + 1);
    if (!buf) {
        rc = err_set(err, WISP_EXIT_FAILURE, ENOMEM, "vpci layout %s: out of memory", path);
        goto out;
    }
    while ((size_t)n <= VPCI_LAYOUT_MAX_FILE) {
        ssize_t r = read(fd, buf + n, VPCI_LAYOUT_MAX_FILE + 1 - (size_t)n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = err_set(err, WISP_EXIT_USAGE, errno, "vpci layout %s: cannot read: %s", path,
                         strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += r;
    }
    rc = vpci_layout_parse(buf, (size_t)n, path, out, err);
out:
    free(buf);
    close(fd);
    return rc;
}
