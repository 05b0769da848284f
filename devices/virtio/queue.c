/*
 * Split virtqueue, device side (see queue.h for the contract).
 *
 * Everything the driver can write (descriptor table, available ring,
 * indirect tables, and even the used ring, which it can scribble on) is
 * shared with a hostile guest that may change it while we read it.  So each
 * field is loaded exactly once, through an atomic access, into a local, and
 * only the local is validated and used.  All ring indexing goes through
 * q->num (validated at activation) with a power-of-two mask, so no value read
 * from the guest can move an access outside the ranges checked at
 * activation.
 */
#include "devices/virtio/queue.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "vmm/log.h"

/* Largest queue size the split ring allows (virtio 1.2 section 2.7). */
#define VIRTQ_SIZE_LIMIT 32768U

/* Wire layout (virtio 1.2 section 2.7), little-endian. */
struct virtq_desc_wire {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
_Static_assert(sizeof(struct virtq_desc_wire) == 16, "descriptor is 16 bytes");
_Static_assert(offsetof(struct virtq_desc_wire, len) == 8, "desc.len at 8");
_Static_assert(offsetof(struct virtq_desc_wire, flags) == 12, "desc.flags at 12");
_Static_assert(offsetof(struct virtq_desc_wire, next) == 14, "desc.next at 14");

#define DESC_SIZE 16U

/* Available ring: le16 flags, le16 idx, le16 ring[num], le16 used_event. */
#define AVAIL_FLAGS         0U
#define AVAIL_IDX           2U
#define AVAIL_RING(i)       (4U + 2U * (i))
#define AVAIL_USED_EVENT(n) AVAIL_RING(n)
#define AVAIL_BYTES(n)      (6ULL + 2ULL * (n))

/* Used ring: le16 flags, le16 idx, {le32 id, le32 len} ring[num], le16 avail_event. */
struct virtq_used_elem_wire {
    uint32_t id;
    uint32_t len;
};
_Static_assert(sizeof(struct virtq_used_elem_wire) == 8, "used element is 8 bytes");

#define USED_FLAGS          0U
#define USED_IDX            2U
#define USED_RING(i)        (4U + 8U * (i))
#define USED_AVAIL_EVENT(n) USED_RING(n)
#define USED_BYTES(n)       (6ULL + 8ULL * (n))

/* Ring alignments (virtio 1.2 section 2.7, table "Virtqueue Part Alignment"). */
#define DESC_ALIGN  16U
#define AVAIL_ALIGN 2U
#define USED_ALIGN  4U

/* ---- single accesses to guest-shared memory ---------------------------- */

/*
 * The guest's vCPUs run concurrently with us, so every ring access is a
 * C11 atomic access (relaxed unless ordering is needed): one load or store
 * of the full width, never split, merged or repeated by the compiler.  On
 * x86 and arm64 these are plain aligned moves.  Every offset below is aligned
 * for its width: the rings were checked at activation.
 */
static uint16_t ld16(const volatile uint8_t *base, size_t off)
{
    return __atomic_load_n((const volatile uint16_t *)(base + off), __ATOMIC_RELAXED);
}

static uint16_t ld16_acquire(const volatile uint8_t *base, size_t off)
{
    return __atomic_load_n((const volatile uint16_t *)(base + off), __ATOMIC_ACQUIRE);
}

static void st16(volatile uint8_t *base, size_t off, uint16_t v)
{
    __atomic_store_n((volatile uint16_t *)(base + off), v, __ATOMIC_RELAXED);
}

static void st16_release(volatile uint8_t *base, size_t off, uint16_t v)
{
    __atomic_store_n((volatile uint16_t *)(base + off), v, __ATOMIC_RELEASE);
}

static void st32(volatile uint8_t *base, size_t off, uint32_t v)
{
    __atomic_store_n((volatile uint32_t *)(base + off), v, __ATOMIC_RELAXED);
}

/* A descriptor as read once from the guest. */
struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

/*
 * Copy one descriptor into a local.  The main table is 16-aligned, but the
 * spec puts no alignment on indirect tables, so an unaligned table is read
 * byte by byte (still atomic: the compiler must not re-read it later).  A
 * torn read is harmless, since only the copy is validated and used.
 */
static void desc_load(const volatile uint8_t *p, struct desc *d)
{
    uint8_t raw[DESC_SIZE];

    if (((uintptr_t)p & 7) == 0) {
        uint64_t w0 = __atomic_load_n((const volatile uint64_t *)p, __ATOMIC_RELAXED);
        uint64_t w1 = __atomic_load_n((const volatile uint64_t *)(p + 8), __ATOMIC_RELAXED);
        memcpy(raw, &w0, sizeof(w0));
        memcpy(raw + 8, &w1, sizeof(w1));
    } else {
        for (unsigned i = 0; i < DESC_SIZE; i++)
            raw[i] = __atomic_load_n(p + i, __ATOMIC_RELAXED);
    }
    d->addr = le64_get(raw + offsetof(struct virtq_desc_wire, addr));
    d->len = le32_get(raw + offsetof(struct virtq_desc_wire, len));
    d->flags = le16_get(raw + offsetof(struct virtq_desc_wire, flags));
    d->next = le16_get(raw + offsetof(struct virtq_desc_wire, next));
}

/* ---- setup ------------------------------------------------------------- */

void virtq_reset(struct virtq *q)
{
    uint16_t max_size = q->max_size;

    memset(q, 0, sizeof(*q));
    q->max_size = max_size;
}

/* Host view of one ring part, or NULL if misaligned or not inside one region. */
static volatile uint8_t *map_part(const struct gmem *mem, gpa_t gpa, uint64_t len, uint64_t align,
                                  const char *what)
{
    void *p;

    if (!is_aligned(gpa, align)) {
        log_ratelimited(LOG_WARN, "virtq: %s ring at 0x%llx is not %llu-byte aligned", what,
                        (unsigned long long)gpa, (unsigned long long)align);
        return NULL;
    }
    p = gmem_ptr(mem, gpa, len);
    if (!p) {
        log_ratelimited(LOG_WARN, "virtq: %s ring [0x%llx, +0x%llx) is not inside one RAM region",
                        what, (unsigned long long)gpa, (unsigned long long)len);
        return NULL;
    }
    return p;
}

int virtq_activate(struct virtq *q, const struct gmem *mem, bool event_idx, bool indirect)
{
    uint16_t size = q->cfg.size;
    volatile uint8_t *desc, *avail, *used;

    q->active = false;
    if (!mem || !is_pow2(q->max_size) || q->max_size > VIRTQ_SIZE_LIMIT) {
        /* The device, not the guest, chose these: still refuse, never index with them. */
        log_ratelimited(LOG_WARN, "virtq: bad max size %u", q->max_size);
        return -EINVAL;
    }
    if (!is_pow2(size) || size > q->max_size) {
        log_ratelimited(LOG_WARN, "virtq: size %u is not a power of two <= %u", size, q->max_size);
        return -EINVAL;
    }
    desc = map_part(mem, q->cfg.desc_gpa, (uint64_t)DESC_SIZE * size, DESC_ALIGN, "descriptor");
    avail = map_part(mem, q->cfg.avail_gpa, AVAIL_BYTES(size), AVAIL_ALIGN, "available");
    used = map_part(mem, q->cfg.used_gpa, USED_BYTES(size), USED_ALIGN, "used");
    if (!desc || !avail || !used)
        return -EINVAL;

    q->mem = mem;
    q->desc = desc;
    q->avail = avail;
    q->used = used;
    q->num = size;
    q->event_idx = event_idx;
    q->indirect = indirect;
    q->broken = false;
    q->notify_off = false;
    q->signalled_used_valid = false;
    q->active = true;
    return 0;
}

/* ---- popping ----------------------------------------------------------- */

/* A malformed ring: stop using the queue and say why (the guest can trigger this). */
static int fail(struct virtq *q, int err, const char *why, uint64_t val)
{
    q->broken = true;
    log_ratelimited(LOG_WARN, "virtq: malformed ring (size %u, last_avail %u): %s (0x%llx)", q->num,
                    q->last_avail, why, (unsigned long long)val);
    return err;
}

/* Chain walk state shared by the direct and the indirect part. */
struct walk {
    struct virtq_chain *c; /* NULL: only log the writable buffers (virtq_push) */
    unsigned niov;         /* iovecs produced (or that would have been) */
    unsigned nout;         /* of which device-readable */
    bool seen_write;       /* a device-writable descriptor was seen */
    uint64_t out_len;      /* readable bytes (64-bit: cannot overflow) */
    uint64_t in_len;       /* writable bytes */
    const char *why;       /* what was wrong, for the log */
    unsigned why_val;      /* the offending value */
};

static int walk_err(struct walk *w, int err, const char *why, uint64_t val)
{
    w->why = why;
    w->why_val = val;
    return err;
}

/* Account one buffer descriptor (not INDIRECT): ordering, translation, iovec. */
static int walk_buffer(struct walk *w, const struct virtq *q, const struct desc *d)
{
    bool writable = d->flags & VIRTQ_DESC_F_WRITE;
    void *p;

    /* Migration: what the device may write is guest memory the VMM dirtied. */
    if (writable)
        gmem_log_mark(q->mem, d->addr, d->len);
    if (!w->c)
        return 0;

    if (!writable && w->seen_write)
        return walk_err(w, -EINVAL, "readable descriptor after a writable one", d->addr);
    w->seen_write |= writable;
    if (d->len == 0)
        return 0; /* nothing to map; it still counted as a step of the chain */

    p = gmem_ptr(q->mem, d->addr, d->len);
    if (!p)
        return walk_err(w, -EFAULT, "buffer not inside one RAM region", d->addr);
    if (writable) {
        w->in_len += d->len;
    } else {
        w->out_len += d->len;
        w->nout++;
    }
    /* Past VIRTQ_MAX_IOV keep validating, but stop storing: the caller gets -E2BIG. */
    if (w->niov < VIRTQ_MAX_IOV) {
        w->c->iov[w->niov].iov_base = p;
        w->c->iov[w->niov].iov_len = d->len;
    }
    w->niov++;
    return 0;
}

/*
 * Walk an indirect table described by `d` (the descriptor with INDIRECT).
 * The table's own chain starts at entry 0 and is bounded by its entry count.
 */
static int walk_indirect(struct walk *w, const struct virtq *q, const struct desc *d)
{
    const volatile uint8_t *table;
    uint32_t n;
    uint16_t i = 0;

    if (!q->indirect)
        return walk_err(w, -EINVAL, "INDIRECT not negotiated", d->flags);
    if (d->flags & VIRTQ_DESC_F_NEXT)
        return walk_err(w, -EINVAL, "INDIRECT combined with NEXT", d->flags);
    if (d->len == 0 || d->len % DESC_SIZE != 0 || d->len > (uint64_t)DESC_SIZE * q->num)
        return walk_err(w, -EINVAL, "bad indirect table length", d->len);
    table = gmem_ptr(q->mem, d->addr, d->len);
    if (!table)
        return walk_err(w, -EFAULT, "indirect table not inside one RAM region", d->addr);
    n = d->len / DESC_SIZE;

    for (uint32_t steps = 1;; steps++) {
        struct desc e;
        int r;

        if (steps > n)
            return walk_err(w, -ELOOP, "indirect chain longer than its table", n);
        desc_load(table + (size_t)i * DESC_SIZE, &e);
        if (e.flags & VIRTQ_DESC_F_INDIRECT)
            return walk_err(w, -EINVAL, "nested INDIRECT at entry", i);
        r = walk_buffer(w, q, &e);
        if (r < 0)
            return r;
        if (!(e.flags & VIRTQ_DESC_F_NEXT))
            return 0;
        if (e.next >= n)
            return walk_err(w, -EINVAL, "indirect next out of range", e.next);
        i = e.next;
    }
}

/* Walk the chain starting at `head` (already < num) in the main table. */
static int walk_chain(struct walk *w, const struct virtq *q, uint16_t head)
{
    uint16_t i = head;

    for (uint32_t steps = 1;; steps++) {
        struct desc d;
        int r;

        /* A chain cannot be longer than the ring: more steps means a loop. */
        if (steps > q->num)
            return walk_err(w, -ELOOP, "chain longer than the ring", q->num);
        desc_load(q->desc + (size_t)i * DESC_SIZE, &d);
        if (d.flags & VIRTQ_DESC_F_INDIRECT)
            return walk_indirect(w, q, &d); /* last of the chain: NEXT is refused */
        r = walk_buffer(w, q, &d);
        if (r < 0)
            return r;
        if (!(d.flags & VIRTQ_DESC_F_NEXT))
            return 0;
        if (d.next >= q->num)
            return walk_err(w, -EINVAL, "next out of range", d.next);
        i = d.next;
    }
}

/* The chain at last_avail was used up (returned to the caller or refused with -E2BIG). */
static void consume(struct virtq *q)
{
    q->last_avail++;
    if (q->event_idx && !q->notify_off)
        st16(q->used, USED_AVAIL_EVENT(q->num), q->last_avail);
}

int virtq_pop(struct virtq *q, struct virtq_chain *c, uint64_t max_len)
{
    struct walk w = {.c = c};
    uint16_t avail_idx, pending, head;
    int r;

    if (q->broken)
        return -EIO;
    if (!q->active || q->paused)
        return 0;

    /* Acquire: descriptors and ring entries are read only after the index. */
    avail_idx = ld16_acquire(q->avail, AVAIL_IDX);
    pending = (uint16_t)(avail_idx - q->last_avail);
    if (pending == 0 && q->event_idx && !q->notify_off) {
        /*
         * Our last avail_event store must be visible before we conclude the
         * ring is empty, or a driver publishing right now may read the old
         * avail_event, skip the kick, and wait forever (store-load order).
         */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        avail_idx = ld16_acquire(q->avail, AVAIL_IDX);
        pending = (uint16_t)(avail_idx - q->last_avail);
    }
    if (pending == 0)
        return 0;
    if (pending > q->num)
        return fail(q, -EPROTO, "avail idx too far ahead", avail_idx);

    head = ld16(q->avail, AVAIL_RING(q->last_avail & (q->num - 1)));
    if (head >= q->num)
        return fail(q, -EINVAL, "head out of range", head);

    r = walk_chain(&w, q, head);
    if (r < 0)
        return fail(q, r, w.why, w.why_val);

    c->head = head;
    consume(q);
    if (w.niov > VIRTQ_MAX_IOV || w.out_len + w.in_len > max_len) {
        /* Well formed but too big for us: not a protocol violation, the device completes it. */
        c->n_out = c->n_in = 0;
        c->out_len = w.out_len;
        c->in_len = w.in_len;
        return -E2BIG;
    }
    /* Readable buffers came first (checked), so they are iov[0 .. n_out). */
    c->n_out = w.nout;
    c->n_in = w.niov - w.nout;
    c->out_len = w.out_len;
    c->in_len = w.in_len;
    return 1;
}

/* ---- completing and notifying ----------------------------------------- */

void virtq_push(struct virtq *q, uint16_t head, uint32_t written)
{
    size_t elem;

    if (!q->active)
        return;
    elem = USED_RING(q->used_idx & (q->num - 1));
    st32(q->used, elem + offsetof(struct virtq_used_elem_wire, id), head);
    st32(q->used, elem + offsetof(struct virtq_used_elem_wire, len), written);
    q->used_idx++;
    /* Release: the element is visible before the index that publishes it. */
    st16_release(q->used, USED_IDX, q->used_idx);
    if (gmem_logging(q->mem) && head < q->num) {
        /* The chain's buffers were marked when popped, but the device may
         * have written them after a migration pass took the marks: mark
         * them again now that they are final, and the used ring. */
        struct walk w = {.c = NULL};
        (void)walk_chain(&w, q, head);
        gmem_log_mark(q->mem, q->cfg.used_gpa, USED_RING(q->num) + 2);
    }
}

bool virtq_should_notify(struct virtq *q)
{
    uint16_t old, new, event;
    bool valid;

    if (!q->active)
        return false;
    /*
     * Full fence: our used.idx store must be visible before we read the
     * driver's used_event/flags.  Otherwise the driver may re-enable
     * interrupts after reading our old used.idx while we read its old
     * suppression state, and the interrupt is lost.
     */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);

