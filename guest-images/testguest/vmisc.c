/*
 * vmisc.c - the small virtio tests (virtio-list, rng, console), the
 * combined virtio-all run, and the dispatcher main.c calls for every
 * virtio-related test name.
 */
#include "vdrivers.h"

void vfinish(void)
{
    SAY("RESULT %s", any_failed ? "FAIL" : "PASS");
    guest_exit(any_failed ? GUEST_FAIL : GUEST_PASS);
}

u64 opt_u64(const char *key, u64 def)
{
    char v[32];
    u64 n;
    if (cmdline_get(boot.cmdline, key, v, sizeof v) && parse_u64(v, &n))
        return n;
    return def;
}

bool opt_is(const char *key, const char *val)
{
    char v[32];
    return cmdline_get(boot.cmdline, key, v, sizeof v) && streq(v, val);
}

/* ---- virtio-list ---- */

static void test_list(void)
{
    int n = virtio_scan(), used = 0;
    SAY("virtio devices=%d", n);
    for (int i = 0; i < n; i++) {
        const struct vdev *d = &vdevs[i];
        bool magic = d->magic == VIRTIO_MMIO_MAGIC_VALUE;
        SAY("virtio %d base=0x%lx size=0x%lx irq=%u magic=%s version=%u id=%u (%s) "
            "vendor=0x%x features=0x%lx",
            i, d->base, d->size, d->irq, magic ? "ok" : "bad", d->version, d->id,
            virtio_name(d->id), d->vendor, d->offered);
        if (!magic || d->id == 0)
            continue;
        used++;
        if (!check("virtio_version", d->version == 2, "device %d version=%u", i, d->version))
            SAY("virtio: legacy (v1) devices are not supported; QEMU needs "
                "-global virtio-mmio.force-legacy=false");
        check("virtio_version_1", d->offered & VBIT(VIRTIO_F_VERSION_1), "device %d features=0x%lx",
              i, d->offered);
    }
    check("virtio_devices", used > 0, "%d of %d windows hold a device", used, n);
}

/* ---- rng ---- */

int rng_open(struct rngdev *r, struct vdev *d)
{
    int rc;
    memset(r, 0, sizeof *r);
    r->d = d;
    if ((rc = virtio_begin(d, 0)) < 0 || (rc = vq_setup(d, &r->q, 0, 16)) < 0)
        return rc;
    return virtio_driver_ok(d);
}

int rng_read(struct rngdev *r, void *buf, u32 len)
{
    u32 got = 0;
    /* The device may return fewer bytes than asked: keep asking. */
    for (int req = 0; got < len && req < 1024; req++) {
        struct vbuf v = {(u64)buf + got, len - got, true};
        u32 n = 0;
        int h = vq_add(&r->q, &v, 1);
        if (h < 0)
            return h;
        vq_kick(&r->q, false);
        h = vq_wait(&r->q, &n, VREQ_TIMEOUT_MS);
        if (h < 0)
            return h;
        got += n < len - got ? n : len - got;
    }
    return (int)got;
}

void test_rng(void)
{
    static struct rngdev r LAZY;
    /* rng_nth=N picks the Nth rng device (tests of the last interrupt lines). */
    struct vdev *d = virtio_find(VIRTIO_ID_RNG, (int)opt_u64("rng_nth", 0));
    if (!d) {
        check("rng_present", false, "no such virtio-rng device");
        return;
    }
    int rc = rng_open(&r, d);
    if (!check("rng_init", rc == 0, "rc=%d status=0x%x", rc, virtio_status(d)))
        return;
    bool irq = opt_u64("virtio_irq", 0) != 0;
    if (irq)
        check("rng_irq_route", vq_use_irq(&r.q) == 0, "gsi=%u", d->irq);
    u64 *buf = vpool_alloc(4096, 4096, true);
    rc = rng_read(&r, buf, 4096);
    /* Word compares: 512 steps instead of 4096 (interpreted CPL0). */
    u64 same = 0x0101010101010101ull * (u8)buf[0];
    bool all_zero = true, all_same = true;
    for (int i = 0; i < 512; i++) {
        all_zero &= buf[i] == 0;
        all_same &= buf[i] == same;
    }
    SAY("rng base=0x%lx irq=%u got=%d first=0x%016lx", d->base, d->irq, rc, buf[0]);
    check("rng_read", rc == 4096, "got=%d of 4096", rc);
    check("rng_not_zero", !all_zero, "first=0x%lx", buf[0]);
    check("rng_not_constant", !all_same, "byte0=0x%02x", (u8)buf[0]);
    if (irq)
        check("rng_irq", virtio_irq_settle(d, 1000) > 0 && (d->isr_seen & 1),
              "irqs=%u interrupt_status_seen=0x%x", d->irqs, d->isr_seen);
}

/* ---- console ---- */

#define CON_RXBUFS      4
#define CON_RXLEN       64
#define HELLO_REPEAT_MS 500

