/*
 * Internals of the layout parser shared by its two files: vpci_layout.c
 * (lines, tokens, numbers, header directives and BARs) and
 * vpci_layout_cap.c (the capability chain, fields, hidden ranges and the
 * whole-file checks).  Not for use outside the parser.
 */
#ifndef DEVICES_VFIO_VPCI_LAYOUT_INTERNAL_H
#define DEVICES_VFIO_VPCI_LAYOUT_INTERNAL_H

#include "devices/vfio/vpci_layout.h"
#include "vmm/util.h"

#define LP_MAX_TOK 16U
#define LP_PAGE    4096U

/* Directives that must appear exactly once (bits of vpci_layout_parser.seen). */
enum {
    LP_HDR = 1U << 0,
    LP_ID = 1U << 1,
    LP_SUBSYS = 1U << 2,
    LP_REV = 1U << 3,
    LP_CLASS = 1U << 4,
    LP_INTX = 1U << 5,
    LP_ROM = 1U << 6,
};

/* The state of one parse; tok[] points into the current line's copy. */
struct vpci_layout_parser {
    const char *name;
    unsigned line;
    struct errbuf *err;
    struct vpci_layout *l;
    unsigned seen;
    unsigned bars_declared; /* bit per BAR index */
    int field_cap;          /* capability `field` lines may refine, or -1 */
    unsigned cap_line[VPCI_LAYOUT_MAX_CAPS];
    char *tok[LP_MAX_TOK];
    unsigned ntok;
};

/* Record "vpci layout NAME:LINE: msg" (or "NAME: msg" when line is 0) in
 * p->err with WISP_EXIT_USAGE; returns -EINVAL. */
int vpci_layout_err(struct vpci_layout_parser *p, const char *fmt, ...) __printf(2, 3);

/* A decimal or 0x-hex number of at most `max` into *v; false if it is not
 * one (empty, other characters, overflow, above max). */
bool vpci_layout_num(const char *s, uint64_t max, uint64_t *v);

/* Token `i` as a number in [min, max] into *v; else an error naming `what`. */
int vpci_layout_tok_num(struct vpci_layout_parser *p, unsigned i, const char *what, uint64_t min,
                        uint64_t max, uint64_t *v);

/* Exactly 2*n hex digits of `s` into out[n]; false otherwise. */
bool vpci_layout_hex(const char *s, uint8_t *out, size_t n);

/* If `tok` is "key=value", the value; else NULL. */
const char *vpci_layout_kv(const char *tok, const char *key);

/* The directive has exactly n - 1 arguments; else an error. */
int vpci_layout_argc(struct vpci_layout_parser *p, unsigned n);

/* The `cap`, `field` and `hidden` directives (vpci_layout_cap.c). */
int vpci_layout_cap_dir(struct vpci_layout_parser *p);
int vpci_layout_field_dir(struct vpci_layout_parser *p);
int vpci_layout_hidden_dir(struct vpci_layout_parser *p);

/* The checks that need the whole file: required directives, MSI-X table
 * and PBA inside memory BARs and off the mmap pages. */
int vpci_layout_finish(struct vpci_layout_parser *p);

#endif /* DEVICES_VFIO_VPCI_LAYOUT_INTERNAL_H */
