/*
 * boot: the smallest useful libwisp program (docs/LIBWISP.md), built by the
 * tests against an installed copy of the library:
 *
 *     cc boot.c $(pkg-config --cflags --libs wisp) -o boot
 *     ./boot KERNEL [--cmdline STR] [--serial PATH] [--device SPEC]... [--debug-exit]
 *
 * It boots KERNEL with its serial console on stdout (or appended to PATH),
 * waits for the VM to end and prints "exit status N".  Its own exit status
 * is the VM's, or 2 with "boot: error (-E): message" when libwisp refused.
 */
#include <wisp/wisp.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: boot KERNEL [--cmdline STR] [--serial PATH] [--device SPEC]... "
                    "[--debug-exit]\n");
    return 2;
}

/* Apply the command line to `cfg`; 0, or the failed call's -errno (err filled). */
static int configure(struct wisp_config *cfg, int argc, char **argv, struct wisp_error *err)
{
    int ret = wisp_config_set_kernel(cfg, argv[1], err);
    /* The console goes to stdout unless --serial names a file. */
    if (ret == 0)
        ret = wisp_config_set(cfg, "serial", "stdio", err);
    for (int i = 2; ret == 0 && i < argc; i++) {
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--debug-exit")) {
            ret = wisp_config_set(cfg, "debug-exit", NULL, err);
            continue;
        }
        if (!val) {
            snprintf(err->msg, sizeof(err->msg), "%s needs a value", argv[i]);
            return err->code = -EINVAL;
        }
        if (!strcmp(argv[i], "--cmdline"))
            ret = wisp_config_set_cmdline(cfg, val, err);
        else if (!strcmp(argv[i], "--serial")) {
            char spec[4096];
            snprintf(spec, sizeof(spec), "file:%s", val);
            ret = wisp_config_set(cfg, "serial", spec, err);
        } else if (!strcmp(argv[i], "--device"))
            ret = wisp_config_add_device(cfg, val, err);
        else {
            snprintf(err->msg, sizeof(err->msg), "unknown option %s", argv[i]);
            return err->code = -EINVAL;
        }
        i++;
    }
    return ret;
}

int main(int argc, char **argv)
{
    struct wisp_error err = {0};
    struct wisp_config *cfg = NULL;
    struct wisp_vm *vm = NULL;
    int status = 0;

    if (argc < 2 || argv[1][0] == '-')
        return usage();
    fprintf(stderr, "boot: libwisp %s\n", wisp_version());
    if (wisp_config_new(&cfg, &err) < 0 || configure(cfg, argc, argv, &err) < 0 ||
        wisp_vm_create(cfg, &vm, &err) < 0 || wisp_vm_start(vm, &err) < 0 ||
        wisp_vm_wait(vm, -1, &status, &err) < 0) {
        fprintf(stderr, "boot: error (%d): %s\n", err.code, err.msg);
        wisp_vm_destroy(vm);
        wisp_config_free(cfg);
        return 2;
    }
    fflush(stdout);
    fprintf(stderr, "boot: exit status %d\n", status);
    wisp_vm_destroy(vm);
    wisp_config_free(cfg);
    return status;
}
