/*
 * Unit tests for devices/vfio/vpci_layout: the vPCI layout file parser
 * (docs/VPCI_LAYOUT.md).  A full layout parses into the expected struct;
 * its canonical form is stable (comments, spacing, number bases and
 * directive order do not change it; parse(write(x)) writes x again) and
 * the digest follows it; every class of file error is refused with one
 * line naming file:line and what is wrong; the file loader bounds its input.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/vfio/vpci_cfg.h"
#include "devices/vfio/vpci_layout.h"

/* Lines 1-9; a test's extra lines start at line 10. */
#define BASE                                                                                       \
    "wisp-vpci-layout 1\n"                                                                         \
    "id 0x1234 0x11e8\n"                                                                           \
    "subsystem 0x1af4 0x1100\n"                                                                    \
    "revision 0x10\n"                                                                              \
    "class 0x00ff00\n"                                                                             \
    "intx 1\n"                                                                                     \
    "rom absent\n"                                                                                 \
    "bar 0 mem32 0x100000 mmap=0x0+0x1000\n"                                                       \
    "bar 2 mem64 0x4000 prefetchable\n"

static const char full[] = "# an edu-like function\n"
                           "wisp-vpci-layout 1\n"
                           "id 0x1234 0x11e8\n"
                           "subsystem 0x1af4 0x1100  # changed\n"
                           "revision 0x10\n"
                           "class 0x00ff00\n"
                           "intx 1\n"
                           "rom 0x10000\n"
                           "\n"
                           "bar 2 mem64 0x4000 prefetchable\n"
                           "bar 0 mem32 0x100000 mmap=0x2000+0x1000 mmap=0x0+0x1000\n"
                           "bar 4 io 0x20\n"
                           "cap 0x40 msi 0x18 emulated vectors=4 64bit maskable\n"
                           "cap 0x70 msix 12 emulated vectors=8 table=2:0x0 pba=2:0x800\n"
                           "cap 0x80 pcie 0x3c passthrough\n"
                           "field 0x0c 4 fixed 11000000\n"
                           "field 0x02 1 fixed 02\n"
                           "cap 0xc0 pm 8 passthrough\n"
                           "cap 0xc8 0x1b 8 synthesised data=0102030405AB\n"
                           "hidden 0xe0 0x20\n"
                           "hidden 0xd0 0x10\n";

static struct vpci_layout L;
static struct errbuf err;

static int parse(const char *text)
{
    memset(&err, 0, sizeof(err));
    return vpci_layout_parse(text, strlen(text), "t.layout", &L, &err);
}

/* BASE + extra must fail with a message starting `where` and holding `what`. */
static void refused(const char *text, const char *where, const char *what)
{
    int rc = parse(text);
    cr_assert_eq(rc, -EINVAL, "accepted:\n%s", text);
    cr_expect_eq(err.exit_code, WISP_EXIT_USAGE);
    cr_expect(strncmp(err.msg, where, strlen(where)) == 0, "'%s' does not start with '%s'", err.msg,
              where);
    cr_expect(strstr(err.msg, what) != NULL, "'%s' does not say '%s'", err.msg, what);
    cr_expect(strchr(err.msg, '\n') == NULL, "more than one line: %s", err.msg);
}

/* BASE + extra refused at line `line`. */
static void refused_at(unsigned line, const char *extra, const char *what)
{
    char buf[4096], where[64];
    snprintf(buf, sizeof(buf), "%s%s", BASE, extra);
    snprintf(where, sizeof(where), "vpci layout t.layout:%u: ", line);
    refused(buf, where, what);
}

/* BASE + extra refused at extra's last line. */
static void refused10(const char *extra, const char *what)
{
    unsigned line = 9;
    for (const char *c = extra; *c; c++)
        line += *c == '\n';
    refused_at(line, extra, what);
}

