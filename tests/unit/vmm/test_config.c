/* Configuration: CLI and JSON front ends, values, errors. */
#include "vmm/cli.h"
#include "vmm/config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

TestSuite(config, .init = setup, .fini = teardown);

static int parse(int argc, char *const argv[], enum cli_action *act)
{
    return cli_parse(argc, argv, &cfg, act, &err);
}

static int parse_json(const char *text)
{
    return config_parse_json(&cfg, text, strlen(text), &err);
}

/* A single line: no newline inside, not empty. */
static void assert_one_line(void)
{
    cr_assert(err.msg[0] != '\0');
    cr_assert_null(strchr(err.msg, '\n'), "multi-line error: %s", err.msg);
}

Test(config, sizes)
{
    uint64_t v;
    cr_assert_eq(config_parse_size("256M", &v), 0);
    cr_assert_eq(v, 256 * MiB);
    cr_assert_eq(config_parse_size("1G", &v), 0);
    cr_assert_eq(v, GiB);
    cr_assert_eq(config_parse_size("512KiB", &v), 0);
    cr_assert_eq(v, 512 * KiB);
    cr_assert_eq(config_parse_size("4096", &v), 0);
    cr_assert_eq(v, 4096);
    cr_assert_lt(config_parse_size("", &v), 0);
    cr_assert_lt(config_parse_size("-1M", &v), 0);
    cr_assert_lt(config_parse_size("12Q", &v), 0);
    cr_assert_lt(config_parse_size("1M1", &v), 0);
    cr_assert_lt(config_parse_size("99999999999999999999", &v), 0);
    cr_assert_lt(config_parse_size("17179869184G", &v), 0, "overflow");
}

Test(config, defaults)
{
    cr_assert_eq(cfg.memory, 256 * MiB);
    cr_assert_eq(cfg.vcpus, 1);
    cr_assert_eq(cfg.serial, SERIAL_STDIO);
    cr_assert_eq(cfg.boot, BOOT_AUTO);
}

Test(config, cli_run_all_options)
{
    char *argv[] = {"wisp",           "run",          "--kernel",    "/k",
                    "--initrd=/i",    "--cmdline",    "a b=c",       "--memory",
                    "512M",           "--vcpus",      "4",           "--serial",
                    "file:/tmp/x",    "--debug-exit", "--boot",      "pvh",
                    "--cpu-features", "-xsave",       "--hugepages", "--stats",
                    "--log-level",    "debug"};
    enum cli_action act;
    cr_assert_eq(parse(ARRAY_SIZE(argv), argv, &act), 0, "%s", err.msg);
    cr_assert_eq(act, CLI_RUN);
    cr_assert_str_eq(cfg.kernel, "/k");
    cr_assert_str_eq(cfg.initrd, "/i");
    cr_assert_str_eq(cfg.cmdline, "a b=c");
    cr_assert_eq(cfg.memory, 512 * MiB);
    cr_assert_eq(cfg.vcpus, 4);
    cr_assert_eq(cfg.serial, SERIAL_FILE);
    cr_assert_str_eq(cfg.serial_path, "/tmp/x");
    cr_assert(cfg.debug_exit);
    cr_assert(cfg.hugepages);
    cr_assert(cfg.stats);
    cr_assert_eq(cfg.boot, BOOT_PVH);
    cr_assert_str_eq(cfg.cpu_features, "-xsave");
    cr_assert_eq(cfg.log_level, 3);
    cr_assert_eq(config_validate(&cfg, &err), 0);
}

Test(config, cli_help_version)
{
    enum cli_action act;
    char *a1[] = {"wisp", "--help"};
    cr_assert_eq(parse(2, a1, &act), 0);
    cr_assert_eq(act, CLI_HELP);
    char *a2[] = {"wisp", "--version"};
    cr_assert_eq(parse(2, a2, &act), 0);
    cr_assert_eq(act, CLI_VERSION);
    char *a3[] = {"wisp", "run", "--kernel", "x", "--help"};
    cr_assert_eq(parse(5, a3, &act), 0);
    cr_assert_eq(act, CLI_RUN_HELP);
}

