/*
 * Request bodies as tables: each resource lists the fields it accepts (name,
 * JSON type, range or the one accepted value, required or not) and
 * api_fields_get() walks the object once against that list.  One walker
 * means every resource refuses an unknown key, a wrong type, a value out of
 * range and a missing field the same way, with the same fault wording.
 */
#include "vmm/api/api.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

/* Append the accepted fields, "a (string), b (1-64)", to buf at *pos. */
static void list_fields(const struct api_field *f, size_t n, char *buf, size_t buflen, size_t *pos)
{
    for (size_t i = 0; i < n && *pos < buflen; i++) {
        int w;
        const char *sep = i ? ", " : "";
        if (f[i].kind == API_FIELD_UINT)
            w = snprintf(buf + *pos, buflen - *pos, "%s%s (%llu-%llu)", sep, f[i].name,
                         (unsigned long long)f[i].min, (unsigned long long)f[i].max);
        else if (f[i].kind == API_FIELD_STRING && f[i].only)
            w = snprintf(buf + *pos, buflen - *pos, "%s%s (\"%s\")", sep, f[i].name, f[i].only);
        else
            w = snprintf(buf + *pos, buflen - *pos, "%s%s (%s)", sep, f[i].name,
                         f[i].kind == API_FIELD_BOOL     ? "boolean"
                         : f[i].kind == API_FIELD_OBJECT ? "object"
                         : f[i].kind == API_FIELD_ARRAY  ? "array"
                                                         : "string");
        if (w < 0)
            return;
        *pos += (size_t)w;
    }
}

/* Store val in f's target if it has the right type and value; false otherwise. */
static bool take(const struct api_field *f, json_object *val, char *buf, size_t buflen,
                 const char **msg)
{
    switch (f->kind) {
    case API_FIELD_STRING:
        if (!json_object_is_type(val, json_type_string))
            return false;
        if (f->only && strcmp(json_object_get_string(val), f->only) != 0) {
            snprintf(buf, buflen, "%s must be \"%s\"%s%s", f->name, f->only, f->why ? " " : "",
                     f->why ? f->why : "");
            *msg = buf;
            return false;
        }
        if (f->str)
            *f->str = json_object_get_string(val);
        return true;
    case API_FIELD_BOOL:
        if (!json_object_is_type(val, json_type_boolean))
            return false;
        *f->flag = json_object_get_boolean(val);
        return true;
    case API_FIELD_OBJECT:
        return json_object_is_type(val, json_type_object);
    case API_FIELD_ARRAY:
        return json_object_is_type(val, json_type_array);
    case API_FIELD_UINT: {
        if (!json_object_is_type(val, json_type_int))
            return false;
        int64_t x = json_object_get_int64(val);
        if (x < 0 || (uint64_t)x < f->min || (uint64_t)x > f->max) {
            snprintf(buf, buflen, "%s must be a whole number in %llu-%llu", f->name,
                     (unsigned long long)f->min, (unsigned long long)f->max);
            *msg = buf;
            return false;
        }
        *f->num = (uint64_t)x;
        return true;
    }
    }
    return false;
}

bool api_fields_get(json_object *o, const struct api_field *fields, size_t n, char *buf,
                    size_t buflen, const char **msg)
{
    uint64_t seen = 0; /* one bit per table entry: n <= 64 */
    if (n > 64) {
        *msg = "internal error: too many fields";
        return false;
    }
    json_object_object_foreach(o, key, val)
    {
        size_t i = 0;
        while (i < n && strcmp(key, fields[i].name) != 0)
            i++;
        if (i < n && !val)
            continue; /* JSON null: absent (Firecracker's optional fields) */
        if (i < n && take(&fields[i], val, buf, buflen, msg)) {
            seen |= 1ULL << i;
            continue;
        }
        if (i < n && *msg)
            return false; /* a value the field refuses, said by take() */
        size_t pos = 0;
        int w = snprintf(buf, buflen, "unknown field or wrong type: '%.40s' (accepted: ", key);
        pos = w > 0 ? (size_t)w : 0;
        list_fields(fields, n, buf, buflen, &pos);
        if (pos + 2 <= buflen)
            memcpy(buf + pos, ")", 2);
        *msg = buf;
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (fields[i].required && !(seen & (1ULL << i))) {
            snprintf(buf, buflen, "%s is required%s%s", fields[i].name, fields[i].why ? " " : "",
                     fields[i].why ? fields[i].why : "");
            *msg = buf;
            return false;
        }
    }
    return true;
}

json_object *api_body_fields(const char *body, size_t len, const struct api_field *fields, size_t n,
                             struct api_reply *out, int *ret)
{
    char buf[480];
    const char *msg = NULL;
    json_object *o = api_parse_object(body, len, buf, sizeof(buf), &msg);
    if (o && !api_fields_get(o, fields, n, buf, sizeof(buf), &msg)) {
        json_object_put(o);
        o = NULL;
    }
    if (!o)
        *ret = api_fault(out, 400, msg);
    return o;
}
