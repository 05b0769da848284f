/*
 * VM configuration (see config.h).  config_set() interprets every key; the
 * command line and the JSON loader both funnel into it, so they accept the
 * same keys and values and produce the same error messages.
 */
#include "vmm/config.h"
#include "devices/virtio/balloon.h"
#include "devices/virtio/net.h"
#include "vmm/log.h"
#include "vmm/metrics.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_VCPUS_CONFIG 1024          /* sanity cap; the VM applies the real limit */
#define MAX_JSON_FILE    (1024 * 1024) /* a VM description is a few hundred bytes */
#define MAX_STRING_VALUE 65536

void config_init(struct vm_config *c)
{
    memset(c, 0, sizeof(*c));
    c->memory = CONFIG_DEFAULT_MEMORY;
    c->vcpus = 1;
    c->serial = SERIAL_STDIO;
    c->boot = BOOT_AUTO;
    c->acpi = true;
    c->log_level = LOG_WARN;
    c->metrics_period_ms = METRICS_PERIOD_DEFAULT_MS;
}

void config_free(struct vm_config *c)
{
    free(c->kernel);
    free(c->initrd);
    free(c->cmdline);
    free(c->serial_path);
    free(c->cpu_features);
    free(c->cpu_template);
    free(c->api_sock);
    free(c->log_path);
    free(c->metrics_path);
    free(c->snapshot_dir);
    free(c->restore);
    free(c->restore_mem);
    free(c->incoming);
    for (unsigned i = 0; i < c->ndevices; i++) {
        free(c->devices[i].path);
        free(c->devices[i].tap);
        free(c->devices[i].socket);
        free(c->devices[i].layout);
    }
    config_init(c);
}

int config_parse_size(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)s[0]))
        return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -EINVAL;
    uint64_t mult = 1;
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        mult = KiB;
        end++;
        break;
    case 'm':
    case 'M':
        mult = MiB;
        end++;
        break;
    case 'g':
    case 'G':
        mult = GiB;
        end++;
        break;
    case 't':
    case 'T':
        mult = 1024 * GiB;
        end++;
        break;
    default:
        return -EINVAL;
    }
    /* Allow an optional "iB" / "B" after the unit ("256MiB", "256MB" mean MiB). */
    if (mult > 1 && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0))
        end += strlen(end);
    if (*end != '\0')
        return -EINVAL;
    uint64_t r;
    if (__builtin_mul_overflow((uint64_t)v, mult, &r))
        return -EINVAL;
    *out = r;
    return 0;
}

static int set_string(char **dst, const char *key, const char *value, struct errbuf *err)
{
    if (!value)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "option '%s' needs a value", key);
    if (strlen(value) > MAX_STRING_VALUE)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "value of '%s' is too long", key);
    char *d = strdup(value);
    if (!d)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    free(*dst);
    *dst = d;
    return 0;
}

static int set_bool(bool *dst, const char *key, const char *value, struct errbuf *err)
{
    if (!value || !strcmp(value, "on") || !strcmp(value, "true") || !strcmp(value, "yes")) {
        *dst = true;
        return 0;
    }
    if (!strcmp(value, "off") || !strcmp(value, "false") || !strcmp(value, "no")) {
        *dst = false;
        return 0;
    }
    return err_set(err, WISP_EXIT_USAGE, EINVAL, "'%s' must be on or off, not '%s'", key, value);
}

/*
 * The index of `value` in `names` (three choices), or a usage error worded
 * "KEY must be A, B or C, not 'VALUE'".
 */
static int set_choice(const char *key, const char *value, const char *const names[3],
                      struct errbuf *err)
{
    for (int i = 0; value && i < 3; i++)
        if (!strcmp(value, names[i]))
            return i;
    return err_set(err, WISP_EXIT_USAGE, EINVAL, "%s must be %s, %s or %s, not '%s'", key, names[0],
                   names[1], names[2], value ? value : "");
}

static int set_serial(struct vm_config *c, const char *value, struct errbuf *err)
{
    if (!value)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "option 'serial' needs a value");
    if (!strcmp(value, "stdio")) {
        c->serial = SERIAL_STDIO;
    } else if (!strcmp(value, "none")) {
        c->serial = SERIAL_NONE;
    } else if (!strncmp(value, "file:", 5) && value[5] != '\0') {
        int ret = set_string(&c->serial_path, "serial", value + 5, err);
        if (ret < 0)
            return ret;
        c->serial = SERIAL_FILE;
    } else {
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "serial must be stdio, file:PATH or none, not '%s'", value);
    }
    return 0;
}

