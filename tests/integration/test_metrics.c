/*
 * Metrics and run-time log levels on the real binary with the test guest
 * (docs/METRICS.md): the guest does virtio I/O, and the counters in the
 * --metrics-path file must match what it did; FlushMetrics over the API
 * writes a line at once; PATCH /logger changes what reaches --log-path
 * while the VM runs.
 */
#include "tests/lib/api_http.h"
#include "tests/lib/sandbox_proc.h"
#include "tests/lib/wisp_run.h"

#include <criterion/criterion.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Sums of every line's deltas, read from the metrics file. */
struct totals {
    unsigned lines;
    int64_t exit_io, exit_mmio, flushes, write_fails, api_requests, api_2xx, api_4xx, signals;
    int64_t rng_bytes, rng_requests, rng_events, rng_activate_fails;
    int64_t last_api_requests; /* the last line's */
};

static int64_t field(json_object *o, const char *group, const char *name)
{
    json_object *g, *v;
    cr_assert(json_object_object_get_ex(o, group, &g), "no group %s", group);
    cr_assert(json_object_object_get_ex(g, name, &v), "no %s.%s", group, name);
    cr_assert(json_object_is_type(v, json_type_int));
    return json_object_get_int64(v);
}

static void read_totals(const char *path, struct totals *t)
{
    memset(t, 0, sizeof(*t));
    size_t len;
    char *text = read_file(path, &len);
    cr_assert_not_null(text, "no metrics file %s", path);
    for (char *line = text, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        json_object *o = json_tokener_parse(line);
        cr_assert_not_null(o, "line %u is not JSON: %s", t->lines, line);
        t->lines++;
        t->exit_io += field(o, "vcpu", "exit_io");
        t->exit_mmio += field(o, "vcpu", "exit_mmio");
        t->flushes += field(o, "metrics", "flushes");
        t->write_fails += field(o, "metrics", "write_fails");
        t->last_api_requests = field(o, "api", "requests");
        t->api_requests += t->last_api_requests;
        t->api_2xx += field(o, "api", "status_2xx");
        t->api_4xx += field(o, "api", "status_4xx");
        t->signals += field(o, "signals", "received");
        json_object *devs;
        cr_assert(json_object_object_get_ex(o, "devices", &devs));
        json_object *rng;
        if (json_object_object_get_ex(devs, "rng0", &rng)) {
            t->rng_bytes += field(devs, "rng0", "bytes_read");
            t->rng_requests += field(devs, "rng0", "requests");
            t->rng_events += field(devs, "rng0", "queue_events");
            t->rng_activate_fails += field(devs, "rng0", "activate_fails");
        }
        json_object_put(o);
    }
    free(text);
}

