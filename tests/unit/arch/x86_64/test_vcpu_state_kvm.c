/*
 * x86 vCPU and VM state on real KVM: a vCPU runs a few instructions of
 * 64-bit guest code in VM A, its state and A's irqchip/PIT/clock state go
 * through the byte format into a fresh VM B with a copy of A's memory, and
 * B must (1) read back what A had and (2) carry on running the same code
 * from where A stopped, with its SSE register and counter intact.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/cpuid.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/msr.h"
#include "arch/x86_64/vcpu_state.h"
#include "arch/x86_64/vm_state.h"

#define MEM_SIZE  (2 * MiB)
#define CODE_GPA  0x100000ULL
#define TEST_PORT 0x80

/*
 * loop: inc rbx; movq xmm0, rbx; mov al, bl; out 0x80, al; jmp loop
 * Each pass exits to the VMM with the low byte of the counter.
 */
static const uint8_t guest_code[] = {
    0x48, 0xff,
    0xc3, /* inc rbx */
    0x66, 0x48,
    0x0f, 0x6e,
    0xc3,                       /* movq xmm0, rbx */
    0x88, 0xd8,                 /* mov al, bl */
    0xe6, TEST_PORT,            /* out 0x80, al */
    0xeb, (uint8_t) - (12 + 2), /* jmp loop */
};

struct test_vm {
    int vm_fd, vcpu_fd;
    struct gmem gm;
    struct kvm_run *run;
    size_t run_size;
};

static struct errbuf err;
static int kvm_fd = -1;
static struct x86_msr_list msr_list;
static struct x86_vcpu_state *saved, *check;

static void setup(void)
{
    memset(&err, 0, sizeof(err));
    kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    cr_assert_geq(kvm_fd, 0, "/dev/kvm: %s", strerror(errno));
    cr_assert_eq(x86_msr_list_get(kvm_fd, &msr_list, &err), 0, "%s", err.msg);
    saved = calloc(1, sizeof(*saved));
    check = calloc(1, sizeof(*check));
    cr_assert(saved && check);
}

static void teardown(void)
{
    free(saved);
    free(check);
    if (kvm_fd >= 0)
        close(kvm_fd);
}

TestSuite(x86_state_kvm, .init = setup, .fini = teardown);

/* A VM as wisp builds one (irqchip, PIT, memory, one vCPU with CPUID). */
static void vm_new(struct test_vm *t)
{
    t->vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
    cr_assert_geq(t->vm_fd, 0, "KVM_CREATE_VM: %s", strerror(errno));
    cr_assert_eq(ioctl(t->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)X86_KVM_TSS_GPA), 0);
    cr_assert_eq(ioctl(t->vm_fd, KVM_CREATE_IRQCHIP, 0), 0, "%s", strerror(errno));
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    cr_assert_eq(ioctl(t->vm_fd, KVM_CREATE_PIT2, &pit), 0, "%s", strerror(errno));
    struct gmem_range r = {0, MEM_SIZE};
    cr_assert_eq(gmem_create(&t->gm, &r, 1, false, &err), 0, "%s", err.msg);
    struct kvm_userspace_memory_region slot = {
        .slot = 0,
        .guest_phys_addr = 0,
        .memory_size = MEM_SIZE,
        .userspace_addr = (uintptr_t)gmem_ptr(&t->gm, 0, MEM_SIZE),
    };
    cr_assert_eq(ioctl(t->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot), 0, "%s", strerror(errno));
    t->vcpu_fd = ioctl(t->vm_fd, KVM_CREATE_VCPU, 0);
    cr_assert_geq(t->vcpu_fd, 0, "KVM_CREATE_VCPU: %s", strerror(errno));
    struct kvm_cpuid2 *sup = NULL;
    cr_assert_eq(x86_cpuid_get_supported(kvm_fd, &sup, &err), 0, "%s", err.msg);
    cr_assert_eq(x86_cpuid_apply(sup, 0, 1, NULL), 0);
    cr_assert_eq(ioctl(t->vcpu_fd, KVM_SET_CPUID2, sup), 0, "%s", strerror(errno));
    free(sup);
    int sz = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    cr_assert_gt(sz, 0);
    t->run_size = (size_t)sz;
    t->run = mmap(NULL, t->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, t->vcpu_fd, 0);
    cr_assert_neq(t->run, MAP_FAILED);
}

static void vm_free(struct test_vm *t)
{
    munmap(t->run, t->run_size);
    close(t->vcpu_fd);
    close(t->vm_fd);
    gmem_destroy(&t->gm);
}

/* Run to the next exit; it must be the guest's `out` with `want`. */
static void run_to_out(struct test_vm *t, uint8_t want)
{
    cr_assert_eq(ioctl(t->vcpu_fd, KVM_RUN, 0), 0, "KVM_RUN: %s", strerror(errno));
    cr_assert_eq(t->run->exit_reason, KVM_EXIT_IO, "exit reason %u", t->run->exit_reason);
    cr_assert_eq(t->run->io.port, TEST_PORT);
    const uint8_t *data = (const uint8_t *)t->run + t->run->io.data_offset;
    cr_assert_eq(data[0], want, "guest counter %u, want %u", data[0], want);
}

