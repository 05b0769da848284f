/*
 * The MACHINE section (stream_sections.h): what the source VM looks like,
 * encoded field by field, and the destination's compatibility check.
 *
 * Why a separate check before any state moves: a destination that restores
 * into the wrong memory layout, vCPU count or device set corrupts the guest
 * silently, and one that runs a device on another data plane than the state
 * was saved from (a vfio blob on an emulated device) does worse.  The check
 * compares the whole description first and refuses the first difference by
 * name, before a device is created or a page written.
 */
#include "migration/stream_sections.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PFX "migration stream: "

const char *mig_plane_name(uint8_t plane)
{
    switch (plane) {
    case MIG_PLANE_BUILTIN:
        return "builtin";
    case MIG_PLANE_VHOST_USER:
        return "vhost-user";
    case MIG_PLANE_VDPA:
        return "vdpa";
    case MIG_PLANE_VFIO:
        return "vfio";
    default:
        return "unknown";
    }
}

static const char *arch_name(uint16_t arch)
{
    return arch == MIG_ARCH_X86_64 ? "x86_64" : arch == MIG_ARCH_AARCH64 ? "aarch64" : "unknown";
}

/* 0..max bytes of [A-Za-z0-9._-]; at least one when !may_be_empty. */
static bool name_ok(const char *s, size_t len, bool may_be_empty)
{
    if (len > MIG_NAME_MAX || (len == 0 && !may_be_empty))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool plane_ok(uint8_t p)
{
    return p >= MIG_PLANE_BUILTIN && p <= MIG_PLANE_VFIO;
}

/* Validation shared by the encoder and the decoder; the reason goes to why. */
static int machine_check(const struct mig_machine *m, char *why, size_t whylen)
{
    if (m->arch == 0) {
        snprintf(why, whylen, "architecture 0");
        return -EINVAL;
    }
    if (m->vcpus == 0 || m->vcpus > MIG_MAX_VCPUS) {
        snprintf(why, whylen, "%u vCPUs (1 to %u allowed)", m->vcpus, MIG_MAX_VCPUS);
        return -EINVAL;
    }
    if (!name_ok(m->cpu_template, strnlen(m->cpu_template, sizeof(m->cpu_template)), true) ||
        !memchr(m->cpu_template, '\0', sizeof(m->cpu_template))) {
        snprintf(why, whylen, "malformed CPU template name");
        return -EINVAL;
    }
    int e = mig_mem_layout_check(&m->mem, why, whylen);
    if (e < 0)
        return e;
    if (m->ndevs > MIG_MAX_DEVICES) {
        snprintf(why, whylen, "%u devices (at most %u)", m->ndevs, MIG_MAX_DEVICES);
        return -EINVAL;
    }
    for (uint32_t i = 0; i < m->ndevs; i++) {
        const struct mig_dev_desc *d = &m->devs[i];
        if (!memchr(d->type, '\0', sizeof(d->type)) || !name_ok(d->type, strlen(d->type), false)) {
            snprintf(why, whylen, "device %u: malformed type name", i);
            return -EINVAL;
        }
        if (d->section_id < MIG_SEC_VCPU || d->section_id == MIG_SEC_END) {
            snprintf(why, whylen, "device %u (%s): section id 0x%x is not a device id", i, d->type,
                     d->section_id);
            return -EINVAL;
        }
        if (!plane_ok(d->plane) || (d->flags & ~MIG_DEV_F_KNOWN) || d->version == 0 ||
            d->min_version == 0 || d->min_version > d->version) {
            snprintf(why, whylen, "device %u (%s): bad plane, flags or versions", i, d->type);
            return -EINVAL;
        }
        if (d->plane == MIG_PLANE_VFIO && (d->flags & MIG_DEV_F_PORTABLE)) {
            snprintf(why, whylen, "device %u (%s): vfio state is never portable", i, d->type);
            return -EINVAL;
        }
        for (uint32_t j = 0; j < i; j++)
            if (m->devs[j].section_id == d->section_id && m->devs[j].instance == d->instance) {
                snprintf(why, whylen, "devices %u and %u are both %s instance %u", j, i, d->type,
                         d->instance);
                return -EINVAL;
            }
    }
    return 0;
}

static void put_name(struct vstate_out *o, const char *s)
{
    size_t n = strlen(s);
    vstate_put_u8(o, (uint8_t)n);
    vstate_put_bytes(o, s, n);
}

int mig_machine_encode(const struct mig_machine *m, struct vstate_out *o)
{
    char why[160];
    int e = machine_check(m, why, sizeof(why));
    if (e < 0)
        return e;
    vstate_put_u16(o, m->arch);
    vstate_put_u16(o, 0);
    vstate_put_u32(o, m->vcpus);
    put_name(o, m->cpu_template);
    vstate_put_u32(o, m->mem.n);
    for (uint32_t i = 0; i < m->mem.n; i++) {
        vstate_put_u64(o, m->mem.r[i].gpa);
        vstate_put_u64(o, m->mem.r[i].size);
    }
    vstate_put_u32(o, m->ndevs);
    for (uint32_t i = 0; i < m->ndevs; i++) {
        const struct mig_dev_desc *d = &m->devs[i];
        put_name(o, d->type);
        vstate_put_u32(o, d->section_id);
        vstate_put_u32(o, d->instance);
        vstate_put_u16(o, d->version);
        vstate_put_u16(o, d->min_version);
        vstate_put_u8(o, d->plane);
        vstate_put_u8(o, d->flags);
    }
    return o->err;
}

/* A length-prefixed name into a NUL-terminated buffer of MIG_NAME_MAX + 1. */
static void get_name(struct vstate_in *in, char *dst)
{
    uint8_t n = vstate_get_u8(in);
    memset(dst, 0, MIG_NAME_MAX + 1);
    if (n > MIG_NAME_MAX) {
        in->err = in->err ? in->err : -EBADMSG;
        return;
    }
    vstate_get_bytes(in, dst, n);
    if (!in->err && !name_ok(dst, n, true))
        in->err = -EBADMSG;
}

static int bad(struct errbuf *err, const char *what)
{
    return err_set(err, WISP_EXIT_USAGE, EBADMSG, PFX "section \"machine\": %s", what);
}

int mig_machine_decode(const struct mig_section *s, struct mig_machine *m, struct errbuf *err)
{
    struct vstate_in in;
    char why[160];

    memset(m, 0, sizeof(*m));
    vstate_in_init(&in, s->payload, s->len);
    m->arch = vstate_get_u16(&in);
    if (vstate_get_u16(&in) != 0)
        return bad(err, "reserved field is not zero");
    m->vcpus = vstate_get_u32(&in);
    get_name(&in, m->cpu_template);
    m->mem.n = vstate_get_u32(&in);
    if (in.err)
        return bad(err, "header cut short or CPU template name malformed");
    /* Counts are bounded before the loops that use them. */
    if (m->mem.n > MIG_MAX_MEM_RANGES)
        return bad(err, "too many memory ranges");
    for (uint32_t i = 0; i < m->mem.n; i++) {
        m->mem.r[i].gpa = vstate_get_u64(&in);
        m->mem.r[i].size = vstate_get_u64(&in);
    }
    m->ndevs = vstate_get_u32(&in);
    if (in.err)
        return bad(err, "memory layout cut short");
    if (m->ndevs > MIG_MAX_DEVICES)
        return bad(err, "too many devices");
    for (uint32_t i = 0; i < m->ndevs; i++) {
        struct mig_dev_desc *d = &m->devs[i];
        get_name(&in, d->type);
        d->section_id = vstate_get_u32(&in);
        d->instance = vstate_get_u32(&in);
        d->version = vstate_get_u16(&in);
        d->min_version = vstate_get_u16(&in);
        d->plane = vstate_get_u8(&in);
        d->flags = vstate_get_u8(&in);
        if (in.err)
            return bad(err, "device list cut short or a type name malformed");
    }
    if (in.pos != in.len)
        return bad(err, "trailing bytes");
    if (machine_check(m, why, sizeof(why)) < 0)
        return err_set(err, WISP_EXIT_USAGE, EBADMSG, PFX "section \"machine\": %s", why);
    return 0;
}

static int refuse(struct errbuf *err, const char *fmt, ...) __printf(2, 3);
static int refuse(struct errbuf *err, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return err_set(err, WISP_EXIT_USAGE, EPROTO, PFX "incompatible destination: %s", what);
}

static int compat_dev(uint32_t i, const struct mig_dev_desc *s, const struct mig_dev_desc *l,
                      struct errbuf *err)
{
    if (strcmp(s->type, l->type) != 0)
        return refuse(err, "device %u: %s on the stream, %s here", i, s->type, l->type);
    if (s->section_id != l->section_id)
        return refuse(err, "device %u (%s): section id 0x%x on the stream, 0x%x here", i, s->type,
                      s->section_id, l->section_id);
    if (s->instance != l->instance)
        return refuse(err, "device %u (%s): instance %u on the stream, %u here", i, s->type,
                      s->instance, l->instance);
    if (s->version > l->version)
        return refuse(err,
                      "device %u (%s %u): state version %u on the stream is newer than this "
                      "wisp (max %u)",
                      i, s->type, s->instance, s->version, l->version);
    if (s->version < l->min_version)
        return refuse(err,
                      "device %u (%s %u): state version %u on the stream is older than this "
                      "wisp loads (min %u)",
                      i, s->type, s->instance, s->version, l->min_version);
    if (s->plane != l->plane &&
        !((s->flags & MIG_DEV_F_PORTABLE) && (l->flags & MIG_DEV_F_PORTABLE)))
        return refuse(err,
                      "device %u (%s %u): data plane %s on the stream, %s here, and its state "
                      "is not portable between data planes",
                      i, s->type, s->instance, mig_plane_name(s->plane), mig_plane_name(l->plane));
    return 0;
}

int mig_compat_check(const struct mig_machine *s, const struct mig_machine *l, struct errbuf *err)
{
    if (s->arch != l->arch)
        return refuse(err, "architecture %s on the stream, %s here", arch_name(s->arch),
                      arch_name(l->arch));
    if (s->vcpus != l->vcpus)
        return refuse(err, "destination has %u vCPUs, the stream %u", l->vcpus, s->vcpus);
    if (strcmp(s->cpu_template, l->cpu_template) != 0) {
        if (s->cpu_template[0] == '\0')
            return refuse(err, "the stream has no CPU template, this destination runs %s",
                          l->cpu_template);
        return refuse(err, "CPU template %s not available here (destination runs %s)",
                      s->cpu_template, l->cpu_template[0] ? l->cpu_template : "none");
    }
    if (s->mem.n != l->mem.n)
        return refuse(err, "destination has %u memory ranges, the stream %u", l->mem.n, s->mem.n);
    for (uint32_t i = 0; i < s->mem.n; i++)
        if (s->mem.r[i].gpa != l->mem.r[i].gpa || s->mem.r[i].size != l->mem.r[i].size)
            return refuse(err,
                          "memory range %u: 0x%llx + 0x%llx bytes on the stream, 0x%llx + "
                          "0x%llx here",
                          i, (unsigned long long)s->mem.r[i].gpa,
                          (unsigned long long)s->mem.r[i].size, (unsigned long long)l->mem.r[i].gpa,
                          (unsigned long long)l->mem.r[i].size);
    if (s->ndevs != l->ndevs) {
        /* Name the first device that differs: that is what the user fixes. */
        uint32_t i = 0;
        while (i < s->ndevs && i < l->ndevs && !strcmp(s->devs[i].type, l->devs[i].type) &&
               s->devs[i].instance == l->devs[i].instance)
            i++;
        if (i < l->ndevs && (i >= s->ndevs || strcmp(s->devs[i].type, l->devs[i].type)))
            return refuse(err,
                          "destination has %u devices, the stream %u: %s %u is not in the "
                          "stream",
                          l->ndevs, s->ndevs, l->devs[i].type, l->devs[i].instance);
        return refuse(err, "destination has %u devices, the stream %u: %s %u is missing here",
                      l->ndevs, s->ndevs, s->devs[i].type, s->devs[i].instance);
    }
    for (uint32_t i = 0; i < s->ndevs; i++) {
        int e = compat_dev(i, &s->devs[i], &l->devs[i], err);
        if (e < 0)
            return e;
    }
    return 0;
}
