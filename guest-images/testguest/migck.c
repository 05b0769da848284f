/*
 * migck.c - test=migck: a workload that shows a VM lost nothing across a
 * snapshot and restore (or a live migration).
 *
 * It owns migck_mb MiB of RAM at MIGCK_BASE (64 MiB). Iteration k writes
 * page (k mod npages) with a pattern of (generation, page) and records the
 * generation in a table; every iteration also verifies page
 * ((k*7+3) mod npages) against the table (never written: all zero). npages
 * is a power of two, so 7 is coprime with it and npages iterations verify
 * every page. The counter and the table live in guest memory: after a
 * restore the guest simply goes on, and the host checks that the counter
 * it prints kept growing and that no FAIL line appeared.
 *
 * Lines: "migck N ok pages=P verified=V" every migck_ms (N = iterations
 * done, V = verified pages that had been written), "migck FAIL ..." on a
 * mismatch (then RESULT FAIL). migck_count=0 (the default) runs forever.
 *
 * migck_blk=1: at every report also write sector (k mod 64) of the first
 * virtio-blk disk with a self-checking record (format in README.md,
 * "migck"), and print "migck blk sector S k K" for every 8th record.
 */
#include "boot.h"
#include "vdrivers.h"

#define MIGCK_BASE      (64ull << 20)
#define MIGCK_MAX_PAGES (1u << 16) /* 256 MiB */
#define MIGCK_SECTORS   64
#define PAGE_WORDS      512

/* Generation (k + 1) of the last write of each page; 0: never written. */
static u32 migck_gen[MIGCK_MAX_PAGES] LAZY;

static u64 pattern(u64 gen, u64 page, u64 j)
{
    /* Word 0 is gen << 32 | page: never zero, so no written page is all
     * zero (a snapshot stores it as data, a lazy restore must copy it). */
    return (gen << 32 | page) ^ (j * 0x9E3779B97F4A7C15ull);
}

static void write_page(u64 *w, u64 gen, u64 page)
{
    for (u64 j = 0; j < PAGE_WORDS; j++)
        w[j] = pattern(gen, page, j);
}

/* Index of the first wrong word, or -1. */
static long verify_page(const u64 *w, u64 gen, u64 page)
{
    for (u64 j = 0; j < PAGE_WORDS; j++)
        if (w[j] != (gen ? pattern(gen, page, j) : 0))
            return (long)j;
    return -1;
}

/* Is [a, b) inside one RAM range of the memory map? */
static bool in_ram(u64 a, u64 b)
{
    for (u32 i = 0; i < boot.nr_map; i++)
        if (boot.map[i].type == E820_RAM && boot.map[i].addr <= a &&
            b <= boot.map[i].addr + boot.map[i].size)
            return true;
    return false;
}

/* The 512-byte disk record (README.md "migck"). */
static void blk_record(u8 *buf, u64 k, u64 sector)
{
    u64 *w = (u64 *)buf;
    memset(buf, 0, 512);
    memcpy(buf, "MIGCK", 5);
    w[1] = k;
    w[2] = sector;
    for (u64 i = 3; i < 63; i++)
        w[i] = k ^ (sector << 8) ^ (i * 0x100000001B3ull);
    u32 sum = fnv1a(buf, 504);
    memcpy(buf + 504, &sum, 4);
}

