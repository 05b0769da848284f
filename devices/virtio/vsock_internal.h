/*
 * Shared between the virtio-vsock files (vsock.c: virtio ops and queues;
 * vsock_conn.c: connection table, packet handling, host sockets).  Not for
 * other modules: they use vsock.h.
 */
#ifndef DEVICES_VIRTIO_VSOCK_INTERNAL_H
#define DEVICES_VIRTIO_VSOCK_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/backends/vsock_uds.h"
#include "devices/virtio/vsock.h"

/* First host port handed to host-initiated connections (as Firecracker does). */
#define VSOCK_HOST_PORT_BASE (1U << 30)
/* How long a guest that closed may take to have its last bytes written. */
#define VSOCK_LINGER_MS 10000

enum vsock_conn_state {
    VC_FREE = 0,
    VC_HANDSHAKE,  /* host peer accepted, reading "CONNECT <port>\n" */
    VC_CONNECTING, /* REQUEST sent (or due) to the guest, waiting for RESPONSE */
    VC_ESTABLISHED,
};

/* Control packets due to the guest (struct vsock_conn.ctl). */
#define VC_CTL_REQUEST  1u
#define VC_CTL_RESPONSE 2u
#define VC_CTL_CREDIT   4u
#define VC_CTL_SHUTDOWN 8u

struct vsock_conn {
    enum vsock_conn_state state;
    int fd;
    uint32_t host_port, guest_port;
    unsigned ctl;  /* VC_CTL_* due */
    bool readable; /* the host socket may have bytes (or EOF) for the guest */
    bool hup;      /* the host socket hung up: no longer watched */
    bool host_eof; /* read returned 0: SHUTDOWN(SEND) was or will be sent */
    bool guest_send_done, guest_rcv_done; /* guest SHUTDOWN flags seen */
    bool host_wr_shut;                    /* shutdown(SHUT_WR) done on the host socket */
    unsigned watched;                     /* bit 0: EPOLLIN, bit 1: EPOLLOUT, bit 2: registered */
    uint64_t deadline_ms;                 /* handshake / linger limit; 0: none */
    /* Guest's credit for our sends. */
    uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
    /* Our credit for the guest: bytes written to the host socket. */
    uint32_t fwd_cnt, fwd_cnt_sent;
    /* Host-bound bytes: "OK <port>\n" first, then buf[off, off + len). */
    char ok[16];
    uint8_t ok_off, ok_len;
    uint8_t *buf; /* VIRTIO_VSOCK_CONN_BUF bytes */
    uint32_t off, len;
    char line[VSOCK_UDS_LINE_MAX];
    uint8_t line_len;
};

struct vsock_rst {
    uint64_t src_cid;
    uint32_t src_port, dst_port;
};

struct virtio_vsock {
    struct virtio_dev vdev; /* first: the ops get &vdev */
    uint64_t cid;
    unsigned handshake_ms;
    struct vsock_uds *uds;
    int kick_efd;
    bool kick_registered, uds_registered;
    bool drop_pending;        /* reset or load: drop every connection on the main loop */
    bool reset_event_pending; /* TRANSPORT_RESET still to deliver */
    struct vsock_conn conns[VIRTIO_VSOCK_MAX_CONNS];
    unsigned nconns, rr;
    uint32_t next_host_port;
    struct vsock_rst rst[VIRTIO_VSOCK_RST_RING];
    unsigned rst_head, rst_len;
    bool rxc_held; /* rxc was popped and waits for a packet */
    struct virtq_chain rxc, txc;
    struct iovec sub[VIRTQ_MAX_IOV];
    struct virtio_vsock_stats stats;
};

static inline struct virtio_vsock *to_vsock(struct virtio_dev *d)
{
    return (struct virtio_vsock *)d;
}

/* Monotonic clock in milliseconds. */
uint64_t vsock_now_ms(void);

/* Handle one tx packet (header already copied out and `len` checked against the chain). */
void vsock_conn_tx(struct virtio_vsock *v, const uint8_t *hdr, const struct virtq_chain *c);
/* Reply RST to a packet whose header is `hdr` (never to an RST). */
void vsock_rst_reply(struct virtio_vsock *v, const uint8_t *hdr);
/* Write the next packet due to the guest into rx chain `c`; bytes written, 0 if none. */
uint32_t vsock_conn_rx(struct virtio_vsock *v, const struct virtq_chain *c);
/* The host sockets have news (main loop). */
void vsock_conn_backend(struct virtio_vsock *v);
/* Close every connection, forget due replies. */
void vsock_conn_drop_all(struct virtio_vsock *v);

#endif /* DEVICES_VIRTIO_VSOCK_INTERNAL_H */
