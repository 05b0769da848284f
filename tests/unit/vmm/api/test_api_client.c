/*
 * The CLI client's reply parser (api_client_parse_response): complete
 * replies with and without Content-Length, and everything that must be
 * refused rather than half-read.
 */
#include "vmm/api/api.h"

#include <criterion/criterion.h>
#include <string.h>

static int parse(const char *s, unsigned *status, size_t *off, size_t *len)
{
    return api_client_parse_response(s, strlen(s), status, off, len);
}

Test(api_client, good_replies)
{
    unsigned st;
    size_t off, len;
    const char *r = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    "Content-Length: 7\r\n\r\n{\"a\":1}";
    cr_assert_eq(parse(r, &st, &off, &len), 0);
    cr_assert_eq(st, 200);
    cr_assert_eq(len, 7);
    cr_assert_eq(strncmp(r + off, "{\"a\":1}", len), 0);

    cr_assert_eq(parse("HTTP/1.1 204 No Content\r\n\r\n", &st, &off, &len), 0);
    cr_assert_eq(st, 204);
    cr_assert_eq(len, 0);

    /* No Content-Length: the rest (the server closes the connection). */
    cr_assert_eq(
        parse("HTTP/1.0 400 Bad Request\r\n\r\n{\"fault_message\":\"x\"}", &st, &off, &len), 0);
    cr_assert_eq(st, 400);
    cr_assert_eq(len, strlen("{\"fault_message\":\"x\"}"));

    /* Header names are case-insensitive; extra bytes past the length are ignored. */
    cr_assert_eq(parse("HTTP/1.1 200 OK\r\ncontent-LENGTH:  2\r\n\r\n{}junk", &st, &off, &len), 0);
    cr_assert_eq(len, 2);
}

Test(api_client, refused_replies)
{
    static const char *const bad[] = {
        "",
        "HTTP/1.1",
        "HTTP/1.1 200 OK\r\n",   /* headers never end */
        "HTTP/2 200 OK\r\n\r\n", /* not HTTP/1.x */
        "HTTX/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 099 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", /* cut short */
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n{}",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        unsigned st;
        size_t off, len;
        cr_assert_lt(parse(bad[i], &st, &off, &len), 0, "accepted: %s", bad[i]);
    }
}

Test(api_client, verbs)
{
    cr_assert(api_cli_is_verb("pause"));
    cr_assert(api_cli_is_verb("resume"));
    cr_assert(api_cli_is_verb("status"));
    cr_assert_not(api_cli_is_verb("run"));
    cr_assert(api_cli_is_verb("snapshot"));
    cr_assert(api_cli_is_verb("migrate"));
    cr_assert_not(api_cli_is_verb("snapshots"));
}
