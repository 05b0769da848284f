/*
 * ACPI end to end: the test guest reads wisp's tables the way a kernel does
 * (boot-protocol pointer and BIOS-area scan, checksums, MADT CPUs and
 * wiring, DSDT devices), finds its virtio devices only through the DSDT,
 * and powers off and resets through the FADT's registers.  --acpi off must
 * leave the MP table and command-line description working alone.
 */
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define ASSERT_STATUS(r, want)                                                                     \
    cr_assert_eq((r)->status, (want), "status %d\nstdout:\n%s\nstderr:\n%s", (r)->status,          \
                 (r)->out, (r)->err)
#define ASSERT_PASS(r) ASSERT_STATUS(r, GUEST_PASS)
#define ASSERT_OUT(r, s)                                                                           \
    cr_assert(strstr((r)->out, (s)), "missing '%s' in stdout:\n%s\nstderr:\n%s", (s), (r)->out,    \
              (r)->err)
#define ASSERT_ERR(r, s)                                                                           \
    cr_assert(strstr((r)->err, (s)), "missing '%s' in stderr:\n%s", (s), (r)->err)

/* test=acpi under each boot path: the pointer each protocol carries. */
static void report(const char *kernel, const char *boot, const char *vcpus, const char *cmdline,
                   int ndev)
{
    struct proc_result r;
    const char *args[48] = {"run",     "--kernel", kernel,         "--boot",    boot,
                            "--vcpus", vcpus,      "--debug-exit", "--cmdline", cmdline};
    unsigned n = 10;
    for (int i = 0; i < ndev; i++) {
        args[n++] = "--device";
        args[n++] = "rng";
    }
    args[n] = NULL;
    wisp_runv(&r, NULL, NULL, args);
    ASSERT_PASS(&r);
    ASSERT_OUT(&r, "check acpi_rsdp_pointer ok");
    ASSERT_OUT(&r, "check acpi_tables ok");
    ASSERT_OUT(&r, "check acpi_fadt ok");
    ASSERT_OUT(&r, "check acpi_madt_cpus ok");
    ASSERT_OUT(&r, "check acpi_madt_isa_wiring ok");
    ASSERT_OUT(&r, "check acpi_dsdt_virtio ok");
    ASSERT_OUT(&r, "check acpi_dsdt_s5 ok");
    proc_result_free(&r);
}

Test(acpi, tables_pvh_1cpu, .timeout = 120)
{
    report(guest_elf(), "pvh", "1", "test=acpi cpus=1 devices=0", 0);
}

Test(acpi, tables_linux64_2cpu_3dev, .timeout = 120)
{
    report(guest_elf(), "linux64", "2", "test=acpi cpus=2 devices=3", 3);
}

Test(acpi, tables_bzimage_4cpu_16dev, .timeout = 120)
{
    report(guest_bzimage(), "auto", "4", "test=acpi cpus=4 devices=16", 16);
}

Test(acpi, off_means_no_tables, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--acpi", "off", "--debug-exit",
             "--cmdline", "test=acpi acpi=0", NULL);
    ASSERT_PASS(&r);
    ASSERT_OUT(&r, "check acpi_absent ok");
    proc_result_free(&r);
}

Test(acpi, off_keeps_command_line_devices, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--acpi", "off", "--debug-exit",
             "--device", "rng", "--cmdline", "test=rng virtio_irq=1", NULL);
    ASSERT_PASS(&r);
    ASSERT_OUT(&r, "rng base=0xd0000000 irq=5");
    ASSERT_OUT(&r, "check rng_irq ok");
    proc_result_free(&r);
    /* ... found through the command line, the only description there is. */
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--acpi", "off", "--debug-exit",
             "--device", "rng", "--cmdline", "test=report", NULL);
    ASSERT_PASS(&r);
    ASSERT_OUT(&r, "virtio_mmio.device=4K@0xd0000000:5");
    proc_result_free(&r);
}

Test(acpi, on_keeps_command_line_clean, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--device", "rng",
             "--cmdline", "test=report", NULL);
    ASSERT_PASS(&r);
    cr_assert_null(strstr(r.out, "virtio_mmio.device="), "ACPI describes the devices:\n%s", r.out);
    proc_result_free(&r);
}

/* The 16th device sits on IOAPIC pin 23, reachable only through the DSDT. */
Test(acpi, sixteen_devices_last_one_interrupts, .timeout = 120)
{
    struct proc_result r;
    const char *args[48] = {"run",          "--kernel",  guest_elf(),
                            "--debug-exit", "--cmdline", "test=rng rng_nth=15 virtio_irq=1"};
    unsigned n = 6;
    for (int i = 0; i < 16; i++) {
        args[n++] = "--device";
        args[n++] = "rng";
    }
    args[n] = NULL;
    wisp_runv(&r, NULL, NULL, args);
    ASSERT_PASS(&r);
    ASSERT_OUT(&r, "check rng_irq_route ok gsi=23");
    ASSERT_OUT(&r, "check rng_irq ok");
    proc_result_free(&r);
}

Test(acpi, poweroff_through_s5_exits_zero, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--log-level", "info",
             "--cmdline", "test=acpi-poweroff", NULL);
    ASSERT_STATUS(&r, 0);
    ASSERT_OUT(&r, "acpi-poweroff: writing SLP_TYP 5 | SLP_EN to port 0x600");
    ASSERT_ERR(&r, "guest entered ACPI S5");
    proc_result_free(&r);
}

Test(acpi, reset_register_exits_zero, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--log-level", "info",
             "--cmdline", "test=acpi-reset", NULL);
    ASSERT_STATUS(&r, 0);
    ASSERT_OUT(&r, "acpi-reset: writing 0x1 to port 0x602");
    ASSERT_ERR(&r, "reset through the ACPI reset register");
    proc_result_free(&r);
}

/* Without ACPI there are no PM registers: the write goes nowhere. */
Test(acpi, off_has_no_pm_registers, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--acpi", "off", "--debug-exit",
             "--cmdline", "test=acpi-poweroff", NULL);
    ASSERT_STATUS(&r, GUEST_FAIL);
    ASSERT_OUT(&r, "check acpi_poweroff_regs FAIL");
    proc_result_free(&r);
}
