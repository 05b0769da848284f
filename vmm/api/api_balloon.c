/*
 * The balloon resources of the control API (docs/BALLOON.md), in
 * Firecracker's shapes and field names: GET/PUT/PATCH /balloon and
 * GET/PATCH /balloon/statistics.
 *
 * Why its own file: five request shapes with their own validation, kept
 * out of the generic router; like the router it is pure (a fake
 * vm_control is enough to test it).  wisp has no pre-boot API phase, so
 * the balloon is configured with --device balloon and PUT /balloon is
 * checked, then refused as Firecracker refuses it after InstanceStart.
 */
#include "vmm/api/api.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

/* Bounds, as in devices/virtio/balloon.h (the API layer does not include it). */

#define NOT_CONFIGURED "no balloon device is configured (--device balloon)"
#define AFTER_START                                                                                \
    "The requested operation is not supported after starting the microVM. (wisp configures the "   \
    "balloon with --device balloon,amount_mib=N,...; docs/BALLOON.md)"

/* Firecracker's statistics names, in virtio tag order. */
static const char *const stat_names[VM_BALLOON_NSTATS] = {
    "swap_in",      "swap_out",         "major_faults", "minor_faults",        "free_memory",
    "total_memory", "available_memory", "disk_caches",  "hugetlb_allocations", "hugetlb_failures",
};

static int no_content(struct api_reply *out)
{
    out->status = 204;
    out->body = NULL;
    return 0;
}

static bool put_u64(json_object *o, const char *key, uint64_t v)
{
    json_object *j = json_object_new_uint64(v);
    if (!j || json_object_object_add(o, key, j) < 0) {
        json_object_put(j);
        return false;
    }
    return true;
}

static int get_config(const struct vm_control *ctl, struct api_reply *out)
{
    struct vm_balloon b;
    if (!ctl->balloon_get || ctl->balloon_get(ctl->ctx, &b) < 0)
        return api_fault(out, 400, NOT_CONFIGURED);
    json_object *o = json_object_new_object();
    json_object *doom = json_object_new_boolean(b.deflate_on_oom);
    if (!o || !doom || !put_u64(o, "amount_mib", b.amount_mib) ||
        json_object_object_add(o, "deflate_on_oom", doom) < 0 ||
        !put_u64(o, "stats_polling_interval_s", b.stats_polling_interval_s)) {
        json_object_put(o);
        return -ENOMEM;
    }
    return api_reply_json(out, 200, o);
}

bool api_balloon_put_fields(json_object *o, struct api_balloon_put *b, char *buf, size_t buflen,
                            const char **msg)
{
    memset(b, 0, sizeof(*b));
    const struct api_field f[] = {
        {.name = "amount_mib",
         .kind = API_FIELD_UINT,
         .required = true,
         .num = &b->amount_mib,
         .max = API_BALLOON_MAX_MIB},
        {.name = "deflate_on_oom",
         .kind = API_FIELD_BOOL,
         .required = true,
         .flag = &b->deflate_on_oom},
        {.name = "stats_polling_interval_s",
         .kind = API_FIELD_UINT,
         .num = &b->stats_polling_interval_s,
         .max = API_BALLOON_MAX_INTERVAL_S},
    };
    return api_fields_get(o, f, ARRAY_SIZE(f), buf, buflen, msg);
}

/* A valid body is still refused: the balloon is configured before start (Firecracker's rule). */
static int put_config(const struct vm_control *ctl, const char *body, size_t len,
                      struct api_reply *out)
{
    char buf[200];
    const char *msg = NULL;
    struct api_balloon_put b;
    (void)ctl;
    json_object *o = api_parse_object(body, len, buf, sizeof(buf), &msg);
    bool ok = o && api_balloon_put_fields(o, &b, buf, sizeof(buf), &msg);
    int ret = api_fault(out, 400, ok ? AFTER_START : msg);
    json_object_put(o);
    return ret;
}

static int patch_config(const struct vm_control *ctl, const char *body, size_t len,
                        struct api_reply *out)
{
    uint64_t mib = 0;
    const struct api_field f[] = {
        {.name = "amount_mib",
         .kind = API_FIELD_UINT,
         .required = true,
         .num = &mib,
         .max = API_BALLOON_MAX_MIB},
    };
    int ret = 0;
    json_object *o = api_body_fields(body, len, f, ARRAY_SIZE(f), out, &ret);
    if (!o)
        return ret;
    json_object_put(o);
    ret = ctl->balloon_set ? ctl->balloon_set(ctl->ctx, (uint32_t)mib) : -ENODEV;
    if (ret == -ENODEV)
        return api_fault(out, 400, NOT_CONFIGURED);
    if (ret < 0)
        return api_fault(out, 400, "amount_mib is more than the guest's memory");
    return no_content(out);
}

static int get_stats(const struct vm_control *ctl, struct api_reply *out)
{
    struct vm_balloon b;
    if (!ctl->balloon_get || ctl->balloon_get(ctl->ctx, &b) < 0)
        return api_fault(out, 400, NOT_CONFIGURED);
    if (!b.stats_polling_interval_s)
        return api_fault(out, 400,
                         "balloon statistics are not enabled "
                         "(stats_polling_interval_s=0)");
    json_object *o = json_object_new_object();
    bool ok = o && put_u64(o, "target_pages", b.target_pages) &&
              put_u64(o, "actual_pages", b.actual_pages) &&
              put_u64(o, "target_mib", b.target_pages / 256) &&
              put_u64(o, "actual_mib", b.actual_pages / 256);
    for (unsigned i = 0; ok && i < VM_BALLOON_NSTATS; i++)
        if (b.has_stat[i])
            ok = put_u64(o, stat_names[i], b.stat[i]);
    if (!ok) {
        json_object_put(o);
        return -ENOMEM;
    }
    return api_reply_json(out, 200, o);
}

static int patch_stats(const struct vm_control *ctl, const char *body, size_t len,
                       struct api_reply *out)
{
    uint64_t s = 0;
    const struct api_field f[] = {
        {.name = "stats_polling_interval_s",
         .kind = API_FIELD_UINT,
         .required = true,
         .num = &s,
         .min = 1,
         .max = API_BALLOON_MAX_INTERVAL_S},
    };
    int ret = 0;
    json_object *o = api_body_fields(body, len, f, ARRAY_SIZE(f), out, &ret);
    if (!o)
        return ret;
    json_object_put(o);
    ret = ctl->balloon_set_interval ? ctl->balloon_set_interval(ctl->ctx, (uint32_t)s) : -ENODEV;
    if (ret == -ENODEV)
        return api_fault(out, 400, NOT_CONFIGURED);
    if (ret < 0)
        return api_fault(out, 400,
                         "balloon statistics were not enabled at start "
                         "(stats_polling_interval_s=0); they cannot be turned on now");
    return no_content(out);
}

int api_balloon(const struct vm_control *ctl, const char *method, bool stats, const char *body,
                size_t len, struct api_reply *out)
{
    bool get = !strcmp(method, "GET"), patch = !strcmp(method, "PATCH");
    if (stats)
        return get ? get_stats(ctl, out) : patch_stats(ctl, body, len, out);
    if (get)
        return get_config(ctl, out);
    return patch ? patch_config(ctl, body, len, out) : put_config(ctl, body, len, out);
}
