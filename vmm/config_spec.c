/*
 * The canonical --device text of a parsed device (config.h,
 * config_device_spec).  Why: a snapshot carries the machine's options as
 * text (migration/stream_config.h) so that a restore parses them with the
 * same config_add_device() a command line goes through; this is the inverse
 * of that parser, kept next to it and checked by a round-trip test.
 */
#include "vmm/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct spec_buf {
    char *p;
    size_t len, pos;
    int err;
};

static void put(struct spec_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct spec_buf *b, const char *fmt, ...)
{
    if (b->err)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->pos, b->len - b->pos, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->len - b->pos)
        b->err = -ENOSPC;
    else
        b->pos += (size_t)n;
}

/* ",key=value" for a string that must not hold the separator. */
static void put_str(struct spec_buf *b, const char *key, const char *val)
{
    if (!val)
        return;
    if (strchr(val, ','))
        b->err = b->err ? b->err : -EINVAL;
    put(b, ",%s=%s", key, val);
}

int config_device_spec(const struct device_spec *d, char *buf, size_t len)
{
    if (!buf || len == 0)
        return -ENOSPC;
    struct spec_buf b = {buf, len, 0, 0};
    buf[0] = '\0';
    put(&b, "%s,id=%s", config_device_type_name(d->type), d->id);
    switch (d->type) {
    case DEV_BLK:
        put_str(&b, "path", d->path);
        put_str(&b, "vhost-user", d->socket);
        if (d->readonly)
            put(&b, ",readonly=on");
        break;
    case DEV_NET:
        put_str(&b, "tap", d->tap);
        put_str(&b, "vhost-user", d->socket);
        if (d->has_mac)
            put(&b, ",mac=%02x:%02x:%02x:%02x:%02x:%02x", d->mac[0], d->mac[1], d->mac[2],
                d->mac[3], d->mac[4], d->mac[5]);
        break;
    case DEV_CONSOLE:
    case DEV_VFIO_USER:
        put_str(&b, "socket", d->socket);
        put_str(&b, "layout", d->layout);
        break;
    case DEV_VFIO:
        put_str(&b, "path", d->path);
        put_str(&b, "layout", d->layout);
        break;
    case DEV_VDPA:
        put_str(&b, "path", d->path);
        break;
    case DEV_FS:
        put_str(&b, "vhost-user", d->socket);
        put_str(&b, "tag", d->tag);
        break;
    case DEV_BALLOON:
        put(&b,
            ",amount_mib=%u,deflate_on_oom=%s,stats_polling_interval_s=%u,"
            "free_page_reporting=%s",
            d->amount_mib, d->deflate_on_oom ? "on" : "off", d->stats_interval_s,
            d->free_page_reporting ? "on" : "off");
        break;
    case DEV_VSOCK:
        put(&b, ",cid=%llu", (unsigned long long)d->cid);
        if (d->vhost)
            put(&b, ",backend=vhost");
        put_str(&b, "uds_path", d->socket);
        break;
    case DEV_RNG:
    default:
        break;
    }
    if (b.err)
        buf[0] = '\0';
    return b.err;
}
