/*
 * virtio-vsock device model: config space, the three queues, state, and
 * the glue to the main loop (see vsock.h for the behaviour; connections and
 * host sockets are in vsock_conn.c).
 *
 * Why: guest agents (health checks, exec, file copy) need a host channel
 * that needs no guest network configuration and that the VMM can confine
 * to one UNIX socket per VM.
 *
 * Threads: activate, reset and load may run on a vCPU or API thread, so
 * they only set flags and kick the device's eventfd; every socket is
 * touched on the main loop, with dev->lock held.
 */
#include "devices/virtio/vsock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/virtio/vsock_internal.h"
#include "vmm/log.h"

#define STATE_VERSION 1
#define LIVE_BLOCKERS (VIRTIO_STATUS_FAILED | VIRTIO_STATUS_DEVICE_NEEDS_RESET)
/* virtq_pop() cap per chain: a header and the largest payload, with room. */
#define CHAIN_MAX (VIRTIO_VSOCK_HDR_LEN + 2ULL * VIRTIO_VSOCK_MAX_PKT)

/* A paused queue (quiesced for a snapshot or migration) is not touched at
 * all: not even the rx chain already held may be filled, or guest memory
 * would change after the state was taken. */
static bool queue_usable(const struct virtio_dev *d, uint16_t q)
{
    return (d->status & VIRTIO_STATUS_DRIVER_OK) && !(d->status & LIVE_BLOCKERS) &&
           d->vq[q].active && !d->vq[q].broken && !d->vq[q].paused;
}

static void kick_self(struct virtio_vsock *v)
{
    uint64_t one = 1;
    ssize_t r __unused = write(v->kick_efd, &one, sizeof(one));
}

/* Reset or load asked for it: every connection goes (main loop only). */
static void apply_drop(struct virtio_vsock *v)
{
    if (!v->drop_pending)
        return;
    v->drop_pending = false;
    vsock_conn_drop_all(v);
}

/* Check one tx chain's header (copied out once) and act on it. */
static void tx_one(struct virtio_vsock *v, const struct virtq_chain *c)
{
    uint8_t hdr[VIRTIO_VSOCK_HDR_LEN];
    if (virtq_chain_read(c, 0, hdr, sizeof(hdr)) != sizeof(hdr)) {
        v->stats.bad_pkts++;
        METRICS_ADD(v->vdev.metrics, errors, 1);
        return;
    }
    v->stats.tx_pkts++;
    METRICS_ADD(v->vdev.metrics, requests, 1);
    uint32_t len = le32_get(hdr + VSOCK_HDR_LEN);
    if (le64_get(hdr + VSOCK_HDR_SRC_CID) != v->cid) {
        v->stats.bad_pkts++; /* not from this guest: no reply to a spoofed address */
        METRICS_ADD(v->vdev.metrics, errors, 1);
        return;
    }
    if (len > VIRTIO_VSOCK_MAX_PKT || len > c->out_len - VIRTIO_VSOCK_HDR_LEN ||
        le16_get(hdr + VSOCK_HDR_TYPE) != VIRTIO_VSOCK_TYPE_STREAM ||
        le64_get(hdr + VSOCK_HDR_DST_CID) != VIRTIO_VSOCK_HOST_CID) {
        v->stats.bad_pkts++;
        METRICS_ADD(v->vdev.metrics, errors, 1);
        vsock_rst_reply(v, hdr);
        return;
    }
    vsock_conn_tx(v, hdr, c);
}

static void rx_process(struct virtio_vsock *v);

static void tx_process(struct virtio_vsock *v)
{
    struct virtio_dev *d = &v->vdev;
    struct virtq *q = &d->vq[VIRTIO_VSOCK_TXQ];
    unsigned n = 0;
    bool pushed = false;

    if (!queue_usable(d, VIRTIO_VSOCK_TXQ))
        return;
    for (;;) {
        virtq_set_notification(q, false);
        while (n < VIRTIO_VSOCK_BUDGET) {
            int r = virtq_pop(q, &v->txc, CHAIN_MAX);
            if (r == 0)
                break;
            if (r > 0) {
                tx_one(v, &v->txc);
            } else if (r == -E2BIG) {
                v->stats.bad_pkts++;
                METRICS_ADD(v->vdev.metrics, errors, 1);
            } else {
                virtio_dev_fail(d, "malformed transmit queue");
                goto out;
            }
            virtq_push(q, v->txc.head, 0);
            pushed = true;
            n++;
        }
        if (n >= VIRTIO_VSOCK_BUDGET) {
            kick_self(v);
            break;
        }
        virtq_set_notification(q, true);
        if (!virtq_has_avail(q))
            break;
    }
out:
    if (pushed)
        virtio_dev_signal(d, VIRTIO_VSOCK_TXQ);
}

