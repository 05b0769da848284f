/*
 * The byte format of an x86 vCPU's state (see vcpu_state.h): one vstate
 * section "x86-vcpu", every field written explicitly little-endian, never a
 * struct dump, so the blob means the same to any wisp build.  The XSAVE
 * area and the LAPIC page are copied as bytes: both are layouts the
 * architecture defines (the XSAVE standard format, the APIC register page).
 *
 * Layout, version 1:
 *   regs     18 x u64: rax rbx rcx rdx rsi rdi rsp rbp r8..r15 rip rflags
 *   sregs    8 segments (cs ds es fs gs ss tr ldt): u64 base, u32 limit,
 *            u16 selector, 8 x u8 type present dpl db s l g avl, u8 unusable;
 *            gdt, idt: u64 base, u16 limit; u64 cr0 cr2 cr3 cr4 cr8 efer
 *            apic_base; 4 x u64 interrupt_bitmap
 *   xsave    u32 length, bytes
 *   xcrs     u32 count, count x (u32 xcr, u64 value)
 *   debug    4 x u64 db, u64 dr6, u64 dr7, u64 flags
 *   msrs     u32 count, count x (u32 index, u64 data)
 *   lapic    1024 bytes
 *   events   exception: u8 injected nr has_error_code pending, u32 error_code;
 *            interrupt: u8 injected nr soft shadow; nmi: u8 injected pending
 *            masked; u32 sipi_vector; u32 flags; smi: u8 smm pending
 *            smm_inside_nmi latched_init; u8 exception_has_payload,
 *            u64 exception_payload
 *   u32 mp_state, u32 tsc_khz
 */
#include "arch/x86_64/vcpu_state.h"

#include <errno.h>
#include <string.h>

#define SECTION "x86-vcpu"

static void put_seg(struct vstate_out *o, const struct kvm_segment *s)
{
    vstate_put_u64(o, s->base);
    vstate_put_u32(o, s->limit);
    vstate_put_u16(o, s->selector);
    const uint8_t f[] = {s->type, s->present, s->dpl, s->db, s->s, s->l, s->g, s->avl, s->unusable};
    vstate_put_bytes(o, f, sizeof(f));
}

static void get_seg(struct vstate_in *in, struct kvm_segment *s)
{
    s->base = vstate_get_u64(in);
    s->limit = vstate_get_u32(in);
    s->selector = vstate_get_u16(in);
    uint8_t f[9];
    vstate_get_bytes(in, f, sizeof(f));
    s->type = f[0];
    s->present = f[1];
    s->dpl = f[2];
    s->db = f[3];
    s->s = f[4];
    s->l = f[5];
    s->g = f[6];
    s->avl = f[7];
    s->unusable = f[8];
}

/* The general registers in format order. */
static __u64 *reg_slot(struct kvm_regs *r, unsigned i)
{
    __u64 *slots[] = {&r->rax, &r->rbx, &r->rcx, &r->rdx, &r->rsi, &r->rdi,
                      &r->rsp, &r->rbp, &r->r8,  &r->r9,  &r->r10, &r->r11,
                      &r->r12, &r->r13, &r->r14, &r->r15, &r->rip, &r->rflags};
    _Static_assert(sizeof(slots) / sizeof(slots[0]) == 18, "18 registers");
    return slots[i];
}

static struct kvm_segment *seg_slot(struct kvm_sregs *s, unsigned i)
{
    struct kvm_segment *slots[] = {&s->cs, &s->ds, &s->es, &s->fs, &s->gs, &s->ss, &s->tr, &s->ldt};
    return slots[i];
}

static __u64 *creg_slot(struct kvm_sregs *s, unsigned i)
{
    __u64 *slots[] = {&s->cr0, &s->cr2, &s->cr3, &s->cr4, &s->cr8, &s->efer, &s->apic_base};
    return slots[i];
}

#define NREGS  18U
#define NSEGS  8U
#define NCREGS 7U

