/*
 * virtio-console device model (see console.h for the behaviour).
 *
 * Why: a serial UART costs a VM exit per byte; virtio-console moves whole
 * buffers per notification and gives the guest a second, fast console
 * (hvc0) that can be attached to a socket independently of the UART.
 *
 * Buffers.  Two byte rings decouple the guest from the backend: `tx` holds
 * output taken from completed chains until the backend is writable, `rx`
 * holds input read from the backend until the guest posts receive chains.
 * Both are fixed-size and allocated at creation; nothing the guest or the
 * peer does grows host memory.  The backend is woken for input only while
 * `rx` has room and for output only while `tx` holds bytes.
 */
#include "devices/virtio/console.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "migration/virtio_state.h"
#include "vmm/log.h"

#define STATE_VERSION 1
#define LIVE_BLOCKERS (VIRTIO_STATUS_FAILED | VIRTIO_STATUS_DEVICE_NEEDS_RESET)
/* virtq_pop() cap per chain: more than any console write; bytes beyond the
 * buffer room are dropped anyway, so this only bounds the walk. */
#define CHAIN_MAX (1ULL * MiB)

_Static_assert(12 + 4 + VIRTIO_CONSOLE_TX_BUF + 4 + VIRTIO_CONSOLE_RX_BUF <=
                   VIRTIO_STATE_MAX_DEV_BLOB,
               "the console state fits the device blob of the virtio state format");

/* A byte ring of fixed capacity. */
struct cbuf {
    uint8_t *buf;
    size_t cap, head, len;
};

struct virtio_console {
    struct virtio_dev vdev; /* first: the ops get &vdev */
    struct chardev *cd;
    int kick_efd; /* written to reschedule ourselves on the main loop */
    bool kick_registered, cd_registered;
    struct cbuf tx, rx;
    struct virtq_chain chain;
    struct virtio_console_stats stats;
};

static struct virtio_console *to_con(struct virtio_dev *d)
{
    return (struct virtio_console *)d;
}

/* Contiguous bytes readable at the head. */
static size_t cbuf_rseg(const struct cbuf *b, uint8_t **p)
{
    *p = b->buf + b->head;
    return MIN(b->len, b->cap - b->head);
}

/* Contiguous free space after the tail. */
static size_t cbuf_wseg(const struct cbuf *b, uint8_t **p)
{
    size_t tail = (b->head + b->len) % b->cap;
    *p = b->buf + tail;
    return MIN(b->cap - b->len, b->cap - tail);
}

static void cbuf_consume(struct cbuf *b, size_t n)
{
    b->head = (b->head + n) % b->cap;
    b->len -= n;
    if (b->len == 0)
        b->head = 0;
}

static bool queue_usable(const struct virtio_dev *d, uint16_t q)
{
    return (d->status & VIRTIO_STATUS_DRIVER_OK) && !(d->status & LIVE_BLOCKERS) &&
           d->vq[q].active && !d->vq[q].broken;
}

static void kick_self(struct virtio_console *v)
{
    uint64_t one = 1;
    ssize_t r __unused = write(v->kick_efd, &one, sizeof(one));
}

static void update_interest(struct virtio_console *v)
{
    chardev_set_interest(v->cd, v->rx.len<v->rx.cap, v->tx.len> 0);
}

/* Write buffered output until the backend stops taking it. */
static void flush(struct virtio_console *v)
{
    /* With no client, output waits in the buffer (boot messages are kept for
     * whoever connects first); only overflow is dropped. */
    while (v->tx.len && chardev_connected(v->cd)) {
        uint8_t *p;
        size_t seg = cbuf_rseg(&v->tx, &p);
        ssize_t r = chardev_write(v->cd, p, seg);
        if (r > 0) {
            cbuf_consume(&v->tx, (size_t)r);
            v->stats.tx_bytes += (uint64_t)r;
            METRICS_ADD(v->vdev.metrics, bytes_written, (uint64_t)r);
            continue;
        }
        if (r == -EPIPE) {
            /* The peer left: its pending output goes with it. */
            v->stats.tx_dropped += v->tx.len;
            METRICS_ADD(v->vdev.metrics, drops, v->tx.len);
            v->tx.len = v->tx.head = 0;
        }
        break;
    }
    update_interest(v);
}

