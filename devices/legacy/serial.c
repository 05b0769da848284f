/*
 * 16550A UART emulation for COM1 (see serial.h for the interface).
 *
 * This file exists because every x86 guest kernel can print to an 8250-family
 * UART without extra drivers; it is the console of every wisp VM.
 *
 * Interrupt model.  The interrupt output is a level that we recompute after
 * every access: it is active when MCR.OUT2 is set and IIR has a source to
 * report.  The irq callback fires on each inactive->active transition only,
 * which is what the KVM irqfd (a pulse on an edge-triggered ISA pin) needs.
 * OUT2 gates the output because that is how PCs wire the UART to the PIC
 * (OUT2 enables the IRQ line driver), and Linux's 8250 driver is written for
 * it: serial8250_do_startup() sets TIOCM_OUT2 whenever the port has an irq
 * ("most PC uarts need OUT2 raised") and shutdown clears it, so a guest that
 * never opened the port gets no interrupts.  IIR is reported regardless of
 * OUT2: the driver's THRE probe reads IIR before it sets OUT2.  Unlike the
 * datasheet (which forces the OUT2 pin inactive in loopback) but like QEMU,
 * the OUT2 bit keeps gating in loopback, so a guest can test its interrupt
 * path with loopback.
 *
 * Sources in priority order: receiver line status (LSR.OE, cleared by reading
 * LSR) > receive data (FIFO not empty; reported as "character timeout" while
 * the FIFO holds fewer bytes than the trigger level, since there is no timer
 * and the timeout is taken to have expired at once; cleared by draining the
 * FIFO) > THR empty > modem status (MSR delta bits, cleared by reading MSR).
 *
 * THRE interrupt: a pending flag, set when ETBEI goes 0->1 (THR is always
 * empty here) and each time THR is written (the byte leaves at once, so THR
 * empties again right after the write that clears the interrupt), cleared
 * when an IIR read reports it and when ETBEI is cleared.  Linux's driver
 * relies on the re-raise on ETBEI 0->1 (its UART_BUG_THRE test, and the
 * console restoring IER after a polled write).
 *
 * Creation, reset and save/load are in serial_state.c; the device object and
 * the register map are in serial_internal.h.
 */
#include "devices/legacy/serial_internal.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "vmm/log.h"

static unsigned fifo_trigger(const struct uart *u)
{
    static const unsigned levels[4] = {1, 4, 8, 14};
    return levels[(u->fcr & FCR_TRIG) >> 6];
}

static void fifo_push(struct uart *u, uint8_t b)
{
    u->fifo[(u->fifo_head + u->fifo_count) % SERIAL_FIFO_SIZE] = b;
    u->fifo_count++;
}

static uint8_t fifo_pop(struct uart *u)
{
    uint8_t b = u->fifo[u->fifo_head];
    u->fifo_head = (u->fifo_head + 1) % SERIAL_FIFO_SIZE;
    u->fifo_count--;
    return b;
}

static void fifo_clear(struct uart *u)
{
    u->fifo_head = 0;
    u->fifo_count = 0;
}

/* Move host input into the FIFO.  In loopback the receiver is cut off from the line. */
static void fifo_refill(struct uart *u)
{
    if (u->mcr & MCR_LOOP)
        return;
    while (u->q_count && u->fifo_count < fifo_cap(u)) {
        fifo_push(u, u->queue[u->q_head]);
        u->q_head = (u->q_head + 1) % SERIAL_INPUT_QUEUE;
        u->q_count--;
    }
}

/* The highest-priority interrupt source IIR reports (IIR_NONE if none). */
static uint8_t pending_id(const struct uart *u)
{
    if ((u->ier & IER_ELSI) && (u->lsr & LSR_OE))
        return IIR_RLS;
    if ((u->ier & IER_ERBFI) && u->fifo_count) {
        if ((u->fcr & FCR_ENABLE) && u->fifo_count < fifo_trigger(u))
            return IIR_CTI;
        return IIR_RDA;
    }
    if ((u->ier & IER_ETBEI) && u->thr_ipending)
        return IIR_THRE;
    if ((u->ier & IER_EDSSI) && (u->msr & MSR_DELTA))
        return IIR_MSI;
    return IIR_NONE;
}

