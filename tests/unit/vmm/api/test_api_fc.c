/*
 * The Firecracker pre-boot phase (vmm/api/api_fc*.c) driven with requests
 * written from Firecracker's published API description: every resource
 * valid, invalid, with unknown fields and wrong types, and out of order
 * (a drive after InstanceStart, InstanceStart twice or without a boot
 * source).  Status codes and bodies are compared with the description
 * (204 without a body on success, 400 with {"fault_message"}), and the
 * resulting struct vm_config with what the CLI would have built.
 */
#include "vmm/api/api_fc.h"
#include "vmm/log.h"
#include "vmm/metrics.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct vm_config cfg;
static struct api_fc fc;
static struct api_reply reply;
static int start_calls;

static void setup(void)
{
    config_init(&cfg);
    api_fc_init(&fc, &cfg);
    memset(&reply, 0, sizeof(reply));
    start_calls = 0;
}

static void teardown(void)
{
    free(reply.body);
    config_free(&cfg);
}

TestSuite(api_fc, .init = setup, .fini = teardown);

/* Send one request; returns the status. */
static unsigned req(const char *method, const char *path, const char *body)
{
    free(reply.body);
    memset(&reply, 0, sizeof(reply));
    cr_assert_eq(api_fc_route(&fc, method, path, body, body ? strlen(body) : 0, &reply), 0);
    return reply.status;
}

/* The reply is 400 with a fault_message containing `part`. */
static void expect_fault(unsigned status, const char *part)
{
    cr_assert_eq(reply.status, status, "status %u, body %s", reply.status,
                 reply.body ? reply.body : "(none)");
    cr_assert_not_null(reply.body);
    json_object *o = json_tokener_parse(reply.body);
    cr_assert_not_null(o);
    json_object *m;
    cr_assert(json_object_object_get_ex(o, "fault_message", &m), "%s", reply.body);
    cr_assert_eq(json_object_object_length(o), 1);
    cr_assert(strstr(json_object_get_string(m), part), "'%s' lacks '%s'", json_object_get_string(m),
              part);
    json_object_put(o);
}

static void expect_204(void)
{
    cr_assert_eq(reply.status, 204, "status %u, body %s", reply.status,
                 reply.body ? reply.body : "(none)");
    cr_assert_null(reply.body);
}

/* A field of the JSON reply, as a string ("" if absent). */
static const char *field(const char *key)
{
    static char val[128];
    json_object *o = json_tokener_parse(reply.body), *v;
    cr_assert_not_null(o);
    val[0] = '\0';
    if (json_object_object_get_ex(o, key, &v))
        snprintf(val, sizeof(val), "%s", json_object_get_string(v));
    json_object_put(o);
    return val;
}

#define BOOT "{\"kernel_image_path\": \"/k/vmlinux\", \"boot_args\": \"console=ttyS0\"}"

Test(api_fc, instance_info_before_start)
{
    cr_assert_eq(req("GET", "/", NULL), 200);
    cr_assert_str_eq(field("state"), "Not started");
    cr_assert_str_eq(field("app_name"), "wisp");
    cr_assert_str_eq(field("id"), "anonymous-instance");
    cr_assert_str_eq(field("vmm_version"), WISP_VERSION);
    cr_assert_eq(req("GET", "/version", NULL), 200);
    cr_assert_str_eq(field("vmm_version"), WISP_VERSION);
}

Test(api_fc, machine_config_put_get_patch)
{
    req("PUT", "/machine-config",
        "{\"vcpu_count\": 2, \"mem_size_mib\": 1024, \"smt\": false, "
        "\"track_dirty_pages\": true, \"cpu_template\": \"None\", \"huge_pages\": \"2M\"}");
    expect_204();
    cr_assert_eq(cfg.vcpus, 2);
    cr_assert_eq(cfg.memory, 1024ULL << 20);
    cr_assert(cfg.hugepages);
    cr_assert_eq(req("GET", "/machine-config", NULL), 200);
    cr_assert_str_eq(field("vcpu_count"), "2");
    cr_assert_str_eq(field("mem_size_mib"), "1024");
    cr_assert_str_eq(field("cpu_template"), "None");
    cr_assert_str_eq(field("huge_pages"), "2M");
    req("PATCH", "/machine-config", "{\"vcpu_count\": 4}");
    expect_204();
    cr_assert_eq(cfg.vcpus, 4);
    cr_assert_eq(cfg.memory, 1024ULL << 20);
}

