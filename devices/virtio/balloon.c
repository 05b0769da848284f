/*
 * virtio-balloon device model (see balloon.h).
 *
 * Why: a host running many microVMs overcommits memory; the balloon is how
 * it takes back what a guest does not need (inflation to a target) and
 * what a guest has freed (free page reporting), without a reboot.
 *
 * Every PFN and range the driver sends is checked against guest RAM before
 * anything is done with it, and pages are handed back to the host only
 * through gmem_discard(), which checks again and keeps migration's dirty
 * log right.  All work runs on the main event loop under dev->lock.
 */
#include "devices/virtio/balloon.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "vmm/log.h"

#define STATE_VERSION 1
#define LIVE_BLOCKERS (VIRTIO_STATUS_FAILED | VIRTIO_STATUS_DEVICE_NEEDS_RESET)
#define PFN_BATCH     256
#define STAT_ENTRY    10 /* le16 tag, le64 value, packed */
#define NO_QUEUE      0xffff
#define CFG_SIZE      16 /* num_pages, actual, free_page_hint_cmd_id, poison_val */

enum role { R_INFLATE, R_DEFLATE, R_STATS, R_REPORT, R_NONE };

struct balloon {
    struct virtio_dev vdev; /* first: the ops get &vdev */
    int kick_efd;           /* reschedules work left over by the budget */
    int timer_fd;           /* 1 s ticks for stats polling; -1 without stats */
    bool kick_reg, timer_reg;
    uint32_t ram_pages; /* guest RAM in 4 KiB pages, fixed at creation */
    uint32_t num_pages; /* target */
    uint32_t actual;    /* written by the driver, unchecked */
    bool deflate_on_oom;
    uint32_t interval;   /* stats polling interval, s; 0: no stats */
    uint32_t ticks;      /* seconds since the buffer was last given back */
    bool stats_held;     /* the driver's stats buffer is with us */
    uint16_t stats_head; /* its head, < BALLOON_QUEUE_SIZE */
    bool has_stat[BALLOON_S_NR];
    uint64_t stat[BALLOON_S_NR];
    struct balloon_counters c;
    struct virtq_chain chain;
};

static struct balloon *to_b(struct virtio_dev *d)
{
    return (struct balloon *)d;
}

/* Which queue index serves `r` under the negotiated features (NO_QUEUE: none). */
static uint16_t queue_of(const struct virtio_dev *d, enum role r)
{
    bool st = virtio_has_feature(d, VIRTIO_BALLOON_F_STATS_VQ);
    bool rep = virtio_has_feature(d, VIRTIO_BALLOON_F_REPORTING);
    switch (r) {
    case R_INFLATE:
        return 0;
    case R_DEFLATE:
        return 1;
    case R_STATS:
        return st ? 2 : NO_QUEUE;
    case R_REPORT:
        return rep ? (st ? 3 : 2) : NO_QUEUE;
    case R_NONE:
        break;
    }
    return NO_QUEUE;
}

static enum role role_of(const struct virtio_dev *d, uint16_t q)
{
    for (enum role r = R_INFLATE; r < R_NONE; r++)
        if (queue_of(d, r) == q)
            return r;
    return R_NONE;
}

static bool live(const struct virtio_dev *d)
{
    return (d->status & VIRTIO_STATUS_DRIVER_OK) && !(d->status & LIVE_BLOCKERS);
}

/* Discard one run of `n` pages from `gpa` (already checked to be RAM). */
static void discard_run(struct balloon *b, gpa_t gpa, uint64_t n)
{
    if (n && gmem_discard(b->vdev.mem, gpa, n * BALLOON_PAGE_SIZE) < 0)
        b->c.discard_errors++;
}