static const struct {
    const char *name;
    enum log_level level;
} log_levels[] = {
    {"error", LOG_ERROR}, {"warn", LOG_WARN}, {"info", LOG_INFO}, {"debug", LOG_DEBUG}};

/* ---- --device TYPE[,key=value...] ---------------------------------------- */

static const char *const device_type_names[] = {
    [DEV_BLK] = "blk",         [DEV_NET] = "net",    [DEV_RNG] = "rng",
    [DEV_CONSOLE] = "console", [DEV_VFIO] = "vfio",  [DEV_VFIO_USER] = "vfio-user",
    [DEV_BALLOON] = "balloon", [DEV_VSOCK] = "vsock"};

const char *config_device_type_name(enum device_type t)
{
    return (size_t)t < ARRAY_SIZE(device_type_names) && device_type_names[t] ? device_type_names[t]
                                                                             : "unknown";
}

/* A decimal number 0..max (digits only). */
static int set_u32(uint32_t *dst, const char *key, const char *val, uint32_t max,
                   struct errbuf *err)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(val, &end, 10);
    if (!val[0] || strspn(val, "0123456789") != strlen(val) || errno || *end || v > max)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "%s must be a number from 0 to %u, not '%s'",
                       key, max, val);
    *dst = (uint32_t)v;
    return 0;
}

/* Apply one key=value of a balloon description (Firecracker's names). */
static int balloon_kv(struct device_spec *d, const char *key, const char *val, struct errbuf *err)
{
    if (!strcmp(key, "amount_mib"))
        return set_u32(&d->amount_mib, key, val, (uint32_t)(CONFIG_MAX_MEMORY / MiB), err);
    if (!strcmp(key, "deflate_on_oom"))
        return set_bool(&d->deflate_on_oom, key, val, err);
    if (!strcmp(key, "stats_polling_interval_s"))
        return set_u32(&d->stats_interval_s, key, val, BALLOON_MAX_INTERVAL, err);
    if (!strcmp(key, "free_page_reporting"))
        return set_bool(&d->free_page_reporting, key, val, err);
    return 1; /* not a balloon key */
}

/* Apply one key=value of a device description. */
static int device_kv(struct device_spec *d, const char *key, const char *val, struct errbuf *err)
{
    const char *type = device_type_names[d->type];
    bool is_blk = d->type == DEV_BLK, is_net = d->type == DEV_NET;
    if (!strcmp(key, "id")) {
        if (!val[0] || strlen(val) > CONFIG_ID_MAX ||
            strspn(val, "abcdefghijklmnopqrstuvwxyz"
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789-_") != strlen(val))
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "device id '%s' must be 1-%d letters, digits, '-' or '_'", val,
                           CONFIG_ID_MAX);
        memcpy(d->id, val, strlen(val) + 1);
        return 0;
    }
    if ((is_blk || d->type == DEV_VFIO) && !strcmp(key, "path"))
        return set_string(&d->path, "path", val, err);
    if (is_blk && !strcmp(key, "readonly"))
        return set_bool(&d->readonly, "readonly", val, err);
    if (is_net && !strcmp(key, "tap")) {
        if (!val[0] || strlen(val) >= 16)
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "tap name '%s' must be 1 to 15 characters",
                           val);
        return set_string(&d->tap, "tap", val, err);
    }
    if (is_net && !strcmp(key, "mac")) {
        if (virtio_net_parse_mac(val, d->mac) < 0)
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "mac '%s' must be a unicast address like 52:54:00:12:34:56", val);
        d->has_mac = true;
        return 0;
    }
    if (is_blk && !strcmp(key, "vhost-user")) {
        if (!val[0] || strlen(val) >= 108) /* sizeof(sun_path) */
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "blk vhost-user socket path must be 1 to 107 bytes");
        return set_string(&d->socket, "vhost-user", val, err);
    }
    if (d->type == DEV_BALLOON) {
        int r = balloon_kv(d, key, val, err);
        if (r <= 0)
            return r;
    }
    if ((d->type == DEV_CONSOLE || d->type == DEV_VFIO_USER) && !strcmp(key, "socket")) {
        if (!val[0] || strlen(val) >= 108) /* sizeof(sun_path) */
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "%s socket path must be 1 to 107 bytes",
                           type);
        return set_string(&d->socket, "socket", val, err);
    }
    if (DEV_IS_PCI(d->type) && !strcmp(key, "layout"))
        return set_string(&d->layout, "layout", val, err);
    if (d->type == DEV_VSOCK && !strcmp(key, "uds_path")) {
        /* "<uds_path>_<port>" must fit sun_path too (devices/backends/vsock_uds.h). */
        if (!val[0] || strlen(val) > 96)
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "vsock uds_path must be 1 to 96 bytes");
        return set_string(&d->socket, "uds_path", val, err);
    }
    if (d->type == DEV_VSOCK && !strcmp(key, "backend")) {
        if (strcmp(val, "vhost") && strcmp(val, "uds"))
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "vsock backend must be uds or vhost, not '%s'", val);
        d->vhost = !strcmp(val, "vhost");
        return 0;
    }
    if (d->type == DEV_VSOCK && !strcmp(key, "cid")) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(val, &end, 10);
        if (errno || end == val || *end || val[0] == '-' || v < 3 || v > 0xfffffffeULL)
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "vsock cid must be a number from 3 to 4294967294, not '%s'", val);
        d->cid = v;
        return 0;
    }
    return err_set(err, WISP_EXIT_USAGE, EINVAL, "device %s has no option '%s'", type, key);
}

