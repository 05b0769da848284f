/*
 * The snapshot / live-migration stream: the container that carries a whole
 * VM from one wisp to another (docs/MIGRATION_FORMAT.md).
 *
 * Why a container of its own: device and vCPU state already has a format
 * (vstate sections, the VMSTATE-VIRTIO stream), but a migration also needs
 * guest RAM in several rounds, a description of the machine the destination
 * checks before it touches anything, and framing that a receiver can read
 * from a socket with a bounded buffer: every length is known and capped
 * before anything is allocated, every section is checksummed, and every
 * refusal is one line naming the section.
 *
 *   stream  := header  section*  END
 *   header  := magic "WISPMIG1", le16 version, le16 arch, le32 flags, le32 crc32c
 *   section := le32 id, le32 instance, le16 version, le16 flags, le32 length,
 *              payload[length], le32 crc32c (over header and payload)
 *
 * The reader and the writer work over a small transport interface (a
 * memory buffer, or a file descriptor with poll() and a deadline), so the
 * same code reads a snapshot file, a socket and a fuzzer's input.
 *
 * Every function returns 0 (or a count) or a negative errno value; readers
 * also record one line in a `struct errbuf`.
 */
#ifndef MIGRATION_STREAM_H
#define MIGRATION_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmm/error.h"
#include "vmm/util.h"

/* ---- Format constants (docs/MIGRATION_FORMAT.md §2-§3) ---- */

#define MIG_STREAM_MAGIC       "WISPMIG1" /* 8 bytes, no NUL on the wire */
#define MIG_STREAM_MAGIC_LEN   8U
#define MIG_STREAM_VERSION     1U /* the format version this wisp writes */
#define MIG_STREAM_VERSION_MIN 1U /* the oldest it reads */
#define MIG_STREAM_HDR_LEN     20U
#define MIG_SECTION_HDR_LEN    16U
#define MIG_SECTION_CRC_LEN    4U

/* Architecture ids (header and machine section). */
enum mig_arch {
    MIG_ARCH_X86_64 = 1,
    MIG_ARCH_AARCH64 = 2,
};

/* Stream flags.  A reader refuses any bit it does not know. */
#define MIG_STREAM_F_SNAPSHOT 0x1U /* written to a file, not sent to a live peer */
#define MIG_STREAM_F_KNOWN    MIG_STREAM_F_SNAPSHOT

/* Section flags.  A reader refuses any bit it does not know. */
#define MIG_SEC_F_MANDATORY 0x1U /* a reader that does not know the id must refuse */
#define MIG_SEC_F_PRECOPY   0x2U /* pre-copy data of a device, sent while the guest runs */
#define MIG_SEC_F_KNOWN     (MIG_SEC_F_MANDATORY | MIG_SEC_F_PRECOPY)

/*
 * Section ids.  0 is never valid.  Ids below 0x100 are the stream's own;
 * devices and vCPUs take ids from 0x100 on, one per kind of state (not per
 * instance: the instance field tells copies apart).  An id, once given a
 * meaning, keeps it.
 */
enum mig_section_id {
    MIG_SEC_MACHINE = 0x01,     /* compatibility description, always first */
    MIG_SEC_RAM = 0x02,         /* guest RAM pages (any number of sections) */
    MIG_SEC_CONFIG = 0x03,      /* snapshots: the machine's options (stream_config.h), optional */
    MIG_SEC_VCPU = 0x100,       /* one per vCPU */
    MIG_SEC_VM = 0x101,         /* VM-wide state KVM keeps (x86: PIC, IOAPIC, PIT, clock) */
    MIG_SEC_TSC = 0x102,        /* x86: kvmclock and every vCPU's TSC offset, taken together */
    MIG_SEC_SERIAL = 0x110,     /* 16550A UART */
    MIG_SEC_I8042 = 0x111,      /* i8042 reset line */
    MIG_SEC_ACPI_PM = 0x112,    /* ACPI PM registers */
    MIG_SEC_PCI = 0x113,        /* PCI bus (--pci on): header state of its functions */
    MIG_SEC_VIRTIO_NET = 0x201, /* virtio device state (VMSTATE-VIRTIO blobs) */
    MIG_SEC_VIRTIO_BLK = 0x202,
    MIG_SEC_VIRTIO_CONSOLE = 0x203,
    MIG_SEC_VIRTIO_RNG = 0x204,
    MIG_SEC_VIRTIO_BALLOON = 0x205,
    MIG_SEC_VIRTIO_VSOCK = 0x206,
    MIG_SEC_VIRTIO_FS = 0x207, /* reserved: virtio-fs refuses to migrate today (docs/VHOST.md) */
    MIG_SEC_VFIO_PCI =
        0x300, /* a passthrough function (vfio, vfio-user): devices/vfio/vfio_mig.h */
    MIG_SEC_END = 0xFFFFFFFFu, /* end marker: payload le64 section count */
};