/* Act on the PFN array of one inflate or deflate chain. */
static void do_pfns(struct balloon *b, const struct virtq_chain *c, bool inflate)
{
    uint32_t pfns[PFN_BATCH];
    uint64_t len = c->out_len;
    gpa_t run = 0;
    uint64_t nrun = 0;

    if (len % 4)
        b->c.odd_lengths++;
    for (uint64_t off = 0; off + 4 <= len;) {
        size_t want = (size_t)MIN((len - off) / 4, (uint64_t)PFN_BATCH) * 4;
        size_t got = virtq_chain_read(c, off, pfns, want);
        if (got < 4)
            break;
        off += got;
        for (size_t i = 0; i < got / 4; i++) {
            gpa_t gpa = (gpa_t)pfns[i] * BALLOON_PAGE_SIZE; /* le32 on x86_64 */
            if (!gmem_range_ok(b->vdev.mem, gpa, BALLOON_PAGE_SIZE)) {
                b->c.bad_pfns++;
                continue;
            }
            if (!inflate) {
                b->c.deflated++; /* nothing to do: a hole reads as zero */
                continue;
            }
            b->c.inflated++;
            if (nrun && gpa == run + nrun * BALLOON_PAGE_SIZE &&
                gmem_range_ok(b->vdev.mem, run, (nrun + 1) * BALLOON_PAGE_SIZE)) {
                nrun++;
                continue;
            }
            discard_run(b, run, nrun);
            run = gpa;
            nrun = 1;
        }
    }
    discard_run(b, run, nrun);
}

/* Discard the free page runs of one reporting chain. */
static void do_report(struct balloon *b, const struct virtq_chain *c)
{
    const struct gmem *mem = b->vdev.mem;
    uint64_t pg = mem->page_size ? mem->page_size : BALLOON_PAGE_SIZE;
    unsigned n = MIN(c->n_out + c->n_in, (unsigned)VIRTQ_MAX_IOV);
    for (unsigned i = 0; i < n; i++) {
        gpa_t gpa;
        if (gmem_gpa_of(mem, c->iov[i].iov_base, c->iov[i].iov_len, &gpa) < 0) {
            b->c.bad_ranges++;
            continue;
        }
        /* Only whole pages inside the range are given back. */
        uint64_t lo = (gpa + pg - 1) & ~(pg - 1), hi = (gpa + c->iov[i].iov_len) & ~(pg - 1);
        if (lo >= hi)
            continue;
        if (gmem_discard(mem, lo, hi - lo) < 0)
            b->c.discard_errors++;
        else
            b->c.reported_bytes += hi - lo;
    }
}

/* Read the entries of a stats buffer. */
static void do_stats(struct balloon *b, const struct virtq_chain *c)
{
    uint8_t buf[BALLOON_STATS_MAX * STAT_ENTRY];
    size_t got = virtq_chain_read(c, 0, buf, sizeof(buf));
    b->c.stats_updates++;
    for (size_t off = 0; off + STAT_ENTRY <= got; off += STAT_ENTRY) {
        uint16_t tag;
        uint64_t val;
        memcpy(&tag, buf + off, 2);
        memcpy(&val, buf + off + 2, 8);
        if (tag >= BALLOON_S_NR) {
            b->c.unknown_tags++;
            continue;
        }
        b->stat[tag] = val;
        b->has_stat[tag] = true;
    }
}

/* Give the held stats buffer back so the driver refills it; not while the
 * queue is paused (quiesced for a snapshot or migration: the used ring in
 * guest memory must stay as saved), it goes back at a later tick. */
static void stats_return(struct balloon *b)
{
    uint16_t q = queue_of(&b->vdev, R_STATS);
    if (!b->stats_held || q == NO_QUEUE || !live(&b->vdev) || b->vdev.vq[q].paused)
        return;
    b->stats_held = false;
    b->ticks = 0;
    virtq_push(&b->vdev.vq[q], b->stats_head, 0);
    virtio_dev_signal(&b->vdev, q);
}

