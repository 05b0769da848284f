/*
 * virtio-mmio transport, version 2: lifetime, notifications, interrupts and
 * transport state (the register file is in mmio_regs.c).
 *
 * Why a transport of our own: virtio-mmio is the smallest way to give a
 * microVM paravirtual devices (no PCI enumeration, no MSI-X), and keeping it
 * apart from the device models means every model gets the same strict
 * register and status handling.
 *
 * Notifications.  Each queue gets an eventfd bound with a KVM ioeventfd to
 * 4-byte writes of its index at QueueNotify (datamatch), so a kick costs no
 * exit to user space; the main event loop polls the eventfd and calls the
 * device.  A write KVM does not match (another width, an index with no
 * ioeventfd) exits as ordinary MMIO and is handled in mmio_regs.c the same
 * way.  NOTIFICATION_DATA is never offered: with it the written value would
 * no longer be the bare index the datamatch needs.
 *
 * Interrupts.  The transport keeps InterruptStatus itself: bit 0 (used
 * buffer) and bit 1 (configuration change) are set under dev->lock, and
 * only then is the device's irqfd written, so a driver woken by the
 * interrupt always finds the bit.  The irqfd pulses the GSI (assert and
 * deassert), i.e. the line is edge-triggered: on x86, Linux's virtio_mmio
 * with command-line discovery uses the GSI as an edge ISA/IOAPIC interrupt,
 * which works for GSIs >= 5.  Every raise pulses, even if the bit was still
 * set: a pulse is cheap, a coalesced edge could be lost by a driver that
 * acknowledges after processing, and a spurious one only costs the driver a
 * read of InterruptStatus.  InterruptACK clears the written bits.  Nothing
 * re-asserts a pending status later (there is no level to resample).
 *
 * Locking.  Register handlers (vCPU threads) and the kick handlers (main
 * loop) take dev->lock; the struct virtio_transport_ops callbacks are
 * called by the device with dev->lock already held.  Writing an eventfd
 * never blocks, so pulsing under the lock is safe.
 */
#include "devices/virtio/mmio.h"
#include "devices/virtio/mmio_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/log.h"

#define LIVE_BLOCKERS (VIRTIO_STATUS_FAILED | VIRTIO_STATUS_DEVICE_NEEDS_RESET)

void virtio_mmio_raise(struct virtio_mmio *t, uint32_t bits)
{
    t->interrupt_status |= bits;
    if (t->irqfd >= 0) {
        uint64_t one = 1;
        /* Only fails if the counter is about to overflow, i.e. never in practice. */
        ssize_t r __unused = write(t->irqfd, &one, sizeof(one));
    }
}

void virtio_mmio_deliver_notify(struct virtio_mmio *t, uint32_t q)
{
    struct virtio_dev *d = t->dev;
    if (q >= d->ops->num_queues)
        return;
    if (!(d->status & VIRTIO_STATUS_DRIVER_OK) || (d->status & LIVE_BLOCKERS))
        return;
    if (!d->vq[q].active || d->vq[q].broken)
        return;
    METRICS_ADD(d->metrics, queue_events, 1);
    d->ops->queue_notify(d, (uint16_t)q);
}

void virtio_mmio_set_needs_reset(struct virtio_mmio *t)
{
    struct virtio_dev *d = t->dev;
    /* A reset device has nothing to report; an already-failed one was
     * reported once, and repeating the interrupt would let a broken backend
     * storm the guest. */
    if (d->status == 0 || (d->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET))
        return;
    d->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
    virtio_mmio_raise(t, VIRTIO_MMIO_INT_CONFIG);
}

/* struct virtio_transport_ops: called by the device with dev->lock held. */
static void tops_notify_used(struct virtio_dev *d)
{
    virtio_mmio_raise(d->transport, VIRTIO_MMIO_INT_VRING);
}

static void tops_notify_config(struct virtio_dev *d)
{
    d->config_generation++;
    virtio_mmio_raise(d->transport, VIRTIO_MMIO_INT_CONFIG);
}

static void tops_needs_reset(struct virtio_dev *d)
{
    virtio_mmio_set_needs_reset(d->transport);
}

static void kick_handler(void *opaque, uint32_t events);

/* Hand queue q's kick eventfd to an external data plane, or take it back. */
static int tops_kick_fd(struct virtio_dev *d, uint16_t q, bool external)
{
    struct virtio_mmio *t = d->transport;
    if (q >= VIRTIO_MAX_QUEUES || t->kick[q].fd < 0)
        return -ENOENT;
    struct virtio_mmio_kick *k = &t->kick[q];
    if (external && k->in_loop) {
        evloop_del(t->host.loop, k->fd);
        k->in_loop = false;
    } else if (!external && !k->in_loop && t->host.loop) {
        int r = evloop_add(t->host.loop, k->fd, EPOLLIN, kick_handler, k);
        if (r < 0)
            return r;
        k->in_loop = true;
    }
    return external ? k->fd : 0;
}

