/*
 * Per-device migration hooks and their orchestration (migration/hooks.h,
 * stream_hooks.c) with fake devices: registration rules, refusal before
 * anything is sent when a device cannot migrate, a whole migration with
 * pre-copy rounds, quiesce and dirty logging, and the destination's
 * refusals (unknown device, missing state, duplicate state, bad order).
 */
#include "migration/hooks.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "tests/unit/migration/test_stream.h"

#define FAKE_SEC     0x400U
#define FAKE_PRE_SEC 0x401U

struct fake_dev {
    uint32_t value;      /* the state */
    const char *why_not; /* cannot_migrate's answer */
    bool quiesced;
    unsigned rounds; /* pre-copy rounds saved */
    uint8_t pre[64]; /* pre-copy bytes received */
    size_t pre_len;
    bool reject; /* load refuses */
};

static int fake_save(void *dev, struct vstate_out *out)
{
    struct fake_dev *d = dev;
    vstate_put_u32(out, d->value);
    return 0;
}

static int fake_load(void *dev, uint16_t version, const uint8_t *buf, size_t len,
                     struct errbuf *err)
{
    struct fake_dev *d = dev;
    (void)version;
    (void)err;
    if (len != 4 || d->reject)
        return -EINVAL;
    d->value = le32_get(buf);
    return 0;
}

static const char *fake_why(void *dev)
{
    return ((struct fake_dev *)dev)->why_not;
}

static int fake_precopy_save(void *dev, struct vstate_out *out, bool *converged)
{
    struct fake_dev *d = dev;
    d->rounds++;
    vstate_put_bytes(out, d->rounds == 1 ? "round1" : "r2", d->rounds == 1 ? 6 : 2);
    *converged = d->rounds >= 2;
    return 0;
}

static int fake_precopy_load(void *dev, uint16_t version, const uint8_t *buf, size_t len,
                             struct errbuf *err)
{
    struct fake_dev *d = dev;
    (void)version;
    (void)err;
    if (len > sizeof(d->pre) - d->pre_len)
        return -E2BIG;
    memcpy(d->pre + d->pre_len, buf, len);
    d->pre_len += len;
    return 0;
}

static int fake_quiesce(void *dev)
{
    ((struct fake_dev *)dev)->quiesced = true;
    return 0;
}

static int fake_dirty(void *dev, mig_dirty_fn mark, void *ctx)
{
    (void)dev;
    return mark(ctx, 0x3000, 0x2000);
}

static const struct mig_device_ops fake_ops = {
    .type = "fake-a",
    .section_id = FAKE_SEC,
    .version = 2,
    .min_version = 1,
    .save = fake_save,
    .load = fake_load,
};

/* A passthrough-like device: every optional hook. */
static const struct mig_device_ops fake_pre_ops = {
    .type = "fake-vfio",
    .section_id = FAKE_PRE_SEC,
    .version = 1,
    .min_version = 1,
    .cannot_migrate = fake_why,
    .save = fake_save,
    .load = fake_load,
    .precopy_save = fake_precopy_save,
    .precopy_load = fake_precopy_load,
    .quiesce = fake_quiesce,
    .dirty_log = fake_dirty,
};

