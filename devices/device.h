/*
 * What every device provides to the VM core.  save/load are mandatory: a
 * device that cannot be migrated sets `unmigratable` to a reason, and the
 * migration code refuses to start instead of silently dropping its state.
 */
#ifndef DEVICES_DEVICE_H
#define DEVICES_DEVICE_H

#include "migration/vstate.h"

struct device_ops {
    const char *type;         /* "serial", "i8042", ... */
    const char *unmigratable; /* NULL if save/load are complete, else why not */
    /* Append the device's state as one or more vstate sections. */
    int (*save)(void *dev, struct vstate_out *out);
    /* Validate and load state saved by save(); on error the device is unchanged. */
    int (*load)(void *dev, struct vstate_in *in);
    /* Return to power-on state. */
    void (*reset)(void *dev);
};

#endif /* DEVICES_DEVICE_H */
