/*
 * api_route() against a fake struct vm_control: every resource, every
 * method mismatch, and the malformed and hostile bodies a client can send
 * (docs/API.md).  No socket and no KVM: what the API answers is decided
 * here, so this is where the cases live.
 */
#include "vmm/api/api.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The fake VM: counts calls, returns what the test sets. */
struct fake_vm {
    enum vm_run_state state;
    int pause_ret, resume_ret;
    unsigned pauses, resumes, last_timeout;
};

static int fake_pause(void *ctx, unsigned timeout_ms)
{
    struct fake_vm *f = ctx;
    f->pauses++;
    f->last_timeout = timeout_ms;
    if (f->pause_ret == 0)
        f->state = VM_STATE_PAUSED;
    return f->pause_ret;
}

static int fake_resume(void *ctx)
{
    struct fake_vm *f = ctx;
    f->resumes++;
    if (f->resume_ret == 0)
        f->state = VM_STATE_RUNNING;
    return f->resume_ret;
}

static enum vm_run_state fake_state(void *ctx)
{
    return ((struct fake_vm *)ctx)->state;
}

static struct fake_vm fake;
static struct vm_control ctl;
static struct api_reply reply;

static void setup(void)
{
    memset(&fake, 0, sizeof(fake));
    ctl = (struct vm_control){.ctx = &fake,
                              .pause = fake_pause,
                              .resume = fake_resume,
                              .state = fake_state,
                              .vcpus = 3,
                              .mem_bytes = 512ULL << 20};
    memset(&reply, 0, sizeof(reply));
}

static void teardown(void)
{
    free(reply.body);
}

TestSuite(api_route, .init = setup, .fini = teardown);

static unsigned route(const char *method, const char *path, const char *body)
{
    free(reply.body);
    reply.body = NULL;
    cr_assert_eq(api_route(&ctl, method, path, body, body ? strlen(body) : 0, &reply), 0);
    return reply.status;
}

/* The body parsed as JSON; the caller puts it. */
static json_object *body_json(void)
{
    cr_assert_not_null(reply.body, "status %u has no body", reply.status);
    json_object *o = json_tokener_parse(reply.body);
    cr_assert_not_null(o, "not JSON: %s", reply.body);
    return o;
}

static const char *field(json_object *o, const char *key)
{
    json_object *v;
    cr_assert(json_object_object_get_ex(o, key, &v), "no %s in %s", key, reply.body);
    return json_object_get_string(v);
}

/* A fault: the status, a JSON object with exactly fault_message, containing `part`. */
static void assert_fault(unsigned status, const char *part)
{
    cr_assert_eq(reply.status, status, "status %u: %s", reply.status, reply.body);
    json_object *o = body_json();
    cr_assert_eq(json_object_object_length(o), 1, "%s", reply.body);
    cr_assert(strstr(field(o, "fault_message"), part), "%s lacks '%s'", reply.body, part);
    json_object_put(o);
}

Test(api_route, instance_info)
{
    cr_assert_eq(route("GET", "/", NULL), 200);
    json_object *o = body_json();
    cr_assert_str_eq(field(o, "id"), "anonymous-instance");
    cr_assert_str_eq(field(o, "state"), "Running");
    cr_assert_str_eq(field(o, "vmm_version"), WISP_VERSION);
    cr_assert_str_eq(field(o, "app_name"), "wisp");
    json_object_put(o);
    fake.state = VM_STATE_PAUSED;
    cr_assert_eq(route("GET", "/", NULL), 200);
    o = body_json();
    cr_assert_str_eq(field(o, "state"), "Paused");
    json_object_put(o);
}

Test(api_route, version_and_machine_config)
{
    cr_assert_eq(route("GET", "/version", NULL), 200);
    json_object *o = body_json();
    cr_assert_str_eq(field(o, "vmm_version"), WISP_VERSION);
    json_object_put(o);
    cr_assert_eq(route("GET", "/machine-config", NULL), 200);
    o = body_json();
    cr_assert_str_eq(field(o, "vcpu_count"), "3");
    cr_assert_str_eq(field(o, "mem_size_mib"), "512");
    json_object_put(o);
}

Test(api_route, pause_and_resume)
{
    cr_assert_eq(route("PATCH", "/vm", "{\"state\": \"Paused\"}"), 204);
    cr_assert_null(reply.body);
    cr_assert_eq(fake.pauses, 1);
    cr_assert_eq(fake.last_timeout, VM_PAUSE_TIMEOUT_MS);
    cr_assert_eq(route("PATCH", "/vm", " {\"state\":\"Resumed\"}\r\n"), 204, "white space is fine");
    cr_assert_eq(fake.resumes, 1);
}

