/*
 * Bad input never crashes or hangs wisp: each case gives one clear line on
 * stderr naming the problem and the documented exit code, and leaves
 * nothing behind (no serial output file is created).
 */
#include "tests/lib/proc.h"
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXIT_USAGE 2
#define EXIT_HOST  3

/* Exactly one line on stderr, starting "wisp: error: " and containing `needle`. */
static void assert_error(const struct proc_result *r, int code, const char *needle)
{
    cr_assert_eq(r->status, code, "status %d (want %d)\nstderr:\n%s", r->status, code, r->err);
    cr_assert(strncmp(r->err, "wisp: error: ", 13) == 0, "stderr:\n%s", r->err);
    cr_assert(strstr(r->err, needle), "missing '%s' in:\n%s", needle, r->err);
    const char *nl = strchr(r->err, '\n');
    cr_assert(nl && nl[1] == '\0', "more than one line:\n%s", r->err);
}

/* Run wisp with a kernel and extra args; also checks the serial file is not created. */
static void run_bad(struct proc_result *r, const char *kernel, const char *const *extra,
                    char *const env[])
{
    char serial_path[64], serial[80];
    snprintf(serial_path, sizeof(serial_path), "/tmp/wisp-never-%d", getpid());
    snprintf(serial, sizeof(serial), "file:%s", serial_path);
    unlink(serial_path);
    const char *args[64] = {"run", "--serial", serial, "--debug-exit"};
    size_t n = 4;
    if (kernel) {
        args[n++] = "--kernel";
        args[n++] = kernel;
    }
    for (size_t i = 0; extra && extra[i]; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    wisp_runv(r, NULL, env, args);
    cr_assert_neq(access(serial_path, F_OK), 0, "serial output file left behind");
}

Test(errors, missing_kernel_option)
{
    struct proc_result r;
    run_bad(&r, NULL, NULL, NULL);
    assert_error(&r, EXIT_USAGE, "no kernel given");
    proc_result_free(&r);
}

Test(errors, kernel_not_found)
{
    struct proc_result r;
    run_bad(&r, "/nonexistent/vmlinux", NULL, NULL);
    assert_error(&r, EXIT_USAGE, "cannot open kernel /nonexistent/vmlinux");
    proc_result_free(&r);
}

Test(errors, kernel_is_directory)
{
    struct proc_result r;
    run_bad(&r, "/tmp", NULL, NULL);
    assert_error(&r, EXIT_USAGE, "not a regular file");
    proc_result_free(&r);
}

Test(errors, kernel_empty)
{
    char *p = write_temp("", 0);
    struct proc_result r;
    run_bad(&r, p, NULL, NULL);
    unlink(p);
    free(p);
    assert_error(&r, EXIT_USAGE, "is empty");
    proc_result_free(&r);
}

Test(errors, kernel_wrong_format)
{
    char text[4096];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = "#!/bin/sh echo not a kernel\n"[i % 28];
    char *p = write_temp(text, sizeof(text));
    struct proc_result r;
    run_bad(&r, p, NULL, NULL);
    unlink(p);
    free(p);
    assert_error(&r, EXIT_USAGE, "neither an ELF64 vmlinux nor a bzImage");
    proc_result_free(&r);
}

static char *truncated_copy(const char *src, size_t keep)
{
    size_t len;
    char *data = read_file(src, &len);
    cr_assert_not_null(data);
    cr_assert_gt(len, keep);
    char *p = write_temp(data, keep);
    free(data);
    return p;
}

Test(errors, elf_truncated)
{
    char *p = truncated_copy(guest_elf(), 100);
    struct proc_result r;
    run_bad(&r, p, NULL, NULL);
    unlink(p);
    free(p);
    assert_error(&r, EXIT_USAGE, "ELF");
    proc_result_free(&r);
}

Test(errors, bzimage_truncated)
{
    char *p = truncated_copy(guest_bzimage(), 0x300);
    struct proc_result r;
    run_bad(&r, p, NULL, NULL);
    unlink(p);
    free(p);
    assert_error(&r, EXIT_USAGE, "bzImage");
    proc_result_free(&r);
}

/* A copy of the bzImage with one header field patched. */
static char *patched_bzimage(size_t off, const void *val, size_t n)
{
    size_t len;
    char *data = read_file(guest_bzimage(), &len);
    cr_assert_not_null(data);
    memcpy(data + off, val, n);
    char *p = write_temp(data, len);
    free(data);
    return p;
}

Test(errors, bzimage_protocol_too_old)
{
    uint16_t ver = 0x0209;
    char *p = patched_bzimage(0x206, &ver, 2);
    struct proc_result r;
    run_bad(&r, p, NULL, NULL);
    unlink(p);
    free(p);
    assert_error(&r, EXIT_USAGE, "too old");
    proc_result_free(&r);
}

Test(errors, bzimage_not_64bit)
{
    uint16_t xlf = 0;
    char *p = patched_bzimage(0x236, &xlf, 2);
    struct proc_result r;
    run_bad(&r, p, NULL, NULL);
    unlink(p);
    free(p);
    assert_error(&r, EXIT_USAGE, "64-bit");
    proc_result_free(&r);
}

/* Minimal ELF64 x86-64 executable with one PT_LOAD at `paddr`. */
static char *crafted_elf(uint64_t paddr, uint64_t memsz)
{
    uint8_t img[0x200] = {0};
    memcpy(img,
           "\x7f"
           "ELF",
           4);
    img[4] = 2; /* 64-bit */
    img[5] = 1; /* little-endian */
    img[6] = 1;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    u16 = 2, memcpy(img + 16, &u16, 2);  /* ET_EXEC */
    u16 = 62, memcpy(img + 18, &u16, 2); /* EM_X86_64 */
    u32 = 1, memcpy(img + 20, &u32, 4);
    u64 = paddr, memcpy(img + 24, &u64, 8); /* e_entry */
    u64 = 64, memcpy(img + 32, &u64, 8);    /* e_phoff */
    u16 = 64, memcpy(img + 52, &u16, 2);    /* e_ehsize */
    u16 = 56, memcpy(img + 54, &u16, 2);    /* e_phentsize */
    u16 = 1, memcpy(img + 56, &u16, 2);     /* e_phnum */
    uint8_t *ph = img + 64;
    u32 = 1, memcpy(ph, &u32, 4); /* PT_LOAD */
    u32 = 5, memcpy(ph + 4, &u32, 4);
    u64 = 0x100, memcpy(ph + 8, &u64, 8);  /* p_offset */
    memcpy(ph + 16, &paddr, 8);            /* p_vaddr */
    memcpy(ph + 24, &paddr, 8);            /* p_paddr */
    u64 = 0x100, memcpy(ph + 32, &u64, 8); /* p_filesz */
    memcpy(ph + 40, &memsz, 8);            /* p_memsz */
    img[0x100] = 0xf4;                     /* hlt */
    return write_temp(img, sizeof(img));
}

Test(errors, elf_segment_outside_ram)
{
    char *p = crafted_elf(0x40000000, 0x1000); /* 1 GiB, RAM is 256 MiB */
    struct proc_result r;
    run_bad(&r, p, NULL, NULL);
    unlink(p);
    free(p);
    assert_error(&r, EXIT_USAGE, "segment");
    proc_result_free(&r);
}

Test(errors, elf_segment_over_boot_structures)
{
    char *p = crafted_elf(0x7000, 0x1000); /* the zero page */
    struct proc_result r;
    run_bad(&r, p, NULL, NULL);
    unlink(p);
    free(p);
    assert_error(&r, EXIT_USAGE, "boot structures");
    proc_result_free(&r);
}

Test(errors, initrd_larger_than_ram)
{
    char *p = write_temp("", 0);
    cr_assert_eq(truncate(p, 40 * 1024 * 1024), 0); /* sparse 40 MiB */
    const char *extra[] = {"--memory", "32M", "--initrd", p, NULL};
    struct proc_result r;
    run_bad(&r, guest_elf(), extra, NULL);
    unlink(p);
    free(p);
    assert_error(&r, EXIT_USAGE, "initrd");
    proc_result_free(&r);
}

Test(errors, initrd_not_found)
{
    const char *extra[] = {"--initrd", "/nonexistent/initrd.img", NULL};
    struct proc_result r;
    run_bad(&r, guest_elf(), extra, NULL);
    assert_error(&r, EXIT_USAGE, "cannot open initrd /nonexistent/initrd.img");
    proc_result_free(&r);
}

Test(errors, cmdline_too_long)
{
    char *cmd = malloc(5000);
    memset(cmd, 'a', 4999);
    cmd[4999] = '\0';
    const char *extra[] = {"--cmdline", cmd, NULL};
    struct proc_result r;
    run_bad(&r, guest_elf(), extra, NULL);
    free(cmd);
    assert_error(&r, EXIT_USAGE, "command line");
    proc_result_free(&r);
}

Test(errors, memory_too_small)
{
    const char *extra[] = {"--memory", "1M", NULL};
    struct proc_result r;
    run_bad(&r, guest_elf(), extra, NULL);
    assert_error(&r, EXIT_USAGE, "too small");
    proc_result_free(&r);
}

Test(errors, memory_not_page_aligned)
{
    const char *extra[] = {"--memory", "100001K", NULL};
    struct proc_result r;
    run_bad(&r, guest_elf(), extra, NULL);
    assert_error(&r, EXIT_USAGE, "4 KiB");
    proc_result_free(&r);
}

Test(errors, zero_vcpus)
{
    const char *extra[] = {"--vcpus", "0", NULL};
    struct proc_result r;
    run_bad(&r, guest_elf(), extra, NULL);
    assert_error(&r, EXIT_USAGE, "vcpus");
    proc_result_free(&r);
}

Test(errors, too_many_vcpus)
{
    const char *extra[] = {"--vcpus", "255", NULL};
    struct proc_result r;
    run_bad(&r, guest_elf(), extra, NULL);
    assert_error(&r, EXIT_USAGE, "at most");
    proc_result_free(&r);
}

Test(errors, no_kvm_device)
{
    char *env[] = {"WISP_KVM_DEV=/nonexistent/kvm", NULL};
    struct proc_result r;
    run_bad(&r, guest_elf(), NULL, env);
    assert_error(&r, EXIT_HOST, "cannot open /nonexistent/kvm");
    proc_result_free(&r);
}

/* RLIMIT_FSIZE below the memory size: guest RAM is a memfd, so sizing it
 * fails. wisp must report that (status 3), not die of SIGXFSZ (153). */
Test(errors, file_size_limit_below_memory, .timeout = 60)
{
    if (access("/usr/bin/prlimit", X_OK) != 0)
        cr_skip_test("no /usr/bin/prlimit (util-linux)");
    const char *argv[] = {"/usr/bin/prlimit", "--fsize=1048576", wisp_bin(),         "run",
                          "--kernel",         guest_elf(),       "--memory",         "64M",
                          "--debug-exit",     "--cmdline",       "test=exit code=9", NULL};
    struct proc_result r;
    cr_assert_eq(proc_run((char *const *)(uintptr_t)argv, NULL, NULL, 0, WISP_TIMEOUT_MS, &r), 0);
    assert_error(&r, EXIT_HOST, "cannot size guest memory to 64 MiB: File too large");
    cr_assert(strstr(r.err, "RLIMIT_FSIZE"), "%s", r.err);
    proc_result_free(&r);
    /* At or above the memory size the VM runs. */
    argv[1] = "--fsize=134217728";
    cr_assert_eq(proc_run((char *const *)(uintptr_t)argv, NULL, NULL, 0, WISP_TIMEOUT_MS, &r), 0);
    cr_assert_eq(r.status, 9, "%d: %s", r.status, r.err);
    proc_result_free(&r);
}

Test(errors, kvm_device_not_kvm)
{
    char *env[] = {"WISP_KVM_DEV=/dev/null", NULL};
    struct proc_result r;
    run_bad(&r, guest_elf(), NULL, env);
    assert_error(&r, EXIT_HOST, "KVM");
    proc_result_free(&r);
}

Test(errors, bad_json)
{
    char *p = write_temp("{\"kernel\": ", 11);
    const char *extra[] = {"--config", p, NULL};
    struct proc_result r;
    run_bad(&r, NULL, extra, NULL);
    unlink(p);
    free(p);
    assert_error(&r, EXIT_USAGE, "config");
    proc_result_free(&r);
}

Test(errors, json_unknown_key)
{
    char *p = write_temp("{\"kernal\": \"x\"}", 15);
    const char *extra[] = {"--config", p, NULL};
    struct proc_result r;
    run_bad(&r, NULL, extra, NULL);
    unlink(p);
    free(p);
    assert_error(&r, EXIT_USAGE, "unknown option 'kernal'");
    proc_result_free(&r);
}

Test(errors, unknown_flag_and_command)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--frobnicate", NULL);
    assert_error(&r, EXIT_USAGE, "unknown option 'frobnicate'");
    proc_result_free(&r);
    wisp_run(&r, NULL, NULL, "launch", NULL);
    assert_error(&r, EXIT_USAGE, "unknown command 'launch'");
    proc_result_free(&r);
}