/* Take a TX chain's bytes into the buffer (kept until a client reads them); overflow is dropped. */
static void tx_take(struct virtio_console *v, const struct virtq_chain *c)
{
    uint64_t off = 0, left = c->out_len;
    if (v->tx.len)
        flush(v); /* make room first */
    while (left) {
        uint8_t *p;
        size_t seg = cbuf_wseg(&v->tx, &p);
        size_t k = seg ? virtq_chain_read(c, off, p, (size_t)MIN((uint64_t)seg, left)) : 0;
        if (k == 0)
            break;
        v->tx.len += k;
        off += k;
        left -= k;
    }
    v->stats.tx_dropped += left;
    METRICS_ADD(v->vdev.metrics, drops, left);
}

static void tx_process(struct virtio_console *v)
{
    struct virtio_dev *d = &v->vdev;
    struct virtq *q = &d->vq[VIRTIO_CONSOLE_TXQ];
    unsigned n = 0;
    bool pushed = false;

    if (!queue_usable(d, VIRTIO_CONSOLE_TXQ))
        return;
    for (;;) {
        virtq_set_notification(q, false);
        while (n < VIRTIO_CONSOLE_BUDGET) {
            int r = virtq_pop(q, &v->chain, CHAIN_MAX);
            if (r == 0)
                break;
            if (r > 0) {
                tx_take(v, &v->chain);
            } else if (r == -E2BIG) {
                v->stats.bad_chains++;
                METRICS_ADD(v->vdev.metrics, errors, 1);
                v->stats.tx_dropped += v->chain.out_len;
                METRICS_ADD(v->vdev.metrics, drops, v->chain.out_len);
            } else {
                virtio_dev_fail(d, "malformed transmit queue");
                goto out;
            }
            virtq_push(q, v->chain.head, 0);
            pushed = true;
            n++;
        }
        if (n >= VIRTIO_CONSOLE_BUDGET) {
            kick_self(v);
            break;
        }
        virtq_set_notification(q, true);
        if (!virtq_has_avail(q))
            break;
    }
out:
    flush(v);
    if (pushed)
        virtio_dev_signal(d, VIRTIO_CONSOLE_TXQ);
}

/* Read host input while the buffer has room. */
static void rx_fill(struct virtio_console *v)
{
    while (v->rx.len < v->rx.cap) {
        uint8_t *p;
        size_t seg = cbuf_wseg(&v->rx, &p);
        ssize_t r = chardev_read(v->cd, p, seg);
        if (r <= 0)
            break;
        v->rx.len += (size_t)r;
    }
}

/* Copy buffered input into one receive chain; returns the bytes written. */
static uint32_t rx_put(struct virtio_console *v, const struct virtq_chain *c)
{
    uint64_t done = 0;
    while (done < c->in_len && v->rx.len) {
        uint8_t *p;
        size_t seg = cbuf_rseg(&v->rx, &p);
        size_t k = virtq_chain_write(c, done, p, (size_t)MIN((uint64_t)seg, c->in_len - done));
        if (k == 0)
            break;
        cbuf_consume(&v->rx, k);
        done += k;
    }
    return (uint32_t)done;
}

static void rx_process(struct virtio_console *v)
{
    struct virtio_dev *d = &v->vdev;
    struct virtq *q = &d->vq[VIRTIO_CONSOLE_RXQ];
    unsigned n = 0;
    bool pushed = false;

    rx_fill(v);
    while (queue_usable(d, VIRTIO_CONSOLE_RXQ) && v->rx.len && n < VIRTIO_CONSOLE_BUDGET) {
        int r = virtq_pop(q, &v->chain, CHAIN_MAX);
        if (r == 0) {
            /* No buffers: ask for a kick, unless some arrived meanwhile.  An
             * empty pop counts against the budget like a delivered chain: a
             * driver moving avail.idx back and forth from another vCPU can make
             * virtq_has_avail() and virtq_pop() disagree every time. */
            v->stats.rx_empty_pops++;
            virtq_set_notification(q, true);
            if (!virtq_has_avail(q))
                break;
            n++;
            continue;
        }
        if (r < 0 && r != -E2BIG) {
            virtio_dev_fail(d, "malformed receive queue");
            break;
        }
        uint32_t written = r > 0 ? rx_put(v, &v->chain) : 0;
        if (written == 0) {
            v->stats.bad_chains++;
            METRICS_ADD(v->vdev.metrics, errors, 1);
        }
        v->stats.rx_bytes += written;
        METRICS_ADD(v->vdev.metrics, bytes_read, written);
        virtq_push(q, v->chain.head, written);
        pushed = true;
        n++;
        if (v->rx.len == 0)
            rx_fill(v);
    }
    if (n >= VIRTIO_CONSOLE_BUDGET && v->rx.len)
        kick_self(v);
    update_interest(v);
    if (pushed)
        virtio_dev_signal(d, VIRTIO_CONSOLE_RXQ);
}