Test(config, cli_errors)
{
    enum cli_action act;
    struct {
        int argc;
        char *argv[6];
        const char *needle;
    } cases[] = {
        {1, {"wisp"}, "no command"},
        {2, {"wisp", "fly"}, "unknown command 'fly'"},
        {3, {"wisp", "run", "--bogus"}, "unknown option 'bogus'"},
        {3, {"wisp", "run", "--memory"}, "needs a value"},
        {4, {"wisp", "run", "--memory", "lots"}, "memory must be a size"},
        {4, {"wisp", "run", "--vcpus", "two"}, "vcpus must be a number"},
        {4, {"wisp", "run", "--vcpus", "-1"}, "vcpus must be a number"},
        {4, {"wisp", "run", "--serial", "tty"}, "serial must be"},
        {4, {"wisp", "run", "--serial", "file:"}, "serial must be"},
        {4, {"wisp", "run", "--boot", "bios"}, "boot must be"},
        {3, {"wisp", "run", "stray"}, "unexpected argument 'stray'"},
        {3, {"wisp", "run", "--debug-exit=maybe"}, "must be on or off"},
        {4, {"wisp", "run", "--config", "/nonexistent/vm.json"}, "cannot open config file"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        config_free(&cfg);
        config_init(&cfg);
        memset(&err, 0, sizeof(err));
        cr_assert_lt(parse(cases[i].argc, cases[i].argv, &act), 0, "case %zu", i);
        cr_assert_eq(err.exit_code, WISP_EXIT_USAGE, "case %zu", i);
        cr_assert(strstr(err.msg, cases[i].needle), "case %zu: '%s'", i, err.msg);
        assert_one_line();
    }
}

Test(config, every_known_key_is_accepted)
{
    /* config_key_known() and config_set() must agree on the key list. */
    const char *keys[] = {"kernel",      "initrd",      "cmdline",      "cpu-features", "serial",
                          "debug-exit",  "hugepages",   "stats",        "memory",       "vcpus",
                          "boot",        "log-level",   "cpu-template", "snapshot-dir", "restore",
                          "restore-mem", "restore-lazy"};
    const char *vals[] = {"/k",        "/i", "c",          "-xsave",   "none", "on",
                          "off",       "on", "64M",        "2",        "pvh",  "info",
                          "x86-64-v2", "/s", "/s/a.state", "/s/a.mem", "on"};
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        cr_assert(config_key_known(keys[i]), "%s", keys[i]);
        cr_assert_eq(config_set(&cfg, keys[i], vals[i], &err), 0, "%s: %s", keys[i], err.msg);
    }
    cr_assert_not(config_key_known("config"), "config is a CLI-only option");
    cr_assert_not(config_key_known("kernal"));
}

Test(config, validate)
{
    cr_assert_lt(config_validate(&cfg, &err), 0);
    cr_assert(strstr(err.msg, "no kernel"));
    cfg.kernel = strdup("/k");
    cfg.vcpus = 0;
    memset(&err, 0, sizeof(err));
    cr_assert_lt(config_validate(&cfg, &err), 0);
    cr_assert(strstr(err.msg, "vcpus"));
    cfg.vcpus = 1;
    cfg.memory = 256 * MiB + 100;
    memset(&err, 0, sizeof(err));
    cr_assert_lt(config_validate(&cfg, &err), 0);
    cr_assert(strstr(err.msg, "4 KiB"));
    cfg.memory = 3 * MiB;
    cfg.hugepages = true;
    memset(&err, 0, sizeof(err));
    cr_assert_lt(config_validate(&cfg, &err), 0);
    cr_assert(strstr(err.msg, "2 MiB"));
}

Test(config, json_all_keys)
{
    const char *j = "{ \"kernel\": \"/k\", \"initrd\": \"/i\", \"cmdline\": \"console=ttyS0\",\n"
                    "  \"memory\": 512, \"vcpus\": 2, \"serial\": \"none\", \"debug-exit\": true,\n"
                    "  \"boot\": \"linux64\", \"hugepages\": false, \"log-level\": \"info\" }";
    cr_assert_eq(parse_json(j), 0, "%s", err.msg);
    cr_assert_str_eq(cfg.kernel, "/k");
    cr_assert_eq(cfg.memory, 512 * MiB, "a JSON number is MiB");
    cr_assert_eq(cfg.vcpus, 2);
    cr_assert_eq(cfg.serial, SERIAL_NONE);
    cr_assert(cfg.debug_exit);
    cr_assert_eq(cfg.boot, BOOT_LINUX64);
    cr_assert_not(cfg.hugepages);
}

Test(config, json_memory_string)
{
    cr_assert_eq(parse_json("{\"memory\": \"1G\"}"), 0);
    cr_assert_eq(cfg.memory, GiB);
}

