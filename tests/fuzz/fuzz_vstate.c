/*
 * Fuzz target: the section-framed state format (migration/vstate.c) and the
 * legacy devices' state decoders (serial, i8042) on top of it.
 *
 * Why: a snapshot or migration stream is untrusted (security.md G2/G3): a
 * compromised source host controls every byte, so every length, count and
 * index in it must be bounded before use, and a decoder must accept only what
 * an encoder could have produced.
 *
 * The first byte picks a mode, the rest is its input:
 *   0  serial state blob        1  i8042 state blob
 *   2  a stream: serial section, then i8042 section (one vstate_in)
 *   3  writer program: vstate_out calls, read back with the same calls
 *   4  reader program over arbitrary bytes: le16 program length, program,
 *      then the blob it reads
 * Device modes check the round-trip property: a blob that loads re-encodes
 * to the same bytes (the encoding is canonical), the re-encoding loads
 * again, and the loaded device survives guest accesses and saves again.
 * Program modes check the reader's invariants (pos <= end <= len, sticky
 * errors, zero-filled failed reads) and that what was written reads back.
 */
#include "tests/fuzz/fuzz.h"

#include <errno.h>

#include "devices/legacy/i8042.h"
#include "devices/legacy/serial.h"
#include "migration/vstate.h"

enum { FZ_SERIAL, FZ_I8042, FZ_STREAM, FZ_WRITER, FZ_READER, FZ_NMODES };

#define FZ_MAX_STEPS 512

static const char *const fz_names[] = {
    "serial", "i8042", "virtio", "x", "0123456789abcdef", "0123456789abcdefg", ""};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* One device type, seen through its device_ops and a bus-like access pair. */
struct fz_dev {
    const struct device_ops *ops;
    void *(*create)(void);
    void (*destroy)(void *);
    void (*exercise)(void *);
};

static void *fz_serial_new(void)
{
    return serial_create(-1, NULL, NULL);
}

static void fz_serial_free(void *d)
{
    serial_destroy(d);
}

/* Guest and host activity on a freshly loaded UART: drains, refills, transmits. */
static void fz_serial_exercise(void *d)
{
    static const char input[] = "restored UART input, longer than the FIFO";
    uint8_t v;
    for (unsigned round = 0; round < 2; round++) {
        for (unsigned reg = 0; reg < SERIAL_PORT_LEN; reg++)
            for (unsigned i = 0; i < 20; i++)
                serial_pio_read(d, reg, &v, 1);
        (void)serial_receive(d, (const uint8_t *)input, sizeof(input) - 1);
        v = 'x';
        serial_pio_write(d, 0, &v, 1);
    }
}

static void *fz_i8042_new(void)
{
    return i8042_create(NULL, NULL);
}

static void fz_i8042_free(void *d)
{
    i8042_destroy(d);
}

static void fz_i8042_exercise(void *d)
{
    uint8_t v = 0;
    i8042_cmd_read(d, 0, &v, 1);
    i8042_data_read(d, 0, &v, 1);
    v = 0x42;
    i8042_data_write(d, 0, &v, 1);
    i8042_cmd_read(d, 0, &v, 1);
}

static const struct fz_dev fz_devs[] = {
    {&serial_device_ops, fz_serial_new, fz_serial_free, fz_serial_exercise},
    {&i8042_device_ops, fz_i8042_new, fz_i8042_free, fz_i8042_exercise},
};

static void fz_save(const struct fz_dev *t, void *d, struct vstate_out *o)
{
    vstate_out_init(o);
    FZ_CHECK(t->ops->save(d, o) == 0, "%s: save failed", t->ops->type);
}

/*
 * Load one section from `in`.  If it is accepted: the re-encoding equals the
 * consumed bytes and loads again to the same encoding; the device then takes
 * guest accesses and still saves a state that loads.
 */
