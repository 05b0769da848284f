/*
 * vmm/metrics.c and the log file of vmm/log.c: counters reported as deltas
 * since the last line written, the JSON line parsed back with json-c, and
 * the sinks that must never block: a FIFO without a reader is refused at
 * open, a full FIFO drops the line (counted, deltas kept for the next
 * line), a reader that went away is an error and not a SIGPIPE.
 */
#include "vmm/api/api.h"
#include "vmm/config.h"
#include "vmm/log.h"
#include "vmm/metrics.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[64];
static char path[128];

static void setup(void)
{
    metrics_reset();
    snprintf(dir, sizeof(dir), "/tmp/wisp-metrics-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/sink", dir);
}

static void teardown(void)
{
    metrics_reset();
    log_reset_path();
    unlink(path);
    rmdir(dir);
}

TestSuite(metrics, .init = setup, .fini = teardown);

/* The last line of the file at `path`, parsed (the caller puts it). */
static json_object *last_line(void)
{
    static char buf[65536];
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert_eq(buf[n - 1], '\n', "a line ends in a newline");
    buf[n - 1] = '\0';
    char *line = strrchr(buf, '\n');
    line = line ? line + 1 : buf;
    json_object *o = json_tokener_parse(line);
    cr_assert_not_null(o, "not JSON: %s", line);
    return o;
}

/* o[group][field] as an integer; the test fails if absent or not an integer. */
static int64_t get(json_object *o, const char *group, const char *field)
{
    json_object *g, *v;
    cr_assert(json_object_object_get_ex(o, group, &g), "no group %s", group);
    cr_assert(json_object_object_get_ex(g, field, &v), "no %s.%s", group, field);
    cr_assert(json_object_is_type(v, json_type_int), "%s.%s is not an integer", group, field);
    return json_object_get_int64(v);
}

static void open_sink(void)
{
    struct errbuf err = {0};
    cr_assert_eq(metrics_open(path, &err), 0, "%s", err.msg);
}

Test(metrics, no_sink_flush_is_a_no_op)
{
    cr_assert_not(metrics_enabled());
    cr_assert_eq(metrics_flush(), 0);
    cr_assert_eq(metrics_core[METRICS_FLUSHES], 0);
}

Test(metrics, deltas_since_the_last_line)
{
    open_sink();
    for (int i = 0; i < 3; i++)
        metrics_inc(METRICS_VCPU_EXIT_IO);
    metrics_inc(METRICS_API_STATUS_4XX);
    cr_assert_eq(metrics_flush(), 0);
    json_object *o = last_line();
    cr_assert_eq(get(o, "vcpu", "exit_io"), 3);
    cr_assert_eq(get(o, "api", "status_4xx"), 1);
    cr_assert_eq(get(o, "metrics", "flushes"), 1);
    json_object_put(o);

    /* Nothing happened since: every delta is 0 (the baseline moved). */
    cr_assert_eq(metrics_flush(), 0);
    o = last_line();
    cr_assert_eq(get(o, "vcpu", "exit_io"), 0);
    cr_assert_eq(get(o, "api", "status_4xx"), 0);
    cr_assert_eq(get(o, "metrics", "flushes"), 1);
    json_object_put(o);

    metrics_inc(METRICS_VCPU_EXIT_IO);
    metrics_inc(METRICS_VCPU_EXIT_IO);
    cr_assert_eq(metrics_flush(), 0);
    o = last_line();
    cr_assert_eq(get(o, "vcpu", "exit_io"), 2);
    json_object_put(o);
    /* The counters themselves are never reset: other threads keep adding. */
    cr_assert_eq(metrics_core[METRICS_VCPU_EXIT_IO], 5);
}

