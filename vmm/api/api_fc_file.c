/*
 * --config-file: Firecracker's JSON configuration layout, one object whose
 * keys name the pre-boot resources ("boot-source", "drives",
 * "machine-config", "network-interfaces", "vsock", "balloon", "logger",
 * "metrics"), applied to a struct vm_config section by section through
 * api_fc_apply(), the handler of the matching PUT request, so the file and
 * the API accept exactly the same values.
 *
 * Why apart from vmm/config_json.c: wisp's own JSON format (--config) has flat
 * keys named like the command-line options; this layout is Firecracker's
 * and is told apart by the option that names the file, never by guessing.
 */
#include "vmm/api/api_fc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FC_FILE_MAX   (1024 * 1024) /* as config_read_file() */
#define FC_FILE_DEPTH 8             /* root, drives[], drive, rate_limiter, bandwidth: 5 */

/* Firecracker sections wisp does not offer: refused unless null. */
static const char *const unsupported[] = {"cpu-config", "mmds-config", "entropy"};

static const char *const sections[] = {
    "boot-source", "machine-config", "drives", "network-interfaces",
    "vsock",       "balloon",        "logger", "metrics"};

/* Apply one section (an object, or an array of them for drives and interfaces). */
static int apply(struct api_fc *fc, const char *key, json_object *v, struct errbuf *err)
{
    char buf[480];
    const char *msg = NULL;
    bool list = !strcmp(key, "drives") || !strcmp(key, "network-interfaces");
    if (!v)
        return 0; /* null: the section is absent */
    if (list != json_object_is_type(v, json_type_array))
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "config file: \"%s\" must be %s", key,
                       list ? "an array of objects" : "an object");
    size_t n = list ? json_object_array_length(v) : 1;
    for (size_t i = 0; i < n; i++) {
        json_object *o = list ? json_object_array_get_idx(v, i) : v;
        if (!o)
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "config file: \"%s\" entry %zu must be an object", key, i);
        if (api_fc_apply(fc, key, NULL, o, buf, sizeof(buf), &msg) < 0) {
            if (list)
                return err_set(err, WISP_EXIT_USAGE, EINVAL, "config file: \"%s\" entry %zu: %s",
                               key, i, msg);
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "config file: \"%s\": %s", key, msg);
        }
    }
    return 0;
}

/* Parse text as one JSON object with nothing but white space after it. */
static json_object *parse(const char *text, size_t len, struct errbuf *err)
{
    if (len > FC_FILE_MAX) {
        err_set(err, WISP_EXIT_USAGE, EFBIG, "config file is larger than %d bytes", FC_FILE_MAX);
        return NULL;
    }
    json_tokener *tok = json_tokener_new_ex(FC_FILE_DEPTH);
    if (!tok) {
        err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
        return NULL;
    }
    json_object *root = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (e != json_tokener_success) {
        err_set(err, WISP_EXIT_USAGE, EINVAL, "config file: invalid JSON at byte %zu: %s", end,
                e == json_tokener_continue ? "unexpected end of input"
                                           : json_tokener_error_desc(e));
        json_object_put(root);
        return NULL;
    }
    while (end < len && strchr(" \t\r\n", text[end]) && text[end])
        end++;
    if (end < len || !json_object_is_type(root, json_type_object)) {
        err_set(err, WISP_EXIT_USAGE, EINVAL,
                "config file: must be exactly one JSON object (Firecracker's layout)");
        json_object_put(root);
        return NULL;
    }
    return root;
}

int api_fc_config_parse(struct vm_config *cfg, const char *text, size_t len, struct errbuf *err)
{
    json_object *root = parse(text, len, err);
    if (!root)
        return -EINVAL;
    struct api_fc fc;
    api_fc_init(&fc, cfg);
    int ret = 0;
    json_object_object_foreach(root, key, val)
    {
        bool known = false;
        for (size_t i = 0; i < ARRAY_SIZE(unsupported); i++) {
            if (!strcmp(key, unsupported[i]) && val) {
                ret = err_set(err, WISP_EXIT_USAGE, EINVAL,
                              "config file: \"%s\" is not supported by wisp", key);
                goto out;
            }
            known |= !strcmp(key, unsupported[i]);
        }
        for (size_t i = 0; i < ARRAY_SIZE(sections); i++)
            known |= !strcmp(key, sections[i]);
        if (!known) {
            ret = err_set(err, WISP_EXIT_USAGE, EINVAL,
                          "config file: unknown section \"%.40s\" (Firecracker's layout: "
                          "boot-source, machine-config, drives, network-interfaces, vsock, "
                          "balloon, logger, metrics)",
                          key);
            goto out;
        }
        ret = apply(&fc, key, val, err);
        if (ret < 0)
            goto out;
    }
    if (!fc.has_boot_source) {
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL,
                      "config file: \"boot-source\" with \"kernel_image_path\" is required");
        goto out;
    }
    char buf[480];
    if (api_fc_finish(&fc, buf, sizeof(buf)) < 0)
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "config file: %s", buf);
out:
    json_object_put(root);
    return ret;
}

int api_fc_config_load(struct vm_config *cfg, const char *path, struct errbuf *err)
{
    char *text = NULL;
    size_t len = 0;
    int ret = config_read_file(path, &text, &len, err);
    if (ret == 0)
        ret = api_fc_config_parse(cfg, text, len, err);
    free(text);
    return ret;
}
