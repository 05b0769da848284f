/*
 * virtio.c - virtio-mmio (version 2) from the device tree for the arm64
 * test guest: the status/feature handshake, one 16-entry split queue per
 * queue index in a page of its own, chains submitted one at a time and
 * completed by polling or, for one blk request, by the node's SPI through
 * the GIC.  Then the blk, rng and console checks.
 */
#include "a64.h"
#include "virtio_spec.h"

#define QSIZE    16
#define MAX_DEVS 16
#define MAX_QS   2

struct ring {
    struct vring_desc desc[QSIZE]; /* 256 bytes */
    u8 pad0[256];
    struct vring_avail avail; /* at 512 */
    u16 avail_ring[QSIZE + 1];
    u8 pad1[512 - 4 - 2 * (QSIZE + 1)];
    struct vring_used used; /* at 1024 */
    struct vring_used_elem used_ring[QSIZE];
    u16 avail_event;
} __attribute__((aligned(4096))); /* each queue's rings start a page */

struct dev {
    u64 base;
    u32 spi, id;
    volatile u32 irqs, isr;
    u16 last_used[MAX_QS];
    u16 qsize[MAX_QS];
};

static struct ring rings[MAX_DEVS][MAX_QS];
static struct dev devs[MAX_DEVS];
static u8 dbuf[3][4096] __attribute__((aligned(4096)));
static u8 hdrbuf[64] __attribute__((aligned(16)));

static u32 rd(struct dev *d, u32 reg)
{
    return mmio_read32(d->base + reg);
}
static void wr(struct dev *d, u32 reg, u32 v)
{
    mmio_write32(d->base + reg, v);
}

/* Handshake with VERSION_1 plus `want` (low word); queues 0..nq-1. */
static int dev_init(struct dev *d, u32 want, u32 nq)
{
    u32 slot = (u32)(d - devs);
    wr(d, VIRTIO_MMIO_STATUS, 0);
    if (rd(d, VIRTIO_MMIO_STATUS) != 0)
        return -1;
    wr(d, VIRTIO_MMIO_STATUS, VIRTIO_ST_ACKNOWLEDGE);
    wr(d, VIRTIO_MMIO_STATUS, VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER);
    wr(d, VIRTIO_MMIO_DEV_FEATURES_SEL, 1);
    u32 hi = rd(d, VIRTIO_MMIO_DEV_FEATURES);
    wr(d, VIRTIO_MMIO_DEV_FEATURES_SEL, 0);
    u32 lo = rd(d, VIRTIO_MMIO_DEV_FEATURES);
    if (!(hi & 1))
        return -2; /* no VERSION_1 */
    wr(d, VIRTIO_MMIO_DRV_FEATURES_SEL, 0);
    wr(d, VIRTIO_MMIO_DRV_FEATURES, lo & want);
    wr(d, VIRTIO_MMIO_DRV_FEATURES_SEL, 1);
    wr(d, VIRTIO_MMIO_DRV_FEATURES, 1);
    u32 st = VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER | VIRTIO_ST_FEATURES_OK;
    wr(d, VIRTIO_MMIO_STATUS, st);
    if (!(rd(d, VIRTIO_MMIO_STATUS) & VIRTIO_ST_FEATURES_OK))
        return -3;
    for (u32 q = 0; q < nq && q < MAX_QS; q++) {
        struct ring *r = &rings[slot][q];
        memset(r, 0, sizeof *r);
        wr(d, VIRTIO_MMIO_QUEUE_SEL, q);
        u32 max = rd(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
        if (max == 0 || rd(d, VIRTIO_MMIO_QUEUE_READY))
            return -4;
        d->qsize[q] = max < QSIZE ? (u16)max : QSIZE;
        d->last_used[q] = 0;
        wr(d, VIRTIO_MMIO_QUEUE_NUM, d->qsize[q]);
        wr(d, VIRTIO_MMIO_QUEUE_DESC_LO, (u32)(u64)r->desc);
        wr(d, VIRTIO_MMIO_QUEUE_DESC_HI, (u32)((u64)r->desc >> 32));
        wr(d, VIRTIO_MMIO_QUEUE_AVAIL_LO, (u32)(u64)&r->avail);
        wr(d, VIRTIO_MMIO_QUEUE_AVAIL_HI, (u32)((u64)&r->avail >> 32));
        wr(d, VIRTIO_MMIO_QUEUE_USED_LO, (u32)(u64)&r->used);
        wr(d, VIRTIO_MMIO_QUEUE_USED_HI, (u32)((u64)&r->used >> 32));
        wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
    }
    wr(d, VIRTIO_MMIO_STATUS, st | VIRTIO_ST_DRIVER_OK);
    return (rd(d, VIRTIO_MMIO_STATUS) & VIRTIO_ST_NEEDS_RESET) ? -5 : 0;
}

static void dev_irq(void *arg)
{
    struct dev *d = arg;
    u32 isr = rd(d, VIRTIO_MMIO_INT_STATUS);
    wr(d, VIRTIO_MMIO_INT_ACK, isr);
    d->isr |= isr;
    d->irqs++;
}

struct seg {
    const void *p;
    u32 len;
    bool write;
};

/* Submit one chain on queue q and wait (2 s) for it; the used length, or
 * -1 on a timeout.  With use_irq it also waits for the node's SPI. */
static long xfer(struct dev *d, u32 q, const struct seg *s, u32 n, bool use_irq)
{
    struct ring *r = &rings[d - devs][q];
    u16 size = d->qsize[q];
    if (n == 0 || n > size)
        return -1;
    for (u32 i = 0; i < n; i++) {
        r->desc[i].addr = (u64)s[i].p;
        r->desc[i].len = s[i].len;
        r->desc[i].flags =
            (u16)((i + 1 < n ? VRING_DESC_F_NEXT : 0) | (s[i].write ? VRING_DESC_F_WRITE : 0));
        r->desc[i].next = (u16)(i + 1);
    }
    r->avail.flags = use_irq ? 0 : VRING_AVAIL_F_NO_INTERRUPT;
    u16 idx = r->avail.idx;
    r->avail_ring[idx % size] = 0;
    dsb_sy();
    r->avail.idx = (u16)(idx + 1);
    dsb_sy();
    u32 irqs0 = d->irqs;
    wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, q);
    u64 start = counter(), limit = counter_hz() * 2;
    volatile u16 *used_idx = &r->used.idx;
    while (*used_idx == d->last_used[q] || (use_irq && d->irqs == irqs0)) {
        if (counter() - start > limit)
            return -1;
        if (use_irq) /* poll with IRQs open: a missing SPI must time out, not hang in wfi */
            __asm__ volatile("msr daifclr, #2\n\tisb\n\tyield\n\tmsr daifset, #2" ::: "memory");
    }
    dsb_sy();
    struct vring_used_elem e = r->used_ring[d->last_used[q] % size];
    d->last_used[q]++;
    return e.id == 0 ? (long)e.len : -1;
}

