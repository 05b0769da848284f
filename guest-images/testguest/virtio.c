/*
 * virtio.c - virtio-mmio v2 driver core: discovery (command line or ACPI), the
 * status/feature handshake, split-ring queue set-up, chain submission and
 * used-ring polling, plus the RAM pool rings and buffers come from.
 *
 * CPL0 code is interpreted on some hosts (~1 us per instruction), so the
 * hot paths avoid per-byte loops and MMIO reads (each read is an exit).
 */
#include "virtio.h"
#include "acpi.h"

struct vdev vdevs[VDEV_MAX];
int nvdevs;
static bool scanned;

/* 2 MiB of rings and buffers in lazy memory (testguest.ld: after the
 * image, loaded by nobody, never cleared), so boots that never use virtio
 * do not pay for it. The dispatcher checks lazy_ready() first. */
#define VPOOL_SIZE (2u << 20)
static u8 vpool[VPOOL_SIZE] __attribute__((section(".lazy.vpool"), aligned(4096)));
static u64 vpool_used;

void *vpool_alloc(u64 size, u64 align, bool zero)
{
    u64 at = (vpool_used + align - 1) & ~(align - 1);
    if (at > VPOOL_SIZE || size > VPOOL_SIZE - at)
        return NULL;
    vpool_used = at + size;
    if (zero)
        memset(vpool + at, 0, size);
    return vpool + at;
}

u64 vpool_mark(void)
{
    return vpool_used;
}

void vpool_release(u64 mark)
{
    if (mark <= vpool_used)
        vpool_used = mark;
}

u64 vticks_ms(void)
{
    static u64 cached;
    if (!cached) {
        const char *src;
        cached = tsc_khz(&src);
    }
    return cached;
}

/* ---- discovery ---- */

/* Number at *s (decimal or 0x hex), stopping at the first non-digit. */
static bool take_num(const char **s, u64 *out)
{
    const char *p = *s;
    u64 v = 0;
    unsigned base = 10, digits = 0;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        base = 16, p += 2;
    for (;; p++, digits++) {
        unsigned dg;
        if (*p >= '0' && *p <= '9')
            dg = *p - '0';
        else if (base == 16 && (*p | 0x20) >= 'a' && (*p | 0x20) <= 'f')
            dg = (*p | 0x20) - 'a' + 10;
        else
            break;
        v = v * base + dg;
    }
    *s = p;
    *out = v;
    return digits > 0;
}

/* "<size>@<base>:<irq>[:<id>]" with size suffixes K, M, G (as Linux's
 * memparse); the optional platform-device id is ignored. */
static bool parse_token(const char *s, const char *end, struct vdev *d)
{
    u64 size, base, irq;
    if (!take_num(&s, &size))
        return false;
    if (*s == 'K' || *s == 'k')
        size <<= 10, s++;
    else if (*s == 'M' || *s == 'm')
        size <<= 20, s++;
    else if (*s == 'G' || *s == 'g')
        size <<= 30, s++;
    if (*s++ != '@' || !take_num(&s, &base) || *s++ != ':' || !take_num(&s, &irq))
        return false;
    if (s < end && *s != ':')
        return false;
    /* The registers we use end at 0x100; the config space follows. */
    if (size < 0x100 || (base & 3) || base + size < base)
        return false;
    d->base = base;
    d->size = size;
    d->irq = (u32)irq;
    return true;
}

/* Read a window's identification registers and offered features. */
static void vdev_identify(struct vdev *d)
{
    d->magic = vreg_read(d, VIRTIO_MMIO_MAGIC);
    d->version = vreg_read(d, VIRTIO_MMIO_VERSION);
    d->id = vreg_read(d, VIRTIO_MMIO_DEVICE_ID);
    d->vendor = vreg_read(d, VIRTIO_MMIO_VENDOR_ID);
    if (d->magic == VIRTIO_MMIO_MAGIC_VALUE && d->id != 0) {
        vreg_write(d, VIRTIO_MMIO_DEV_FEATURES_SEL, 0);
        d->offered = vreg_read(d, VIRTIO_MMIO_DEV_FEATURES);
        vreg_write(d, VIRTIO_MMIO_DEV_FEATURES_SEL, 1);
        d->offered |= (u64)vreg_read(d, VIRTIO_MMIO_DEV_FEATURES) << 32;
    }
}

