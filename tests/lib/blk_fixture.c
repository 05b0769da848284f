/*
 * virtio-blk test fixture (see blk_fixture.h).  It exists so each blk test
 * reads as "place requests, kick, pump, check status and file bytes"
 * instead of repeating ring, transport and image plumbing.
 */
#include "tests/lib/blk_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define RING_SIZE 256

static _Noreturn void fx_die(const char *what)
{
    fprintf(stderr, "blk_fixture: %s\n", what);
    abort();
}

/* ---- fake transport ------------------------------------------------------ */

static struct blk_fx *fx_of(struct virtio_dev *d)
{
    return d->transport;
}

static void fake_notify_used(struct virtio_dev *d)
{
    fx_of(d)->irqs++;
}

static void fake_notify_config(struct virtio_dev *d)
{
    d->config_generation++;
    fx_of(d)->config_irqs++;
}

static void fake_needs_reset(struct virtio_dev *d)
{
    d->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
    fx_of(d)->needs_reset++;
}

static const struct virtio_transport_ops fake_tops = {
    .notify_used = fake_notify_used,
    .notify_config = fake_notify_config,
    .needs_reset = fake_needs_reset,
};

/* ---- setup --------------------------------------------------------------- */

void blk_fx_setup(struct blk_fx *fx, const struct blk_fx_opts *o)
{
    const char *dir = o && o->dir ? o->dir : getenv("TMPDIR");
    uint64_t size = o && o->image_size ? o->image_size : BLK_FX_DEFAULT_SIZE;

    memset(fx, 0, sizeof(*fx));
    vqb_init(&fx->vq, VQB_ONE_REGION, RING_SIZE, RING_SIZE);
    if (evloop_init(&fx->loop) < 0)
        fx_die("evloop_init");
    snprintf(fx->path, sizeof(fx->path), "%s/wisp-blk-XXXXXX", dir ? dir : "/tmp");
    fx->img_fd = mkstemp(fx->path);
    if (fx->img_fd < 0)
        fx_die("mkstemp");
    if (ftruncate(fx->img_fd, (off_t)size) < 0)
        fx_die("ftruncate");
}

int blk_fx_create(struct blk_fx *fx, const struct virtio_blk_config *cfg, struct errbuf *err)
{
    struct virtio_blk_config c = *cfg;
    c.path = fx->path;
    return virtio_blk_create(&c, &fx->vq.mem, &fx->loop, &fx->dev, err);
}

int blk_fx_create_on(struct blk_fx *fx, const struct virtio_blk_config *cfg, struct blk_backend *be,
                     struct errbuf *err)
{
    return virtio_blk_create_with_backend(cfg, be, &fx->vq.mem, &fx->loop, &fx->dev, err);
}

void blk_fx_start(struct blk_fx *fx, uint64_t unacked, bool event_idx)
{
    if (blk_fx_try_start(fx, unacked, event_idx) < 0)
        fx_die("activate");
}

int blk_fx_try_start(struct blk_fx *fx, uint64_t unacked, bool event_idx)
{
    struct virtio_dev *d = fx->dev;

    d->tops = &fake_tops;
    d->transport = fx;
    d->guest_features = d->host_features & ~unacked;
    if (!event_idx)
        d->guest_features &= ~VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
    d->vq[0].cfg = fx->vq.q.cfg;
    if (virtq_activate(&d->vq[0], &fx->vq.mem, virtio_has_feature(d, VIRTIO_F_EVENT_IDX),
                       virtio_has_feature(d, VIRTIO_F_INDIRECT_DESC)) < 0)
        fx_die("virtq_activate");
    d->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                VIRTIO_STATUS_DRIVER_OK;
    pthread_mutex_lock(&d->lock);
    int r = d->ops->activate(d);
    pthread_mutex_unlock(&d->lock);
    return r;
}

