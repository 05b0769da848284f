/*
 * CPU templates seen from inside a guest: the test guest prints its CPUID
 * feature words (test=report), and a template must have removed what it
 * does not list and kept what it does.  The testbed's CPU (QEMU's EPYC
 * model) has AVX2, BMI and MOVBE, so both templates can be built there.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/wisp_run.h"

struct words {
    unsigned l1c, l1d, l7b, l7c;
};

static struct words run_template(const char *tmpl, struct proc_result *r)
{
    const char *args[] = {"run",
                          "--kernel",
                          guest_elf(),
                          "--debug-exit",
                          "--cmdline",
                          "test=report",
                          tmpl ? "--cpu-template" : NULL,
                          tmpl,
                          NULL};
    wisp_runv(r, NULL, NULL, args);
    cr_assert_eq(r->status, GUEST_PASS, "status %d\n%s\n%s", r->status, r->out, r->err);
    struct words w;
    const char *line = strstr(r->out, "cpuid 1.ecx=");
    cr_assert(line, "no cpuid line:\n%s", r->out);
    cr_assert_eq(
        sscanf(line, "cpuid 1.ecx=%x 1.edx=%x 7.ebx=%x 7.ecx=%x", &w.l1c, &w.l1d, &w.l7b, &w.l7c),
        4);
    return w;
}

#define L1C_SSE42  (1U << 20)
#define L1C_POPCNT (1U << 23)
#define L1C_AES    (1U << 25)
#define L1C_XSAVE  (1U << 26)
#define L1C_AVX    (1U << 28)
#define L7B_BMI1   (1U << 3)
#define L7B_AVX2   (1U << 5)

Test(cpu_template, v2_guest_sees_the_v2_level, .timeout = 120)
{
    struct proc_result host_r, r;
    struct words host = run_template(NULL, &host_r);
    cr_assert(host.l7b & L7B_AVX2, "the testbed CPU should have AVX2 (7.ebx 0x%x)", host.l7b);
    struct words w = run_template("x86-64-v2", &r);
    cr_assert(w.l1c & L1C_SSE42);
    cr_assert(w.l1c & L1C_POPCNT);
    cr_assert_eq(w.l1c & (L1C_AVX | L1C_XSAVE | L1C_AES), 0, "1.ecx 0x%x", w.l1c);
    cr_assert_eq(w.l7b & (L7B_AVX2 | L7B_BMI1), 0, "7.ebx 0x%x", w.l7b);
    proc_result_free(&host_r);
    proc_result_free(&r);
}

Test(cpu_template, v3_guest_sees_avx2_not_aes, .timeout = 120)
{
    struct proc_result r;
    struct words w = run_template("x86-64-v3", &r);
    cr_assert(w.l1c & L1C_AVX);
    cr_assert(w.l7b & L7B_AVX2);
    cr_assert(w.l7b & L7B_BMI1);
    cr_assert_eq(w.l1c & L1C_AES, 0, "AES is not part of x86-64-v3 (1.ecx 0x%x)", w.l1c);
    proc_result_free(&r);
}