Test(api_fc, machine_config_invalid)
{
    req("PUT", "/machine-config", "{\"vcpu_count\": 2}");
    expect_fault(400, "mem_size_mib is required");
    req("PUT", "/machine-config", "{\"vcpu_count\": 0, \"mem_size_mib\": 128}");
    expect_fault(400, "vcpu_count must be a whole number in 1-32");
    req("PUT", "/machine-config", "{\"vcpu_count\": 33, \"mem_size_mib\": 128}");
    expect_fault(400, "vcpu_count");
    req("PUT", "/machine-config", "{\"vcpu_count\": \"2\", \"mem_size_mib\": 128}");
    expect_fault(400, "wrong type: 'vcpu_count'");
    req("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"smt\": true}");
    expect_fault(400, "smt must be false");
    req("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"x\": 1}");
    expect_fault(400, "unknown field or wrong type: 'x'");
    req("PUT", "/machine-config",
        "{\"vcpu_count\": 1, \"mem_size_mib\": 128, \"huge_pages\": \"1G\"}");
    expect_fault(400, "huge_pages");
    req("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": -1}");
    expect_fault(400, "mem_size_mib");
    /* Nothing of the refused requests was applied. */
    cr_assert_eq(cfg.vcpus, 1);
    cr_assert_eq(cfg.memory, CONFIG_DEFAULT_MEMORY);
    cr_assert_not(cfg.hugepages);
}

Test(api_fc, boot_source)
{
    req("PUT", "/boot-source",
        "{\"kernel_image_path\": \"/k/vmlinux\", \"initrd_path\": "
        "\"/k/initrd\", \"boot_args\": \"console=ttyS0 reboot=k\"}");
    expect_204();
    cr_assert_str_eq(cfg.kernel, "/k/vmlinux");
    cr_assert_str_eq(cfg.initrd, "/k/initrd");
    cr_assert_str_eq(cfg.cmdline, "console=ttyS0 reboot=k");
    /* A second PUT replaces the whole boot source. */
    req("PUT", "/boot-source", "{\"kernel_image_path\": \"/k/other\"}");
    expect_204();
    cr_assert_str_eq(cfg.kernel, "/k/other");
    cr_assert_null(cfg.initrd);
    req("PUT", "/boot-source", "{\"boot_args\": \"x\"}");
    expect_fault(400, "kernel_image_path is required");
    req("PUT", "/boot-source", "{\"kernel_image_path\": 5}");
    expect_fault(400, "wrong type: 'kernel_image_path'");
    req("PUT", "/boot-source", "{\"kernel_image_path\": \"\"}");
    expect_fault(400, "must not be empty");
}

Test(api_fc, drives)
{
    req("PUT", "/drives/scratch",
        "{\"drive_id\": \"scratch\", \"path_on_host\": \"/img/s.ext4\", "
        "\"is_root_device\": false, \"is_read_only\": false, \"io_engine\": \"Async\"}");
    expect_204();
    req("PUT", "/drives/rootfs",
        "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/img/root.ext4\", "
        "\"is_root_device\": true, \"is_read_only\": true, \"cache_type\": \"Unsafe\", "
        "\"rate_limiter\": {\"bandwidth\": {\"size\": 1000, \"refill_time\": 100}}}");
    expect_204();
    cr_assert_eq(cfg.ndevices, 2);
    cr_assert_eq(cfg.devices[1].type, DEV_BLK);
    cr_assert_str_eq(cfg.devices[1].id, "rootfs");
    cr_assert_str_eq(cfg.devices[1].path, "/img/root.ext4");
    cr_assert(cfg.devices[1].readonly);
    /* PUT again with the same id replaces the drive, in place. */
    req("PUT", "/drives/scratch",
        "{\"drive_id\": \"scratch\", \"path_on_host\": \"/img/t\", "
        "\"is_root_device\": false}");
    expect_204();
    cr_assert_eq(cfg.ndevices, 2);
    cr_assert_str_eq(cfg.devices[0].path, "/img/t");
    /* InstanceStart puts the root drive first and adds root= to the command line. */
    req("PUT", "/boot-source", BOOT);
    req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
    expect_204();
    cr_assert_str_eq(cfg.devices[0].id, "rootfs");
    cr_assert_str_eq(cfg.cmdline, "console=ttyS0 root=/dev/vda ro");
}

