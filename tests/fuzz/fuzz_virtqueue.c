/*
 * Fuzz target: the split virtqueue walker (devices/virtio/queue.c), in the
 * style of crosvm's virtqueue_fuzzer.
 *
 * Why: the descriptor table and the available ring are written by a hostile
 * driver; every index, length, flag and address in them is checked here
 * before a device touches guest memory (security.md D1/D2, fuzz target
 * "virtqueue").
 *
 * Guest memory: 64 KiB at 0, a 64 KiB hole, 64 KiB at 0x20000, zeroed per
 * input.  Input:
 *   u8 flags (bit 0 EVENT_IDX, bit 1 INDIRECT, bit 2 raw 64-bit ring
 *   addresses, else masked to the first 256 KiB; bits 4-7 log2 max size) |
 *   le16 size | le64 desc, avail, used addresses | le64 max_len |
 *   descriptor table bytes (16 * size, written at desc) |
 *   available ring bytes (6 + 2 * size, written at avail) |
 *   then the rest fills guest RAM from 0 (buffers and indirect tables live
 *   there), unless bit 3 of flags says it is a driver/device program:
 *   per step u8 op: 0 pop, 1 push the oldest popped chain (le32 written),
 *   2 pop all and push all, 3 set_notification (u8) + has_avail, 4 publish
 *   avail.idx (le16), 5 rewrite a descriptor (u8 index, 16 bytes), 6 rewrite
 *   an avail entry (le16 slot, le16 head), 7 reset and re-activate with
 *   restored indices (le16 last_avail, le16 used_idx, u8 features).
 * After the program (or with none), all chains are popped and pushed back.
 *
 * Checked: a popped chain's iovecs lie inside one RAM region each and add up
 * to out_len/in_len under max_len, readable before writable, at most
 * VIRTQ_MAX_IOV; -E2BIG leaves no iovecs and keeps the queue usable; any
 * other error breaks the queue for good (-EIO after); one pop-all never
 * yields more chains than the ring holds; pushes appear in the used ring;
 * chain_read/chain_write copy exactly what the iovecs cover.
 */
#include "tests/fuzz/fuzz.h"

#include <errno.h>

#include "devices/virtio/queue.h"
#include "vmm/gmem.h"

#define FZ_REGION      (64 * KiB)
#define FZ_REGION1_GPA (128 * KiB)
#define FZ_ADDR_MASK   0x3ffffULL
#define FZ_MAX_STEPS   2048
#define FZ_INFLIGHT    1024
#define FZ_COPY_MAX    (64 * KiB)

enum { FZ_F_EVENT_IDX = 1, FZ_F_INDIRECT = 2, FZ_F_RAW_ADDR = 4, FZ_F_PROGRAM = 8 };

static struct gmem fz_gm;
static struct virtq_chain fz_chain;
static uint8_t fz_copy[FZ_COPY_MAX];

/* Heads popped and not yet pushed back, oldest first. */
static struct {
    uint16_t head[FZ_INFLIGHT];
    unsigned first, n;
} fz_inflight;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    struct gmem_range r[2] = {{0, FZ_REGION}, {FZ_REGION1_GPA, FZ_REGION}};
    struct errbuf err = {0};
    if (gmem_create(&fz_gm, r, 2, false, &err) < 0) {
        fprintf(stderr, "fuzz_virtqueue: gmem_create: %s\n", err.msg);
        abort();
    }
    return 0;
}

/* Write guest memory the way a driver would; ranges outside RAM are skipped. */
static void fz_poke(gpa_t gpa, const void *p, size_t len)
{
    if (len && gmem_range_ok(&fz_gm, gpa, len))
        memcpy(gmem_ptr(&fz_gm, gpa, len), p, len);
}

static bool fz_in_one_region(const void *p, size_t len)
{
    for (unsigned i = 0; i < fz_gm.nregions; i++) {
        const struct gmem_region *r = &fz_gm.regions[i];
        const uint8_t *b = p;
        if (b >= r->hva && b < r->hva + r->size && len <= (size_t)(r->hva + r->size - b))
            return true;
    }
    return false;
}

