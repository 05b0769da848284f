/*
 * vballoon.c - test=balloon: a minimal virtio-balloon driver (virtio 1.2
 * section 5.5, no optional features) that follows the host's target.
 *
 * Why: the host side (devices/virtio/balloon.c, PATCH /balloon) is checked
 * end to end on KVM with a guest whose every step is visible: it polls
 * num_pages, inflates or deflates pages of its own buffer 64 at a time,
 * writes `actual` back and says "balloon actual=N".  Pages are filled with
 * a pattern before they are given up; after a deflate they must read zero
 * (the host punched them out of guest RAM).  The test ends with PASS once
 * the target went up and came back to 0 and every page was returned.
 *
 * With balloon_hostile=1 the driver attacks the device instead: PFNs
 * outside RAM (in the MMIO hole, past the end, 0xffffffff), a PFN array of
 * odd length and one larger than the device reads (128 KiB); the device
 * must complete each request, never set DEVICE_NEEDS_RESET, and still give
 * back a real page afterwards.
 */
#include "vdrivers.h"

#define BALLOON_PAGES     512 /* 2 MiB of our own pages, the most we give up */
#define BALLOON_BATCH     64  /* PFNs per request */
#define BALLOON_WAIT_MS   60000
#define BALLOON_LINGER_MS 3000
#define BALLOON_CFG_NUM   (VIRTIO_MMIO_CONFIG + 0)
#define BALLOON_CFG_ACT   (VIRTIO_MMIO_CONFIG + 4)

static u8 pages[BALLOON_PAGES][4096] __attribute__((section(".lazy.balloon"), aligned(4096)));

/* Send pages[from, to) on queue q (0 inflate, 1 deflate); false on error. */
static bool send_pfns(struct vq *q, u32 *pfns, u32 from, u32 to)
{
    for (u32 i = from; i < to; i += BALLOON_BATCH) {
        u32 n = to - i < BALLOON_BATCH ? to - i : BALLOON_BATCH;
        for (u32 k = 0; k < n; k++)
            pfns[k] = (u32)((u64)pages[i + k] >> 12);
        struct vbuf v = {(u64)pfns, n * 4, false};
        u32 len;
        if (vq_add(q, &v, 1) < 0)
            return false;
        vq_kick(q, false);
        if (vq_wait(q, &len, VREQ_TIMEOUT_MS) < 0)
            return false;
    }
    return true;
}

/* One raw inflate request of `len` bytes at `buf`; true if it completed. */
static bool inflate_raw(struct vq *q, void *buf, u32 len)
{
    struct vbuf v = {(u64)buf, len, false};
    u32 used;
    if (vq_add(q, &v, 1) < 0)
        return false;
    vq_kick(q, false);
    return vq_wait(q, &used, VREQ_TIMEOUT_MS) >= 0;
}

static void balloon_hostile(struct vdev *d, struct vq *inflq, struct vq *deflq)
{
    u32 *bad = vpool_alloc(64, 16, true);
    bad[0] = 0xffffffffu;
    bad[1] = 0xd0000000u >> 12; /* the virtio-mmio windows */
    bad[2] = 0x00100000u;       /* 4 GiB: past the end of a small guest */
    bad[3] = 0xfee00000u >> 12; /* the local APIC */
    check("balloon_hostile_pfns", inflate_raw(inflq, bad, 16) && inflate_raw(deflq, bad, 16),
          "PFNs outside RAM not completed");
    check("balloon_hostile_odd", inflate_raw(inflq, bad, 6), "odd length not completed");
    u32 big_len = 128 * 1024;
    u8 *big = vpool_alloc(big_len, 4096, true); /* 32768 x PFN 0 */
    check("balloon_hostile_huge", inflate_raw(inflq, big, big_len), "128 KiB array not completed");
    check("balloon_hostile_no_reset", !(virtio_status(d) & 0x40), "status=0x%x", virtio_status(d));
    /* The device still works: one page out and back, zero afterwards. */
    u32 *pfns = vpool_alloc(BALLOON_BATCH * 4, 16, true);
    memset(pages[0], 0x5a, sizeof pages[0]);
    bool ok = send_pfns(inflq, pfns, 0, 1) && send_pfns(deflq, pfns, 0, 1);
    check("balloon_hostile_still_works", ok && pages[0][0] == 0 && pages[0][4095] == 0,
          "ok=%d byte0=0x%x", ok, pages[0][0]);
}

void test_balloon(void)
{
    static struct vq inflq LAZY, deflq LAZY;
    struct vdev *d = virtio_find(VIRTIO_ID_BALLOON, 0);
    if (!check("balloon_present", d != 0, "no virtio-balloon device"))
        return;
    int rc = virtio_begin(d, 0);
    if (rc == 0)
        rc = vq_setup(d, &inflq, 0, 16);
    if (rc == 0)
        rc = vq_setup(d, &deflq, 1, 16);
    if (rc == 0)
        rc = virtio_driver_ok(d);
    if (!check("balloon_init", rc == 0, "rc=%d status=0x%x", rc, virtio_status(d)))
        return;
    if (opt_u64("balloon_hostile", 0)) {
        balloon_hostile(d, &inflq, &deflq);
        return;
    }
    u32 *pfns = vpool_alloc(BALLOON_BATCH * 4, 16, true);
    u32 actual = 0, peak = 0, dirty_after_deflate = 0;
    bool ok = true;
    /* vticks_ms() is TSC ticks per millisecond. */
    u64 start = rdtsc(), limit = BALLOON_WAIT_MS * vticks_ms();
    while (ok && rdtsc() - start < limit) {
        u32 target = vcfg_read(d, 0, 4);
        if (target > BALLOON_PAGES)
            target = BALLOON_PAGES;
        if (target > actual) {
            for (u32 i = actual; i < target; i++)
                memset(pages[i], 0xa5, sizeof pages[i]);
            ok = send_pfns(&inflq, pfns, actual, target);
        } else if (target < actual) {
            ok = send_pfns(&deflq, pfns, target, actual);
            /* Given back on inflate: the host's hole reads as zero. */
            for (u32 i = target; ok && i < actual; i++)
                dirty_after_deflate += pages[i][0] != 0 || pages[i][4095] != 0;
        } else {
            if (peak > 0 && actual == 0) {
                /* Stay a moment so the host can read actual = 0. */
                for (u64 t0 = rdtsc(); rdtsc() - t0 < BALLOON_LINGER_MS * vticks_ms();)
                    ;
                break;
            }
            continue;
        }
        actual = target;
        peak = actual > peak ? actual : peak;
        vreg_write(d, BALLOON_CFG_ACT, actual);
        SAY("balloon actual=%u", actual);
    }
    check("balloon_requests", ok, "a request failed");
    check("balloon_followed", peak > 0 && actual == 0, "peak=%u actual=%u", peak, actual);
    check("balloon_pages_zeroed", dirty_after_deflate == 0, "%u deflated pages kept data",
          dirty_after_deflate);
}