Test(api_fc, drive_partuuid)
{
    req("PUT", "/drives/r",
        "{\"drive_id\": \"r\", \"path_on_host\": \"/img/r\", "
        "\"is_root_device\": true, \"partuuid\": \"0eaa91a0-01\"}");
    expect_204();
    req("PUT", "/boot-source", "{\"kernel_image_path\": \"/k\"}");
    req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
    expect_204();
    cr_assert_str_eq(cfg.cmdline, "root=PARTUUID=0eaa91a0-01 rw");
}

Test(api_fc, drives_invalid)
{
    req("PUT", "/drives/a",
        "{\"drive_id\": \"b\", \"path_on_host\": \"/x\", "
        "\"is_root_device\": false}");
    expect_fault(400, "differs from the one in the path");
    req("PUT", "/drives/a", "{\"drive_id\": \"a\", \"is_root_device\": false}");
    expect_fault(400, "path_on_host is required");
    req("PUT", "/drives/a", "{\"drive_id\": \"a\", \"path_on_host\": \"/x\"}");
    expect_fault(400, "is_root_device is required");
    req("PUT", "/drives/a",
        "{\"drive_id\": \"a\", \"path_on_host\": \"/x,readonly=on\", "
        "\"is_root_device\": false}");
    expect_fault(400, "without ','");
    req("PUT", "/drives/a",
        "{\"drive_id\": \"a\", \"path_on_host\": \"/x\", "
        "\"is_root_device\": false, \"io_engine\": \"Uring\"}");
    expect_fault(400, "io_engine");
    req("PUT", "/drives/a",
        "{\"drive_id\": \"a\", \"path_on_host\": \"/x\", "
        "\"is_root_device\": false, \"cache_type\": \"Writeback\"}");
    expect_fault(400, "cache_type must be \"Unsafe\"");
    req("PUT", "/drives/a",
        "{\"drive_id\": \"a\", \"path_on_host\": \"/x\", "
        "\"is_root_device\": false, \"rate_limiter\": 5}");
    expect_fault(400, "wrong type: 'rate_limiter'");
    req("PUT", "/drives/a", "{\"drive_id\": \"a\", \"socket\": \"/s\", \"is_root_device\": false}");
    expect_fault(400, "vhost-user");
    req("PUT", "/drives/a",
        "{\"drive_id\": \"a\", \"path_on_host\": \"/x\", "
        "\"is_root_device\": true, \"partuuid\": \"x y\"}");
    expect_fault(400, "partuuid");
    req("PUT", "/drives/a.b", "{\"drive_id\": \"a.b\"}");
    expect_fault(400, "the id in the path");
    req("PUT", "/drives/", "{}");
    expect_fault(400, "the id in the path");
    req("PUT", "/drives/r1",
        "{\"drive_id\": \"r1\", \"path_on_host\": \"/x\", "
        "\"is_root_device\": true}");
    expect_204();
    req("PUT", "/drives/r2",
        "{\"drive_id\": \"r2\", \"path_on_host\": \"/y\", "
        "\"is_root_device\": true}");
    expect_fault(400, "already the root device");
    cr_assert_eq(cfg.ndevices, 1);
}

Test(api_fc, network_interfaces)
{
    req("PUT", "/network-interfaces/eth0",
        "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"guest_mac\": "
        "\"06:00:ac:10:00:02\", \"rx_rate_limiter\": {}, \"tx_rate_limiter\": {\"ops\": "
        "{\"size\": 10, \"refill_time\": 1000}}}");
    expect_204();
    cr_assert_eq(cfg.ndevices, 1);
    cr_assert_eq(cfg.devices[0].type, DEV_NET);
    cr_assert_str_eq(cfg.devices[0].tap, "tap0");
    cr_assert(cfg.devices[0].has_mac);
    cr_assert_eq(cfg.devices[0].mac[5], 2);
    req("PUT", "/network-interfaces/eth0",
        "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap-name-too-long\"}");
    expect_fault(400, "tap name");
    cr_assert_str_eq(cfg.devices[0].tap, "tap0"); /* the old interface stays */
    req("PUT", "/network-interfaces/eth1",
        "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap1\", \"guest_mac\": \"zz\"}");
    expect_fault(400, "mac");
    req("PUT", "/network-interfaces/eth1", "{\"iface_id\": \"eth1\"}");
    expect_fault(400, "host_dev_name is required");
    cr_assert_eq(cfg.ndevices, 1);
}

