/*
 * 16550A UART interrupts and host I/O: IIR priorities and interrupt edges,
 * host input flow control, callbacks run outside the device lock, output to
 * an fd with lost-byte accounting, and concurrent access.  Part of the
 * "serial" suite; the fixture (a fresh UART per test) is test_serial.c's.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "devices/legacy/serial.h"
#include "tests/unit/devices/test_serial.h"

Test(serial, iir_priorities)
{
    wr(FCR, 0x01); /* trigger level 1 */
    wr(MCR, 0x10 | 0x08 | 0x02);
    for (int i = 0; i < 17; i++) /* fill and overrun */
        wr(THR, (uint8_t)i);
    wr(IER, 0x0f);
    cr_assert_eq(rd(IIR), 0xc6, "line status first");
    rd(LSR);
    cr_assert_eq(rd(IIR), 0xc4, "then received data");
    for (int i = 0; i < 16; i++)
        rd(RBR);
    cr_assert_eq(rd(IIR), 0xc2, "then THR empty");
    cr_assert_eq(rd(IIR), 0xc0, "THRE cleared by the IIR read; then modem status");
    rd(MSR);
    cr_assert_eq(rd(IIR), 0xc1);
}

Test(serial, rx_timeout_below_trigger_level)
{
    wr(FCR, 0x81); /* trigger 8 */
    wr(IER, 0x01);
    serial_receive(s, (const uint8_t *)"abc", 3);
    cr_assert_eq(rd(IIR), 0xcc, "below trigger: character timeout");
    serial_receive(s, (const uint8_t *)"defgh", 5);
    cr_assert_eq(rd(IIR), 0xc4, "at trigger: data available");
}

Test(serial, thre_raise_clear_reraise)
{
    wr(MCR, 0x08); /* OUT2 */
    wr(IER, 0x02);
    cr_assert_eq(irqs, 1, "ETBEI 0->1 with THR empty raises");
    cr_assert_eq(rd(IIR), 0x02);
    cr_assert_eq(rd(IIR), 0x01, "reading IIR cleared it");
    wr(IER, 0x02);
    cr_assert_eq(irqs, 1, "ETBEI 1->1 does not re-raise");
    cr_assert_eq(rd(IIR), 0x01);
    wr(IER, 0x00);
    wr(IER, 0x02);
    cr_assert_eq(irqs, 2, "ETBEI 0->1 re-raises");
    wr(THR, 'x');
    cr_assert_eq(irqs, 2, "line already active: no new edge");
    cr_assert_eq(rd(IIR), 0x02, "THR write leaves THRE pending (THR emptied at once)");
    wr(THR, 'y');
    cr_assert_eq(irqs, 3, "a THR write after the IIR read gives a new edge");
    wr(IER, 0x00);
    cr_assert_eq(rd(IIR), 0x01);
    /* Linux's UART_BUG_THRE probe. */
    wr(IER, 0x02);
    uint8_t iir1 = rd(IIR);
    wr(IER, 0x00);
    wr(IER, 0x02);
    uint8_t iir2 = rd(IIR);
    wr(IER, 0x00);
    cr_assert_eq(iir1 & 0x01, 0);
    cr_assert_eq(iir2 & 0x01, 0);
}

Test(serial, iir_reported_without_out2_but_no_irq)
{
    wr(IER, 0x02);
    cr_assert_eq(irqs, 0, "OUT2 clear: no interrupt");
    cr_assert_eq(rd(IIR), 0x02, "IIR reports regardless of OUT2");
    wr(IER, 0x00);
    wr(IER, 0x03);
    serial_receive(s, (const uint8_t *)"z", 1);
    cr_assert_eq(irqs, 0);
    wr(MCR, 0x08);
    cr_assert_eq(irqs, 1, "setting OUT2 with a source pending raises");
    wr(MCR, 0x00);
    wr(MCR, 0x08);
    cr_assert_eq(irqs, 2, "OUT2 gates the line, so toggling it gives an edge");
}

