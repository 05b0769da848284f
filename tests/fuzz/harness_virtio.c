/*
 * The virtio fuzz harness (see harness_virtio.h): fake host services, the
 * driver's side of the rings, and the program interpreter.
 */
#include "tests/fuzz/harness_virtio.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define FZV_MAX_CHAIN 6
#define FZV_MAX_LEN   2048 /* bytes per descriptor the harness places */

struct fzv fzv;

/* Registers (virtio 1.2 section 4.2.2), written here independently of the transport. */
enum {
    R_DEV_FEATURES = 0x010,
    R_DEV_FEATURES_SEL = 0x014,
    R_DRV_FEATURES = 0x020,
    R_DRV_FEATURES_SEL = 0x024,
    R_QUEUE_SEL = 0x030,
    R_QUEUE_NUM = 0x038,
    R_QUEUE_READY = 0x044,
    R_QUEUE_NOTIFY = 0x050,
    R_INT_STATUS = 0x060,
    R_INT_ACK = 0x064,
    R_STATUS = 0x070,
    R_DESC_LO = 0x080,
    R_DESC_HI = 0x084,
    R_DRIVER_LO = 0x090,
    R_DRIVER_HI = 0x094,
    R_DEVICE_LO = 0x0a0,
    R_DEVICE_HI = 0x0a4,
    R_CONFIG = 0x100,
};

static int fzv_ioeventfd(void *opaque, uint64_t addr, uint32_t datamatch, int fd, bool assign)
{
    (void)opaque;
    (void)addr;
    (void)datamatch;
    (void)fd;
    (void)assign;
    return 0;
}

static int fzv_irqfd(void *opaque, unsigned gsi, int *fd)
{
    (void)opaque;
    (void)gsi;
    *fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return *fd < 0 ? -errno : 0;
}

void fzv_init_once(void)
{
    struct gmem_range r[2] = {{0, FZV_REGION}, {FZV_REGION1_GPA, FZV_REGION}};
    struct errbuf err = {0};
    if (gmem_create(&fzv.mem, r, 2, false, &err) < 0 || evloop_init(&fzv.loop) < 0) {
        fprintf(stderr, "fuzz: harness setup failed: %s\n", err.msg);
        abort();
    }
}

void fzv_attach(struct virtio_dev *dev)
{
    struct errbuf err = {0};
    for (unsigned i = 0; i < fzv.mem.nregions; i++)
        memset(fzv.mem.regions[i].hva, 0, fzv.mem.regions[i].size);
    memset(fzv.size, 0, sizeof(fzv.size));
    memset(fzv.avail_idx, 0, sizeof(fzv.avail_idx));
    memset(fzv.next_desc, 0, sizeof(fzv.next_desc));
    fzv.data_next = 0;
    bus_init(&fzv.bus, "mmio");
    fzv.host = (struct virtio_mmio_host){
        .opaque = NULL,
        .loop = &fzv.loop,
        .mmio_bus = &fzv.bus,
        .ioeventfd = fzv_ioeventfd,
        .irqfd = fzv_irqfd,
    };
    fzv.dev = dev;
    if (virtio_mmio_create(dev, &fzv.host, FZV_MMIO_BASE, FZV_GSI, &fzv.t, &err) < 0) {
        fprintf(stderr, "fuzz: virtio_mmio_create: %s\n", err.msg);
        abort();
    }
}

void fzv_detach(void)
{
    virtio_mmio_destroy(fzv.t);
    fzv.t = NULL;
    fzv.dev->ops->destroy(fzv.dev);
    fzv.dev = NULL;
}

unsigned fzv_poll(void)
{
    struct epoll_event evs[16];
    int n = epoll_wait(fzv.loop.epfd, evs, 16, 0);
    unsigned ran = 0;
    for (int i = 0; i < n; i++) {
        uint32_t slot = evs[i].data.u32;
        if (slot < EVLOOP_MAX_HANDLERS && fzv.loop.handlers[slot].fd >= 0) {
            fzv.loop.handlers[slot].fn(fzv.loop.handlers[slot].opaque, evs[i].events);
            ran++;
        }
    }
    return ran;
}

uint32_t fzv_rd(uint64_t off)
{
    uint8_t b[4];
    virtio_mmio_read(fzv.t, off, b, 4);
    return le32_get(b);
}

void fzv_wr(uint64_t off, uint32_t v)
{
    uint8_t b[4];
    le32_put(b, v);
    virtio_mmio_write(fzv.t, off, b, 4);
}

