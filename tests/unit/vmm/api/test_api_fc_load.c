/*
 * Firecracker's pre-boot PUT /snapshot/load (vmm/api/api_fc_route.c): the
 * body as Firecracker's API description gives it (mem_backend, or the older
 * mem_file_path; enable_diff_snapshots and track_dirty_pages accepted and
 * ignored), absolute paths only, the Uffd backend refused; a load after a
 * machine resource was configured refused with Firecracker's fault
 * message, and configuration after a load refused; a failed load leaves
 * the instance ending (load_failed); network_overrides parsed, bounded and
 * copied into the request.
 */
#include "vmm/api/api_fc.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct vm_config cfg;
static struct api_fc fc;
static struct api_reply reply;
static int load_calls, load_ret;
static char got_state[256], got_mem[256];
static bool got_resume;
static struct api_fc_load got;

static int fake_load(void *ctx, const struct api_fc_load *r, char *why, size_t whylen)
{
    (void)ctx;
    load_calls++;
    snprintf(got_state, sizeof(got_state), "%s", r->state_path);
    snprintf(got_mem, sizeof(got_mem), "%s", r->mem_path);
    got_resume = r->resume;
    got = *r;
    if (load_ret < 0)
        snprintf(why, whylen, "snapshot: the state file carries no machine configuration");
    return load_ret;
}

static void setup(void)
{
    config_init(&cfg);
    api_fc_init(&fc, &cfg);
    fc.load = fake_load;
    memset(&reply, 0, sizeof(reply));
    load_calls = load_ret = 0;
}

static void teardown(void)
{
    free(reply.body);
    config_free(&cfg);
}

TestSuite(api_fc_load, .init = setup, .fini = teardown);

static unsigned req(const char *method, const char *path, const char *body)
{
    free(reply.body);
    memset(&reply, 0, sizeof(reply));
    cr_assert_eq(api_fc_route(&fc, method, path, body, body ? strlen(body) : 0, &reply), 0);
    return reply.status;
}

static void expect_fault(const char *part)
{
    cr_assert_eq(reply.status, 400, "status %u, body %s", reply.status,
                 reply.body ? reply.body : "(none)");
    json_object *o = json_tokener_parse(reply.body), *m;
    cr_assert_not_null(o);
    cr_assert(json_object_object_get_ex(o, "fault_message", &m), "%s", reply.body);
    cr_assert(strstr(json_object_get_string(m), part), "'%s' lacks '%s'", json_object_get_string(m),
              part);
    json_object_put(o);
}

#define LOAD                                                                                       \
    "{\"snapshot_path\": \"/srv/s/vm.state\", \"mem_backend\": {\"backend_path\": "                \
    "\"/srv/s/vm.mem\", \"backend_type\": \"File\"}, \"resume_vm\": true}"

Test(api_fc_load, first_request_loads_then_configuration_is_refused)
{
    cr_assert_eq(req("PUT", "/snapshot/load", LOAD), 204, "%s", reply.body);
    cr_assert_null(reply.body);
    cr_assert_eq(load_calls, 1);
    cr_assert_str_eq(got_state, "/srv/s/vm.state");
    cr_assert_str_eq(got_mem, "/srv/s/vm.mem");
    cr_assert(got_resume);
    cr_assert(fc.started);
    cr_assert_not(fc.load_failed);
    req("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256}");
    expect_fault(API_FC_AFTER_START);
    req("PUT", "/boot-source", "{\"kernel_image_path\": \"/k\"}");
    expect_fault(API_FC_AFTER_START);
    req("PUT", "/snapshot/load", LOAD);
    expect_fault(API_FC_AFTER_START);
    req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
    expect_fault(API_FC_AFTER_START);
    cr_assert_eq(load_calls, 1);
}

Test(api_fc_load, load_after_configuration_is_refused)
{
    const char *first[][2] = {
        {"/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128}"},
        {"/boot-source", "{\"kernel_image_path\": \"/k/vmlinux\"}"},
        {"/drives/rootfs",
         "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/d.img\", \"is_root_device\": true, "
         "\"is_read_only\": false}"},
        {"/vsock", "{\"guest_cid\": 3, \"uds_path\": \"/run/v.sock\"}"},
    };
    for (size_t i = 0; i < sizeof(first) / sizeof(first[0]); i++) {
        teardown();
        setup();
        cr_assert_eq(req("PUT", first[i][0], first[i][1]), 204, "%s: %s", first[i][0], reply.body);
        req("PUT", "/snapshot/load", LOAD);
        expect_fault(API_FC_LOAD_AFTER_CONFIG);
        cr_assert_eq(load_calls, 0);
        cr_assert_not(fc.started);
    }
    /* PATCH /machine-config configures too. */
    teardown();
    setup();
    cr_assert_eq(req("PATCH", "/machine-config", "{\"vcpu_count\": 2}"), 204, "%s", reply.body);
    req("PUT", "/snapshot/load", LOAD);
    expect_fault(API_FC_LOAD_AFTER_CONFIG);
    /* A refused resource configures nothing: the load is still allowed. */
    teardown();
    setup();
    cr_assert_eq(req("PUT", "/machine-config", "{\"vcpu_count\": 0}"), 400);
    cr_assert_eq(req("PUT", "/snapshot/load", LOAD), 204, "%s", reply.body);
}