Test(errors, help_and_version)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "--help", NULL);
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "Exit status"));
    proc_result_free(&r);
    wisp_run(&r, NULL, NULL, "run", "--help", NULL);
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "--kernel PATH"));
    proc_result_free(&r);
    wisp_run(&r, NULL, NULL, "--version", NULL);
    cr_assert_eq(r.status, 0);
    cr_assert(strncmp(r.out, "wisp ", 5) == 0);
    proc_result_free(&r);
}

Test(errors, kernel_is_fifo_does_not_hang)
{
    char path[] = "/tmp/wisp-fifo-XXXXXX";
    cr_assert_not_null(mkdtemp(path));
    char fifo[64];
    snprintf(fifo, sizeof(fifo), "%s/k", path);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    struct proc_result r;
    run_bad(&r, fifo, NULL, NULL);
    unlink(fifo);
    rmdir(path);
    assert_error(&r, EXIT_USAGE, "not a regular file");
    proc_result_free(&r);
}

/*
 * Inputs are checked before the host: with no KVM at all (WISP_KVM_DEV
 * pointing nowhere), a user's mistake is still reported as that mistake,
 * with exit status 2, and only a correct configuration reaches "cannot
 * open /dev/kvm" (3).
 */
static char *const no_kvm[] = {"WISP_KVM_DEV=/nonexistent", NULL};

