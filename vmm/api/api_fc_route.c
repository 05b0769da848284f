/*
 * Routing of the Firecracker pre-boot phase (api_fc.h): which resource a
 * request names before InstanceStart, whether the method fits, and the
 * answer, with Firecracker's status codes (204 on success, 400 with a
 * fault_message on bad input or a request out of order).
 *
 * Why apart from api_fc.c: that file applies bodies to a vm_config (and is
 * shared with --config-file); this one is only the HTTP side of it.
 */
#include "vmm/api/api_fc.h"
#include "vmm/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOT_SUPPORTED "this resource is not supported by wisp (docs/API.md)"

enum fc_res {
    FC_INSTANCE,
    FC_VERSION,
    FC_MACHINE,
    FC_BOOT,
    FC_DRIVE,
    FC_NET,
    FC_VSOCK,
    FC_BALLOON,
    FC_LOGGER,
    FC_METRICS,
    FC_ACTIONS,
    FC_LOAD,        /* PUT /snapshot/load: before anything is configured */
    FC_RUNTIME,     /* exists once the VM runs */
    FC_UNSUPPORTED, /* a Firecracker resource wisp does not offer */
};

static const struct {
    const char *path; /* ending in '/': a prefix followed by an id */
    enum fc_res res;
    const char *methods;
    const char *section; /* for api_fc_apply */
} table[] = {
    {"/", FC_INSTANCE, "GET", NULL},
    {"/version", FC_VERSION, "GET", NULL},
    {"/machine-config", FC_MACHINE, "GET, PUT, PATCH", "machine-config"},
    {"/boot-source", FC_BOOT, "PUT", "boot-source"},
    {"/drives/", FC_DRIVE, "PUT, PATCH", "drives"},
    {"/network-interfaces/", FC_NET, "PUT, PATCH", "network-interfaces"},
    {"/vsock", FC_VSOCK, "PUT", "vsock"},
    {"/balloon", FC_BALLOON, "GET, PUT, PATCH", "balloon"},
    {"/logger", FC_LOGGER, "PUT, PATCH", "logger"},
    {"/metrics", FC_METRICS, "PUT", "metrics"},
    {"/actions", FC_ACTIONS, "PUT", NULL},
    {"/vm", FC_RUNTIME, NULL, NULL},
    {"/snapshot/create", FC_RUNTIME, NULL, NULL},
    {"/snapshot/load", FC_LOAD, "PUT", NULL},
    {"/migration", FC_RUNTIME, NULL, NULL},
    {"/balloon/statistics", FC_RUNTIME, NULL, NULL},
    {"/mmds", FC_UNSUPPORTED, NULL, NULL},
    {"/mmds/config", FC_UNSUPPORTED, NULL, NULL},
    {"/entropy", FC_UNSUPPORTED, NULL, NULL},
    {"/cpu-config", FC_UNSUPPORTED, NULL, NULL},
    {"/serial", FC_UNSUPPORTED, NULL, NULL},
    {"/hotplug/memory", FC_UNSUPPORTED, NULL, NULL},
};

static bool method_in(const char *method, const char *methods)
{
    size_t n = strlen(method);
    for (const char *p = methods; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && !strncmp(p, method, n))
            return true;
        p += len;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return false;
}

static int no_content(struct api_reply *out)
{
    out->status = 204;
    out->body = NULL;
    return 0;
}

static bool put_str(json_object *o, const char *k, const char *v)
{
    json_object *j = json_object_new_string(v);
    if (!j || json_object_object_add(o, k, j) < 0) {
        json_object_put(j);
        return false;
    }
    return true;
}

static bool put_num(json_object *o, const char *k, uint64_t v)
{
    json_object *j = json_object_new_uint64(v);
    if (!j || json_object_object_add(o, k, j) < 0) {
        json_object_put(j);
        return false;
    }
    return true;
}

static bool put_bool(json_object *o, const char *k, bool v)
{
    json_object *j = json_object_new_boolean(v);
    if (!j || json_object_object_add(o, k, j) < 0) {
        json_object_put(j);
        return false;
    }
    return true;
}

static int get_instance(const struct api_fc *fc, struct api_reply *out)
{
    json_object *o = json_object_new_object();
    if (!o || !put_str(o, "id", "anonymous-instance") ||
        !put_str(o, "state", fc->started ? "Running" : "Not started") ||
        !put_str(o, "vmm_version", WISP_VERSION) || !put_str(o, "app_name", "wisp")) {
        json_object_put(o);
        return -ENOMEM;
    }
    return api_reply_json(out, 200, o);
}

