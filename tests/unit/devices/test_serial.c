/*
 * Unit tests for the 16550A UART: register semantics, FIFO and loopback,
 * interrupt priorities and edges, host input flow control, output to an fd
 * with lost-byte accounting, and save/load including refusal of bad state.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "arch/x86_64/layout.h"
#include "devices/legacy/serial.h"
#include "vmm/bus.h"

enum { RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2 };
enum { LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

static struct serial *s;
static int irqs;
static int notifies;

static void on_irq(void *opaque)
{
    cr_assert_eq(opaque, &irqs);
    irqs++;
}

static void on_notify(void *opaque)
{
    cr_assert_eq(opaque, &notifies);
    notifies++;
}

static void setup(void)
{
    irqs = notifies = 0;
    s = serial_create(-1, on_irq, &irqs);
    cr_assert_not_null(s);
    serial_set_rx_notify(s, on_notify, &notifies);
}

static void teardown(void)
{
    serial_destroy(s);
    s = NULL;
}

TestSuite(serial, .init = setup, .fini = teardown, .timeout = 20);

static uint8_t rd(unsigned reg)
{
    uint8_t v = 0x5a;
    serial_pio_read(s, reg, &v, 1);
    return v;
}

static void wr(unsigned reg, uint8_t v)
{
    serial_pio_write(s, reg, &v, 1);
}

/* Save the device into a fresh buffer (caller frees). */
static struct vstate_out save(struct serial *d)
{
    struct vstate_out o;
    vstate_out_init(&o);
    cr_assert_eq(serial_device_ops.save(d, &o), 0);
    return o;
}

static int load(struct serial *d, const void *buf, size_t len)
{
    struct vstate_in in;
    vstate_in_init(&in, buf, len);
    return serial_device_ops.load(d, &in);
}

Test(serial, power_on_values)
{
    cr_assert_eq(rd(IER), 0);
    cr_assert_eq(rd(IIR), 0x01);
    cr_assert_eq(rd(LCR), 0);
    cr_assert_eq(rd(MCR), 0);
    cr_assert_eq(rd(LSR), 0x60); /* THRE | TEMT */
    cr_assert_eq(rd(MSR), 0xb0); /* CTS | DSR | DCD, no deltas */
    cr_assert_eq(rd(SCR), 0);
    cr_assert_eq(rd(RBR), 0);
    cr_assert_eq(irqs, 0);
}

/* Every offset 0..7 (and beyond) x every size, DLAB off and on: reads of
 * side-effect-free registers match single-byte reads; bytes past port 7 read
 * as 0xff. */
Test(serial, read_sweep_all_offsets_and_sizes)
{
    static const unsigned sizes[] = {1, 2, 4, 8};
    for (int dlab = 0; dlab <= 1; dlab++) {
        wr(LCR, 0x80);
        wr(DLL, 0x34);
        wr(DLM, 0x12);
        wr(LCR, 0x03);
        wr(SCR, 0xa5);
        wr(MCR, 0x03);
        wr(LCR, dlab ? 0x83 : 0x03);
        uint8_t expect[8];
        for (unsigned r = 0; r < 8; r++)
            expect[r] = rd(r);
        cr_assert_eq(expect[0], dlab ? 0x34 : 0x00);
        cr_assert_eq(expect[1], dlab ? 0x12 : 0x00);
        cr_assert_eq(expect[3], dlab ? 0x83 : 0x03);
        cr_assert_eq(expect[7], 0xa5);
        for (unsigned off = 0; off < 12; off++) {
            for (unsigned k = 0; k < 4; k++) {
                uint8_t buf[8];
                memset(buf, 0x11, sizeof(buf));
                serial_pio_read(s, off, buf, sizes[k]);
                for (unsigned i = 0; i < sizes[k]; i++) {
                    uint8_t want = off + i < 8 ? expect[off + i] : 0xff;
                    cr_assert_eq(buf[i], want, "dlab %d off %u size %u byte %u: %#x != %#x", dlab,
                                 off, sizes[k], i, buf[i], want);
                }
            }
        }
    }
    uint8_t b[8];
    serial_pio_read(s, UINT64_MAX, b, 8); /* offset + i must not wrap into the registers */
    for (int i = 0; i < 8; i++)
        cr_assert_eq(b[i], 0xff);
    serial_pio_read(s, 0, b, 0);
}