int x86_vcpu_state_encode(const struct x86_vcpu_state *s, struct vstate_out *o)
{
    /* The slot helpers take non-const pointers; encode works on a copy of the small parts. */
    struct kvm_regs regs = s->regs;
    struct kvm_sregs sregs = s->sregs;
    vstate_begin(o, SECTION, X86_VCPU_STATE_VERSION);
    for (unsigned i = 0; i < NREGS; i++)
        vstate_put_u64(o, *reg_slot(&regs, i));
    for (unsigned i = 0; i < NSEGS; i++)
        put_seg(o, seg_slot(&sregs, i));
    vstate_put_u64(o, sregs.gdt.base);
    vstate_put_u16(o, sregs.gdt.limit);
    vstate_put_u64(o, sregs.idt.base);
    vstate_put_u16(o, sregs.idt.limit);
    for (unsigned i = 0; i < NCREGS; i++)
        vstate_put_u64(o, *creg_slot(&sregs, i));
    for (unsigned i = 0; i < 4; i++)
        vstate_put_u64(o, sregs.interrupt_bitmap[i]);

    uint32_t xlen = s->xsave_len <= X86_VCPU_STATE_MAX_XSAVE ? s->xsave_len : 0;
    vstate_put_u32(o, xlen);
    vstate_put_bytes(o, s->xsave, xlen);
    uint32_t nx = s->nxcrs <= X86_VCPU_STATE_MAX_XCRS ? s->nxcrs : 0;
    vstate_put_u32(o, nx);
    for (uint32_t i = 0; i < nx; i++) {
        vstate_put_u32(o, s->xcrs[i].xcr);
        vstate_put_u64(o, s->xcrs[i].value);
    }
    for (unsigned i = 0; i < 4; i++)
        vstate_put_u64(o, s->debugregs.db[i]);
    vstate_put_u64(o, s->debugregs.dr6);
    vstate_put_u64(o, s->debugregs.dr7);
    vstate_put_u64(o, s->debugregs.flags);
    uint32_t nm = s->nmsrs <= X86_VCPU_STATE_MAX_MSRS ? s->nmsrs : 0;
    vstate_put_u32(o, nm);
    for (uint32_t i = 0; i < nm; i++) {
        vstate_put_u32(o, s->msrs[i].index);
        vstate_put_u64(o, s->msrs[i].data);
    }
    vstate_put_bytes(o, s->lapic, sizeof(s->lapic));

    const struct kvm_vcpu_events *e = &s->events;
    const uint8_t exc[] = {e->exception.injected, e->exception.nr, e->exception.has_error_code,
                           e->exception.pending};
    vstate_put_bytes(o, exc, sizeof(exc));
    vstate_put_u32(o, e->exception.error_code);
    const uint8_t irq[] = {e->interrupt.injected, e->interrupt.nr, e->interrupt.soft,
                           e->interrupt.shadow,   e->nmi.injected, e->nmi.pending,
                           e->nmi.masked};
    vstate_put_bytes(o, irq, sizeof(irq));
    vstate_put_u32(o, e->sipi_vector);
    vstate_put_u32(o, e->flags);
    const uint8_t smi[] = {e->smi.smm, e->smi.pending, e->smi.smm_inside_nmi, e->smi.latched_init,
                           e->exception_has_payload};
    vstate_put_bytes(o, smi, sizeof(smi));
    vstate_put_u64(o, e->exception_payload);
    vstate_put_u32(o, s->mp_state);
    vstate_put_u32(o, s->tsc_khz);
    if (xlen != s->xsave_len || nx != s->nxcrs || nm != s->nmsrs)
        o->err = o->err ? o->err : -E2BIG; /* a caller bug: never write a truncated state */
    return vstate_end(o);
}

/* Read a count and check it against `max` before anything uses it. */
static int get_count(struct vstate_in *in, uint32_t max, const char *what, uint32_t *out,
                     struct errbuf *err)
{
    uint32_t n = vstate_get_u32(in);
    if (in->err)
        return err_set(err, WISP_EXIT_FAILURE, -in->err, "x86-vcpu state: truncated at %s", what);
    if (n > max)
        return err_set(err, WISP_EXIT_FAILURE, EBADMSG,
                       "x86-vcpu state: %u %s, more than the %u allowed", n, what, max);
    *out = n;
    return 0;
}

