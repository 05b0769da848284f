/*
 * The rig the vhost-user blk unit tests share: qemu-storage-daemon on a
 * fresh image, one-region guest memory with a virtqueue builder, a fake KVM
 * host, and a blk device over the vhost-user data plane on the real
 * virtio-mmio transport.  Why: three test files need exactly this, and a
 * driver that takes the device live the same way.  Test-only: failures
 * abort the test through Criterion.
 */
#ifndef TESTS_LIB_VHU_BLK_RIG_H
#define TESTS_LIB_VHU_BLK_RIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/mmio.h"
#include "tests/lib/fake_virtio.h"
#include "tests/lib/qsd_peer.h"
#include "tests/lib/virtq_builder.h"

#define VHU_BLK_RIG_BASE 0xd0000000ULL
#define VHU_BLK_RIG_GSI  5

/*
 * Start the daemon on an image of `img_bytes`, then the device `id` with a
 * queue of `qsize` entries (`reconnect`: the data plane retries a backend
 * that went away).  Fills every out-pointer.
 */
void vhu_blk_rig_up(struct qsd_peer *p, struct vqb *b, struct fake_host *h, size_t img_bytes,
                    uint16_t qsize, const char *id, bool reconnect, void **dp,
                    struct virtio_dev **d, struct virtio_mmio **t);

/* Tear down what vhu_blk_rig_up made (a NULL *d or *t was already destroyed). */
void vhu_blk_rig_down(struct qsd_peer *p, struct vqb *b, struct fake_host *h, struct virtio_dev *d,
                      struct virtio_mmio *t);

/* Negotiate `features`, set queue 0 up on the builder's rings, DRIVER_OK; asserts it is live. */
void vhu_blk_rig_live(struct virtio_mmio *t, uint64_t features, uint16_t qsize);

#endif /* TESTS_LIB_VHU_BLK_RIG_H */
