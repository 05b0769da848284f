/*
 * The x86 vCPU and VM state byte formats, without KVM: round trips of
 * pseudo-random states, and hostile blobs.  The bounds tests build sections
 * whose vstate framing is valid (right name, version and length), so what
 * refuses them is the x86 decoder's own count checks, not the framing.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/vcpu_state.h"
#include "arch/x86_64/vm_state.h"

static struct errbuf err;
static struct x86_vcpu_state *a, *b;

static void setup(void)
{
    memset(&err, 0, sizeof(err));
    a = calloc(1, sizeof(*a));
    b = calloc(1, sizeof(*b));
    cr_assert(a && b);
}

static void teardown(void)
{
    free(a);
    free(b);
}

TestSuite(x86_vcpu_state, .init = setup, .fini = teardown);

static uint64_t rnd_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static void fill(void *p, size_t n)
{
    uint8_t *q = p;
    for (size_t i = 0; i < n; i++)
        q[i] = (uint8_t)rnd();
}

/* A random state with counts inside the bounds. */
static void random_state(struct x86_vcpu_state *s, uint32_t nmsrs, uint32_t xsave_len)
{
    fill(s, sizeof(*s));
    s->nmsrs = nmsrs;
    s->xsave_len = xsave_len;
    s->nxcrs = 1;
}

static size_t encode(const struct x86_vcpu_state *s, struct vstate_out *o)
{
    vstate_out_init(o);
    cr_assert_eq(x86_vcpu_state_encode(s, o), 0);
    return o->len;
}

Test(x86_vcpu_state, round_trip)
{
    random_state(a, 53, 4096);
    struct vstate_out o1, o2;
    encode(a, &o1);
    struct vstate_in in;
    vstate_in_init(&in, o1.buf, o1.len);
    cr_assert_eq(x86_vcpu_state_decode(&in, b, &err), 0, "%s", err.msg);
    /* Field spot checks, then the canonical form: re-encoding gives the same bytes. */
    cr_assert_eq(b->regs.rip, a->regs.rip);
    cr_assert_eq(b->regs.r15, a->regs.r15);
    cr_assert_eq(b->sregs.cr3, a->sregs.cr3);
    cr_assert_eq(b->sregs.tr.selector, a->sregs.tr.selector);
    cr_assert_eq(b->sregs.ldt.unusable, a->sregs.ldt.unusable);
    cr_assert_eq(b->sregs.interrupt_bitmap[3], a->sregs.interrupt_bitmap[3]);
    cr_assert_eq(b->nmsrs, 53);
    cr_assert_eq(b->msrs[52].index, a->msrs[52].index);
    cr_assert_eq(b->msrs[52].data, a->msrs[52].data);
    cr_assert_eq(memcmp(b->xsave, a->xsave, 4096), 0);
    cr_assert_eq(memcmp(b->lapic, a->lapic, sizeof(a->lapic)), 0);
    cr_assert_eq(b->xcrs[0].value, a->xcrs[0].value);
    cr_assert_eq(b->debugregs.dr7, a->debugregs.dr7);
    cr_assert_eq(b->events.exception_payload, a->events.exception_payload);
    cr_assert_eq(b->events.nmi.masked, a->events.nmi.masked);
    cr_assert_eq(b->events.smi.latched_init, a->events.smi.latched_init);
    cr_assert_eq(b->mp_state, a->mp_state);
    cr_assert_eq(b->tsc_khz, a->tsc_khz);
    encode(b, &o2);
    cr_assert_eq(o1.len, o2.len);
    cr_assert_eq(memcmp(o1.buf, o2.buf, o1.len), 0);
    vstate_out_free(&o1);
    vstate_out_free(&o2);
}

Test(x86_vcpu_state, encode_refuses_out_of_bounds_counts)
{
    random_state(a, X86_VCPU_STATE_MAX_MSRS + 1, 4096);
    struct vstate_out o;
    vstate_out_init(&o);
    cr_assert_neq(x86_vcpu_state_encode(a, &o), 0, "never write a truncated state");
    vstate_out_free(&o);
}

/*
 * A well-framed section: the fixed part of a real encoding up to the XSAVE
 * length, then `count` at the position named by `which`, then nothing.
 */
enum count_field { XSAVE_LEN, NXCRS, NMSRS };

static void forged(struct vstate_out *o, enum count_field which, uint32_t count)
{
    /* Offsets inside the payload: regs 144, segments 8 x 23, gdt/idt 20, cregs 56, bitmap 32. */
    const size_t fixed = 18 * 8 + 8 * 23 + 2 * 10 + 7 * 8 + 4 * 8;
    uint8_t zero[512] = {0};
    vstate_out_init(o);
    vstate_begin(o, "x86-vcpu", X86_VCPU_STATE_VERSION);
    vstate_put_bytes(o, zero, fixed);
    if (which == XSAVE_LEN) {
        vstate_put_u32(o, count);
    } else {
        vstate_put_u32(o, 0); /* empty XSAVE */
        if (which == NXCRS) {
            vstate_put_u32(o, count);
        } else {
            vstate_put_u32(o, 0);
            vstate_put_bytes(o, zero, 7 * 8); /* debug registers */
            vstate_put_u32(o, count);
        }
    }
    cr_assert_eq(vstate_end(o), 0);
}

