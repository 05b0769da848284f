/*
 * Seeds for the virtio fuzz targets (see seedgen.c for why seeds are
 * generated).  Ring layouts follow virtio 1.2 section 2.7, written here from
 * the spec's offsets so the seeds do not depend on devices/virtio/queue.c.
 */
#include "tests/fuzz/fuzz.h"

#include "devices/virtio/virtio.h"
#include "migration/virtio_state.h"
#include "migration/vstate.h"
#include "tests/fuzz/seedgen.h"

#define SG_F_NEXT     1
#define SG_F_WRITE    2
#define SG_F_INDIRECT 4

/* Virtqueue target layout: RAM [0, 64 KiB) and [128 KiB, 192 KiB). */
#define SG_VQ_DESC  0x0000
#define SG_VQ_AVAIL 0x1000
#define SG_VQ_USED  0x2000
#define SG_VQ_BUF   0x20000

struct sg_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

static void sg_desc_table(struct sg_buf *b, const struct sg_desc *d, unsigned n, unsigned size)
{
    for (unsigned i = 0; i < size; i++) {
        struct sg_desc e = i < n ? d[i] : (struct sg_desc){0};
        sg_u64(b, e.addr);
        sg_u32(b, e.len);
        sg_u16(b, e.flags);
        sg_u16(b, e.next);
    }
}

static void sg_avail(struct sg_buf *b, const uint16_t *heads, unsigned n, unsigned size)
{
    sg_u16(b, 0);           /* flags */
    sg_u16(b, (uint16_t)n); /* idx */
    for (unsigned i = 0; i < size; i++)
        sg_u16(b, i < n ? heads[i] : 0);
    sg_u16(b, 0); /* used_event */
}

/* Header of the virtqueue target: flags, size, ring addresses, max_len. */
static void sg_vq_hdr(struct sg_buf *b, unsigned flags, uint16_t size, uint64_t max_len)
{
    sg_u8(b, (uint8_t)flags);
    sg_u16(b, size);
    sg_u64(b, SG_VQ_DESC);
    sg_u64(b, SG_VQ_AVAIL);
    sg_u64(b, SG_VQ_USED);
    sg_u64(b, max_len);
}

/* Three chains: out+out+in, a single writable buffer, and an indirect table. */
static const struct sg_desc sg_vq_descs[] = {
    {SG_VQ_BUF, 16, SG_F_NEXT, 1},
    {SG_VQ_BUF + 0x100, 512, SG_F_NEXT, 2},
    {SG_VQ_BUF + 0x1000, 1, SG_F_WRITE, 0},
    {SG_VQ_BUF + 0x2000, 4096, SG_F_WRITE, 0},
    {SG_VQ_BUF + 0x3000, 48, SG_F_INDIRECT, 0},
    {0x8000, 0, SG_F_NEXT, 6}, /* zero-length, then a buffer in region 0 */
    {0x8000, 64, 0, 0},
};
static const uint16_t sg_vq_heads[] = {0, 3, 4, 5};

