/*
 * The MACHINE section (migration/stream_machine.c): encoding, the decoder's
 * refusals, and mig_compat_check refusing each kind of mismatch by name.
 */
#include "migration/stream_sections.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "tests/unit/migration/test_stream.h"

static void sample(struct mig_machine *m)
{
    memset(m, 0, sizeof(*m));
    m->arch = MIG_ARCH_X86_64;
    m->vcpus = 4;
    strcpy(m->cpu_template, "T2");
    m->mem.n = 2;
    m->mem.r[0] = (struct mig_mem_range){0, 3ULL << 30};
    m->mem.r[1] = (struct mig_mem_range){4ULL << 30, 1ULL << 30};
    m->ndevs = 3;
    m->devs[0] = (struct mig_dev_desc){"serial", MIG_SEC_SERIAL, 0, 1, 1, MIG_PLANE_BUILTIN, 0};
    m->devs[1] = (struct mig_dev_desc){"virtio-net",      MIG_SEC_VIRTIO_NET, 0, 1, 1,
                                       MIG_PLANE_BUILTIN, MIG_DEV_F_PORTABLE};
    m->devs[2] =
        (struct mig_dev_desc){"virtio-blk", MIG_SEC_VIRTIO_BLK, 1, 2, 1, MIG_PLANE_VFIO, 0};
}

static void encode(const struct mig_machine *m, struct vstate_out *o)
{
    vstate_out_init(o);
    cr_assert_eq(mig_machine_encode(m, o), 0);
}

static int decode(const void *p, size_t len, struct mig_machine *m, struct errbuf *err)
{
    struct mig_section s = {
        .id = MIG_SEC_MACHINE, .version = 1, .len = (uint32_t)len, .payload = p};
    return mig_machine_decode(&s, m, err);
}

Test(mig_machine, round_trip)
{
    struct mig_machine a, b;
    struct vstate_out o;
    struct errbuf err = {0};
    sample(&a);
    encode(&a, &o);
    cr_assert_eq(decode(o.buf, o.len, &b, &err), 0, "%s", err.msg);
    cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0);
    cr_assert_eq(mig_compat_check(&b, &a, &err), 0, "%s", err.msg);
    vstate_out_free(&o);
}

Test(mig_machine, encoder_refuses_invalid)
{
    struct mig_machine m;
    struct vstate_out o;
    vstate_out_init(&o);
    sample(&m);
    m.vcpus = 0;
    cr_assert_eq(mig_machine_encode(&m, &o), -EINVAL);
    sample(&m);
    strcpy(m.devs[1].type, "bad name");
    cr_assert_eq(mig_machine_encode(&m, &o), -EINVAL);
    sample(&m);
    m.devs[2].section_id = MIG_SEC_VIRTIO_NET;
    m.devs[2].instance = 0; /* the same (id, instance) as device 1 */
    cr_assert_eq(mig_machine_encode(&m, &o), -EINVAL);
    sample(&m);
    m.devs[2].flags = MIG_DEV_F_PORTABLE; /* a vfio blob is never portable */
    cr_assert_eq(mig_machine_encode(&m, &o), -EINVAL);
    sample(&m);
    m.mem.r[1].gpa = 1ULL << 30; /* overlaps range 0 */
    cr_assert_eq(mig_machine_encode(&m, &o), -EINVAL);
    cr_assert_eq(o.len, 0);
    vstate_out_free(&o);
}

Test(mig_machine, decoder_refusals)
{
    struct mig_machine a, b;
    struct vstate_out o;
    sample(&a);
    encode(&a, &o);

    /* Cut anywhere: refused, never read past the end. */
    for (size_t len = 0; len < o.len; len++) {
        struct errbuf err = {0};
        cr_assert_eq(decode(o.buf, len, &b, &err), -EBADMSG, "len %zu", len);
        cr_assert(ts_err_has(&err, "migration stream: section \"machine\": "), "%s", err.msg);
    }
    /* One byte too many. */
    struct errbuf err = {0};
    vstate_put_u8(&o, 0);
    cr_assert_eq(decode(o.buf, o.len, &b, &err), -EBADMSG);
    cr_assert_str_eq(err.msg, "migration stream: section \"machine\": trailing bytes");
    o.len--;

    /* Offsets: arch 0, reserved 2, vcpus 4, template len 8, "T2" 9, nranges 11. */
    memset(&err, 0, sizeof(err));
    o.buf[2] = 1;
    cr_assert_eq(decode(o.buf, o.len, &b, &err), -EBADMSG);
    cr_assert(ts_err_has(&err, "reserved field is not zero"));
    o.buf[2] = 0;

    memset(&err, 0, sizeof(err));
    o.buf[9] = '/';
    cr_assert_eq(decode(o.buf, o.len, &b, &err), -EBADMSG);
    cr_assert(ts_err_has(&err, "CPU template name malformed"), "%s", err.msg);
    o.buf[9] = 'T';

    memset(&err, 0, sizeof(err));
    le32_put(o.buf + 11, 0xFFFFFFFF);
    cr_assert_eq(decode(o.buf, o.len, &b, &err), -EBADMSG);
    cr_assert(ts_err_has(&err, "too many memory ranges"), "%s", err.msg);
    le32_put(o.buf + 11, 2);

    /* nvcpus 0 reaches the semantic check. */
    memset(&err, 0, sizeof(err));
    le32_put(o.buf + 4, 0);
    cr_assert_eq(decode(o.buf, o.len, &b, &err), -EBADMSG);
    cr_assert(ts_err_has(&err, "0 vCPUs (1 to 1024 allowed)"), "%s", err.msg);
    le32_put(o.buf + 4, 4);

    memset(&err, 0, sizeof(err));
    cr_assert_eq(decode(o.buf, o.len, &b, &err), 0, "%s", err.msg);
    vstate_out_free(&o);
}