static void expect_bound(enum count_field which, uint32_t count, const char *what)
{
    struct vstate_out o;
    forged(&o, which, count);
    struct vstate_in in;
    vstate_in_init(&in, o.buf, o.len);
    int ret = x86_vcpu_state_decode(&in, b, &err);
    cr_assert_eq(ret, -EBADMSG);
    cr_assert(strstr(err.msg, what) && strstr(err.msg, "more than"), "message: %s", err.msg);
    vstate_out_free(&o);
}

Test(x86_vcpu_state, bounds_xsave)
{
    expect_bound(XSAVE_LEN, X86_VCPU_STATE_MAX_XSAVE + 1, "XSAVE");
    expect_bound(XSAVE_LEN, UINT32_MAX, "XSAVE");
}

Test(x86_vcpu_state, bounds_xcrs)
{
    expect_bound(NXCRS, X86_VCPU_STATE_MAX_XCRS + 1, "XCRs");
}

Test(x86_vcpu_state, bounds_msrs)
{
    expect_bound(NMSRS, X86_VCPU_STATE_MAX_MSRS + 1, "MSRs");
    expect_bound(NMSRS, UINT32_MAX, "MSRs");
}

/* Sections cut short with correct framing: every prefix of the payload. */
Test(x86_vcpu_state, truncated_payload_every_length)
{
    random_state(a, 5, 4096);
    struct vstate_out full;
    encode(a, &full);
    const size_t hdr = 28; /* vstate section header (migration/vstate.h) */
    size_t payload = full.len - hdr;
    for (size_t cut = 0; cut < payload; cut += (cut < 600 || payload - cut < 1400) ? 1 : 97) {
        struct vstate_out o;
        vstate_out_init(&o);
        vstate_begin(&o, "x86-vcpu", X86_VCPU_STATE_VERSION);
        vstate_put_bytes(&o, full.buf + hdr, cut);
        cr_assert_eq(vstate_end(&o), 0);
        struct vstate_in in;
        vstate_in_init(&in, o.buf, o.len);
        cr_assert_lt(x86_vcpu_state_decode(&in, b, &err), 0, "cut at %zu of %zu accepted", cut,
                     payload);
        vstate_out_free(&o);
    }
    vstate_out_free(&full);
}

Test(x86_vcpu_state, trailing_byte_refused)
{
    random_state(a, 2, 4096);
    struct vstate_out full;
    encode(a, &full);
    struct vstate_out o;
    vstate_out_init(&o);
    vstate_begin(&o, "x86-vcpu", X86_VCPU_STATE_VERSION);
    vstate_put_bytes(&o, full.buf + 28, full.len - 28);
    vstate_put_u8(&o, 0);
    cr_assert_eq(vstate_end(&o), 0);
    struct vstate_in in;
    vstate_in_init(&in, o.buf, o.len);
    cr_assert_lt(x86_vcpu_state_decode(&in, b, &err), 0);
    cr_assert(strstr(err.msg, "left over"), "%s", err.msg);
    vstate_out_free(&o);
    vstate_out_free(&full);
}

Test(x86_vcpu_state, newer_version_refused)
{
    struct vstate_out o;
    vstate_out_init(&o);
    vstate_begin(&o, "x86-vcpu", X86_VCPU_STATE_VERSION + 1);
    cr_assert_eq(vstate_end(&o), 0);
    struct vstate_in in;
    vstate_in_init(&in, o.buf, o.len);
    cr_assert_eq(x86_vcpu_state_decode(&in, b, &err), -EPROTO);
    cr_assert(strstr(err.msg, "newer"), "%s", err.msg);
    vstate_out_free(&o);
}

Test(x86_vcpu_state, vm_state_round_trip_and_truncation)
{
    struct x86_vm_state s, t;
    fill(&s, sizeof(s));
    struct vstate_out o1, o2;
    vstate_out_init(&o1);
    cr_assert_eq(x86_vm_state_encode(&s, &o1), 0);
    struct vstate_in in;
    vstate_in_init(&in, o1.buf, o1.len);
    cr_assert_eq(x86_vm_state_decode(&in, &t, &err), 0, "%s", err.msg);
    cr_assert_eq(t.pic[1].elcr_mask, s.pic[1].elcr_mask);
    cr_assert_eq(t.ioapic.redirtbl[23].bits, s.ioapic.redirtbl[23].bits);
    cr_assert_eq(t.pit.channels[2].gate, s.pit.channels[2].gate);
    cr_assert_eq(t.pit.channels[0].count, s.pit.channels[0].count);
    cr_assert_eq(t.clock_ns, s.clock_ns);
    vstate_out_init(&o2);
    cr_assert_eq(x86_vm_state_encode(&t, &o2), 0);
    cr_assert_eq(o1.len, o2.len);
    cr_assert_eq(memcmp(o1.buf, o2.buf, o1.len), 0);
    for (size_t cut = 0; cut < o1.len - 28; cut++) {
        struct vstate_out o;
        vstate_out_init(&o);
        vstate_begin(&o, "x86-vm", X86_VM_STATE_VERSION);
        vstate_put_bytes(&o, o1.buf + 28, cut);
        cr_assert_eq(vstate_end(&o), 0);
        vstate_in_init(&in, o.buf, o.len);
        cr_assert_lt(x86_vm_state_decode(&in, &t, &err), 0, "cut at %zu accepted", cut);
        vstate_out_free(&o);
    }
    vstate_out_free(&o1);
    vstate_out_free(&o2);
}
