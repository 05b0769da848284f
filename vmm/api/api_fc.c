/*
 * Firecracker's pre-boot resources (api_fc.h, docs/API.md "Firecracker
 * compatibility"): each PUT is checked against a field table (api_fields)
 * with Firecracker's names and applied to a struct vm_config through
 * config_set() and config_add_device(), the functions the command line
 * uses, so a value the API accepts is one `wisp run` accepts too.
 *
 * Why a module apart from api_route.c: the running VM's router sees only
 * struct vm_control; this one owns the configuration being collected and
 * is also what --config-file (api_fc_file.c) applies section by section.
 */
#include "vmm/api/api_fc.h"
#include "vmm/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"

void api_fc_init(struct api_fc *fc, struct vm_config *cfg)
{
    memset(fc, 0, sizeof(*fc));
    fc->cfg = cfg;
}

/* Set *msg to buf holding the text of a failed config_* call. */
static int from_err(const struct errbuf *err, char *buf, size_t buflen, const char **msg)
{
    snprintf(buf, buflen, "%s", err->msg);
    *msg = buf;
    return -EINVAL;
}

static int fail(const char *text, const char **msg)
{
    *msg = text;
    return -EINVAL;
}

bool api_fc_id_ok(const char *id)
{
    size_t n = strlen(id);
    return n && n <= CONFIG_ID_MAX && strspn(id, ID_CHARS) == n;
}

/* A value that goes into a --device description must not hold its separator. */
static int plain(const char *name, const char *v, char *buf, size_t buflen, const char **msg)
{
    if (!v[0] || strchr(v, ',')) {
        snprintf(buf, buflen, "%s must be a non-empty string without ','", name);
        *msg = buf;
        return -EINVAL;
    }
    return 0;
}

static void spec_free(struct device_spec *d)
{
    free(d->path);
    free(d->tap);
    free(d->socket);
    free(d->layout);
    free(d->tag);
}

/* Index of the device of type t (with that id, unless id is NULL), or -1. */
static int find_dev(const struct vm_config *c, enum device_type t, const char *id)
{
    for (unsigned i = 0; i < c->ndevices; i++)
        if (c->devices[i].type == t && (!id || !strcmp(c->devices[i].id, id)))
            return (int)i;
    return -1;
}

/*
 * Add the device `spec` (a --device description) in place of device `old`
 * (or at the end if old < 0).  The old device stays if the new one fails.
 */
static int replace_device(struct vm_config *c, int old, const char *spec, char *buf, size_t buflen,
                          const char **msg)
{
    struct device_spec saved;
    size_t sz = sizeof(saved);
    if (old >= 0) {
        saved = c->devices[old];
        memmove(&c->devices[old], &c->devices[old + 1], (c->ndevices - (unsigned)old - 1) * sz);
        c->ndevices--;
    }
    struct errbuf err = {0};
    if (config_add_device(c, spec, &err) < 0) {
        if (old >= 0) {
            memmove(&c->devices[old + 1], &c->devices[old], (c->ndevices - (unsigned)old) * sz);
            c->devices[old] = saved;
            c->ndevices++;
        }
        return from_err(&err, buf, buflen, msg);
    }
    if (old >= 0) {
        struct device_spec added = c->devices[c->ndevices - 1];
        spec_free(&saved);
        memmove(&c->devices[old + 1], &c->devices[old], (c->ndevices - 1 - (unsigned)old) * sz);
        c->devices[old] = added;
    }
    return 0;
}

