/*
 * Micro-benchmark: 4 KiB random reads through the whole device (ring,
 * parsing, io_uring backend, completion, interrupt bookkeeping) on a tmpfs
 * image, 128 requests in flight, no KVM.  It prints requests per second
 * on stderr and checks every read returned the right sector, so it is
 * also a stress test of slot reuse.  Runs about a second.
 */
#include "devices/virtio/blk.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/blk_fixture.h"

static struct blk_fx fx;

static void fini(void)
{
    blk_fx_fini(&fx);
}

TestSuite(virtio_blk_bench, .fini = fini, .timeout = 60);

#define IMG_SIZE   (64 * MiB)
#define BATCH      128
#define MAX_ROUNDS 2000
#define RUN_NS     1000000000LL

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

Test(virtio_blk_bench, random_4k_reads_on_tmpfs)
{
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NULL;
    struct blk_fx_opts o = {.dir = dir, .image_size = IMG_SIZE};
    blk_fx_init(&fx, &o);

    /* Every 4 KiB block of the image starts with its own block number. */
    static uint8_t img[IMG_SIZE];
    for (uint64_t blk = 0; blk < IMG_SIZE / 4096; blk++)
        le64_put(img + blk * 4096, blk);
    blk_fx_img_write(&fx, 0, img, sizeof(img));

    /* BATCH request slots, placed once and re-published each round. */
    static struct blk_fx_req req[BATCH];
    for (unsigned i = 0; i < BATCH; i++) {
        gpa_t hdr = blk_fx_hdr(&fx, VIRTIO_BLK_T_IN, 0);
        struct vqb_buf bufs[] = {{hdr, 16, false},
                                 {vqb_alloc(&fx.vq, 4096, 0), 4096, true},
                                 {vqb_alloc(&fx.vq, 1, 0xee), 1, true}};
        gpa_t table = vqb_alloc(&fx.vq, 48, 0);
        for (unsigned k = 0; k < 3; k++)
            vqb_set_table_desc(&fx.vq, table, (uint16_t)k, bufs[k].addr, bufs[k].len,
                               (uint16_t)((bufs[k].write ? VIRTQ_DESC_F_WRITE : 0) |
                                          (k < 2 ? VIRTQ_DESC_F_NEXT : 0)),
                               (uint16_t)(k + 1));
        vqb_set_desc(&fx.vq, (uint16_t)i, table, 48, VIRTQ_DESC_F_INDIRECT, 0);
        req[i] = (struct blk_fx_req){(uint16_t)i, hdr, bufs[1].addr, bufs[2].addr, 4096};
    }

    srand(1);
    uint64_t done = 0;
    uint64_t want[BATCH];
    int64_t start = now_ns();
    for (unsigned round = 0; round < MAX_ROUNDS && now_ns() - start < RUN_NS; round++) {
        for (unsigned i = 0; i < BATCH; i++) {
            want[i] = (uint64_t)rand() % (IMG_SIZE / 4096);
            le64_put(blk_fx_host(&fx, req[i].hdr + 8, 8), want[i] * 8);
            vqb_publish(&fx.vq, req[i].head);
        }
        blk_fx_run(&fx, (uint16_t)(done + BATCH));
        for (unsigned i = 0; i < BATCH; i++) {
            cr_assert_eq(blk_fx_status(&fx, &req[i]), VIRTIO_BLK_S_OK);
            cr_assert_eq(le64_get(blk_fx_host(&fx, req[i].data, 8)), want[i]);
        }
        done += BATCH;
    }
    double secs = (double)(now_ns() - start) / 1e9;
    fprintf(stderr,
            "virtio-blk bench: %llu random 4 KiB reads in %.3f s = %.0f requests/s "
            "(%u in flight, %s image)\n",
            (unsigned long long)done, secs, (double)done / secs, BATCH, dir ? "tmpfs" : "/tmp");
    struct virtio_blk_stats st;
    virtio_blk_get_stats(fx.dev, &st);
    cr_assert_eq(st.reads, done);
    cr_assert_eq(st.read_bytes, done * 4096);
}
