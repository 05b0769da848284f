/*
 * DSDT contents: a small AML reader written here from ACPI 6.3 chapter 20
 * walks the table as a guest's interpreter would (Scope -> Devices ->
 * Names, PkgLengths followed exactly to their ends), and the resource
 * templates are decoded per chapter 6.4.  Nothing is found by searching
 * for byte patterns, so misplaced lengths cannot pass.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "arch/x86_64/layout.h"
#include "tests/unit/arch/x86_64/test_acpi.h"

TestSuite(x86_acpi_dsdt);

static struct ta_tables t;

struct rd {
    const uint8_t *p;
    size_t end; /* offset one past the current object */
    size_t off;
};

static uint8_t u8(struct rd *r)
{
    cr_assert_lt(r->off, r->end, "read past the end at %zu", r->off);
    return r->p[r->off++];
}

/* PkgLength at r->off; returns the offset its object ends at. */
static size_t pkg_end(struct rd *r)
{
    size_t start = r->off;
    uint8_t lead = u8(r);
    unsigned follow = lead >> 6;
    uint32_t v = follow ? lead & 0x0F : lead & 0x3F;
    for (unsigned i = 0; i < follow; i++)
        v |= (uint32_t)u8(r) << (4 + 8 * i);
    cr_assert_leq(start + v, r->end, "object at %zu runs past its parent", start);
    return start + v;
}

static void nameseg(struct rd *r, char out[5])
{
    for (unsigned i = 0; i < 4; i++)
        out[i] = (char)u8(r);
    out[4] = '\0';
}

static uint64_t integer(struct rd *r)
{
    uint8_t op = u8(r);
    unsigned n = op == 0x0A ? 1 : op == 0x0B ? 2 : op == 0x0C ? 4 : op == 0x0E ? 8 : 0;
    if (op == 0x00 || op == 0x01)
        return op;
    cr_assert_neq(n, 0, "opcode 0x%02x at %zu is no integer", op, r->off - 1);
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)u8(r) << (8 * i);
    return v;
}

struct dev {
    char name[5];
    char hid_str[16]; /* a string _HID, or "" */
    uint64_t hid, cid, uid, seg, bbn;
    bool has_cid, has_seg, has_bbn;
    const uint8_t *crs; /* resource descriptors up to and including the End Tag */
    size_t crs_len;
};

/* Buffer { size, bytes }: the size must equal the bytes present. */
static void buffer(struct rd *r, struct dev *d)
{
    cr_assert_eq(u8(r), 0x11, "BufferOp");
    struct rd in = {r->p, pkg_end(r), 0};
    in.off = r->off;
    uint64_t size = integer(&in);
    cr_assert_eq(size, in.end - in.off, "buffer size %llu for %zu bytes", (unsigned long long)size,
                 in.end - in.off);
    d->crs = r->p + in.off;
    d->crs_len = size;
    r->off = in.end;
}

static void device(struct rd *r, struct dev *d)
{
    memset(d, 0, sizeof(*d));
    cr_assert_eq(u8(r), 0x5B);
    cr_assert_eq(u8(r), 0x82, "DeviceOp");
    struct rd in = {r->p, pkg_end(r), 0};
    in.off = r->off;
    nameseg(&in, d->name);
    while (in.off < in.end) {
        char n[5];
        cr_assert_eq(u8(&in), 0x08, "%s: only Name objects", d->name);
        nameseg(&in, n);
        if (strcmp(n, "_HID") == 0 && in.p[in.off] == 0x0D) {
            in.off++;
            size_t len = strnlen((const char *)in.p + in.off, in.end - in.off);
            cr_assert_lt(len, sizeof(d->hid_str));
            memcpy(d->hid_str, in.p + in.off, len + 1);
            in.off += len + 1;
        } else if (strcmp(n, "_HID") == 0) {
            d->hid = integer(&in);
        } else if (strcmp(n, "_CID") == 0) {
            d->cid = integer(&in);
            d->has_cid = true;
        } else if (strcmp(n, "_UID") == 0) {
            d->uid = integer(&in);
        } else if (strcmp(n, "_SEG") == 0) {
            d->seg = integer(&in);
            d->has_seg = true;
        } else if (strcmp(n, "_BBN") == 0) {
            d->bbn = integer(&in);
            d->has_bbn = true;
        } else if (strcmp(n, "_CRS") == 0) {
            buffer(&in, d);
        } else {
            cr_assert_fail("%s: unexpected name %s", d->name, n);
        }
    }
    cr_assert_eq(in.off, in.end, "%s: objects end where the device does", d->name);
    r->off = in.end;
}