Test(api_fc, vsock_and_balloon)
{
    req("PUT", "/vsock", "{\"vsock_id\": \"v\", \"guest_cid\": 3, \"uds_path\": \"/run/v.sock\"}");
    expect_204();
    req("PUT", "/vsock", "{\"guest_cid\": 7, \"uds_path\": \"/run/w.sock\"}");
    expect_204();
    cr_assert_eq(cfg.ndevices, 1);
    cr_assert_eq(cfg.devices[0].cid, 7);
    cr_assert_str_eq(cfg.devices[0].socket, "/run/w.sock");
    req("PUT", "/vsock", "{\"guest_cid\": 2, \"uds_path\": \"/run/v.sock\"}");
    expect_fault(400, "guest_cid must be a whole number in 3-4294967294");
    req("GET", "/balloon", NULL);
    expect_fault(400, "no balloon");
    req("PUT", "/balloon",
        "{\"amount_mib\": 64, \"deflate_on_oom\": true, \"stats_polling_interval_s\": 1}");
    expect_204();
    cr_assert_eq(req("GET", "/balloon", NULL), 200);
    cr_assert_str_eq(field("amount_mib"), "64");
    cr_assert_str_eq(field("deflate_on_oom"), "true");
    cr_assert_str_eq(field("stats_polling_interval_s"), "1");
    req("PUT", "/balloon", "{\"amount_mib\": 64}");
    expect_fault(400, "deflate_on_oom is required");
}

Test(api_fc, logger_and_metrics)
{
    req("PUT", "/logger",
        "{\"log_path\": \"/tmp/log.fifo\", \"level\": \"Debug\", "
        "\"show_level\": true, \"show_log_origin\": false}");
    expect_204();
    cr_assert_eq(cfg.log_level, 3);
    req("PUT", "/logger", "{\"level\": \"Loud\"}");
    expect_fault(400, "level must be");
    cr_assert_str_eq(cfg.log_path, "/tmp/log.fifo", "log_path is honoured (main opens it)");
    req("PUT", "/metrics", "{\"metrics_path\": \"/tmp/metrics.fifo\"}");
    expect_204();
    cr_assert_str_eq(cfg.metrics_path, "/tmp/metrics.fifo");
    req("PUT", "/metrics", "{}");
    expect_fault(400, "metrics_path is required");
    req("PUT", "/metrics", "{\"metrics_path\": \"\"}");
    expect_fault(400, "metrics_path must be 1-4096 bytes");
    /* A refused logger body changes nothing. */
    req("PUT", "/logger", "{\"log_path\": \"\", \"level\": \"Error\"}");
    expect_fault(400, "log_path must be");
    cr_assert_eq(cfg.log_level, 3);
    cr_assert_str_eq(cfg.log_path, "/tmp/log.fifo");
}

/* wisp's PATCH /logger: the level at once, before and after InstanceStart. */
Test(api_fc, patch_logger_level)
{
    log_threshold = LOG_WARN;
    req("PATCH", "/logger", "{\"level\": \"Debug\"}");
    expect_204();
    cr_assert_eq(log_threshold, LOG_DEBUG);
    cr_assert_eq(cfg.log_level, LOG_DEBUG);
    req("PATCH", "/logger", "{\"level\": \"Loud\"}");
    expect_fault(400, "level must be");
    req("PATCH", "/logger", "{\"log_path\": \"/x\", \"level\": \"Info\"}");
    expect_fault(400, "log_path");
    cr_assert_eq(log_threshold, LOG_DEBUG, "a refused body changes nothing");
    req("PATCH", "/logger", "{}");
    expect_fault(400, "level is required");
    req("GET", "/logger", NULL);
    expect_fault(405, "allowed: PUT, PATCH");
}

static int fake_start(void *ctx, char *why, size_t whylen)
{
    (void)ctx;
    (void)why;
    (void)whylen;
    start_calls++;
    return 0;
}

