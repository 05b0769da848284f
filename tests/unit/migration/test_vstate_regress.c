/*
 * Regressions found by fuzzing the state buffers (tests/fuzz/fuzz_vstate.c).
 * The minimised fuzz inputs are in tests/fuzz/corpus/vstate/ under the names
 * given below.
 */
#include "migration/vstate.h"

#include <criterion/criterion.h>
#include <errno.h>

/*
 * regress-put-bytes-zero-null: vstate_put_bytes(o, p, 0) on a fresh buffer
 * computed NULL + 0 inside out_reserve() (UB, reported by UBSan).  A
 * zero-length put is now a no-op, and the buffer stays usable.
 */
Test(vstate_regress, put_zero_bytes_on_fresh_buffer)
{
    struct vstate_out o;
    vstate_out_init(&o);
    vstate_put_bytes(&o, NULL, 0);
    cr_assert_eq(o.err, 0);
    cr_assert_eq(o.len, 0);
    vstate_begin(&o, "empty", 1);
    vstate_put_bytes(&o, "", 0);
    cr_assert_eq(vstate_end(&o), 0);

    struct vstate_in in;
    uint16_t ver;
    vstate_in_init(&in, o.buf, o.len);
    cr_assert_eq(vstate_enter(&in, "empty", 1, 1, &ver), 0);
    cr_assert_eq(vstate_leave(&in), 0);
    vstate_out_free(&o);
}

/*
 * regress-get-bytes-zero-null: vstate_get_bytes(in, p, 0) on an input over
 * (NULL, 0), e.g. the buffer of a vstate_out that never wrote anything,
 * computed NULL + 0 in in_take() (UB).  It is now a no-op without error.
 */
Test(vstate_regress, get_zero_bytes_from_empty_input)
{
    struct vstate_out o;
    vstate_out_init(&o);
    struct vstate_in in;
    char b[1] = {'x'};
    vstate_in_init(&in, o.buf, o.len);
    vstate_get_bytes(&in, b, 0);
    cr_assert_eq(in.err, 0);
    cr_assert_eq(in.pos, 0);
    cr_assert_eq(b[0], 'x');
    /* A real read still fails cleanly and zero-fills. */
    vstate_get_bytes(&in, b, 1);
    cr_assert_eq(in.err, -EBADMSG);
    cr_assert_eq(b[0], 0);
}