static void process(struct balloon *b, uint16_t qi)
{
    struct virtio_dev *d = &b->vdev;
    enum role r = role_of(d, qi);
    if (r == R_NONE || !live(d) || qi >= VIRTIO_MAX_QUEUES)
        return;
    struct virtq *q = &d->vq[qi];
    unsigned n = 0;
    uint64_t pfns = 0;
    bool pushed = false;
    if (!q->active || q->broken)
        return;
    for (;;) {
        virtq_set_notification(q, false);
        while (n < BALLOON_BUDGET && pfns < BALLOON_EVENT_PFNS) {
            uint64_t cap = r == R_REPORT ? UINT64_MAX : BALLOON_CHAIN_MAX;
            int ret = virtq_pop(q, &b->chain, cap);
            if (ret == 0)
                break;
            n++;
            if (ret == -E2BIG) {
                b->c.oversize++;
            } else if (ret < 0) {
                virtio_dev_fail(d, "malformed balloon queue");
                goto out;
            } else if (r == R_STATS) {
                do_stats(b, &b->chain);
                if (b->stats_held) { /* a second buffer: the first goes back */
                    virtq_push(q, b->stats_head, 0);
                    pushed = true;
                }
                b->stats_held = true;
                b->stats_head = b->chain.head;
                b->ticks = 0;
                continue;
            } else if (r == R_REPORT) {
                do_report(b, &b->chain);
            } else {
                do_pfns(b, &b->chain, r == R_INFLATE);
                pfns += b->chain.out_len / 4;
            }
            virtq_push(q, b->chain.head, 0);
            pushed = true;
        }
        if (n >= BALLOON_BUDGET || pfns >= BALLOON_EVENT_PFNS) {
            uint64_t one = 1;
            ssize_t w __unused = write(b->kick_efd, &one, sizeof(one));
            break;
        }
        virtq_set_notification(q, true);
        if (!virtq_has_avail(q))
            break;
    }
out:
    if (pushed)
        virtio_dev_signal(d, qi);
}

static void process_all(struct balloon *b)
{
    for (uint16_t i = 0; i < BALLOON_NUM_QUEUES; i++)
        process(b, i);
}

/* Main loop: our kick eventfd fired (budget exhausted, or activation). */
static void kick_event(void *opaque, uint32_t events)
{
    struct balloon *b = opaque;
    uint64_t v;
    (void)events;
    ssize_t k __unused = read(b->kick_efd, &v, sizeof(v));
    pthread_mutex_lock(&b->vdev.lock);
    process_all(b);
    pthread_mutex_unlock(&b->vdev.lock);
}

static void tick_locked(struct balloon *b)
{
    if (b->interval && ++b->ticks >= b->interval)
        stats_return(b);
}

static void timer_event(void *opaque, uint32_t events)
{
    struct balloon *b = opaque;
    uint64_t v;
    (void)events;
    ssize_t k __unused = read(b->timer_fd, &v, sizeof(v));
    pthread_mutex_lock(&b->vdev.lock);
    tick_locked(b);
    pthread_mutex_unlock(&b->vdev.lock);
}

void balloon_tick(struct virtio_dev *d)
{
    pthread_mutex_lock(&d->lock);
    tick_locked(to_b(d));
    pthread_mutex_unlock(&d->lock);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4); /* x86_64 is little-endian */
}

static void b_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
    struct balloon *b = to_b(d);
    uint8_t cfg[CFG_SIZE] = {0};
    put_le32(cfg, b->num_pages);
    put_le32(cfg + 4, b->actual);
    memcpy(data, cfg + off, len); /* the transport checked off + len <= CFG_SIZE */
}

static void b_config_write(struct virtio_dev *d, uint32_t off, const void *data, uint32_t len)
{
    struct balloon *b = to_b(d);
    /* Only `actual` (bytes 4..7) is the driver's; other writes are ignored. */
    if (off < 4 || len > 4 || off + len > 8)
        return;
    uint8_t cur[4];
    put_le32(cur, b->actual);
    memcpy(cur + (off - 4), data, len);
    memcpy(&b->actual, cur, 4);
}

static int b_activate(struct virtio_dev *d)
{
    uint64_t one = 1;
    ssize_t w __unused = write(to_b(d)->kick_efd, &one, sizeof(one));
    return 0;
}

static void b_queue_notify(struct virtio_dev *d, uint16_t q)
{
    process(to_b(d), q);
}

