/*
 * Unit tests for the minimal i8042: reset on command 0xFE only, the command
 * byte round trip Linux's probe depends on, odd access sizes and offsets,
 * and save/load with refusal of bad state.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "arch/x86_64/layout.h"
#include "devices/legacy/i8042.h"
#include "vmm/bus.h"

static struct i8042 *k;
static int resets;

static void on_reset(void *opaque)
{
    cr_assert_eq(opaque, &resets);
    resets++;
}

static void setup(void)
{
    resets = 0;
    k = i8042_create(on_reset, &resets);
    cr_assert_not_null(k);
}

static void teardown(void)
{
    i8042_destroy(k);
}

TestSuite(i8042, .init = setup, .fini = teardown, .timeout = 10);

static uint8_t status(void)
{
    uint8_t v;
    i8042_cmd_read(k, 0, &v, 1);
    return v;
}

static uint8_t data(void)
{
    uint8_t v;
    i8042_data_read(k, 0, &v, 1);
    return v;
}

static void cmd(uint8_t v)
{
    i8042_cmd_write(k, 0, &v, 1);
}

static void put(uint8_t v)
{
    i8042_data_write(k, 0, &v, 1);
}

static struct vstate_out save(void)
{
    struct vstate_out o;
    vstate_out_init(&o);
    cr_assert_eq(i8042_device_ops.save(k, &o), 0);
    return o;
}

static int load(const void *buf, size_t len)
{
    struct vstate_in in;
    vstate_in_init(&in, buf, len);
    return i8042_device_ops.load(k, &in);
}

Test(i8042, power_on_status)
{
    uint8_t st = status();
    cr_assert_eq(st & 0x01, 0, "output buffer empty");
    cr_assert_eq(st & 0x02, 0, "input buffer empty (Linux's kb_wait spins on it)");
    cr_assert_eq(st & 0x04, 0x04, "system flag");
    cr_assert_eq(data(), 0);
}

Test(i8042, reset_on_0xfe_only)
{
    for (unsigned c = 0; c < 256; c++) {
        if (c == 0xfe)
            continue;
        cmd((uint8_t)c);
        put(0x00); /* complete any command that waits for data */
    }
    cr_assert_eq(resets, 0);
    cmd(0xfe);
    cr_assert_eq(resets, 1);
    put(0xfe);
    cr_assert_eq(resets, 1, "0xFE on the data port is a keyboard byte");
}

Test(i8042, command_byte_round_trip)
{
    cmd(0x20);
    cr_assert_eq(status() & 0x09, 0x09, "OBF, last write was a command");
    cr_assert_eq(data(), 0x44, "power-on command byte");
    cr_assert_eq(status() & 0x01, 0, "reading the data port empties the buffer");
    cr_assert_eq(data(), 0);
    cmd(0x60);
    put(0x61);
    cr_assert_eq(status() & 0x08, 0, "last write was data");
    cr_assert_eq(status() & 0x04, 0, "system flag follows command byte bit 2");
    cmd(0x20);
    cr_assert_eq(data(), 0x61);
    put(0x99); /* no command pending: a keyboard byte, ignored */
    cmd(0x20);
    cr_assert_eq(data(), 0x61);
    /* A new command abandons a pending 0x60. */
    cmd(0x60);
    cmd(0xad);
    put(0x12);
    cmd(0x20);
    cr_assert_eq(data(), 0x61);
    cr_assert_eq(resets, 0);
}

Test(i8042, odd_sizes_and_offsets)
{
    static const unsigned sizes[] = {2, 4, 8};
    for (unsigned i = 0; i < 3; i++) {
        uint8_t b[8];
        memset(b, 0, sizeof(b));
        i8042_cmd_read(k, 0, b, sizes[i]);
        cr_assert_eq(b[0], status());
        for (unsigned j = 1; j < sizes[i]; j++)
            cr_assert_eq(b[j], 0xff);
        i8042_data_read(k, 0, b, sizes[i]);
        cr_assert_eq(b[0], 0);
        for (unsigned j = 1; j < sizes[i]; j++)
            cr_assert_eq(b[j], 0xff);
    }
    uint8_t b[8] = {0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe};
    i8042_cmd_write(k, 1, b, 1);
    i8042_cmd_write(k, UINT64_MAX, b, 8);
    i8042_cmd_write(k, 0, b, 0);
    cr_assert_eq(resets, 0, "offsets other than 0 are not the command port");
    i8042_cmd_read(k, 3, b, 4);
    for (int j = 0; j < 4; j++)
        cr_assert_eq(b[j], 0xff);
    i8042_cmd_read(k, 0, b, 0);
    b[0] = 0xfe;
    b[1] = 0x00;
    i8042_cmd_write(k, 0, b, 2); /* a wide write still carries the command in byte 0 */
    cr_assert_eq(resets, 1);
    uint8_t w[4] = {0x60, 0, 0, 0};
    i8042_cmd_write(k, 0, w, 4);
    w[0] = 0x47;
    i8042_data_write(k, 0, w, 4);
    cmd(0x20);
    cr_assert_eq(data(), 0x47);
}

