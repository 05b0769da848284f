/*
 * bench.c - CPL3 benchmark loops (bench-blk, bench-net), the cpl3 speed
 * probe, and TSC calibration for reporting nanoseconds.
 *
 * Why CPL3: hosts that interpret guest kernel code would otherwise make
 * the guest the bottleneck. The loops drive the virtqueues directly with
 * the driver's own helpers (plain memory plus one MMIO store per kick),
 * poll the used ring with interrupts suppressed, and return once.
 * Set-up and printing stay at CPL0 and are kept short.
 */
#include "user.h"
#include "vdrivers.h"

/* ---- TSC rate ---- */

#define PIT_HZ    1193182u
#define PIT_TICKS 59659u /* 50 ms */

struct pvclock {
    u32 version;
    u32 pad0;
    u64 tsc_timestamp;
    u64 system_time;
    u32 tsc_to_system_mul;
    s8 tsc_shift;
    u8 flags;
    u8 pad[2];
};
_Static_assert(sizeof(struct pvclock) == 32, "pvclock");

/* kvmclock scales TSC deltas to ns as ((d << shift) * mul) >> 32 (right
 * shift if negative), so the TSC runs at 10^6 * 2^32 / mul / 2^shift kHz.
 * Enabled just long enough to read it. 0 if not offered. */
static u64 kvmclock_khz(void)
{
    static struct pvclock pv __attribute__((aligned(64)));
    u32 r[4];
    cpuid(0x40000000, 0, r);
    if (r[1] != 0x4b4d564b || r[0] < 0x40000001) /* "KVMK" */
        return 0;
    cpuid(0x40000001, 0, r);
    u32 msr = (r[0] & (1u << 3)) ? 0x4b564d01 : (r[0] & 1) ? 0x12 : 0;
    if (!msr)
        return 0;
    memset(&pv, 0, sizeof pv);
    if (!wrmsr_safe(msr, (u64)&pv | 1))
        return 0;
    /* KVM fills it on the next entry; a port read forces one. */
    for (int i = 0;
         i < 100 && (!*(volatile u32 *)&pv.version || (*(volatile u32 *)&pv.version & 1)); i++)
        inb(0x80);
    u32 mul = *(volatile u32 *)&pv.tsc_to_system_mul;
    s8 shift = *(volatile s8 *)&pv.tsc_shift;
    wrmsr_safe(msr, 0);
    if (!mul)
        return 0;
    u64 khz = (1000000ull << 32) / mul;
    return shift >= 0 ? khz >> shift : khz << -shift;
}

/* Count PIT channel 0 (mode 2, period 65536) for 50 ms by latching and
 * reading its counter; needs no speaker port (QEMU microvm has none).
 * The IOAPIC/8259 inputs stay masked, so no interrupt is taken.
 * 0 if the counter does not move. */
static u64 pit_calibrate(void)
{
    outb(0x43, 0x34); /* channel 0, lo/hi, mode 2, binary */
    outb(0x40, 0);
    outb(0x40, 0); /* count 0 = 65536 */
    u64 t0 = rdtsc(), t1 = t0;
    u32 elapsed = 0, prev = 0, moved = 0;
    for (u32 i = 0; elapsed < PIT_TICKS && i < 1000000; i++) {
        outb(0x43, 0x00); /* latch channel 0 */
        u32 cur = inb(0x40);
        cur |= (u32)inb(0x40) << 8;
        if (i == 0) {
            t0 = rdtsc();
            prev = cur;
            continue;
        }
        t1 = rdtsc();
        u32 d = (prev - cur) & 0xffff; /* counts down, wraps at 65536 */
        elapsed += d;
        moved |= d;
        prev = cur;
    }
    if (!moved || elapsed < PIT_TICKS)
        return 0;
    u64 khz = (t1 - t0) * PIT_HZ / elapsed / 1000;
    /* Plausible TSCs run at 100 MHz .. 10 GHz. */
    return khz >= 100000 && khz <= 10000000 ? khz : 0;
}