int config_add_device(struct vm_config *c, const char *spec, struct errbuf *err)
{
    if (!spec || !spec[0])
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "option 'device' needs a value like blk,path=disk.img");
    if (c->ndevices >= CONFIG_MAX_DEVICES)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "at most %d devices are supported",
                       CONFIG_MAX_DEVICES);
    if (strlen(spec) > MAX_STRING_VALUE)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "device description is too long");
    char *copy = strdup(spec);
    if (!copy)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    struct device_spec *d = &c->devices[c->ndevices];
    memset(d, 0, sizeof(*d));
    int ret = 0;
    char *save = NULL;
    char *tok = strtok_r(copy, ",", &save);
    for (size_t t = 1; tok && t < ARRAY_SIZE(device_type_names); t++)
        if (!strcmp(tok, device_type_names[t]))
            d->type = (enum device_type)t;
    if (!d->type) {
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL,
                      "unknown device type '%s' (blk, net, rng, console, balloon, vsock, vfio or "
                      "vfio-user)",
                      tok ? tok : "");
        goto out;
    }
    while ((tok = strtok_r(NULL, ",", &save)) != NULL) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            ret = err_set(err, WISP_EXIT_USAGE, EINVAL,
                          "device option '%s' needs a value (key=value)", tok);
            goto out;
        }
        *eq = '\0';
        ret = device_kv(d, tok, eq + 1, err);
        if (ret < 0)
            goto out;
    }
    if (d->type == DEV_BLK && !d->path && !d->socket)
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL,
                      "blk device needs path=IMAGE or vhost-user=SOCKET");
    else if (d->type == DEV_BLK && d->path && d->socket)
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL,
                      "blk device takes path=IMAGE or vhost-user=SOCKET, not both");
    else if (d->type == DEV_BLK && d->socket && d->readonly)
        ret =
            err_set(err, WISP_EXIT_USAGE, EINVAL,
                    "blk over vhost-user: readonly is the backend's choice (export writable=off)");
    else if (d->type == DEV_NET && !d->tap)
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "net device needs tap=NAME");
    else if (d->type == DEV_VFIO && !d->path)
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL,
                      "vfio device needs path=/sys/bus/pci/devices/DDDD:BB:DD.F or "
                      "path=/dev/vfio/devices/vfioN");
    else if (d->type == DEV_VFIO_USER && !d->socket)
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "vfio-user device needs socket=PATH");
    else if (d->type == DEV_VSOCK && d->vhost && d->socket)
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL,
                      "vsock backend=vhost takes no uds_path (host programs use AF_VSOCK)");
    else if (d->type == DEV_VSOCK && (!d->cid || (!d->socket && !d->vhost)))
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL,
                      "vsock device needs cid=N and uds_path=PATH or backend=vhost");
    for (unsigned i = 0; ret == 0 && d->type == DEV_VSOCK && i < c->ndevices; i++)
        if (c->devices[i].type == DEV_VSOCK)
            ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "only one vsock device is supported");
    for (unsigned i = 0; ret == 0 && d->type == DEV_BALLOON && i < c->ndevices; i++)
        if (c->devices[i].type == DEV_BALLOON)
            ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "only one balloon device is supported");
    if (ret == 0 && !d->id[0]) {
        unsigned same = 0;
        for (unsigned i = 0; i < c->ndevices; i++)
            same += c->devices[i].type == d->type;
        snprintf(d->id, sizeof(d->id), "%s%u", device_type_names[d->type], same);
    }
    for (unsigned i = 0; ret == 0 && i < c->ndevices; i++)
        if (!strcmp(c->devices[i].id, d->id))
            ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "device id '%s' is used twice", d->id);