static int machine_config(struct api_fc *fc, json_object *o, bool patch, char *buf, size_t buflen,
                          const char **msg)
{
    uint64_t vcpus = 0, mib = 0;
    bool smt = false, dirty = false;
    const char *tmpl = NULL, *huge = NULL;
    const struct api_field f[] = {
        {.name = "vcpu_count",
         .kind = API_FIELD_UINT,
         .required = !patch,
         .num = &vcpus,
         .min = 1,
         .max = API_FC_MAX_VCPUS},
        {.name = "mem_size_mib",
         .kind = API_FIELD_UINT,
         .required = !patch,
         .num = &mib,
         .min = 1,
         .max = API_FC_MAX_MIB},
        {.name = "smt", .kind = API_FIELD_BOOL, .flag = &smt},
        {.name = "track_dirty_pages", .kind = API_FIELD_BOOL, .flag = &dirty},
        {.name = "cpu_template", .kind = API_FIELD_STRING, .str = &tmpl},
        {.name = "huge_pages", .kind = API_FIELD_STRING, .str = &huge},
    };
    if (!api_fields_get(o, f, ARRAY_SIZE(f), buf, buflen, msg))
        return -EINVAL;
    if (smt)
        return fail("smt must be false: wisp gives each vCPU a core of its own", msg);
    if (huge && strcmp(huge, "None") != 0 && strcmp(huge, "2M") != 0)
        return fail("huge_pages must be \"None\" or \"2M\"", msg);
    if (tmpl && (!tmpl[0] || strlen(tmpl) > 64))
        return fail("cpu_template must be \"None\" or a template name of 1-64 bytes", msg);
    /* Everything is checked: now apply, so a refused request changes nothing. */
    struct errbuf err = {0};
    if (tmpl && !strcmp(tmpl, "None")) {
        free(fc->cfg->cpu_template);
        fc->cfg->cpu_template = NULL;
    } else if (tmpl && config_set(fc->cfg, "cpu-template", tmpl, &err) < 0) {
        return from_err(&err, buf, buflen, msg);
    }
    if (vcpus)
        fc->cfg->vcpus = (unsigned)vcpus;
    if (mib)
        fc->cfg->memory = mib << 20;
    if (huge)
        fc->cfg->hugepages = !strcmp(huge, "2M");
    (void)dirty; /* wisp tracks dirty pages when a snapshot or migration asks */
    return 0;
}

static int boot_source(struct api_fc *fc, json_object *o, char *buf, size_t buflen,
                       const char **msg)
{
    const char *kernel = NULL, *initrd = NULL, *args = NULL;
    const struct api_field f[] = {
        {.name = "kernel_image_path", .kind = API_FIELD_STRING, .required = true, .str = &kernel},
        {.name = "initrd_path", .kind = API_FIELD_STRING, .str = &initrd},
        {.name = "boot_args", .kind = API_FIELD_STRING, .str = &args},
    };
    if (!api_fields_get(o, f, ARRAY_SIZE(f), buf, buflen, msg))
        return -EINVAL;
    if (!kernel[0] || (initrd && !initrd[0]))
        return fail("kernel_image_path and initrd_path must not be empty", msg);
    struct errbuf err = {0};
    /* A later PUT replaces the whole boot source, as in Firecracker. */
    free(fc->cfg->initrd);
    fc->cfg->initrd = NULL;
    free(fc->cfg->cmdline);
    fc->cfg->cmdline = NULL;
    if (config_set(fc->cfg, "kernel", kernel, &err) < 0 ||
        (initrd && config_set(fc->cfg, "initrd", initrd, &err) < 0) ||
        (args && config_set(fc->cfg, "cmdline", args, &err) < 0))
        return from_err(&err, buf, buflen, msg);
    fc->has_boot_source = true;
    return 0;
}

/* Is `p` a partition UUID that may go on the command line (hex and '-')? */
static bool partuuid_ok(const char *p)
{
    size_t n = strlen(p);
    return n && n <= 36 && strspn(p, "0123456789abcdefABCDEF-") == n;
}