Test(config, json_errors)
{
    struct {
        const char *text;
        const char *needle;
    } cases[] = {
        {"", "ends unexpectedly"},
        {"{\"kernel\": \"/k\"", "ends unexpectedly"},
        {"{\"kernel\": }", "invalid JSON at line 1"},
        {"{\n\n\"kernel\": \"/k\",\n oops }", "invalid JSON at line 4"},
        {"[1, 2]", "top level must be a JSON object"},
        {"{\"kernal\": \"/k\"}", "unknown option 'kernal'"},
        {"{\"vcpus\": -2}", "must not be negative"},
        {"{\"vcpus\": 1.5}", "must be a string, number or boolean"},
        {"{\"memory\": [1]}", "must be a string, number or boolean"},
        {"{\"debug-exit\": \"yes\"}", "must be true or false"},
        {"{\"config\": \"other.json\"}", "cannot include"},
        {"{} {}", "unexpected text after"},
        {"{\"a\": {\"b\": {\"c\": {\"d\": {\"e\": {\"f\": {\"g\": {\"h\": {\"i\": {\"j\": {\"k\": "
         "{\"l\": {\"m\": {\"n\": {\"o\": {\"p\": {\"q\": 1}}}}}}}}}}}}}}}}}",
         "invalid JSON"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        config_free(&cfg);
        config_init(&cfg);
        memset(&err, 0, sizeof(err));
        cr_assert_lt(parse_json(cases[i].text), 0, "case %zu", i);
        cr_assert_eq(err.exit_code, WISP_EXIT_USAGE, "case %zu", i);
        cr_assert(strstr(err.msg, cases[i].needle), "case %zu: '%s'", i, err.msg);
        assert_one_line();
    }
}

Test(config, json_file_and_cli_override)
{
    char path[] = "/tmp/wisp-test-config-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *j = "{\"kernel\": \"/from-file\", \"memory\": \"128M\", \"vcpus\": 3}";
    cr_assert_eq(write(fd, j, strlen(j)), (ssize_t)strlen(j));
    close(fd);
    char *argv[] = {"wisp", "run", "--config", path, "--vcpus", "2"};
    enum cli_action act;
    int ret = parse(6, argv, &act);
    unlink(path);
    cr_assert_eq(ret, 0, "%s", err.msg);
    cr_assert_str_eq(cfg.kernel, "/from-file");
    cr_assert_eq(cfg.memory, 128 * MiB);
    cr_assert_eq(cfg.vcpus, 2, "later command-line option wins");
}

Test(config, json_file_not_regular)
{
    enum cli_action act;
    char *argv[] = {"wisp", "run", "--config", "/tmp"};
    cr_assert_lt(parse(4, argv, &act), 0);
    cr_assert(strstr(err.msg, "not a regular file"));
}

Test(config, devices_cli)
{
    cr_assert_eq(config_add_device(&cfg, "blk,path=/d.img,readonly=on,id=root", &err), 0, "%s",
                 err.msg);
    cr_assert_eq(config_add_device(&cfg, "blk,path=/e.img", &err), 0, "%s", err.msg);
    cr_assert_eq(config_add_device(&cfg, "net,tap=tap0,mac=52:54:00:12:34:56", &err), 0, "%s",
                 err.msg);
    cr_assert_eq(config_add_device(&cfg, "rng", &err), 0, "%s", err.msg);
    cr_assert_eq(config_add_device(&cfg, "console,socket=/tmp/c.sock", &err), 0, "%s", err.msg);
    cr_assert_eq(cfg.ndevices, 5);
    cr_assert_eq(cfg.devices[0].type, DEV_BLK);
    cr_assert_str_eq(cfg.devices[0].id, "root");
    cr_assert(cfg.devices[0].readonly);
    cr_assert_str_eq(cfg.devices[1].id, "blk1", "default id counts earlier devices of the type");
    cr_assert_str_eq(cfg.devices[2].tap, "tap0");
    cr_assert(cfg.devices[2].has_mac);
    cr_assert_eq(cfg.devices[2].mac[5], 0x56);
    cr_assert_str_eq(cfg.devices[3].id, "rng0");
    cr_assert_str_eq(cfg.devices[4].socket, "/tmp/c.sock");
}

Test(config, devices_errors)
{
    struct {
        const char *spec;
        const char *needle;
    } cases[] = {
        {"", "needs a value"},
        {"disk,path=x", "unknown device type 'disk'"},
        {"blk", "needs path="},
        {"blk,readonly=on", "needs path="},
        {"blk,path=x,readonly=maybe", "must be on or off"},
        {"blk,path=x,tap=t", "has no option 'tap'"},
        {"blk,path", "needs a value"},
        {"net", "needs tap="},
        {"net,tap=averyveryverylongname", "1 to 15"},
        {"net,tap=t,mac=01:00:5e:00:00:01", "unicast"},
        {"net,tap=t,mac=52:54:00:12:34", "unicast"},
        {"net,tap=t,mac=52:54:00:12:34:56:78", "unicast"},
        {"rng,id=has space", "letters, digits"},
        {"rng,id=", "letters, digits"},
        {"rng,id=abcdefghijklmnopqrstuvwxyz", "letters, digits"},
        {"console,socket=", "1 to 107"},
        {"blk,vhost-user=", "1 to 107"},
        {"blk,path=x,vhost-user=/s", "not both"},
        {"blk,vhost-user=/s,readonly=on", "backend's choice"},
        {"net,tap=t,vhost-user=/s", "tap=NAME or vhost-user=SOCKET, not both"},
        {"net,mac=52:54:00:12:34:56", "needs tap=NAME or vhost-user=SOCKET"},
        {"rng,vhost-user=/s", "has no option 'vhost-user'"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        memset(&err, 0, sizeof(err));
        cr_assert_lt(config_add_device(&cfg, cases[i].spec, &err), 0, "case %zu", i);
        cr_assert(strstr(err.msg, cases[i].needle), "case %zu: '%s'", i, err.msg);
        assert_one_line();
    }
    cr_assert_eq(cfg.ndevices, 0, "failed specs leave nothing behind");
}

Test(config, blk_vhost_user)
{
    cr_assert_eq(config_add_device(&cfg, "blk,vhost-user=/run/vub.sock,id=vd", &err), 0, "%s",
                 err.msg);
    cr_assert_eq(cfg.devices[0].type, DEV_BLK);
    cr_assert_str_eq(cfg.devices[0].socket, "/run/vub.sock");
    cr_assert_null(cfg.devices[0].path);
    cr_assert_str_eq(cfg.devices[0].id, "vd");
}

Test(config, vdpa_device)
{
    cr_assert_eq(config_add_device(&cfg, "vdpa,path=/dev/vhost-vdpa-3", &err), 0, "%s", err.msg);
    cr_assert_eq(cfg.devices[0].type, DEV_VDPA);
    cr_assert_str_eq(cfg.devices[0].path, "/dev/vhost-vdpa-3");
    cr_assert_str_eq(cfg.devices[0].id, "vdpa0");
    char spec[128];
    cr_assert_eq(config_device_spec(&cfg.devices[0], spec, sizeof(spec)), 0);
    cr_assert_str_eq(spec, "vdpa,id=vdpa0,path=/dev/vhost-vdpa-3", "the spec round-trips");
    struct {
        const char *spec;
        const char *needle;
    } cases[] = {
        {"vdpa", "needs path=/dev/vhost-vdpa-N"},
        {"vdpa,id=x", "needs path=/dev/vhost-vdpa-N"},
        {"vdpa,path=/dev/vhost-vdpa-0,readonly=on", "has no option 'readonly'"},
        {"vdpa,socket=/x", "has no option 'socket'"},
        {"vdpa,path=/dev/vhost-vdpa-1,id=vdpa0", "used twice"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        memset(&err, 0, sizeof(err));
        cr_assert_lt(config_add_device(&cfg, cases[i].spec, &err), 0, "case %zu", i);
        cr_assert(strstr(err.msg, cases[i].needle), "case %zu: '%s'", i, err.msg);
        assert_one_line();
    }
    cr_assert_eq(cfg.ndevices, 1);
}

Test(config, net_vhost_user)
{
    cr_assert_eq(
        config_add_device(&cfg, "net,vhost-user=/run/vhn.sock,mac=52:54:00:00:00:07", &err), 0,
        "%s", err.msg);
    cr_assert_eq(cfg.devices[0].type, DEV_NET);
    cr_assert_str_eq(cfg.devices[0].socket, "/run/vhn.sock");
    cr_assert_null(cfg.devices[0].tap);
    char spec[160];
    cr_assert_eq(config_device_spec(&cfg.devices[0], spec, sizeof(spec)), 0);
    cr_assert_str_eq(spec, "net,id=net0,vhost-user=/run/vhn.sock,mac=52:54:00:00:00:07");
}

Test(config, fs_device)
{
    cr_assert_eq(config_add_device(&cfg, "fs,vhost-user=/run/vfs.sock,tag=share", &err), 0, "%s",
                 err.msg);
    cr_assert_eq(cfg.devices[0].type, DEV_FS);
    cr_assert_str_eq(cfg.devices[0].socket, "/run/vfs.sock");
    cr_assert_str_eq(cfg.devices[0].tag, "share");
    cr_assert_str_eq(cfg.devices[0].id, "fs0");
    char spec[160];
    cr_assert_eq(config_device_spec(&cfg.devices[0], spec, sizeof(spec)), 0);
    cr_assert_str_eq(spec, "fs,id=fs0,vhost-user=/run/vfs.sock,tag=share");
    struct {
        const char *spec;
        const char *needle;
    } cases[] = {
        {"fs,tag=x", "needs vhost-user=SOCKET and tag=NAME"},
        {"fs,vhost-user=/s", "needs vhost-user=SOCKET and tag=NAME"},
        {"fs,vhost-user=/s,tag=", "1 to 36 bytes"},
        {"fs,vhost-user=/s,tag=0123456789012345678901234567890123456", "1 to 36 bytes"},
        {"fs,vhost-user=,tag=x", "fs vhost-user socket path must be 1 to 107 bytes"},
        {"fs,path=/x,tag=x", "has no option 'path'"},
        {"blk,path=/x,tag=x", "has no option 'tag'"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        memset(&err, 0, sizeof(err));
        cr_assert_lt(config_add_device(&cfg, cases[i].spec, &err), 0, "case %zu", i);
        cr_assert(strstr(err.msg, cases[i].needle), "case %zu: '%s'", i, err.msg);
        assert_one_line();
    }
    cr_assert_eq(
        config_add_device(&cfg, "fs,vhost-user=/s,tag=012345678901234567890123456789012345", &err),
        0, "36 bytes fit: %s", err.msg);
    cr_assert_eq(cfg.ndevices, 2);
}

Test(config, vsock_device)
{
    cr_assert_eq(config_add_device(&cfg, "vsock,cid=4294967294,uds_path=/tmp/v.sock", &err), 0,
                 "%s", err.msg);
    cr_assert_eq(cfg.devices[0].type, DEV_VSOCK);
    cr_assert_eq(cfg.devices[0].cid, 4294967294ULL);
    cr_assert_str_eq(cfg.devices[0].socket, "/tmp/v.sock");
    cr_assert_str_eq(cfg.devices[0].id, "vsock0");
    struct {
        const char *spec;
        const char *needle;
    } cases[] = {
        {"vsock,cid=3,uds_path=/tmp/w.sock", "only one vsock"},
        {"vsock,cid=2,uds_path=/x", "3 to 4294967294"},
        {"vsock,cid=4294967295,uds_path=/x", "3 to 4294967294"},
        {"vsock,cid=-5,uds_path=/x", "3 to 4294967294"},
        {"vsock,cid=3x,uds_path=/x", "3 to 4294967294"},
        {"vsock,cid=3", "needs cid=N and uds_path=PATH or backend=vhost"},
        {"vsock,uds_path=/x", "needs cid=N and uds_path=PATH"},
        {"vsock,backend=vhost", "needs cid=N"},
        {"vsock,cid=3,backend=vhost,uds_path=/x", "takes no uds_path"},
        {"vsock,cid=3,backend=kernel", "backend must be uds or vhost"},
        {"vsock,cid=3,uds_path=", "1 to 96"},
        {"vsock,cid=3,socket=/x", "has no option 'socket'"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        memset(&err, 0, sizeof(err));
        cr_assert_lt(config_add_device(&cfg, cases[i].spec, &err), 0, "case %zu", i);
        cr_assert(strstr(err.msg, cases[i].needle), "case %zu: '%s'", i, err.msg);
        assert_one_line();
    }
    cr_assert_eq(cfg.ndevices, 1);
}

Test(config, vsock_vhost_backend)
{
    cr_assert_eq(config_add_device(&cfg, "vsock,cid=7,backend=vhost,id=vs", &err), 0, "%s",
                 err.msg);
    cr_assert_eq(cfg.devices[0].type, DEV_VSOCK);
    cr_assert(cfg.devices[0].vhost);
    cr_assert_null(cfg.devices[0].socket);
    cr_assert_eq(cfg.devices[0].cid, 7);
    memset(&err, 0, sizeof(err));
    cr_assert_lt(config_add_device(&cfg, "vsock,cid=8,backend=vhost", &err), 0);
    cr_assert(strstr(err.msg, "only one vsock"), "%s", err.msg);
    /* backend=uds is the default, spelt out. */
    config_free(&cfg);
    config_init(&cfg);
    cr_assert_eq(config_add_device(&cfg, "vsock,cid=9,backend=uds,uds_path=/tmp/u", &err), 0);
    cr_assert(!cfg.devices[0].vhost);
    /* The JSON form of docs/VSOCK.md. */
    config_free(&cfg);
    config_init(&cfg);
    cr_assert_eq(parse_json("{\"device\": [{\"type\": \"vsock\", \"cid\": 3, "
                            "\"backend\": \"vhost\"}]}"),
                 0, "%s", err.msg);
    cr_assert(cfg.devices[0].vhost);
    cr_assert_eq(cfg.devices[0].cid, 3);
}

Test(config, devices_duplicate_id_and_limit)
{
    cr_assert_eq(config_add_device(&cfg, "rng,id=x", &err), 0);
    cr_assert_lt(config_add_device(&cfg, "rng,id=x", &err), 0);
    cr_assert(strstr(err.msg, "used twice"));
    for (int i = 1; i < CONFIG_MAX_DEVICES; i++)
        cr_assert_eq(config_add_device(&cfg, "rng", &err), 0, "%d: %s", i, err.msg);
    memset(&err, 0, sizeof(err));
    cr_assert_lt(config_add_device(&cfg, "rng", &err), 0);
    cr_assert(strstr(err.msg, "at most"));
}

Test(config, devices_json_forms)
{
    const char *j = "{\"device\": [\"rng\", {\"type\": \"blk\", \"path\": \"/d\", "
                    "\"readonly\": true, \"id\": \"root\"}], \"kernel\": \"/k\"}";
    cr_assert_eq(parse_json(j), 0, "%s", err.msg);
    cr_assert_eq(cfg.ndevices, 2);
    cr_assert_eq(cfg.devices[1].type, DEV_BLK);
    cr_assert(cfg.devices[1].readonly);
    cr_assert_str_eq(cfg.devices[1].id, "root");
    config_free(&cfg);
    config_init(&cfg);
    cr_assert_eq(parse_json("{\"device\": \"net,tap=tap0\"}"), 0, "%s", err.msg);
    cr_assert_eq(cfg.devices[0].type, DEV_NET);
    memset(&err, 0, sizeof(err));
    cr_assert_lt(parse_json("{\"device\": [{\"path\": \"/d\"}]}"), 0);
    cr_assert(strstr(err.msg, "needs \"type\""), "%s", err.msg);
    memset(&err, 0, sizeof(err));
    cr_assert_lt(parse_json("{\"device\": [3]}"), 0);
    cr_assert(strstr(err.msg, "string or an object"), "%s", err.msg);
}

Test(config, console_stdio_conflicts_with_serial_stdio)
{
    cfg.kernel = strdup("/k");
    cr_assert_eq(config_add_device(&cfg, "console", &err), 0);
    cr_assert_lt(config_validate(&cfg, &err), 0);
    cr_assert(strstr(err.msg, "serial port elsewhere"), "%s", err.msg);
    cfg.serial = SERIAL_NONE;
    memset(&err, 0, sizeof(err));
    cr_assert_eq(config_validate(&cfg, &err), 0, "%s", err.msg);
}

Test(config, acpi_switch)
{
    struct vm_config c;
    struct errbuf e = {0};
    config_init(&c);
    cr_assert(c.acpi, "ACPI is on by default");
    cr_assert_eq(config_set(&c, "acpi", "off", &e), 0, "%s", e.msg);
    cr_assert_not(c.acpi);
    cr_assert_eq(config_set(&c, "acpi", "on", &e), 0, "%s", e.msg);
    cr_assert(c.acpi);
    cr_assert_lt(config_set(&c, "acpi", "sometimes", &e), 0);
    cr_assert_eq(e.exit_code, WISP_EXIT_USAGE);
    cr_assert(c.acpi, "a bad value changes nothing");
    static const char json[] = "{\"kernel\": \"k\", \"acpi\": false}";
    cr_assert_eq(config_parse_json(&c, json, sizeof(json) - 1, &e), 0, "%s", e.msg);
    cr_assert_not(c.acpi);
    cr_assert_not(config_key_is_flag("acpi"), "--acpi takes on|off");
    config_free(&c);
}

Test(config, api_sock)
{
    cr_assert_eq(parse_json("{\"api-sock\": \"/run/vm1.sock\"}"), 0, "%s", err.msg);
    cr_assert_str_eq(cfg.api_sock, "/run/vm1.sock");
    char *const argv[] = {"wisp", "run", "--api-sock=/tmp/b.sock", NULL};
    enum cli_action act;
    cr_assert_eq(parse(3, argv, &act), 0, "%s", err.msg);
    cr_assert_str_eq(cfg.api_sock, "/tmp/b.sock", "the command line overrides");
    cr_assert_not(config_key_is_flag("api-sock"));

    char longpath[200];
    memset(longpath, 'a', 108);
    longpath[0] = '/';
    longpath[108] = '\0';
    cr_assert_lt(config_set(&cfg, "api-sock", longpath, &err), 0);
    cr_assert(strstr(err.msg, "api-sock path must be 1 to 107 bytes"), "%s", err.msg);
    memset(&err, 0, sizeof(err));
    cr_assert_lt(config_set(&cfg, "api-sock", "", &err), 0);
    longpath[107] = '\0';
    memset(&err, 0, sizeof(err));
    cr_assert_eq(config_set(&cfg, "api-sock", longpath, &err), 0, "107 bytes fit: %s", err.msg);
}

Test(config, pci_switch)
{
    struct vm_config c;
    struct errbuf e = {0};
    config_init(&c);
    cr_assert_not(c.pci, "PCI is off by default: existing machines stay as they were");
    cr_assert_eq(config_set(&c, "pci", "on", &e), 0, "%s", e.msg);
    cr_assert(c.pci);
    cr_assert_eq(config_set(&c, "pci", "off", &e), 0, "%s", e.msg);
    cr_assert_not(c.pci);
    cr_assert_lt(config_set(&c, "pci", "maybe", &e), 0);
    config_free(&c);
}

/* Passthrough devices: parsed, no virtio slot, and refused without --pci on. */
Test(config, passthrough_devices)
{
    struct vm_config c;
    struct errbuf e = {0};
    config_init(&c);
    cr_assert_eq(config_set(&c, "kernel", "k", &e), 0);
    cr_assert_eq(config_add_device(&c, "vfio,path=/sys/bus/pci/devices/0000:00:03.0", &e), 0, "%s",
                 e.msg);
    cr_assert_eq(config_add_device(&c, "rng", &e), 0);
    cr_assert_eq(config_add_device(&c, "vfio-user,socket=/run/dev.sock,id=nic", &e), 0, "%s",
                 e.msg);
    cr_assert_eq(c.devices[0].type, DEV_VFIO);
    cr_assert_str_eq(c.devices[0].id, "vfio0");
    cr_assert_str_eq(c.devices[0].path, "/sys/bus/pci/devices/0000:00:03.0");
    cr_assert_eq(c.devices[2].type, DEV_VFIO_USER);
    cr_assert_str_eq(c.devices[2].socket, "/run/dev.sock");
    cr_assert_eq(config_virtio_devices(&c), 1, "passthrough functions take no virtio slot");
    cr_assert_lt(config_validate(&c, &e), 0);
    cr_assert(strstr(e.msg, "needs --pci on"), "%s", e.msg);
    cr_assert_eq(config_set(&c, "pci", "on", &e), 0);
    cr_assert_eq(config_validate(&c, &e), 0, "%s", e.msg);
    memset(&e, 0, sizeof(e)); /* an errbuf keeps its first message */
    cr_assert_lt(config_add_device(&c, "vfio", &e), 0);
    cr_assert(strstr(e.msg, "needs path="), "%s", e.msg);
    memset(&e, 0, sizeof(e));
    cr_assert_lt(config_add_device(&c, "vfio-user", &e), 0);
    cr_assert(strstr(e.msg, "needs socket="), "%s", e.msg);
    memset(&e, 0, sizeof(e));
    cr_assert_lt(config_add_device(&c, "vfio-user,path=x", &e), 0);
    cr_assert(strstr(e.msg, "has no option 'path'"), "%s", e.msg);
    config_free(&c);
}

/* layout=FILE on passthrough devices only (docs/VPCI_LAYOUT.md). */
Test(config, passthrough_layout)
{
    struct vm_config c;
    struct errbuf e = {0};
    config_init(&c);
    cr_assert_eq(config_add_device(&c, "vfio-user,socket=/run/d.sock,layout=/etc/d.layout", &e), 0,
                 "%s", e.msg);
    cr_assert_str_eq(c.devices[0].layout, "/etc/d.layout");
    cr_assert_eq(config_add_device(&c, "vfio,path=/sys/bus/pci/devices/0000:00:03.0,layout=l", &e),
                 0, "%s", e.msg);
    cr_assert_str_eq(c.devices[1].layout, "l");
    cr_assert_null(c.devices[1].socket);
    cr_assert_lt(config_add_device(&c, "rng,layout=l", &e), 0);
    cr_assert(strstr(e.msg, "has no option 'layout'"), "%s", e.msg);
    config_free(&c);
}

Test(config, balloon_device)
{
    cr_assert_eq(config_add_device(&cfg,
                                   "balloon,amount_mib=64,deflate_on_oom=on,"
                                   "stats_polling_interval_s=5,free_page_reporting=on",
                                   &err),
                 0, "%s", err.msg);
    const struct device_spec *d = &cfg.devices[0];
    cr_assert_eq(d->type, DEV_BALLOON);
    cr_assert_str_eq(d->id, "balloon0");
    cr_assert_eq(d->amount_mib, 64);
    cr_assert(d->deflate_on_oom && d->free_page_reporting);
    cr_assert_eq(d->stats_interval_s, 5);
    struct {
        const char *spec;
        const char *needle;
    } bad[] = {
        {"balloon", "only one balloon"},
        {"balloon,amount_mib=-1", "amount_mib must be a number"},
        {"balloon,amount_mib=1x", "amount_mib must be a number"},
        {"balloon,amount_mib=", "amount_mib must be a number"},
        {"balloon,amount_mib=99999999999", "amount_mib must be a number"},
        {"balloon,stats_polling_interval_s=86401", "stats_polling_interval_s must be"},
        {"balloon,deflate_on_oom=maybe", "must be on or off"},
        {"balloon,path=x", "has no option 'path'"},
        {"rng,amount_mib=1", "has no option 'amount_mib'"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        memset(&err, 0, sizeof(err));
        cr_assert_lt(config_add_device(&cfg, bad[i].spec, &err), 0, "%s", bad[i].spec);
        cr_assert(strstr(err.msg, bad[i].needle), "%s: %s", bad[i].spec, err.msg);
        assert_one_line();
    }
    cr_assert_eq(cfg.ndevices, 1);
}

Test(config, balloon_device_json)
{
    cr_assert_eq(
        parse_json("{\"kernel\": \"k\", \"device\": {\"type\": \"balloon\", \"amount_mib\": "
                   "32, \"deflate_on_oom\": true, \"free_page_reporting\": false}}"),
        0, "%s", err.msg);
    cr_assert_eq(cfg.devices[0].type, DEV_BALLOON);
    cr_assert_eq(cfg.devices[0].amount_mib, 32);
    cr_assert(cfg.devices[0].deflate_on_oom);
    cr_assert_not(cfg.devices[0].free_page_reporting);
}

/* network_overrides' core: the net device with that id gets the tap, nothing else changes. */
Test(config, override_net_tap)
{
    cr_assert_eq(config_add_device(&cfg, "net,id=eth0,tap=tapA,mac=02:00:00:00:00:01", &err), 0);
    cr_assert_eq(config_add_device(&cfg, "net,tap=tapB", &err), 0);
    cr_assert_eq(config_add_device(&cfg, "rng,id=eth9", &err), 0);
    cr_assert_eq(config_override_net_tap(&cfg, "eth0", "tapZ", &err), 0, "%s", err.msg);
    cr_assert_str_eq(cfg.devices[0].tap, "tapZ");
    cr_assert_str_eq(cfg.devices[1].tap, "tapB", "the other interface keeps its tap");
    cr_assert_str_eq(cfg.devices[0].id, "eth0");

    cr_assert_eq(config_override_net_tap(&cfg, "eth9", "tapY", &err), -ENOENT,
                 "an rng device with that id is not a network interface");
    assert_one_line();
    memset(&err, 0, sizeof(err));
    cr_assert_eq(config_override_net_tap(&cfg, "nope", "tapY", &err), -ENOENT);
    cr_assert(strstr(err.msg, "'nope'"), "%s", err.msg);
    memset(&err, 0, sizeof(err));
    cr_assert_eq(config_override_net_tap(&cfg, "eth0", "abcdefghijklmnop", &err), -EINVAL);
    assert_one_line();
    memset(&err, 0, sizeof(err));
    cr_assert_eq(config_override_net_tap(&cfg, "eth0", "", &err), -EINVAL);
    cr_assert_str_eq(cfg.devices[0].tap, "tapZ", "a refused override leaves the device alone");
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
}
