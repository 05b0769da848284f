/*
 * VM-wide in-kernel device state (see vm_state.h): the ioctls and the byte
 * format, which is small enough to share one file.
 *
 * Section "x86-vm", version 1:
 *   2 x PIC:  16 x u8 last_irr irr imr isr priority_add irq_base
 *             read_reg_select poll special_mask init_state auto_eoi
 *             rotate_on_auto_eoi special_fully_nested_mode init4 elcr elcr_mask
 *   IOAPIC:   u64 base_address, u32 ioregsel, u32 id, u32 irr,
 *             24 x u64 redirection entries (the IOAPIC's own RTE format)
 *   PIT:      3 x channel (u32 count, u16 latched_count, 10 x u8
 *             count_latched status_latched status read_state write_state
 *             write_latch rw_mode mode bcd gate), u32 flags
 *   u64 kvmclock in ns
 * The PIT channels' load times are host clock readings, meaningless on
 * another host: KVM restarts each counter from `count` when it is loaded.
 */
#include "arch/x86_64/vm_state.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#define SECTION "x86-vm"

static int kvm_fail(struct errbuf *err, const char *what)
{
    int e = errno ? errno : EIO;
    return err_set(err, WISP_EXIT_FAILURE, e, "%s", what);
}

int x86_vm_state_get(int vm_fd, struct x86_vm_state *s, struct errbuf *err)
{
    memset(s, 0, sizeof(*s));
    struct kvm_irqchip chip;
    for (unsigned i = 0; i < 2; i++) {
        memset(&chip, 0, sizeof(chip));
        chip.chip_id = i == 0 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
        if (ioctl(vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
            return kvm_fail(err, "KVM_GET_IRQCHIP (PIC)");
        s->pic[i] = chip.chip.pic;
    }
    memset(&chip, 0, sizeof(chip));
    chip.chip_id = KVM_IRQCHIP_IOAPIC;
    if (ioctl(vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
        return kvm_fail(err, "KVM_GET_IRQCHIP (IOAPIC)");
    s->ioapic = chip.chip.ioapic;
    if (ioctl(vm_fd, KVM_GET_PIT2, &s->pit) < 0)
        return kvm_fail(err, "KVM_GET_PIT2");
    struct kvm_clock_data clk;
    memset(&clk, 0, sizeof(clk));
    if (ioctl(vm_fd, KVM_GET_CLOCK, &clk) < 0)
        return kvm_fail(err, "KVM_GET_CLOCK");
    s->clock_ns = clk.clock;
    return 0;
}

int x86_vm_state_set(int vm_fd, const struct x86_vm_state *s, struct errbuf *err)
{
    struct kvm_irqchip chip;
    for (unsigned i = 0; i < 2; i++) {
        memset(&chip, 0, sizeof(chip));
        chip.chip_id = i == 0 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
        chip.chip.pic = s->pic[i];
        if (ioctl(vm_fd, KVM_SET_IRQCHIP, &chip) < 0)
            return kvm_fail(err, "KVM_SET_IRQCHIP (PIC)");
    }
    memset(&chip, 0, sizeof(chip));
    chip.chip_id = KVM_IRQCHIP_IOAPIC;
    chip.chip.ioapic = s->ioapic;
    if (ioctl(vm_fd, KVM_SET_IRQCHIP, &chip) < 0)
        return kvm_fail(err, "KVM_SET_IRQCHIP (IOAPIC)");
    struct kvm_pit_state2 pit = s->pit;
    if (ioctl(vm_fd, KVM_SET_PIT2, &pit) < 0)
        return kvm_fail(err, "KVM_SET_PIT2");
    struct kvm_clock_data clk;
    memset(&clk, 0, sizeof(clk));
    clk.clock = s->clock_ns;
    if (ioctl(vm_fd, KVM_SET_CLOCK, &clk) < 0)
        return kvm_fail(err, "KVM_SET_CLOCK");
    return 0;
}

static void pic_bytes(struct kvm_pic_state *p, uint8_t **f)
{
    uint8_t *fields[16] = {&p->last_irr,
                           &p->irr,
                           &p->imr,
                           &p->isr,
                           &p->priority_add,
                           &p->irq_base,
                           &p->read_reg_select,
                           &p->poll,
                           &p->special_mask,
                           &p->init_state,
                           &p->auto_eoi,
                           &p->rotate_on_auto_eoi,
                           &p->special_fully_nested_mode,
                           &p->init4,
                           &p->elcr,
                           &p->elcr_mask};
    memcpy(f, fields, sizeof(fields));
}

static void chan_bytes(struct kvm_pit_channel_state *c, uint8_t **f)
{
    uint8_t *fields[10] = {
        &c->count_latched, &c->status_latched, &c->status, &c->read_state, &c->write_state,
        &c->write_latch,   &c->rw_mode,        &c->mode,   &c->bcd,        &c->gate};
    memcpy(f, fields, sizeof(fields));
}

int x86_vm_state_encode(const struct x86_vm_state *in_state, struct vstate_out *o)
{
    struct x86_vm_state s = *in_state; /* the field tables take non-const pointers */
    uint8_t *f[16];
    vstate_begin(o, SECTION, X86_VM_STATE_VERSION);
    for (unsigned i = 0; i < 2; i++) {
        pic_bytes(&s.pic[i], f);
        for (unsigned k = 0; k < 16; k++)
            vstate_put_u8(o, *f[k]);
    }
    vstate_put_u64(o, s.ioapic.base_address);
    vstate_put_u32(o, s.ioapic.ioregsel);
    vstate_put_u32(o, s.ioapic.id);
    vstate_put_u32(o, s.ioapic.irr);
    for (unsigned i = 0; i < X86_VM_STATE_IOAPIC_PINS; i++)
        vstate_put_u64(o, s.ioapic.redirtbl[i].bits);
    for (unsigned i = 0; i < 3; i++) {
        struct kvm_pit_channel_state *c = &s.pit.channels[i];
        vstate_put_u32(o, c->count);
        vstate_put_u16(o, c->latched_count);
        chan_bytes(c, f);
        for (unsigned k = 0; k < 10; k++)
            vstate_put_u8(o, *f[k]);
    }
    vstate_put_u32(o, s.pit.flags);
    vstate_put_u64(o, s.clock_ns);
    return vstate_end(o);
}

int x86_vm_state_decode(struct vstate_in *in, struct x86_vm_state *s, struct errbuf *err)
{
    uint16_t version;
    memset(s, 0, sizeof(*s));
    int ret = vstate_enter(in, SECTION, 1, X86_VM_STATE_VERSION, &version);
    if (ret == -EPROTO)
        return err_set(err, WISP_EXIT_FAILURE, EPROTO,
                       "x86-vm state: section version not in 1..%u (from a newer wisp?)",
                       X86_VM_STATE_VERSION);
    if (ret < 0)
        return err_set(err, WISP_EXIT_FAILURE, -ret, "x86-vm state: no well-formed \"%s\" section",
                       SECTION);
    uint8_t *f[16];
    for (unsigned i = 0; i < 2; i++) {
        pic_bytes(&s->pic[i], f);
        for (unsigned k = 0; k < 16; k++)
            *f[k] = vstate_get_u8(in);
    }
    s->ioapic.base_address = vstate_get_u64(in);
    s->ioapic.ioregsel = vstate_get_u32(in);
    s->ioapic.id = vstate_get_u32(in);
    s->ioapic.irr = vstate_get_u32(in);
    for (unsigned i = 0; i < X86_VM_STATE_IOAPIC_PINS; i++)
        s->ioapic.redirtbl[i].bits = vstate_get_u64(in);
    for (unsigned i = 0; i < 3; i++) {
        struct kvm_pit_channel_state *c = &s->pit.channels[i];
        c->count = vstate_get_u32(in);
        c->latched_count = vstate_get_u16(in);
        chan_bytes(c, f);
        for (unsigned k = 0; k < 10; k++)
            *f[k] = vstate_get_u8(in);
    }
    s->pit.flags = vstate_get_u32(in);
    s->clock_ns = vstate_get_u64(in);
    if (in->err)
        return err_set(err, WISP_EXIT_FAILURE, -in->err, "x86-vm state: truncated");
    if ((ret = vstate_leave(in)) < 0)
        return err_set(err, WISP_EXIT_FAILURE, -ret,
                       "x86-vm state: bytes left over at the end of the section");
    return 0;
}