static void sg_virtqueue_seeds(void)
{
    struct sg_buf b = {0};
    const unsigned feat = 1 | 2 | (8u << 4); /* EVENT_IDX, INDIRECT, max size 256 */

    sg_vq_hdr(&b, feat, 8, UINT64_MAX);
    sg_desc_table(&b, sg_vq_descs, ARRAY_SIZE(sg_vq_descs), 8);
    sg_avail(&b, sg_vq_heads, ARRAY_SIZE(sg_vq_heads), 8);
    sg_emit("virtqueue", "chains", &b);

    /* The same as a program: pop, push, more entries published, restore. */
    sg_vq_hdr(&b, feat | 8, 8, 1 << 20);
    sg_desc_table(&b, sg_vq_descs, ARRAY_SIZE(sg_vq_descs), 8);
    sg_avail(&b, sg_vq_heads, 2, 8);
    static const uint8_t prog[] = {
        0,    1,    16, 0, 0, 0, /* pop, push (written 16) */
        3,    0,                 /* notifications off, has_avail */
        6,    2,    0,  4, 0,    /* avail[2] = 4 */
        6,    3,    0,  5, 0,    /* avail[3] = 5 */
        4,    4,    0,           /* avail.idx = 4 */
        2,                       /* pop all, push all */
        5,    1,                 /* rewrite descriptor 1: a loop back to 0 */
        0x00, 0x21, 0,  0, 0, 0, 0, 0, 0x10, 0, 0, 0, 1, 0, 0, 0, 6, 4, 0, 1, 0, /* avail[4] = 1 */
        4,    5,    0,                                                           /* idx 5 */
        7,    4,    0,  4, 0, 0, /* restore last_avail 4, used 4 */
        0,    0,                 /* pop (loop), pop again (broken) */
    };
    sg_put(&b, prog, sizeof(prog));
    sg_emit("virtqueue", "program", &b);

    /* A full ring of 256 one-descriptor chains. */
    sg_vq_hdr(&b, 2u << 0 | (8u << 4), 256, UINT64_MAX);
    struct sg_desc many[256];
    uint16_t heads[256];
    for (unsigned i = 0; i < 256; i++) {
        many[i] = (struct sg_desc){SG_VQ_BUF + 64ULL * i, 64, (i & 1) ? SG_F_WRITE : 0, 0};
        heads[i] = (uint16_t)(255 - i);
    }
    sg_desc_table(&b, many, 256, 256);
    sg_avail(&b, heads, 256, 256);
    sg_emit("virtqueue", "full-ring", &b);

    /* Rings straddling the hole and at the top of the address space. */
    sg_u8(&b, 4 | (8u << 4));
    sg_u16(&b, 16);
    sg_u64(&b, 0x10000 - 0x80);
    sg_u64(&b, UINT64_MAX - 7);
    sg_u64(&b, 0x1ff00);
    sg_u64(&b, 100);
    sg_emit("virtqueue", "bad-placement", &b);
}

/* ---- harness driver programs (harness_virtio.h) ---- */

enum { SG_OUT0, SG_OUT1, SG_IN0, SG_IN1, SG_WILD, SG_INDIR };

static void sg_bringup(struct sg_buf *b, unsigned size_log2, uint64_t features)
{
    sg_op(b, FZ_OP_DEV, FZ_OP_ARG(0), (uint16_t)size_log2, 0, 0);
    sg_u64(b, features);
}

/* Start an "add chain, kick, poll" step on queue q with n descriptors. */
static void sg_chain(struct sg_buf *b, unsigned q, unsigned n)
{
    sg_op(b, FZ_OP_DEV, FZ_OP_SEL(q) | FZ_OP_ARG(7), (uint16_t)(n - 1), 0, 0);
}

static void sg_d(struct sg_buf *b, unsigned kind, uint16_t len, const void *data)
{
    sg_u8(b, (uint8_t)kind);
    sg_u16(b, len);
    if (data)
        sg_put(b, data, len);
}

static void sg_rng_seeds(void)
{
    struct sg_buf b = {0};
    sg_bringup(&b, 8, UINT64_MAX);
    sg_chain(&b, 0, 1);
    sg_d(&b, SG_IN0, 64, NULL);
    sg_chain(&b, 0, 3);
    sg_d(&b, SG_IN1, 2048, NULL);
    sg_d(&b, SG_IN0, 16, NULL);
    sg_d(&b, SG_IN1, 1, NULL);
    sg_op(&b, FZ_OP_DEV, FZ_OP_ARG(4), 0, 0, 0);
    sg_chain(&b, 0, 2); /* a readable buffer first: nothing writable to fill */
    sg_d(&b, SG_OUT0, 4, "abcd");
    sg_d(&b, SG_INDIR, 0, NULL);
    sg_op(&b, FZ_OP_STATE, FZ_OP_ARG(0), 0, 0, 0);
    sg_emit("virtio_rng", "requests", &b);
}

