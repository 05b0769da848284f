/*
 * virtio-blk against a hostile or buggy driver: ranges outside the disk
 * (including sector + length overflow), lengths that are not whole sectors,
 * writes to a read-only disk, unknown types, chains without a status byte
 * or with a short header, requests over the size cap, and a broken ring.
 * Every case must leave the image file untouched.
 */
#include "devices/virtio/blk.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "devices/backends/blk_raw.h"
#include "tests/lib/blk_fake_be.h"
#include "tests/lib/blk_fixture.h"

static struct blk_fx fx;

static void fini(void)
{
    blk_fx_fini(&fx);
}

TestSuite(virtio_blk_errors, .fini = fini, .timeout = 30);

#define CAP_SECTORS (BLK_FX_DEFAULT_SIZE / 512)

/* The image is all zero; nothing below may change that. */
static void assert_image_untouched(void)
{
    struct stat st;
    cr_assert_eq(fstat(fx.img_fd, &st), 0);
    cr_assert_eq(st.st_size, BLK_FX_DEFAULT_SIZE, "image size changed");
    cr_assert(blk_fx_img_all(&fx, 0, BLK_FX_DEFAULT_SIZE, 0), "image bytes changed");
}

static struct virtio_blk_stats stats(void)
{
    struct virtio_blk_stats st;
    virtio_blk_get_stats(fx.dev, &st);
    return st;
}

/* Sector ranges outside a disk of CAP_SECTORS sectors. */
static const struct {
    uint64_t sector;
    uint32_t len;
} bad[] = {
    {CAP_SECTORS, 512},          /* first sector past the end */
    {CAP_SECTORS - 1, 1024},     /* straddles the end */
    {CAP_SECTORS + 1, 0},        /* empty, but starts past the end */
    {UINT64_MAX, 512},           /* sector + 1 wraps */
    {UINT64_MAX - 1, 4096},      /* sector + 8 wraps */
    {1ULL << 55, 512},           /* sector * 512 would wrap 64 bits */
    {(1ULL << 55) - 1, 1024},    /* ... and this one's end */
    {UINT64_MAX / 512 + 1, 512}, /* first sector whose byte offset wraps */
};

/*
 * The device's own check: every request outside the disk is answered IOERR
 * before the backend sees it.  The backend here (blk_fake_be) checks no
 * range and holds what it gets, so only the device can refuse these.
 */
Test(virtio_blk_errors, ranges_outside_the_disk_are_ioerr)
{
    struct errbuf err = {0};
    blk_fx_setup(&fx, NULL);
    struct fake_be *fb = fake_be_new(BLK_FX_DEFAULT_SIZE, 32);
    struct virtio_blk_config cfg = {.id = "blk0"};
    cr_assert_eq(blk_fx_create_on(&fx, &cfg, &fb->be, &err), 0, "%s", err.msg);
    blk_fx_start(&fx, 0, false);
    struct blk_fx_req w[8], r[8];
    for (unsigned i = 0; i < 8; i++) {
        w[i] = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, bad[i].sector, bad[i].len, 0xab);
        r[i] = blk_fx_add(&fx, VIRTIO_BLK_T_IN, bad[i].sector, bad[i].len, 0xcd);
    }
    blk_fx_kick(&fx);
    cr_assert_eq(fb->submits, 0, "%u out-of-disk requests reached the backend", fb->submits);
    cr_assert_eq(vqb_used_idx(&fx.vq), 16);
    for (unsigned i = 0; i < 8; i++) {
        cr_assert_eq(blk_fx_status(&fx, &w[i]), VIRTIO_BLK_S_IOERR, "write %u", i);
        cr_assert_eq(blk_fx_status(&fx, &r[i]), VIRTIO_BLK_S_IOERR, "read %u", i);
    }
    cr_assert_eq(stats().ioerr, 16);
}