void blk_fx_init(struct blk_fx *fx, const struct blk_fx_opts *o)
{
    struct blk_fx_opts none = {0};
    struct errbuf err = {0};

    if (!o)
        o = &none;
    blk_fx_setup(fx, o);
    struct virtio_blk_config cfg = {
        .id = "blk0",
        .read_only = o->read_only,
        .queue_depth = o->queue_depth,
        .serial = o->serial,
        .direct = o->direct,
    };
    if (blk_fx_create(fx, &cfg, &err) < 0)
        fx_die(err.msg);
    blk_fx_start(fx, o->unacked, o->event_idx);
}

void blk_fx_fini(struct blk_fx *fx)
{
    if (fx->dev)
        fx->dev->ops->destroy(fx->dev);
    fx->dev = NULL;
    vqb_fini(&fx->vq);
    evloop_destroy(&fx->loop);
    if (fx->img_fd >= 0) {
        close(fx->img_fd);
        unlink(fx->path);
    }
    fx->img_fd = -1;
}

/* ---- driving the device -------------------------------------------------- */

void blk_fx_kick(struct blk_fx *fx)
{
    struct virtio_dev *d = fx->dev;
    pthread_mutex_lock(&d->lock);
    d->ops->queue_notify(d, 0);
    pthread_mutex_unlock(&d->lock);
}

unsigned blk_fx_pump(struct blk_fx *fx, int timeout_ms)
{
    struct epoll_event evs[16];
    int n = epoll_wait(fx->loop.epfd, evs, 16, timeout_ms);
    unsigned ran = 0;

    for (int i = 0; i < n; i++) {
        uint32_t slot = evs[i].data.u32;
        if (slot < EVLOOP_MAX_HANDLERS && fx->loop.handlers[slot].fd >= 0) {
            fx->loop.handlers[slot].fn(fx->loop.handlers[slot].opaque, evs[i].events);
            ran++;
        }
    }
    return ran;
}

void blk_fx_wait_used(struct blk_fx *fx, uint16_t n)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        uint16_t u = vqb_used_idx(&fx->vq);
        if (u == n)
            return;
        if ((uint16_t)(n - u) > 0x8000)
            fx_die("used.idx went past the expected value");
        blk_fx_pump(fx, 100);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec > 10)
            fx_die("timed out waiting for completions");
    }
}

void blk_fx_run(struct blk_fx *fx, uint16_t n)
{
    blk_fx_kick(fx);
    blk_fx_wait_used(fx, n);
}

/* ---- requests ------------------------------------------------------------ */

gpa_t blk_fx_alloc_aligned(struct blk_fx *fx, uint64_t len, uint64_t align, uint8_t fill)
{
    gpa_t start = fx->vq.data_next;
    gpa_t g = (start + align - 1) & ~(align - 1);
    vqb_alloc(&fx->vq, g - start + len, 0);
    memset(blk_fx_host(fx, g, len), fill, len);
    return g;
}

gpa_t blk_fx_hdr(struct blk_fx *fx, uint32_t type, uint64_t sector)
{
    gpa_t g = vqb_alloc(&fx->vq, 16, 0);
    uint8_t *h = blk_fx_host(fx, g, 16);
    le32_put(h, type);
    le32_put(h + 4, 0);
    le64_put(h + 8, sector);
    return g;
}

struct blk_fx_req blk_fx_add_bufs(struct blk_fx *fx, const struct vqb_buf *bufs, unsigned n)
{
    struct blk_fx_req r = {0};
    gpa_t table = vqb_alloc(&fx->vq, 16ULL * n, 0);

    r.hdr = bufs[0].addr;
    r.status = bufs[n - 1].addr + bufs[n - 1].len - 1;
    r.head = vqb_add_indirect(&fx->vq, table, bufs, n);
    return r;
}

struct blk_fx_req blk_fx_add(struct blk_fx *fx, uint32_t type, uint64_t sector, uint32_t len,
                             uint8_t fill)
{
    struct vqb_buf bufs[3];
    unsigned n = 0;
    bool writable = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;

    bufs[n++] = (struct vqb_buf){blk_fx_hdr(fx, type, sector), 16, false};
    gpa_t data = 0;
    if (len) {
        data = vqb_alloc(&fx->vq, len, fill);
        bufs[n++] = (struct vqb_buf){data, len, writable};
    }
    bufs[n++] = (struct vqb_buf){vqb_alloc(&fx->vq, 1, 0xee), 1, true};
    struct blk_fx_req r = blk_fx_add_bufs(fx, bufs, n);
    r.data = data;
    r.len = len;
    return r;
}