static void b_reset(struct virtio_dev *d)
{
    /* The held stats buffer belonged to the old rings. */
    struct balloon *b = to_b(d);
    b->stats_held = false;
    b->ticks = 0;
    b->actual = 0;
}

static int b_save(struct virtio_dev *d, struct vstate_out *out)
{
    struct balloon *b = to_b(d);
    vstate_begin(out, "virtio-balloon", STATE_VERSION);
    vstate_put_u32(out, b->num_pages);
    vstate_put_u32(out, b->actual);
    vstate_put_u32(out, b->interval);
    vstate_put_u8(out, b->stats_held);
    vstate_put_u16(out, b->stats_head);
    return vstate_end(out);
}

static int b_load(struct virtio_dev *d, struct vstate_in *in)
{
    struct balloon *b = to_b(d);
    uint16_t version;
    int ret = vstate_enter(in, "virtio-balloon", STATE_VERSION, STATE_VERSION, &version);
    if (ret < 0)
        return ret;
    uint32_t target = vstate_get_u32(in), actual = vstate_get_u32(in);
    uint32_t interval = vstate_get_u32(in);
    uint8_t held = vstate_get_u8(in);
    uint16_t head = vstate_get_u16(in);
    if (in->err)
        return in->err;
    /* Statistics are on here iff they were there: the feature was offered. */
    if (target > b->ram_pages || held > 1 || head >= BALLOON_QUEUE_SIZE ||
        interval > BALLOON_MAX_INTERVAL || (interval == 0) != (b->interval == 0) ||
        (held && !interval))
        return -EINVAL;
    ret = vstate_leave(in);
    if (ret < 0)
        return ret;
    b->num_pages = target;
    b->actual = actual;
    b->interval = interval;
    b->stats_held = held;
    b->stats_head = head;
    b->ticks = 0;
    return 0;
}

static void b_destroy(struct virtio_dev *d)
{
    struct balloon *b = to_b(d);
    if (!b)
        return;
    if (b->kick_reg)
        evloop_del(d->loop, b->kick_efd);
    if (b->timer_reg)
        evloop_del(d->loop, b->timer_fd);
    if (b->kick_efd >= 0)
        close(b->kick_efd);
    if (b->timer_fd >= 0)
        close(b->timer_fd);
    virtio_dev_fini(d);
    free(b);
}

static const struct virtio_dev_ops balloon_ops = {
    .type = "balloon",
    .device_id = VIRTIO_ID_BALLOON,
    .num_queues = BALLOON_NUM_QUEUES,
    .queue_max_size = BALLOON_QUEUE_SIZE,
    .config_size = CFG_SIZE,
    .config_read = b_config_read,
    .config_write = b_config_write,
    .activate = b_activate,
    .queue_notify = b_queue_notify,
    .reset = b_reset,
    .save = b_save,
    .load = b_load,
    .unmigratable = NULL,
    .destroy = b_destroy,
};

bool balloon_is(const struct virtio_dev *d)
{
    return d && d->ops == &balloon_ops;
}

/* Register an fd with the loop; errors go to err. */
static int join(struct balloon *b, int fd, evloop_fn fn, bool *reg, const char *id,
                struct errbuf *err)
{
    int ret = evloop_add(b->vdev.loop, fd, EPOLLIN, fn, b);
    if (ret < 0)
        return err_set(err, WISP_EXIT_FAILURE, -ret, "virtio %s: cannot join the event loop: %s",
                       id, strerror(-ret));
    *reg = true;
    return 0;
}

