/*
 * Helpers for integration tests: locate the wisp binary and the test guest
 * (from WISP_BIN, WISP_GUEST_ELF, WISP_GUEST_BZIMAGE set by `make`), run wisp
 * with a list of arguments, and small file utilities.
 */
#ifndef TESTS_LIB_WISP_RUN_H
#define TESTS_LIB_WISP_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tests/lib/proc.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Guest status codes written to the debug-exit port (guest-images/testguest/protocol.h). */
#define GUEST_PASS 0x50
#define GUEST_FAIL 0x51

/* Generous: guest CPL0 code is emulated on the CI machines (~1 us/instruction). */
#define WISP_TIMEOUT_MS 60000

const char *wisp_bin(void);
/* The wisp built with -DWISP_TEST_HOOKS (WISP_TEST_BIN), or NULL if absent. */
const char *wisp_hook_bin(void);
const char *guest_elf(void);
const char *guest_bzimage(void);

/*
 * Run wisp with the NULL-terminated argument list (without argv[0]); env may
 * be NULL.  Aborts the test if wisp cannot be started.
 */
void wisp_run(struct proc_result *r, const char *input, char *const env[], ...);
void wisp_runv(struct proc_result *r, const char *input, char *const env[],
               const char *const *args);

/*
 * Wait up to `ms` for process `pid` to block signal `sig` (wisp blocks
 * SIGINT, SIGTERM and SIGHUP and reads them from a signalfd once its main
 * loop is set up).  A test that sends SIGTERM before that point kills wisp
 * by the default action, so it waits here first instead of sleeping a
 * guessed time.  Returns true once blocked.
 */
bool wisp_wait_signal_blocked(pid_t pid, int sig, unsigned ms);

/*
 * Wait up to `ms` for child `pid` to end and return its wait status.  On
 * timeout, kill it and fail the test with "wisp did not exit within MS ms
 * WHAT" (`what` says after what, and what is then stuck).
 */
int wisp_wait_bounded(pid_t pid, unsigned ms, const char *what);

/* Write `len` bytes to a fresh temp file; returns a malloc'd path. */
char *write_temp(const void *data, size_t len);
/* Read a whole file (malloc'd, NUL-terminated); NULL on error. */
char *read_file(const char *path, size_t *len);

/* 32-bit FNV-1a, as the test guest computes it over the initrd. */
uint32_t fnv1a(const void *data, size_t len);

#endif /* TESTS_LIB_WISP_RUN_H */
