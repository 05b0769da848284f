/*
 * The virtio-fs config space wisp builds for backends without one of their
 * own (virtiofsd): the tag in the first 36 bytes, NUL-padded and not
 * terminated when it fills them, and one request queue (virtio 1.2 §5.11.4).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "devices/virtio/virtio_dp.h"

Test(fs_config, tag_and_one_request_queue)
{
    uint8_t c[VIRTIO_FS_CONFIG_SIZE];
    memset(c, 0xee, sizeof(c));
    cr_assert_eq(virtio_dp_fs_config("share", c), 0);
    cr_assert_eq(memcmp(c, "share", 5), 0);
    for (unsigned i = 5; i < VIRTIO_FS_TAG_MAX; i++)
        cr_assert_eq(c[i], 0, "byte %u padded", i);
    uint32_t nq =
        (uint32_t)c[36] | (uint32_t)c[37] << 8 | (uint32_t)c[38] << 16 | (uint32_t)c[39] << 24;
    cr_assert_eq(nq, 1, "num_request_queues (le32)");
    cr_assert_eq(virtio_dp_fs.ops->config_size, VIRTIO_FS_CONFIG_SIZE);
    cr_assert_eq(virtio_dp_fs.ops->num_queues, 2, "hiprio and one request queue");
}

Test(fs_config, a_36_byte_tag_fills_the_field)
{
    const char *tag = "abcdefghijklmnopqrstuvwxyz0123456789";
    uint8_t c[VIRTIO_FS_CONFIG_SIZE];
    cr_assert_eq(virtio_dp_fs_config(tag, c), 0);
    cr_assert_eq(memcmp(c, tag, 36), 0);
    cr_assert_eq(c[36], 1);
}

Test(fs_config, bad_tags)
{
    uint8_t c[VIRTIO_FS_CONFIG_SIZE];
    cr_assert_eq(virtio_dp_fs_config("", c), -EINVAL);
    cr_assert_eq(virtio_dp_fs_config(NULL, c), -EINVAL);
    cr_assert_eq(virtio_dp_fs_config("abcdefghijklmnopqrstuvwxyz0123456789x", c), -EINVAL);
}
