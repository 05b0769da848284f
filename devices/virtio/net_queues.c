/*
 * virtio-net data path: TX and RX between the virtqueues and the backend
 * (see net.h for the behaviour and net.c for the device model).
 *
 * The RX frame in hand.  A frame read from the backend stays in `rx_buf`
 * until the guest has buffers for all of it.  With MRG_RXBUF it may need
 * several chains; they are popped and filled one by one but completed only
 * when the last one is filled, because the driver reads the num_buffers
 * chains of one frame as consecutive used entries.  Chains popped for a
 * frame that is still incomplete are "held" (n->held).  If a frame needs
 * more chains than we can hold, or does not fit one chain without
 * MRG_RXBUF, it is dropped (counted) and the held chains are completed with
 * length 0, which Linux counts as a length error and refills.
 */
#include "devices/virtio/net_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "vmm/log.h"

/* Per-chain caps for virtq_pop(): TX is one frame; RX chains may be larger
 * than any frame (we only fill what we need) but not absurdly so. */
#define TX_CHAIN_MAX ((uint64_t)NET_HDR + VIRTIO_NET_MAX_FRAME)
#define RX_CHAIN_MAX (1ULL * MiB)

#define LIVE_BLOCKERS (VIRTIO_STATUS_FAILED | VIRTIO_STATUS_DEVICE_NEEDS_RESET)

/* May the data path touch queue q?  (The transport applies the same rule to kicks.) */
static bool queue_usable(const struct virtio_dev *d, uint16_t q)
{
    return (d->status & VIRTIO_STATUS_DRIVER_OK) && !(d->status & LIVE_BLOCKERS) &&
           d->vq[q].active && !d->vq[q].broken;
}

void net_kick_self(struct virtio_net *n)
{
    uint64_t one = 1;
    ssize_t r __unused = write(n->kick_efd, &one, sizeof(one));
}

/* Start or stop polling the backend fd.  Idempotent. */
void net_rx_poll(struct virtio_net *n, bool on)
{
    if (on == n->rx_polling)
        return;
    if (on) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = n->be->fd};
        if (epoll_ctl(n->ep, EPOLL_CTL_ADD, n->be->fd, &ev) < 0) {
            /* Cannot happen for a valid fd in our own set; without polling RX
             * would stall silently, so make it visible to the guest. */
            virtio_dev_fail(&n->vdev, "cannot poll the network backend");
            return;
        }
    } else {
        (void)epoll_ctl(n->ep, EPOLL_CTL_DEL, n->be->fd, NULL);
    }
    n->rx_polling = on;
}

/* ---- TX ----------------------------------------------------------------- */

/* Send one popped chain as a frame; every outcome is counted. */
static void tx_one(struct virtio_net *n, const struct virtq_chain *c)
{
    struct virtio_net_hdr_v1 hdr;
    if (c->out_len < NET_HDR) {
        n->stats.tx_errors++;
        METRICS_ADD(n->vdev.metrics, errors, 1);
        log_ratelimited(LOG_WARN, "virtio %s: TX chain of %llu bytes has no complete header",
                        n->vdev.id, (unsigned long long)c->out_len);
        return;
    }
    uint64_t frame_len = c->out_len - NET_HDR;
    if (frame_len < VIRTIO_NET_MIN_FRAME) {
        n->stats.tx_errors++;
        METRICS_ADD(n->vdev.metrics, errors, 1);
        return;
    }
    /* Read once; the backend gets our own all-zero header, never the guest's
     * bytes, which could change after this check. */
    if (virtq_chain_read(c, 0, &hdr, sizeof(hdr)) != sizeof(hdr)) {
        n->stats.tx_errors++;
        METRICS_ADD(n->vdev.metrics, errors, 1);
        return;
    }
    if (hdr.flags || hdr.gso_type != VIRTIO_NET_HDR_GSO_NONE || hdr.hdr_len || hdr.gso_size ||
        hdr.csum_start || hdr.csum_offset || hdr.num_buffers)
        n->stats.tx_hdr_zeroed++;

    /* iov[0] is our header; then the readable iovecs minus the guest's header. */
    struct iovec *iov = n->tx_iov;
    int cnt = 0;
    iov[cnt++] = (struct iovec){.iov_base = n->zero_hdr, .iov_len = NET_HDR};
    uint64_t skip = NET_HDR;
    for (unsigned i = 0; i < c->n_out && i < VIRTQ_MAX_IOV; i++) {
        size_t len = c->iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        iov[cnt++] =
            (struct iovec){.iov_base = (uint8_t *)c->iov[i].iov_base + skip, .iov_len = len - skip};
        skip = 0;
    }
    ssize_t r = n->be->ops->send(n->be, iov, cnt);
    if (r < 0) {
        n->stats.tx_dropped++;
        METRICS_ADD(n->vdev.metrics, drops, 1);
        if (r != -EAGAIN && r != -ENOBUFS)
            log_ratelimited(LOG_WARN, "virtio %s: sending to %s: %s", n->vdev.id, n->be->name,
                            strerror((int)-r));
        return;
    }
    n->stats.tx_frames++;
    METRICS_ADD(n->vdev.metrics, requests, 1);
    n->stats.tx_bytes += frame_len;
    METRICS_ADD(n->vdev.metrics, bytes_written, frame_len);
}

