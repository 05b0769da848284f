/*
 * virtio-blk: creation and its errors, features and config space, and the
 * well-formed request types (read, write, flush, GET_ID) in the layouts a
 * driver may use.  Guest errors are in test_blk_errors.c, discard and
 * write-zeroes in test_blk_dwz.c, asynchronous behaviour, reset and
 * migration in test_blk_async.c.
 */
#include "devices/virtio/blk.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/lib/blk_fixture.h"

static struct blk_fx fx;

static void fini(void)
{
    blk_fx_fini(&fx);
}

TestSuite(virtio_blk, .fini = fini, .timeout = 30);

static uint32_t cfg32(unsigned off)
{
    uint32_t v;
    fx.dev->ops->config_read(fx.dev, off, &v, 4);
    return v;
}

static uint64_t cfg64(unsigned off)
{
    uint64_t v;
    fx.dev->ops->config_read(fx.dev, off, &v, 8);
    return v;
}

Test(virtio_blk, offers_the_expected_features_and_config)
{
    blk_fx_init(&fx, NULL);
    uint64_t f = fx.dev->host_features;
    const struct virtio_dev_ops *ops = fx.dev->ops;

    cr_assert_eq(ops->device_id, VIRTIO_ID_BLOCK);
    cr_assert_eq(ops->num_queues, 1);
    cr_assert_eq(ops->queue_max_size, 256);
    cr_assert_eq(ops->config_size, 60);
    cr_assert_null(ops->unmigratable);
    for (unsigned bit = 0; bit < 64; bit++) {
        bool want = bit == VIRTIO_BLK_F_SIZE_MAX || bit == VIRTIO_BLK_F_SEG_MAX ||
                    bit == VIRTIO_BLK_F_BLK_SIZE || bit == VIRTIO_BLK_F_FLUSH ||
                    bit == VIRTIO_BLK_F_DISCARD || bit == VIRTIO_BLK_F_WRITE_ZEROES ||
                    bit == VIRTIO_F_VERSION_1 || bit == VIRTIO_F_EVENT_IDX ||
                    bit == VIRTIO_F_INDIRECT_DESC;
        cr_assert_eq(!!(f & VIRTIO_BIT(bit)), want, "feature bit %u", bit);
    }
    cr_assert_eq(cfg64(0), BLK_FX_DEFAULT_SIZE / 512, "capacity");
    cr_assert_eq(cfg32(8), 4096, "size_max");
    cr_assert_eq(cfg32(12), 126, "seg_max: the profile every data plane honours");
    cr_assert_eq(cfg32(16), 0, "geometry");
    cr_assert_eq(cfg32(20), 512, "blk_size");
    cr_assert_eq(cfg32(36), 32768, "max_discard_sectors");
    cr_assert_eq(cfg32(40), 1, "max_discard_seg");
    cr_assert_eq(cfg32(44), 8, "discard_sector_alignment");
    cr_assert_eq(cfg32(48), 32768, "max_write_zeroes_sectors");
    cr_assert_eq(cfg32(52), 1, "max_write_zeroes_seg");
    uint8_t may_unmap;
    ops->config_read(fx.dev, 56, &may_unmap, 1);
    cr_assert_eq(may_unmap, 0, "not every data plane unmaps");
    /* 64-bit capacity read as two halves, and a read past the end. */
    cr_assert_eq(cfg32(0), BLK_FX_DEFAULT_SIZE / 512);
    cr_assert_eq(cfg32(4), 0);
    uint32_t past = 0xffffffff;
    ops->config_read(fx.dev, 58, &past, 4);
    cr_assert_eq(past, 0, "bytes past the config space read as 0");
}

Test(virtio_blk, read_only_offers_ro_and_no_discard)
{
    struct blk_fx_opts o = {.read_only = true};
    blk_fx_init(&fx, &o);
    uint64_t f = fx.dev->host_features;
    cr_assert(f & VIRTIO_BIT(VIRTIO_BLK_F_RO));
    cr_assert(f & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH));
    cr_assert_not(f & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD));
    cr_assert_not(f & VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES));
    cr_assert_eq(cfg32(36), 0);
    cr_assert_eq(cfg32(48), 0);
}