Test(serial, rx_interrupt_only_when_enabled)
{
    wr(MCR, 0x08);
    cr_assert_eq(serial_receive(s, (const uint8_t *)"a", 1), 1);
    cr_assert_eq(irqs, 0, "ERBFI clear: no interrupt");
    cr_assert_eq(rd(IIR), 0x01);
    cr_assert_eq(rd(RBR), 'a');
    wr(IER, 0x01);
    cr_assert_eq(irqs, 0);
    serial_receive(s, (const uint8_t *)"b", 1);
    cr_assert_eq(irqs, 1);
    cr_assert_eq(rd(IIR), 0x04);
    serial_receive(s, (const uint8_t *)"c", 1);
    cr_assert_eq(irqs, 1, "still active: no second edge");
    cr_assert_eq(rd(RBR), 'b');
    cr_assert_eq(rd(RBR), 'c', "the input queue refills the holding register");
    cr_assert_eq(rd(IIR), 0x01);
    serial_receive(s, (const uint8_t *)"d", 1);
    cr_assert_eq(irqs, 2);
    struct serial_stats st;
    serial_get_stats(s, &st);
    cr_assert_eq(st.irqs, 2);
    cr_assert_eq(st.rx_bytes, 4);
}

Test(serial, host_input_waits_during_loopback)
{
    wr(FCR, 0x01);
    wr(MCR, 0x10);
    serial_receive(s, (const uint8_t *)"host", 4);
    cr_assert_eq(rd(LSR) & 0x01, 0, "receiver is disconnected in loopback");
    wr(THR, 'L');
    cr_assert_eq(rd(RBR), 'L');
    wr(MCR, 0x00);
    char got[5] = {0};
    for (int i = 0; i < 4; i++)
        got[i] = (char)rd(RBR);
    cr_assert_str_eq(got, "host");
}

Test(serial, input_queue_room_and_notify)
{
    static uint8_t big[SERIAL_INPUT_QUEUE + 100];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)i;
    size_t room = serial_rx_room(s);
    cr_assert_eq(room, SERIAL_INPUT_QUEUE + 1, "queue plus the holding register");
    cr_assert_eq(serial_receive(s, big, sizeof(big)), room);
    cr_assert_eq(serial_rx_room(s), 0);
    cr_assert_eq(serial_receive(s, big, 10), 0);
    cr_assert_eq(notifies, 0);
    cr_assert_eq(rd(RBR), 0);
    cr_assert_eq(notifies, 1, "room came back");
    cr_assert_eq(serial_rx_room(s), 1);
    cr_assert_eq(rd(RBR), 1);
    cr_assert_eq(notifies, 1, "only after having been full");
    cr_assert_eq(serial_receive(s, big, 5), 2);
    cr_assert_eq(rd(RBR), 2);
    cr_assert_eq(notifies, 2);
    /* Bytes come out in order across the queue wrap. */
    for (size_t i = 3; i < room; i++)
        cr_assert_eq(rd(RBR), (uint8_t)i);
    cr_assert_eq(rd(RBR), 0);
    cr_assert_eq(rd(RBR), 1);
    cr_assert_eq(rd(LSR) & 0x01, 0);
    cr_assert_eq(serial_rx_room(s), SERIAL_INPUT_QUEUE + 1);
}

Test(serial, reset_clears_queue_and_notifies)
{
    static uint8_t big[SERIAL_INPUT_QUEUE + 1];
    serial_receive(s, big, sizeof(big));
    cr_assert_eq(serial_rx_room(s), 0);
    wr(LCR, 0x1b);
    serial_device_ops.reset(s);
    cr_assert_eq(notifies, 1);
    cr_assert_eq(rd(LCR), 0);
    cr_assert_eq(rd(LSR), 0x60);
}

/* The irq and notify callbacks run without the device lock held: they may re-enter. */
static struct serial *reentrant;
static void reenter(void *opaque)
{
    (void)opaque;
    (void)serial_rx_room(reentrant);
}

Test(serial, callbacks_run_outside_the_lock, .timeout = 5)
{
    reentrant = serial_create(-1, reenter, NULL);
    serial_set_rx_notify(reentrant, reenter, NULL);
    uint8_t v = 0x08;
    serial_pio_write(reentrant, MCR, &v, 1);
    v = 0x02;
    serial_pio_write(reentrant, IER, &v, 1);
    static uint8_t big[SERIAL_INPUT_QUEUE + 1];
    serial_receive(reentrant, big, sizeof(big));
    serial_pio_read(reentrant, RBR, &v, 1);
    serial_destroy(reentrant);
}

