/* Regressions from fuzzing the device-state decoder (tests/fuzz/corpus/virtio_state/regress-*). */
#include "tests/unit/migration/test_virtio_state.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

Test(virtio_state_regress, name_with_embedded_nul)
{
    /* "rng0" -> "r\0g0": the bytes after the NUL used to be kept, so a
     * decode/encode round trip changed the state. */
    struct vst_buf b;
    vst_small(&b);
    vst_val(&b, VIRTIO_STATE_T_DEVICE_NAME, 0)[1] = 0;
    vst_fix_crc(&b);
    vst_expect_reject(&b, -EBADMSG, "NUL");
    vst_buf_free(&b);
}

Test(virtio_state_regress, blob_without_record_type)
{
    /* The encoder would silently drop data it has no record type for. */
    struct virtio_state s;
    vst_fill_small(&s);
    uint8_t blob[4] = {1, 2, 3, 4};
    s.dev_rec_type = 0;
    s.dev_blob = blob;
    s.dev_blob_len = sizeof(blob);
    char why[256] = "";
    cr_assert_eq(virtio_state_check_limits(&s, why, sizeof(why)), -EINVAL);
    cr_assert(strstr(why, "without a record type"), "%s", why);
    s.dev_blob = NULL;
    s.dev_blob_len = 0;
    vst_release(&s, 1);
}
