/*
 * The vfio-user 0.2 wire format (docs/VFIO_USER.md): the 16-byte message
 * header and the payloads of the commands wisp uses, as pure encode and
 * decode functions over byte buffers.
 *
 * Why a separate codec: every byte a vfio-user server sends is untrusted
 * (the device runs in another process, possibly compromised).  Keeping the
 * parsing here, free of sockets and state, lets the unit tests and the
 * fuzzer (tests/fuzz/fuzz_vfio_user_msg.c) hit every bound directly.
 *
 * Rules kept by every decoder: the payload length it is given is the header's
 * size minus the header; fixed parts must fit in it; counts are capped by the
 * VFIO_USER_MAX_* limits below before anything is sized from them; nothing is
 * read past the end.  Fields are little-endian on the wire (the protocol says
 * host order; wisp runs on x86_64 and writes the order out explicitly).
 */
#ifndef DEVICES_VFIO_VFIO_USER_MSG_H
#define DEVICES_VFIO_VFIO_USER_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Header: u16 id, u16 command, u32 size (header included), u32 flags, u32 error. */
#define VFIO_USER_HDR_SIZE 16

/* Commands (protocol 0.2 numbering; 14 is unused). */
enum vfio_user_cmd {
    VFIO_USER_VERSION = 1,
    VFIO_USER_DMA_MAP = 2,
    VFIO_USER_DMA_UNMAP = 3,
    VFIO_USER_DEVICE_GET_INFO = 4,
    VFIO_USER_DEVICE_GET_REGION_INFO = 5,
    VFIO_USER_DEVICE_GET_REGION_IO_FDS = 6,
    VFIO_USER_DEVICE_GET_IRQ_INFO = 7,
    VFIO_USER_DEVICE_SET_IRQS = 8,
    VFIO_USER_REGION_READ = 9,
    VFIO_USER_REGION_WRITE = 10,
    VFIO_USER_DMA_READ = 11,
    VFIO_USER_DMA_WRITE = 12,
    VFIO_USER_DEVICE_RESET = 13,
    VFIO_USER_REGION_WRITE_MULTI = 15,
    VFIO_USER_DEVICE_FEATURE = 16,
    VFIO_USER_MIG_DATA_READ = 17,
    VFIO_USER_MIG_DATA_WRITE = 18,
};

/* Header flags: bits 0-3 the type, then NO_REPLY and ERROR. */
#define VFIO_USER_F_TYPE_MASK  0xfu
#define VFIO_USER_F_TYPE_CMD   0x0u
#define VFIO_USER_F_TYPE_REPLY 0x1u
#define VFIO_USER_F_NO_REPLY   0x10u
#define VFIO_USER_F_ERROR      0x20u

/*
 * wisp's limits.  A peer's message larger than VFIO_USER_MSG_MAX, or with
 * more fds than VFIO_USER_MAX_FDS, is a protocol violation.
 */
#define VFIO_USER_DATA_MAX   (1u << 20) /* largest data transfer (spec default) */
#define VFIO_USER_MSG_MAX    (VFIO_USER_DATA_MAX + 4096u)
#define VFIO_USER_MAX_FDS    16u   /* fds in one message (QEMU's cap too) */
#define VFIO_USER_JSON_MAX   4096u /* VERSION capabilities text, NUL included */
#define VFIO_USER_MAX_CAPS   16u   /* capabilities in one region-info chain */
#define VFIO_USER_MAX_AREAS  64u   /* sparse mmap areas kept from one region */
#define VFIO_USER_MAX_IRQS   2048u /* vectors in one IRQ index (PCI MSI-X max) */
#define VFIO_USER_MAX_REGION 64u   /* region indices accepted */

/* A decoded header. */
struct vfio_user_hdr {
    uint16_t id;
    uint16_t cmd;
    uint32_t size;
    uint32_t flags;
    uint32_t error;
};

