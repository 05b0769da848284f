/*
 * Fuzz target: the virtio-mmio transport's register file and status state
 * machine (devices/virtio/mmio*.c), with virtio-rng as the device behind it.
 *
 * Why: a guest reaches every byte of the 4 KiB window with any access
 * size, in any device state; the transport must refuse misaligned or
 * wrongly sized accesses, walk the status state machine forward only, and
 * freeze the queue geometry after DRIVER_OK (security.md C1-C3,
 * CVE-2026-5747 class; fuzz target "virtio_mmio").
 *
 * The input is a harness driver program (harness_virtio.h); mostly raw
 * register reads and writes.  Checked, beyond the harness's invariants
 * (DRIVER_OK implies FEATURES_OK, acked features offered):
 *   - reads fill exactly `len` bytes (fz_access);
 *   - after DRIVER_OK, nothing the driver writes changes the geometry of an
 *     active queue (size, ring addresses) until a reset;
 *   - every active queue's rings lie in guest RAM and the size is a power of
 *     two no larger than the device's maximum.
 */
#include "tests/fuzz/harness_virtio.h"

#include "devices/virtio/rng.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fzv_init_once();
    return 0;
}

/* Geometry of the active queues, as the device uses it. */
struct fz_geom {
    bool active[VIRTIO_MAX_QUEUES];
    uint16_t num[VIRTIO_MAX_QUEUES];
    volatile uint8_t *desc[VIRTIO_MAX_QUEUES], *avail[VIRTIO_MAX_QUEUES], *used[VIRTIO_MAX_QUEUES];
};

static void fz_geom(const struct virtio_dev *d, struct fz_geom *g)
{
    memset(g, 0, sizeof(*g));
    for (unsigned q = 0; q < d->ops->num_queues; q++) {
        const struct virtq *vq = &d->vq[q];
        g->active[q] = vq->active;
        if (!vq->active)
            continue;
        g->num[q] = vq->num;
        g->desc[q] = vq->desc;
        g->avail[q] = vq->avail;
        g->used[q] = vq->used;
        FZ_CHECK(is_pow2(vq->num) && vq->num <= vq->max_size, "queue %u size %u", q, vq->num);
        FZ_CHECK(gmem_range_ok(&fzv.mem, vq->cfg.desc_gpa, 16ULL * vq->num) &&
                     gmem_range_ok(&fzv.mem, vq->cfg.avail_gpa, 6 + 2ULL * vq->num) &&
                     gmem_range_ok(&fzv.mem, vq->cfg.used_gpa, 6 + 8ULL * vq->num),
                 "queue %u rings outside RAM", q);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in;
    struct errbuf err = {0};
    struct virtio_dev *dev;
    struct virtio_rng_config cfg = {.id = "rng0"};
    fz_init(&in, data, size);
    if (virtio_rng_create(&cfg, &fzv.mem, &fzv.loop, &dev, &err) < 0) {
        fprintf(stderr, "fuzz_virtio_mmio: %s\n", err.msg);
        abort();
    }
    fzv_attach(dev);

    /* One operation at a time, so the geometry can be compared around each. */
    for (unsigned n = 0; n < FZV_MAX_STEPS && fz_left(&in); n++) {
        struct fz_geom before, after;
        fz_geom(dev, &before);
        bool live = dev->status & VIRTIO_STATUS_DRIVER_OK;
        /* The bring-up step resets first: a new geometry is legal then. */
        uint8_t opb = fz_left(&in) ? data[in.pos] : 0;
        bool resets = (opb & 3) == FZ_OP_DEV && (opb >> 5) == 0;
        if (!fzv_step(&in))
            break;
        fz_geom(dev, &after);
        if (live && !resets && (dev->status & VIRTIO_STATUS_DRIVER_OK)) {
            /* A queue may stop (failure, reset), but an active one keeps its geometry. */
            for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
                FZ_CHECK(!before.active[q] || !after.active[q] ||
                             (after.num[q] == before.num[q] && after.desc[q] == before.desc[q] &&
                              after.avail[q] == before.avail[q] && after.used[q] == before.used[q]),
                         "queue %u geometry changed after DRIVER_OK", q);
        }
    }
    for (unsigned i = 0; i < 64 && fzv_poll(); i++)
        ;
    fzv_detach();
    return 0;
}
