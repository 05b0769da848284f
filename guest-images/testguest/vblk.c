/*
 * vblk.c - virtio-blk requests and test=blk: write distinct patterns to a
 * few blocks (including the last), flush, read them back, GET_ID,
 * WRITE_ZEROES and DISCARD when offered, and a read past the end that
 * must fail. The host can check the image afterwards: the pattern formula
 * is in README.md ("blk").
 */
#include "vdrivers.h"

int blk_open(struct blkdev *b, struct vdev *d, u64 want, u16 qsize)
{
    int rc;
    memset(b, 0, sizeof *b);
    b->d = d;
    if ((rc = virtio_begin(d, want)) < 0)
        return rc;
    if ((rc = vq_setup(d, &b->q, 0, qsize)) < 0)
        return rc;
    b->slots = vpool_alloc(sizeof(struct blk_slot) * b->q.size, 64, true);
    if (!b->slots)
        return VE_QUEUE;
    b->capacity = vcfg_read64(d, VIRTIO_BLK_CFG_CAPACITY);
    if (d->acked & VBIT(VIRTIO_BLK_F_SEG_MAX))
        b->seg_max = vcfg_read(d, VIRTIO_BLK_CFG_SEG_MAX, 4);
    if (d->acked & VBIT(VIRTIO_BLK_F_SIZE_MAX))
        b->size_max = vcfg_read(d, VIRTIO_BLK_CFG_SIZE_MAX, 4);
    b->blk_size = 512;
    if (d->acked & VBIT(VIRTIO_BLK_F_BLK_SIZE))
        b->blk_size = vcfg_read(d, VIRTIO_BLK_CFG_BLK_SIZE, 4);
    /* Writes are done in logical blocks; anything odd falls back to 512. */
    b->unit = 1;
    if (b->blk_size >= 512 && b->blk_size <= 65536 && !(b->blk_size & (b->blk_size - 1)))
        b->unit = b->blk_size / 512;
    return virtio_driver_ok(d);
}

int blk_submit(struct blkdev *b, unsigned slot, u32 type, u64 sector, void *data, u32 len)
{
    struct blk_slot *s = &b->slots[slot % b->q.size];
    struct vbuf v[3];
    unsigned n = 0;

    s->hdr.type = type;
    s->hdr.reserved = 0;
    s->hdr.sector = sector;
    s->status = 0xFF; /* not a valid status: shows an untouched byte */
    v[n++] = (struct vbuf){(u64)&s->hdr, sizeof s->hdr, false};
    if (type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID)
        v[n++] = (struct vbuf){(u64)data, len, true};
    else if (type == VIRTIO_BLK_T_OUT)
        v[n++] = (struct vbuf){(u64)data, len, false};
    else if (type == VIRTIO_BLK_T_DISCARD || type == VIRTIO_BLK_T_WRITE_ZEROES)
        v[n++] = (struct vbuf){(u64)&s->seg, sizeof s->seg, false};
    v[n++] = (struct vbuf){(u64)&s->status, 1, true};
    return vq_add(&b->q, v, n);
}

int blk_sync(struct blkdev *b, u32 type, u64 sector, void *data, u32 len)
{
    int h = blk_submit(b, 0, type, sector, data, len);
    if (h < 0)
        return h;
    vq_kick(&b->q, false);
    h = vq_wait(&b->q, NULL, b->wait_ms ? b->wait_ms : VREQ_TIMEOUT_MS);
    if (h < 0)
        return h;
    return b->slots[0].status;
}

/* ---- test=blk ---- */

/* Word j (0..63) of 512-byte sector N: pattern ^ (N << 16) ^ j, little
 * endian. Cheap enough for interpreted CPL0 code (64 stores a sector). */
static void fill_block(u64 *w, u64 sector, u32 unit, u64 pattern)
{
    for (u32 s = 0; s < unit; s++, sector++)
        for (u64 j = 0; j < 64; j++)
            *w++ = pattern ^ (sector << 16) ^ j;
}

/* Index of the first mismatching word, or -1. */
static long check_block(const u64 *w, u64 sector, u32 unit, u64 pattern, bool zero)
{
    for (u32 s = 0; s < unit; s++, sector++)
        for (u64 j = 0; j < 64; j++, w++)
            if (*w != (zero ? 0 : (pattern ^ (sector << 16) ^ j)))
                return (long)(s * 64 + j);
    return -1;
}