static const struct virtio_transport_ops mmio_tops = {
    .notify_used = tops_notify_used,
    .notify_config = tops_notify_config,
    .needs_reset = tops_needs_reset,
    .kick_fd = tops_kick_fd,
};

/* Main loop: the guest kicked queue k->q through the ioeventfd. */
static void kick_handler(void *opaque, uint32_t events)
{
    struct virtio_mmio_kick *k = opaque;
    struct virtio_dev *d = k->t->dev;
    uint64_t n;

    (void)events;
    /* Drain first: kicks that arrive while the device runs are seen on the
     * next poll, so none is lost. */
    if (read(k->fd, &n, sizeof(n)) < 0) {
        int e = errno;
        if (e != EAGAIN)
            log_ratelimited(LOG_WARN, "virtio %s: reading queue %u kick eventfd: %s", d->id, k->q,
                            strerror(e));
    }
    pthread_mutex_lock(&d->lock);
    virtio_mmio_deliver_notify(k->t, k->q);
    pthread_mutex_unlock(&d->lock);
}

static void unbind_queues(struct virtio_mmio *t)
{
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
        struct virtio_mmio_kick *k = &t->kick[q];
        if (k->in_loop)
            evloop_del(t->host.loop, k->fd);
        if (k->ioeventfd_bound) {
            int r = t->host.ioeventfd(t->host.opaque, t->base + VIRTIO_MMIO_QUEUE_NOTIFY, q, k->fd,
                                      false);
            if (r < 0)
                log_warn("virtio %s: cannot unbind queue %u notify: %s", t->dev->id, q,
                         strerror(-r));
        }
        if (k->fd >= 0)
            close(k->fd);
        k->fd = -1;
        k->in_loop = k->ioeventfd_bound = false;
    }
}

static int bind_queue(struct virtio_mmio *t, unsigned q, struct errbuf *err)
{
    struct virtio_mmio_kick *k = &t->kick[q];
    const char *id = t->dev->id;

    k->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (k->fd < 0)
        return err_set(err, WISP_EXIT_HOST, errno, "virtio %s: eventfd: %s", id, strerror(errno));
    int r = t->host.ioeventfd(t->host.opaque, t->base + VIRTIO_MMIO_QUEUE_NOTIFY, q, k->fd, true);
    if (r < 0)
        return err_set(err, WISP_EXIT_HOST, -r, "virtio %s: cannot bind queue %u notify: %s", id, q,
                       strerror(-r));
    k->ioeventfd_bound = true;
    if (t->host.loop) {
        r = evloop_add(t->host.loop, k->fd, EPOLLIN, kick_handler, k);
        if (r < 0)
            return err_set(err, WISP_EXIT_HOST, -r, "virtio %s: cannot watch queue %u notify: %s",
                           id, q, strerror(-r));
        k->in_loop = true;
    }
    return 0;
}

int virtio_mmio_create(struct virtio_dev *dev, const struct virtio_mmio_host *host, uint64_t base,
                       unsigned gsi, struct virtio_mmio **out, struct errbuf *err)
{
    uint64_t end;
    int r;

    if (!dev || !dev->ops || !host || !host->ioeventfd || !host->irqfd || !out)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "virtio-mmio: invalid arguments");
    if (!is_aligned(base, VIRTIO_MMIO_WINDOW) || !range_end(base, VIRTIO_MMIO_WINDOW, &end))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "virtio %s: MMIO base 0x%" PRIx64 " is not a usable 4 KiB window", dev->id,
                       base);
    if (dev->transport)
        return err_set(err, WISP_EXIT_FAILURE, EBUSY, "virtio %s: already has a transport",
                       dev->id);

    struct virtio_mmio *t = calloc(1, sizeof(*t));
    if (!t)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "virtio %s: out of memory", dev->id);
    t->dev = dev;
    t->host = *host;
    t->base = base;
    t->gsi = gsi;
    t->irqfd = -1;
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        t->kick[q] = (struct virtio_mmio_kick){.t = t, .q = (uint16_t)q, .fd = -1};

    r = host->irqfd(host->opaque, gsi, &t->irqfd);
    if (r < 0) {
        t->irqfd = -1;
        err_set(err, WISP_EXIT_HOST, -r, "virtio %s: cannot create irqfd for GSI %u: %s", dev->id,
                gsi, strerror(-r));
        goto fail;
    }
    for (unsigned q = 0; q < dev->ops->num_queues; q++) {
        r = bind_queue(t, q, err);
        if (r < 0)
            goto fail;
    }

    pthread_mutex_lock(&dev->lock);
    dev->tops = &mmio_tops;
    dev->transport = t;
    pthread_mutex_unlock(&dev->lock);

    /* Last: the bus has no unregister, so nothing may fail after this. */
    if (host->mmio_bus) {
        r = bus_register(host->mmio_bus, base, VIRTIO_MMIO_WINDOW, "virtio-mmio", virtio_mmio_read,
                         virtio_mmio_write, t);
        if (r < 0) {
            err_set(err, WISP_EXIT_USAGE, -r,
                    "virtio %s: cannot place MMIO window at 0x%" PRIx64 ": %s", dev->id, base,
                    strerror(-r));
            pthread_mutex_lock(&dev->lock);
            dev->tops = NULL;
            dev->transport = NULL;
            pthread_mutex_unlock(&dev->lock);
            goto fail;
        }
    }
    *out = t;
    return 0;