bool fzv_in_ram(const void *p, size_t len)
{
    for (unsigned i = 0; i < fzv.mem.nregions; i++) {
        const struct gmem_region *r = &fzv.mem.regions[i];
        const uint8_t *b = p;
        if (b >= r->hva && b < r->hva + r->size && len <= (size_t)(r->hva + r->size - b))
            return true;
    }
    return false;
}

static void fzv_poke(gpa_t gpa, const void *p, size_t len)
{
    void *h = len ? gmem_ptr(&fzv.mem, gpa, len) : NULL;
    if (h)
        memcpy(h, p, len);
}

static void fzv_bringup(uint64_t mask, unsigned size_log2)
{
    const struct virtio_dev_ops *ops = fzv.dev->ops;
    fzv_wr(R_STATUS, 0);
    fzv_wr(R_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    fzv_wr(R_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    for (uint32_t w = 0; w < 2; w++) {
        fzv_wr(R_DEV_FEATURES_SEL, w);
        uint32_t offered = fzv_rd(R_DEV_FEATURES);
        fzv_wr(R_DRV_FEATURES_SEL, w);
        fzv_wr(R_DRV_FEATURES, offered & (uint32_t)(mask >> (32 * w)));
    }
    uint32_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
    fzv_wr(R_STATUS, st);
    uint16_t size = (uint16_t)MIN(1U << size_log2, ops->queue_max_size);
    for (unsigned q = 0; q < ops->num_queues && q < VIRTIO_MAX_QUEUES; q++) {
        fzv_wr(R_QUEUE_SEL, q);
        fzv_wr(R_QUEUE_NUM, size);
        fzv_wr(R_DESC_LO, (uint32_t)FZV_DESC(q));
        fzv_wr(R_DESC_HI, 0);
        fzv_wr(R_DRIVER_LO, (uint32_t)FZV_AVAIL(q));
        fzv_wr(R_DRIVER_HI, 0);
        fzv_wr(R_DEVICE_LO, (uint32_t)FZV_USED(q));
        fzv_wr(R_DEVICE_HI, 0);
        fzv_wr(R_QUEUE_READY, 1);
        fzv.size[q] = size;
        fzv.avail_idx[q] = fzv.next_desc[q] = 0;
    }
    fzv_wr(R_STATUS, st | VIRTIO_STATUS_DRIVER_OK);
}

/* A data buffer of `len` bytes in region `r`, 16-aligned, wrapping around its area. */
static gpa_t fzv_alloc(unsigned r, uint32_t len)
{
    uint64_t area = FZV_REGION - (r ? 0 : FZV_DATA0);
    uint64_t off = fzv.data_next % area;
    if (off + len > area)
        off = 0;
    fzv.data_next = off + ((len + 15) & ~15U);
    return (r ? FZV_DATA1 : FZV_DATA0) + off;
}

static void fzv_desc(gpa_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
    uint8_t d[16];
    le64_put(d, addr);
    le32_put(d + 8, len);
    le16_put(d + 12, flags);
    le16_put(d + 14, next);
    fzv_poke(table + 16ULL * i, d, sizeof(d));
}

/* Driver: build a chain from the input and publish it on queue q. */
static void fzv_add_chain(unsigned q, unsigned ndesc, struct fz_in *in)
{
    if (q >= VIRTIO_MAX_QUEUES || !fzv.size[q])
        return;
    uint16_t size = fzv.size[q];
    uint16_t head = fzv.next_desc[q] % size;
    gpa_t table = FZV_DESC(q);
    unsigned idx = head, first = head;
    bool indirect = false;
    for (unsigned k = 0; k < ndesc; k++) {
        uint8_t kind = fz_u8(in);
        uint32_t len = fz_u16(in) % (FZV_MAX_LEN + 1);
        uint64_t addr;
        uint16_t flags = 0;
        size_t got;
        switch ((kind & 0xf) % FZV_D_NKINDS) {
        case FZV_D_OUT0:
        case FZV_D_OUT1:
            addr = fzv_alloc((kind & 0xf) % FZV_D_NKINDS == FZV_D_OUT1, len);
            fzv_poke(addr, fz_take(in, len, &got), got);
            break;
        case FZV_D_IN0:
        case FZV_D_IN1:
            addr = fzv_alloc((kind & 0xf) % FZV_D_NKINDS == FZV_D_IN1, len);
            flags = VIRTQ_DESC_F_WRITE;
            break;
        case FZV_D_WILD:
            addr = fz_u64(in);
            flags = (kind & 0x10) ? VIRTQ_DESC_F_WRITE : 0;
            break;
        default:
            /* The rest of the chain goes into an indirect table (once). */
            if (indirect || k + 1 >= ndesc)
                continue;
            indirect = true;
            fzv.next_desc[q] = (uint16_t)((idx + 1) % size);
            addr = fzv_alloc(1, 16 * (ndesc - k - 1));
            fzv_desc(table, idx, addr, 16 * (ndesc - k - 1), VIRTQ_DESC_F_INDIRECT, 0);
            table = addr;
            idx = 0;
            continue;
        }
        bool last = k + 1 == ndesc;
        unsigned next = indirect ? idx + 1 : (idx + 1) % size;
        fzv_desc(table, idx, addr, len, (uint16_t)(flags | (last ? 0 : VIRTQ_DESC_F_NEXT)),
                 (uint16_t)next);
        idx = next;
        if (!indirect)
            fzv.next_desc[q] = (uint16_t)next;
    }
    if (!indirect && idx == first)
        return; /* nothing was written */
    uint8_t v[2];
    le16_put(v, (uint16_t)first);
    fzv_poke(FZV_AVAIL(q) + 4 + 2ULL * (fzv.avail_idx[q] % size), v, 2);
    fzv.avail_idx[q]++;
    le16_put(v, fzv.avail_idx[q]);
    fzv_poke(FZV_AVAIL(q) + 2, v, 2);
}

static void fzv_config_sweep(void)
{
    uint32_t n = fzv.dev->ops->config_size + 8;
    for (unsigned w = 1; w <= 4; w *= 2) {
        for (uint32_t off = 0; off < n; off += w) {
            struct fz_op op = {.kind = FZ_OP_READ, .offset = R_CONFIG + off, .len = w};
            fz_access(&op, virtio_mmio_read, virtio_mmio_write, fzv.t, NULL);
        }
    }
}

static void fzv_dev_op(const struct fz_op *op, struct fz_in *in)
{
    unsigned q = op->sel;
    size_t got;
    switch (op->arg) {
    case 0:
        fzv_bringup(fz_u64(in), op->off16 % 9);
        break;
    case 1:
        fzv_add_chain(q, op->off16 % FZV_MAX_CHAIN + 1, in);
        break;
    case 2:
        fzv_wr(R_QUEUE_NOTIFY, q);
        break;
    case 3:
        (void)fzv_poll();
        break;
    case 4:
        fzv_wr(R_INT_ACK, fzv_rd(R_INT_STATUS));
        break;
    case 5: {
        const uint8_t *p = fz_take(in, op->len * 32U, &got);
        fzv_poke((gpa_t)op->off16 * 16, p, got);
        break;
    }
    case 6:
        fzv_config_sweep();
        break;
    default:
        fzv_add_chain(q, op->off16 % FZV_MAX_CHAIN + 1, in);
        fzv_wr(R_QUEUE_NOTIFY, q);
        (void)fzv_poll();
        break;
    }
}

bool fzv_step(struct fz_in *in)
{
    struct fz_op op;
    if (!fz_next_op(in, &op))
        return false;
    {
        switch (op.kind) {
        case FZ_OP_READ:
        case FZ_OP_WRITE:
            fz_access(&op, virtio_mmio_read, virtio_mmio_write, fzv.t, NULL);
            break;
        case FZ_OP_DEV:
            fzv_dev_op(&op, in);
            break;
        default:
            if (op.arg >= 2 && fzv.hook)
                fzv.hook(&op, in);
            else
                fzv_wr(R_STATUS, op.arg == 1 ? VIRTIO_STATUS_FAILED : 0);
            break;
        }
        uint8_t st = fzv.dev->status;
        FZ_CHECK(!(st & VIRTIO_STATUS_DRIVER_OK) || (st & VIRTIO_STATUS_FEATURES_OK),
                 "DRIVER_OK without FEATURES_OK (status 0x%02x)", st);
        FZ_CHECK((fzv.dev->guest_features & ~fzv.dev->host_features) == 0,
                 "acked features 0x%llx not offered (0x%llx)",
                 (unsigned long long)fzv.dev->guest_features,
                 (unsigned long long)fzv.dev->host_features);
    }
    return true;
}

void fzv_run(struct fz_in *in)
{
    for (unsigned n = 0; n < FZV_MAX_STEPS && fzv_step(in); n++)
        ;
    /* Drain what the device rescheduled before it is torn down. */
    for (unsigned i = 0; i < 64 && fzv_poll(); i++)
        ;
}
