/*
 * virtio-net device model (see net.h for the interface and the data path).
 *
 * Why this file exists: virtio-net is the network card every Linux guest
 * drives without extra modules, and a tap behind it is the simplest way to
 * put a microVM on the host's network.  The backend is an interface
 * (devices/backends/tap.h), so the model is tested without /dev/net/tun.
 *
 * Events.  The device owns a private epoll set holding its kick eventfd and,
 * while RX wants frames, the backend fd; only that epoll fd is registered in
 * the main loop, once, at creation.  Pausing and resuming RX are then
 * epoll_ctl() calls on our own set, which are safe from any thread (activate
 * and reset run on vCPU threads), whereas the main loop's handler table is
 * only meant to be edited from the main thread.
 */
#include "devices/virtio/net.h"
#include "devices/virtio/net_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "migration/virtio_state.h"
#include "vmm/log.h"

/* Longest frame in hand that save() carries; longer ones are lost in a
 * migration (the device blob of the state format is capped). */
#define STATE_MAX_FRAME (60 * 1024)
#define STATE_VERSION   1
_Static_assert(12 + 6 + 2 + 2 + 2 * NET_MAX_HELD + 4 + STATE_MAX_FRAME <= VIRTIO_STATE_MAX_DEV_BLOB,
               "the net state fits the device blob of the virtio state format");

static struct virtio_net *to_net(struct virtio_dev *d)
{
    return (struct virtio_net *)d;
}

/* ---- virtio_dev_ops ----------------------------------------------------- */

static void net_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
    struct virtio_net *n = to_net(d);
    uint8_t cfg[VIRTIO_NET_CFG_SIZE];
    memcpy(cfg + VIRTIO_NET_CFG_MAC, n->mac, 6);
    le16_put(cfg + VIRTIO_NET_CFG_STATUS, n->status);
    if (off <= sizeof(cfg) && len <= sizeof(cfg) - off)
        memcpy(data, cfg + off, len);
}

static int net_activate(struct virtio_dev *d)
{
    struct virtio_net *n = to_net(d);
    /* The RX queue starts without kicks: we poll while it has buffers. */
    virtq_set_notification(&d->vq[VIRTIO_NET_RXQ], false);
    /* Run both directions once from the main loop: the guest may have
     * queued TX frames or RX buffers before DRIVER_OK. */
    net_kick_self(n);
    return 0;
}

static void net_queue_notify(struct virtio_dev *d, uint16_t q)
{
    struct virtio_net *n = to_net(d);
    if (q == VIRTIO_NET_TXQ) {
        net_tx_process(n);
    } else if (q == VIRTIO_NET_RXQ) {
        /* New buffers: stop asking for kicks while we have them again. */
        virtq_set_notification(&d->vq[VIRTIO_NET_RXQ], false);
        net_rx_process(n);
    }
}

/*
 * Runs on a vCPU thread, whose seccomp filter allows no epoll_ctl or read:
 * backend polling stops on the main loop's next pass (net_rx_process() sees
 * a device that is not live), and a stale kick finds nothing to do.
 */
static void net_reset(struct virtio_dev *d)
{
    struct virtio_net *n = to_net(d);
    /* The rings are gone: held chains and the frame in hand go with them. */
    if (n->rx_len) {
        n->stats.rx_dropped++;
        METRICS_ADD(n->vdev.metrics, drops, 1);
    }
    n->rx_len = n->rx_off = 0;
    n->nheld = 0;
    n->nreturn = 0;
}

/* Main loop: our epoll set has something (kick eventfd or backend). */
static void net_event(void *opaque, uint32_t events)
{
    struct virtio_net *n = opaque;
    struct epoll_event evs[4];
    (void)events;

    pthread_mutex_lock(&n->vdev.lock);
    int k = epoll_wait(n->ep, evs, (int)ARRAY_SIZE(evs), 0);
    bool rx = false, tx = false;
    for (int i = 0; i < k; i++) {
        if (evs[i].data.fd == n->kick_efd) {
            uint64_t v;
            ssize_t r __unused = read(n->kick_efd, &v, sizeof(v));
            rx = tx = true;
        } else {
            rx = true;
        }
    }
    if (tx)
        net_tx_process(n);
    if (rx)
        net_rx_process(n);
    pthread_mutex_unlock(&n->vdev.lock);
}

