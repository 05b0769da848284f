/*
 * Test doubles for the virtio-mmio transport (see fake_virtio.h).  They
 * exist so the transport's register file, state machine, notification and
 * interrupt paths can be tested in-process, under ASan, without /dev/kvm.
 */
#include "tests/lib/fake_virtio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static _Noreturn void fake_abort(const char *what)
{
    fprintf(stderr, "fake_virtio: %s\n", what);
    abort();
}

/* ---- the dummy device ------------------------------------------------- */

static struct fake_virtio *fake_of(struct virtio_dev *d)
{
    return (struct fake_virtio *)d;
}

static void fake_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
    if (off + len > FAKE_VIRTIO_CONFIG_SIZE)
        fake_abort("config read out of range reached the device");
    memcpy(data, fake_of(d)->config + off, len);
}

static void fake_config_write(struct virtio_dev *d, uint32_t off, const void *data, uint32_t len)
{
    if (off + len > FAKE_VIRTIO_CONFIG_SIZE)
        fake_abort("config write out of range reached the device");
    memcpy(fake_of(d)->config + off, data, len);
    fake_of(d)->config_writes++;
}

static int fake_activate(struct virtio_dev *d)
{
    fake_of(d)->activates++;
    return fake_of(d)->activate_result;
}

static void fake_queue_notify(struct virtio_dev *d, uint16_t q)
{
    struct fake_virtio *f = fake_of(d);
    if (q >= FAKE_VIRTIO_QUEUES)
        fake_abort("notify for a queue that does not exist");
    f->notifies[q]++;
    if (!f->process)
        return;
    bool pushed = false;
    for (;;) {
        int r = virtq_pop(&d->vq[q], &f->chain, 1 * MiB);
        f->last_pop = r;
        if (r == 0)
            break;
        if (r < 0 && r != -E2BIG) {
            virtio_dev_fail(d, "fake: malformed ring");
            return;
        }
        /* Fill what the driver lets us write with a recognisable byte. */
        uint32_t written = 0;
        if (r == 1 && f->chain.in_len) {
            uint8_t b[64];
            memset(b, 0xd5, sizeof(b));
            written = (uint32_t)virtq_chain_write(&f->chain, 0, b, MIN(sizeof(b), f->chain.in_len));
        }
        virtq_push(&d->vq[q], f->chain.head, written);
        f->chains[q]++;
        pushed = true;
    }
    if (pushed)
        virtio_dev_signal(d, q);
}

static void fake_reset(struct virtio_dev *d)
{
    fake_of(d)->resets++;
}

const struct virtio_dev_ops fake_virtio_ops = {
    .type = "fake",
    .device_id = FAKE_VIRTIO_DEVICE_ID,
    .num_queues = FAKE_VIRTIO_QUEUES,
    .queue_max_size = FAKE_VIRTIO_QUEUE_MAX,
    .config_size = FAKE_VIRTIO_CONFIG_SIZE,
    .config_read = fake_config_read,
    .config_write = fake_config_write,
    .activate = fake_activate,
    .queue_notify = fake_queue_notify,
    .reset = fake_reset,
    .unmigratable = "test device",
};

void fake_virtio_init(struct fake_virtio *f, const struct gmem *mem, struct evloop *loop)
{
    memset(f, 0, sizeof(*f));
    virtio_dev_init(&f->dev, &fake_virtio_ops, "fake0", mem, loop, FAKE_VIRTIO_FEATURES);
    for (unsigned i = 0; i < FAKE_VIRTIO_CONFIG_SIZE; i++)
        f->config[i] = (uint8_t)(0x10 + i);
    f->process = true;
}

void fake_virtio_fini(struct fake_virtio *f)
{
    virtio_dev_fini(&f->dev);
}

/* ---- host services ---------------------------------------------------- */

static int fake_ioeventfd(void *opaque, uint64_t addr, uint32_t datamatch, int fd, bool assign)
{
    struct fake_host *h = opaque;
    if (h->ncalls >= FAKE_HOST_MAX_CALLS)
        fake_abort("too many ioeventfd calls");
    if (assign && ++h->assigns == (unsigned)h->fail_assign)
        return -ENOSPC;
    if (!assign && fake_host_kick_fd(h, datamatch) != fd)
        return -ENOENT; /* what KVM says for an unknown binding */
    h->calls[h->ncalls++] = (struct fake_ioeventfd_call){addr, datamatch, fd, assign};
    return 0;
}

