/* The shared vhost-user blk test rig (vhu_blk_rig.h). */
#include "tests/lib/vhu_blk_rig.h"

#include <criterion/criterion.h>

#include "devices/vhost/vhost_user_dp.h"
#include "devices/virtio/virtio_dp.h"
#include "vmm/log.h"

#define LIVE                                                                                       \
    (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |                \
     VIRTIO_STATUS_DRIVER_OK)

void vhu_blk_rig_up(struct qsd_peer *p, struct vqb *b, struct fake_host *h, size_t img_bytes,
                    uint16_t qsize, const char *id, bool reconnect, void **dp,
                    struct virtio_dev **d, struct virtio_mmio **t)
{
    log_threshold = LOG_ERROR;
    qsd_peer_start(p, img_bytes);
    vqb_init(b, VQB_ONE_REGION, qsize, 256);
    fake_host_init(h);
    struct errbuf err = {0};
    cr_assert_eq(vhu_dp_create(p->sock, &b->mem, 2000, NULL, 0, reconnect, dp, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(virtio_dp_create(&virtio_dp_blk, id, &vhu_dp_ops, *dp, &b->mem, &h->loop, d, &err),
                 0, "%s", err.msg);
    cr_assert_eq(virtio_mmio_create(*d, &h->host, VHU_BLK_RIG_BASE, VHU_BLK_RIG_GSI, t, &err), 0,
                 "%s", err.msg);
}

void vhu_blk_rig_down(struct qsd_peer *p, struct vqb *b, struct fake_host *h, struct virtio_dev *d,
                      struct virtio_mmio *t)
{
    if (t)
        virtio_mmio_destroy(t);
    if (d)
        d->ops->destroy(d);
    fake_host_fini(h);
    vqb_fini(b);
    qsd_peer_stop(p);
}

void vhu_blk_rig_live(struct virtio_mmio *t, uint64_t features, uint16_t qsize)
{
    cr_assert_eq(fake_mmio_negotiate(t, features),
                 VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    fake_mmio_wr(t, FAKE_MMIO_QUEUE_SEL, 0);
    fake_mmio_wr(t, FAKE_MMIO_QUEUE_NUM, qsize);
    fake_mmio_wr(t, FAKE_MMIO_DESC_LO, (uint32_t)VQB_DESC_GPA);
    fake_mmio_wr(t, FAKE_MMIO_DESC_HI, 0);
    fake_mmio_wr(t, FAKE_MMIO_DRIVER_LO, (uint32_t)VQB_AVAIL_GPA);
    fake_mmio_wr(t, FAKE_MMIO_DRIVER_HI, 0);
    fake_mmio_wr(t, FAKE_MMIO_DEVICE_LO, (uint32_t)VQB_USED_GPA);
    fake_mmio_wr(t, FAKE_MMIO_DEVICE_HI, 0);
    fake_mmio_wr(t, FAKE_MMIO_QUEUE_READY, 1);
    fake_mmio_wr(t, FAKE_MMIO_STATUS, LIVE);
    cr_assert_eq(fake_mmio_rd(t, FAKE_MMIO_STATUS), LIVE);
}