/* The backend's own check, without the device in front of it. */
Test(virtio_blk_errors, raw_backend_refuses_ranges_outside_the_image)
{
    struct errbuf err = {0};
    struct blk_backend *be;
    blk_fx_setup(&fx, NULL);
    struct blk_raw_config rc = {.path = fx.path, .max_inflight = 8};
    cr_assert_eq(blk_raw_open(&rc, &be, &err), 0, "%s", err.msg);
    static uint8_t buf[4096];
    for (unsigned i = 0; i < 8; i++) {
        for (int op = BLK_OP_READ; op <= BLK_OP_WRITE; op++) {
            struct iovec iov = {buf, bad[i].len};
            struct blk_io io = {.op = (enum blk_op)op,
                                .offset = bad[i].sector * 512,
                                .len = bad[i].len,
                                .iov = &iov,
                                .iovcnt = 1};
            if (bad[i].len == 0)
                continue; /* no data: refused as malformed, not for its range */
            /* Offsets that wrapped above can land inside the image: skip those,
             * the device never computes them (it checks sectors first). */
            if (bad[i].sector > UINT64_MAX / 512)
                continue;
            cr_assert_eq(be->ops->submit(be, &io), -EINVAL, "op %d case %u", op, i);
        }
    }
    cr_assert_eq(be->inflight, 0);
    be->ops->destroy(be);
    assert_image_untouched();
}

/* End to end on the raw backend: refused, and the image is left alone. */
Test(virtio_blk_errors, ranges_outside_the_disk_leave_the_image_untouched)
{
    blk_fx_init(&fx, NULL);
    struct blk_fx_req w[8], r[8];

    for (unsigned i = 0; i < 8; i++) {
        w[i] = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, bad[i].sector, bad[i].len, 0xab);
        r[i] = blk_fx_add(&fx, VIRTIO_BLK_T_IN, bad[i].sector, bad[i].len, 0xcd);
    }
    blk_fx_run(&fx, 16);
    for (unsigned i = 0; i < 8; i++) {
        cr_assert_eq(blk_fx_status(&fx, &w[i]), VIRTIO_BLK_S_IOERR, "write %u", i);
        cr_assert_eq(blk_fx_status(&fx, &r[i]), VIRTIO_BLK_S_IOERR, "read %u", i);
        if (bad[i].len)
            cr_assert_eq(*blk_fx_host(&fx, r[i].data, 1), 0xcd, "read %u wrote data", i);
        uint32_t len;
        cr_assert(blk_fx_used_len(&fx, w[i].head, &len));
        cr_assert_eq(len, 1);
    }
    cr_assert_eq(stats().ioerr, 16);
    cr_assert_eq(fx.needs_reset, 0, "guest errors do not break the device");
    assert_image_untouched();

    /* The very last sector is fine. */
    struct blk_fx_req last = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, CAP_SECTORS - 1, 512, 0x01);
    blk_fx_run(&fx, 17);
    cr_assert_eq(blk_fx_status(&fx, &last), VIRTIO_BLK_S_OK);
    cr_assert(blk_fx_img_all(&fx, BLK_FX_DEFAULT_SIZE - 512, 512, 0x01));
}

Test(virtio_blk_errors, lengths_not_a_multiple_of_512_are_ioerr)
{
    blk_fx_init(&fx, NULL);
    static const uint32_t lens[] = {1, 511, 513, 1000, 4095};
    struct blk_fx_req w[5], r[5];
    for (unsigned i = 0; i < 5; i++) {
        w[i] = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, 0, lens[i], 0xab);
        r[i] = blk_fx_add(&fx, VIRTIO_BLK_T_IN, 0, lens[i], 0xcd);
    }
    blk_fx_run(&fx, 10);
    for (unsigned i = 0; i < 5; i++) {
        cr_assert_eq(blk_fx_status(&fx, &w[i]), VIRTIO_BLK_S_IOERR, "len %u", lens[i]);
        cr_assert_eq(blk_fx_status(&fx, &r[i]), VIRTIO_BLK_S_IOERR, "len %u", lens[i]);
    }
    assert_image_untouched();
}

