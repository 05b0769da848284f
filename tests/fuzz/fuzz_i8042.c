/*
 * Fuzz target: the i8042 keyboard controller (devices/legacy/i8042.c), its
 * two one-port ranges driven by a hostile guest, with save/load and reset in
 * the middle of the run.
 *
 * Why: a guest reaches ports 0x60 and 0x64 at will, and the pending-command
 * and output-buffer state must stay consistent through any access sequence
 * (security.md I, "i8042").
 *
 * The input is a register-access program (fuzz.h): selector bit 0 picks the
 * port (0 = data 0x60, 1 = command 0x64); any offset and 0..8 bytes.
 *   FZ_OP_DEV:   check the status register against the model below
 *   FZ_OP_STATE: arg even: save, load into a fresh controller, save again
 *                (encodings equal, the run continues on the copy);
 *                arg 1 mod 4: device reset; arg 3 mod 4: SendCtrlAltDel
 *                (0, or -ENODEV / -EAGAIN, never anything else).
 * Checked: reads fill exactly `len` bytes; command 0xFE at offset 0 calls
 * the reset callback exactly once per write, nothing else does; status bit
 * 4 (keyboard unlocked) is always set and bit 1 (input full) never; every
 * reachable state round-trips through save/load.
 */
#include "tests/fuzz/fuzz.h"

#include <errno.h>

#include "devices/legacy/i8042.h"
#include "migration/vstate.h"

#define FZ_MAX_OPS    4096
#define FZ_CMD_RESET  0xfe
#define FZ_STR_IBF    0x02
#define FZ_STR_UNLOCK 0x10

static unsigned fz_resets;

static void fz_reset_cb(void *opaque)
{
    (void)opaque;
    fz_resets++;
}

static void fz_irq_cb(void *opaque)
{
    (void)opaque;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static struct i8042 *fz_new(void)
{
    static const struct i8042_ops ops = {.reset = fz_reset_cb, .irq = fz_irq_cb};
    struct i8042 *k = i8042_create(&ops, NULL);
    FZ_CHECK(k, "i8042_create failed");
    return k;
}

static void fz_save(struct i8042 *k, struct vstate_out *o)
{
    vstate_out_init(o);
    FZ_CHECK(i8042_device_ops.save(k, o) == 0, "save failed");
}

static struct i8042 *fz_round_trip(struct i8042 *k)
{
    struct vstate_out a, b;
    fz_save(k, &a);
    struct i8042 *copy = fz_new();
    struct vstate_in in;
    vstate_in_init(&in, a.buf, a.len);
    int r = i8042_device_ops.load(copy, &in);
    FZ_CHECK(r == 0, "a state the guest reached does not load: %d", r);
    FZ_CHECK(in.pos == a.len, "load left %zu bytes", a.len - in.pos);
    fz_save(copy, &b);
    FZ_CHECK(a.len == b.len && !memcmp(a.buf, b.buf, a.len), "save(load(save(k))) != save(k)");
    vstate_out_free(&a);
    vstate_out_free(&b);
    i8042_destroy(k);
    return copy;
}

static void fz_check_status(struct i8042 *k)
{
    uint8_t st = 0;
    i8042_cmd_read(k, 0, &st, 1);
    FZ_CHECK(st & FZ_STR_UNLOCK, "status 0x%02x: keyboard locked", st);
    FZ_CHECK(!(st & FZ_STR_IBF), "status 0x%02x: input buffer full", st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in;
    struct fz_op op;
    fz_init(&in, data, size);

    struct i8042 *k = fz_new();
    for (unsigned n = 0; n < FZ_MAX_OPS && fz_next_op(&in, &op); n++) {
        bool cmd_port = op.sel & 1;
        fz_read_fn rd = cmd_port ? i8042_cmd_read : i8042_data_read;
        fz_write_fn wr = cmd_port ? i8042_cmd_write : i8042_data_write;
        unsigned before = fz_resets;
        switch (op.kind) {
        case FZ_OP_READ:
        case FZ_OP_WRITE:
            fz_access(&op, rd, wr, k, NULL);
            {
                bool want = op.kind == FZ_OP_WRITE && cmd_port && op.offset == 0 && op.len &&
                            op.val[0] == FZ_CMD_RESET;
                FZ_CHECK(fz_resets == before + (want ? 1 : 0), "reset callback %u times",
                         fz_resets - before);
            }
            break;
        case FZ_OP_DEV:
            fz_check_status(k);
            break;
        default:
            if ((op.arg & 3) == 3) {
                int r = i8042_send_ctrl_alt_del(k);
                FZ_CHECK(r == 0 || r == -ENODEV || r == -EAGAIN, "ctrl-alt-del: %d", r);
            } else if (op.arg & 1)
                i8042_device_ops.reset(k);
            else
                k = fz_round_trip(k);
            break;
        }
    }
    k = fz_round_trip(k);
    i8042_destroy(k);
    return 0;
}
