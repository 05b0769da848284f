/*
 * hostile.c - test=hostile-NAME: misbehave against one virtio device (the
 * victim), then check that the VMM is still alive, that the victim
 * reported the problem (DEVICE_NEEDS_RESET or an error completion) or,
 * for the register modes, ignored the bad access, and that a second,
 * healthy device still works.
 *
 * Victim: hostile_dev=N (index in the virtio_mmio.device= list) or
 * hostile_dev=rng|blk, default the first rng device, else the first blk.
 * Healthy: healthy_dev= likewise, default the first other rng or blk. A blk victim gets its bad
 * buffers wrapped in a read request (header ... status) so the device can
 * answer with an error status.
 */
#include "vdrivers.h"

struct hctx {
    struct vdev *victim;
    struct vq q;
    bool blk;
    struct blk_slot *bs;
    u8 *buf;         /* a valid 4 KiB buffer */
    u64 ram_low_end; /* end of the highest RAM range below 4 GiB */
    u64 ram_top;     /* end of all RAM */
};

struct outcome {
    bool completed, needs_reset;
    u32 len;
    int status; /* blk status byte, or -1 */
};

static struct hctx hc LAZY;

static bool mode_is(const char *m, const char *name)
{
    return streq(m, name);
}

static void find_ram(void)
{
    for (u32 i = 0; i < boot.nr_map; i++) {
        if (boot.map[i].type != 1)
            continue;
        u64 end = boot.map[i].addr + boot.map[i].size;
        if (end <= (4ull << 30) && end > hc.ram_low_end)
            hc.ram_low_end = end;
        if (end > hc.ram_top)
            hc.ram_top = end;
    }
}

/* key=N (list index), key=rng|blk (first of that type other than `not`),
 * or absent: the first rng, else blk, other than `not`. */
static struct vdev *pick(const char *key, const struct vdev * not )
{
    char v[16];
    u64 idx;
    bool given = cmdline_get(boot.cmdline, key, v, sizeof v);
    if (given && parse_u64(v, &idx))
        return idx < (u64)nvdevs ? &vdevs[idx] : NULL;
    for (int pass = 0; pass < 2; pass++) {
        u32 want = pass == 0 ? VIRTIO_ID_RNG : VIRTIO_ID_BLK;
        if (given && !streq(v, virtio_name(want)))
            continue;
        for (int n = 0;; n++) {
            struct vdev *d = virtio_find(want, n);
            if (!d)
                break;
            if (d != not )
                return d;
        }
    }
    return NULL;
}

/* Handshake with `want` features, one queue of 16, DRIVER_OK. */
static int victim_open(void)
{
    int rc = virtio_begin(hc.victim, 0);
    if (rc == 0)
        rc = vq_setup(hc.victim, &hc.q, 0, 16);
    if (rc == 0)
        rc = virtio_driver_ok(hc.victim);
    return rc;
}

/* Publish `head` on the avail ring and kick, bypassing vq_add. */
static void publish(u16 head)
{
    struct vq *q = &hc.q;
    q->avail->ring[q->avail_idx % q->size] = head;
    __asm__ volatile("" ::: "memory");
    q->avail->idx = ++q->avail_idx;
    vq_kick(q, true);
}

static void set_desc(u16 i, u64 addr, u32 len, u16 flags, u16 next)
{
    hc.q.desc[i].addr = addr;
    hc.q.desc[i].len = len;
    hc.q.desc[i].flags = flags;
    hc.q.desc[i].next = next;
}

/* Wait for a completion or NEEDS_RESET, whichever comes first. */
static void await(struct outcome *o)
{
    u64 ms = opt_u64("hostile_wait_ms", 2000), start = rdtsc(), limit = ms * vticks_ms();
    memset(o, 0, sizeof *o);
    o->status = -1;
    while (rdtsc() - start < limit) {
        volatile struct vring_used *u = hc.q.used;
        if (u->idx != hc.q.last_used) {
            volatile struct vring_used_elem *e = &u->ring[hc.q.last_used % hc.q.size];
            o->completed = true;
            o->len = e->len;
            hc.q.last_used++;
            if (hc.blk)
                o->status = hc.bs->status;
            break;
        }
        if (virtio_status(hc.victim) & VIRTIO_ST_NEEDS_RESET)
            break;
    }
    o->needs_reset = virtio_status(hc.victim) & VIRTIO_ST_NEEDS_RESET;
    SAY("hostile outcome completed=%d len=%u blk_status=%d needs_reset=%d", o->completed, o->len,
        o->status, o->needs_reset);
}