Test(vpci_layout, full_layout_parses)
{
    cr_assert_eq(parse(full), 0, "%s", err.msg);
    cr_expect_eq(L.vendor, 0x1234);
    cr_expect_eq(L.device, 0x11e8);
    cr_expect_eq(L.subsys_vendor, 0x1af4);
    cr_expect_eq(L.subsys_id, 0x1100);
    cr_expect_eq(L.revision, 0x10);
    cr_expect_eq(L.class_code, 0xff00);
    cr_expect_eq(L.intx_pin, 1);
    cr_expect_eq(L.rom_size, 0x10000);
    cr_expect_eq(L.bars[0].type, PCI_BAR_MEM32);
    cr_expect_eq(L.bars[0].size, 0x100000);
    cr_expect_eq(L.bars[0].nmmap, 2);
    cr_expect_eq(L.bars[0].mmap[0].off, 0, "mmap areas sorted");
    cr_expect_eq(L.bars[0].mmap[1].off, 0x2000);
    cr_expect_eq(L.bars[1].type, PCI_BAR_NONE);
    cr_expect_eq(L.bars[2].type, PCI_BAR_MEM64);
    cr_expect(L.bars[2].prefetchable);
    cr_expect_eq(L.bars[3].type, PCI_BAR_NONE);
    cr_expect_eq(L.bars[4].type, PCI_BAR_IO);
    cr_assert_eq(L.ncaps, 5);
    cr_expect_eq(L.caps[0].id, VPCI_CAP_ID_MSI);
    cr_expect_eq(L.caps[0].vectors, 4);
    cr_expect(L.caps[0].msi_64bit && L.caps[0].msi_maskable);
    cr_expect_eq(L.caps[1].id, VPCI_CAP_ID_MSIX);
    cr_expect_eq(L.caps[1].table_bir, 2);
    cr_expect_eq(L.caps[1].pba_off, 0x800);
    cr_expect_eq(L.caps[2].policy, VPCI_LAYOUT_PASSTHROUGH);
    cr_expect_eq(L.caps[2].nfields, 2);
    cr_assert_eq(L.nfields, 2);
    cr_expect_eq(L.fields[0].rel, 2, "fields sorted by offset");
    cr_expect_eq(L.fields[1].rel, 0x0c);
    cr_expect_eq(L.caps[2].data[0x0c], 0x11);
    cr_expect(L.caps[2].fixed[0x0f] && !L.caps[2].fixed[0x10]);
    cr_expect_eq(L.caps[4].id, 0x1b);
    cr_expect_eq(L.caps[4].policy, VPCI_LAYOUT_SYNTHESISED);
    cr_expect_eq(L.caps[4].data[2], 0x01);
    cr_expect_eq(L.caps[4].data[7], 0xab);
    cr_assert_eq(L.nhidden, 2);
    cr_expect_eq(L.hidden[0].off, 0xd0, "hidden ranges sorted");
}

Test(vpci_layout, canonical_form_is_stable)
{
    static char a[VPCI_LAYOUT_MAX_FILE], b[VPCI_LAYOUT_MAX_FILE];
    cr_assert_eq(parse(full), 0, "%s", err.msg);
    int n = vpci_layout_write(&L, a, sizeof(a));
    cr_assert_gt(n, 0);
    cr_expect(strstr(a, "bar 0 mem32 0x100000 mmap=0x0+0x1000 mmap=0x2000+0x1000\n") != NULL, "%s",
              a);
    cr_expect(strstr(a, "cap 0x80 pcie 0x3c passthrough\nfield 0x02 1 fixed 02\n"
                        "field 0x0c 4 fixed 11000000\n") != NULL,
              "%s", a);
    cr_expect(strstr(a, "cap 0xc8 0x1b 0x08 synthesised data=0102030405ab\n") != NULL, "%s", a);
    cr_expect(strstr(a, "#") == NULL);
    uint64_t d = vpci_layout_digest(&L);
    cr_assert_eq(parse(a), 0, "canonical form does not parse: %s\n%s", err.msg, a);
    cr_assert_eq(vpci_layout_write(&L, b, sizeof(b)), n);
    cr_expect_str_eq(a, b);
    cr_expect_eq(vpci_layout_digest(&L), d);
    cr_expect_neq(d, 0);

    /* other spellings of the same layout: same canonical form */
    char alt[4096];
    snprintf(alt, sizeof(alt), "%s",
             "\t wisp-vpci-layout   0x1\r\nrom 65536\nintx 0x1\nclass 65280\nrevision 16\n"
             "subsystem 6900 4352\nid 4660 4584\n"
             "bar 4 io 32\nbar 0 mem32 1048576 mmap=8192+4096 mmap=0+4096\n"
             "bar 2 mem64 16384 prefetchable\n"
             "cap 64 msi 24 emulated maskable 64bit vectors=4\n"
             "cap 0x70 0x11 0xc emulated pba=2:2048 table=2:0 vectors=8\n"
             "cap 0x80 0x10 60 passthrough\nfield 12 4 fixed 11000000\nfield 2 1 fixed 02\n"
             "cap 0xc0 1 8 passthrough\ncap 0xc8 27 8 synthesised data=0102030405ab\n"
             "hidden 224 32\nhidden 208 16");
    cr_assert_eq(parse(alt), 0, "%s", err.msg);
    cr_assert_eq(vpci_layout_write(&L, b, sizeof(b)), n);
    cr_expect_str_eq(a, b);

    /* any change shows in the digest */
    char *s = strstr(a, "0x1100");
    cr_assert(s);
    memcpy(s, "0x1101", 6);
    cr_assert_eq(parse(a), 0, "%s", err.msg);
    cr_expect_neq(vpci_layout_digest(&L), d);

    cr_assert_eq(parse(full), 0);
    cr_expect_eq(vpci_layout_write(&L, b, 40), -ENOSPC, "a short buffer is refused");
}

