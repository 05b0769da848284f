/*
 * PUT /snapshot/create, PUT /snapshot/load and /migration against a fake
 * struct vm_control: what reaches the VM, and every refusal a client can
 * provoke with a body (docs/API.md).
 */
#include "vmm/api/api.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
    int snap_ret, mig_ret, cancel_ret, load_ret;
    unsigned snaps, migs, cancels, loads;
    bool resume;
    char state_name[64], mem_name[64], to[128];
    bool stop;
    struct vm_migrate_req req;
    struct vm_migrate_status st;
} f;
static struct api_reply reply;

static int snap(void *ctx, const struct vm_snapshot_req *req, struct vm_snapshot_result *res,
                char *why, size_t whylen)
{
    (void)ctx;
    f.snaps++;
    snprintf(f.state_name, sizeof(f.state_name), "%s", req->state_name);
    snprintf(f.mem_name, sizeof(f.mem_name), "%s", req->mem_name);
    f.stop = req->stop;
    *res = (struct vm_snapshot_result){
        .paused_ms = 12, .state_bytes = 3000, .mem_bytes = 1 << 20, .mem_data_pages = 7};
    if (f.snap_ret)
        snprintf(why, whylen, "disk full");
    return f.snap_ret;
}

static int load(void *ctx, const struct vm_snapshot_load_req *req, char *why, size_t whylen)
{
    (void)ctx;
    f.loads++;
    snprintf(f.state_name, sizeof(f.state_name), "%s", req->state_name);
    snprintf(f.mem_name, sizeof(f.mem_name), "%s", req->mem_name);
    f.resume = req->resume;
    if (f.load_ret)
        snprintf(why, whylen, "refused");
    return f.load_ret;
}

static int mig(void *ctx, const struct vm_migrate_req *req, char *why, size_t whylen)
{
    (void)ctx;
    f.migs++;
    f.req = *req;
    snprintf(f.to, sizeof(f.to), "%s", req->to);
    if (f.mig_ret)
        snprintf(why, whylen, "busy");
    return f.mig_ret;
}

static void status(void *ctx, struct vm_migrate_status *st)
{
    (void)ctx;
    *st = f.st;
}

static int cancel(void *ctx)
{
    (void)ctx;
    f.cancels++;
    return f.cancel_ret;
}

static const struct vm_control ctl = {.snapshot_create = snap,
                                      .snapshot_load = load,
                                      .migrate_start = mig,
                                      .migrate_status = status,
                                      .migrate_cancel = cancel};

static unsigned route(const char *method, const char *path, const char *body)
{
    free(reply.body);
    memset(&reply, 0, sizeof(reply));
    cr_assert_eq(api_route(&ctl, method, path, body, body ? strlen(body) : 0, &reply), 0);
    return reply.status;
}

static void setup(void)
{
    memset(&f, 0, sizeof(f));
}

static void teardown(void)
{
    free(reply.body);
    memset(&reply, 0, sizeof(reply));
}

TestSuite(api_migrate, .init = setup, .fini = teardown);

Test(api_migrate, snapshot_create_passes_names_and_answers_sizes)
{
    cr_assert_eq(route("PUT", "/snapshot/create",
                       "{\"snapshot_type\":\"Full\",\"snapshot_path\":\"a.state\","
                       "\"mem_file_path\":\"a.mem\",\"stop\":true}"),
                 200, "%s", reply.body);
    cr_assert_eq(f.snaps, 1);
    cr_assert_str_eq(f.state_name, "a.state");
    cr_assert_str_eq(f.mem_name, "a.mem");
    cr_assert(f.stop);
    cr_assert(strstr(reply.body, "\"mem_bytes\":1048576"), "%s", reply.body);
    cr_assert(strstr(reply.body, "\"mem_data_pages\":7"), "%s", reply.body);
}

Test(api_migrate, snapshot_create_refusals)
{
    static const char *const bad[] = {
        "",
        "[]",
        "{\"snapshot_path\":\"a\"}",
        "{\"mem_file_path\":\"a\"}",
        "{\"snapshot_path\":\"a\",\"mem_file_path\":\"b\",\"snapshot_type\":\"Diff\"}",
        "{\"snapshot_path\":1,\"mem_file_path\":\"b\"}",
        "{\"snapshot_path\":\"a\",\"mem_file_path\":\"b\",\"stop\":\"yes\"}",
        "{\"snapshot_path\":\"a\",\"mem_file_path\":\"b\",\"x\":1}",
        "{\"snapshot_path\":"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(route("PUT", "/snapshot/create", bad[i]), 400, "%s: %s", bad[i], reply.body);
        cr_assert(strstr(reply.body, "fault_message"), "%s", reply.body);
    }
    cr_assert_eq(f.snaps, 0, "a refused body reached the VM");
    /* What the VM refuses comes back with its reason. */
    const char *ok = "{\"snapshot_path\":\"a\",\"mem_file_path\":\"b\"}";
    f.snap_ret = -EIO;
    cr_assert_eq(route("PUT", "/snapshot/create", ok), 500);
    cr_assert(strstr(reply.body, "disk full"), "%s", reply.body);
    f.snap_ret = -EBUSY;
    cr_assert_eq(route("PUT", "/snapshot/create", ok), 409);
    f.snap_ret = -ENOTSUP;
    cr_assert_eq(route("PUT", "/snapshot/create", ok), 400);
    cr_assert_eq(route("GET", "/snapshot/create", NULL), 405);
    cr_assert_str_eq(reply.allow, "PUT");
}

