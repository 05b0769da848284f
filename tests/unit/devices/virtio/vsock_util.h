/*
 * Shared helpers of the virtio-vsock unit tests (test_vsock*.c): a device
 * on a temporary uds_path driven through tests/lib/net_harness.h, a guest
 * that sends packets on the tx queue and reads what the device wrote into
 * reusable rx buffers, and host peers on real UNIX sockets.
 */
#ifndef TESTS_UNIT_VSOCK_UTIL_H
#define TESTS_UNIT_VSOCK_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/vsock.h"
#include "tests/lib/net_harness.h"

#define VT_CID     3
#define VT_RX_BUF  (VIRTIO_VSOCK_HDR_LEN + 4096)
#define VT_RX_POOL 64

struct vt_pkt {
    uint64_t src_cid, dst_cid;
    uint32_t src_port, dst_port, len;
    uint16_t type, op;
    uint32_t flags, buf_alloc, fwd_cnt;
    uint8_t data[4096];
};

struct vt {
    struct net_harness h;
    char dir[48], path[80];
    gpa_t tx_gpa;
    gpa_t rx_gpa[VT_RX_POOL];
    gpa_t head_gpa[VIRTIO_VSOCK_QUEUE_SIZE];
    uint16_t rx_posted, rx_seen;
};

extern struct vt vt;

/* Create the device (handshake timeout `hs_ms`) on a fresh directory and start it. */
void vt_start(unsigned hs_ms);
/* Destroy the device and remove the directory. */
void vt_stop(void);
/* Send one packet (payload `data`, `len` bytes; `chain_len` 0: header + len). */
void vt_send_raw(uint64_t src_cid, uint64_t dst_cid, uint32_t src_port, uint32_t dst_port,
                 uint16_t type, uint16_t op, uint32_t flags, uint32_t buf_alloc, uint32_t fwd_cnt,
                 const void *data, uint32_t len, uint32_t chain_len);
/* A well-formed STREAM packet from the guest to the host. */
void vt_send(uint32_t gport, uint32_t hport, uint16_t op, uint32_t flags, const void *data,
             uint32_t len);
/* Keep `n` rx buffers posted, kick, pump the loop. */
void vt_pump(unsigned n);
/* Next packet the device delivered; false if none. */
bool vt_recv(struct vt_pkt *p);
/* Listen on "<uds_path>_<port>" (backlog 128); returns the fd. */
int vt_listen(uint32_t port);
/* Accept on a listener (waiting up to 1 s). */
int vt_accept(int lfd);
/* Connect a host peer to uds_path. */
int vt_host_connect(void);
/* Read what is waiting on fd (up to len, waiting up to wait_ms for the first byte). */
size_t vt_read(int fd, void *buf, size_t len, int wait_ms);
/* The device's counters now. */
struct virtio_vsock_stats vt_stats(void);

#endif