/* Run the check on a modified copy of the stream's description. */
static void expect_refusal(void (*edit)(struct mig_machine *local), const char *msg)
{
    struct mig_machine s, l;
    struct errbuf err = {0};
    sample(&s);
    sample(&l);
    edit(&l);
    cr_assert_eq(mig_compat_check(&s, &l, &err), -EPROTO, "%s", msg);
    cr_assert_str_eq(err.msg, msg);
}

static void fewer_vcpus(struct mig_machine *l)
{
    l->vcpus = 2;
}
static void other_arch(struct mig_machine *l)
{
    l->arch = MIG_ARCH_AARCH64;
}
static void other_template(struct mig_machine *l)
{
    strcpy(l->cpu_template, "T1");
}
static void no_template(struct mig_machine *l)
{
    l->cpu_template[0] = '\0';
}
static void one_range(struct mig_machine *l)
{
    l->mem.n = 1;
}
static void bigger_range(struct mig_machine *l)
{
    l->mem.r[1].size = 2ULL << 30;
}
static void fewer_devices(struct mig_machine *l)
{
    l->ndevs = 2;
}
static void more_devices(struct mig_machine *l)
{
    l->devs[3] = l->devs[2];
    l->devs[2] = (struct mig_dev_desc){"virtio-rng",      MIG_SEC_VIRTIO_RNG, 0, 1, 1,
                                       MIG_PLANE_BUILTIN, MIG_DEV_F_PORTABLE};
    l->ndevs = 4;
}
static void other_type(struct mig_machine *l)
{
    l->devs[1] = (struct mig_dev_desc){"virtio-blk",      MIG_SEC_VIRTIO_BLK, 0, 1, 1,
                                       MIG_PLANE_BUILTIN, MIG_DEV_F_PORTABLE};
}
static void other_section_id(struct mig_machine *l)
{
    l->devs[0].section_id = MIG_SEC_I8042;
}
static void other_instance(struct mig_machine *l)
{
    l->devs[2].instance = 7;
}
static void older_wisp(struct mig_machine *l)
{
    l->devs[2].version = 1;
}
static void newer_wisp(struct mig_machine *l)
{
    l->devs[2].version = 5;
    l->devs[2].min_version = 3;
}
static void vfio_to_vdpa(struct mig_machine *l)
{
    l->devs[2].plane = MIG_PLANE_VDPA;
}
static void net_to_vhost_user_not_portable(struct mig_machine *l)
{
    l->devs[1].plane = MIG_PLANE_VHOST_USER;
    l->devs[1].flags = 0;
}

Test(mig_machine, compat_refusals_by_name)
{
    expect_refusal(fewer_vcpus,
                   "migration stream: incompatible destination: destination has 2 vCPUs, the "
                   "stream 4");
    expect_refusal(other_arch, "migration stream: incompatible destination: architecture x86_64 "
                               "on the stream, aarch64 here");
    expect_refusal(other_template, "migration stream: incompatible destination: CPU template T2 "
                                   "not available here (destination runs T1)");
    expect_refusal(no_template, "migration stream: incompatible destination: CPU template T2 "
                                "not available here (destination runs none)");
    expect_refusal(one_range, "migration stream: incompatible destination: destination has 1 "
                              "memory ranges, the stream 2");
    expect_refusal(bigger_range,
                   "migration stream: incompatible destination: memory range 1: 0x100000000 + "
                   "0x40000000 bytes on the stream, 0x100000000 + 0x80000000 here");
    expect_refusal(fewer_devices, "migration stream: incompatible destination: destination has "
                                  "2 devices, the stream 3: virtio-blk 1 is missing here");
    expect_refusal(more_devices, "migration stream: incompatible destination: destination has "
                                 "4 devices, the stream 3: virtio-rng 0 is not in the stream");
    expect_refusal(other_type, "migration stream: incompatible destination: device 1: "
                               "virtio-net on the stream, virtio-blk here");
    expect_refusal(other_section_id, "migration stream: incompatible destination: device 0 "
                                     "(serial): section id 0x110 on the stream, 0x111 here");
    expect_refusal(other_instance, "migration stream: incompatible destination: device 2 "
                                   "(virtio-blk): instance 1 on the stream, 7 here");
    expect_refusal(older_wisp,
                   "migration stream: incompatible destination: device 2 (virtio-blk 1): state "
                   "version 2 on the stream is newer than this wisp (max 1)");
    expect_refusal(newer_wisp,
                   "migration stream: incompatible destination: device 2 (virtio-blk 1): state "
                   "version 2 on the stream is older than this wisp loads (min 3)");
    expect_refusal(vfio_to_vdpa,
                   "migration stream: incompatible destination: device 2 (virtio-blk 1): data "
                   "plane vfio on the stream, vdpa here, and its state is not portable between "
                   "data planes");
    expect_refusal(net_to_vhost_user_not_portable,
                   "migration stream: incompatible destination: device 1 (virtio-net 0): data "
                   "plane builtin on the stream, vhost-user here, and its state is not portable "
                   "between data planes");
}

Test(mig_machine, portable_state_changes_data_plane)
{
    struct mig_machine s, l;
    struct errbuf err = {0};
    sample(&s);
    sample(&l);
    l.devs[1].plane = MIG_PLANE_VDPA; /* virtio-net: standard state, portable on both sides */
    cr_assert_eq(mig_compat_check(&s, &l, &err), 0, "%s", err.msg);
    /* The stream's side must declare it too. */
    s.devs[1].flags = 0;
    cr_assert_eq(mig_compat_check(&s, &l, &err), -EPROTO);
}
