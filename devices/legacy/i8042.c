/*
 * The i8042 keyboard controller and the PS/2 keyboard behind it (see
 * i8042.h).  Why a keyboard at all: Firecracker's SendCtrlAltDel action
 * presses Ctrl+Alt+Del on it, and a Linux guest's atkbd driver must find a
 * keyboard that answers its probe for the keys to reach the guest.  The
 * keyboard answers the commands Linux sends (identify, LEDs, typematic
 * rate, enable/disable scanning, reset) and has no keys but that one chord.
 * There is no mouse: the aux port's test reports "no device".
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

#define CTR_KBDINT  0x01 /* interrupt (IRQ 1) when a keyboard byte reaches the buffer */
#define CTR_SYSFLAG 0x04
#define CTR_KBDDIS  0x10 /* keyboard clock off: its bytes wait in the keyboard */
#define CTR_AUXDIS  0x20
#define CTR_XLATE   0x40 /* set-2 scancodes translated to set 1 */
/* Power-on command byte: POST passed, scancode translation on, no interrupts
 * until the guest's driver enables them. */
#define CTR_DEFAULT (CTR_SYSFLAG | CTR_XLATE)

/* Controller commands (port 0x64). */
#define CMD_READ_CTR    0x20
#define CMD_WRITE_CTR   0x60
#define CMD_AUX_DISABLE 0xa7
#define CMD_AUX_ENABLE  0xa8
#define CMD_AUX_TEST    0xa9
#define CMD_SELF_TEST   0xaa
#define CMD_KBD_TEST    0xab
#define CMD_KBD_DISABLE 0xad
#define CMD_KBD_ENABLE  0xae
#define CMD_READ_OUTP   0xd0
#define CMD_WRITE_OUTP  0xd1
#define CMD_WRITE_KBD   0xd2 /* next data byte appears as if the keyboard sent it */
#define CMD_WRITE_AUXO  0xd3 /* loop back through the aux port: no aux, swallowed */
#define CMD_WRITE_AUX   0xd4 /* to the mouse: none, swallowed */
#define CMD_RESET       0xfe

#define SELF_TEST_OK   0x55
#define PORT_TEST_OK   0x00
#define AUX_TEST_NODEV 0x02 /* "clock line stuck high": Linux then drops the aux port */
#define OUTP_DEFAULT   0x01 /* output port: CPU reset line not asserted */

/* Keyboard commands and answers (port 0x60 with no controller command pending). */
#define KBD_SET_LEDS  0xed
#define KBD_ECHO      0xee
#define KBD_SCAN_SET  0xf0
#define KBD_GET_ID    0xf2
#define KBD_TYPEMATIC 0xf3
#define KBD_ENABLE    0xf4
#define KBD_DISABLE   0xf5
#define KBD_DEFAULTS  0xf6
#define KBD_RESET     0xff
#define KBD_ACK       0xfa
#define KBD_RESEND    0xfe
#define KBD_BAT_OK    0xaa
#define KBD_ID0       0xab
#define KBD_ID1       0x83 /* MF2 keyboard; 0x41 once the controller translates */
#define KBD_ID1_XLATE 0x41
#define KBD_SET2      0x02
#define KBD_SET2_XLAT 0x41

#define STATE_VERSION 2
#define FLAG_OBF      0x01
#define FLAG_CMD      0x02
#define FLAG_OBUF_KBD 0x04 /* the byte in the buffer came from the keyboard */
#define FLAG_SCAN_OFF 0x08 /* the keyboard's scanning is disabled (0xF5) */
#define FLAGS_ALL     (FLAG_OBF | FLAG_CMD | FLAG_OBUF_KBD | FLAG_SCAN_OFF)

/* Ctrl, Alt, Del pressed, then released: set 1 (translated) and set 2. */
static const uint8_t cad_set1[] = {0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d};
static const uint8_t cad_set2[] = {0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0,
                                   0x71, 0xf0, 0x11, 0xf0, 0x14};
_Static_assert(sizeof(cad_set2) <= I8042_KBD_QUEUE, "the chord fits an empty keyboard queue");

