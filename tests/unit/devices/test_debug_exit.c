/* Unit tests for the debug-exit port: value masking, sizes, offsets, state. */
#include <criterion/criterion.h>

#include <string.h>

#include "arch/x86_64/layout.h"
#include "devices/legacy/debug_exit.h"
#include "vmm/bus.h"

static int calls;
static int last;

static void on_exit_cb(void *opaque, uint8_t status)
{
    cr_assert_eq(opaque, &calls);
    calls++;
    last = status;
}

static struct debug_exit *d;

static void setup(void)
{
    calls = 0;
    last = -1;
    d = debug_exit_create(on_exit_cb, &calls);
    cr_assert_not_null(d);
}

static void teardown(void)
{
    debug_exit_destroy(d);
}

TestSuite(debug_exit, .init = setup, .fini = teardown, .timeout = 10);

Test(debug_exit, value_is_masked_to_low_byte)
{
    uint8_t b1 = 0x50;
    debug_exit_pio_write(d, 0, &b1, 1);
    cr_assert_eq(calls, 1);
    cr_assert_eq(last, 0x50);

    uint16_t w = 0x1234;
    debug_exit_pio_write(d, 0, &w, 2);
    cr_assert_eq(last, 0x34);

    uint32_t l = 0xdeadbe51;
    debug_exit_pio_write(d, 0, &l, 4);
    cr_assert_eq(last, 0x51);

    uint64_t q = 0xffffffffffffff00ULL;
    debug_exit_pio_write(d, 0, &q, 8);
    cr_assert_eq(last, 0x00);
    cr_assert_eq(calls, 4);
}

Test(debug_exit, every_offset_and_size)
{
    static const unsigned sizes[] = {1, 2, 4, 8};
    for (unsigned off = 0; off < X86_DEBUG_EXIT_LEN; off++) {
        for (unsigned i = 0; i < 4; i++) {
            uint8_t b[8] = {(uint8_t)(0xa0 + off), 1, 2, 3, 4, 5, 6, 7};
            int before = calls;
            debug_exit_pio_write(d, off, b, sizes[i]);
            cr_assert_eq(calls, before + 1);
            cr_assert_eq(last, 0xa0 + (int)off);
            memset(b, 0x5a, sizeof(b));
            debug_exit_pio_read(d, off, b, sizes[i]);
            for (unsigned j = 0; j < sizes[i]; j++)
                cr_assert_eq(b[j], 0, "reads return 0");
            cr_assert_eq(b[sizes[i] < 8 ? sizes[i] : 7], sizes[i] < 8 ? 0x5a : 0,
                         "no write past len");
        }
    }
    uint8_t z = 7;
    int before = calls;
    debug_exit_pio_write(d, 0, &z, 0);
    cr_assert_eq(calls, before, "an empty write is not a write");
}

Test(debug_exit, without_callback)
{
    struct debug_exit *n = debug_exit_create(NULL, NULL);
    uint8_t v = 1;
    debug_exit_pio_write(n, 0, &v, 1);
    debug_exit_destroy(n);
}

Test(debug_exit, empty_state)
{
    struct vstate_out o;
    vstate_out_init(&o);
    cr_assert_eq(debug_exit_device_ops.save(d, &o), 0);
    struct vstate_in in;
    vstate_in_init(&in, o.buf, o.len);
    cr_assert_eq(debug_exit_device_ops.load(d, &in), 0);
    for (size_t n = 0; n < o.len; n++) {
        vstate_in_init(&in, o.buf, n);
        cr_assert_neq(debug_exit_device_ops.load(d, &in), 0, "truncated to %zu accepted", n);
    }
    vstate_out_free(&o);

    vstate_out_init(&o);
    vstate_begin(&o, "debug_exit", 1);
    vstate_put_u8(&o, 0);
    cr_assert_eq(vstate_end(&o), 0);
    vstate_in_init(&in, o.buf, o.len);
    cr_assert_neq(debug_exit_device_ops.load(d, &in), 0, "payload byte accepted");
    vstate_out_free(&o);

    vstate_out_init(&o);
    vstate_begin(&o, "debug_exit", 2);
    cr_assert_eq(vstate_end(&o), 0);
    vstate_in_init(&in, o.buf, o.len);
    cr_assert_neq(debug_exit_device_ops.load(d, &in), 0, "version 2 accepted");
    vstate_out_free(&o);
    debug_exit_device_ops.reset(d);
    cr_assert_eq(calls, 0);
}

Test(debug_exit, through_the_bus)
{
    struct bus b;
    bus_init(&b, "pio");
    cr_assert_eq(bus_register(&b, X86_DEBUG_EXIT_PORT, X86_DEBUG_EXIT_LEN, "debug-exit",
                              debug_exit_pio_read, debug_exit_pio_write, d),
                 0);
    uint32_t v = 0x151; /* outl GUEST_FAIL-style value with high bits set */
    cr_assert(bus_write(&b, X86_DEBUG_EXIT_PORT, &v, 4));
    cr_assert_eq(last, 0x51);
    uint16_t w = 0x0250;
    cr_assert(bus_write(&b, X86_DEBUG_EXIT_PORT + 2, &w, 2));
    cr_assert_eq(last, 0x50);
    cr_assert_eq(calls, 2);
    cr_assert(bus_read(&b, X86_DEBUG_EXIT_PORT, &v, 4));
    cr_assert_eq(v, 0);
}