Test(serial, output_through_pipe)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_NONBLOCK), 0);
    struct serial *d = serial_create(p[1], NULL, NULL);
    const char *msg = "hello, wisp\n";
    for (const char *c = msg; *c; c++)
        serial_pio_write(d, THR, c, 1);
    char buf[64] = {0};
    cr_assert_eq(read(p[0], buf, sizeof(buf)), (ssize_t)strlen(msg));
    cr_assert_str_eq(buf, msg);
    struct serial_stats st;
    serial_get_stats(d, &st);
    cr_assert_eq(st.tx_bytes, strlen(msg));
    cr_assert_eq(st.lost_bytes, 0);
    serial_destroy(d);
    close(p[0]);
    close(p[1]);
}

/*
 * The output fd is a *blocking* pipe (as stdout usually is) whose reader has
 * stopped: the pipe is filled with O_NONBLOCK set only for the filling, then
 * the flag is cleared again before the device sees the fd.  A write(2) on it
 * would wait forever; the timeout turns such a regression into a failure.
 */
Test(serial, lost_bytes_on_full_pipe, .timeout = 5)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    fcntl(p[1], F_SETPIPE_SZ, 4096);
    int fl = fcntl(p[1], F_GETFL);
    cr_assert_eq(fcntl(p[1], F_SETFL, fl | O_NONBLOCK), 0);
    static char fill[4096];
    while (write(p[1], fill, sizeof(fill)) > 0)
        ;
    while (write(p[1], fill, 1) > 0)
        ;
    cr_assert_eq(errno, EAGAIN);
    cr_assert_eq(fcntl(p[1], F_SETFL, fl), 0);
    cr_assert_eq(fcntl(p[1], F_GETFL) & O_NONBLOCK, 0, "the device must see a blocking fd");
    cr_assert_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0); /* the test's own drain below */
    struct serial *d = serial_create(p[1], NULL, NULL);
    for (int i = 0; i < 10; i++)
        serial_pio_write(d, THR, "x", 1);
    struct serial_stats st;
    serial_get_stats(d, &st);
    cr_assert_eq(st.tx_bytes, 10);
    cr_assert_eq(st.lost_bytes, 10);
    uint8_t lsr;
    serial_pio_read(d, LSR, &lsr, 1);
    cr_assert_eq(lsr, 0x60, "THR is empty regardless");
    /* Drain; output resumes. */
    while (read(p[0], fill, sizeof(fill)) > 0)
        ;
    serial_pio_write(d, THR, "y", 1);
    char c = 0;
    cr_assert_eq(read(p[0], &c, 1), 1);
    cr_assert_eq(c, 'y');
    serial_get_stats(d, &st);
    cr_assert_eq(st.tx_bytes, 11);
    cr_assert_eq(st.lost_bytes, 10);
    serial_destroy(d);
    close(p[0]);
    close(p[1]);
}

Test(serial, write_to_closed_pipe_counts_lost)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_NONBLOCK), 0);
    signal(SIGPIPE, SIG_IGN);
    close(p[0]);
    struct serial *d = serial_create(p[1], NULL, NULL);
    serial_pio_write(d, THR, "x", 1);
    struct serial_stats st;
    serial_get_stats(d, &st);
    cr_assert_eq(st.lost_bytes, 1);
    serial_destroy(d);
    close(p[1]);
}

/* Concurrent vCPU-like writers and a main-thread feeder: no deadlock, no crash. */
static atomic_int concurrent_irqs;
static void count_irq(void *opaque)
{
    (void)opaque;
    atomic_fetch_add(&concurrent_irqs, 1);
}

static void *hammer(void *arg)
{
    struct serial *d = arg;
    for (int i = 0; i < 20000; i++) {
        uint8_t v = (uint8_t)i, b[8];
        serial_pio_write(d, (unsigned)i % 8, &v, 1);
        serial_pio_read(d, (unsigned)(i * 3) % 8, b, 1 + (unsigned)i % 4);
    }
    return NULL;
}

Test(serial, concurrent_access)
{
    struct serial *d = serial_create(-1, count_irq, NULL);
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, hammer, d), 0);
    static uint8_t in[64];
    for (int i = 0; i < 20000; i++) {
        serial_receive(d, in, 1 + (size_t)i % 64);
        (void)serial_rx_room(d);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    serial_destroy(d);
}