/* Guest-visible state, what save/load transfer. */
struct kbc {
    uint8_t ctr;     /* controller command byte */
    uint8_t obuf;    /* response byte; 0 when the buffer is empty */
    uint8_t pending; /* controller command waiting for its data byte, or 0 */
    uint8_t kbd_cmd; /* keyboard command waiting for its parameter, or 0 */
    bool obf;
    bool obuf_kbd; /* obuf holds a keyboard byte (a controller answer may displace it) */
    bool last_cmd;
    bool scan_off;
    uint8_t qlen; /* bytes the keyboard has yet to send, oldest first */
    uint8_t q[I8042_KBD_QUEUE];
};

struct i8042 {
    pthread_mutex_t lock;
    struct kbc st;
    struct i8042_ops ops;
    void *opaque;
};

static void kbc_reset(struct kbc *st)
{
    memset(st, 0, sizeof(*st));
    st->ctr = CTR_DEFAULT;
}

/* Queue bytes from the keyboard; false (nothing queued) if they do not all fit. */
static bool kbd_queue(struct kbc *st, const uint8_t *b, size_t n)
{
    if (n > (size_t)(I8042_KBD_QUEUE - st->qlen))
        return false;
    memcpy(st->q + st->qlen, b, n);
    st->qlen = (uint8_t)(st->qlen + n);
    return true;
}

static void kbd_answer(struct kbc *st, uint8_t a)
{
    if (!kbd_queue(st, &a, 1))
        log_ratelimited(LOG_DEBUG, "i8042: keyboard queue full, answer 0x%02x dropped", a);
}

/*
 * Move the keyboard's next byte into an empty output buffer unless the
 * guest turned the keyboard clock off.  True if that should interrupt.
 */
static bool kbd_refill(struct kbc *st)
{
    if (st->obf || st->qlen == 0 || (st->ctr & CTR_KBDDIS))
        return false;
    st->obuf = st->q[0];
    st->qlen--;
    memmove(st->q, st->q + 1, st->qlen);
    st->obf = true;
    st->obuf_kbd = true;
    return st->ctr & CTR_KBDINT;
}

/* A controller answer takes the buffer; a keyboard byte there goes back to the queue's head. */
static void ctl_answer(struct kbc *st, uint8_t a)
{
    if (st->obf && st->obuf_kbd && st->qlen < I8042_KBD_QUEUE) {
        memmove(st->q + 1, st->q, st->qlen);
        st->q[0] = st->obuf;
        st->qlen++;
    }
    st->obuf = a;
    st->obf = true;
    st->obuf_kbd = false;
}

/* A byte the guest sent to the keyboard (port 0x60, no controller command pending). */
static void kbd_write(struct kbc *st, uint8_t v)
{
    bool xlate = st->ctr & CTR_XLATE;
    if (st->kbd_cmd) { /* the parameter of ED, F0 or F3 */
        uint8_t c = st->kbd_cmd;
        st->kbd_cmd = 0;
        kbd_answer(st, KBD_ACK);
        if (c == KBD_SCAN_SET && v == 0) /* "which set?": always 2 */
            kbd_answer(st, xlate ? KBD_SET2_XLAT : KBD_SET2);
        return;
    }
    switch (v) {
    case KBD_SET_LEDS:
    case KBD_SCAN_SET:
    case KBD_TYPEMATIC:
        st->kbd_cmd = v;
        kbd_answer(st, KBD_ACK);
        break;
    case KBD_GET_ID: {
        const uint8_t id[] = {KBD_ACK, KBD_ID0, xlate ? KBD_ID1_XLATE : KBD_ID1};
        if (!kbd_queue(st, id, sizeof(id)))
            log_ratelimited(LOG_DEBUG, "i8042: keyboard queue full, identify dropped");
        break;
    }
    case KBD_ENABLE:
        st->scan_off = false;
        kbd_answer(st, KBD_ACK);
        break;
    case KBD_DISABLE:
        st->scan_off = true;
        kbd_answer(st, KBD_ACK);
        break;
    case KBD_DEFAULTS:
        kbd_answer(st, KBD_ACK);
        break;
    case KBD_ECHO:
        kbd_answer(st, KBD_ECHO);
        break;
    case KBD_RESET: {
        const uint8_t bat[] = {KBD_ACK, KBD_BAT_OK};
        st->qlen = 0; /* a reset keyboard forgets what it had yet to send */
        st->scan_off = false;
        (void)kbd_queue(st, bat, sizeof(bat));
        break;
    }
    default:
        kbd_answer(st, KBD_RESEND);
        log_ratelimited(LOG_DEBUG, "i8042: unknown keyboard command 0x%02x", v);
        break;
    }
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

/* Outside the lock: the VMM's interrupt path may take its own locks. */
static void raise_irq(struct i8042 *k, bool irq)
{
    if (irq && k->ops.irq)
        k->ops.irq(k->opaque);
}

void i8042_data_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    struct i8042 *k = opaque;
    if (!read_begin(offset, data, len))
        return;
    pthread_mutex_lock(&k->lock);
    uint8_t v = k->st.obf ? k->st.obuf : 0;
    k->st.obf = false;
    k->st.obuf_kbd = false;
    k->st.obuf = 0;
    bool irq = kbd_refill(&k->st);
    pthread_mutex_unlock(&k->lock);
    ((uint8_t *)data)[0] = v;
    raise_irq(k, irq);
}