int x86_vcpu_state_decode(struct vstate_in *in, struct x86_vcpu_state *s, struct errbuf *err)
{
    uint16_t version;
    memset(s, 0, sizeof(*s));
    int ret = vstate_enter(in, SECTION, 1, X86_VCPU_STATE_VERSION, &version);
    if (ret == -EPROTO)
        return err_set(err, WISP_EXIT_FAILURE, EPROTO,
                       "x86-vcpu state: section version not in 1..%u (from a newer wisp?)",
                       X86_VCPU_STATE_VERSION);
    if (ret < 0)
        return err_set(err, WISP_EXIT_FAILURE, -ret,
                       "x86-vcpu state: no well-formed \"%s\" section here", SECTION);
    for (unsigned i = 0; i < NREGS; i++)
        *reg_slot(&s->regs, i) = vstate_get_u64(in);
    for (unsigned i = 0; i < NSEGS; i++)
        get_seg(in, seg_slot(&s->sregs, i));
    s->sregs.gdt.base = vstate_get_u64(in);
    s->sregs.gdt.limit = vstate_get_u16(in);
    s->sregs.idt.base = vstate_get_u64(in);
    s->sregs.idt.limit = vstate_get_u16(in);
    for (unsigned i = 0; i < NCREGS; i++)
        *creg_slot(&s->sregs, i) = vstate_get_u64(in);
    for (unsigned i = 0; i < 4; i++)
        s->sregs.interrupt_bitmap[i] = vstate_get_u64(in);

    if ((ret = get_count(in, X86_VCPU_STATE_MAX_XSAVE, "XSAVE bytes", &s->xsave_len, err)) < 0)
        return ret;
    vstate_get_bytes(in, s->xsave, s->xsave_len);
    if ((ret = get_count(in, X86_VCPU_STATE_MAX_XCRS, "XCRs", &s->nxcrs, err)) < 0)
        return ret;
    for (uint32_t i = 0; i < s->nxcrs; i++) {
        s->xcrs[i].xcr = vstate_get_u32(in);
        s->xcrs[i].value = vstate_get_u64(in);
    }
    for (unsigned i = 0; i < 4; i++)
        s->debugregs.db[i] = vstate_get_u64(in);
    s->debugregs.dr6 = vstate_get_u64(in);
    s->debugregs.dr7 = vstate_get_u64(in);
    s->debugregs.flags = vstate_get_u64(in);
    if ((ret = get_count(in, X86_VCPU_STATE_MAX_MSRS, "MSRs", &s->nmsrs, err)) < 0)
        return ret;
    for (uint32_t i = 0; i < s->nmsrs; i++) {
        s->msrs[i].index = vstate_get_u32(in);
        s->msrs[i].data = vstate_get_u64(in);
    }
    vstate_get_bytes(in, s->lapic, sizeof(s->lapic));

    struct kvm_vcpu_events *e = &s->events;
    uint8_t exc[4], irq[7], smi[5];
    vstate_get_bytes(in, exc, sizeof(exc));
    e->exception.injected = exc[0];
    e->exception.nr = exc[1];
    e->exception.has_error_code = exc[2];
    e->exception.pending = exc[3];
    e->exception.error_code = vstate_get_u32(in);
    vstate_get_bytes(in, irq, sizeof(irq));
    e->interrupt.injected = irq[0];
    e->interrupt.nr = irq[1];
    e->interrupt.soft = irq[2];
    e->interrupt.shadow = irq[3];
    e->nmi.injected = irq[4];
    e->nmi.pending = irq[5];
    e->nmi.masked = irq[6];
    e->sipi_vector = vstate_get_u32(in);
    e->flags = vstate_get_u32(in);
    vstate_get_bytes(in, smi, sizeof(smi));
    e->smi.smm = smi[0];
    e->smi.pending = smi[1];
    e->smi.smm_inside_nmi = smi[2];
    e->smi.latched_init = smi[3];
    e->exception_has_payload = smi[4];
    e->exception_payload = vstate_get_u64(in);
    s->mp_state = vstate_get_u32(in);
    s->tsc_khz = vstate_get_u32(in);
    if (in->err)
        return err_set(err, WISP_EXIT_FAILURE, -in->err, "x86-vcpu state: truncated");
    if ((ret = vstate_leave(in)) < 0)
        return err_set(err, WISP_EXIT_FAILURE, -ret, "x86-vcpu state: %s",
                       ret == -EBADMSG ? "bytes left over at the end of the section"
                                       : "malformed section");
    return 0;
}
