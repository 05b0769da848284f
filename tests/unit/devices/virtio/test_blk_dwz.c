/*
 * virtio-blk DISCARD and WRITE_ZEROES: holes and zeroes in the image file
 * (on the default temporary directory, and on tmpfs, which lacks
 * FALLOC_FL_ZERO_RANGE and so exercises the fallback), and the segment
 * checks of virtio 1.2 section 5.2.6.2.
 */
#include "devices/virtio/blk.h"

#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/blk_fixture.h"

static struct blk_fx fx;

static void fini(void)
{
    blk_fx_fini(&fx);
}

TestSuite(virtio_blk_dwz, .fini = fini, .timeout = 30);

#define CAP_SECTORS (BLK_FX_DEFAULT_SIZE / 512)
#define SPAN        (256 * 1024) /* bytes each test fills, then clears part of */

/* Fill [0, SPAN) of the image with 0x5a and make it reach the disk. */
static void fill_image(void)
{
    static uint8_t buf[SPAN];
    memset(buf, 0x5a, sizeof(buf));
    blk_fx_img_write(&fx, 0, buf, sizeof(buf));
    cr_assert_eq(fsync(fx.img_fd), 0);
    cr_assert_not(blk_fx_img_hole(&fx, 0, SPAN));
}

/* Sectors [64, 192) = bytes [32 KiB, 96 KiB) are the target range below. */
#define T_SECTOR 64
#define T_NSEC   128
#define T_OFF    (T_SECTOR * 512)
#define T_LEN    (T_NSEC * 512)

static void check_only_target_cleared(void)
{
    cr_assert(blk_fx_img_all(&fx, 0, T_OFF, 0x5a), "bytes before the range kept");
    cr_assert(blk_fx_img_all(&fx, T_OFF, T_LEN, 0), "range reads as zeroes");
    cr_assert(blk_fx_img_all(&fx, T_OFF + T_LEN, SPAN - T_OFF - T_LEN, 0x5a),
              "bytes after the range kept");
}

static uint8_t run_one(uint32_t type, uint64_t sector, uint32_t nsec, uint32_t flags)
{
    uint16_t before = vqb_used_idx(&fx.vq);
    struct blk_fx_req r = blk_fx_add_dwz(&fx, type, sector, nsec, flags);
    blk_fx_run(&fx, (uint16_t)(before + 1));
    uint32_t len;
    cr_assert(blk_fx_used_len(&fx, r.head, &len));
    cr_assert_eq(len, 1);
    return blk_fx_status(&fx, &r);
}

Test(virtio_blk_dwz, discard_punches_a_hole)
{
    blk_fx_init(&fx, NULL);
    fill_image();
    cr_assert_eq(run_one(VIRTIO_BLK_T_DISCARD, T_SECTOR, T_NSEC, 0), VIRTIO_BLK_S_OK);
    cr_assert(blk_fx_img_hole(&fx, T_OFF, T_LEN), "discarded range is a hole");
    check_only_target_cleared();
    struct virtio_blk_stats st;
    virtio_blk_get_stats(fx.dev, &st);
    cr_assert_eq(st.discards, 1);
}

Test(virtio_blk_dwz, write_zeroes_keeps_the_range_allocated)
{
    blk_fx_init(&fx, NULL);
    fill_image();
    cr_assert_eq(run_one(VIRTIO_BLK_T_WRITE_ZEROES, T_SECTOR, T_NSEC, 0), VIRTIO_BLK_S_OK);
    check_only_target_cleared();
    cr_assert_not(blk_fx_img_hole(&fx, T_OFF, T_LEN), "no UNMAP: ZERO_RANGE, not a hole");
}

Test(virtio_blk_dwz, write_zeroes_with_unmap_punches_a_hole)
{
    blk_fx_init(&fx, NULL);
    fill_image();
    cr_assert_eq(run_one(VIRTIO_BLK_T_WRITE_ZEROES, T_SECTOR, T_NSEC, VIRTIO_BLK_WZ_F_UNMAP),
                 VIRTIO_BLK_S_OK);
    check_only_target_cleared();
    cr_assert(blk_fx_img_hole(&fx, T_OFF, T_LEN));
}

Test(virtio_blk_dwz, write_zeroes_on_tmpfs_falls_back)
{
    if (access("/dev/shm", W_OK) != 0)
        cr_skip_test("no writable /dev/shm");
    struct blk_fx_opts o = {.dir = "/dev/shm"};
    blk_fx_init(&fx, &o);
    fill_image();
    /* tmpfs refuses ZERO_RANGE: the backend punches instead, and remembers. */
    cr_assert_eq(run_one(VIRTIO_BLK_T_WRITE_ZEROES, T_SECTOR, T_NSEC, 0), VIRTIO_BLK_S_OK);
    check_only_target_cleared();
    cr_assert_eq(run_one(VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 0), VIRTIO_BLK_S_OK);
    cr_assert(blk_fx_img_all(&fx, 0, 512, 0));
    cr_assert(blk_fx_img_all(&fx, 512, T_OFF - 512, 0x5a));
    /* Partial pages are zeroed too (not just whole pages dropped). */
    cr_assert_eq(run_one(VIRTIO_BLK_T_DISCARD, 300, 3, 0), VIRTIO_BLK_S_OK);
    cr_assert(blk_fx_img_all(&fx, 300 * 512, 3 * 512, 0));
    cr_assert(blk_fx_img_all(&fx, 303 * 512, 512, 0x5a));
}