Test(virtio_blk_errors, read_only_refuses_every_write)
{
    struct blk_fx_opts o = {.read_only = true};
    blk_fx_init(&fx, &o);
    uint8_t pattern[4096];
    memset(pattern, 0x99, sizeof(pattern));
    blk_fx_img_write(&fx, 0, pattern, sizeof(pattern));

    struct blk_fx_req w = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, 0, 4096, 0x11);
    /* Not offered on a read-only disk, but a driver may send them anyway. */
    struct blk_fx_req d = blk_fx_add_dwz(&fx, VIRTIO_BLK_T_DISCARD, 0, 8, 0);
    struct blk_fx_req z = blk_fx_add_dwz(&fx, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0);
    struct blk_fx_req r = blk_fx_add(&fx, VIRTIO_BLK_T_IN, 0, 4096, 0);
    blk_fx_run(&fx, 4);
    cr_assert_eq(blk_fx_status(&fx, &w), VIRTIO_BLK_S_IOERR);
    cr_assert_eq(blk_fx_status(&fx, &d), VIRTIO_BLK_S_IOERR);
    cr_assert_eq(blk_fx_status(&fx, &z), VIRTIO_BLK_S_IOERR);
    cr_assert_eq(blk_fx_status(&fx, &r), VIRTIO_BLK_S_OK, "reads still work");
    cr_assert_eq(memcmp(blk_fx_host(&fx, r.data, 4096), pattern, 4096), 0);
    cr_assert(blk_fx_img_all(&fx, 0, 4096, 0x99), "file unchanged");
    cr_assert(blk_fx_img_all(&fx, 4096, BLK_FX_DEFAULT_SIZE - 4096, 0));
}

Test(virtio_blk_errors, unknown_types_are_unsupp)
{
    blk_fx_init(&fx, NULL);
    static const uint32_t types[] = {
        2, 3, 5, VIRTIO_BLK_T_GET_LIFETIME, VIRTIO_BLK_T_SECURE_ERASE, 16, 0x80000000, UINT32_MAX};
    struct blk_fx_req r[8];
    for (unsigned i = 0; i < 8; i++)
        r[i] = blk_fx_add(&fx, types[i], 0, 512, 0x11);
    blk_fx_run(&fx, 8);
    for (unsigned i = 0; i < 8; i++)
        cr_assert_eq(blk_fx_status(&fx, &r[i]), VIRTIO_BLK_S_UNSUPP, "type 0x%x", types[i]);
    cr_assert_eq(stats().unsupp, 8);
    assert_image_untouched();
}

Test(virtio_blk_errors, chains_without_status_or_header_come_back_empty)
{
    blk_fx_init(&fx, NULL);
    gpa_t hdr = blk_fx_hdr(&fx, VIRTIO_BLK_T_OUT, 0);
    gpa_t data = vqb_alloc(&fx.vq, 512, 0x77);
    gpa_t st = vqb_alloc(&fx.vq, 1, 0xee);

    /* No writable byte at all: header and data only. */
    struct vqb_buf a[] = {{hdr, 16, false}, {data, 512, false}};
    struct blk_fx_req ra = blk_fx_add_bufs(&fx, a, 2);
    /* A 15-byte header. */
    struct vqb_buf b[] = {{hdr, 15, false}, {st, 1, true}};
    struct blk_fx_req rb = blk_fx_add_bufs(&fx, b, 2);
    /* Only a status byte. */
    struct vqb_buf c[] = {{st, 1, true}};
    struct blk_fx_req rc = blk_fx_add_bufs(&fx, c, 1);
    /* A zero-length writable descriptor is no status byte either. */
    struct vqb_buf d[] = {{hdr, 16, false}, {data, 512, false}, {st, 0, true}};
    struct blk_fx_req rd = blk_fx_add_bufs(&fx, d, 3);
    blk_fx_run(&fx, 4);

    const struct blk_fx_req *all[] = {&ra, &rb, &rc, &rd};
    for (unsigned i = 0; i < 4; i++) {
        uint32_t len = 99;
        cr_assert(blk_fx_used_len(&fx, all[i]->head, &len), "chain %u returned", i);
        cr_assert_eq(len, 0, "chain %u", i);
    }
    cr_assert_eq(*blk_fx_host(&fx, st, 1), 0xee, "no status written anywhere");
    cr_assert_eq(stats().malformed, 4);
    cr_assert_eq(fx.needs_reset, 0, "the queue itself is fine");
    assert_image_untouched();

    /* The device keeps working. */
    struct blk_fx_req ok = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, 1, 512, 0x55);
    blk_fx_run(&fx, 5);
    cr_assert_eq(blk_fx_status(&fx, &ok), VIRTIO_BLK_S_OK);
}