static struct dev *find(u32 id)
{
    for (u32 i = 0; i < dt.nvirtio && i < MAX_DEVS; i++)
        if (devs[i].id == id)
            return &devs[i];
    return NULL;
}

static bool blk_rw(struct dev *d, u32 type, u64 sector, void *buf, u32 len, u8 *status, bool irq)
{
    struct virtio_blk_req_hdr *h = (void *)hdrbuf;
    h->type = type;
    h->reserved = 0;
    h->sector = sector;
    u8 *st = hdrbuf + 32;
    *st = 0xff;
    struct seg s[3] = {{h, sizeof *h, false}, {buf, len, type == VIRTIO_BLK_T_IN}, {st, 1, true}};
    struct seg f[2] = {{h, sizeof *h, false}, {st, 1, true}};
    long n = len ? xfer(d, 0, s, 3, irq) : xfer(d, 0, f, 2, irq);
    *status = *st;
    return n >= 1;
}

static u64 pattern_word(u64 s, u64 j)
{
    return GUEST_BLK_PATTERN ^ (s << 16) ^ j;
}

static void blk_test(u64 expect_sectors)
{
    struct dev *d = find(VIRTIO_ID_BLK);
    if (!d) { /* guest-run counts the checks: an absent device is noticed there */
        SAY("no virtio-%s node: its checks skipped", "blk");
        return;
    }
    int rc = dev_init(d, 1u << VIRTIO_BLK_F_FLUSH, 1);
    if (!check("blk_init", rc == 0, "rc=%d", rc))
        return;
    u64 cap = rd(d, VIRTIO_MMIO_CONFIG) | (u64)rd(d, VIRTIO_MMIO_CONFIG + 4) << 32;
    check("blk_capacity", cap == expect_sectors, "%lu sectors (expected %lu)", cap, expect_sectors);
    u8 st;
    bool ok = blk_rw(d, VIRTIO_BLK_T_IN, 0, dbuf[0], 512, &st, false);
    static const char magic[] = "WISP-A64-DISK";
    check("blk_read_host", ok && st == 0 && memcmp(dbuf[0], magic, sizeof magic - 1) == 0,
          "sector 0 status %u starts \"%c%c%c%c\"", st, dbuf[0][0], dbuf[0][1], dbuf[0][2],
          dbuf[0][3]);
    /* Sectors 8..15: the host checks these after the VM is gone. */
    u64 *w = (u64 *)dbuf[1];
    for (u64 i = 0; i < 4096 / 8; i++)
        w[i] = pattern_word(8 + i / 64, i % 64);
    ok = blk_rw(d, VIRTIO_BLK_T_OUT, 8, dbuf[1], 4096, &st, false);
    check("blk_write", ok && st == 0, "status %u", st);
    ok = blk_rw(d, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, &st, false);
    check("blk_flush", ok && st == 0, "status %u", st);
    /* Read back through the interrupt: the node's SPI, edge, via the GIC. */
    bool edge = (dt.virtio[d - devs].flags & 0xf) == 1;
    bool en = gic_enable(32 + d->spi, edge, dev_irq, d);
    memset(dbuf[2], 0, 4096);
    ok = en && blk_rw(d, VIRTIO_BLK_T_IN, 8, dbuf[2], 4096, &st, true);
    check("blk_irq", ok && d->irqs > 0 && (d->isr & 1), "SPI %u (%s), %u interrupts, isr 0x%x",
          d->spi, edge ? "edge" : "level", d->irqs, d->isr);
    check("blk_readback", ok && st == 0 && memcmp(dbuf[1], dbuf[2], 4096) == 0, "status %u", st);
    ok = blk_rw(d, VIRTIO_BLK_T_IN, cap, dbuf[2], 512, &st, false);
    check("blk_beyond_end", ok && st == VIRTIO_BLK_S_IOERR, "read at sector %lu: status %u", cap,
          st);
}