Test(api_migrate, snapshot_load)
{
    const char *ok = "{\"snapshot_path\":\"a.state\",\"mem_file_path\":\"a.mem\","
                     "\"resume_vm\":true}";
    /* A wisp without the hook (it booted): 409 naming the way to do it. */
    struct vm_control none = {0};
    free(reply.body);
    memset(&reply, 0, sizeof(reply));
    cr_assert_eq(api_route(&none, "PUT", "/snapshot/load", ok, strlen(ok), &reply), 0);
    cr_assert_eq(reply.status, 409);
    cr_assert(strstr(reply.body, "--restore-wait"), "%s", reply.body);
    /* A waiting wisp gets the names and the resume flag. */
    cr_assert_eq(route("PUT", "/snapshot/load", ok), 204, "%s", reply.body);
    cr_assert_eq(f.loads, 1);
    cr_assert_str_eq(f.state_name, "a.state");
    cr_assert_str_eq(f.mem_name, "a.mem");
    cr_assert(f.resume);
    f.load_ret = -EALREADY;
    cr_assert_eq(route("PUT", "/snapshot/load", ok), 409);
    f.load_ret = -EINVAL;
    cr_assert_eq(route("PUT", "/snapshot/load", ok), 400);
    static const char *const bad[] = {"{}", "{\"snapshot_path\":\"a\"}",
                                      "{\"snapshot_path\":\"a\",\"mem_file_path\":\"b\","
                                      "\"resume_vm\":1}",
                                      "{\"snapshot_path\":\"a\",\"mem_file_path\":\"b\",\"x\":1}"};
    unsigned before = f.loads;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(route("PUT", "/snapshot/load", bad[i]), 400, "%s", bad[i]);
    cr_assert_eq(f.loads, before, "a refused body reached the VM");
}

Test(api_migrate, migration_start_status_cancel)
{
    cr_assert_eq(route("PUT", "/migration",
                       "{\"destination_url\":\"tcp:10.0.0.2:7000\",\"downtime_ms\":50,"
                       "\"max_rounds\":8,\"bandwidth_mbps\":800}"),
                 202, "%s", reply.body);
    cr_assert_str_eq(f.to, "tcp:10.0.0.2:7000");
    cr_assert_eq(f.req.downtime_ms, 50);
    cr_assert_eq(f.req.max_rounds, 8);
    cr_assert_eq(f.req.bandwidth, 100000000ULL, "800 Mbit/s is 100 MB/s");
    f.st = (struct vm_migrate_status){
        .state = VM_MIGRATE_ACTIVE, .round = 3, .dirty_pages = 42, .remaining_ms = UINT64_MAX};
    cr_assert_eq(route("GET", "/migration", NULL), 200);
    cr_assert(strstr(reply.body, "\"state\":\"active\""), "%s", reply.body);
    cr_assert(strstr(reply.body, "\"round\":3"), "%s", reply.body);
    cr_assert(strstr(reply.body, "\"remaining_ms\":-1"), "%s", reply.body);
    f.st.state = VM_MIGRATE_FAILED;
    snprintf(f.st.error, sizeof(f.st.error), "the destination refused: memory");
    cr_assert_eq(route("GET", "/migration", NULL), 200);
    cr_assert(strstr(reply.body, "\"error\":\"the destination refused: memory\""), "%s",
              reply.body);
    cr_assert_eq(route("DELETE", "/migration", NULL), 204);
    cr_assert_eq(f.cancels, 1);
    f.cancel_ret = -ENOENT;
    cr_assert_eq(route("DELETE", "/migration", NULL), 409);
    cr_assert_eq(route("PATCH", "/migration", "{}"), 405);
    cr_assert_str_eq(reply.allow, "GET, PUT, DELETE");
}

Test(api_migrate, migration_refusals)
{
    static const char *const bad[] = {"{}",
                                      "{\"destination_url\":5}",
                                      "{\"destination_url\":\"tcp:a:1\",\"downtime_ms\":0}",
                                      "{\"destination_url\":\"tcp:a:1\",\"downtime_ms\":-3}",
                                      "{\"destination_url\":\"tcp:a:1\",\"max_rounds\":65}",
                                      "{\"destination_url\":\"tcp:a:1\",\"bandwidth_mbps\":1.5}",
                                      "{\"destination_url\":\"tcp:a:1\",\"other\":1}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(route("PUT", "/migration", bad[i]), 400, "%s: %s", bad[i], reply.body);
    cr_assert_eq(f.migs, 0, "a refused body reached the VM");
    f.mig_ret = -EBUSY;
    cr_assert_eq(route("PUT", "/migration", "{\"destination_url\":\"unix:/x\"}"), 409);
    cr_assert(strstr(reply.body, "busy"), "%s", reply.body);
    f.mig_ret = -EINVAL;
    cr_assert_eq(route("PUT", "/migration", "{\"destination_url\":\"bogus\"}"), 400);
}
