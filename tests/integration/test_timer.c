/*
 * Timers through the guest: the PIT must reach the vCPU through the IOAPIC
 * pin the MP table names for ISA IRQ 0 (KVM's GSI routing and the table
 * agree).  Linux needs it to get a timer tick; the test guest checks it in
 * test=report (guest-images/testguest/timer.c).
 */
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define ASSERT_OUT(r, s)                                                                           \
    cr_assert(strstr((r)->out, (s)), "missing '%s' in stdout:\n%s\nstderr:\n%s", (s), (r)->out,    \
              (r)->err)

static void report(struct proc_result *r, const char *boot, const char *vcpus,
                   const char *cpu_features, const char *extra)
{
    char cmdline[256];
    snprintf(cmdline, sizeof(cmdline), "test=report cpus=%s %s", vcpus, extra ? extra : "");
    const char *args[] = {"run",
                          "--kernel",
                          guest_elf(),
                          "--boot",
                          boot,
                          "--vcpus",
                          vcpus,
                          "--debug-exit",
                          "--cmdline",
                          cmdline,
                          cpu_features ? "--cpu-features" : NULL,
                          cpu_features,
                          NULL};
    wisp_runv(r, NULL, NULL, args);
}

Test(timer, pit_through_the_mptable_pin, .timeout = 120)
{
    struct proc_result r;
    report(&r, "pvh", "1", NULL, NULL);
    ASSERT_OUT(&r, "check ioapic_timer ok isa_irq0_pin=2");
    cr_assert_eq(r.status, GUEST_PASS, "status %d\n%s", r.status, r.out);
    proc_result_free(&r);
}

Test(timer, pit_through_the_mptable_pin_smp_linux64, .timeout = 120)
{
    struct proc_result r;
    report(&r, "linux64", "2", NULL, NULL);
    ASSERT_OUT(&r, "check ioapic_timer ok isa_irq0_pin=2");
    cr_assert_eq(r.status, GUEST_PASS, "status %d\n%s", r.status, r.out);
    proc_result_free(&r);
}
