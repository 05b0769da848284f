/*
 * Fuzz target: virtio-balloon (devices/virtio/balloon.c) behind the real
 * virtio-mmio transport, driven by a hostile driver (harness_virtio.h).
 *
 * Why: every PFN, stats entry and reported range comes from the guest, and
 * the device acts on guest RAM with them (it punches holes in the memfd).
 * Every feature is offered, so the driver program may negotiate any
 * queue layout.  FZ_OP_STATE arg 2-7 are host events: odd args tick the
 * stats timer, even ones set a new target.  Checked, beyond ASan/UBSan and
 * the harness's transport invariants: the device never hands gmem_discard()
 * a range it refuses (everything is checked before), and `actual` is never
 * reported above the guest's RAM.
 */
#include "tests/fuzz/harness_virtio.h"

#include "devices/virtio/balloon.h"

static void fz_balloon_hook(const struct fz_op *op, struct fz_in *in)
{
    (void)in;
    if (op->arg & 1)
        balloon_tick(fzv.dev);
    else if (balloon_set_target(fzv.dev, 0) != 0)
        FZ_CHECK(false, "a zero target was refused");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fzv_init_once();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in;
    struct errbuf err = {0};
    struct virtio_dev *dev;
    struct balloon_config cfg = {.id = "balloon0",
                                 .deflate_on_oom = true,
                                 .stats_interval_s = 1,
                                 .free_page_reporting = true};
    fz_init(&in, data, size);
    if (balloon_create(&cfg, &fzv.mem, &fzv.loop, &dev, &err) < 0) {
        fprintf(stderr, "fuzz_virtio_balloon: %s\n", err.msg);
        abort();
    }
    fzv_attach(dev);
    fzv.hook = fz_balloon_hook;
    fzv_run(&in);
    fzv.hook = NULL;
    struct balloon_info i;
    balloon_get_info(dev, &i);
    FZ_CHECK(i.c.discard_errors == 0, "%llu discards refused",
             (unsigned long long)i.c.discard_errors);
    FZ_CHECK((uint64_t)i.actual_pages * BALLOON_PAGE_SIZE <= fzv.mem.total,
             "actual %u pages for %llu bytes of RAM", i.actual_pages,
             (unsigned long long)fzv.mem.total);
    fzv_detach();
    return 0;
}
