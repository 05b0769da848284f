/*
 * virtio-balloon on KVM (docs/BALLOON.md): the test guest's balloon driver
 * (test=balloon) follows the target the host sets through the control API.
 * wisp starts with a 1 MiB target; the guest inflates to it, then
 * PATCH /balloon moves the target to 2 MiB and back to 0, and each time
 * GET /balloon/statistics must show `actual` following.  The guest checks
 * that the pages it got back read zero (wisp punched them out of its RAM)
 * and ends with PASS.
 */
#include "tests/lib/api_http.h"
#include "tests/lib/sandbox_proc.h"
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* actual_pages from GET /balloon/statistics, or -1. */
static long actual_pages(const char *sock)
{
    char reply[API_HTTP_REPLY_MAX];
    const char *body = NULL;
    int st = api_http(sock, "GET", "/balloon/statistics", NULL, reply, &body);
    const char *p = st == 200 && body ? strstr(body, "\"actual_pages\":") : NULL;
    return p ? strtol(p + strlen("\"actual_pages\":"), NULL, 10) : -1;
}

/* Wait (up to 30 s) until actual_pages == want; returns the last value seen. */
static long wait_actual(const char *sock, long want)
{
    long v = -1;
    for (int i = 0; i < 300 && (v = actual_pages(sock)) != want; i++)
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    return v;
}

static void patch(const char *sock, const char *json)
{
    char reply[API_HTTP_REPLY_MAX];
    const char *body = NULL;
    int st = api_http(sock, "PATCH", "/balloon", json, reply, &body);
    cr_assert_eq(st, 204, "PATCH /balloon %s: %d %s", json, st, body ? body : "");
}

Test(balloon, guest_follows_the_target, .timeout = 180)
{
    char dir[] = "/tmp/wisp-balloon-XXXXXX", sock[96];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(sock, sizeof(sock), "%s/api.sock", dir);
    char *argv[] = {(char *)(uintptr_t)wisp_bin(),
                    "run",
                    "--kernel",
                    (char *)(uintptr_t)guest_elf(),
                    "--debug-exit",
                    "--api-sock",
                    sock,
                    "--device",
                    "balloon,amount_mib=1,stats_polling_interval_s=1",
                    "--cmdline",
                    "test=balloon",
                    NULL};
    struct sandbox_proc p;
    cr_assert_eq(sandbox_proc_start(&p, argv, NULL), 0);
    cr_assert(sandbox_proc_wait_for(&p, "balloon actual=256", WISP_TIMEOUT_MS),
              "the guest never inflated to the initial target");
    cr_assert_eq(wait_actual(sock, 256), 256);
    patch(sock, "{\"amount_mib\": 2}");
    cr_assert_eq(wait_actual(sock, 512), 512, "actual follows the raised target");
    patch(sock, "{\"amount_mib\": 0}");
    cr_assert_eq(wait_actual(sock, 0), 0, "actual follows the target back to 0");
    struct proc_result r;
    sandbox_proc_finish(&p, NULL, WISP_TIMEOUT_MS, &r);
    cr_assert_not(r.timed_out);
    cr_assert_eq(r.status, GUEST_PASS, "status %d\n%s\n%s", r.status, r.out, r.err);
    cr_assert(strstr(r.out, "check balloon_pages_zeroed ok"), "%s", r.out);
    proc_result_free(&r);
    rmdir(dir);
}

/* The guest attacks the device (guest-images/testguest/vballoon.c): wisp
 * completes every request, never needs a reset, and keeps giving pages back. */
Test(balloon, hostile_guest, .timeout = 120)
{
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--device", "balloon",
             "--cmdline", "test=balloon balloon_hostile=1", NULL);
    cr_assert_eq(r.status, GUEST_PASS, "status %d\n%s\n%s", r.status, r.out, r.err);
    cr_assert(strstr(r.out, "check balloon_hostile_still_works ok"), "%s", r.out);
    cr_assert_null(strstr(r.err, "balloon"), "wisp complained: %s", r.err);
    proc_result_free(&r);
}
