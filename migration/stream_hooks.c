/*
 * Orchestration of the per-device migration hooks (hooks.h): the registry,
 * the source's rounds and the destination's dispatch of sections to devices.
 *
 * Why in migration/: the order of sections and the rules "no device left
 * behind" and "no state for a device we do not have" are part of the format,
 * not of any device.  Devices only see their own bytes.
 */
#include "migration/hooks.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define PFX "migration stream: "

/* The stream's own sections, known to every reader. */
static void init_known(struct mig_registry *reg)
{
    if (reg->nknown)
        return;
    reg->known[0] = (struct mig_section_desc){MIG_SEC_MACHINE, "machine", MIG_MACHINE_VERSION,
                                              MIG_MACHINE_VERSION, MIG_MACHINE_MAX_LEN};
    reg->known[1] = (struct mig_section_desc){MIG_SEC_RAM, "ram", MIG_RAM_VERSION, MIG_RAM_VERSION,
                                              MIG_RAM_MAX_LEN};
    reg->nknown = 2;
}

void mig_registry_init(struct mig_registry *reg)
{
    memset(reg, 0, sizeof(*reg));
    init_known(reg);
}

static int add_known(struct mig_registry *reg, const struct mig_device_ops *ops, struct errbuf *err)
{
    for (size_t i = 0; i < reg->nknown; i++) {
        if (reg->known[i].id != ops->section_id)
            continue;
        if (strcmp(reg->known[i].name, ops->type) != 0 ||
            reg->known[i].min_version != ops->min_version ||
            reg->known[i].max_version != ops->version)
            return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                           PFX "section id 0x%x claimed by both %s and %s", ops->section_id,
                           reg->known[i].name, ops->type);
        return 0;
    }
    reg->known[reg->nknown++] = (struct mig_section_desc){
        .id = ops->section_id,
        .name = ops->type,
        .min_version = ops->min_version,
        .max_version = ops->version,
        .max_len = MIG_DEVICE_MAX_LEN,
    };
    return 0;
}

int mig_registry_add(struct mig_registry *reg, const struct mig_device_ops *ops, void *dev,
                     uint32_t instance, uint8_t plane, uint8_t flags, struct errbuf *err)
{
    init_known(reg);
    if (!ops || !ops->type || strlen(ops->type) == 0 || strlen(ops->type) > MIG_NAME_MAX)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, PFX "device without a valid type name");
    if (ops->section_id < MIG_SEC_VCPU || ops->section_id == MIG_SEC_END || ops->min_version == 0 ||
        ops->min_version > ops->version)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                       PFX "device %s: bad section id 0x%x or versions %u..%u", ops->type,
                       ops->section_id, ops->min_version, ops->version);
    if ((!ops->save || !ops->load) && !ops->cannot_migrate)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                       PFX "device %s: no save/load hooks and no reason why it cannot migrate",
                       ops->type);
    if (!ops->precopy_save != !ops->precopy_load)
        return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                       PFX "device %s: pre-copy save and load hooks come in pairs", ops->type);
    if (plane < MIG_PLANE_BUILTIN || plane > MIG_PLANE_VFIO || (flags & ~MIG_DEV_F_KNOWN))
        return err_set(err, WISP_EXIT_FAILURE, EINVAL, PFX "device %s: bad data plane or flags",
                       ops->type);
    if (plane == MIG_PLANE_VFIO && (flags & MIG_DEV_F_PORTABLE))
        return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                       PFX "device %s: vfio state is never portable", ops->type);
    for (uint32_t i = 0; i < reg->n; i++)
        if (reg->devs[i].ops->section_id == ops->section_id && reg->devs[i].instance == instance)
            return err_set(err, WISP_EXIT_FAILURE, EINVAL,
                           PFX "device %s instance %u registered twice", ops->type, instance);
    if (reg->n >= MIG_MAX_DEVICES)
        return err_set(err, WISP_EXIT_FAILURE, ENOSPC, PFX "more than %u devices", MIG_MAX_DEVICES);
    int e = add_known(reg, ops, err);
    if (e < 0)
        return e;
    reg->devs[reg->n++] = (struct mig_dev_entry){
        .ops = ops, .dev = dev, .instance = instance, .plane = plane, .flags = flags};
    return 0;
}

int mig_registry_check(const struct mig_registry *reg, struct errbuf *err)
{
    for (uint32_t i = 0; i < reg->n; i++) {
        const struct mig_dev_entry *d = &reg->devs[i];
        const char *why = d->ops->cannot_migrate ? d->ops->cannot_migrate(d->dev) : NULL;
        if (!why && (!d->ops->save || !d->ops->load))
            why = "it has no save/load hooks"; /* registration forbids this; belt and braces */
        if (why)
            return err_set(err, WISP_EXIT_FAILURE, EOPNOTSUPP,
                           "migration refused: device %s %u cannot migrate: %s", d->ops->type,
                           d->instance, why);
    }
    return 0;
}

