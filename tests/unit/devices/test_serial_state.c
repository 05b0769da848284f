/*
 * 16550A UART save/load (devices/legacy/serial_state.c): round trips of a
 * busy device, a builder for version 1 images, and refusal of corrupt,
 * truncated and foreign state without changing the device.  Part of the
 * "serial" suite; the fixture (a fresh UART per test) is test_serial.c's.
 */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <string.h>

#include "devices/legacy/serial.h"
#include "tests/unit/devices/test_serial.h"

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
