/*
 * Unit tests for the vhost-user codec (devices/vhost/vhost_user_msg.c):
 * the exact bytes of the requests wisp builds, and the reply check's every
 * rule (version, REPLY flag, request echo, size field against what
 * arrived and against the reply kind, fds, config echo).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "devices/vhost/vhost_user_msg.h"
#include "vmm/util.h"

static uint8_t m[VHU_HDR_SIZE + VHU_MAX_PAYLOAD];

/* A reply of `size` payload bytes (payload zeroed) with the given header fields. */
static size_t mk(uint32_t req, uint32_t flags, uint32_t size, size_t plen)
{
    memset(m, 0, sizeof(m));
    struct vhu_hdr h = {.request = req, .flags = flags, .size = size};
    vhu_hdr_encode(m, &h);
    return VHU_HDR_SIZE + plen;
}

#define OK (VHU_VERSION | VHU_F_REPLY)

Test(vhost_user_msg, mem_table_layout)
{
    struct vhu_mem_region r[2] = {{0, 0x100000, 0x7f0000000000, 0},
                                  {0x200000, 0xe00000, 0x7f0000200000, 0x100000}};
    int n = vhu_build_mem_table(m, sizeof(m), VHU_F_NEED_REPLY, r, 2);
    cr_assert_eq(n, VHU_HDR_SIZE + 8 + 2 * 32);
    cr_assert_eq(le32_get(m), VHU_SET_MEM_TABLE);
    cr_assert_eq(le32_get(m + 4), VHU_VERSION | VHU_F_NEED_REPLY);
    cr_assert_eq(le32_get(m + 8), 8 + 2 * 32);
    cr_assert_eq(le32_get(m + 12), 2);
    cr_assert_eq(le64_get(m + 20 + 32), 0x200000);
    cr_assert_eq(le64_get(m + 20 + 32 + 16), 0x7f0000200000);
    cr_assert_eq(le64_get(m + 20 + 32 + 24), 0x100000);
    cr_assert_eq(vhu_build_mem_table(m, sizeof(m), 0, r, 0), -EINVAL);
    cr_assert_eq(vhu_build_mem_table(m, sizeof(m), 0, r, VHU_MAX_REGIONS + 1), -EINVAL);
    cr_assert_eq(vhu_build_mem_table(m, 40, 0, r, 2), -EMSGSIZE);
    cr_assert_eq(vhu_build_bare(m, sizeof(m), VHU_SET_OWNER, VHU_F_REPLY), -EINVAL);
}

Test(vhost_user_msg, vring_addr_and_state_layout)
{
    struct vhu_vring_addr a = {.index = 1, .desc = 0x1000, .used = 0x3000, .avail = 0x2000};
    cr_assert_eq(vhu_build_vring_addr(m, sizeof(m), 0, &a), VHU_HDR_SIZE + 40);
    cr_assert_eq(le32_get(m + 12), 1);
    cr_assert_eq(le64_get(m + 20), 0x1000);
    cr_assert_eq(le64_get(m + 28), 0x3000); /* used before avail on the wire */
    cr_assert_eq(le64_get(m + 36), 0x2000);
    cr_assert_eq(vhu_build_state(m, sizeof(m), VHU_SET_VRING_NUM, 0, 0, 256), VHU_HDR_SIZE + 8);
    cr_assert_eq(le32_get(m + 16), 256);
}

Test(vhost_user_msg, a_good_u64_reply)
{
    size_t len = mk(VHU_GET_FEATURES, OK, 8, 8);
    le64_put(m + VHU_HDR_SIZE, 0x140000000ull);
    struct vhu_reply r;
    cr_assert_eq(vhu_reply_parse(m, len, 0, VHU_GET_FEATURES, VHU_REPLY_U64, 0, 0, &r), 0);
    cr_assert_eq(r.u64, 0x140000000ull);
}