out:
    if (ret < 0) {
        free(d->path);
        free(d->tap);
        free(d->socket);
        free(d->layout);
        memset(d, 0, sizeof(*d));
    } else {
        c->ndevices++;
    }
    free(copy);
    return ret;
}

/* Every key config_set() accepts (kept in step with it; a unit test checks). */
static const char *const all_keys[] = {
    "kernel",       "initrd",    "cmdline",      "cpu-features",     "cpu-template", "serial",
    "debug-exit",   "hugepages", "stats",        "memory",           "vcpus",        "boot",
    "log-level",    "device",    "seccomp",      "landlock",         "acpi",         "api-sock",
    "snapshot-dir", "restore",   "restore-mem",  "restore-lazy",     "incoming",     "restore-wait",
    "pci",          "log-path",  "metrics-path", "metrics-period-ms"};

bool config_key_known(const char *key)
{
    for (size_t i = 0; i < ARRAY_SIZE(all_keys); i++)
        if (!strcmp(key, all_keys[i]))
            return true;
    return false;
}

/* Keys that are switches: given without a value on the command line. */
static const char *const flag_keys[] = {"debug-exit", "hugepages", "stats", "restore-lazy",
                                        "restore-wait"};

bool config_key_is_flag(const char *key)
{
    for (size_t i = 0; i < ARRAY_SIZE(flag_keys); i++)
        if (!strcmp(key, flag_keys[i]))
            return true;
    return false;
}

unsigned config_virtio_devices(const struct vm_config *c)
{
    unsigned n = 0;
    for (unsigned i = 0; i < c->ndevices; i++)
        n += !DEV_IS_PCI(c->devices[i].type);
    return n;
}

unsigned config_stdio_consoles(const struct vm_config *c)
{
    unsigned n = 0;
    for (unsigned i = 0; i < c->ndevices; i++)
        n += c->devices[i].type == DEV_CONSOLE && !c->devices[i].socket;
    return n;
}

