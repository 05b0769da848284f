/*
 * The metrics counters, their JSON line and the non-blocking sink (policy
 * in metrics.h, every field in docs/METRICS.md).  Counters only ever grow;
 * a flush reports each counter minus its value at the last line written
 * (the baseline), and moves the baseline only once the whole line is out,
 * so a dropped line loses nothing.
 */
#include "vmm/metrics.h"
#include "vmm/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

_Atomic uint64_t metrics_core[METRICS_N];

/* "group.field" of each core counter; one group's counters are adjacent. */
static const char *const core_names[METRICS_N] = {
    [METRICS_VCPU_EXIT_IO] = "vcpu.exit_io",
    [METRICS_VCPU_EXIT_MMIO] = "vcpu.exit_mmio",
    [METRICS_VCPU_EXIT_HLT] = "vcpu.exit_hlt",
    [METRICS_VCPU_EXIT_SHUTDOWN] = "vcpu.exit_shutdown",
    [METRICS_VCPU_EXIT_SYSTEM_EVENT] = "vcpu.exit_system_event",
    [METRICS_VCPU_EXIT_INTR] = "vcpu.exit_intr",
    [METRICS_VCPU_FAILURES] = "vcpu.failures",
    [METRICS_API_REQUESTS] = "api.requests",
    [METRICS_API_STATUS_2XX] = "api.status_2xx",
    [METRICS_API_STATUS_4XX] = "api.status_4xx",
    [METRICS_API_STATUS_5XX] = "api.status_5xx",
    [METRICS_API_PARSE_ERRORS] = "api.parse_errors",
    [METRICS_SNAPSHOT_CREATED] = "snapshot.created",
    [METRICS_SNAPSHOT_FAILED] = "snapshot.failed",
    [METRICS_MIGRATION_SENT] = "migration.sent",
    [METRICS_MIGRATION_FAILED] = "migration.failed",
    [METRICS_MIGRATION_RECEIVED] = "migration.received",
    [METRICS_SIGNALS_RECEIVED] = "signals.received",
    [METRICS_FLUSHES] = "metrics.flushes",
    [METRICS_WRITE_FAILS] = "metrics.write_fails",
    [METRICS_LOG_WRITE_FAILS] = "logger.write_fails",
};

static const struct {
    const char *name;
    size_t off;
} dev_fields[] = {
    {"activate_fails", offsetof(struct metrics_dev, activate_fails)},
    {"queue_events", offsetof(struct metrics_dev, queue_events)},
    {"requests", offsetof(struct metrics_dev, requests)},
    {"bytes_read", offsetof(struct metrics_dev, bytes_read)},
    {"bytes_written", offsetof(struct metrics_dev, bytes_written)},
    {"errors", offsetof(struct metrics_dev, errors)},
    {"drops", offsetof(struct metrics_dev, drops)},
    {"dataplane_calls", offsetof(struct metrics_dev, dataplane_calls)},
    {"dataplane_failures", offsetof(struct metrics_dev, dataplane_failures)},
    {"dataplane_reconnects", offsetof(struct metrics_dev, dataplane_reconnects)},
};
#define DEV_NFIELDS ARRAY_SIZE(dev_fields)

#define NAME_MAX_LEN 24

struct dev_slot {
    struct metrics_dev blk;
    char type[NAME_MAX_LEN];
    char id[NAME_MAX_LEN];
    uint64_t last[DEV_NFIELDS];
};

/* The flushers' state: sink, baselines, device table.  Counters are outside. */
static struct {
    pthread_mutex_t lock;
    int fd;
    unsigned ndevs;
    struct dev_slot devs[METRICS_DEV_MAX];
    uint64_t last[METRICS_N];
    uint64_t rl_last; /* log_rl_dropped_total() at the last line */
    char line[16384];
} m = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