#define MAX_DEVS 40
struct dsdt {
    struct dev devs[MAX_DEVS];
    unsigned ndevs;
};

/* The whole table: Scope (_SB) { devices }, then Name (_S5, Package (2) {5, 0}). */
static void parse(const struct x86_acpi_desc *desc, struct dsdt *out)
{
    ta_build(&t, desc);
    const uint8_t *p = ta_find(&t, "DSDT");
    cr_assert_not_null(p);
    cr_assert_eq(p[8], 2, "revision 2: 64-bit integers");
    cr_assert_eq(memcmp(p + 10, "WISP  WISPVM  ", 14), 0);
    struct rd r = {p, le32_get(p + 4), 36};

    cr_assert_eq(u8(&r), 0x10, "ScopeOp");
    struct rd sb = {p, pkg_end(&r), 0};
    sb.off = r.off;
    char n[5];
    nameseg(&sb, n);
    cr_assert_str_eq(n, "_SB_");
    out->ndevs = 0;
    while (sb.off < sb.end) {
        cr_assert_lt(out->ndevs, MAX_DEVS);
        device(&sb, &out->devs[out->ndevs++]);
    }
    r.off = sb.end;

    cr_assert_eq(u8(&r), 0x08, "NameOp");
    nameseg(&r, n);
    cr_assert_str_eq(n, "_S5_");
    cr_assert_eq(u8(&r), 0x12, "PackageOp");
    struct rd pkg = {p, pkg_end(&r), 0};
    pkg.off = r.off;
    cr_assert_eq(u8(&pkg), 2, "two elements");
    cr_assert_eq(integer(&pkg), X86_ACPI_S5_SLP_TYP, "SLP_TYPa");
    cr_assert_eq(integer(&pkg), 0, "SLP_TYPb");
    cr_assert_eq(pkg.off, pkg.end);
    cr_assert_eq(pkg.end, r.end, "_S5 ends the table");
}

/* Resource descriptors (6.4.1): the i-th one, with its total length. */
static const uint8_t *res(const struct dev *d, unsigned want, size_t *len)
{
    size_t off = 0;
    for (unsigned i = 0;; i++) {
        cr_assert_lt(off, d->crs_len, "%s: descriptor %u missing", d->name, want);
        const uint8_t *e = d->crs + off;
        size_t l = (e[0] & 0x80) ? 3 + le16_get(e + 1) : 1 + (e[0] & 0x07);
        cr_assert_leq(off + l, d->crs_len);
        if (i == want) {
            *len = l;
            return e;
        }
        off += l;
    }
}

/* The template holds `n` descriptors, then the End Tag (checksum 0) at its very end. */
static void res_count(const struct dev *d, unsigned n)
{
    size_t len;
    const uint8_t *end = res(d, n, &len);
    cr_assert_eq(end[0], 0x79, "%s: End Tag after %u descriptors", d->name, n);
    cr_assert_eq(end[1], 0);
    cr_assert_eq(end + 2, d->crs + d->crs_len, "%s: nothing after the End Tag", d->name);
}

static void check_com1(const struct dev *d)
{
    size_t len;
    cr_assert_str_eq(d->name, "COM1");
    cr_assert_eq(d->hid, 0x0105D041, "EISAID PNP0501");
    cr_assert_eq(d->uid, 0);
    const uint8_t *io = res(d, 0, &len);
    const uint8_t io_want[] = {0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x00, 0x08};
    cr_assert_eq(len, sizeof(io_want));
    cr_assert_eq(memcmp(io, io_want, len), 0, "IO (Decode16, 0x3F8, 0x3F8, 0, 8)");
    const uint8_t *irq = res(d, 1, &len);
    cr_assert_eq(len, 3);
    cr_assert_eq(irq[0], 0x22, "IRQNoFlags");
    cr_assert_eq(le16_get(irq + 1), 1U << X86_COM1_IRQ);
    res_count(d, 2);
}

