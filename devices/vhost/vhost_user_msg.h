/*
 * The vhost-user wire format (docs/VHOST.md), frontend side: the 12-byte
 * message header, the payloads of the requests wisp sends, and a strict
 * check of every reply, as pure functions over byte buffers.
 *
 * Why a separate codec: the backend is another process, possibly
 * compromised or just buggy, and every byte it sends is untrusted.  Keeping
 * the parsing here, free of sockets and state, lets the unit tests and the
 * fuzzer (tests/fuzz/fuzz_vhost_user_msg.c) hit every bound directly.
 *
 * Numbers written from the vhost-user specification (QEMU
 * docs/interop/vhost-user.rst); none of them is in the Debian 12 kernel
 * headers.  Fields are in host byte order on the wire; wisp runs on x86_64
 * and writes little-endian out explicitly.
 */
#ifndef DEVICES_VHOST_VHOST_USER_MSG_H
#define DEVICES_VHOST_VHOST_USER_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Header: u32 request, u32 flags, u32 size (payload bytes, header excluded). */
#define VHU_HDR_SIZE 12

/* Header flags: bits 0-1 the protocol version (1), then REPLY and NEED_REPLY. */
#define VHU_VERSION        1u
#define VHU_F_VERSION_MASK 0x3u
#define VHU_F_REPLY        (1u << 2)
#define VHU_F_NEED_REPLY   (1u << 3)
#define VHU_F_KNOWN        (VHU_F_VERSION_MASK | VHU_F_REPLY | VHU_F_NEED_REPLY)

/* Frontend requests wisp uses (vhost-user.rst "Front-end message types"). */
enum vhu_req {
    VHU_GET_FEATURES = 1,
    VHU_SET_FEATURES = 2,
    VHU_SET_OWNER = 3,
    VHU_RESET_OWNER = 4,
    VHU_SET_MEM_TABLE = 5,
    VHU_SET_VRING_NUM = 8,
    VHU_SET_VRING_ADDR = 9,
    VHU_SET_VRING_BASE = 10,
    VHU_GET_VRING_BASE = 11,
    VHU_SET_VRING_KICK = 12,
    VHU_SET_VRING_CALL = 13,
    VHU_SET_VRING_ERR = 14,
    VHU_GET_PROTOCOL_FEATURES = 15,
    VHU_SET_PROTOCOL_FEATURES = 16,
    VHU_GET_QUEUE_NUM = 17,
    VHU_SET_VRING_ENABLE = 18,
    VHU_GET_CONFIG = 24,
    VHU_SET_CONFIG = 25,
    VHU_GET_INFLIGHT_FD = 31,
    VHU_SET_INFLIGHT_FD = 32,
    VHU_SET_STATUS = 39,
    VHU_GET_STATUS = 40,
};

/* Virtio feature bit 30 (not a device feature): the backend speaks protocol features. */
#define VHU_F_PROTOCOL_FEATURES 30

/* Protocol feature bits (vhost-user.rst "Protocol features"). */
#define VHU_PF_MQ                  0
#define VHU_PF_LOG_SHMFD           1
#define VHU_PF_REPLY_ACK           3
#define VHU_PF_BACKEND_REQ         5
#define VHU_PF_CONFIG              9
#define VHU_PF_INFLIGHT_SHMFD      12
#define VHU_PF_CONFIGURE_MEM_SLOTS 15
#define VHU_PF_STATUS              16

/* SET_VRING_KICK/CALL/ERR u64: bits 0-7 the ring, bit 8 "no fd attached". */
#define VHU_VRING_IDX_MASK 0xffull
#define VHU_VRING_NOFD     (1ull << 8)

/* wisp's limits. */
#define VHU_MAX_REGIONS     8   /* SET_MEM_TABLE holds at most 8 (the spec's limit) */
#define VHU_MAX_CONFIG      256 /* largest config space wisp asks for */
#define VHU_MAX_FDS         8   /* fds wisp attaches to one message */
#define VHU_MAX_QUEUES      8   /* rings per device (VIRTIO_MAX_QUEUES) */
#define VHU_CONFIG_HDR      12  /* u32 offset, u32 size, u32 flags */
#define VHU_MAX_PAYLOAD     (VHU_CONFIG_HDR + VHU_MAX_CONFIG) /* largest payload either way */
#define VHU_MEM_REGION_SIZE 32 /* u64 gpa, size, uaddr, mmap_offset */
/* GET/SET_INFLIGHT_FD: u64 mmap_size, u64 mmap_offset, u16 num_queues, u16 queue_size, and
 * 4 bytes of padding (the C struct backends use is 8-byte aligned: 24 bytes on the wire). */
#define VHU_INFLIGHT_SIZE 24
/* The largest inflight area wisp accepts: 8 queues of 32768 descriptors at 16 bytes each
 * plus headers fit well below it. */
#define VHU_MAX_INFLIGHT_MMAP (16ull << 20)

/* The inflight area's description (GET_INFLIGHT_FD reply, SET_INFLIGHT_FD request). */
struct vhu_inflight {
    uint64_t mmap_size;
    uint64_t mmap_offset;
    uint16_t num_queues;
    uint16_t queue_size;
};

struct vhu_hdr {
    uint32_t request;
    uint32_t flags;
    uint32_t size; /* payload bytes */
};