Test(serial, write_sweep_keeps_device_sane)
{
    static const unsigned sizes[] = {1, 2, 4, 8};
    uint8_t junk[8] = {0xff, 0x00, 0xa5, 0x5a, 0xff, 0x13, 0xee, 0x7f};
    for (int dlab = 0; dlab <= 1; dlab++) {
        for (unsigned off = 0; off < 12; off++) {
            for (unsigned k = 0; k < 4; k++) {
                wr(LCR, dlab ? 0x80 : 0x00);
                serial_pio_write(s, off, junk, sizes[k]);
                uint8_t buf[8];
                serial_pio_read(s, off, buf, sizes[k]);
                wr(LCR, 0x00);
                cr_assert_eq(rd(LSR) & 0x60, 0x60); /* THR still empty */
                cr_assert_eq(rd(IER) & 0xf0, 0);
                cr_assert_eq(rd(MCR) & 0xe0, 0);
            }
        }
    }
    serial_pio_write(s, UINT64_MAX, junk, 8);
    serial_pio_write(s, 1000, junk, 8);
    serial_pio_write(s, 0, junk, 0);
    serial_device_ops.reset(s);
    cr_assert_eq(rd(LSR), 0x60);
}

/* A wide write behaves as consecutive byte writes (an 8-bit ISA device). */
Test(serial, wide_write_splits_into_ports)
{
    uint8_t v[4] = {0x83, 0x0b, 0x00, 0x00}; /* offset 3: LCR, MCR, LSR (ignored), MSR (ignored) */
    serial_pio_write(s, 3, v, 4);
    cr_assert_eq(rd(LCR), 0x83);
    cr_assert_eq(rd(MCR), 0x0b);
    cr_assert_eq(rd(LSR), 0x60);
    uint8_t d[2] = {0x01, 0x00};
    serial_pio_write(s, 0, d, 2); /* DLL=1, DLM=0: 115200 baud */
    uint16_t div;
    serial_pio_read(s, 0, &div, 2);
    cr_assert_eq(div, 1);
}

/* The checks Linux's 8250 autoconfig makes before it calls the port a 16550A. */
Test(serial, linux_autoconfig_sees_16550a)
{
    wr(IER, 0x00);
    cr_assert_eq(rd(IER) & 0x0f, 0);
    wr(IER, 0x0f);
    cr_assert_eq(rd(IER) & 0x0f, 0x0f);
    wr(IER, 0x00);
    wr(MCR, 0x10 | 0x0a); /* loopback test */
    cr_assert_eq(rd(MSR) & 0xf0, 0x90);
    wr(MCR, 0x00);
    wr(FCR, 0x01);
    cr_assert_eq(rd(IIR) >> 6, 3, "FIFOs work: 16550A family");
    wr(LCR, 0xbf);
    cr_assert_neq(rd(IIR), 0, "no EFR behind LCR=0xBF");
    wr(LCR, 0x00);
    wr(FCR, 0x21); /* 16750 64-byte FIFO bit, with and without DLAB */
    cr_assert_eq(rd(IIR) & 0xe0, 0xc0);
    wr(LCR, 0x80);
    wr(FCR, 0x21);
    cr_assert_eq(rd(IIR) & 0xe0, 0xc0, "not a 16750");
    wr(LCR, 0x00);
    wr(IER, 0x40);
    cr_assert_eq(rd(IER) & 0x40, 0, "not an XScale UART");
    wr(SCR, 0xa5);
    cr_assert_eq(rd(SCR), 0xa5);
}

Test(serial, divisor_latch)
{
    wr(IER, 0x05);
    wr(LCR, 0x80);
    wr(DLL, 0x0c);
    wr(DLM, 0xab);
    cr_assert_eq(rd(DLL), 0x0c);
    cr_assert_eq(rd(DLM), 0xab);
    wr(LCR, 0x03);
    cr_assert_eq(rd(IER), 0x05, "DLM write must not touch IER");
    wr(THR, 'x');
    wr(IER, 0x00);
    wr(LCR, 0x83);
    cr_assert_eq(rd(DLL), 0x0c, "THR write must not touch DLL");
    cr_assert_eq(rd(DLM), 0xab, "IER write must not touch DLM");
}

Test(serial, lcr_mcr_scr_ier_read_back)
{
    for (unsigned v = 0; v < 256; v++) {
        wr(LCR, (uint8_t)v);
        cr_assert_eq(rd(LCR), v);
        wr(LCR, 0);
        wr(SCR, (uint8_t)v);
        cr_assert_eq(rd(SCR), v);
        wr(MCR, (uint8_t)v);
        cr_assert_eq(rd(MCR), v & 0x1f);
        wr(IER, (uint8_t)v);
        cr_assert_eq(rd(IER), v & 0x0f);
    }
}