static void net_destroy(struct virtio_dev *d)
{
    struct virtio_net *n = to_net(d);
    if (!n)
        return;
    if (n->registered)
        evloop_del(d->loop, n->ep);
    if (n->ep >= 0)
        close(n->ep);
    if (n->kick_efd >= 0)
        close(n->kick_efd);
    if (n->be)
        n->be->ops->destroy(n->be);
    free(n->rx_buf);
    free(n->rx_first);
    free(n->chain);
    free(n->tx_iov);
    virtio_dev_fini(d);
    free(n);
}

/*
 * State: mac, status, the heads to complete with length 0 on the
 * destination (chains held for a partly delivered frame, whose frame is
 * then lost), and the frame in hand if none of it was delivered yet.
 */
static int net_save(struct virtio_dev *d, struct vstate_out *out)
{
    struct virtio_net *n = to_net(d);
    vstate_begin(out, "virtio-net", STATE_VERSION);
    vstate_put_bytes(out, n->mac, 6);
    vstate_put_u16(out, n->status);
    /* nreturn is only non-zero before the first RX pass after a load, and
     * nheld only grows during one, so the two never add up past NET_MAX_HELD. */
    unsigned nret = MIN(n->nreturn + n->nheld, (unsigned)NET_MAX_HELD);
    vstate_put_u16(out, (uint16_t)nret);
    for (unsigned i = 0; i < nret; i++)
        vstate_put_u16(out, i < n->nreturn ? n->ret_heads[i] : n->held[i - n->nreturn].head);
    size_t frame = (n->nheld == 0 && n->rx_len <= STATE_MAX_FRAME) ? n->rx_len : 0;
    vstate_put_u32(out, (uint32_t)frame);
    vstate_put_bytes(out, n->rx_buf, frame);
    return vstate_end(out);
}

static int net_load(struct virtio_dev *d, struct vstate_in *in)
{
    struct virtio_net *n = to_net(d);
    uint16_t version, heads[NET_MAX_HELD];
    uint8_t mac[6];
    uint8_t *frame = NULL;
    int ret = vstate_enter(in, "virtio-net", STATE_VERSION, STATE_VERSION, &version);
    if (ret < 0)
        return ret;
    vstate_get_bytes(in, mac, 6);
    uint16_t status = vstate_get_u16(in);
    uint16_t nret = vstate_get_u16(in);
    if (in->err)
        return in->err;
    if ((mac[0] & 1) || (status & ~VIRTIO_NET_S_LINK_UP) || nret > NET_MAX_HELD)
        return -EINVAL;
    for (unsigned i = 0; i < nret; i++) {
        heads[i] = vstate_get_u16(in);
        if (heads[i] >= VIRTIO_NET_QUEUE_SIZE)
            return -EINVAL;
    }
    uint32_t flen = vstate_get_u32(in);
    if (in->err)
        return in->err;
    if (flen && (flen < NET_HDR + VIRTIO_NET_MIN_FRAME || flen > STATE_MAX_FRAME))
        return -EINVAL;
    if (flen) {
        frame = malloc(flen);
        if (!frame)
            return -ENOMEM;
        vstate_get_bytes(in, frame, flen);
    }
    ret = in->err ? in->err : vstate_leave(in);
    if (ret == 0) {
        memcpy(n->mac, mac, 6);
        n->status = status;
        memcpy(n->ret_heads, heads, nret * sizeof(heads[0]));
        n->nreturn = nret;
        n->nheld = 0;
        n->rx_off = 0;
        n->rx_len = flen;
        if (flen) {
            memcpy(n->rx_buf, frame, flen);
            memset(n->rx_buf, 0, NET_HDR);
        }
    }
    free(frame);
    return ret;
}

int virtio_net_record_returns(const uint8_t *rec, size_t len, uint16_t *heads, unsigned max)
{
    struct vstate_in in;
    uint16_t version;
    uint8_t mac[6];

    vstate_in_init(&in, rec, len);
    int ret = vstate_enter(&in, "virtio-net", STATE_VERSION, STATE_VERSION, &version);
    if (ret < 0)
        return ret;
    vstate_get_bytes(&in, mac, sizeof(mac));
    (void)vstate_get_u16(&in); /* status */
    uint16_t nret = vstate_get_u16(&in);
    if (in.err)
        return in.err;
    if (nret > NET_MAX_HELD || nret > max)
        return -EINVAL;
    for (unsigned i = 0; i < nret; i++)
        heads[i] = vstate_get_u16(&in);
    return in.err ? in.err : nret;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int virtio_net_parse_mac(const char *s, uint8_t mac[6])
{
    uint8_t m[6];
    if (!s || strlen(s) != 17)
        return -EINVAL;
    for (unsigned i = 0; i < 6; i++) {
        int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);
        if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
            return -EINVAL;
        m[i] = (uint8_t)(hi << 4 | lo);
    }
    if (m[0] & 1)
        return -EINVAL;
    memcpy(mac, m, 6);
    return 0;
}