static int get_machine(const struct api_fc *fc, struct api_reply *out)
{
    const struct vm_config *c = fc->cfg;
    json_object *o = json_object_new_object();
    if (!o || !put_num(o, "vcpu_count", c->vcpus) || !put_num(o, "mem_size_mib", c->memory >> 20) ||
        !put_bool(o, "smt", false) || !put_bool(o, "track_dirty_pages", false) ||
        !put_str(o, "cpu_template", c->cpu_template ? c->cpu_template : "None") ||
        !put_str(o, "huge_pages", c->hugepages ? "2M" : "None")) {
        json_object_put(o);
        return -ENOMEM;
    }
    return api_reply_json(out, 200, o);
}

static int get_balloon(const struct api_fc *fc, struct api_reply *out)
{
    const struct device_spec *d = NULL;
    for (unsigned i = 0; i < fc->cfg->ndevices; i++)
        if (fc->cfg->devices[i].type == DEV_BALLOON)
            d = &fc->cfg->devices[i];
    if (!d)
        return api_fault(out, 400, "no balloon device is configured (PUT /balloon first)");
    json_object *o = json_object_new_object();
    if (!o || !put_num(o, "amount_mib", d->amount_mib) ||
        !put_bool(o, "deflate_on_oom", d->deflate_on_oom) ||
        !put_num(o, "stats_polling_interval_s", d->stats_interval_s)) {
        json_object_put(o);
        return -ENOMEM;
    }
    return api_reply_json(out, 200, o);
}

/* FlushMetrics: write the line now; a sink that does not take it is a 400. */
static int flush_metrics(struct api_reply *out)
{
    char buf[200];
    int ret = metrics_flush();
    if (ret == 0)
        return no_content(out);
    snprintf(buf, sizeof(buf),
             "FlushMetrics: the metrics sink did not take the line (%s); it is counted in "
             "metrics.write_fails and its counts go into the next line",
             strerror(-ret));
    return api_fault(out, 400, buf);
}

static int actions(struct api_fc *fc, json_object *o, char *buf, size_t buflen,
                   struct api_reply *out)
{
    const char *type = NULL, *msg = NULL;
    const struct api_field f[] = {
        {.name = "action_type", .kind = API_FIELD_STRING, .required = true, .str = &type},
    };
    if (!api_fields_get(o, f, ARRAY_SIZE(f), buf, buflen, &msg))
        return api_fault(out, 400, msg);
    if (!strcmp(type, "FlushMetrics"))
        return flush_metrics(out);
    if (!strcmp(type, "SendCtrlAltDel"))
        return api_fault(out, 400, API_FC_NOT_RUNNING);
    if (strcmp(type, "InstanceStart") != 0)
        return api_fault(out, 400,
                         "action_type must be \"InstanceStart\", \"SendCtrlAltDel\" or "
                         "\"FlushMetrics\"");
    if (fc->started)
        return api_fault(out, 400, API_FC_AFTER_START);
    /* api_fc_finish() adds root= to the command line: a refused start must
     * leave it as it was, or the next attempt would add it twice. */
    char *saved = fc->cfg->cmdline ? strdup(fc->cfg->cmdline) : NULL;
    if (fc->cfg->cmdline && !saved)
        return -ENOMEM;
    int ret = api_fc_finish(fc, buf, buflen);
    if (ret == 0 && fc->start)
        ret = fc->start(fc->ctx, buf, buflen);
    if (ret < 0) {
        free(fc->cfg->cmdline);
        fc->cfg->cmdline = saved;
        return ret == -ENOMEM ? ret : api_fault(out, 400, buf);
    }
    free(saved);
    fc->started = true;
    return no_content(out);
}

/* An absolute path of 1..API_FC_PATH_MAX bytes without control bytes. */
static bool abs_path_ok(const char *p)
{
    size_t n = strnlen(p, API_FC_PATH_MAX + 1);
    if (n < 2 || n > API_FC_PATH_MAX || p[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return false;
    return true;
}

/* A tap name: 1-15 bytes, none of them a control byte, space, '/', ',' or '='. */
static bool tap_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > API_FC_TAP_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == '/' || c == ',' || c == '=')
            return false;
    }
    return true;
}

/*
 * network_overrides: [{"iface_id": ID, "host_dev_name": TAP}, ...], each
 * id once, copied into req.  0, or -EINVAL with *msg (maybe in buf).
 */
