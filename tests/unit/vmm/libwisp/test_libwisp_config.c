/*
 * libwisp's configuration calls without KVM (vmm/libwisp/libwisp_config.c):
 * the command line's parser answers through the library with its own
 * messages and negative errno values, the sandbox defaults to off for an
 * embedder, Firecracker and wisp JSON files load, and a VM that cannot be
 * created (no kernel file, no /dev/kvm here) reports why and leaves the
 * process able to create the next one.
 */
#include "include/wisp/wisp.h"
#include "vmm/libwisp/libwisp_internal.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct wisp_config *cfg;
static struct wisp_error err;

static void setup(void)
{
    cr_assert_eq(wisp_config_new(&cfg, &err), 0);
    cr_assert_eq(err.code, 0);
}

static void teardown(void)
{
    wisp_config_free(cfg);
}

TestSuite(libwisp_config, .init = setup, .fini = teardown);

Test(libwisp_config, sandbox_is_off_until_asked)
{
    cr_assert_eq(cfg->cfg.seccomp, SECCOMP_OFF);
    cr_assert_eq(cfg->cfg.landlock, LANDLOCK_OFF);
    cr_assert_eq(wisp_config_set_sandbox(cfg, 1, &err), 0);
    cr_assert_eq(cfg->cfg.seccomp, SECCOMP_KILL);
    cr_assert_eq(cfg->cfg.landlock, LANDLOCK_AUTO);
    cr_assert_eq(wisp_config_set_sandbox(cfg, 0, &err), 0);
    cr_assert_eq(cfg->cfg.seccomp, SECCOMP_OFF);
}

Test(libwisp_config, setters_reach_the_config)
{
    cr_assert_eq(wisp_config_set_kernel(cfg, "/k", &err), 0);
    cr_assert_eq(wisp_config_set_cmdline(cfg, "console=ttyS0", &err), 0);
    cr_assert_eq(wisp_config_set_initrd(cfg, "/i", &err), 0);
    cr_assert_eq(wisp_config_set_memory(cfg, 64ull << 20, &err), 0, "%s", err.msg);
    cr_assert_eq(wisp_config_set_vcpus(cfg, 3, &err), 0);
    cr_assert_eq(wisp_config_set(cfg, "debug-exit", NULL, &err), 0);
    cr_assert_str_eq(cfg->cfg.kernel, "/k");
    cr_assert_str_eq(cfg->cfg.cmdline, "console=ttyS0");
    cr_assert_str_eq(cfg->cfg.initrd, "/i");
    cr_assert_eq(cfg->cfg.memory, 64ull << 20);
    cr_assert_eq(cfg->cfg.vcpus, 3);
    cr_assert(cfg->cfg.debug_exit);
}

Test(libwisp_config, errors_are_negative_errno_with_the_cli_message)
{
    cr_assert_eq(wisp_config_set_vcpus(cfg, 0, &err), -EINVAL);
    cr_assert_eq(err.code, -EINVAL);
    cr_assert(strstr(err.msg, "vcpus"), "%s", err.msg);
    cr_assert_eq(wisp_config_set(cfg, "no-such-option", "1", &err), -EINVAL);
    cr_assert(err.msg[0]);
    cr_assert_eq(wisp_config_add_device(cfg, "blk,bogus=1", &err), -EINVAL);
    cr_assert_str_eq(err.msg, "device blk has no option 'bogus'");
    cr_assert_eq(wisp_config_add_device(cfg, "frobnicator", &err), -EINVAL);
    cr_assert_eq(cfg->cfg.ndevices, 0);
    /* Success clears an earlier error. */
    cr_assert_eq(wisp_config_add_device(cfg, "rng", &err), 0);
    cr_assert_eq(err.code, 0);
    cr_assert_str_eq(err.msg, "");
    cr_assert_eq(cfg->cfg.ndevices, 1);
    /* NULL err is allowed everywhere. */
    cr_assert_eq(wisp_config_set_vcpus(cfg, 0, NULL), -EINVAL);
    cr_assert_eq(wisp_config_set(NULL, "vcpus", "1", &err), -EINVAL);
    /* The binary's own modes are not machine settings. */
    cr_assert_eq(wisp_config_set(cfg, "api-sock", "/tmp/x", &err), -EINVAL);
    cr_assert_eq(cfg->cfg.api_sock, NULL);
}