Test(errors, no_kvm_bad_kernel_path)
{
    struct proc_result r;
    run_bad(&r, "/no/such/vmlinux", NULL, no_kvm);
    assert_error(&r, EXIT_USAGE, "cannot open kernel /no/such/vmlinux: No such file");
    proc_result_free(&r);
}

Test(errors, no_kvm_not_a_kernel)
{
    char *p = write_temp("#!/bin/sh\necho this is no kernel\n", 33);
    struct proc_result r;
    run_bad(&r, p, NULL, no_kvm);
    assert_error(&r, EXIT_USAGE, "too short for an ELF64 vmlinux or a bzImage");
    cr_assert(strstr(r.err, p), "names the path: %s", r.err);
    unlink(p);
    free(p);
    proc_result_free(&r);
}

Test(errors, no_kvm_bad_initrd)
{
    const char *extra[] = {"--initrd", "/no/such/initrd", NULL};
    struct proc_result r;
    run_bad(&r, guest_elf(), extra, no_kvm);
    assert_error(&r, EXIT_USAGE, "cannot open initrd /no/such/initrd");
    proc_result_free(&r);
}

Test(errors, no_kvm_initrd_larger_than_memory)
{
    char *p = write_temp("", 0);
    cr_assert_eq(truncate(p, 40 * 1024 * 1024), 0);
    const char *extra[] = {"--memory", "32M", "--initrd", p, NULL};
    struct proc_result r;
    run_bad(&r, guest_elf(), extra, no_kvm);
    unlink(p);
    free(p);
    assert_error(&r, EXIT_USAGE, "guest memory is 32 MiB");
    proc_result_free(&r);
}