static int net_overrides(json_object *arr, struct api_fc_load *req, char *buf, size_t buflen,
                         const char **msg)
{
    size_t n = json_object_array_length(arr);
    if (n > API_FC_MAX_NET_OVERRIDES) {
        snprintf(buf, buflen, "network_overrides: at most %u entries (one per network interface)",
                 API_FC_MAX_NET_OVERRIDES);
        *msg = buf;
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        const char *id = NULL, *tap = NULL;
        const struct api_field f[] = {
            {.name = "iface_id", .kind = API_FIELD_STRING, .required = true, .str = &id},
            {.name = "host_dev_name", .kind = API_FIELD_STRING, .required = true, .str = &tap},
        };
        if (!e || !json_object_is_type(e, json_type_object)) {
            *msg = "network_overrides: each entry must be an object with iface_id and "
                   "host_dev_name";
            return -EINVAL;
        }
        if (!api_fields_get(e, f, ARRAY_SIZE(f), buf, buflen, msg))
            return -EINVAL;
        if (!api_fc_id_ok(id)) {
            *msg = "network_overrides: iface_id must be 1-20 letters, digits, '-' or '_'";
            return -EINVAL;
        }
        if (!tap_name_ok(tap)) {
            *msg = "network_overrides: host_dev_name must be a tap name of 1-15 bytes without "
                   "spaces, control bytes, '/', ',' or '='";
            return -EINVAL;
        }
        for (unsigned j = 0; j < req->nnet; j++)
            if (!strcmp(req->net[j].iface_id, id)) {
                snprintf(buf, buflen, "network_overrides: iface_id '%s' is given twice", id);
                *msg = buf;
                return -EINVAL;
            }
        struct api_fc_net_override *o = &req->net[req->nnet++];
        snprintf(o->iface_id, sizeof(o->iface_id), "%s", id);
        snprintf(o->host_dev_name, sizeof(o->host_dev_name), "%s", tap);
    }
    return 0;
}

/*
 * PUT /snapshot/load before InstanceStart (docs/API.md): Firecracker's body,
 * the older mem_file_path too; the paths absolute (the client started this
 * process, as it would give --restore paths).  The load itself is the
 * caller's (fc->load).
 */
static int load(struct api_fc *fc, json_object *o, char *buf, size_t buflen, struct api_reply *out)
{
    const char *state = NULL, *mem_file = NULL, *bpath = NULL, *btype = NULL, *msg = NULL;
    bool resume = false, diff = false, track = false;
    const struct api_field f[] = {
        {.name = "snapshot_path", .kind = API_FIELD_STRING, .required = true, .str = &state},
        {.name = "mem_backend", .kind = API_FIELD_OBJECT},
        {.name = "mem_file_path", .kind = API_FIELD_STRING, .str = &mem_file},
        {.name = "enable_diff_snapshots", .kind = API_FIELD_BOOL, .flag = &diff},
        {.name = "track_dirty_pages", .kind = API_FIELD_BOOL, .flag = &track},
        {.name = "resume_vm", .kind = API_FIELD_BOOL, .flag = &resume},
        {.name = "network_overrides", .kind = API_FIELD_ARRAY},
    };
    const struct api_field b[] = {
        {.name = "backend_path", .kind = API_FIELD_STRING, .required = true, .str = &bpath},
        {.name = "backend_type", .kind = API_FIELD_STRING, .required = true, .str = &btype},
    };
    if (fc->started)
        return api_fault(out, 400, API_FC_AFTER_START);
    if (fc->configured)
        return api_fault(out, 400, API_FC_LOAD_AFTER_CONFIG);
    if (!api_fields_get(o, f, ARRAY_SIZE(f), buf, buflen, &msg))
        return api_fault(out, 400, msg);
    json_object *mb = NULL;
    if (json_object_object_get_ex(o, "mem_backend", &mb) && mb &&
        !api_fields_get(mb, b, ARRAY_SIZE(b), buf, buflen, &msg))
        return api_fault(out, 400, msg);
    if (!mb == !mem_file)
        return api_fault(out, 400, "exactly one of mem_backend and mem_file_path is required");
    if (btype && !strcmp(btype, "Uffd"))
        return api_fault(out, 400,
                         "backend_type Uffd (a page-fault handler process on a UNIX socket) is "
                         "not supported; use File (wisp restores from the file itself)");
    if (btype && strcmp(btype, "File") != 0)
        return api_fault(out, 400, "backend_type must be \"File\" or \"Uffd\"");
    struct api_fc_load req = {
        .state_path = state, .mem_path = mb ? bpath : mem_file, .resume = resume};
    json_object *no = NULL;
    if (json_object_object_get_ex(o, "network_overrides", &no) && no &&
        net_overrides(no, &req, buf, buflen, &msg) < 0)
        return api_fault(out, 400, msg);
    if (!abs_path_ok(req.state_path) || !abs_path_ok(req.mem_path) ||
        !strcmp(req.state_path, req.mem_path))
        return api_fault(out, 400,
                         "snapshot_path and the memory file must be two different absolute "
                         "paths");
    if (!fc->load)
        return api_fault(out, 400, "this wisp cannot load a snapshot here");
    int ret = fc->load(fc->ctx, &req, buf, buflen);
    fc->started = true; /* loaded, or failed and ending: nothing more to configure */
    if (ret < 0) {
        fc->load_failed = true;
        return ret == -ENOMEM ? ret : api_fault(out, 400, buf);
    }
    return no_content(out);
}