static const char *st_name(int st)
{
    switch (st) {
    case VIRTIO_BLK_S_OK:
        return "ok";
    case VIRTIO_BLK_S_IOERR:
        return "ioerr";
    case VIRTIO_BLK_S_UNSUPP:
        return "unsupp";
    case VE_TIMEOUT:
        return "timeout";
    case VE_RESET:
        return "needs_reset";
    }
    return "other";
}

/* Submit one request per block in `blk`, all in flight together, then
 * collect them; every status must be `want`. */
static bool blk_batch(struct blkdev *b, const char *what, u32 type, const u64 *blk, unsigned n,
                      u8 *bufs, int want)
{
    u32 bsize = b->unit * 512;
    int bad = -1, badst = 0;
    for (unsigned i = 0; i < n; i++)
        if (blk_submit(b, i, type, blk[i] * b->unit, bufs + (u64)i * bsize, bsize) < 0)
            return check(what, false, "could not queue %u requests", n);
    vq_kick(&b->q, false);
    for (unsigned i = 0; i < n; i++) {
        int h = vq_wait(&b->q, NULL, VREQ_TIMEOUT_MS);
        if (h < 0)
            return check(what, false, "request %u: %s", i, st_name(h));
    }
    for (unsigned i = 0; i < n; i++)
        if (b->slots[i].status != want && bad < 0)
            bad = (int)i, badst = b->slots[i].status;
    if (bad >= 0)
        return check(what, false, "%u requests: sector %lu status=%d (%s), want %s", n,
                     blk[bad] * b->unit, badst, st_name(badst), st_name(want));
    return check(what, true, "%u requests status=%s", n, st_name(want));
}