bool serial_irq_line(const struct uart *u)
{
    return (u->mcr & MCR_OUT2) && pending_id(u) != IIR_NONE;
}

/*
 * What serial_receive() would take now: free queue space, plus the FIFO space
 * it tops up at once (outside loopback the queue is only non-empty while the
 * FIFO is full, so the two never overlap).
 */
static size_t rx_room(const struct uart *u)
{
    size_t room = SERIAL_INPUT_QUEUE - u->q_count;
    if (!(u->mcr & MCR_LOOP))
        room += fifo_cap(u) - u->fifo_count;
    return room;
}

/*
 * Hand `n` (<= 8, so <= PIPE_BUF) bytes to the output fd without ever waiting
 * for whoever reads it (security.md D7): bytes the fd does not take at once
 * are lost and counted.  The fd is usually stdout, a pipe or terminal shared
 * with the parent, so wisp must not set O_NONBLOCK on it (that flag lives in
 * the shared open file description and would change the parent's writes).
 * Instead a zero-timeout poll gates one write(2):
 *  - a pipe reports POLLOUT only with a free buffer slot, and a write of at
 *    most PIPE_BUF bytes into a free slot (or merged into the last one) does
 *    not wait; out_lock keeps two vCPUs from sharing one poll result;
 *  - a terminal reports POLLOUT only with room in its output buffer;
 *  - a regular file always reports POLLOUT and never waits for a reader.
 * What is left: another process writing into the same pipe or terminal
 * between the poll and the write could take the room, and the write would
 * wait.  That wait is interruptible: the vCPU kick (SIGUSR1, no SA_RESTART)
 * that stops the VM ends it with EINTR or a short count, and EINTR is never
 * retried here, so shutdown cannot hang on it.
 */
static void serial_output(struct serial *s, const uint8_t *buf, size_t n)
{
    size_t done = 0;
    int e = 0;

    pthread_mutex_lock(&s->out_lock);
    struct pollfd pfd = {.fd = s->out_fd, .events = POLLOUT};
    static const struct timespec zero = {0, 0};
    int r = ppoll(&pfd, 1, &zero, NULL);
    if (r < 0) {
        e = errno;
    } else if (r == 1 && (pfd.revents & (POLLOUT | POLLERR))) {
        /* POLLERR (reader gone): let write() report EPIPE once, rate-limited. */
        ssize_t w = write(s->out_fd, buf, n);
        if (w < 0)
            e = errno;
        else
            done = (size_t)w;
    }
    pthread_mutex_unlock(&s->out_lock);

    if (e && e != EAGAIN && e != EWOULDBLOCK && e != EINTR)
        log_ratelimited(LOG_WARN, "serial: output write failed (errno %d)", e);
    if (done < n)
        atomic_fetch_add_explicit(&s->stats.lost, n - done, memory_order_relaxed);
}

/* Emit edge and notify decisions, drop the lock, then do the I/O and callbacks. */
void serial_finish(struct serial *s, struct after *a)
{
    bool line = serial_irq_line(&s->u);
    a->raise = line && !s->u.irq_line;
    s->u.irq_line = line;
    if (rx_room(&s->u) == 0) {
        s->rx_blocked = true;
    } else if (s->rx_blocked) {
        s->rx_blocked = false;
        a->notify = true;
    }
    a->irq = s->irq;
    a->irq_opaque = s->irq_opaque;
    a->rx_notify = s->rx_notify;
    a->rx_notify_opaque = s->rx_notify_opaque;
    pthread_mutex_unlock(&s->lock);

    /* Outside the device lock so a slow fd never holds up the main thread's
     * input path.  Output order still follows the guest's: a vCPU does not
     * return to the guest (and release its own console lock) before
     * serial_output() is done, and out_lock orders the vCPUs. */
    if (a->ntx) {
        atomic_fetch_add_explicit(&s->stats.tx, a->ntx, memory_order_relaxed);
        if (s->out_fd >= 0)
            serial_output(s, a->tx, a->ntx);
    }
    if (a->raise && a->irq) {
        atomic_fetch_add_explicit(&s->stats.irqs, 1, memory_order_relaxed);
        a->irq(a->irq_opaque);
    }
    if (a->notify && a->rx_notify)
        a->rx_notify(a->rx_notify_opaque);
}