/* Main loop: the backend has news. */
static void console_backend_event(void *opaque, uint32_t events)
{
    struct virtio_console *v = opaque;
    (void)events;
    pthread_mutex_lock(&v->vdev.lock);
    unsigned ev = chardev_poll(v->cd);
    if (ev & CHARDEV_EV_UP) {
        v->stats.connects++;
        log_info("virtio %s: console client connected", v->vdev.id);
    }
    if ((ev & CHARDEV_EV_DOWN) && !chardev_connected(v->cd)) {
        v->stats.tx_dropped += v->tx.len;
        METRICS_ADD(v->vdev.metrics, drops, v->tx.len);
        v->tx.len = v->tx.head = 0;
    }
    if (ev & (CHARDEV_EV_OUT | CHARDEV_EV_DOWN | CHARDEV_EV_UP))
        flush(v);
    if (ev & (CHARDEV_EV_IN | CHARDEV_EV_UP))
        rx_process(v);
    pthread_mutex_unlock(&v->vdev.lock);
}

/* Main loop: our eventfd (activation, or a budget ran out). */
static void console_kick_event(void *opaque, uint32_t events)
{
    struct virtio_console *v = opaque;
    uint64_t x;
    (void)events;
    ssize_t r __unused = read(v->kick_efd, &x, sizeof(x));
    pthread_mutex_lock(&v->vdev.lock);
    tx_process(v);
    rx_process(v);
    pthread_mutex_unlock(&v->vdev.lock);
}

static void console_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
    uint8_t cfg[VIRTIO_CONSOLE_CFG_SIZE] = {0};
    (void)d;
    le32_put(cfg + 4, 1); /* max_nr_ports: one port */
    if (off <= sizeof(cfg) && len <= sizeof(cfg) - off)
        memcpy(data, cfg + off, len);
}

static int console_activate(struct virtio_dev *d)
{
    /* Deliver input that arrived before DRIVER_OK, from the main loop. */
    kick_self(to_con(d));
    return 0;
}

static void console_queue_notify(struct virtio_dev *d, uint16_t q)
{
    if (q == VIRTIO_CONSOLE_TXQ)
        tx_process(to_con(d));
    else if (q == VIRTIO_CONSOLE_RXQ)
        rx_process(to_con(d));
}

/*
 * Nothing is in flight: chains are completed as soon as they are popped.
 * The two buffers hold host-side bytes, not device state, and are kept:
 * Linux resets the device when its driver binds, and input typed during
 * boot must still reach the guest afterwards.
 */
static void console_reset(struct virtio_dev *d)
{
    /* Nothing to do, and nothing a vCPU thread's seccomp filter would
     * refuse: a pending self-kick finds a device that is not live. */
    (void)d;
}

static int console_save(struct virtio_dev *d, struct vstate_out *out)
{
    struct virtio_console *v = to_con(d);
    const struct cbuf *bufs[2] = {&v->tx, &v->rx};
    vstate_begin(out, "virtio-console", STATE_VERSION);
    for (unsigned i = 0; i < 2; i++) {
        const struct cbuf *b = bufs[i];
        size_t first = MIN(b->len, b->cap - b->head);
        vstate_put_u32(out, (uint32_t)b->len);
        vstate_put_bytes(out, b->buf + b->head, first);
        vstate_put_bytes(out, b->buf, b->len - first);
    }
    return vstate_end(out);
}

static int console_load(struct virtio_dev *d, struct vstate_in *in)
{
    struct virtio_console *v = to_con(d);
    uint16_t version;
    uint8_t *tmp[2] = {NULL, NULL};
    uint32_t len[2] = {0, 0};
    const size_t cap[2] = {VIRTIO_CONSOLE_TX_BUF, VIRTIO_CONSOLE_RX_BUF};
    int ret = vstate_enter(in, "virtio-console", STATE_VERSION, STATE_VERSION, &version);
    for (unsigned i = 0; ret == 0 && i < 2; i++) {
        len[i] = vstate_get_u32(in);
        if (in->err)
            ret = in->err;
        else if (len[i] > cap[i])
            ret = -EINVAL;
        else if (len[i] && !(tmp[i] = malloc(len[i])))
            ret = -ENOMEM;
        else if (len[i])
            vstate_get_bytes(in, tmp[i], len[i]);
    }
    if (ret == 0)
        ret = in->err ? in->err : vstate_leave(in);
    if (ret == 0) {
        struct cbuf *bufs[2] = {&v->tx, &v->rx};
        for (unsigned i = 0; i < 2; i++) {
            if (len[i])
                memcpy(bufs[i]->buf, tmp[i], len[i]);
            bufs[i]->head = 0;
            bufs[i]->len = len[i];
        }
        /* The main loop re-arms the backend for the loaded buffers (load may
         * run on a thread whose seccomp filter allows no epoll_ctl). */
        kick_self(v);
    }
    free(tmp[0]);
    free(tmp[1]);
    return ret;
}

