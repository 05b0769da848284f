/*
 * Control API routing (see api.h and docs/API.md): which resource a request
 * names, whether the method fits, what the JSON body says, and the answer.
 *
 * Why a separate, pure module: everything a client can get wrong (paths,
 * methods, malformed or hostile JSON) is decided here, with no socket and
 * no VM, so the unit tests can cover it all against a fake vm_control.
 * Resources follow Firecracker's shapes where one exists (GET /,
 * PATCH /vm), so existing tooling feels at home.
 */
#include "vmm/api/api.h"
#include "vmm/api/api_fc.h"
#include "vmm/metrics.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Firecracker answers an instance without --id with this name. */
#define API_INSTANCE_ID "anonymous-instance"
/* Nesting the PATCH body may have; {"state": "Paused"} needs 1. */
#define API_JSON_DEPTH 4

int api_reply_json(struct api_reply *out, unsigned status, json_object *o)
{
    const char *text = o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE)
                         : NULL;
    char *copy = text ? strdup(text) : NULL;
    json_object_put(o);
    if (!copy)
        return -ENOMEM;
    out->status = status;
    out->body = copy;
    return 0;
}

int api_fault(struct api_reply *out, unsigned status, const char *msg)
{
    json_object *o = json_object_new_object();
    if (o && json_object_object_add(o, "fault_message", json_object_new_string(msg)) < 0) {
        json_object_put(o);
        o = NULL;
    }
    return api_reply_json(out, status, o);
}

void api_route_warm_up(void)
{
    /* Adding a key hashes it, which makes json-c pick its process-wide seed. */
    json_object *o = json_object_new_object();
    if (o) {
        json_object_object_add(o, "warm-up", json_object_new_int(1));
        json_object_put(o);
    }
}

/* Add key -> value, failing on a NULL value (allocation failure). */
static bool put(json_object *o, const char *key, json_object *v)
{
    if (!v || json_object_object_add(o, key, v) < 0) {
        json_object_put(v);
        return false;
    }
    return true;
}

/* GET /: Firecracker's InstanceInfo. */
static int get_instance(const struct vm_control *ctl, struct api_reply *out)
{
    json_object *o = json_object_new_object();
    if (!o || !put(o, "id", json_object_new_string(API_INSTANCE_ID)) ||
        !put(o, "state", json_object_new_string(vm_run_state_name(ctl->state(ctl->ctx)))) ||
        !put(o, "vmm_version", json_object_new_string(WISP_VERSION)) ||
        !put(o, "app_name", json_object_new_string("wisp"))) {
        json_object_put(o);
        return -ENOMEM;
    }
    return api_reply_json(out, 200, o);
}

int api_get_version(struct api_reply *out)
{
    json_object *o = json_object_new_object();
    if (!o || !put(o, "vmm_version", json_object_new_string(WISP_VERSION)) ||
        !put(o, "git_revision", json_object_new_string(WISP_GIT_REV))) {
        json_object_put(o);
        return -ENOMEM;
    }
    return api_reply_json(out, 200, o);
}

static int get_machine_config(const struct vm_control *ctl, struct api_reply *out)
{
    json_object *o = json_object_new_object();
    if (!o || !put(o, "vcpu_count", json_object_new_int64(ctl->vcpus)) ||
        !put(o, "mem_size_mib", json_object_new_int64((int64_t)(ctl->mem_bytes >> 20)))) {
        json_object_put(o);
        return -ENOMEM;
    }
    return api_reply_json(out, 200, o);
}

/*
 * Parse `body` as exactly one JSON object and nothing after it (trailing
 * white space allowed).  On failure *msg gets a fault message in `buf`.
 */
static json_object *parse_object(const char *body, size_t len, char *buf, size_t buflen,
                                 const char **msg)
{
    if (len == 0) {
        *msg = "this request needs a JSON body";
        return NULL;
    }
    /* With its NUL the text has a definite end, so a bare number is complete;
     * json-c stops at the NUL, and anything after it is trailing data. */
    char *text = malloc(len + 1);
    json_tokener *tok = json_tokener_new_ex(API_JSON_DEPTH);
    if (!text || !tok) {
        free(text);
        if (tok)
            json_tokener_free(tok);
        *msg = "out of memory";
        return NULL;
    }
    memcpy(text, body, len);
    text[len] = '\0';
    json_object *o = json_tokener_parse_ex(tok, text, (int)len + 1);
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    free(text);
    if (e != json_tokener_success) {
        /* json_tokener_continue: the text ended inside a value. */
        snprintf(buf, buflen, "malformed JSON at byte %zu: %s", used,
                 e == json_tokener_continue ? "unexpected end of input"
                                            : json_tokener_error_desc(e));
        json_object_put(o);
        *msg = buf;
        return NULL;
    }
    while (used < len && body[used] && strchr(" \t\r\n", body[used]))
        used++;
    if (used < len) {
        snprintf(buf, buflen, "malformed JSON: unexpected data after the object at byte %zu", used);
        json_object_put(o);
        *msg = buf;
        return NULL;
    }
    if (!o || !json_object_is_type(o, json_type_object)) { /* JSON null is NULL */
        json_object_put(o);
        *msg = "the body must be a JSON object";
        return NULL;
    }
    return o;
}

json_object *api_parse_object(const char *body, size_t len, char *buf, size_t buflen,
                              const char **msg)
{
    json_object *o = parse_object(body, len, buf, buflen, msg);
    if (!o)
        metrics_inc(METRICS_API_PARSE_ERRORS);
    return o;
}

