/*
 * Fuzz target: the x86 vCPU and VM state decoders (arch/x86_64/
 * vcpu_state_codec.c, vm_state.c).
 *
 * Why: these blobs come from a snapshot file or a migration source, which a
 * compromised host controls byte for byte; the vCPU decoder reads three
 * counts (XSAVE bytes, XCRs, MSRs) that size copies into fixed arrays.
 *
 * The first byte picks the decoder (even: vCPU, odd: VM), the rest is the
 * blob.  A blob that decodes must re-encode to exactly the bytes the
 * decoder consumed (the encoding is canonical), and decode again.
 */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/vcpu_state.h"
#include "arch/x86_64/vm_state.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static struct x86_vcpu_state vcpu_a, vcpu_b;

static void check_vcpu(const uint8_t *data, size_t len)
{
    struct errbuf err = {0};
    struct vstate_in in;
    vstate_in_init(&in, data, len);
    if (x86_vcpu_state_decode(&in, &vcpu_a, &err) < 0)
        return;
    if (vcpu_a.nmsrs > X86_VCPU_STATE_MAX_MSRS || vcpu_a.nxcrs > X86_VCPU_STATE_MAX_XCRS ||
        vcpu_a.xsave_len > X86_VCPU_STATE_MAX_XSAVE)
        abort(); /* decode let an unbounded count through */
    struct vstate_out o;
    vstate_out_init(&o);
    if (x86_vcpu_state_encode(&vcpu_a, &o) != 0 || o.len != in.pos || memcmp(o.buf, data, o.len))
        abort();
    vstate_in_init(&in, o.buf, o.len);
    if (x86_vcpu_state_decode(&in, &vcpu_b, &err) < 0)
        abort();
    vstate_out_free(&o);
}

static void check_vm(const uint8_t *data, size_t len)
{
    struct errbuf err = {0};
    struct x86_vm_state a, b;
    struct vstate_in in;
    vstate_in_init(&in, data, len);
    if (x86_vm_state_decode(&in, &a, &err) < 0)
        return;
    struct vstate_out o;
    vstate_out_init(&o);
    if (x86_vm_state_encode(&a, &o) != 0 || o.len != in.pos || memcmp(o.buf, data, o.len))
        abort();
    vstate_in_init(&in, o.buf, o.len);
    if (x86_vm_state_decode(&in, &b, &err) < 0)
        abort();
    vstate_out_free(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        check_vm(data + 1, size - 1);
    else
        check_vcpu(data + 1, size - 1);
    return 0;
}