void net_tx_process(struct virtio_net *n)
{
    struct virtio_dev *d = &n->vdev;
    struct virtq *q = &d->vq[VIRTIO_NET_TXQ];
    unsigned done = 0;
    bool pushed = false;

    if (!queue_usable(d, VIRTIO_NET_TXQ))
        return;
    for (;;) {
        /* No kicks while we drain; re-enabled (and re-checked) below. */
        virtq_set_notification(q, false);
        while (done < VIRTIO_NET_BUDGET) {
            int r = virtq_pop(q, n->chain, TX_CHAIN_MAX);
            if (r == 0)
                break;
            if (r == -E2BIG) {
                n->stats.tx_errors++;
                METRICS_ADD(n->vdev.metrics, errors, 1);
                log_ratelimited(LOG_WARN, "virtio %s: TX chain over %llu bytes refused", d->id,
                                (unsigned long long)TX_CHAIN_MAX);
            } else if (r < 0) {
                virtio_dev_fail(d, "malformed TX queue");
                goto out;
            } else {
                tx_one(n, n->chain);
            }
            virtq_push(q, n->chain->head, 0);
            pushed = true;
            done++;
        }
        if (done >= VIRTIO_NET_BUDGET) {
            /* Leave the rest for the next loop iteration so other devices run. */
            net_kick_self(n);
            break;
        }
        virtq_set_notification(q, true);
        if (!virtq_has_avail(q))
            break;
    }
out:
    if (pushed)
        virtio_dev_signal(d, VIRTIO_NET_TXQ);
}

/* ---- RX ----------------------------------------------------------------- */

/* Complete every held chain with length 0 and forget the frame in hand. */
static void rx_drop_frame(struct virtio_net *n, bool *pushed)
{
    struct virtq *q = &n->vdev.vq[VIRTIO_NET_RXQ];
    for (unsigned i = 0; i < n->nheld; i++)
        virtq_push(q, n->held[i].head, 0);
    *pushed |= n->nheld > 0;
    n->nheld = 0;
    n->rx_len = n->rx_off = 0;
    n->stats.rx_dropped++;
    METRICS_ADD(n->vdev.metrics, drops, 1);
}

/*
 * Give the frame in rx_buf to the guest.  Returns 1 when it was delivered or
 * dropped, 0 when the ring ran out of buffers (state kept for the next
 * kick), -EPROTO when the ring is malformed (device failed).
 */
static int rx_deliver(struct virtio_net *n, bool *pushed)
{
    struct virtio_dev *d = &n->vdev;
    struct virtq *q = &d->vq[VIRTIO_NET_RXQ];
    bool mrg = virtio_has_feature(d, VIRTIO_NET_F_MRG_RXBUF);

    while (n->rx_off < n->rx_len) {
        if (n->nheld == NET_MAX_HELD) {
            rx_drop_frame(n, pushed);
            return 1;
        }
        /* The first chain's iovecs are kept: num_buffers is written last. */
        struct virtq_chain *c = n->nheld == 0 ? n->rx_first : n->chain;
        int r = virtq_pop(q, c, RX_CHAIN_MAX);
        if (r == 0)
            return 0;
        if (r < 0 && r != -E2BIG) {
            virtio_dev_fail(d, "malformed RX queue");
            return -EPROTO;
        }
        if (r == -E2BIG || c->in_len == 0 || (n->nheld == 0 && c->in_len < NET_HDR)) {
            n->stats.rx_bad_chains++;
            METRICS_ADD(n->vdev.metrics, errors, 1);
            virtq_push(q, c->head, 0);
            *pushed = true;
            continue;
        }
        if (!mrg && c->in_len < n->rx_len) {
            /* Without MRG_RXBUF a frame must fit one chain. */
            n->held[n->nheld++] = (struct net_held){c->head, 0};
            rx_drop_frame(n, pushed);
            return 1;
        }
        size_t len = (size_t)MIN(c->in_len, (uint64_t)(n->rx_len - n->rx_off));
        len = virtq_chain_write(c, 0, n->rx_buf + n->rx_off, len);
        n->held[n->nheld++] = (struct net_held){c->head, (uint32_t)len};
        n->rx_off += len;
    }

    uint16_t nbuf = (uint16_t)n->nheld;
    (void)virtq_chain_write(n->rx_first, offsetof(struct virtio_net_hdr_v1, num_buffers), &nbuf,
                            sizeof(nbuf));
    for (unsigned i = 0; i < n->nheld; i++)
        virtq_push(q, n->held[i].head, n->held[i].len);
    *pushed = true;
    n->stats.rx_frames++;
    METRICS_ADD(n->vdev.metrics, requests, 1);
    n->stats.rx_bytes += n->rx_len - NET_HDR;
    METRICS_ADD(n->vdev.metrics, bytes_read, n->rx_len - NET_HDR);
    n->nheld = 0;
    n->rx_len = n->rx_off = 0;
    return 1;
}

