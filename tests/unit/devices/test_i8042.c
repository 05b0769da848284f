/*
 * Unit tests for the i8042 and its keyboard: reset on command 0xFE only, the
 * command byte round trip and the keyboard probe Linux depends on, IRQ 1
 * only when the guest enabled it, Ctrl+Alt+Del in both scancode sets, odd
 * access sizes and offsets, and save/load (both versions) with refusal of
 * bad state.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "arch/x86_64/layout.h"
#include "devices/legacy/i8042.h"
#include "vmm/bus.h"

static struct i8042 *k;
static int resets, irqs;

static void on_reset(void *opaque)
{
    cr_assert_eq(opaque, &resets);
    resets++;
}

static void on_irq(void *opaque)
{
    cr_assert_eq(opaque, &resets);
    irqs++;
}

static const struct i8042_ops ops = {.reset = on_reset, .irq = on_irq};

static void setup(void)
{
    resets = irqs = 0;
    k = i8042_create(&ops, &resets);
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
    put(0x99); /* no command pending: a keyboard command (unknown: it answers 0xFE) */
    cmd(0x20);
    cr_assert_eq(data(), 0x61);
    cr_assert_eq(data(), 0xfe, "the keyboard's answer, displaced by the controller's");
    /* A new command abandons a pending 0x60. */
    cmd(0x60);
    cmd(0xaa);
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
        uint8_t p[8];
        size_t n;
        const char *what;
    } bad[] = {
        {3, {0x44, 0, 0, 0, 0, 0}, 6, "bad version"},
        {1, {0x44, 0, 0, 0}, 4, "version 1 (before the keyboard)"},
        {2, {0x44, 0, 0, 0, 0}, 5, "version 2 without the queue length"},
        {2, {0x44, 0, 0, 0, 0, 17}, 6, "queue longer than the keyboard's"},
        {2, {0x44, 0x10, 0, 0, 0, 0}, 6, "reserved flag"},
        {2, {0x44, 0, 0, 0, 0xf2, 0}, 6, "keyboard command that takes no parameter"},
        {2, {0x44, 0x04, 0, 0, 0, 0}, 6, "keyboard byte in an empty buffer"},
        {2, {0x44, 0, 0, 0, 0, 1, 0x1d}, 7, "queued byte not in an empty, enabled buffer"},
        {2, {0x44, 0, 0, 0, 0, 2, 0x1d}, 7, "queue shorter than its length"},
        {2, {0x44, 0, 0}, 3, "short payload"},
        {2, {0x44, 0, 0, 0, 0, 0, 0}, 7, "trailing byte"},
        {2, {0x44, 0x40, 0, 0, 0, 0}, 6, "another reserved flag"},
        {2, {0x44, 0, 0x12, 0, 0, 0}, 6, "byte in an empty buffer"},
        {2, {0x44, 0, 0, 0x20, 0, 0}, 6, "unknown pending command"},
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
    uint8_t ok[6] = {0x44, 0x03, 0x12, 0x60, 0, 0};
    struct vstate_out o = build(2, ok, 6);
    cr_assert_eq(load(o.buf, o.len), 0, "builder matches the format");
    vstate_out_free(&o);
    /* Version 2: a keyboard byte in the buffer, two waiting behind it, parameter of 0xED due. */
    uint8_t ok2[8] = {0x45, 0x05, 0x1d, 0, 0xed, 2, 0x38, 0xe0};
    o = build(2, ok2, 8);
    cr_assert_eq(load(o.buf, o.len), 0, "builder matches the format (version 2)");
    vstate_out_free(&o);
    cr_assert_eq(data(), 0x1d);
    cr_assert_eq(data(), 0x38);
    cr_assert_eq(data(), 0xe0);
    cr_assert_eq(irqs, 2, "the keyboard interrupt is enabled in the loaded command byte");
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

/* Read everything the keyboard has to say, at most n bytes. */
static size_t drain(uint8_t *out, size_t n)
{
    size_t got = 0;
    while (got < n && (status() & 0x01))
        out[got++] = data();
    return got;
}

/* Linux's i8042 driver: enable the keyboard interrupt (command byte bit 0). */
static void enable_kbd_irq(uint8_t ctr)
{
    cmd(0x60);
    put(ctr);
}

Test(i8042, controller_self_tests)
{
    cmd(0xaa);
    cr_assert_eq(data(), 0x55, "controller self test passed");
    cmd(0xab);
    cr_assert_eq(data(), 0x00, "keyboard interface test passed");
    cmd(0xa9);
    cr_assert_eq(data(), 0x02, "aux test: no mouse (Linux then leaves the aux port alone)");
    cmd(0xd0);
    cr_assert_eq(data() & 0x01, 0x01, "output port: reset line not asserted");
    cr_assert_eq(irqs, 0, "controller answers do not interrupt");
    cr_assert_eq(resets, 0);
}

Test(i8042, keyboard_identify_translated_with_irqs)
{
    enable_kbd_irq(0x47); /* KBDINT | SYSFLAG | XLATE */
    put(0xf2);
    cr_assert_eq(irqs, 1, "ACK reached the buffer: one edge");
    cr_assert_eq(status() & 0x21, 0x01, "output full, not aux data");
    cr_assert_eq(data(), 0xfa);
    cr_assert_eq(irqs, 2, "next byte, next edge");
    cr_assert_eq(data(), 0xab);
    cr_assert_eq(data(), 0x41, "MF2 id as the translating controller passes it");
    cr_assert_eq(irqs, 3);
    cr_assert_eq(status() & 0x01, 0);
    cr_assert_eq(data(), 0, "empty buffer reads 0");
    cr_assert_eq(irqs, 3);
}

Test(i8042, keyboard_identify_untranslated_without_irq)
{
    enable_kbd_irq(0x04); /* interrupts off, translation off: the polling probe */
    put(0xf2);
    uint8_t b[4];
    cr_assert_eq(drain(b, 4), 3);
    cr_assert_eq(b[0], 0xfa);
    cr_assert_eq(b[1], 0xab);
    cr_assert_eq(b[2], 0x83);
    cr_assert_eq(irqs, 0, "no interrupt while the command byte disables it");
}

Test(i8042, keyboard_commands_linux_sends)
{
    static const struct {
        uint8_t cmd[2];
        unsigned n;
        uint8_t want[4];
        unsigned nwant;
    } seq[] = {
        {{0xf5}, 1, {0xfa}, 1},                   /* reset and disable scanning */
        {{0xed, 0x00}, 2, {0xfa, 0xfa}, 2},       /* LEDs */
        {{0xf3, 0x00}, 2, {0xfa, 0xfa}, 2},       /* typematic rate */
        {{0xf0, 0x00}, 2, {0xfa, 0xfa, 0x41}, 3}, /* which scan set: 2, translated */
        {{0xf0, 0x02}, 2, {0xfa, 0xfa}, 2},
        {{0xf4}, 1, {0xfa}, 1},
        {{0xf6}, 1, {0xfa}, 1},
        {{0xee}, 1, {0xee}, 1},
        {{0xff}, 1, {0xfa, 0xaa}, 2},
        {{0x5a}, 1, {0xfe}, 1}, /* unknown: resend */
    };
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        uint8_t got[8];
        size_t n = 0;
        for (unsigned j = 0; j < seq[i].n; j++) {
            put(seq[i].cmd[j]);
            n += drain(got + n, sizeof(got) - n);
        }
        cr_assert_eq(n, seq[i].nwant, "command 0x%02x: %zu bytes", seq[i].cmd[0], n);
        cr_assert_arr_eq(got, seq[i].want, n, "command 0x%02x answers", seq[i].cmd[0]);
    }
}