static void fz_check_chain(const struct virtq *q, const struct virtq_chain *c, uint64_t max_len)
{
    FZ_CHECK(c->head < q->num, "head %u >= size %u", c->head, q->num);
    FZ_CHECK(c->n_out + c->n_in <= VIRTQ_MAX_IOV, "%u + %u iovecs", c->n_out, c->n_in);
    FZ_CHECK(c->out_len + c->in_len <= max_len, "chain of %llu bytes over max %llu",
             (unsigned long long)(c->out_len + c->in_len), (unsigned long long)max_len);
    uint64_t out = 0, in = 0;
    for (unsigned i = 0; i < c->n_out + c->n_in; i++) {
        const struct iovec *v = &c->iov[i];
        FZ_CHECK(v->iov_len > 0, "empty iovec %u", i);
        FZ_CHECK(fz_in_one_region(v->iov_base, v->iov_len), "iovec %u outside RAM", i);
        if (i < c->n_out)
            out += v->iov_len;
        else
            in += v->iov_len;
    }
    FZ_CHECK(out == c->out_len && in == c->in_len, "lengths %llu/%llu, iovecs say %llu/%llu",
             (unsigned long long)c->out_len, (unsigned long long)c->in_len, (unsigned long long)out,
             (unsigned long long)in);

    /* The readable part reads back exactly as the iovecs describe it. */
    size_t want = (size_t)MIN(c->out_len, FZ_COPY_MAX);
    FZ_CHECK(virtq_chain_read(c, 0, fz_copy, want) == want, "chain_read short");
    if (c->n_out)
        FZ_CHECK(!memcmp(fz_copy, c->iov[0].iov_base, MIN(want, c->iov[0].iov_len)),
                 "chain_read data");
    FZ_CHECK(virtq_chain_read(c, c->out_len, fz_copy, 1) == 0, "read past the end");

    /* The writable part takes exactly in_len bytes, and they land in iov[n_out]. */
    want = (size_t)MIN(c->in_len, FZ_COPY_MAX);
    memset(fz_copy, 0xd7, want);
    FZ_CHECK(virtq_chain_write(c, 0, fz_copy, want) == want, "chain_write short");
    if (c->n_in)
        FZ_CHECK(((const uint8_t *)c->iov[c->n_out].iov_base)[0] == 0xd7, "chain_write data");
    FZ_CHECK(virtq_chain_write(c, c->in_len, fz_copy, 1) == 0, "write past the end");
}

/* One pop with every property checked; returns virtq_pop()'s result. */
static int fz_pop(struct virtq *q, uint64_t max_len)
{
    bool was_broken = q->broken;
    uint16_t last = q->last_avail;
    int r = virtq_pop(q, &fz_chain, max_len);
    if (was_broken) {
        FZ_CHECK(r == -EIO, "pop on a broken queue returned %d", r);
        return r;
    }
    if (r == 1 || r == -E2BIG) {
        FZ_CHECK(q->last_avail == (uint16_t)(last + 1), "last_avail did not advance");
        if (r == 1)
            fz_check_chain(q, &fz_chain, max_len);
        else
            FZ_CHECK(fz_chain.n_out == 0 && fz_chain.n_in == 0 && fz_chain.head < q->num,
                     "-E2BIG chain has iovecs or a bad head");
        if (fz_inflight.n < FZ_INFLIGHT) {
            fz_inflight.head[(fz_inflight.first + fz_inflight.n) % FZ_INFLIGHT] = fz_chain.head;
            fz_inflight.n++;
        }
    } else if (r == 0) {
        FZ_CHECK(q->last_avail == last, "empty pop moved last_avail");
    } else {
        FZ_CHECK(r == -EPROTO || r == -EINVAL || r == -ELOOP || r == -EFAULT, "pop error %d", r);
        FZ_CHECK(q->broken && q->last_avail == last, "error %d did not break the queue", r);
    }
    return r;
}

static void fz_push_oldest(struct virtq *q, uint32_t written)
{
    if (!fz_inflight.n)
        return;
    uint16_t head = fz_inflight.head[fz_inflight.first];
    fz_inflight.first = (fz_inflight.first + 1) % FZ_INFLIGHT;
    fz_inflight.n--;
    uint16_t before = q->used_idx;
    virtq_push(q, head, written);
    if (q->active) {
        FZ_CHECK(q->used_idx == (uint16_t)(before + 1), "push did not advance used_idx");
        /* Unless the driver placed another ring over it, the guest sees the new index. */
        (void)virtq_used_idx_guest(q);
    }
}

/* Pop until empty or broken (bounded by the ring size), then push everything back. */
static void fz_pop_all(struct virtq *q, uint64_t max_len)
{
    unsigned popped = 0;
    uint16_t idx = virtq_avail_idx(q);
    bool moved = false;
    for (;;) {
        int r = fz_pop(q, max_len);
        if (r != 1 && r != -E2BIG)
            break;
        popped++;
        /* Writable buffers may overlap avail.idx: then the driver "published" more. */
        moved |= virtq_avail_idx(q) != idx;
        FZ_CHECK(moved || popped <= q->num, "popped %u chains from a ring of %u", popped, q->num);
    }
    while (fz_inflight.n)
        fz_push_oldest(q, 0);
    (void)virtq_should_notify(q);
}

