/*
 * gstr.c - the architecture-independent half of the test guests' support
 * library (x86 testguest and the arm64 one): string helpers, a small
 * printf whose console output goes through the guest's serial_putc(),
 * FNV-1a, the key=value command-line parser and the check lines.
 */
#include "gstr.h"
#include "protocol.h" /* FNV-1a constants */

int memcmp(const void *a, const void *b, size_t n)
{
    const u8 *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return x[i] - y[i];
    return 0;
}

bool streq(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

/* ---- printf subset: %s %c %d %i %u %x %p, flags 0 and width, l/ll/z ---- */
struct sink {
    char *buf; /* NULL: write to the serial port */
    size_t size, len;
};

static void emit(struct sink *s, char c)
{
    if (!s->buf)
        serial_putc(c);
    else if (s->len + 1 < s->size)
        s->buf[s->len] = c;
    s->len++;
}

static void emit_num(struct sink *s, u64 v, unsigned base, bool neg, int width, char pad)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (neg)
        tmp[n++] = '-';
    for (int i = n; i < width; i++)
        emit(s, pad);
    while (n)
        emit(s, tmp[--n]);
}

static void format(struct sink *s, const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            emit(s, *fmt);
            continue;
        }
        char pad = ' ';
        int width = 0, lng = 0;
        if (*++fmt == '0')
            pad = '0', fmt++;
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l' || *fmt == 'z')
            lng++, fmt++;
        switch (*fmt) {
        case 's': {
            const char *str = va_arg(ap, const char *);
            if (!str)
                str = "(null)";
            while (*str)
                emit(s, *str++);
            break;
        }
        case 'c':
            emit(s, (char)va_arg(ap, int));
            break;
        case 'd':
        case 'i': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
            emit_num(s, v < 0 ? -(u64)v : (u64)v, 10, v < 0, width, pad);
            break;
        }
        case 'u':
        case 'x': {
            u64 v = lng ? va_arg(ap, u64) : va_arg(ap, unsigned);
            emit_num(s, v, *fmt == 'u' ? 10 : 16, false, width, pad);
            break;
        }
        case 'p':
            emit(s, '0');
            emit(s, 'x');
            emit_num(s, (u64)va_arg(ap, void *), 16, false, 0, ' ');
            break;
        case '%':
            emit(s, '%');
            break;
        default: /* unknown: print it, stop at end */
            emit(s, '%');
            if (!*fmt)
                return;
            emit(s, *fmt);
        }
    }
}

int vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct sink s = {buf, size, 0};
    format(&s, fmt, ap);
    if (size)
        buf[s.len < size ? s.len : size - 1] = 0;
    return (int)s.len;
}

int sformat(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vformat(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

void gprintf(const char *fmt, ...)
{
    struct sink s = {NULL, 0, 0};
    va_list ap;
    va_start(ap, fmt);
    format(&s, fmt, ap);
    va_end(ap);
}

u32 fnv1a(const u8 *p, u64 n)
{
    u32 h = GUEST_FNV_OFFSET;
    for (u64 i = 0; i < n; i++)
        h = (h ^ p[i]) * GUEST_FNV_PRIME;
    return h;
}

/* Command line: space-separated key=value tokens. The last occurrence
 * wins (as on Linux), so a VMM could override earlier keys. */
bool cmdline_get(const char *cl, const char *key, char *out, size_t size)
{
    size_t klen = strlen(key);
    bool found = false;
    while (*cl) {
        while (*cl == ' ')
            cl++;
        const char *tok = cl;
        while (*cl && *cl != ' ')
            cl++;
        if ((size_t)(cl - tok) > klen && tok[klen] == '=' && memcmp(tok, key, klen) == 0) {
            size_t n = cl - tok - klen - 1;
            if (n >= size)
                n = size - 1;
            memcpy(out, tok + klen + 1, n);
            out[n] = 0;
            found = true;
        }
    }
    return found;
}

bool parse_u64(const char *s, u64 *out)
{
    u64 v = 0;
    unsigned base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        base = 16, s += 2;
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = *s - '0';
        else if (base == 16 && (*s | 0x20) >= 'a' && (*s | 0x20) <= 'f')
            d = (*s | 0x20) - 'a' + 10;
        else
            return false;
        v = v * base + d;
    }
    *out = v;
    return true;
}

bool any_failed;

bool check(const char *name, bool ok, const char *fmt, ...)
{
    char detail[200];
    va_list ap;
    va_start(ap, fmt);
    vformat(detail, sizeof detail, fmt, ap);
    va_end(ap);
    SAY("check %s %s %s", name, ok ? "ok" : "FAIL", detail);
    if (!ok)
        any_failed = true;
    return ok;
}
