/*
 * The JSON configuration loader (--config FILE; config_load_json() and
 * config_parse_json(), config.h).  Why apart from config.c: it is the only
 * user of json-c there and only turns JSON values into the text config_set()
 * and config_add_device() take, so the key handling stays in one place.
 */
#include "vmm/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_JSON_FILE (1024 * 1024) /* a VM description is a few hundred bytes */

/* Line number of byte offset `pos` in `text`, for JSON error messages. */
static unsigned line_of(const char *text, size_t pos)
{
    unsigned line = 1;
    for (size_t i = 0; i < pos && text[i]; i++)
        line += text[i] == '\n';
    return line;
}

static int json_value_to_string(json_object *v, const char *key, char *buf, size_t len,
                                const char **out, struct errbuf *err)
{
    switch (json_object_get_type(v)) {
    case json_type_string:
        *out = json_object_get_string(v);
        return 0;
    case json_type_boolean:
        *out = json_object_get_boolean(v) ? "on" : "off";
        return 0;
    case json_type_int: {
        int64_t n = json_object_get_int64(v);
        if (n < 0)
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "config: '%s' must not be negative", key);
        /* A bare number for memory means MiB ("memory": 512). */
        snprintf(buf, len, "%lld%s", (long long)n, strcmp(key, "memory") ? "" : "M");
        *out = buf;
        return 0;
    }
    default:
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "config: '%s' must be a string, number or boolean", key);
    }
}

/*
 * JSON form of --device: a string "blk,path=x", an object {"type": "blk",
 * "path": "x", "readonly": true}, or an array of either.  Objects are turned
 * into the string form, so both go through config_add_device().
 */
static int json_device_one(struct vm_config *c, json_object *v, struct errbuf *err)
{
    if (json_object_is_type(v, json_type_string))
        return config_add_device(c, json_object_get_string(v), err);
    if (!json_object_is_type(v, json_type_object))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "config: each device must be a string or an object");
    json_object *type;
    if (!json_object_object_get_ex(v, "type", &type) ||
        !json_object_is_type(type, json_type_string))
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "config: a device object needs \"type\"");
    char spec[4096];
    size_t off = (size_t)snprintf(spec, sizeof(spec), "%s", json_object_get_string(type));
    json_object_object_foreach(v, k, val)
    {
        if (!strcmp(k, "type"))
            continue;
        char num[32];
        const char *s = NULL;
        int ret = json_value_to_string(val, k, num, sizeof(num), &s, err);
        if (ret < 0)
            return ret;
        if (strchr(s, ',') || strchr(k, ',') || strchr(k, '='))
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "config: device option '%s' must not contain ',' or '='", k);
        int n = snprintf(spec + off, sizeof(spec) - off, ",%s=%s", k, s);
        if (n < 0 || (size_t)n >= sizeof(spec) - off)
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "config: device description too long");
        off += (size_t)n;
    }
    return config_add_device(c, spec, err);
}

static int json_devices(struct vm_config *c, json_object *v, struct errbuf *err)
{
    if (!json_object_is_type(v, json_type_array))
        return json_device_one(c, v, err);
    size_t n = json_object_array_length(v);
    for (size_t i = 0; i < n; i++) {
        int ret = json_device_one(c, json_object_array_get_idx(v, i), err);
        if (ret < 0)
            return ret;
    }
    return 0;
}

int config_parse_json(struct vm_config *c, const char *text, size_t len, struct errbuf *err)
{
    if (len > MAX_JSON_FILE)
        return err_set(err, WISP_EXIT_USAGE, EFBIG, "config is larger than %d bytes",
                       MAX_JSON_FILE);
    json_tokener *tok = json_tokener_new_ex(16); /* nesting depth: we need 1 */
    if (!tok)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    json_object *root = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    int ret = 0;
    if (!root || jerr != json_tokener_success) {
        if (jerr == json_tokener_continue)
            ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "config: JSON ends unexpectedly");
        else
            ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "config: invalid JSON at line %u: %s",
                          line_of(text, json_tokener_get_parse_end(tok)),
                          json_tokener_error_desc(jerr));
        goto out;
    }
    /* Nothing but white space may follow the object. */
    for (size_t i = json_tokener_get_parse_end(tok); i < len; i++) {
        if (!isspace((unsigned char)text[i])) {
            ret = err_set(err, WISP_EXIT_USAGE, EINVAL,
                          "config: unexpected text after the JSON object at line %u",
                          line_of(text, i));
            goto out;
        }
    }
    if (!json_object_is_type(root, json_type_object)) {
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "config: top level must be a JSON object");
        goto out;
    }
    json_object_object_foreach(root, key, val)
    {
        char num[32];
        const char *s = NULL;
        if (!strcmp(key, "config")) {
            ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "config: files cannot include others");
            goto out;
        }
        if (config_key_is_flag(key) && !json_object_is_type(val, json_type_boolean)) {
            ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "config: '%s' must be true or false", key);
            goto out;
        }
        if (!strcmp(key, "device")) {
            ret = json_devices(c, val, err);
            if (ret < 0)
                goto out;
            continue;
        }
        ret = json_value_to_string(val, key, num, sizeof(num), &s, err);
        if (ret < 0)
            goto out;
        ret = config_set(c, key, s, err);
        if (ret < 0) {
            /* Prefix the message so the user knows it came from the file. */
            static const char prefix[] = "config: ";
            size_t keep = sizeof(err->msg) - sizeof(prefix);
            memmove(err->msg + sizeof(prefix) - 1, err->msg, keep);
            memcpy(err->msg, prefix, sizeof(prefix) - 1);
            err->msg[sizeof(err->msg) - 1] = '\0';
            goto out;
        }
    }
out:
    if (root)
        json_object_put(root);
    json_tokener_free(tok);
    return ret;
}

int config_read_file(const char *path, char **text, size_t *len, struct errbuf *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) /* a FIFO must not block us */;
    if (fd < 0)
        return err_set(err, WISP_EXIT_USAGE, errno, "cannot open config file %s: %s", path,
                       strerror(errno));
    struct stat st;
    char *buf = NULL;
    int ret;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "config file %s is not a regular file", path);
        goto out;
    }
    if (st.st_size > MAX_JSON_FILE) {
        ret = err_set(err, WISP_EXIT_USAGE, EFBIG, "config file %s is larger than %d bytes", path,
                      MAX_JSON_FILE);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        ret = err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ret = err_set(err, WISP_EXIT_USAGE, n < 0 ? errno : EIO, "cannot read config file %s",
                          path);
            goto out;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *text = buf;
    *len = got;
    buf = NULL;
    ret = 0;
out:
    free(buf);
    close(fd);
    return ret;
}

int config_load_json(struct vm_config *c, const char *path, struct errbuf *err)
{
    char *text = NULL;
    size_t len = 0;
    int ret = config_read_file(path, &text, &len, err);
    if (ret == 0)
        ret = config_parse_json(c, text, len, err);
    free(text);
    return ret;
}