static int drive(struct api_fc *fc, const char *path_id, json_object *o, char *buf, size_t buflen,
                 const char **msg)
{
    const char *id = NULL, *path = NULL, *partuuid = NULL, *engine = NULL, *sock = NULL;
    bool root = false, ro = false;
    const struct api_field f[] = {
        {.name = "drive_id", .kind = API_FIELD_STRING, .required = true, .str = &id},
        {.name = "path_on_host", .kind = API_FIELD_STRING, .str = &path},
        {.name = "is_root_device", .kind = API_FIELD_BOOL, .required = true, .flag = &root},
        {.name = "is_read_only", .kind = API_FIELD_BOOL, .flag = &ro},
        {.name = "partuuid", .kind = API_FIELD_STRING, .str = &partuuid},
        {.name = "cache_type",
         .kind = API_FIELD_STRING,
         .only = "Unsafe",
         .why = "(wisp does not flush on the guest's behalf)"},
        {.name = "io_engine", .kind = API_FIELD_STRING, .str = &engine},
        {.name = "rate_limiter", .kind = API_FIELD_OBJECT},
        {.name = "socket", .kind = API_FIELD_STRING, .str = &sock},
    };
    if (!api_fields_get(o, f, ARRAY_SIZE(f), buf, buflen, msg))
        return -EINVAL;
    if (path_id && strcmp(id, path_id) != 0)
        return fail("drive_id in the body differs from the one in the path", msg);
    if (!api_fc_id_ok(id))
        return fail("drive_id must be 1-20 letters, digits, '-' or '_'", msg);
    if (sock)
        return fail("socket (vhost-user drives) is not supported through this API; use "
                    "--device blk,vhost-user=PATH",
                    msg);
    if (!path)
        return fail("path_on_host is required", msg);
    if (engine && strcmp(engine, "Sync") != 0 && strcmp(engine, "Async") != 0)
        return fail("io_engine must be \"Sync\" or \"Async\"", msg);
    if (root && partuuid && !partuuid_ok(partuuid))
        return fail("partuuid must be 1-36 hexadecimal digits and '-'", msg);
    if (root && fc->root_id[0] && strcmp(fc->root_id, id) != 0) {
        snprintf(buf, buflen, "drive '%s' is already the root device", fc->root_id);
        *msg = buf;
        return -EINVAL;
    }
    int ret = plain("path_on_host", path, buf, buflen, msg);
    if (ret < 0)
        return ret;
    char spec[4200];
    if ((size_t)snprintf(spec, sizeof(spec), "blk,id=%s,path=%s%s", id, path,
                         ro ? ",readonly=on" : "") >= sizeof(spec))
        return fail("path_on_host is too long", msg);
    ret = replace_device(fc->cfg, find_dev(fc->cfg, DEV_BLK, id), spec, buf, buflen, msg);
    if (ret < 0)
        return ret;
    if (root) {
        memcpy(fc->root_id, id, strlen(id) + 1);
        snprintf(fc->root_partuuid, sizeof(fc->root_partuuid), "%s", partuuid ? partuuid : "");
        fc->root_ro = ro;
    } else if (!strcmp(fc->root_id, id)) {
        fc->root_id[0] = '\0';
    }
    return 0;
}

static int net(struct api_fc *fc, const char *path_id, json_object *o, char *buf, size_t buflen,
               const char **msg)
{
    const char *id = NULL, *tap = NULL, *mac = NULL;
    const struct api_field f[] = {
        {.name = "iface_id", .kind = API_FIELD_STRING, .required = true, .str = &id},
        {.name = "host_dev_name", .kind = API_FIELD_STRING, .required = true, .str = &tap},
        {.name = "guest_mac", .kind = API_FIELD_STRING, .str = &mac},
        {.name = "rx_rate_limiter", .kind = API_FIELD_OBJECT},
        {.name = "tx_rate_limiter", .kind = API_FIELD_OBJECT},
    };
    if (!api_fields_get(o, f, ARRAY_SIZE(f), buf, buflen, msg))
        return -EINVAL;
    if (path_id && strcmp(id, path_id) != 0)
        return fail("iface_id in the body differs from the one in the path", msg);
    if (!api_fc_id_ok(id))
        return fail("iface_id must be 1-20 letters, digits, '-' or '_'", msg);
    int ret = plain("host_dev_name", tap, buf, buflen, msg);
    if (ret == 0 && mac)
        ret = plain("guest_mac", mac, buf, buflen, msg);
    if (ret < 0)
        return ret;
    char spec[200];
    if ((size_t)snprintf(spec, sizeof(spec), "net,id=%s,tap=%s%s%s", id, tap, mac ? ",mac=" : "",
                         mac ? mac : "") >= sizeof(spec))
        return fail("host_dev_name or guest_mac is too long", msg);
    return replace_device(fc->cfg, find_dev(fc->cfg, DEV_NET, id), spec, buf, buflen, msg);
}