/* ---- Caps: checked before any allocation (docs/MIGRATION_FORMAT.md §5) ---- */

#define MIG_STREAM_MAX_SECTION (32U * 1024 * 1024) /* any section, known or not */
#define MIG_MACHINE_MAX_LEN    (64U * 1024)
#define MIG_RAM_MAX_LEN        (16U * 1024 * 1024 + 4096) /* 4096 pages plus record headers */
#define MIG_DEVICE_MAX_LEN     (16U * 1024 * 1024)        /* VSTATE_MAX_SECTION */
#define MIG_END_LEN            8U
#define MIG_STREAM_READ_CHUNK  (1U * 1024 * 1024) /* payload buffer growth step */

/* ---- CRC-32C ---- */

/*
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, initial value and
 * final XOR 0xFFFFFFFF; RFC 3720 appendix B.4).  `crc` is the value of the
 * bytes so far (0 to start), so a checksum can be computed in pieces.  One
 * implementation serves the whole of migration/ (virtio_state_crc32c).
 */
uint32_t mig_stream_crc32c(uint32_t crc, const void *p, size_t n);

/* ---- Transports ---- */

/*
 * How the reader and the writer reach the bytes.
 * read:  fill buf with exactly `len` bytes; return len, or fewer only at end
 *        of stream (0 at once if the stream has ended), or -errno
 *        (-ETIMEDOUT when the peer stalls past the deadline).
 * write: write all `len` bytes; 0 or -errno.
 */
struct mig_transport {
    ssize_t (*read)(void *ctx, void *buf, size_t len);
    int (*write)(void *ctx, const void *buf, size_t len);
    void *ctx;
};

/*
 * Memory transport: reads from `in` (the stream ends after in_len bytes) and
 * appends what is written to a buffer it grows, up to `cap` bytes (-ENOSPC
 * beyond).  Used by tests, the fuzzer and in-process snapshots.
 */
struct mig_mem_transport {
    const uint8_t *in;
    size_t in_len;
    size_t in_pos;
    uint8_t *out; /* malloc'd; the caller frees it (mig_mem_transport_free) */
    size_t out_len;
    size_t out_cap;
    size_t cap;
};

/* Set up `m` over `in` (may be NULL for a write-only transport) and fill `t`. */
void mig_mem_transport_init(struct mig_mem_transport *m, struct mig_transport *t, const void *in,
                            size_t in_len, size_t cap);
/* Free the written bytes. */
void mig_mem_transport_free(struct mig_mem_transport *m);

/*
 * File-descriptor transport for sockets, pipes and files.  The fd is put in
 * non-blocking mode (mig_fd_transport_init); every call waits with poll()
 * and gives up with -ETIMEDOUT when it has not finished within `timeout_ms`
 * of its start, so a dead or stalled peer never blocks wisp forever.  The
 * deadline covers a whole call, not each byte, so a peer that trickles
 * cannot stretch it: pick a timeout that fits the largest single transfer
 * (a RAM section of 16 MiB, a payload chunk of 1 MiB when reading) on the
 * slowest link expected.  Short
 * reads and writes are continued, EINTR is retried, and a write to a closed
 * socket peer returns -EPIPE without raising SIGPIPE (send() with
 * MSG_NOSIGNAL).  On a pipe, write() is used: the process must ignore
 * SIGPIPE, as wisp does (vmm/vm.c), to get -EPIPE there too.
 */
struct mig_fd_transport {
    int fd;
    int timeout_ms; /* > 0 */
};

/* Set `fd` non-blocking and fill `t`.  0 or -errno (fcntl failure, timeout <= 0). */
int mig_fd_transport_init(struct mig_fd_transport *f, struct mig_transport *t, int fd,
                          int timeout_ms) __must_check;

/* ---- Writer ---- */

struct mig_stream_writer {
    struct mig_transport t;
    uint64_t sections; /* written so far, END excluded */
    bool started;      /* header written */
    bool ended;        /* END written: nothing more may follow */
};

void mig_stream_writer_init(struct mig_stream_writer *w, const struct mig_transport *t);

