/*
 * api_fields_get(): the one walker every request body goes through.  Each
 * refusal must name the field, and nothing but the listed fields with the
 * listed types and ranges may pass.
 */
#include "vmm/api/api.h"

#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

static const char *name;
static bool flag;
static uint64_t num;
static char buf[480];

static const struct api_field fields[] = {
    {.name = "name", .kind = API_FIELD_STRING, .required = true, .str = &name, .why = "(a file)"},
    {.name = "kind", .kind = API_FIELD_STRING, .only = "Full", .why = "(no diffs)"},
    {.name = "flag", .kind = API_FIELD_BOOL, .flag = &flag},
    {.name = "num", .kind = API_FIELD_UINT, .num = &num, .min = 1, .max = 64},
    {.name = "lim", .kind = API_FIELD_OBJECT},
};

/* Parse `text` against the table: the fault message, or NULL on success. */
static const char *walk(const char *text)
{
    name = NULL;
    flag = false;
    num = 0;
    json_object *o = json_tokener_parse(text);
    cr_assert_not_null(o, "bad test JSON %s", text);
    const char *msg = NULL;
    bool ok = api_fields_get(o, fields, sizeof(fields) / sizeof(fields[0]), buf, sizeof(buf), &msg);
    cr_assert_eq(ok, msg == NULL, "%s: ok %d but msg %s", text, ok, msg ? msg : "(null)");
    static char keep[480];
    snprintf(keep, sizeof(keep), "%s", msg ? msg : "");
    json_object_put(o);
    return msg ? keep : NULL;
}

Test(api_fields, accepts_every_listed_field)
{
    cr_assert_null(walk("{\"name\":\"a\",\"kind\":\"Full\",\"flag\":true,\"num\":64}"));
    cr_assert_str_eq(name == NULL ? "" : "set", "set");
    cr_assert(flag);
    cr_assert_eq(num, 64);
    cr_assert_null(walk("{\"name\":\"b\"}"), "optional fields may be left out");
}

Test(api_fields, refuses_unknown_and_wrong_types_by_name)
{
    const char *m = walk("{\"name\":\"a\",\"extra\":1}");
    cr_assert(m && strstr(m, "unknown field or wrong type: 'extra'"), "%s", m);
    cr_assert(strstr(m, "name (string), kind (\"Full\"), flag (boolean), num (1-64)"), "%s", m);
    m = walk("{\"name\":7}");
    cr_assert(m && strstr(m, "'name'"), "%s", m);
    m = walk("{\"name\":\"a\",\"flag\":1}");
    cr_assert(m && strstr(m, "'flag'"), "%s", m);
    m = walk("{\"name\":\"a\",\"num\":\"3\"}");
    cr_assert(m && strstr(m, "'num'"), "%s", m);
}

Test(api_fields, refuses_values_out_of_range)
{
    const char *m = walk("{\"name\":\"a\",\"num\":0}");
    cr_assert(m && strstr(m, "num must be a whole number in 1-64"), "%s", m);
    m = walk("{\"name\":\"a\",\"num\":65}");
    cr_assert(m && strstr(m, "1-64"), "%s", m);
    m = walk("{\"name\":\"a\",\"num\":-1}");
    cr_assert(m && strstr(m, "1-64"), "%s", m);
    m = walk("{\"name\":\"a\",\"kind\":\"Diff\"}");
    cr_assert(m && strstr(m, "kind must be \"Full\" (no diffs)"), "%s", m);
}

Test(api_fields, refuses_a_missing_required_field)
{
    const char *m = walk("{\"flag\":false}");
    cr_assert(m && strstr(m, "name is required (a file)"), "%s", m);
    m = walk("{}");
    cr_assert(m && strstr(m, "name is required"), "%s", m);
}

Test(api_fields, a_long_key_is_cut_not_overflowed)
{
    char text[2048];
    char key[1500];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    snprintf(text, sizeof(text), "{\"%s\":1}", key);
    const char *m = walk(text);
    cr_assert(m && strlen(m) < sizeof(buf), "%s", m);
}

Test(api_fields, null_is_absent_and_objects_are_accepted_unread)
{
    cr_assert_null(walk("{\"name\":\"a\",\"num\":null,\"flag\":null,\"kind\":null}"));
    cr_assert_eq(num, 0, "null sets nothing");
    const char *m = walk("{\"name\":null}");
    cr_assert(m && strstr(m, "name is required"), "null is not a value: %s", m);
    cr_assert_null(walk("{\"name\":\"a\",\"lim\":{\"bandwidth\":{\"size\":1}}}"));
    cr_assert_null(walk("{\"name\":\"a\",\"lim\":null}"));
    m = walk("{\"name\":\"a\",\"lim\":[1]}");
    cr_assert(m && strstr(m, "wrong type: 'lim'") && strstr(m, "lim (object)"), "%s", m);
}