/* PATCH /vm {"state": "Paused" | "Resumed"} -> 204. */
static int patch_vm(const struct vm_control *ctl, const char *body, size_t len,
                    struct api_reply *out)
{
    char buf[160];
    const char *msg = NULL;
    json_object *o = api_parse_object(body, len, buf, sizeof(buf), &msg);
    if (!o)
        return api_fault(out, 400, msg);
    const char *want = NULL;
    json_object_object_foreach(o, key, val)
    {
        if (strcmp(key, "state") != 0) {
            snprintf(buf, sizeof(buf), "unknown field '%.60s' (only \"state\")", key);
            msg = buf;
            break;
        }
        if (!json_object_is_type(val, json_type_string)) {
            msg = "state must be the string \"Paused\" or \"Resumed\"";
            break;
        }
        want = json_object_get_string(val);
    }
    int ret;
    if (!msg && !want)
        msg = "missing field 'state'";
    else if (!msg && strcmp(want, "Paused") != 0 && strcmp(want, "Resumed") != 0)
        msg = "state must be \"Paused\" or \"Resumed\"";
    if (msg) {
        ret = api_fault(out, 400, msg);
        goto out;
    }
    if (!strcmp(want, "Paused"))
        ret = ctl->pause(ctl->ctx, VM_PAUSE_TIMEOUT_MS);
    else
        ret = ctl->resume(ctl->ctx);
    if (ret == -ESHUTDOWN) {
        ret = api_fault(out, 409, "the VM is stopping");
    } else if (ret == -EBUSY) {
        ret = api_fault(out, 409, "a snapshot or migration holds the VM paused; it resumes it");
    } else if (ret == -ETIMEDOUT) {
        snprintf(buf, sizeof(buf), "the vCPUs did not stop within %u ms; the VM keeps running",
                 VM_PAUSE_TIMEOUT_MS);
        ret = api_fault(out, 500, buf);
    } else if (ret < 0) {
        snprintf(buf, sizeof(buf), "cannot change the VM state: %s", strerror(-ret));
        ret = api_fault(out, 500, buf);
    } else {
        out->status = 204;
        out->body = NULL;
    }
out:
    json_object_put(o);
    return ret;
}

enum api_resource {
    RES_INSTANCE,
    RES_VERSION,
    RES_VM,
    RES_MACHINE_CONFIG,
    RES_SNAPSHOT_CREATE,
    RES_SNAPSHOT_LOAD,
    RES_MIGRATION,
    RES_BALLOON,
    RES_BALLOON_STATS,
};

static const struct {
    const char *path;
    enum api_resource res;
    const char *methods; /* what the Allow header lists */
} resources[] = {
    {"/", RES_INSTANCE, "GET"},
    {"/version", RES_VERSION, "GET"},
    {"/vm", RES_VM, "PATCH"},
    {"/machine-config", RES_MACHINE_CONFIG, "GET, PUT, PATCH"},
    {"/snapshot/create", RES_SNAPSHOT_CREATE, "PUT"},
    {"/snapshot/load", RES_SNAPSHOT_LOAD, "PUT"},
    {"/migration", RES_MIGRATION, "GET, PUT, DELETE"},
    {"/balloon", RES_BALLOON, "GET, PUT, PATCH"},
    {"/balloon/statistics", RES_BALLOON_STATS, "GET, PATCH"},
};

/* Is `method` one of the comma-separated `methods`? */
static bool method_allowed(const char *method, const char *methods)
{
    size_t n = strlen(method);
    for (const char *p = methods; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && !strncmp(p, method, n))
            return true;
        p += len;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return false;
}

int api_route(const struct vm_control *ctl, const char *method, const char *path, const char *body,
              size_t len, struct api_reply *out)
{
    char buf[160];
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < ARRAY_SIZE(resources); i++) {
        if (strcmp(path, resources[i].path) != 0)
            continue;
        if (!method_allowed(method, resources[i].methods)) {
            snprintf(buf, sizeof(buf), "%.16s is not allowed on %s (allowed: %s)", method,
                     resources[i].path, resources[i].methods);
            out->allow = resources[i].methods;
            return api_fault(out, 405, buf);
        }
        switch (resources[i].res) {
        case RES_INSTANCE:
            return get_instance(ctl, out);
        case RES_VERSION:
            return api_get_version(out);
        case RES_VM:
            return patch_vm(ctl, body, len, out);
        case RES_MACHINE_CONFIG:
            if (strcmp(method, "GET") != 0) /* PUT, PATCH: pre-boot only (api_fc.h) */
                return api_fault(out, 400, API_FC_AFTER_START);
            return get_machine_config(ctl, out);
        case RES_SNAPSHOT_CREATE:
            return api_snapshot_create(ctl, body, len, out);
        case RES_SNAPSHOT_LOAD:
            return api_snapshot_load(ctl, body, len, out);
        case RES_MIGRATION:
            return api_migration(ctl, method, body, len, out);
        case RES_BALLOON:
        case RES_BALLOON_STATS:
            return api_balloon(ctl, method, resources[i].res == RES_BALLOON_STATS, body, len, out);
        }
    }
    int ret = api_fc_runtime(ctl, method, path, body, len, out);
    if (ret <= 0)
        return ret; /* a Firecracker pre-boot resource, answered */
    snprintf(buf, sizeof(buf), "no resource at %.80s", path);
    return api_fault(out, 404, buf);
}
