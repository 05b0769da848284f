/*
 * Private to the virtio-net model: the device object and the data-path
 * entry points shared by net.c (device model, creation, state) and
 * net_queues.c (TX and RX).  Nothing outside devices/virtio/net*.c
 * includes this.  Every function here is called with dev->lock held.
 */
#ifndef DEVICES_VIRTIO_NET_INTERNAL_H
#define DEVICES_VIRTIO_NET_INTERNAL_H

#include "devices/virtio/net.h"

#define NET_HDR TAP_VNET_HDR_LEN
/* The bounce buffer is one byte longer than the longest frame so that a
 * longer one shows as a full buffer (see net_backend_ops.recv). */
#define NET_RX_BUF_LEN (NET_HDR + VIRTIO_NET_MAX_FRAME + 1)
/* Chains one frame may occupy; a frame needing more is dropped. */
#define NET_MAX_HELD VIRTIO_NET_QUEUE_SIZE

struct net_held {
    uint16_t head;
    uint32_t len; /* bytes of the frame written into this chain */
};

struct virtio_net {
    struct virtio_dev vdev; /* first: the ops get &vdev */
    struct net_backend *be;
    int ep;       /* private epoll set: kick_efd, and be->fd while rx_polling */
    int kick_efd; /* written to reschedule ourselves on the main loop */
    bool registered, rx_polling;
    uint8_t mac[6];
    uint16_t status;

    uint8_t *rx_buf;       /* NET_RX_BUF_LEN bytes: the frame in hand, header first */
    size_t rx_len, rx_off; /* its length (0: none) and how much is in held chains */
    struct net_held held[NET_MAX_HELD];
    unsigned nheld;
    struct virtq_chain *rx_first; /* iovecs of held[0] */
    /* Chains held on the migration source, completed with length 0 here. */
    uint16_t ret_heads[NET_MAX_HELD];
    unsigned nreturn;

    struct virtq_chain *chain; /* scratch for pops */
    struct iovec *tx_iov;      /* VIRTQ_MAX_IOV + 1 entries */
    uint8_t zero_hdr[NET_HDR]; /* the header every TX frame carries */
    struct virtio_net_stats stats;
};

/* Write the kick eventfd: the main loop runs TX and RX again soon. */
void net_kick_self(struct virtio_net *n);

/* Start or stop polling the backend fd (idempotent). */
void net_rx_poll(struct virtio_net *n, bool on);

/*
 * Send what the TX queue holds, at most VIRTIO_NET_BUDGET chains, then
 * reschedule through the kick eventfd if more may be waiting.
 */
void net_tx_process(struct virtio_net *n);

/*
 * Move frames from the backend into the RX queue, at most VIRTIO_NET_BUDGET
 * per call; stops polling the backend when the guest has no buffers.
 */
void net_rx_process(struct virtio_net *n);

#endif /* DEVICES_VIRTIO_NET_INTERNAL_H */