Test(metrics, json_shape_every_field)
{
    static const char *const groups[][8] = {
        {"vcpu", "exit_io", "exit_mmio", "exit_hlt", "exit_shutdown", "exit_system_event",
         "exit_intr", "failures"},
        {"api", "requests", "status_2xx", "status_4xx", "status_5xx", "parse_errors"},
        {"snapshot", "created", "failed"},
        {"migration", "sent", "failed", "received"},
        {"signals", "received"},
        {"metrics", "flushes", "write_fails"},
        {"logger", "write_fails", "rate_limited"},
    };
    static const char *const dev_fields[] = {"activate_fails",
                                             "queue_events",
                                             "requests",
                                             "bytes_read",
                                             "bytes_written",
                                             "errors",
                                             "drops",
                                             "dataplane_calls",
                                             "dataplane_failures",
                                             "dataplane_reconnects"};
    struct metrics_dev *blk = metrics_dev_register("blk", "rootfs");
    struct metrics_dev *rng = metrics_dev_register("rng", "rng0");
    cr_assert_not_null(metrics_dev_register("x\"y", "a\\b\n"));
    cr_assert(blk && rng);
    METRICS_ADD(blk, bytes_read, 4096);
    METRICS_ADD(blk, requests, 1);
    METRICS_ADD(rng, queue_events, 7);
    open_sink();
    cr_assert_eq(metrics_flush(), 0);
    json_object *o = last_line();
    size_t nfields = 1; /* utc_timestamp_ms */
    for (size_t g = 0; g < ARRAY_SIZE(groups); g++) {
        json_object *grp;
        cr_assert(json_object_object_get_ex(o, groups[g][0], &grp));
        size_t n = 0;
        for (size_t f = 1; f < 8 && groups[g][f]; f++, n++)
            (void)get(o, groups[g][0], groups[g][f]);
        cr_assert_eq((size_t)json_object_object_length(grp), n, "group %s has extra fields",
                     groups[g][0]);
        nfields++;
    }
    json_object *devs, *d, *v;
    cr_assert(json_object_object_get_ex(o, "devices", &devs));
    nfields++;
    cr_assert_eq(json_object_object_length(devs), 3);
    cr_assert(json_object_object_get_ex(devs, "a_b_", &d), "a name is never JSON-escaped");
    cr_assert(json_object_object_get_ex(devs, "rootfs", &d));
    cr_assert(json_object_object_get_ex(d, "type", &v));
    cr_assert_str_eq(json_object_get_string(v), "blk");
    cr_assert_eq(json_object_object_length(d), 1 + ARRAY_SIZE(dev_fields));
    for (size_t f = 0; f < ARRAY_SIZE(dev_fields); f++)
        (void)get(devs, "rootfs", dev_fields[f]);
    cr_assert_eq(get(devs, "rootfs", "bytes_read"), 4096);
    cr_assert_eq(get(devs, "rootfs", "requests"), 1);
    cr_assert_eq(get(devs, "rng0", "queue_events"), 7);
    cr_assert_eq(json_object_object_length(o), nfields, "unexpected top-level fields");

    cr_assert(json_object_object_get_ex(o, "utc_timestamp_ms", &v));
    int64_t ts = json_object_get_int64(v), now = (int64_t)time(NULL) * 1000;
    cr_assert(ts > now - 5000 && ts < now + 5000, "timestamp %lld", (long long)ts);
    json_object_put(o);

    /* Device deltas reset too. */
    cr_assert_eq(metrics_flush(), 0);
    o = last_line();
    cr_assert(json_object_object_get_ex(o, "devices", &devs));
    cr_assert_eq(get(devs, "rootfs", "bytes_read"), 0);
    json_object_put(o);
}

Test(metrics, device_table_is_bounded)
{
    cr_assert_leq(CONFIG_MAX_DEVICES, METRICS_DEV_MAX);
    for (unsigned i = 0; i < METRICS_DEV_MAX; i++)
        cr_assert_not_null(metrics_dev_register("blk", "x"));
    cr_assert_null(metrics_dev_register("blk", "one-too-many"));
    METRICS_ADD((struct metrics_dev *)NULL, errors, 1); /* a device without a block */
    char line[16384];
    cr_assert_gt(metrics_format(line, sizeof(line)), 0, "64 devices fit in one line");
    cr_assert_eq(metrics_format(line, 16), -ENOSPC);
}

Test(metrics, fifo_without_reader_is_refused)
{
    cr_assert_eq(mkfifo(path, 0600), 0);
    struct errbuf err = {0};
    cr_assert_lt(metrics_open(path, &err), 0);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    cr_assert(strstr(err.msg, "has no reader"), "%s", err.msg);
    cr_assert_not(metrics_enabled());
}

