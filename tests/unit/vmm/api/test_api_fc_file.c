/*
 * --config-file (vmm/api/api_fc_file.c): Firecracker's JSON configuration
 * layout, with the null members Firecracker's own example files carry,
 * mapped onto the struct vm_config the command line builds; bad files
 * (unknown sections, wrong shapes, bad values, too deep, trailing data)
 * are one usage error naming the section; and `wisp run --config-file`
 * reads a real file and refuses to be mixed with --config.
 */
#include "vmm/api/api_fc.h"
#include "vmm/cli.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct vm_config cfg;
static struct errbuf err;

static void setup(void)
{
    config_init(&cfg);
    memset(&err, 0, sizeof(err));
}

static void teardown(void)
{
    config_free(&cfg);
}

TestSuite(api_fc_file, .init = setup, .fini = teardown);

static int parse(const char *text)
{
    return api_fc_config_parse(&cfg, text, strlen(text), &err);
}

/* A file like the one in Firecracker's getting-started guide, nulls included. */
static const char full[] =
    "{\n"
    "  \"boot-source\": {\"kernel_image_path\": \"/img/vmlinux\", \"boot_args\": "
    "\"console=ttyS0 reboot=k panic=1\", \"initrd_path\": null},\n"
    "  \"drives\": [\n"
    "    {\"drive_id\": \"rootfs\", \"path_on_host\": \"/img/rootfs.ext4\", \"is_root_device\": "
    "true, \"partuuid\": null, \"is_read_only\": false, \"cache_type\": \"Unsafe\", "
    "\"io_engine\": \"Sync\", \"rate_limiter\": null},\n"
    "    {\"drive_id\": \"data\", \"path_on_host\": \"/img/data.ext4\", \"is_root_device\": false, "
    "\"is_read_only\": true, \"rate_limiter\": {\"bandwidth\": {\"size\": 1048576, "
    "\"refill_time\": 1000}}}\n"
    "  ],\n"
    "  \"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 1024, \"smt\": false, "
    "\"track_dirty_pages\": false},\n"
    "  \"cpu-config\": null,\n"
    "  \"balloon\": {\"amount_mib\": 0, \"deflate_on_oom\": true, \"stats_polling_interval_s\": "
    "5},\n"
    "  \"network-interfaces\": [{\"iface_id\": \"eth0\", \"guest_mac\": \"06:00:AC:10:00:02\", "
    "\"host_dev_name\": \"tap0\"}],\n"
    "  \"vsock\": {\"guest_cid\": 3, \"uds_path\": \"/run/v.sock\"},\n"
    "  \"logger\": null,\n"
    "  \"metrics\": null,\n"
    "  \"mmds-config\": null,\n"
    "  \"entropy\": null\n"
    "}\n";

Test(api_fc_file, full_example)
{
    cr_assert_eq(parse(full), 0, "%s", err.msg);
    cr_assert_str_eq(cfg.kernel, "/img/vmlinux");
    cr_assert_null(cfg.initrd);
    cr_assert_str_eq(cfg.cmdline, "console=ttyS0 reboot=k panic=1 root=/dev/vda rw");
    cr_assert_eq(cfg.vcpus, 2);
    cr_assert_eq(cfg.memory, 1024ULL << 20);
    cr_assert_eq(cfg.ndevices, 5);
    cr_assert_eq(cfg.devices[0].type, DEV_BLK);
    cr_assert_str_eq(cfg.devices[0].id, "rootfs");
    cr_assert_not(cfg.devices[0].readonly);
    cr_assert_str_eq(cfg.devices[1].id, "data");
    cr_assert(cfg.devices[1].readonly);
    cr_assert_eq(cfg.devices[2].type, DEV_BALLOON);
    cr_assert_eq(cfg.devices[2].stats_interval_s, 5);
    cr_assert(cfg.devices[2].deflate_on_oom);
    cr_assert_eq(cfg.devices[3].type, DEV_NET);
    cr_assert_str_eq(cfg.devices[3].tap, "tap0");
    cr_assert_eq(cfg.devices[4].type, DEV_VSOCK);
    cr_assert_eq(cfg.devices[4].cid, 3);
}