static void tmpdir(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/wisp-metrics-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

/* The guest reads 4096 bytes from virtio-rng and powers off: the deltas add up to that. */
Test(metrics, guest_io_counted, .timeout = 180)
{
    char dir[64], mpath[96];
    tmpdir(dir, sizeof(dir));
    snprintf(mpath, sizeof(mpath), "%s/metrics.json", dir);
    struct proc_result r;
    wisp_run(&r, NULL, NULL, "run", "--kernel", guest_elf(), "--debug-exit", "--device",
             "rng,id=rng0", "--cmdline", "test=rng", "--metrics-path", mpath, "--metrics-period-ms",
             "20", NULL);
    cr_assert_eq(r.status, GUEST_PASS, "status %d\n%s\n%s", r.status, r.out, r.err);
    cr_assert(strstr(r.out, "check rng_read ok"), "%s", r.out);
    struct totals t;
    read_totals(mpath, &t);
    cr_assert_geq(t.lines, 2, "periodic lines and the one at exit (%u)", t.lines);
    cr_assert_eq(t.flushes, (int64_t)t.lines, "every flush wrote its line");
    cr_assert_eq(t.write_fails, 0);
    cr_assert_gt(t.exit_io, 0, "COM1 and debug-exit are port I/O");
    cr_assert_gt(t.exit_mmio, 0, "virtio-mmio registers are MMIO");
    cr_assert_eq(t.rng_bytes, 4096, "the guest read 4096 bytes, wisp counted %lld",
                 (long long)t.rng_bytes);
    cr_assert_geq(t.rng_requests, 1);
    cr_assert_geq(t.rng_events, t.rng_requests > 0 ? 1 : 0);
    cr_assert_eq(t.rng_activate_fails, 0);
    proc_result_free(&r);
    unlink(mpath);
    rmdir(dir);
}

/* Does the file at `path` contain `needle`? */
static bool file_has(const char *path, const char *needle)
{
    size_t len;
    char *text = read_file(path, &len);
    bool found = text && strstr(text, needle);
    free(text);
    return found;
}

Test(metrics, api_flush_and_runtime_log_level, .timeout = 240)
{
    char dir[64], sock[96], mpath[96], lpath[96], serial[128];
    tmpdir(dir, sizeof(dir));
    snprintf(sock, sizeof(sock), "%s/api.sock", dir);
    snprintf(mpath, sizeof(mpath), "%s/metrics.json", dir);
    snprintf(lpath, sizeof(lpath), "%s/wisp.log", dir);
    snprintf(serial, sizeof(serial), "file:%s/serial.log", dir);
    char *argv[] = {(char *)(uintptr_t)wisp_bin(),
                    "run",
                    "--kernel",
                    (char *)(uintptr_t)guest_elf(),
                    "--debug-exit",
                    "--serial",
                    serial,
                    "--api-sock",
                    sock,
                    "--metrics-path",
                    mpath,
                    "--log-path",
                    lpath,
                    "--cmdline",
                    "test=tick",
                    NULL};
    struct sandbox_proc p;
    cr_assert_eq(sandbox_proc_start(&p, argv, NULL), 0);
    char reply[API_HTTP_REPLY_MAX];
    const char *body;
    /* The API answers once the VM runs (up to the usual boot budget). */
    int st = -1;
    for (int i = 0; i < WISP_TIMEOUT_MS / 100 && st != 200; i++) {
        st = api_http(sock, "GET", "/", NULL, reply, &body);
        if (st != 200)
            usleep(100 * 1000);
    }
    cr_assert_eq(st, 200, "the API never answered");

    /* Default level warn: an API request's debug line does not reach the file. */
    cr_assert_eq(api_http(sock, "GET", "/version", NULL, reply, &body), 200);
    cr_assert_eq(api_http(sock, "PATCH", "/logger", "{\"level\": \"Debug\"}", reply, &body), 204,
                 "%s", reply);
    cr_assert_eq(api_http(sock, "GET", "/machine-config", NULL, reply, &body), 200);
    cr_assert(file_has(lpath, "api: GET /machine-config -> 200"), "debug now reaches the log");
    cr_assert_not(file_has(lpath, "api: GET /version"), "not before the change");
    cr_assert_eq(api_http(sock, "PATCH", "/logger", "{\"level\": \"Warning\"}", reply, &body), 204);
    cr_assert_eq(api_http(sock, "GET", "/", NULL, reply, &body), 200);
    cr_assert_not(file_has(lpath, "api: GET / -> 200"), "back at warn: no debug line");
    cr_assert_eq(api_http(sock, "PATCH", "/logger", "{\"level\": \"Loud\"}", reply, &body), 400);

    /* FlushMetrics writes a line now (the period is 60 s). */
    cr_assert_eq(
        api_http(sock, "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}", reply, &body), 204,
        "%s", reply);
    struct totals t;
    read_totals(mpath, &t);
    cr_assert_eq(t.lines, 1);
    cr_assert_gt(t.exit_io, 0, "the guest ticks on COM1");
    /* GET / (polls and one more), /version, /machine-config, 3 PATCH, and this PUT. */
    cr_assert_geq(t.api_requests, 7);
    cr_assert_geq(t.api_4xx, 1, "the refused PATCH");
    cr_assert_eq(t.signals, 0);

    kill(p.pid, SIGTERM);
    struct proc_result r;
    sandbox_proc_finish(&p, NULL, WISP_TIMEOUT_MS, &r);
    cr_assert_eq(r.status, 128 + SIGTERM, "status %d\n%s", r.status, r.err);
    read_totals(mpath, &t);
    cr_assert_eq(t.lines, 2, "the exit flush adds the last line");
    cr_assert_eq(t.signals, 1, "SIGTERM was counted");
    /* Only what came after the flush: the FlushMetrics request itself, counted
     * once its answer was made (after the line was written). */
    cr_assert_eq(t.last_api_requests, 1);
    proc_result_free(&r);
    char spath[128];
    snprintf(spath, sizeof(spath), "%s/serial.log", dir);
    unlink(spath);
    unlink(mpath);
    unlink(lpath);
    rmdir(dir);
}
