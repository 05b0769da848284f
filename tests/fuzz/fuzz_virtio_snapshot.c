/*
 * Fuzz target: whole-device restore (devices/virtio/virtio_snapshot*.c)
 * into a live virtio-rng or virtio-blk (in-memory backend) behind the real
 * virtio-mmio transport (harness_virtio.h).
 *
 * Why: on migration and snapshot restore, wisp loads a state that a source
 * host it does not trust wrote (security.md G2/G3), and then runs live
 * queues from it: ring addresses and indices, in-flight lists, the
 * device's own record.  The loader must refuse what does not fit without
 * touching the device, and what it accepts must leave a device that works.
 *
 * Input: u8 flags, then a body.
 *   bit 0     device: 0 rng, 1 blk
 *   bit 1     mode: 0 raw, 1 patch
 *   raw mode: the body is a stream; bit 2 fixes its total_len, bit 3 its
 *             CRC32C (as in fuzz_virtio_state); bit 4 brings the target up
 *             (and serves one request) before the load.
 *   patch mode: a source device of the same type is brought up and serves
 *             (flags >> 5) requests; the body starts with a shape byte: bits
 *             0-2 more requests the guest publishes without kicking, bits 3-4
 *             how queue 0 accounts for them (0 waiting in the ring, 1 popped
 *             but unaccounted, 2 an in-flight list in pop order, 3 a list out
 *             of order), bit 5 queue 0 claims 512 entries.  The state is
 *             encoded, the rest of the body is a list of patches (le16 offset
 *             into the stream, u8 xor), the length and CRC are fixed, and the
 *             stream is loaded into a fresh device over the same guest
 *             memory: a migration whose stream was tampered with, so every
 *             check of the loader is reachable.
 * Checked, beyond ASan/UBSan:
 *   - a refused decode or load gives a one-line reason;
 *   - a load refused before the device was touched (any error but -EIO)
 *     leaves the device's saved state byte-identical; -EIO leaves it with
 *     DEVICE_NEEDS_RESET;
 *   - after a successful load the device has the state's features, status
 *     and config generation, acks only offered features, runs whatever the
 *     restored queues hold (the event loop is drained), and saves again;
 *   - whatever happened, the device still works: a driver reset and
 *     bring-up followed by one request completes it (blk: with status OK).
 */
#include "tests/fuzz/harness_virtio.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/backends/blk_backend.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/virtio_snapshot.h"
#include "migration/virtio_state.h"

#define FZ_F_BLK     0x01
#define FZ_F_PATCH   0x02
#define FZ_F_LEN     0x04
#define FZ_F_CRC     0x08
#define FZ_F_LIVE    0x10
#define FZ_MAX_DEV   4
#define FZ_WHY       256
#define FZ_QSIZE     64
#define FZ_DISK      (64 * KiB)
#define FZ_INFLIGHT  8
#define FZ_HDR_LEN   16 /* stream header: total_len */
#define FZ_HDR_CRC   28
#define FZ_REQ_BUF   (FZV_DATA1 + 0x1000)
#define FZ_REQ_BYTES 512

/* ---- an in-memory disk that completes when the loop is polled ---------- */

struct fz_disk {
    struct blk_backend be; /* first: the ops cast back from it */
    uint8_t data[FZ_DISK];
    struct blk_io *done[FZ_INFLIGHT];
    int result[FZ_INFLIGHT];
    unsigned ndone;
};

static int fz_disk_submit(struct blk_backend *be, struct blk_io *io)
{
    struct fz_disk *k = (struct fz_disk *)be;
    int r = 0;
    if (be->inflight >= be->max_inflight)
        return -EAGAIN;
    if (io->op == BLK_OP_READ || io->op == BLK_OP_WRITE) {
        uint64_t off = io->offset;
        if (off > FZ_DISK || io->len > FZ_DISK - off)
            return -EINVAL;
        for (unsigned i = 0; i < io->iovcnt; i++) {
            FZ_CHECK(fzv_in_ram(io->iov[i].iov_base, io->iov[i].iov_len), "iovec not in RAM");
            if (io->op == BLK_OP_READ)
                memcpy(io->iov[i].iov_base, k->data + off, io->iov[i].iov_len);
            else
                memcpy(k->data + off, io->iov[i].iov_base, io->iov[i].iov_len);
            off += io->iov[i].iov_len;
        }
    } else if (io->op != BLK_OP_FLUSH) {
        r = -EINVAL; /* no discard / write-zeroes capability */
    }
    if (r < 0)
        return r;
    k->result[k->ndone] = 0;
    k->done[k->ndone++] = io;
    be->inflight++;
    uint64_t one = 1;
    FZ_CHECK(write(be->event_fd, &one, sizeof(one)) == sizeof(one), "eventfd");
    return 0;
}