int config_set(struct vm_config *c, const char *key, const char *value, struct errbuf *err)
{
    if (!strcmp(key, "kernel"))
        return set_string(&c->kernel, key, value, err);
    if (!strcmp(key, "device"))
        return config_add_device(c, value, err);
    if (!strcmp(key, "initrd"))
        return set_string(&c->initrd, key, value, err);
    if (!strcmp(key, "cmdline"))
        return set_string(&c->cmdline, key, value, err);
    if (!strcmp(key, "cpu-features"))
        return set_string(&c->cpu_features, key, value, err);
    if (!strcmp(key, "cpu-template"))
        return set_string(&c->cpu_template, key, value, err);
    if (!strcmp(key, "serial"))
        return set_serial(c, value, err);
    if (!strcmp(key, "api-sock")) {
        if (!value || !value[0] || strlen(value) >= 108) /* sizeof(sun_path) */
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "api-sock path must be 1 to 107 bytes");
        return set_string(&c->api_sock, key, value, err);
    }
    if (!strcmp(key, "snapshot-dir"))
        return set_string(&c->snapshot_dir, key, value, err);
    if (!strcmp(key, "log-path"))
        return set_string(&c->log_path, key, value, err);
    if (!strcmp(key, "metrics-path"))
        return set_string(&c->metrics_path, key, value, err);
    if (!strcmp(key, "metrics-period-ms")) {
        char *end;
        errno = 0;
        unsigned long v = value ? strtoul(value, &end, 10) : 0;
        if (!value || !isdigit((unsigned char)value[0]) || *end || errno ||
            v < METRICS_PERIOD_MIN_MS || v > METRICS_PERIOD_MAX_MS)
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "metrics-period-ms must be a number from %u to %u, not '%s'",
                           METRICS_PERIOD_MIN_MS, METRICS_PERIOD_MAX_MS, value ? value : "");
        c->metrics_period_ms = (unsigned)v;
        return 0;
    }
    if (!strcmp(key, "restore"))
        return set_string(&c->restore, key, value, err);
    if (!strcmp(key, "restore-mem"))
        return set_string(&c->restore_mem, key, value, err);
    if (!strcmp(key, "incoming"))
        return set_string(&c->incoming, key, value, err);
    if (!strcmp(key, "restore-wait"))
        return set_bool(&c->restore_wait, key, value, err);
    if (!strcmp(key, "restore-lazy"))
        return set_bool(&c->restore_lazy, key, value, err);
    if (!strcmp(key, "debug-exit"))
        return set_bool(&c->debug_exit, key, value, err);
    if (!strcmp(key, "hugepages"))
        return set_bool(&c->hugepages, key, value, err);
    if (!strcmp(key, "stats"))
        return set_bool(&c->stats, key, value, err);
    if (!strcmp(key, "acpi"))
        return set_bool(&c->acpi, key, value, err);
    if (!strcmp(key, "pci"))
        return set_bool(&c->pci, key, value, err);
    if (!strcmp(key, "seccomp")) {
        static const char *const modes[] = {
            [SECCOMP_KILL] = "kill", [SECCOMP_LOG] = "log", [SECCOMP_OFF] = "off"};
        int i = set_choice(key, value, modes, err);
        if (i >= 0)
            c->seccomp = (enum seccomp_mode)i;
        return i < 0 ? i : 0;
    }
    if (!strcmp(key, "landlock")) {
        static const char *const modes[] = {
            [LANDLOCK_AUTO] = "auto", [LANDLOCK_ON] = "on", [LANDLOCK_OFF] = "off"};
        int i = set_choice(key, value, modes, err);
        if (i >= 0)
            c->landlock = (enum landlock_mode)i;
        return i < 0 ? i : 0;
    }
    if (!strcmp(key, "memory")) {
        uint64_t v;
        if (!value || config_parse_size(value, &v) < 0)
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "memory must be a size like 256M or 1G, not '%s'", value ? value : "");
        c->memory = v;
        return 0;
    }
    if (!strcmp(key, "vcpus")) {
        char *end;
        errno = 0;
        long v = value ? strtol(value, &end, 10) : 0;
        if (!value || !isdigit((unsigned char)value[0]) || *end || errno || v > MAX_VCPUS_CONFIG)
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "vcpus must be a number from 1, not '%s'",
                           value ? value : "");
        c->vcpus = (unsigned)v;
        return 0;
    }
    if (!strcmp(key, "boot")) {
        if (value && !strcmp(value, "auto"))
            c->boot = BOOT_AUTO;
        else if (value && !strcmp(value, "linux64"))
            c->boot = BOOT_LINUX64;
        else if (value && !strcmp(value, "pvh"))
            c->boot = BOOT_PVH;
        else
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "boot must be auto, linux64 or pvh, not '%s'", value ? value : "");
        return 0;
    }
    if (!strcmp(key, "log-level")) {
        for (size_t i = 0; value && i < ARRAY_SIZE(log_levels); i++) {
            if (!strcmp(value, log_levels[i].name)) {
                c->log_level = (int)log_levels[i].level;
                return 0;
            }
        }
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "log-level must be error, warn, info or debug, not '%s'",
                       value ? value : "");
    }
    return err_set(err, WISP_EXIT_USAGE, EINVAL, "unknown option '%s'", key);
}

/* Line number of byte offset `pos` in `text`, for JSON error messages. */
static unsigned line_of(const char *text, size_t pos)
{
    unsigned line = 1;
    for (size_t i = 0; i < pos && text[i]; i++)
        line += text[i] == '\n';
    return line;
}

