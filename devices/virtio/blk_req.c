/*
 * virtio-blk request path: popping, parsing, submitting and completing
 * requests (see blk.h for the behaviour; blk.c has the device lifecycle).
 *
 * This file exists to turn guest block requests into backend operations
 * without trusting anything the guest wrote: the 16-byte header and the
 * discard segment are copied into locals once, every sector range is checked
 * against the capacity with overflow-safe arithmetic before the backend sees
 * it, and the data iovecs handed to the backend are carved out of the chain
 * the queue code already validated and capped (VIRTIO_BLK_MAX_REQ).
 *
 * Request slots.  queue_depth slots are allocated at creation, each with room
 * for one popped chain; a free list holds the idle ones.  A request owns its
 * slot from virtq_pop() until its chain is pushed back, so the in-flight
 * limit is simply "no free slot", and nothing is ever allocated per request.
 * The slot's iovec array is rewritten in place to describe only the data
 * bytes (header and status cut off); the status byte's host address is
 * remembered before that.
 *
 * Locking: every path runs under dev->lock: ops from the transport, and the
 * two event-loop handlers (backend completions, reschedule) take it
 * themselves.  Backend done() callbacks therefore run under the lock too:
 * the backend only calls them from complete()/drain(), which we call.
 */
#include "devices/virtio/blk_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "vmm/log.h"

#define PENDING (-1) /* start_request(): handed to the backend, status comes later */

/* The driver gave up (FAILED) or must reset the device: pop and push nothing.
 * The transport checks this before a kick, but completions and reschedules
 * reach us from the event loop without it. */
#define LIVE_BLOCKERS (VIRTIO_STATUS_FAILED | VIRTIO_STATUS_DEVICE_NEEDS_RESET)

/* ---- slots ------------------------------------------------------------- */

/* Take the free-list head (the caller checked there is one). */
static void slot_take_head(struct virtio_blk *b)
{
    b->free_head = b->reqs[b->free_head].next_free;
}

static void slot_put(struct virtio_blk *b, struct blk_req *r)
{
    r->next_free = b->free_head;
    b->free_head = (uint16_t)(r - b->reqs);
}

void blk_req_init_slots(struct virtio_blk *b)
{
    b->free_head = NO_SLOT;
    for (unsigned i = b->depth; i-- > 0;) {
        b->reqs[i].blk = b;
        slot_put(b, &b->reqs[i]);
    }
}

/* ---- completion -------------------------------------------------------- */

static void account(struct virtio_blk *b, const struct blk_req *r, uint8_t st)
{
    if (st == VIRTIO_BLK_S_IOERR) {
        b->stats.ioerr++;
        METRICS_ADD(b->dev.metrics, errors, 1);
        return;
    }
    if (st == VIRTIO_BLK_S_UNSUPP) {
        b->stats.unsupp++;
        METRICS_ADD(b->dev.metrics, errors, 1);
        return;
    }
    switch (r->type) {
    case VIRTIO_BLK_T_IN:
        b->stats.reads++;
        METRICS_ADD(b->dev.metrics, requests, 1);
        b->stats.read_bytes += r->used_len - 1;
        METRICS_ADD(b->dev.metrics, bytes_read, r->used_len - 1);
        break;
    case VIRTIO_BLK_T_OUT:
        b->stats.writes++;
        METRICS_ADD(b->dev.metrics, requests, 1);
        b->stats.write_bytes += r->chain.out_len - HDR_LEN;
        METRICS_ADD(b->dev.metrics, bytes_written, r->chain.out_len - HDR_LEN);
        break;
    case VIRTIO_BLK_T_FLUSH:
        b->stats.flushes++;
        METRICS_ADD(b->dev.metrics, requests, 1);
        break;
    case VIRTIO_BLK_T_GET_ID:
        b->stats.get_ids++;
        METRICS_ADD(b->dev.metrics, requests, 1);
        break;
    case VIRTIO_BLK_T_DISCARD:
        b->stats.discards++;
        METRICS_ADD(b->dev.metrics, requests, 1);
        break;
    case VIRTIO_BLK_T_WRITE_ZEROES:
        b->stats.write_zeroes++;
        METRICS_ADD(b->dev.metrics, requests, 1);
        break;
    }
}