static void fz_disk_unplug(struct blk_backend *be)
{
    (void)be;
}

static unsigned fz_disk_complete(struct blk_backend *be)
{
    struct fz_disk *k = (struct fz_disk *)be;
    uint64_t n;
    unsigned ran = 0;
    if (read(be->event_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        abort();
    while (k->ndone) { /* done() may submit more: take from the front */
        struct blk_io *io = k->done[0];
        int res = k->result[0];
        k->ndone--;
        memmove(k->done, k->done + 1, k->ndone * sizeof(k->done[0]));
        memmove(k->result, k->result + 1, k->ndone * sizeof(k->result[0]));
        be->inflight--;
        io->done(io, res);
        ran++;
    }
    return ran;
}

static int fz_disk_drain(struct blk_backend *be, unsigned timeout_ms)
{
    (void)timeout_ms;
    (void)fz_disk_complete(be);
    return 0;
}

static void fz_disk_destroy(struct blk_backend *be)
{
    FZ_CHECK(be->inflight == 0, "destroyed with %u in flight", be->inflight);
    close(be->event_fd);
    free(be);
}

static const struct blk_backend_ops fz_disk_ops = {
    .kind = "fuzz",
    .submit = fz_disk_submit,
    .unplug = fz_disk_unplug,
    .complete = fz_disk_complete,
    .drain = fz_disk_drain,
    .destroy = fz_disk_destroy,
};

/* ---- devices and the driver's side ----------------------------------------- */

static struct virtio_dev *fz_new(bool blk)
{
    struct errbuf err = {0};
    struct virtio_dev *d;
    int r;
    if (blk) {
        struct fz_disk *k = calloc(1, sizeof(*k));
        FZ_CHECK(k, "out of memory");
        k->be = (struct blk_backend){.ops = &fz_disk_ops,
                                     .size = FZ_DISK,
                                     .caps = BLK_CAP_FLUSH,
                                     .max_inflight = FZ_INFLIGHT,
                                     .event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
        FZ_CHECK(k->be.event_fd >= 0, "eventfd");
        struct virtio_blk_config cfg = {.id = "blk0", .serial = "fuzz-disk"};
        r = virtio_blk_create_with_backend(&cfg, &k->be, &fzv.mem, &fzv.loop, &d, &err);
    } else {
        struct virtio_rng_config cfg = {.id = "rng0"};
        r = virtio_rng_create(&cfg, &fzv.mem, &fzv.loop, &d, &err);
    }
    FZ_CHECK(r == 0, "device creation: %s", err.msg);
    return d;
}

static void fz_poke(gpa_t gpa, const void *p, size_t len)
{
    FZ_CHECK(gmem_write(&fzv.mem, gpa, p, len) == 0, "poke 0x%llx", (unsigned long long)gpa);
}

static uint16_t fz_used_idx(void)
{
    uint8_t b[2];
    FZ_CHECK(gmem_read(&fzv.mem, FZV_USED(0) + 2, b, 2) == 0, "used idx");
    return le16_get(b);
}

static void fz_settle(void)
{
    for (unsigned i = 0; i < 64 && fzv_poll(); i++)
        ;
}

/* Driver: reset, every offered feature, queue 0 (size FZ_QSIZE) at fresh rings, DRIVER_OK. */
static void fz_bring_up(void)
{
    const uint32_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
    fzv_wr(0x070, 0);
    FZ_CHECK(gmem_zero(&fzv.mem, FZV_DESC(0), 0x2000) == 0, "rings");
    fzv_wr(0x070, VIRTIO_STATUS_ACKNOWLEDGE);
    fzv_wr(0x070, st);
    for (uint32_t w = 0; w < 2; w++) {
        fzv_wr(0x014, w);
        uint32_t offered = fzv_rd(0x010);
        fzv_wr(0x024, w);
        fzv_wr(0x020, offered);
    }
    fzv_wr(0x070, st | VIRTIO_STATUS_FEATURES_OK);
    fzv_wr(0x030, 0);
    fzv_wr(0x038, FZ_QSIZE);
    fzv_wr(0x080, (uint32_t)FZV_DESC(0));
    fzv_wr(0x084, 0);
    fzv_wr(0x090, (uint32_t)FZV_AVAIL(0));
    fzv_wr(0x094, 0);
    fzv_wr(0x0a0, (uint32_t)FZV_USED(0));
    fzv_wr(0x0a4, 0);
    fzv_wr(0x044, 1);
    fzv_wr(0x070, st | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    fz_settle();
}

static void fz_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags)
{
    uint8_t d[16];
    le64_put(d, addr);
    le32_put(d + 8, len);
    le16_put(d + 12, flags);
    le16_put(d + 14, (uint16_t)((i + 1) % FZ_QSIZE));
    fz_poke(FZV_DESC(0) + 16ULL * i, d, sizeof(d));
}

/*
 * Driver: publish request number `n` since bring-up on queue 0 (rng: one
 * writable buffer; blk: a read of sector n) without kicking.  Each request
 * has descriptors and a buffer of its own.  Returns its head.
 */
static uint16_t fz_publish(bool blk, uint16_t n)
{
    unsigned head = (unsigned)(n * 3) % FZ_QSIZE;
    gpa_t buf = FZ_REQ_BUF + 0x400ULL * (n % 16);
    if (blk) {
        uint8_t hdr[16] = {0};
        le32_put(hdr, VIRTIO_BLK_T_IN);
        le64_put(hdr + 8, n % (FZ_DISK / 512));
        uint8_t status = 0xee;
        fz_poke(buf, hdr, sizeof(hdr));
        fz_poke(buf + 0x3ff, &status, 1);
        fz_desc(head, buf, 16, VIRTQ_DESC_F_NEXT);
        fz_desc((head + 1) % FZ_QSIZE, buf + 0x20, FZ_REQ_BYTES,
                VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE);
        fz_desc((head + 2) % FZ_QSIZE, buf + 0x3ff, 1, VIRTQ_DESC_F_WRITE);
    } else {
        fz_desc(head, buf, FZ_REQ_BYTES, VIRTQ_DESC_F_WRITE);
    }
    uint8_t v[2];
    le16_put(v, (uint16_t)head);
    fz_poke(FZV_AVAIL(0) + 4 + 2ULL * (n % FZ_QSIZE), v, 2);
    le16_put(v, (uint16_t)(n + 1));
    fz_poke(FZV_AVAIL(0) + 2, v, 2);
    return (uint16_t)head;
}

/* Publish request n, kick, serve it; returns the blk status byte (0 for rng). */
static uint8_t fz_request(bool blk, uint16_t n)
{
    gpa_t buf = FZ_REQ_BUF + 0x400ULL * (n % 16);
    fz_publish(blk, n);
    fzv_wr(0x050, 0);
    fz_settle();
    uint8_t status = 0;
    if (blk)
        FZ_CHECK(gmem_read(&fzv.mem, buf + 0x3ff, &status, 1) == 0, "status");
    return status;
}

/* ---- properties ------------------------------------------------------------ */

static void fz_reason_ok(const char *why)
{
    FZ_CHECK(why[0] && memchr(why, '\0', FZ_WHY) && !strchr(why, '\n'), "reason is not one line");
}

/* The device's state as a stream (the fingerprint of "unchanged"). */
static int fz_save(struct vstate_out *o)
{
    struct virtio_state st;
    char why[FZ_WHY] = "";
    vstate_out_init(o);
    int r = virtio_snapshot_save(fzv.dev, fzv.t, 1, &st, why, sizeof(why));
    if (r == 0) {
        FZ_CHECK(virtio_state_encode(&st, o) == 0, "a saved state does not encode");
        virtio_state_free(&st);
    } else {
        fz_reason_ok(why);
    }
    return r;
}

static void fz_load(const struct virtio_state *s)
{
    struct virtio_dev *d = fzv.dev;
    struct vstate_out before, after;
    char why[FZ_WHY];
    memset(why, 0, sizeof(why));
    FZ_CHECK(fz_save(&before) == 0, "the target does not save before the load");

    int r = virtio_snapshot_load(d, fzv.t, s, why, sizeof(why));
    if (r < 0) {
        fz_reason_ok(why);
        if (r == -EIO) {
            FZ_CHECK(d->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET, "-EIO without NEEDS_RESET");
        } else {
            FZ_CHECK(r == -EINVAL || r == -EOPNOTSUPP || r == -EFAULT || r == -ENOMEM,
                     "load error %d", r);
            FZ_CHECK(fz_save(&after) == 0, "a refused load broke save");
            FZ_CHECK(after.len == before.len && !memcmp(after.buf, before.buf, before.len),
                     "refused load (%d: %s) changed the device", r, why);
            vstate_out_free(&after);
        }
        vstate_out_free(&before);
        return;
    }
    vstate_out_free(&before);
    FZ_CHECK(d->guest_features == (s->drv_feat.n ? s->drv_feat.w[0] : 0), "features differ");
    FZ_CHECK((d->status & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET) ==
                 (s->status & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET),
             "status 0x%02x, state 0x%02x", d->status, s->status);
    FZ_CHECK(d->config_generation == s->config_generation, "generation differs");
    FZ_CHECK((d->guest_features & ~d->host_features) == 0, "acked features not offered");
    for (unsigned q = 0; q < s->num_queues; q++)
        FZ_CHECK(d->vq[q].cfg.size == s->vq[q].size && d->vq[q].cfg.ready == s->vq[q].enabled &&
                     d->vq[q].cfg.desc_gpa == s->vq[q].desc_addr,
                 "queue %u configuration differs", q);
    /* Let the restored queues run, then the device must save again (blk: once
     * what it popped has completed, as before any save). */
    fz_settle();
    bool blk = d->ops->device_id == VIRTIO_ID_BLOCK;
    if (blk)
        virtio_blk_quiesce(d);
    FZ_CHECK(fz_save(&after) == 0, "a loaded device does not save");
    if (blk)
        virtio_blk_resume(d);
    vstate_out_free(&after);
}

/* ---- the two modes ------------------------------------------------------- */

static struct virtio_state fz_states[FZ_MAX_DEV];
static uint8_t fz_ram[2][FZV_REGION];

static void fz_decode_and_load(uint8_t *buf, size_t len)
{
    char why[FZ_WHY];
    unsigned n = 0;
    memset(why, 0, sizeof(why));
    int r = virtio_state_decode(buf, len, fz_states, FZ_MAX_DEV, &n, why, sizeof(why));
    if (r < 0) {
        FZ_CHECK(n == 0, "refusal with n = %u", n);
        fz_reason_ok(why);
        return;
    }
    /* The first device of the stream goes to the target (a stream of several is
     * one VM's; the migration code pairs them, this target has one device). */
    fz_load(&fz_states[0]);
    for (unsigned i = 0; i < n; i++)
        virtio_state_free(&fz_states[i]);
}

static void fz_fix(uint8_t *buf, size_t len, bool fix_len, bool fix_crc)
{
    if (fix_len && len >= FZ_HDR_LEN + 8)
        le64_put(buf + FZ_HDR_LEN, len);
    if (fix_crc && len >= FZ_HDR_CRC + 4) {
        le32_put(buf + FZ_HDR_CRC, 0);
        le32_put(buf + FZ_HDR_CRC, virtio_state_crc32c(0, buf, len));
    }
}

/* Patch mode: how the source's queue 0 is shaped before it is encoded. */
#define FZ_SHAPE_EXTRA(b)   ((b)&7)          /* chains published, never kicked */
#define FZ_SHAPE_FORM(b)    (((b) >> 3) & 3) /* how queue 0 accounts for them */
#define FZ_SHAPE_OVERSIZE   0x20             /* queue 0 claims 512 entries */
#define FZ_FORM_WAITING     0                /* not popped: they wait in the ring */
#define FZ_FORM_UNACCOUNTED 1                /* popped, neither DRAINED nor a list */
#define FZ_FORM_LIST        2                /* popped, listed in pop order */
#define FZ_FORM_REVERSED    3                /* popped, listed backwards */

/*
 * A source device serves `nreq` requests, the guest publishes more as
 * `shape` says, and the device is saved; the stream is left in *o, the
 * guest memory in fz_ram.  Not static: the seeds in
 * tests/fuzz/corpus/virtio_snapshot/ come from a generator that includes
 * this file and calls it (seedgen does not know this target yet).
 */
void fz_source_stream(bool blk, unsigned nreq, unsigned shape, struct vstate_out *o);
void fz_source_stream(bool blk, unsigned nreq, unsigned shape, struct vstate_out *o)
{
    struct virtio_state st;
    struct virtio_state_inflight list[8];
    char why[FZ_WHY] = "";
    unsigned extra = FZ_SHAPE_EXTRA(shape), form = FZ_SHAPE_FORM(shape);

    fzv_attach(fz_new(blk));
    fz_bring_up();
    for (unsigned i = 0; i < nreq; i++)
        fz_request(blk, (uint16_t)i);
    if (blk)
        virtio_blk_quiesce(fzv.dev);
    for (unsigned i = 0; i < extra; i++)
        list[i] = (struct virtio_state_inflight){fz_publish(blk, (uint16_t)(nreq + i)), 100 + i};
    FZ_CHECK(virtio_snapshot_save(fzv.dev, fzv.t, 1, &st, why, sizeof(why)) == 0,
             "the source does not save: %s", why);
    struct virtio_state_vq *v = &st.vq[0];
    if (extra && form != FZ_FORM_WAITING) {
        v->last_avail_idx = (uint16_t)(v->last_avail_idx + extra);
        v->flags = 0;
    }
    if (extra && (form == FZ_FORM_LIST || form == FZ_FORM_REVERSED)) {
        v->flags = VIRTIO_STATE_VQ_INFLIGHT_VALID;
        v->n_inflight = (uint16_t)extra;
        v->inflight = list;
        for (unsigned i = 0; form == FZ_FORM_REVERSED && i < extra / 2; i++) {
            uint16_t h = list[i].head; /* heads swapped, pop order kept increasing */
            list[i].head = list[extra - 1 - i].head;
            list[extra - 1 - i].head = h;
        }
    }
    if (shape & FZ_SHAPE_OVERSIZE)
        v->size = v->max_size_src = 512;
    vstate_out_init(o);
    FZ_CHECK(virtio_state_encode(&st, o) == 0, "the shaped state does not encode");
    v->inflight = NULL;
    v->n_inflight = 0;
    virtio_state_free(&st);
    /* The destination shares guest memory: keep it across the harness's reset. */
    for (unsigned i = 0; i < 2; i++)
        memcpy(fz_ram[i], fzv.mem.regions[i].hva, FZV_REGION);
    fzv_detach();
}

static void fz_patch_mode(bool blk, unsigned nreq, struct fz_in *in)
{
    struct vstate_out o;
    fz_source_stream(blk, nreq, fz_u8(in), &o);
    fzv_attach(fz_new(blk));
    for (unsigned i = 0; i < 2; i++)
        memcpy(fzv.mem.regions[i].hva, fz_ram[i], FZV_REGION);
    while (fz_left(in) >= 3 && o.len) {
        uint16_t off = fz_u16(in);
        o.buf[off % o.len] ^= fz_u8(in);
    }
    fz_fix(o.buf, o.len, true, true);
    fz_decode_and_load(o.buf, o.len);
    vstate_out_free(&o);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fzv_init_once();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in;
    fz_init(&in, data, size);
    unsigned flags = fz_u8(&in);
    bool blk = flags & FZ_F_BLK;

    if (flags & FZ_F_PATCH) {
        fz_patch_mode(blk, flags >> 5, &in);
    } else {
        fzv_attach(fz_new(blk));
        if (flags & FZ_F_LIVE) {
            fz_bring_up();
            fz_request(blk, 0);
        }
        size_t len = fz_left(&in);
        uint8_t *buf = malloc(len ? len : 1);
        FZ_CHECK(buf, "out of memory");
        memcpy(buf, data + in.pos, len);
        fz_fix(buf, len, flags & FZ_F_LEN, flags & FZ_F_CRC);
        fz_decode_and_load(buf, len);
        free(buf);
    }

    /* Whatever the load did, a driver that resets the device can use it. */
    fz_settle();
    fz_bring_up();
    uint8_t status = fz_request(blk, 0);
    FZ_CHECK(fz_used_idx() == 1, "a request after reset was not served (used idx %u)",
             fz_used_idx());
    FZ_CHECK(!blk || status == VIRTIO_BLK_S_OK, "blk request status %u", status);
    fzv_detach();
    return 0;
}