static int fake_irqfd(void *opaque, unsigned gsi, int *fd)
{
    struct fake_host *h = opaque;
    h->irqfd_calls++;
    h->gsi = gsi;
    if (h->fail_irqfd)
        return h->fail_irqfd;
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0)
        return -errno;
    /* The transport owns and closes `efd`; the dup lets us count pulses. */
    if (h->irq_counter >= 0)
        close(h->irq_counter);
    h->irq_counter = dup(efd);
    if (h->irq_counter < 0) {
        close(efd);
        return -errno;
    }
    *fd = efd;
    return 0;
}

void fake_host_init(struct fake_host *h)
{
    memset(h, 0, sizeof(*h));
    h->irq_counter = -1;
    bus_init(&h->bus, "mmio");
    if (evloop_init(&h->loop) < 0)
        fake_abort("evloop_init failed");
    h->host = (struct virtio_mmio_host){
        .opaque = h,
        .loop = &h->loop,
        .mmio_bus = &h->bus,
        .ioeventfd = fake_ioeventfd,
        .irqfd = fake_irqfd,
    };
}

void fake_host_fini(struct fake_host *h)
{
    if (h->irq_counter >= 0)
        close(h->irq_counter);
    h->irq_counter = -1;
    evloop_destroy(&h->loop);
}

uint64_t fake_host_irqs(struct fake_host *h)
{
    uint64_t n;
    if (h->irq_counter >= 0 && read(h->irq_counter, &n, sizeof(n)) == (ssize_t)sizeof(n))
        h->irqs += n;
    return h->irqs;
}

int fake_host_kick_fd(const struct fake_host *h, uint32_t datamatch)
{
    int fd = -1;
    /* The latest call for this datamatch says whether it is bound now. */
    for (unsigned i = 0; i < h->ncalls; i++)
        if (h->calls[i].datamatch == datamatch)
            fd = h->calls[i].assign ? h->calls[i].fd : -1;
    return fd;
}

unsigned fake_host_bound(const struct fake_host *h)
{
    int n = 0;
    for (unsigned i = 0; i < h->ncalls; i++)
        n += h->calls[i].assign ? 1 : -1;
    return n < 0 ? 0 : (unsigned)n;
}

unsigned fake_host_poll(struct fake_host *h)
{
    struct epoll_event evs[16];
    int n = epoll_wait(h->loop.epfd, evs, 16, 0);
    unsigned ran = 0;
    for (int i = 0; i < n; i++) {
        uint32_t slot = evs[i].data.u32;
        if (slot < EVLOOP_MAX_HANDLERS && h->loop.handlers[slot].fd >= 0) {
            h->loop.handlers[slot].fn(h->loop.handlers[slot].opaque, evs[i].events);
            ran++;
        }
    }
    return ran;
}