Test(api_fc_file, bad_files)
{
    static const struct {
        const char *text, *needle;
    } cases[] = {
        {"{\"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 128}}", "\"boot-source\""},
        {"{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"kernel\": \"/k\"}",
         "unknown section \"kernel\""},
        {"{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"mmds-config\": {}}",
         "\"mmds-config\" is not supported"},
        {"{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"drives\": {}}", "an array"},
        {"{\"boot-source\": [], \"drives\": []}", "\"boot-source\" must be an object"},
        {"{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"drives\": [5]}",
         "\"drives\" entry 0: each configuration section must be a JSON object"},
        {"{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"drives\": [null]}",
         "entry 0 must be an object"},
        {"{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"machine-config\": "
         "{\"vcpu_count\": 99, \"mem_size_mib\": 128}}",
         "\"machine-config\": vcpu_count must be a whole number in 1-32"},
        {"{\"boot-source\": {\"kernel_image_path\": null}}", "kernel_image_path is required"},
        {"{\"boot-source\": {\"kernel_image_path\": \"/k\"}} x", "exactly one JSON object"},
        {"[]", "exactly one JSON object"},
        {"{\"boot-source\": ", "unexpected end of input"},
        {"{\"drives\": [{\"rate_limiter\": {\"a\": {\"b\": {\"c\": {\"d\": {\"e\": "
         "{\"f\": {}}}}}}}}]}",
         "invalid JSON"},
        {"{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"machine-config\": "
         "{\"vcpu_count\": 1, \"mem_size_mib\": 129, \"huge_pages\": \"2M\"}}",
         "multiple of 2 MiB"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        config_free(&cfg);
        memset(&err, 0, sizeof(err));
        cr_assert_lt(parse(cases[i].text), 0, "case %zu", i);
        cr_assert_eq(err.exit_code, WISP_EXIT_USAGE, "case %zu", i);
        cr_assert(strstr(err.msg, cases[i].needle), "case %zu: '%s'", i, err.msg);
        cr_assert_null(strchr(err.msg, '\n'), "case %zu: one line", i);
    }
}

static char path[64];

static void write_file(const char *text)
{
    snprintf(path, sizeof(path), "/tmp/wisp-test-fc-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

Test(api_fc_file, cli_config_file)
{
    write_file(full);
    char *argv[] = {"wisp", "run", "--config-file", path, "--vcpus", "3"};
    enum cli_action act;
    int ret = cli_parse(6, argv, &cfg, &act, &err);
    unlink(path);
    cr_assert_eq(ret, 0, "%s", err.msg);
    cr_assert_eq(act, CLI_RUN);
    cr_assert_str_eq(cfg.kernel, "/img/vmlinux");
    cr_assert_eq(cfg.vcpus, 3, "a later option wins");
    cr_assert_eq(cfg.ndevices, 5);
}

Test(api_fc_file, cli_config_and_config_file_exclude)
{
    write_file(full);
    char *argv[] = {"wisp", "run", "--config-file", path, "--config", path};
    enum cli_action act;
    int ret = cli_parse(6, argv, &cfg, &act, &err);
    unlink(path);
    cr_assert_lt(ret, 0);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    cr_assert(strstr(err.msg, "exclude each other"), "%s", err.msg);
}

Test(api_fc_file, cli_config_file_missing)
{
    char *argv[] = {"wisp", "run", "--config-file", "/nonexistent/fc.json"};
    enum cli_action act;
    cr_assert_lt(cli_parse(4, argv, &cfg, &act, &err), 0);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    cr_assert(strstr(err.msg, "cannot open config file"), "%s", err.msg);
}