Test(mig_hooks, registration_rules)
{
    struct mig_registry reg;
    struct fake_dev d = {0};
    struct errbuf err = {0};
    mig_registry_init(&reg);

    struct mig_device_ops no_load = fake_ops;
    no_load.load = NULL;
    cr_assert_eq(mig_registry_add(&reg, &no_load, &d, 0, MIG_PLANE_BUILTIN, 0, &err), -EINVAL);
    cr_assert_str_eq(err.msg, "migration stream: device fake-a: no save/load hooks and no "
                              "reason why it cannot migrate");

    struct mig_device_ops half_pre = fake_ops;
    half_pre.precopy_save = fake_precopy_save;
    memset(&err, 0, sizeof(err));
    cr_assert_eq(mig_registry_add(&reg, &half_pre, &d, 0, MIG_PLANE_BUILTIN, 0, &err), -EINVAL);
    cr_assert(ts_err_has(&err, "pre-copy save and load hooks come in pairs"));

    struct mig_device_ops low_id = fake_ops;
    low_id.section_id = MIG_SEC_RAM;
    cr_assert_eq(mig_registry_add(&reg, &low_id, &d, 0, MIG_PLANE_BUILTIN, 0, &err), -EINVAL);

    cr_assert_eq(mig_registry_add(&reg, &fake_ops, &d, 0, MIG_PLANE_BUILTIN, 9, &err), -EINVAL);
    memset(&err, 0, sizeof(err));
    cr_assert_eq(mig_registry_add(&reg, &fake_ops, &d, 0, MIG_PLANE_VFIO, MIG_DEV_F_PORTABLE, &err),
                 -EINVAL);
    cr_assert_str_eq(err.msg, "migration stream: device fake-a: vfio state is never portable");

    memset(&err, 0, sizeof(err));
    cr_assert_eq(mig_registry_add(&reg, &fake_ops, &d, 0, MIG_PLANE_BUILTIN, 0, &err), 0);
    cr_assert_eq(mig_registry_add(&reg, &fake_ops, &d, 0, MIG_PLANE_BUILTIN, 0, &err), -EINVAL);
    cr_assert_str_eq(err.msg, "migration stream: device fake-a instance 0 registered twice");

    struct mig_device_ops thief = fake_pre_ops;
    thief.section_id = FAKE_SEC;
    memset(&err, 0, sizeof(err));
    cr_assert_eq(mig_registry_add(&reg, &thief, &d, 1, MIG_PLANE_BUILTIN, 0, &err), -EINVAL);
    cr_assert_str_eq(err.msg, "migration stream: section id 0x400 claimed by both fake-a and "
                              "fake-vfio");

    /* A device with no save/load is fine to register when it says why: it refuses later. */
    struct mig_device_ops unmigratable = {.type = "gpu",
                                          .section_id = 0x500,
                                          .version = 1,
                                          .min_version = 1,
                                          .cannot_migrate = fake_why};
    cr_assert_eq(mig_registry_add(&reg, &unmigratable, &d, 0, MIG_PLANE_VFIO, 0, &err), 0);
    cr_assert_eq(reg.n, 2);
}

Test(mig_hooks, refused_before_anything_is_sent)
{
    struct mig_registry reg;
    struct fake_dev a = {.value = 1}, v = {.why_not = "vfio device without migration support"};
    struct errbuf err = {0};
    struct mig_machine m = {
        .arch = MIG_ARCH_X86_64, .vcpus = 1, .mem = {.n = 1, .r = {{0, 1 << 20}}}};
    mig_registry_init(&reg);
    cr_assert_eq(mig_registry_add(&reg, &fake_ops, &a, 0, MIG_PLANE_BUILTIN, 0, &err), 0);
    cr_assert_eq(mig_registry_add(&reg, &fake_pre_ops, &v, 3, MIG_PLANE_VFIO, 0, &err), 0);

    struct mig_mem_transport mt;
    struct mig_transport t;
    struct mig_stream_writer w;
    mig_mem_transport_init(&mt, &t, NULL, 0, 1 << 20);
    mig_stream_writer_init(&w, &t);
    cr_assert_eq(mig_save_begin(&reg, &w, &m, 0, &err), -EOPNOTSUPP);
    cr_assert_str_eq(err.msg, "migration refused: device fake-vfio 3 cannot migrate: vfio "
                              "device without migration support");
    cr_assert_eq(mt.out_len, 0);
    /* Becoming unmigratable mid-way is caught at the end too. */
    v.why_not = NULL;
    memset(&err, 0, sizeof(err));
    cr_assert_eq(mig_save_begin(&reg, &w, &m, 0, &err), 0, "%s", err.msg);
    v.why_not = "lost its migration region";
    cr_assert_eq(mig_save_finish(&reg, &w, &err), -EOPNOTSUPP);
    cr_assert(ts_err_has(&err, "lost its migration region"));
    mig_mem_transport_free(&mt);
}

/* ---- A whole migration ---- */

#define RAM_SIZE (64U * 1024)

struct fake_ram {
    uint8_t bytes[RAM_SIZE];
    uint64_t dirty_gpa, dirty_len;
};

static int ram_sink(void *ctx, uint64_t gpa, const void *data, uint64_t len)
{
    struct fake_ram *r = ctx;
    cr_assert(gpa + len <= RAM_SIZE);
    if (data)
        memcpy(r->bytes + gpa, data, len);
    else
        memset(r->bytes + gpa, 0, len);
    return 0;
}

