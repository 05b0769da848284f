/*
 * libwisp's configuration calls (include/wisp/wisp.h): a struct wisp_config
 * is a struct vm_config filled through the command line's own setters
 * (config_set, config_add_device, config_load_json, api_fc_config_load), so
 * the library accepts exactly what `wisp run` accepts and reports the same
 * messages.  Only the sandbox default differs (off; see wisp_config_new).
 */
#include "vmm/libwisp/libwisp_internal.h"

#include "vmm/api/api_fc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lw_fail(struct wisp_error *err, int code, const char *fmt, ...)
{
    if (code > 0)
        code = -code;
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

int lw_from_errbuf(struct wisp_error *err, int ret, const struct errbuf *e)
{
    if (ret >= 0)
        ret = -EINVAL; /* an error was recorded without a code: never 0 */
    return lw_fail(err, ret, "%s", e->msg[0] ? e->msg : strerror(-ret));
}

void lw_ok(struct wisp_error *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

const char *wisp_version(void)
{
    return WISP_VERSION;
}

int wisp_config_new(struct wisp_config **out, struct wisp_error *err)
{
    if (!out)
        return lw_fail(err, EINVAL, "wisp_config_new: out is NULL");
    *out = calloc(1, sizeof(**out));
    if (!*out)
        return lw_fail(err, ENOMEM, "out of memory");
    config_init(&(*out)->cfg);
    /* A filter or Landlock domain is the embedder's decision (wisp_config_set_sandbox). */
    (*out)->cfg.seccomp = SECCOMP_OFF;
    (*out)->cfg.landlock = LANDLOCK_OFF;
    lw_ok(err);
    return 0;
}

void wisp_config_free(struct wisp_config *cfg)
{
    if (!cfg)
        return;
    config_free(&cfg->cfg);
    free(cfg);
}

int wisp_config_set(struct wisp_config *cfg, const char *key, const char *value,
                    struct wisp_error *err)
{
    if (!cfg || !key)
        return lw_fail(err, EINVAL, "wisp_config_set: cfg or key is NULL");
    /* Sources of other files and modes of the binary, not machine settings. */
    if (!strcmp(key, "config") || !strcmp(key, "config-file") || !strcmp(key, "api-sock"))
        return lw_fail(err, EINVAL,
                       "option %s is not a machine setting here (use wisp_config_load_json "
                       "or wisp_config_load_firecracker; the control socket is the binary's)",
                       key);
    struct errbuf e = {0};
    int ret = config_set(&cfg->cfg, key, value, &e);
    if (ret < 0)
        return lw_from_errbuf(err, ret, &e);
    lw_ok(err);
    return 0;
}

int wisp_config_set_kernel(struct wisp_config *cfg, const char *path, struct wisp_error *err)
{
    return wisp_config_set(cfg, "kernel", path, err);
}

int wisp_config_set_cmdline(struct wisp_config *cfg, const char *cmdline, struct wisp_error *err)
{
    return wisp_config_set(cfg, "cmdline", cmdline, err);
}

int wisp_config_set_initrd(struct wisp_config *cfg, const char *path, struct wisp_error *err)
{
    return wisp_config_set(cfg, "initrd", path, err);
}

int wisp_config_set_memory(struct wisp_config *cfg, uint64_t bytes, struct wisp_error *err)
{
    if (cfg && bytes == 0)
        return lw_fail(err, EINVAL, "memory: 0 bytes");
    char v[32];
    snprintf(v, sizeof(v), "%" PRIu64, bytes); /* a plain number is bytes (config_parse_size) */
    return wisp_config_set(cfg, "memory", v, err);
}

int wisp_config_set_vcpus(struct wisp_config *cfg, unsigned vcpus, struct wisp_error *err)
{
    /* config_validate() would catch it only at wisp_vm_create(). */
    if (cfg && vcpus == 0)
        return lw_fail(err, EINVAL, "vcpus: at least 1 is needed");
    char v[16];
    snprintf(v, sizeof(v), "%u", vcpus);
    return wisp_config_set(cfg, "vcpus", v, err);
}

int wisp_config_add_device(struct wisp_config *cfg, const char *spec, struct wisp_error *err)
{
    if (!cfg || !spec)
        return lw_fail(err, EINVAL, "wisp_config_add_device: cfg or spec is NULL");
    struct errbuf e = {0};
    int ret = config_add_device(&cfg->cfg, spec, &e);
    if (ret < 0)
        return lw_from_errbuf(err, ret, &e);
    lw_ok(err);
    return 0;
}

int wisp_config_load_json(struct wisp_config *cfg, const char *path, struct wisp_error *err)
{
    if (!cfg || !path)
        return lw_fail(err, EINVAL, "wisp_config_load_json: cfg or path is NULL");
    struct errbuf e = {0};
    int ret = config_load_json(&cfg->cfg, path, &e);
    if (ret < 0)
        return lw_from_errbuf(err, ret, &e);
    lw_ok(err);
    return 0;
}

int wisp_config_load_firecracker(struct wisp_config *cfg, const char *path, struct wisp_error *err)
{
    if (!cfg || !path)
        return lw_fail(err, EINVAL, "wisp_config_load_firecracker: cfg or path is NULL");
    struct errbuf e = {0};
    int ret = api_fc_config_load(&cfg->cfg, path, &e);
    if (ret < 0)
        return lw_from_errbuf(err, ret, &e);
    lw_ok(err);
    return 0;
}

int wisp_config_set_sandbox(struct wisp_config *cfg, int on, struct wisp_error *err)
{
    if (!cfg)
        return lw_fail(err, EINVAL, "wisp_config_set_sandbox: cfg is NULL");
    cfg->cfg.seccomp = on ? SECCOMP_KILL : SECCOMP_OFF;
    cfg->cfg.landlock = on ? LANDLOCK_AUTO : LANDLOCK_OFF;
    lw_ok(err);
    return 0;
}

/* A string copy that tells "absent" (NULL) from "out of memory". */
static int dup_str(char **dst, const char *src)
{
    *dst = NULL;
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -ENOMEM;
}

int lw_config_copy(struct vm_config *dst, const struct vm_config *src)
{
    /* Every pointer config_free() frees is copied here; keep the two lists alike. */
    *dst = *src;
    int ret = 0;
    ret |= dup_str(&dst->kernel, src->kernel);
    ret |= dup_str(&dst->initrd, src->initrd);
    ret |= dup_str(&dst->cmdline, src->cmdline);
    ret |= dup_str(&dst->serial_path, src->serial_path);
    ret |= dup_str(&dst->cpu_features, src->cpu_features);
    ret |= dup_str(&dst->cpu_template, src->cpu_template);
    ret |= dup_str(&dst->api_sock, src->api_sock);
    ret |= dup_str(&dst->snapshot_dir, src->snapshot_dir);
    ret |= dup_str(&dst->restore, src->restore);
    ret |= dup_str(&dst->restore_mem, src->restore_mem);
    ret |= dup_str(&dst->incoming, src->incoming);
    for (unsigned i = 0; i < src->ndevices && i < CONFIG_MAX_DEVICES; i++) {
        const struct device_spec *s = &src->devices[i];
        struct device_spec *d = &dst->devices[i];
        ret |= dup_str(&d->path, s->path);
        ret |= dup_str(&d->tap, s->tap);
        ret |= dup_str(&d->socket, s->socket);
        ret |= dup_str(&d->layout, s->layout);
    }
    if (ret) {
        config_free(dst);
        return -ENOMEM;
    }
    return 0;
}
