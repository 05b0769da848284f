/*
 * COM1: a 16550A-compatible UART, the guest's console.
 *
 * The guest sees the eight registers of an 8250-family UART with a 16-byte
 * receive FIFO.  Transmission is instantaneous: a byte written to THR is
 * handed to the host output fd at once and THR is empty again right after,
 * so the guest never waits on a baud-rate clock.  Host input goes through a
 * bounded host-side queue (SERIAL_INPUT_QUEUE bytes) that refills the FIFO as
 * the guest reads it; when the queue is full serial_receive() accepts less
 * and the caller stops reading its input until the rx-notify callback says
 * there is room again.  Nothing a guest does can grow host memory, and with a
 * non-blocking output fd a full output loses bytes instead of stalling a vCPU.
 *
 * Threads: the bus callbacks run on vCPU threads, serial_receive() on the
 * main thread; every entry point takes the device's own lock.  Callbacks
 * (irq, rx notify) are always called with that lock released.
 */
#ifndef DEVICES_LEGACY_SERIAL_H
#define DEVICES_LEGACY_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "devices/device.h"

/* Number of I/O ports the UART decodes (base .. base+7). */
#define SERIAL_PORT_LEN 8
/* Receive FIFO depth of a 16550A. */
#define SERIAL_FIFO_SIZE 16
/* Host-side input queue feeding the FIFO. */
#define SERIAL_INPUT_QUEUE 4096

struct serial;

/* Counters for --stats and tests; they survive reset and are not migrated. */
struct serial_stats {
    /* Bytes the guest transmitted (THR writes outside loopback). */
    uint64_t tx_bytes;
    /* Of those, bytes the output fd did not take (EAGAIN, short write, error). */
    uint64_t lost_bytes;
    /* Host input bytes accepted by serial_receive(). */
    uint64_t rx_bytes;
    /* Bytes dropped because the FIFO was full: loopback only, since host input
     * waits in the input queue instead. */
    uint64_t overruns;
    /* Interrupt edges signalled through the irq callback. */
    uint64_t irqs;
};

/*
 * Create a UART in its power-on state.
 *
 * out_fd: where transmitted bytes go, or -1 to discard them.  The caller keeps
 *   ownership (serial_destroy() does not close it).  SIGPIPE should be
 *   ignored.  The fd may be blocking: output is written only when a
 *   zero-timeout poll says the fd has room (see serial_output() in serial.c),
 *   and a byte the fd does not take at once is counted in lost_bytes, so a
 *   reader that stops reading never stalls the vCPU.  serial_create() does
 *   not change the fd's flags because they are shared with whoever else holds
 *   the open file (a terminal, the parent's pipe).
 * irq: called, outside the device lock and possibly on a vCPU or the main
 *   thread, each time the UART's interrupt output goes from inactive to active
 *   (an edge; see serial.c for when that is).  May be NULL.
 *
 * Returns NULL with errno set (ENOMEM) on failure.
 */
struct serial *serial_create(int out_fd, void (*irq)(void *opaque), void *irq_opaque);

/* Free the device.  No other thread may be using it. */
void serial_destroy(struct serial *s);

/*
 * Bus callbacks for the SERIAL_PORT_LEN-port range at COM1.  Every size and
 * offset is accepted: an access of N bytes at offset o behaves as N byte
 * accesses to ports o, o+1, ... (what an 8-bit ISA device sees when a wider
 * access is split); bytes beyond the last port read as 0xff and are dropped
 * on write.
 */
void serial_pio_read(void *opaque, uint64_t offset, void *data, unsigned len);
void serial_pio_write(void *opaque, uint64_t offset, const void *data, unsigned len);

/*
 * Offer host input.  Takes up to serial_rx_room() bytes and returns how many
 * it took (0 .. len); the caller keeps the rest and waits for the rx-notify
 * callback.  Raises the receive interrupt if the guest enabled it.
 */
size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len);

/*
 * How many bytes serial_receive() would take now: the free space in the input
 * queue plus, outside loopback, the free receive FIFO space that new input
 * fills at once.  Once this has been 0 (as returned here or after a short
 * serial_receive()), the rx-notify callback runs when room returns.
 */
size_t serial_rx_room(struct serial *s);

/*
 * Set the callback run when the input queue has room again after having been
 * full (after serial_receive() could not take everything it was offered).
 * It runs outside the device lock, usually on a vCPU thread that just read
 * the FIFO, so it should only wake the main loop (e.g. write an eventfd).
 * fn may be NULL.
 */
void serial_set_rx_notify(struct serial *s, void (*fn)(void *opaque), void *opaque);

/* Snapshot of the counters. */
void serial_get_stats(const struct serial *s, struct serial_stats *st);

/*
 * save/load/reset.  The state is one "serial" section, version 1: every
 * register, the FIFO and input queue contents and the interrupt state.  Load
 * validates everything and leaves the device unchanged on error (-EINVAL for
 * inconsistent values, or the vstate error).  Reset clears the input queue
 * too; counters are kept.
 */
extern const struct device_ops serial_device_ops;

#endif /* DEVICES_LEGACY_SERIAL_H */