/* Build the bad chain for a ring-abuse mode; returns its head. */
static u16 build_bad(const char *m)
{
    const u16 W = VRING_DESC_F_WRITE, N = VRING_DESC_F_NEXT;
    u16 size = hc.q.size, first = 0;
    u64 buf = (u64)hc.buf;
    if (hc.blk) {
        /* Descriptor 0: a read of sector 0; the bad part starts at 1. */
        hc.bs->hdr = (struct virtio_blk_req_hdr){VIRTIO_BLK_T_IN, 0, 0};
        hc.bs->status = 0xFF;
        set_desc(0, (u64)&hc.bs->hdr, sizeof hc.bs->hdr, N, 1);
        first = 1;
    }
    /* The tail: nothing for rng, the status byte for blk. */
    u16 tail_flags = hc.blk ? (u16)(W | N) : W;
    if (hc.blk)
        set_desc(first + 1, (u64)&hc.bs->status, 1, W, 0);

    if (mode_is(m, "desc-out-of-ram")) {
        u64 far = ((hc.ram_top + (1ull << 30) - 1) & ~((1ull << 30) - 1)) + (64ull << 30);
        set_desc(first, far, 512, tail_flags, (u16)(first + 1));
        SAY("hostile desc addr=0x%lx len=512 (RAM ends at 0x%lx)", far, hc.ram_top);
    } else if (mode_is(m, "desc-across-hole")) {
        u64 a = hc.ram_low_end - 2048;
        set_desc(first, a, 4096, tail_flags, (u16)(first + 1));
        SAY("hostile desc addr=0x%lx len=4096 crosses the end of low RAM 0x%lx", a, hc.ram_low_end);
    } else if (mode_is(m, "huge-len")) {
        set_desc(first, buf, 0xFFFFFFFFu, tail_flags, (u16)(first + 1));
        SAY("hostile desc addr=0x%lx len=0xffffffff", buf);
    } else if (mode_is(m, "chain-loop")) {
        set_desc(first, buf, 64, W | N, (u16)(first + 1));
        set_desc(first + 1, buf + 64, 64, W | N, first);
        SAY("hostile chain %u -> %u -> %u", first, first + 1, first);
    } else { /* chain-too-long */
        for (u16 i = first; i < size; i++)
            set_desc(i, buf + 16u * i, 16, W | N, (u16)(i + 1 < size ? i + 1 : first));
        SAY("hostile chain of all %u descriptors, the last pointing back to %u", size, first);
    }
    return 0;
}

/* ---- the modes ---- */

static bool ring_abuse(const char *m)
{
    struct outcome o;
    if (mode_is(m, "avail-jump")) {
        u16 jump = (u16)(hc.q.avail_idx + hc.q.size + 5);
        SAY("hostile avail.idx %u -> %u (queue size %u)", hc.q.avail_idx, jump, hc.q.size);
        hc.q.avail->idx = jump;
        vq_kick(&hc.q, true);
    } else {
        publish(build_bad(m));
    }
    await(&o);
    bool err =
        o.needs_reset ||
        (o.completed && (hc.blk ? o.status != VIRTIO_BLK_S_OK && o.status >= 0 : o.len == 0));
    check("hostile_reported", err, "needs_reset=%d completed=%d len=%u blk_status=%d",
          o.needs_reset, o.completed, o.len, o.status);
    return o.needs_reset;
}

/* One ordinary request on the victim's queue: must complete without error. */
static bool victim_works(const char *what)
{
    struct vbuf v[3];
    unsigned n = 0;
    if (hc.blk) {
        hc.bs->hdr = (struct virtio_blk_req_hdr){VIRTIO_BLK_T_IN, 0, 0};
        hc.bs->status = 0xFF;
        v[n++] = (struct vbuf){(u64)&hc.bs->hdr, sizeof hc.bs->hdr, false};
        v[n++] = (struct vbuf){(u64)hc.buf, 512, true};
        v[n++] = (struct vbuf){(u64)&hc.bs->status, 1, true};
    } else {
        v[n++] = (struct vbuf){(u64)hc.buf, 64, true};
    }
    u32 len = 0;
    int h = vq_add(&hc.q, v, n);
    if (h >= 0) {
        vq_kick(&hc.q, false);
        h = vq_wait(&hc.q, &len, VREQ_TIMEOUT_MS);
    }
    bool ok = h >= 0 && (hc.blk ? hc.bs->status == VIRTIO_BLK_S_OK : len > 0);
    return check(what, ok, "rc=%d len=%u%s", h, len, hc.blk ? "" : " (rng bytes)");
}