Test(virtio_blk_errors, requests_over_the_cap_are_refused_whole)
{
    blk_fx_init(&fx, NULL);
    /* Largest allowed: seg_max * size_max data bytes. */
    struct blk_fx_req max = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, 0, VIRTIO_BLK_MAX_DATA, 0x21);
    /* A chain whose buffers add up to more than the cap. */
    struct blk_fx_req big =
        blk_fx_add(&fx, VIRTIO_BLK_T_OUT, 4096, VIRTIO_BLK_MAX_REQ - 16 - 1 + 512, 0x22);
    blk_fx_run(&fx, 2);
    cr_assert_eq(blk_fx_status(&fx, &max), VIRTIO_BLK_S_OK);
    cr_assert(blk_fx_img_all(&fx, 0, VIRTIO_BLK_MAX_DATA, 0x21));
    uint32_t len = 99;
    cr_assert(blk_fx_used_len(&fx, big.head, &len));
    cr_assert_eq(len, 0);
    cr_assert_eq(blk_fx_status(&fx, &big), 0xee, "no status: the chain was not mapped");
    cr_assert(blk_fx_img_all(&fx, 4096 * 512, BLK_FX_DEFAULT_SIZE - 4096 * 512, 0),
              "nothing of the oversized write reached the file");
    cr_assert_eq(stats().malformed, 1);
    cr_assert_eq(fx.needs_reset, 0);
}

Test(virtio_blk_errors, a_broken_ring_needs_reset)
{
    blk_fx_init(&fx, NULL);
    struct blk_fx_req ok = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, 0, 512, 0x31);
    blk_fx_run(&fx, 1);
    cr_assert_eq(blk_fx_status(&fx, &ok), VIRTIO_BLK_S_OK);

    /* avail.idx far ahead of what the ring can hold. */
    vqb_set_avail_idx(&fx.vq, (uint16_t)(fx.vq.avail_idx + 1000));
    blk_fx_kick(&fx);
    cr_assert_eq(fx.needs_reset, 1);
    cr_assert(fx.dev->vq[0].broken);
    /* Further kicks do nothing and report nothing again. */
    blk_fx_kick(&fx);
    blk_fx_pump(&fx, 10);
    cr_assert_eq(fx.needs_reset, 1);
    cr_assert_eq(vqb_used_idx(&fx.vq), 1);
}

Test(virtio_blk_errors, a_loop_in_the_chain_needs_reset)
{
    struct blk_fx_opts o = {.unacked = VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC)};
    blk_fx_init(&fx, &o);
    gpa_t hdr = blk_fx_hdr(&fx, VIRTIO_BLK_T_IN, 0);
    vqb_set_desc(&fx.vq, 0, hdr, 16, VIRTQ_DESC_F_NEXT, 1);
    vqb_set_desc(&fx.vq, 1, hdr, 16, VIRTQ_DESC_F_NEXT, 0);
    vqb_publish(&fx.vq, 0);
    blk_fx_kick(&fx);
    cr_assert_eq(fx.needs_reset, 1);
    cr_assert_eq(vqb_used_idx(&fx.vq), 0);
    assert_image_untouched();
}

Test(virtio_blk_errors, an_unready_queue_fails_activation)
{
    blk_fx_setup(&fx, NULL);
    struct errbuf err = {0};
    struct virtio_blk_config cfg = {.id = "blk0"};
    cr_assert_eq(blk_fx_create(&fx, &cfg, &err), 0);
    pthread_mutex_lock(&fx.dev->lock);
    cr_assert_lt(fx.dev->ops->activate(fx.dev), 0);
    /* Kicks before DRIVER_OK are ignored. */
    fx.dev->ops->queue_notify(fx.dev, 0);
    fx.dev->ops->queue_notify(fx.dev, 7);
    pthread_mutex_unlock(&fx.dev->lock);
}