Test(vpci_layout, header_and_syntax_errors)
{
    refused("id 1 2\n", "vpci layout t.layout:1: ", "first directive must be 'wisp-vpci-layout 1'");
    refused("# c\n\nwisp-vpci-layout 2\n", "vpci layout t.layout:3: ", "version '2'");
    refused10("wisp-vpci-layout 1\n", "appears twice");
    refused10("frobnicate 1\n", "unknown directive 'frobnicate'");
    refused10("revision 1\n", "'revision' appears twice");
    refused10("cap 0x40 pm 8 passthrough a b c d e f g h i j k l\n", "more than 16 words");
    refused10("hidden\xc3\xa9 0x40 4\n", "byte 0xc3 is not printable ASCII");
    static const char nul[] = BASE "hidden 0x40\0 4\n";
    memset(&err, 0, sizeof(err));
    cr_expect_eq(vpci_layout_parse(nul, sizeof(nul) - 1, "t.layout", &L, &err), -EINVAL);
    cr_expect_str_eq(err.msg, "vpci layout t.layout:10: byte 0x00 is not printable ASCII");
    char line[1100];
    memset(line, ' ', sizeof(line));
    memcpy(line + sizeof(line) - 12, "hidden 64 4\n", 12);
    line[sizeof(line) - 1] = '\0';
    refused_at(10, line, "line longer than 1023");
    /* missing directives name the file, not a line */
    refused("wisp-vpci-layout 1\nid 1 2\nsubsystem 0 0\nrevision 0\nclass 0\nintx 0\n",
            "vpci layout t.layout: ", "missing 'rom' directive");
    refused("", "vpci layout t.layout: ", "missing 'wisp-vpci-layout'");
}

/* A text of BASE with its line `n` (1-based) replaced by `repl`. */
static void refused_line(unsigned n, const char *repl, const char *what)
{
    char buf[4096], where[64];
    const char *s = BASE;
    size_t len = 0;
    for (unsigned i = 1; *s; i++) {
        const char *nl = strchr(s, '\n');
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%.*s\n",
                                i == n ? (int)strlen(repl) : (int)(nl - s), i == n ? repl : s);
        s = nl + 1;
    }
    snprintf(where, sizeof(where), "vpci layout t.layout:%u: ", n);
    refused(buf, where, what);
}

Test(vpci_layout, number_and_scalar_errors)
{
    refused_line(2, "id 0x1234", "'id' takes 2 arguments");
    refused_line(2, "id 0x10000 1", "id: '0x10000' is not a number from 0x0 to 0xffff");
    refused_line(2, "id 0xffff 1", "vendor 0xffff");
    refused_line(2, "id -1 1", "is not a number");
    refused_line(2, "id 0x 1", "is not a number");
    refused_line(2, "id 12a 1", "is not a number");
    refused_line(2, "id 99999999999999999999999 1", "is not a number");
    refused_line(4, "revision 0x100", "revision: '0x100'");
    refused_line(5, "class 0x1000000", "class: '0x1000000'");
    refused_line(6, "intx 5", "intx: '5'");
    refused_line(7, "rom 0x400", "rom: '0x400'");
    refused_line(7, "rom 0x3000", "rom: size 0x3000 is not a power of two");
    refused_line(7, "rom 0x100000000", "rom: '0x100000000'");
}

