/*
 * virtio-net device model (virtio 1.2 section 5.1): one RX/TX queue pair in
 * front of a frame backend (a tap, see devices/backends/tap.h).
 *
 * Offered features: VERSION_1, MAC, MRG_RXBUF and STATUS (link always up),
 * plus the transport features the common code adds.  No checksum or
 * segmentation offloads: every frame crosses with an all-zero header except
 * num_buffers, and a TX header that says otherwise is zeroed before the
 * frame reaches the backend.
 *
 * Data path, all on the main event loop under dev->lock:
 *   TX  the guest's kick pops chains (at most VIRTIO_NET_BUDGET per event;
 *       the rest is rescheduled through the device's own eventfd), sends
 *       each as one frame with writev, completes it with length 0.
 *   RX  while the RX queue has buffers the backend fd is polled; a frame is
 *       read into a bounce buffer and spread over as many chains as it needs
 *       (one without MRG_RXBUF), num_buffers is set, and the chains are
 *       completed together with one interrupt per batch.  When the guest has
 *       no buffers the backend fd is no longer polled, the frame stays in the
 *       bounce buffer, and the next RX kick resumes: a full RX ring delays
 *       frames but never wedges RX and never loses the frame in hand.
 * Frames the device has to drop (too long for the backend or for what the
 * guest can offer, refused by the backend, malformed) are counted in
 * struct virtio_net_stats, never dropped silently.
 *
 * State (ops->save/load): one "virtio-net" section, version 1: the MAC and
 * status the guest saw, the frame in hand if none of it was delivered yet
 * (up to 60 KiB; a longer one is lost in the move), and the heads of chains
 * held for a partly delivered frame, which the destination completes with
 * length 0 (that frame is lost).  Load checks a unicast MAC, known status
 * bits, head indices below the queue size and the frame length, and leaves
 * the device unchanged on error (-EINVAL, or the vstate error).
 *
 * The device's events reach the main loop through one fd registered at
 * creation, so the loop must exist before the device (see net.c).
 */
#ifndef DEVICES_VIRTIO_NET_H
#define DEVICES_VIRTIO_NET_H

#include <stdint.h>

#include "devices/backends/tap.h"
#include "devices/virtio/virtio.h"
#include "vmm/error.h"

/* Device feature bits (virtio 1.2 section 5.1.3). */
#define VIRTIO_NET_F_MAC       5
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS    16

/* Config space `status` bits. */
#define VIRTIO_NET_S_LINK_UP 1

/* Queues: receiveq1 and transmitq1. */
#define VIRTIO_NET_RXQ        0
#define VIRTIO_NET_TXQ        1
#define VIRTIO_NET_QUEUE_SIZE 256

/* Longest Ethernet frame (without the virtio header) accepted either way. */
#define VIRTIO_NET_MAX_FRAME 65550
/* Shortest frame: an Ethernet header. */
#define VIRTIO_NET_MIN_FRAME 14
/* Chains (TX) or frames (RX) handled per event before yielding to the loop. */
#define VIRTIO_NET_BUDGET 64

/* struct virtio_net_hdr_v1 flags and gso_type values this device knows. */
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_GSO_NONE     0

/* Header before every frame (virtio 1.2 section 5.1.6), little-endian. */
struct virtio_net_hdr_v1 {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;
};
_Static_assert(sizeof(struct virtio_net_hdr_v1) == TAP_VNET_HDR_LEN,
               "virtio_net_hdr_v1 is 12 bytes");

/* Config space: mac[6] at 0, le16 status at 6 (later fields need features we do not offer). */
#define VIRTIO_NET_CFG_MAC    0
#define VIRTIO_NET_CFG_STATUS 6
#define VIRTIO_NET_CFG_SIZE   8

struct virtio_net_config {
    const char *id;  /* instance id ("net0"); NULL: "net" */
    const char *tap; /* host tap interface, for virtio_net_create() */
    bool has_mac;    /* false: a random locally administered unicast MAC */
    uint8_t mac[6];
};

/* Counters for --stats and tests; they survive reset and are not migrated. */
struct virtio_net_stats {
    uint64_t tx_frames, tx_bytes; /* frames the backend took (bytes without header) */
    uint64_t tx_dropped;          /* refused by the backend (full, down, error) */
    uint64_t tx_errors;           /* malformed by the guest: header short, frame size, chain */
    uint64_t tx_hdr_zeroed;       /* headers that asked for offloads and were zeroed */
    uint64_t rx_frames, rx_bytes; /* frames delivered to the guest (bytes without header) */
    uint64_t rx_dropped;          /* too long, too short, or no room in what the guest offered */
    uint64_t rx_bad_chains;       /* RX chains unusable (no room for the header, over the cap) */
    uint64_t rx_paused;           /* times RX stopped polling the backend for lack of buffers */
};

/*
 * Create a virtio-net device on tap `cfg->tap` (tap_open()).  `mem` and
 * `loop` must outlive the device; `loop` must already be initialised
 * (evloop_init): the device registers one fd in it here.  The device is
 * returned with its transport unset; destroy it with (*out)->ops->destroy().
 *
 * Errors (one line in `err`): the tap_open() errors; WISP_EXIT_FAILURE for
 * out of memory, eventfd/epoll creation or an event loop without room.
 * Returns 0 or -errno.
 */
int virtio_net_create(const struct virtio_net_config *cfg, const struct gmem *mem,
                      struct evloop *loop, struct virtio_dev **out,
                      struct errbuf *err) __must_check;

/*
 * Same with an already open backend, of which the device takes ownership
 * (destroyed on failure too).  Tests use it with tap_from_fd() on a
 * socketpair.  cfg->tap is ignored.
 */
int virtio_net_create_with_backend(const struct virtio_net_config *cfg, struct net_backend *be,
                                   const struct gmem *mem, struct evloop *loop,
                                   struct virtio_dev **out, struct errbuf *err) __must_check;

/* Snapshot of the counters of a device made by virtio_net_create*(). */
void virtio_net_get_stats(struct virtio_dev *d, struct virtio_net_stats *st);

/*
 * The RX heads a saved virtio-net record (ops->save's bytes, `len` long)
 * asks the destination to return with length 0: up to `max` go to heads[].
 * For the snapshot matcher, which checks them against the queue before
 * anything is loaded.  Returns their number, or -errno for a record that
 * does not parse (ops->load refuses it too).
 */
int virtio_net_record_returns(const uint8_t *rec, size_t len, uint16_t *heads, unsigned max);

/*
 * Parse "52:54:00:12:34:56" (six two-digit hex bytes, ':' separated) into
 * mac.  Returns 0, or -EINVAL for another syntax or a multicast address
 * (a NIC's own address must be unicast).
 */
int virtio_net_parse_mac(const char *s, uint8_t mac[6]) __must_check;

#endif /* DEVICES_VIRTIO_NET_H */