/* Write the stream header.  flags: MIG_STREAM_F_*; unknown bits give -EINVAL. */
int mig_stream_write_header(struct mig_stream_writer *w, uint16_t arch,
                            uint32_t flags) __must_check;

/*
 * Write one section.  `len` must not exceed MIG_STREAM_MAX_SECTION (-E2BIG),
 * `id` must not be 0 or MIG_SEC_END, `flags` only MIG_SEC_F_* (-EINVAL).
 */
int mig_stream_write_section(struct mig_stream_writer *w, uint32_t id, uint32_t instance,
                             uint16_t version, uint16_t flags, const void *payload,
                             size_t len) __must_check;

/* Write the END marker.  The sender then closes (or shuts down) its side. */
int mig_stream_write_end(struct mig_stream_writer *w) __must_check;

/* ---- Reader ---- */

/*
 * What the reader knows about one section id: its name for messages, the
 * versions it can read and its length cap.  Unknown ids are skipped when
 * optional and refused when MANDATORY.
 */
struct mig_section_desc {
    uint32_t id;
    const char *name;     /* "virtio-blk" */
    uint16_t min_version; /* >= 1 */
    uint16_t max_version;
    uint32_t max_len; /* <= MIG_STREAM_MAX_SECTION */
};

/* One section as read: valid until the next mig_stream_read_section(). */
struct mig_section {
    uint32_t id;
    uint32_t instance;
    uint16_t version;
    uint16_t flags;
    uint32_t len;
    const uint8_t *payload;              /* len bytes, CRC checked (NULL when len == 0) */
    const struct mig_section_desc *desc; /* never NULL: unknown sections are skipped */
};

/* Allocation hook (tests count what the reader asks for). */
typedef void *(*mig_realloc_fn)(void *p, size_t n);

struct mig_stream_reader {
    struct mig_transport t;
    const struct mig_section_desc *known;
    size_t nknown;
    uint16_t arch; /* the architecture this wisp runs */
    struct errbuf *err;
    mig_realloc_fn realloc_fn; /* realloc unless a test sets it */
    uint8_t *buf;              /* payload buffer, reused */
    size_t buf_cap;
    uint64_t sections; /* read so far, END and skipped ones included */
    uint64_t skipped;  /* unknown optional sections skipped */
    bool started;
    bool ended;
    bool failed; /* a refusal ends the stream: later reads return -EINVAL */
};

/*
 * Set up a reader over `t`.  `known` (nknown entries, ids unique) lists the
 * sections this wisp understands; `err` receives every refusal.  The reader
 * owns a payload buffer: release it with mig_stream_reader_free().
 */
void mig_stream_reader_init(struct mig_stream_reader *r, const struct mig_transport *t,
                            const struct mig_section_desc *known, size_t nknown, uint16_t arch,
                            struct errbuf *err);
void mig_stream_reader_free(struct mig_stream_reader *r);

/*
 * Read and check the stream header: magic (-EBADMSG), format version
 * (-EPROTO), architecture (-EPROTO), unknown flags (-EPROTO), CRC
 * (-EBADMSG), end of stream (-EBADMSG) or a transport error.  Stores the
 * flags in *flags (may be NULL).
 */
int mig_stream_read_header(struct mig_stream_reader *r, uint32_t *flags) __must_check;

/*
 * Read the next section the caller knows into *s, skipping unknown optional
 * ones.  The order of the checks: the global and the per-id length cap
 * (from the header alone, before anything is allocated); the payload (its
 * buffer growing only as bytes arrive, MIG_STREAM_READ_CHUNK at a time) and
 * its CRC; then what the now-trusted header says: flags, unknown mandatory
 * id, version range.  At the END marker *s has id MIG_SEC_END, the section
 * count is checked, and later calls fail, as they do after any error.
 * Errors: -EBADMSG (truncated stream, CRC, malformed END), -E2BIG (a cap),
 * -EPROTO (unknown mandatory section, unknown flags, version outside the
 * range), -ENOMEM, or a transport error.
 */
int mig_stream_read_section(struct mig_stream_reader *r, struct mig_section *s) __must_check;

/*
 * After END: the stream must end there.  Reads one more byte; anything but
 * end of stream is refused (-EBADMSG "trailing bytes").  Over a socket the
 * sender must have shut down its side, or this waits for the timeout.
 */
int mig_stream_read_finish(struct mig_stream_reader *r) __must_check;

/* The name of a section id for messages: the known name, or NULL. */
const char *mig_stream_section_name(const struct mig_stream_reader *r, uint32_t id);

#endif /* MIGRATION_STREAM_H */