/* Best TSC rate in kHz: hypervisor leaf, CPUID 0x15, kvmclock, PIT, then
 * CPUID 0x16; 0 if none (the host then computes from the cycles printed). */
static u64 bench_tsc_khz(const char **src)
{
    static u64 khz;
    static const char *source;
    if (!khz) {
        khz = tsc_khz(&source);
        if (!streq(source, "cpuid.40000010") && !streq(source, "cpuid.15")) {
            u64 v;
            if ((v = kvmclock_khz()))
                khz = v, source = "kvmclock";
            else if ((v = pit_calibrate()))
                khz = v, source = "pit";
            else if (!streq(source, "cpuid.16"))
                khz = 0, source = "none";
        }
    }
    *src = source;
    return khz;
}

/* test=tsc: print every source, to compare them. */
static void test_tsc(void)
{
    const char *src;
    u64 k = tsc_khz(&src);
    SAY("tsc cpuid=%lu (%s) kvmclock=%lu pit=%lu", k, src, kvmclock_khz(), pit_calibrate());
    k = bench_tsc_khz(&src);
    check("tsc_khz", k != 0, "%lu (%s)", k, src);
}

static u64 cycles_to_ns(u64 cycles, u64 khz)
{
    return khz ? cycles * (u64)1000000 / khz : 0;
}

/* ---- latency histogram: 32 buckets per power of two (~3%) ---- */

#define HIST_SUB 5
#define HIST_N   (64 << HIST_SUB)

static u32 hist_bucket(u64 v)
{
    if (v < (1u << HIST_SUB))
        return (u32)v;
    u32 msb = 63 - (u32)__builtin_clzll(v);
    return ((msb - HIST_SUB + 1) << HIST_SUB) |
           (u32)((v >> (msb - HIST_SUB)) & ((1u << HIST_SUB) - 1));
}

static u64 hist_value(u32 b)
{
    if (b < (1u << HIST_SUB))
        return b;
    u32 msb = (b >> HIST_SUB) + HIST_SUB - 1, sub = b & ((1u << HIST_SUB) - 1);
    return ((u64)((1u << HIST_SUB) | sub)) << (msb - HIST_SUB);
}

/* Value at quantile num/den (lower edge of its bucket). */
static u64 hist_quantile(const u32 *h, u64 total, u64 num, u64 den)
{
    u64 want = (total * num + den - 1) / den, seen = 0;
    for (u32 b = 0; b < HIST_N; b++)
        if ((seen += h[b]) >= want && want)
            return hist_value(b);
    return 0;
}

/* ---- cpl3: how much faster is ring 3? ---- */

static u64 spin(void *arg)
{
    u64 n = (u64)arg, t0 = rdtsc();
    for (volatile u64 i = 0; i < n; i++)
        ;
    return rdtsc() - t0;
}

static void test_cpl3(void)
{
    u64 n = opt_u64("iterations", 100000);
    u64 k0 = spin((void *)n);
    u64 k3 = user_run(spin, (void *)n);
    SAY("cpl3 iterations=%lu cpl0_cycles=%lu cpl3_cycles=%lu speedup=%lu", n, k0, k3,
        k3 ? k0 / k3 : 0);
    check("cpl3_ran", k3 > 0, "cpl3_cycles=%lu", k3);
}

/* ---- bench-blk ---- */

struct bench_blk {
    struct blkdev *b;
    u8 *bufs;
    u32 qd, type;
    u64 nblk, max_ops, limit, stall;
    u64 seed;
    /* results */
    u64 ops, errors, cycles, stalled;
    u64 start[VQ_MAX_SIZE];
    u16 slot_of_head[VQ_MAX_SIZE];
    u32 hist[HIST_N];
};