Test(api_route, pause_failures_are_faults)
{
    fake.pause_ret = -ETIMEDOUT;
    route("PATCH", "/vm", "{\"state\": \"Paused\"}");
    assert_fault(500, "did not stop within 2000 ms");
    fake.pause_ret = -ESHUTDOWN;
    route("PATCH", "/vm", "{\"state\": \"Paused\"}");
    assert_fault(409, "stopping");
    fake.resume_ret = -ESHUTDOWN;
    route("PATCH", "/vm", "{\"state\": \"Resumed\"}");
    assert_fault(409, "stopping");
    fake.resume_ret = -EBUSY;
    route("PATCH", "/vm", "{\"state\": \"Resumed\"}");
    assert_fault(409, "a snapshot or migration holds the VM paused");
    fake.pause_ret = -EIO;
    route("PATCH", "/vm", "{\"state\": \"Paused\"}");
    assert_fault(500, "cannot change the VM state");
}

Test(api_route, unknown_paths_are_404)
{
    static const char *const paths[] = {"/nope",     "/vm/",        "//", "/VM",       "/snapshot/",
                                        "/snapshot", "/migration/", "",   "/version/x"};
    for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
        route("GET", paths[i], NULL);
        assert_fault(404, "no resource at");
    }
    cr_assert_eq(fake.pauses + fake.resumes, 0);
}

Test(api_route, wrong_methods_are_405_with_allow)
{
    static const struct {
        const char *method, *path, *allow;
    } cases[] = {{"PUT", "/vm", "PATCH"},
                 {"GET", "/vm", "PATCH"},
                 {"POST", "/", "GET"},
                 {"DELETE", "/version", "GET"},
                 {"DELETE", "/machine-config", "GET, PUT, PATCH"},
                 {"get", "/", "GET"}};
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        route(cases[i].method, cases[i].path, "{\"state\": \"Paused\"}");
        assert_fault(405, "is not allowed");
        cr_assert_str_eq(reply.allow, cases[i].allow);
    }
    cr_assert_eq(fake.pauses + fake.resumes, 0, "a wrong method must not act");
}

/* Bodies PATCH /vm refuses, each with (part of) its fault message. */
static const struct {
    const char *body;
    const char *fault;
} bad_bodies[] = {
    {"", "needs a JSON body"},
    {"{", "malformed JSON"},
    {"{\"state\": \"Paused\"", "malformed JSON"},
    {"{\"state\": Paused}", "malformed JSON"},
    {"{\"state\": \"Paused\"} x", "unexpected data after the object"},
    {"{\"state\": \"Paused\"}{}", "unexpected data after the object"},
    {"[\"Paused\"]", "must be a JSON object"},
    {"\"Paused\"", "must be a JSON object"},
    {"42", "must be a JSON object"},
    {"null", "must be a JSON object"},
    {"{}", "missing field 'state'"},
    {"{\"state\": \"paused\"}", "state must be"},
    {"{\"state\": \"Running\"}", "state must be"},
    {"{\"state\": 1}", "state must be the string"},
    {"{\"state\": null}", "state must be the string"},
    {"{\"state\": [\"Paused\"]}", "state must be the string"},
    {"{\"state\": \"Paused\", \"extra\": 1}", "unknown field 'extra'"},
    {"{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":1}}}}}", "malformed JSON"}, /* too deep */
};

Test(api_route, bad_bodies_are_400)
{
    for (size_t i = 0; i < ARRAY_SIZE(bad_bodies); i++) {
        route("PATCH", "/vm", bad_bodies[i].body);
        assert_fault(400, bad_bodies[i].fault);
    }
    cr_assert_eq(fake.pauses + fake.resumes, 0, "a refused body must not act");
}

Test(api_route, body_with_nul_and_binary)
{
    static const char nul[] = "{\"state\": \"Paused\"}\0garbage";
    cr_assert_eq(api_route(&ctl, "PATCH", "/vm", nul, sizeof(nul) - 1, &reply), 0);
    assert_fault(400, "unexpected data after the object");
    free(reply.body);
    reply.body = NULL;
    unsigned char bin[64];
    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (unsigned char)(i * 37 + 200);
    cr_assert_eq(api_route(&ctl, "PATCH", "/vm", (const char *)bin, sizeof(bin), &reply), 0);
    assert_fault(400, "malformed JSON");
    cr_assert_eq(fake.pauses, 0);
}

Test(api_route, long_key_and_path_are_cut_in_the_message)
{
    char body[API_BODY_MAX];
    int n = snprintf(body, sizeof(body), "{\"");
    memset(body + n, 'k', 3000);
    snprintf(body + n + 3000, sizeof(body) - (size_t)n - 3000, "\": 1}");
    route("PATCH", "/vm", body);
    assert_fault(400, "unknown field 'kkkk");
    cr_assert_lt(strlen(reply.body), 256, "fault messages stay short");
    char path[2048] = "/";
    memset(path + 1, 'p', sizeof(path) - 2);
    route("GET", path, NULL);
    assert_fault(404, "no resource at /ppp");
    cr_assert_lt(strlen(reply.body), 256);
}

Test(api_route, fault_escapes_json)
{
    cr_assert_eq(api_fault(&reply, 400, "a \"quoted\"\nline"), 0);
    json_object *o = body_json();
    cr_assert_str_eq(field(o, "fault_message"), "a \"quoted\"\nline");
    json_object_put(o);
}
