/*
 * virtio-vsock (virtio 1.2 section 5.10) with a Firecracker-style hybrid
 * host side (devices/backends/vsock_uds.h): guest AF_VSOCK stream sockets
 * are carried to and from host processes over UNIX sockets.
 *
 * Queues: rx 0 (device to driver), tx 1 (driver to device), event 2.
 * Config space: le64 guest_cid.  No feature bits: STREAM only (a
 * SEQPACKET or unknown type is answered with RST).
 *
 * Every packet starts with the 44-byte header below.  A tx header is copied
 * out of guest memory once and every field checked against that copy: len at
 * most the bytes the chain carries and at most VIRTIO_VSOCK_MAX_PKT, src_cid
 * the guest's CID (else dropped), dst_cid the host (else RST), type STREAM,
 * a known op (else RST).  Every tx chain is completed when popped.
 *
 * Connections (at most VIRTIO_VSOCK_MAX_CONNS, keyed by (host port, guest
 * port)):
 *   host -> guest: a host process connects to uds_path, writes
 *     "CONNECT <port>\n" (at most VSOCK_UDS_LINE_MAX bytes, within the
 *     handshake timeout); the device sends REQUEST from a fresh host port
 *     (>= 2^30) and on the guest's RESPONSE writes "OK <host port>\n".
 *   guest -> host: REQUEST to CID 2 port P connects to "<uds_path>_<P>"
 *     (never waits); RESPONSE on success, RST otherwise.
 * Flow control is the spec's credit scheme in both directions:
 *   guest -> host: the device advertises buf_alloc = VIRTIO_VSOCK_CONN_BUF
 *     per connection and counts in fwd_cnt the bytes the host socket took;
 *     bytes the socket cannot take now wait in that per-connection buffer.
 *     A guest that sends beyond its credit has its connection reset.  A host
 *     peer that stops reading therefore costs at most CONN_BUF bytes, after
 *     which the guest simply gets no more credit: no tx chain is held, no
 *     other connection waits.
 *   host -> guest: the host socket is read only while the guest's credit
 *     (its buf_alloc minus bytes in flight) is positive, straight into rx
 *     chains; a guest that does not read pushes back on the host peer.
 * Host half-close (EOF) is sent as SHUTDOWN(SEND); a guest SHUTDOWN with
 * SEND closes the host socket once its buffered bytes are written (or at
 * once with RCV|SEND) and is answered with RST.  Orphan replies (RST to a
 * packet without connection) go through a ring of VIRTIO_VSOCK_RST_RING
 * entries; overflow is dropped and counted.
 *
 * State: "virtio-vsock" section, version 1, holding the CID.  Connections
 * cannot move with the VM: on load the device drops every connection and,
 * as soon as the driver has posted an event buffer, sends
 * VIRTIO_VSOCK_EVENT_TRANSPORT_RESET so the guest drops its sockets too.
 * Device reset (status 0) also drops every connection.
 */
#ifndef DEVICES_VIRTIO_VSOCK_H
#define DEVICES_VIRTIO_VSOCK_H

#include <stdint.h>

#include "devices/virtio/virtio.h"
#include "vmm/error.h"

#define VIRTIO_VSOCK_RXQ        0
#define VIRTIO_VSOCK_TXQ        1
#define VIRTIO_VSOCK_EVQ        2
#define VIRTIO_VSOCK_QUEUE_SIZE 256
#define VIRTIO_VSOCK_CFG_SIZE   8

#define VIRTIO_VSOCK_HOST_CID     2
#define VIRTIO_VSOCK_MAX_CONNS    64
#define VIRTIO_VSOCK_CONN_BUF     (64U * 1024) /* buf_alloc we advertise */
#define VIRTIO_VSOCK_MAX_PKT      (64U * 1024) /* longest payload accepted */
#define VIRTIO_VSOCK_RST_RING     64
#define VIRTIO_VSOCK_BUDGET       64 /* chains per queue and event */
#define VIRTIO_VSOCK_HANDSHAKE_MS 2000