static void set_msr(int vcpu_fd, uint32_t index, uint64_t value)
{
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e;
    } m = {.hdr.nmsrs = 1, .e = {.index = index, .data = value}};
    cr_assert_eq(ioctl(vcpu_fd, KVM_SET_MSRS, &m), 1, "set MSR 0x%x", index);
}

static uint64_t find_msr(const struct x86_vcpu_state *s, uint32_t index)
{
    for (uint32_t i = 0; i < s->nmsrs; i++)
        if (s->msrs[i].index == index)
            return s->msrs[i].data;
    cr_assert_fail("MSR 0x%x not saved", index);
    return 0;
}

/* VM A: boot state for the 64-bit entry at CODE_GPA, then distinctive values. */
static void start_a(struct test_vm *a)
{
    vm_new(a);
    cr_assert_eq(x86_write_boot_gdt(&a->gm), 0);
    cr_assert_eq(x86_write_boot_pagetables(&a->gm), 0);
    cr_assert_eq(gmem_write(&a->gm, CODE_GPA, guest_code, sizeof(guest_code)), 0);
    cr_assert_eq(x86_msrs_setup(kvm_fd, a->vcpu_fd, &err), 0, "%s", err.msg);
    cr_assert_eq(x86_vcpu_setup_regs(a->vcpu_fd, X86_ENTRY_LINUX64, CODE_GPA, 0, &err), 0, "%s",
                 err.msg);
    cr_assert_eq(x86_vcpu_setup_fpu(a->vcpu_fd, &err), 0, "%s", err.msg);
    /* SSE instructions need CR4.OSFXSR, which the kernel entry state leaves to the kernel. */
    struct kvm_sregs sr;
    cr_assert_eq(ioctl(a->vcpu_fd, KVM_GET_SREGS, &sr), 0);
    sr.cr4 |= 1ULL << 9;
    cr_assert_eq(ioctl(a->vcpu_fd, KVM_SET_SREGS, &sr), 0);
    cr_assert_eq(x86_vcpu_setup_lapic(a->vcpu_fd, &err), 0, "%s", err.msg);
    set_msr(a->vcpu_fd, X86_MSR_STAR, 0x0023001000000000ULL);
    set_msr(a->vcpu_fd, 0xc0000082U, 0xffffffff81a00000ULL); /* LSTAR */
    set_msr(a->vcpu_fd, 0xc0000102U, 0x0000000012345000ULL); /* KERNEL_GS_BASE */
    set_msr(a->vcpu_fd, 0x204U, 0x00000000c0000000ULL);      /* MTRR phys base 2 (unlisted) */

    /* LAPIC: a masked timer vector and a divide value. */
    struct kvm_lapic_state l;
    cr_assert_eq(ioctl(a->vcpu_fd, KVM_GET_LAPIC, &l), 0);
    uint32_t lvtt = 0x100ecU, tdcr = 0xbU;
    memcpy(l.regs + 0x320, &lvtt, 4);
    memcpy(l.regs + 0x3e0, &tdcr, 4);
    cr_assert_eq(ioctl(a->vcpu_fd, KVM_SET_LAPIC, &l), 0);

    /* IOAPIC pin 9 and PIT channel 0, as a guest would have programmed them. */
    struct kvm_irqchip chip = {.chip_id = KVM_IRQCHIP_IOAPIC};
    cr_assert_eq(ioctl(a->vm_fd, KVM_GET_IRQCHIP, &chip), 0);
    chip.chip.ioapic.redirtbl[9].bits = 0x0300000000010039ULL;
    cr_assert_eq(ioctl(a->vm_fd, KVM_SET_IRQCHIP, &chip), 0);
    struct kvm_pit_state2 pit;
    cr_assert_eq(ioctl(a->vm_fd, KVM_GET_PIT2, &pit), 0);
    pit.channels[0].count = 0x2e9c;
    pit.channels[0].mode = 2;
    pit.channels[0].rw_mode = 3;
    cr_assert_eq(ioctl(a->vm_fd, KVM_SET_PIT2, &pit), 0);
}

/*
 * Save A through the byte format, as a snapshot would: first let KVM finish
 * the `out` it exited for (KVM_RUN with immediate_exit completes it without
 * running guest code), or RIP would still point at it.
 */