static int fz_activate(struct virtq *q, unsigned flags)
{
    return virtq_activate(q, &fz_gm, flags & FZ_F_EVENT_IDX, flags & FZ_F_INDIRECT);
}

static void fz_program(struct virtq *q, struct fz_in *in, uint64_t max_len, unsigned flags)
{
    uint8_t desc[16];
    size_t got;
    for (unsigned n = 0; n < FZ_MAX_STEPS && fz_left(in); n++) {
        switch (fz_u8(in) % 8) {
        case 0:
            (void)fz_pop(q, max_len);
            break;
        case 1:
            fz_push_oldest(q, fz_u32(in));
            break;
        case 2:
            fz_pop_all(q, max_len);
            break;
        case 3:
            virtq_set_notification(q, fz_u8(in) & 1);
            (void)virtq_has_avail(q);
            break;
        case 4: {
            uint8_t idx[2];
            le16_put(idx, fz_u16(in));
            fz_poke(q->cfg.avail_gpa + 2, idx, 2);
            break;
        }
        case 5: {
            unsigned i = fz_u8(in) % MAX(q->cfg.size, 1);
            const uint8_t *p = fz_take(in, sizeof(desc), &got);
            memset(desc, 0, sizeof(desc));
            memcpy(desc, p, got);
            fz_poke(q->cfg.desc_gpa + 16ULL * i, desc, sizeof(desc));
            break;
        }
        case 6: {
            unsigned slot = fz_u16(in) % MAX(q->cfg.size, 1);
            uint8_t v[2];
            le16_put(v, fz_u16(in));
            fz_poke(q->cfg.avail_gpa + 4 + 2ULL * slot, v, 2);
            break;
        }
        default: {
            /* What a restore does: reset, indices from the saved state, activate. */
            struct virtq_config cfg = q->cfg;
            virtq_reset(q);
            q->cfg = cfg;
            q->last_avail = fz_u16(in);
            q->used_idx = fz_u16(in);
            fz_inflight.n = 0;
            (void)fz_activate(q, fz_u8(in) ^ flags);
            break;
        }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in;
    size_t got;
    fz_init(&in, data, size);
    for (unsigned i = 0; i < fz_gm.nregions; i++)
        memset(fz_gm.regions[i].hva, 0, fz_gm.regions[i].size);
    fz_inflight.first = fz_inflight.n = 0;

    unsigned flags = fz_u8(&in);
    struct virtq q;
    memset(&q, 0, sizeof(q));
    q.max_size = (uint16_t)(1U << MIN(flags >> 4, 15U));
    virtq_reset(&q);
    q.cfg.size = fz_u16(&in);
    q.cfg.desc_gpa = fz_u64(&in);
    q.cfg.avail_gpa = fz_u64(&in);
    q.cfg.used_gpa = fz_u64(&in);
    if (!(flags & FZ_F_RAW_ADDR)) {
        q.cfg.desc_gpa &= FZ_ADDR_MASK;
        q.cfg.avail_gpa &= FZ_ADDR_MASK;
        q.cfg.used_gpa &= FZ_ADDR_MASK;
    }
    q.cfg.ready = true;
    uint64_t max_len = fz_u64(&in);

    /* Ring contents first, so the fuzzer's bytes land where the walker reads. */
    size_t n = MIN((size_t)q.cfg.size * 16, 16 * 4096);
    const uint8_t *p = fz_take(&in, n, &got);
    fz_poke(q.cfg.desc_gpa, p, got);
    p = fz_take(&in, 6 + 2 * (size_t)q.cfg.size, &got);
    fz_poke(q.cfg.avail_gpa, p, got);

    if (fz_activate(&q, flags) < 0) {
        FZ_CHECK(!q.active, "failed activation left the queue active");
        FZ_CHECK(virtq_pop(&q, &fz_chain, max_len) == 0, "pop on an inactive queue");
        return 0;
    }
    FZ_CHECK(q.num == q.cfg.size && q.active, "activation");

    if (flags & FZ_F_PROGRAM) {
        fz_program(&q, &in, max_len, flags);
    } else {
        /* The rest is guest RAM content (buffers, indirect tables), after the rings. */
        p = fz_take(&in, fz_left(&in), &got);
        for (unsigned i = 0; i < fz_gm.nregions && got; i++) {
            const struct gmem_region *r = &fz_gm.regions[i];
            size_t chunk = (size_t)MIN(got, r->size);
            /* Do not overwrite the rings just placed: fill from the top of each region. */
            memcpy(r->hva + r->size - chunk, p, chunk);
            p += chunk;
            got -= chunk;
        }
    }
    fz_pop_all(&q, max_len);
    return 0;
}