/* Write the status, return the chain, free the slot.  The interrupt comes per batch. */
static void finish(struct virtio_blk *b, struct blk_req *r, uint8_t st)
{
    *r->status = st;
    account(b, r, st);
    /* virtq_push() publishes used.idx with release: the status is visible first. */
    virtq_push(&b->dev.vq[0], r->chain.head, r->used_len);
    b->need_signal = true;
    slot_put(b, r);
}

/* A chain we cannot answer with a status: give it back empty. */
static void malformed(struct virtio_blk *b, struct blk_req *r, const char *why)
{
    b->stats.malformed++;
    METRICS_ADD(b->dev.metrics, errors, 1);
    log_ratelimited(LOG_WARN, "virtio %s: malformed request (%s); returned unanswered", b->dev.id,
                    why);
    virtq_push(&b->dev.vq[0], r->chain.head, 0);
    b->need_signal = true;
    slot_put(b, r);
}

/* Backend completion (from complete() or drain(), under dev->lock). */
static void on_io_done(struct blk_io *io, int result)
{
    struct blk_req *r = io->opaque;
    struct virtio_blk *b = r->blk;

    b->inflight--;
    if (b->drop_completions || (b->dev.status & LIVE_BLOCKERS)) {
        /* Reset or destroy: the driver gave these buffers up; leave the rings alone.
         * That holds for requests a timed-out drain left behind too: they belong
         * to a queue that was reset since, whatever the driver set up after it. */
        slot_put(b, r);
        if (b->abandoned && b->inflight == 0) {
            b->abandoned = false;
            b->drop_completions = false;
            log_ratelimited(LOG_WARN, "virtio %s: the abandoned requests have ended", b->dev.id);
        }
        return;
    }
    if (result < 0)
        log_ratelimited(LOG_WARN, "virtio %s: %s request type %" PRIu32 " failed: %s", b->dev.id,
                        b->be->ops->kind, r->type, strerror(-result));
    finish(b, r, result < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
}

/* End of a batch: start what was submitted, interrupt for what was pushed. */
void blk_req_flush(struct virtio_blk *b)
{
    if (b->need_unplug) {
        b->need_unplug = false;
        b->be->ops->unplug(b->be);
    }
    if (b->need_signal) {
        b->need_signal = false;
        virtio_dev_signal(&b->dev, 0);
    }
}

/* ---- request parsing --------------------------------------------------- */

/* Is [sector, sector + nsec) inside the disk?  No overflow possible. */
static bool in_disk(const struct virtio_blk *b, uint64_t sector, uint64_t nsec)
{
    return sector <= b->capacity && nsec <= b->capacity - sector;
}

/*
 * Rewrite iov[0 ..) to describe bytes [skip, skip + len) of iov[first ..
 * first + count).  Output entry k is written only after input entry i >= k
 * was read, so this works in place.
 */
static unsigned iov_carve(struct iovec *iov, unsigned first, unsigned count, uint64_t skip,
                          uint64_t len)
{
    unsigned k = 0;
    for (unsigned i = first; i < first + count && len > 0; i++) {
        uint8_t *base = iov[i].iov_base;
        uint64_t n = iov[i].iov_len;
        if (skip >= n) {
            skip -= n;
            continue;
        }
        base += skip;
        n = MIN(n - skip, len);
        skip = 0;
        iov[k].iov_base = base;
        iov[k].iov_len = n;
        k++;
        len -= n;
    }
    return k;
}

/* Hand the request to the backend; PENDING, or IOERR if it refused. */
static int submit(struct virtio_blk *b, struct blk_req *r, enum blk_op op, uint64_t sector,
                  uint64_t nsec, uint32_t flags, unsigned niov)
{
    r->io = (struct blk_io){
        .op = op,
        .flags = flags,
        .offset = sector * BLK_SECTOR_SIZE, /* in_disk() bounds sector below 2^55 */
        .len = nsec * BLK_SECTOR_SIZE,
        .iov = niov ? r->chain.iov : NULL,
        .iovcnt = niov,
        .done = on_io_done,
        .opaque = r,
    };
    int rc = b->be->ops->submit(b->be, &r->io);
    if (rc < 0) {
        log_ratelimited(LOG_WARN, "virtio %s: %s backend refused request type %" PRIu32 ": %s",
                        b->dev.id, b->be->ops->kind, r->type, strerror(-rc));
        return VIRTIO_BLK_S_IOERR;
    }
    b->inflight++;
    b->stats.inflight_peak = MAX(b->stats.inflight_peak, b->inflight);
    b->need_unplug = true;
    return PENDING;
}

static int rw_request(struct virtio_blk *b, struct blk_req *r, uint64_t sector, bool write)
{
    struct virtq_chain *c = &r->chain;
    uint64_t len = write ? c->out_len - HDR_LEN : c->in_len - 1;
    unsigned niov;

    if (write && b->read_only)
        return VIRTIO_BLK_S_IOERR; /* section 5.2.6.2: and no data written */
    if (len % BLK_SECTOR_SIZE != 0 || !in_disk(b, sector, len / BLK_SECTOR_SIZE))
        return VIRTIO_BLK_S_IOERR;
    if (!write)
        r->used_len = (uint32_t)c->in_len; /* data and status; <= VIRTIO_BLK_MAX_REQ */
    if (len == 0)
        return VIRTIO_BLK_S_OK;
    if (write)
        niov = iov_carve(c->iov, 0, c->n_out, HDR_LEN, len);
    else
        niov = iov_carve(c->iov, c->n_out, c->n_in, 0, len);
    /* Without a negotiated FLUSH, a completed write must already be stable (5.2.6.2). */
    bool fua = write && (b->dev.host_features & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH)) &&
               !virtio_has_feature(&b->dev, VIRTIO_BLK_F_FLUSH);
    return submit(b, r, write ? BLK_OP_WRITE : BLK_OP_READ, sector, len / BLK_SECTOR_SIZE,
                  fua ? BLK_IO_FUA : 0, niov);
}

