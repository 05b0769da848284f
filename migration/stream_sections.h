/*
 * The migration stream's own sections (docs/MIGRATION_FORMAT.md §4): MACHINE,
 * the description of the VM a destination checks before it touches anything,
 * and RAM, guest memory pages.
 *
 * Why here and not in the VM core: the destination must refuse a stream it
 * cannot run (other memory layout, vCPU count, CPU template, device set or
 * data plane) with a message naming the difference, before it has created a
 * device or written a page; and it must never let a stream write outside its
 * RAM.  Both rules are about bytes from another host, so they live next to
 * the format, and the core hands them plain descriptions and a callback
 * (this file knows nothing about gmem).
 */
#ifndef MIGRATION_STREAM_SECTIONS_H
#define MIGRATION_STREAM_SECTIONS_H

#include "migration/stream.h"
#include "migration/vstate.h"

/* ---- Memory layout ---- */

#define MIG_PAGE_SIZE      4096U
#define MIG_MAX_MEM_RANGES 16U

/* One guest RAM range: [gpa, gpa + size), both multiples of MIG_PAGE_SIZE. */
struct mig_mem_range {
    uint64_t gpa;
    uint64_t size;
};

struct mig_mem_layout {
    uint32_t n; /* <= MIG_MAX_MEM_RANGES */
    struct mig_mem_range r[MIG_MAX_MEM_RANGES];
};

/*
 * A layout is valid when it has 1..MIG_MAX_MEM_RANGES ranges, each non-empty,
 * page aligned, not wrapping, in ascending order and not overlapping.
 * 0 or -EINVAL, with the reason in `why` (may be NULL).
 */
int mig_mem_layout_check(const struct mig_mem_layout *l, char *why, size_t whylen);

/* ---- RAM sections ---- */

/*
 * RAM section payload: records until the payload ends, each
 *   le64 gpa | le32 npages | le32 flags | (no ZERO flag) npages * 4096 bytes
 * ZERO: the pages read as zero and no data follows.
 */
#define MIG_RAM_VERSION   1U
#define MIG_RAM_REC_HDR   16U
#define MIG_RAM_F_ZERO    0x1U
#define MIG_RAM_F_KNOWN   MIG_RAM_F_ZERO
#define MIG_RAM_MAX_PAGES (MIG_RAM_MAX_LEN / MIG_PAGE_SIZE) /* data pages per section */

/*
 * Where accepted pages go.  `data` is len bytes, or NULL for zero pages;
 * [gpa, gpa + len) has been checked to lie in one RAM range of the layout.
 * Return 0 or -errno (which ends the load).
 */
typedef int (*mig_ram_sink_fn)(void *ctx, uint64_t gpa, const void *data, uint64_t len);

/*
 * Apply one RAM section `s` (id MIG_SEC_RAM) through `sink`.  Every record is
 * checked first (header complete, known flags, npages > 0, gpa page aligned,
 * no overflow, the whole range inside one range of `layout`, data present),
 * and only when all are good is the sink called, so a bad section writes
 * nothing.  -EBADMSG (malformed), -ERANGE (outside the layout) or the sink's
 * error, with one line in `err` naming the record.
 */
int mig_ram_load(const struct mig_section *s, const struct mig_mem_layout *layout,
                 mig_ram_sink_fn sink, void *ctx, struct errbuf *err) __must_check;

/*
 * Builds RAM sections from guest pages: runs of contiguous pages of one kind
 * (all-zero or data) become one record, and a section is written when the
 * next record would not fit under MIG_RAM_MAX_LEN.  Call mig_ram_flush() at
 * the end of each round.
 */
struct mig_ram_writer {
    struct mig_stream_writer *w;
    uint8_t *buf;
    size_t len;
    size_t rec;          /* offset of the open record, or SIZE_MAX */
    uint64_t rec_next;   /* the gpa that would extend the open record */
    uint64_t sections;   /* RAM sections written */
    uint64_t zero_pages; /* pages sent as ZERO */
    uint64_t data_pages; /* pages sent with data */
};