static void transmit(struct serial *s, uint8_t b, struct after *a)
{
    struct uart *u = &s->u;
    if (u->mcr & MCR_LOOP) {
        if (u->fifo_count < fifo_cap(u)) {
            fifo_push(u, b);
        } else {
            /* Overrun: a FIFO keeps its contents and loses the new byte; the
             * single holding register (FIFOs off) is overwritten instead. */
            u->lsr |= LSR_OE;
            if (!(u->fcr & FCR_ENABLE))
                u->fifo[u->fifo_head] = b;
            atomic_fetch_add_explicit(&s->stats.overruns, 1, memory_order_relaxed);
        }
    } else if (a->ntx < sizeof(a->tx)) {
        a->tx[a->ntx++] = b;
    }
    /* Writing THR clears the THRE interrupt, and THR is empty again at once. */
    u->thr_ipending = (u->ier & IER_ETBEI) != 0;
}

static void write_ier(struct uart *u, uint8_t v)
{
    uint8_t old = u->ier;
    u->ier = v & IER_MASK;
    if (!(u->ier & IER_ETBEI))
        u->thr_ipending = false;
    else if (!(old & IER_ETBEI))
        u->thr_ipending = true; /* re-raise: THR is empty */
}

static void write_fcr(struct uart *u, uint8_t v)
{
    /* Changing the enable bit resets the FIFOs; the other bits only take
     * effect while FIFOs are (being) enabled. */
    if ((v ^ u->fcr) & FCR_ENABLE)
        fifo_clear(u);
    if (v & FCR_ENABLE) {
        if (v & FCR_CLR_RX)
            fifo_clear(u);
        u->fcr = v & FCR_STORED;
    } else {
        u->fcr &= (uint8_t)~FCR_ENABLE;
    }
    fifo_refill(u);
}

static void write_mcr(struct uart *u, uint8_t v)
{
    uint8_t was_loop = u->mcr & MCR_LOOP;
    u->mcr = v & MCR_MASK;

    uint8_t old = u->msr & 0xf0, now = modem_inputs(u->mcr), chg = old ^ now;
    uint8_t delta = u->msr & MSR_DELTA;
    delta |= (chg & MSR_CTS) ? MSR_DCTS : 0;
    delta |= (chg & MSR_DSR) ? MSR_DDSR : 0;
    delta |= ((old & MSR_RI) && !(now & MSR_RI)) ? MSR_TERI : 0; /* trailing edge only */
    delta |= (chg & MSR_DCD) ? MSR_DDCD : 0;
    u->msr = now | delta;

    if (was_loop && !(u->mcr & MCR_LOOP))
        fifo_refill(u); /* host input waited in the queue during loopback */
}

static uint8_t reg_read(struct uart *u, unsigned reg)
{
    bool dlab = u->lcr & LCR_DLAB;
    uint8_t v;

    switch (reg) {
    case REG_DATA:
        if (dlab)
            return (uint8_t)(u->divisor & 0xff);
        if (!u->fifo_count)
            return 0;
        v = fifo_pop(u);
        fifo_refill(u);
        return v;
    case REG_IER:
        return dlab ? (uint8_t)(u->divisor >> 8) : u->ier;
    case REG_IIR_FCR:
        v = pending_id(u);
        if (v == IIR_THRE)
            u->thr_ipending = false;
        return v | ((u->fcr & FCR_ENABLE) ? IIR_FIFO : 0);
    case REG_LCR:
        return u->lcr;
    case REG_MCR:
        return u->mcr;
    case REG_LSR:
        v = u->lsr | LSR_THRE | LSR_TEMT | (u->fifo_count ? LSR_DR : 0);
        u->lsr &= (uint8_t)~LSR_OE;
        return v;
    case REG_MSR:
        v = u->msr;
        u->msr &= (uint8_t)~MSR_DELTA;
        return v;
    default: /* REG_SCR */
        return u->scr;
    }
}

