/*
 * kvm_ioeventfd() against the real KVM (a KVM suite: `make test` runs it where KVM
 * works, natively or in the nested testbed, and never skips it): binding
 * and unbinding with DATAMATCH, the errors KVM gives for duplicates and
 * unknown bindings, and a few real-mode guest instructions proving that a
 * matching 4-byte write signals the eventfd without an exit while any other
 * value exits as ordinary MMIO, and that an unbound address exits again.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/kvm.h"
#include "vmm/vm.h"

#define RAM_SIZE    0x8000
#define CODE_GPA    0x1000
#define NOTIFY_GPA  0xa050 /* outside RAM: an MMIO address */
#define DATAMATCH   1
#define TSS_ADDRESS 0xfffbd000

static struct vm vm;
static int efd = -1, vcpu_fd = -1;
static void *ram = MAP_FAILED;
static struct kvm_run *run = MAP_FAILED;

static void setup(void)
{
    vm.kvm_fd = vm.vm_fd = -1;
    cr_assert_eq(access(kvm_device_path(), R_OK | W_OK), 0, "no usable %s", kvm_device_path());
    struct errbuf err = {0};
    cr_assert_eq(kvm_open_vm(&vm, &err), 0, "%s", err.msg);
    efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    cr_assert_geq(efd, 0);
}

static void teardown(void)
{
    if (run != MAP_FAILED)
        munmap(run, (size_t)vm.vcpu_mmap_size);
    if (vcpu_fd >= 0)
        close(vcpu_fd);
    if (ram != MAP_FAILED)
        munmap(ram, RAM_SIZE);
    if (efd >= 0)
        close(efd);
    if (vm.vm_fd >= 0)
        close(vm.vm_fd);
    if (vm.kvm_fd >= 0)
        close(vm.kvm_fd);
}

TestSuite(virtio_mmio_kvm, .init = setup, .fini = teardown, .timeout = 30);

static uint64_t drain(void)
{
    uint64_t n = 0;
    if (read(efd, &n, sizeof(n)) != (ssize_t)sizeof(n))
        return 0;
    return n;
}

Test(virtio_mmio_kvm, assign_and_deassign)
{
    cr_assert_eq(kvm_ioeventfd(&vm, 0xd0000050, 4, DATAMATCH, efd, true), 0);
    cr_expect_eq(kvm_ioeventfd(&vm, 0xd0000050, 4, DATAMATCH, efd, true), -EEXIST);
    /* Another datamatch on the same address is a separate binding. */
    cr_expect_eq(kvm_ioeventfd(&vm, 0xd0000050, 4, DATAMATCH + 1, efd, true), 0);
    cr_expect_eq(kvm_ioeventfd(&vm, 0xd0000050, 4, DATAMATCH, efd, false), 0);
    cr_expect_eq(kvm_ioeventfd(&vm, 0xd0000050, 4, DATAMATCH, efd, false), -ENOENT);
    cr_expect_eq(kvm_ioeventfd(&vm, 0xd0000050, 4, DATAMATCH + 1, efd, false), 0);
    /* Arguments KVM would reject or misread. */
    cr_expect_eq(kvm_ioeventfd(&vm, 0xd0000050, 3, DATAMATCH, efd, true), -EINVAL);
    cr_expect_eq(kvm_ioeventfd(&vm, 0xd0000050, 0, DATAMATCH, efd, true), -EINVAL);
    cr_expect_eq(kvm_ioeventfd(&vm, 0xd0000050, 4, DATAMATCH, -1, true), -EINVAL);
}

/* Real-mode code: two 32-bit stores to NOTIFY_GPA (values 1, then 2), then hlt. */
static const uint8_t guest_code[] = {
    0x66, 0xb8, 0x01, 0x00, 0x00, 0x00, /* mov eax, 1 */
    0x66, 0xa3, 0x50, 0xa0,             /* mov [0xa050], eax */
    0x66, 0xb8, 0x02, 0x00, 0x00, 0x00, /* mov eax, 2 */
    0x66, 0xa3, 0x50, 0xa0,             /* mov [0xa050], eax */
    0xf4,                               /* hlt */
};
_Static_assert(NOTIFY_GPA == 0xa050, "the code above encodes the address");

static void start_guest(void)
{
    struct kvm_regs regs = {.rip = CODE_GPA, .rflags = 2};
    struct kvm_sregs sregs;
    cr_assert_eq(ioctl(vcpu_fd, KVM_GET_SREGS, &sregs), 0);
    sregs.cs.base = sregs.ds.base = 0;
    sregs.cs.selector = sregs.ds.selector = 0;
    cr_assert_eq(ioctl(vcpu_fd, KVM_SET_SREGS, &sregs), 0);
    cr_assert_eq(ioctl(vcpu_fd, KVM_SET_REGS, &regs), 0);
}

static unsigned run_exit(void)
{
    int r;
    do {
        r = ioctl(vcpu_fd, KVM_RUN, 0);
    } while (r < 0 && errno == EINTR);
    cr_assert_eq(r, 0, "KVM_RUN: %s", strerror(errno));
    return run->exit_reason;
}

static void expect_mmio_exit(uint32_t value)
{
    cr_assert_eq(run_exit(), KVM_EXIT_MMIO);
    cr_expect_eq(run->mmio.phys_addr, NOTIFY_GPA);
    cr_expect_eq(run->mmio.len, 4);
    cr_expect(run->mmio.is_write);
    uint32_t v;
    memcpy(&v, run->mmio.data, 4);
    cr_expect_eq(v, value);
}

Test(virtio_mmio_kvm, guest_write_signals_eventfd)
{
    /* Some hosts need a TSS for real mode; harmless elsewhere. */
    (void)ioctl(vm.vm_fd, KVM_SET_TSS_ADDR, TSS_ADDRESS);
    ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(ram, MAP_FAILED);
    memcpy((uint8_t *)ram + CODE_GPA, guest_code, sizeof(guest_code));
    struct kvm_userspace_memory_region slot = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = RAM_SIZE, .userspace_addr = (uintptr_t)ram};
    cr_assert_eq(ioctl(vm.vm_fd, KVM_SET_USER_MEMORY_REGION, &slot), 0);
    vcpu_fd = ioctl(vm.vm_fd, KVM_CREATE_VCPU, 0);
    cr_assert_geq(vcpu_fd, 0);
    run = mmap(NULL, (size_t)vm.vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
    cr_assert_neq(run, MAP_FAILED);

    /* Bound: the store of 1 completes in KVM, the store of 2 exits. */
    cr_assert_eq(kvm_ioeventfd(&vm, NOTIFY_GPA, 4, DATAMATCH, efd, true), 0);
    start_guest();
    expect_mmio_exit(2);
    cr_expect_eq(drain(), 1, "the matching write signalled the eventfd once");
    cr_expect_eq(run_exit(), KVM_EXIT_HLT);

    /* Unbound: both stores exit, nothing is signalled. */
    cr_assert_eq(kvm_ioeventfd(&vm, NOTIFY_GPA, 4, DATAMATCH, efd, false), 0);
    start_guest();
    expect_mmio_exit(1);
    expect_mmio_exit(2);
    cr_expect_eq(run_exit(), KVM_EXIT_HLT);
    cr_expect_eq(drain(), 0);
}