struct blk_fx_req blk_fx_add_dwz(struct blk_fx *fx, uint32_t type, uint64_t sector, uint32_t nsec,
                                 uint32_t flags)
{
    gpa_t seg = vqb_alloc(&fx->vq, 16, 0);
    uint8_t *s = blk_fx_host(fx, seg, 16);
    le64_put(s, sector);
    le32_put(s + 8, nsec);
    le32_put(s + 12, flags);
    struct vqb_buf bufs[3] = {
        {blk_fx_hdr(fx, type, 0), 16, false},
        {seg, 16, false},
        {vqb_alloc(&fx->vq, 1, 0xee), 1, true},
    };
    struct blk_fx_req r = blk_fx_add_bufs(fx, bufs, 3);
    r.data = seg;
    r.len = 16;
    return r;
}

uint8_t blk_fx_status(struct blk_fx *fx, const struct blk_fx_req *r)
{
    return *blk_fx_host(fx, r->status, 1);
}

bool blk_fx_used_len(struct blk_fx *fx, uint16_t head, uint32_t *len)
{
    uint16_t used = vqb_used_idx(&fx->vq);
    /* Only the last ring's worth of entries is still in the used ring. */
    uint16_t from = used > RING_SIZE ? (uint16_t)(used - RING_SIZE) : 0;
    for (uint16_t i = from; i != used; i++) {
        uint32_t id, l;
        vqb_used_elem(&fx->vq, i, &id, &l);
        if (id == head) {
            *len = l;
            return true;
        }
    }
    return false;
}

uint8_t *blk_fx_host(struct blk_fx *fx, gpa_t gpa, uint64_t len)
{
    return vqb_host(&fx->vq, gpa, len);
}

void blk_fx_reset_alloc(struct blk_fx *fx)
{
    fx->vq.data_next = VQB_DATA_GPA;
}

void blk_fx_reset(struct blk_fx *fx)
{
    struct virtio_dev *d = fx->dev;

    pthread_mutex_lock(&d->lock);
    d->ops->reset(d);
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        virtq_reset(&d->vq[q]);
    d->guest_features = 0;
    d->status = 0;
    pthread_mutex_unlock(&d->lock);

    memset(blk_fx_host(fx, VQB_DESC_GPA, VQB_RAM_END - VQB_DESC_GPA), 0,
           VQB_RAM_END - VQB_DESC_GPA);
    fx->vq.avail_idx = 0;
    fx->vq.next_desc = 0;
    blk_fx_reset_alloc(fx);
}

/* ---- the image ----------------------------------------------------------- */

void blk_fx_img_read(struct blk_fx *fx, uint64_t off, void *buf, uint64_t len)
{
    if (pread(fx->img_fd, buf, len, (off_t)off) != (ssize_t)len)
        fx_die("image pread");
}

void blk_fx_img_write(struct blk_fx *fx, uint64_t off, const void *buf, uint64_t len)
{
    if (pwrite(fx->img_fd, buf, len, (off_t)off) != (ssize_t)len)
        fx_die("image pwrite");
}

bool blk_fx_img_all(struct blk_fx *fx, uint64_t off, uint64_t len, uint8_t v)
{
    uint8_t buf[4096];
    while (len) {
        uint64_t n = MIN(len, sizeof(buf));
        blk_fx_img_read(fx, off, buf, n);
        for (uint64_t i = 0; i < n; i++)
            if (buf[i] != v)
                return false;
        off += n;
        len -= n;
    }
    return true;
}

bool blk_fx_img_hole(struct blk_fx *fx, uint64_t off, uint64_t len)
{
    off_t d = lseek(fx->img_fd, (off_t)off, SEEK_DATA);
    if (d < 0)
        return errno == ENXIO; /* no data after off at all */
    return (uint64_t)d >= off + len;
}