static bool queue_reconfig(void)
{
    u8 *other = vpool_alloc(3 * 4096, 4096, true);
    SAY("hostile after DRIVER_OK: QueueNum=0, rings moved to 0x%lx", (u64)other);
    vreg_write(hc.victim, VIRTIO_MMIO_QUEUE_SEL, 0);
    vreg_write(hc.victim, VIRTIO_MMIO_QUEUE_NUM, 0);
    vreg_write(hc.victim, VIRTIO_MMIO_QUEUE_DESC_LO, (u32)(u64)other);
    vreg_write(hc.victim, VIRTIO_MMIO_QUEUE_DESC_HI, 0);
    vreg_write(hc.victim, VIRTIO_MMIO_QUEUE_AVAIL_LO, (u32)(u64)other + 4096);
    vreg_write(hc.victim, VIRTIO_MMIO_QUEUE_AVAIL_HI, 0);
    vreg_write(hc.victim, VIRTIO_MMIO_QUEUE_USED_LO, (u32)(u64)other + 8192);
    vreg_write(hc.victim, VIRTIO_MMIO_QUEUE_USED_HI, 0);
    check("hostile_queue_still_ready", vreg_read(hc.victim, VIRTIO_MMIO_QUEUE_READY) == 1,
          "QueueReady=%u", vreg_read(hc.victim, VIRTIO_MMIO_QUEUE_READY));
    victim_works("hostile_old_geometry_works");
    return virtio_status(hc.victim) & VIRTIO_ST_NEEDS_RESET;
}

static bool features_not_offered(void)
{
    static const u8 cand[] = {27, 41, 50, 63, 31, 0, 1, 2, 3};
    struct vdev *d = hc.victim;
    int bad = -1;
    for (unsigned i = 0; i < sizeof cand && bad < 0; i++)
        if (!(d->offered & VBIT(cand[i])))
            bad = cand[i];
    if (!check("hostile_bit_found", bad >= 0, "offered=0x%lx", d->offered))
        return false;
    vreg_write(d, VIRTIO_MMIO_STATUS, 0);
    vreg_write(d, VIRTIO_MMIO_STATUS, VIRTIO_ST_ACKNOWLEDGE);
    vreg_write(d, VIRTIO_MMIO_STATUS, VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER);
    u64 acked = VBIT(VIRTIO_F_VERSION_1) | VBIT(bad);
    vreg_write(d, VIRTIO_MMIO_DRV_FEATURES_SEL, 0);
    vreg_write(d, VIRTIO_MMIO_DRV_FEATURES, (u32)acked);
    vreg_write(d, VIRTIO_MMIO_DRV_FEATURES_SEL, 1);
    vreg_write(d, VIRTIO_MMIO_DRV_FEATURES, (u32)(acked >> 32));
    vreg_write(d, VIRTIO_MMIO_STATUS,
               VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER | VIRTIO_ST_FEATURES_OK);
    bool accepted = virtio_status(d) & VIRTIO_ST_FEATURES_OK;
    /* DriverFeatures is write-only in the spec; a VMM that answers reads
     * must not show the bit it did not offer. */
    vreg_write(d, VIRTIO_MMIO_DRV_FEATURES_SEL, 0);
    u64 back = vreg_read(d, VIRTIO_MMIO_DRV_FEATURES);
    vreg_write(d, VIRTIO_MMIO_DRV_FEATURES_SEL, 1);
    back |= (u64)vreg_read(d, VIRTIO_MMIO_DRV_FEATURES) << 32;
    SAY("hostile features-not-offered bit=%d result=%s driver_features_read=0x%lx", bad,
        accepted ? "accepted" : "refused", back);
    check("hostile_bit_not_acked", !(back & VBIT(bad)), "read back 0x%lx", back);
    if (accepted) {
        /* Accepted: the device must work without the bit. */
        int rc = vq_setup(d, &hc.q, 0, 16);
        if (rc == 0)
            rc = virtio_driver_ok(d);
        if (check("hostile_driver_ok", rc == 0, "rc=%d status=0x%x", rc, virtio_status(d)))
            victim_works("hostile_works_without_bit");
    }
    return virtio_status(d) & VIRTIO_ST_NEEDS_RESET;
}

static bool ro_registers(void)
{
    static const u32 regs[] = {VIRTIO_MMIO_MAGIC,        VIRTIO_MMIO_VERSION,
                               VIRTIO_MMIO_DEVICE_ID,    VIRTIO_MMIO_VENDOR_ID,
                               VIRTIO_MMIO_DEV_FEATURES, VIRTIO_MMIO_QUEUE_NUM_MAX,
                               VIRTIO_MMIO_INT_STATUS,   VIRTIO_MMIO_CONFIG_GEN};
    struct vdev *d = hc.victim;
    vreg_write(d, VIRTIO_MMIO_QUEUE_SEL, 0);
    vreg_write(d, VIRTIO_MMIO_DEV_FEATURES_SEL, 0);
    for (unsigned i = 0; i < sizeof regs / sizeof regs[0]; i++) {
        u32 before = vreg_read(d, regs[i]);
        vreg_write(d, regs[i], ~before);
        u32 after = vreg_read(d, regs[i]);
        check("hostile_ro_register", after == before, "0x%03x before=0x%x after=0x%x", regs[i],
              before, after);
    }
    victim_works("hostile_still_works");
    return virtio_status(d) & VIRTIO_ST_NEEDS_RESET;
}