Test(i8042, ctrl_alt_del_set1_when_translating)
{
    enable_kbd_irq(0x45); /* KBDINT | SYSFLAG | XLATE: Linux's usual command byte */
    cr_assert_eq(i8042_send_ctrl_alt_del(k), 0);
    const uint8_t want[] = {0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d};
    uint8_t got[16];
    cr_assert_eq(drain(got, sizeof(got)), sizeof(want));
    cr_assert_arr_eq(got, want, sizeof(want), "Ctrl, Alt, Del down, then up (set 1)");
    cr_assert_eq(irqs, (int)sizeof(want), "one edge per byte");
    cr_assert_eq(resets, 0, "the guest decides what Ctrl+Alt+Del does");
}

Test(i8042, ctrl_alt_del_set2_without_translation)
{
    enable_kbd_irq(0x05);
    cr_assert_eq(i8042_send_ctrl_alt_del(k), 0);
    const uint8_t want[] = {0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14};
    uint8_t got[16];
    cr_assert_eq(drain(got, sizeof(got)), sizeof(want));
    cr_assert_arr_eq(got, want, sizeof(want), "Ctrl, Alt, Del down, then up (set 2)");
}

Test(i8042, ctrl_alt_del_waits_for_an_enabled_keyboard)
{
    enable_kbd_irq(0x55); /* KBDDIS set: the keyboard clock is off */
    cr_assert_eq(i8042_send_ctrl_alt_del(k), 0);
    cr_assert_eq(status() & 0x01, 0, "nothing reaches the buffer while disabled");
    cr_assert_eq(irqs, 0);
    cmd(0xae);
    cr_assert_eq(irqs, 1, "enabling lets the first byte in");
    cr_assert_eq(data(), 0x1d);
    cmd(0xad);
    cr_assert_eq(data(), 0x38, "a byte already in the buffer stays readable");
    cr_assert_eq(status() & 0x01, 0, "the next one waits in the keyboard");
    cmd(0xae);
    cr_assert_eq(data(), 0xe0);
}

