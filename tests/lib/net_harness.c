/* Virtio device test harness (see net_harness.h). */
#include "tests/lib/net_harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "devices/virtio/net.h"

_Noreturn static void die(const char *what)
{
    fprintf(stderr, "net_harness: %s\n", what);
    abort();
}

static void fake_notify_used(struct virtio_dev *d)
{
    ((struct net_harness *)d->transport)->used_irqs++;
}

static void fake_notify_config(struct virtio_dev *d)
{
    d->config_generation++;
    ((struct net_harness *)d->transport)->config_irqs++;
}

static void fake_needs_reset(struct virtio_dev *d)
{
    d->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
    ((struct net_harness *)d->transport)->needs_reset++;
}

static const struct virtio_transport_ops fake_tops = {
    .notify_used = fake_notify_used,
    .notify_config = fake_notify_config,
    .needs_reset = fake_needs_reset,
};

void net_harness_init(struct net_harness *h)
{
    /* As wisp does: a vanished peer is EPIPE, not death (see chardev.h). */
    signal(SIGPIPE, SIG_IGN);
    memset(h, 0, sizeof(*h));
    if (evloop_init(&h->loop) < 0)
        die("evloop_init");
}

void net_harness_start(struct net_harness *h, struct virtio_dev *d, unsigned nq, uint16_t size,
                       uint64_t features)
{
    if (nq > NET_HARNESS_MAX_QUEUES || nq != d->ops->num_queues)
        die("queue count");
    if (features & ~d->host_features)
        die("feature not offered");
    h->d = d;
    h->nq = nq;
    d->tops = &fake_tops;
    d->transport = h;
    d->guest_features = features;
    d->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
    for (unsigned i = 0; i < nq; i++) {
        vqb_init(&h->q[i], VQB_ONE_REGION, size, d->vq[i].max_size);
        d->vq[i].cfg = h->q[i].q.cfg;
        if (virtq_activate(&d->vq[i], &h->q[i].mem, (features >> VIRTIO_F_EVENT_IDX) & 1,
                           (features >> VIRTIO_F_INDIRECT_DESC) & 1) < 0)
            die("virtq_activate");
    }
    pthread_mutex_lock(&d->lock);
    d->status |= VIRTIO_STATUS_DRIVER_OK;
    if (d->ops->activate(d) < 0)
        die("activate");
    pthread_mutex_unlock(&d->lock);
}

void net_harness_fini(struct net_harness *h)
{
    if (h->d)
        h->d->ops->destroy(h->d);
    h->d = NULL;
    for (unsigned i = 0; i < h->nq; i++)
        vqb_fini(&h->q[i]);
    h->nq = 0;
    evloop_destroy(&h->loop);
}

int net_harness_pump(struct net_harness *h, int timeout_ms)
{
    struct epoll_event evs[16];
    int n = epoll_wait(h->loop.epfd, evs, 16, timeout_ms);
    int ran = 0;
    for (int i = 0; i < n; i++) {
        uint32_t slot = evs[i].data.u32;
        if (slot >= EVLOOP_MAX_HANDLERS || h->loop.handlers[slot].fd < 0)
            continue;
        h->loop.handlers[slot].fn(h->loop.handlers[slot].opaque, evs[i].events);
        ran++;
    }
    return ran;
}

int net_harness_settle(struct net_harness *h, int idle_ms)
{
    int total = 0, n;
    for (int rounds = 0; rounds < 100000 && (n = net_harness_pump(h, idle_ms)) > 0; rounds++)
        total += n;
    return total;
}

void net_harness_kick(struct net_harness *h, uint16_t q)
{
    struct virtio_dev *d = h->d;
    pthread_mutex_lock(&d->lock);
    /* The same gate as the mmio transport's notify path. */
    if ((d->status & VIRTIO_STATUS_DRIVER_OK) &&
        !(d->status & (VIRTIO_STATUS_DEVICE_NEEDS_RESET | VIRTIO_STATUS_FAILED)) &&
        d->vq[q].active && !d->vq[q].broken)
        d->ops->queue_notify(d, q);
    pthread_mutex_unlock(&d->lock);
}

struct vstate_out net_harness_save(struct virtio_dev *d)
{
    struct vstate_out o;
    vstate_out_init(&o);
    pthread_mutex_lock(&d->lock);
    int r = d->ops->save(d, &o);
    pthread_mutex_unlock(&d->lock);
    if (r < 0)
        die("save");
    return o;
}

int net_harness_load(struct virtio_dev *d, const void *buf, size_t len)
{
    struct vstate_in in;
    vstate_in_init(&in, buf, len);
    pthread_mutex_lock(&d->lock);
    int r = d->ops->load(d, &in);
    pthread_mutex_unlock(&d->lock);
    return r;
}

uint16_t net_harness_add_buf(struct net_harness *h, unsigned q, uint32_t len, bool write,
                             uint8_t fill, gpa_t *gpa)
{
    gpa_t a = vqb_alloc(&h->q[q], len, fill);
    struct vqb_buf b = {.addr = a, .len = len, .write = write};
    if (gpa)
        *gpa = a;
    return vqb_add_chain(&h->q[q], &b, 1);
}

struct virtio_dev *net_harness_new_net(struct net_harness *h, const uint8_t *mac, int *peer)
{
    int sv[2];
    struct net_backend *be;
    struct virtio_dev *d;
    struct errbuf err = {0};
    struct virtio_net_config cfg = {.id = "net0", .has_mac = mac != NULL};

    if (mac)
        memcpy(cfg.mac, mac, 6);
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        die("socketpair");
    if (tap_from_fd(sv[0], "pair", &be) < 0)
        die("tap_from_fd");
    if (virtio_net_create_with_backend(&cfg, be, NULL, &h->loop, &d, &err) < 0)
        die(err.msg);
    *peer = sv[1];
    return d;
}
