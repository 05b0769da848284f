/*
 * PUT /snapshot/create and PUT /snapshot/load (docs/API.md, docs/SNAPSHOT.md).
 * Shaped like Firecracker's: {"snapshot_path", "mem_file_path",
 * "snapshot_type": "Full"}.  wisp differs where its sandbox makes it: the
 * paths are file names inside --snapshot-dir (a running wisp can open no
 * other path), and a snapshot is loaded into a wisp that was started to wait
 * for one (--restore-wait), before any vCPU runs; a VM that already runs
 * answers 409.
 *
 * Why a file of its own: request validation here, the work on the VM's
 * migration thread (vmm/vm_mig.c); api_route.c only dispatches.
 */
#include "vmm/api/api.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

int api_snapshot_create(const struct vm_control *ctl, const char *body, size_t len,
                        struct api_reply *out)
{
    char buf[480];
    struct vm_snapshot_req req = {0};
    const struct api_field fields[] = {
        {.name = "snapshot_path",
         .kind = API_FIELD_STRING,
         .required = true,
         .str = &req.state_name},
        {.name = "mem_file_path", .kind = API_FIELD_STRING, .required = true, .str = &req.mem_name},
        {.name = "snapshot_type",
         .kind = API_FIELD_STRING,
         .only = "Full",
         .why = "(wisp writes no diff snapshots)"},
        {.name = "stop", .kind = API_FIELD_BOOL, .flag = &req.stop},
    };
    int ret;
    json_object *o =
        api_body_fields(body, len, fields, sizeof(fields) / sizeof(fields[0]), out, &ret);
    if (!o)
        return ret;
    struct vm_snapshot_result res;
    char why[400] = "";
    ret = ctl->snapshot_create ? ctl->snapshot_create(ctl->ctx, &req, &res, why, sizeof(why))
                               : -ENOTSUP;
    if (ret < 0) {
        unsigned status = ret == -EINVAL || ret == -ENOTSUP    ? 400
                          : ret == -EBUSY || ret == -ESHUTDOWN ? 409
                                                               : 500;
        snprintf(buf, sizeof(buf), "snapshot failed: %s", why[0] ? why : strerror(-ret));
        ret = api_fault(out, status, buf);
        goto out;
    }
    json_object *r = json_object_new_object();
    if (r) {
        json_object_object_add(r, "paused_ms", json_object_new_int64((int64_t)res.paused_ms));
        json_object_object_add(r, "state_bytes", json_object_new_int64((int64_t)res.state_bytes));
        json_object_object_add(r, "mem_bytes", json_object_new_int64((int64_t)res.mem_bytes));
        json_object_object_add(r, "mem_data_pages",
                               json_object_new_int64((int64_t)res.mem_data_pages));
    }
    ret = r ? api_reply_json(out, 200, r) : -ENOMEM;
out:
    json_object_put(o);
    return ret;
}

int api_snapshot_load(const struct vm_control *ctl, const char *body, size_t len,
                      struct api_reply *out)
{
    char buf[480];
    struct vm_snapshot_load_req req = {0};
    const struct api_field fields[] = {
        {.name = "snapshot_path",
         .kind = API_FIELD_STRING,
         .required = true,
         .str = &req.state_name},
        {.name = "mem_file_path", .kind = API_FIELD_STRING, .required = true, .str = &req.mem_name},
        {.name = "resume_vm", .kind = API_FIELD_BOOL, .flag = &req.resume},
    };
    int ret;
    json_object *o =
        api_body_fields(body, len, fields, sizeof(fields) / sizeof(fields[0]), out, &ret);
    if (!o)
        return ret;
    char why[400] = "";
    ret = ctl->snapshot_load ? ctl->snapshot_load(ctl->ctx, &req, why, sizeof(why)) : -EALREADY;
    if (ret < 0) {
        unsigned status = ret == -EALREADY || ret == -EBUSY || ret == -ECANCELED ? 409
                          : ret == -ETIMEDOUT                                    ? 500
                                                                                 : 400;
        snprintf(buf, sizeof(buf), "snapshot load failed: %s",
                 why[0] ? why : "this VM is already running; start wisp with --restore-wait");
        ret = api_fault(out, status, buf);
        goto out;
    }
    out->status = 204;
    out->body = NULL;
    ret = 0;
out:
    json_object_put(o);
    return ret;
}