Test(serial, lsr_msr_writes_ignored)
{
    wr(LSR, 0xff);
    wr(MSR, 0xff);
    cr_assert_eq(rd(LSR), 0x60);
    cr_assert_eq(rd(MSR), 0xb0);
}

Test(serial, loopback_thr_to_rx)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_NONBLOCK), 0);
    struct serial *d = serial_create(p[1], NULL, NULL);
    uint8_t v = 0x10;
    serial_pio_write(d, MCR, &v, 1);
    v = 'A';
    serial_pio_write(d, THR, &v, 1);
    serial_pio_read(d, LSR, &v, 1);
    cr_assert_eq(v & 0x01, 0x01);
    serial_pio_read(d, RBR, &v, 1);
    cr_assert_eq(v, 'A');
    serial_pio_read(d, LSR, &v, 1);
    cr_assert_eq(v, 0x60);
    char buf[4];
    cr_assert_eq(read(p[0], buf, sizeof(buf)), -1, "loopback must not reach the output");
    cr_assert_eq(errno, EAGAIN);
    struct serial_stats st;
    serial_get_stats(d, &st);
    cr_assert_eq(st.tx_bytes, 0);
    serial_destroy(d);
    close(p[0]);
    close(p[1]);
}

Test(serial, loopback_mcr_drives_msr)
{
    /* Linux's autoconfig: MCR = LOOP | OUT2 | RTS must read MSR[7:4] = 0x90. */
    wr(MCR, 0x10 | 0x0a);
    uint8_t m = rd(MSR);
    cr_assert_eq(m & 0xf0, 0x90);
    cr_assert_eq(m & 0x0f, 0x02, "DSR dropped: DDSR only (%#x)", m);
    cr_assert_eq(rd(MSR) & 0x0f, 0, "deltas clear on read");
    wr(MCR, 0x10 | 0x01 | 0x04); /* DTR, OUT1 */
    m = rd(MSR);
    cr_assert_eq(m & 0xf0, 0x60);               /* DSR, RI */
    cr_assert_eq(m & 0x0f, 0x01 | 0x02 | 0x08); /* DCTS, DDSR, DDCD; RI rose: no TERI */
    wr(MCR, 0x10);
    m = rd(MSR);
    cr_assert_eq(m & 0xf0, 0x00);
    cr_assert_eq(m & 0x0f, 0x02 | 0x04, "RI fell: TERI (%#x)", m);
    wr(MCR, 0x00);
    cr_assert_eq(rd(MSR), 0xb0 | 0x01 | 0x02 | 0x08);
}

Test(serial, fifo_fill_then_overrun)
{
    wr(FCR, 0x07);
    wr(MCR, 0x10);
    for (int i = 0; i < 16; i++)
        wr(THR, (uint8_t)('a' + i));
    cr_assert_eq(rd(LSR), 0x61, "full FIFO, no overrun yet");
    wr(THR, 'X');
    cr_assert_eq(rd(LSR), 0x63, "17th byte overruns");
    cr_assert_eq(rd(LSR), 0x61, "OE clears on LSR read");
    for (int i = 0; i < 16; i++)
        cr_assert_eq(rd(RBR), 'a' + i, "FIFO keeps its bytes in order");
    cr_assert_eq(rd(LSR), 0x60);
    struct serial_stats st;
    serial_get_stats(s, &st);
    cr_assert_eq(st.overruns, 1);
}

Test(serial, holding_register_overrun_without_fifo)
{
    wr(MCR, 0x10);
    wr(THR, '1');
    wr(THR, '2');
    cr_assert_eq(rd(LSR), 0x63);
    cr_assert_eq(rd(RBR), '2', "without FIFO the new byte overwrites");
    cr_assert_eq(rd(LSR) & 0x01, 0);
}

Test(serial, fcr_clear_rx_and_iir_fifo_bits)
{
    cr_assert_eq(rd(IIR), 0x01);
    wr(FCR, 0x01);
    cr_assert_eq(rd(IIR), 0xc1);
    wr(MCR, 0x10);
    wr(THR, 'a');
    wr(THR, 'b');
    wr(FCR, 0x03);
    cr_assert_eq(rd(LSR) & 0x01, 0, "FCR bit 1 clears the RX FIFO");
    wr(THR, 'c');
    wr(FCR, 0x00);
    cr_assert_eq(rd(IIR), 0x01);
    cr_assert_eq(rd(LSR) & 0x01, 0, "disabling FIFOs resets them");
}

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

