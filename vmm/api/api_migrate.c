/*
 * /migration (docs/API.md, docs/MIGRATION.md): PUT starts a live migration
 * and answers 202 at once, GET reports its progress, DELETE cancels it.
 * Firecracker has no live migration; the body names follow its style.
 *
 *   PUT {"destination_url": "tcp:10.0.0.2:7000" | "unix:/run/m.sock",
 *        "downtime_ms": 300, "max_rounds": 30, "bandwidth_mbps": 0}
 *   GET -> {"state": "active", "round": 2, "dirty_pages": 120, ...}
 */
#include "vmm/api/api.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

static int put_migration(const struct vm_control *ctl, const char *body, size_t len,
                         struct api_reply *out)
{
    char buf[480];
    struct vm_migrate_req req = {0};
    uint64_t downtime = 0, rounds = 0, mbps = 0;
    const struct api_field fields[] = {
        {.name = "destination_url",
         .kind = API_FIELD_STRING,
         .required = true,
         .str = &req.to,
         .why = "(tcp:HOST:PORT or unix:PATH)"},
        {.name = "downtime_ms", .kind = API_FIELD_UINT, .num = &downtime, .min = 1, .max = 60000},
        {.name = "max_rounds", .kind = API_FIELD_UINT, .num = &rounds, .min = 1, .max = 64},
        {.name = "bandwidth_mbps", .kind = API_FIELD_UINT, .num = &mbps, .min = 0, .max = 1000000},
    };
    int ret;
    json_object *o =
        api_body_fields(body, len, fields, sizeof(fields) / sizeof(fields[0]), out, &ret);
    if (!o)
        return ret;
    req.downtime_ms = (uint32_t)downtime; /* 0: not given, the default */
    req.max_rounds = (uint32_t)rounds;
    req.bandwidth = mbps * 1000000ULL / 8; /* megabits per second -> bytes */
    char why[400] = "";
    ret = ctl->migrate_start ? ctl->migrate_start(ctl->ctx, &req, why, sizeof(why)) : -ENOTSUP;
    if (ret < 0) {
        unsigned status = ret == -EINVAL ? 400 : ret == -EBUSY || ret == -ESHUTDOWN ? 409 : 500;
        snprintf(buf, sizeof(buf), "migration not started: %s", why[0] ? why : strerror(-ret));
        ret = api_fault(out, status, buf);
        goto out;
    }
    json_object *r = json_object_new_object();
    if (r)
        json_object_object_add(r, "state", json_object_new_string("active"));
    ret = r ? api_reply_json(out, 202, r) : -ENOMEM;
out:
    json_object_put(o);
    return ret;
}

static int get_migration(const struct vm_control *ctl, struct api_reply *out)
{
    struct vm_migrate_status st = {0};
    if (ctl->migrate_status)
        ctl->migrate_status(ctl->ctx, &st);
    json_object *r = json_object_new_object();
    if (!r)
        return -ENOMEM;
    json_object_object_add(r, "state", json_object_new_string(vm_migrate_state_name(st.state)));
    json_object_object_add(r, "round", json_object_new_int64(st.round));
    json_object_object_add(r, "dirty_pages", json_object_new_int64((int64_t)st.dirty_pages));
    json_object_object_add(r, "bytes_sent", json_object_new_int64((int64_t)st.bytes_sent));
    json_object_object_add(r, "mb_per_s", json_object_new_double(st.mb_per_s));
    json_object_object_add(
        r, "remaining_ms",
        json_object_new_int64(st.remaining_ms == UINT64_MAX ? -1 : (int64_t)st.remaining_ms));
    json_object_object_add(r, "total_ms", json_object_new_int64((int64_t)st.total_ms));
    json_object_object_add(r, "downtime_ms", json_object_new_int64((int64_t)st.downtime_ms));
    if (st.error[0])
        json_object_object_add(r, "error", json_object_new_string(st.error));
    return api_reply_json(out, 200, r);
}

int api_migration(const struct vm_control *ctl, const char *method, const char *body, size_t len,
                  struct api_reply *out)
{
    if (!strcmp(method, "PUT"))
        return put_migration(ctl, body, len, out);
    if (!strcmp(method, "GET"))
        return get_migration(ctl, out);
    /* DELETE */
    if (!ctl->migrate_cancel || ctl->migrate_cancel(ctl->ctx) < 0)
        return api_fault(out, 409, "no migration is running");
    out->status = 204;
    out->body = NULL;
    return 0;
}
