/*
 * Host terminal handling for the console on stdio (the serial port or a
 * virtio console).  When stdin is a terminal it is switched to raw mode so
 * every key reaches the guest; the saved mode is restored on every exit
 * path: normal return, exit(), fatal signals.  Ctrl-C then goes to the
 * guest, so the user leaves with an escape, filtered here: Ctrl-A x.
 */
#ifndef VMM_TERM_H
#define VMM_TERM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Put `fd` in raw mode if it is a terminal.  Returns true if it did. */
bool term_raw_enable(int fd);

/* Restore the saved mode (idempotent, async-signal-safe). */
void term_restore(void);

#define TERM_ESCAPE_CHAR 0x01 /* Ctrl-A */

/* Escape state kept between reads (a key pair may span two reads). */
struct term_escape {
    bool pending; /* the last byte seen was an unconsumed Ctrl-A */
};

/*
 * Filter keyboard input in place for the escape: Ctrl-A x (or X) asks to
 * stop the VM (*stop set, the rest of the buffer dropped); Ctrl-A Ctrl-A
 * sends one Ctrl-A; Ctrl-A followed by any other key sends that key alone
 * (as QEMU's and screen's escapes do).  The output is never longer than the
 * input, so callers filter the buffer they read into.
 * Returns the number of bytes left in buf.
 */
size_t term_escape_filter(struct term_escape *e, uint8_t *buf, size_t len, bool *stop);

#endif /* VMM_TERM_H */
