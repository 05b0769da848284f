/*
 * Seeds of the x86 state target (fuzz_x86_state.c): valid vCPU and VM state
 * sections, so the fuzzer starts from blobs that decode and mutates the
 * counts and fields from there.
 */
#include <string.h>

#include "arch/x86_64/vcpu_state.h"
#include "arch/x86_64/vm_state.h"
#include "tests/fuzz/seedgen.h"

static struct x86_vcpu_state sg_vcpu;

static void sg_blob(struct sg_buf *b, uint8_t mode, const struct vstate_out *o)
{
    sg_u8(b, mode);
    sg_put(b, o->buf, o->len);
}

void sg_x86_state_seeds(void)
{
    struct sg_buf b = {0};
    struct vstate_out o;

    memset(&sg_vcpu, 0, sizeof(sg_vcpu));
    sg_vcpu.regs.rip = 0x100000;
    sg_vcpu.regs.rflags = 0x2;
    sg_vcpu.sregs.cr0 = 0x80000031;
    sg_vcpu.xsave_len = 64; /* short, so mutations reach the later fields */
    sg_vcpu.nxcrs = 1;
    sg_vcpu.xcrs[0].value = 3;
    sg_vcpu.nmsrs = 3;
    sg_vcpu.msrs[0] = (struct x86_msr_value){0x10, 12345};
    sg_vcpu.msrs[1] = (struct x86_msr_value){0xc0000081, 0x0023001000000000ULL};
    sg_vcpu.msrs[2] = (struct x86_msr_value){0x2ff, 0xc06};
    sg_vcpu.tsc_khz = 2000000;
    vstate_out_init(&o);
    if (x86_vcpu_state_encode(&sg_vcpu, &o) == 0)
        sg_blob(&b, 0, &o);
    vstate_out_free(&o);
    sg_emit("x86_state", "vcpu-small", &b);

    sg_vcpu.nmsrs = 0;
    sg_vcpu.nxcrs = 0;
    sg_vcpu.xsave_len = 0;
    vstate_out_init(&o);
    if (x86_vcpu_state_encode(&sg_vcpu, &o) == 0)
        sg_blob(&b, 0, &o);
    vstate_out_free(&o);
    sg_emit("x86_state", "vcpu-empty", &b);

    struct x86_vm_state vm;
    memset(&vm, 0, sizeof(vm));
    vm.pic[0].elcr_mask = 0xf8;
    vm.ioapic.base_address = 0xfec00000;
    vm.pit.channels[0].count = 0x10000;
    vm.clock_ns = 123456789;
    vstate_out_init(&o);
    if (x86_vm_state_encode(&vm, &o) == 0)
        sg_blob(&b, 1, &o);
    vstate_out_free(&o);
    sg_emit("x86_state", "vm", &b);
    sg_free(&b);
}