int virtio_scan(void)
{
    static const char key[] = "virtio_mmio.device=";
    const size_t klen = sizeof key - 1;
    const char *cl = boot.cmdline;

    if (scanned)
        return nvdevs;
    scanned = true;
    while (*cl) {
        while (*cl == ' ')
            cl++;
        const char *tok = cl;
        while (*cl && *cl != ' ')
            cl++;
        if ((size_t)(cl - tok) <= klen || memcmp(tok, key, klen) != 0)
            continue;
        if (nvdevs == VDEV_MAX) {
            SAY("virtio: more than %d devices, ignoring the rest", VDEV_MAX);
            break;
        }
        struct vdev *d = &vdevs[nvdevs];
        memset(d, 0, sizeof *d);
        if (!parse_token(tok + klen, cl, d)) {
            char t[64];
            size_t n = (size_t)(cl - tok) < sizeof t - 1 ? (size_t)(cl - tok) : sizeof t - 1;
            memcpy(t, tok, n);
            t[n] = 0;
            SAY("virtio: malformed token %s", t);
            continue;
        }
        vdev_identify(d);
        nvdevs++;
    }
    /* No command-line devices: take them from the DSDT, as Linux does. */
    if (nvdevs == 0) {
        struct acpi_mmio_dev a[VDEV_MAX];
        int n = acpi_virtio_devices(a, VDEV_MAX);
        for (int i = 0; i < n; i++) {
            struct vdev *d = &vdevs[nvdevs];
            memset(d, 0, sizeof *d);
            if (a[i].size < 0x100)
                continue;
            d->base = a[i].base;
            d->size = a[i].size;
            d->irq = a[i].gsi;
            vdev_identify(d);
            nvdevs++;
        }
    }
    return nvdevs;
}

struct vdev *virtio_find(u32 id, int nth)
{
    virtio_scan();
    for (int i = 0; i < nvdevs; i++) {
        struct vdev *d = &vdevs[i];
        if (d->magic == VIRTIO_MMIO_MAGIC_VALUE && d->version == 2 && d->id == id && nth-- == 0)
            return d;
    }
    return NULL;
}

const char *virtio_name(u32 id)
{
    static char buf[16];
    switch (id) {
    case 0:
        return "empty";
    case VIRTIO_ID_NET:
        return "net";
    case VIRTIO_ID_BLK:
        return "blk";
    case VIRTIO_ID_CONSOLE:
        return "console";
    case VIRTIO_ID_RNG:
        return "rng";
    case VIRTIO_ID_BALLOON:
        return "balloon";
    }
    sformat(buf, sizeof buf, "id%u", id);
    return buf;
}

/* ---- handshake ---- */

int virtio_begin(struct vdev *d, u64 want)
{
    if (d->magic != VIRTIO_MMIO_MAGIC_VALUE || d->version != 2 || d->id == 0)
        return VE_NODEV;
    vreg_write(d, VIRTIO_MMIO_STATUS, 0);
    if (virtio_status(d) != 0)
        return VE_NODEV; /* reset must read back as 0 (4.2.3.1.1) */
    vreg_write(d, VIRTIO_MMIO_STATUS, VIRTIO_ST_ACKNOWLEDGE);
    vreg_write(d, VIRTIO_MMIO_STATUS, VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER);

    vreg_write(d, VIRTIO_MMIO_DEV_FEATURES_SEL, 0);
    d->offered = vreg_read(d, VIRTIO_MMIO_DEV_FEATURES);
    vreg_write(d, VIRTIO_MMIO_DEV_FEATURES_SEL, 1);
    d->offered |= (u64)vreg_read(d, VIRTIO_MMIO_DEV_FEATURES) << 32;
    if (!(d->offered & VBIT(VIRTIO_F_VERSION_1)))
        return VE_FEATURES;
    d->acked = d->offered & (want | VBIT(VIRTIO_F_VERSION_1));
    vreg_write(d, VIRTIO_MMIO_DRV_FEATURES_SEL, 0);
    vreg_write(d, VIRTIO_MMIO_DRV_FEATURES, (u32)d->acked);
    vreg_write(d, VIRTIO_MMIO_DRV_FEATURES_SEL, 1);
    vreg_write(d, VIRTIO_MMIO_DRV_FEATURES, (u32)(d->acked >> 32));

    u32 st = VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER | VIRTIO_ST_FEATURES_OK;
    vreg_write(d, VIRTIO_MMIO_STATUS, st);
    if (!(virtio_status(d) & VIRTIO_ST_FEATURES_OK))
        return VE_FEATURES;
    return 0;
}