static int fz_load_check(const struct fz_dev *t, struct vstate_in *in)
{
    void *d = t->create();
    FZ_CHECK(d, "%s: create failed", t->ops->type);
    size_t start = in->pos;
    int r = t->ops->load(d, in);
    if (r < 0) {
        FZ_CHECK(r == -EBADMSG || r == -EPROTO || r == -EINVAL || r == -E2BIG || r == -ENOSPC,
                 "%s: unexpected load error %d", t->ops->type, r);
        t->destroy(d);
        return r;
    }
    FZ_CHECK(r == 0 && in->err == 0, "%s: load returned %d with in->err %d", t->ops->type, r,
             in->err);

    struct vstate_out a, b;
    fz_save(t, d, &a);
    FZ_CHECK(a.len == in->pos - start && !memcmp(a.buf, in->buf + start, a.len),
             "%s: accepted a non-canonical encoding (%zu bytes read, %zu written)", t->ops->type,
             in->pos - start, a.len);

    void *d2 = t->create();
    struct vstate_in in2;
    vstate_in_init(&in2, a.buf, a.len);
    FZ_CHECK(t->ops->load(d2, &in2) == 0, "%s: own encoding does not load", t->ops->type);
    fz_save(t, d2, &b);
    FZ_CHECK(a.len == b.len && !memcmp(a.buf, b.buf, a.len), "%s: encode(decode(x)) unstable",
             t->ops->type);
    vstate_out_free(&b);

    t->exercise(d2);
    fz_save(t, d2, &b);
    vstate_in_init(&in2, b.buf, b.len);
    FZ_CHECK(t->ops->load(d, &in2) == 0, "%s: state after guest accesses does not load",
             t->ops->type);

    vstate_out_free(&a);
    vstate_out_free(&b);
    t->destroy(d2);
    t->destroy(d);
    return 0;
}

/* Reader invariants that must hold after any call. */
static void fz_check_in(const struct vstate_in *in, int prev_err)
{
    FZ_CHECK(in->pos <= in->end && in->end <= in->len, "pos %zu end %zu len %zu", in->pos, in->end,
             in->len);
    FZ_CHECK(!prev_err || in->err == prev_err, "error %d replaced by %d", prev_err, in->err);
    FZ_CHECK(in->err <= 0, "positive error %d", in->err);
}

/* Mode 4: a program of reader calls over arbitrary bytes. */
static void fz_reader(struct fz_in *f)
{
    size_t plen = fz_u16(f), blen;
    struct fz_in prog;
    size_t got;
    const uint8_t *p = fz_take(f, plen, &got);
    fz_init(&prog, p, got);
    const uint8_t *blob = fz_take(f, fz_left(f), &blen);

    struct vstate_in in;
    vstate_in_init(&in, blob, blen);
    for (unsigned n = 0; n < FZ_MAX_STEPS && fz_left(&prog); n++) {
        int prev = in.err;
        uint8_t op = fz_u8(&prog);
        uint16_t ver = 0xdead;
        switch (op % 7) {
        case 0: {
            const char *name = fz_names[fz_u8(&prog) % ARRAY_SIZE(fz_names)];
            uint16_t lo = fz_u16(&prog), hi = fz_u16(&prog);
            int r = vstate_enter(&in, name, lo, hi, &ver);
            FZ_CHECK(r == in.err, "enter returned %d, err %d", r, in.err);
            if (r == 0)
                FZ_CHECK(ver >= lo && ver <= hi, "version %u outside [%u, %u]", ver, lo, hi);
            break;
        }
        case 1:
            FZ_CHECK(vstate_leave(&in) == in.err, "leave result");
            break;
        case 2:
            if (vstate_get_u8(&in) != 0)
                FZ_CHECK(!in.err, "non-zero u8 after an error");
            break;
        case 3:
            if (vstate_get_u16(&in) != 0)
                FZ_CHECK(!in.err, "non-zero u16 after an error");
            break;
        case 4:
            if (vstate_get_u32(&in) != 0)
                FZ_CHECK(!in.err, "non-zero u32 after an error");
            break;
        case 5:
            if (vstate_get_u64(&in) != 0)
                FZ_CHECK(!in.err, "non-zero u64 after an error");
            break;
        default: {
            size_t n16 = fz_u16(&prog);
            uint8_t *buf = malloc(n16 ? n16 : 1);
            memset(buf, 0x5a, n16);
            vstate_get_bytes(&in, buf, n16);
            if (in.err)
                for (size_t i = 0; i < n16; i++)
                    FZ_CHECK(buf[i] == 0, "failed get_bytes left byte %zu", i);
            free(buf);
            break;
        }
        }
        fz_check_in(&in, prev);
    }
}