void mig_registry_describe(const struct mig_registry *reg, struct mig_machine *m)
{
    m->ndevs = reg->n;
    for (uint32_t i = 0; i < reg->n; i++) {
        const struct mig_dev_entry *d = &reg->devs[i];
        struct mig_dev_desc *o = &m->devs[i];
        memset(o, 0, sizeof(*o));
        snprintf(o->type, sizeof(o->type), "%s", d->ops->type);
        o->section_id = d->ops->section_id;
        o->instance = d->instance;
        o->version = d->ops->version;
        o->min_version = d->ops->min_version;
        o->plane = d->plane;
        o->flags = d->flags;
    }
}

void mig_registry_reader_init(struct mig_registry *reg, struct mig_stream_reader *r,
                              const struct mig_transport *t, uint16_t arch, struct errbuf *err)
{
    init_known(reg);
    mig_stream_reader_init(r, t, reg->known, reg->nknown, arch, err);
}

/* ---- Source ---- */

static int write_fail(struct errbuf *err, int e, const char *what, const char *type,
                      uint32_t instance)
{
    return err_set(err, WISP_EXIT_FAILURE, -e, PFX "writing %s %s %u: %s", what, type, instance,
                   strerror(-e));
}

int mig_save_begin(struct mig_registry *reg, struct mig_stream_writer *w,
                   const struct mig_machine *m, uint32_t stream_flags, struct errbuf *err)
{
    struct mig_machine full = *m;
    struct vstate_out o;
    int e = mig_registry_check(reg, err);
    if (e < 0)
        return e;
    mig_registry_describe(reg, &full);
    vstate_out_init(&o);
    e = mig_machine_encode(&full, &o);
    if (e < 0) {
        err_set(err, WISP_EXIT_FAILURE, -e, PFX "the machine description is invalid");
        goto out;
    }
    e = mig_stream_write_header(w, full.arch, stream_flags);
    if (e == 0)
        e = mig_stream_write_section(w, MIG_SEC_MACHINE, 0, MIG_MACHINE_VERSION,
                                     MIG_SEC_F_MANDATORY, o.buf, o.len);
    if (e < 0)
        err_set(err, WISP_EXIT_FAILURE, -e, PFX "writing the header: %s", strerror(-e));
out:
    vstate_out_free(&o);
    return e;
}

int mig_save_precopy(struct mig_registry *reg, struct mig_stream_writer *w, bool *converged,
                     struct errbuf *err)
{
    *converged = true;
    for (uint32_t i = 0; i < reg->n; i++) {
        struct mig_dev_entry *d = &reg->devs[i];
        if (!d->ops->precopy_save)
            continue;
        struct vstate_out o;
        bool done = false;
        vstate_out_init(&o);
        int e = d->ops->precopy_save(d->dev, &o, &done);
        if (e == 0 && o.err)
            e = o.err;
        if (e < 0) {
            vstate_out_free(&o);
            return err_set(err, WISP_EXIT_FAILURE, -e, PFX "device %s %u: pre-copy failed: %s",
                           d->ops->type, d->instance, strerror(-e));
        }
        if (o.len)
            e = mig_stream_write_section(w, d->ops->section_id, d->instance, d->ops->version,
                                         MIG_SEC_F_MANDATORY | MIG_SEC_F_PRECOPY, o.buf, o.len);
        vstate_out_free(&o);
        if (e < 0)
            return write_fail(err, e, "pre-copy data of", d->ops->type, d->instance);
        *converged &= done;
    }
    return 0;
}

int mig_quiesce(struct mig_registry *reg, struct errbuf *err)
{
    for (uint32_t i = 0; i < reg->n; i++) {
        struct mig_dev_entry *d = &reg->devs[i];
        int e = d->ops->quiesce ? d->ops->quiesce(d->dev) : 0;
        if (e < 0)
            return err_set(err, WISP_EXIT_FAILURE, -e, PFX "device %s %u: quiesce failed: %s",
                           d->ops->type, d->instance, strerror(-e));
    }
    return 0;
}

void mig_resume_devices(struct mig_registry *reg)
{
    for (uint32_t i = 0; i < reg->n; i++)
        if (reg->devs[i].ops->resume)
            reg->devs[i].ops->resume(reg->devs[i].dev);
}

int mig_dirty_log(struct mig_registry *reg, mig_dirty_fn mark, void *ctx, struct errbuf *err)
{
    for (uint32_t i = 0; i < reg->n; i++) {
        struct mig_dev_entry *d = &reg->devs[i];
        int e = d->ops->dirty_log ? d->ops->dirty_log(d->dev, mark, ctx) : 0;
        if (e < 0)
            return err_set(err, WISP_EXIT_FAILURE, -e,
                           PFX "device %s %u: dirty page log failed: %s", d->ops->type, d->instance,
                           strerror(-e));
    }
    return 0;
}

