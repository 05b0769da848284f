/*
 * Host terminal handling for the serial console.  When stdin is a terminal
 * it is switched to raw mode so every key reaches the guest; the saved mode
 * is restored on every exit path: normal return, exit(), fatal signals.
 */
#ifndef VMM_TERM_H
#define VMM_TERM_H

#include <stdbool.h>

/* Put `fd` in raw mode if it is a terminal.  Returns true if it did. */
bool term_raw_enable(int fd);

/* Restore the saved mode (idempotent, async-signal-safe). */
void term_restore(void);

#endif /* VMM_TERM_H */