unsigned fake_host_kick(struct fake_host *h, uint32_t datamatch)
{
    int fd = fake_host_kick_fd(h, datamatch);
    if (fd < 0)
        fake_abort("kick for a datamatch with no eventfd bound");
    uint64_t one = 1;
    if (write(fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
        fake_abort("eventfd write failed");
    return fake_host_poll(h);
}

/* ---- driver side of a split ring (virtio 1.2 section 2.7) ------------- */

static void *host_ptr(const struct gmem *mem, gpa_t gpa, uint64_t len)
{
    void *p = gmem_ptr(mem, gpa, len);
    if (!p)
        fake_abort("ring placed outside RAM");
    return p;
}

void fake_ring_init(struct fake_ring *r, const struct gmem *mem, gpa_t desc, gpa_t avail,
                    gpa_t used, uint16_t size)
{
    *r = (struct fake_ring){mem, desc, avail, used, size, 0};
    memset(host_ptr(mem, desc, 16ULL * size), 0, 16ULL * size);
    memset(host_ptr(mem, avail, 6ULL + 2ULL * size), 0, 6ULL + 2ULL * size);
    memset(host_ptr(mem, used, 6ULL + 8ULL * size), 0, 6ULL + 8ULL * size);
}

void fake_ring_set_avail_idx(struct fake_ring *r, uint16_t idx)
{
    r->avail_idx = idx;
    uint8_t *a = host_ptr(r->mem, r->avail, 4);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    le16_put(a + 2, idx);
}

uint16_t fake_ring_add(struct fake_ring *r, gpa_t buf, uint32_t len, bool device_writable)
{
    uint16_t head = (uint16_t)(r->avail_idx % r->size);
    uint8_t *d = host_ptr(r->mem, r->desc + 16ULL * head, 16);
    le64_put(d, buf);
    le32_put(d + 8, len);
    le16_put(d + 12, device_writable ? VIRTQ_DESC_F_WRITE : 0);
    le16_put(d + 14, 0);
    uint8_t *slot = host_ptr(r->mem, r->avail + 4 + 2ULL * (r->avail_idx % r->size), 2);
    le16_put(slot, head);
    fake_ring_set_avail_idx(r, (uint16_t)(r->avail_idx + 1));
    return head;
}

uint16_t fake_ring_used_idx(const struct fake_ring *r)
{
    const uint8_t *u = host_ptr(r->mem, r->used, 4);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return le16_get(u + 2);
}

/* ---- driver register accesses ----------------------------------------- */

uint32_t fake_mmio_rd(struct virtio_mmio *t, uint64_t off)
{
    uint8_t b[4];
    virtio_mmio_read(t, off, b, 4);
    return le32_get(b);
}

void fake_mmio_wr(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
    uint8_t b[4];
    le32_put(b, v);
    virtio_mmio_write(t, off, b, 4);
}

uint32_t fake_mmio_negotiate(struct virtio_mmio *t, uint64_t features)
{
    fake_mmio_wr(t, FAKE_MMIO_STATUS, 0);
    fake_mmio_wr(t, FAKE_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    fake_mmio_wr(t, FAKE_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    for (uint32_t w = 0; w < 2; w++) {
        fake_mmio_wr(t, FAKE_MMIO_DRV_FEATURES_SEL, w);
        fake_mmio_wr(t, FAKE_MMIO_DRV_FEATURES, (uint32_t)(features >> (32 * w)));
    }
    fake_mmio_wr(t, FAKE_MMIO_STATUS,
                 VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    return fake_mmio_rd(t, FAKE_MMIO_STATUS);
}

void fake_mmio_setup_queue(struct virtio_mmio *t, uint32_t q, const struct fake_ring *r)
{
    fake_mmio_wr(t, FAKE_MMIO_QUEUE_SEL, q);
    fake_mmio_wr(t, FAKE_MMIO_QUEUE_NUM, r->size);
    fake_mmio_wr(t, FAKE_MMIO_DESC_LO, (uint32_t)r->desc);
    fake_mmio_wr(t, FAKE_MMIO_DESC_HI, (uint32_t)(r->desc >> 32));
    fake_mmio_wr(t, FAKE_MMIO_DRIVER_LO, (uint32_t)r->avail);
    fake_mmio_wr(t, FAKE_MMIO_DRIVER_HI, (uint32_t)(r->avail >> 32));
    fake_mmio_wr(t, FAKE_MMIO_DEVICE_LO, (uint32_t)r->used);
    fake_mmio_wr(t, FAKE_MMIO_DEVICE_HI, (uint32_t)(r->used >> 32));
    fake_mmio_wr(t, FAKE_MMIO_QUEUE_READY, 1);
}

/* ---- the usual setup ---------------------------------------------------- */

void fake_fixture_init(struct fake_fixture *fx)
{
    struct gmem_range ranges[] = {{0, FAKE_HOLE_START},
                                  {FAKE_HOLE_END, FAKE_RAM_END - FAKE_HOLE_END}};
    struct errbuf err = {0};

    memset(fx, 0, sizeof(*fx));
    if (gmem_create(&fx->mem, ranges, 2, false, &err) < 0)
        fake_abort(err.msg);
    fake_host_init(&fx->host);
    fake_virtio_init(&fx->dev, &fx->mem, &fx->host.loop);
    if (virtio_mmio_create(&fx->dev.dev, &fx->host.host, FAKE_MMIO_BASE, FAKE_MMIO_GSI, &fx->t,
                           &err) < 0)
        fake_abort(err.msg);
}

void fake_fixture_fini(struct fake_fixture *fx)
{
    virtio_mmio_destroy(fx->t);
    fx->t = NULL;
    fake_virtio_fini(&fx->dev);
    fake_host_fini(&fx->host);
    gmem_destroy(&fx->mem);
}
