/* The Ctrl-A escape filter (vmm/term.c) shared by the serial and console paths. */
#include "vmm/term.h"

#include <criterion/criterion.h>
#include <string.h>

static size_t run(struct term_escape *e, const char *in, size_t len, char *out, bool *stop)
{
    memcpy(out, in, len);
    return term_escape_filter(e, (uint8_t *)out, len, stop);
}

Test(term_escape, plain_bytes_pass)
{
    struct term_escape e = {0};
    char buf[16];
    bool stop;
    size_t n = run(&e, "hello\r\n", 7, buf, &stop);
    cr_assert_eq(n, 7);
    cr_assert_eq(memcmp(buf, "hello\r\n", 7), 0);
    cr_assert_not(stop);
    cr_assert_not(e.pending);
}

Test(term_escape, ctrl_a_x_stops_and_drops_the_rest)
{
    struct term_escape e = {0};
    char buf[16];
    bool stop;
    size_t n = run(&e, "ab\001xcd", 6, buf, &stop);
    cr_assert(stop);
    cr_assert_eq(n, 2);
    cr_assert_eq(memcmp(buf, "ab", 2), 0);
    n = run(&e, "\001X", 2, buf, &stop);
    cr_assert(stop, "capital X too");
    cr_assert_eq(n, 0);
}

Test(term_escape, ctrl_a_ctrl_a_sends_one)
{
    struct term_escape e = {0};
    char buf[16];
    bool stop;
    size_t n = run(&e, "\001\001\001\001", 4, buf, &stop);
    cr_assert_not(stop);
    cr_assert_eq(n, 2);
    cr_assert_eq(buf[0], 1);
    cr_assert_eq(buf[1], 1);
}

Test(term_escape, ctrl_a_other_sends_the_key_alone)
{
    struct term_escape e = {0};
    char buf[16];
    bool stop;
    size_t n = run(&e, "\001c", 2, buf, &stop);
    cr_assert_eq(n, 1);
    cr_assert_eq(buf[0], 'c');
    cr_assert_not(stop);
}

Test(term_escape, escape_spans_reads)
{
    struct term_escape e = {0};
    char buf[16];
    bool stop;
    size_t n = run(&e, "a\001", 2, buf, &stop);
    cr_assert_eq(n, 1, "the Ctrl-A is held back");
    cr_assert(e.pending);
    n = run(&e, "x", 1, buf, &stop);
    cr_assert(stop);
    cr_assert_eq(n, 0);
    e.pending = false;
    run(&e, "\001", 1, buf, &stop);
    n = run(&e, "q", 1, buf, &stop);
    cr_assert_eq(n, 1);
    cr_assert_eq(buf[0], 'q');
}

Test(term_escape, never_grows)
{
    /* Every input of up to 3 bytes from {Ctrl-A, x, y}, in any starting state. */
    const char alphabet[] = {'\001', 'x', 'y'};
    for (int pend = 0; pend < 2; pend++)
        for (unsigned len = 0; len <= 3; len++)
            for (unsigned code = 0; code < 27; code++) {
                char in[3], buf[3];
                unsigned c = code;
                for (unsigned i = 0; i < len; i++, c /= 3)
                    in[i] = alphabet[c % 3];
                struct term_escape e = {.pending = pend};
                bool stop;
                cr_assert_leq(run(&e, in, len, buf, &stop), len);
            }
}
