/*
 * Fuzz target: the Firecracker-compatible layer (security.md I,
 * `api_request` and `config_file`): --config-file's JSON layout
 * (api_fc_config_parse) and the pre-boot API (api_fc_route), both of which
 * turn hostile JSON into a struct vm_config.
 *
 * Why: every byte of such a file or request body comes from whoever
 * drives wisp; both end in config_set() and config_add_device(), the
 * functions the command line uses, so a path from JSON to a broken
 * vm_config would be a bug in all three front ends.
 *
 * Input: byte 0 picks the mode.  Even: the rest is a config file.  Odd:
 * bit 1 gives the pre-boot state a boot source first, bit 2 marks it
 * started; byte 1 picks the method, byte 2 the path (a table, or for
 * values past it the next bytes up to a NUL); the rest is the body,
 * exactly sized (ASan catches a read past it).
 *
 * Checked: a file is accepted with a configuration that config_validate()
 * accepts, or refused with one usage line; a request gets a known status,
 * 204 without a body, every other answer one JSON object, a fault exactly
 * {"fault_message": string}, 405 with Allow; after start nothing changes
 * the configuration; the configuration stays within its bounds; a
 * PUT /snapshot/load that reaches the load hook carries two different
 * absolute paths and bounded, distinct network_overrides (fz_load).
 */
#include "tests/fuzz/fuzz.h"

#include <json-c/json.h>

#include "vmm/api/api_fc.h"

static const char *const fz_methods[] = {"PUT", "GET", "PATCH", "DELETE", "put"};
static const char *const fz_paths[] = {"/",
                                       "/machine-config",
                                       "/boot-source",
                                       "/drives/rootfs",
                                       "/drives/x",
                                       "/drives/",
                                       "/network-interfaces/eth0",
                                       "/vsock",
                                       "/balloon",
                                       "/logger",
                                       "/metrics",
                                       "/actions",
                                       "/vm",
                                       "/mmds",
                                       "/version",
                                       "/drives/a/b",
                                       "/drives",
                                       "/balloon/statistics",
                                       "/snapshot/load"};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* What every configuration must keep, whatever JSON built it. */
static void fz_check_config(const struct vm_config *c)
{
    FZ_CHECK(c->ndevices <= CONFIG_MAX_DEVICES, "%u devices", c->ndevices);
    FZ_CHECK(c->vcpus >= 1, "no vCPU");
    FZ_CHECK(c->memory >= 1 << 20 && c->memory <= CONFIG_MAX_MEMORY, "memory %llu",
             (unsigned long long)c->memory);
    unsigned vsock = 0, balloon = 0;
    for (unsigned i = 0; i < c->ndevices; i++) {
        const struct device_spec *d = &c->devices[i];
        FZ_CHECK(d->id[0] && strlen(d->id) <= CONFIG_ID_MAX, "device id '%s'", d->id);
        for (unsigned j = 0; j < i; j++)
            FZ_CHECK(strcmp(d->id, c->devices[j].id) != 0, "id '%s' twice", d->id);
        vsock += d->type == DEV_VSOCK;
        balloon += d->type == DEV_BALLOON;
        FZ_CHECK(d->type != DEV_BLK || d->path, "blk without a path");
        FZ_CHECK(d->type != DEV_NET || d->tap, "net without a tap");
    }
    FZ_CHECK(vsock <= 1 && balloon <= 1, "%u vsock, %u balloon", vsock, balloon);
}

static void fz_file(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    memcpy(text, data, size);
    struct vm_config c;
    struct errbuf err = {0};
    config_init(&c);
    if (api_fc_config_parse(&c, text, size, &err) == 0) {
        struct errbuf e2 = {0};
        fz_check_config(&c);
        FZ_CHECK(c.kernel, "accepted without a kernel");
        FZ_CHECK(config_validate(&c, &e2) == 0, "accepted but invalid: %s", e2.msg);
    } else {
        FZ_CHECK(err.exit_code == WISP_EXIT_USAGE || err.exit_code == WISP_EXIT_FAILURE,
                 "exit code %d", err.exit_code);
        FZ_CHECK(err.msg[0] && !strchr(err.msg, '\n'), "error '%s'", err.msg);
    }
    config_free(&c);
    free(text);
}