static const struct virtio_dev_ops net_ops = {
    .type = "net",
    .device_id = VIRTIO_ID_NET,
    .num_queues = 2,
    .queue_max_size = VIRTIO_NET_QUEUE_SIZE,
    .config_size = VIRTIO_NET_CFG_SIZE,
    .config_read = net_config_read,
    .config_write = NULL,
    .activate = net_activate,
    .queue_notify = net_queue_notify,
    .reset = net_reset,
    .save = net_save,
    .load = net_load,
    .unmigratable = NULL,
    .destroy = net_destroy,
};

int virtio_net_create_with_backend(const struct virtio_net_config *cfg, struct net_backend *be,
                                   const struct gmem *mem, struct evloop *loop,
                                   struct virtio_dev **out, struct errbuf *err)
{
    const char *id = cfg->id ? cfg->id : "net";
    int ret;

    if (!loop || loop->epfd < 0) {
        be->ops->destroy(be);
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "virtio %s: event loop not initialised", id);
    }
    if (cfg->has_mac && (cfg->mac[0] & 1)) {
        be->ops->destroy(be);
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "virtio %s: MAC address is multicast", id);
    }
    struct virtio_net *n = calloc(1, sizeof(*n));
    if (!n) {
        be->ops->destroy(be);
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "virtio %s: out of memory", id);
    }
    virtio_dev_init(&n->vdev, &net_ops, id, mem, loop,
                    VIRTIO_BIT(VIRTIO_NET_F_MAC) | VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF) |
                        VIRTIO_BIT(VIRTIO_NET_F_STATUS));
    n->be = be;
    n->ep = n->kick_efd = -1;
    n->status = VIRTIO_NET_S_LINK_UP;

    if (cfg->has_mac) {
        memcpy(n->mac, cfg->mac, 6);
    } else {
        if (getrandom(n->mac, 6, 0) != 6) {
            ret = err_set(err, WISP_EXIT_HOST, errno, "virtio %s: getrandom: %s", id,
                          strerror(errno));
            goto fail;
        }
        n->mac[0] = (uint8_t)((n->mac[0] & 0xfc) | 0x02); /* unicast, locally administered */
    }

    n->rx_buf = malloc(NET_RX_BUF_LEN);
    n->rx_first = malloc(sizeof(*n->rx_first));
    n->chain = malloc(sizeof(*n->chain));
    n->tx_iov = calloc(VIRTQ_MAX_IOV + 1, sizeof(*n->tx_iov));
    if (!n->rx_buf || !n->rx_first || !n->chain || !n->tx_iov) {
        ret = err_set(err, WISP_EXIT_FAILURE, ENOMEM, "virtio %s: out of memory", id);
        goto fail;
    }
    n->ep = epoll_create1(EPOLL_CLOEXEC);
    n->kick_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (n->ep < 0 || n->kick_efd < 0) {
        ret = err_set(err, WISP_EXIT_FAILURE, errno, "virtio %s: epoll/eventfd: %s", id,
                      strerror(errno));
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = n->kick_efd};
    if (epoll_ctl(n->ep, EPOLL_CTL_ADD, n->kick_efd, &ev) < 0) {
        ret =
            err_set(err, WISP_EXIT_FAILURE, errno, "virtio %s: epoll_ctl: %s", id, strerror(errno));
        goto fail;
    }
    ret = evloop_add(loop, n->ep, EPOLLIN, net_event, n);
    if (ret < 0) {
        err_set(err, WISP_EXIT_FAILURE, -ret, "virtio %s: cannot join the event loop: %s", id,
                strerror(-ret));
        goto fail;
    }
    n->registered = true;
    *out = &n->vdev;
    return 0;

fail:
    net_destroy(&n->vdev);
    return ret;
}

int virtio_net_create(const struct virtio_net_config *cfg, const struct gmem *mem,
                      struct evloop *loop, struct virtio_dev **out, struct errbuf *err)
{
    struct net_backend *be;
    int ret = tap_open(cfg->tap, &be, err);
    if (ret < 0)
        return ret;
    return virtio_net_create_with_backend(cfg, be, mem, loop, out, err);
}

void virtio_net_get_stats(struct virtio_dev *d, struct virtio_net_stats *st)
{
    pthread_mutex_lock(&d->lock);
    *st = to_net(d)->stats;
    pthread_mutex_unlock(&d->lock);
}
