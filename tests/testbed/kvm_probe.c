/*
 * kvm-probe: can this host run wisp's KVM tests natively, and can it run
 * stock Linux guests?  `make test` asks before choosing between the native
 * /dev/kvm and the nested testbed (tests/testbed/run).
 *
 * Opening /dev/kvm is not enough: the probe runs a real VM (16-bit code that
 * counts down a register and writes an I/O port) and checks the exit.  Then
 * it times a longer count.  Hardware virtualisation runs guest code at native
 * speed (about 1 ns per instruction); the paravirtual KVM on some of our
 * machines emulates guest kernel code at about 1 us per instruction, which is
 * fine for the freestanding test guest but too slow for a stock kernel.
 *
 * Exit status and one line on stdout:
 *   0  "hardware": VMs run at hardware speed
 *   1  "emulated": VMs run, but guest kernel code is emulated
 *   2  "none": no usable KVM (the line says why); killed by SIGALRM after
 *      30 s if KVM_RUN hangs
 * WISP_KVM_DEV names another device node, as for wisp itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PROBE_PORT           0x10
#define CODE_GPA             0x1000
#define MEM_SIZE             0x10000
#define LONG_COUNT           200000u /* 400k instructions */
#define EMULATED_NS_PER_INSN 50      /* above this, guest code is not run by hardware */

struct probe {
    int kvm, vm, vcpu;
    uint8_t *mem;
    struct kvm_run *run;
    size_t run_size;
};

static int none(const char *what, int err)
{
    printf("none: %s: %s\n", what, strerror(err));
    return 2;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Load `mov ecx, count; 1: dec ecx; jnz 1b; out PROBE_PORT, al; hlt`, run it,
 * and return the wall time of KVM_RUN in ns (negative on failure). */
static double run_count(struct probe *p, uint32_t count)
{
    uint8_t code[] = {0x66, 0xb9, 0, 0, 0, 0, 0x66, 0x49, 0x75, 0xfc, 0xe6, PROBE_PORT, 0xf4};
    memcpy(&code[2], &count, sizeof(count));
    memcpy(p->mem + CODE_GPA, code, sizeof(code));

    struct kvm_sregs sregs;
    if (ioctl(p->vcpu, KVM_GET_SREGS, &sregs) < 0)
        return -1;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    if (ioctl(p->vcpu, KVM_SET_SREGS, &sregs) < 0)
        return -1;
    struct kvm_regs regs = {.rip = CODE_GPA, .rflags = 0x2};
    if (ioctl(p->vcpu, KVM_SET_REGS, &regs) < 0)
        return -1;

    double t0 = now_ns();
    int rc = ioctl(p->vcpu, KVM_RUN, 0);
    double t1 = now_ns();
    if (rc < 0 || p->run->exit_reason != KVM_EXIT_IO || p->run->io.port != PROBE_PORT ||
        p->run->io.direction != KVM_EXIT_IO_OUT)
        return -1;
    return t1 - t0;
}

int main(void)
{
    const char *dev = getenv("WISP_KVM_DEV");
    if (!dev || !*dev)
        dev = "/dev/kvm";
    struct probe p = {.kvm = -1, .vm = -1, .vcpu = -1};
    /* A KVM that hangs in KVM_RUN is no usable KVM: SIGALRM ends the probe
     * (status 142, which callers read as "none"). */
    alarm(30);

    p.kvm = open(dev, O_RDWR | O_CLOEXEC);
    if (p.kvm < 0)
        return none(dev, errno);
    if (ioctl(p.kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
        return none("KVM_GET_API_VERSION", EPROTO);
    p.vm = ioctl(p.kvm, KVM_CREATE_VM, 0);
    if (p.vm < 0)
        return none("KVM_CREATE_VM", errno);
    p.mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p.mem == MAP_FAILED)
        return none("mmap", errno);
    struct kvm_userspace_memory_region slot = {.slot = 0,
                                               .guest_phys_addr = 0,
                                               .memory_size = MEM_SIZE,
                                               .userspace_addr = (uintptr_t)p.mem};
    if (ioctl(p.vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
        return none("KVM_SET_USER_MEMORY_REGION", errno);
    p.vcpu = ioctl(p.vm, KVM_CREATE_VCPU, 0);
    if (p.vcpu < 0)
        return none("KVM_CREATE_VCPU", errno);
    int sz = ioctl(p.kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (sz <= 0)
        return none("KVM_GET_VCPU_MMAP_SIZE", sz < 0 ? errno : EINVAL);
    p.run_size = (size_t)sz;
    p.run = mmap(NULL, p.run_size, PROT_READ | PROT_WRITE, MAP_SHARED, p.vcpu, 0);
    if (p.run == MAP_FAILED)
        return none("mmap kvm_run", errno);

    /* The first run pays for setting the vCPU up; the short one is the
     * baseline that the long one is compared with. */
    if (run_count(&p, 1) < 0)
        return none("the probe VM did not exit on its I/O port", EIO);
    double best_short = -1, best_long = -1;
    for (int i = 0; i < 3; i++) {
        double s = run_count(&p, 1), l = run_count(&p, LONG_COUNT);
        if (s < 0 || l < 0)
            return none("the probe VM did not exit on its I/O port", EIO);
        if (best_short < 0 || s < best_short)
            best_short = s;
        if (best_long < 0 || l < best_long)
            best_long = l;
    }
    double per_insn = (best_long - best_short) / (2.0 * LONG_COUNT);
    if (per_insn < 0)
        per_insn = 0;
    if (per_insn > EMULATED_NS_PER_INSN) {
        printf("emulated: %s runs VMs, but guest kernel code is emulated (%.0f ns per "
               "instruction): stock Linux guests are too slow here\n",
               dev, per_insn);
        return 1;
    }
    printf("hardware: %s runs guest code at hardware speed (%.2f ns per instruction)\n", dev,
           per_insn);
    return 0;
}
