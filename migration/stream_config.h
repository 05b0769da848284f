/*
 * The CONFIG section (docs/MIGRATION_FORMAT.md §4.3): the machine
 * configuration a snapshot was taken with, as (key, value) text pairs in
 * the VMM's own option syntax ("memory" "256M", "device" "blk,path=...").
 *
 * Why: a Firecracker client restores by starting a bare wisp and asking it
 * to load a snapshot, with no machine options at all, so the state file has
 * to say how to rebuild the machine.  Carrying the option text (not a second
 * binary description) lets the VMM re-parse it with the same parser the
 * command line uses, so a restored VM is configured exactly as a booted
 * one.  This file only frames and bounds the pairs; which keys are allowed
 * and what they mean is the VMM's business (vmm/vm_mig_config.c).
 *
 * The section is optional (not MANDATORY): a wisp that does not know it
 * skips it, and --restore with explicit options ignores it.
 */
#ifndef MIGRATION_STREAM_CONFIG_H
#define MIGRATION_STREAM_CONFIG_H

#include <stdint.h>

#include "migration/stream.h"
#include "migration/stream_sections.h"
#include "migration/vstate.h"

#define MIG_CONFIG_VERSION     1U
#define MIG_CONFIG_MAX_LEN     (64U * 1024) /* section cap */
#define MIG_CONFIG_MAX_ENTRIES 48U          /* a handful of keys and 16 devices, with room */
#define MIG_CONFIG_MAX_VALUE   4096U        /* bytes of one value */

/* One pair: key is a name (1..31 of [A-Za-z0-9._-]), value 1..4096 printable ASCII bytes. */
struct mig_config_entry {
    char key[MIG_NAME_MAX + 1];
    char *value; /* malloc'd, NUL-terminated */
};

/* The pairs in the order they are to be applied. */
struct mig_config {
    uint32_t n;
    struct mig_config_entry e[MIG_CONFIG_MAX_ENTRIES];
};

/* An empty list. */
void mig_config_init(struct mig_config *c);

/* Free every value; the list is empty afterwards. */
void mig_config_free(struct mig_config *c);

/*
 * Append a copy of (key, value).  -EINVAL (key or value outside the rules
 * above), -ENOSPC (MIG_CONFIG_MAX_ENTRIES reached) or -ENOMEM.
 */
int mig_config_add(struct mig_config *c, const char *key, const char *value) __must_check;

/*
 * Encode `c` as a CONFIG payload into `o`:
 *   le32 n | n x (u8 klen, key, le16 vlen, value)
 * -EINVAL when an entry breaks the rules, -E2BIG past MIG_CONFIG_MAX_LEN.
 */
int mig_config_encode(const struct mig_config *c, struct vstate_out *o) __must_check;

/*
 * Decode and validate a CONFIG payload (section id MIG_SEC_CONFIG) into
 * `c` (initialised, empty): the count bounded before the loop, every key
 * and value checked, no trailing bytes.  -EBADMSG (with one line in err)
 * or -ENOMEM; on failure `c` is left empty.
 */
int mig_config_decode(const struct mig_section *s, struct mig_config *c,
                      struct errbuf *err) __must_check;

/* Encode `c` and write it as an optional CONFIG section.  0 or -errno with err set. */
int mig_config_write(struct mig_stream_writer *w, const struct mig_config *c,
                     struct errbuf *err) __must_check;

#endif /* MIGRATION_STREAM_CONFIG_H */
