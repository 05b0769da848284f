/*
 * gstr.h - the architecture-independent support both test guests share
 * (gstr.c): fixed-width types, string helpers, a printf subset, FNV-1a and
 * the command-line parser.  Each guest provides serial_putc(), memcpy() and
 * memset() in its own lib.c.
 */
#ifndef WISP_GUEST_GSTR_H
#define WISP_GUEST_GSTR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int8_t s8;

/* Provided by each guest's lib.c. */
void serial_putc(char c);
void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);

int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
bool streq(const char *a, const char *b);
/* printf subset: %s %c %d %i %u %x %p, flag 0 and a width, l/ll/z. */
int vformat(char *buf, size_t size, const char *fmt, va_list ap);
int sformat(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Formatted output to the serial console. */
void gprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* 32-bit FNV-1a (protocol.h's constants). */
u32 fnv1a(const u8 *p, u64 n);
/* The value of key= in a space-separated command line (last one wins),
 * truncated to size - 1 bytes; false if the key is absent. */
bool cmdline_get(const char *cl, const char *key, char *out, size_t size);
/* Decimal or 0x-prefixed hexadecimal; false on anything else. */
bool parse_u64(const char *s, u64 *out);

/* One output line: SAY("x=%d", 1) prints "wisp-guest: x=1\n" (protocol.h's prefix). */
#define SAY(fmt, ...) gprintf(GUEST_LINE_PREFIX fmt "\n", ##__VA_ARGS__)
/* Print "check NAME ok|FAIL detail"; a failure sets any_failed.  Returns ok. */
bool check(const char *name, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
extern bool any_failed;

#endif