static void console_destroy(struct virtio_dev *d)
{
    struct virtio_console *v = to_con(d);
    if (!v)
        return;
    if (v->cd_registered)
        evloop_del(d->loop, chardev_fd(v->cd));
    if (v->kick_registered)
        evloop_del(d->loop, v->kick_efd);
    if (v->kick_efd >= 0)
        close(v->kick_efd);
    chardev_close(v->cd);
    free(v->tx.buf);
    free(v->rx.buf);
    virtio_dev_fini(d);
    free(v);
}

static const struct virtio_dev_ops console_ops = {
    .type = "console",
    .device_id = VIRTIO_ID_CONSOLE,
    .num_queues = 2,
    .queue_max_size = VIRTIO_CONSOLE_QUEUE_SIZE,
    .config_size = VIRTIO_CONSOLE_CFG_SIZE,
    .config_read = console_config_read,
    .config_write = NULL,
    .activate = console_activate,
    .queue_notify = console_queue_notify,
    .reset = console_reset,
    .save = console_save,
    .load = console_load,
    .unmigratable = NULL,
    .destroy = console_destroy,
};

int virtio_console_create_with_chardev(const struct virtio_console_config *cfg, struct chardev *cd,
                                       const struct gmem *mem, struct evloop *loop,
                                       struct virtio_dev **out, struct errbuf *err)
{
    const char *id = cfg && cfg->id ? cfg->id : "console";
    if (!loop || loop->epfd < 0) {
        chardev_close(cd);
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, "virtio %s: event loop not initialised", id);
    }
    struct virtio_console *v = calloc(1, sizeof(*v));
    if (!v) {
        chardev_close(cd);
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "virtio %s: out of memory", id);
    }
    virtio_dev_init(&v->vdev, &console_ops, id, mem, loop, 0);
    v->cd = cd;
    v->kick_efd = -1;
    int ret;
    v->tx = (struct cbuf){.buf = malloc(VIRTIO_CONSOLE_TX_BUF), .cap = VIRTIO_CONSOLE_TX_BUF};
    v->rx = (struct cbuf){.buf = malloc(VIRTIO_CONSOLE_RX_BUF), .cap = VIRTIO_CONSOLE_RX_BUF};
    if (!v->tx.buf || !v->rx.buf) {
        ret = err_set(err, WISP_EXIT_FAILURE, ENOMEM, "virtio %s: out of memory", id);
        goto fail;
    }
    v->kick_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (v->kick_efd < 0) {
        ret = err_set(err, WISP_EXIT_FAILURE, errno, "virtio %s: eventfd: %s", id, strerror(errno));
        goto fail;
    }
    ret = evloop_add(loop, v->kick_efd, EPOLLIN, console_kick_event, v);
    if (ret == 0) {
        v->kick_registered = true;
        ret = evloop_add(loop, chardev_fd(cd), EPOLLIN, console_backend_event, v);
    }
    if (ret < 0) {
        err_set(err, WISP_EXIT_FAILURE, -ret, "virtio %s: cannot join the event loop: %s", id,
                strerror(-ret));
        goto fail;
    }
    v->cd_registered = true;
    update_interest(v); /* input is buffered even before the driver is up */
    *out = &v->vdev;
    return 0;
fail:
    console_destroy(&v->vdev);
    return ret;
}

int virtio_console_create(const struct virtio_console_config *cfg, const struct gmem *mem,
                          struct evloop *loop, struct virtio_dev **out, struct errbuf *err)
{
    struct chardev *cd;
    int ret;
    if (cfg->mode == VIRTIO_CONSOLE_SOCKET)
        ret = chardev_open_socket(cfg->socket_path, &cd, err);
    else
        ret = chardev_open_stdio(&cd, err);
    if (ret < 0)
        return ret;
    return virtio_console_create_with_chardev(cfg, cd, mem, loop, out, err);
}

void virtio_console_get_stats(struct virtio_dev *d, struct virtio_console_stats *st)
{
    pthread_mutex_lock(&d->lock);
    *st = to_con(d)->stats;
    pthread_mutex_unlock(&d->lock);
}