Test(errors, no_kvm_bad_disk_image)
{
    const char *extra[] = {"--device", "blk,path=/no/such/disk.img", NULL};
    struct proc_result r;
    run_bad(&r, guest_elf(), extra, no_kvm);
    assert_error(&r, EXIT_USAGE, "cannot open disk image /no/such/disk.img");
    proc_result_free(&r);
}

Test(errors, no_kvm_disk_image_too_small)
{
    char *p = write_temp("tiny", 4);
    char dev[128];
    snprintf(dev, sizeof(dev), "blk,path=%s", p);
    const char *extra[] = {"--device", dev, NULL};
    struct proc_result r;
    run_bad(&r, guest_elf(), extra, no_kvm);
    unlink(p);
    free(p);
    assert_error(&r, EXIT_USAGE, "smaller than one 512-byte sector");
    proc_result_free(&r);
}

Test(errors, no_kvm_console_socket_directory_missing)
{
    const char *extra[] = {"--device", "console,socket=/no/such/dir/con.sock", NULL};
    struct proc_result r;
    run_bad(&r, guest_elf(), extra, no_kvm);
    assert_error(&r, EXIT_USAGE, "console socket /no/such/dir/con.sock: directory /no/such/dir");
    proc_result_free(&r);
}

Test(errors, no_kvm_serial_directory_missing)
{
    struct proc_result r;
    wisp_run(&r, NULL, no_kvm, "run", "--kernel", guest_elf(), "--serial",
             "file:/no/such/dir/serial.log", NULL);
    assert_error(&r, EXIT_USAGE, "serial output file /no/such/dir/serial.log");
    proc_result_free(&r);
}

