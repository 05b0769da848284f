/*
 * A snapshot's machine configuration (vmm/vm_mig_config.h, config_device_spec):
 * a configuration with every kind of device goes to pairs and back through
 * config_set() unchanged; a device whose text could not be parsed back is
 * refused when the snapshot is written; and the pairs a hostile file may
 * hold (a host option such as kernel or api-sock, an unparsable device, a
 * bad size) are refused with one line.
 */
#include "vmm/vm_mig_config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

static void set(struct vm_config *c, const char *k, const char *v)
{
    struct errbuf err = {0};
    cr_assert_eq(config_set(c, k, v, &err), 0, "%s=%s: %s", k, v ? v : "", err.msg);
}

static void full(struct vm_config *c)
{
    config_init(c);
    set(c, "memory", "384M");
    set(c, "vcpus", "3");
    set(c, "cpu-template", "x86-64-v2");
    set(c, "cpu-features", "-avx2");
    set(c, "acpi", "off");
    set(c, "pci", "on");
    set(c, "serial", "file:/var/log/vm serial.log");
    set(c, "debug-exit", "on");
    set(c, "device", "blk,path=/srv/root.img,readonly=on,id=root");
    set(c, "device", "blk,vhost-user=/run/vu.sock");
    set(c, "device", "net,tap=tap7,mac=52:54:00:12:34:56");
    set(c, "device", "net,tap=tap8");
    set(c, "device", "rng");
    set(c, "device", "console,socket=/run/con.sock");
    set(c, "device",
        "balloon,amount_mib=64,deflate_on_oom=on,stats_polling_interval_s=2,"
        "free_page_reporting=on");
    set(c, "device", "vsock,cid=7,uds_path=/run/v.sock");
}

Test(vm_mig_config, round_trip_through_the_parser)
{
    struct vm_config a, b;
    struct mig_config p;
    struct errbuf err = {0};
    full(&a);
    mig_config_init(&p);
    cr_assert_eq(vm_mig_config_from(&a, &p, &err), 0, "%s", err.msg);
    config_init(&b);
    cr_assert_eq(vm_mig_config_apply(&p, &b, &err), 0, "%s", err.msg);
    cr_assert_eq(b.memory, a.memory);
    cr_assert_eq(b.vcpus, 3);
    cr_assert_str_eq(b.cpu_template, "x86-64-v2");
    cr_assert_str_eq(b.cpu_features, "-avx2");
    cr_assert_eq(b.acpi, false);
    cr_assert_eq(b.pci, true);
    cr_assert_eq(b.serial, SERIAL_FILE);
    cr_assert_str_eq(b.serial_path, "/var/log/vm serial.log");
    cr_assert_eq(b.debug_exit, true);
    cr_assert_eq(b.ndevices, a.ndevices);
    for (unsigned i = 0; i < a.ndevices; i++) {
        char sa[4200], sb[4200];
        cr_assert_eq(config_device_spec(&a.devices[i], sa, sizeof(sa)), 0);
        cr_assert_eq(config_device_spec(&b.devices[i], sb, sizeof(sb)), 0);
        cr_assert_str_eq(sa, sb);
        cr_assert_eq(memcmp(a.devices[i].mac, b.devices[i].mac, 6), 0);
        cr_assert_eq(a.devices[i].readonly, b.devices[i].readonly);
        cr_assert_eq(a.devices[i].cid, b.devices[i].cid);
        cr_assert_eq(a.devices[i].amount_mib, b.devices[i].amount_mib);
    }
    cr_assert_str_eq(b.devices[0].id, "root");
    cr_assert_str_eq(b.devices[0].path, "/srv/root.img");
    cr_assert_str_eq(b.devices[1].socket, "/run/vu.sock");
    cr_assert_str_eq(b.devices[7].socket, "/run/v.sock");
    /* Host settings are not carried. */
    cr_assert_null(b.kernel);
    cr_assert_null(b.api_sock);
    mig_config_free(&p);
    config_free(&a);
    config_free(&b);
}

Test(vm_mig_config, vhost_vsock_and_defaults)
{
    struct vm_config a, b;
    struct mig_config p;
    struct errbuf err = {0};
    config_init(&a);
    set(&a, "device", "vsock,cid=4,backend=vhost");
    mig_config_init(&p);
    cr_assert_eq(vm_mig_config_from(&a, &p, &err), 0, "%s", err.msg);
    config_init(&b);
    cr_assert_eq(vm_mig_config_apply(&p, &b, &err), 0, "%s", err.msg);
    cr_assert(b.devices[0].vhost);
    cr_assert_null(b.devices[0].socket);
    cr_assert_eq(b.serial, SERIAL_STDIO);
    cr_assert_eq(b.acpi, true);
    cr_assert_null(b.cpu_template);
    mig_config_free(&p);
    config_free(&a);
    config_free(&b);
}

Test(vm_mig_config, a_value_with_a_comma_cannot_be_carried)
{
    struct vm_config a;
    struct mig_config p;
    struct errbuf err = {0};
    config_init(&a);
    set(&a, "device", "rng");
    /* A path set directly (as the Firecracker API may) holding the separator. */
    a.devices[0].type = DEV_BLK;
    a.devices[0].path = strdup("/srv/a,b.img");
    mig_config_init(&p);
    cr_assert_eq(vm_mig_config_from(&a, &p, &err), -EINVAL);
    cr_assert(strstr(err.msg, "','"), "%s", err.msg);
    mig_config_free(&p);
    config_free(&a);
}

/* Apply one hostile pair to a fresh config: refused with `what` in the message. */
static void refused(const char *key, const char *value, const char *what)
{
    struct mig_config p;
    struct vm_config c;
    struct errbuf err = {0};
    mig_config_init(&p);
    cr_assert_eq(mig_config_add(&p, key, value), 0);
    config_init(&c);
    cr_assert_lt(vm_mig_config_apply(&p, &c, &err), 0, "%s=%s accepted", key, value);
    cr_assert(strstr(err.msg, "snapshot configuration") && strstr(err.msg, what), "%s", err.msg);
    mig_config_free(&p);
    config_free(&c);
}

Test(vm_mig_config, hostile_pairs_are_refused)
{
    refused("kernel", "/bin/sh", "not a machine option");
    refused("api-sock", "/tmp/x", "not a machine option");
    refused("snapshot-dir", "/", "not a machine option");
    refused("seccomp", "off", "not a machine option");
    refused("nonsense", "1", "not a machine option");
    refused("device", "blk", "needs path");
    refused("device", "floppy,path=/a", "unknown device type");
    refused("device", "net,tap=0123456789abcdefg", "tap name");
    refused("memory", "lots", "memory");
    refused("vcpus", "-1", "vcpus");
    refused("serial", "tcp:1", "serial");
}
