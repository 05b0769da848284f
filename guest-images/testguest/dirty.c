/*
 * dirty.c - test=dirty: a guest that dirties memory at a set rate while it
 * ticks, for the live-migration benchmark (bench/bench_migrate.py).
 *
 *   dirty_mb=N            size of the area it writes (MiB, default 64)
 *   dirty_pages_per_s=N   pages written per second (default 5000; 0: none)
 *   tick_ms=N             "wisp-guest: tick N" every N ms (default 1)
 *   tick_count=N          stop (PASS) after N ticks (default 0: never)
 *   dirty_passes=N        stop writing after N passes over the area, keep
 *                         ticking (default 0: never stop); "dirty: pass N
 *                         done" is printed after each pass when it is set
 *
 * The area starts at 64 MiB (or at the first 2 MiB boundary after the
 * image's lazy memory, if that is higher) and must lie in one RAM range of
 * the memory map; if the range ends sooner the area is shortened, and the
 * guest says so. Pages are written in order, one 8-byte word each (so every
 * page holds a non-zero value and a VMM cannot skip it as a zero page),
 * each page once per pass, paced by the TSC. If the guest falls behind
 * (it was paused, e.g. for the stop-and-copy phase of a migration), at most
 * 10 ms of backlog is caught up, so a pause does not turn into a burst.
 */
#include "guest.h"
#include "boot.h"

#define DIRTY_BASE ((u64)64 << 20)
#define PAGE       ((u64)4096)

/* Start and length of the area: [*base, *base + *len), or false. */
static bool dirty_area(u64 want, u64 *base, u64 *len)
{
    u64 b = DIRTY_BASE, lazy_end = ((u64)__lazy_end + ((u64)2 << 20) - 1) & ~(((u64)2 << 20) - 1);
    if (lazy_end > b)
        b = lazy_end;
    for (u32 i = 0; i < boot.nr_map; i++) {
        u64 a = boot.map[i].addr, end = a + boot.map[i].size;
        if (boot.map[i].type != E820_RAM || b < a || b >= end)
            continue;
        u64 n = want;
        if (b + n > end)
            n = (end - b) & ~(PAGE - 1);
        if (boot.have_initrd && boot.initrd_addr < b + n && b < boot.initrd_addr + boot.initrd_size)
            return false;
        if (n == 0)
            return false;
        /* The identity map covers 4 GiB (pvh32.S). */
        if (b + n > ((u64)4 << 30))
            n = ((u64)4 << 30) - b;
        *base = b;
        *len = n;
        return true;
    }
    return false;
}

static u64 arg_u64(const char *key, u64 dflt)
{
    char v[24];
    u64 n;
    if (cmdline_get(boot.cmdline, key, v, sizeof v) && parse_u64(v, &n))
        return n;
    return dflt;
}

static inline bool reached(u64 now, u64 when)
{
    return (int64_t)(now - when) >= 0;
}

__attribute__((noreturn)) void test_dirty(void)
{
    u64 mb = arg_u64("dirty_mb", 64), rate = arg_u64("dirty_pages_per_s", 5000);
    u64 every = arg_u64("tick_ms", 1), count = arg_u64("tick_count", 0);
    u64 passes = arg_u64("dirty_passes", 0);
    if (every == 0)
        every = 1;
    u64 base, len;
    if (!dirty_area(mb << 20, &base, &len)) {
        SAY("dirty: no RAM for the area at 0x%lx (see the memory map: test=report)", DIRTY_BASE);
        SAY("RESULT FAIL");
        guest_exit(GUEST_FAIL);
    }
    if (len < (mb << 20))
        SAY("dirty: area shortened to %lu KiB (RAM ends there)", len >> 10);
    const char *src;
    u64 khz = tsc_khz(&src);
    u64 pages = len / PAGE;
    u64 tick_ticks = khz * every;
    /* TSC ticks per page (khz * 1000 / rate), kept in 1/1024 ticks so that
     * high rates keep their precision. */
    u64 page_step = rate ? (khz * 1000 * 1024) / rate : 0;
    u64 backlog = khz * 10;
    SAY("dirty: area 0x%lx-0x%lx (%lu pages), %lu pages/s, tick every %lu ms, tsc_khz=%lu (%s)",
        base, base + len, pages, rate, every, khz, src);

    u64 t0 = rdtsc(), now = t0;
    u64 next_tick = now, next_page_f = 0; /* since t0, in 1/1024 ticks */
    u64 page = 0, pass = 1, done = 0, tick = 0;
    volatile u64 *area = phys(base);
    for (;;) {
        now = rdtsc();
        if (reached(now, next_tick)) {
            SAY("tick %lu", tick);
            tick++;
            if (count && tick >= count)
                break;
            next_tick += tick_ticks;
            if (reached(now, next_tick + backlog))
                next_tick = now + tick_ticks;
        }
        if (page_step) {
            u64 now_f = (now - t0) * 1024;
            if (reached(now_f, next_page_f + backlog * 1024))
                next_page_f = now_f - backlog * 1024;
            while (reached(now_f, next_page_f)) {
                area[page * (PAGE / 8)] = pass;
                next_page_f += page_step;
                if (++page < pages)
                    continue;
                page = 0;
                done = pass;
                if (passes) {
                    SAY("dirty: pass %lu done", pass);
                    if (pass == passes) {
                        page_step = 0;
                        break;
                    }
                }
                pass++;
            }
        }
        cpu_relax();
    }
    SAY("dirty: %lu passes over the area", done);
    SAY("RESULT PASS");
    guest_exit(GUEST_PASS);
}
