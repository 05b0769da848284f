/* State buffers: round trip and defensive reads. */
#include "migration/vstate.h"

#include <criterion/criterion.h>
#include <errno.h>

static void build(struct vstate_out *o)
{
    vstate_out_init(o);
    vstate_begin(o, "thing", 3);
    vstate_put_u8(o, 0x12);
    vstate_put_u16(o, 0x3456);
    vstate_put_u32(o, 0x789abcde);
    vstate_put_u64(o, 0x0123456789abcdefULL);
    vstate_put_bytes(o, "xyz", 3);
    cr_assert_eq(vstate_end(o), 0);
}

Test(vstate, round_trip)
{
    struct vstate_out o;
    build(&o);
    struct vstate_in in;
    uint16_t ver;
    char b[3];
    vstate_in_init(&in, o.buf, o.len);
    cr_assert_eq(vstate_enter(&in, "thing", 1, 3, &ver), 0);
    cr_assert_eq(ver, 3);
    cr_assert_eq(vstate_get_u8(&in), 0x12);
    cr_assert_eq(vstate_get_u16(&in), 0x3456);
    cr_assert_eq(vstate_get_u32(&in), 0x789abcde);
    cr_assert_eq(vstate_get_u64(&in), 0x0123456789abcdefULL);
    vstate_get_bytes(&in, b, 3);
    cr_assert_arr_eq(b, "xyz", 3);
    cr_assert_eq(vstate_leave(&in), 0);
    vstate_out_free(&o);
}

Test(vstate, rejects_damage)
{
    struct vstate_out o;
    build(&o);
    struct vstate_in in;
    uint16_t ver;
    /* Wrong name, version out of range. */
    vstate_in_init(&in, o.buf, o.len);
    cr_assert_eq(vstate_enter(&in, "other", 1, 3, &ver), -EBADMSG);
    vstate_in_init(&in, o.buf, o.len);
    cr_assert_eq(vstate_enter(&in, "thing", 4, 5, &ver), -EPROTO);
    /* Every truncation fails, never reads past the end. */
    for (size_t len = 0; len < o.len; len++) {
        vstate_in_init(&in, o.buf, len);
        if (vstate_enter(&in, "thing", 1, 3, &ver) == 0) {
            (void)vstate_get_u64(&in);
            (void)vstate_get_u64(&in);
            (void)vstate_get_u64(&in);
            cr_assert_neq(vstate_leave(&in), 0, "len %zu", len);
        }
    }
    /* Unread trailing bytes in the section are an error. */
    vstate_in_init(&in, o.buf, o.len);
    cr_assert_eq(vstate_enter(&in, "thing", 1, 3, &ver), 0);
    (void)vstate_get_u8(&in);
    cr_assert_eq(vstate_leave(&in), -EBADMSG);
    /* A length field pointing past the buffer. */
    o.buf[8] = 0xff;
    vstate_in_init(&in, o.buf, o.len);
    cr_assert_eq(vstate_enter(&in, "thing", 1, 3, &ver), -EBADMSG);
    vstate_out_free(&o);
}

Test(vstate, reads_after_error_return_zero)
{
    struct vstate_in in;
    uint8_t junk[4] = {1, 2, 3, 4};
    vstate_in_init(&in, junk, sizeof(junk));
    cr_assert_eq(vstate_get_u64(&in), 0);
    cr_assert_eq(in.err, -EBADMSG);
    cr_assert_eq(vstate_get_u8(&in), 0, "sticky error");
}