/* DISCARD and WRITE_ZEROES: exactly one segment (max_*_seg = 1). */
static int dwz_request(struct virtio_blk *b, struct blk_req *r)
{
    bool discard = r->type == VIRTIO_BLK_T_DISCARD;
    uint8_t raw[SEG_LEN];

    if (b->read_only)
        return VIRTIO_BLK_S_IOERR;
    if (!virtio_has_feature(&b->dev, discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES))
        return VIRTIO_BLK_S_UNSUPP;
    if (r->chain.out_len - HDR_LEN != SEG_LEN ||
        virtq_chain_read(&r->chain, HDR_LEN, raw, SEG_LEN) != SEG_LEN)
        return VIRTIO_BLK_S_IOERR; /* no segment, a partial one, or more than one */
    uint64_t sector = le64_get(raw + offsetof(struct virtio_blk_dwz_seg, sector));
    uint32_t nsec = le32_get(raw + offsetof(struct virtio_blk_dwz_seg, num_sectors));
    uint32_t flags = le32_get(raw + offsetof(struct virtio_blk_dwz_seg, flags));

    /* Section 5.2.6.2: unknown flags, and UNMAP on a discard, are UNSUPP. */
    if ((flags & ~VIRTIO_BLK_WZ_F_UNMAP) || (discard && (flags & VIRTIO_BLK_WZ_F_UNMAP)))
        return VIRTIO_BLK_S_UNSUPP;
    if (nsec > VIRTIO_BLK_MAX_DWZ_SECTORS || !in_disk(b, sector, nsec))
        return VIRTIO_BLK_S_IOERR;
    if (nsec == 0)
        return VIRTIO_BLK_S_OK;
    return submit(b, r, discard ? BLK_OP_DISCARD : BLK_OP_WRITE_ZEROES, sector, nsec,
                  (flags & VIRTIO_BLK_WZ_F_UNMAP) ? BLK_IO_UNMAP : 0, 0);
}

/* The chain's last writable byte (queue.c maps no zero-length buffers). */
static volatile uint8_t *status_byte(const struct virtq_chain *c)
{
    for (unsigned i = c->n_out + c->n_in; i-- > c->n_out;)
        if (c->iov[i].iov_len)
            return (volatile uint8_t *)c->iov[i].iov_base + c->iov[i].iov_len - 1;
    return NULL;
}

