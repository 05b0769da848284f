/*
 * The PS/2 keyboard controller (i8042), reduced to what a microVM guest
 * touches: Linux reboots with "reboot=k" by writing command 0xFE (pulse the
 * CPU reset line) to port 0x64, and its i8042 driver reads and writes the
 * controller command byte while probing.  There is no keyboard or mouse
 * behind it: no scancodes, no interrupts.
 *
 * Ports: two one-port bus ranges, X86_I8042_DATA_PORT (0x60) and
 * X86_I8042_CMD_PORT (0x64), each with its own callback pair.  One five-port
 * range from 0x60 would also claim 0x61-0x63, and 0x61 is the PC speaker /
 * PIT gate port, which belongs to another device (or to KVM's in-kernel PIT).
 */
#ifndef DEVICES_LEGACY_I8042_H
#define DEVICES_LEGACY_I8042_H

#include <stdint.h>

#include "devices/device.h"

/* Length of each of the two bus ranges. */
#define I8042_PORT_LEN 1

struct i8042;

/*
 * Create a controller in its power-on state.  `reset` is called (outside the
 * device lock, on the vCPU thread that wrote the command) each time the guest
 * issues command 0xFE; the VMM ends the VM from there.  It may be NULL.
 * Returns NULL with errno set on failure.
 */
struct i8042 *i8042_create(void (*reset)(void *opaque), void *opaque);

/* Free the controller.  No other thread may be using it. */
void i8042_destroy(struct i8042 *k);

/*
 * Bus callbacks.  Register data_* at X86_I8042_DATA_PORT and cmd_* at
 * X86_I8042_CMD_PORT, each with length I8042_PORT_LEN.  The register is the
 * byte at offset 0; any other byte of an access reads as 0xff (an empty bus)
 * and is ignored on write, so every size and offset is safe.
 *
 * Data port: reads return the pending response byte (after command 0x20),
 * else 0; a write completes command 0x60, other writes (keyboard commands)
 * are ignored.  Command port: reads return the status register (output
 * buffer full only while a response is pending, input buffer always empty,
 * system flag from the command byte, keyboard not locked); writes are
 * controller commands: 0x20 read command byte, 0x60 write command byte,
 * 0xFE reset; all others are ignored with a rate-limited debug log.
 */
void i8042_data_read(void *opaque, uint64_t offset, void *data, unsigned len);
void i8042_data_write(void *opaque, uint64_t offset, const void *data, unsigned len);
void i8042_cmd_read(void *opaque, uint64_t offset, void *data, unsigned len);
void i8042_cmd_write(void *opaque, uint64_t offset, const void *data, unsigned len);

/*
 * save/load/reset: one "i8042" section, version 1 (command byte, output
 * buffer, pending command).  Load validates and leaves the device unchanged
 * on error.
 */
extern const struct device_ops i8042_device_ops;

#endif /* DEVICES_LEGACY_I8042_H */