static uint64_t load(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static _Atomic uint64_t *dev_ctr(struct dev_slot *s, size_t i)
{
    return (_Atomic uint64_t *)((char *)&s->blk + dev_fields[i].off);
}

/* Keep only characters that need no JSON escaping (ids are checked by config_device.c too). */
static void json_safe(char *s)
{
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", *s))
            *s = '_';
}

struct metrics_dev *metrics_dev_register(const char *type, const char *id)
{
    pthread_mutex_lock(&m.lock);
    struct dev_slot *s = m.ndevs < METRICS_DEV_MAX ? &m.devs[m.ndevs++] : NULL;
    if (s) {
        memset(s, 0, sizeof(*s));
        snprintf(s->type, sizeof(s->type), "%s", type ? type : "?");
        snprintf(s->id, sizeof(s->id), "%s", id ? id : s->type);
        json_safe(s->type);
        json_safe(s->id);
    }
    pthread_mutex_unlock(&m.lock);
    return s ? &s->blk : NULL;
}

int metrics_open(const char *path, struct errbuf *err)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_NONBLOCK | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        return err_set(err, WISP_EXIT_USAGE, e, "metrics: cannot open %s: %s", path,
                       e == ENXIO ? "the FIFO has no reader (start the reader first)"
                                  : strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) < 0 ||
        !(S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))) {
        close(fd);
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "metrics: %s must be a regular file, a FIFO or a character device", path);
    }
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_lock(&m.lock);
    int old = m.fd;
    m.fd = fd;
    pthread_mutex_unlock(&m.lock);
    if (old >= 0)
        close(old);
    return 0;
}

bool metrics_enabled(void)
{
    pthread_mutex_lock(&m.lock);
    bool on = m.fd >= 0;
    pthread_mutex_unlock(&m.lock);
    return on;
}

/* Append to m.line at *pos; false once it no longer fits. */
__printf(3, 4) static bool put(size_t len, size_t *pos, const char *fmt, ...)
{
    if (*pos >= len)
        return false;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m.line + *pos, len - *pos, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len - *pos) {
        *pos = len;
        return false;
    }
    *pos += (size_t)n;
    return true;
}

/*
 * Format the line into m.line (lock held) from the values in cur/dcur/rl;
 * `len` bounds it.  Returns its length or -ENOSPC.
 */
static int format_locked(size_t len, const uint64_t *cur, uint64_t (*dcur)[DEV_NFIELDS],
                         uint64_t rl)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    size_t pos = 0;
    bool ok =
        put(len, &pos, "{\"utc_timestamp_ms\":%llu",
            (unsigned long long)ts.tv_sec * 1000ULL + (unsigned long long)ts.tv_nsec / 1000000ULL);
    const char *group = "";
    size_t glen = 0;
    for (unsigned i = 0; ok && i < METRICS_N; i++) {
        const char *dot = strchr(core_names[i], '.');
        size_t gl = (size_t)(dot - core_names[i]);
        bool same = gl == glen && !strncmp(group, core_names[i], gl);
        if (!same)
            ok = put(len, &pos, "%s,\"%.*s\":{", glen ? "}" : "", (int)gl, core_names[i]);
        ok =
            ok && put(len, &pos, "%s\"%s\":%" PRIu64, same ? "," : "", dot + 1, cur[i] - m.last[i]);
        group = core_names[i];
        glen = gl;
        if (ok && i == METRICS_LOG_WRITE_FAILS) /* logger's second field, outside the enum */
            ok = put(len, &pos, ",\"rate_limited\":%" PRIu64, rl - m.rl_last);
    }
    ok = ok && put(len, &pos, "},\"devices\":{");
    for (unsigned d = 0; ok && d < m.ndevs; d++) {
        ok =
            put(len, &pos, "%s\"%s\":{\"type\":\"%s\"", d ? "," : "", m.devs[d].id, m.devs[d].type);
        for (size_t f = 0; ok && f < DEV_NFIELDS; f++)
            ok = put(len, &pos, ",\"%s\":%" PRIu64, dev_fields[f].name,
                     dcur[d][f] - m.devs[d].last[f]);
        ok = ok && put(len, &pos, "}");
    }
    ok = ok && put(len, &pos, "}}\n");
    return ok ? (int)pos : -ENOSPC;
}