/* Packet header (virtio 1.2 5.10.6), all little-endian. */
#define VIRTIO_VSOCK_HDR_LEN 44
#define VSOCK_HDR_SRC_CID    0
#define VSOCK_HDR_DST_CID    8
#define VSOCK_HDR_SRC_PORT   16
#define VSOCK_HDR_DST_PORT   20
#define VSOCK_HDR_LEN        24
#define VSOCK_HDR_TYPE       28
#define VSOCK_HDR_OP         30
#define VSOCK_HDR_FLAGS      32
#define VSOCK_HDR_BUF_ALLOC  36
#define VSOCK_HDR_FWD_CNT    40

#define VIRTIO_VSOCK_TYPE_STREAM 1

enum virtio_vsock_op {
    VIRTIO_VSOCK_OP_INVALID = 0,
    VIRTIO_VSOCK_OP_REQUEST = 1,
    VIRTIO_VSOCK_OP_RESPONSE = 2,
    VIRTIO_VSOCK_OP_RST = 3,
    VIRTIO_VSOCK_OP_SHUTDOWN = 4,
    VIRTIO_VSOCK_OP_RW = 5,
    VIRTIO_VSOCK_OP_CREDIT_UPDATE = 6,
    VIRTIO_VSOCK_OP_CREDIT_REQUEST = 7,
};

#define VIRTIO_VSOCK_SHUTDOWN_RCV  1
#define VIRTIO_VSOCK_SHUTDOWN_SEND 2

/* Event queue: le32 id. */
#define VIRTIO_VSOCK_EVENT_TRANSPORT_RESET 0

struct virtio_vsock_config {
    const char *id;        /* instance id ("vsock0"); NULL: "vsock" */
    uint64_t guest_cid;    /* >= 3, < 2^32 - 1 */
    const char *uds_path;  /* host-side socket path (see vsock_uds.h) */
    unsigned handshake_ms; /* 0: VIRTIO_VSOCK_HANDSHAKE_MS (tests shorten it) */
};

/* Counters for --stats and tests; they survive reset and are not migrated. */
struct virtio_vsock_stats {
    uint64_t tx_pkts, rx_pkts;   /* packets from / to the guest */
    uint64_t tx_bytes, rx_bytes; /* payload bytes from / to the guest */
    uint64_t bad_pkts;           /* malformed headers, short chains, wrong src cid */
    uint64_t rsts;               /* RST packets sent */
    uint64_t rsts_dropped;       /* orphan RSTs lost to a full ring */
    uint64_t credit_violations;  /* guest sent beyond its credit */
    uint64_t conns_opened;       /* connections established, both directions */
    uint64_t conns_refused;      /* table full, nobody listening, handshake refused */
    uint64_t handshake_timeouts; /* host peers that never finished, guests that never answered */
    uint64_t reset_events;       /* TRANSPORT_RESET events delivered */
};

/*
 * Create the device listening on cfg->uds_path (vsock_uds_open()'s errors
 * are reported as is).  `mem` and `loop` must outlive it; two fds are
 * registered in `loop`.  Destroy with (*out)->ops->destroy(), which closes
 * every connection and removes the path.
 * Errors: WISP_EXIT_USAGE (cid out of range, path), WISP_EXIT_FAILURE (out
 * of memory, eventfd, event loop).  Returns 0 or -errno.
 */
int virtio_vsock_create(const struct virtio_vsock_config *cfg, const struct gmem *mem,
                        struct evloop *loop, struct virtio_dev **out,
                        struct errbuf *err) __must_check;

/* Snapshot of the counters of a device made by virtio_vsock_create(). */
void virtio_vsock_get_stats(struct virtio_dev *d, struct virtio_vsock_stats *st);

/* Connections currently in the table (tests). */
unsigned virtio_vsock_conn_count(struct virtio_dev *d);

#endif /* DEVICES_VIRTIO_VSOCK_H */