/* The i8042: both ports one byte each, then ISA IRQ 1 (what Linux's i8042 PnP probe reads). */
static void check_kbd(const struct dev *d)
{
    size_t len;
    cr_assert_str_eq(d->name, "KBD0");
    cr_assert_eq(d->hid, 0x0303D041, "EISAID PNP0303");
    cr_assert_eq(d->uid, 0);
    const uint8_t data_want[] = {0x47, 0x01, 0x60, 0x00, 0x60, 0x00, 0x00, 0x01};
    const uint8_t cmd_want[] = {0x47, 0x01, 0x64, 0x00, 0x64, 0x00, 0x00, 0x01};
    const uint8_t *io = res(d, 0, &len);
    cr_assert_eq(len, sizeof(data_want));
    cr_assert_eq(memcmp(io, data_want, len), 0, "IO (Decode16, 0x60, 0x60, 0, 1)");
    io = res(d, 1, &len);
    cr_assert_eq(len, sizeof(cmd_want));
    cr_assert_eq(memcmp(io, cmd_want, len), 0, "IO (Decode16, 0x64, 0x64, 0, 1)");
    const uint8_t *irq = res(d, 2, &len);
    cr_assert_eq(len, 3);
    cr_assert_eq(irq[0], 0x22, "IRQNoFlags");
    cr_assert_eq(le16_get(irq + 1), 1U << X86_I8042_IRQ);
    res_count(d, 3);
}

static void check_devices(unsigned n)
{
    static struct dsdt ds;
    struct x86_acpi_desc desc = ta_desc(2, n, NULL);
    parse(&desc, &ds);
    cr_assert_eq(ds.ndevs, 2 + n, "COM1, KBD0 and %u virtio devices", n);
    check_com1(&ds.devs[0]);
    check_kbd(&ds.devs[1]);

    for (unsigned i = 0; i < n; i++) {
        const struct dev *d = &ds.devs[2 + i];
        char want[16];
        size_t len;
        snprintf(want, sizeof(want), "VR%02X", i);
        cr_assert_str_eq(d->name, want);
        cr_assert_str_eq(d->hid_str, "LNRO0005");
        cr_assert_eq(d->uid, i);
        const uint8_t *m = res(d, 0, &len);
        cr_assert_eq(len, 12);
        cr_assert_eq(m[0], 0x86, "Memory32Fixed");
        cr_assert_eq(m[3], 1, "ReadWrite");
        cr_assert_eq(le32_get(m + 4), ta_virtio[i].base);
        cr_assert_eq(le32_get(m + 8), ta_virtio[i].size);
        const uint8_t *x = res(d, 1, &len);
        cr_assert_eq(len, 9);
        cr_assert_eq(x[0], 0x89, "Extended Interrupt");
        cr_assert_eq(x[3], 0x03, "consumer, edge, active high, exclusive");
        cr_assert_eq(x[4], 1);
        cr_assert_eq(le32_get(x + 5), ta_virtio[i].gsi);
        res_count(d, 2);
    }

    /* And nothing else claims to be a virtio device. */
    const uint8_t *p = ta_find(&t, "DSDT");
    unsigned hits = 0;
    for (size_t off = 0; off + 8 <= le32_get(p + 4); off++)
        hits += memcmp(p + off, "LNRO0005", 8) == 0;
    cr_assert_eq(hits, n);
}

Test(x86_acpi_dsdt, com1_only)
{
    check_devices(0);
}

Test(x86_acpi_dsdt, three_devices)
{
    check_devices(3);
}

Test(x86_acpi_dsdt, sixteen_devices)
{
    check_devices(16);
}

Test(x86_acpi_dsdt, every_free_gsi)
{
    check_devices(TA_MAX_DEVS);
}