Test(api_fc, actions_and_order)
{
    fc.start = fake_start;
    req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
    expect_fault(400, "needs a boot source");
    req("PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}");
    expect_fault(400, "not running");
    req("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}");
    expect_204();
    req("PUT", "/actions", "{\"action_type\": \"Reboot\"}");
    expect_fault(400, "action_type must be");
    req("PUT", "/actions", "{}");
    expect_fault(400, "action_type is required");
    cr_assert_eq(start_calls, 0);
    req("PUT", "/boot-source", BOOT);
    req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
    expect_204();
    cr_assert_eq(start_calls, 1);
    cr_assert_eq(req("GET", "/", NULL), 200);
    cr_assert_str_eq(field("state"), "Running");
    /* Out of order: configuration and a second start after InstanceStart. */
    req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
    expect_fault(400, API_FC_AFTER_START);
    req("PUT", "/drives/d",
        "{\"drive_id\": \"d\", \"path_on_host\": \"/x\", "
        "\"is_root_device\": false}");
    expect_fault(400, API_FC_AFTER_START);
    req("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128}");
    expect_fault(400, API_FC_AFTER_START);
    req("PUT", "/boot-source", BOOT);
    expect_fault(400, API_FC_AFTER_START);
    cr_assert_eq(start_calls, 1);
    cr_assert_eq(cfg.ndevices, 0);
}

static int failing_start(void *ctx, char *why, size_t whylen)
{
    (void)ctx;
    snprintf(why, whylen, "cannot open /dev/kvm");
    return -ENOENT;
}

Test(api_fc, start_failure_is_400_and_not_started)
{
    fc.start = failing_start;
    req("PUT", "/boot-source", BOOT);
    req("PUT", "/drives/r",
        "{\"drive_id\": \"r\", \"path_on_host\": \"/img/r\", "
        "\"is_root_device\": true}");
    for (int i = 0; i < 2; i++) {
        req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        expect_fault(400, "cannot open /dev/kvm");
        cr_assert_not(fc.started);
        cr_assert_str_eq(cfg.cmdline, "console=ttyS0", "a refused start left '%s'", cfg.cmdline);
    }
    /* Fixed, the next attempt starts, with root= added once. */
    fc.start = fake_start;
    req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
    expect_204();
    cr_assert_str_eq(cfg.cmdline, "console=ttyS0 root=/dev/vda rw");
}

Test(api_fc, invalid_config_refused_at_start)
{
    req("PUT", "/boot-source", BOOT);
    req("PUT", "/machine-config",
        "{\"vcpu_count\": 1, \"mem_size_mib\": 129, "
        "\"huge_pages\": \"2M\"}");
    expect_204();
    req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
    expect_fault(400, "multiple of 2 MiB");
    cr_assert_not(fc.started);
}

Test(api_fc, paths_methods_bodies)
{
    req("GET", "/nothing", NULL);
    expect_fault(404, "no resource at /nothing");
    req("DELETE", "/boot-source", NULL);
    expect_fault(405, "not allowed");
    cr_assert_str_eq(reply.allow, "PUT");
    req("PATCH", "/vm", "{\"state\": \"Paused\"}");
    expect_fault(400, "not running");
    req("PUT", "/snapshot/create", "{}");
    expect_fault(400, "not running");
    req("PUT", "/mmds", "{}");
    expect_fault(400, "not supported by wisp");
    req("PUT", "/boot-source", NULL);
    expect_fault(400, "needs a JSON body");
    req("PUT", "/boot-source", "{\"kernel_image_path\": ");
    expect_fault(400, "malformed JSON");
    req("PUT", "/boot-source", "[1]");
    expect_fault(400, "must be a JSON object");
    req("PUT", "/drives/x", "{\"rate_limiter\": {\"a\": {\"b\": {\"c\": {}}}}}");
    expect_fault(400, "malformed JSON"); /* deeper than API_JSON_DEPTH */
    req("PATCH", "/drives/x", "{\"drive_id\": \"x\"}");
    expect_fault(400, "not support it yet");
}

/* The running VM's router answers the pre-boot resources as Firecracker does. */
static unsigned run_req(const char *method, const char *path, const char *body)
{
    static const struct vm_control no_vm; /* these paths never call into the VM */
    free(reply.body);
    memset(&reply, 0, sizeof(reply));
    cr_assert_eq(api_route(&no_vm, method, path, body, body ? strlen(body) : 0, &reply), 0);
    return reply.status;
}

