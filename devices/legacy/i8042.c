/*
 * Minimal i8042 keyboard controller (see i8042.h): enough for Linux to reboot
 * through it and to probe it without waiting for responses that never come.
 * Nothing is connected to its keyboard or aux ports, so it never interrupts.
 */
#include "devices/legacy/i8042.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/log.h"

#define STR_OBF      0x01 /* output buffer full: a byte waits at port 0x60 */
#define STR_SYSFLAG  0x04 /* mirrors command byte bit 2 */
#define STR_CMD      0x08 /* last write went to the command port */
#define STR_UNLOCKED 0x10 /* keyboard not inhibited (Linux warns "Keylock active" otherwise) */

#define CTR_SYSFLAG 0x04
#define CTR_XLATE   0x40
/* Power-on command byte: POST passed, scancode translation on, no interrupts
 * enabled (there is nothing behind the ports to interrupt for). */
#define CTR_DEFAULT (CTR_SYSFLAG | CTR_XLATE)

#define CMD_READ_CTR  0x20
#define CMD_WRITE_CTR 0x60
#define CMD_RESET     0xfe

#define STATE_VERSION 1
#define FLAG_OBF      0x01
#define FLAG_CMD      0x02

/* Guest-visible state, what save/load transfer. */
struct kbc {
    uint8_t ctr;     /* controller command byte */
    uint8_t obuf;    /* response byte; 0 when the buffer is empty */
    uint8_t pending; /* command waiting for its data byte (CMD_WRITE_CTR) or 0 */
    bool obf;
    bool last_cmd;
};

struct i8042 {
    pthread_mutex_t lock;
    struct kbc st;
    void (*reset)(void *);
    void *opaque;
};

static void kbc_reset(struct kbc *st)
{
    memset(st, 0, sizeof(*st));
    st->ctr = CTR_DEFAULT;
}

/* The register byte of an access, if the access covers it; fill the rest. */
static bool read_begin(uint64_t offset, void *data, unsigned len)
{
    memset(data, 0xff, len);
    if (offset != 0 || len == 0) {
        log_ratelimited(LOG_DEBUG, "i8042: read at offset %llu len %u", (unsigned long long)offset,
                        len);
        return false;
    }
    return true;
}

static bool write_begin(uint64_t offset, unsigned len)
{
    if (offset != 0 || len == 0) {
        log_ratelimited(LOG_DEBUG, "i8042: write at offset %llu len %u ignored",
                        (unsigned long long)offset, len);
        return false;
    }
    return true;
}

void i8042_data_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct i8042 *k = opaque;
    if (!read_begin(offset, data, len))
        return;
    pthread_mutex_lock(&k->lock);
    uint8_t v = k->st.obf ? k->st.obuf : 0;
    k->st.obf = false;
    k->st.obuf = 0;
    pthread_mutex_unlock(&k->lock);
    ((uint8_t *)data)[0] = v;
}

void i8042_data_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct i8042 *k = opaque;
    if (!write_begin(offset, len))
        return;
    uint8_t v = ((const uint8_t *)data)[0];
    pthread_mutex_lock(&k->lock);
    k->st.last_cmd = false;
    bool handled = k->st.pending == CMD_WRITE_CTR;
    if (handled)
        k->st.ctr = v;
    k->st.pending = 0;
    pthread_mutex_unlock(&k->lock);
    if (!handled)
        log_ratelimited(LOG_DEBUG, "i8042: ignored keyboard data 0x%02x (no keyboard)", v);
}

void i8042_cmd_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct i8042 *k = opaque;
    if (!read_begin(offset, data, len))
        return;
    pthread_mutex_lock(&k->lock);
    uint8_t v = STR_UNLOCKED;
    v |= k->st.obf ? STR_OBF : 0;
    v |= (k->st.ctr & CTR_SYSFLAG) ? STR_SYSFLAG : 0;
    v |= k->st.last_cmd ? STR_CMD : 0;
    pthread_mutex_unlock(&k->lock);
    ((uint8_t *)data)[0] = v;
}