Test(virtio_blk, create_errors_name_the_problem)
{
    struct errbuf err = {0};
    struct virtio_blk_config cfg = {.id = "blk0", .path = "/nonexistent/disk.img"};
    struct virtio_dev *d = (void *)1;

    blk_fx_setup(&fx, NULL);
    cr_assert_eq(virtio_blk_create(&cfg, &fx.vq.mem, &fx.loop, &d, &err), -ENOENT);
    cr_assert_null(d);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    cr_assert(strstr(err.msg, "/nonexistent/disk.img"), "%s", err.msg);

    /* A directory is not an image. */
    memset(&err, 0, sizeof(err));
    cfg.path = "/tmp";
    cr_assert_lt(virtio_blk_create(&cfg, &fx.vq.mem, &fx.loop, &d, &err), 0);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    cr_assert(strstr(err.msg, "/tmp"), "%s", err.msg);

    /* Smaller than one sector. */
    memset(&err, 0, sizeof(err));
    cr_assert_eq(ftruncate(fx.img_fd, 511), 0);
    cr_assert_eq(blk_fx_create(&fx, &cfg, &err), -EINVAL);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    cr_assert(strstr(err.msg, fx.path), "%s", err.msg);

    /* Serial over 20 bytes, queue depth over the ring size. */
    cr_assert_eq(ftruncate(fx.img_fd, 4096), 0);
    memset(&err, 0, sizeof(err));
    cfg.serial = "123456789012345678901";
    cr_assert_eq(blk_fx_create(&fx, &cfg, &err), -EINVAL);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    cr_assert(strstr(err.msg, "serial"), "%s", err.msg);
    memset(&err, 0, sizeof(err));
    cfg.serial = NULL;
    cfg.queue_depth = 257;
    cr_assert_eq(blk_fx_create(&fx, &cfg, &err), -EINVAL);
    cr_assert_eq(err.exit_code, WISP_EXIT_USAGE);
    cr_assert_null(fx.dev);
    /* Every failure released its fds: the loop is empty again. */
    for (unsigned i = 0; i < EVLOOP_MAX_HANDLERS; i++)
        cr_assert_eq(fx.loop.handlers[i].fd, -1);
}

Test(virtio_blk, partial_last_sector_is_rounded_down_and_never_touched)
{
    struct blk_fx_opts o = {.image_size = 8192 + 100};
    blk_fx_init(&fx, &o);
    uint8_t tail[100];
    memset(tail, 0x7e, sizeof(tail));
    blk_fx_img_write(&fx, 8192, tail, sizeof(tail));

    cr_assert_eq(cfg64(0), 16, "8292 bytes are 16 whole sectors");
    struct blk_fx_req w = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, 15, 512, 0x11);
    struct blk_fx_req past = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, 16, 512, 0x22);
    blk_fx_run(&fx, 2);
    cr_assert_eq(blk_fx_status(&fx, &w), VIRTIO_BLK_S_OK);
    cr_assert_eq(blk_fx_status(&fx, &past), VIRTIO_BLK_S_IOERR);
    cr_assert(blk_fx_img_all(&fx, 15 * 512, 512, 0x11));
    cr_assert(blk_fx_img_all(&fx, 8192, 100, 0x7e), "bytes past the last sector unchanged");
    struct stat st;
    cr_assert_eq(fstat(fx.img_fd, &st), 0);
    cr_assert_eq(st.st_size, 8192 + 100);
}