Test(vpci_layout, bar_errors)
{
    refused10("bar 6 mem32 0x1000\n", "bar index: '6'");
    refused10("bar 1 mem16 0x1000\n", "type 'mem16' is not io, mem32 or mem64");
    refused10("bar 0 mem32 0x1000\n", "bar 0 appears twice");
    refused10("bar 3 mem32 0x1000\n", "bar 3 is the upper half of mem64 bar 2");
    refused10("bar 5 mem64 0x1000\n", "a mem64 BAR needs bar 6 free");
    refused10("bar 1 mem32 0x3000\n", "size 0x3000 is not a power of two");
    refused10("bar 1 mem32 8\n", "bar size: '8'");
    refused10("bar 1 mem32 0x80000000\n", "bar size: '0x80000000'");
    refused10("bar 1 io 0x200\n", "bar size: '0x200'");
    refused10("bar 1 io 0x100 prefetchable\n", "'prefetchable' is not allowed here");
    refused10("bar 1 mem32 0x4000 prefetchable prefetchable\n", "is not allowed here");
    refused10("bar 1 mem32 0x4000 wc\n", "'wc' is not allowed here");
    refused10("bar 1 mem32\n", "'bar' needs INDEX TYPE SIZE");
    refused10("bar 1 io 0x100 mmap=0x0+0x1000\n", "an io BAR cannot be mapped");
    refused10("bar 1 mem32 0x4000 mmap=0x800+0x1000\n", "is not whole 4 KiB pages");
    refused10("bar 1 mem32 0x4000 mmap=0x0+0x0\n", "is not whole 4 KiB pages");
    refused10("bar 1 mem32 0x4000 mmap=0x3000+0x2000\n", "is outside the BAR");
    refused10("bar 1 mem32 0x4000 mmap=0x1000+0xfffffffffffff000\n", "is outside the BAR");
    refused10("bar 1 mem32 0x4000 mmap=0x0+0x2000 mmap=0x1000+0x1000\n", "overlaps another");
    refused10("bar 1 mem32 0x4000 mmap=0x1000\n", "mmap '0x1000' is not OFFSET+LENGTH");
    refused10("bar 1 mem32 0x10000 mmap=0x0+0x1000 mmap=0x1000+0x1000 mmap=0x2000+0x1000 "
              "mmap=0x3000+0x1000 mmap=0x4000+0x1000 mmap=0x5000+0x1000 mmap=0x6000+0x1000 "
              "mmap=0x7000+0x1000 mmap=0x8000+0x1000\n",
              "more than 8 mmap areas");
}

Test(vpci_layout, cap_errors)
{
    refused10("cap 0x3c pm 8 passthrough\n", "cap offset: '0x3c'");
    refused10("cap 0x100 pm 8 passthrough\n", "cap offset: '0x100'");
    refused10("cap 0x42 pm 8 passthrough\n", "cap offset 0x42 is not a multiple of 4");
    refused10("cap 0xf8 pm 0xc passthrough\n", "cap length: '0xc' is not a number from 0x2 to 0x8");
    refused10("cap 0x40 pm 1 passthrough\n", "cap length: '1'");
    refused10("cap 0x40 0 8 passthrough\n", "cap id: '0'");
    refused10("cap 0x40 foo 8 passthrough\n", "cap id: 'foo'");
    refused10("cap 0x40 pm 8\n", "'cap' needs OFFSET ID LENGTH POLICY");
    refused10("cap 0x40 pm 8 mirrored\n", "policy 'mirrored'");
    refused10("cap 0x40 pm 6 passthrough\ncap 0x44 pcie 0x14 passthrough\n",
              "cap 0x44 overlaps cap 0x40 (line 10)"); /* dword-rounded */
    refused10("cap 0x40 pm 8 passthrough\ncap 0x60 pm 8 passthrough\n",
              "cap id 0x01 appears twice (line 10)");
    refused10("hidden 0x60 1\ncap 0x5c pm 8 passthrough\n", "cap 0x5c overlaps hidden 0x60+0x1");
    refused10("cap 0x40 msi 0x0a passthrough vectors=1\n", "msi and msix must be emulated");
    refused10("cap 0x40 pm 8 emulated\n", "msi and msix must be emulated, and only they");
    refused10("cap 0x40 pm 8 passthrough extra\n", "'extra' is not allowed here");
    refused10("cap 0x40 0x1b 8 synthesised\n", "synthesised needs data= with 6 bytes");
    refused10("cap 0x40 0x1b 8 synthesised data=0102\n", "synthesised needs data= with 6 bytes");
    refused10("cap 0x40 0x1b 8 synthesised data=01020304050g\n", "synthesised needs data=");
    /* the chain: 48 dword capabilities fill 0x40-0xff; nothing more fits */
    char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "%s", BASE);
    for (unsigned i = 0; i < 48; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "cap 0x%x 0x%x 4 synthesised data=0000\n",
                              0x40 + 4 * i, 0x20 + i);
    cr_expect_eq(parse(buf), 0, "%s", err.msg);
    cr_expect_eq(L.ncaps, 48);
    snprintf(buf + n, sizeof(buf) - n, "hidden 0xff 1\n");
    refused(buf, "vpci layout t.layout:58: ", "overlaps cap 0xfc");
}