/* Negotiated capabilities (the VERSION message's JSON); defaults from the spec. */
struct vfio_user_caps {
    uint32_t max_msg_fds;        /* default 1 */
    uint32_t max_data_xfer_size; /* default 1 MiB */
    uint32_t max_dma_maps;       /* default 65535 */
    uint64_t pgsizes;            /* bitmap of page sizes, default 4 KiB */
    bool migration;              /* a "migration" object was present */
    uint64_t mig_pgsize;         /* its dirty-bitmap page size */
    uint64_t mig_max_bitmap_size;
    bool write_multiple;
};

/* VERSION: u16 major, u16 minor, then optional NUL-terminated JSON. */
struct vfio_user_version {
    uint16_t major;
    uint16_t minor;
    struct vfio_user_caps caps;
};

#define VFIO_USER_DMA_F_READ  1u
#define VFIO_USER_DMA_F_WRITE 2u

/* DMA_MAP (32 bytes): argsz, flags, offset into the fd, IOVA, size. */
struct vfio_user_dma_map {
    uint32_t argsz;
    uint32_t flags;
    uint64_t offset;
    uint64_t addr;
    uint64_t size;
};
#define VFIO_USER_DMA_MAP_SIZE 32

/* DMA_UNMAP (24 bytes): argsz, flags, IOVA, size. */
struct vfio_user_dma_unmap {
    uint32_t argsz;
    uint32_t flags;
    uint64_t addr;
    uint64_t size;
};
#define VFIO_USER_DMA_UNMAP_SIZE 24

#define VFIO_USER_DEV_F_RESET 1u
#define VFIO_USER_DEV_F_PCI   2u

/* DEVICE_GET_INFO (16 bytes). */
struct vfio_user_device_info {
    uint32_t argsz;
    uint32_t flags;
    uint32_t num_regions;
    uint32_t num_irqs;
};
#define VFIO_USER_DEVICE_INFO_SIZE 16

/* Region indices of a PCI device, and region flags. */
enum {
    VFIO_USER_PCI_BAR0 = 0,
    VFIO_USER_PCI_ROM = 6,
    VFIO_USER_PCI_CONFIG = 7,
    VFIO_USER_PCI_NUM_REGIONS = 9
};
#define VFIO_USER_REGION_F_READ   1u
#define VFIO_USER_REGION_F_WRITE  2u
#define VFIO_USER_REGION_F_MMAP   4u
#define VFIO_USER_REGION_F_CAPS   8u
#define VFIO_USER_CAP_SPARSE_MMAP 1u

struct vfio_user_area {
    uint64_t offset;
    uint64_t size;
};

/*
 * DEVICE_GET_REGION_INFO: 32 fixed bytes (argsz, flags, index, cap_offset,
 * size, offset) then a capability chain; of the caps wisp keeps the sparse
 * mmap areas.
 */
struct vfio_user_region_info {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t cap_offset;
    uint64_t size;
    uint64_t offset;
    uint32_t nr_areas; /* sparse mmap areas, 0 if no such cap */
    struct vfio_user_area areas[VFIO_USER_MAX_AREAS];
};
#define VFIO_USER_REGION_INFO_SIZE 32

/* IRQ indices and flags. */
enum {
    VFIO_USER_IRQ_INTX = 0,
    VFIO_USER_IRQ_MSI = 1,
    VFIO_USER_IRQ_MSIX = 2,
    VFIO_USER_IRQ_ERR = 3,
    VFIO_USER_IRQ_REQ = 4,
    VFIO_USER_PCI_NUM_IRQS = 5
};
#define VFIO_USER_IRQ_INFO_EVENTFD  1u
#define VFIO_USER_IRQ_INFO_MASKABLE 2u
#define VFIO_USER_IRQ_INFO_NORESIZE 8u

/* DEVICE_GET_IRQ_INFO (16 bytes). */
struct vfio_user_irq_info {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t count;
};
#define VFIO_USER_IRQ_INFO_SIZE 16

#define VFIO_USER_IRQ_DATA_NONE      1u
#define VFIO_USER_IRQ_DATA_BOOL      2u
#define VFIO_USER_IRQ_DATA_EVENTFD   4u
#define VFIO_USER_IRQ_ACTION_MASK    8u
#define VFIO_USER_IRQ_ACTION_UNMASK  16u
#define VFIO_USER_IRQ_ACTION_TRIGGER 32u