Test(virtio_blk_dwz, zero_sectors_is_a_successful_no_op)
{
    blk_fx_init(&fx, NULL);
    fill_image();
    cr_assert_eq(run_one(VIRTIO_BLK_T_DISCARD, 0, 0, 0), VIRTIO_BLK_S_OK);
    cr_assert_eq(run_one(VIRTIO_BLK_T_WRITE_ZEROES, CAP_SECTORS, 0, 0), VIRTIO_BLK_S_OK);
    cr_assert(blk_fx_img_all(&fx, 0, SPAN, 0x5a));
}

Test(virtio_blk_dwz, bad_segments_are_refused)
{
    blk_fx_init(&fx, NULL);
    fill_image();
    const uint32_t D = VIRTIO_BLK_T_DISCARD, Z = VIRTIO_BLK_T_WRITE_ZEROES;
    const uint8_t IOERR = VIRTIO_BLK_S_IOERR, UNSUPP = VIRTIO_BLK_S_UNSUPP;

    /* Flags: UNMAP is for write-zeroes only, other bits are unknown. */
    cr_assert_eq(run_one(D, 0, 8, VIRTIO_BLK_WZ_F_UNMAP), UNSUPP);
    cr_assert_eq(run_one(D, 0, 8, 2), UNSUPP);
    cr_assert_eq(run_one(Z, 0, 8, 0x80000000), UNSUPP);
    /* Ranges: past the end, straddling it, wrapping, over the limit. */
    cr_assert_eq(run_one(D, CAP_SECTORS, 1, 0), IOERR);
    cr_assert_eq(run_one(Z, CAP_SECTORS - 1, 2, 0), IOERR);
    cr_assert_eq(run_one(D, UINT64_MAX - 3, 8, 0), IOERR);
    cr_assert_eq(run_one(Z, 1ULL << 55, 8, 0), IOERR);
    cr_assert_eq(run_one(Z, 0, VIRTIO_BLK_MAX_DWZ_SECTORS + 1, 0), IOERR);
    cr_assert_eq(run_one(D, 0, UINT32_MAX, 0), IOERR);

    /* Segment framing: none, a partial one, two (max_*_seg is 1). */
    gpa_t st = vqb_alloc(&fx.vq, 1, 0xee);
    gpa_t segs = vqb_alloc(&fx.vq, 32, 0);
    struct vqb_buf none[] = {{blk_fx_hdr(&fx, D, 0), 16, false}, {st, 1, true}};
    struct blk_fx_req r0 = blk_fx_add_bufs(&fx, none, 2);
    struct vqb_buf part[] = {{blk_fx_hdr(&fx, Z, 0), 16, false}, {segs, 8, false}, {st, 1, true}};
    struct blk_fx_req r1 = blk_fx_add_bufs(&fx, part, 3);
    blk_fx_run(&fx, (uint16_t)(vqb_used_idx(&fx.vq) + 2));
    cr_assert_eq(blk_fx_status(&fx, &r0), IOERR);
    cr_assert_eq(blk_fx_status(&fx, &r1), IOERR);
    struct vqb_buf two[] = {{blk_fx_hdr(&fx, D, 0), 16, false}, {segs, 32, false}, {st, 1, true}};
    le32_put(blk_fx_host(&fx, segs + 8, 4), 8);
    le32_put(blk_fx_host(&fx, segs + 24, 4), 8);
    struct blk_fx_req r2 = blk_fx_add_bufs(&fx, two, 3);
    blk_fx_run(&fx, (uint16_t)(vqb_used_idx(&fx.vq) + 1));
    cr_assert_eq(blk_fx_status(&fx, &r2), IOERR);

    cr_assert(blk_fx_img_all(&fx, 0, SPAN, 0x5a), "no refused request changed the file");
    cr_assert_eq(fx.needs_reset, 0);
}

Test(virtio_blk_dwz, unnegotiated_features_are_unsupp)
{
    struct blk_fx_opts o = {.unacked = VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) |
                                       VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES)};
    blk_fx_init(&fx, &o);
    fill_image();
    cr_assert_eq(run_one(VIRTIO_BLK_T_DISCARD, 0, 8, 0), VIRTIO_BLK_S_UNSUPP);
    cr_assert_eq(run_one(VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0), VIRTIO_BLK_S_UNSUPP);
    cr_assert(blk_fx_img_all(&fx, 0, SPAN, 0x5a));
}