/* Does `path` name table entry i?  *id gets the id after a prefix entry. */
static bool match(size_t i, const char *path, const char **id)
{
    size_t n = strlen(table[i].path);
    *id = NULL;
    if (n > 1 && table[i].path[n - 1] == '/') {
        if (strncmp(path, table[i].path, n) != 0 && strncmp(path, table[i].path, n - 1) != 0)
            return false;
        if (path[n - 1] == '\0') /* "/drives" without an id */
            *id = "";
        else if (path[n - 1] == '/')
            *id = path + n;
        else
            return false;
        return true;
    }
    return !strcmp(path, table[i].path);
}

int api_fc_route(struct api_fc *fc, const char *method, const char *path, const char *body,
                 size_t len, struct api_reply *out)
{
    char buf[480];
    const char *msg = NULL, *id = NULL;
    memset(out, 0, sizeof(*out));
    size_t i = 0;
    while (i < ARRAY_SIZE(table) && !match(i, path, &id))
        i++;
    if (i == ARRAY_SIZE(table)) {
        snprintf(buf, sizeof(buf), "no resource at %.80s", path);
        return api_fault(out, 404, buf);
    }
    if (table[i].res == FC_RUNTIME)
        return api_fault(out, 400, API_FC_NOT_RUNNING);
    if (table[i].res == FC_UNSUPPORTED)
        return api_fault(out, 400, NOT_SUPPORTED);
    if (!method_in(method, table[i].methods)) {
        snprintf(buf, sizeof(buf), "%.16s is not allowed on %s (allowed: %s)", method,
                 table[i].path, table[i].methods);
        out->allow = table[i].methods;
        return api_fault(out, 405, buf);
    }
    bool get = !strcmp(method, "GET"), patch = !strcmp(method, "PATCH");
    switch (table[i].res) {
    case FC_INSTANCE:
        return get_instance(fc, out);
    case FC_VERSION:
        return api_get_version(out);
    case FC_MACHINE:
        if (get)
            return get_machine(fc, out);
        break;
    case FC_BALLOON:
        if (get)
            return get_balloon(fc, out);
        break;
    default:
        break;
    }
    if (fc->started)
        return api_fault(out, 400, API_FC_AFTER_START);
    if (patch && table[i].res != FC_MACHINE && table[i].res != FC_LOGGER)
        return api_fault(out, 400,
                         "PATCH of this resource is only possible once the microVM runs; "
                         "wisp does not support it yet");
    if (id && (!id[0] || strlen(id) > CONFIG_ID_MAX ||
               strspn(id, "abcdefghijklmnopqrstuvwxyz"
                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          "0123456789-_") != strlen(id)))
        return api_fault(out, 400, "the id in the path must be 1-20 letters, digits, '-' or '_'");
    json_object *o = api_parse_object(body, len, buf, sizeof(buf), &msg);
    if (!o)
        return api_fault(out, 400, msg);
    int ret;
    if (table[i].res == FC_ACTIONS) {
        ret = actions(fc, o, buf, sizeof(buf), out);
    } else if (table[i].res == FC_LOAD) {
        ret = load(fc, o, buf, sizeof(buf), out);
    } else if (table[i].res == FC_LOGGER && patch) {
        ret = api_fc_logger_level(fc->cfg, o, buf, sizeof(buf), &msg);
        ret = ret < 0 ? api_fault(out, 400, msg) : no_content(out);
    } else if (table[i].res == FC_MACHINE && patch) {
        ret = api_fc_patch_machine(fc, o, buf, sizeof(buf), &msg);
        fc->configured |= ret == 0;
        ret = ret < 0 ? api_fault(out, 400, msg) : no_content(out);
    } else {
        ret = api_fc_apply(fc, table[i].section, id, o, buf, sizeof(buf), &msg);
        /* Logger and metrics are the host's, not the machine's: a load may follow. */
        fc->configured |= ret == 0 && table[i].res != FC_LOGGER && table[i].res != FC_METRICS;
        ret = ret < 0 ? api_fault(out, 400, msg) : no_content(out);
    }
    json_object_put(o);
    return ret;
}

