/*
 * ACPI power-management registers (see acpi_pm.h).  Separate from the
 * architecture code because the register semantics are ACPI's, the same on
 * any machine that uses hardware-reduced ACPI; only the block's address is
 * the board's choice.  No mutable state but a counter, so no lock.
 */
#include "devices/legacy/acpi_pm.h"
#include "vmm/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define STATE_VERSION 1

struct acpi_pm {
    const struct acpi_pm_ops *ops;
    void *opaque;
    uint8_t s5_slp_typ;
    uint8_t reset_value;
    _Atomic uint64_t ignored;
};

struct acpi_pm *acpi_pm_create(const struct acpi_pm_ops *ops, void *opaque, uint8_t s5_slp_typ,
                               uint8_t reset_value)
{
    if (!ops || s5_slp_typ > ACPI_PM_SLP_TYP_MASK) {
        errno = EINVAL;
        return NULL;
    }
    struct acpi_pm *pm = calloc(1, sizeof(*pm));
    if (!pm)
        return NULL;
    pm->ops = ops;
    pm->opaque = opaque;
    pm->s5_slp_typ = s5_slp_typ;
    pm->reset_value = reset_value;
    return pm;
}

void acpi_pm_destroy(struct acpi_pm *pm)
{
    free(pm);
}

uint64_t acpi_pm_ignored(const struct acpi_pm *pm)
{
    return atomic_load(&pm->ignored);
}

void acpi_pm_pio_read(void *opaque, uint64_t offset, void *data, unsigned len)
{
    (void)opaque;
    (void)offset;
    memset(data, 0, len);
}

static void ignore(struct acpi_pm *pm, const char *what, uint8_t v)
{
    if (atomic_fetch_add(&pm->ignored, 1) == 0)
        log_debug("acpi_pm: ignored %s write 0x%02x (further ones are counted only)", what, v);
}

static void write_byte(struct acpi_pm *pm, uint64_t offset, uint8_t v)
{
    switch (offset) {
    case ACPI_PM_SLEEP_CTL:
        /* Only SLP_EN starts a transition; SLP_TYP alone is just staged. */
        if (!(v & ACPI_PM_SLP_EN))
            return;
        if (((v >> ACPI_PM_SLP_TYP_SHIFT) & ACPI_PM_SLP_TYP_MASK) == pm->s5_slp_typ) {
            log_info("guest entered ACPI S5 (power off)");
            pm->ops->poweroff(pm->opaque);
            return;
        }
        /* The DSDT offers no other sleep state: nothing to enter. */
        ignore(pm, "sleep control", v);
        return;
    case ACPI_PM_RESET:
        if (v == pm->reset_value) {
            log_info("guest reset through the ACPI reset register");
            pm->ops->reset(pm->opaque);
            return;
        }
        ignore(pm, "reset register", v);
        return;
    default:
        /* WAK_STS is write-1-to-clear and never set: nothing to clear. */
        ignore(pm, "sleep status", v);
        return;
    }
}

void acpi_pm_pio_write(void *opaque, uint64_t offset, const void *data, unsigned len)
{
    struct acpi_pm *pm = opaque;
    const uint8_t *b = data;
    for (unsigned i = 0; i < len; i++) {
        if (offset + i >= ACPI_PM_LEN) {
            ignore(pm, "out-of-block", b[i]);
            continue;
        }
        write_byte(pm, offset + i, b[i]);
    }
}

static int acpi_pm_save(void *dev, struct vstate_out *out)
{
    (void)dev;
    vstate_begin(out, "acpi_pm", STATE_VERSION);
    return vstate_end(out);
}

static int acpi_pm_load(void *dev, struct vstate_in *in)
{
    (void)dev;
    uint16_t version;
    int r = vstate_enter(in, "acpi_pm", STATE_VERSION, STATE_VERSION, &version);
    if (r)
        return r;
    return vstate_leave(in); /* any payload byte is an error */
}

static void acpi_pm_reset_state(void *dev)
{
    (void)dev;
}

const struct device_ops acpi_pm_device_ops = {
    .type = "acpi_pm",
    .unmigratable = NULL,
    .save = acpi_pm_save,
    .load = acpi_pm_load,
    .reset = acpi_pm_reset_state,
};