static char *temp_file(const char *text)
{
    char *path = strdup("/tmp/libwisp-cfg-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

Test(libwisp_config, json_files)
{
    char *wj = temp_file("{\"memory\": \"128M\", \"vcpus\": 2}");
    cr_assert_eq(wisp_config_load_json(cfg, wj, &err), 0, "%s", err.msg);
    cr_assert_eq(cfg->cfg.memory, 128ull << 20);
    cr_assert_eq(cfg->cfg.vcpus, 2);
    char *fc = temp_file("{\"boot-source\": {\"kernel_image_path\": \"/vmlinux\", "
                         "\"boot_args\": \"quiet\"}, \"machine-config\": {\"vcpu_count\": 1, "
                         "\"mem_size_mib\": 96}}");
    cr_assert_eq(wisp_config_load_firecracker(cfg, fc, &err), 0, "%s", err.msg);
    cr_assert_str_eq(cfg->cfg.kernel, "/vmlinux");
    cr_assert_eq(cfg->cfg.memory, 96ull << 20);
    char *bad = temp_file("{\"machine-config\": {\"vcpu_count\": \"many\"}}");
    cr_assert_lt(wisp_config_load_firecracker(cfg, bad, &err), 0);
    cr_assert(err.msg[0]);
    cr_assert_eq(wisp_config_load_json(cfg, "/nonexistent/x.json", &err), -ENOENT, "%d %s",
                 err.code, err.msg);
    unlink(wj);
    unlink(fc);
    unlink(bad);
    free(wj);
    free(fc);
    free(bad);
}

Test(libwisp_config, create_reports_and_frees)
{
    struct wisp_vm *vm = NULL;
    cr_assert_eq(wisp_config_add_device(cfg, "blk,path=/nonexistent/disk.img", &err), 0);
    cr_assert_eq(wisp_config_set_kernel(cfg, "/nonexistent/kernel", &err), 0);
    cr_assert_eq(wisp_vm_create(cfg, &vm, &err), -ENOENT);
    cr_assert(strstr(err.msg, "/nonexistent/kernel"), "%s", err.msg);
    cr_assert_null(vm);
    /* No kernel: the command line's message. */
    struct wisp_config *empty;
    cr_assert_eq(wisp_config_new(&empty, &err), 0);
    cr_assert_eq(wisp_vm_create(empty, &vm, &err), -EINVAL);
    cr_assert(strstr(err.msg, "kernel"), "%s", err.msg);
    wisp_config_free(empty);
    /* A failed create holds no VM slot: a later one gets past the check. */
    cr_assert_neq(wisp_vm_create(cfg, &vm, &err), -EBUSY);
    cr_assert_eq(wisp_vm_wait(NULL, 0, NULL, &err), -EINVAL);
    wisp_vm_destroy(NULL);
}

Test(libwisp_config, copy_owns_every_string)
{
    cr_assert_eq(wisp_config_set_kernel(cfg, "/k", &err), 0);
    cr_assert_eq(wisp_config_set(cfg, "serial", "file:/tmp/s", &err), 0, "%s", err.msg);
    cr_assert_eq(wisp_config_set(cfg, "snapshot-dir", "/tmp", &err), 0, "%s", err.msg);
    cr_assert_eq(wisp_config_add_device(cfg, "blk,path=/d.img", &err), 0);
    struct vm_config copy;
    cr_assert_eq(lw_config_copy(&copy, &cfg->cfg), 0);
    cr_assert_str_eq(copy.kernel, "/k");
    cr_assert_neq(copy.kernel, cfg->cfg.kernel);
    cr_assert_str_eq(copy.serial_path, "/tmp/s");
    cr_assert_neq(copy.serial_path, cfg->cfg.serial_path);
    cr_assert_neq(copy.snapshot_dir, cfg->cfg.snapshot_dir);
    cr_assert_str_eq(copy.devices[0].path, "/d.img");
    cr_assert_neq(copy.devices[0].path, cfg->cfg.devices[0].path);
    config_free(&copy);
}
