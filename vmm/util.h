/*
 * Small helpers shared by every wisp module: sizes, alignment, overflow-checked
 * arithmetic, little-endian accessors and "read once" access to guest-shared memory.
 * Header-only on purpose: everything here is a few instructions.
 */
#ifndef VMM_UTIL_H
#define VMM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)     ((a) < (b) ? (a) : (b))
#define MAX(a, b)     ((a) > (b) ? (a) : (b))

#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

#define PAGE_SIZE 4096ULL

/* Return values of functions marked like this must be checked (0 or -errno). */
#define __must_check   __attribute__((warn_unused_result))
#define __unused       __attribute__((unused))
#define __printf(a, b) __attribute__((format(printf, a, b)))

/* Alignment helpers; `a` must be a power of two. */
static inline bool is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}
static inline uint64_t align_down(uint64_t v, uint64_t a)
{
    return v & ~(a - 1);
}
static inline bool is_aligned(uint64_t v, uint64_t a)
{
    return (v & (a - 1)) == 0;
}
/* Align up; returns false (and leaves *out alone) if the result would overflow. */
static inline bool align_up_checked(uint64_t v, uint64_t a, uint64_t *out)
{
    uint64_t r;
    if (__builtin_add_overflow(v, a - 1, &r))
        return false;
    *out = r & ~(a - 1);
    return true;
}

/* [base, base+len) as an end address; false on overflow or len == 0. */
static inline bool range_end(uint64_t base, uint64_t len, uint64_t *end)
{
    return len != 0 && !__builtin_add_overflow(base, len, end);
}

/* Do [a, a+alen) and [b, b+blen) overlap?  Both ranges must already be valid. */
static inline bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/*
 * Guest-shared memory may change under our feet: read each field exactly once
 * into a local with these, then validate the local.
 */
#define READ_ONCE(x)     (*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))

/* Unaligned little-endian loads and stores (x86 and arm64 hosts are little-endian). */
static inline uint16_t le16_get(const void *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}
static inline uint32_t le32_get(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}
static inline uint64_t le64_get(const void *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}
static inline void le16_put(void *p, uint16_t v)
{
    memcpy(p, &v, sizeof(v));
}
static inline void le32_put(void *p, uint32_t v)
{
    memcpy(p, &v, sizeof(v));
}
static inline void le64_put(void *p, uint64_t v)
{
    memcpy(p, &v, sizeof(v));
}

#endif /* VMM_UTIL_H */
