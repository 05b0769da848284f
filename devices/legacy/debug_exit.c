/*
 * Debug-exit port (see debug_exit.h).  It exists so test guests can report a
 * verdict through the VMM's exit status without a serial-output parser.  The
 * device holds no mutable state, so it needs no lock.
 */
#include "devices/legacy/debug_exit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define STATE_VERSION 1

struct debug_exit {
    void (*exit_fn)(void *, uint8_t);
    void *opaque;
};

struct debug_exit *debug_exit_create(void (*exit_fn)(void *opaque, uint8_t status), void *opaque)
{
    struct debug_exit *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->exit_fn = exit_fn;
    d->opaque = opaque;
    return d;
}

void debug_exit_destroy(struct debug_exit *d)
{
    free(d);
}

void debug_exit_pio_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    (void)opaque;
    (void)offset;
    memset(data, 0, len);
}

void debug_exit_pio_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct debug_exit *d = opaque;
    (void)offset;
    /* Little-endian data: value & 0xff is the first byte, whatever the size. */
    if (len == 0 || !d->exit_fn)
        return;
    d->exit_fn(d->opaque, ((const uint8_t *)data)[0]);
}

static int debug_exit_save(void *dev, struct vstate_out *out)
{
    (void)dev;
    vstate_begin(out, "debug_exit", STATE_VERSION);
    return vstate_end(out);
}

static int debug_exit_load(void *dev, struct vstate_in *in)
{
    (void)dev;
    uint16_t version;
    int r = vstate_enter(in, "debug_exit", STATE_VERSION, STATE_VERSION, &version);
    if (r)
        return r;
    return vstate_leave(in); /* any payload byte is an error */
}

static void debug_exit_reset(void *dev)
{
    (void)dev;
}

const struct device_ops debug_exit_device_ops = {
    .type = "debug_exit",
    .unmigratable = NULL,
    .save = debug_exit_save,
    .load = debug_exit_load,
    .reset = debug_exit_reset,
};