void test_console(void)
{
    static struct vq rxq LAZY, txq LAZY;
    struct vdev *d = virtio_find(VIRTIO_ID_CONSOLE, 0);
    if (!d) {
        check("console_present", false, "no virtio-console device on the command line");
        return;
    }
    /* No MULTIPORT: port 0 on queues 0/1 is the console (5.3.6). */
    int rc = virtio_begin(d, 0);
    if (rc == 0)
        rc = vq_setup(d, &rxq, VIRTIO_CONSOLE_RXQ, 16);
    if (rc == 0)
        rc = vq_setup(d, &txq, VIRTIO_CONSOLE_TXQ, 16);
    if (rc == 0)
        rc = virtio_driver_ok(d);
    if (!check("console_init", rc == 0, "rc=%d status=0x%x", rc, virtio_status(d)))
        return;

    u8 *rx = vpool_alloc(CON_RXBUFS * CON_RXLEN, 64, false);
    int head_buf[VQ_MAX_SIZE];
    for (int i = 0; i < CON_RXBUFS; i++) {
        struct vbuf v = {(u64)(rx + i * CON_RXLEN), CON_RXLEN, true};
        int nh = vq_add(&rxq, &v, 1);
        if (nh >= 0)
            head_buf[nh] = i;
    }
    vq_kick(&rxq, false);

    static const char hello[] = "wisp-guest: console hello\n";
    char *tx = vpool_alloc(sizeof hello, 64, false);
    memcpy(tx, hello, sizeof hello - 1);
    struct vbuf tv = {(u64)tx, sizeof hello - 1, false};
    vq_add(&txq, &tv, 1);
    vq_kick(&txq, false);
    int h = vq_wait(&txq, NULL, VREQ_TIMEOUT_MS);
    check("console_tx", h >= 0, "%d bytes, rc=%d", (int)sizeof hello - 1, h);
    SAY("console ready");

    char line[201];
    u32 n = 0, hellos = 1;
    bool done = false, got_any = false, tx_busy = false;
    u64 ms = opt_u64("console_wait_ms", 60000);
    u64 start = rdtsc(), limit = ms * vticks_ms(), last_hello = start;
    u64 every = HELLO_REPEAT_MS * vticks_ms();
    while (!done) {
        u32 len = 0;
        h = vq_get(&rxq, &len);
        if (h == -1) {
            u64 now = rdtsc();
            if (now - start > limit)
                break;
            /* A host end that connects late (or drops output while nobody
             * is connected) must still see the hello: repeat it until the
             * first byte arrives. */
            if (tx_busy && vq_get(&txq, NULL) >= 0)
                tx_busy = false;
            if (!got_any && !tx_busy && now - last_hello > every) {
                vq_add(&txq, &tv, 1);
                vq_kick(&txq, false);
                tx_busy = true;
                hellos++;
                last_hello = now;
            }
            cpu_relax();
            continue;
        }
        got_any = true;
        if (h < 0)
            break;
        const u8 *b = rx + head_buf[h] * CON_RXLEN;
        for (u32 i = 0; i < len && i < CON_RXLEN && !done; i++) {
            char c = (char)b[i];
            if (c == '\n' || n == sizeof line - 1)
                done = true;
            else if (c != '\r')
                line[n++] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
        }
        struct vbuf v = {(u64)b, CON_RXLEN, true};
        int nh = vq_add(&rxq, &v, 1);
        if (nh >= 0)
            head_buf[nh] = (int)(b - rx) / CON_RXLEN;
        vq_kick(&rxq, false);
    }
    line[n] = 0;
    SAY("console hello sent %u times", hellos);
    SAY("console got %s", line);
    check("console_rx", done, "%u bytes%s", n, done ? "" : " (no newline before timeout)");
}

/* ---- dispatcher ---- */

static bool prefix(const char *s, const char *p)
{
    while (*p)
        if (*s++ != *p++)
            return false;
    return true;
}

/* Every name this dispatcher knows, so lazy memory is checked only for them. */
static bool is_virtio_test(const char *name)
{
    static const char *const names[] = {"virtio-list", "blk",       "net",       "rng",  "console",
                                        "virtio-all",  "bench-blk", "bench-net", "cpl3", "balloon"};
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (streq(name, names[i]))
            return true;
    return prefix(name, "hostile-");
}

void virtio_tests(const char *name)
{
    if (!is_virtio_test(name))
        return;
    /* Rings, buffers, ring-3 stacks and device state live in lazy memory. */
    if (!check("lazy_memory", lazy_ready(), "0x%lx-0x%lx", (u64)__lazy_start, (u64)__lazy_end))
        vfinish();
    if (streq(name, "virtio-list")) {
        test_list();
    } else if (streq(name, "blk")) {
        test_blk();
    } else if (streq(name, "net")) {
        test_net();
    } else if (streq(name, "rng")) {
        test_rng();
    } else if (streq(name, "console")) {
        test_console();
    } else if (streq(name, "balloon")) {
        test_balloon();
    } else if (streq(name, "virtio-all")) {
        test_blk();
        if (virtio_find(VIRTIO_ID_NET, 0))
            test_net();
        else
            SAY("virtio-all: net skipped (no device)");
        test_rng();
        test_console();
    } else if (streq(name, "bench-blk")) {
        test_bench_blk();
    } else if (streq(name, "bench-net")) {
        test_bench_net();
    } else if (streq(name, "cpl3")) {
        test_cpl3_probe();
    } else if (prefix(name, "hostile-")) {
        test_hostile(name + 8);
    } else {
        return;
    }
    vfinish();
}