void i8042_cmd_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct i8042 *k = opaque;
    if (!write_begin(offset, len))
        return;
    uint8_t cmd = ((const uint8_t *)data)[0];
    bool reset = false, known = true;

    pthread_mutex_lock(&k->lock);
    k->st.last_cmd = true;
    k->st.pending = 0; /* a new command abandons one still waiting for data */
    switch (cmd) {
    case CMD_READ_CTR:
        k->st.obuf = k->st.ctr;
        k->st.obf = true;
        break;
    case CMD_WRITE_CTR:
        k->st.pending = CMD_WRITE_CTR;
        break;
    case CMD_RESET:
        reset = true;
        break;
    default:
        known = false;
        break;
    }
    void (*fn)(void *) = k->reset;
    void *fn_opaque = k->opaque;
    pthread_mutex_unlock(&k->lock);

    if (!known)
        log_ratelimited(LOG_DEBUG, "i8042: ignored controller command 0x%02x", cmd);
    /* Outside the lock: the VMM's stop path may take its own locks. */
    if (reset && fn)
        fn(fn_opaque);
}

struct i8042 *i8042_create(void (*reset)(void *opaque), void *opaque)
{
    struct i8042 *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    int r = pthread_mutex_init(&k->lock, NULL);
    if (r) {
        free(k);
        errno = r;
        return NULL;
    }
    kbc_reset(&k->st);
    k->reset = reset;
    k->opaque = opaque;
    return k;
}

void i8042_destroy(struct i8042 *k)
{
    if (!k)
        return;
    pthread_mutex_destroy(&k->lock);
    free(k);
}

/* Section "i8042", version 1: u8 command byte | u8 flags (FLAG_*) | u8 output byte | u8 pending. */
static int i8042_save(void *dev, struct vstate_out *out)
{
    struct i8042 *k = dev;
    pthread_mutex_lock(&k->lock);
    struct kbc st = k->st;
    pthread_mutex_unlock(&k->lock);

    vstate_begin(out, "i8042", STATE_VERSION);
    vstate_put_u8(out, st.ctr);
    vstate_put_u8(out, (uint8_t)((st.obf ? FLAG_OBF : 0) | (st.last_cmd ? FLAG_CMD : 0)));
    vstate_put_u8(out, st.obuf);
    vstate_put_u8(out, st.pending);
    return vstate_end(out);
}

static int i8042_load(void *dev, struct vstate_in *in)
{
    struct i8042 *k = dev;
    uint16_t version;
    int r = vstate_enter(in, "i8042", STATE_VERSION, STATE_VERSION, &version);
    if (r)
        return r;
    struct kbc st = {0};
    st.ctr = vstate_get_u8(in);
    uint8_t flags = vstate_get_u8(in);
    st.obuf = vstate_get_u8(in);
    st.pending = vstate_get_u8(in);
    if (in->err)
        return in->err;
    r = vstate_leave(in);
    if (r)
        return r;
    if (flags & ~(FLAG_OBF | FLAG_CMD))
        return -EINVAL;
    st.obf = flags & FLAG_OBF;
    st.last_cmd = flags & FLAG_CMD;
    if (st.pending != 0 && st.pending != CMD_WRITE_CTR)
        return -EINVAL;
    if (!st.obf && st.obuf != 0)
        return -EINVAL; /* an empty buffer always holds 0 */

    pthread_mutex_lock(&k->lock);
    k->st = st;
    pthread_mutex_unlock(&k->lock);
    return 0;
}

static void i8042_reset_dev(void *dev)
{
    struct i8042 *k = dev;
    pthread_mutex_lock(&k->lock);
    kbc_reset(&k->st);
    pthread_mutex_unlock(&k->lock);
}

const struct device_ops i8042_device_ops = {
    .type = "i8042",
    .unmigratable = NULL,
    .save = i8042_save,
    .load = i8042_load,
    .reset = i8042_reset_dev,
};