Test(vhost_user_msg, inflight_request_and_reply)
{
    struct vhu_inflight in = {
        .mmap_size = 0x1234, .mmap_offset = 8, .num_queues = 2, .queue_size = 256};
    int n = vhu_build_inflight(m, sizeof(m), VHU_SET_INFLIGHT_FD, 0, &in);
    cr_assert_eq(n, VHU_HDR_SIZE + VHU_INFLIGHT_SIZE);
    cr_assert_eq(le32_get(m), VHU_SET_INFLIGHT_FD);
    cr_assert_eq(le32_get(m + 8), VHU_INFLIGHT_SIZE, "24 bytes: the backends' struct is padded");
    cr_assert_eq(le64_get(m + VHU_HDR_SIZE), 0x1234);
    cr_assert_eq(le64_get(m + VHU_HDR_SIZE + 8), 8);
    cr_assert_eq(m[VHU_HDR_SIZE + 16], 2);
    cr_assert_eq(m[VHU_HDR_SIZE + 18] | m[VHU_HDR_SIZE + 19] << 8, 256);
    cr_assert_eq(vhu_build_inflight(m, sizeof(m), VHU_GET_CONFIG, 0, &in), -EINVAL);

    struct vhu_reply r;
    size_t len = mk(VHU_GET_INFLIGHT_FD, OK, VHU_INFLIGHT_SIZE, VHU_INFLIGHT_SIZE);
    uint8_t *p = m + VHU_HDR_SIZE;
    le64_put(p, 4096);
    p[16] = 1;
    p[18] = 0; /* 256, little-endian */
    p[19] = 1;
    cr_assert_eq(vhu_reply_parse(m, len, 1, VHU_GET_INFLIGHT_FD, VHU_REPLY_INFLIGHT, 0, 0, &r), 0);
    cr_assert_eq(r.inflight.mmap_size, 4096);
    cr_assert_eq(r.inflight.num_queues, 1);
    cr_assert_eq(r.inflight.queue_size, 256);
    cr_assert_eq(vhu_reply_parse(m, len, 0, VHU_GET_INFLIGHT_FD, VHU_REPLY_INFLIGHT, 0, 0, &r),
                 -EPROTO, "the area's fd must come with it");
    cr_assert_eq(vhu_reply_parse(m, len, 2, VHU_GET_INFLIGHT_FD, VHU_REPLY_INFLIGHT, 0, 0, &r),
                 -EPROTO, "one fd, not two");
    le64_put(p, 0);
    cr_assert_eq(vhu_reply_parse(m, len, 1, VHU_GET_INFLIGHT_FD, VHU_REPLY_INFLIGHT, 0, 0, &r),
                 -EPROTO, "an empty area");
    le64_put(p, VHU_MAX_INFLIGHT_MMAP + 1);
    cr_assert_eq(vhu_reply_parse(m, len, 1, VHU_GET_INFLIGHT_FD, VHU_REPLY_INFLIGHT, 0, 0, &r),
                 -EPROTO, "too large");
    le64_put(p, 4096);
    le64_put(p + 8, UINT64_MAX - 100);
    cr_assert_eq(vhu_reply_parse(m, len, 1, VHU_GET_INFLIGHT_FD, VHU_REPLY_INFLIGHT, 0, 0, &r),
                 -EPROTO, "offset + size wraps");
    le64_put(p + 8, 0);
    p[18] = 3;
    p[19] = 0;
    cr_assert_eq(vhu_reply_parse(m, len, 1, VHU_GET_INFLIGHT_FD, VHU_REPLY_INFLIGHT, 0, 0, &r),
                 -EPROTO, "queue size not a power of two");
    p[18] = 0;
    p[19] = 1;
    p[16] = 9;
    cr_assert_eq(vhu_reply_parse(m, len, 1, VHU_GET_INFLIGHT_FD, VHU_REPLY_INFLIGHT, 0, 0, &r),
                 -EPROTO, "more queues than wisp has");
    len = mk(VHU_GET_INFLIGHT_FD, OK, 20, 20);
    cr_assert_eq(vhu_reply_parse(m, len, 1, VHU_GET_INFLIGHT_FD, VHU_REPLY_INFLIGHT, 0, 0, &r),
                 -EPROTO, "20 bytes: unpadded");
    len = mk(VHU_GET_FEATURES, OK, 8, 8);
    cr_assert_eq(vhu_reply_parse(m, len, 1, VHU_GET_FEATURES, VHU_REPLY_U64, 0, 0, &r), -EPROTO,
                 "no other reply may carry an fd");
}