void mig_ram_writer_init(struct mig_ram_writer *rw, struct mig_stream_writer *w);
void mig_ram_writer_free(struct mig_ram_writer *rw);

/*
 * Add `npages` pages at `gpa` (page aligned, no overflow: -EINVAL) whose
 * contents are at `host`.  May write sections.  0 or -errno.
 */
int mig_ram_put(struct mig_ram_writer *rw, uint64_t gpa, const void *host,
                uint64_t npages) __must_check;

/* Write what is buffered as a RAM section (nothing if empty). */
int mig_ram_flush(struct mig_ram_writer *rw) __must_check;

/* ---- MACHINE section ---- */

#define MIG_MACHINE_VERSION 1U
#define MIG_NAME_MAX        31U  /* names: 1..31 bytes of [A-Za-z0-9._-] */
#define MIG_MAX_DEVICES     320U /* 254 vCPUs, the VM, 3 built-in and 16 virtio devices, and room */
#define MIG_MAX_VCPUS       1024U

/* How a device's data moves (its data plane). */
enum mig_plane {
    MIG_PLANE_BUILTIN = 1,    /* emulated inside wisp */
    MIG_PLANE_VHOST_USER = 2, /* a vhost-user back end process */
    MIG_PLANE_VDPA = 3,       /* a vDPA device */
    MIG_PLANE_VFIO = 4,       /* a passed-through device (vfio / vfio-user) */
};

/*
 * Device flags.  PORTABLE: the device's state does not depend on its data
 * plane (the VMSTATE-VIRTIO standard state), so the destination may run it
 * on another plane.  vfio blobs are never portable: the flag is refused
 * with MIG_PLANE_VFIO.
 */
#define MIG_DEV_F_PORTABLE 0x1U
#define MIG_DEV_F_KNOWN    MIG_DEV_F_PORTABLE

struct mig_dev_desc {
    char type[MIG_NAME_MAX + 1]; /* "virtio-blk" */
    uint32_t section_id;         /* the id its state travels under */
    uint32_t instance;
    uint16_t version;     /* stream: version saved; local: newest this wisp loads */
    uint16_t min_version; /* stream: informative; local: oldest this wisp loads */
    uint8_t plane;        /* enum mig_plane */
    uint8_t flags;        /* MIG_DEV_F_* */
};

/* What the source describes and the destination compares. */
struct mig_machine {
    uint16_t arch; /* enum mig_arch */
    uint32_t vcpus;
    char cpu_template[MIG_NAME_MAX + 1]; /* "" when none */
    struct mig_mem_layout mem;
    uint32_t ndevs;
    struct mig_dev_desc devs[MIG_MAX_DEVICES];
};

/* The name of a data plane kind ("builtin", "vhost-user", ...) or "unknown". */
const char *mig_plane_name(uint8_t plane);

/*
 * Encode `m` as a MACHINE payload into `out` (a vstate_out used as a byte
 * buffer).  Refuses (-EINVAL) what the decoder would refuse.
 */
int mig_machine_encode(const struct mig_machine *m, struct vstate_out *out) __must_check;

/*
 * Decode and validate a MACHINE payload: field by field, every count and
 * name bounded, the layout valid (mig_mem_layout_check), no (section id,
 * instance) twice, no trailing bytes.  -EBADMSG with one line in `err`.
 */
int mig_machine_decode(const struct mig_section *s, struct mig_machine *m,
                       struct errbuf *err) __must_check;

/*
 * Can this destination (`local`) run what the stream (`stream`) describes?
 * Compares architecture, vCPU count, CPU template, memory layout, and the
 * device lists entry by entry: type, section id, instance, the stream's
 * state version within the local [min_version, version], and the data plane,
 * which may differ only when both sides declare the state portable.
 * 0, or -EPROTO with the first difference named in `err`, e.g.
 * "destination has 2 vCPUs, the stream 4".
 */
int mig_compat_check(const struct mig_machine *stream, const struct mig_machine *local,
                     struct errbuf *err) __must_check;

#endif /* MIGRATION_STREAM_SECTIONS_H */