/* virtio-balloon: PFNs in and out of RAM, a stats buffer, a reported range. */
static void sg_balloon_seeds(void)
{
    struct sg_buf b = {0};
    static const uint8_t pfns[12] = {0x10, 0, 0, 0, 0x11, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t stats[20] = {4, 0, 1, 2, 3, 4, 0, 0, 0, 0, 99, 0, 7};
    sg_bringup(&b, 8, UINT64_MAX);
    sg_chain(&b, 0, 1); /* inflate */
    sg_d(&b, SG_OUT0, sizeof(pfns), pfns);
    sg_chain(&b, 1, 1); /* deflate */
    sg_d(&b, SG_OUT0, sizeof(pfns), pfns);
    sg_chain(&b, 2, 1); /* stats, held */
    sg_d(&b, SG_OUT0, sizeof(stats), stats);
    sg_op(&b, FZ_OP_STATE, FZ_OP_ARG(3), 0, 0, 0); /* a timer tick returns it */
    sg_chain(&b, 3, 1);                            /* reporting */
    sg_d(&b, SG_IN1, 8192, NULL);
    sg_op(&b, FZ_OP_STATE, FZ_OP_ARG(2), 0, 0, 0);
    sg_emit("virtio_balloon", "queues", &b);
}

/* The register sequence a Linux virtio_mmio driver issues, as raw accesses. */
static void sg_mmio_seeds(void)
{
    struct sg_buf b = {0};
    static const uint16_t probe[] = {0x000, 0x004, 0x008, 0x00c};
    for (unsigned i = 0; i < ARRAY_SIZE(probe); i++)
        sg_op(&b, FZ_OP_READ, 0, probe[i], 4, 0);
    sg_op(&b, FZ_OP_WRITE, 0, 0x070, 4, 0);
    sg_op(&b, FZ_OP_WRITE, 0, 0x070, 4, 1);
    sg_op(&b, FZ_OP_WRITE, 0, 0x070, 4, 3);
    sg_op(&b, FZ_OP_WRITE, 0, 0x014, 4, 1);
    sg_op(&b, FZ_OP_READ, 0, 0x010, 4, 0);
    sg_op(&b, FZ_OP_WRITE, 0, 0x024, 4, 1);
    sg_op(&b, FZ_OP_WRITE, 0, 0x020, 4, 1);
    sg_op(&b, FZ_OP_WRITE, 0, 0x070, 4, 11);
    sg_op(&b, FZ_OP_READ, 0, 0x070, 4, 0);
    sg_op(&b, FZ_OP_WRITE, 0, 0x030, 4, 0);
    sg_op(&b, FZ_OP_READ, 0, 0x034, 4, 0);
    sg_op(&b, FZ_OP_WRITE, 0, 0x038, 4, 16);
    sg_op(&b, FZ_OP_WRITE, 0, 0x080, 4, 0x10000);
    sg_op(&b, FZ_OP_WRITE, 0, 0x090, 4, 0x11000);
    sg_op(&b, FZ_OP_WRITE, 0, 0x0a0, 4, 0x11400);
    sg_op(&b, FZ_OP_WRITE, 0, 0x044, 4, 1);
    sg_op(&b, FZ_OP_WRITE, 0, 0x070, 4, 15);
    /* CVE-2026-5747 shape: rewrite the geometry after DRIVER_OK. */
    sg_op(&b, FZ_OP_WRITE, 0, 0x038, 4, 0x8000);
    sg_op(&b, FZ_OP_WRITE, 0, 0x038, 4, 0);
    sg_op(&b, FZ_OP_WRITE, 0, 0x080, 4, 0xfffffff0);
    sg_op(&b, FZ_OP_WRITE, 0, 0x044, 4, 0);
    sg_op(&b, FZ_OP_WRITE, 0, 0x050, 4, 0);
    sg_op(&b, FZ_OP_READ, 0, 0x060, 4, 0);
    sg_op(&b, FZ_OP_WRITE, 0, 0x064, 4, 3);
    sg_op(&b, FZ_OP_READ, 0, 0x0fc, 4, 0);
    sg_op(&b, FZ_OP_READ, 0, 0x100, 1, 0);
    sg_op(&b, FZ_OP_READ, 0, 0x071, 2, 0);
    sg_op(&b, FZ_OP_WRITE, 0, 0x070, 8, 0);
    sg_op(&b, FZ_OP_READ, FZ_OP_FAR, 0, 4, 0);
    sg_emit("virtio_mmio", "linux-probe", &b);

    sg_bringup(&b, 4, UINT64_MAX);
    sg_op(&b, FZ_OP_DEV, FZ_OP_ARG(6), 0, 0, 0);
    sg_chain(&b, 0, 1);
    sg_d(&b, SG_IN1, 32, NULL);
    sg_op(&b, FZ_OP_STATE, FZ_OP_ARG(1), 0, 0, 0);
    sg_op(&b, FZ_OP_WRITE, 0, 0x070, 4, 0);
    sg_emit("virtio_mmio", "bringup-failed-reset", &b);
}

static void sg_blk_hdr(uint8_t h[16], uint32_t type, uint64_t sector)
{
    memset(h, 0, 16);
    le32_put(h, type);
    le64_put(h + 8, sector);
}

static void sg_blk_seeds(void)
{
    struct sg_buf b = {0};
    uint8_t h[16], data[512];
    memset(data, 0x5a, sizeof(data));

    sg_u8(&b, 0x0e | (4u << 4)); /* read-write, all caps, depth 4 */
    sg_bringup(&b, 8, UINT64_MAX);
    sg_blk_hdr(h, 1, 3); /* OUT sector 3 */
    sg_chain(&b, 0, 3);
    sg_d(&b, SG_OUT0, 16, h);
    sg_d(&b, SG_OUT1, 512, data);
    sg_d(&b, SG_IN0, 1, NULL);
    sg_blk_hdr(h, 0, 3); /* IN sector 3 */
    sg_chain(&b, 0, 4);
    sg_d(&b, SG_OUT0, 16, h);
    sg_d(&b, SG_IN1, 256, NULL);
    sg_d(&b, SG_IN1, 256, NULL);
    sg_d(&b, SG_IN0, 1, NULL);
    sg_blk_hdr(h, 4, 0); /* FLUSH */
    sg_chain(&b, 0, 2);
    sg_d(&b, SG_OUT0, 16, h);
    sg_d(&b, SG_IN0, 1, NULL);
    sg_blk_hdr(h, 8, 0); /* GET_ID */
    sg_chain(&b, 0, 3);
    sg_d(&b, SG_OUT0, 16, h);
    sg_d(&b, SG_IN0, 20, NULL);
    sg_d(&b, SG_IN0, 1, NULL);
    uint8_t seg[16];
    le64_put(seg, 8);
    le32_put(seg + 8, 16);
    le32_put(seg + 12, 0);
    sg_blk_hdr(h, 11, 0); /* DISCARD one segment */
    sg_chain(&b, 0, 3);
    sg_d(&b, SG_OUT0, 16, h);
    sg_d(&b, SG_OUT0, 16, seg);
    sg_d(&b, SG_IN0, 1, NULL);
    sg_blk_hdr(h, 13, 0); /* WRITE_ZEROES with UNMAP */
    le32_put(seg + 12, 1);
    sg_chain(&b, 0, 3);
    sg_d(&b, SG_OUT0, 16, h);
    sg_d(&b, SG_OUT0, 16, seg);
    sg_d(&b, SG_IN0, 1, NULL);
    sg_blk_hdr(h, 0, 127); /* IN across the end of the disk, through an indirect table */
    sg_chain(&b, 0, 4);
    sg_d(&b, SG_INDIR, 0, NULL);
    sg_d(&b, SG_OUT1, 16, h);
    sg_d(&b, SG_IN1, 1024, NULL);
    sg_d(&b, SG_IN1, 1, NULL);
    sg_op(&b, FZ_OP_DEV, FZ_OP_ARG(6), 0, 0, 0);
    sg_emit("virtio_blk", "requests", &b);

    sg_u8(&b, 1); /* read-only, no caps, default depth */
    sg_bringup(&b, 2, UINT64_MAX);
    sg_blk_hdr(h, 1, 0);
    for (unsigned i = 0; i < 6; i++) {
        sg_op(&b, FZ_OP_DEV, FZ_OP_ARG(1), 2, 0, 0);
        sg_d(&b, SG_OUT0, 16, h);
        sg_d(&b, SG_OUT0, 512, data);
        sg_d(&b, SG_IN0, 1, NULL);
    }
    sg_op(&b, FZ_OP_DEV, FZ_OP_ARG(2), 0, 0, 0);
    sg_op(&b, FZ_OP_STATE, FZ_OP_ARG(0), 0, 0, 0);
    sg_op(&b, FZ_OP_DEV, FZ_OP_ARG(3), 0, 0, 0);
    sg_emit("virtio_blk", "read-only-overflow", &b);
}

/* ---- virtio_state ---- */

static void sg_vq_state(struct virtio_state_vq *v, uint16_t size, uint64_t base, uint16_t idx)
{
    v->size = size;
    v->max_size_src = 256;
    v->vector = VIRTIO_STATE_NO_VECTOR;
    v->enabled = 1;
    v->desc_addr = base;
    v->driver_addr = base + 0x1000;
    v->device_addr = base + 0x2000;
    v->flags = VIRTIO_STATE_VQ_DRAINED;
    v->last_avail_idx = idx;
    v->used_idx = idx;
    v->signalled_used = VIRTIO_STATE_SIGNALLED_UNKNOWN;
}

static void sg_dev_state(struct virtio_state *s, uint32_t inst, const char *id, uint32_t type,
                         unsigned nq, uint64_t base)
{
    memset(s, 0, sizeof(*s));
    s->instance_id = inst;
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->device_id = type;
    s->transport = VIRTIO_STATE_TRANSPORT_MMIO;
    s->num_queues = (uint16_t)nq;
    s->mmio_base = base;
    s->mmio_len = 0x1000;
    s->irq = 5 + inst;
    s->has_dev_features = true;
    s->dev_feat.n = 1;
    s->dev_feat.w[0] = VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
                       VIRTIO_BIT(VIRTIO_F_VERSION_1);
    s->drv_feat.n = 1;
    s->drv_feat.w[0] = VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | VIRTIO_BIT(VIRTIO_F_VERSION_1);
    s->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                VIRTIO_STATUS_DRIVER_OK;
    for (unsigned q = 0; q < nq; q++)
        sg_vq_state(&s->vq[q], 64, 0x100000 + 0x10000ULL * q, (uint16_t)(40 * q + 3));
}

static void sg_state_emit(const char *name, const struct virtio_state *s, unsigned n, uint8_t flags)
{
    struct vstate_out o;
    char why[256] = "";
    for (unsigned i = 0; i < n; i++) {
        if (virtio_state_check(&s[i], why, sizeof(why)) != 0) {
            fprintf(stderr, "seedgen: virtio_state %s[%u] invalid: %s\n", name, i, why);
            exit(1);
        }
    }
    vstate_out_init(&o);
    if (virtio_state_encode_many(s, n, &o) != 0) {
        fprintf(stderr, "seedgen: virtio_state %s does not encode\n", name);
        exit(1);
    }
    struct sg_buf b = {0};
    sg_u8(&b, flags);
    sg_put(&b, o.buf, o.len);
    sg_emit("virtio_state", name, &b);
    vstate_out_free(&o);
}

static void sg_virtio_state_seeds(void)
{
    static struct virtio_state s[3];
    struct virtio_state_inflight infl[2] = {{7, 100}, {3, 101}};
    uint8_t blob[24], opaque[40];
    for (unsigned i = 0; i < sizeof(blob); i++)
        blob[i] = (uint8_t)(i * 11);
    for (unsigned i = 0; i < sizeof(opaque); i++)
        opaque[i] = (uint8_t)(0x80 + i);

    sg_dev_state(&s[0], 0, "rng0", VIRTIO_ID_RNG, 1, 0xd0000000);
    s[0].mmio.interrupt_status = 1;
    sg_state_emit("rng", s, 1, 0);

    sg_dev_state(&s[1], 1, "blk0", VIRTIO_ID_BLOCK, 1, 0xd0001000);
    s[1].config_generation = 2;
    s[1].config_len = 60;
    for (unsigned i = 0; i < s[1].config_len; i++)
        s[1].config[i] = (uint8_t)i;
    s[1].vq[0].flags = VIRTIO_STATE_VQ_INFLIGHT_VALID;
    s[1].vq[0].last_avail_idx = 10;
    s[1].vq[0].used_idx = 8;
    s[1].vq[0].n_inflight = 2;
    s[1].vq[0].inflight = infl;
    s[1].dev_rec_type = VIRTIO_STATE_T_BLK_STATE;
    s[1].has_opaque = true;
    snprintf(s[1].opaque_kind, sizeof(s[1].opaque_kind), "vu-blk");
    s[1].opaque_len = sizeof(opaque);
    s[1].opaque = opaque;
    sg_state_emit("blk-inflight", &s[1], 1, 3);

    sg_dev_state(&s[2], 2, "net0", VIRTIO_ID_NET, 2, 0xd0002000);
    s[2].mmio.queue_sel = 1;
    s[2].dev_rec_type = VIRTIO_STATE_T_NET_STATE;
    s[2].dev_blob_len = sizeof(blob);
    s[2].dev_blob = blob;
    s[2].vq[1].size = 0; /* never configured */
    s[2].vq[1].enabled = 0;
    s[2].vq[1].desc_addr = s[2].vq[1].driver_addr = s[2].vq[1].device_addr = 0;
    s[2].vq[1].last_avail_idx = s[2].vq[1].used_idx = 0;
    sg_state_emit("three-devices", s, 3, 3);

    /* vsock: VSOCK_STATE is the device's "virtio-vsock" section (28-byte
     * section header, le64 guest CID 3), queues rx, tx and event. */
    static uint8_t vsock_rec[36] = {'W', 'S', 'E', 'C', 1,   0,   0,   0,   8,   0,
                                    0,   0,   'v', 'i', 'r', 't', 'i', 'o', '-', 'v',
                                    's', 'o', 'c', 'k', 0,   0,   0,   0,   3};
    sg_dev_state(&s[0], 3, "vsock0", VIRTIO_ID_VSOCK, 3, 0xd0003000);
    s[0].config_len = 8;
    s[0].config[0] = 3;
    s[0].dev_rec_type = VIRTIO_STATE_T_VSOCK_STATE;
    s[0].dev_blob_len = sizeof(vsock_rec);
    s[0].dev_blob = vsock_rec;
    sg_state_emit("vsock", s, 1, 0);
}

/* A host-side event of the target's hook (FZ_OP_STATE arg 2..7). */
static void sg_hook(struct sg_buf *b, unsigned arg, uint16_t n, const void *data)
{
    sg_op(b, FZ_OP_STATE, FZ_OP_ARG(arg), n, 0, 0);
    if (data)
        sg_put(b, data, n);
}

static void sg_net_seeds(void)
{
    struct sg_buf b = {0};
    uint8_t hdr[12] = {0}, frame[64];
    for (unsigned i = 0; i < sizeof(frame); i++)
        frame[i] = (uint8_t)(i < 6 ? 0xff : i);
    uint8_t rx[12 + 64];
    memset(rx, 0, 12);
    memcpy(rx + 12, frame, sizeof(frame));

    sg_bringup(&b, 4, UINT64_MAX); /* MRG_RXBUF among the features */
    sg_chain(&b, 1, 2);            /* TX: header, then frame */
    sg_d(&b, SG_OUT0, sizeof(hdr), hdr);
    sg_d(&b, SG_OUT1, sizeof(frame), frame);
    sg_chain(&b, 1, 1); /* TX: header and frame in one buffer */
    sg_d(&b, SG_OUT0, sizeof(rx), rx);
    sg_op(&b, FZ_OP_DEV, FZ_OP_SEL(0) | FZ_OP_ARG(1), 0, 0, 0); /* RX buffers */
    sg_d(&b, SG_IN0, 1526, NULL);
    sg_op(&b, FZ_OP_DEV, FZ_OP_SEL(0) | FZ_OP_ARG(1), 1, 0, 0);
    sg_d(&b, SG_IN1, 12, NULL);
    sg_d(&b, SG_IN1, 40, NULL);
    sg_op(&b, FZ_OP_DEV, FZ_OP_SEL(0) | FZ_OP_ARG(2), 0, 0, 0);
    sg_hook(&b, 2, sizeof(rx), rx);
    sg_hook(&b, 2, 100, NULL); /* a longer frame from whatever input follows */
    sg_op(&b, FZ_OP_DEV, FZ_OP_ARG(3), 0, 0, 0);
    sg_op(&b, FZ_OP_DEV, FZ_OP_ARG(6), 0, 0, 0);
    sg_op(&b, FZ_OP_DEV, FZ_OP_ARG(4), 0, 0, 0);
    sg_emit("virtio_net", "tx-rx", &b);

    sg_bringup(&b, 2, 0); /* no device features: one buffer per frame */
    sg_hook(&b, 3, sizeof(rx), rx);
    sg_op(&b, FZ_OP_DEV, FZ_OP_ARG(3), 0, 0, 0); /* no RX buffers: pause */
    sg_chain(&b, 0, 1);
    sg_d(&b, SG_IN0, 8, NULL); /* too small for the header */
    sg_chain(&b, 0, 1);
    sg_d(&b, SG_IN0, 2048, NULL);
    sg_emit("virtio_net", "rx-pause", &b);
}

static void sg_console_seeds(void)
{
    struct sg_buf b = {0};
    static const char out[] = "guest console output\n";
    sg_bringup(&b, 4, UINT64_MAX);
    sg_chain(&b, 1, 1);
    sg_d(&b, SG_OUT0, sizeof(out) - 1, out);
    sg_chain(&b, 1, 2);
    sg_d(&b, SG_OUT1, 4, "more");
    sg_d(&b, SG_OUT0, 1, "\n");
    sg_op(&b, FZ_OP_DEV, FZ_OP_SEL(0) | FZ_OP_ARG(1), 0, 0, 0);
    sg_d(&b, SG_IN0, 64, NULL);
    sg_op(&b, FZ_OP_DEV, FZ_OP_SEL(0) | FZ_OP_ARG(2), 0, 0, 0);
    sg_hook(&b, 2, 5, "typed");
    sg_op(&b, FZ_OP_DEV, FZ_OP_ARG(3), 0, 0, 0);
    sg_hook(&b, 7, 0, NULL);
    sg_op(&b, FZ_OP_DEV, FZ_OP_ARG(6), 0, 0, 0);
    sg_op(&b, FZ_OP_STATE, FZ_OP_ARG(0), 0, 0, 0);
    sg_emit("virtio_console", "tx-rx", &b);
}

/* A vsock packet header (guest CID 3 to the host). */
static void sg_vsock_hdr(uint8_t *h, uint32_t sport, uint32_t dport, uint16_t op, uint32_t len)
{
    memset(h, 0, 44);
    h[0] = 3; /* src_cid */
    h[8] = 2; /* dst_cid */
    memcpy(h + 16, &sport, 4);
    memcpy(h + 20, &dport, 4);
    memcpy(h + 24, &len, 4);
    h[28] = 1; /* STREAM */
    memcpy(h + 30, &op, 2);
    h[38] = 1; /* buf_alloc 64 KiB */
}

static void sg_vsock_seeds(void)
{
    struct sg_buf b = {0};
    uint8_t h[44 + 2];
    sg_bringup(&b, 6, UINT64_MAX);
    for (int i = 0; i < 4; i++) {
        sg_chain(&b, 0, 1); /* rx buffers */
        sg_d(&b, SG_IN0, 44 + 256, NULL);
    }
    sg_vsock_hdr(h, 5000, 1000, 1 /* REQUEST */, 0);
    sg_chain(&b, 1, 1);
    sg_d(&b, SG_OUT0, 44, h);
    sg_hook(&b, 4, 0, NULL); /* the host accepts */
    sg_vsock_hdr(h, 5000, 1000, 5 /* RW */, 2);
    memcpy(h + 44, "hi", 2);
    sg_chain(&b, 1, 2);
    sg_d(&b, SG_OUT0, 44, h);
    sg_d(&b, SG_OUT1, 2, "hi");
    sg_hook(&b, 5, 0, NULL);
    sg_hook(&b, 3, 5, "hello");
    sg_hook(&b, 2, 10, "CONNECT 7\n");
    sg_op(&b, FZ_OP_DEV, FZ_OP_ARG(3), 0, 0, 0);
    sg_vsock_hdr(h, 5000, 1000, 4 /* SHUTDOWN */, 0);
    h[32] = 3;
    sg_chain(&b, 1, 1);
    sg_d(&b, SG_OUT0, 44, h);
    sg_hook(&b, 7, 0, NULL); /* save and load: TRANSPORT_RESET */
    sg_chain(&b, 2, 1);
    sg_d(&b, SG_IN0, 8, NULL);
    sg_emit("virtio_vsock", "connect-rw-reset", &b);
}

void sg_virtio_seeds(void)
{
    sg_vsock_seeds();
    sg_net_seeds();
    sg_console_seeds();
    sg_virtqueue_seeds();
    sg_rng_seeds();
    sg_balloon_seeds();
    sg_mmio_seeds();
    sg_blk_seeds();
    sg_virtio_state_seeds();
}