Test(api_fc, running_vm_refuses_preboot_resources)
{
    run_req("PUT", "/drives/rootfs", "{\"drive_id\": \"rootfs\"}");
    expect_fault(400, API_FC_AFTER_START);
    run_req("PUT", "/boot-source", "{}");
    expect_fault(400, API_FC_AFTER_START);
    run_req("PUT", "/machine-config", "{}");
    expect_fault(400, API_FC_AFTER_START);
    run_req("PUT", "/network-interfaces/eth0", "{}");
    expect_fault(400, API_FC_AFTER_START);
    run_req("PUT", "/vsock", "{}");
    expect_fault(400, API_FC_AFTER_START);
    run_req("PUT", "/logger", "{}");
    expect_fault(400, API_FC_AFTER_START);
    log_threshold = LOG_WARN;
    run_req("PATCH", "/logger", "{\"level\": \"Info\"}");
    expect_204();
    cr_assert_eq(log_threshold, LOG_INFO);
    run_req("PATCH", "/logger", "{\"level\": \"Trace\"}");
    expect_204();
    cr_assert_eq(log_threshold, LOG_DEBUG);
    run_req("PATCH", "/logger", "{\"level\": \"Off\"}");
    expect_204();
    cr_assert_eq(log_threshold, LOG_ERROR);
    run_req("PATCH", "/logger", "{\"level\": 3}");
    expect_fault(400, "wrong type");
    run_req("PATCH", "/logger", "nope");
    expect_fault(400, "malformed JSON");
    cr_assert_eq(log_threshold, LOG_ERROR);
    run_req("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
    expect_fault(400, API_FC_AFTER_START);
    run_req("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}");
    expect_204();
    run_req("PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}");
    expect_fault(400, "only x86_64 guests have"); /* a VM without the hook has no keyboard */
    run_req("PUT", "/actions", "{\"action_type\": 1}");
    expect_fault(400, "wrong type");
    run_req("GET", "/actions", NULL);
    expect_fault(405, "not allowed");
    run_req("PUT", "/entropy", "{}");
    expect_fault(400, "not supported by wisp");
    run_req("GET", "/nowhere", NULL);
    expect_fault(404, "no resource at /nowhere");
}

static int cad_ret;
static unsigned cad_calls;

static int fake_cad(void *ctx)
{
    cr_assert_eq(ctx, &cad_calls);
    cad_calls++;
    return cad_ret;
}

/* SendCtrlAltDel on a running VM: 204 once queued, each refusal its own line and status. */
Test(api_fc, send_ctrl_alt_del_reaches_the_vm)
{
    const struct vm_control vm = {.ctx = &cad_calls, .send_ctrl_alt_del = fake_cad};
    static const struct {
        int ret;
        unsigned status;
        const char *fault;
    } cases[] = {
        {0, 204, NULL},
        {-ENOTSUP, 400, "only x86_64 guests have"},
        {-ENODEV, 400, "turned its keyboard off"},
        {-EAGAIN, 400, "has not read the keys sent before"},
        {-ESHUTDOWN, 409, "the VM is stopping"},
        {-EIO, 500, "SendCtrlAltDel failed"},
    };
    const char *body = "{\"action_type\": \"SendCtrlAltDel\"}";
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cad_ret = cases[i].ret;
        free(reply.body);
        memset(&reply, 0, sizeof(reply));
        cr_assert_eq(api_route(&vm, "PUT", "/actions", body, strlen(body), &reply), 0);
        cr_assert_eq(cad_calls, i + 1, "one call per request");
        if (cases[i].fault)
            expect_fault(cases[i].status, cases[i].fault);
        else
            expect_204();
    }
}

/* FlushMetrics writes a line (pre-boot and running); a sink that cannot take it is a 400. */
Test(api_fc, flush_metrics_writes_or_faults)
{
    char dir[] = "/tmp/wisp-fcm-XXXXXX", path[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/m", dir);
    cr_assert_eq(mkfifo(path, 0600), 0);
    int rd = open(path, O_RDONLY | O_NONBLOCK);
    struct errbuf err = {0};
    cr_assert_eq(metrics_open(path, &err), 0, "%s", err.msg);
    req("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}");
    expect_204();
    run_req("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}");
    expect_204();
    char buf[8192];
    ssize_t n = read(rd, buf, sizeof(buf) - 1);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert_eq(strchr(buf, '\n') - buf + 1 < n, true, "two lines: %s", buf);
    /* Fill the FIFO, then FlushMetrics answers 400 at once. */
    unsigned status = 204;
    for (int i = 0; i < 100000 && status == 204; i++)
        status = run_req("PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}");
    expect_fault(400, "did not take the line");
    cr_assert_geq(metrics_core[METRICS_WRITE_FAILS], 1);
    metrics_reset();
    close(rd);
    unlink(path);
    rmdir(dir);
}