int balloon_create(const struct balloon_config *cfg, const struct gmem *mem, struct evloop *loop,
                   struct virtio_dev **out, struct errbuf *err)
{
    const char *id = cfg->id ? cfg->id : "balloon";
    uint64_t ram_pages = mem->total / BALLOON_PAGE_SIZE;
    if (!loop || loop->epfd < 0)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "virtio %s: event loop not initialised", id);
    if (ram_pages > UINT32_MAX)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "virtio %s: guest memory above 16 TiB cannot be ballooned", id);
    if ((uint64_t)cfg->amount_mib * (MiB / BALLOON_PAGE_SIZE) > ram_pages)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "balloon amount_mib=%u is more than the guest's %llu MiB", cfg->amount_mib,
                       (unsigned long long)(mem->total / MiB));
    if (cfg->stats_interval_s > BALLOON_MAX_INTERVAL)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "balloon stats_polling_interval_s=%u is above %u", cfg->stats_interval_s,
                       BALLOON_MAX_INTERVAL);
    struct balloon *b = calloc(1, sizeof(*b));
    if (!b)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "virtio %s: out of memory", id);
    uint64_t feat = 0;
    if (cfg->deflate_on_oom)
        feat |= VIRTIO_BIT(VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
    if (cfg->stats_interval_s)
        feat |= VIRTIO_BIT(VIRTIO_BALLOON_F_STATS_VQ);
    if (cfg->free_page_reporting)
        feat |= VIRTIO_BIT(VIRTIO_BALLOON_F_REPORTING);
    virtio_dev_init(&b->vdev, &balloon_ops, id, mem, loop, feat);
    b->ram_pages = (uint32_t)ram_pages;
    b->num_pages = cfg->amount_mib * (uint32_t)(MiB / BALLOON_PAGE_SIZE);
    b->deflate_on_oom = cfg->deflate_on_oom;
    b->interval = cfg->stats_interval_s;
    b->timer_fd = -1;
    b->kick_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int ret;
    if (b->kick_efd < 0) {
        ret = err_set(err, WISP_EXIT_FAILURE, errno, "virtio %s: eventfd: %s", id, strerror(errno));
        goto fail;
    }
    ret = join(b, b->kick_efd, kick_event, &b->kick_reg, id, err);
    if (ret < 0)
        goto fail;
    if (b->interval) {
        /* A fixed 1 s tick: a new interval needs no timerfd_settime later. */
        struct itimerspec its = {.it_interval = {1, 0}, .it_value = {1, 0}};
        b->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (b->timer_fd < 0 || timerfd_settime(b->timer_fd, 0, &its, NULL) < 0) {
            ret = err_set(err, WISP_EXIT_FAILURE, errno, "virtio %s: timerfd: %s", id,
                          strerror(errno));
            goto fail;
        }
        ret = join(b, b->timer_fd, timer_event, &b->timer_reg, id, err);
        if (ret < 0)
            goto fail;
    }
    *out = &b->vdev;
    return 0;
fail:
    b_destroy(&b->vdev);
    return ret;
}

int balloon_set_target(struct virtio_dev *d, uint32_t mib)
{
    struct balloon *b = to_b(d);
    if ((uint64_t)mib * (MiB / BALLOON_PAGE_SIZE) > b->ram_pages)
        return -EINVAL;
    pthread_mutex_lock(&d->lock);
    b->num_pages = mib * (uint32_t)(MiB / BALLOON_PAGE_SIZE);
    if (d->tops && (d->status & VIRTIO_STATUS_DRIVER_OK))
        d->tops->notify_config(d);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

int balloon_set_stats_interval(struct virtio_dev *d, uint32_t s)
{
    struct balloon *b = to_b(d);
    if (s == 0 || s > BALLOON_MAX_INTERVAL || b->timer_fd < 0)
        return -EINVAL;
    pthread_mutex_lock(&d->lock);
    b->interval = s;
    pthread_mutex_unlock(&d->lock);
    return 0;
}

void balloon_get_info(struct virtio_dev *d, struct balloon_info *info)
{
    struct balloon *b = to_b(d);
    memset(info, 0, sizeof(*info));
    pthread_mutex_lock(&d->lock);
    info->target_pages = b->num_pages;
    info->amount_mib = b->num_pages / (uint32_t)(MiB / BALLOON_PAGE_SIZE);
    info->actual_pages = MIN(b->actual, b->ram_pages);
    info->deflate_on_oom = b->deflate_on_oom;
    info->stats_interval_s = b->interval;
    memcpy(info->has_stat, b->has_stat, sizeof(info->has_stat));
    memcpy(info->stat, b->stat, sizeof(info->stat));
    info->c = b->c;
    pthread_mutex_unlock(&d->lock);
}