/* DEVICE_SET_IRQS (20 bytes; eventfds ride as SCM_RIGHTS, BOOL data follows). */
struct vfio_user_irq_set {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t start;
    uint32_t count;
};
#define VFIO_USER_IRQ_SET_SIZE 20

/* REGION_READ/WRITE (16 bytes, then count bytes of data where there is data). */
struct vfio_user_region_rw {
    uint64_t offset;
    uint32_t region;
    uint32_t count;
    const uint8_t *data; /* decode: points into the payload, or NULL */
};
#define VFIO_USER_REGION_RW_SIZE 16

/* DMA_READ/WRITE, server to client (16 bytes, then data). */
struct vfio_user_dma_rw {
    uint64_t addr;
    uint64_t count;
    const uint8_t *data;
};
#define VFIO_USER_DMA_RW_SIZE 16

/* DEVICE_FEATURE (8 bytes, then feature data); feature numbers as in VFIO. */
#define VFIO_USER_FEATURE_MASK      0xffffu
#define VFIO_USER_FEATURE_GET       (1u << 16)
#define VFIO_USER_FEATURE_SET       (1u << 17)
#define VFIO_USER_FEATURE_PROBE     (1u << 18)
#define VFIO_USER_FEATURE_MIGRATION 1u
#define VFIO_USER_FEATURE_MIG_STATE 2u
#define VFIO_USER_FEATURE_DATA_MAX  4096u
struct vfio_user_feature {
    uint32_t argsz;
    uint32_t flags;
    uint32_t data_len;
    const uint8_t *data;
};
#define VFIO_USER_FEATURE_SIZE 8

/* MIG_DATA_READ/WRITE (8 bytes: argsz, size; then size bytes of data). */
struct vfio_user_mig_data {
    uint32_t argsz;
    uint32_t size;
    const uint8_t *data;
};
#define VFIO_USER_MIG_DATA_SIZE 8

/* True if cmd is a command this codec knows. */
bool vfio_user_cmd_known(uint16_t cmd);

/* Writes h into buf[0..16). */
void vfio_user_hdr_encode(uint8_t *buf, const struct vfio_user_hdr *h);

/*
 * Decodes and checks a header from buf (len bytes available, at least the
 * header's).  Returns 0, -EPROTO if len < 16, size < 16, size >
 * VFIO_USER_MSG_MAX, the type is neither command nor reply or an error flag
 * is set on a command; -ENOTSUP for an unknown command.
 */
int vfio_user_hdr_decode(const uint8_t *buf, size_t len, struct vfio_user_hdr *h);

/*
 * Checks a whole message: header valid (vfio_user_hdr_decode) and size == len.
 * Returns 0 or the negative errno described above (-EPROTO for a size that
 * disagrees with len).
 */
int vfio_user_msg_check(const uint8_t *buf, size_t len, struct vfio_user_hdr *h);

/*
 * Checks that rep answers req: a reply, same id and command.  Returns 0,
 * -EPROTO on a mismatch, or the peer's error as a negative errno (an error
 * number outside 1..4095 becomes -EIO) when the ERROR flag is set.
 */
int vfio_user_reply_check(const struct vfio_user_hdr *req, const struct vfio_user_hdr *rep);

/*
 * VERSION payload.  Encode writes at most cap bytes and returns the length
 * or -ENOSPC; decode parses the JSON with json-c (text capped at
 * VFIO_USER_JSON_MAX, nesting depth 8, unknown keys ignored, values
 * type-checked and bounded) into v->caps with the spec's defaults for what is
 * absent.  Decode returns 0 or -EPROTO.
 */
int vfio_user_version_encode(uint8_t *buf, size_t cap, const struct vfio_user_version *v);
int vfio_user_version_decode(const uint8_t *p, size_t len, struct vfio_user_version *v);

/*
 * Fixed-size payloads: encode writes exactly the _SIZE constant's bytes into
 * buf (the caller provides them); decode needs len >= that size (extra bytes
 * are ignored) and returns 0 or -EPROTO.
 */
