/*
 * Fuzz target: api_route(), the control API's routing and JSON parsing
 * (security.md I, `api_request`), against a fake VM.
 *
 * Why: every byte of a request line's method and path and every byte of a
 * body reaches this code from a client of the API socket; libmicrohttpd has
 * already split the request, so this is the part that is ours.
 *
 * Input: byte 0 picks the method, byte 1 the path (one of the resources,
 * a near miss, or, for values past the table, the next bytes up to a NUL);
 * the rest is the body, exactly sized (ASan catches a read past it).
 *
 * Checked: the answer is a known status; every answer but 204 is a JSON
 * object; a fault (>= 400) has exactly the key fault_message with a string
 * of at most 200 bytes; 405 names Allow; only PATCH /vm with 204 pauses or
 * resumes (PUT /actions FlushMetrics and PATCH /logger are the only other
 * 204s, acting on no VM), and nothing acts on a refused request.
 */
#include "tests/fuzz/fuzz.h"

#include <json-c/json.h>

#include "vmm/api/api.h"

static unsigned fz_acts;

static int fz_pause(void *ctx, unsigned timeout_ms)
{
    (void)ctx;
    (void)timeout_ms;
    fz_acts++;
    return 0;
}

static int fz_resume(void *ctx)
{
    (void)ctx;
    fz_acts++;
    return 0;
}

static enum vm_run_state fz_state(void *ctx)
{
    (void)ctx;
    return VM_STATE_RUNNING;
}

static const struct vm_control fz_ctl = {
    .pause = fz_pause, .resume = fz_resume, .state = fz_state, .vcpus = 2, .mem_bytes = 256 << 20};

static const char *const fz_methods[] = {"GET", "PATCH", "PUT", "POST", "DELETE", "HEAD", "get"};
static const char *const fz_paths[] = {"/",          "/version", "/vm", "/machine-config",
                                       "/vm/",       "",         "//",  "/snapshot/create",
                                       "/version/x", "/VM"};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const char *method = fz_methods[data[0] % ARRAY_SIZE(fz_methods)];
    char path[128];
    size_t used = 2;
    if (data[1] < ARRAY_SIZE(fz_paths)) {
        snprintf(path, sizeof(path), "%s", fz_paths[data[1]]);
    } else {
        size_t n = 0;
        while (used < size && data[used] && n < sizeof(path) - 1)
            path[n++] = (char)data[used++];
        path[n] = '\0';
        used += used < size; /* the NUL */
    }
    size_t len = size - used;
    char *body = malloc(len ? len : 1);
    memcpy(body, data + used, len);

    fz_acts = 0;
    struct api_reply r;
    if (api_route(&fz_ctl, method, path, body, len, &r) < 0)
        goto out; /* out of memory */
    static const unsigned known[] = {200, 204, 400, 404, 405, 409, 500};
    bool ok = false;
    for (size_t i = 0; i < ARRAY_SIZE(known); i++)
        ok |= r.status == known[i];
    FZ_CHECK(ok, "status %u", r.status);
    FZ_CHECK((r.status == 204) == (r.body == NULL), "status %u with body %p", r.status,
             (void *)r.body);
    bool vm = !strcmp(method, "PATCH") && !strcmp(path, "/vm");
    FZ_CHECK(fz_acts == (r.status == 204 && vm ? 1u : 0u), "acted %u times for status %u", fz_acts,
             r.status);
    /* The other 204s: PUT /actions FlushMetrics (no sink here: nothing
     * written) and PATCH /logger (the log level, no VM). */
    FZ_CHECK(r.status != 204 || vm || (!strcmp(method, "PUT") && !strcmp(path, "/actions")) ||
                 (!strcmp(method, "PATCH") && !strcmp(path, "/logger")),
             "204 for %s %s", method, path);
    FZ_CHECK((r.status == 405) == (r.allow != NULL), "Allow with status %u", r.status);
    if (r.body) {
        json_object *o = json_tokener_parse(r.body);
        FZ_CHECK(o && json_object_is_type(o, json_type_object), "not an object: %s", r.body);
        if (r.status >= 400) {
            json_object *m;
            FZ_CHECK(json_object_object_length(o) == 1 &&
                         json_object_object_get_ex(o, "fault_message", &m) &&
                         json_object_is_type(m, json_type_string) &&
                         strlen(json_object_get_string(m)) <= 200,
                     "bad fault: %s", r.body);
        }
        json_object_put(o);
    }
    free(r.body);
out:
    free(body);
    return 0;
}