Test(virtio_blk, writes_patterns_and_reads_them_back)
{
    blk_fx_init(&fx, NULL);
    /* Eight writes of different sizes and places, each with its own byte. */
    static const struct {
        uint64_t sector;
        uint32_t len;
    } w[] = {{0, 512},           {1, 4096},    {100, 65536}, {1000, 512},
             {2048, 128 * 1024}, {4000, 1024}, {8191, 512},  {5000, 1016 * 1024 - 4096 * 200}};
    struct blk_fx_req req[8];
    uint32_t len;

    for (unsigned i = 0; i < 8; i++)
        req[i] = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, w[i].sector, w[i].len, (uint8_t)(0x30 + i));
    blk_fx_run(&fx, 8);
    for (unsigned i = 0; i < 8; i++) {
        cr_assert_eq(blk_fx_status(&fx, &req[i]), VIRTIO_BLK_S_OK, "write %u", i);
        cr_assert(blk_fx_used_len(&fx, req[i].head, &len));
        cr_assert_eq(len, 1, "a write returns only the status byte");
        cr_assert(blk_fx_img_all(&fx, w[i].sector * 512, w[i].len, (uint8_t)(0x30 + i)),
                  "file bytes of write %u", i);
    }
    cr_assert(blk_fx_img_all(&fx, 2 * 512 + 4096, 512, 0), "untouched sector stays zero");

    /* Read each back into a buffer pre-filled with garbage. */
    blk_fx_reset_alloc(&fx);
    for (unsigned i = 0; i < 8; i++)
        req[i] = blk_fx_add(&fx, VIRTIO_BLK_T_IN, w[i].sector, w[i].len, 0xcc);
    blk_fx_run(&fx, 16);
    for (unsigned i = 0; i < 8; i++) {
        cr_assert_eq(blk_fx_status(&fx, &req[i]), VIRTIO_BLK_S_OK, "read %u", i);
        cr_assert(blk_fx_used_len(&fx, req[i].head, &len));
        cr_assert_eq(len, w[i].len + 1, "a read returns data and status");
        uint8_t *p = blk_fx_host(&fx, req[i].data, w[i].len);
        for (uint32_t k = 0; k < w[i].len; k++)
            cr_assert_eq(p[k], 0x30 + i, "read %u byte %u", i, k);
    }
    struct virtio_blk_stats st;
    virtio_blk_get_stats(fx.dev, &st);
    cr_assert_eq(st.writes, 8);
    cr_assert_eq(st.reads, 8);
    cr_assert_eq(st.read_bytes, st.write_bytes);
    cr_assert_eq(st.ioerr + st.unsupp + st.malformed, 0);
    cr_assert_geq(fx.irqs, 2);
    cr_assert_eq(fx.needs_reset, 0);
}

Test(virtio_blk, any_layout_split_header_and_merged_buffers)
{
    blk_fx_init(&fx, NULL);
    uint8_t pattern[1024];
    for (unsigned i = 0; i < sizeof(pattern); i++)
        pattern[i] = (uint8_t)(i * 7 + 3);

    /* Write: header and data in ONE readable buffer, status alone. */
    gpa_t hd = vqb_alloc(&fx.vq, 16 + 1024, 0);
    uint8_t *h = blk_fx_host(&fx, hd, 16 + 1024);
    le32_put(h, VIRTIO_BLK_T_OUT);
    le64_put(h + 8, 7);
    memcpy(h + 16, pattern, 1024);
    gpa_t st1 = vqb_alloc(&fx.vq, 1, 0xee);
    struct vqb_buf a[] = {{hd, 16 + 1024, false}, {st1, 1, true}};
    struct blk_fx_req wr = blk_fx_add_bufs(&fx, a, 2);

    /* Read: header split 3 + 13 bytes, data in 3 odd pieces with the status
     * byte merged into the last one. */
    gpa_t hdr = blk_fx_hdr(&fx, VIRTIO_BLK_T_IN, 7);
    gpa_t d1 = vqb_alloc(&fx.vq, 100, 0xcc), d2 = vqb_alloc(&fx.vq, 900, 0xcc);
    gpa_t d3 = vqb_alloc(&fx.vq, 25, 0xcc);
    struct vqb_buf b[] = {
        {hdr, 3, false}, {hdr + 3, 13, false}, {d1, 100, true}, {d2, 900, true}, {d3, 25, true}};
    blk_fx_run(&fx, 1);
    struct blk_fx_req rd = blk_fx_add_bufs(&fx, b, 5);
    blk_fx_run(&fx, 2);

    cr_assert_eq(blk_fx_status(&fx, &wr), VIRTIO_BLK_S_OK);
    cr_assert_eq(blk_fx_host(&fx, d3, 25)[24], VIRTIO_BLK_S_OK, "status is the last byte");
    cr_assert_eq(rd.status, d3 + 24);
    cr_assert_eq(memcmp(blk_fx_host(&fx, d1, 100), pattern, 100), 0);
    cr_assert_eq(memcmp(blk_fx_host(&fx, d2, 900), pattern + 100, 900), 0);
    cr_assert_eq(memcmp(blk_fx_host(&fx, d3, 24), pattern + 1000, 24), 0);
    uint32_t len;
    cr_assert(blk_fx_used_len(&fx, rd.head, &len));
    cr_assert_eq(len, 1025);
}

