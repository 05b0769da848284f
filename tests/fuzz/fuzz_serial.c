/*
 * Fuzz target: the 16550A UART (devices/legacy/serial.c) driven by a hostile
 * guest and host input, with save/load in the middle of the run.
 *
 * Why: every port access of the guest reaches this register file, and the
 * FIFO and input-queue indices are exactly the kind of state a guest must
 * not be able to push out of bounds (security.md I, "serial_8250").
 *
 * The input is a register-access program (fuzz.h): reads and writes of any
 * offset (including "far" ones that would wrap) and 0..8 bytes, plus
 *   FZ_OP_DEV arg 0-3: host input of off16 % 64 bytes taken from the input
 *             arg 4-5:  serial_rx_room()        arg 6-7: statistics check
 *   FZ_OP_STATE arg even: save, load into a fresh UART, save again; the two
 *             encodings must match and the run continues on the copy;
 *             arg odd: device reset.
 * Checked: reads fill exactly `len` bytes; every state the guest can reach
 * saves and loads (load validates, so a refusal means save and validate
 * disagree); host input never takes more than offered or than the room;
 * counters are consistent.  Output goes to a memfd, rewound every input.
 */
#include "tests/fuzz/fuzz.h"

#include <sys/mman.h>
#include <unistd.h>

#include "devices/legacy/serial.h"
#include "migration/vstate.h"

#define FZ_MAX_OPS   4096
#define FZ_MAX_INPUT 64

static int fz_out_fd = -1;
static unsigned fz_irqs, fz_notifies;

static void fz_irq(void *opaque)
{
    (void)opaque;
    fz_irqs++;
}

static void fz_notify(void *opaque)
{
    (void)opaque;
    fz_notifies++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_out_fd = memfd_create("fuzz-serial-out", MFD_CLOEXEC);
    if (fz_out_fd < 0) {
        perror("fuzz_serial: memfd_create");
        abort();
    }
    return 0;
}

static struct serial *fz_new(void)
{
    struct serial *s = serial_create(fz_out_fd, fz_irq, NULL);
    FZ_CHECK(s, "serial_create failed");
    serial_set_rx_notify(s, fz_notify, NULL);
    return s;
}

static void fz_save(struct serial *s, struct vstate_out *o)
{
    vstate_out_init(o);
    FZ_CHECK(serial_device_ops.save(s, o) == 0, "save failed");
}

/* Save, load into a fresh UART, save again: returns the copy (the original is freed). */
static struct serial *fz_round_trip(struct serial *s)
{
    struct vstate_out a, b;
    fz_save(s, &a);

    struct serial *copy = fz_new();
    struct vstate_in in;
    vstate_in_init(&in, a.buf, a.len);
    int r = serial_device_ops.load(copy, &in);
    FZ_CHECK(r == 0, "a state the guest reached does not load: %d", r);
    FZ_CHECK(in.pos == a.len, "load left %zu bytes", a.len - in.pos);

    fz_save(copy, &b);
    FZ_CHECK(a.len == b.len && !memcmp(a.buf, b.buf, a.len), "save(load(save(s))) != save(s)");
    vstate_out_free(&a);
    vstate_out_free(&b);
    serial_destroy(s);
    return copy;
}

static void fz_dev_op(struct serial *s, const struct fz_op *op, struct fz_in *in)
{
    if (op->arg < 4) {
        size_t want = op->off16 % FZ_MAX_INPUT, got;
        const uint8_t *p = fz_take(in, want, &got);
        size_t room = serial_rx_room(s);
        size_t took = serial_receive(s, p, got);
        FZ_CHECK(took <= got && took <= room, "receive took %zu of %zu (room %zu)", took, got,
                 room);
    } else if (op->arg < 6) {
        FZ_CHECK(serial_rx_room(s) <= SERIAL_INPUT_QUEUE + SERIAL_FIFO_SIZE, "rx room too big");
    } else {
        struct serial_stats st;
        serial_get_stats(s, &st);
        FZ_CHECK(st.lost_bytes <= st.tx_bytes, "lost %llu of %llu",
                 (unsigned long long)st.lost_bytes, (unsigned long long)st.tx_bytes);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in;
    struct fz_op op;
    fz_init(&in, data, size);
    if (lseek(fz_out_fd, 0, SEEK_SET) < 0 || ftruncate(fz_out_fd, 0) < 0)
        abort();

    struct serial *s = fz_new();
    for (unsigned n = 0; n < FZ_MAX_OPS && fz_next_op(&in, &op); n++) {
        switch (op.kind) {
        case FZ_OP_READ:
            fz_access(&op, serial_pio_read, serial_pio_write, s, NULL);
            break;
        case FZ_OP_WRITE:
            fz_access(&op, serial_pio_read, serial_pio_write, s, NULL);
            break;
        case FZ_OP_DEV:
            fz_dev_op(s, &op, &in);
            break;
        default:
            if (op.arg & 1)
                serial_device_ops.reset(s);
            else
                s = fz_round_trip(s);
            break;
        }
    }
    /* Whatever the guest did, the final state must migrate. */
    s = fz_round_trip(s);
    serial_destroy(s);
    return 0;
}