static void save(struct test_vm *a, struct vstate_out *o)
{
    struct x86_vm_state vs;
    a->run->immediate_exit = 1;
    cr_assert_eq(ioctl(a->vcpu_fd, KVM_RUN, 0), -1);
    cr_assert_eq(errno, EINTR);
    a->run->immediate_exit = 0;
    cr_assert_eq(x86_vcpu_state_get(kvm_fd, a->vcpu_fd, &msr_list, saved, &err), 0, "%s", err.msg);
    cr_assert_eq(x86_vm_state_get(a->vm_fd, &vs, &err), 0, "%s", err.msg);
    vstate_out_init(o);
    cr_assert_eq(x86_vm_state_encode(&vs, o), 0);
    cr_assert_eq(x86_vcpu_state_encode(saved, o), 0);
}

/* Build B from the blob and A's memory. */
static void restore(struct test_vm *a, struct test_vm *b, const struct vstate_out *o)
{
    vm_new(b);
    memcpy(gmem_ptr(&b->gm, 0, MEM_SIZE), gmem_ptr(&a->gm, 0, MEM_SIZE), MEM_SIZE);
    struct vstate_in in;
    struct x86_vm_state vs;
    struct x86_vcpu_state *s = calloc(1, sizeof(*s));
    cr_assert(s);
    vstate_in_init(&in, o->buf, o->len);
    cr_assert_eq(x86_vm_state_decode(&in, &vs, &err), 0, "%s", err.msg);
    cr_assert_eq(x86_vcpu_state_decode(&in, s, &err), 0, "%s", err.msg);
    cr_assert_eq(x86_vm_state_set(b->vm_fd, &vs, &err), 0, "%s", err.msg);
    cr_assert_eq(x86_vcpu_state_set(kvm_fd, b->vcpu_fd, s, &err), 0, "%s", err.msg);
    free(s);
}

Test(x86_state_kvm, running_vcpu_moves_to_a_new_vm)
{
    struct test_vm a, b;
    start_a(&a);
    for (uint8_t i = 1; i <= 3; i++)
        run_to_out(&a, i);
    struct vstate_out blob;
    save(&a, &blob);
    cr_assert_gt(saved->nmsrs, 10, "only %u MSRs saved", saved->nmsrs);
    restore(&a, &b, &blob);

    /* B reads back what A had. */
    cr_assert_eq(x86_vcpu_state_get(kvm_fd, b.vcpu_fd, &msr_list, check, &err), 0, "%s", err.msg);
    cr_assert_eq(check->regs.rbx, 3);
    cr_assert_eq(check->regs.rip, saved->regs.rip);
    cr_assert_eq(check->sregs.cr3, saved->sregs.cr3);
    cr_assert_eq(check->sregs.efer, saved->sregs.efer);
    cr_assert_eq(check->sregs.cs.l, 1);
    cr_assert_eq(find_msr(check, X86_MSR_STAR), 0x0023001000000000ULL);
    cr_assert_eq(find_msr(check, 0xc0000082U), 0xffffffff81a00000ULL);
    cr_assert_eq(find_msr(check, 0xc0000102U), 0x12345000ULL);
    cr_assert_eq(find_msr(check, 0x204U), 0xc0000000ULL);
    cr_assert_eq(find_msr(check, X86_MSR_IA32_MTRR_DEF_TYPE),
                 find_msr(saved, X86_MSR_IA32_MTRR_DEF_TYPE));
    uint32_t lvtt, tdcr;
    memcpy(&lvtt, check->lapic + 0x320, 4);
    memcpy(&tdcr, check->lapic + 0x3e0, 4);
    cr_assert_eq(lvtt, 0x100ecU);
    cr_assert_eq(tdcr, 0xbU);
    /* xmm0 lives at byte 160 of the XSAVE legacy area. */
    uint64_t xmm0;
    memcpy(&xmm0, check->xsave + 160, 8);
    cr_assert_eq(xmm0, 3, "xmm0 0x%llx", (unsigned long long)xmm0);
    struct x86_vm_state vs;
    cr_assert_eq(x86_vm_state_get(b.vm_fd, &vs, &err), 0, "%s", err.msg);
    cr_assert_eq(vs.ioapic.redirtbl[9].bits, 0x0300000000010039ULL);
    cr_assert_eq(vs.pit.channels[0].mode, 2);
    cr_assert_eq(vs.pit.channels[0].count, 0x2e9c);

    /* And B carries on where A stopped. */
    run_to_out(&b, 4);
    run_to_out(&b, 5);
    vstate_out_free(&blob);
    vm_free(&a);
    vm_free(&b);
}

Test(x86_state_kvm, refused_msr_is_named)
{
    struct test_vm a, b;
    start_a(&a);
    run_to_out(&a, 1);
    struct vstate_out blob;
    save(&a, &blob);
    vm_new(&b);
    saved->msrs[0].index = 0xc0ffee00U; /* no such MSR */
    cr_assert_lt(x86_vcpu_state_set(kvm_fd, b.vcpu_fd, saved, &err), 0);
    cr_assert(strstr(err.msg, "0xc0ffee00"), "%s", err.msg);
    vstate_out_free(&blob);
    vm_free(&a);
    vm_free(&b);
}