Test(virtio_blk, direct_chains_work_too)
{
    struct blk_fx_opts o = {.unacked = VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC)};
    blk_fx_init(&fx, &o);
    gpa_t data = vqb_alloc(&fx.vq, 512, 0x5a), st = vqb_alloc(&fx.vq, 1, 0xee);
    struct vqb_buf w[] = {
        {blk_fx_hdr(&fx, VIRTIO_BLK_T_OUT, 3), 16, false}, {data, 512, false}, {st, 1, true}};
    vqb_add_chain(&fx.vq, w, 3);
    blk_fx_run(&fx, 1);
    cr_assert_eq(*blk_fx_host(&fx, st, 1), VIRTIO_BLK_S_OK);
    cr_assert(blk_fx_img_all(&fx, 3 * 512, 512, 0x5a));
}

Test(virtio_blk, flush_succeeds_and_fua_without_flush)
{
    struct blk_fx_opts o = {.unacked = VIRTIO_BIT(VIRTIO_BLK_F_FLUSH)};
    blk_fx_init(&fx, &o);
    /* FLUSH not negotiated: writes are synchronous (RWF_DSYNC) but work alike. */
    struct blk_fx_req w = blk_fx_add(&fx, VIRTIO_BLK_T_OUT, 10, 4096, 0x42);
    struct blk_fx_req f = blk_fx_add(&fx, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
    blk_fx_run(&fx, 2);
    cr_assert_eq(blk_fx_status(&fx, &w), VIRTIO_BLK_S_OK);
    cr_assert_eq(blk_fx_status(&fx, &f), VIRTIO_BLK_S_OK, "flush still served");
    cr_assert(blk_fx_img_all(&fx, 10 * 512, 4096, 0x42));
    struct virtio_blk_stats st;
    virtio_blk_get_stats(fx.dev, &st);
    cr_assert_eq(st.flushes, 1);
}

Test(virtio_blk, get_id_defaults_to_the_instance_id)
{
    blk_fx_init(&fx, NULL);
    struct blk_fx_req r = blk_fx_add(&fx, VIRTIO_BLK_T_GET_ID, 0, 20, 0xcc);
    blk_fx_run(&fx, 1);
    cr_assert_eq(blk_fx_status(&fx, &r), VIRTIO_BLK_S_OK);
    uint8_t want[20] = "blk0";
    cr_assert_eq(memcmp(blk_fx_host(&fx, r.data, 20), want, 20), 0, "NUL-padded");
    uint32_t len;
    cr_assert(blk_fx_used_len(&fx, r.head, &len));
    cr_assert_eq(len, 21);
}

Test(virtio_blk, get_id_of_20_bytes_has_no_terminator)
{
    struct blk_fx_opts o = {.serial = "ABCDEFGHIJKLMNOPQRST", .read_only = true};
    blk_fx_init(&fx, &o);
    struct blk_fx_req r = blk_fx_add(&fx, VIRTIO_BLK_T_GET_ID, 0, 32, 0xcc);
    struct blk_fx_req f = blk_fx_add(&fx, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
    blk_fx_run(&fx, 2);
    cr_assert_eq(blk_fx_status(&fx, &r), VIRTIO_BLK_S_OK);
    cr_assert_eq(blk_fx_status(&fx, &f), VIRTIO_BLK_S_OK, "flush is fine on a read-only disk");
    uint8_t *p = blk_fx_host(&fx, r.data, 32);
    cr_assert_eq(memcmp(p, "ABCDEFGHIJKLMNOPQRST", 20), 0);
    cr_assert_eq(p[20], 0xcc, "nothing written past 20 bytes");
}