static u64 xorshift(u64 *s)
{
    u64 x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void bb_submit(struct bench_blk *c, u32 slot, u64 now)
{
    u64 sector = (xorshift(&c->seed) % c->nblk) * 8;
    int h = blk_submit(c->b, slot, c->type, sector, c->bufs + (u64)slot * 4096, 4096);
    c->slot_of_head[h] = (u16)slot; /* h >= 0: qd * 3 <= queue size */
    c->start[slot] = now;
}

/* Runs at CPL3. */
static u64 bench_blk_loop(void *arg)
{
    struct bench_blk *c = arg;
    struct vq *q = &c->b->q;
    u64 t0 = rdtsc(), now = t0, progress = t0, last = t0, inflight = 0;
    bool stop = false;

    for (u32 s = 0; s < c->qd && s < c->max_ops; s++, inflight++)
        bb_submit(c, s, now);
    vq_kick(q, false);
    while (inflight) {
        bool posted = false;
        int h;
        u32 len;
        now = rdtsc();
        while ((h = vq_get(q, &len)) >= 0) {
            u32 s = c->slot_of_head[h];
            inflight--;
            if (c->b->slots[s].status != VIRTIO_BLK_S_OK)
                c->errors++;
            c->hist[hist_bucket(now - c->start[s])]++;
            c->ops++;
            progress = last = now;
            if (!stop && c->ops + inflight < c->max_ops) {
                bb_submit(c, s, now);
                inflight++;
                posted = true;
            }
        }
        if (h == VE_STATE) {
            c->errors++;
            break;
        }
        if (posted)
            vq_kick(q, false);
        if (now - t0 > c->limit)
            stop = true;
        if (now - progress > c->stall) {
            c->stalled = inflight;
            break;
        }
        cpu_relax();
    }
    c->cycles = last - t0;
    return 0;
}

void test_bench_blk(void)
{
    static struct blkdev b LAZY;
    static struct bench_blk c LAZY;
    const char *src;
    u64 khz = bench_tsc_khz(&src), tick_ms = khz ? khz : vticks_ms();
    struct vdev *d = virtio_find(VIRTIO_ID_BLK, 0);
    if (!check("bench_blk_device", d != NULL, "first virtio-blk"))
        vfinish();
    int rc = blk_open(&b, d, VBIT(VIRTIO_BLK_F_FLUSH), VQ_MAX_SIZE);
    if (!check("bench_blk_init", rc == 0, "rc=%d", rc))
        vfinish();

    memset(&c, 0, sizeof c);
    bool write = opt_is("bench_op", "write");
    u64 secs = opt_u64("bench_secs", 5), ops = opt_u64("bench_ops", 0);
    c.b = &b;
    c.type = write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
    c.qd = (u32)opt_u64("bench_qd", 16);
    if (c.qd > b.q.size / 3u)
        c.qd = b.q.size / 3u; /* three descriptors per request */
    if (c.qd == 0)
        c.qd = 1;
    c.nblk = b.capacity / 8;
    c.max_ops = ops ? ops : ~0ull;
    c.limit = (ops ? 600 : secs) * 1000 * tick_ms;
    c.stall = 5000 * tick_ms;
    c.seed = 0x9E3779B97F4A7C15ull ^ rdtsc();
    c.bufs = vpool_alloc((u64)c.qd * 4096, 4096, false);
    if (!check("bench_blk_setup", c.bufs && c.nblk, "qd=%u blocks=%lu", c.qd, c.nblk))
        vfinish();
    SAY("bench-blk start op=%s qd=%u queue=%u bs=4096 %s=%lu", write ? "write" : "read", c.qd,
        b.q.size, ops ? "ops" : "secs", ops ? ops : secs);

    user_map(d->base, d->size); /* QueueNotify, from ring 3 */
    user_run(bench_blk_loop, &c);

    u64 ns = cycles_to_ns(c.cycles, khz);
    u64 med = hist_quantile(c.hist, c.ops, 1, 2), p99 = hist_quantile(c.hist, c.ops, 99, 100);
    SAY("bench-blk op=%s ops=%lu ns=%lu iops=%lu lat_med_ns=%lu lat_p99_ns=%lu qd=%u "
        "cycles=%lu lat_med_cycles=%lu tsc_khz=%lu (%s) errors=%lu",
        write ? "write" : "read", c.ops, ns, ns ? c.ops * (u64)1000000000 / ns : 0,
        cycles_to_ns(med, khz), cycles_to_ns(p99, khz), c.qd, c.cycles, med, khz, src, c.errors);
    check("bench_blk_errors", c.errors == 0 && !c.stalled, "errors=%lu stalled=%lu", c.errors,
          c.stalled);
    vfinish();
}

/* ---- bench-net ---- */

#define TX_SLOT 128 /* bytes per tx frame buffer */

struct bench_net {
    struct netdev *n;
    u8 *tx, *rx, *tmpl;
    bool do_tx, do_rx;
    u32 txq; /* tx frames in flight at most */
    u64 max, limit, idle, first_wait;
    /* results */
    u64 tx_sent, tx_done, rx_frames, rx_ours, stalled;
    u64 t_first_rx, t_last_rx, tx_cycles;
};

/* Runs at CPL3. */
static u64 bench_net_loop(void *arg)
{
    struct bench_net *c = arg;
    struct vq *tq = &c->n->tx, *rq = &c->n->rx;
    const u32 flen = (u32)sizeof(struct virtio_net_hdr) + NET_FRAME_LEN;
    u64 t0 = rdtsc(), now = t0, t_tx = t0, inflight = 0;

    if (c->do_rx) {
        /* Single-descriptor chains taken in order: head i is buffer i, and
         * a reposted buffer gets back the head it came in on. */
        for (u32 i = 0; i < rq->size; i++) {
            struct vbuf v = {(u64)(c->rx + (u64)i * NET_RXBUF_LEN), NET_RXBUF_LEN, true};
            vq_add(rq, &v, 1);
        }
        vq_kick(rq, false);
    }
    if (c->do_tx)
        for (u32 i = 0; i < tq->size; i++)
            memcpy(c->tx + (u64)i * TX_SLOT, c->tmpl, flen);

    for (;;) {
        bool posted = false, tx_over = true, rx_over = true;
        int h;
        u32 len;
        now = rdtsc();
        if (c->do_tx) {
            while (vq_get(tq, NULL) >= 0) {
                inflight--;
                c->tx_done++;
                t_tx = now;
            }
            while (now - t0 <= c->limit && inflight < c->txq && c->tx_sent < c->max) {
                u8 *f = c->tx + (u64)tq->free_head * TX_SLOT; /* vq_add's head */
                u32 seq = (u32)c->tx_sent;
                u8 *p = f + sizeof(struct virtio_net_hdr) + 18;
                p[0] = (u8)(seq >> 24), p[1] = (u8)(seq >> 16), p[2] = (u8)(seq >> 8),
                p[3] = (u8)seq;
                struct vbuf v = {(u64)f, flen, false};
                if (vq_add(tq, &v, 1) < 0)
                    break;
                inflight++;
                c->tx_sent++;
                posted = true;
            }
            if (posted)
                vq_kick(tq, false);
            tx_over = inflight == 0 && (c->tx_sent >= c->max || now - t0 > c->limit);
            if (inflight && now - t_tx > c->idle) {
                c->stalled = inflight;
                break;
            }
        }
        if (c->do_rx) {
            bool reposted = false;
            while ((h = vq_get(rq, &len)) >= 0) {
                u8 *b = c->rx + (u64)h * NET_RXBUF_LEN;
                c->rx_frames++;
                /* Timing follows our frames only: a host's own traffic
                 * (IPv6 router solicitations...) must not start the clock. */
                if (len > sizeof(struct virtio_net_hdr) && len <= NET_RXBUF_LEN &&
                    net_frame_seq(b + sizeof(struct virtio_net_hdr),
                                  len - (u32)sizeof(struct virtio_net_hdr)) >= 0) {
                    if (!c->rx_ours)
                        c->t_first_rx = now;
                    c->rx_ours++;
                    c->t_last_rx = now;
                }
                struct vbuf v = {(u64)b, NET_RXBUF_LEN, true};
                vq_add(rq, &v, 1);
                reposted = true;
            }
            if (reposted)
                vq_kick(rq, false);
            /* rx alone: until max frames, the time limit after the first
             * frame or an idle gap (first frame: up to limit + 30 s);
             * with tx: until all echoes are in or they stop coming. */
            if (c->rx_ours)
                rx_over = c->rx_ours >= c->max || now - c->t_first_rx > c->limit ||
                          now - c->t_last_rx > c->idle ||
                          (c->do_tx && tx_over && c->rx_ours >= c->tx_done);
            else
                rx_over = now - t0 > c->limit + c->first_wait ||
                          (c->do_tx && tx_over && now - t_tx > c->idle);
        }
        if (tx_over && rx_over)
            break;
        cpu_relax();
    }
    c->tx_cycles = t_tx - t0;
    return 0;
}

void test_bench_net(void)
{
    static struct netdev n LAZY;
    static struct bench_net c LAZY;
    const char *src;
    u64 khz = bench_tsc_khz(&src), tick_ms = khz ? khz : vticks_ms();
    struct vdev *d = virtio_find(VIRTIO_ID_NET, 0);
    if (!check("bench_net_device", d != NULL, "first virtio-net"))
        vfinish();
    int rc = net_open(&n, d, VQ_MAX_SIZE);
    if (!check("bench_net_init", rc == 0, "rc=%d", rc))
        vfinish();
    memset(&c, 0, sizeof c);
    c.n = &n;
    c.do_tx = !opt_is("bench_op", "rx");
    c.do_rx = opt_is("bench_op", "rx") || opt_is("bench_op", "txrx");
    u64 secs = opt_u64("bench_secs", 5), ops = opt_u64("bench_ops", 0);
    c.max = ops ? ops : ~0ull;
    c.limit = (ops ? 600 : secs) * 1000 * tick_ms;
    c.idle = opt_u64("bench_idle_ms", 2000) * tick_ms;
    c.first_wait = 30000 * tick_ms;
    c.txq = (u32)opt_u64("bench_qd", n.tx.size);
    if (c.txq == 0 || c.txq > n.tx.size)
        c.txq = n.tx.size;
    c.tmpl = vpool_alloc(TX_SLOT, 64, false);
    c.tx = vpool_alloc((u64)n.tx.size * TX_SLOT, 4096, false);
    c.rx = vpool_alloc((u64)n.rx.size * NET_RXBUF_LEN, 4096, false);
    if (!check("bench_net_setup", c.tmpl && c.tx && c.rx, "queue=%u", n.tx.size))
        vfinish();
    net_build_frame(&n, c.tmpl, 0, 0);
    const char *op = c.do_tx ? (c.do_rx ? "txrx" : "tx") : "rx";
    SAY("bench-net start op=%s queue=%u inflight=%u frame=%u %s=%lu", op, n.tx.size, c.txq,
        NET_FRAME_LEN, ops ? "ops" : "secs", ops ? ops : secs);

    user_map(d->base, d->size);
    user_run(bench_net_loop, &c);

    if (c.do_tx) {
        u64 ns = cycles_to_ns(c.tx_cycles, khz);
        SAY("bench-net op=tx frames=%lu ns=%lu pps=%lu cycles=%lu tsc_khz=%lu (%s)", c.tx_done, ns,
            ns ? c.tx_done * (u64)1000000000 / ns : 0, c.tx_cycles, khz, src);
    }
    if (c.do_rx) {
        u64 cyc = c.t_last_rx - c.t_first_rx, ns = cycles_to_ns(cyc, khz);
        SAY("bench-net op=rx frames=%lu ours=%lu ns=%lu pps=%lu cycles=%lu tsc_khz=%lu (%s)",
            c.rx_frames, c.rx_ours, ns,
            ns && c.rx_ours > 1 ? (c.rx_ours - 1) * (u64)1000000000 / ns : 0, cyc, khz, src);
    }
    check("bench_net_tx", !c.do_tx || (c.tx_done == c.tx_sent && !c.stalled),
          "sent=%lu done=%lu stalled=%lu", c.tx_sent, c.tx_done, c.stalled);
    check("bench_net_rx", !c.do_rx || c.rx_ours > 0, "ours=%lu", c.rx_ours);
    vfinish();
}

/* cpl3 lives here because it shares the user-mode machinery. */
void test_cpl3_probe(void)
{
    test_cpl3();
    test_tsc();
    vfinish();
}