static int mark_dirty(void *ctx, uint64_t gpa, uint64_t len)
{
    struct fake_ram *r = ctx;
    r->dirty_gpa = gpa;
    r->dirty_len = len;
    return 0;
}

static void machine(struct mig_machine *m)
{
    memset(m, 0, sizeof(*m));
    m->arch = MIG_ARCH_X86_64;
    m->vcpus = 2;
    m->mem.n = 1;
    m->mem.r[0] = (struct mig_mem_range){0, RAM_SIZE};
}

/* The source: fake-a 0 and 1, fake-vfio 0; RAM; pre-copy until converged. */
static void run_source(struct mig_mem_transport *mt, struct fake_ram *ram, unsigned ninst)
{
    static struct fake_dev a0, a1, v0;
    struct mig_registry reg;
    struct mig_transport t;
    struct mig_stream_writer w;
    struct mig_ram_writer rw;
    struct mig_machine m;
    struct errbuf err = {0};
    a0 = (struct fake_dev){.value = 0xa0};
    a1 = (struct fake_dev){.value = 0xa1};
    v0 = (struct fake_dev){.value = 0xf0};
    machine(&m);
    mig_registry_init(&reg);
    cr_assert_eq(mig_registry_add(&reg, &fake_ops, &a0, 0, MIG_PLANE_BUILTIN, 0, &err), 0);
    if (ninst > 1)
        cr_assert_eq(mig_registry_add(&reg, &fake_ops, &a1, 1, MIG_PLANE_BUILTIN, 0, &err), 0);
    cr_assert_eq(mig_registry_add(&reg, &fake_pre_ops, &v0, 0, MIG_PLANE_VFIO, 0, &err), 0);

    mig_mem_transport_init(mt, &t, NULL, 0, 4 << 20);
    mig_stream_writer_init(&w, &t);
    cr_assert_eq(mig_save_begin(&reg, &w, &m, 0, &err), 0, "%s", err.msg);
    mig_ram_writer_init(&rw, &w);
    bool converged = false;
    unsigned rounds = 0;
    while (!converged) {
        cr_assert_eq(mig_ram_put(&rw, 0, ram->bytes, RAM_SIZE / MIG_PAGE_SIZE), 0);
        cr_assert_eq(mig_ram_flush(&rw), 0);
        cr_assert_eq(mig_save_precopy(&reg, &w, &converged, &err), 0, "%s", err.msg);
        rounds++;
    }
    cr_assert_eq(rounds, 2);
    cr_assert_eq(mig_quiesce(&reg, &err), 0);
    cr_assert(v0.quiesced);
    cr_assert_eq(mig_dirty_log(&reg, mark_dirty, ram, &err), 0);
    cr_assert(ram->dirty_gpa == 0x3000 && ram->dirty_len == 0x2000);
    ram->bytes[0x3000] = 0x77; /* DMA after the last round: sent again */
    cr_assert_eq(mig_ram_put(&rw, ram->dirty_gpa, ram->bytes + ram->dirty_gpa, 2), 0);
    cr_assert_eq(mig_ram_flush(&rw), 0);
    mig_ram_writer_free(&rw);
    cr_assert_eq(mig_save_finish(&reg, &w, &err), 0, "%s", err.msg);
}

struct dest {
    struct fake_dev a0, a1, v0;
    struct mig_registry reg;
    struct mig_machine local, streamed;
    struct mig_mem_transport mt;
    struct mig_transport t;
    struct mig_stream_reader r;
    struct fake_ram ram;
};

/* Destination with fake-a instances `i0`, `i1` (or only i0 when i1 < 0) and fake-vfio 0. */
static void dest_init(struct dest *d, const struct mig_mem_transport *src, int i0, int i1,
                      struct errbuf *err)
{
    memset(d, 0, sizeof(*d));
    machine(&d->local);
    mig_registry_init(&d->reg);
    cr_assert_eq(
        mig_registry_add(&d->reg, &fake_ops, &d->a0, (uint32_t)i0, MIG_PLANE_BUILTIN, 0, err), 0);
    if (i1 >= 0)
        cr_assert_eq(
            mig_registry_add(&d->reg, &fake_ops, &d->a1, (uint32_t)i1, MIG_PLANE_BUILTIN, 0, err),
            0);
    cr_assert_eq(mig_registry_add(&d->reg, &fake_pre_ops, &d->v0, 0, MIG_PLANE_VFIO, 0, err), 0);
    mig_registry_describe(&d->reg, &d->local);
    mig_mem_transport_init(&d->mt, &d->t, src->out, src->out_len, 0);
    mig_registry_reader_init(&d->reg, &d->r, &d->t, MIG_ARCH_X86_64, err);
}