static void write64(const struct vdev *d, u32 lo, u64 v)
{
    vreg_write(d, lo, (u32)v);
    vreg_write(d, lo + 4, (u32)(v >> 32));
}

int vq_setup(struct vdev *d, struct vq *q, u16 index, u16 want)
{
    vreg_write(d, VIRTIO_MMIO_QUEUE_SEL, index);
    if (vreg_read(d, VIRTIO_MMIO_QUEUE_READY) != 0)
        return VE_QUEUE;
    u32 max = vreg_read(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
    if (max == 0)
        return VE_QUEUE;
    u32 size = VQ_MAX_SIZE;
    while (size > want || size > max)
        size >>= 1;
    if (size == 0)
        return VE_QUEUE;

    /* One zeroed page (or more) per ring; 4 KiB covers 256 entries. */
    u64 dsz = 16ull * size, asz = 6 + 2ull * size, usz = 6 + 8ull * size;
    memset(q, 0, sizeof *q);
    q->desc = vpool_alloc(dsz, 4096, true);
    q->avail = vpool_alloc(asz, 4096, true);
    q->used = vpool_alloc(usz, 4096, true);
    if (!q->desc || !q->avail || !q->used)
        return VE_QUEUE;
    q->dev = d;
    q->index = index;
    q->size = (u16)size;
    q->num_free = (u16)size;
    for (u16 i = 0; i < size; i++)
        q->next[i] = (u16)(i + 1);
    /* Polling driver: ask the device not to interrupt (a hint without
     * EVENT_IDX; tests that want interrupts clear it). */
    q->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;

    vreg_write(d, VIRTIO_MMIO_QUEUE_NUM, size);
    write64(d, VIRTIO_MMIO_QUEUE_DESC_LO, (u64)q->desc);
    write64(d, VIRTIO_MMIO_QUEUE_AVAIL_LO, (u64)q->avail);
    write64(d, VIRTIO_MMIO_QUEUE_USED_LO, (u64)q->used);
    vreg_write(d, VIRTIO_MMIO_QUEUE_READY, 1);
    if (vreg_read(d, VIRTIO_MMIO_QUEUE_READY) != 1)
        return VE_QUEUE;
    return 0;
}

int virtio_driver_ok(struct vdev *d)
{
    u32 st = VIRTIO_ST_ACKNOWLEDGE | VIRTIO_ST_DRIVER | VIRTIO_ST_FEATURES_OK | VIRTIO_ST_DRIVER_OK;
    vreg_write(d, VIRTIO_MMIO_STATUS, st);
    u8 got = virtio_status(d);
    if (got != st)
        return VE_STATE;
    return 0;
}

u32 vcfg_read(const struct vdev *d, u32 off, unsigned width)
{
    u64 a = d->base + VIRTIO_MMIO_CONFIG + off;
    if (width == 1)
        return *(volatile u8 *)a;
    if (width == 2)
        return *(volatile u16 *)a;
    return *(volatile u32 *)a;
}

u64 vcfg_read64(const struct vdev *d, u32 off)
{
    for (int tries = 0; tries < 16; tries++) {
        u32 gen = vreg_read(d, VIRTIO_MMIO_CONFIG_GEN);
        u64 v = vcfg_read(d, off, 4) | (u64)vcfg_read(d, off + 4, 4) << 32;
        if (vreg_read(d, VIRTIO_MMIO_CONFIG_GEN) == gen)
            return v;
    }
    return vcfg_read(d, off, 4) | (u64)vcfg_read(d, off + 4, 4) << 32;
}

/* ---- queues ---- */

#define barrier() __asm__ volatile("" ::: "memory")

int vq_add(struct vq *q, const struct vbuf *b, unsigned n)
{
    if (n == 0 || n > q->num_free)
        return VE_NOSPC;
    u16 head = q->free_head, i = head;
    for (unsigned k = 0; k < n; k++) {
        volatile struct vring_desc *dsc = &q->desc[i];
        dsc->addr = b[k].addr;
        dsc->len = b[k].len;
        dsc->flags =
            (u16)((b[k].write ? VRING_DESC_F_WRITE : 0) | (k + 1 < n ? VRING_DESC_F_NEXT : 0));
        dsc->next = q->next[i];
        if (k + 1 < n)
            i = q->next[i];
    }
    q->free_head = q->next[i];
    q->num_free = (u16)(q->num_free - n);
    q->chain_len[head] = (u16)n;
    q->avail->ring[q->avail_idx % q->size] = head;
    /* x86 keeps stores in order; the compiler must too (descriptors and
     * the ring entry before the index). */
    barrier();
    q->avail_idx++;
    q->avail->idx = q->avail_idx;
    return head;
}

void vq_kick(struct vq *q, bool force)
{
    /* The index store must be visible before we read the device's flag
     * (store-load order needs a full fence on x86). */
    __asm__ volatile("mfence" ::: "memory");
    if (force || !(q->used->flags & VRING_USED_F_NO_NOTIFY))
        vreg_write(q->dev, VIRTIO_MMIO_QUEUE_NOTIFY, q->index);
}

int vq_get(struct vq *q, u32 *len)
{
    if (q->used->idx == q->last_used)
        return -1;
    barrier(); /* index before the element (loads are ordered on x86) */
    volatile struct vring_used_elem *e = &q->used->ring[q->last_used % q->size];
    u32 id = e->id, l = e->len;
    q->last_used++;
    if (id >= q->size || q->chain_len[id] == 0)
        return VE_STATE;
    /* Return the chain to the free list through our private links. */
    u16 tail = (u16)id;
    for (u16 k = 1; k < q->chain_len[id]; k++)
        tail = q->next[tail];
    q->next[tail] = q->free_head;
    q->free_head = (u16)id;
    q->num_free = (u16)(q->num_free + q->chain_len[id]);
    q->chain_len[id] = 0;
    if (len)
        *len = l;
    return (int)id;
}

int vq_wait(struct vq *q, u32 *len, u64 ms)
{
    u64 start = rdtsc(), limit = ms * vticks_ms();
    for (u32 spin = 0;; spin++) {
        if (q->irq)
            irq_window(); /* take a pending interrupt before looking */
        int h = vq_get(q, len);
        if (h != -1)
            return h;
        /* A status read is an exit: only every 256 polls (every wake-up
         * when sleeping). */
        if ((q->irq || (spin & 255) == 255) && (virtio_status(q->dev) & VIRTIO_ST_NEEDS_RESET))
            return VE_RESET;
        if (rdtsc() - start > limit)
            return (virtio_status(q->dev) & VIRTIO_ST_NEEDS_RESET) ? VE_RESET : VE_TIMEOUT;
        if (q->irq)
            irq_wait(); /* the LAPIC tick bounds the sleep */
        else
            cpu_relax();
    }
}

static void virtio_isr(void *arg)
{
    struct vdev *d = arg;
    d->isr_seen |= virtio_ack_irq(d);
    d->irqs++;
}

int vq_use_irq(struct vq *q)
{
    struct vdev *d = q->dev;
    if (!d->vector) {
        int v = irq_route_gsi(d->irq, virtio_isr, d);
        if (v < 0)
            return VE_NODEV;
        d->vector = v;
    }
    q->avail->flags = 0;
    q->irq = true;
    return 0;
}

u32 virtio_irq_settle(struct vdev *d, u64 ms)
{
    u64 start = rdtsc(), limit = ms * vticks_ms();
    irq_window();
    while (!d->irqs && rdtsc() - start < limit)
        irq_wait(); /* the LAPIC tick bounds the sleep */
    return d->irqs;
}

u32 virtio_ack_irq(const struct vdev *d)
{
    u32 st = vreg_read(d, VIRTIO_MMIO_INT_STATUS);
    if (st)
        vreg_write(d, VIRTIO_MMIO_INT_ACK, st);
    return st;
}
