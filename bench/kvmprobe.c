/*
 * kvmprobe: can this machine run a KVM guest at all?  `make bench` times
 * VMs, which is meaningless (or hangs) where /dev/kvm is missing or where
 * KVM exists but cannot run a vCPU (nested set-ups without VMX/SVM, a
 * container without the device node, a locked-down host).  So before
 * benchmarking, this creates a VM with one page of real-mode code,
 * `mov $0x42, %al; out %al, $0xf4; hlt`, runs it, and expects that I/O
 * exit.
 *
 * Exit 0 and no output if the VM ran.  Otherwise exit 1 with one line on
 * stdout saying why ("no /dev/kvm: ..." or "KVM is present but cannot run
 * a VM: ..."), which the Makefile prints.  WISP_KVM_DEV names another
 * device node, as for wisp.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define PROBE_PORT  0xf4
#define PROBE_VALUE 0x42
#define TIMEOUT_S   10

static const char *dev;

static void cannot_run(const char *fmt, ...)
{
    va_list ap;
    printf("KVM is present (%s) but cannot run a VM: ", dev);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    exit(1);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "KVM is present but cannot run a VM: the probe vCPU did not exit "
                              "within 10 s\n";
    ssize_t r = write(STDOUT_FILENO, msg, sizeof(msg) - 1);
    (void)r;
    _exit(1);
}

int main(void)
{
    static const unsigned char code[] = {
        0xb0, PROBE_VALUE, /* mov $0x42, %al */
        0xe6, PROBE_PORT,  /* out %al, $0xf4 */
        0xf4,              /* hlt */
    };
    const char *env = getenv("WISP_KVM_DEV");
    dev = env && env[0] ? env : "/dev/kvm";

    int kvm = open(dev, O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        printf("no %s: %s\n", dev, strerror(errno));
        return 1;
    }
    if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
        cannot_run("KVM_GET_API_VERSION: %s", strerror(errno));
    int vm = ioctl(kvm, KVM_CREATE_VM, 0UL);
    if (vm < 0)
        cannot_run("KVM_CREATE_VM: %s", strerror(errno));
    void *mem = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        cannot_run("mmap: %s", strerror(errno));
    memcpy(mem, code, sizeof(code));
    struct kvm_userspace_memory_region slot = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = 0x1000, .userspace_addr = (__u64)mem};
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
        cannot_run("KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0UL);
    if (vcpu < 0)
        cannot_run("KVM_CREATE_VCPU: %s", strerror(errno));
    int size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (size < (int)sizeof(struct kvm_run))
        cannot_run("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
    struct kvm_run *run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED)
        cannot_run("mmap of the vCPU: %s", strerror(errno));

    /* Real mode at 0000:0000. */
    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
        cannot_run("KVM_GET_SREGS: %s", strerror(errno));
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
        cannot_run("KVM_SET_SREGS: %s", strerror(errno));
    struct kvm_regs regs = {.rip = 0, .rflags = 0x2};
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
        cannot_run("KVM_SET_REGS: %s", strerror(errno));

    signal(SIGALRM, on_alarm);
    alarm(TIMEOUT_S);
    for (;;) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR)
                continue;
            cannot_run("KVM_RUN: %s", strerror(errno));
        }
        if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT &&
            run->io.port == PROBE_PORT && run->io.size == 1 &&
            ((unsigned char *)run)[run->io.data_offset] == PROBE_VALUE)
            return 0;
        cannot_run("unexpected exit reason %u (hardware reason 0x%llx)", run->exit_reason,
                   (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
    }
}