int mig_save_finish(struct mig_registry *reg, struct mig_stream_writer *w, struct errbuf *err)
{
    int e = mig_registry_check(reg, err);
    if (e < 0)
        return e;
    for (uint32_t i = 0; i < reg->n; i++) {
        struct mig_dev_entry *d = &reg->devs[i];
        struct vstate_out o;
        vstate_out_init(&o);
        e = d->ops->save(d->dev, &o);
        if (e == 0 && o.err)
            e = o.err;
        if (e == 0 && o.len > MIG_DEVICE_MAX_LEN)
            e = -E2BIG;
        if (e < 0) {
            vstate_out_free(&o);
            return err_set(err, WISP_EXIT_FAILURE, -e, PFX "device %s %u: save failed: %s",
                           d->ops->type, d->instance, strerror(-e));
        }
        e = mig_stream_write_section(w, d->ops->section_id, d->instance, d->ops->version,
                                     MIG_SEC_F_MANDATORY, o.buf, o.len);
        vstate_out_free(&o);
        if (e < 0)
            return write_fail(err, e, "the state of", d->ops->type, d->instance);
    }
    e = mig_stream_write_end(w);
    if (e < 0)
        return err_set(err, WISP_EXIT_FAILURE, -e, PFX "writing the end marker: %s", strerror(-e));
    return 0;
}

/* ---- Destination ---- */

int mig_load_begin(struct mig_registry *reg, struct mig_stream_reader *r,
                   const struct mig_machine *local, struct mig_machine *stream_m,
                   struct errbuf *err)
{
    struct mig_section s;
    /* The devices compared are the ones registered here, whatever local->devs says. */
    struct mig_machine here = *local;
    mig_registry_describe(reg, &here);
    int e = mig_stream_read_header(r, NULL);
    if (e == 0)
        e = mig_stream_read_section(r, &s);
    if (e < 0)
        return e;
    if (s.id != MIG_SEC_MACHINE)
        return err_set(err, WISP_EXIT_USAGE, EBADMSG,
                       PFX "the first section is not the machine description");
    e = mig_machine_decode(&s, stream_m, err);
    if (e == 0)
        e = mig_compat_check(stream_m, &here, err);
    return e;
}

static struct mig_dev_entry *find_dev(struct mig_registry *reg, uint32_t id, uint32_t instance)
{
    for (uint32_t i = 0; i < reg->n; i++)
        if (reg->devs[i].ops->section_id == id && reg->devs[i].instance == instance)
            return &reg->devs[i];
    return NULL;
}

static int load_dev(struct mig_registry *reg, const struct mig_section *s, struct errbuf *err)
{
    struct mig_dev_entry *d = find_dev(reg, s->id, s->instance);
    const char *name = s->desc->name;
    if (!d)
        return err_set(err, WISP_EXIT_USAGE, EPROTO,
                       PFX "section \"%s\" instance %u: no such device here", name, s->instance);
    bool pre = s->flags & MIG_SEC_F_PRECOPY;
    if (pre && !d->ops->precopy_load)
        return err_set(err, WISP_EXIT_USAGE, EPROTO,
                       PFX "section \"%s\" instance %u: pre-copy data for a device without any",
                       name, s->instance);
    if (d->loaded)
        return err_set(err, WISP_EXIT_USAGE, EPROTO,
                       PFX "section \"%s\" instance %u: %s after the device's final state", name,
                       s->instance, pre ? "pre-copy data" : "a second state");
    int e = pre ? d->ops->precopy_load(d->dev, s->version, s->payload, s->len, err)
                : d->ops->load(d->dev, s->version, s->payload, s->len, err);
    if (e < 0)
        return err_set(err, WISP_EXIT_USAGE, -e,
                       PFX "section \"%s\" instance %u: the device refused its state: %s", name,
                       s->instance, strerror(-e));
    if (!pre)
        d->loaded = true;
    return 0;
}

int mig_load_rest(struct mig_registry *reg, struct mig_stream_reader *r,
                  const struct mig_machine *local, mig_ram_sink_fn sink, void *sink_ctx,
                  struct errbuf *err)
{
    for (;;) {
        struct mig_section s;
        int e = mig_stream_read_section(r, &s);
        if (e < 0)
            return e;
        if (s.id == MIG_SEC_END)
            break;
        if (s.id == MIG_SEC_MACHINE)
            return err_set(err, WISP_EXIT_USAGE, EBADMSG,
                           PFX "section \"machine\" instance %u: a second machine description",
                           s.instance);
        if (s.id == MIG_SEC_RAM && (s.flags & MIG_SEC_F_PRECOPY))
            return err_set(err, WISP_EXIT_USAGE, EBADMSG,
                           PFX "section \"ram\" instance %u: the pre-copy flag belongs to "
                               "device sections",
                           s.instance);
        if (s.id == MIG_SEC_RAM)
            e = mig_ram_load(&s, &local->mem, sink, sink_ctx, err);
        else
            e = load_dev(reg, &s, err);
        if (e < 0)
            return e;
    }
    for (uint32_t i = 0; i < reg->n; i++)
        if (!reg->devs[i].loaded)
            return err_set(err, WISP_EXIT_USAGE, EPROTO, PFX "device %s %u: no state in the stream",
                           reg->devs[i].ops->type, reg->devs[i].instance);
    return mig_stream_read_finish(r);
}