static void dest_free(struct dest *d)
{
    mig_stream_reader_free(&d->r);
}

Test(mig_hooks, whole_migration)
{
    static struct fake_ram ram;
    static struct dest d;
    struct mig_mem_transport src;
    struct errbuf err = {0};
    for (size_t i = 0; i < RAM_SIZE; i += 512)
        ram.bytes[i] = (uint8_t)(i / 512 + 1);
    run_source(&src, &ram, 2);

    dest_init(&d, &src, 0, 1, &err);
    cr_assert_eq(mig_load_begin(&d.reg, &d.r, &d.local, &d.streamed, &err), 0, "%s", err.msg);
    cr_assert_eq(d.streamed.ndevs, 3);
    cr_assert_eq(mig_load_rest(&d.reg, &d.r, &d.local, ram_sink, &d.ram, &err), 0, "%s", err.msg);
    cr_assert_eq(d.a0.value, 0xa0);
    cr_assert_eq(d.a1.value, 0xa1);
    cr_assert_eq(d.v0.value, 0xf0);
    cr_assert_eq(d.v0.pre_len, 8);
    cr_assert_arr_eq(d.v0.pre, "round1r2", 8);
    cr_assert_eq(memcmp(d.ram.bytes, ram.bytes, RAM_SIZE), 0);
    dest_free(&d);
    mig_mem_transport_free(&src);
}

Test(mig_hooks, destination_refusals)
{
    static struct fake_ram ram;
    static struct dest d;
    struct mig_mem_transport src;
    struct mig_section s;
    struct errbuf err = {0};
    run_source(&src, &ram, 2);

    /* Compatibility first: an instance the destination does not have. */
    dest_init(&d, &src, 0, 5, &err);
    cr_assert_eq(mig_load_begin(&d.reg, &d.r, &d.local, &d.streamed, &err), -EPROTO);
    cr_assert_str_eq(err.msg, "migration stream: incompatible destination: device 1 (fake-a): "
                              "instance 1 on the stream, 5 here");
    dest_free(&d);

    /* The same, behind a destination that skipped the check: the dispatcher still refuses. */
    memset(&err, 0, sizeof(err));
    dest_init(&d, &src, 0, 5, &err);
    cr_assert_eq(mig_stream_read_header(&d.r, NULL), 0);
    cr_assert_eq(mig_stream_read_section(&d.r, &s), 0);
    cr_assert_eq(mig_load_rest(&d.reg, &d.r, &d.local, ram_sink, &d.ram, &err), -EPROTO);
    cr_assert_str_eq(err.msg, "migration stream: section \"fake-a\" instance 1: no such device "
                              "here");
    dest_free(&d);

    /* A device whose state never came. */
    mig_mem_transport_free(&src);
    run_source(&src, &ram, 1);
    memset(&err, 0, sizeof(err));
    dest_init(&d, &src, 0, 1, &err);
    cr_assert_eq(mig_stream_read_header(&d.r, NULL), 0);
    cr_assert_eq(mig_stream_read_section(&d.r, &s), 0);
    cr_assert_eq(mig_load_rest(&d.reg, &d.r, &d.local, ram_sink, &d.ram, &err), -EPROTO);
    cr_assert_str_eq(err.msg, "migration stream: device fake-a 1: no state in the stream");
    dest_free(&d);

    /* A device that refuses its state. */
    memset(&err, 0, sizeof(err));
    dest_init(&d, &src, 0, -1, &err);
    d.a0.reject = true;
    cr_assert_eq(mig_load_begin(&d.reg, &d.r, &d.local, &d.streamed, &err), 0, "%s", err.msg);
    cr_assert_eq(mig_load_rest(&d.reg, &d.r, &d.local, ram_sink, &d.ram, &err), -EINVAL);
    cr_assert(ts_err_has(&err, "section \"fake-a\" instance 0: the device refused its state"), "%s",
              err.msg);
    dest_free(&d);

    /* RAM outside the destination's layout: a smaller destination that skipped the check. */
    memset(&err, 0, sizeof(err));
    dest_init(&d, &src, 0, -1, &err);
    d.local.mem.r[0].size = RAM_SIZE / 2;
    cr_assert_eq(mig_stream_read_header(&d.r, NULL), 0);
    cr_assert_eq(mig_stream_read_section(&d.r, &s), 0);
    cr_assert_eq(mig_load_rest(&d.reg, &d.r, &d.local, ram_sink, &d.ram, &err), -ERANGE);
    cr_assert(ts_err_has(&err, "is outside the destination's RAM"), "%s", err.msg);
    dest_free(&d);
    mig_mem_transport_free(&src);
}