Test(serial, lost_bytes_on_full_pipe)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_NONBLOCK), 0);
    fcntl(p[1], F_SETPIPE_SZ, 4096);
    static char fill[4096];
    while (write(p[1], fill, sizeof(fill)) > 0)
        ;
    while (write(p[1], fill, 1) > 0)
        ;
    cr_assert_eq(errno, EAGAIN);
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

/* Drive a device into a busy state: FIFO with a wrapped head, queued input,
 * odd register values, a pending THRE interrupt and an active line. */
static void make_busy(void)
{
    wr(LCR, 0x80);
    wr(DLL, 0x03);
    wr(DLM, 0x01);
    wr(LCR, 0x1b);
    wr(SCR, 0x77);
    wr(FCR, 0x41);
    wr(MCR, 0x0b);
    static uint8_t in[100];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 7);
    serial_receive(s, in, sizeof(in));
    for (int i = 0; i < 5; i++)
        rd(RBR);
    wr(IER, 0x0a);
}

Test(serial, save_load_round_trip)
{
    make_busy();
    cr_assert_eq(irqs, 1);
    struct vstate_out a = save(s);
    struct serial *d = serial_create(-1, on_irq, &irqs);
    cr_assert_eq(load(d, a.buf, a.len), 0);
    cr_assert_eq(irqs, 1, "load does not raise");
    struct vstate_out b = save(d);
    cr_assert_eq(a.len, b.len);
    cr_assert_arr_eq(a.buf, b.buf, a.len);
    /* Same behaviour: every register, then every received byte. */
    uint8_t r1[8], r2[8];
    serial_pio_read(s, 0, r1, 8);
    serial_pio_read(d, 0, r2, 8);
    cr_assert_arr_eq(r1, r2, 8);
    for (int i = 0; i < 100; i++) {
        uint8_t x, y;
        serial_pio_read(s, RBR, &x, 1);
        serial_pio_read(d, RBR, &y, 1);
        cr_assert_eq(x, y, "byte %d", i);
    }
    vstate_out_free(&a);
    vstate_out_free(&b);
    serial_destroy(d);
}

Test(serial, save_load_loopback_fifo)
{
    wr(FCR, 0xc1);
    wr(MCR, 0x1f);
    for (int i = 0; i < 17; i++)
        wr(THR, (uint8_t)(0xf0 + i));
    serial_receive(s, (const uint8_t *)"queued", 6);
    struct vstate_out a = save(s);
    struct serial *d = serial_create(-1, NULL, NULL);
    cr_assert_eq(load(d, a.buf, a.len), 0);
    struct vstate_out b = save(d);
    cr_assert_eq(a.len, b.len);
    cr_assert_arr_eq(a.buf, b.buf, a.len);
    vstate_out_free(&a);
    vstate_out_free(&b);
    serial_destroy(d);
}

/* Field-by-field image of the version 1 layout, for building bad states. */
struct img {
    uint16_t version;
    uint8_t lcr, ier, mcr, fcr, lsr, msr, scr;
    uint16_t divisor;
    uint8_t flags, fifo_count;
    uint16_t q_count;
    bool trailing;
};

static const struct img good = {.version = 1, .msr = 0xb0, .divisor = 12};

static struct vstate_out build(const struct img *m)
{
    struct vstate_out o;
    vstate_out_init(&o);
    vstate_begin(&o, "serial", m->version);
    vstate_put_u8(&o, m->lcr);
    vstate_put_u8(&o, m->ier);
    vstate_put_u8(&o, m->mcr);
    vstate_put_u8(&o, m->fcr);
    vstate_put_u8(&o, m->lsr);
    vstate_put_u8(&o, m->msr);
    vstate_put_u8(&o, m->scr);
    vstate_put_u16(&o, m->divisor);
    vstate_put_u8(&o, m->flags);
    vstate_put_u8(&o, m->fifo_count);
    for (unsigned i = 0; i < m->fifo_count; i++)
        vstate_put_u8(&o, (uint8_t)i);
    vstate_put_u16(&o, m->q_count);
    for (unsigned i = 0; i < m->q_count; i++)
        vstate_put_u8(&o, (uint8_t)i);
    if (m->trailing)
        vstate_put_u8(&o, 0);
    cr_assert_eq(vstate_end(&o), 0);
    return o;
}

