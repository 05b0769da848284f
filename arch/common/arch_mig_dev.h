/*
 * A built-in device's device_ops (save/load into vstate) adapted to the
 * migration registry's hooks (migration/hooks.h).  Both architectures
 * register their legacy devices (the UART; on x86 also the i8042 and ACPI
 * PM) this way; the adapter had a copy in each arch_mig.c.
 */
#ifndef ARCH_COMMON_ARCH_MIG_DEV_H
#define ARCH_COMMON_ARCH_MIG_DEV_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/error.h"

struct device_ops;
struct vstate_out;

/* The `dev` the hooks below take: a device and its ops. */
struct arch_mig_dev {
    const struct device_ops *ops;
    void *dev;
};

/* mig_device_ops.cannot_migrate: the device's `unmigratable` reason, or NULL. */
const char *arch_mig_dev_cannot(void *dev);
/* mig_device_ops.save: the device's save(). */
int arch_mig_dev_save(void *dev, struct vstate_out *out);
/* mig_device_ops.load: the device's load() over exactly `len` bytes; one line in `err`. */
int arch_mig_dev_load(void *dev, uint16_t version, const uint8_t *buf, size_t len,
                      struct errbuf *err);

#endif /* ARCH_COMMON_ARCH_MIG_DEV_H */