/* Read every counter once (lock held), so the line and the baseline agree. */
static void snapshot_locked(uint64_t *cur, uint64_t (*dcur)[DEV_NFIELDS], uint64_t *rl)
{
    for (unsigned i = 0; i < METRICS_N; i++)
        cur[i] = load(&metrics_core[i]);
    for (unsigned d = 0; d < m.ndevs; d++)
        for (size_t f = 0; f < DEV_NFIELDS; f++)
            dcur[d][f] = load(dev_ctr(&m.devs[d], f));
    *rl = log_rl_dropped_total();
}

int metrics_format(char *buf, size_t len)
{
    static uint64_t dcur[METRICS_DEV_MAX][DEV_NFIELDS];
    uint64_t cur[METRICS_N], rl;
    pthread_mutex_lock(&m.lock);
    snapshot_locked(cur, dcur, &rl);
    int n = format_locked(MIN(len, sizeof(m.line)), cur, dcur, rl);
    if (n >= 0)
        memcpy(buf, m.line, (size_t)n + 1);
    pthread_mutex_unlock(&m.lock);
    return n;
}

int metrics_flush(void)
{
    static uint64_t dcur[METRICS_DEV_MAX][DEV_NFIELDS]; /* under m.lock */
    uint64_t cur[METRICS_N], rl;
    int ret = 0;
    pthread_mutex_lock(&m.lock);
    if (m.fd < 0)
        goto out;
    metrics_inc(METRICS_FLUSHES);
    snapshot_locked(cur, dcur, &rl);
    int n = format_locked(sizeof(m.line), cur, dcur, rl);
    if (n < 0) {
        ret = n;
        goto fail;
    }
    /* One write: O_NONBLOCK, so a full FIFO or a stuck reader is EAGAIN now,
     * never a wait; a short write is a failure too (the reader skips the
     * broken line; its deltas come again in the next one). */
    ssize_t w = write(m.fd, m.line, (size_t)n);
    if (w != n) {
        ret = w < 0 ? -errno : -EAGAIN;
        goto fail;
    }
    memcpy(m.last, cur, sizeof(m.last));
    for (unsigned d = 0; d < m.ndevs; d++)
        memcpy(m.devs[d].last, dcur[d], sizeof(m.devs[d].last));
    m.rl_last = rl;
    goto out;
fail:
    metrics_inc(METRICS_WRITE_FAILS);
    log_ratelimited(LOG_WARN, "metrics: a line was dropped: %s", strerror(-ret));
out:
    pthread_mutex_unlock(&m.lock);
    return ret;
}

int metrics_timer_create(unsigned period_ms)
{
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct itimerspec its = {0};
    its.it_value.tv_sec = period_ms / 1000;
    its.it_value.tv_nsec = (long)(period_ms % 1000) * 1000000L;
    its.it_interval = its.it_value;
    if (timerfd_settime(fd, 0, &its, NULL) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

void metrics_on_timer(void *opaque, uint32_t events)
{
    int fd = (int)(intptr_t)opaque;
    uint64_t n;
    (void)events;
    ssize_t r __unused = read(fd, &n, sizeof(n));
    (void)metrics_flush();
}

void metrics_reset(void)
{
    pthread_mutex_lock(&m.lock);
    if (m.fd >= 0)
        close(m.fd);
    m.fd = -1;
    m.ndevs = 0;
    for (unsigned i = 0; i < METRICS_N; i++)
        atomic_store(&metrics_core[i], 0);
    memset(m.last, 0, sizeof(m.last));
    m.rl_last = log_rl_dropped_total();
    pthread_mutex_unlock(&m.lock);
}