/* SendCtrlAltDel on a running VM: Firecracker's 204 once the keys are on their way. */
static int send_ctrl_alt_del(const struct vm_control *ctl, struct api_reply *out)
{
    int ret = ctl && ctl->send_ctrl_alt_del ? ctl->send_ctrl_alt_del(ctl->ctx) : -ENOTSUP;
    switch (ret) {
    case 0:
        return no_content(out);
    case -ENOTSUP:
        return api_fault(out, 400,
                         "SendCtrlAltDel needs the i8042 keyboard, which only x86_64 guests have");
    case -ENODEV:
        return api_fault(out, 400,
                         "the guest turned its keyboard off (PS/2 scanning disabled): Ctrl+Alt+Del "
                         "was not sent");
    case -EAGAIN:
        return api_fault(out, 400,
                         "the guest has not read the keys sent before: Ctrl+Alt+Del was not sent "
                         "(is its i8042/atkbd driver loaded?)");
    case -ESHUTDOWN:
        return api_fault(out, 409, "the VM is stopping");
    default:
        return api_fault(out, 500, "SendCtrlAltDel failed");
    }
}

int api_fc_runtime(const struct vm_control *ctl, const char *method, const char *path,
                   const char *body, size_t len, struct api_reply *out)
{
    char buf[480];
    const char *id = NULL, *msg = NULL;
    size_t i = 0;
    while (i < ARRAY_SIZE(table) && !match(i, path, &id))
        i++;
    if (i == ARRAY_SIZE(table) || table[i].res == FC_RUNTIME || table[i].res == FC_LOAD ||
        table[i].res == FC_INSTANCE || table[i].res == FC_VERSION || table[i].res == FC_BALLOON)
        return 1; /* the running VM's router knows these, or nobody does */
    memset(out, 0, sizeof(*out));
    if (table[i].res == FC_UNSUPPORTED)
        return api_fault(out, 400, NOT_SUPPORTED);
    if (!method_in(method, table[i].methods)) {
        snprintf(buf, sizeof(buf), "%.16s is not allowed on %s (allowed: %s)", method,
                 table[i].path, table[i].methods);
        out->allow = table[i].methods;
        return api_fault(out, 405, buf);
    }
    bool logger = table[i].res == FC_LOGGER && !strcmp(method, "PATCH");
    if (table[i].res != FC_ACTIONS && !logger)
        return api_fault(out, 400, API_FC_AFTER_START);
    json_object *o = api_parse_object(body, len, buf, sizeof(buf), &msg);
    if (logger) { /* PATCH /logger: the level, at run time too */
        int r = o && api_fc_logger_level(NULL, o, buf, sizeof(buf), &msg) == 0;
        json_object_put(o);
        return r ? no_content(out) : api_fault(out, 400, msg);
    }
    const char *type = NULL;
    const struct api_field f[] = {
        {.name = "action_type", .kind = API_FIELD_STRING, .required = true, .str = &type},
    };
    int ret;
    if (!o || !api_fields_get(o, f, ARRAY_SIZE(f), buf, sizeof(buf), &msg))
        ret = api_fault(out, 400, msg);
    else if (!strcmp(type, "FlushMetrics"))
        ret = flush_metrics(out);
    else if (!strcmp(type, "InstanceStart"))
        ret = api_fault(out, 400, API_FC_AFTER_START);
    else if (!strcmp(type, "SendCtrlAltDel"))
        ret = send_ctrl_alt_del(ctl, out);
    else
        ret = api_fault(out, 400,
                        "action_type must be \"InstanceStart\", \"SendCtrlAltDel\" or "
                        "\"FlushMetrics\"");
    json_object_put(o);
    return ret;
}