static int vsock(struct api_fc *fc, json_object *o, char *buf, size_t buflen, const char **msg)
{
    uint64_t cid = 0;
    const char *uds = NULL;
    const struct api_field f[] = {
        {.name = "guest_cid",
         .kind = API_FIELD_UINT,
         .required = true,
         .num = &cid,
         .min = 3,
         .max = 0xfffffffeULL},
        {.name = "uds_path", .kind = API_FIELD_STRING, .required = true, .str = &uds},
        {.name = "vsock_id", .kind = API_FIELD_STRING},
    };
    if (!api_fields_get(o, f, ARRAY_SIZE(f), buf, buflen, msg))
        return -EINVAL;
    int ret = plain("uds_path", uds, buf, buflen, msg);
    if (ret < 0)
        return ret;
    char spec[300];
    if ((size_t)snprintf(spec, sizeof(spec), "vsock,cid=%llu,uds_path=%s", (unsigned long long)cid,
                         uds) >= sizeof(spec))
        return fail("uds_path is too long", msg);
    return replace_device(fc->cfg, find_dev(fc->cfg, DEV_VSOCK, NULL), spec, buf, buflen, msg);
}

static int balloon(struct api_fc *fc, json_object *o, char *buf, size_t buflen, const char **msg)
{
    struct api_balloon_put b;
    if (!api_balloon_put_fields(o, &b, buf, buflen, msg))
        return -EINVAL;
    char spec[160];
    snprintf(spec, sizeof(spec),
             "balloon,amount_mib=%llu,deflate_on_oom=%s,stats_polling_interval_s=%llu",
             (unsigned long long)b.amount_mib, b.deflate_on_oom ? "on" : "off",
             (unsigned long long)b.stats_polling_interval_s);
    return replace_device(fc->cfg, find_dev(fc->cfg, DEV_BALLOON, NULL), spec, buf, buflen, msg);
}

/* Firecracker's level names and wisp's; Trace is Debug, Off is Error (errors always print). */
static const struct {
    const char *fc, *wisp;
    enum log_level level;
} levels[] = {{"Error", "error", LOG_ERROR}, {"Warning", "warn", LOG_WARN},
              {"Info", "info", LOG_INFO},    {"Debug", "debug", LOG_DEBUG},
              {"Trace", "debug", LOG_DEBUG}, {"Off", "error", LOG_ERROR}};

#define BAD_LEVEL "level must be \"Error\", \"Warning\", \"Info\", \"Debug\", \"Trace\" or \"Off\""

static int level_index(const char *level)
{
    for (size_t i = 0; i < ARRAY_SIZE(levels); i++)
        if (!strcmp(level, levels[i].fc))
            return (int)i;
    return -1;
}

static int logger(struct api_fc *fc, json_object *o, char *buf, size_t buflen, const char **msg)
{
    const char *level = NULL, *path = NULL;
    const struct api_field f[] = {
        {.name = "log_path", .kind = API_FIELD_STRING, .str = &path},
        {.name = "level", .kind = API_FIELD_STRING, .str = &level},
        {.name = "show_level", .kind = API_FIELD_BOOL, .flag = &(bool){0}},
        {.name = "show_log_origin", .kind = API_FIELD_BOOL, .flag = &(bool){0}},
        {.name = "module", .kind = API_FIELD_STRING},
    };
    if (!api_fields_get(o, f, ARRAY_SIZE(f), buf, buflen, msg))
        return -EINVAL;
    int li = level ? level_index(level) : 0;
    if (li < 0)
        return fail(BAD_LEVEL, msg);
    struct errbuf err = {0};
    /* Checked first, applied after: a refused body changes nothing. */
    if (path && (!path[0] || strlen(path) > API_FC_PATH_MAX))
        return fail("log_path must be 1-4096 bytes", msg);
    if (level && config_set(fc->cfg, "log-level", levels[li].wisp, &err) < 0)
        return from_err(&err, buf, buflen, msg);
    if (path && config_set(fc->cfg, "log-path", path, &err) < 0)
        return from_err(&err, buf, buflen, msg);
    return 0;
}