/*
 * Read the next frame into rx_buf.  Returns 1 with a frame in hand, 2 if a
 * frame was read and dropped, 0 if none is waiting, -EIO if the backend
 * failed (device failed).
 */
static int rx_read(struct virtio_net *n)
{
    ssize_t r = n->be->ops->recv(n->be, n->rx_buf, NET_RX_BUF_LEN);
    if (r == -EAGAIN)
        return 0;
    if (r <= 0) {
        char why[96];
        snprintf(why, sizeof(why), "network backend %s: %s", n->be->name,
                 r == 0 ? "peer gone" : strerror((int)-r));
        virtio_dev_fail(&n->vdev, why);
        return -EIO;
    }
    if ((size_t)r >= NET_RX_BUF_LEN || (size_t)r < NET_HDR + VIRTIO_NET_MIN_FRAME) {
        n->stats.rx_dropped++;
        METRICS_ADD(n->vdev.metrics, drops, 1);
        return 2;
    }
    /* No offloads were negotiated: whatever the tap said (DATA_VALID, ...)
     * the guest gets a zero header; num_buffers is set at delivery. */
    memset(n->rx_buf, 0, NET_HDR);
    n->rx_len = (size_t)r;
    n->rx_off = 0;
    return 1;
}

/* Complete chains that a loaded state says were held on the source. */
static void rx_return_loaded(struct virtio_net *n, bool *pushed)
{
    struct virtq *q = &n->vdev.vq[VIRTIO_NET_RXQ];
    for (unsigned i = 0; i < n->nreturn; i++) {
        if (n->ret_heads[i] < q->num) {
            virtq_push(q, n->ret_heads[i], 0);
            *pushed = true;
        }
    }
    n->nreturn = 0;
}

void net_rx_process(struct virtio_net *n)
{
    struct virtio_dev *d = &n->vdev;
    struct virtq *q = &d->vq[VIRTIO_NET_RXQ];
    bool pushed = false;
    bool poll = true;

    if (!queue_usable(d, VIRTIO_NET_RXQ)) {
        net_rx_poll(n, false);
        return;
    }
    rx_return_loaded(n, &pushed);
    unsigned i;
    for (i = 0; i < VIRTIO_NET_BUDGET; i++) {
        if (n->rx_len == 0) {
            int r = rx_read(n);
            if (r == 2)
                continue;
            if (r <= 0) {
                poll = r == 0;
                break;
            }
        }
        int r = rx_deliver(n, &pushed);
        if (r < 0) {
            poll = false;
            break;
        }
        if (r == 0) {
            /* Out of buffers: wait for the guest's kick, but close the race
             * with a refill that happened before notifications were on. */
            virtq_set_notification(q, true);
            if (!virtq_has_avail(q)) {
                if (n->rx_polling)
                    n->stats.rx_paused++;
                poll = false;
                break;
            }
            virtq_set_notification(q, false);
        }
    }
    /* After a full budget the backend may still be readable: polling stays
     * on and the level-triggered loop brings us back after the others.  A
     * frame already in hand would not wake the loop: reschedule for it. */
    net_rx_poll(n, poll && queue_usable(d, VIRTIO_NET_RXQ));
    if (i == VIRTIO_NET_BUDGET && n->rx_len && n->rx_polling)
        net_kick_self(n);
    if (pushed)
        virtio_dev_signal(d, VIRTIO_NET_RXQ);
}