/* Word/DWord/QWord address space descriptor: type, flags, then min, max, length. */
static void check_addr(const uint8_t *e, size_t len, uint8_t tag, uint8_t type, uint8_t gflags,
                       uint8_t tflags, uint64_t min, uint64_t max)
{
    unsigned w = tag == 0x88 ? 2 : tag == 0x87 ? 4 : 8;
    cr_assert_eq(e[0], tag);
    cr_assert_eq(len, 6 + 5 * w);
    cr_assert_eq(e[3], type);
    cr_assert_eq(e[4], gflags, "general flags 0x%02x", e[4]);
    cr_assert_eq(e[5], tflags, "type flags 0x%02x", e[5]);
    uint64_t f[5] = {0};
    for (unsigned i = 0; i < 5; i++)
        for (unsigned j = 0; j < w; j++)
            f[i] |= (uint64_t)e[6 + i * w + j] << (8 * j);
    cr_assert_eq(f[0], 0, "granularity");
    cr_assert_eq(f[1], min);
    cr_assert_eq(f[2], max);
    cr_assert_eq(f[3], 0, "translation");
    cr_assert_eq(f[4], max - min + 1, "length");
}

#define PRODUCER_FIXED 0x0C /* MinFixed, MaxFixed, PosDecode, producer */
#define CONSUMER_FIXED 0x0D

Test(x86_acpi_dsdt, pci_host_bridge)
{
    static struct dsdt ds;
    struct x86_acpi_pci p = ta_pci;
    p.segment = 1;
    p.bus_start = 0x20;
    p.bus_end = 0x2f;
    struct x86_acpi_desc desc = ta_desc(2, 3, &p);
    parse(&desc, &ds);
    cr_assert_eq(ds.ndevs, 2 + 3 + 2);

    const struct dev *h = &ds.devs[5];
    size_t len;
    cr_assert_str_eq(h->name, "PCI0");
    cr_assert_eq(h->hid, 0x080AD041, "PNP0A08");
    cr_assert(h->has_cid);
    cr_assert_eq(h->cid, 0x030AD041, "PNP0A03");
    cr_assert(h->has_seg && h->has_bbn);
    cr_assert_eq(h->seg, 1);
    cr_assert_eq(h->bbn, 0x20);
    cr_assert_eq(h->uid, 1);
    const uint8_t *e = res(h, 0, &len);
    check_addr(e, len, 0x88, 2, PRODUCER_FIXED, 0, 0x20, 0x2f);
    e = res(h, 1, &len);
    check_addr(e, len, 0x88, 1, PRODUCER_FIXED, 0x03, p.io_base, p.io_base + p.io_size - 1);
    e = res(h, 2, &len);
    check_addr(e, len, 0x87, 0, PRODUCER_FIXED, 0x01, p.mmio32_base,
               p.mmio32_base + (uint64_t)p.mmio32_size - 1);
    e = res(h, 3, &len);
    check_addr(e, len, 0x8A, 0, PRODUCER_FIXED, 0x01, p.mmio64_base,
               p.mmio64_base + p.mmio64_size - 1);
    res_count(h, 4);

    const struct dev *m = &ds.devs[6];
    cr_assert_str_eq(m->name, "ECAM");
    cr_assert_eq(m->hid, 0x020CD041, "PNP0C02");
    e = res(m, 0, &len);
    check_addr(e, len, 0x8A, 0, CONSUMER_FIXED, 0x01, p.ecam_base + (0x20ULL << 20),
               p.ecam_base + (0x30ULL << 20) - 1);
    res_count(m, 1);
}

Test(x86_acpi_dsdt, pci_without_optional_windows)
{
    static struct dsdt ds;
    struct x86_acpi_pci p = ta_pci;
    p.mmio64_size = 0;
    p.io_size = 0;
    struct x86_acpi_desc desc = ta_desc(1, 0, &p);
    parse(&desc, &ds);
    cr_assert_eq(ds.ndevs, 4);
    const struct dev *h = &ds.devs[2];
    size_t len;
    cr_assert_str_eq(h->name, "PCI0");
    const uint8_t *e = res(h, 0, &len);
    check_addr(e, len, 0x88, 2, PRODUCER_FIXED, 0, 0, 255);
    e = res(h, 1, &len);
    check_addr(e, len, 0x87, 0, PRODUCER_FIXED, 0x01, p.mmio32_base,
               p.mmio32_base + (uint64_t)p.mmio32_size - 1);
    res_count(h, 2);
}
