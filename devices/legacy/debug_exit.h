/*
 * The debug-exit port, for tests only: a guest ends the VM with a chosen exit
 * status by writing it to X86_DEBUG_EXIT_PORT (the same idea as QEMU's
 * isa-debug-exit, without QEMU's (value << 1) | 1 encoding).  The VMM creates
 * it only when configured (vm_config.debug_exit), because it lets the guest
 * pick the VMM's exit code.
 */
#ifndef DEVICES_LEGACY_DEBUG_EXIT_H
#define DEVICES_LEGACY_DEBUG_EXIT_H

#include <stdint.h>

#include "devices/device.h"

struct debug_exit;

/*
 * Create the device.  `exit_fn` is called on the writing vCPU thread with the
 * low byte of every write (value & 0xff, i.e. the first byte written, for any
 * size and any offset in the range); the VMM stops and exits with it.  It may
 * be NULL.  Returns NULL with errno set on failure.
 */
struct debug_exit *debug_exit_create(void (*exit_fn)(void *opaque, uint8_t status), void *opaque);

void debug_exit_destroy(struct debug_exit *d);

/*
 * Bus callbacks for the range X86_DEBUG_EXIT_PORT, length X86_DEBUG_EXIT_LEN.
 * Reads return 0 in every byte.
 */
void debug_exit_pio_read(void *opaque, uint64_t offset, void *data, unsigned len);
void debug_exit_pio_write(void *opaque, uint64_t offset, const void *data, unsigned len);

/* Stateless: save writes an empty "debug_exit" section (version 1), load checks it. */
extern const struct device_ops debug_exit_device_ops;

#endif /* DEVICES_LEGACY_DEBUG_EXIT_H */