Test(vpci_layout, irq_cap_errors)
{
    refused10("cap 0x40 msi 0x0a emulated\n", "msi: vectors=N missing");
    refused10("cap 0x40 msi 0x0a emulated vectors=3\n", "vectors '3' is not 1, 2, 4");
    refused10("cap 0x40 msi 0x0a emulated vectors=64\n", "vectors '64'");
    refused10("cap 0x40 msi 0x0a emulated vectors=1 vectors=2\n", "'vectors=2' is not allowed");
    refused10("cap 0x40 msi 0x0a emulated vectors=1 64bit\n", "length 0xa, this form is 0xe");
    refused10("cap 0x40 msi 0x18 emulated vectors=1 64bit\n", "length 0x18, this form is 0xe");
    refused10("cap 0x40 msix 12 emulated vectors=8 table=0:0x2000\n",
              "needs vectors=N table=BAR:OFFSET pba=BAR:OFFSET");
    refused10("cap 0x40 msix 12 emulated vectors=0 table=0:0x2000 pba=0:0x3000\n",
              "vectors '0' is not 1 to 2048");
    refused10("cap 0x40 msix 12 emulated vectors=4096 table=0:0x2000 pba=0:0x3000\n",
              "vectors '4096'");
    refused10("cap 0x40 msix 12 emulated vectors=8 table=6:0x2000 pba=0:0x3000\n",
              "table '6:0x2000' is not BAR:OFFSET");
    refused10("cap 0x40 msix 12 emulated vectors=8 table=0:0x2004 pba=0:0x3000\n",
              "table offset 0x2004 is not a multiple of 8");
    refused10("cap 0x40 msix 16 emulated vectors=8 table=0:0x2000 pba=0:0x3000\n",
              "length 0x10, the capability is 0xc long");
    refused10("cap 0x40 msix 12 emulated vectors=8 table=1:0x0 pba=0:0x3000\n",
              "table is in bar 1, which is not a memory BAR");
    refused10("cap 0x40 msix 12 emulated vectors=8 table=2:0x3f90 pba=0:0x3000\n",
              "table 0x3f90+0x80 does not fit bar 2 (0x4000)");
    refused10("cap 0x40 msix 12 emulated vectors=8 table=0:0x800 pba=0:0x3000\n",
              "table shares a page with mmap area 0x0+0x1000 of bar 0");
    refused10("cap 0x40 msix 12 emulated vectors=8 table=0:0x2000 pba=0:0x2040\n",
              "table and pba overlap");
    /* these are whole-file checks, reported at the capability's line */
    refused_at(10, "cap 0x40 msix 12 emulated vectors=8 table=1:0x0 pba=0:0x3000\nhidden 0x50 4\n",
               "not a memory BAR");
}