Test(errors, no_kvm_limits)
{
    const char *small[] = {"--memory", "1M", NULL};
    const char *many[] = {"--vcpus", "255", NULL};
    struct proc_result r;
    run_bad(&r, guest_elf(), small, no_kvm);
    assert_error(&r, EXIT_USAGE, "too small");
    proc_result_free(&r);
    run_bad(&r, guest_elf(), many, no_kvm);
    assert_error(&r, EXIT_USAGE, "at most 254");
    proc_result_free(&r);
}

Test(errors, no_kvm_good_config_reaches_the_host_check)
{
    char *disk = write_temp("", 0);
    cr_assert_eq(truncate(disk, 1024 * 1024), 0);
    char dev[128];
    snprintf(dev, sizeof(dev), "blk,path=%s", disk);
    const char *extra[] = {"--device", dev, "--initrd", guest_elf(), NULL};
    struct proc_result r;
    run_bad(&r, guest_bzimage(), extra, no_kvm);
    unlink(disk);
    free(disk);
    assert_error(&r, EXIT_HOST, "cannot open /nonexistent");
    proc_result_free(&r);
}

Test(errors, too_many_devices)
{
    const char *extra[40] = {NULL};
    unsigned n = 0;
    for (int i = 0; i < 17; i++) {
        extra[n++] = "--device";
        extra[n++] = "rng";
    }
    struct proc_result r;
    run_bad(&r, guest_elf(), extra, NULL);
    assert_error(&r, EXIT_USAGE, "at most 16 devices are supported");
    proc_result_free(&r);
}

Test(errors, too_many_devices_without_acpi)
{
    const char *extra[40] = {"--acpi", "off"};
    unsigned n = 2;
    for (int i = 0; i < 9; i++) {
        extra[n++] = "--device";
        extra[n++] = "rng";
    }
    struct proc_result r;
    run_bad(&r, guest_elf(), extra, NULL);
    assert_error(&r, EXIT_USAGE, "9 devices configured; at most 8 with --acpi off");
    proc_result_free(&r);
}

Test(errors, acpi_bad_value)
{
    const char *extra[] = {"--acpi", "maybe", NULL};
    struct proc_result r;
    run_bad(&r, guest_elf(), extra, NULL);
    assert_error(&r, EXIT_USAGE, "'acpi' must be on or off, not 'maybe'");
    proc_result_free(&r);
}

Test(errors, cpu_template_unknown)
{
    const char *extra[] = {"--cpu-template", "skylake", NULL};
    struct proc_result r;
    run_bad(&r, guest_elf(), extra, NULL);
    assert_error(&r, EXIT_USAGE,
                 "cpu-template: unknown template 'skylake' (host, x86-64-v2 or x86-64-v3)");
    proc_result_free(&r);
}