static void expect_refused(const struct img *m, const char *what)
{
    make_busy();
    struct vstate_out before = save(s);
    struct vstate_out bad = build(m);
    cr_assert_neq(load(s, bad.buf, bad.len), 0, "%s accepted", what);
    struct vstate_out after = save(s);
    cr_assert_eq(before.len, after.len, "%s changed the device", what);
    cr_assert_arr_eq(before.buf, after.buf, before.len, "%s changed the device", what);
    vstate_out_free(&before);
    vstate_out_free(&bad);
    vstate_out_free(&after);
}

Test(serial, builder_matches_format)
{
    struct vstate_out o = build(&good);
    cr_assert_eq(load(s, o.buf, o.len), 0);
    struct img m = good;
    m.fcr = 0x01;
    m.fifo_count = 16;
    m.q_count = SERIAL_INPUT_QUEUE;
    m.ier = 0x01;
    m.mcr = 0x08;
    m.flags = 0x02;
    vstate_out_free(&o);
    o = build(&m);
    cr_assert_eq(load(s, o.buf, o.len), 0, "full FIFO and queue are valid");
    cr_assert_eq(serial_rx_room(s), 0);
    vstate_out_free(&o);
}

Test(serial, load_refuses_corrupt_state)
{
    struct img m;
#define REFUSE(field, value)                                                                       \
    do {                                                                                           \
        m = good;                                                                                  \
        m.field = value;                                                                           \
        expect_refused(&m, #field " = " #value);                                                   \
    } while (0)
    REFUSE(version, 2);
    REFUSE(version, 0);
    REFUSE(trailing, true);
    REFUSE(fifo_count, 2);  /* FIFOs off: one holding register */
    REFUSE(fifo_count, 17); /* count > size even with FIFOs on */
    REFUSE(q_count, SERIAL_INPUT_QUEUE + 1);
    REFUSE(q_count, 1); /* queued input while the FIFO has room */
    REFUSE(ier, 0x10);
    REFUSE(mcr, 0x20);
    REFUSE(fcr, 0x02);
    REFUSE(lsr, 0x01);
    REFUSE(msr, 0x30); /* inputs disagree with MCR */
    REFUSE(flags, 0x04);
    REFUSE(flags, 0x01); /* THRE pending with ETBEI clear */
    REFUSE(flags, 0x02); /* line active with nothing pending */
#undef REFUSE
    m = good;
    m.fcr = 0x01;
    m.fifo_count = 17;
    expect_refused(&m, "fifo_count 17 with FIFOs on");
    m = good;
    m.ier = 0x02;
    m.mcr = 0x08;
    m.flags = 0x01; /* THRE pending and OUT2: the line must be active */
    expect_refused(&m, "inactive line with a source pending");
}

Test(serial, load_refuses_truncated_and_garbage)
{
    make_busy();
    struct vstate_out a = save(s);
    for (size_t n = 0; n < a.len; n += (n < 64 ? 1 : 97))
        cr_assert_neq(load(s, a.buf, n), 0, "truncated to %zu accepted", n);
    struct vstate_out b = save(s);
    cr_assert_arr_eq(a.buf, b.buf, a.len, "refused loads changed the device");
    /* Wrong section name. */
    struct vstate_out o;
    vstate_out_init(&o);
    vstate_begin(&o, "i8042", 1);
    cr_assert_eq(vstate_end(&o), 0);
    cr_assert_neq(load(s, o.buf, o.len), 0);
    vstate_out_free(&o);
    vstate_out_free(&a);
    vstate_out_free(&b);
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

/* Wired the way the VMM does it: one eight-port range at COM1. */
Test(serial, bus_range)
{
    struct bus b;
    bus_init(&b, "pio");
    cr_assert_eq(bus_register(&b, X86_COM1_PORT, SERIAL_PORT_LEN, "com1", serial_pio_read,
                              serial_pio_write, s),
                 0);
    uint8_t v = 0x10;
    cr_assert(bus_write(&b, X86_COM1_PORT + MCR, &v, 1));
    v = 'q';
    cr_assert(bus_write(&b, X86_COM1_PORT + THR, &v, 1));
    uint16_t lsr_msr;
    cr_assert(bus_read(&b, X86_COM1_PORT + LSR, &lsr_msr, 2));
    cr_assert_eq(lsr_msr & 0xff, 0x61);
    cr_assert(bus_read(&b, X86_COM1_PORT + RBR, &v, 1));
    cr_assert_eq(v, 'q');
    uint32_t l;
    cr_assert(bus_read(&b, X86_COM1_PORT + 4, &l, 4));
    cr_assert_not(bus_read(&b, X86_COM1_PORT + 6, &l, 4), "straddles the range end");
}