Test(metrics, symlink_and_directory_refused)
{
    struct errbuf err = {0};
    cr_assert_lt(metrics_open(dir, &err), 0);
    cr_assert_eq(symlink("/dev/null", path), 0);
    cr_assert_lt(metrics_open(path, &err), 0);
    cr_assert(strstr(err.msg, "cannot open"), "%s", err.msg);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(metrics, full_fifo_drops_without_blocking, .timeout = 20)
{
    cr_assert_eq(mkfifo(path, 0600), 0);
    int rd = open(path, O_RDONLY | O_NONBLOCK);
    cr_assert_geq(rd, 0);
    open_sink();
    /* Nobody reads: the pipe fills, then lines are dropped at once. */
    double t0 = now_s();
    int ret = 0, i;
    for (i = 0; i < 100000 && ret == 0; i++) {
        metrics_inc(METRICS_VCPU_EXIT_MMIO);
        ret = metrics_flush();
    }
    cr_assert_eq(ret, -EAGAIN, "flush %d returned %d", i, ret);
    for (int k = 0; k < 10; k++) {
        metrics_inc(METRICS_VCPU_EXIT_MMIO);
        cr_assert_lt(metrics_flush(), 0);
    }
    cr_assert_lt(now_s() - t0, 5.0, "flushing into a full FIFO must not wait");
    cr_assert_eq(metrics_core[METRICS_WRITE_FAILS], 11);

    /* Drain, then the next line carries what the dropped ones did not. */
    static char buf[1 << 20];
    ssize_t n;
    while ((n = read(rd, buf, sizeof(buf))) > 0)
        ;
    cr_assert_eq(metrics_flush(), 0);
    n = read(rd, buf, sizeof(buf) - 1);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    json_object *o = json_tokener_parse(buf);
    cr_assert_not_null(o, "%s", buf);
    cr_assert_eq(get(o, "metrics", "write_fails"), 11);
    cr_assert_eq(get(o, "vcpu", "exit_mmio"), 11, "the dropped lines' deltas come again");
    json_object_put(o);
    close(rd);
}

Test(metrics, reader_gone_is_an_error_not_sigpipe, .timeout = 20)
{
    cr_assert_eq(mkfifo(path, 0600), 0);
    int rd = open(path, O_RDONLY | O_NONBLOCK);
    cr_assert_geq(rd, 0);
    open_sink();
    close(rd);
    cr_assert_eq(metrics_flush(), -EPIPE);
    cr_assert_eq(metrics_core[METRICS_WRITE_FAILS], 1);
}

Test(metrics, period_timer_flushes)
{
    open_sink();
    int tfd = metrics_timer_create(20);
    cr_assert_geq(tfd, 0);
    struct pollfd p = {.fd = tfd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 2000), 1, "the timer expires within 2 s");
    metrics_on_timer((void *)(intptr_t)tfd, POLLIN);
    json_object *o = last_line();
    cr_assert_eq(get(o, "metrics", "flushes"), 1);
    json_object_put(o);
    /* Drained: not readable again until the next period. */
    uint64_t v;
    cr_assert_eq(read(tfd, &v, sizeof(v)), -1);
    cr_assert_eq(errno, EAGAIN);
    close(tfd);
}

Test(metrics, config_keys)
{
    struct vm_config c;
    struct errbuf err = {0};
    config_init(&c);
    cr_assert_eq(c.metrics_period_ms, METRICS_PERIOD_DEFAULT_MS);
    cr_assert_eq(config_set(&c, "metrics-path", "/run/m.fifo", &err), 0);
    cr_assert_str_eq(c.metrics_path, "/run/m.fifo");
    cr_assert_eq(config_set(&c, "log-path", "/run/wisp.log", &err), 0);
    cr_assert_str_eq(c.log_path, "/run/wisp.log");
    cr_assert_eq(config_set(&c, "metrics-period-ms", "50", &err), 0);
    cr_assert_eq(c.metrics_period_ms, 50);
    static const char *const bad[] = {"9", "3600001", "-1", "1e3", "", "60s"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        cr_assert_lt(config_set(&c, "metrics-period-ms", bad[i], &err), 0, "%s", bad[i]);
        cr_assert(strstr(err.msg, "metrics-period-ms must be"), "%s", err.msg);
    }
    cr_assert(config_key_known("metrics-path") && config_key_known("log-path") &&
              config_key_known("metrics-period-ms"));
    config_free(&c);
}

Test(metrics, log_file_and_full_fifo, .timeout = 20)
{
    cr_assert_eq(log_set_path(path), 0);
    log_threshold = LOG_INFO;
    log_info("hello %d", 42);
    log_debug("not at this level");
    static char buf[4096];
    int fd = open(path, O_RDONLY);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert_str_eq(buf, "wisp: info: hello 42\n");
    log_reset_path();
    unlink(path);

    /* A log FIFO nobody drains: lines are dropped and counted, never waited for. */
    cr_assert_eq(mkfifo(path, 0600), 0);
    cr_assert_eq(log_set_path(path), -ENXIO, "no reader yet");
    int rd = open(path, O_RDONLY | O_NONBLOCK);
    cr_assert_eq(log_set_path(path), 0);
    double t0 = now_s();
    for (int i = 0; i < 2000; i++) /* 2000 * ~1 KiB > the 64 KiB pipe */
        log_info("%01000d", i);
    cr_assert_lt(now_s() - t0, 5.0);
    cr_assert_gt(metrics_core[METRICS_LOG_WRITE_FAILS], 0);
    close(rd);
}

Test(metrics, api_parse_errors_counted)
{
    char buf[160];
    const char *msg;
    json_object *o = api_parse_object("{\"a\": 1}", 8, buf, sizeof(buf), &msg);
    cr_assert_not_null(o);
    json_object_put(o);
    cr_assert_eq(metrics_core[METRICS_API_PARSE_ERRORS], 0);
    cr_assert_null(api_parse_object("{\"a\": ", 6, buf, sizeof(buf), &msg));
    cr_assert_null(api_parse_object("[1]", 3, buf, sizeof(buf), &msg));
    cr_assert_null(api_parse_object("", 0, buf, sizeof(buf), &msg));
    cr_assert_eq(metrics_core[METRICS_API_PARSE_ERRORS], 3);
}