Test(vpci_layout, field_and_hidden_errors)
{
    refused10("field 2 1 fixed 00\n", "'field' must follow a passthrough cap");
    refused10("cap 0x40 0x1b 8 synthesised data=000000000000\nfield 2 1 fixed 00\n",
              "vpci layout t.layout:11: 'field' must follow");
    refused10("cap 0x40 pcie 0x3c passthrough\nhidden 0x80 4\nfield 0xc 1 fixed 00\n",
              "vpci layout t.layout:12: 'field' must follow");
    refused10("cap 0x40 0x1b 8 passthrough\nfield 1 1 fixed 00\n", "field offset: '1'");
    refused10("cap 0x40 0x1b 8 passthrough\nfield 6 3 fixed 000000\n", "field length: '3'");
    refused10("cap 0x40 0x1b 8 passthrough\nfield 2 2 constant 0000\n", "policy 'constant'");
    refused10("cap 0x40 0x1b 8 passthrough\nfield 2 2 fixed 00\n", "'00' is not 2 bytes in hex");
    refused10("cap 0x40 0x1b 8 passthrough\nfield 2 2 fixed 0000\nfield 3 1 fixed 00\n",
              "overlaps another field");
    refused10("cap 0x40 pm 8 passthrough\nfield 6 2 fixed 0000\nfield 4 1 fixed 00\n",
              "touches byte 0x4, which wisp emulates");
    refused10("cap 0x40 pcie 0x3c passthrough\nfield 0x10 1 fixed 00\n", "touches byte 0x10");
    refused10("cap 0x40 pcie 0x3c passthrough\nfield 0x26 4 fixed 00000000\n", "touches byte 0x28");
    refused10("cap 0x40 pcie 0x3c passthrough\nfield 2 2 fixed 0000 x\n",
              "'field' takes 4 arguments");
    refused10("hidden 0x3f 1\n", "hidden offset: '0x3f'");
    refused10("hidden 0xf0 0x11\n", "hidden length: '0x11'");
    refused10("hidden 0x80 0\n", "hidden length: '0'");
    refused10("hidden 0x80 4\nhidden 0x83 1\n", "hidden 0x83+0x1 overlaps hidden 0x80+0x4");
    refused10("cap 0x40 pm 6 passthrough\nhidden 0x46 1\n", "overlaps cap 0x40 (line 10)");
    char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "%s", BASE);
    for (unsigned i = 0; i < 17; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "hidden 0x%x 1\n", 0x40 + i);
    refused(buf, "vpci layout t.layout:26: ", "more than 16 hidden ranges");
    /* 64 fields: allowed; the 65th is refused */
    n = (size_t)snprintf(buf, sizeof(buf), "%s", BASE);
    for (unsigned c = 0; c < 2; c++) {
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "cap 0x%x 0x%x 0x40 passthrough\n",
                              0x40 + 0x40 * c, 0x20 + c);
        for (unsigned i = 0; i < 32 + c; i++)
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "field %u 1 fixed 00\n", 2 + i);
    }
    refused(buf, "vpci layout t.layout:76: ", "more than 64 fields");
}

Test(vpci_layout, load_bounds_the_file)
{
    char path[] = "/tmp/vpci_layout_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, full, strlen(full)), (ssize_t)strlen(full));
    memset(&err, 0, sizeof(err));
    cr_expect_eq(vpci_layout_load(path, &L, &err), 0, "%s", err.msg);
    cr_expect_eq(L.ncaps, 5);
    /* grown past the limit with comments: refused */
    static char pad[VPCI_LAYOUT_MAX_FILE];
    for (size_t i = 0; i < sizeof(pad); i += 64) {
        memset(pad + i, ' ', 63);
        pad[i] = '#';
        pad[i + 63] = '\n';
    }
    cr_assert_eq(write(fd, pad, sizeof(pad)), (ssize_t)sizeof(pad));
    close(fd);
    memset(&err, 0, sizeof(err));
    cr_expect_eq(vpci_layout_load(path, &L, &err), -EINVAL);
    cr_expect(strstr(err.msg, "larger than 65536 bytes") != NULL, "%s", err.msg);
    unlink(path);
    memset(&err, 0, sizeof(err));
    cr_expect_eq(vpci_layout_load(path, &L, &err), -ENOENT);
    cr_expect(strstr(err.msg, "cannot open") != NULL, "%s", err.msg);
    cr_expect_eq(err.exit_code, WISP_EXIT_USAGE);
    memset(&err, 0, sizeof(err));
    cr_expect_eq(vpci_layout_load("/tmp", &L, &err), -EINVAL);
    cr_expect(strstr(err.msg, "not a regular file") != NULL, "%s", err.msg);
}