/* Mode 3: write with a program, then read back with the same program. */
static void fz_writer(struct fz_in *f)
{
    struct vstate_out o;
    vstate_out_init(&o);
    size_t start = f->pos;
    bool open = false, sane = true;
    unsigned steps = 0;
    for (; steps < FZ_MAX_STEPS && fz_left(f); steps++) {
        uint8_t op = fz_u8(f);
        switch (op % 7) {
        case 0:
            sane &= !open;
            open = true;
            vstate_begin(&o, fz_names[fz_u8(f) % ARRAY_SIZE(fz_names)], fz_u16(f));
            break;
        case 1: {
            /* Closing an unopened section is refused but harms nothing. */
            int r = vstate_end(&o);
            FZ_CHECK(open || r < 0, "closing an unopened section succeeded");
            open = false;
            break;
        }
        case 2:
            vstate_put_u8(&o, fz_u8(f));
            break;
        case 3:
            vstate_put_u16(&o, fz_u16(f));
            break;
        case 4:
            vstate_put_u32(&o, fz_u32(f));
            break;
        case 5:
            vstate_put_u64(&o, fz_u64(f));
            break;
        default: {
            size_t n = fz_u8(f), got;
            const uint8_t *p = fz_take(f, n, &got);
            vstate_put_bytes(&o, p, got);
            break;
        }
        }
        if (!sane)
            FZ_CHECK(o.err, "nested section not reported");
    }
    if (open)
        sane &= vstate_end(&o) == 0;
    if (!sane || o.err) {
        vstate_out_free(&o);
        return;
    }

    /* Replay: every value written inside a section reads back. */
    struct fz_in replay;
    fz_init(&replay, f->p + start, f->pos - start);
    struct vstate_in in;
    vstate_in_init(&in, o.buf, o.len);
    bool inside = false, outside_data = false;
    for (unsigned n = 0; n < steps; n++) {
        uint8_t op = fz_u8(&replay);
        uint16_t ver;
        switch (op % 7) {
        case 0: {
            const char *name = fz_names[fz_u8(&replay) % ARRAY_SIZE(fz_names)];
            uint16_t v = fz_u16(&replay);
            if (!outside_data) {
                FZ_CHECK(vstate_enter(&in, name, v, v, &ver) == 0 && ver == v, "enter %s: %d", name,
                         in.err);
            }
            inside = true;
            break;
        }
        case 1:
            if (!outside_data && inside)
                FZ_CHECK(vstate_leave(&in) == 0, "leave: %d", in.err);
            inside = false;
            break;
        case 2: {
            uint8_t v = fz_u8(&replay);
            outside_data |= !inside;
            if (!outside_data)
                FZ_CHECK(vstate_get_u8(&in) == v, "u8 mismatch");
            break;
        }
        case 3: {
            uint16_t v = fz_u16(&replay);
            outside_data |= !inside;
            if (!outside_data)
                FZ_CHECK(vstate_get_u16(&in) == v, "u16 mismatch");
            break;
        }
        case 4: {
            uint32_t v = fz_u32(&replay);
            outside_data |= !inside;
            if (!outside_data)
                FZ_CHECK(vstate_get_u32(&in) == v, "u32 mismatch");
            break;
        }
        case 5: {
            uint64_t v = fz_u64(&replay);
            outside_data |= !inside;
            if (!outside_data)
                FZ_CHECK(vstate_get_u64(&in) == v, "u64 mismatch");
            break;
        }
        default: {
            size_t want = fz_u8(&replay), got;
            const uint8_t *p = fz_take(&replay, want, &got);
            uint8_t buf[256];
            outside_data |= !inside && got;
            if (!outside_data) {
                vstate_get_bytes(&in, buf, got);
                FZ_CHECK(!got || !memcmp(buf, p, got), "bytes mismatch");
            }
            break;
        }
        }
    }
    if (!outside_data && inside)
        FZ_CHECK(vstate_leave(&in) == 0, "final leave: %d", in.err);
    vstate_out_free(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in f;
    fz_init(&f, data, size);
    unsigned mode = fz_u8(&f) % FZ_NMODES;
    struct vstate_in in;
    vstate_in_init(&in, data + f.pos, fz_left(&f));

    switch (mode) {
    case FZ_SERIAL:
    case FZ_I8042:
        (void)fz_load_check(&fz_devs[mode], &in);
        break;
    case FZ_STREAM:
        if (fz_load_check(&fz_devs[FZ_SERIAL], &in) == 0)
            (void)fz_load_check(&fz_devs[FZ_I8042], &in);
        break;
    case FZ_WRITER:
        fz_writer(&f);
        break;
    default:
        fz_reader(&f);
        break;
    }
    return 0;
}