void vfio_user_dma_map_encode(uint8_t *buf, const struct vfio_user_dma_map *m);
int vfio_user_dma_map_decode(const uint8_t *p, size_t len, struct vfio_user_dma_map *m);
void vfio_user_dma_unmap_encode(uint8_t *buf, const struct vfio_user_dma_unmap *m);
int vfio_user_dma_unmap_decode(const uint8_t *p, size_t len, struct vfio_user_dma_unmap *m);
void vfio_user_device_info_encode(uint8_t *buf, const struct vfio_user_device_info *d);
int vfio_user_device_info_decode(const uint8_t *p, size_t len, struct vfio_user_device_info *d);
void vfio_user_irq_info_encode(uint8_t *buf, const struct vfio_user_irq_info *i);
int vfio_user_irq_info_decode(const uint8_t *p, size_t len, struct vfio_user_irq_info *i);

/*
 * SET_IRQS: decode also checks count <= VFIO_USER_MAX_IRQS, exactly one data
 * type flag, and for BOOL data that count bytes follow.
 */
void vfio_user_irq_set_encode(uint8_t *buf, const struct vfio_user_irq_set *s);
int vfio_user_irq_set_decode(const uint8_t *p, size_t len, struct vfio_user_irq_set *s);

/*
 * REGION_INFO: encode writes the fixed part and, when r->nr_areas > 0, one
 * sparse-mmap cap right after it (cap_offset, argsz and the CAPS flag are
 * set from that); returns the length or -ENOSPC/-EINVAL.  Decode walks the
 * chain: every cap wholly inside the payload, offsets strictly increasing
 * (no loops), at most VFIO_USER_MAX_CAPS caps and VFIO_USER_MAX_AREAS areas,
 * unknown caps skipped.  Returns 0, -EPROTO, or -E2BIG when argsz says the
 * server needed more room than len.
 */
int vfio_user_region_info_encode(uint8_t *buf, size_t cap, const struct vfio_user_region_info *r);
int vfio_user_region_info_decode(const uint8_t *p, size_t len, struct vfio_user_region_info *r);

/*
 * REGION_READ/WRITE.  with_data: the payload carries count bytes after the
 * 16 fixed ones (a write request, a read reply).  Encode copies r->data when
 * with_data and returns the length (-ENOSPC if cap is short, -EINVAL for a
 * count above VFIO_USER_DATA_MAX).  Decode checks count <= VFIO_USER_DATA_MAX
 * and, with data, that exactly count bytes follow; r->data then points into p.
 */
int vfio_user_region_rw_encode(uint8_t *buf, size_t cap, const struct vfio_user_region_rw *r,
                               bool with_data);
int vfio_user_region_rw_decode(const uint8_t *p, size_t len, bool with_data,
                               struct vfio_user_region_rw *r);

/* DMA_READ/WRITE: same contract as the region functions, addr + count must not wrap. */
int vfio_user_dma_rw_encode(uint8_t *buf, size_t cap, const struct vfio_user_dma_rw *d,
                            bool with_data);
int vfio_user_dma_rw_decode(const uint8_t *p, size_t len, bool with_data,
                            struct vfio_user_dma_rw *d);

/*
 * DEVICE_FEATURE: data_len bytes of feature data (<= VFIO_USER_FEATURE_DATA_MAX)
 * follow the 8 fixed bytes; decode takes all remaining bytes as data.
 */
int vfio_user_feature_encode(uint8_t *buf, size_t cap, const struct vfio_user_feature *f);
int vfio_user_feature_decode(const uint8_t *p, size_t len, struct vfio_user_feature *f);

/*
 * MIG_DATA_READ/WRITE.  with_data as for regions (a write, or a read reply);
 * size <= VFIO_USER_DATA_MAX.
 */
int vfio_user_mig_data_encode(uint8_t *buf, size_t cap, const struct vfio_user_mig_data *m,
                              bool with_data);
int vfio_user_mig_data_decode(const uint8_t *p, size_t len, bool with_data,
                              struct vfio_user_mig_data *m);

#endif /* DEVICES_VFIO_VFIO_USER_MSG_H */
