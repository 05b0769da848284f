/*
 * preflight_check(): each input problem is caught before KVM, as exit
 * status 2 with the path in the message (a layout file's errors with its
 * line), and a good configuration passes without creating anything.
 */
#include "vmm/preflight.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/lib/x86_images.h"

static struct vm_config cfg;
static struct errbuf err;
static char dir[] = "/tmp/wisp-preflight-XXXXXX";
static char kernel[64], disk[64];

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void setup(void)
{
    memset(&err, 0, sizeof(err));
    cr_assert_not_null(mkdtemp(dir));
    snprintf(kernel, sizeof(kernel), "%s/vmlinux", dir);
    snprintf(disk, sizeof(disk), "%s/disk.img", dir);
    size_t len;
    struct x86_img_bz bz;
    x86_img_bz_defaults(&bz);
    uint8_t *img = x86_img_bz_build(&bz, &len);
    write_file(kernel, img, len);
    free(img);
    static const uint8_t sector[1024];
    write_file(disk, sector, sizeof(sector));
    config_init(&cfg);
    cr_assert_eq(config_set(&cfg, "kernel", kernel, &err), 0, "%s", err.msg);
}

static void teardown(void)
{
    config_free(&cfg);
    unlink(kernel);
    unlink(disk);
    rmdir(dir);
}

TestSuite(preflight, .init = setup, .fini = teardown);

static void expect_usage(const char *needle)
{
    cr_assert_lt(preflight_check(&cfg, &err), 0);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE, "%s", err.msg);
    cr_assert(strstr(err.msg, needle), "'%s' not in: %s", needle, err.msg);
}

Test(preflight, good_config_passes)
{
    char dev[96], con[96];
    snprintf(dev, sizeof(dev), "blk,path=%s", disk);
    snprintf(con, sizeof(con), "console,socket=%s/con.sock", dir);
    cr_assert_eq(config_set(&cfg, "device", dev, &err), 0, "%s", err.msg);
    cr_assert_eq(config_set(&cfg, "device", con, &err), 0, "%s", err.msg);
    cr_assert_eq(preflight_check(&cfg, &err), 0, "%s", err.msg);
    char sock[96];
    snprintf(sock, sizeof(sock), "%s/con.sock", dir);
    cr_assert_neq(access(sock, F_OK), 0, "nothing created");
}

Test(preflight, kernel_missing)
{
    cr_assert_eq(config_set(&cfg, "kernel", "/no/such/vmlinux", &err), 0);
    expect_usage("cannot open kernel /no/such/vmlinux");
}

Test(preflight, kernel_wrong_format)
{
    write_file(kernel, "#!/bin/sh\n", 10);
    expect_usage("too short for an ELF64 vmlinux or a bzImage");
    cr_assert(strstr(err.msg, kernel), "%s", err.msg);
}

Test(preflight, initrd_larger_than_memory)
{
    char initrd[80];
    snprintf(initrd, sizeof(initrd), "%s/initrd", dir);
    write_file(initrd, "x", 1);
    cr_assert_eq(truncate(initrd, 20 * 1024 * 1024), 0);
    cr_assert_eq(config_set(&cfg, "initrd", initrd, &err), 0);
    cr_assert_eq(config_set(&cfg, "memory", "16M", &err), 0);
    expect_usage("guest memory is 16 MiB");
    unlink(initrd);
}

Test(preflight, disk_missing)
{
    cr_assert_eq(config_set(&cfg, "device", "blk,path=/no/such/disk", &err), 0);
    expect_usage("cannot open disk image /no/such/disk");
}

Test(preflight, disk_opened_as_configured)
{
    char dev[96];
    snprintf(dev, sizeof(dev), "blk,path=%s,readonly=on", disk);
    cr_assert_eq(chmod(disk, 0400), 0);
    cr_assert_eq(config_set(&cfg, "device", dev, &err), 0, "%s", err.msg);
    cr_assert_eq(preflight_check(&cfg, &err), 0, "%s", err.msg);
}