static int json_value_to_string(json_object *v, const char *key, char *buf, size_t len,
                                const char **out, struct errbuf *err)
{
    switch (json_object_get_type(v)) {
    case json_type_string:
        *out = json_object_get_string(v);
        return 0;
    case json_type_boolean:
        *out = json_object_get_boolean(v) ? "on" : "off";
        return 0;
    case json_type_int: {
        int64_t n = json_object_get_int64(v);
        if (n < 0)
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "config: '%s' must not be negative", key);
        /* A bare number for memory means MiB ("memory": 512). */
        snprintf(buf, len, "%lld%s", (long long)n, strcmp(key, "memory") ? "" : "M");
        *out = buf;
        return 0;
    }
    default:
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "config: '%s' must be a string, number or boolean", key);
    }
}

/*
 * JSON form of --device: a string "blk,path=x", an object {"type": "blk",
 * "path": "x", "readonly": true}, or an array of either.  Objects are turned
 * into the string form, so both go through config_add_device().
 */
static int json_device_one(struct vm_config *c, json_object *v, struct errbuf *err)
{
    if (json_object_is_type(v, json_type_string))
        return config_add_device(c, json_object_get_string(v), err);
    if (!json_object_is_type(v, json_type_object))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "config: each device must be a string or an object");
    json_object *type;
    if (!json_object_object_get_ex(v, "type", &type) ||
        !json_object_is_type(type, json_type_string))
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "config: a device object needs \"type\"");
    char spec[4096];
    size_t off = (size_t)snprintf(spec, sizeof(spec), "%s", json_object_get_string(type));
    json_object_object_foreach(v, k, val)
    {
        if (!strcmp(k, "type"))
            continue;
        char num[32];
        const char *s = NULL;
        int ret = json_value_to_string(val, k, num, sizeof(num), &s, err);
        if (ret < 0)
            return ret;
        if (strchr(s, ',') || strchr(k, ',') || strchr(k, '='))
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "config: device option '%s' must not contain ',' or '='", k);
        int n = snprintf(spec + off, sizeof(spec) - off, ",%s=%s", k, s);
        if (n < 0 || (size_t)n >= sizeof(spec) - off)
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "config: device description too long");
        off += (size_t)n;
    }
    return config_add_device(c, spec, err);
}

static int json_devices(struct vm_config *c, json_object *v, struct errbuf *err)
{
    if (!json_object_is_type(v, json_type_array))
        return json_device_one(c, v, err);
    size_t n = json_object_array_length(v);
    for (size_t i = 0; i < n; i++) {
        int ret = json_device_one(c, json_object_array_get_idx(v, i), err);
        if (ret < 0)
            return ret;
    }
    return 0;
}

int config_parse_json(struct vm_config *c, const char *text, size_t len, struct errbuf *err)
{
    if (len > MAX_JSON_FILE)
        return err_set(err, WISP_EXIT_USAGE, EFBIG, "config is larger than %d bytes",
                       MAX_JSON_FILE);
    json_tokener *tok = json_tokener_new_ex(16); /* nesting depth: we need 1 */
    if (!tok)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    json_object *root = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    int ret = 0;
    if (!root || jerr != json_tokener_success) {
        if (jerr == json_tokener_continue)
            ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "config: JSON ends unexpectedly");
        else
            ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "config: invalid JSON at line %u: %s",
                          line_of(text, json_tokener_get_parse_end(tok)),
                          json_tokener_error_desc(jerr));
        goto out;
    }
    /* Nothing but white space may follow the object. */
    for (size_t i = json_tokener_get_parse_end(tok); i < len; i++) {
        if (!isspace((unsigned char)text[i])) {
            ret = err_set(err, WISP_EXIT_USAGE, EINVAL,
                          "config: unexpected text after the JSON object at line %u",
                          line_of(text, i));
            goto out;
        }
    }
    if (!json_object_is_type(root, json_type_object)) {
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "config: top level must be a JSON object");
        goto out;
    }
    json_object_object_foreach(root, key, val)
    {
        char num[32];
        const char *s = NULL;
        if (!strcmp(key, "config")) {
            ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "config: files cannot include others");
            goto out;
        }
        if (config_key_is_flag(key) && !json_object_is_type(val, json_type_boolean)) {
            ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "config: '%s' must be true or false", key);
            goto out;
        }
        if (!strcmp(key, "device")) {
            ret = json_devices(c, val, err);
            if (ret < 0)
                goto out;
            continue;
        }
        ret = json_value_to_string(val, key, num, sizeof(num), &s, err);
        if (ret < 0)
            goto out;
        ret = config_set(c, key, s, err);
        if (ret < 0) {
            /* Prefix the message so the user knows it came from the file. */
            static const char prefix[] = "config: ";
            size_t keep = sizeof(err->msg) - sizeof(prefix);
            memmove(err->msg + sizeof(prefix) - 1, err->msg, keep);
            memcpy(err->msg, prefix, sizeof(prefix) - 1);
            err->msg[sizeof(err->msg) - 1] = '\0';
            goto out;
        }
    }