/*
 * The pre-boot load hook: whatever body got here was checked, so the
 * request must hold two absolute paths and at most API_FC_MAX_NET_OVERRIDES
 * distinct, bounded network_overrides.  Accepts (0): the instance starts.
 */
static int fz_load(void *ctx, const struct api_fc_load *req, char *why, size_t whylen)
{
    (void)ctx;
    (void)why;
    (void)whylen;
    FZ_CHECK(req->state_path && req->state_path[0] == '/' && req->mem_path &&
                 req->mem_path[0] == '/' && strcmp(req->state_path, req->mem_path) != 0,
             "load with unchecked paths");
    FZ_CHECK(req->nnet <= API_FC_MAX_NET_OVERRIDES, "%u network_overrides", req->nnet);
    for (unsigned i = 0; i < req->nnet; i++) {
        const struct api_fc_net_override *o = &req->net[i];
        size_t il = strnlen(o->iface_id, sizeof(o->iface_id));
        size_t tl = strnlen(o->host_dev_name, sizeof(o->host_dev_name));
        FZ_CHECK(il >= 1 && il <= CONFIG_ID_MAX, "iface_id length %zu", il);
        FZ_CHECK(tl >= 1 && tl <= API_FC_TAP_MAX, "host_dev_name length %zu", tl);
        FZ_CHECK(!strpbrk(o->host_dev_name, " ,=/"), "host_dev_name '%s'", o->host_dev_name);
        for (unsigned j = 0; j < i; j++)
            FZ_CHECK(strcmp(o->iface_id, req->net[j].iface_id) != 0, "iface_id '%s' twice",
                     o->iface_id);
    }
    return 0;
}

static void fz_request(const uint8_t *data, size_t size)
{
    if (size < 3)
        return;
    struct vm_config c;
    struct api_fc fc;
    config_init(&c);
    api_fc_init(&fc, &c);
    if (data[0] & 2)
        fc.has_boot_source = !config_set(&c, "kernel", "/k", &(struct errbuf){0});
    fc.started = data[0] & 4;
    fc.load = fz_load;
    const char *method = fz_methods[data[1] % ARRAY_SIZE(fz_methods)];
    char path[128];
    size_t used = 3;
    if (data[2] < ARRAY_SIZE(fz_paths)) {
        snprintf(path, sizeof(path), "%s", fz_paths[data[2]]);
    } else {
        size_t n = 0;
        while (used < size && data[used] && n < sizeof(path) - 1)
            path[n++] = (char)data[used++];
        path[n] = '\0';
        used += used < size;
    }
    size_t len = size - used;
    char *body = malloc(len ? len : 1);
    memcpy(body, data + used, len);
    bool was_started = fc.started;
    unsigned ndev = c.ndevices;
    uint64_t mem = c.memory;
    struct api_reply r;
    if (api_fc_route(&fc, method, path, body, len, &r) < 0)
        goto out;
    static const unsigned known[] = {200, 204, 400, 404, 405};
    bool ok = false;
    for (size_t i = 0; i < ARRAY_SIZE(known); i++)
        ok |= r.status == known[i];
    FZ_CHECK(ok, "status %u", r.status);
    FZ_CHECK((r.status == 204) == (r.body == NULL), "status %u with body %p", r.status,
             (void *)r.body);
    FZ_CHECK((r.status == 405) == (r.allow != NULL), "Allow with status %u", r.status);
    if (was_started)
        FZ_CHECK(c.ndevices == ndev && c.memory == mem, "configuration changed after start");
    FZ_CHECK(!fc.started || was_started || r.status == 204, "started by a refused request");
    fz_check_config(&c);
    if (r.body) {
        json_object *o = json_tokener_parse(r.body);
        FZ_CHECK(o && json_object_is_type(o, json_type_object), "not an object: %s", r.body);
        if (r.status >= 400) {
            json_object *m;
            FZ_CHECK(json_object_object_length(o) == 1 &&
                         json_object_object_get_ex(o, "fault_message", &m) &&
                         json_object_is_type(m, json_type_string),
                     "bad fault: %s", r.body);
        }
        json_object_put(o);
    }
    free(r.body);
out:
    free(body);
    config_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        fz_request(data, size);
    else
        fz_file(data + 1, size - 1);
    return 0;
}