Test(vhost_user_msg, malformed_replies_are_refused)
{
    struct vhu_reply r;
    size_t len;
    /* Request code not echoed. */
    len = mk(VHU_GET_QUEUE_NUM, OK, 8, 8);
    cr_assert_eq(vhu_reply_parse(m, len, 0, VHU_GET_FEATURES, VHU_REPLY_U64, 0, 0, &r), -EPROTO);
    /* No REPLY flag; NEED_REPLY on a reply; unknown flag bit; version 0 or 2. */
    const uint32_t bad_flags[] = {VHU_VERSION, OK | VHU_F_NEED_REPLY, OK | 0x10, VHU_F_REPLY,
                                  2 | VHU_F_REPLY};
    for (unsigned i = 0; i < sizeof(bad_flags) / sizeof(bad_flags[0]); i++) {
        len = mk(VHU_GET_FEATURES, bad_flags[i], 8, 8);
        cr_assert_eq(vhu_reply_parse(m, len, 0, VHU_GET_FEATURES, VHU_REPLY_U64, 0, 0, &r), -EPROTO,
                     "flags %#x", bad_flags[i]);
    }
    /* Size field against what arrived, and against the kind. */
    len = mk(VHU_GET_FEATURES, OK, 8, 4);
    cr_assert_eq(vhu_reply_parse(m, len, 0, VHU_GET_FEATURES, VHU_REPLY_U64, 0, 0, &r), -EPROTO);
    len = mk(VHU_GET_FEATURES, OK, 16, 16);
    cr_assert_eq(vhu_reply_parse(m, len, 0, VHU_GET_FEATURES, VHU_REPLY_U64, 0, 0, &r), -EPROTO);
    len = mk(VHU_GET_VRING_BASE, OK, 4, 4);
    cr_assert_eq(vhu_reply_parse(m, len, 0, VHU_GET_VRING_BASE, VHU_REPLY_STATE, 0, 0, &r),
                 -EPROTO);
    /* Truncated header; fds where none are expected. */
    cr_assert_eq(vhu_reply_parse(m, 11, 0, VHU_GET_FEATURES, VHU_REPLY_U64, 0, 0, &r), -EPROTO);
    len = mk(VHU_GET_FEATURES, OK, 8, 8);
    cr_assert_eq(vhu_reply_parse(m, len, 1, VHU_GET_FEATURES, VHU_REPLY_U64, 0, 0, &r), -EPROTO);
}

Test(vhost_user_msg, config_reply_must_echo_the_request)
{
    struct vhu_reply r;
    size_t len = mk(VHU_GET_CONFIG, OK, VHU_CONFIG_HDR + 8, VHU_CONFIG_HDR + 8);
    le32_put(m + VHU_HDR_SIZE + 4, 8);
    m[VHU_HDR_SIZE + VHU_CONFIG_HDR] = 0x42;
    cr_assert_eq(vhu_reply_parse(m, len, 0, VHU_GET_CONFIG, VHU_REPLY_CONFIG, 0, 8, &r), 0);
    cr_assert_eq(r.cfg_size, 8);
    cr_assert_eq(r.cfg[0], 0x42);
    cr_assert(r.cfg >= m && r.cfg + r.cfg_size <= m + len);
    /* Another size or offset than asked. */
    cr_assert_eq(vhu_reply_parse(m, len, 0, VHU_GET_CONFIG, VHU_REPLY_CONFIG, 0, 4, &r), -EPROTO);
    cr_assert_eq(vhu_reply_parse(m, len, 0, VHU_GET_CONFIG, VHU_REPLY_CONFIG, 4, 8, &r), -EPROTO);
    /* Inner size disagreeing with the header's. */
    le32_put(m + VHU_HDR_SIZE + 4, 16);
    cr_assert_eq(vhu_reply_parse(m, len, 0, VHU_GET_CONFIG, VHU_REPLY_CONFIG, 0, 16, &r), -EPROTO);
    /* Flags other than 0/1. */
    le32_put(m + VHU_HDR_SIZE + 4, 8);
    le32_put(m + VHU_HDR_SIZE + 8, 2);
    cr_assert_eq(vhu_reply_parse(m, len, 0, VHU_GET_CONFIG, VHU_REPLY_CONFIG, 0, 8, &r), -EPROTO);
    /* Size 0: the backend failed. */
    len = mk(VHU_GET_CONFIG, OK, VHU_CONFIG_HDR, VHU_CONFIG_HDR);
    cr_assert_eq(vhu_reply_parse(m, len, 0, VHU_GET_CONFIG, VHU_REPLY_CONFIG, 0, 8, &r), -EIO);
}