static void rx_process(struct virtio_vsock *v)
{
    struct virtio_dev *d = &v->vdev;
    struct virtq *q = &d->vq[VIRTIO_VSOCK_RXQ];
    unsigned n = 0;
    bool pushed = false;

    while (queue_usable(d, VIRTIO_VSOCK_RXQ) && n < VIRTIO_VSOCK_BUDGET) {
        if (!v->rxc_held) {
            int r = virtq_pop(q, &v->rxc, CHAIN_MAX);
            if (r == 0) {
                virtq_set_notification(q, true);
                if (!virtq_has_avail(q))
                    break;
                n++;
                continue;
            }
            if (r < 0 && r != -E2BIG) {
                virtio_dev_fail(d, "malformed receive queue");
                break;
            }
            if (r < 0 || v->rxc.in_len < VIRTIO_VSOCK_HDR_LEN) {
                v->stats.bad_pkts++;
                METRICS_ADD(v->vdev.metrics, errors, 1);
                virtq_push(q, v->rxc.head, 0);
                pushed = true;
                n++;
                continue;
            }
            v->rxc_held = true;
        }
        uint32_t len = vsock_conn_rx(v, &v->rxc);
        if (len == 0)
            break; /* nothing to say: the chain waits for the next packet */
        v->stats.rx_pkts++;
        METRICS_ADD(v->vdev.metrics, requests, 1);
        virtq_push(q, v->rxc.head, len);
        v->rxc_held = false;
        pushed = true;
        n++;
    }
    if (n >= VIRTIO_VSOCK_BUDGET)
        kick_self(v);
    if (pushed)
        virtio_dev_signal(d, VIRTIO_VSOCK_RXQ);
}

/* Deliver a pending TRANSPORT_RESET into the event queue. */
static void evq_process(struct virtio_vsock *v)
{
    struct virtio_dev *d = &v->vdev;
    struct virtq *q = &d->vq[VIRTIO_VSOCK_EVQ];
    while (v->reset_event_pending && queue_usable(d, VIRTIO_VSOCK_EVQ)) {
        int r = virtq_pop(q, &v->txc, 64);
        if (r == 0)
            return;
        if (r < 0 && r != -E2BIG) {
            virtio_dev_fail(d, "malformed event queue");
            return;
        }
        uint8_t ev[4];
        le32_put(ev, VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
        uint32_t w = r > 0 ? (uint32_t)virtq_chain_write(&v->txc, 0, ev, sizeof(ev)) : 0;
        virtq_push(q, v->txc.head, w);
        virtio_dev_signal(d, VIRTIO_VSOCK_EVQ);
        if (w == sizeof(ev)) {
            v->reset_event_pending = false;
            v->stats.reset_events++;
        } else {
            v->stats.bad_pkts++;
            METRICS_ADD(v->vdev.metrics, errors, 1);
        }
    }
}

static void process_all(struct virtio_vsock *v)
{
    apply_drop(v);
    evq_process(v);
    tx_process(v);
    rx_process(v);
}

/* Main loop: the host sockets have news. */
static void vsock_backend_event(void *opaque, uint32_t events)
{
    struct virtio_vsock *v = opaque;
    (void)events;
    pthread_mutex_lock(&v->vdev.lock);
    apply_drop(v);
    vsock_conn_backend(v);
    rx_process(v);
    pthread_mutex_unlock(&v->vdev.lock);
}

/* Main loop: our eventfd (activation, reset, load, or a budget ran out). */
static void vsock_kick_event(void *opaque, uint32_t events)
{
    struct virtio_vsock *v = opaque;
    uint64_t x;
    (void)events;
    ssize_t r __unused = read(v->kick_efd, &x, sizeof(x));
    pthread_mutex_lock(&v->vdev.lock);
    process_all(v);
    pthread_mutex_unlock(&v->vdev.lock);
}

static void vsock_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
    uint8_t cfg[VIRTIO_VSOCK_CFG_SIZE];
    le64_put(cfg, to_vsock(d)->cid);
    if (off <= sizeof(cfg) && len <= sizeof(cfg) - off)
        memcpy(data, cfg + off, len);
}

static int vsock_activate(struct virtio_dev *d)
{
    kick_self(to_vsock(d));
    return 0;
}

static void vsock_queue_notify(struct virtio_dev *d, uint16_t q)
{
    struct virtio_vsock *v = to_vsock(d);
    apply_drop(v);
    if (q == VIRTIO_VSOCK_TXQ) {
        tx_process(v);
        rx_process(v); /* replies */
    } else if (q == VIRTIO_VSOCK_RXQ) {
        rx_process(v);
    } else if (q == VIRTIO_VSOCK_EVQ) {
        evq_process(v);
    }
}

/* The driver's sockets are gone: so are ours (closed on the main loop). */
static void vsock_reset(struct virtio_dev *d)
{
    struct virtio_vsock *v = to_vsock(d);
    v->rxc_held = false;
    v->drop_pending = true;
    kick_self(v);
}

static int vsock_save(struct virtio_dev *d, struct vstate_out *out)
{
    vstate_begin(out, "virtio-vsock", STATE_VERSION);
    vstate_put_u64(out, to_vsock(d)->cid);
    return vstate_end(out);
}