void i8042_data_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct i8042 *k = opaque;
    if (!write_begin(offset, len))
        return;
    uint8_t v = ((const uint8_t *)data)[0];
    pthread_mutex_lock(&k->lock);
    struct kbc *st = &k->st;
    st->last_cmd = false;
    uint8_t pending = st->pending;
    st->pending = 0;
    switch (pending) {
    case CMD_WRITE_CTR:
        st->ctr = v;
        break;
    case CMD_WRITE_KBD:
        kbd_answer(st, v);
        break;
    case CMD_WRITE_OUTP: /* the reset line is pulsed with 0xFE, not through here */
    case CMD_WRITE_AUXO:
    case CMD_WRITE_AUX:
        break;
    default:
        kbd_write(st, v);
        break;
    }
    bool irq = kbd_refill(st);
    pthread_mutex_unlock(&k->lock);
    raise_irq(k, irq);
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
    struct kbc *st = &k->st;
    st->last_cmd = true;
    st->pending = 0; /* a new command abandons one still waiting for data */
    switch (cmd) {
    case CMD_READ_CTR:
        ctl_answer(st, st->ctr);
        break;
    case CMD_WRITE_CTR:
    case CMD_WRITE_OUTP:
    case CMD_WRITE_KBD:
    case CMD_WRITE_AUXO:
    case CMD_WRITE_AUX:
        st->pending = cmd;
        break;
    case CMD_AUX_DISABLE:
        st->ctr |= CTR_AUXDIS;
        break;
    case CMD_AUX_ENABLE:
        st->ctr &= (uint8_t)~CTR_AUXDIS;
        break;
    case CMD_AUX_TEST:
        ctl_answer(st, AUX_TEST_NODEV);
        break;
    case CMD_SELF_TEST:
        ctl_answer(st, SELF_TEST_OK);
        break;
    case CMD_KBD_TEST:
        ctl_answer(st, PORT_TEST_OK);
        break;
    case CMD_KBD_DISABLE:
        st->ctr |= CTR_KBDDIS;
        break;
    case CMD_KBD_ENABLE:
        st->ctr &= (uint8_t)~CTR_KBDDIS;
        break;
    case CMD_READ_OUTP:
        ctl_answer(st, OUTP_DEFAULT);
        break;
    case CMD_RESET:
        reset = true;
        break;
    default:
        known = false;
        break;
    }
    bool irq = kbd_refill(st);
    void (*fn)(void *) = k->ops.reset;
    void *fn_opaque = k->opaque;
    pthread_mutex_unlock(&k->lock);

    if (!known)
        log_ratelimited(LOG_DEBUG, "i8042: ignored controller command 0x%02x", cmd);
    raise_irq(k, irq);
    /* Outside the lock: the VMM's stop path may take its own locks. */
    if (reset && fn)
        fn(fn_opaque);
}