fail:
    unbind_queues(t);
    if (t->irqfd >= 0)
        close(t->irqfd);
    free(t);
    return r;
}

void virtio_mmio_destroy(struct virtio_mmio *t)
{
    if (!t)
        return;
    struct virtio_dev *d = t->dev;
    /* Stop kicks first so no handler runs against a half-torn transport. */
    unbind_queues(t);
    pthread_mutex_lock(&d->lock);
    d->tops = NULL;
    d->transport = NULL;
    pthread_mutex_unlock(&d->lock);
    if (t->irqfd >= 0)
        close(t->irqfd);
    free(t);
}

void virtio_mmio_get_regs_locked(const struct virtio_mmio *t, struct virtio_mmio_regs *r)
{
    r->device_features_sel = t->device_features_sel;
    r->driver_features_sel = t->driver_features_sel;
    r->queue_sel = t->queue_sel;
    r->interrupt_status = t->interrupt_status;
}

void virtio_mmio_get_regs(const struct virtio_mmio *t, struct virtio_mmio_regs *r)
{
    pthread_mutex_t *lock = &t->dev->lock;
    pthread_mutex_lock(lock);
    virtio_mmio_get_regs_locked(t, r);
    pthread_mutex_unlock(lock);
}

int virtio_mmio_set_regs_locked(struct virtio_mmio *t, const struct virtio_mmio_regs *r)
{
    /* Same bounds the register handlers keep, so a loaded state is one the
     * guest could have produced. */
    if (r->device_features_sel > VIRTIO_MMIO_FEATURE_WORDS ||
        r->driver_features_sel > VIRTIO_MMIO_FEATURE_WORDS ||
        r->queue_sel > t->dev->ops->num_queues ||
        (r->interrupt_status & ~(VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG)))
        return -EINVAL;
    t->device_features_sel = r->device_features_sel;
    t->driver_features_sel = r->driver_features_sel;
    t->queue_sel = r->queue_sel;
    t->interrupt_status = r->interrupt_status;
    return 0;
}

int virtio_mmio_set_regs(struct virtio_mmio *t, const struct virtio_mmio_regs *r)
{
    pthread_mutex_lock(&t->dev->lock);
    int ret = virtio_mmio_set_regs_locked(t, r);
    pthread_mutex_unlock(&t->dev->lock);
    return ret;
}

uint64_t virtio_mmio_base(const struct virtio_mmio *t)
{
    return t->base;
}

unsigned virtio_mmio_gsi(const struct virtio_mmio *t)
{
    return t->gsi;
}

void virtio_mmio_kick_locked(struct virtio_mmio *t, uint16_t q)
{
    virtio_mmio_deliver_notify(t, q);
}

bool virtio_mmio_kick_async(struct virtio_mmio *t, uint16_t q)
{
    if (q >= VIRTIO_MAX_QUEUES || t->kick[q].fd < 0 || !t->kick[q].in_loop)
        return false;
    uint64_t one = 1;
    return write(t->kick[q].fd, &one, sizeof(one)) == (ssize_t)sizeof(one);
}

void virtio_mmio_repulse_locked(struct virtio_mmio *t)
{
    /* raise(0) sets nothing new and pulses the line. */
    if (t->interrupt_status)
        virtio_mmio_raise(t, 0);
}

int virtio_mmio_cmdline(uint64_t base, unsigned gsi, char *buf, size_t len)
{
    /* Linux rejects IRQ 0 for command-line devices; the window must be one page. */
    if (gsi == 0 || !is_aligned(base, VIRTIO_MMIO_WINDOW) || !buf)
        return -EINVAL;
    _Static_assert(VIRTIO_MMIO_WINDOW == 4096, "the fragment below says 4K");
    int n = snprintf(buf, len, "virtio_mmio.device=4K@0x%" PRIx64 ":%u", base, gsi);
    if (n < 0 || (size_t)n >= len)
        return -ENOSPC;
    return 0;
}