void test_blk(void)
{
    struct vdev *d = virtio_find(VIRTIO_ID_BLK, 0);
    static struct blkdev b LAZY;
    if (!d) {
        check("blk_present", false, "no virtio-blk device on the command line");
        return;
    }
    u64 want = VBIT(VIRTIO_BLK_F_SIZE_MAX) | VBIT(VIRTIO_BLK_F_SEG_MAX) | VBIT(VIRTIO_BLK_F_RO) |
               VBIT(VIRTIO_BLK_F_BLK_SIZE) | VBIT(VIRTIO_BLK_F_FLUSH) | VBIT(VIRTIO_BLK_F_DISCARD) |
               VBIT(VIRTIO_BLK_F_WRITE_ZEROES);
    int rc = blk_open(&b, d, want, 64);
    if (!check("blk_init", rc == 0, "rc=%d status=0x%x", rc, virtio_status(d)))
        return;
    bool irq = opt_u64("virtio_irq", 0) != 0;
    if (irq)
        check("blk_irq_route", vq_use_irq(&b.q) == 0, "gsi=%u", d->irq);
    u64 acked = d->acked;
    bool ro = acked & VBIT(VIRTIO_BLK_F_RO), flush = acked & VBIT(VIRTIO_BLK_F_FLUSH);
    bool disc = acked & VBIT(VIRTIO_BLK_F_DISCARD);
    bool wz = acked & VBIT(VIRTIO_BLK_F_WRITE_ZEROES);
    SAY("blk base=0x%lx irq=%u capacity=%lu blk_size=%u seg_max=%u size_max=%u "
        "features=0x%lx acked=0x%lx ro=%d flush=%d discard=%d write_zeroes=%d",
        d->base, d->irq, b.capacity, b.blk_size, b.seg_max, b.size_max, d->offered, acked, ro,
        flush, disc, wz);

    bool expect_ro = opt_u64("blk_ro", 0) != 0;
    check("blk_ro_feature", ro == expect_ro, "ro=%d expected=%d", ro, expect_ro);
    u64 nblocks = b.capacity / b.unit;
    if (!check("blk_capacity", nblocks >= 8, "%lu blocks of %u bytes", nblocks, b.unit * 512))
        return;

    u64 pattern = opt_u64("blk_pattern", GUEST_BLK_PATTERN);
    u32 bsize = b.unit * 512;
    /* Blocks 0, 1, middle, last carry the pattern; 2 is zeroed with
     * WRITE_ZEROES, 3 discarded (both written with the pattern first). */
    u64 blk[6] = {0, 1, nblocks / 2, nblocks - 1, 2, 3};
    u8 *bufs = vpool_alloc((u64)bsize * 6, 4096, false);
    if (!check("blk_buffers", bufs != NULL, "%u bytes", bsize * 6))
        return;
    SAY("blk pattern=0x%lx unit=%u sectors=%lu,%lu,%lu,%lu zeroes=%lu discard=%lu", pattern, b.unit,
        blk[0] * b.unit, blk[1] * b.unit, blk[2] * b.unit, blk[3] * b.unit, blk[4] * b.unit,
        blk[5] * b.unit);
    for (int i = 0; i < 6; i++)
        fill_block((u64 *)(bufs + (u64)i * bsize), blk[i] * b.unit, b.unit, pattern);

    blk_batch(&b, "blk_write", VIRTIO_BLK_T_OUT, blk, 6, bufs,
              expect_ro ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
    if (flush) {
        int st = blk_sync(&b, VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
        check("blk_flush", st == VIRTIO_BLK_S_OK, "status=%d (%s)", st, st_name(st));
    }

    /* Read back into poisoned buffers, so stale data cannot pass. */
    memset(bufs, 0xA5, (u64)bsize * 4);
    /* Read-only: blk_check=1 still compares (the image was written by an
     * earlier read-write run with the same pattern). */
    bool compare = !expect_ro || opt_u64("blk_check", 0);
    if (blk_batch(&b, "blk_read", VIRTIO_BLK_T_IN, blk, 4, bufs, VIRTIO_BLK_S_OK) && compare) {
        int bad = -1;
        long word = -1;
        for (int i = 0; i < 4 && bad < 0; i++) {
            word = check_block((u64 *)(bufs + (u64)i * bsize), blk[i] * b.unit, b.unit, pattern,
                               false);
            if (word >= 0)
                bad = i;
        }
        if (bad < 0)
            check("blk_readback", true, "4 blocks match the pattern");
        else
            check("blk_readback", false, "sector %lu word %ld differs",
                  blk[bad] * b.unit + (u64)word / 64, word % 64);
    }

    char id[VIRTIO_BLK_ID_BYTES + 1];
    memset(id, 0, sizeof id);
    int st = blk_sync(&b, VIRTIO_BLK_T_GET_ID, 0, id, VIRTIO_BLK_ID_BYTES);
    for (int i = 0; i < VIRTIO_BLK_ID_BYTES; i++)
        if (id[i] && (id[i] < 0x20 || id[i] > 0x7e))
            id[i] = '?';
    SAY("blk id=\"%s\"", id);
    check("blk_get_id", st == VIRTIO_BLK_S_OK || st == VIRTIO_BLK_S_UNSUPP, "status=%d (%s)", st,
          st_name(st));

    if (wz && !expect_ro) {
        b.slots[0].seg = (struct virtio_blk_discard_wz){blk[4] * b.unit, b.unit, 0};
        st = blk_sync(&b, VIRTIO_BLK_T_WRITE_ZEROES, 0, NULL, 0);
        memset(bufs, 0xA5, bsize);
        int rst = blk_sync(&b, VIRTIO_BLK_T_IN, blk[4] * b.unit, bufs, bsize);
        long word = check_block((u64 *)bufs, blk[4] * b.unit, b.unit, 0, true);
        check("blk_write_zeroes", st == 0 && rst == 0 && word < 0,
              "status=%d (%s) read=%d zeros=%d", st, st_name(st), rst, word < 0);
    }
    if (disc && !expect_ro) {
        b.slots[0].seg = (struct virtio_blk_discard_wz){blk[5] * b.unit, b.unit, 0};
        st = blk_sync(&b, VIRTIO_BLK_T_DISCARD, 0, NULL, 0);
        check("blk_discard", st == VIRTIO_BLK_S_OK, "status=%d (%s)", st, st_name(st));
    }

    st = blk_sync(&b, VIRTIO_BLK_T_IN, b.capacity, bufs, bsize);
    check("blk_read_past_end", st == VIRTIO_BLK_S_IOERR, "sector %lu status=%d (%s)", b.capacity,
          st, st_name(st));
    check("blk_device_status", !(virtio_status(d) & VIRTIO_ST_NEEDS_RESET), "status=0x%x",
          virtio_status(d));
    if (irq)
        check("blk_irq", virtio_irq_settle(d, 1000) > 0 && (d->isr_seen & 1),
              "irqs=%u interrupt_status_seen=0x%x", d->irqs, d->isr_seen);
}