static void rng_test(void)
{
    struct dev *d = find(VIRTIO_ID_RNG);
    if (!d) { /* guest-run counts the checks: an absent device is noticed there */
        SAY("no virtio-%s node: its checks skipped", "rng");
        return;
    }
    int rc = dev_init(d, 0, 1);
    if (!check("rng_init", rc == 0, "rc=%d", rc))
        return;
    memset(dbuf[0], 0, 128);
    struct seg a = {dbuf[0], 64, true}, b = {dbuf[0] + 64, 64, true};
    long n1 = xfer(d, 0, &a, 1, false), n2 = xfer(d, 0, &b, 1, false);
    u32 zero = 0;
    for (int i = 0; i < 128; i++)
        zero += dbuf[0][i] == 0;
    check("rng_bytes",
          n1 > 0 && n1 <= 64 && n2 > 0 && n2 <= 64 && zero < 16 &&
              memcmp(dbuf[0], dbuf[0] + 64, 16) != 0,
          "%ld + %ld bytes, %u zero", n1, n2, zero);
}

static void console_test(void)
{
    struct dev *d = find(VIRTIO_ID_CONSOLE);
    if (!d) { /* guest-run counts the checks: an absent device is noticed there */
        SAY("no virtio-%s node: its checks skipped", "console");
        return;
    }
    int rc = dev_init(d, 0, 2);
    if (!check("console_init", rc == 0, "rc=%d", rc))
        return;
    static const char hello[] = "wisp-guest: virtio-console hello from arm64\n";
    memcpy(dbuf[0], hello, sizeof hello - 1);
    struct seg s = {dbuf[0], sizeof hello - 1, false};
    long n = xfer(d, VIRTIO_CONSOLE_TXQ, &s, 1, false);
    check("console_tx", n >= 0, "%u bytes sent", (unsigned)sizeof hello - 1);
}

void virtio_tests(u64 blk_sectors)
{
    for (u32 i = 0; i < dt.nvirtio && i < MAX_DEVS; i++) {
        struct dev *d = &devs[i];
        d->base = dt.virtio[i].base;
        d->spi = dt.virtio[i].spi;
        u32 magic = rd(d, VIRTIO_MMIO_MAGIC), ver = rd(d, VIRTIO_MMIO_VERSION);
        d->id = rd(d, VIRTIO_MMIO_DEVICE_ID);
        check("virtio_node",
              magic == VIRTIO_MMIO_MAGIC_VALUE && ver == 2 && d->spi >= 16 && d->spi < 96 &&
                  dt.virtio[i].size >= 0x200,
              "0x%lx: magic 0x%x version %u id %u SPI %u", d->base, magic, ver, d->id, d->spi);
    }
    blk_test(blk_sectors);
    rng_test();
    console_test();
}

void virtio_recheck(void)
{
    struct dev *b = find(VIRTIO_ID_BLK), *r = find(VIRTIO_ID_RNG);
    u8 st = 0xff;
    memset(dbuf[2], 0, 4096);
    bool ok = b && blk_rw(b, VIRTIO_BLK_T_IN, 8, dbuf[2], 4096, &st, false);
    u64 *w = (u64 *)dbuf[2];
    u32 bad = 0;
    for (u64 i = 0; ok && i < 4096 / 8; i++)
        bad += w[i] != pattern_word(8 + i / 64, i % 64);
    check("after_blk", ok && st == 0 && bad == 0, "read of sectors 8..15: status %u, %u bad words",
          st, bad);
    struct seg s = {dbuf[0], 32, true};
    long n = r ? xfer(r, 0, &s, 1, false) : -1;
    check("after_rng", n > 0 && n <= 32, "%ld bytes", n);
}
