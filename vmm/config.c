/*
 * VM configuration (see config.h).  config_set() interprets every key; the
 * command line and the JSON loader both funnel into it, so they accept the
 * same keys and values and produce the same error messages.  The --device
 * parser is in config_device.c, the JSON loader in config_json.c.
 */
#include "vmm/config.h"
#include "vmm/config_internal.h"
#include "vmm/log.h"
#include "vmm/metrics.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VCPUS_CONFIG 1024 /* sanity cap; the VM applies the real limit */

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
        free(c->devices[i].tag);
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

int config_set_string(char **dst, const char *key, const char *value, struct errbuf *err)
{
    if (!value)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "option '%s' needs a value", key);
    if (strlen(value) > CONFIG_MAX_STRING_VALUE)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "value of '%s' is too long", key);
    char *d = strdup(value);
    if (!d)
        return err_set(err, WISP_EXIT_FAILURE, ENOMEM, "out of memory");
    free(*dst);
    *dst = d;
    return 0;
}

int config_set_bool(bool *dst, const char *key, const char *value, struct errbuf *err)
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
        int ret = config_set_string(&c->serial_path, "serial", value + 5, err);
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

bool config_shares_ram(const struct vm_config *c)
{
    for (unsigned i = 0; i < c->ndevices; i++) {
        const struct device_spec *d = &c->devices[i];
        if (d->type == DEV_VDPA || d->type == DEV_VFIO_USER || d->type == DEV_FS ||
            ((d->type == DEV_BLK || d->type == DEV_NET) && d->socket))
            return true;
    }
    return false;
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
        return config_set_string(&c->kernel, key, value, err);
    if (!strcmp(key, "device"))
        return config_add_device(c, value, err);
    if (!strcmp(key, "initrd"))
        return config_set_string(&c->initrd, key, value, err);
    if (!strcmp(key, "cmdline"))
        return config_set_string(&c->cmdline, key, value, err);
    if (!strcmp(key, "cpu-features"))
        return config_set_string(&c->cpu_features, key, value, err);
    if (!strcmp(key, "cpu-template"))
        return config_set_string(&c->cpu_template, key, value, err);
    if (!strcmp(key, "serial"))
        return set_serial(c, value, err);
    if (!strcmp(key, "api-sock")) {
        if (!value || !value[0] || strlen(value) >= 108) /* sizeof(sun_path) */
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "api-sock path must be 1 to 107 bytes");
        return config_set_string(&c->api_sock, key, value, err);
    }
    if (!strcmp(key, "snapshot-dir"))
        return config_set_string(&c->snapshot_dir, key, value, err);
    if (!strcmp(key, "log-path"))
        return config_set_string(&c->log_path, key, value, err);
    if (!strcmp(key, "metrics-path"))
        return config_set_string(&c->metrics_path, key, value, err);
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
        return config_set_string(&c->restore, key, value, err);
    if (!strcmp(key, "restore-mem"))
        return config_set_string(&c->restore_mem, key, value, err);
    if (!strcmp(key, "incoming"))
        return config_set_string(&c->incoming, key, value, err);
    if (!strcmp(key, "restore-wait"))
        return config_set_bool(&c->restore_wait, key, value, err);
    if (!strcmp(key, "restore-lazy"))
        return config_set_bool(&c->restore_lazy, key, value, err);
    if (!strcmp(key, "debug-exit"))
        return config_set_bool(&c->debug_exit, key, value, err);
    if (!strcmp(key, "hugepages"))
        return config_set_bool(&c->hugepages, key, value, err);
    if (!strcmp(key, "stats"))
        return config_set_bool(&c->stats, key, value, err);
    if (!strcmp(key, "acpi"))
        return config_set_bool(&c->acpi, key, value, err);
    if (!strcmp(key, "pci"))
        return config_set_bool(&c->pci, key, value, err);
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

int config_validate(const struct vm_config *c, struct errbuf *err)
{
    if (!c->restore != !c->restore_mem)
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "--restore STATE and --restore-mem MEM go together");
    if (c->restore_lazy && !c->restore)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "--restore-lazy needs --restore");
    if (c->restore_lazy && config_shares_ram(c))
        return err_set(err, WISP_EXIT_USAGE, EINVAL,
                       "--restore-lazy cannot serve a device that maps guest memory itself "
                       "(vhost-user, vDPA, vfio-user): it would read pages not loaded yet");
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