Test(preflight, vdpa_node)
{
    cr_assert_eq(config_set(&cfg, "device", "vdpa,path=/no/such/vhost-vdpa-9", &err), 0);
    expect_usage("vdpa device /no/such/vhost-vdpa-9: No such file");
    config_free(&cfg);
    config_init(&cfg);
    memset(&err, 0, sizeof(err));
    cr_assert_eq(config_set(&cfg, "kernel", kernel, &err), 0, "%s", err.msg);
    char dev[96];
    snprintf(dev, sizeof(dev), "vdpa,path=%s", disk);
    cr_assert_eq(config_set(&cfg, "device", dev, &err), 0, "%s", err.msg);
    expect_usage("is not a character device");
    config_free(&cfg);
    config_init(&cfg);
    memset(&err, 0, sizeof(err));
    cr_assert_eq(config_set(&cfg, "kernel", kernel, &err), 0, "%s", err.msg);
    cr_assert_eq(config_set(&cfg, "device", "vdpa,path=/dev/null", &err), 0, "%s", err.msg);
    cr_assert_eq(preflight_check(&cfg, &err), 0, "a character device passes: %s", err.msg);
}

Test(preflight, serial_directory)
{
    cr_assert_eq(config_set(&cfg, "serial", "file:/no/such/dir/out", &err), 0);
    expect_usage("directory /no/such/dir");
}

Test(preflight, api_socket_directory)
{
    cr_assert_eq(config_set(&cfg, "api-sock", "/no/such/dir/api.sock", &err), 0);
    expect_usage("API socket /no/such/dir/api.sock: directory /no/such/dir");
}

Test(preflight, limits)
{
    cr_assert_eq(config_set(&cfg, "memory", "1M", &err), 0);
    expect_usage("too small");
    config_free(&cfg);
    config_init(&cfg);
    cr_assert_eq(config_set(&cfg, "kernel", kernel, &err), 0);
    cr_assert_eq(config_set(&cfg, "vcpus", "300", &err), 0);
    memset(&err, 0, sizeof(err));
    expect_usage("at most 254");
}

/* The platform description's device limit: 16 with ACPI, 8 without. */
Test(preflight, device_limits)
{
    for (int i = 0; i < 9; i++)
        cr_assert_eq(config_add_device(&cfg, "rng", &err), 0, "%s", err.msg);
    cr_assert_eq(preflight_check(&cfg, &err), 0, "9 devices with ACPI: %s", err.msg);
    cr_assert_eq(config_set(&cfg, "acpi", "off", &err), 0);
    expect_usage("9 devices configured; at most 8 with --acpi off");
    memset(&err, 0, sizeof(err));
    cr_assert_eq(config_set(&cfg, "acpi", "on", &err), 0);
    for (int i = 9; i < 16; i++)
        cr_assert_eq(config_add_device(&cfg, "rng", &err), 0, "%s", err.msg);
    cr_assert_eq(preflight_check(&cfg, &err), 0, "16 devices with ACPI: %s", err.msg);
    /* The 17th is refused by the configuration itself, with the same number. */
    cr_assert_lt(config_add_device(&cfg, "rng", &err), 0);
    cr_assert(strstr(err.msg, "at most 16 devices"), "%s", err.msg);
    cr_assert_eq(cfg.ndevices, 16);
}

/* A vfio-user device's layout= file is parsed before KVM: its errors name
 * file:line with exit status 2. */
Test(preflight, layout_file_errors)
{
    char sock[96], lay[96], dev[256];
    snprintf(sock, sizeof(sock), "%s/dev.sock", dir);
    snprintf(lay, sizeof(lay), "%s/dev.layout", dir);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
    cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    static const char bad[] = "wisp-vpci-layout 1\nid 0x1234 0x11e8\nbar 0 mem32 0x3000\n";
    write_file(lay, bad, strlen(bad));
    snprintf(dev, sizeof(dev), "vfio-user,socket=%s,layout=%s", sock, lay);
    cr_assert_eq(config_set(&cfg, "device", dev, &err), 0, "%s", err.msg);
    char want[160];
    snprintf(want, sizeof(want), "vpci layout %s:3: bar 0: size 0x3000 is not a power of two", lay);
    expect_usage(want);
    unlink(lay);
    memset(&err, 0, sizeof(err));
    expect_usage("cannot open");
    close(s);
    unlink(sock);
}