__attribute__((noreturn)) void test_migck(void)
{
    u64 mb = opt_u64("migck_mb", 16), every_ms = opt_u64("migck_ms", 20);
    u64 count = opt_u64("migck_count", 0);
    bool use_blk = opt_u64("migck_blk", 0) != 0;
    u64 npages = mb << 8;

    if (!check("lazy_memory", lazy_ready(), "0x%lx-0x%lx", (u64)__lazy_start, (u64)__lazy_end))
        vfinish();
    if (mb == 0 || (npages & (npages - 1)) || npages > MIGCK_MAX_PAGES) {
        check("migck_mb", false, "%lu: a power of two from 1 to %u", mb, MIGCK_MAX_PAGES >> 8);
        vfinish();
    }
    u64 base = MIGCK_BASE, end = base + (npages << 12);
    if (!check("migck_area", in_ram(base, end), "0x%lx-0x%lx must be RAM (memory >= %lu MiB)", base,
               end, end >> 20))
        vfinish();
    if (boot.have_initrd && boot.initrd_addr < end && base < boot.initrd_addr + boot.initrd_size) {
        check("migck_area", false, "0x%lx-0x%lx overlaps the initrd", base, end);
        vfinish();
    }
    if ((u64)__lazy_start < end && base < (u64)__lazy_end) {
        check("migck_area", false, "0x%lx-0x%lx overlaps the lazy memory", base, end);
        vfinish();
    }
    memset(migck_gen, 0, npages * sizeof migck_gen[0]);

    static struct blkdev b LAZY;
    static u64 blk_last[MIGCK_SECTORS]; /* last k written to each sector */
    u8 *rec = NULL;
    if (use_blk) {
        struct vdev *d = virtio_find(VIRTIO_ID_BLK, 0);
        if (!check("migck_blk", d != NULL, "migck_blk=1 needs a virtio-blk device"))
            vfinish();
        int rc = blk_open(&b, d, 0, 16);
        /* How long one record write may take (a data plane restarting under it). */
        b.wait_ms = opt_u64("migck_blk_wait_ms", 0);
        rec = vpool_alloc(512, 512, true);
        if (!check("migck_blk", rc == 0 && rec && b.capacity >= MIGCK_SECTORS,
                   "rc=%d capacity=%lu sectors (>= %u needed)", rc, b.capacity, MIGCK_SECTORS))
            vfinish();
    }

    SAY("migck start base=0x%lx pages=%lu every_ms=%lu count=%lu blk=%d", base, npages, every_ms,
        count, use_blk);
    u64 *area = phys(base);
    u64 wait = every_ms * vticks_ms(), last = rdtsc(), verified = 0, blk_writes = 0;
    for (u64 k = 0; count == 0 || k < count; k++) {
        u64 wp = k & (npages - 1);
        write_page(area + wp * PAGE_WORDS, k + 1, wp);
        migck_gen[wp] = (u32)(k + 1);

        u64 vp = (k * 7 + 3) & (npages - 1);
        u64 *v = area + vp * PAGE_WORDS;
        long bad = verify_page(v, migck_gen[vp], vp);
        if (bad >= 0) {
            SAY("migck FAIL page %lu want gen %u got 0x%lx (word %ld, iteration %lu)", vp,
                migck_gen[vp], v[bad], bad, k);
            any_failed = true;
            vfinish();
        }
        if (migck_gen[vp])
            verified++;

        /* Unsigned: a TSC that went backwards (a restore) reports at once. */
        u64 now = rdtsc();
        if (now - last < wait)
            continue;
        last = now;
        SAY("migck %lu ok pages=%lu verified=%lu", k + 1, npages, verified);
        /* After the line: a record's k is below every N printed later, and
         * below the last N printed even if the VM stops right after the write. */
        if (use_blk) {
            u64 s = k % MIGCK_SECTORS;
            blk_record(rec, k, s);
            int st = blk_sync(&b, VIRTIO_BLK_T_OUT, s, rec, 512);
            if (st != VIRTIO_BLK_S_OK) {
                SAY("migck FAIL blk write sector %lu k %lu status %d", s, k, st);
                any_failed = true;
                vfinish();
            }
            blk_last[s] = k;
            if (blk_writes++ % 8 == 0)
                SAY("migck blk sector %lu k %lu", s, blk_last[s]);
            /* The next period starts after the write: when a write takes
             * longer than migck_ms (a loaded nested host), the loop must
             * not turn into one write per iteration. */
            last = rdtsc();
        }
    }
    SAY("migck done %lu iterations verified=%lu", count, verified);
    vfinish();
}
