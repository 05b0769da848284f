/*
 * virtio_spec.h - the virtio 1.2 facts both test guests' drivers use: the
 * virtio-mmio register map, status and feature bits, device ids, the split
 * ring layout and the blk/net/console definitions.  Constants and layouts
 * only, every layout pinned with _Static_assert.
 */
#ifndef WISP_GUEST_VIRTIO_SPEC_H
#define WISP_GUEST_VIRTIO_SPEC_H

#include "gstr.h"

/* ---- virtio-mmio registers (virtio 1.2 section 4.2.2) ---- */
#define VIRTIO_MMIO_MAGIC            0x000
#define VIRTIO_MMIO_VERSION          0x004
#define VIRTIO_MMIO_DEVICE_ID        0x008
#define VIRTIO_MMIO_VENDOR_ID        0x00c
#define VIRTIO_MMIO_DEV_FEATURES     0x010
#define VIRTIO_MMIO_DEV_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRV_FEATURES     0x020
#define VIRTIO_MMIO_DRV_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL        0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX    0x034
#define VIRTIO_MMIO_QUEUE_NUM        0x038
#define VIRTIO_MMIO_QUEUE_READY      0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY     0x050
#define VIRTIO_MMIO_INT_STATUS       0x060
#define VIRTIO_MMIO_INT_ACK          0x064
#define VIRTIO_MMIO_STATUS           0x070
#define VIRTIO_MMIO_QUEUE_DESC_LO    0x080
#define VIRTIO_MMIO_QUEUE_DESC_HI    0x084
#define VIRTIO_MMIO_QUEUE_AVAIL_LO   0x090
#define VIRTIO_MMIO_QUEUE_AVAIL_HI   0x094
#define VIRTIO_MMIO_QUEUE_USED_LO    0x0a0
#define VIRTIO_MMIO_QUEUE_USED_HI    0x0a4
#define VIRTIO_MMIO_CONFIG_GEN       0x0fc
#define VIRTIO_MMIO_CONFIG           0x100

#define VIRTIO_MMIO_MAGIC_VALUE 0x74726976u /* "virt" */

/* Device status bits. */
#define VIRTIO_ST_ACKNOWLEDGE 1
#define VIRTIO_ST_DRIVER      2
#define VIRTIO_ST_DRIVER_OK   4
#define VIRTIO_ST_FEATURES_OK 8
#define VIRTIO_ST_NEEDS_RESET 64
#define VIRTIO_ST_FAILED      128

/* Transport feature bits. */
#define VIRTIO_F_INDIRECT_DESC   28
#define VIRTIO_F_EVENT_IDX       29
#define VIRTIO_F_VERSION_1       32
#define VIRTIO_F_ACCESS_PLATFORM 33
#define VIRTIO_F_RING_PACKED     34
#define VBIT(b)                  (1ull << (b))

/* Device ids (section 5). */
#define VIRTIO_ID_NET     1
#define VIRTIO_ID_BLK     2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG     4
#define VIRTIO_ID_BALLOON 5

/* ---- split virtqueue layout (section 2.7) ---- */
#define VRING_DESC_F_NEXT          1
#define VRING_DESC_F_WRITE         2
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY     1

struct vring_desc {
    u64 addr;
    u32 len;
    u16 flags;
    u16 next;
};
struct vring_avail {
    u16 flags;
    u16 idx;
    u16 ring[];
};
struct vring_used_elem {
    u32 id;
    u32 len;
};
struct vring_used {
    u16 flags;
    u16 idx;
    struct vring_used_elem ring[];
};
_Static_assert(sizeof(struct vring_desc) == 16, "desc");
_Static_assert(sizeof(struct vring_avail) == 4, "avail");
_Static_assert(sizeof(struct vring_used_elem) == 8, "used elem");
_Static_assert(sizeof(struct vring_used) == 4, "used");

/* ---- virtio-blk (section 5.2) ---- */
#define VIRTIO_BLK_F_SIZE_MAX     1
#define VIRTIO_BLK_F_SEG_MAX      2
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_BLK_SIZE     6
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_DISCARD      13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define VIRTIO_BLK_CFG_CAPACITY 0 /* le64, in 512-byte sectors */
#define VIRTIO_BLK_CFG_SIZE_MAX 8
#define VIRTIO_BLK_CFG_SEG_MAX  12
#define VIRTIO_BLK_CFG_BLK_SIZE 20

#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK     0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_ID_BYTES 20

struct virtio_blk_req_hdr {
    u32 type;
    u32 reserved;
    u64 sector;
};
struct virtio_blk_discard_wz {
    u64 sector;
    u32 num_sectors;
    u32 flags; /* bit 0: unmap (write zeroes only) */
};
_Static_assert(sizeof(struct virtio_blk_req_hdr) == 16, "blk hdr");
_Static_assert(sizeof(struct virtio_blk_discard_wz) == 16, "blk discard");

/* ---- virtio-net (section 5.1) ---- */
#define VIRTIO_NET_F_MTU       3
#define VIRTIO_NET_F_MAC       5
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS    16
#define VIRTIO_NET_CFG_MAC     0
#define VIRTIO_NET_CFG_STATUS  6
#define VIRTIO_NET_CFG_MTU     10
#define VIRTIO_NET_S_LINK_UP   1

/* With VERSION_1 the header always has num_buffers (12 bytes). */
struct virtio_net_hdr {
    u8 flags;
    u8 gso_type;
    u16 hdr_len;
    u16 gso_size;
    u16 csum_start;
    u16 csum_offset;
    u16 num_buffers;
};
_Static_assert(sizeof(struct virtio_net_hdr) == 12, "net hdr");

/* ---- virtio-console (section 5.3): port 0 only, no MULTIPORT ---- */
#define VIRTIO_CONSOLE_RXQ 0
#define VIRTIO_CONSOLE_TXQ 1

#endif