Test(i8042, reset_device_restores_power_on_state)
{
    cmd(0x60);
    put(0x00);
    cmd(0x20);
    i8042_device_ops.reset(k);
    cr_assert_eq(status() & 0x01, 0);
    cmd(0x20);
    cr_assert_eq(data(), 0x44);
    cr_assert_eq(resets, 0);
}

Test(i8042, save_load_round_trip)
{
    cmd(0x60);
    put(0x37);
    cmd(0x20); /* leave the response pending */
    struct vstate_out a = save();
    struct i8042 *src = k;
    k = i8042_create(NULL, NULL);
    cr_assert_eq(load(a.buf, a.len), 0);
    struct vstate_out b = save();
    cr_assert_eq(a.len, b.len);
    cr_assert_arr_eq(a.buf, b.buf, a.len);
    cr_assert_eq(status() & 0x01, 0x01);
    cr_assert_eq(data(), 0x37);
    i8042_destroy(k);
    k = src;
    vstate_out_free(&a);
    vstate_out_free(&b);

    /* A pending 0x60 survives too. */
    cmd(0x60);
    a = save();
    i8042_device_ops.reset(k);
    cr_assert_eq(load(a.buf, a.len), 0);
    put(0x11);
    cmd(0x20);
    cr_assert_eq(data(), 0x11);
    vstate_out_free(&a);
}

static struct vstate_out build(uint16_t version, const uint8_t *payload, size_t n)
{
    struct vstate_out o;
    vstate_out_init(&o);
    vstate_begin(&o, "i8042", version);
    vstate_put_bytes(&o, payload, n);
    cr_assert_eq(vstate_end(&o), 0);
    return o;
}

Test(i8042, load_refuses_bad_state)
{
    static const struct {
        uint16_t version;
        uint8_t p[5];
        size_t n;
        const char *what;
    } bad[] = {
        {2, {0x44, 0, 0, 0}, 4, "bad version"},
        {1, {0x44, 0, 0}, 3, "short payload"},
        {1, {0x44, 0, 0, 0, 0}, 5, "trailing byte"},
        {1, {0x44, 0x04, 0, 0}, 4, "reserved flag"},
        {1, {0x44, 0, 0x12, 0}, 4, "byte in an empty buffer"},
        {1, {0x44, 0, 0, 0x20}, 4, "unknown pending command"},
    };
    cmd(0x60);
    put(0x3c);
    cmd(0x20);
    struct vstate_out before = save();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct vstate_out o = build(bad[i].version, bad[i].p, bad[i].n);
        cr_assert_neq(load(o.buf, o.len), 0, "%s accepted", bad[i].what);
        vstate_out_free(&o);
        struct vstate_out now = save();
        cr_assert_arr_eq(before.buf, now.buf, before.len, "%s changed the device", bad[i].what);
        vstate_out_free(&now);
    }
    for (size_t n = 0; n < before.len; n++)
        cr_assert_neq(load(before.buf, n), 0, "truncated to %zu accepted", n);
    uint8_t ok[4] = {0x44, 0x03, 0x12, 0x60};
    struct vstate_out o = build(1, ok, 4);
    cr_assert_eq(load(o.buf, o.len), 0, "builder matches the format");
    vstate_out_free(&o);
    vstate_out_free(&before);
}

/* Wired the way the VMM does it: two one-port ranges, leaving 0x61-0x63 free. */
Test(i8042, bus_ranges)
{
    struct bus b;
    bus_init(&b, "pio");
    cr_assert_eq(bus_register(&b, X86_I8042_DATA_PORT, I8042_PORT_LEN, "i8042-data",
                              i8042_data_read, i8042_data_write, k),
                 0);
    cr_assert_eq(bus_register(&b, X86_I8042_CMD_PORT, I8042_PORT_LEN, "i8042-cmd", i8042_cmd_read,
                              i8042_cmd_write, k),
                 0);
    cr_assert_eq(bus_register(&b, 0x61, 1, "speaker", NULL, NULL, NULL), 0, "0x61 stays free");
    uint8_t v = 0x20;
    cr_assert(bus_write(&b, X86_I8042_CMD_PORT, &v, 1));
    cr_assert(bus_read(&b, X86_I8042_DATA_PORT, &v, 1));
    cr_assert_eq(v, 0x44);
    uint16_t w = 0x00fe;
    cr_assert_not(bus_write(&b, X86_I8042_CMD_PORT, &w, 2), "a wide access does not fit");
    cr_assert_eq(resets, 0);
    v = 0xfe;
    cr_assert(bus_write(&b, X86_I8042_CMD_PORT, &v, 1));
    cr_assert_eq(resets, 1);
}
