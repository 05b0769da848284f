/*
 * Private to the 16550A UART: the device object, the register map, and the
 * helpers shared by serial.c (registers, interrupts, host I/O) and
 * serial_state.c (creation, reset, save/load).  Nothing outside
 * devices/legacy/serial*.c includes this.
 */
#ifndef DEVICES_LEGACY_SERIAL_INTERNAL_H
#define DEVICES_LEGACY_SERIAL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/legacy/serial.h"

/* Register offsets (DLL/DLM replace RBR/THR and IER while LCR.DLAB is set). */
enum { REG_DATA, REG_IER, REG_IIR_FCR, REG_LCR, REG_MCR, REG_LSR, REG_MSR, REG_SCR };

/* Register bits; only what this model implements is named. */
enum { IER_ERBFI = 0x01, IER_ETBEI = 0x02, IER_ELSI = 0x04, IER_EDSSI = 0x08 };
enum { IIR_MSI = 0x00, IIR_NONE = 0x01, IIR_THRE = 0x02, IIR_RDA = 0x04, IIR_RLS = 0x06 };
enum { IIR_CTI = 0x0c /* character timeout */, IIR_FIFO = 0xc0 /* FIFOs enabled */ };
enum { FCR_ENABLE = 0x01, FCR_CLR_RX = 0x02, FCR_DMA = 0x08, FCR_TRIG = 0xc0 };
enum { LCR_DLAB = 0x80 };
enum { MCR_DTR = 0x01, MCR_RTS = 0x02, MCR_OUT1 = 0x04, MCR_OUT2 = 0x08, MCR_LOOP = 0x10 };
enum { LSR_DR = 0x01, LSR_OE = 0x02, LSR_THRE = 0x20, LSR_TEMT = 0x40 };
enum { MSR_DCTS = 0x01, MSR_DDSR = 0x02, MSR_TERI = 0x04, MSR_DDCD = 0x08, MSR_DELTA = 0x0f };
enum { MSR_CTS = 0x10, MSR_DSR = 0x20, MSR_RI = 0x40, MSR_DCD = 0x80 };

/* Writable bits.  A 16550A reads the others as 0, and Linux's probe checks that
 * (IER bits 4-7 would make it an XScale UART, MCR bit 5 a 16750). */
#define IER_MASK   0x0f
#define MCR_MASK   0x1f
#define FCR_STORED (FCR_ENABLE | FCR_DMA | FCR_TRIG) /* bits 1-2 self-clear, 4-5 reserved */

/* Guest-visible state: exactly what save/load transfer. */
struct uart {
    uint8_t ier, lcr, mcr, fcr, scr;
    uint8_t lsr; /* sticky bits only (OE); DR, THRE and TEMT are computed */
    uint8_t msr; /* modem inputs (bits 4-7) and delta bits (0-3) */
    uint16_t divisor;
    bool thr_ipending;
    bool irq_line; /* interrupt output level after the last access */
    unsigned fifo_head, fifo_count;
    unsigned q_head, q_count;
    uint8_t fifo[SERIAL_FIFO_SIZE];
    uint8_t queue[SERIAL_INPUT_QUEUE];
};

struct serial {
    pthread_mutex_t lock;
    struct uart u;
    pthread_mutex_t out_lock; /* orders output; held only for a poll and one write */
    int out_fd;
    void (*irq)(void *);
    void *irq_opaque;
    void (*rx_notify)(void *);
    void *rx_notify_opaque;
    bool rx_blocked; /* queue was seen full: notify when room comes back */
    struct {
        _Atomic uint64_t tx, lost, rx, overruns, irqs;
    } stats;
};

/* Work decided under the lock and done after dropping it. */
struct after {
    uint8_t tx[8];
    unsigned ntx;
    bool raise, notify;
    void (*irq)(void *);
    void *irq_opaque;
    void (*rx_notify)(void *);
    void *rx_notify_opaque;
};

/* CTS/DSR/RI/DCD as the guest sees them: a connected, ready peer, or MCR in loopback. */
static inline uint8_t modem_inputs(uint8_t mcr)
{
    if (!(mcr & MCR_LOOP))
        return MSR_CTS | MSR_DSR | MSR_DCD;
    uint8_t st = 0;
    st |= (mcr & MCR_RTS) ? MSR_CTS : 0;
    st |= (mcr & MCR_DTR) ? MSR_DSR : 0;
    st |= (mcr & MCR_OUT1) ? MSR_RI : 0;
    st |= (mcr & MCR_OUT2) ? MSR_DCD : 0;
    return st;
}

static inline unsigned fifo_cap(const struct uart *u)
{
    /* With FIFOs off the receiver is a single holding register. */
    return (u->fcr & FCR_ENABLE) ? SERIAL_FIFO_SIZE : 1;
}

/* Take the device lock; serial_finish() (or a plain unlock) drops it. */
static inline void lock(struct serial *s)
{
    pthread_mutex_lock(&s->lock);
}

/*
 * The interrupt output level `u` calls for: MCR.OUT2 set and a source for
 * IIR to report (see serial.c).
 */
bool serial_irq_line(const struct uart *u);

/*
 * End an access begun with lock(s): record the new interrupt level and the
 * rx-notify decision in `a`, drop the lock, then write a->tx to the output
 * fd and run the callbacks due (an irq edge, room in the input queue).
 */
void serial_finish(struct serial *s, struct after *a);

#endif /* DEVICES_LEGACY_SERIAL_INTERNAL_H */