Test(api_fc_load, logger_and_metrics_do_not_prevent_a_load)
{
    cr_assert_eq(req("PUT", "/logger", "{\"level\": \"Info\"}"), 204, "%s", reply.body);
    cr_assert_eq(req("PUT", "/snapshot/load", LOAD), 204, "%s", reply.body);
    cr_assert_eq(load_calls, 1);
}

Test(api_fc_load, older_body_fields)
{
    cr_assert_eq(req("PUT", "/snapshot/load",
                     "{\"snapshot_path\": \"/a/s\", \"mem_file_path\": \"/a/m\", "
                     "\"enable_diff_snapshots\": true, \"track_dirty_pages\": false}"),
                 204, "%s", reply.body);
    cr_assert_str_eq(got_mem, "/a/m");
    cr_assert_not(got_resume, "resume_vm defaults to false");
}

Test(api_fc_load, bad_bodies)
{
    const char *bad[][2] = {
        {"", "JSON"},
        {"[]", ""},
        {"{\"mem_file_path\": \"/a/m\"}", "snapshot_path"},
        {"{\"snapshot_path\": \"/a/s\"}", "exactly one"},
        {"{\"snapshot_path\": \"/a/s\", \"mem_file_path\": \"/a/m\", \"mem_backend\": "
         "{\"backend_path\": \"/a/m\", \"backend_type\": \"File\"}}",
         "exactly one"},
        {"{\"snapshot_path\": \"s\", \"mem_file_path\": \"/a/m\"}", "absolute"},
        {"{\"snapshot_path\": \"/a/s\", \"mem_file_path\": \"m\"}", "absolute"},
        {"{\"snapshot_path\": \"/a/s\", \"mem_file_path\": \"/a/s\"}", "different"},
        {"{\"snapshot_path\": \"/a/\\u0001s\", \"mem_file_path\": \"/a/m\"}", "absolute"},
        {"{\"snapshot_path\": \"/\", \"mem_file_path\": \"/a/m\"}", "absolute"},
        {"{\"snapshot_path\": \"/a/s\", \"mem_backend\": {\"backend_path\": \"/run/uffd.sock\", "
         "\"backend_type\": \"Uffd\"}}",
         "Uffd"},
        {"{\"snapshot_path\": \"/a/s\", \"mem_backend\": {\"backend_path\": \"/a/m\", "
         "\"backend_type\": \"Disk\"}}",
         "backend_type"},
        {"{\"snapshot_path\": \"/a/s\", \"mem_backend\": {\"backend_path\": \"/a/m\"}}",
         "backend_type"},
        {"{\"snapshot_path\": \"/a/s\", \"mem_backend\": {\"backend_path\": \"/a/m\", "
         "\"backend_type\": \"File\", \"x\": 1}}",
         "x"},
        {"{\"snapshot_path\": \"/a/s\", \"mem_backend\": \"/a/m\"}", "mem_backend"},
        {"{\"snapshot_path\": 5, \"mem_file_path\": \"/a/m\"}", "snapshot_path"},
        {"{\"snapshot_path\": \"/a/s\", \"mem_file_path\": \"/a/m\", \"resume_vm\": 1}",
         "resume_vm"},
        {"{\"snapshot_path\": \"/a/s\", \"mem_file_path\": \"/a/m\", \"network_overrides\": {}}",
         "network_overrides"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        req("PUT", "/snapshot/load", bad[i][0]);
        expect_fault(bad[i][1]);
        cr_assert_not(fc.started, "%s", bad[i][0]);
    }
    cr_assert_eq(load_calls, 0);
    cr_assert_eq(req("GET", "/snapshot/load", NULL), 405);
}

Test(api_fc_load, failed_load_is_400_and_ends_the_instance)
{
    load_ret = -ENOENT;
    req("PUT", "/snapshot/load", LOAD);
    expect_fault("no machine configuration");
    cr_assert(fc.started);
    cr_assert(fc.load_failed);
    /* Without a loader (a wisp that cannot load here). */
    teardown();
    setup();
    fc.load = NULL;
    req("PUT", "/snapshot/load", LOAD);
    expect_fault("cannot load");
    cr_assert_not(fc.started);
}

Test(api_fc_load, the_running_vm_answers_load_itself)
{
    struct api_reply r = {0};
    cr_assert_eq(api_fc_runtime(NULL, "PUT", "/snapshot/load", LOAD, strlen(LOAD), &r), 1);
}

static void load_with_overrides(const char *overrides)
{
    char body[4096];
    snprintf(body, sizeof(body),
             "{\"snapshot_path\": \"/srv/s/vm.state\", \"mem_file_path\": \"/srv/s/vm.mem\", "
             "\"network_overrides\": %s}",
             overrides);
    req("PUT", "/snapshot/load", body);
}

Test(api_fc_load, network_overrides_reach_the_load)
{
    load_with_overrides("[{\"iface_id\": \"eth0\", \"host_dev_name\": \"vmtap7\"}, "
                        "{\"iface_id\": \"net_1\", \"host_dev_name\": \"tap-b.2\"}]");
    cr_assert_eq(reply.status, 204, "%s", reply.body ? reply.body : "");
    cr_assert_eq(load_calls, 1);
    cr_assert_eq(got.nnet, 2);
    cr_assert_str_eq(got.net[0].iface_id, "eth0");
    cr_assert_str_eq(got.net[0].host_dev_name, "vmtap7");
    cr_assert_str_eq(got.net[1].iface_id, "net_1");
    cr_assert_str_eq(got.net[1].host_dev_name, "tap-b.2");
}

Test(api_fc_load, empty_network_overrides)
{
    load_with_overrides("[]");
    cr_assert_eq(reply.status, 204);
    cr_assert_eq(got.nnet, 0);
}

Test(api_fc_load, bad_network_overrides_are_refused_before_the_load)
{
    static const struct {
        const char *json, *fault;
    } bad[] = {
        {"{}", "wrong type: 'network_overrides'"},
        {"\"eth0=tap0\"", "wrong type: 'network_overrides'"},
        {"[1]", "each entry must be an object"},
        {"[null]", "each entry must be an object"},
        {"[{\"iface_id\": \"eth0\"}]", "host_dev_name"},
        {"[{\"host_dev_name\": \"tap0\"}]", "iface_id"},
        {"[{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"mac\": \"x\"}]",
         "unknown field"},
        {"[{\"iface_id\": \"eth 0\", \"host_dev_name\": \"tap0\"}]", "iface_id must be"},
        {"[{\"iface_id\": \"\", \"host_dev_name\": \"tap0\"}]", "iface_id must be"},
        {"[{\"iface_id\": \"abcdefghijklmnopqrstu\", \"host_dev_name\": \"tap0\"}]",
         "iface_id must be"},
        {"[{\"iface_id\": \"eth0\", \"host_dev_name\": \"\"}]", "host_dev_name must be"},
        {"[{\"iface_id\": \"eth0\", \"host_dev_name\": \"abcdefghijklmnop\"}]",
         "host_dev_name must be"},
        {"[{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap,mac=1\"}]", "host_dev_name must be"},
        {"[{\"iface_id\": \"eth0\", \"host_dev_name\": \"../tap\"}]", "host_dev_name must be"},
        {"[{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap\\n0\"}]", "host_dev_name must be"},
        {"[{\"iface_id\": \"eth0\", \"host_dev_name\": \"a\"}, "
         "{\"iface_id\": \"eth0\", \"host_dev_name\": \"b\"}]",
         "'eth0' is given twice"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setup();
        load_with_overrides(bad[i].json);
        expect_fault(bad[i].fault);
        cr_assert_eq(load_calls, 0, "%s reached the load", bad[i].json);
        cr_assert_not(fc.started, "a refused body does not start the instance");
        teardown();
    }
    /* One more entry than there can be net devices. */
    setup();
    char many[4096];
    size_t pos = 0;
    many[pos++] = '[';
    for (unsigned i = 0; i <= API_FC_MAX_NET_OVERRIDES; i++)
        pos += (size_t)snprintf(many + pos, sizeof(many) - pos,
                                "%s{\"iface_id\": \"n%u\", \"host_dev_name\": \"t%u\"}",
                                i ? ", " : "", i, i);
    snprintf(many + pos, sizeof(many) - pos, "]");
    load_with_overrides(many);
    expect_fault("at most 16 entries");
    cr_assert_eq(load_calls, 0);
}
