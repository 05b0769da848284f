/*
 * Unit tests for the 16550A UART (devices/legacy/serial.c): the per-test
 * fixture, register semantics, FIFO and loopback, and the bus wiring.
 * Interrupts and host I/O are tested in test_serial_irq.c, save/load in
 * test_serial_state.c (same suite, same fixture).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "arch/x86_64/layout.h"
#include "devices/legacy/serial.h"
#include "tests/unit/devices/test_serial.h"
#include "vmm/bus.h"

struct serial *s;
int irqs;
int notifies;

void on_irq(void *opaque)
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

uint8_t rd(unsigned reg)
{
    uint8_t v = 0x5a;
    serial_pio_read(s, reg, &v, 1);
    return v;
}

void wr(unsigned reg, uint8_t v)
{
    serial_pio_write(s, reg, &v, 1);
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