    if (!q->event_idx) {
        uint16_t flags = ld16(q->avail, AVAIL_FLAGS);
        q->signalled_used = q->used_idx;
        q->signalled_used_valid = true;
        return !(flags & VIRTQ_AVAIL_F_NO_INTERRUPT);
    }

    event = ld16(q->avail, AVAIL_USED_EVENT(q->num));
    old = q->signalled_used;
    valid = q->signalled_used_valid;
    new = q->used_idx;
    q->signalled_used = new;
    q->signalled_used_valid = true;
    if (!valid)
        return true; /* first time after activation: we do not know what the driver saw */
    /*
     * The driver wants an interrupt once used.idx moves past used_event,
     * i.e. if used_event lies in [old, new).  Both differences are taken
     * modulo 2^16, which handles the wrap at 65535.
     */
    return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
}

void virtq_set_notification(struct virtq *q, bool enable)
{
    if (!q->active)
        return;
    q->notify_off = !enable;
    if (q->event_idx) {
        if (enable)
            st16(q->used, USED_AVAIL_EVENT(q->num), q->last_avail);
    } else {
        st16(q->used, USED_FLAGS, enable ? 0 : VIRTQ_USED_F_NO_NOTIFY);
    }
    /* Order the store before the caller's virtq_has_avail() re-check. */
    if (enable)
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

bool virtq_has_avail(struct virtq *q)
{
    if (!q->active || q->broken)
        return false;
    return ld16_acquire(q->avail, AVAIL_IDX) != q->last_avail;
}

/* ---- chain data -------------------------------------------------------- */

/*
 * Find byte `off` of iov[*k .. end): advances *k and returns the offset
 * inside iov[*k] (*k == end if `off` is past the range).
 */
static size_t iov_seek(const struct virtq_chain *c, unsigned *k, unsigned end, uint64_t off)
{
    for (; *k < end; (*k)++) {
        if (off < c->iov[*k].iov_len)
            return (size_t)off;
        off -= c->iov[*k].iov_len;
    }
    return 0;
}

/*
 * The iovecs point into guest RAM that the guest may change at any time: the
 * bytes are copied once and the device parses its own copy.
 */
size_t virtq_chain_read(const struct virtq_chain *c, uint64_t off, void *dst, size_t len)
{
    unsigned end = MIN(c->n_out, VIRTQ_MAX_IOV);
    unsigned k = 0;
    size_t done = 0;

    for (size_t in = iov_seek(c, &k, end, off); k < end && done < len; k++, in = 0) {
        size_t chunk = MIN(c->iov[k].iov_len - in, len - done);
        memcpy((uint8_t *)dst + done, (const uint8_t *)c->iov[k].iov_base + in, chunk);
        done += chunk;
    }
    return done;
}

size_t virtq_chain_write(const struct virtq_chain *c, uint64_t off, const void *src, size_t len)
{
    unsigned k = MIN(c->n_out, VIRTQ_MAX_IOV);
    unsigned end = k + MIN(c->n_in, VIRTQ_MAX_IOV - k);
    size_t done = 0;

    for (size_t in = iov_seek(c, &k, end, off); k < end && done < len; k++, in = 0) {
        size_t chunk = MIN(c->iov[k].iov_len - in, len - done);
        memcpy((uint8_t *)c->iov[k].iov_base + in, (const uint8_t *)src + done, chunk);
        done += chunk;
    }
    return done;
}

/* ---- state ------------------------------------------------------------- */

uint16_t virtq_avail_idx(const struct virtq *q)
{
    return q->active ? ld16_acquire(q->avail, AVAIL_IDX) : 0;
}

uint16_t virtq_used_idx_guest(const struct virtq *q)
{
    return q->active ? ld16_acquire(q->used, USED_IDX) : 0;
}