static void reg_write(struct serial *s, unsigned reg, uint8_t v, struct after *a)
{
    struct uart *u = &s->u;
    bool dlab = u->lcr & LCR_DLAB;

    switch (reg) {
    case REG_DATA:
        if (dlab)
            u->divisor = (uint16_t)((u->divisor & 0xff00) | v);
        else
            transmit(s, v, a);
        break;
    case REG_IER:
        if (dlab)
            u->divisor = (uint16_t)((u->divisor & 0x00ff) | (v << 8));
        else
            write_ier(u, v);
        break;
    case REG_IIR_FCR:
        write_fcr(u, v);
        break;
    case REG_LCR:
        u->lcr = v;
        break;
    case REG_MCR:
        write_mcr(u, v);
        break;
    case REG_LSR:
    case REG_MSR:
        /* Factory-test writes on real parts; nothing a driver needs. */
        log_ratelimited(LOG_DEBUG, "serial: ignored write 0x%02x to read-only register %u", v, reg);
        break;
    default: /* REG_SCR */
        u->scr = v;
        break;
    }
}

/* Is byte i of an access at `offset` inside the eight ports?  (Overflow-safe.) */
static bool port_in_range(uint64_t offset, unsigned i)
{
    return offset < SERIAL_PORT_LEN && i < SERIAL_PORT_LEN - offset;
}

void serial_pio_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct serial *s = opaque;
    uint8_t *d = data;
    struct after a = {0};

    lock(s);
    for (unsigned i = 0; i < len; i++) {
        if (port_in_range(offset, i)) {
            d[i] = reg_read(&s->u, (unsigned)(offset + i));
        } else {
            d[i] = 0xff;
            log_ratelimited(LOG_DEBUG, "serial: read beyond port range (offset %llu len %u)",
                            (unsigned long long)offset, len);
        }
    }
    serial_finish(s, &a);
}

void serial_pio_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct serial *s = opaque;
    const uint8_t *d = data;
    struct after a = {0};

    lock(s);
    for (unsigned i = 0; i < len; i++) {
        if (port_in_range(offset, i))
            reg_write(s, (unsigned)(offset + i), d[i], &a);
        else
            log_ratelimited(LOG_DEBUG, "serial: write beyond port range (offset %llu len %u)",
                            (unsigned long long)offset, len);
    }
    serial_finish(s, &a);
}

size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len)
{
    struct after a = {0};

    lock(s);
    struct uart *u = &s->u;
    size_t n = MIN(len, rx_room(u));
    for (size_t i = 0; i < n; i++) {
        u->queue[(u->q_head + u->q_count) % SERIAL_INPUT_QUEUE] = buf[i];
        u->q_count++;
        fifo_refill(u);
    }
    atomic_fetch_add_explicit(&s->stats.rx, n, memory_order_relaxed);
    serial_finish(s, &a);
    return n;
}

size_t serial_rx_room(struct serial *s)
{
    lock(s);
    size_t room = rx_room(&s->u);
    if (!room)
        s->rx_blocked = true; /* whoever saw 0 is told when it changes */
    pthread_mutex_unlock(&s->lock);
    return room;
}

void serial_set_rx_notify(struct serial *s, void (*fn)(void *opaque), void *opaque)
{
    lock(s);
    s->rx_notify = fn;
    s->rx_notify_opaque = opaque;
    pthread_mutex_unlock(&s->lock);
}

void serial_get_stats(const struct serial *s, struct serial_stats *st)
{
    st->tx_bytes = atomic_load_explicit(&s->stats.tx, memory_order_relaxed);
    st->lost_bytes = atomic_load_explicit(&s->stats.lost, memory_order_relaxed);
    st->rx_bytes = atomic_load_explicit(&s->stats.rx, memory_order_relaxed);
    st->overruns = atomic_load_explicit(&s->stats.overruns, memory_order_relaxed);
    st->irqs = atomic_load_explicit(&s->stats.irqs, memory_order_relaxed);
}
