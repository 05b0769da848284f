/*
 * Timers through the guest: the PIT must reach the vCPU through the IOAPIC
 * pin the MP table names for ISA IRQ 0 (KVM's GSI routing and the table
 * agree), and the TSC-deadline LAPIC timer is offered in CPUID exactly when
 * KVM has it (KVM_CAP_TSC_DEADLINE_TIMER) and the feature mask allows it.
 * Linux needs both to get a timer tick; the test guest checks them in
 * test=report (guest-images/testguest/timer.c).
 */
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

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

static int host_tsc_deadline(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    cr_assert_geq(fd, 0, "/dev/kvm");
    int cap = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER);
    close(fd);
    return cap > 0;
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

Test(timer, tsc_deadline_offered_when_kvm_has_it, .timeout = 120)
{
    int cap = host_tsc_deadline();
    struct proc_result r;
    report(&r, "auto", "1", NULL, cap ? "tsc_deadline=1" : "tsc_deadline=0");
    cr_log_info("KVM_CAP_TSC_DEADLINE_TIMER: %d", cap);
    ASSERT_OUT(&r, "check tsc_deadline_cpuid ok");
    if (cap)
        ASSERT_OUT(&r, "check tsc_deadline_timer ok");
    cr_assert_eq(r.status, GUEST_PASS, "status %d\n%s", r.status, r.out);
    proc_result_free(&r);
}

Test(timer, tsc_deadline_hidden_by_the_feature_mask, .timeout = 120)
{
    struct proc_result r;
    report(&r, "auto", "1", "-tsc_deadline", "tsc_deadline=0");
    ASSERT_OUT(&r, "check tsc_deadline_cpuid ok cpuid=0");
    cr_assert(!strstr(r.out, "tsc_deadline_timer"), "%s", r.out);
    cr_assert_eq(r.status, GUEST_PASS, "status %d\n%s", r.status, r.out);
    proc_result_free(&r);
}