/* One guest RAM region as SET_MEM_TABLE describes it. */
struct vhu_mem_region {
    uint64_t gpa;
    uint64_t size;
    uint64_t uaddr;       /* wisp's host address of the region */
    uint64_t mmap_offset; /* offset of the region in the fd sent with it */
};

/* SET_VRING_ADDR: ring addresses as wisp's host addresses. */
struct vhu_vring_addr {
    uint32_t index;
    uint32_t flags; /* bit 0: log_guest_addr valid (dirty logging; wisp sends 0) */
    uint64_t desc;
    uint64_t used;
    uint64_t avail;
    uint64_t log;
};

/* Writes h into buf[0..VHU_HDR_SIZE). */
void vhu_hdr_encode(uint8_t *buf, const struct vhu_hdr *h);
/* Reads a header from the first VHU_HDR_SIZE bytes (len must be >= that); no checks. */
void vhu_hdr_decode(const uint8_t *buf, size_t len, struct vhu_hdr *h);

/*
 * Builders of whole request messages (header + payload) into buf (cap
 * bytes).  `flags` is ORed into the header after the version (pass
 * VHU_F_NEED_REPLY to ask for an ack).  Each returns the message length, or
 * -EMSGSIZE if cap is too small, -EINVAL if an argument is out of range.
 */
int vhu_build_bare(uint8_t *buf, size_t cap, uint32_t req, uint32_t flags);
int vhu_build_u64(uint8_t *buf, size_t cap, uint32_t req, uint32_t flags, uint64_t v);
/* SET_VRING_NUM/BASE/ENABLE, GET_VRING_BASE: {u32 index, u32 num}. */
int vhu_build_state(uint8_t *buf, size_t cap, uint32_t req, uint32_t flags, uint32_t index,
                    uint32_t num);
int vhu_build_vring_addr(uint8_t *buf, size_t cap, uint32_t flags, const struct vhu_vring_addr *a);
/* SET_MEM_TABLE with n (1..VHU_MAX_REGIONS) regions; the fds travel separately. */
int vhu_build_mem_table(uint8_t *buf, size_t cap, uint32_t flags, const struct vhu_mem_region *r,
                        unsigned n);
/* GET_CONFIG (data NULL: `size` zero bytes) or SET_CONFIG; size <= VHU_MAX_CONFIG. */
int vhu_build_config(uint8_t *buf, size_t cap, uint32_t req, uint32_t flags, uint32_t offset,
                     uint32_t size, const void *data);

/* GET_INFLIGHT_FD (the fd-less request; mmap fields 0) or SET_INFLIGHT_FD (its fd separate). */
int vhu_build_inflight(uint8_t *buf, size_t cap, uint32_t req, uint32_t flags,
                       const struct vhu_inflight *in);

/* What the reply to a request must look like. */
enum vhu_reply_kind {
    VHU_REPLY_U64,      /* GET_FEATURES, GET_PROTOCOL_FEATURES, GET_QUEUE_NUM, acks */
    VHU_REPLY_STATE,    /* GET_VRING_BASE: {u32 index, u32 num} */
    VHU_REPLY_CONFIG,   /* GET_CONFIG: {offset, size, flags, bytes} echoing the request */
    VHU_REPLY_INFLIGHT, /* GET_INFLIGHT_FD: the area's description and exactly one fd */
};

/* A checked reply. */
struct vhu_reply {
    uint64_t u64;       /* VHU_REPLY_U64 */
    uint32_t index;     /* VHU_REPLY_STATE */
    uint32_t num;       /* VHU_REPLY_STATE */
    const uint8_t *cfg; /* VHU_REPLY_CONFIG: cfg_size bytes inside the reply buffer */
    uint32_t cfg_size;
    struct vhu_inflight inflight; /* VHU_REPLY_INFLIGHT */
};

/*
 * Checks a whole reply msg[0..len) (header + payload, len as received) to
 * request `req` expecting `kind`, and decodes its payload into *r.  The
 * reply must: carry version 1 and the REPLY flag and no unknown flag bit;
 * echo the request code; have a size field equal to the payload actually
 * received and to the exact size `kind` needs; carry no fds (nfds: how many
 * arrived with it), except VHU_REPLY_INFLIGHT, which must carry exactly one
 * and describe a non-empty area of at most VHU_MAX_INFLIGHT_MMAP bytes
 * whose offset + size does not wrap, with num_queues 1..VHU_MAX_QUEUES and
 * a power-of-two queue_size (the values asked are checked by the caller).  For
 * VHU_REPLY_CONFIG the echoed offset and size must equal cfg_offset and
 * cfg_size (the spec: a size of 0 means the backend failed) and flags be 0
 * or 1.  Returns 0, -EPROTO for any violation, -EIO for a config reply of
 * size 0.
 */
int vhu_reply_parse(const uint8_t *msg, size_t len, unsigned nfds, uint32_t req,
                    enum vhu_reply_kind kind, uint32_t cfg_offset, uint32_t cfg_size,
                    struct vhu_reply *r);

/* Name of a request for log lines ("GET_FEATURES", "request 77"); buf >= 16 bytes. */
const char *vhu_req_name(uint32_t req, char *buf, size_t cap);

#endif /* DEVICES_VHOST_VHOST_USER_MSG_H */
