/*
 * The PS/2 keyboard controller (i8042), reduced to what a microVM guest
 * touches: Linux reboots with "reboot=k" by writing command 0xFE (pulse the
 * CPU reset line) to port 0x64, its i8042 driver reads and writes the
 * controller command byte while probing, and its atkbd driver probes the
 * keyboard.  Behind the controller sits a keyboard whose only key press is
 * Ctrl+Alt+Del (i8042_send_ctrl_alt_del: Firecracker's SendCtrlAltDel);
 * there is no mouse.  Keyboard bytes raise IRQ 1 through ops->irq when the
 * guest enabled the keyboard interrupt in the command byte.
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

/* Bytes the keyboard holds before it drops answers (a real one has 16). */
#define I8042_KBD_QUEUE 16

struct i8042;

/*
 * What the controller calls, outside its lock, on the thread that caused
 * it (a vCPU writing a port, or the caller of i8042_send_ctrl_alt_del).
 * Either may be NULL.
 *   reset: the guest issued command 0xFE; the VMM ends the VM from there.
 *   irq:   a keyboard byte reached the output buffer with the keyboard
 *          interrupt enabled: pulse IRQ 1 (edge).
 */
struct i8042_ops {
    void (*reset)(void *opaque);
    void (*irq)(void *opaque);
};

/*
 * Create a controller in its power-on state (command byte 0x44, keyboard
 * scanning, nothing queued).  `ops` is copied; NULL means no callbacks.
 * Returns NULL with errno set on failure.
 */
struct i8042 *i8042_create(const struct i8042_ops *ops, void *opaque);

/* Free the controller.  No other thread may be using it. */
void i8042_destroy(struct i8042 *k);

/*
 * Bus callbacks.  Register data_* at X86_I8042_DATA_PORT and cmd_* at
 * X86_I8042_CMD_PORT, each with length I8042_PORT_LEN.  The register is the
 * byte at offset 0; any other byte of an access reads as 0xff (an empty bus)
 * and is ignored on write, so every size and offset is safe.
 *
 * Data port: reads return the output buffer (a controller answer or the
 * keyboard's next byte), else 0, and let the keyboard's next byte in.  A
 * write completes a pending controller command (0x60 command byte, 0xD1
 * output port (ignored), 0xD2 as if the keyboard sent it, 0xD3/0xD4 to the
 * absent mouse (dropped)); otherwise it goes to the keyboard, which answers
 * 0xED/0xF3 (and their parameter), 0xF0 (scan set: always 2), 0xF2
 * (identify: 0xAB 0x83, 0x41 when translating), 0xF4/0xF5 (scanning on/off),
 * 0xF6, 0xEE (echo) and 0xFF (reset: 0xFA 0xAA); anything else: 0xFE.
 * Command port: reads return the status register (output buffer full,
 * input buffer always empty, system flag from the command byte, keyboard
 * not locked); writes are controller commands: 0x20, 0x60, 0xA7/0xA8 (aux
 * off/on), 0xA9 (aux test: "no device"), 0xAA (self test: 0x55), 0xAB
 * (keyboard test: 0x00), 0xAD/0xAE (keyboard clock off/on), 0xD0-0xD4,
 * 0xFE reset; others are ignored with a rate-limited debug log.  A
 * controller answer displaces a keyboard byte back into the keyboard.
 */
void i8042_data_read(void *opaque, uint64_t offset, void *data, unsigned len);
void i8042_data_write(void *opaque, uint64_t offset, const void *data, unsigned len);
void i8042_cmd_read(void *opaque, uint64_t offset, void *data, unsigned len);
void i8042_cmd_write(void *opaque, uint64_t offset, const void *data, unsigned len);

/*
 * Press and release Ctrl+Alt+Del on the keyboard: the eight set-1 bytes
 * when the controller translates (command byte bit 6, Linux's default),
 * else the eleven set-2 bytes, queued together.  0; -ENODEV if the guest
 * turned the keyboard's scanning off (0xF5: nothing sent); -EAGAIN if the
 * keyboard still holds too many bytes (nothing sent).  Any thread.
 */
int i8042_send_ctrl_alt_del(struct i8042 *k);

/*
 * save/load/reset: one "i8042" section, version 2 (command byte, output
 * buffer, pending controller and keyboard commands, the keyboard's queue);
 * version 1 (before the keyboard) is refused.  Load validates and leaves
 * the device unchanged on error.
 */
extern const struct device_ops i8042_device_ops;

#endif /* DEVICES_LEGACY_I8042_H */
