/*
 * The balloon resources (GET/PUT/PATCH /balloon, GET/PATCH
 * /balloon/statistics) against a fake vm_control: Firecracker's field
 * names in answers, bodies validated with a fault_message, values passed
 * through, and a VM without a balloon or without statistics refused.
 */
#include "vmm/api/api.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

struct fake_balloon {
    bool present;
    struct vm_balloon b;
    uint32_t set_mib, set_interval;
    unsigned sets, interval_sets;
};

static struct fake_balloon fb;
static struct vm_control ctl;
static struct api_reply reply;

static int f_get(void *ctx, struct vm_balloon *b)
{
    struct fake_balloon *f = ctx;
    if (!f->present)
        return -ENODEV;
    *b = f->b;
    return 0;
}

static int f_set(void *ctx, uint32_t mib)
{
    struct fake_balloon *f = ctx;
    if (!f->present)
        return -ENODEV;
    if (mib > 512)
        return -EINVAL;
    f->sets++;
    f->set_mib = mib;
    return 0;
}

static int f_interval(void *ctx, uint32_t s)
{
    struct fake_balloon *f = ctx;
    if (!f->present)
        return -ENODEV;
    if (!f->b.stats_polling_interval_s)
        return -EINVAL;
    f->interval_sets++;
    f->set_interval = s;
    return 0;
}

static void setup(void)
{
    memset(&fb, 0, sizeof(fb));
    fb.present = true;
    fb.b = (struct vm_balloon){.amount_mib = 64,
                               .deflate_on_oom = true,
                               .stats_polling_interval_s = 2,
                               .target_pages = 64 * 256,
                               .actual_pages = 1000};
    fb.b.has_stat[4] = true;
    fb.b.stat[4] = 123456;
    fb.b.has_stat[9] = true;
    fb.b.stat[9] = 7;
    ctl = (struct vm_control){
        .ctx = &fb, .balloon_get = f_get, .balloon_set = f_set, .balloon_set_interval = f_interval};
    memset(&reply, 0, sizeof(reply));
}

static void teardown(void)
{
    free(reply.body);
}

TestSuite(api_balloon, .init = setup, .fini = teardown);

static unsigned route(const char *method, const char *path, const char *body)
{
    free(reply.body);
    reply.body = NULL;
    cr_assert_eq(api_route(&ctl, method, path, body, body ? strlen(body) : 0, &reply), 0);
    return reply.status;
}

static int64_t field(const char *key)
{
    json_object *o = json_tokener_parse(reply.body), *v;
    cr_assert(o && json_object_object_get_ex(o, key, &v), "%s in %s", key, reply.body);
    int64_t x = json_object_get_int64(v);
    json_object_put(o);
    return x;
}

static bool has(const char *key)
{
    json_object *o = json_tokener_parse(reply.body);
    bool r = json_object_object_get_ex(o, key, NULL);
    json_object_put(o);
    return r;
}

static void assert_fault(const char *needle)
{
    cr_assert(reply.body && strstr(reply.body, "fault_message"), "%s", reply.body);
    cr_assert(strstr(reply.body, needle), "'%s' not in %s", needle, reply.body);
}

Test(api_balloon, get_config)
{
    cr_assert_eq(route("GET", "/balloon", NULL), 200);
    cr_assert_eq(field("amount_mib"), 64);
    cr_assert_eq(field("stats_polling_interval_s"), 2);
    cr_assert(strstr(reply.body, "\"deflate_on_oom\":true"), "%s", reply.body);
}

Test(api_balloon, patch_target)
{
    cr_assert_eq(route("PATCH", "/balloon", "{\"amount_mib\": 100}"), 204);
    cr_assert_eq(fb.set_mib, 100);
    cr_assert_eq(route("PATCH", "/balloon", "{\"amount_mib\": 1000}"), 400);
    assert_fault("more than the guest's memory");
    const char *bad[] = {
        "",
        "{}",
        "{\"amount_mib\": -1}",
        "{\"amount_mib\": \"10\"}",
        "{\"amount_mib\": 1.5}",
        "{\"amount_mib\": 99999999999}",
        "{\"amount_mib\": 1, \"deflate_on_oom\": true}",
        "{\"amount_mib\": 1} x",
        "[1]",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        cr_assert_eq(route("PATCH", "/balloon", bad[i]), 400, "%s", bad[i]);
        assert_fault("");
    }
    cr_assert_eq(fb.sets, 1, "no bad body reached the VM");
}

Test(api_balloon, put_is_validated_then_refused_after_start)
{
    cr_assert_eq(route("PUT", "/balloon",
                       "{\"amount_mib\": 1, \"deflate_on_oom\": false, "
                       "\"stats_polling_interval_s\": 1}"),
                 400);
    assert_fault("not supported after starting the microVM");
    cr_assert_eq(route("PUT", "/balloon", "{\"amount_mib\": 1}"), 400);
    assert_fault("deflate_on_oom is required");
    cr_assert_eq(fb.sets, 0);
}

Test(api_balloon, statistics)
{
    cr_assert_eq(route("GET", "/balloon/statistics", NULL), 200);
    cr_assert_eq(field("target_pages"), 64 * 256);
    cr_assert_eq(field("actual_pages"), 1000);
    cr_assert_eq(field("target_mib"), 64);
    cr_assert_eq(field("actual_mib"), 3);
    cr_assert_eq(field("free_memory"), 123456);
    cr_assert_eq(field("hugetlb_failures"), 7);
    cr_assert(!has("swap_in"), "statistics the guest never sent are left out");
    cr_assert_eq(route("PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\": 5}"), 204);
    cr_assert_eq(fb.set_interval, 5);
    cr_assert_eq(route("PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\": 0}"), 400);
    assert_fault("stats_polling_interval_s must be a whole number in 1-86400");
    cr_assert_eq(route("PUT", "/balloon/statistics", "{}"), 405);
}

Test(api_balloon, statistics_off)
{
    fb.b.stats_polling_interval_s = 0;
    cr_assert_eq(route("GET", "/balloon/statistics", NULL), 400);
    assert_fault("not enabled");
    cr_assert_eq(route("PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\": 5}"), 400);
    assert_fault("cannot be turned on now");
}

Test(api_balloon, no_balloon)
{
    fb.present = false;
    cr_assert_eq(route("GET", "/balloon", NULL), 400);
    assert_fault("no balloon device");
    cr_assert_eq(route("PATCH", "/balloon", "{\"amount_mib\": 1}"), 400);
    assert_fault("no balloon device");
    cr_assert_eq(route("GET", "/balloon/statistics", NULL), 400);
    ctl.balloon_get = NULL;
    ctl.balloon_set = NULL;
    cr_assert_eq(route("GET", "/balloon", NULL), 400);
    cr_assert_eq(route("PATCH", "/balloon", "{\"amount_mib\": 1}"), 400);
    cr_assert_eq(route("DELETE", "/balloon", NULL), 405);
}