int api_fc_logger_level(struct vm_config *cfg, json_object *o, char *buf, size_t buflen,
                        const char **msg)
{
    const char *level = NULL;
    const struct api_field f[] = {
        {.name = "level", .kind = API_FIELD_STRING, .required = true, .str = &level},
    };
    if (!api_fields_get(o, f, ARRAY_SIZE(f), buf, buflen, msg))
        return -EINVAL;
    int li = level_index(level);
    if (li < 0)
        return fail(BAD_LEVEL, msg);
    if (cfg)
        cfg->log_level = (int)levels[li].level;
    atomic_store_explicit(&log_threshold, levels[li].level, memory_order_relaxed);
    log_info("log level set to %s", levels[li].wisp);
    return 0;
}

static int metrics(struct api_fc *fc, json_object *o, char *buf, size_t buflen, const char **msg)
{
    const char *path = NULL;
    const struct api_field f[] = {
        {.name = "metrics_path", .kind = API_FIELD_STRING, .required = true, .str = &path},
    };
    if (!api_fields_get(o, f, ARRAY_SIZE(f), buf, buflen, msg))
        return -EINVAL;
    if (!path[0] || strlen(path) > API_FC_PATH_MAX)
        return fail("metrics_path must be 1-4096 bytes", msg);
    struct errbuf err = {0};
    if (config_set(fc->cfg, "metrics-path", path, &err) < 0)
        return from_err(&err, buf, buflen, msg);
    return 0;
}

int api_fc_apply(struct api_fc *fc, const char *section, const char *id, json_object *o, char *buf,
                 size_t buflen, const char **msg)
{
    if (!json_object_is_type(o, json_type_object))
        return fail("each configuration section must be a JSON object", msg);
    if (!strcmp(section, "machine-config"))
        return machine_config(fc, o, false, buf, buflen, msg);
    if (!strcmp(section, "boot-source"))
        return boot_source(fc, o, buf, buflen, msg);
    if (!strcmp(section, "drives"))
        return drive(fc, id, o, buf, buflen, msg);
    if (!strcmp(section, "network-interfaces"))
        return net(fc, id, o, buf, buflen, msg);
    if (!strcmp(section, "vsock"))
        return vsock(fc, o, buf, buflen, msg);
    if (!strcmp(section, "balloon"))
        return balloon(fc, o, buf, buflen, msg);
    if (!strcmp(section, "logger"))
        return logger(fc, o, buf, buflen, msg);
    if (!strcmp(section, "metrics"))
        return metrics(fc, o, buf, buflen, msg);
    *msg = "no such configuration section";
    return -ENOENT;
}

int api_fc_patch_machine(struct api_fc *fc, json_object *o, char *buf, size_t buflen,
                         const char **msg)
{
    return machine_config(fc, o, true, buf, buflen, msg);
}

int api_fc_finish(struct api_fc *fc, char *buf, size_t buflen)
{
    struct vm_config *c = fc->cfg;
    if (!fc->has_boot_source && !c->kernel) {
        snprintf(buf, buflen, "InstanceStart needs a boot source (PUT /boot-source first)");
        return -EINVAL;
    }
    int root = fc->root_id[0] ? find_dev(c, DEV_BLK, fc->root_id) : -1;
    if (root > 0) { /* the root drive is the first virtio-blk: /dev/vda */
        struct device_spec d = c->devices[root];
        memmove(&c->devices[1], &c->devices[0], (size_t)root * sizeof(d));
        c->devices[0] = d;
    }
    struct errbuf err = {0};
    if (root >= 0) {
        const char *old = c->cmdline ? c->cmdline : "";
        size_t n = strlen(old) + sizeof(fc->root_partuuid) + 40;
        char *line = malloc(n);
        if (!line) {
            snprintf(buf, buflen, "out of memory");
            return -ENOMEM;
        }
        snprintf(line, n, "%s%sroot=%s%s %s", old, old[0] ? " " : "",
                 fc->root_partuuid[0] ? "PARTUUID=" : "/dev/vda", fc->root_partuuid,
                 fc->root_ro ? "ro" : "rw");
        int ret = config_set(c, "cmdline", line, &err);
        free(line);
        if (ret < 0) {
            snprintf(buf, buflen, "%s", err.msg);
            return ret;
        }
    }
    if (config_validate(c, &err) < 0) {
        snprintf(buf, buflen, "%s", err.msg);
        return -EINVAL;
    }
    return 0;
}
