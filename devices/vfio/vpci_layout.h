/*
 * vPCI layout files (docs/VPCI_LAYOUT.md): a text file that fixes what a
 * guest sees of a passed-through function's config space (IDs, class,
 * BARs, ROM, interrupts, the capability chain at given offsets with a
 * per-field policy, hidden ranges), independent of the physical device.
 *
 * Why a module of its own: the file comes from the operator but is still
 * input, so it is parsed strictly and bounded here, once, into a plain
 * struct that every later step (applying it in vpci_cfg, deriving one from
 * a device, the migration stream) can trust: every offset, length, size
 * and count in a struct vpci_layout that vpci_layout_parse() returned has
 * been checked against the rules of docs/VPCI_LAYOUT.md.
 *
 * Thread-safety: none needed; a layout is parsed at startup and then only
 * read.
 */
#ifndef DEVICES_VFIO_VPCI_LAYOUT_H
#define DEVICES_VFIO_VPCI_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/pci/pci.h"
#include "vmm/error.h"

#define VPCI_LAYOUT_VERSION    1U
#define VPCI_LAYOUT_MAX_FILE   65536U
#define VPCI_LAYOUT_MAX_LINE   1023U
#define VPCI_LAYOUT_MAX_CAPS   48U
#define VPCI_LAYOUT_MAX_FIELDS 64U
#define VPCI_LAYOUT_MAX_HIDDEN 16U
#define VPCI_LAYOUT_MAX_MMAP   8U
#define VPCI_LAYOUT_CFG_END    0x100U /* the capability chain lives in 0x40..0xff */
#define VPCI_LAYOUT_MSIX_MAX   2048U
#define VPCI_LAYOUT_MSI_MAX    32U

/* Where a capability's bytes come from (docs/VPCI_LAYOUT.md). */
enum vpci_layout_policy {
    VPCI_LAYOUT_PASSTHROUGH = 1, /* the device's capability of the same id */
    VPCI_LAYOUT_EMULATED,        /* wisp's MSI / MSI-X */
    VPCI_LAYOUT_SYNTHESISED,     /* the file's data= bytes */
};

/* An mmap area of a BAR: [off, off + len), page-aligned, inside the BAR. */
struct vpci_layout_area {
    uint64_t off, len;
};

struct vpci_layout_bar {
    enum pci_bar_type type; /* PCI_BAR_NONE: absent (also the upper half of a MEM64) */
    uint64_t size;
    bool prefetchable;
    unsigned nmmap; /* sorted by offset */
    struct vpci_layout_area mmap[VPCI_LAYOUT_MAX_MMAP];
};

struct vpci_layout_cap {
    uint8_t off, id, len; /* len includes id and next; off + len <= 0x100 */
    enum vpci_layout_policy policy;
    /*
     * The capability's bytes from its start: synthesised ones wholly,
     * passthrough ones only where a fixed field says so (fixed[] marks
     * them).  data[0], data[1] (id, next) are never used.
     */
    uint8_t data[VPCI_LAYOUT_CFG_END];
    bool fixed[VPCI_LAYOUT_CFG_END];
    unsigned first_field, nfields; /* this capability's fields in l->fields[] */
    /* emulated MSI / MSI-X */
    unsigned vectors;
    bool msi_64bit, msi_maskable;
    uint8_t table_bir, pba_bir;
    uint32_t table_off, pba_off;
};

/* A fixed field: bytes [rel, rel + len) of caps[cap], from caps[cap].data. */
struct vpci_layout_field {
    uint8_t cap, rel, len;
};

/* A hidden range [off, off + len) of 0x40..0xff. */
struct vpci_layout_range {
    uint8_t off;
    uint16_t len;
};

struct vpci_layout {
    uint16_t vendor, device, subsys_vendor, subsys_id;
    uint8_t revision;
    uint32_t class_code;
    uint8_t intx_pin;  /* 0: none, 1..4 */
    uint64_t rom_size; /* 0: absent */
    struct vpci_layout_bar bars[PCI_NUM_BARS];
    unsigned ncaps; /* chain order */
    struct vpci_layout_cap caps[VPCI_LAYOUT_MAX_CAPS];
    unsigned nfields; /* grouped by capability, sorted by rel within one */
    struct vpci_layout_field fields[VPCI_LAYOUT_MAX_FIELDS];
    unsigned nhidden; /* sorted by offset */
    struct vpci_layout_range hidden[VPCI_LAYOUT_MAX_HIDDEN];
};

/*
 * Parse `len` bytes of `text` (need not be NUL-terminated) into `*out`.
 * `name` (the file name) prefixes every error: "vpci layout NAME:LINE:
 * what is wrong", or "vpci layout NAME: missing 'X' directive".  Returns
 * 0, or -EINVAL with the one-line reason in `err` (exit code
 * WISP_EXIT_USAGE); `*out` is unspecified after an error.
 */
int vpci_layout_parse(const char *text, size_t len, const char *name, struct vpci_layout *out,
                      struct errbuf *err) __must_check;

/*
 * Read the regular file `path` (at most VPCI_LAYOUT_MAX_FILE bytes) and
 * parse it.  Returns 0, -EINVAL (bad file: reason in `err`, exit code
 * WISP_EXIT_USAGE), or the -errno of open/read with `err` set the same way.
 */
int vpci_layout_load(const char *path, struct vpci_layout *out, struct errbuf *err) __must_check;

/*
 * Write `l`'s canonical form (docs/VPCI_LAYOUT.md) into `buf` of `cap`
 * bytes, NUL-terminated.  Returns its length without the NUL, or -ENOSPC
 * if it does not fit (a full layout needs well under VPCI_LAYOUT_MAX_FILE
 * bytes).  `l` must come from vpci_layout_parse() or obey its rules.
 */
int vpci_layout_write(const struct vpci_layout *l, char *buf, size_t cap) __must_check;

/*
 * The layout's digest: 64-bit FNV-1a of its canonical form.  A name for
 * logs and quick comparisons, not a security check.  0 if the canonical
 * form does not fit VPCI_LAYOUT_MAX_FILE (cannot happen for a parsed one).
 */
uint64_t vpci_layout_digest(const struct vpci_layout *l);

/* The same hash over `len` bytes of canonical text (a layout carried in a
 * migration stream, docs/VPCI_LAYOUT.md "Migration"). */
uint64_t vpci_layout_digest_text(const char *text, size_t len);

/* The name of capability id `id` in layout files ("pm", "msix"...), or NULL. */
const char *vpci_layout_cap_name(uint8_t id);

#endif /* DEVICES_VFIO_VPCI_LAYOUT_H */