out:
    if (root)
        json_object_put(root);
    json_tokener_free(tok);
    return ret;
}

int config_read_file(const char *path, char **text, size_t *len, struct errbuf *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) /* a FIFO must not block us */;
    if (fd < 0)
        return err_set(err, WISP_EXIT_USAGE, errno, "cannot open config file %s: %s", path,
                       strerror(errno));
    struct stat st;
    char *buf = NULL;
    int ret;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "config file %s is not a regular file", path);
        goto out;
    }
    if (st.st_size > MAX_JSON_FILE) {
        ret = err_set(err, WISP_EXIT_USAGE, EFBIG, "config file %s is larger than %d bytes", path,
                      MAX_JSON_FILE);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        ret = err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ret = err_set(err, WISP_EXIT_USAGE, n < 0 ? errno : EIO, "cannot read config file %s",
                          path);
            goto out;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *text = buf;
    *len = got;
    buf = NULL;
    ret = 0;
out:
    free(buf);
    close(fd);
    return ret;
}

int config_load_json(struct vm_config *c, const char *path, struct errbuf *err)
{
    char *text = NULL;
    size_t len = 0;
    int ret = config_read_file(path, &text, &len, err);
    if (ret == 0)
        ret = config_parse_json(c, text, len, err);
    free(text);
    return ret;
}

int config_validate(const struct vm_config *c, struct errbuf *err)
{
    if (!c->restore != !c->restore_mem)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "--restore STATE and --restore-mem MEM go together");
    if (c->restore_lazy && !c->restore)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "--restore-lazy needs --restore");
    if (c->restore && c->hugepages)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "a restored VM maps its memory file with 4 KiB pages: drop --hugepages");
    if (c->restore_wait && (!c->api_sock || !c->snapshot_dir))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "--restore-wait needs --api-sock (the load request comes there) and "
                       "--snapshot-dir (the snapshot's files are there)");
    if (c->restore_wait && (c->restore || c->incoming || c->hugepages))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "--restore-wait excludes --restore, --incoming and --hugepages");
    if (c->restore && c->incoming)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "--restore and --incoming exclude each other");
    if (!c->restore && !c->incoming && !c->restore_wait && (!c->kernel || !c->kernel[0]))
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "no kernel given (use --kernel PATH)");
    if (c->vcpus == 0)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "vcpus must be at least 1");
    if (c->memory % PAGE_SIZE)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "memory size %llu bytes is not a multiple of the 4 KiB page size",
                       (unsigned long long)c->memory);
    if (c->hugepages && c->memory % (2 * MiB))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "with hugepages, memory must be a multiple of 2 MiB");
    for (unsigned i = 0; i < c->ndevices; i++)
        if (DEV_IS_PCI(c->devices[i].type) && !c->pci)
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "device %s is a PCI passthrough function: it needs --pci on",
                           c->devices[i].id);
    unsigned stdio_consoles = config_stdio_consoles(c);
    if (stdio_consoles > 1)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "only one console can use stdio");
    if (stdio_consoles && c->serial == SERIAL_STDIO)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "a console on stdio needs the serial port elsewhere "
                       "(--serial none or file:PATH)");
    if (c->memory > CONFIG_MAX_MEMORY)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "memory size is larger than %llu GiB",
                       (unsigned long long)(CONFIG_MAX_MEMORY / GiB));
    return 0;
}
