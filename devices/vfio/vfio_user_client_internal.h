/*
 * What vfio_user_client.c (connection, transactions, DMA serving) and
 * vfio_user_client_ops.c (the device commands) share.  Not for other users:
 * the public interface is vfio_user_client.h.
 */
#ifndef DEVICES_VFIO_VFIO_USER_CLIENT_INTERNAL_H
#define DEVICES_VFIO_VFIO_USER_CLIENT_INTERNAL_H

#include <pthread.h>

#include "devices/vfio/vfio_user_client.h"

struct vfio_user_client {
    pthread_mutex_t lock; /* serialises every call */
    int sock;
    int timeout_ms;
    bool failed;
    int fail_err; /* why it failed (negative errno), for attach's return */
    uint16_t next_id;
    struct vfio_user_caps caps; /* the server's, clamped to wisp's limits */
    uint8_t *tx;                /* VFIO_USER_MSG_MAX bytes each */
    uint8_t *rx;
    struct vfio_user_hdr rx_hdr; /* header of the reply in rx */
    unsigned nranges;
    struct vfio_user_dma_range ranges[VFIO_USER_MAX_DMA_RANGES];
};

/* Payload area of the transmit buffer and of the received reply. */
#define CLIENT_TX_PAYLOAD(c) ((c)->tx + VFIO_USER_HDR_SIZE)
#define CLIENT_RX_PAYLOAD(c) ((c)->rx + VFIO_USER_HDR_SIZE)
#define CLIENT_RX_LEN(c)     ((size_t)(c)->rx_hdr.size - VFIO_USER_HDR_SIZE)

/*
 * Sends the command cmd with len payload bytes already in CLIENT_TX_PAYLOAD
 * and nfds fds, then waits (serving the server's DMA requests meanwhile) for
 * its reply, left in c->rx / c->rx_hdr.  Fds received with the reply are
 * closed.  Called with c->lock held.  Returns 0, the server's error reply as
 * a negative errno (the client stays usable), or -EIO after marking the
 * client failed (any protocol violation, timeout or lost server).
 */
int vfio_user_client_transact(struct vfio_user_client *c, uint16_t cmd, size_t len, const int *fds,
                              unsigned nfds);

/* Marks the client failed (logging why, once) and returns -EIO.  Lock held. */
int vfio_user_client_fail(struct vfio_user_client *c, const char *why, int err);

#endif /* DEVICES_VFIO_VFIO_USER_CLIENT_INTERNAL_H */