Test(i8042, ctrl_alt_del_refused_with_scanning_off)
{
    put(0xf5);
    cr_assert_eq(data(), 0xfa);
    cr_assert_eq(i8042_send_ctrl_alt_del(k), -ENODEV);
    cr_assert_eq(status() & 0x01, 0, "nothing sent");
    put(0xf4);
    cr_assert_eq(data(), 0xfa);
    cr_assert_eq(i8042_send_ctrl_alt_del(k), 0);
}

Test(i8042, ctrl_alt_del_never_partial_when_the_guest_does_not_read)
{
    int sent = 0;
    while (i8042_send_ctrl_alt_del(k) == 0)
        cr_assert_lt(++sent, 10, "the keyboard's queue is bounded");
    cr_assert_eq(i8042_send_ctrl_alt_del(k), -EAGAIN);
    uint8_t got[64];
    size_t n = drain(got, sizeof(got));
    cr_assert_eq(n, (size_t)sent * 8, "%d whole chords, nothing in between", sent);
    for (int i = 0; i < sent; i++)
        cr_assert_eq(got[i * 8], 0x1d);
    cr_assert_eq(i8042_send_ctrl_alt_del(k), 0, "room again once read");
}

Test(i8042, controller_answer_displaces_a_keyboard_byte)
{
    enable_kbd_irq(0x45);
    cr_assert_eq(i8042_send_ctrl_alt_del(k), 0);
    cmd(0x20);
    cr_assert_eq(data(), 0x45, "the command byte first");
    cr_assert_eq(data(), 0x1d, "then the keyboard byte it displaced");
    cr_assert_eq(data(), 0x38);
}

Test(i8042, keyboard_reset_forgets_queued_bytes)
{
    cr_assert_eq(i8042_send_ctrl_alt_del(k), 0);
    cr_assert_eq(data(), 0x1d);
    put(0xff);
    uint8_t got[16];
    cr_assert_eq(drain(got, sizeof(got)), 3);
    cr_assert_eq(got[0], 0x38, "already in the controller's buffer");
    cr_assert_eq(got[1], 0xfa);
    cr_assert_eq(got[2], 0xaa);
}

Test(i8042, write_keyboard_buffer_and_aux_bytes)
{
    enable_kbd_irq(0x45);
    cmd(0xd2);
    put(0x77);
    cr_assert_eq(irqs, 1, "0xD2 data appears as a keyboard byte");
    cr_assert_eq(data(), 0x77);
    cmd(0xd3);
    put(0x5a); /* aux loopback: no mouse, swallowed, not a keyboard command */
    cmd(0xd4);
    put(0xff); /* to the mouse: swallowed, the keyboard does not reset */
    cr_assert_eq(status() & 0x01, 0);
    cmd(0xa7);
    cmd(0x20);
    cr_assert_eq(data() & 0x20, 0x20, "0xA7 sets the aux-disable bit");
    cmd(0xa8);
    cmd(0x20);
    cr_assert_eq(data() & 0x20, 0, "0xA8 clears it");
}

Test(i8042, save_load_keeps_the_keyboard_mid_chord)
{
    enable_kbd_irq(0x45);
    cr_assert_eq(i8042_send_ctrl_alt_del(k), 0);
    cr_assert_eq(data(), 0x1d);
    cr_assert_eq(data(), 0x38);
    put(0xed); /* LEDs, parameter not yet sent: the ACK joins the queue */
    struct vstate_out a = save();
    struct i8042 *src = k;
    k = i8042_create(&ops, &resets);
    cr_assert_eq(load(a.buf, a.len), 0);
    struct vstate_out b = save();
    cr_assert_eq(a.len, b.len);
    cr_assert_arr_eq(a.buf, b.buf, a.len);
    const uint8_t want[] = {0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d, 0xfa};
    uint8_t got[16];
    cr_assert_eq(drain(got, sizeof(got)), sizeof(want));
    cr_assert_arr_eq(got, want, sizeof(want));
    put(0x00);
    cr_assert_eq(data(), 0xfa, "the LED parameter was still due after the load");
    i8042_destroy(k);
    k = src;
    vstate_out_free(&a);
    vstate_out_free(&b);
}
