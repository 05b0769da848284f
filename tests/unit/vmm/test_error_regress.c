/*
 * Regressions found by fuzzing the JSON config loader
 * (tests/fuzz/fuzz_config_json.c; minimised input
 * tests/fuzz/corpus/config_json/regress-control-char-key).
 *
 * Error messages quote user data (option names, values, paths).  A JSON key
 * or value with a control character, e.g. {"\u001b[2J": 1} or a "\n" inside
 * a value, made the one-line error report span lines or carry terminal
 * escape sequences.  err_set() now replaces control characters with '?'.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "vmm/config.h"
#include "vmm/error.h"

static void assert_printable_line(const struct errbuf *e)
{
    cr_assert(e->msg[0] != '\0');
    for (const char *c = e->msg; *c; c++)
        cr_assert((unsigned char)*c >= 0x20 && *c != 0x7f, "control byte 0x%02x in '%s'",
                  (unsigned char)*c, e->msg);
}

Test(error_regress, control_characters_are_replaced)
{
    struct errbuf e = {0};
    cr_assert_eq(err_set(&e, WISP_EXIT_USAGE, 22, "bad '%s'", "a\nb\x1b[2J\x7f\tc"), -22);
    cr_assert_str_eq(e.msg, "bad 'a?b?[2J??c'");
    cr_assert_eq(e.exit_code, WISP_EXIT_USAGE);
}

Test(error_regress, json_key_with_control_character)
{
    struct vm_config c;
    struct errbuf e = {0};
    static const char text[] = "{\"\x17\":\"\"}";
    config_init(&c);
    cr_assert_lt(config_parse_json(&c, text, sizeof(text) - 1, &e), 0);
    assert_printable_line(&e);
    config_free(&c);
}

Test(error_regress, json_value_with_newline_escape)
{
    struct vm_config c;
    struct errbuf e = {0};
    static const char text[] = "{\"boot\":\"pvh\\n\\u001b[31mred\"}";
    config_init(&c);
    cr_assert_lt(config_parse_json(&c, text, sizeof(text) - 1, &e), 0);
    assert_printable_line(&e);
    cr_assert_not_null(strstr(e.msg, "pvh?"), "%s", e.msg);
    config_free(&c);
}