Test(mig_hooks, section_order_rules)
{
    static struct dest d;
    struct mig_mem_transport fake_src = {0};
    struct ts_forge f;
    struct errbuf err = {0};
    uint8_t state[4] = {1, 2, 3, 4};
    struct vstate_out mo;
    struct mig_machine m;

    /* A device section before MACHINE. */
    ts_forge_init(&f);
    ts_good_header(&f);
    ts_section(&f, FAKE_SEC, 0, 1, MIG_SEC_F_MANDATORY, state, 4);
    ts_end(&f, 1);
    fake_src.out = f.o.buf;
    fake_src.out_len = f.o.len;
    dest_init(&d, &fake_src, 0, -1, &err);
    cr_assert_eq(mig_load_begin(&d.reg, &d.r, &d.local, &d.streamed, &err), -EBADMSG);
    cr_assert_str_eq(err.msg, "migration stream: the first section is not the machine "
                              "description");
    dest_free(&d);
    ts_forge_free(&f);

    /* MACHINE, then a device's state twice, then pre-copy after the final state. */
    machine(&m);
    memset(&err, 0, sizeof(err));
    dest_init(&d, &fake_src, 0, -1, &err);
    m = d.local;
    vstate_out_init(&mo);
    cr_assert_eq(mig_machine_encode(&m, &mo), 0);
    static const struct {
        uint32_t id;
        uint16_t flags;
        const char *msg;
    } cases[] = {
        {FAKE_SEC, MIG_SEC_F_MANDATORY, "section \"fake-a\" instance 0: a second state after"},
        {FAKE_SEC, MIG_SEC_F_MANDATORY | MIG_SEC_F_PRECOPY,
         "section \"fake-a\" instance 0: pre-copy data for a device without any"},
        {FAKE_PRE_SEC, MIG_SEC_F_MANDATORY | MIG_SEC_F_PRECOPY,
         "section \"fake-vfio\" instance 0: pre-copy data after the device's final state"},
        {MIG_SEC_MACHINE, MIG_SEC_F_MANDATORY, "a second machine description"},
        {MIG_SEC_RAM, MIG_SEC_F_MANDATORY | MIG_SEC_F_PRECOPY,
         "section \"ram\" instance 0: the pre-copy flag belongs to device sections"},
    };
    dest_free(&d);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ts_forge_init(&f);
        ts_good_header(&f);
        ts_section(&f, MIG_SEC_MACHINE, 0, 1, MIG_SEC_F_MANDATORY, mo.buf, mo.len);
        ts_section(&f, FAKE_SEC, 0, 1, MIG_SEC_F_MANDATORY, state, 4);
        ts_section(&f, FAKE_PRE_SEC, 0, 1, MIG_SEC_F_MANDATORY, state, 4);
        ts_section(&f, cases[i].id, 0, 1, cases[i].flags,
                   cases[i].id == MIG_SEC_MACHINE ? mo.buf : state,
                   cases[i].id == MIG_SEC_MACHINE ? mo.len : 4);
        ts_end(&f, 4);
        fake_src.out = f.o.buf;
        fake_src.out_len = f.o.len;
        memset(&err, 0, sizeof(err));
        dest_init(&d, &fake_src, 0, -1, &err);
        cr_assert_eq(mig_load_begin(&d.reg, &d.r, &d.local, &d.streamed, &err), 0, "%s", err.msg);
        cr_assert_lt(mig_load_rest(&d.reg, &d.r, &d.local, ram_sink, &d.ram, &err), 0);
        cr_assert(ts_err_has(&err, cases[i].msg), "case %zu: %s", i, err.msg);
        dest_free(&d);
        ts_forge_free(&f);
    }
    vstate_out_free(&mo);
}
