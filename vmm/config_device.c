/*
 * The --device TYPE[,key=value...] parser (config_add_device(), config.h).
 * Why apart from config.c: each device type has its own keys and checks,
 * which would otherwise make up a third of the file that interprets the
 * options; config_spec.c is its inverse.
 */
#include "vmm/config.h"
#include "devices/virtio/balloon.h"
#include "devices/virtio/net.h"
#include "vmm/config_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const device_type_names[] = {
    [DEV_BLK] = "blk",         [DEV_NET] = "net",
    [DEV_RNG] = "rng",         [DEV_CONSOLE] = "console",
    [DEV_VFIO] = "vfio",       [DEV_VFIO_USER] = "vfio-user",
    [DEV_BALLOON] = "balloon", [DEV_VSOCK] = "vsock",
    [DEV_VDPA] = "vdpa",       [DEV_FS] = "fs"};

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
        return config_set_bool(&d->deflate_on_oom, key, val, err);
    if (!strcmp(key, "stats_polling_interval_s"))
        return set_u32(&d->stats_interval_s, key, val, BALLOON_MAX_INTERVAL, err);
    if (!strcmp(key, "free_page_reporting"))
        return config_set_bool(&d->free_page_reporting, key, val, err);
    return 1; /* not a balloon key */
}

/* A net device's tap=: an interface name, 1-15 bytes (IFNAMSIZ less its NUL). */
static int set_tap(struct device_spec *d, const char *val, struct errbuf *err)
{
    if (!val[0] || strlen(val) >= 16)
        return err_set(err, WISP_EXIT_USAGE, EINVAL, "tap name '%.40s' must be 1 to 15 characters",
                       val);
    return config_set_string(&d->tap, "tap", val, err);
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
    if ((is_blk || d->type == DEV_VFIO || d->type == DEV_VDPA) && !strcmp(key, "path"))
        return config_set_string(&d->path, "path", val, err);
    if (is_blk && !strcmp(key, "readonly"))
        return config_set_bool(&d->readonly, "readonly", val, err);
    if (is_net && !strcmp(key, "tap"))
        return set_tap(d, val, err);
    if (is_net && !strcmp(key, "mac")) {
        if (virtio_net_parse_mac(val, d->mac) < 0)
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "mac '%s' must be a unicast address like 52:54:00:12:34:56", val);
        d->has_mac = true;
        return 0;
    }
    if ((is_blk || is_net || d->type == DEV_FS) && !strcmp(key, "vhost-user")) {
        if (!val[0] || strlen(val) >= 108) /* sizeof(sun_path) */
            return err_set(err, WISP_EXIT_USAGE, EINVAL,
                           "%s vhost-user socket path must be 1 to 107 bytes", type);
        return config_set_string(&d->socket, "vhost-user", val, err);
    }
    if (d->type == DEV_FS && !strcmp(key, "tag")) {
        if (!val[0] || strlen(val) > 36) /* the config space's tag field */
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "fs tag must be 1 to 36 bytes");
        return config_set_string(&d->tag, "tag", val, err);
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
        return config_set_string(&d->socket, "socket", val, err);
    }
    if (DEV_IS_PCI(d->type) && !strcmp(key, "layout"))
        return config_set_string(&d->layout, "layout", val, err);
    if (d->type == DEV_VSOCK && !strcmp(key, "uds_path")) {
        /* "<uds_path>_<port>" must fit sun_path too (devices/backends/vsock_uds.h). */
        if (!val[0] || strlen(val) > 96)
            return err_set(err, WISP_EXIT_USAGE, EINVAL, "vsock uds_path must be 1 to 96 bytes");
        return config_set_string(&d->socket, "uds_path", val, err);
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
    if (strlen(spec) > CONFIG_MAX_STRING_VALUE)
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
                      "unknown device type '%s' (blk, net, rng, console, balloon, vsock, fs, "
                      "vdpa, vfio or vfio-user)",
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
    else if (d->type == DEV_NET && !d->tap && !d->socket)
        ret =
            err_set(err, WISP_EXIT_USAGE, EINVAL, "net device needs tap=NAME or vhost-user=SOCKET");
    else if (d->type == DEV_NET && d->tap && d->socket)
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL,
                      "net device takes tap=NAME or vhost-user=SOCKET, not both");
    else if (d->type == DEV_VFIO && !d->path)
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL,
                      "vfio device needs path=/sys/bus/pci/devices/DDDD:BB:DD.F or "
                      "path=/dev/vfio/devices/vfioN");
    else if (d->type == DEV_FS && (!d->socket || !d->tag))
        ret =
            err_set(err, WISP_EXIT_USAGE, EINVAL, "fs device needs vhost-user=SOCKET and tag=NAME");
    else if (d->type == DEV_VDPA && !d->path)
        ret = err_set(err, WISP_EXIT_USAGE, EINVAL, "vdpa device needs path=/dev/vhost-vdpa-N");
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
        free(d->tag);
        memset(d, 0, sizeof(*d));
    } else {
        c->ndevices++;
    }
    free(copy);
    return ret;
}

int config_override_net_tap(struct vm_config *c, const char *id, const char *tap,
                            struct errbuf *err)
{
    for (unsigned i = 0; i < c->ndevices; i++) {
        struct device_spec *d = &c->devices[i];
        if (d->type == DEV_NET && !strcmp(d->id, id))
            return set_tap(d, tap, err);
    }
    return err_set(err, WISP_EXIT_USAGE, ENOENT, "there is no network interface '%.40s'", id);
}