/* Parse the request in slot `r` and start it or complete it at once. */
static void start_request(struct virtio_blk *b, struct blk_req *r)
{
    struct virtq_chain *c = &r->chain;
    uint8_t hdr[HDR_LEN];
    int st;

    r->status = c->in_len ? status_byte(c) : NULL;
    if (!r->status) {
        malformed(b, r, "no status byte");
        return;
    }
    if (c->out_len < HDR_LEN || virtq_chain_read(c, 0, hdr, HDR_LEN) != HDR_LEN) {
        malformed(b, r, "header shorter than 16 bytes");
        return;
    }
    r->type = le32_get(hdr + offsetof(struct virtio_blk_req_hdr, type));
    uint64_t sector = le64_get(hdr + offsetof(struct virtio_blk_req_hdr, sector));
    r->used_len = 1;

    switch (r->type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
        st = rw_request(b, r, sector, r->type == VIRTIO_BLK_T_OUT);
        break;
    case VIRTIO_BLK_T_FLUSH: /* allowed on a read-only disk: it changes nothing */
        /* Served even if the driver did not ack FLUSH (harmless: writes are
         * then synchronous anyway), but never passed to a backend that
         * cannot flush, where the device did not offer it (found by fuzzing). */
        if (!(b->dev.host_features & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH))) {
            st = VIRTIO_BLK_S_UNSUPP;
            break;
        }
        st = submit(b, r, BLK_OP_FLUSH, 0, 0, 0, 0);
        break;
    case VIRTIO_BLK_T_GET_ID: {
        size_t n = (size_t)MIN(c->in_len - 1, VIRTIO_BLK_ID_BYTES);
        n = virtq_chain_write(c, 0, b->serial, n);
        r->used_len = (uint32_t)n + 1;
        st = VIRTIO_BLK_S_OK;
        break;
    }
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        st = dwz_request(b, r);
        break;
    default:
        st = VIRTIO_BLK_S_UNSUPP;
        break;
    }
    if (st != PENDING)
        finish(b, r, (uint8_t)st);
}

/* ---- the queue --------------------------------------------------------- */

static bool can_pop(const struct virtio_blk *b)
{
    const struct virtq *q = &b->dev.vq[0];
    return (b->dev.status & VIRTIO_STATUS_DRIVER_OK) && !(b->dev.status & LIVE_BLOCKERS) &&
           q->active && !q->broken && !b->quiesced && !b->drop_completions;
}

static void reschedule(struct virtio_blk *b)
{
    uint64_t one = 1;
    if (write(b->resched_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_ratelimited(LOG_WARN, "virtio %s: reschedule eventfd: %s", b->dev.id, strerror(errno));
}

/*
 * Pop and start requests until the ring is empty, every slot is busy (the
 * next completion batch resumes), or one ring's worth was handled (the
 * reschedule eventfd resumes).  Kicks are suppressed while we pop anyway.
 */
void blk_req_process(struct virtio_blk *b)
{
    struct virtq *q = &b->dev.vq[0];
    unsigned budget = VIRTIO_BLK_QUEUE_SIZE;

    if (!can_pop(b))
        return;
    virtq_set_notification(q, false);
    for (;;) {
        if (b->free_head == NO_SLOT) {
            b->stats.inflight_full++;
            break;
        }
        if (budget-- == 0) {
            /* Bounded work per event; the ring may well be empty by now, and
             * a spurious wake-up costs less than re-checking here. */
            b->stats.budget_yields++;
            reschedule(b);
            break;
        }
        struct blk_req *r = &b->reqs[b->free_head];
        int rc = virtq_pop(q, &r->chain, VIRTIO_BLK_MAX_REQ);
        if (rc == 0) {
            /* Empty: ask for kicks again, then look once more (a request may
             * have arrived while kicks were off). */
            virtq_set_notification(q, true);
            if (!virtq_has_avail(q))
                break;
            virtq_set_notification(q, false);
            continue;
        }
        if (rc < 0 && rc != -E2BIG) {
            virtio_dev_fail(&b->dev, "request queue is malformed");
            break;
        }
        slot_take_head(b);
        if (rc == -E2BIG)
            malformed(b, r, "request over the size cap");
        else
            start_request(b, r);
    }
}

/* ---- event loop handlers ----------------------------------------------- */

void blk_req_backend_event(void *opaque, uint32_t events)
{
    struct virtio_blk *b = opaque;
    (void)events;
    pthread_mutex_lock(&b->dev.lock);
    b->be->ops->complete(b->be);
    blk_req_process(b); /* slots were freed: resume popping */
    blk_req_flush(b);
    pthread_mutex_unlock(&b->dev.lock);
}

void blk_req_resched_event(void *opaque, uint32_t events)
{
    struct virtio_blk *b = opaque;
    uint64_t n;
    (void)events;
    if (read(b->resched_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_ratelimited(LOG_WARN, "virtio %s: reschedule eventfd: %s", b->dev.id, strerror(errno));
    pthread_mutex_lock(&b->dev.lock);
    blk_req_process(b);
    blk_req_flush(b);
    pthread_mutex_unlock(&b->dev.lock);
}