static bool bad_access_size(void)
{
    struct vdev *d = hc.victim;
    u8 st = virtio_status(d);
    vreg_write(d, VIRTIO_MMIO_QUEUE_SEL, 0);
    u32 max = vreg_read(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
    *(volatile u8 *)(d->base + VIRTIO_MMIO_STATUS) = 0;      /* would reset */
    *(volatile u16 *)(d->base + VIRTIO_MMIO_QUEUE_SEL) = 7;  /* would select queue 7 */
    *(volatile u8 *)(d->base + VIRTIO_MMIO_QUEUE_READY) = 0; /* would stop queue 0 */
    *(volatile u16 *)(d->base + VIRTIO_MMIO_INT_ACK + 2) = 0xFFFF;
    u8 st2 = virtio_status(d);
    u32 max2 = vreg_read(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
    u32 ready = vreg_read(d, VIRTIO_MMIO_QUEUE_READY);
    SAY("hostile bad-access-size status 0x%x -> 0x%x queue_num_max %u -> %u ready=%u", st, st2, max,
        max2, ready);
    check("hostile_byte_status_ignored", st2 == st, "status=0x%x", st2);
    check("hostile_word_queue_sel_ignored", max2 == max && ready == 1, "queue_num_max=%u ready=%u",
          max2, ready);
    victim_works("hostile_still_works");
    return virtio_status(d) & VIRTIO_ST_NEEDS_RESET;
}

static bool healthy_works(struct vdev *d)
{
    if (d->id == VIRTIO_ID_RNG) {
        static struct rngdev r LAZY;
        u8 *b = vpool_alloc(64, 64, true);
        int rc = rng_open(&r, d);
        if (rc == 0)
            rc = rng_read(&r, b, 64);
        return check("hostile_healthy_device", rc == 64, "rng at 0x%lx: %d", d->base, rc);
    }
    static struct blkdev b LAZY;
    u8 *buf = vpool_alloc(4096, 4096, false);
    int rc = blk_open(&b, d, 0, 16);
    if (rc == 0)
        rc = blk_sync(&b, VIRTIO_BLK_T_IN, 0, buf, 512);
    return check("hostile_healthy_device", rc == 0, "blk at 0x%lx: %d", d->base, rc);
}

void test_hostile(const char *m)
{
    static const char *const modes[] = {
        "desc-out-of-ram", "desc-across-hole", "chain-loop",           "chain-too-long",
        "avail-jump",      "queue-reconfig",   "features-not-offered", "huge-len",
        "ro-registers",    "bad-access-size"};
    bool known = false;
    for (unsigned i = 0; i < sizeof modes / sizeof modes[0]; i++)
        known |= streq(m, modes[i]);
    if (!check("hostile_mode", known, "%s", m))
        vfinish();

    memset(&hc, 0, sizeof hc);
    virtio_scan();
    find_ram();
    hc.victim = pick("hostile_dev", NULL);
    if (!check("hostile_victim", hc.victim != NULL, "no rng or blk device"))
        vfinish();
    hc.blk = hc.victim->id == VIRTIO_ID_BLK;
    hc.bs = vpool_alloc(sizeof *hc.bs, 64, true);
    hc.buf = vpool_alloc(4096, 4096, true);
    int rc = victim_open();
    SAY("hostile %s victim=%s base=0x%lx irq=%u ram_low_end=0x%lx", m, virtio_name(hc.victim->id),
        hc.victim->base, hc.victim->irq, hc.ram_low_end);
    if (!check("hostile_victim_init", rc == 0, "rc=%d", rc))
        vfinish();

    bool needs_reset;
    if (streq(m, "queue-reconfig"))
        needs_reset = queue_reconfig();
    else if (streq(m, "features-not-offered"))
        needs_reset = features_not_offered();
    else if (streq(m, "ro-registers"))
        needs_reset = ro_registers();
    else if (streq(m, "bad-access-size"))
        needs_reset = bad_access_size();
    else
        needs_reset = ring_abuse(m);

    /* Still here, and the VMM still answers MMIO. */
    u32 magic = vreg_read(hc.victim, VIRTIO_MMIO_MAGIC);
    check("hostile_vmm_alive", magic == VIRTIO_MMIO_MAGIC_VALUE, "victim magic=0x%x", magic);
    struct vdev *healthy = pick("healthy_dev", hc.victim);
    if (healthy)
        healthy_works(healthy);
    else
        SAY("hostile healthy device: none (add a second rng or blk to check one)");
    SAY("hostile %s survived needs_reset=%d", m, needs_reset ? 1 : 0);
    vfinish();
}