int i8042_send_ctrl_alt_del(struct i8042 *k)
{
    pthread_mutex_lock(&k->lock);
    struct kbc *st = &k->st;
    int ret = 0;
    if (st->scan_off) {
        ret = -ENODEV;
    } else {
        bool xlate = st->ctr & CTR_XLATE;
        bool ok = xlate ? kbd_queue(st, cad_set1, sizeof(cad_set1))
                        : kbd_queue(st, cad_set2, sizeof(cad_set2));
        ret = ok ? 0 : -EAGAIN;
    }
    bool irq = ret == 0 && kbd_refill(st);
    pthread_mutex_unlock(&k->lock);
    raise_irq(k, irq);
    return ret;
}

struct i8042 *i8042_create(const struct i8042_ops *ops, void *opaque)
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
    if (ops)
        k->ops = *ops;
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

/*
 * Section "i8042", version 2: u8 command byte | u8 flags (FLAG_*) | u8
 * output byte | u8 pending controller command | u8 pending keyboard command
 * | u8 queue length | that many queued bytes.  Version 1 (a wisp without the
 * keyboard) is refused: a blob loads only in the form save writes (the
 * fuzzers check that), and such state files predate the CONFIG section,
 * which a load needs anyway.
 */
static int i8042_save(void *dev, struct vstate_out *out)
{
    struct i8042 *k = dev;
    pthread_mutex_lock(&k->lock);
    struct kbc st = k->st;
    pthread_mutex_unlock(&k->lock);

    vstate_begin(out, "i8042", STATE_VERSION);
    vstate_put_u8(out, st.ctr);
    vstate_put_u8(out,
                  (uint8_t)((st.obf ? FLAG_OBF : 0) | (st.last_cmd ? FLAG_CMD : 0) |
                            (st.obuf_kbd ? FLAG_OBUF_KBD : 0) | (st.scan_off ? FLAG_SCAN_OFF : 0)));
    vstate_put_u8(out, st.obuf);
    vstate_put_u8(out, st.pending);
    vstate_put_u8(out, st.kbd_cmd);
    vstate_put_u8(out, st.qlen);
    for (unsigned i = 0; i < st.qlen; i++)
        vstate_put_u8(out, st.q[i]);
    return vstate_end(out);
}

static bool pending_valid(uint8_t p)
{
    return p == 0 || p == CMD_WRITE_CTR || p == CMD_WRITE_OUTP || p == CMD_WRITE_KBD ||
           p == CMD_WRITE_AUXO || p == CMD_WRITE_AUX;
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
    st.kbd_cmd = vstate_get_u8(in);
    st.qlen = vstate_get_u8(in);
    if (!in->err && st.qlen > I8042_KBD_QUEUE)
        return -EINVAL;
    for (unsigned i = 0; i < st.qlen && !in->err; i++)
        st.q[i] = vstate_get_u8(in);
    if (in->err)
        return in->err;
    r = vstate_leave(in);
    if (r)
        return r;
    if (flags & ~FLAGS_ALL)
        return -EINVAL;
    st.obf = flags & FLAG_OBF;
    st.last_cmd = flags & FLAG_CMD;
    st.obuf_kbd = flags & FLAG_OBUF_KBD;
    st.scan_off = flags & FLAG_SCAN_OFF;
    if (!pending_valid(st.pending))
        return -EINVAL;
    if (st.kbd_cmd != 0 && st.kbd_cmd != KBD_SET_LEDS && st.kbd_cmd != KBD_SCAN_SET &&
        st.kbd_cmd != KBD_TYPEMATIC)
        return -EINVAL;
    if (!st.obf && (st.obuf != 0 || st.obuf_kbd))
        return -EINVAL; /* an empty buffer always holds 0 and comes from no one */
    if (!st.obf && st.qlen && !(st.ctr & CTR_KBDDIS))
        return -EINVAL; /* the keyboard's next byte would already be in the buffer */

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