static int vsock_load(struct virtio_dev *d, struct vstate_in *in)
{
    struct virtio_vsock *v = to_vsock(d);
    uint16_t version;
    int ret = vstate_enter(in, "virtio-vsock", STATE_VERSION, STATE_VERSION, &version);
    if (ret < 0)
        return ret;
    uint64_t cid = vstate_get_u64(in);
    if (in->err)
        return in->err;
    ret = vstate_leave(in);
    if (ret < 0)
        return ret;
    if (cid != v->cid) {
        log_error("virtio %s: saved guest cid %llu, configured %llu", d->id,
                  (unsigned long long)cid, (unsigned long long)v->cid);
        return -EINVAL;
    }
    /* Host connections did not come along: drop ours, tell the guest. */
    v->rxc_held = false;
    v->drop_pending = true;
    v->reset_event_pending = true;
    kick_self(v);
    return 0;
}

static void vsock_destroy(struct virtio_dev *d)
{
    struct virtio_vsock *v = to_vsock(d);
    if (!v)
        return;
    if (v->uds_registered)
        evloop_del(d->loop, vsock_uds_fd(v->uds));
    if (v->kick_registered)
        evloop_del(d->loop, v->kick_efd);
    if (v->kick_efd >= 0)
        close(v->kick_efd);
    if (v->uds)
        vsock_conn_drop_all(v);
    for (unsigned i = 0; i < VIRTIO_VSOCK_MAX_CONNS; i++)
        free(v->conns[i].buf);
    vsock_uds_close(v->uds);
    virtio_dev_fini(d);
    free(v);
}

static const struct virtio_dev_ops vsock_ops = {
    .type = "vsock",
    .device_id = VIRTIO_ID_VSOCK,
    .num_queues = 3,
    .queue_max_size = VIRTIO_VSOCK_QUEUE_SIZE,
    .config_size = VIRTIO_VSOCK_CFG_SIZE,
    .config_read = vsock_config_read,
    .config_write = NULL,
    .activate = vsock_activate,
    .queue_notify = vsock_queue_notify,
    .reset = vsock_reset,
    .save = vsock_save,
    .load = vsock_load,
    .unmigratable = NULL,
    .destroy = vsock_destroy,
};

int virtio_vsock_create(const struct virtio_vsock_config *cfg, const struct gmem *mem,
                        struct evloop *loop, struct virtio_dev **out, struct errbuf *err)
{
    const char *id = cfg->id ? cfg->id : "vsock";
    if (cfg->guest_cid < 3 || cfg->guest_cid >= UINT32_MAX)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "vsock cid must be 3 to %u, not %llu",
                       UINT32_MAX - 1, (unsigned long long)cfg->guest_cid);
    if (!loop || loop->epfd < 0)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "virtio %s: event loop not initialised", id);
    struct virtio_vsock *v = calloc(1, sizeof(*v));
    if (!v)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "virtio %s: out of memory", id);
    virtio_dev_init(&v->vdev, &vsock_ops, id, mem, loop, 0);
    v->cid = cfg->guest_cid;
    v->handshake_ms = cfg->handshake_ms ? cfg->handshake_ms : VIRTIO_VSOCK_HANDSHAKE_MS;
    v->kick_efd = -1;
    for (unsigned i = 0; i < VIRTIO_VSOCK_MAX_CONNS; i++)
        v->conns[i].fd = -1;
    int ret = vsock_uds_open(cfg->uds_path, &v->uds, err);
    if (ret < 0)
        goto fail;
    v->kick_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (v->kick_efd < 0) {
        ret = err_set(err, WISP_EXIT_FAILURE, errno, "virtio %s: eventfd: %s", id, strerror(errno));
        goto fail;
    }
    ret = evloop_add(loop, v->kick_efd, EPOLLIN, vsock_kick_event, v);
    if (ret == 0) {
        v->kick_registered = true;
        ret = evloop_add(loop, vsock_uds_fd(v->uds), EPOLLIN, vsock_backend_event, v);
    }
    if (ret < 0) {
        err_set(err, WISP_EXIT_FAILURE, -ret, "virtio %s: cannot join the event loop: %s", id,
                strerror(-ret));
        goto fail;
    }
    v->uds_registered = true;
    *out = &v->vdev;
    return 0;
fail:
    vsock_destroy(&v->vdev);
    return ret;
}

void virtio_vsock_get_stats(struct virtio_dev *d, struct virtio_vsock_stats *st)
{
    pthread_mutex_lock(&d->lock);
    *st = to_vsock(d)->stats;
    pthread_mutex_unlock(&d->lock);
}

unsigned virtio_vsock_conn_count(struct virtio_dev *d)
{
    pthread_mutex_lock(&d->lock);
    unsigned n = to_vsock(d)->nconns;
    pthread_mutex_unlock(&d->lock);
    return n;
}
