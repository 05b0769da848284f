/*
 * virtio-blk migration hooks: quiesce completes what is in flight and stops
 * popping, save refuses while requests are in flight, a save/load round
 * trip onto the same disk works, and load refuses a disk that differs
 * (capacity, read-only, ID string) or a damaged section.
 */
#include "devices/virtio/blk.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/blk_fixture.h"

static struct blk_fx fx, fx2;

static void fini(void)
{
    blk_fx_fini(&fx);
    if (fx2.path[0])
        blk_fx_fini(&fx2);
}

TestSuite(virtio_blk_migrate, .fini = fini, .timeout = 30);

static int save(struct virtio_dev *d, struct vstate_out *o)
{
    vstate_out_init(o);
    pthread_mutex_lock(&d->lock);
    int r = d->ops->save(d, o);
    pthread_mutex_unlock(&d->lock);
    return r;
}

static int load(struct virtio_dev *d, const void *buf, size_t len)
{
    struct vstate_in in;
    vstate_in_init(&in, buf, len);
    pthread_mutex_lock(&d->lock);
    int r = d->ops->load(d, &in);
    pthread_mutex_unlock(&d->lock);
    return r;
}

/* A second device on its own image of `size` bytes. */
static void make_other(uint64_t size, bool ro, const char *serial)
{
    struct blk_fx_opts o = {.image_size = size, .read_only = ro, .serial = serial};
    blk_fx_init(&fx2, &o);
}

Test(virtio_blk_migrate, quiesce_completes_in_flight_and_stops_popping)
{
    blk_fx_init(&fx, NULL);
    struct blk_fx_req w[32];
    for (unsigned i = 0; i < 32; i++)
        w[i] = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, i * 8, 4096, (uint8_t)(i + 1));
    blk_fx_kick(&fx);
    cr_assert_eq(vqb_used_idx(&fx.vq), 0);

    virtio_blk_quiesce(fx.dev);
    cr_assert_eq(vqb_used_idx(&fx.vq), 32, "everything in flight completed to the guest");
    for (unsigned i = 0; i < 32; i++)
        cr_assert_eq(blk_fx_status(&fx, &w[i]), VIRTIO_BLK_S_OK);
    cr_assert_geq(fx.irqs, 1);

    /* Quiesced: a kick pops nothing. */
    struct blk_fx_req r = blk_fx_add(&fx, VIRTIO_BLK_T_IN, 0, 4096, 0);
    blk_fx_kick(&fx);
    blk_fx_pump(&fx, 20);
    cr_assert_eq(vqb_used_idx(&fx.vq), 32);
    struct vstate_out o;
    cr_assert_eq(save(fx.dev, &o), 0, "nothing in flight: save works");
    vstate_out_free(&o);

    virtio_blk_resume(fx.dev);
    blk_fx_wait_used(&fx, 33);
    cr_assert_eq(blk_fx_status(&fx, &r), VIRTIO_BLK_S_OK);
    cr_assert_eq(*blk_fx_host(&fx, r.data, 1), 1);
}

Test(virtio_blk_migrate, save_refuses_with_requests_in_flight)
{
    blk_fx_init(&fx, NULL);
    blk_fx_add(&fx, VIRTIO_BLK_T_IN, 0, 4096, 0);
    blk_fx_kick(&fx);
    struct vstate_out o;
    cr_assert_eq(save(fx.dev, &o), -EBUSY);
    vstate_out_free(&o);
    blk_fx_wait_used(&fx, 1);
    cr_assert_eq(save(fx.dev, &o), 0);
    vstate_out_free(&o);
}

Test(virtio_blk_migrate, round_trip_onto_the_same_disk)
{
    blk_fx_init(&fx, NULL);
    struct blk_fx_req w = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, 9, 512, 0x9e);
    blk_fx_run(&fx, 1);
    cr_assert_eq(blk_fx_status(&fx, &w), VIRTIO_BLK_S_OK);
    virtio_blk_quiesce(fx.dev);
    struct vstate_out o;
    cr_assert_eq(save(fx.dev, &o), 0);

    /* The destination opens the same image (same size, same id). */
    blk_fx_setup(&fx2, NULL);
    unlink(fx2.path);
    strcpy(fx2.path, fx.path);
    struct errbuf err = {0};
    struct virtio_blk_config cfg = {.id = "blk0"};
    cr_assert_eq(blk_fx_create(&fx2, &cfg, &err), 0, "%s", err.msg);
    close(fx2.img_fd);
    fx2.img_fd = -1; /* fx owns the file */
    cr_assert_eq(load(fx2.dev, o.buf, o.len), 0);

    /* It serves the guest's disk as before. */
    blk_fx_start(&fx2, 0, false);
    struct blk_fx_req r = blk_fx_add(&fx2, VIRTIO_BLK_T_IN, 9, 512, 0);
    blk_fx_run(&fx2, 1);
    cr_assert_eq(blk_fx_status(&fx2, &r), VIRTIO_BLK_S_OK);
    cr_assert_eq(*blk_fx_host(&fx2, r.data, 1), 0x9e);
    vstate_out_free(&o);
}

Test(virtio_blk_migrate, load_refuses_another_capacity)
{
    blk_fx_init(&fx, NULL);
    struct vstate_out o;
    cr_assert_eq(save(fx.dev, &o), 0);
    make_other(BLK_FX_DEFAULT_SIZE + 512, false, NULL);
    cr_assert_eq(load(fx2.dev, o.buf, o.len), -EINVAL);
    vstate_out_free(&o);
}

Test(virtio_blk_migrate, load_refuses_another_read_only_flag_or_id)
{
    blk_fx_init(&fx, NULL);
    struct vstate_out o;
    cr_assert_eq(save(fx.dev, &o), 0);
    make_other(BLK_FX_DEFAULT_SIZE, true, NULL);
    cr_assert_eq(load(fx2.dev, o.buf, o.len), -EINVAL, "read-only now");
    blk_fx_fini(&fx2);
    make_other(BLK_FX_DEFAULT_SIZE, false, "other-serial");
    cr_assert_eq(load(fx2.dev, o.buf, o.len), -EINVAL, "another ID string");
    blk_fx_fini(&fx2);
    make_other(BLK_FX_DEFAULT_SIZE, false, NULL);
    cr_assert_eq(load(fx2.dev, o.buf, o.len), 0, "identical disk");
    vstate_out_free(&o);
}

Test(virtio_blk_migrate, load_refuses_damaged_sections)
{
    blk_fx_init(&fx, NULL);
    struct vstate_out o;
    cr_assert_eq(save(fx.dev, &o), 0);
    /* Every truncation fails cleanly. */
    for (size_t n = 0; n < o.len; n++)
        cr_assert_lt(load(fx.dev, o.buf, n), 0, "truncated to %zu bytes", n);
    /* A flipped read-only byte (the byte after the 8-byte capacity). */
    uint8_t *copy = malloc(o.len);
    memcpy(copy, o.buf, o.len);
    size_t ro_at = o.len - 20 - VIRTIO_BLK_CONFIG_SIZE - 1;
    copy[ro_at] = 2;
    cr_assert_eq(load(fx.dev, copy, o.len), -EINVAL, "read-only byte out of range");
    /* A changed config byte (seg_max). */
    memcpy(copy, o.buf, o.len);
    copy[ro_at + 1 + 12] ^= 1;
    cr_assert_eq(load(fx.dev, copy, o.len), -EINVAL);
    cr_assert_eq(load(fx.dev, o.buf, o.len), 0, "the intact blob still loads");
    free(copy);
    vstate_out_free(&o);
}
