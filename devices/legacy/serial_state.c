/*
 * The 16550A UART's life cycle (see serial.h): creation in the power-on
 * state, destruction, and the device_ops that reset it and save or load its
 * state.  The state format and the checks that refuse any state save()
 * could not have produced live here, apart from the register emulation in
 * serial.c, so the migration contract can be read on its own.
 */
#include "devices/legacy/serial_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STATE_VERSION     1
#define FLAG_THR_IPENDING 0x01
#define FLAG_IRQ_LINE     0x02

static void uart_reset(struct uart *u)
{
    memset(u, 0, sizeof(*u));
    /* The chip leaves the divisor undefined; 12 (9600 baud) is what firmware sets. */
    u->divisor = 12;
    u->msr = modem_inputs(0);
}

struct serial *serial_create(int out_fd, void (*irq)(void *opaque), void *irq_opaque)
{
    struct serial *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    int r = pthread_mutex_init(&s->lock, NULL);
    if (r) {
        free(s);
        errno = r;
        return NULL;
    }
    r = pthread_mutex_init(&s->out_lock, NULL);
    if (r) {
        pthread_mutex_destroy(&s->lock);
        free(s);
        errno = r;
        return NULL;
    }
    uart_reset(&s->u);
    s->out_fd = out_fd;
    s->irq = irq;
    s->irq_opaque = irq_opaque;
    return s;
}

void serial_destroy(struct serial *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->out_lock);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/*
 * State section "serial", version 1 (all little-endian):
 *   u8 lcr, ier, mcr, fcr, lsr (sticky bits), msr, scr | u16 divisor |
 *   u8 flags (FLAG_*) | u8 fifo count, that many bytes oldest first |
 *   u16 input queue count, that many bytes oldest first
 */
static int serial_save(void *dev, struct vstate_out *out)
{
    struct serial *s = dev;
    struct uart *u = malloc(sizeof(*u));
    if (!u)
        return -ENOMEM;
    lock(s);
    *u = s->u;
    pthread_mutex_unlock(&s->lock);

    vstate_begin(out, "serial", STATE_VERSION);
    vstate_put_u8(out, u->lcr);
    vstate_put_u8(out, u->ier);
    vstate_put_u8(out, u->mcr);
    vstate_put_u8(out, u->fcr);
    vstate_put_u8(out, u->lsr);
    vstate_put_u8(out, u->msr);
    vstate_put_u8(out, u->scr);
    vstate_put_u16(out, u->divisor);
    vstate_put_u8(out, (uint8_t)((u->thr_ipending ? FLAG_THR_IPENDING : 0) |
                                 (u->irq_line ? FLAG_IRQ_LINE : 0)));
    vstate_put_u8(out, (uint8_t)u->fifo_count);
    for (unsigned i = 0; i < u->fifo_count; i++)
        vstate_put_u8(out, u->fifo[(u->fifo_head + i) % SERIAL_FIFO_SIZE]);
    vstate_put_u16(out, (uint16_t)u->q_count);
    for (unsigned i = 0; i < u->q_count; i++)
        vstate_put_u8(out, u->queue[(u->q_head + i) % SERIAL_INPUT_QUEUE]);
    free(u);
    return vstate_end(out);
}

/* Reject any state save() could not have produced. */
static int validate(const struct uart *u, uint8_t flags)
{
    if ((u->ier & ~IER_MASK) || (u->mcr & ~MCR_MASK) || (u->fcr & ~FCR_STORED) ||
        (u->lsr & ~LSR_OE) || (flags & ~(FLAG_THR_IPENDING | FLAG_IRQ_LINE)))
        return -EINVAL; /* reserved bits */
    if ((u->msr & 0xf0) != modem_inputs(u->mcr))
        return -EINVAL; /* modem inputs disagree with MCR */
    if (u->fifo_count > fifo_cap(u) || u->q_count > SERIAL_INPUT_QUEUE)
        return -EINVAL;
    if (u->thr_ipending && !(u->ier & IER_ETBEI))
        return -EINVAL;
    if (!(u->mcr & MCR_LOOP) && u->q_count && u->fifo_count < fifo_cap(u))
        return -EINVAL; /* the queue always tops up the FIFO outside loopback */
    if (u->irq_line != serial_irq_line(u))
        return -EINVAL;
    return 0;
}

static int load_into(struct uart *u, struct vstate_in *in)
{
    uint16_t version;
    int r = vstate_enter(in, "serial", STATE_VERSION, STATE_VERSION, &version);
    if (r)
        return r;
    u->lcr = vstate_get_u8(in);
    u->ier = vstate_get_u8(in);
    u->mcr = vstate_get_u8(in);
    u->fcr = vstate_get_u8(in);
    u->lsr = vstate_get_u8(in);
    u->msr = vstate_get_u8(in);
    u->scr = vstate_get_u8(in);
    u->divisor = vstate_get_u16(in);
    uint8_t flags = vstate_get_u8(in);
    u->thr_ipending = flags & FLAG_THR_IPENDING;
    u->irq_line = flags & FLAG_IRQ_LINE;
    u->fifo_count = vstate_get_u8(in);
    if (u->fifo_count > SERIAL_FIFO_SIZE)
        return -EINVAL; /* check before it sizes a copy */
    vstate_get_bytes(in, u->fifo, u->fifo_count);
    u->q_count = vstate_get_u16(in);
    if (u->q_count > SERIAL_INPUT_QUEUE)
        return -EINVAL;
    vstate_get_bytes(in, u->queue, u->q_count);
    if (in->err)
        return in->err;
    r = vstate_leave(in);
    if (r)
        return r;
    return validate(u, flags);
}

static int serial_load(void *dev, struct vstate_in *in)
{
    struct serial *s = dev;
    struct uart *u = calloc(1, sizeof(*u));
    if (!u)
        return -ENOMEM;
    int r = load_into(u, in);
    if (!r) {
        struct after a = {0};
        lock(s);
        s->u = *u;
        serial_finish(s, &a); /* no edge: irq_line was validated against the new state */
    }
    free(u);
    return r;
}

static void serial_reset(void *dev)
{
    struct serial *s = dev;
    struct after a = {0};
    lock(s);
    uart_reset(&s->u);
    serial_finish(s, &a);
}

const struct device_ops serial_device_ops = {
    .type = "serial",
    .unmigratable = NULL,
    .save = serial_save,
    .load = serial_load,
    .reset = serial_reset,
};
