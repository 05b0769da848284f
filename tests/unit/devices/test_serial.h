/*
 * The fixture shared by the 16550A UART tests (test_serial*.c, one Criterion
 * suite "serial"): test_serial.c creates a fresh UART per test with these
 * callbacks and tears it down; the other files use it through these names.
 */
#ifndef TESTS_UNIT_DEVICES_TEST_SERIAL_H
#define TESTS_UNIT_DEVICES_TEST_SERIAL_H

#include <stdint.h>

#include "devices/legacy/serial.h"

/* Port offsets from the UART's base, by register name. */
enum { RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2 };
enum { LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

/* The device under test, created by the suite's .init. */
extern struct serial *s;
/* Calls of its irq callback (on_irq) and of its rx-notify callback. */
extern int irqs;
extern int notifies;

/* The irq callback; its opaque must be &irqs. */
void on_irq(void *opaque);

/* One-byte register read and write on `s`. */
uint8_t rd(unsigned reg);
void wr(unsigned reg, uint8_t v);

#endif /* TESTS_UNIT_DEVICES_TEST_SERIAL_H */
