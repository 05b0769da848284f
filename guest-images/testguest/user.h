/*
 * user.h - run a function at CPL3 (user.c, user_entry.S).
 */
#ifndef WISP_GUEST_USER_H
#define WISP_GUEST_USER_H

#include "guest.h"

/* Call fn(arg) in ring 3 (IF=0, IOPL=0) on a private 64 KiB user stack and
 * return its result. The first call sets up the GDT, TSS and
 * user-accessible mappings of the image. fn may touch only the image
 * and windows passed to user_map(); port I/O, cli/hlt and MMIO outside
 * those windows fault (the exception is reported and the test FAILs). */
u64 user_run(u64 (*fn)(void *), void *arg);

/* Make [addr, addr + len) (below 4 GiB) user-accessible, in 2 MiB steps. */
void user_map(u64 addr, u64 len);

/* user_entry.S: the ud2 that ends a user_run, and the way back to the
 * kernel (called by isr_dispatch with the user's rax). */
extern u8 user_exit[];
__attribute__((noreturn)) void user_return(u64 value);

#endif
