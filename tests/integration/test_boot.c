/*
 * Boot the test guest under KVM through every boot path and vCPU count, and
 * check what it reports over the serial port and the exit status wisp
 * returns.  These tests run the real wisp binary as a user would.
 */
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ASSERT_PASS(r)                                                                             \
    cr_assert_eq((r)->status, GUEST_PASS, "status %d\nstdout:\n%s\nstderr:\n%s", (r)->status,      \
                 (r)->out, (r)->err)
#define ASSERT_OUT(r, s)                                                                           \
    cr_assert(strstr((r)->out, (s)), "missing '%s' in stdout:\n%s\nstderr:\n%s", (s), (r)->out,    \
              (r)->err)

/* Criterion may run a parameterized test in a fresh process image, so the
 * parameters hold no pointers: `path` indexes path_names. */
enum boot_path { ELF_PVH, ELF_LINUX64, BZIMAGE };
static const char *const path_names[] = {"elf-pvh", "elf-linux64", "bzimage"};

struct boot_case {
    enum boot_path path;
    unsigned vcpus;
};

static void run_report(struct proc_result *r, const struct boot_case *c, const char *extra_cmdline,
                       const char *initrd)
{
    char vcpus[16], cmdline[512];
    snprintf(vcpus, sizeof(vcpus), "%u", c->vcpus);
    snprintf(cmdline, sizeof(cmdline), "test=report cpus=%u mem=256 %s", c->vcpus,
             extra_cmdline ? extra_cmdline : "");
    const char *kernel = c->path == BZIMAGE ? guest_bzimage() : guest_elf();
    const char *boot = c->path == ELF_LINUX64 ? "linux64" : "auto";
    const char *args[] = {"run",
                          "--kernel",
                          kernel,
                          "--boot",
                          boot,
                          "--memory",
                          "256M",
                          "--vcpus",
                          vcpus,
                          "--debug-exit",
                          "--cmdline",
                          cmdline,
                          initrd ? "--initrd" : NULL,
                          initrd,
                          NULL};
    wisp_runv(r, NULL, NULL, args);
}

static struct boot_case cases[] = {
    {ELF_PVH, 1},     {ELF_PVH, 2}, {ELF_PVH, 4}, {ELF_LINUX64, 1}, {ELF_LINUX64, 2},
    {ELF_LINUX64, 4}, {BZIMAGE, 1}, {BZIMAGE, 2}, {BZIMAGE, 4},
};

ParameterizedTestParameters(boot, report)
{
    return cr_make_param_array(struct boot_case, cases, ARRAY_SIZE(cases));
}

ParameterizedTest(struct boot_case *c, boot, report, .timeout = 120)
{
    struct proc_result r;
    run_report(&r, c, NULL, NULL);
    cr_log_info("%s with %u vCPUs", path_names[c->path], c->vcpus);
    ASSERT_PASS(&r);
    ASSERT_OUT(&r, "RESULT PASS");
    ASSERT_OUT(&r, c->path == ELF_PVH ? "boot=pvh" : "boot=linux64");
    char cpus[64];
    snprintf(cpus, sizeof(cpus), "cpus=%u online", c->vcpus);
    ASSERT_OUT(&r, cpus);
    /* Only the real bzImage has setup sectors; an ELF boot gets a synthetic header. */
    if (c->path == BZIMAGE)
        ASSERT_OUT(&r, "setup_sects=4");
    else if (c->path == ELF_LINUX64)
        ASSERT_OUT(&r, "setup_sects=0");
    /* wisp sets MTRRdefType to enabled + write-back on every vCPU. */
    ASSERT_OUT(&r, "mtrr_def_type=0x806");
    /* The MP table names the id KVM's IOAPIC reports (the CPU count here). */
    char ioapic[64];
    snprintf(ioapic, sizeof(ioapic), "check ioapic_id ok mptable=%u register=%u", c->vcpus,
             c->vcpus);
    ASSERT_OUT(&r, ioapic);
    proc_result_free(&r);
}

/* With 16 vCPUs no 4-bit IOAPIC id is free: table and register both say 0. */
Test(boot, sixteen_vcpus_ioapic_id, .timeout = 120)
{
    struct boot_case c = {ELF_PVH, 16};
    struct proc_result r;
    run_report(&r, &c, NULL, NULL);
    ASSERT_PASS(&r);
    ASSERT_OUT(&r, "cpus=16 online");
    ASSERT_OUT(&r, "check ioapic_id ok mptable=0 register=0");
    proc_result_free(&r);
}

static void initrd_case(enum boot_path bp)
{
    /* An initrd of a known pattern, checked byte for byte by the guest. */
    size_t len = 256 * 1024 + 123; /* hashing runs emulated at CPL0: keep it small */
    uint8_t *data = malloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 7 + (i >> 11));
    char *path = write_temp(data, len);
    char extra[128];
    snprintf(extra, sizeof(extra), "initrd_size=%zu initrd_sum=0x%08x", len, fnv1a(data, len));
    struct boot_case c = {bp, 1};
    struct proc_result r;
    run_report(&r, &c, extra, path);
    unlink(path);
    free(path);
    free(data);
    ASSERT_PASS(&r);
    ASSERT_OUT(&r, "check initrd_sum ok");
    ASSERT_OUT(&r, "check initrd_size ok");
    proc_result_free(&r);
}

Test(boot, initrd_pvh, .timeout = 120)
{
    initrd_case(ELF_PVH);
}
Test(boot, initrd_linux64, .timeout = 120)
{
    initrd_case(ELF_LINUX64);
}
Test(boot, initrd_bzimage, .timeout = 120)
{
    initrd_case(BZIMAGE);
}

Test(boot, initrd_checksum_mismatch_fails, .timeout = 120)
{
    /* Proves the guest really checks: a wrong expected sum must fail. */
    char *path = write_temp("abcdefgh", 8);
    struct boot_case c = {ELF_PVH, 1};
    struct proc_result r;
    run_report(&r, &c, "initrd_size=8 initrd_sum=0x12345678", path);
    unlink(path);
    free(path);
    cr_assert_eq(r.status, GUEST_FAIL, "status %d\n%s", r.status, r.out);
    proc_result_free(&r);
}

Test(boot, cmdline_reaches_guest, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--cmdline",
             "test=report marker=hello-from-the-host", NULL);
    ASSERT_PASS(&r);
    ASSERT_OUT(&r, "marker=hello-from-the-host");
    proc_result_free(&r);
}

Test(boot, memory_above_4g, .timeout = 120)
{
    /* 3.5 GiB: RAM below the 32-bit hole plus 512 MiB above 4 GiB. */
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--memory", "3584M",
             "--cmdline", "test=report mem=3584", NULL);
    ASSERT_PASS(&r);
    ASSERT_OUT(&r, "addr=0x0000000100000000 size=0x0000000020000000 type=1");
    ASSERT_OUT(&r, "check mem ok");
    proc_result_free(&r);
}

Test(boot, json_config_equivalent, .timeout = 120)
{
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"kernel\": \"%s\", \"memory\": 128, \"vcpus\": 2, \"debug-exit\": true,\n"
             " \"cmdline\": \"test=report cpus=2 mem=128\"}",
             guest_elf());
    char *path = write_temp(json, strlen(json));
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--config", path, NULL);
    unlink(path);
    free(path);
    ASSERT_PASS(&r);
    ASSERT_OUT(&r, "cpus=2 online");
    proc_result_free(&r);
}
